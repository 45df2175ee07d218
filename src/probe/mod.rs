//! Protocol checks of a running tracker, from the operator's machine: the engine of `test`.
//!
//! - [`udp`]: UDP tracker client (BEP 15) with retransmission.
//! - [`http_tracker`]: HTTP tracker announce and scrape (BEP 3, BEP 23 compact peers).
//! - [`api`]: the tracker REST API (health, stats), the health check API, the HTTP tracker's
//!   own health check.
//! - [`bencode`]: the small decoder behind the HTTP tracker client.
//! - [`http`]: the shared HTTP client (timeouts, trusted roots, resolve overrides, redaction).
//!
//! A [`Check`] names one thing to check; [`run_check`] runs it into a [`CheckResult`] (name,
//! redacted target, outcome, latency), [`run_checks`] runs a list concurrently into a
//! [`ProbeReport`] (in `check.rs`). [`run_tracker_test`] is the whole test of a deployment:
//! services up, a test peer announced to every tracker, and the announces seen in the API
//! statistics (in `deployment.rs`).
//!
//! ```no_run
//! # async fn demo() {
//! use torrust_tracker_deployer::probe::{self, Endpoints, ProbeOptions, UdpTarget};
//! use torrust_tracker_deployer::secret::Secret;
//!
//! let endpoints = Endpoints {
//!     udp_trackers: vec![UdpTarget::parse("udp://tracker.example.com:6969").unwrap()],
//!     http_trackers: vec!["https://tracker.example.com".parse().unwrap()],
//!     api: Some(("https://api.example.com".parse().unwrap(), Secret::new("token"))),
//!     health_check: None,
//!     grafana: None,
//! };
//! let mut opts = ProbeOptions::default();
//! // Before DNS exists: answer the domains with the server's IP.
//! opts.http.resolve.insert("tracker.example.com".into(), "203.0.113.7".parse().unwrap());
//! opts.http.resolve.insert("api.example.com".into(), "203.0.113.7".parse().unwrap());
//! let report = probe::run_tracker_test(&endpoints, &opts).await;
//! for r in &report.results {
//!     println!("{r}");
//! }
//! std::process::exit(if report.ok() { 0 } else { 1 });
//! # }
//! ```

pub mod api;
pub mod bencode;
mod check;
mod deployment;
pub mod error;
pub mod http;
pub mod http_tracker;
pub mod monitoring;
pub mod peer;
pub mod udp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

pub use self::api::{HealthReport, HealthStatus, ServiceHealth, TrackerStats};
pub use self::check::{
    Check, CheckOutput, CheckResult, Outcome, ProbeReport, run_check, run_checks,
};
pub use self::deployment::{
    Endpoints, compare_stats, health_checks, run_tracker_test, tracker_checks,
};
pub use self::error::ProbeError;
pub use self::http::{HttpOptions, TlsTrust};
pub use self::peer::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, InfoHash, PeerId, ScrapeEntry,
    ScrapeResponse, TestPeer,
};
pub use self::udp::{UdpRetry, UdpTrackerClient};

/// Everything that tunes the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// HTTP timeout, TLS trust, resolve overrides (which UDP checks use too).
    pub http: HttpOptions,
    /// UDP waits and retransmissions.
    pub udp: UdpRetry,
}

/// A UDP tracker address: `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTarget {
    /// Domain, IPv4 address, or IPv6 address (without brackets).
    pub host: String,
    pub port: u16,
}

impl UdpTarget {
    /// Parses `udp://host:port[/announce]` or `host:port` (IPv6 in brackets).
    pub fn parse(text: &str) -> Result<Self, ProbeError> {
        let bad = |detail: &str| ProbeError::Setup {
            target: text.to_string(),
            detail: format!("not a UDP tracker address (udp://host:port): {detail}"),
        };
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("udp://{text}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "udp" {
            return Err(bad("the scheme is not udp"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().ok_or_else(|| bad("no port"))?;
        Ok(Self { host, port })
    }

    /// An IP address and port.
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The address to send to: an IP host as is, a resolve override, or DNS.
    pub async fn resolve(&self, opts: &HttpOptions) -> Result<SocketAddr, ProbeError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let overridden = opts
            .resolve
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&self.host));
        if let Some((_, ip)) = overridden {
            return Ok(SocketAddr::new(*ip, self.port));
        }
        let resolve_error = |detail: String| ProbeError::Resolve {
            host: self.host.clone(),
            target: self.to_string(),
            detail,
        };
        let lookup = tokio::time::timeout(
            opts.timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| resolve_error(format!("no DNS answer within {:?}", opts.timeout)))?
        .map_err(|e| resolve_error(e.to_string()))?;
        let addrs: Vec<SocketAddr> = lookup.collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| resolve_error("no address".into()))
    }
}

