//! The monitoring checks of `test` and the targets of `status`: Prometheus and Grafana reached
//! through local forwards over the pinned SSH connection ([`tunnel::while_forwarding`]), never
//! through a published port.
//!
//! - Prometheus (published on the host's 127.0.0.1:9090 only): its targets API, every target up
//!   and the exporter reading the tracker API;
//! - Grafana (on the host's port 3100 unless behind the TLS proxy): its API as the admin, the
//!   provisioned Prometheus data source and our dashboard.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use super::host::HostOnDemand;
use crate::host::{Host, tunnel};
use crate::probe::monitoring::{self, GrafanaLogin, TargetHealth};
use crate::probe::{Check, CheckResult, Outcome, ProbeError, ProbeOptions, run_check};
use crate::stack::{self, Service};
use crate::state::EnvironmentState;

/// Prometheus's port on the host's loopback.
const PROMETHEUS_ON_HOST: u16 = 9090;
/// Grafana's port on the host when it is not behind the TLS proxy.
const GRAFANA_ON_HOST: u16 = 3100;

/// A monitoring check of `test` that `--skip` can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonitoringCheck {
    /// Prometheus's targets: every one up, the exporter reading the API.
    PrometheusTargets,
    /// Grafana's API: data source and dashboard provisioned.
    GrafanaApi,
}

impl MonitoringCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitoringCheck::PrometheusTargets => "prometheus-targets",
            MonitoringCheck::GrafanaApi => "grafana-api",
        }
    }
}

fn shown(service: &str, port: u16) -> String {
    format!("{service} at 127.0.0.1:{port} on the host (through SSH)")
}

fn local_url(local: SocketAddr) -> Url {
    Url::parse(&format!("http://{local}/")).expect("a loopback URL parses")
}

/// A failed result for a check that could not even start.
fn not_run(name: &str, target: String, error: ProbeError) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        target,
        outcome: Outcome::Failed(error),
        latency: Duration::ZERO,
    }
}

/// How long `test` waits for Prometheus's first scrape of every target: two scrape intervals
/// and a little.
fn settle(state: &EnvironmentState) -> Duration {
    let interval = state
        .config
        .prometheus
        .as_ref()
        .map_or(15, |p| u64::from(p.scrape_interval_in_secs));
    Duration::from_secs(2 * interval + 5)
}

/// The monitoring checks of the stack that are not skipped, run through forwards over the SSH
/// connection. Notes say what was skipped or not checked.
pub async fn checks(
    hosts: &HostOnDemand<'_>,
    state: &EnvironmentState,
    opts: &ProbeOptions,
    skip: &[MonitoringCheck],
    notes: &mut Vec<String>,
) -> Vec<CheckResult> {
    let config = &state.config;
    let mut wanted = Vec::new();
    if config.prometheus.is_some() {
        wanted.push(MonitoringCheck::PrometheusTargets);
    }
    if let Some(g) = &config.grafana {
        if g.use_tls_proxy {
            notes.push(
                "Grafana's API was not checked: it is served only through the TLS proxy".into(),
            );
        } else {
            wanted.push(MonitoringCheck::GrafanaApi);
        }
    }
    let skipped: Vec<&str> = wanted
        .iter()
        .filter(|c| skip.contains(c))
        .map(|c| c.as_str())
        .collect();
    if !skipped.is_empty() {
        notes.push(format!("skipped (--skip): {}", skipped.join(", ")));
    }
    wanted.retain(|c| !skip.contains(c));
    if wanted.is_empty() {
        return Vec::new();
    }
    let host = match hosts.get().await {
        Ok(h) => h,
        Err(e) => {
            let target = state
                .host
                .as_ref()
                .map_or_else(String::new, |r| r.ip.clone());
            return wanted
                .iter()
                .map(|c| {
                    not_run(
                        c.as_str(),
                        "the host over SSH".into(),
                        ProbeError::Network {
                            what: "SSH connection",
                            target: target.clone(),
                            detail: e.to_string(),
                        },
                    )
                })
                .collect();
        }
    };
    let mut results = Vec::new();
    for check in wanted {
        results.push(run_one(check, host, state, opts).await);
    }
    results
}

async fn run_one(
    check: MonitoringCheck,
    host: &dyn Host,
    state: &EnvironmentState,
    opts: &ProbeOptions,
) -> CheckResult {
    let (service, port, name) = match check {
        MonitoringCheck::PrometheusTargets => {
            ("Prometheus", PROMETHEUS_ON_HOST, "Prometheus targets")
        }
        MonitoringCheck::GrafanaApi => ("Grafana", GRAFANA_ON_HOST, "Grafana API"),
    };
    let target = shown(service, port);
    let checked = tunnel::while_forwarding(host, "127.0.0.1", port, async |local| {
        let url = local_url(local);
        let probe = match check {
            MonitoringCheck::PrometheusTargets => Check::PrometheusTargets {
                url,
                shown: target.clone(),
                settle: settle(state),
            },
            MonitoringCheck::GrafanaApi => {
                let g = state.config.grafana.as_ref().expect("checked above");
                Check::GrafanaApi {
                    url,
                    shown: target.clone(),
                    login: GrafanaLogin {
                        user: g.admin_user.clone(),
                        password: g.admin_password.clone(),
                        datasource_uid: stack::DATASOURCE_UID.into(),
                        dashboard_uid: stack::DASHBOARD_UID.into(),
                    },
                }
            }
        };
        run_check(&probe, opts).await
    })
    .await;
    checked.unwrap_or_else(|e| {
        not_run(
            name,
            target.clone(),
            ProbeError::Setup {
                target: target.clone(),
                detail: format!("cannot open a local port for the forward: {e}"),
            },
        )
    })
}

/// What `status` shows of Prometheus's targets.
#[derive(Debug, Clone, Serialize)]
pub struct MonitoringStatus {
    pub targets: Vec<TargetHealth>,
    /// What is wrong (a target not up, the exporter without statistics, Prometheus not
    /// answering); `None` when Prometheus collects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Prometheus's targets now, through a forward over `host` (for `status`). `None` when the
/// stack has no Prometheus.
pub async fn targets_status(host: &dyn Host, state: &EnvironmentState) -> Option<MonitoringStatus> {
    state.config.prometheus.as_ref()?;
    let started = Instant::now();
    let target = shown("Prometheus", PROMETHEUS_ON_HOST);
    let failed = |problem: String| MonitoringStatus {
        targets: Vec::new(),
        problem: Some(problem),
    };
    let opts = crate::probe::HttpOptions {
        timeout: Duration::from_secs(5),
        ..crate::probe::HttpOptions::default()
    };
    let result = tunnel::while_forwarding(host, "127.0.0.1", PROMETHEUS_ON_HOST, async |local| {
        monitoring::prometheus_targets_now(&local_url(local), &target, &opts).await
    })
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => return Some(failed(format!("cannot open a local port: {e}"))),
    };
    tracing::debug!(
        "Prometheus targets read in {} ms",
        started.elapsed().as_millis()
    );
    Some(match result {
        Ok((targets, problem)) => MonitoringStatus { targets, problem },
        Err(e) => failed(format!(
            "Prometheus did not answer ({e}); is the `{}` service running?",
            Service::Prometheus
        )),
    })
}
