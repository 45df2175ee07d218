//! `run ENV [--dry-run]`: start the released stack and wait until every service is healthy, or
//! show what that would change.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name, plan, render_steps};
use crate::ops::run::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Seconds to wait for every service to be healthy.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
    /// Show which services would be created, started, recreated or restarted, and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = RunOptions {
        timeout: Duration::from_secs(args.timeout),
        dry_run: args.dry_run,
    };
    let r = block_on(run::run(&global.data(), env, &options, global.lock_wait()))?;
    out.result(&r, || {
        if r.dry_run {
            let mut t = if r.changed {
                format!("Environment '{}': run would change:\n", r.name)
            } else {
                format!("Environment '{}': run would change nothing.\n", r.name)
            };
            t.push_str(&plan::run(&r));
            t.push_str("  (dry run: nothing was changed)\n");
            return t;
        }
        let mut t = if r.changed {
            format!("Environment '{}' is running.\n", r.name)
        } else {
            format!(
                "Environment '{}' was already running; nothing changed.\n",
                r.name
            )
        };
        t.push_str(&render_steps(&r.steps));
        t.push('\n');
        for s in &r.services {
            t.push_str(&service_line(s));
        }
        if !r.announce_urls.is_empty() {
            t.push_str("\n  announce URLs:\n");
            for u in &r.announce_urls {
                t.push_str(&format!("    {u}\n"));
            }
        }
        t.push_str(&format!(
            "  took:      {:.1} s\n  next:      torrust-tracker-deployer test {}\n",
            r.elapsed_ms as f64 / 1000.0,
            r.name
        ));
        t
    })?;
    Ok(())
}

/// One service's health, as `run` and its dry run print it.
pub(super) fn service_line(s: &crate::ops::run::ServiceHealth) -> String {
    format!(
        "  {:<11} {} {}\n",
        s.service,
        if s.healthy { "ok  " } else { "DOWN" },
        s.detail
    )
}
