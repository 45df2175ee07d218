//! `stop`, `start` and `restart`: the stack's services, all of them or a few, on an
//! environment whose stack `run` started.
//!
//! Each is a recorded command of steps over the [`services`] task: `stop` stops the running
//! containers and checks they stopped; `start` starts the stopped ones and `restart` restarts
//! them, and both wait until the services concerned are healthy, like `run`. No container is
//! created, recreated or removed (that is `run`'s job).
//!
//! The lifecycle (ADR 19): stopping every service records `stopped`; `start` or `restart` of
//! any service, `run` and `deploy` record `running` again. `test` refuses a stopped
//! environment, naming `start`. Stopping some services records nothing: `status` shows them.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::host::{connect_for, released_host};
use super::release::render;
use super::steps::{Done, StepRun};
use super::{OpsError, StepReport};
use crate::host::Host;
use crate::stack::RenderedStack;
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::compose::{self, ServiceHealth};
pub use crate::tasks::services::Verb;
use crate::tasks::services::{self, ServiceState};
use crate::tasks::{Plan, TaskError};

#[derive(Debug, Clone)]
pub struct ServicesOptions {
    /// The services to act on; empty: every service of the stack.
    pub services: Vec<String>,
    /// How long `start` and `restart` wait for the services to be healthy.
    pub timeout: Duration,
}

/// What `stop`, `start` or `restart` did.
#[derive(Debug, Serialize)]
pub struct ServicesDone {
    pub name: String,
    pub host: String,
    /// `stop`, `start` or `restart`.
    pub command: &'static str,
    /// The services it acted on (all of the stack's when none was named).
    pub services: Vec<String>,
    /// Whether any container changed state.
    pub changed: bool,
    pub steps: Vec<StepReport>,
    /// `stop`: each service's container state afterwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<ServiceState>,
    /// `start`, `restart`: each service's health afterwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<ServiceHealth>,
    /// The environment's lifecycle state afterwards (`stopped` after stopping everything).
    pub lifecycle: Lifecycle,
    pub elapsed_ms: u64,
}

/// Service names the environment does not have (exit 2, kind `usage`).
#[derive(Debug, thiserror::Error)]
#[error(
    "environment '{env}' has no service {}; its services are: {}",
    unknown.join(", "),
    known.join(", ")
)]
pub struct UnknownService {
    pub env: String,
    pub unknown: Vec<String>,
    pub known: Vec<String>,
}

/// The stack's services, after checking that every name `asked` is one of them.
pub fn known_services(
    state: &EnvironmentState,
    asked: &[String],
) -> Result<(RenderedStack, Vec<String>), OpsError> {
    let rendered = render(state)?;
    let known = services::selected(&rendered, &[]);
    let mut unknown: Vec<String> = asked
        .iter()
        .filter(|a| !known.contains(a))
        .cloned()
        .collect();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(OpsError::typed(UnknownService {
            env: state.name.clone(),
            unknown,
            known,
        }));
    }
    Ok((rendered, known))
}

/// `stop`, `start` or `restart` (`verb`) of the environment's services, under its lock, over
/// one SSH connection.
pub async fn operate(
    data: &DataDir,
    env: &str,
    verb: Verb,
    options: &ServicesOptions,
    lock_wait: Duration,
) -> Result<ServicesDone, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(env, verb.as_str(), lock_wait)?;
    let mut state = data.load(env)?;
    known_services(&state, &options.services)?;
    let (record, _) = started_stack(&state, verb)?;
    let session = connect_for(
        data,
        &mut state,
        &record,
        verb.as_str(),
        false,
        Duration::from_secs(30),
    )
    .await?;
    let result = operate_on(data, &mut state, &session, verb, options).await;
    session.close().await;
    let mut done = result?;
    done.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(done)
}

/// The host, or why the stack has nothing to stop or start: `run` has not started it (or the
/// environment file changed since, and `deploy` must apply it first).
fn started_stack(
    state: &EnvironmentState,
    verb: Verb,
) -> Result<(crate::state::HostRecord, crate::state::HostSetup), OpsError> {
    let found = released_host(state, verb.as_str())?;
    if !matches!(state.lifecycle, Lifecycle::Running | Lifecycle::Stopped) {
        let env = &state.name;
        return Err(OpsError::Refused(format!(
            "environment '{env}' is '{}': its stack was not started with its current settings, \
             so there is nothing to {}. Run `torrust-tracker-deployer deploy {env}` (or `run \
             {env}`) first",
            state.lifecycle,
            verb.as_str()
        )));
    }
    Ok(found)
}

