//! One check ([`Check`]) run into its result ([`CheckResult`]), and a list of them run
//! concurrently into a [`ProbeReport`].

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use super::monitoring::{GrafanaLogin, TargetHealth};
use super::{
    AnnounceEvent, AnnounceResponse, HealthReport, InfoHash, ProbeError, ProbeOptions, ScrapeEntry,
    ScrapeResponse, TestPeer, TrackerStats, UdpTarget, UdpTrackerClient, api, http, http_tracker,
    monitoring,
};
use crate::secret::Secret;

/// One thing to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// UDP tracker: connect, announce `peer` (event started), scrape its info hash, and expect
    /// the scrape to count the peer.
    UdpTracker { target: UdpTarget, peer: TestPeer },
    /// HTTP tracker at a base URL (`/announce` and `/scrape` are appended): announce `peer`,
    /// scrape, and expect the scrape to count the peer.
    HttpTracker { url: Url, peer: TestPeer },
    /// `GET {url}/health_check` of an HTTP tracker.
    HttpTrackerHealth { url: Url },
    /// `GET {url}/api/health_check` of the tracker API.
    ApiHealth { url: Url },
    /// `GET {url}/api/v1/stats?token=..` of the tracker API.
    ApiStats { url: Url, token: Secret },
    /// `GET {url}/health_check` of the health check API.
    HealthCheck { url: Url },
    /// `GET {url}/api/health` of Grafana (no login needed).
    GrafanaHealth { url: Url },
    /// Prometheus's targets API at `url` (a local forward; `shown` says where it leads): every
    /// target up.
    PrometheusTargets {
        url: Url,
        shown: String,
        /// How long to wait for a first scrape of every target.
        settle: Duration,
    },
    /// Grafana's API at `url` (a local forward), as the admin: the data source and dashboard
    /// provisioned.
    GrafanaApi {
        url: Url,
        shown: String,
        login: GrafanaLogin,
    },
}

impl Check {
    /// A short name: "UDP tracker", "API stats", ...
    pub fn name(&self) -> &'static str {
        match self {
            Self::UdpTracker { .. } => "UDP tracker",
            Self::HttpTracker { .. } => "HTTP tracker",
            Self::HttpTrackerHealth { .. } => "HTTP tracker health",
            Self::ApiHealth { .. } => "API health",
            Self::ApiStats { .. } => "API stats",
            Self::HealthCheck { .. } => "health check API",
            Self::GrafanaHealth { .. } => "Grafana health",
            Self::PrometheusTargets { .. } => "Prometheus targets",
            Self::GrafanaApi { .. } => "Grafana API",
        }
    }

    /// What is checked, as shown to a person: the URL (token redacted) or `udp://host:port`.
    pub fn target(&self) -> String {
        match self {
            Self::UdpTracker { target, .. } => target.to_string(),
            Self::HttpTracker { url, .. } => http::display_url(&http::join(url, "announce"), &[]),
            Self::HttpTrackerHealth { url } => {
                http::display_url(&http::join(url, "health_check"), &[])
            }
            Self::ApiHealth { url } => http::display_url(&http::join(url, "api/health_check"), &[]),
            Self::ApiStats { url, token } => api::stats_url(url, token).1,
            Self::HealthCheck { url } => http::display_url(&http::join(url, "health_check"), &[]),
            Self::GrafanaHealth { url } => http::display_url(&http::join(url, "api/health"), &[]),
            Self::PrometheusTargets { shown, .. } | Self::GrafanaApi { shown, .. } => shown.clone(),
        }
    }
}

/// What a passed check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckOutput {
    /// A tracker answered the announce and counted the peer in the scrape.
    Tracker {
        announce: AnnounceResponse,
        scrape: ScrapeEntry,
    },
    /// A health endpoint answered `{"status": "Ok"}`.
    Healthy,
    /// The API statistics.
    Stats { stats: TrackerStats },
    /// The health check API's report (status Ok).
    Health { report: HealthReport },
    /// A comparison of two readings of the statistics passed.
    Counted { detail: String },
    /// Prometheus's targets, all up.
    Targets { targets: Vec<TargetHealth> },
    /// Grafana's provisioning is in place.
    Provisioned { detail: String },
}

impl CheckOutput {
    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            Self::Tracker { announce, scrape } => format!(
                "announce: {announce}; scrape: {} seeder(s), {} completed, {} leecher(s)",
                scrape.seeders, scrape.completed, scrape.leechers
            ),
            Self::Healthy => "status Ok".into(),
            Self::Stats { stats } => format!(
                "{} torrent(s), {} seeder(s), {} leecher(s); announces: {} UDP, {} HTTP",
                stats.torrents,
                stats.seeders,
                stats.leechers,
                stats.udp_announces(),
                stats.http_announces()
            ),
            Self::Health { report } => {
                let names: Vec<&str> = report.details.iter().map(|d| d.binding.as_str()).collect();
                format!(
                    "status Ok, {} service(s) pass: {}",
                    report.details.len(),
                    names.join(", ")
                )
            }
            Self::Counted { detail } | Self::Provisioned { detail } => detail.clone(),
            Self::Targets { targets } => {
                let shown: Vec<String> = targets.iter().map(ToString::to_string).collect();
                format!("{} target(s) up: {}", targets.len(), shown.join("; "))
            }
        }
    }
}

/// How a check ended.
#[derive(Debug)]
pub enum Outcome {
    Ok(CheckOutput),
    Failed(ProbeError),
}

/// The result of one check.
#[derive(Debug)]
pub struct CheckResult {
    pub name: String,
    /// The redacted target.
    pub target: String,
    pub outcome: Outcome,
    pub latency: Duration,
}

