//! The test of a whole deployment: its [`Endpoints`], the checks of its services and trackers,
//! and [`run_tracker_test`], which also checks that the API counted the test announces.

use reqwest::Url;

use super::{
    Check, CheckOutput, CheckResult, Outcome, ProbeError, ProbeOptions, ProbeReport, TestPeer,
    TrackerStats, UdpTarget, run_check, run_checks,
};
use crate::secret::Secret;

/// The public endpoints of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub udp_trackers: Vec<UdpTarget>,
    /// Base URLs (e.g. `https://tracker.example.com` or `http://host:7070`).
    pub http_trackers: Vec<Url>,
    /// The API base URL (e.g. `http://host:1212`) and its admin token.
    pub api: Option<(Url, Secret)>,
    /// The health check API base URL, when it is reachable from here (by default it binds to
    /// 127.0.0.1 inside the tracker's container).
    pub health_check: Option<Url>,
    /// Grafana's base URL, when the stack has Grafana.
    pub grafana: Option<Url>,
}

/// The checks of the services being up: each HTTP tracker's health, the API's health, the health
/// check API, Grafana.
pub fn health_checks(endpoints: &Endpoints) -> Vec<Check> {
    let mut checks: Vec<Check> = endpoints
        .http_trackers
        .iter()
        .map(|url| Check::HttpTrackerHealth { url: url.clone() })
        .collect();
    if let Some((url, _)) = &endpoints.api {
        checks.push(Check::ApiHealth { url: url.clone() });
    }
    if let Some(url) = &endpoints.health_check {
        checks.push(Check::HealthCheck { url: url.clone() });
    }
    if let Some(url) = &endpoints.grafana {
        checks.push(Check::GrafanaHealth { url: url.clone() });
    }
    checks
}

/// One announce-and-scrape check per tracker, each with its own random [`TestPeer`].
pub fn tracker_checks(endpoints: &Endpoints) -> Vec<Check> {
    let udp = endpoints.udp_trackers.iter().map(|t| Check::UdpTracker {
        target: t.clone(),
        peer: TestPeer::random(),
    });
    let http = endpoints.http_trackers.iter().map(|u| Check::HttpTracker {
        url: u.clone(),
        peer: TestPeer::random(),
    });
    udp.chain(http).collect()
}

/// How long `test` keeps reading the statistics until they count the announces just made.
const STATS_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// Compares two readings of the statistics: at least `udp` more UDP announces, `http` more HTTP
/// announces, and at least one torrent. Other clients may announce meanwhile, so these are
/// lower bounds.
pub fn compare_stats(
    before: &TrackerStats,
    after: &TrackerStats,
    udp: u64,
    http: u64,
) -> Result<String, String> {
    let udp_delta = after.udp_announces().saturating_sub(before.udp_announces());
    let http_delta = after
        .http_announces()
        .saturating_sub(before.http_announces());
    let mut problems = Vec::new();
    if udp_delta < udp {
        problems.push(format!(
            "UDP announces went from {} to {} (expected at least {udp} more)",
            before.udp_announces(),
            after.udp_announces()
        ));
    }
    if http_delta < http {
        problems.push(format!(
            "HTTP announces went from {} to {} (expected at least {http} more)",
            before.http_announces(),
            after.http_announces()
        ));
    }
    if (udp > 0 || http > 0) && after.torrents == 0 {
        problems.push("the API counts no torrent after the announces".into());
    }
    if problems.is_empty() {
        Ok(format!(
            "{udp_delta} UDP and {http_delta} HTTP announce(s) counted, {} torrent(s)",
            after.torrents
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// The whole test of a deployment, in three steps:
/// 1. the health checks and a first reading of the API statistics, concurrently;
/// 2. one announce and scrape per tracker, concurrently, each with a new [`TestPeer`];
/// 3. a second reading of the statistics, and a check "announces counted" that compares the two
///    readings with the announces of step 2 that passed.
///
/// Without an API (or if the first reading failed) step 3 is skipped.
pub async fn run_tracker_test(endpoints: &Endpoints, opts: &ProbeOptions) -> ProbeReport {
    let mut first = health_checks(endpoints);
    let stats_check = endpoints.api.as_ref().map(|(url, token)| Check::ApiStats {
        url: url.clone(),
        token: token.clone(),
    });
    first.extend(stats_check.clone());
    let mut report = run_checks(&first, opts).await;
    let before = report.results.iter().find_map(|r| match r.output() {
        Some(CheckOutput::Stats { stats }) => Some(*stats),
        _ => None,
    });

    let trackers = tracker_checks(endpoints);
    let tracker_report = run_checks(&trackers, opts).await;
    let passed = |kind: &str| {
        tracker_report
            .results
            .iter()
            .filter(|r| r.is_ok() && r.name == kind)
            .count() as u64
    };
    let (udp_ok, http_ok) = (passed("UDP tracker"), passed("HTTP tracker"));
    report.results.extend(tracker_report.results);

    if let (Some(check), Some(before)) = (stats_check, before) {
        // The tracker counts announces in a task of its own (its statistics are events sent
        // through a channel), so a reading right after the answers may miss the last ones:
        // read again for a short while before calling them not counted.
        let stats_of = |r: &CheckResult| match r.output() {
            Some(CheckOutput::Stats { stats }) => Some(*stats),
            _ => None,
        };
        let deadline = std::time::Instant::now() + STATS_SETTLE;
        let mut after = run_check(&check, opts).await;
        while let Some(stats) = stats_of(&after) {
            if compare_stats(&before, &stats, udp_ok, http_ok).is_ok()
                || std::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            after = run_check(&check, opts).await;
        }
        let after_stats = stats_of(&after);
        let target = after.target.clone();
        let latency = after.latency;
        report.results.push(after);
        if let Some(after_stats) = after_stats {
            let outcome = match compare_stats(&before, &after_stats, udp_ok, http_ok) {
                Ok(detail) => Outcome::Ok(CheckOutput::Counted { detail }),
                Err(detail) => Outcome::Failed(ProbeError::BadResponse {
                    what: "API stats",
                    target: target.clone(),
                    detail: format!("the announces are not counted: {detail}"),
                }),
            };
            report.results.push(CheckResult {
                name: "announces counted".into(),
                target,
                outcome,
                latency,
            });
        }
    }
    report
}
