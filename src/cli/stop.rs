//! `stop ENV [SERVICE...]`: stop the stack's services (all by default; the containers stay).
//! Stopping them all records the environment as `stopped`: `test` then refuses, and `start`,
//! `run` or `deploy` start it again.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name, render_steps};
use crate::ops::services::{self, ServicesDone, ServicesOptions, Verb};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    operate(
        &args.env,
        &args.services,
        Duration::ZERO,
        Verb::Stop,
        global,
        out,
    )
}

/// `stop`, `start` and `restart`: the operation on `services` of `env`, and its result.
pub(super) fn operate(
    env: &str,
    services: &[String],
    timeout: Duration,
    verb: Verb,
    global: &GlobalArgs,
    out: &Output,
) -> Result<(), CliError> {
    let env = env_name(env)?;
    let options = ServicesOptions {
        services: services.to_vec(),
        timeout,
    };
    let done = block_on(services::operate(
        &global.data(),
        env,
        verb,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&done, || text(&done))?;
    Ok(())
}

/// The text result of `stop`, `start` and `restart`.
pub(super) fn text(d: &ServicesDone) -> String {
    let verb = match d.command {
        "stop" => "stopped",
        "start" => "started",
        _ => "restarted",
    };
    let mut t = if d.changed {
        format!(
            "Environment '{}': {verb} {}.\n",
            d.name,
            d.services.join(", ")
        )
    } else {
        format!(
            "Environment '{}': nothing to do ({} already {}).\n",
            d.name,
            d.services.join(", "),
            if d.command == "stop" {
                "stopped"
            } else {
                "running"
            }
        )
    };
    t.push_str(&render_steps(&d.steps));
    for s in &d.states {
        t.push_str(&format!("  {:<11} {}\n", s.service, s.state));
    }
    for s in &d.health {
        t.push_str(&super::run::service_line(s));
    }
    t.push_str(&format!("  state:     {}\n", d.lifecycle));
    let next = match d.lifecycle {
        crate::state::Lifecycle::Stopped => "start",
        _ => "test",
    };
    t.push_str(&format!(
        "  took:      {:.1} s\n  next:      torrust-tracker-deployer {next} {}\n",
        d.elapsed_ms as f64 / 1000.0,
        d.name
    ));
    t
}
