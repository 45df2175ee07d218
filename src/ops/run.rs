//! `run`: start the released stack with `compose up -d`, restart the services whose mounted
//! files the last release changed, and wait until every service is healthy.
//!
//! `up -d` recreates exactly the containers whose compose configuration changed, so a run with
//! nothing new touches nothing. On a failed wait the failing services' last log lines are shown
//! and the environment stays resumable: run it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::StepReport;
use super::host::{configured_host, connect};
use super::steps::StepRun;
use crate::ssh::{Session, SshError, shell_quote};
use crate::stack::{self, HealthProbe, RenderedStack, layout};
use crate::state::{DataDir, EnvironmentState, Lifecycle};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for every service to be healthy.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(
        "`{command}` failed on the host:\n{output}\n  Fix the cause (see `status`), then run again"
    )]
    Compose { command: String, output: String },
    #[error(
        "not healthy after {waited} s: {failing}\n{logs}\n  Look at the logs above (and `status`); \
         fix the cause (environment file, then `release`), then `run` again: it resumes"
    )]
    Unhealthy {
        waited: u64,
        failing: String,
        logs: String,
    },
}

#[derive(Debug, Serialize, Clone)]
pub struct ServiceHealth {
    pub service: String,
    pub healthy: bool,
    /// e.g. `running, healthy`, `exited`, `missing`.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub name: String,
    pub host: String,
    pub changed: bool,
    pub steps: Vec<StepReport>,
    /// Services whose container `up -d` created or recreated.
    pub recreated: Vec<String>,
    /// Services restarted to apply changed files.
    pub restarted: Vec<String>,
    pub services: Vec<ServiceHealth>,
    pub announce_urls: Vec<String>,
    pub elapsed_ms: u64,
}

