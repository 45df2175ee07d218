//! Stopping, starting and restarting the stack's services: `compose stop`, `start` and
//! `restart`, on the containers `run` created (none is created, recreated or removed here).
//!
//! - facts: [`compose::read`] (each container's state);
//! - plan: [`plan_stop`] (the running ones) and [`plan_start`] (the stopped ones; a service
//!   without a container cannot be started: `run` creates it), both pure;
//! - apply: [`apply`] (`compose stop|start|restart SERVICE...`);
//! - verify: [`verify_stopped`] reads the states again; start and restart wait for health with
//!   [`compose::wait_healthy`] on the services concerned ([`only`]).

use serde::Serialize;

use super::compose::{self, ComposeFacts, in_stack_dir, indent_tail};
use super::{Plan, TaskError};
use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::RenderedStack;

pub const STOP: &str = "stop services";
pub const START: &str = "start services";
pub const RESTART: &str = "restart services";
pub const VERIFY_STOPPED: &str = "verify stopped";

/// A Compose verb this task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Stop,
    Start,
    Restart,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Stop => "stop",
            Verb::Start => "start",
            Verb::Restart => "restart",
        }
    }

    /// The step (and task) name.
    pub fn step(self) -> &'static str {
        match self {
            Verb::Stop => STOP,
            Verb::Start => START,
            Verb::Restart => RESTART,
        }
    }
}

/// A service's container state (`running`, `exited`, ..., or `no container`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub service: String,
    pub state: String,
}

/// The services asked for, or every service of the model when none was, in the model's order.
pub fn selected(rendered: &RenderedStack, asked: &[String]) -> Vec<String> {
    rendered
        .services
        .iter()
        .map(|s| s.name.as_str().to_string())
        .filter(|s| asked.is_empty() || asked.contains(s))
        .collect()
}

/// The model with only these services (for the health wait of a few).
pub fn only(rendered: &RenderedStack, services: &[String]) -> RenderedStack {
    let mut r = rendered.clone();
    r.services
        .retain(|s| services.iter().any(|n| n == s.name.as_str()));
    r
}

/// Each service's container state.
pub fn states(facts: &ComposeFacts, services: &[String]) -> Vec<ServiceState> {
    services
        .iter()
        .map(|s| ServiceState {
            service: s.clone(),
            state: facts
                .containers
                .get(s)
                .map(|c| c.state.clone())
                .unwrap_or_else(|| "no container".into()),
        })
        .collect()
}

fn is_up(state: &str) -> bool {
    matches!(state, "running" | "restarting" | "paused")
}

/// The services to stop: those whose container runs.
pub fn plan_stop(facts: &ComposeFacts, services: &[String]) -> Plan<Vec<String>> {
    let up: Vec<String> = states(facts, services)
        .into_iter()
        .filter(|s| is_up(&s.state))
        .map(|s| s.service)
        .collect();
    if up.is_empty() {
        Plan::Nothing(format!("already stopped: {}", services.join(", ")))
    } else {
        let text = format!("stop {}", up.join(", "));
        Plan::Apply(up, text)
    }
}

/// The services to start: those whose container is stopped. A service without a container
/// fails the plan: `run` creates containers.
pub fn plan_start(
    facts: &ComposeFacts,
    services: &[String],
    env: &str,
) -> Result<Plan<Vec<String>>, TaskError> {
    let all = states(facts, services);
    let missing: Vec<&str> = all
        .iter()
        .filter(|s| !facts.containers.contains_key(&s.service))
        .map(|s| s.service.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(TaskError::compose(
            START,
            format!("no container for {} on the host", missing.join(", ")),
            format!(
                "`start` starts existing containers; `torrust-tracker-deployer run {env}` \
                 creates the missing ones"
            ),
        ));
    }
    let down: Vec<String> = all
        .into_iter()
        .filter(|s| !is_up(&s.state))
        .map(|s| s.service)
        .collect();
    if down.is_empty() {
        return Ok(Plan::Nothing(format!(
            "already running: {}",
            services.join(", ")
        )));
    }
    let text = format!("start {}", down.join(", "));
    Ok(Plan::Apply(down, text))
}

/// The command line of `compose VERB [SERVICE...]` in the stack's directory. (No `--` before
/// the services: Compose v1's `start` does not take one. The names are the model's.)
pub fn command(compose: &str, verb: Verb, services: &[String]) -> String {
    let mut c = format!("{} {}", in_stack_dir(compose), verb.as_str());
    if !services.is_empty() {
        for s in services {
            c.push(' ');
            c.push_str(&shell_quote(s));
        }
    }
    c.push_str(" 2>&1");
    c
}

