//! Checks of the monitoring services, through a local forward to the host (the services are
//! not published; see [`crate::host::tunnel::while_forwarding`]):
//! - Prometheus's targets API: every active target `up`;
//! - Grafana's HTTP API, logged in as the admin: the provisioned data source and dashboard;
//! - a PromQL query (for `status`, tests and the dashboard's expressions).

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::ProbeError;
use super::http::{self, HttpOptions, join};
use crate::secret::Secret;

/// One scrape target as Prometheus reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetHealth {
    pub job: String,
    pub url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// Prometheus's last scrape error, empty when none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// Prometheus's health of a target it has not scraped yet.
const UNKNOWN: &str = "unknown";

impl TargetHealth {
    pub fn is_up(&self) -> bool {
        self.health == "up"
    }
}

impl std::fmt::Display for TargetHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.job, self.url, self.health)?;
        if !self.last_error.is_empty() {
            write!(f, " ({})", self.last_error)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active: Vec<ActiveTarget>,
}

#[derive(Deserialize)]
struct ActiveTarget {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "scrapeUrl", default)]
    scrape_url: String,
    #[serde(default)]
    health: String,
    #[serde(rename = "lastError", default)]
    last_error: String,
}

/// GET `url` (any status), and the JSON envelope of Prometheus's API.
async fn prometheus_get<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    url: &Url,
    shown: &str,
    opts: &HttpOptions,
) -> Result<T, ProbeError> {
    let answer = http::get(what, url, shown, opts, None).await?;
    let envelope: Envelope<T> =
        serde_json::from_slice(&answer.body).map_err(|e| ProbeError::BadResponse {
            what,
            target: shown.to_string(),
            detail: format!(
                "not Prometheus's API ({e}), HTTP {}: {:?}",
                answer.status,
                answer.snippet(200)
            ),
        })?;
    match envelope.data {
        Some(data) if envelope.status == "success" => Ok(data),
        _ => Err(ProbeError::BadResponse {
            what,
            target: shown.to_string(),
            detail: format!(
                "Prometheus answered {}: {}",
                envelope.status, envelope.error
            ),
        }),
    }
}

/// Prometheus's active targets (`GET {base}/api/v1/targets?state=active`).
pub async fn prometheus_targets(
    base: &Url,
    shown: &str,
    opts: &HttpOptions,
) -> Result<Vec<TargetHealth>, ProbeError> {
    let mut url = join(base, "api/v1/targets");
    url.set_query(Some("state=active"));
    let data: TargetsData = prometheus_get("Prometheus targets", &url, shown, opts).await?;
    Ok(data
        .active
        .into_iter()
        .map(|t| TargetHealth {
            job: t.labels.get("job").cloned().unwrap_or_default(),
            url: t.scrape_url,
            health: t.health,
            last_error: t.last_error,
        })
        .collect())
}

/// What is wrong with the targets (none, one not up, the exporter without statistics), or
/// `None` when every target is up and the exporter reads the API.
async fn targets_problem(
    base: &Url,
    shown: &str,
    opts: &HttpOptions,
) -> Result<(Vec<TargetHealth>, Option<ProbeError>), ProbeError> {
    let targets = prometheus_targets(base, shown, opts).await?;
    if targets.is_empty() {
        let e = ProbeError::BadResponse {
            what: "Prometheus targets",
            target: shown.to_string(),
            detail: "Prometheus has no scrape target: its configuration is not the deployer's"
                .into(),
        };
        return Ok((targets, Some(e)));
    }
    let down: Vec<String> = targets
        .iter()
        .filter(|t| !t.is_up())
        .map(ToString::to_string)
        .collect();
    if !down.is_empty() {
        let e = ProbeError::Unhealthy {
            target: shown.to_string(),
            detail: format!(
                "Prometheus collects nothing from {}: look at `status` and at the logs of \
                 `stats-exporter` and `tracker`",
                down.join("; ")
            ),
        };
        return Ok((targets, Some(e)));
    }
    let api = crate::exporter::API_UP;
    let failing = prometheus_query(base, shown, &format!("{api} == 0"), opts).await?;
    if failing > 0 {
        let e = ProbeError::Unhealthy {
            target: shown.to_string(),
            detail: format!(
                "the exporter answers but cannot read the tracker API's statistics ({api} is \
                 0): look at the logs of `stats-exporter` (a tracker image whose API serves no \
                 JSON statistics cannot be scraped)"
            ),
        };
        return Ok((targets, Some(e)));
    }
    Ok((targets, None))
}

