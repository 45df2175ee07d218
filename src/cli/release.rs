//! `release ENV [--dry-run]`: put the tracker stack's files and images on the host, or show
//! what that would change.

use super::{CliError, GlobalArgs, Output, block_on, env_name, plan, render_steps};
use crate::ops::release::{self, ReleaseOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Show what would change (files with a diff, secrets masked; images; services `run` would
    /// restart) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = ReleaseOptions {
        dry_run: args.dry_run,
    };
    let r = block_on(release::release(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&r, || {
        if r.dry_run {
            let mut t = if r.changed {
                format!("Environment '{}': release would change:\n", r.name)
            } else {
                format!("Environment '{}': release would change nothing.\n", r.name)
            };
            t.push_str(&plan::release(&r));
            t.push_str("  (dry run: nothing was changed)\n");
            return t;
        }
        let mut t = if r.changed {
            format!("Environment '{}' released.\n", r.name)
        } else {
            format!(
                "Environment '{}' was already released; nothing changed.\n",
                r.name
            )
        };
        t.push_str(&render_steps(&r.steps));
        for f in r.files.iter().filter(|f| f.change != "unchanged") {
            t.push_str(&format!("    {:<9} {}\n", f.change, f.path.display()));
        }
        if !r.pending_restarts.is_empty() {
            t.push_str(&format!(
                "\n  `run` will restart: {}\n",
                r.pending_restarts.join(", ")
            ));
        }
        t.push_str(&format!(
            "  took:      {:.1} s\n  next:      torrust-tracker-deployer run {}\n",
            r.elapsed_ms as f64 / 1000.0,
            r.name
        ));
        t
    })?;
    Ok(())
}