impl CheckResult {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// The error, when failed.
    pub fn error(&self) -> Option<&ProbeError> {
        match &self.outcome {
            Outcome::Failed(e) => Some(e),
            Outcome::Ok(_) => None,
        }
    }

    /// The output, when passed.
    pub fn output(&self) -> Option<&CheckOutput> {
        match &self.outcome {
            Outcome::Ok(o) => Some(o),
            Outcome::Failed(_) => None,
        }
    }

    /// The summary when passed, the error message when failed.
    pub fn detail(&self) -> String {
        match &self.outcome {
            Outcome::Ok(o) => o.summary(),
            Outcome::Failed(e) => e.to_string(),
        }
    }
}

impl fmt::Display for CheckResult {
    /// `ok     UDP tracker udp://h:6969 (12 ms): announce: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<6} {} {} ({} ms): {}",
            if self.is_ok() { "ok" } else { "FAILED" },
            self.name,
            self.target,
            self.latency.as_millis(),
            self.detail()
        )
    }
}

impl Serialize for CheckResult {
    /// `{name, target, ok, latency_ms, detail, error_kind?, output?}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            name: &'a str,
            target: &'a str,
            ok: bool,
            latency_ms: u128,
            detail: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            error_kind: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            output: Option<&'a CheckOutput>,
        }
        Shown {
            name: &self.name,
            target: &self.target,
            ok: self.is_ok(),
            latency_ms: self.latency.as_millis(),
            detail: self.detail(),
            error_kind: self.error().map(ProbeError::kind),
            output: self.output(),
        }
        .serialize(s)
    }
}

/// The results of a list of checks, in the order of the list.
#[derive(Debug, Default, Serialize)]
pub struct ProbeReport {
    pub results: Vec<CheckResult>,
}

impl ProbeReport {
    /// True when every check passed (and there was at least one).
    pub fn ok(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(CheckResult::is_ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.is_ok())
    }
}

/// Runs one check. Never panics on a network failure: every failure is in the outcome.
pub async fn run_check(check: &Check, opts: &ProbeOptions) -> CheckResult {
    let started = Instant::now();
    let outcome = match run_inner(check, opts).await {
        Ok(o) => Outcome::Ok(o),
        Err(e) => Outcome::Failed(e),
    };
    CheckResult {
        name: check.name().to_string(),
        target: check.target(),
        outcome,
        latency: started.elapsed(),
    }
}

/// Runs the checks concurrently; the results keep the order of `checks`.
pub async fn run_checks(checks: &[Check], opts: &ProbeOptions) -> ProbeReport {
    let results = futures_util::future::join_all(checks.iter().map(|c| run_check(c, opts))).await;
    ProbeReport { results }
}

fn counted(
    what: &'static str,
    target: String,
    hash: &InfoHash,
    scrape: &ScrapeResponse,
) -> Result<ScrapeEntry, ProbeError> {
    let entry = scrape
        .files
        .get(hash)
        .copied()
        .ok_or_else(|| ProbeError::BadResponse {
            what,
            target: target.clone(),
            detail: format!("the scrape has no entry for the announced info hash {hash}"),
        })?;
    if entry.seeders + entry.leechers == 0 {
        return Err(ProbeError::BadResponse {
            what,
            target,
            detail: format!(
                "the scrape does not count the peer just announced for {hash} (0 seeders, 0 \
                 leechers): the tracker may not be storing announces (private or whitelisted \
                 mode?)"
            ),
        });
    }
    Ok(entry)
}

async fn run_inner(check: &Check, opts: &ProbeOptions) -> Result<CheckOutput, ProbeError> {
    match check {
        Check::UdpTracker { target, peer } => {
            let addr = target.resolve(&opts.http).await?;
            let mut client = UdpTrackerClient::new(addr, target.to_string(), opts.udp).await?;
            client.connect().await?;
            let announce = client
                .announce(&peer.announce(AnnounceEvent::Started))
                .await?;
            let scrape = client.scrape(&[peer.info_hash]).await?;
            let scrape = counted("UDP scrape", target.to_string(), &peer.info_hash, &scrape)?;
            Ok(CheckOutput::Tracker { announce, scrape })
        }
        Check::HttpTracker { url, peer } => {
            let announce =
                http_tracker::announce(url, &peer.announce(AnnounceEvent::Started), &opts.http)
                    .await?;
            let scrape = http_tracker::scrape(url, &[peer.info_hash], &opts.http).await?;
            let shown = http::display_url(&http::join(url, "scrape"), &[]);
            let scrape = counted("HTTP scrape", shown, &peer.info_hash, &scrape)?;
            Ok(CheckOutput::Tracker { announce, scrape })
        }
        Check::HttpTrackerHealth { url } => {
            api::http_tracker_health(url, &opts.http).await?;
            Ok(CheckOutput::Healthy)
        }
        Check::ApiHealth { url } => {
            api::api_health(url, &opts.http).await?;
            Ok(CheckOutput::Healthy)
        }
        Check::ApiStats { url, token } => {
            let stats = api::stats(url, token, &opts.http).await?;
            Ok(CheckOutput::Stats { stats })
        }
        Check::HealthCheck { url } => {
            let report = api::health_check(url, &opts.http).await?;
            Ok(CheckOutput::Health { report })
        }
        Check::GrafanaHealth { url } => {
            api::grafana_health(url, &opts.http).await?;
            Ok(CheckOutput::Healthy)
        }
        Check::PrometheusTargets { url, shown, settle } => {
            let targets =
                monitoring::prometheus_targets_up(url, shown, *settle, &opts.http).await?;
            Ok(CheckOutput::Targets { targets })
        }
        Check::GrafanaApi { url, shown, login } => {
            let detail = monitoring::grafana_provisioned(url, shown, login, &opts.http).await?;
            Ok(CheckOutput::Provisioned { detail })
        }
    }
}