/// The check: there are targets, every one is up, and the exporter reads the tracker API.
/// Right after a start Prometheus may not have scraped yet: it asks again until `settle` has
/// passed before calling a target down.
pub async fn prometheus_targets_up(
    base: &Url,
    shown: &str,
    settle: std::time::Duration,
    opts: &HttpOptions,
) -> Result<Vec<TargetHealth>, ProbeError> {
    let deadline = std::time::Instant::now() + settle;
    loop {
        let (targets, problem) = targets_problem(base, shown, opts).await?;
        match problem {
            None => return Ok(targets),
            Some(e) if std::time::Instant::now() >= deadline => return Err(e),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}

/// How long `status` waits for a Prometheus that has just started: it loads its targets from
/// its service discovery, which hands them over in batches every 5 s.
const DISCOVERY: std::time::Duration = std::time::Duration::from_secs(6);

/// The targets and, when something is wrong, what (for `status`). A Prometheus that has just
/// started is given [`DISCOVERY`] to list its targets; a target it has not scraped yet
/// (`unknown`) is not a problem: it is shown as it is.
pub async fn prometheus_targets_now(
    base: &Url,
    shown: &str,
    opts: &HttpOptions,
) -> Result<(Vec<TargetHealth>, Option<String>), ProbeError> {
    let deadline = std::time::Instant::now() + DISCOVERY;
    loop {
        let (targets, problem) = targets_problem(base, shown, opts).await?;
        let listing = targets.is_empty() && std::time::Instant::now() < deadline;
        if listing {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        let not_scraped_yet = targets.iter().any(|t| t.health == UNKNOWN)
            && targets.iter().all(|t| t.is_up() || t.health == UNKNOWN);
        let problem = if not_scraped_yet { None } else { problem };
        return Ok((targets, problem.map(|e| e.to_string())));
    }
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(default)]
    result: Vec<serde_json::Value>,
}

/// The number of series an instant PromQL query returns (`GET {base}/api/v1/query`).
pub async fn prometheus_query(
    base: &Url,
    shown: &str,
    expr: &str,
    opts: &HttpOptions,
) -> Result<usize, ProbeError> {
    let mut url = join(base, "api/v1/query");
    url.query_pairs_mut().append_pair("query", expr);
    let data: QueryData = prometheus_get("Prometheus query", &url, shown, opts).await?;
    Ok(data.result.len())
}

/// Grafana's admin login, and what must be provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrafanaLogin {
    pub user: String,
    pub password: Secret,
    pub datasource_uid: String,
    pub dashboard_uid: String,
}

/// GET `url` with the admin's basic authentication: the JSON of a 200 answer.
async fn grafana_get(
    what: &'static str,
    url: &Url,
    shown: &str,
    login: &GrafanaLogin,
    opts: &HttpOptions,
) -> Result<serde_json::Value, ProbeError> {
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .build()
        .map_err(|e| ProbeError::Setup {
            target: shown.to_string(),
            detail: e.to_string(),
        })?;
    let network = |e: reqwest::Error| ProbeError::Network {
        what,
        target: shown.to_string(),
        detail: http::redact(&e.without_url().to_string(), Some(&login.password)),
    };
    let response = client
        .get(url.clone())
        .basic_auth(&login.user, Some(login.password.expose()))
        .send()
        .await
        .map_err(network)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(network)?;
    let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    if matches!(status, 401 | 403) {
        return Err(ProbeError::AuthRejected {
            target: shown.to_string(),
            detail: format!(
                "Grafana refused the admin login (HTTP {status}); `release` sets the password of \
                 the environment file"
            ),
        });
    }
    if status != 200 {
        return Err(ProbeError::HttpStatus {
            what,
            target: shown.to_string(),
            status,
            body: http::redact(&snippet, Some(&login.password)),
        });
    }
    serde_json::from_slice(&body).map_err(|e| ProbeError::BadResponse {
        what,
        target: shown.to_string(),
        detail: format!("not Grafana's API ({e}): {snippet:?}"),
    })
}

/// The check: Grafana's API, logged in as the admin, has the provisioned Prometheus data
/// source (`/api/datasources/uid/{uid}`) and our dashboard (`/api/search`).
pub async fn grafana_provisioned(
    base: &Url,
    shown: &str,
    login: &GrafanaLogin,
    opts: &HttpOptions,
) -> Result<String, ProbeError> {
    let what = "Grafana API";
    let url = join(
        base,
        &format!("api/datasources/uid/{}", login.datasource_uid),
    );
    let ds = grafana_get(what, &url, shown, login, opts).await?;
    if ds["type"] != "prometheus" {
        return Err(ProbeError::BadResponse {
            what,
            target: shown.to_string(),
            detail: format!(
                "the data source {} is of type {}, not prometheus",
                login.datasource_uid, ds["type"]
            ),
        });
    }
    let mut url = join(base, "api/search");
    url.set_query(Some("type=dash-db"));
    let found = grafana_get(what, &url, shown, login, opts).await?;
    let titles: Vec<&str> = found
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["uid"] == login.dashboard_uid.as_str())
        .filter_map(|d| d["title"].as_str())
        .collect();
    if titles.is_empty() {
        return Err(ProbeError::BadResponse {
            what,
            target: shown.to_string(),
            detail: format!(
                "no dashboard with uid {} is provisioned (look at Grafana's log)",
                login.dashboard_uid
            ),
        });
    }
    Ok(format!(
        "data source {} (prometheus) and dashboard {:?} provisioned",
        login.datasource_uid, titles[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn targets(health: &[&str]) -> String {
        let active: Vec<String> = health
            .iter()
            .map(|h| {
                format!(
                    r#"{{"labels":{{"job":"tracker_stats"}},"scrapeUrl":"http://stats-exporter:9101/metrics","health":"{h}","lastError":""}}"#
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"activeTargets":[{}]}}}}"#,
            active.join(",")
        )
    }

    /// A Prometheus API that answers the targets requests with `answers` in turn (the last one
    /// again), and every query with `query`.
    async fn prometheus(answers: Vec<String>, query: &'static str) -> (Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if request.starts_with("GET /api/v1/targets") {
                    let i = count.fetch_add(1, Ordering::SeqCst);
                    answers[i.min(answers.len() - 1)].clone()
                } else {
                    query.to_string()
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (base, asked)
    }

    const NO_SERIES: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    const ONE_SERIES: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"0"]}]}}"#;

    #[tokio::test]
    async fn status_waits_for_a_fresh_prometheus_to_list_its_targets() {
        let (base, asked) = prometheus(vec![targets(&[]), targets(&["up"])], NO_SERIES).await;
        let (found, problem) = prometheus_targets_now(&base, "p", &HttpOptions::default())
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(problem, None);
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_target_not_scraped_yet_is_no_problem_but_a_down_one_is() {
        let (base, _) = prometheus(vec![targets(&["unknown"])], NO_SERIES).await;
        let (found, problem) = prometheus_targets_now(&base, "p", &HttpOptions::default())
            .await
            .unwrap();
        assert_eq!(found[0].health, "unknown");
        assert_eq!(problem, None);

        let (base, _) = prometheus(vec![targets(&["unknown", "down"])], NO_SERIES).await;
        let (_, problem) = prometheus_targets_now(&base, "p", &HttpOptions::default())
            .await
            .unwrap();
        assert!(problem.unwrap().contains("collects nothing"));
    }

    #[tokio::test]
    async fn an_exporter_without_statistics_is_a_problem_even_when_up() {
        let (base, _) = prometheus(vec![targets(&["up"])], ONE_SERIES).await;
        let (_, problem) = prometheus_targets_now(&base, "p", &HttpOptions::default())
            .await
            .unwrap();
        assert!(problem.unwrap().contains("cannot read the tracker API"));
    }
}
