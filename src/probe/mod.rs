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
//! [`ProbeReport`]. [`run_tracker_test`] is the whole test of a deployment: services up, a test
//! peer announced to every tracker, and the announces seen in the API statistics.
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
pub mod error;
pub mod http;
pub mod http_tracker;
pub mod peer;
pub mod udp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

pub use self::api::{HealthReport, HealthStatus, ServiceHealth, TrackerStats};
pub use self::error::ProbeError;
pub use self::http::{HttpOptions, TlsTrust};
pub use self::peer::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, InfoHash, PeerId, ScrapeEntry,
    ScrapeResponse, TestPeer,
};
pub use self::udp::{UdpRetry, UdpTrackerClient};
use crate::secret::Secret;

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
            Self::Counted { detail } => detail.clone(),
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
    }
}

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

/// How long `test` keeps reading the statistics until they count the announces just made.
const STATS_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

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

#[cfg(test)]
mod tests {
    use super::*;

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