/// Runs `compose VERB` on these services (all of the project's when the list is empty).
pub async fn apply(
    host: &dyn Host,
    compose: &str,
    verb: Verb,
    services: &[String],
) -> Result<(), TaskError> {
    let out = host.sudo(&command(compose, verb, services)).await?;
    if out.success() {
        return Ok(());
    }
    Err(TaskError::compose(
        verb.step(),
        format!(
            "`{compose} {} {}` failed on the host ({}):\n{}",
            verb.as_str(),
            services.join(" "),
            out.status,
            indent_tail(&out.stdout_str(), 20)
        ),
        "fix the cause (see `status`), then run it again",
    ))
}

/// Reads the states again: every service must be stopped.
pub async fn verify_stopped(
    host: &dyn Host,
    compose_command: &str,
    rendered: &RenderedStack,
    services: &[String],
) -> Result<Vec<ServiceState>, TaskError> {
    let facts = compose::read(host, compose_command, rendered).await?;
    let after = states(&facts, services);
    let still: Vec<String> = after
        .iter()
        .filter(|s| is_up(&s.state))
        .map(|s| format!("{} ({})", s.service, s.state))
        .collect();
    if still.is_empty() {
        return Ok(after);
    }
    Err(TaskError::NotVerified {
        task: STOP.into(),
        found: format!("still up: {}", still.join(", ")),
        fix: "look at `status` and the containers on the host, then run it again".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};

    fn rendered() -> RenderedStack {
        let loaded = crate::config::parse(
            &crate::config::template(crate::config::ProviderKind::Lxd),
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        crate::stack::render(&loaded.config).unwrap()
    }

    fn facts(states: &[(&str, &str)]) -> ComposeFacts {
        let mut text = String::from("--containers\n");
        for (s, st) in states {
            text.push_str(&format!("{s} id-{s} {st} h sha256:i\n"));
        }
        compose::parse_facts(&text)
    }

    #[test]
    fn selection_keeps_the_models_order_and_only_trims_the_health_wait() {
        let r = rendered();
        let all = selected(&r, &[]);
        assert_eq!(all.len(), r.services.len());
        let last = all.last().unwrap().clone();
        assert_eq!(
            selected(&r, &[last.clone(), all[0].clone()]),
            vec![all[0].clone(), last.clone()]
        );
        let one = only(&r, std::slice::from_ref(&last));
        assert_eq!(one.services.len(), 1);
        assert_eq!(one.files.len(), r.files.len());
    }

    #[test]
    fn stop_and_start_plan_only_what_differs() {
        let services = vec!["tracker".to_string(), "mysql".to_string()];
        let f = facts(&[("tracker", "running"), ("mysql", "exited")]);
        assert_eq!(
            plan_stop(&f, &services),
            Plan::Apply(vec!["tracker".into()], "stop tracker".into())
        );
        assert_eq!(
            plan_start(&f, &services, "e").unwrap(),
            Plan::Apply(vec!["mysql".into()], "start mysql".into())
        );
        let down = facts(&[("tracker", "exited"), ("mysql", "exited")]);
        assert!(!plan_stop(&down, &services).is_apply());
        let up = facts(&[("tracker", "running"), ("mysql", "restarting")]);
        assert!(!plan_start(&up, &services, "e").unwrap().is_apply());

        let missing = facts(&[("tracker", "exited")]);
        let err = plan_start(&missing, &services, "e")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no container for mysql"), "{err}");
        assert!(err.contains("torrust-tracker-deployer run e"), "{err}");
    }

    #[tokio::test]
    async fn commands_name_the_services() {
        assert_eq!(
            command("docker-compose", Verb::Stop, &[]),
            "cd /opt/torrust && docker-compose stop 2>&1"
        );
        assert_eq!(
            command(
                "docker compose",
                Verb::Restart,
                &["tracker".into(), "mysql".into()]
            ),
            "cd /opt/torrust && docker compose restart tracker mysql 2>&1"
        );
        let host = FakeHost::new();
        host.reply(" start tracker", [Reply::fail(1, "")]);
        let err = apply(&host, "docker-compose", Verb::Start, &["tracker".into()])
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::Compose { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("`docker-compose start tracker` failed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_service_still_running_after_stop_fails_the_check() {
        let r = rendered();
        let host = FakeHost::new();
        host.reply(
            "echo --containers",
            [
                Reply::ok("--containers\ntracker id exited h i\n"),
                Reply::ok("--containers\ntracker id running h i\n"),
            ],
        );
        let ok = verify_stopped(&host, "docker-compose", &r, &["tracker".into()])
            .await
            .unwrap();
        assert_eq!(ok[0].state, "exited");
        let err = verify_stopped(&host, "docker-compose", &r, &["tracker".into()])
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::NotVerified { .. }), "{err}");
    }
}
