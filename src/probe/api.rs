//! The tracker's REST API (`/api/health_check`, `/api/v1/stats`), the health check API
//! (`/health_check`) and the HTTP tracker's own `/health_check`.
//!
//! Shapes checked against torrust-tracker 3.0.0: the stats resource
//! (`servers/apis/v1/context/stats/resources.rs`), the health check report
//! (`servers/health_check_api/resources.rs`, `status` is `"Ok"`, `"Error"` or `"None"`, each
//! detail's `result` is `{"Ok": ..}` or `{"Err": ..}`), and the API's answer to a bad token
//! (status 500, body `Unhandled rejection: Err { reason: "token not valid" }`).

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::error::ProbeError;
use super::http::{self, HttpOptions, display_url, join};
use crate::secret::Secret;

/// The tracker statistics of `GET /api/v1/stats`.
///
/// The torrent and IPv4 counters are required (an answer without them is not this API); the
/// IPv6 and connection counters default to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct TrackerStats {
    /// Torrents the tracker knows.
    pub torrents: u64,
    /// Seeders of all torrents.
    pub seeders: u64,
    /// Completed downloads of all torrents.
    pub completed: u64,
    /// Leechers of all torrents.
    pub leechers: u64,
    #[serde(default)]
    pub tcp4_connections_handled: u64,
    pub tcp4_announces_handled: u64,
    pub tcp4_scrapes_handled: u64,
    #[serde(default)]
    pub tcp6_connections_handled: u64,
    #[serde(default)]
    pub tcp6_announces_handled: u64,
    #[serde(default)]
    pub tcp6_scrapes_handled: u64,
    #[serde(default)]
    pub udp4_connections_handled: u64,
    pub udp4_announces_handled: u64,
    pub udp4_scrapes_handled: u64,
    #[serde(default)]
    pub udp6_connections_handled: u64,
    #[serde(default)]
    pub udp6_announces_handled: u64,
    #[serde(default)]
    pub udp6_scrapes_handled: u64,
}

impl TrackerStats {
    /// HTTP tracker announces over IPv4 and IPv6.
    pub fn http_announces(&self) -> u64 {
        self.tcp4_announces_handled + self.tcp6_announces_handled
    }

    /// UDP tracker announces over IPv4 and IPv6.
    pub fn udp_announces(&self) -> u64 {
        self.udp4_announces_handled + self.udp6_announces_handled
    }
}

/// The overall status of a health report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum HealthStatus {
    Ok,
    Error,
    /// No service is registered.
    None,
}

/// One service of the health check API's report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ServiceHealth {
    /// The address the service is bound to (inside the tracker's network namespace).
    pub binding: String,
    /// What the check was, e.g.
    /// `checking api health check at: http://127.0.0.1:1212/api/health_check`.
    pub info: String,
    pub result: Result<String, String>,
}

/// The health check API's report (`GET /health_check` on its own port, 1313 by default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Vec<ServiceHealth>,
}

/// The `{"status": "Ok"}` answer of `/api/health_check` and the HTTP tracker's `/health_check`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct SimpleStatus {
    status: HealthStatus,
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    shown: &str,
    body: &[u8],
) -> Result<T, ProbeError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.chars().take(200).collect();
        ProbeError::BadResponse {
            what,
            target: shown.to_string(),
            detail: format!("not the expected JSON ({e}): {snippet:?}"),
        }
    })
}

/// `GET url` that must answer HTTP 200 with JSON of type `T`; returns it and the URL as shown.
async fn get_ok_json<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    url: &Url,
    opts: &HttpOptions,
) -> Result<(T, String), ProbeError> {
    let shown = display_url(url, &[]);
    let answer = http::get(what, url, &shown, opts, None).await?;
    if answer.status != 200 {
        return Err(ProbeError::HttpStatus {
            what,
            target: shown,
            status: answer.status,
            body: answer.snippet(200),
        });
    }
    let value = parse_json(what, &shown, &answer.body)?;
    Ok((value, shown))
}

async fn get_simple_status(
    what: &'static str,
    url: Url,
    opts: &HttpOptions,
) -> Result<(), ProbeError> {
    let (status, shown): (SimpleStatus, _) = get_ok_json(what, &url, opts).await?;
    match status.status {
        HealthStatus::Ok => Ok(()),
        other => Err(ProbeError::Unhealthy {
            target: shown,
            detail: format!("status {other:?}"),
        }),
    }
}

/// `GET {base}/api/health_check` of the tracker API (e.g. base `http://host:1212`).
pub async fn api_health(base: &Url, opts: &HttpOptions) -> Result<(), ProbeError> {
    get_simple_status("API health check", join(base, "api/health_check"), opts).await
}

/// `GET {base}/health_check` of an HTTP tracker (e.g. base `http://host:7070`).
pub async fn http_tracker_health(base: &Url, opts: &HttpOptions) -> Result<(), ProbeError> {
    get_simple_status(
        "HTTP tracker health check",
        join(base, "health_check"),
        opts,
    )
    .await
}

/// `GET {base}/api/health` of Grafana: HTTP 200 with `"database": "ok"`.
pub async fn grafana_health(base: &Url, opts: &HttpOptions) -> Result<(), ProbeError> {
    #[derive(Deserialize)]
    struct GrafanaHealth {
        database: String,
    }
    let url = join(base, "api/health");
    let (health, shown): (GrafanaHealth, _) = get_ok_json("Grafana health", &url, opts).await?;
    if health.database != "ok" {
        return Err(ProbeError::Unhealthy {
            target: shown,
            detail: format!("database {:?}", health.database),
        });
    }
    Ok(())
}