/// Acts on a host already reached, under the lock the caller holds.
pub async fn operate_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    verb: Verb,
    options: &ServicesOptions,
) -> Result<ServicesDone, OpsError> {
    let started = Instant::now();
    let (record, setup) = started_stack(state, verb)?;
    let (rendered, known) = known_services(state, &options.services)?;
    let selected = services::selected(&rendered, &options.services);
    let mut done = ServicesDone {
        name: state.name.clone(),
        host: record.ip.clone(),
        command: verb.as_str(),
        services: selected.clone(),
        changed: false,
        steps: Vec::new(),
        states: Vec::new(),
        health: Vec::new(),
        lifecycle: state.lifecycle,
        elapsed_ms: 0,
    };
    let on = Target {
        host,
        compose: &setup.compose_command,
        rendered: &rendered,
        services: &selected,
        env: &state.name.clone(),
    };
    let mut run = StepRun::begin(data, state, verb.as_str())?;
    match verb {
        Verb::Stop => stop_steps(&mut run, state, &on, &mut done).await?,
        Verb::Start | Verb::Restart => {
            start_steps(&mut run, state, &on, verb, options.timeout, &mut done).await?
        }
    }
    let everything = selected.len() == known.len();
    let lifecycle = match (verb, state.lifecycle) {
        (Verb::Stop, Lifecycle::Running) if everything => Some(Lifecycle::Stopped),
        (Verb::Start | Verb::Restart, Lifecycle::Stopped) => Some(Lifecycle::Running),
        _ => None,
    };
    run.finish(state, lifecycle)?;
    done.lifecycle = state.lifecycle;
    done.changed = done.steps.iter().any(|s| s.changed);
    done.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(done)
}

/// What the steps act on.
struct Target<'a> {
    host: &'a dyn Host,
    compose: &'a str,
    rendered: &'a RenderedStack,
    services: &'a [String],
    env: &'a str,
}

fn report<A>(step: &str, plan: &Plan<A>) -> StepReport {
    StepReport {
        step: step.into(),
        changed: plan.is_apply(),
        detail: plan.text().to_string(),
    }
}

async fn stop_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    on: &Target<'_>,
    done: &mut ServicesDone,
) -> Result<(), OpsError> {
    let plan = run
        .step_changed(state, services::STOP, async |_s| {
            let facts = compose::read(on.host, on.compose, on.rendered).await?;
            let plan = services::plan_stop(&facts, on.services);
            if let Plan::Apply(list, _) = &plan {
                services::apply(on.host, on.compose, Verb::Stop, list).await?;
            }
            let changed = plan.is_apply();
            Ok::<_, TaskError>(Done::new(plan, changed))
        })
        .await?;
    done.steps.push(report(services::STOP, &plan));
    done.states = run
        .step(state, services::VERIFY_STOPPED, async |_s| {
            services::verify_stopped(on.host, on.compose, on.rendered, on.services).await
        })
        .await?;
    done.steps.push(StepReport {
        step: services::VERIFY_STOPPED.into(),
        changed: false,
        detail: states_text(&done.states),
    });
    Ok(())
}

async fn start_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    on: &Target<'_>,
    verb: Verb,
    timeout: Duration,
    done: &mut ServicesDone,
) -> Result<(), OpsError> {
    let plan = run
        .step_changed(state, verb.step(), async |_s| {
            let facts = compose::read(on.host, on.compose, on.rendered).await?;
            // Restart acts on every service named, running or not; start only on stopped ones.
            let plan = match services::plan_start(&facts, on.services, on.env)? {
                _ if verb == Verb::Restart => Plan::Apply(
                    on.services.to_vec(),
                    format!("restart {}", on.services.join(", ")),
                ),
                plan => plan,
            };
            if let Plan::Apply(list, _) = &plan {
                services::apply(on.host, on.compose, verb, list).await?;
            }
            let changed = plan.is_apply();
            Ok::<_, TaskError>(Done::new(plan, changed))
        })
        .await?;
    done.steps.push(report(verb.step(), &plan));
    let concerned = services::only(on.rendered, on.services);
    done.health = run
        .step(state, compose::HEALTH, async |_s| {
            compose::wait_healthy(on.host, &concerned, timeout, Duration::from_millis(500)).await
        })
        .await?;
    done.steps.push(StepReport {
        step: compose::HEALTH.into(),
        changed: false,
        detail: done
            .health
            .iter()
            .map(|s| format!("{} {}", s.service, s.detail))
            .collect::<Vec<_>>()
            .join("; "),
    });
    Ok(())
}

