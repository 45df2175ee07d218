//! [`ProbeError`]: every way a protocol check fails, each saying what failed and the likely why.
//!
//! No variant ever holds a secret: targets are built redacted (see [`super::http`]) and every
//! message taken from a library error goes through [`super::http::redact`] first.

use std::time::Duration;

fn secs(d: &Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// A failed check. `target` is always the redacted target (URL or `host:port`).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time (UDP: after every retransmission; HTTP: the request timeout).
    #[error(
        "{what} to {target}: no answer within {within}. The port is probably not published or \
         forwarded to the tracker, a firewall drops the traffic, or the service is not running. \
         Fix: check that the service runs, that the port is published (docker-compose `ports`), \
         and that every firewall on the way lets {proto} traffic from this machine reach that \
         port.",
        within = secs(within)
    )]
    Timeout {
        what: &'static str,
        target: String,
        proto: &'static str,
        within: Duration,
    },

    /// Connection refused (TCP RST, or ICMP port unreachable for UDP).
    #[error(
        "{what} to {target}: connection refused ({proto}). Nothing listens on that port: the \
         service is not running, its section is missing from the tracker configuration, or the \
         port is wrong. Fix: check the tracker's configuration and logs, and the port in the URL."
    )]
    Refused {
        what: &'static str,
        target: String,
        proto: &'static str,
    },

    /// No route, network down, connection reset, and other transport failures.
    #[error(
        "{what} to {target} failed: {detail}. Fix: check the address and this machine's network."
    )]
    Network {
        what: &'static str,
        target: String,
        detail: String,
    },

    /// The host name does not resolve.
    #[error(
        "cannot resolve {host:?} (for {target}): {detail}. Fix: check the DNS records of the \
         domain, or give its IP address explicitly (resolve override)."
    )]
    Resolve {
        host: String,
        target: String,
        detail: String,
    },

    /// The TLS handshake failed (usually an untrusted certificate).
    #[error(
        "TLS with {target} failed: {detail}. If the site uses Caddy's internal CA (or another \
         private CA), trust its root certificate (PEM) explicitly, or skip verification with the \
         explicitly insecure option; check also that the domain resolves to the right address."
    )]
    Tls { target: String, detail: String },

    /// The admin token was refused by the tracker API.
    #[error(
        "the tracker API at {target} rejected the admin token ({detail}). Fix: use the token of \
         `[http_api.access_tokens]` in the tracker configuration (the environment's admin token)."
    )]
    AuthRejected { target: String, detail: String },

    /// An HTTP status other than the expected one.
    #[error("{what} to {target}: HTTP status {status}{body}", body = body_suffix(body))]
    HttpStatus {
        what: &'static str,
        target: String,
        status: u16,
        body: String,
    },

    /// The answer came, but is not what the protocol says.
    #[error(
        "{what} to {target}: unexpected response: {detail}. Something other than the expected \
         service may listen on that port, or a proxy answers in its place."
    )]
    BadResponse {
        what: &'static str,
        target: String,
        detail: String,
    },

    /// The tracker answered with an error (BEP 15 action 3, or BEP 3 `failure reason`).
    #[error("the tracker at {target} refused the {what}: {reason:?}")]
    TrackerFailure {
        what: &'static str,
        target: String,
        reason: String,
    },

    /// The health check reports failing services.
    #[error("the health check at {target} reports a failure: {detail}")]
    Unhealthy { target: String, detail: String },

    /// The check could not even be set up (bad URL, unreadable CA certificate, local socket).
    #[error("cannot set up the check of {target}: {detail}")]
    Setup { target: String, detail: String },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl crate::error_kind::Classify for ProbeError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            ProbeError::Timeout { .. }
            | ProbeError::Refused { .. }
            | ProbeError::Network { .. }
            | ProbeError::Resolve { .. } => ErrorKind::TrackerUnreachable,
            ProbeError::Tls { .. } => ErrorKind::TrackerTlsFailed,
            ProbeError::AuthRejected { .. } => ErrorKind::TrackerAuthFailed,
            ProbeError::HttpStatus { .. }
            | ProbeError::BadResponse { .. }
            | ProbeError::TrackerFailure { .. }
            | ProbeError::Unhealthy { .. } => ErrorKind::TrackerFailed,
            // A bad URL or an unreadable CA certificate on this side.
            ProbeError::Setup { .. } => ErrorKind::Failed,
        }
    }
}

impl ProbeError {
    /// A stable machine-readable kind, for JSON output and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Refused { .. } => "refused",
            Self::Network { .. } => "network",
            Self::Resolve { .. } => "resolve",
            Self::Tls { .. } => "tls",
            Self::AuthRejected { .. } => "auth_rejected",
            Self::HttpStatus { .. } => "http_status",
            Self::BadResponse { .. } => "bad_response",
            Self::TrackerFailure { .. } => "tracker_failure",
            Self::Unhealthy { .. } => "unhealthy",
            Self::Setup { .. } => "setup",
        }
    }

    /// True for the failures that mean "could not reach the service" (timeout, refused, network,
    /// resolve), as opposed to "reached it, and it answered wrong".
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Refused { .. }
                | Self::Network { .. }
                | Self::Resolve { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_why() {
        let e = ProbeError::Timeout {
            what: "UDP connect",
            target: "udp://127.0.0.1:6969".into(),
            proto: "UDP",
            within: Duration::from_secs(6),
        };
        let m = e.to_string();
        assert!(m.contains("UDP connect to udp://127.0.0.1:6969"), "{m}");
        assert!(m.contains("6.0s"), "{m}");
        assert!(m.contains("firewall"), "{m}");
        assert_eq!(e.kind(), "timeout");
        assert!(e.is_unreachable());

        let e = ProbeError::HttpStatus {
            what: "GET",
            target: "http://x/".into(),
            status: 404,
            body: String::new(),
        };
        assert_eq!(e.to_string(), "GET to http://x/: HTTP status 404");
        assert!(!e.is_unreachable());
    }
}