impl fmt::Display for UdpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "udp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "udp://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    #[test]
    fn parses_udp_targets() {
        let t = UdpTarget::parse("udp://tracker.example.com:6969/announce").unwrap();
        assert_eq!(
            t,
            UdpTarget {
                host: "tracker.example.com".into(),
                port: 6969
            }
        );
        assert_eq!(t.to_string(), "udp://tracker.example.com:6969");
        let t = UdpTarget::parse("[::1]:6969").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.to_string(), "udp://[::1]:6969");
        assert_eq!(UdpTarget::parse("127.0.0.1:1").unwrap().host, "127.0.0.1");
        assert!(UdpTarget::parse("http://h:1").is_err());
        assert!(UdpTarget::parse("udp://h").is_err());
    }

    #[tokio::test]
    async fn udp_target_uses_resolve_override() {
        let mut opts = HttpOptions::default();
        opts.resolve
            .insert("tracker.example.com".into(), "192.0.2.1".parse().unwrap());
        let t = UdpTarget::parse("udp://Tracker.Example.com:6969").unwrap();
        assert_eq!(
            t.resolve(&opts).await.unwrap(),
            "192.0.2.1:6969".parse().unwrap()
        );
    }

    fn stats(udp: u64, http: u64, torrents: u64) -> TrackerStats {
        serde_json::from_value(serde_json::json!({
            "torrents": torrents, "seeders": 0, "completed": 0, "leechers": 0,
            "tcp4_announces_handled": http, "tcp4_scrapes_handled": 0,
            "udp4_announces_handled": udp, "udp4_scrapes_handled": 0
        }))
        .unwrap()
    }

    #[test]
    fn compares_stats() {
        assert!(compare_stats(&stats(1, 1, 0), &stats(2, 3, 2), 1, 2).is_ok());
        let e = compare_stats(&stats(1, 1, 0), &stats(1, 2, 1), 1, 1).unwrap_err();
        assert!(e.contains("UDP announces went from 1 to 1"), "{e}");
        let e = compare_stats(&stats(0, 0, 0), &stats(1, 1, 0), 1, 1).unwrap_err();
        assert!(e.contains("no torrent"), "{e}");
    }

    #[test]
    fn api_stats_target_and_debug_hide_the_token() {
        let check = Check::ApiStats {
            url: "http://127.0.0.1:1212".parse().unwrap(),
            token: Secret::new("VerySecretToken"),
        };
        assert_eq!(
            check.target(),
            "http://127.0.0.1:1212/api/v1/stats?token=[REDACTED]"
        );
        assert!(!format!("{check:?}").contains("VerySecretToken"));
    }

    #[tokio::test]
    async fn closed_tcp_port_is_refused() {
        // Bind then drop a listener: the port is (almost certainly) closed afterwards.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let check = Check::ApiHealth {
            url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        };
        let r = run_check(&check, &ProbeOptions::default()).await;
        assert_eq!(r.error().map(ProbeError::kind), Some("refused"), "{r}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["error_kind"], "refused");
    }

    /// A loopback HTTP server that answers every request with `status` and `body`.
    async fn answering(status: u16, body: &'static str) -> Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://127.0.0.1:{port}/").parse().unwrap()
    }

    #[tokio::test]
    async fn grafana_health_needs_its_database_ok() {
        let opts = ProbeOptions::default();
        let url = answering(200, r#"{"commit":"x","database":"ok","version":"12.3.1"}"#).await;
        let check = Check::GrafanaHealth { url };
        assert!(
            check.target().ends_with("/api/health"),
            "{}",
            check.target()
        );
        let r = run_check(&check, &opts).await;
        assert!(r.is_ok(), "{r}");

        let url = answering(200, r#"{"database":"failing"}"#).await;
        let r = run_check(&Check::GrafanaHealth { url }, &opts).await;
        assert_eq!(r.error().map(ProbeError::kind), Some("unhealthy"), "{r}");

        let url = answering(503, "starting").await;
        let r = run_check(&Check::GrafanaHealth { url }, &opts).await;
        assert_eq!(r.error().map(ProbeError::kind), Some("http_status"), "{r}");
    }

    #[tokio::test]
    async fn silent_tcp_server_times_out() {
        // Accepts connections (the kernel does) but never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut opts = ProbeOptions::default();
        opts.http.timeout = Duration::from_millis(300);
        let check = Check::HealthCheck {
            url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        };
        let r = run_check(&check, &opts).await;
        assert_eq!(r.error().map(ProbeError::kind), Some("timeout"), "{r}");
        assert!(r.detail().contains("no answer within 0.3s"), "{r}");
        drop(listener);
    }
}
