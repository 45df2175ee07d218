//! The public addresses of a deployed stack, for output: announce URLs, API, Grafana.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{grafana, prometheus};
use crate::config::{Domain, EnvironmentConfig};

/// Where users and operators reach the stack. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// `udp://<domain or host>:<port>/announce`, one per UDP tracker.
    pub udp_announce: Vec<String>,
    /// `https://<domain>/announce` behind the TLS proxy, else
    /// `http://<domain or host>:<port>/announce`, one per HTTP tracker.
    pub http_announce: Vec<String>,
    /// The tracker API's base URL (`.../api/v1/...` below it); `http://127.0.0.1:PORT/api`
    /// when it is published on the host's loopback only (reach it through SSH).
    pub api: String,
    /// The health check API, only when it is behind the TLS proxy (it is never published).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// Grafana, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana: Option<String>,
    /// Prometheus, on the host's loopback only (reach it through an SSH tunnel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
}

/// `host:port`, with the domain when there is one, else the IP (bracketed for IPv6): the
/// address the service is published on when its bind names one (ADR 31), else the host's.
fn authority(domain: Option<&Domain>, host: IpAddr, bind: SocketAddr) -> String {
    let port = bind.port();
    match domain {
        Some(d) => format!("{}:{port}", d.name()),
        None => SocketAddr::new(super::host_ip(bind).unwrap_or(host), port).to_string(),
    }
}

/// The public addresses of the stack of `config` on the host at `host`.
pub fn endpoints(config: &EnvironmentConfig, host: IpAddr) -> Endpoints {
    let t = &config.tracker;
    let udp_announce = t
        .udp_trackers
        .iter()
        .map(|u| {
            format!(
                "udp://{}/announce",
                authority(u.domain.as_ref(), host, u.bind_address.socket_addr())
            )
        })
        .collect();
    let http_announce = t
        .http_trackers
        .iter()
        .map(|h| match (&h.domain, h.use_tls_proxy) {
            (Some(d), true) => format!("https://{}/announce", d.name()),
            _ => format!(
                "http://{}/announce",
                authority(h.domain.as_ref(), host, h.bind_address.socket_addr())
            ),
        })
        .collect();
    let api = match (&t.http_api.domain, t.http_api.use_tls_proxy) {
        (Some(d), true) => format!("https://{}/api", d.name()),
        _ => format!(
            "http://{}/api",
            authority(
                t.http_api.domain.as_ref(),
                host,
                t.http_api.bind_address.socket_addr()
            )
        ),
    };
    let health_check = match (&t.health_check_api.domain, t.health_check_api.use_tls_proxy) {
        (Some(d), true) => Some(format!("https://{}/health_check", d.name())),
        _ => None,
    };
    let grafana = config
        .grafana
        .as_ref()
        .map(|g| match (&g.domain, g.use_tls_proxy) {
            (Some(d), true) => format!("https://{}/", d.name()),
            _ => format!("http://{}/", SocketAddr::new(host, grafana::HOST_PORT)),
        });
    let prometheus = config
        .prometheus
        .as_ref()
        .map(|_| format!("http://127.0.0.1:{}/", prometheus::PORT));
    Endpoints {
        udp_announce,
        http_announce,
        api,
        health_check,
        grafana,
        prometheus,
    }
}

/// Every announce URL: UDP trackers first, then HTTP trackers.
pub fn announce_urls(config: &EnvironmentConfig, host: IpAddr) -> Vec<String> {
    let e = endpoints(config, host);
    e.udp_announce.into_iter().chain(e.http_announce).collect()
}
