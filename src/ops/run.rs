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
use super::StepReport;
use super::host::{configured_host, connect_for};
use super::release::render;
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
    let _lock = data.lock(env, &super::lock_name("run", options.dry_run), lock_wait)?;
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
        // Released, or stopped (`stop`): `up -d` started it.
        let lifecycle = (state.lifecycle != Lifecycle::Running).then_some(Lifecycle::Running);
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

/// Runs the compose task as recorded steps: up, the restarts `state` owes, health. `rendered`
/// is the stack on the host: the model's, or a recorded release's (`rollback`).
pub(crate) async fn run_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
    compose_command: &str,
    options: &RunOptions,
    running: &mut Running,
) -> Result<(), OpsError> {
    let (up, recreated, first_probe) = run
        .step(state, compose::UP, async |_s| {
            let facts = compose::read(host, compose_command, rendered).await?;
            let (plan, exact) = compose::plan_up(rendered, &facts);
            // Without the definitions' hashes only `up -d` can tell whether one changed.
            if plan.is_apply() || !exact {
                let recreated = compose::up(host, compose_command).await?;
                Ok::<_, TaskError>((plan, recreated, None))
            } else {
                let first = compose::judge_all(rendered, &facts.health.join("\n"));
                Ok((plan, Vec::new(), Some(first)))
            }
        })
        .await?;
    // What `up -d` did, not what the facts predicted: a container started or removed keeps no
    // new ID, and a predicted recreation that Compose found unneeded changed nothing.
    let started_or_removed = match &up {
        Plan::Apply(acts, _) => acts.iter().any(|a| a.action != "recreate"),
        Plan::Nothing(_) => false,
    };
    running.steps.push(StepReport {
        step: compose::UP.into(),
        changed: !recreated.is_empty() || started_or_removed,
        detail: if !recreated.is_empty() {
            format!("created or recreated: {}", recreated.join(", "))
        } else if started_or_removed {
            up.text().to_string()
        } else {
            "every container up to date".to_string()
        },
    });

    // Files a release changed are mounted into containers that `up -d` did not recreate.
    let restart = compose::plan_restart(&state.pending_restarts, &recreated);
    // The health read with the facts holds only while nothing was restarted.
    let first_probe = first_probe.filter(|_| !restart.is_apply());
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
            let interval = Duration::from_millis(500);
            compose::wait_healthy_from(host, rendered, options.timeout, interval, first_probe).await
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};
    use crate::ops::release::tests::configured_state;

    /// Makes `host` answer the health read with every service of `rendered` running and
    /// healthy.
    pub(crate) fn reply_all_healthy(host: &FakeHost, rendered: &RenderedStack) {
        let healthy: String = rendered
            .services
            .iter()
            .map(|s| format!("{} running healthy ok\n", s.name))
            .collect();
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok(healthy)],
        );
    }

    /// Compose facts where every service runs its current definition and image, except
    /// `stopped`.
    pub(crate) fn facts(rendered: &RenderedStack, stopped: Option<&str>) -> String {
        let mut t = String::from("--containers\n");
        for s in &rendered.services {
            let state = if Some(s.name.as_str()) == stopped {
                "exited"
            } else {
                "running"
            };
            t.push_str(&format!(
                "{} id-{} {state} h-{} sha256:i\n",
                s.name, s.name, s.name
            ));
        }
        t.push_str("--hash\n");
        for s in &rendered.services {
            t.push_str(&format!("{} h-{}\n", s.name, s.name));
        }
        t.push_str("--images\n");
        for i in &rendered.images {
            t.push_str(&format!("{i} sha256:i\n"));
        }
        t.push_str("--health\n");
        for s in &rendered.services {
            if Some(s.name.as_str()) == stopped {
                t.push_str(&format!("{} exited none -\n", s.name));
            } else {
                t.push_str(&format!("{} running healthy ok\n", s.name));
            }
        }
        t
    }

    fn healthy(rendered: &RenderedStack) -> String {
        rendered
            .services
            .iter()
            .map(|s| format!("{} running healthy ok\n", s.name))
            .collect()
    }

    fn options(dry_run: bool) -> RunOptions {
        RunOptions {
            timeout: Duration::from_secs(5),
            dry_run,
        }
    }

    #[tokio::test]
    async fn an_up_to_date_stack_is_not_touched_but_owed_restarts_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Released;
        state.pending_restarts = vec!["tracker".into()];
        data.save(&mut state).unwrap();
        let rendered = render(&state).unwrap();
        let host = FakeHost::new();
        host.reply("echo --containers", [Reply::ok(facts(&rendered, None))]);
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok(healthy(&rendered))],
        );
        host.reply(" restart tracker", [Reply::ok("")]);

        let plan = run_on(&data, &mut state, &host, &options(true), &[])
            .await
            .unwrap();
        assert!(plan.changed && plan.would.is_empty());
        assert_eq!(plan.restarted, vec!["tracker"]);
        assert_eq!(data.load("rel").unwrap().pending_restarts, vec!["tracker"]);

        host.clear_calls();
        let ran = run_on(&data, &mut state, &host, &options(false), &[])
            .await
            .unwrap();
        assert!(ran.recreated.is_empty());
        assert_eq!(ran.restarted, vec!["tracker"]);
        let commands = host.commands();
        assert_eq!(commands.len(), 3, "{commands:#?}");
        assert!(
            commands.iter().all(|c| !c.contains("up -d")),
            "{commands:#?}"
        );
        assert_eq!(
            commands[1],
            "cd /opt/torrust && docker-compose restart tracker 2>&1"
        );
        let saved = data.load("rel").unwrap();
        assert_eq!(saved.lifecycle, Lifecycle::Running);
        assert!(saved.pending_restarts.is_empty());

        // Nothing owed, nothing different: a dry run says nothing would change.
        let plan = run_on(&data, &mut state, &host, &options(true), &[])
            .await
            .unwrap();
        assert!(!plan.changed, "{:?}", plan.steps);

        // And a run reads its facts, with the first health probe, in one command.
        host.clear_calls();
        let ran = run_on(&data, &mut state, &host, &options(false), &[])
            .await
            .unwrap();
        assert!(!ran.changed, "{:?}", ran.steps);
        assert!(ran.services.iter().all(|s| s.healthy), "{:?}", ran.services);
        let commands = host.commands();
        assert_eq!(commands.len(), 1, "{commands:#?}");
        assert!(commands[0].contains("echo --health"), "{commands:#?}");
    }

    #[tokio::test]
    async fn a_stopped_service_is_started_by_up() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Running;
        let rendered = render(&state).unwrap();
        let first = rendered.services[0].name.to_string();
        let host = FakeHost::new();
        host.reply(
            "echo --containers",
            [Reply::ok(facts(&rendered, Some(&first)))],
        );
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok(healthy(&rendered))],
        );
        host.reply("docker ps -a --no-trunc", [Reply::ok("")]);
        host.reply("up -d --remove-orphans", [Reply::ok("")]);

        let plan = run_on(&data, &mut state, &host, &options(true), &[])
            .await
            .unwrap();
        assert_eq!(plan.would.len(), 1);
        assert_eq!(
            (plan.would[0].service.as_str(), plan.would[0].action),
            (first.as_str(), "start")
        );
        assert!(host.commands().iter().all(|c| !c.contains("up -d")));

        let ran = run_on(&data, &mut state, &host, &options(false), &[])
            .await
            .unwrap();
        assert!(ran.changed);
        assert!(
            host.commands()
                .iter()
                .any(|c| c.contains("up -d --remove-orphans"))
        );
    }

    #[tokio::test]
    async fn a_predicted_recreation_that_compose_skips_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Running;
        let rendered = render(&state).unwrap();
        let host = FakeHost::new();
        // Every label differs from the hash Compose reports (say, another hash format).
        let (containers, rest) = facts(&rendered, None)
            .split_once("--hash")
            .map(|(c, r)| (c.replace(" h-", " old-h-"), r.to_string()))
            .unwrap();
        let labels_differ = format!("{containers}--hash{rest}");
        host.reply("echo --containers", [Reply::ok(labels_differ)]);
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok(healthy(&rendered))],
        );
        host.reply("docker ps -a --no-trunc", [Reply::ok("tracker same-id\n")]);
        host.reply("up -d --remove-orphans", [Reply::ok("")]);
        let ran = run_on(&data, &mut state, &host, &options(false), &[])
            .await
            .unwrap();
        assert!(host.commands().iter().any(|c| c.contains("up -d")));
        assert!(!ran.changed, "{:?}", ran.steps);
        assert_eq!(ran.steps[0].detail, "every container up to date");
    }
}
