//! `rollback ENV [--to N]`: put a recorded release back and restart only what it changes.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name, render_steps};
use crate::ops::rollback::{self, RollbackOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// The release to put back: its number in `history` (default: the one before the newest).
    #[arg(long, value_name = "N")]
    pub to: Option<usize>,
    /// Seconds to wait for every service to be healthy.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = RollbackOptions {
        to: args.to,
        timeout: Duration::from_secs(args.timeout),
    };
    let r = block_on(rollback::rollback(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&r, || {
        let mut t = if r.changed {
            format!("Environment '{}': release {} is back.\n", r.name, r.to)
        } else {
            format!(
                "Environment '{}' already runs release {}; nothing changed.\n",
                r.name, r.to
            )
        };
        t.push_str(&render_steps(&r.steps));
        for f in r.files.iter().filter(|f| f.change != "unchanged") {
            t.push_str(&format!("    {:<9} {}\n", f.change, f.path.display()));
        }
        t.push('\n');
        for s in &r.services {
            t.push_str(&super::run::service_line(s));
        }
        t.push_str(&format!(
            "  images:    {}\n",
            r.images
                .iter()
                .map(|i| i.reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        t.push_str(&format!(
            "  took:      {:.1} s\n  next:      torrust-tracker-deployer test {}\n",
            r.elapsed_ms as f64 / 1000.0,
            r.name
        ));
        t
    })?;
    Ok(())
}
