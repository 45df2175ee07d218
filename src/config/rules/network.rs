//! The tracker's bind addresses: conflicts within a protocol and with the host ports of the
//! other services. (Each bind address is a typed `BindAddress`, parsed when read.)

use std::net::SocketAddr;

use super::Report;
use crate::config::EnvironmentConfig;

/// Warns about a tracker nobody can announce to.
pub(super) fn trackers(config: &EnvironmentConfig, r: &mut Report) {
    let t = &config.tracker;
    if t.udp_trackers.is_empty() && t.http_trackers.is_empty() {
        r.warn(
            "tracker",
            "no UDP and no HTTP tracker is configured: peers have nothing to announce to",
        );
    }
}

/// Two bind addresses of the tracker conflict when their ports are equal, whatever their IPs:
/// inside the container the published and proxied ones all bind the unspecified address (ADR
/// 31), and the health check API's loopback bind overlaps that too.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
}

pub(super) fn ports(config: &EnvironmentConfig, r: &mut Report) {
    let t = &config.tracker;
    // Binds inside the tracker, per protocol: (path, label, addr, published on the host). A
    // rejected address (a stand-in) takes no part.
    let mut udp: Vec<(String, String, SocketAddr)> = Vec::new();
    for (i, u) in t.udp_trackers.iter().enumerate() {
        udp.push((
            format!("tracker.udp_trackers[{i}].bind_address"),
            format!("UDP tracker {}", i + 1),
            u.bind_address.socket_addr(),
        ));
    }
    let mut tcp: Vec<(String, String, SocketAddr, bool)> = Vec::new();
    for (i, h) in t.http_trackers.iter().enumerate() {
        tcp.push((
            format!("tracker.http_trackers[{i}].bind_address"),
            format!("HTTP tracker {}", i + 1),
            h.bind_address.socket_addr(),
            !h.use_tls_proxy,
        ));
    }
    tcp.push((
        "tracker.http_api.bind_address".into(),
        "the tracker API".into(),
        t.http_api.bind_address.socket_addr(),
        !t.http_api.use_tls_proxy,
    ));
    // The health check API is never published on the host.
    tcp.push((
        "tracker.health_check_api.bind_address".into(),
        "the health check API".into(),
        t.health_check_api.bind_address.socket_addr(),
        false,
    ));
    udp.retain(|(path, ..)| r.accepted(path));
    tcp.retain(|(path, ..)| r.accepted(path));

    let mut reported: Vec<(String, String)> = Vec::new();
    let mut duplicate =
        |r: &mut Report, proto: &str, a: (&str, &str, SocketAddr), b: (&str, &str, SocketAddr)| {
            r.add(
                b.0,
                format!(
                    "{proto} address {} conflicts with {} ({}, at `{}`): inside the tracker's \
                     container both listen on port {}",
                    b.2,
                    a.1,
                    a.2,
                    a.0,
                    b.2.port()
                ),
                Some(format!("\"{}\"", b.2)),
                format!("give {} another port", b.1),
            );
            reported.push((a.0.to_string(), b.0.to_string()));
        };
    for j in 0..udp.len() {
        for i in 0..j {
            if overlaps(udp[i].2, udp[j].2) {
                duplicate(
                    r,
                    "UDP",
                    (&udp[i].0, &udp[i].1, udp[i].2),
                    (&udp[j].0, &udp[j].1, udp[j].2),
                );
            }
        }
    }
    for j in 0..tcp.len() {
        for i in 0..j {
            if overlaps(tcp[i].2, tcp[j].2) {
                duplicate(
                    r,
                    "TCP",
                    (&tcp[i].0, &tcp[i].1, tcp[i].2),
                    (&tcp[j].0, &tcp[j].1, tcp[j].2),
                );
            }
        }
    }

    // Host ports: Docker publishes `port:port` on all host interfaces, next to the fixed ports
    // of the other services.
    let any_tls = config.uses_tls_proxy();
    let mut fixed_tcp: Vec<(u16, &str)> = Vec::new();
    let mut fixed_udp: Vec<(u16, &str)> = Vec::new();
    if any_tls {
        fixed_tcp.push((80, "the TLS proxy (ACME HTTP challenge)"));
        fixed_tcp.push((443, "the TLS proxy (HTTPS)"));
        fixed_udp.push((443, "the TLS proxy (HTTP/3)"));
    }
    if config.prometheus.is_some() {
        fixed_tcp.push((9090, "Prometheus (127.0.0.1:9090)"));
    }
    if let Some(g) = &config.grafana
        && !g.use_tls_proxy
    {
        fixed_tcp.push((3100, "Grafana (host port 3100)"));
    }
    let mut published_tcp: Vec<(&str, &str, u16)> = Vec::new();
    for (path, label, addr, published) in &tcp {
        if *published {
            published_tcp.push((path, label, addr.port()));
        }
    }
    for (proto, published, fixed) in [
        ("TCP", published_tcp, fixed_tcp),
        (
            "UDP",
            udp.iter()
                .map(|(p, l, a)| (p.as_str(), l.as_str(), a.port()))
                .collect(),
            fixed_udp,
        ),
    ] {
        for (j, (path, label, port)) in published.iter().enumerate() {
            if let Some((_, other)) = fixed.iter().find(|(p, _)| p == port) {
                r.add(
                    *path,
                    format!("{proto} port {port} of {label} is also published by {other}"),
                    Some(port.to_string()),
                    format!("give {label} another port"),
                );
                continue;
            }
            for (other_path, other_label, other_port) in &published[..j] {
                let already = reported.iter().any(|(a, b)| a == other_path && b == path);
                if other_port == port && !already {
                    r.add(
                        *path,
                        format!(
                            "{proto} host port {port} is published twice: by {other_label} \
                             (`{other_path}`) and {label}"
                        ),
                        Some(port.to_string()),
                        format!("give {label} another port"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(a("0.0.0.0:1"), a("0.0.0.0:1")));
        assert!(overlaps(a("0.0.0.0:1"), a("127.0.0.1:1")));
        assert!(overlaps(a("[::]:1"), a("[::1]:1")));
        assert!(overlaps(a("10.0.0.1:1"), a("10.0.0.2:1")));
        assert!(!overlaps(a("0.0.0.0:1"), a("0.0.0.0:2")));
    }
}
