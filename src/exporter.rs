//! The statistics exporter (`stats-exporter`): serves the tracker API's JSON statistics in the
//! Prometheus text format, for trackers (3.0.0) whose API speaks JSON only.
//!
//! On each `GET /metrics` it reads `/api/v1/stats` of the tracker API (the admin token from a
//! file or an environment variable, never from the command line, never logged) and writes one
//! sample per numeric top-level field, named exactly as the field (`torrents`,
//! `udp4_announces_handled`, ...): the names the tracker's own Prometheus format uses, so one
//! dashboard works against both. Beside them, `torrust_stats_exporter_api_up` is 1 when the
//! API answered with statistics and 0 otherwise, so a broken API is data, not a blank graph.
//! `GET /healthz` answers `ok` (the container's health check, `--healthcheck`, asks it).
//!
//! See docs/decisions/0030-stats-exporter.md.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::secret::Secret;

/// The environment variable that holds the admin token (inside the exporter's container).
pub const TOKEN_ENV: &str = "TORRUST_STATS_EXPORTER_TOKEN";
/// The exporter's port.
pub const PORT: u16 = 9101;
/// The metric that says whether the last read of the API gave statistics.
pub const API_UP: &str = "torrust_stats_exporter_api_up";
/// How long one read of the API may take.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error(
        "no API token: set {TOKEN_ENV} or pass --token-file FILE (a file holding the tracker \
         API's admin token)"
    )]
    NoToken,
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API URL {url:?} is not an http(s) URL: {detail}")]
    BadApiUrl { url: String, detail: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the health check of {url} failed: {detail}")]
    Unhealthy { url: String, detail: String },
}

impl crate::error_kind::Classify for ExporterError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            ExporterError::NoToken | ExporterError::BadApiUrl { .. } => ErrorKind::Usage,
            ExporterError::TokenFile { .. } | ExporterError::Listen { .. } => ErrorKind::Io,
            ExporterError::Unhealthy { .. } => ErrorKind::Failed,
        }
    }
}

/// What the exporter reads and where it listens.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub listen: SocketAddr,
    /// The API's base URL, e.g. `http://tracker:1212`.
    pub api: reqwest::Url,
    pub token: Secret,
}

/// The token: from `token_file` (trimmed), else from [`TOKEN_ENV`].
pub fn read_token(token_file: Option<&std::path::Path>) -> Result<Secret, ExporterError> {
    let token = match token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| ExporterError::TokenFile {
                path: path.display().to_string(),
                source,
            })?
            .trim()
            .to_string(),
        None => std::env::var(TOKEN_ENV).unwrap_or_default(),
    };
    if token.is_empty() {
        return Err(ExporterError::NoToken);
    }
    Ok(Secret::new(token))
}

/// Parses the API's base URL.
pub fn api_url(text: &str) -> Result<reqwest::Url, ExporterError> {
    let url = reqwest::Url::parse(text).map_err(|e| ExporterError::BadApiUrl {
        url: text.to_string(),
        detail: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ExporterError::BadApiUrl {
            url: text.to_string(),
            detail: "expected http://HOST:PORT".into(),
        });
    }
    Ok(url)
}

/// The statistics URL with the token (never shown) and the same URL for messages.
fn stats_url(api: &reqwest::Url, token: &Secret) -> (reqwest::Url, String) {
    let mut url = api.clone();
    url.set_path("/api/v1/stats");
    let shown = url.to_string();
    url.query_pairs_mut().append_pair("token", token.expose());
    (url, shown)
}

