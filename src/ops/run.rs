//! `run`: start the released stack with `compose up -d`, restart the services whose mounted
//! files the last release changed, and wait until every service is healthy.
//!
//! The work is the [`compose`] task run against a [`Host`]: its facts (containers, the hash of
//! each service's definition, the images' IDs) say what `up -d` would do; when nothing, and this
//! Compose can tell, `up` is not run at all. On a failed wait the failing services' last log
//! lines are shown and the environment stays resumable: run it again.
//!
//! `--dry-run` reads the facts and reports the services `up -d` would create, start, recreate or
//! remove and those to restart, and changes nothing.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::provision::StepReport;
use super::release::{configured_host, connect_for, render};
use super::steps::StepRun;
use crate::host::Host;
use crate::stack::{self, RenderedStack};
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::compose::{self, ServiceAction};
use crate::tasks::{Plan, TaskError};

pub use crate::tasks::compose::ServiceHealth;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for every service to be healthy.
    pub timeout: Duration,
    /// Report what would change; change nothing.
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub name: String,
    pub host: String,
    pub dry_run: bool,
    /// Whether anything changed (dry run: would change).
    pub changed: bool,
    pub steps: Vec<StepReport>,
    /// Services whose container `up -d` created or recreated.
    pub recreated: Vec<String>,
    /// Services restarted to apply changed files.
    pub restarted: Vec<String>,
    /// Dry run: what `up -d` would do to each service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would: Vec<ServiceAction>,
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
    let (record, _) = ready_to_run(&state)?;
    let session = connect_for(
        data,
        &mut state,
        &record,
        "run",
        options.dry_run,
        Duration::from_secs(30),
    )
    .await?;
    let result = run_on(data, &mut state, &session, options, &[]).await;
    session.close().await;
    let mut running = result?;
    running.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(running)
}

/// The host and its setup, or why `run` cannot start the stack yet.
fn ready_to_run(
    state: &EnvironmentState,
) -> Result<(crate::state::HostRecord, crate::state::HostSetup), OpsError> {
    let found = configured_host(state, "run")?;
    if state.lifecycle < Lifecycle::Released {
        let env = &state.name;
        return Err(OpsError::Refused(format!(
            "environment '{env}' has not been released yet (state '{}'); run \
             `torrust-tracker-deployer release {env}` first",
            state.lifecycle
        )));
    }
    Ok(found)
}

/// Runs (or, in a dry run, plans) on a host already reached, under a lock the caller holds.
/// `also_restart`: services a dry-run release said it would owe a restart (deploy's plan).
pub async fn run_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    options: &RunOptions,
    also_restart: &[String],
) -> Result<Running, OpsError> {
    let started = Instant::now();
    let (record, setup) = if options.dry_run {
        configured_host(state, "run")?
    } else {
        ready_to_run(state)?
    };
    let rendered = render(state)?;
    let compose_command = setup.compose_command.clone();
    let mut running = Running {
        name: state.name.clone(),
        host: record.ip.clone(),
        dry_run: options.dry_run,
        changed: false,
        steps: Vec::new(),
        recreated: Vec::new(),
        restarted: Vec::new(),
        would: Vec::new(),
        services: Vec::new(),
        announce_urls: record
            .ip
            .parse()
            .map(|ip| stack::announce_urls(&state.config, ip))
            .unwrap_or_default(),
        elapsed_ms: 0,
    };
    if options.dry_run {
        let mut pending = state.pending_restarts.clone();
        pending.extend(also_restart.iter().cloned());
        plan_run(host, &rendered, &compose_command, &pending, &mut running)
            .await
            .map_err(|e| OpsError::Failed(format!("run --dry-run: {e}")))?;
    } else {
        let mut run = StepRun::begin(data, state, "run")?;
        run_steps(
            &mut run,
            state,
            host,
            &rendered,
            &compose_command,
            options,
            &mut running,
        )
        .await?;
        state.pending_restarts.clear();
        let lifecycle = (state.lifecycle < Lifecycle::Running).then_some(Lifecycle::Running);
        run.finish(state, lifecycle)?;
    }
    running.changed = running.steps.iter().any(|s| s.changed);
    running.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(running)
}

fn report<A>(step: &str, plan: &Plan<A>) -> StepReport {
    StepReport {
        step: step.into(),
        changed: plan.is_apply(),
        detail: plan.text().to_string(),
    }
}

/// Reads the compose facts and the services' health once; reports what a run would do.
async fn plan_run(
    host: &dyn Host,
    rendered: &RenderedStack,
    compose_command: &str,
    pending: &[String],
    running: &mut Running,
) -> Result<(), TaskError> {
    let facts = compose::read(host, compose_command, rendered).await?;
    let (up, _exact) = compose::plan_up(rendered, &facts);
    let recreated: Vec<String> = match &up {
        Plan::Apply(acts, _) => acts
            .iter()
            .filter(|a| a.action != "start")
            .map(|a| a.service.clone())
            .collect(),
        Plan::Nothing(_) => Vec::new(),
    };
    let mut pending = pending.to_vec();
    pending.sort();
    pending.dedup();
    let restart = compose::plan_restart(&pending, &recreated);
    running.steps = vec![report(compose::UP, &up), report(compose::RESTART, &restart)];
    if let Plan::Apply(acts, _) = up {
        running.would = acts;
    }
    if let Plan::Apply(list, _) = restart {
        running.restarted = list;
    }
    running.services = compose::probe_health(host, rendered).await?;
    Ok(())
}

/// Runs the compose task as recorded steps: up, restarts, health.
async fn run_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
    compose_command: &str,
    options: &RunOptions,
    running: &mut Running,
) -> Result<(), OpsError> {
    let (up, recreated) = run
        .step(state, compose::UP, async |_s| {
            let facts = compose::read(host, compose_command, rendered).await?;
            let (plan, exact) = compose::plan_up(rendered, &facts);
            // Without the definitions' hashes only `up -d` can tell whether one changed.
            let recreated = if plan.is_apply() || !exact {
                compose::up(host, compose_command).await?
            } else {
                Vec::new()
            };
            Ok::<_, TaskError>((plan, recreated))
        })
        .await?;
    running.steps.push(StepReport {
        step: compose::UP.into(),
        changed: !recreated.is_empty() || up.is_apply(),
        detail: if recreated.is_empty() {
            up.text().to_string()
        } else {
            format!("created or recreated: {}", recreated.join(", "))
        },
    });

    // Files a release changed are mounted into containers that `up -d` did not recreate.
    let restart = compose::plan_restart(&state.pending_restarts, &recreated);
    if let Plan::Apply(list, _) = &restart {
        run.step(state, compose::RESTART, async |_s| {
            compose::restart(host, compose_command, list).await
        })
        .await?;
        running.restarted = list.clone();
    }
    running.steps.push(report(compose::RESTART, &restart));

    let services = run
        .step(state, compose::HEALTH, async |_s| {
            compose::wait_healthy(host, rendered, options.timeout, Duration::from_secs(2)).await
        })
        .await?;
    running.steps.push(StepReport {
        step: compose::HEALTH.into(),
        changed: false,
        detail: services
            .iter()
            .map(|s| format!("{} {}", s.service, s.detail))
            .collect::<Vec<_>>()
            .join("; "),
    });
    running.recreated = recreated;
    running.services = services;
    Ok(())
}