/// The URL of the stats endpoint with its token, and how it is shown (token redacted).
pub fn stats_url(base: &Url, token: &Secret) -> (Url, String) {
    let mut url = join(base, "api/v1/stats");
    url.set_query(Some(&format!(
        "token={}",
        http::percent_encode(token.expose().as_bytes())
    )));
    let shown = display_url(&url, &["token"]);
    (url, shown)
}

/// `GET {base}/api/v1/stats?token=..`. The token never appears in the error.
pub async fn stats(
    base: &Url,
    token: &Secret,
    opts: &HttpOptions,
) -> Result<TrackerStats, ProbeError> {
    let what = "API stats";
    let (url, shown) = stats_url(base, token);
    let answer = http::get(what, &url, &shown, opts, Some(token)).await?;
    let body = http::redact(&answer.snippet(200), Some(token));
    if answer.status != 200 {
        let lower = body.to_ascii_lowercase();
        if matches!(answer.status, 401 | 403)
            || lower.contains("token not valid")
            || lower.contains("unauthorized")
        {
            return Err(ProbeError::AuthRejected {
                target: shown,
                detail: format!("HTTP {}: {body}", answer.status),
            });
        }
        return Err(ProbeError::HttpStatus {
            what,
            target: shown,
            status: answer.status,
            body,
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| ProbeError::BadResponse {
        what,
        target: shown,
        detail: format!("not the expected stats JSON ({e}): {body:?}"),
    })
}

/// `GET {base}/health_check` of the health check API (e.g. base `http://host:1313`).
///
/// Returns the report when its status is `Ok`; an `Error` status becomes
/// [`ProbeError::Unhealthy`] naming the failing services, and `None` (no service registered)
/// too.
pub async fn health_check(base: &Url, opts: &HttpOptions) -> Result<HealthReport, ProbeError> {
    let what = "health check";
    let url = join(base, "health_check");
    let shown = display_url(&url, &[]);
    let answer = http::get(what, &url, &shown, opts, None).await?;
    // The report is JSON whatever the status; read it first, fall back to the status.
    let report: HealthReport = match parse_json(what, &shown, &answer.body) {
        Ok(r) => r,
        Err(e) if answer.status == 200 => return Err(e),
        Err(_) => {
            return Err(ProbeError::HttpStatus {
                what,
                target: shown,
                status: answer.status,
                body: answer.snippet(200),
            });
        }
    };
    match report.status {
        HealthStatus::Ok => Ok(report),
        HealthStatus::None => Err(ProbeError::Unhealthy {
            target: shown,
            detail: "no service is registered (the tracker runs no UDP, HTTP or API service)"
                .into(),
        }),
        HealthStatus::Error => {
            let failing: Vec<String> = report
                .details
                .iter()
                .filter_map(|d| match &d.result {
                    Err(e) => Some(format!("{} ({}): {e}", d.binding, d.info)),
                    Ok(_) => None,
                })
                .collect();
            Err(ProbeError::Unhealthy {
                target: shown,
                detail: if failing.is_empty() {
                    report.message
                } else {
                    failing.join("; ")
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_stats_shape() {
        // The field set of torrust-tracker 3.0.0.
        let json = r#"{"torrents":1,"seeders":0,"completed":0,"leechers":1,
            "tcp4_connections_handled":2,"tcp4_announces_handled":1,"tcp4_scrapes_handled":1,
            "tcp6_connections_handled":0,"tcp6_announces_handled":0,"tcp6_scrapes_handled":0,
            "udp4_connections_handled":1,"udp4_announces_handled":1,"udp4_scrapes_handled":1,
            "udp6_connections_handled":0,"udp6_announces_handled":0,"udp6_scrapes_handled":0}"#;
        let s: TrackerStats = serde_json::from_str(json).unwrap();
        assert_eq!(s.torrents, 1);
        assert_eq!(s.leechers, 1);
        assert_eq!(s.http_announces(), 1);
        assert_eq!(s.udp_announces(), 1);
        assert!(serde_json::from_str::<TrackerStats>(r#"{"status":"Ok"}"#).is_err());
    }

    #[test]
    fn parses_health_report() {
        let json = r#"{"status":"Error","message":"health check failed","details":[
            {"binding":"0.0.0.0:6969","info":"checking the udp tracker health check at: 0.0.0.0:6969","result":{"Ok":"Connected"}},
            {"binding":"0.0.0.0:7070","info":"checking http tracker","result":{"Err":"timeout"}}]}"#;
        let r: HealthReport = serde_json::from_str(json).unwrap();
        assert_eq!(r.status, HealthStatus::Error);
        assert_eq!(r.details[0].result, Ok("Connected".into()));
        assert_eq!(r.details[1].result, Err("timeout".into()));
        let r: HealthReport =
            serde_json::from_str(r#"{"status":"None","message":"","details":[]}"#).unwrap();
        assert_eq!(r.status, HealthStatus::None);
    }

    #[test]
    fn stats_url_keeps_token_out_of_shown() {
        let base = Url::parse("http://127.0.0.1:1212").unwrap();
        let (url, shown) = stats_url(&base, &Secret::new("Sup3r&Secret"));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1212/api/v1/stats?token=Sup3r%26Secret"
        );
        assert_eq!(shown, "http://127.0.0.1:1212/api/v1/stats?token=[REDACTED]");
    }
}