/// Whether a field counts events (only grows): `*_handled`, `*_requests`, `*_responses`,
/// `*_aborted`, `*_banned`. Everything else (torrents, peers, averages) is a gauge.
fn is_counter(name: &str) -> bool {
    ["_handled", "_requests", "_responses", "_aborted", "_banned"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A valid Prometheus metric name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The Prometheus text of one reading: every numeric top-level field of `stats` (an object),
/// then the exporter's own metrics. `stats`: `Err` with why the API gave none.
pub fn render(stats: Result<&Value, &str>, took: Duration) -> String {
    let mut out = String::new();
    let fields = match stats {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    if let Some(map) = fields {
        for (name, value) in map {
            let sample = if let Some(n) = value.as_u64() {
                n.to_string()
            } else if let Some(n) = value.as_i64() {
                n.to_string()
            } else if let Some(n) = value.as_f64() {
                n.to_string()
            } else {
                continue;
            };
            if !valid_name(name) {
                continue;
            }
            let kind = if is_counter(name) { "counter" } else { "gauge" };
            let _ = writeln!(
                out,
                "# HELP {name} The tracker API statistic `{name}` (/api/v1/stats)."
            );
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {sample}");
        }
    }
    let up = u8::from(fields.is_some());
    let _ = writeln!(
        out,
        "# HELP {API_UP} 1 if the last read of the tracker API gave statistics, else 0."
    );
    let _ = writeln!(out, "# TYPE {API_UP} gauge");
    let _ = writeln!(out, "{API_UP} {up}");
    let _ = writeln!(
        out,
        "# HELP torrust_stats_exporter_api_duration_seconds How long the last read of the \
         tracker API took."
    );
    let _ = writeln!(
        out,
        "# TYPE torrust_stats_exporter_api_duration_seconds gauge"
    );
    let _ = writeln!(
        out,
        "torrust_stats_exporter_api_duration_seconds {:.6}",
        took.as_secs_f64()
    );
    out
}

/// Reads the statistics once: the JSON object, or why there is none (for the log).
async fn read_stats(client: &reqwest::Client, config: &ExporterConfig) -> Result<Value, String> {
    let (url, shown) = stats_url(&config.api, &config.token);
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {shown}: {}", e.without_url()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {shown}: {}", e.without_url()))?;
    if !status.is_success() {
        return Err(format!("GET {shown}: HTTP {status}"));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(format!(
            "GET {shown}: the answer is not a JSON object of statistics (an API that does not \
             serve JSON statistics cannot be exported)"
        )),
    }
}

async fn metrics(client: &reqwest::Client, config: &ExporterConfig) -> String {
    let started = Instant::now();
    let stats = read_stats(client, config).await;
    if let Err(why) = &stats {
        tracing::warn!("{why}");
    }
    render(stats.as_ref().map_err(String::as_str), started.elapsed())
}

fn text_response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response is valid")
}

async fn handle(
    req: Request<Incoming>,
    client: reqwest::Client,
    config: std::sync::Arc<ExporterConfig>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => text_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(&client, &config).await,
        ),
        (&hyper::Method::GET, "/healthz") => {
            text_response(StatusCode::OK, "text/plain", "ok\n".into())
        }
        (&hyper::Method::GET, _) => text_response(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: GET /metrics or /healthz\n".into(),
        ),
        _ => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
    };
    Ok(response)
}

/// Binds `config.listen`; [`serve`] then answers on it.
pub async fn bind(config: &ExporterConfig) -> Result<tokio::net::TcpListener, ExporterError> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ExporterError::Listen {
            addr: config.listen,
            source,
        })
}