fn states_text(states: &[ServiceState]) -> String {
    states
        .iter()
        .map(|s| format!("{} {}", s.service, s.state))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::Classify;
    use crate::host::fake::{FakeHost, Reply};
    use crate::ops::release::tests::configured_state;
    use crate::ops::run::tests::facts;

    fn options(services: &[&str]) -> ServicesOptions {
        ServicesOptions {
            services: services.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A running environment whose stack has the tracker and Prometheus.
    fn running(data: &DataDir) -> EnvironmentState {
        let mut state = configured_state(data);
        let mut file = crate::config::minimal_test_file("rel", "Adm1n-T0ken-services-test");
        file["prometheus"] = serde_json::json!({ "scrape_interval_in_secs": 15 });
        state.config = crate::config::parse(&file.to_string(), data.root())
            .unwrap()
            .config;
        state.lifecycle = Lifecycle::Running;
        data.save(&mut state).unwrap();
        state
    }

    /// Facts with every container in `state_of_all`.
    fn all(rendered: &RenderedStack, state_of_all: &str) -> String {
        facts(rendered, None).replace(" running ", &format!(" {state_of_all} "))
    }

    fn healthy(rendered: &RenderedStack) -> String {
        rendered
            .services
            .iter()
            .map(|s| format!("{} running healthy ok\n", s.name))
            .collect()
    }

    #[tokio::test]
    async fn stopping_everything_records_stopped_and_starting_records_running() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = running(&data);
        let rendered = render(&state).unwrap();
        let host = FakeHost::new();
        host.reply(
            "echo --containers",
            [
                Reply::ok(all(&rendered, "running")),
                Reply::ok(all(&rendered, "exited")),
            ],
        );
        host.reply("docker-compose stop ", [Reply::ok("Stopping ... done\n")]);
        let done = operate_on(&data, &mut state, &host, Verb::Stop, &options(&[]))
            .await
            .unwrap();
        assert!(done.changed);
        assert_eq!(done.lifecycle, Lifecycle::Stopped);
        assert!(
            done.states.iter().all(|s| s.state == "exited"),
            "{:?}",
            done.states
        );
        assert_eq!(data.load("rel").unwrap().lifecycle, Lifecycle::Stopped);
        let stop = &host.commands()[1];
        assert!(
            stop.starts_with("cd /opt/torrust && docker-compose stop tracker"),
            "{stop}"
        );

        // Stopping again changes nothing.
        let done = operate_on(&data, &mut state, &host, Verb::Stop, &options(&[]))
            .await
            .unwrap();
        assert!(!done.changed, "{:?}", done.steps);

        // start: only the stopped ones, then the health wait; running again.
        let host = FakeHost::new();
        host.reply("echo --containers", [Reply::ok(all(&rendered, "exited"))]);
        host.reply("docker-compose start ", [Reply::ok("")]);
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok(healthy(&rendered))],
        );
        let done = operate_on(&data, &mut state, &host, Verb::Start, &options(&[]))
            .await
            .unwrap();
        assert!(done.changed && done.health.iter().all(|h| h.healthy));
        assert_eq!(done.lifecycle, Lifecycle::Running);
        assert_eq!(data.load("rel").unwrap().lifecycle, Lifecycle::Running);
    }

    #[tokio::test]
    async fn a_few_services_leave_the_lifecycle_alone_and_wait_only_for_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = running(&data);
        let rendered = render(&state).unwrap();
        let host = FakeHost::new();
        host.reply(
            "echo --containers",
            [
                Reply::ok(facts(&rendered, None)),
                Reply::ok(facts(&rendered, Some("tracker"))),
            ],
        );
        host.reply("stop tracker 2>&1", [Reply::ok("")]);
        let done = operate_on(&data, &mut state, &host, Verb::Stop, &options(&["tracker"]))
            .await
            .unwrap();
        assert_eq!(done.services, vec!["tracker"]);
        assert_eq!(done.lifecycle, Lifecycle::Running);

        let host = FakeHost::new();
        host.reply("echo --containers", [Reply::ok(facts(&rendered, None))]);
        host.reply("restart tracker 2>&1", [Reply::ok("")]);
        host.reply(
            "{{.State.Status}} {{if .State.Health}}",
            [Reply::ok("tracker running healthy -\n")],
        );
        let done = operate_on(
            &data,
            &mut state,
            &host,
            Verb::Restart,
            &options(&["tracker"]),
        )
        .await
        .unwrap();
        assert!(done.changed);
        assert_eq!(done.health.len(), 1, "{:?}", done.health);
        assert!(
            host.commands()
                .iter()
                .any(|c| c.contains("restart tracker"))
        );
    }

    #[tokio::test]
    async fn unknown_services_and_a_stack_never_run_are_refused_before_any_remote_command() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = running(&data);
        let host = FakeHost::new();
        let err = operate_on(
            &data,
            &mut state,
            &host,
            Verb::Stop,
            &options(&["tracker", "nope"]),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), crate::error_kind::ErrorKind::Usage);
        assert_eq!(err.exit_code(), 2);
        let m = err.to_string();
        assert!(
            m.contains(
                "has no service nope; its services are: tracker, stats-exporter, prometheus"
            ),
            "{m}"
        );

        state.lifecycle = Lifecycle::Released;
        let err = operate_on(&data, &mut state, &host, Verb::Start, &options(&[]))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("deploy rel"), "{err}");
        assert!(host.calls().is_empty(), "{:?}", host.calls());
    }
}
