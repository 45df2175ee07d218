//! The shared HTTP side: one `reqwest` client per check, built from [`HttpOptions`] (timeout,
//! trusted roots, resolve overrides), a GET that classifies failures, and redaction.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::error::ProbeError;
use crate::secret::{REDACTED, Secret};

/// Which TLS server certificates to accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsTrust {
    /// The system's roots (public CAs such as Let's Encrypt).
    #[default]
    System,
    /// The system's roots plus the root(s) of this PEM file, e.g. Caddy's internal CA
    /// (`/data/caddy/pki/authorities/local/root.crt` in the Caddy container).
    ExtraRootPem(PathBuf),
    /// INSECURE: accept any certificate for any name. Only for a first look at a test site.
    InsecureSkipVerify,
}

/// How HTTP checks connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time limit of one request, connect included.
    pub timeout: Duration,
    pub tls: TlsTrust,
    /// Host names answered from here instead of DNS (domain -> IP). Also used by UDP checks.
    /// The port always comes from the URL.
    pub resolve: BTreeMap<String, IpAddr>,
}

impl Default for HttpOptions {
    /// 5 s per request, system roots, no resolve overrides.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            tls: TlsTrust::System,
            resolve: BTreeMap::new(),
        }
    }
}

/// Replaces every occurrence of the secret (raw and percent-encoded) in `text` with
/// [`REDACTED`].
pub fn redact(text: &str, secret: Option<&Secret>) -> String {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return text.to_string();
    };
    let raw = secret.expose();
    let encoded = percent_encode(raw.as_bytes());
    let mut out = text.replace(raw, REDACTED);
    if encoded != raw {
        out = out.replace(&encoded, REDACTED);
    }
    out
}

/// Percent-encodes every byte but the RFC 3986 unreserved ones (`A-Z a-z 0-9 - . _ ~`), as
/// trackers expect for the binary `info_hash` and `peer_id`.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base` with `path` appended to its path (keeping any prefix such as `/tracker`), no query.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The URL as shown in results and errors: no user info, and the given query keys redacted.
pub fn display_url(url: &Url, secret_keys: &[&str]) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    if url.query().is_some() && !secret_keys.is_empty() {
        let pairs: Vec<String> = url
            .query()
            .unwrap_or_default()
            .split('&')
            .map(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                if secret_keys.contains(&key) {
                    format!("{key}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        shown.set_query(Some(&pairs.join("&")));
    }
    // The redaction marker's brackets are left as they are, for readability.
    shown.to_string().replace("%5BREDACTED%5D", REDACTED)
}

/// Builds the client for requests to `url`.
pub(crate) fn client(
    url: &Url,
    opts: &HttpOptions,
    shown: &str,
) -> Result<reqwest::Client, ProbeError> {
    let setup = |detail: String| ProbeError::Setup {
        target: shown.to_string(),
        detail,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "torrust-tracker-deployer/",
            env!("CARGO_PKG_VERSION")
        ));
    for (host, ip) in &opts.resolve {
        // Port 0: the port of the URL is used.
        builder = builder.resolve(host, SocketAddr::new(*ip, 0));
    }
    if url.scheme() == "https" {
        match &opts.tls {
            TlsTrust::System => {}
            TlsTrust::ExtraRootPem(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    setup(format!(
                        "cannot read the CA certificate {}: {e}",
                        path.display()
                    ))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    setup(format!("{} is not a PEM certificate: {e}", path.display()))
                })?;
                if certs.is_empty() {
                    return Err(setup(format!(
                        "{} holds no PEM certificate",
                        path.display()
                    )));
                }
                builder = builder.tls_certs_merge(certs);
            }
            TlsTrust::InsecureSkipVerify => {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
    } else {
        // Plain HTTP: no certificate store is needed (and none is loaded).
        builder = builder.tls_certs_only(Vec::new());
    }
    builder
        .build()
        .map_err(|e| setup(format!("HTTP client: {}", chain(&e.without_url()))))
}

/// An HTTP answer read whole.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, cut to `max` characters, for error messages.
    pub fn snippet(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.chars().count() > max {
            format!("{}...", text.chars().take(max).collect::<String>())
        } else {
            text.to_string()
        }
    }
}