/// Answers on `listener` until the process ends. One connection's failure is logged and ends
/// that connection only.
pub async fn serve(listener: tokio::net::TcpListener, config: ExporterConfig) {
    let client = reqwest::Client::builder()
        .timeout(API_TIMEOUT)
        .build()
        .expect("the HTTP client builds");
    let config = std::sync::Arc::new(config);
    tracing::info!(
        "stats-exporter: listening on {}, reading {}",
        listener.local_addr().map_or(config.listen, |a| a),
        stats_url(&config.api, &config.token).1
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let client = client.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, client.clone(), config.clone()));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// The container's health check: `GET /healthz` on the local port of `listen` answers 200.
pub async fn healthcheck(listen: SocketAddr) -> Result<(), ExporterError> {
    let ip = if listen.ip().is_unspecified() {
        match listen {
            SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        listen.ip()
    };
    let url = format!("http://{}/healthz", SocketAddr::new(ip, listen.port()));
    let unhealthy = |detail: String| ExporterError::Unhealthy {
        url: url.clone(),
        detail,
    };
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("the HTTP client builds")
        .get(&url)
        .send()
        .await
        .map_err(|e| unhealthy(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(unhealthy(format!("HTTP {}", response.status())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_numeric_field_becomes_a_sample_named_as_the_field() {
        let stats = json!({
            "torrents": 3, "seeders": 1, "completed": 0, "leechers": 2,
            "udp4_announces_handled": 7, "udp_avg_connect_processing_time_ns": 1234.5,
            "name": "not a number", "nested": {"x": 1}, "bad-name": 1,
        });
        let text = render(Ok(&stats), Duration::from_millis(3));
        assert!(
            text.contains("# TYPE torrents gauge\ntorrents 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE udp4_announces_handled counter\nudp4_announces_handled 7\n"));
        assert!(text.contains("udp_avg_connect_processing_time_ns 1234.5\n"));
        assert!(text.contains("# HELP seeders "));
        assert!(!text.contains("name "));
        assert!(!text.contains("nested"));
        assert!(!text.contains("bad-name"));
        assert!(text.contains(&format!("{API_UP} 1\n")));
    }

    #[test]
    fn no_statistics_is_api_up_0_and_nothing_else_of_the_tracker() {
        let text = render(Err("HTTP 500"), Duration::ZERO);
        assert!(text.contains(&format!("{API_UP} 0\n")));
        assert!(!text.contains("torrents"));
        let text = render(Ok(&json!([1, 2])), Duration::ZERO);
        assert!(text.contains(&format!("{API_UP} 0\n")));
    }

    #[test]
    fn the_token_is_in_the_request_url_but_not_in_the_shown_one() {
        let api = api_url("http://tracker:1212").unwrap();
        let (url, shown) = stats_url(&api, &Secret::new("Sekret-Token".to_string()));
        assert_eq!(
            url.as_str(),
            "http://tracker:1212/api/v1/stats?token=Sekret-Token"
        );
        assert_eq!(shown, "http://tracker:1212/api/v1/stats");
        assert!(api_url("ftp://x").is_err());
        assert!(api_url("tracker:1212").is_err());
    }

    #[tokio::test]
    async fn serves_metrics_from_a_json_api_and_says_when_the_api_speaks_no_json() {
        // A stand-in API: JSON statistics on /api/v1/stats for the right token.
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = api.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = api.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let ok = req.uri().query() == Some("token=T0ken");
                        let (status, body) = if ok {
                            (StatusCode::OK, r#"{"torrents":2,"udp4_scrapes_handled":5}"#)
                        } else {
                            (StatusCode::INTERNAL_SERVER_ERROR, "Unhandled rejection")
                        };
                        Ok::<_, Infallible>(text_response(status, "application/json", body.into()))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let start = |token: &str| {
            let config = ExporterConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                api: api_url(&format!("http://{api_addr}")).unwrap(),
                token: Secret::new(token.to_string()),
            };
            async move {
                let listener = bind(&config).await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(serve(listener, config));
                addr
            }
        };
        let good = start("T0ken").await;
        let body = reqwest::get(format!("http://{good}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("torrents 2\n"), "{body}");
        assert!(body.contains("udp4_scrapes_handled 5\n"));
        assert!(body.contains(&format!("{API_UP} 1\n")));
        healthcheck(good).await.unwrap();
        let missing = reqwest::get(format!("http://{good}/other")).await.unwrap();
        assert_eq!(missing.status(), 404);

        let bad = start("wrong").await;
        let body = reqwest::get(format!("http://{bad}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains(&format!("{API_UP} 0\n")), "{body}");
        assert!(!body.contains("torrents"));
    }
}
