//! `check [ENV]`: what this machine needs, and how to fix each gap. Exit 1 if anything is missing.

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::{OpsError, check};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check for this environment (its LXD settings and SSH keys); LXD defaults without it.
    pub env: Option<String>,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = args.env.as_deref().map(env_name).transpose()?;
    let c = block_on(check::check(&global.data(), env))?;
    if c.ok {
        out.result(&c, || text(&c))?;
        Ok(())
    } else {
        out.failed_report(&c, || text(&c))?;
        let failed = c.checks.iter().filter(|k| !k.ok).count();
        Err(OpsError::CheckFailed(failed).into())
    }
}

fn text(c: &check::Checked) -> String {
    let mut t = String::new();
    for k in &c.checks {
        t.push_str(&format!(
            "{} {:<16} {}\n",
            if k.ok { "ok  " } else { "FAIL" },
            k.check,
            k.detail
        ));
        if let Some(fix) = &k.fix {
            t.push_str(&format!("     {:<16} fix: {fix}\n", ""));
        }
    }
    t
}
