//! `lock ENV acquire -m MESSAGE`, `lock ENV release`, `lock ENV status`: the maintenance lock.
//! While it is held, commands that change the environment are refused with who holds it, since
//! when and why (`--override-maintenance` runs one anyway, recorded).

use super::{CliError, GlobalArgs, Output, env_name};
use crate::ops::maintenance::{self, LockReleased, LockStatus};
use crate::state::maintenance::{MaintenanceLock, check_message};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Take the maintenance lock, saying why: commands that change the environment are then
    /// refused until it is released.
    Acquire {
        /// Why the environment is locked, for whoever is refused (one line).
        #[arg(long, short = 'm', value_name = "MESSAGE")]
        message: String,
    },
    /// Release the maintenance lock, whoever holds it.
    Release,
    /// Show whether the maintenance lock is held, by whom, since when and why.
    Status,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let data = global.data();
    match &args.action {
        Action::Acquire { message } => {
            let message = check_message(message).map_err(CliError::Usage)?;
            let held = maintenance::acquire(&data, env, message, global.lock_wait())?;
            out.result(&held, || status_text(&held))?;
        }
        Action::Release => {
            let released = maintenance::release(&data, env, global.lock_wait())?;
            out.result(&released, || released_text(&released))?;
        }
        Action::Status => {
            let status = maintenance::status(&data, env)?;
            out.result(&status, || status_text(&status))?;
        }
    }
    Ok(())
}

fn status_text(s: &LockStatus) -> String {
    match &s.lock {
        None => format!(
            "Environment '{}' is not locked for maintenance.\n  lock it: torrust-tracker-deployer \
             lock {} acquire -m \"why\"\n",
            s.name, s.name
        ),
        Some(lock) => {
            let mut t = format!(
                "Environment '{}' is locked for maintenance.\n  by:       {}\n  since:    {}\n  \
                 message:  {}\n",
                s.name,
                lock.held_by,
                lock.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
                lock.message
            );
            t.push_str(&overrides_text(lock));
            t.push_str(&format!(
                "  Commands that change the environment are refused until \
                 `torrust-tracker-deployer lock {} release`.\n",
                s.name
            ));
            t
        }
    }
}

fn overrides_text(lock: &MaintenanceLock) -> String {
    let mut t = String::new();
    for o in &lock.overrides {
        t.push_str(&format!(
            "  override: `{}` by {} at {}\n",
            o.command,
            o.by,
            o.at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    t
}

fn released_text(r: &LockReleased) -> String {
    match (&r.lock, r.released) {
        (_, false) => format!(
            "Environment '{}' was not locked for maintenance; nothing to release.\n",
            r.name
        ),
        (None, true) => format!(
            "Released the maintenance lock of environment '{}' (its record was not readable).\n",
            r.name
        ),
        (Some(lock), true) => {
            let mut t = format!(
                "Released the maintenance lock of environment '{}' (held by {}).\n",
                r.name,
                lock.describe()
            );
            t.push_str(&overrides_text(lock));
            t
        }
    }
}