/// Largest body read (tracker answers are small; this bounds a misbehaving server).
const MAX_BODY: usize = 1 << 20;

/// GETs `url` and reads the body, any status. `shown` is the redacted URL; `secret`, if any, is
/// scrubbed from every message.
pub(crate) async fn get(
    what: &'static str,
    url: &Url,
    shown: &str,
    opts: &HttpOptions,
    secret: Option<&Secret>,
) -> Result<Answer, ProbeError> {
    let client = client(url, opts, shown)?;
    let classify = |e: reqwest::Error| classify(what, url, shown, opts, e, secret);
    let mut response = client.get(url.clone()).send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ProbeError::BadResponse {
                what,
                target: shown.to_string(),
                detail: format!("the body is larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}

/// The error and all its sources, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

fn classify(
    what: &'static str,
    url: &Url,
    shown: &str,
    opts: &HttpOptions,
    e: reqwest::Error,
    secret: Option<&Secret>,
) -> ProbeError {
    let target = shown.to_string();
    let is_timeout = e.is_timeout();
    let kind = io_kind(&e);
    // Never let the URL (with its query) into a message; scrub the secret anyway.
    let detail = redact(&chain(&e.without_url()), secret);
    let lower = detail.to_ascii_lowercase();
    if is_timeout || kind == Some(std::io::ErrorKind::TimedOut) {
        return ProbeError::Timeout {
            what,
            target,
            proto: "TCP",
            within: opts.timeout,
        };
    }
    if kind == Some(std::io::ErrorKind::ConnectionRefused) {
        return ProbeError::Refused {
            what,
            target,
            proto: "TCP",
        };
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return ProbeError::Resolve {
            host: url.host_str().unwrap_or_default().to_string(),
            target,
            detail,
        };
    }
    if url.scheme() == "https"
        && (lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake"))
    {
        return ProbeError::Tls { target, detail };
    }
    ProbeError::Network {
        what,
        target,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_binary() {
        assert_eq!(percent_encode(b"aZ9-._~"), "aZ9-._~");
        assert_eq!(
            percent_encode(&[0x00, 0xFF, b' ', b'%', b'&']),
            "%00%FF%20%25%26"
        );
        assert_eq!(
            percent_encode(
                b"\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"
            ),
            "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
        );
    }

    #[test]
    fn joins_paths() {
        let base = Url::parse("http://h:7070").unwrap();
        assert_eq!(join(&base, "announce").as_str(), "http://h:7070/announce");
        let base = Url::parse("https://h/tracker/?x=1").unwrap();
        assert_eq!(join(&base, "/scrape").as_str(), "https://h/tracker/scrape");
        let base = Url::parse("http://h:1212/").unwrap();
        assert_eq!(
            join(&base, "api/v1/stats").as_str(),
            "http://h:1212/api/v1/stats"
        );
    }

    #[test]
    fn display_url_redacts_token_and_user_info() {
        let url = Url::parse("http://u:p@h:1212/api/v1/stats?token=S3cr%21t&x=1").unwrap();
        assert_eq!(
            display_url(&url, &["token"]),
            "http://h:1212/api/v1/stats?token=[REDACTED]&x=1"
        );
    }

    #[test]
    fn redact_scrubs_raw_and_encoded() {
        let s = Secret::new("a b/c");
        assert_eq!(
            redact("x a b/c y a%20b%2Fc z", Some(&s)),
            "x [REDACTED] y [REDACTED] z"
        );
        assert_eq!(redact("x", None), "x");
        assert_eq!(redact("x", Some(&Secret::new(""))), "x");
    }
}
