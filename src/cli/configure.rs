//! `configure ENV [--dry-run]`: install Docker and Compose, harden the host.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::configure::{self, ConfigureOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for cloud-init and for other apt/dpkg runs to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub ready_timeout: u64,
    /// Seconds to keep trying to reach the host over SSH.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub ssh_timeout: u64,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = ConfigureOptions {
        dry_run: args.dry_run,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        ssh_timeout: Duration::from_secs(args.ssh_timeout),
    };
    let c = block_on(configure::configure(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&c, || {
        let changes = c
            .tasks
            .iter()
            .filter(|t| {
                matches!(
                    t.status,
                    crate::tasks::Status::Changed | crate::tasks::Status::WouldChange
                )
            })
            .count();
        let mut t = match (c.dry_run, c.changed) {
            (true, true) => format!(
                "Dry run: configure would make {changes} change(s) on '{}' ({}); nothing was changed.\n",
                c.name, c.os
            ),
            (true, false) => format!(
                "Dry run: '{}' ({}) is configured; configure would change nothing.\n",
                c.name, c.os
            ),
            (false, true) => format!("Environment '{}' configured ({}): {changes} change(s).\n", c.name, c.os),
            (false, false) => format!(
                "Environment '{}' ({}) was already configured; nothing changed.\n",
                c.name, c.os
            ),
        };
        for task in &c.tasks {
            t.push_str(&format!(
                "  {:<12} {:<28} {}{}\n",
                task.status.as_str(),
                task.task,
                task.detail,
                if task.elapsed_ms >= 100 {
                    format!(" ({:.1} s)", task.elapsed_ms as f64 / 1000.0)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(cmd) = &c.compose_command {
            t.push_str(&format!(
                "\n  compose:   {cmd} {}\n",
                c.compose_version.as_deref().unwrap_or("")
            ));
        }
        for w in &c.warnings {
            t.push_str(&format!("  WARNING:   {w}\n"));
        }
        t.push_str(&format!(
            "  took:      {:.1} s over {} SSH connection(s)\n",
            c.elapsed_ms as f64 / 1000.0,
            c.ssh_connections
        ));
        if !c.dry_run {
            t.push_str(&format!("  next:      torrust-tracker-deployer show {}\n", c.name));
        }
        t
    })?;
    Ok(())
}
