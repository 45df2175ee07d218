//! What the stack exposes (ADR 31): trackers published where no peer can reach them, the admin
//! token sent over plain HTTP across a network, and HTTP trackers half behind the TLS proxy.

use super::Report;
use crate::config::EnvironmentConfig;

/// Warns about a UDP or HTTP tracker published on the host's loopback only (no peer can
/// announce to it) and about the API published beyond loopback without TLS (its admin token
/// would cross the network in clear).
pub(super) fn warnings(config: &EnvironmentConfig, r: &mut Report) {
    let t = &config.tracker;
    let mut loopback = Vec::new();
    for (i, u) in t.udp_trackers.iter().enumerate() {
        loopback.push((
            format!("tracker.udp_trackers[{i}].bind_address"),
            u.bind_address,
        ));
    }
    for (i, h) in t.http_trackers.iter().enumerate() {
        if !h.use_tls_proxy {
            loopback.push((
                format!("tracker.http_trackers[{i}].bind_address"),
                h.bind_address,
            ));
        }
    }
    for (path, addr) in loopback {
        if r.accepted(&path) && addr.ip().is_loopback() {
            r.warn(
                &path,
                format!(
                    "{addr} is published on the host's loopback only: no peer can announce to \
                     this tracker; use \"0.0.0.0:{}\" to publish it on every interface",
                    addr.port()
                ),
            );
        }
    }
    let api = &t.http_api;
    let path = "tracker.http_api.bind_address";
    if !api.use_tls_proxy && r.accepted(path) && !api.bind_address.ip().is_loopback() {
        r.warn(
            path,
            format!(
                "the API ({}) is published beyond the host's loopback over plain HTTP: its \
                 admin token crosses the network in clear text with every request. Use \
                 \"127.0.0.1:{}\" (`test` and `status` reach it through SSH), or put it behind \
                 the TLS proxy (`use_tls_proxy: true` with a `domain`)",
                api.bind_address,
                api.bind_address.port()
            ),
        );
    }
}

/// Refuses HTTP trackers of which some are behind the TLS proxy and some published directly:
/// `on_reverse_proxy` is one setting for the whole tracker, so a direct one would take the
/// peer's address from a client-supplied `X-Forwarded-For` (spoofable peer IPs).
pub(super) fn mixed_proxying(config: &EnvironmentConfig, r: &mut Report) {
    let http = &config.tracker.http_trackers;
    let Some(proxied) = http.iter().position(|h| h.use_tls_proxy) else {
        return;
    };
    for (i, h) in http.iter().enumerate() {
        if h.use_tls_proxy {
            continue;
        }
        r.add(
            format!("tracker.http_trackers[{i}].use_tls_proxy"),
            format!(
                "HTTP tracker {} is published directly while HTTP tracker {} is behind the TLS \
                 proxy: the tracker then takes every HTTP peer's address from the \
                 `X-Forwarded-For` header (`on_reverse_proxy` is one setting for the whole \
                 tracker), which a client of the direct one can forge",
                i + 1,
                proxied + 1
            ),
            Some("false".into()),
            format!(
                "put HTTP tracker {} behind the TLS proxy too (`\"use_tls_proxy\": true` with a \
                 `domain`), or publish every HTTP tracker directly, or remove it",
                i + 1
            ),
        );
    }
}