pub async fn run(
    data: &DataDir,
    env: &str,
    options: &RunOptions,
    lock_wait: Duration,
) -> Result<Running, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(env, "run", lock_wait)?;
    let mut state = data.load(env)?;
    let (host, setup) = configured_host(&state, "run")?;
    if state.lifecycle < Lifecycle::Released {
        return Err(OpsError::Refused(format!(
            "environment '{env}' has not been released yet (state '{}'); run \
             `torrust-tracker-deployer release {env}` first",
            state.lifecycle
        )));
    }
    let rendered = stack::render(&state.config)
        .map_err(|e| OpsError::Failed(format!("cannot build the stack: {e}")))?;
    let compose = setup.compose_command.clone();

    let mut run = StepRun::begin(data, &mut state, "run")?;
    let session = run
        .step(&mut state, "connect", async |s| {
            connect(data, s, &host).await
        })
        .await?;
    let result = run_steps(&mut run, &mut state, &session, &rendered, &compose, options).await;
    session.close().await;
    let (steps, recreated, restarted, services) = result?;
    state.pending_restarts.clear();
    let lifecycle = (state.lifecycle < Lifecycle::Running).then_some(Lifecycle::Running);
    run.finish(&mut state, lifecycle)?;
    Ok(Running {
        name: env.to_string(),
        host: host.ip.clone(),
        changed: steps.iter().any(|s| s.changed),
        steps,
        recreated,
        restarted,
        services,
        announce_urls: host
            .ip
            .parse()
            .map(|ip| stack::announce_urls(&state.config, ip))
            .unwrap_or_default(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

type RunOutcome = (
    Vec<StepReport>,
    Vec<String>,
    Vec<String>,
    Vec<ServiceHealth>,
);

async fn run_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    session: &Session,
    rendered: &RenderedStack,
    compose: &str,
    options: &RunOptions,
) -> Result<RunOutcome, OpsError> {
    let mut steps = Vec::new();
    let compose_in_dir = format!("cd {} && {compose}", shell_quote(layout::STACK_DIR));

    let recreated = run
        .step(state, "compose up", async |_s| {
            let before = containers(session).await?;
            let out = session
                .sudo(&format!("{compose_in_dir} up -d --remove-orphans 2>&1"))
                .await?;
            if !out.success() {
                return Err(RunError::Compose {
                    command: format!("{compose} up -d"),
                    output: indent_tail(&out.stdout_str(), 20),
                });
            }
            let after = containers(session).await?;
            Ok::<_, RunError>(
                after
                    .iter()
                    .filter(|(svc, id)| before.get(*svc) != Some(id))
                    .map(|(svc, _)| svc.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    steps.push(StepReport {
        step: "compose up".into(),
        changed: !recreated.is_empty(),
        detail: if recreated.is_empty() {
            "every container up to date".into()
        } else {
            format!("created or recreated: {}", recreated.join(", "))
        },
    });

    // Files a release changed are mounted into containers that `up -d` did not recreate.
    let to_restart: Vec<String> = state
        .pending_restarts
        .iter()
        .filter(|s| !recreated.contains(s))
        .cloned()
        .collect();
    if !to_restart.is_empty() {
        run.step(state, "restart changed services", async |_s| {
            let list: Vec<String> = to_restart.iter().map(|s| shell_quote(s)).collect();
            let command = format!("{compose_in_dir} restart {} 2>&1", list.join(" "));
            let out = session.sudo(&command).await?;
            if !out.success() {
                return Err(RunError::Compose {
                    command: format!("{compose} restart {}", to_restart.join(" ")),
                    output: indent_tail(&out.stdout_str(), 20),
                });
            }
            Ok(())
        })
        .await?;
    }
    steps.push(StepReport {
        step: "restart changed services".into(),
        changed: !to_restart.is_empty(),
        detail: if to_restart.is_empty() {
            "none needed".into()
        } else {
            format!("restarted {} (their files changed)", to_restart.join(", "))
        },
    });

    let services = run
        .step(state, "wait until healthy", async |_s| {
            wait_healthy(session, rendered, options.timeout).await
        })
        .await?;
    steps.push(StepReport {
        step: "wait until healthy".into(),
        changed: false,
        detail: services
            .iter()
            .map(|s| format!("{} {}", s.service, s.detail))
            .collect::<Vec<_>>()
            .join("; "),
    });
    Ok((steps, recreated, to_restart, services))
}

/// service -> container ID, for the compose project's containers.
async fn containers(session: &Session) -> Result<BTreeMap<String, String>, SshError> {
    let out = session
        .sudo(&format!(
            "docker ps -a --no-trunc --filter label=com.docker.compose.project={} \
             --format '{{{{.Label \"com.docker.compose.service\"}}}} {{{{.ID}}}}'",
            layout::COMPOSE_PROJECT_NAME
        ))
        .await?
        .check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, id)| (s.to_string(), id.to_string()))
        .collect())
}

/// One round trip: each service's container state and health, and its HTTP probe.
fn health_script(rendered: &RenderedStack) -> String {
    let mut s = String::new();
    for svc in &rendered.services {
        let name = svc.name.as_str();
        s.push_str(&format!(
            "id=$(docker ps -aq --no-trunc --filter label=com.docker.compose.project={} \
             --filter label=com.docker.compose.service={name} | head -n1)\n\
             if [ -z \"$id\" ]; then echo '{name} missing none -'; else\n\
             st=$(docker inspect --format '{{{{.State.Status}}}} {{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}none{{{{end}}}}' \"$id\")\n",
            layout::COMPOSE_PROJECT_NAME
        ));
        match &svc.health {
            HealthProbe::Http { url } => s.push_str(&format!(
                "if curl -fsS -o /dev/null -m 3 {u} 2>/dev/null || wget -q -O /dev/null -T 3 {u} 2>/dev/null; \
                 then h=ok; else h=fail; fi\n",
                u = shell_quote(url)
            )),
            _ => s.push_str("h=-\n"),
        }
        s.push_str(&format!("echo \"{name} $st $h\"; fi\n"));
    }
    s
}

/// Parses a line of [`health_script`]: `service status health http`.
fn judge(line: &str, probe: &HealthProbe) -> (bool, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (status, health, http) = (
        f.get(1).copied().unwrap_or("?"),
        f.get(2).copied().unwrap_or("?"),
        f.get(3).copied().unwrap_or("-"),
    );
    if status == "missing" {
        return (false, "no container".into());
    }
    let ok = status == "running"
        && match probe {
            HealthProbe::Container { .. } => health == "healthy",
            HealthProbe::Http { .. } => http == "ok" && health != "unhealthy",
            HealthProbe::Running => health != "unhealthy",
        };
    let mut detail = status.to_string();
    if health != "none" {
        detail.push_str(&format!(", {health}"));
    }
    if let HealthProbe::Http { url } = probe {
        detail.push_str(&format!(
            ", {url} {}",
            if http == "ok" {
                "answers"
            } else {
                "does not answer"
            }
        ));
    }
    (ok, detail)
}

async fn wait_healthy(
    session: &Session,
    rendered: &RenderedStack,
    timeout: Duration,
) -> Result<Vec<ServiceHealth>, RunError> {
    let script = health_script(rendered);
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let out = session.sudo(&script).await?.check()?;
        let text = out.stdout_str();
        let report: Vec<ServiceHealth> = rendered
            .services
            .iter()
            .map(|svc| {
                let name = svc.name.as_str();
                let line = text
                    .lines()
                    .find(|l| l.split_whitespace().next() == Some(name))
                    .unwrap_or("");
                let (healthy, detail) = judge(line, &svc.health);
                ServiceHealth {
                    service: name.to_string(),
                    healthy,
                    detail,
                }
            })
            .collect();
        if report.iter().all(|s| s.healthy) {
            return Ok(report);
        }
        let failing: Vec<&ServiceHealth> = report.iter().filter(|s| !s.healthy).collect();
        if started.elapsed() >= timeout {
            let mut logs = String::new();
            for s in &failing {
                let out = session
                    .sudo(&format!(
                        "id=$(docker ps -aq --filter label=com.docker.compose.project={} \
                         --filter label=com.docker.compose.service={} | head -n1); \
                         [ -n \"$id\" ] && docker logs --tail 25 \"$id\" 2>&1",
                        layout::COMPOSE_PROJECT_NAME,
                        s.service
                    ))
                    .await?;
                logs.push_str(&format!(
                    "  last log lines of {}:\n{}\n",
                    s.service,
                    indent_tail(&out.stdout_str(), 25)
                ));
            }
            return Err(RunError::Unhealthy {
                waited: started.elapsed().as_secs(),
                failing: failing
                    .iter()
                    .map(|s| format!("{} ({})", s.service, s.detail))
                    .collect::<Vec<_>>()
                    .join(", "),
                logs,
            });
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                "[{:>5.1}s] waiting for {}",
                started.elapsed().as_secs_f64(),
                failing
                    .iter()
                    .map(|s| format!("{} ({})", s.service, s.detail))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn indent_tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_health() {
        let container = HealthProbe::Container {
            command: vec!["x".into()],
        };
        assert!(judge("tracker running healthy -", &container).0);
        assert!(!judge("tracker running starting -", &container).0);
        assert!(!judge("tracker exited none -", &container).0);
        let http = HealthProbe::Http {
            url: "http://127.0.0.1:9090/-/ready".into(),
        };
        assert!(judge("prometheus running none ok", &http).0);
        let (ok, detail) = judge("prometheus running none fail", &http);
        assert!(!ok);
        assert!(detail.contains("does not answer"), "{detail}");
        assert!(judge("caddy running none -", &HealthProbe::Running).0);
        assert!(!judge("caddy restarting none -", &HealthProbe::Running).0);
        assert_eq!(
            judge("mysql missing none -", &HealthProbe::Running),
            (false, "no container".into())
        );
    }
}
