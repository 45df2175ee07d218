//! `deploy`: the porcelain. Creates (or updates) the environment from a file when given one,
//! then runs provision, configure, release and run, and finally the protocol test (`test`).
//!
//! Every phase is idempotent and checks before it acts, so deploy simply runs them all in
//! order: finished phases find nothing to do, a failed one resumes, and a second deploy of the
//! same file changes nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::configure::{self, ConfigureOptions};
use super::environment;
use super::provision::{self, ProvisionOptions};
use super::release;
use super::run::{self, RunOptions};
use super::test::{self, TestOptions};
use crate::error_kind::Classify;
use crate::events::{Events, What};
use crate::state::DataDir;

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub env_file: Option<PathBuf>,
    pub provision: ProvisionOptions,
    pub ready_timeout: Duration,
    pub run: RunOptions,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub phase: &'static str,
    pub changed: bool,
    pub detail: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Deployed {
    pub name: String,
    pub changed: bool,
    pub phases: Vec<Phase>,
    pub announce_urls: Vec<String>,
    /// The protocol test's checks, one line each (`ok  UDP tracker ... (3 ms): ...`).
    pub test: Vec<String>,
    pub elapsed_ms: u64,
}

/// Runs `f` as one phase, sending its start, end and time as events.
async fn phase<T>(
    phases: &mut Vec<Phase>,
    name: &'static str,
    f: impl AsyncFnOnce() -> Result<(T, bool, String), OpsError>,
) -> Result<T, OpsError> {
    let events = Events::current();
    events.emit(What::PhaseStarted {
        phase: name.to_string(),
    });
    let t = Instant::now();
    let (value, changed, detail) = match f().await {
        Ok(done) => done,
        Err(e) => {
            events.emit(What::PhaseFailed {
                phase: name.to_string(),
                kind: e.kind(),
                elapsed_ms: t.elapsed().as_millis() as u64,
            });
            return Err(e);
        }
    };
    let elapsed_ms = t.elapsed().as_millis() as u64;
    events.emit(What::PhaseFinished {
        phase: name.to_string(),
        changed,
        elapsed_ms,
    });
    phases.push(Phase {
        phase: name,
        changed,
        detail,
        elapsed_ms,
    });
    Ok(value)
}

pub async fn deploy(
    data: &DataDir,
    env: &str,
    options: &DeployOptions,
    lock_wait: Duration,
) -> Result<Deployed, OpsError> {
    let started = Instant::now();
    let mut phases = Vec::new();

    if let Some(file) = &options.env_file {
        phase(&mut phases, "environment", async || {
            let c = environment::create_environment(data, file, lock_wait)?;
            if c.name != env {
                return Err(OpsError::Refused(format!(
                    "{} defines environment '{}', not '{env}'; pass its name, or the right file",
                    file.display(),
                    c.name
                )));
            }
            Ok((
                (),
                c.outcome != "unchanged",
                format!("{} from {}", c.outcome, file.display()),
            ))
        })
        .await?;
    } else if !data.exists(env) {
        return Err(OpsError::Refused(format!(
            "environment '{env}' does not exist; pass its file: \
             `torrust-tracker-deployer deploy {env} --env-file FILE`"
        )));
    }

    let registered = data.load(env)?.host.as_ref().is_some_and(|h| h.registered);
    if registered {
        phases.push(Phase {
            phase: "provision",
            changed: false,
            detail: "registered host: nothing to provision".into(),
            elapsed_ms: 0,
        });
    } else {
        phase(&mut phases, "provision", async || {
            let p = provision::provision(data, env, &options.provision, lock_wait).await?;
            Ok((
                (),
                p.changed,
                format!("{}:{} ({})", p.ip, p.ssh_port, p.instance),
            ))
        })
        .await?;
    }

    phase(&mut phases, "configure", async || {
        let opts = ConfigureOptions {
            dry_run: false,
            ready_timeout: options.ready_timeout,
            ssh_timeout: Duration::from_secs(60),
        };
        let c = configure::configure(data, env, &opts, lock_wait).await?;
        let mut detail = format!(
            "{}, compose: {}",
            c.os,
            c.compose_command.clone().unwrap_or_default()
        );
        for w in &c.warnings {
            detail.push_str(&format!("; WARNING: {w}"));
        }
        Ok(((), c.changed, detail))
    })
    .await?;

    phase(&mut phases, "release", async || {
        let r = release::release(data, env, lock_wait).await?;
        let changed_files = r.files.iter().filter(|f| f.change != "unchanged").count();
        Ok((
            (),
            r.changed,
            format!("{changed_files} of {} files changed", r.files.len()),
        ))
    })
    .await?;

    let announce_urls = phase(&mut phases, "run", async || {
        let r = run::run(data, env, &options.run, lock_wait).await?;
        let detail = r
            .services
            .iter()
            .map(|s| format!("{} {}", s.service, if s.healthy { "ok" } else { "DOWN" }))
            .collect::<Vec<_>>()
            .join(", ");
        Ok((r.announce_urls, r.changed, detail))
    })
    .await?;

    let tested = phase(&mut phases, "test", async || {
        let t = test::test(data, env, &TestOptions::default(), lock_wait).await?;
        let detail = format!("{} of {} checks passed", t.passed, t.passed + t.failed);
        Ok((t, false, detail))
    })
    .await?;
    for r in &tested.report.results {
        tracing::info!("{r}");
    }
    if let Some(failure) = tested.failure() {
        return Err(failure);
    }

    Ok(Deployed {
        name: env.to_string(),
        changed: phases.iter().any(|p| p.changed),
        phases,
        announce_urls,
        test: tested
            .report
            .results
            .iter()
            .map(|r| r.to_string())
            .collect(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
