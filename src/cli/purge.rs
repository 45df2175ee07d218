//! `purge ENV [--force]`: remove an environment's local data; asks first on a terminal.

use std::io::{BufRead, IsTerminal, Write};

use super::{CliError, GlobalArgs, Output, env_name};
use crate::ops::environment;
use crate::state::{Lifecycle, StateError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'f')]
    pub force: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let name = env_name(&args.env)?;
    let data = global.data();
    if !data.env_dir(name).exists() {
        return Err(crate::ops::OpsError::State(StateError::NotFound(name.to_string())).into());
    }
    if !args.force {
        let lifecycle = data.load(name).ok().map(|s| s.lifecycle);
        let warning = match lifecycle {
            Some(Lifecycle::Created | Lifecycle::Destroyed) => String::new(),
            Some(l) => format!(
                " It is '{l}': its host will NOT be destroyed, only forgotten (run `destroy` first to remove it)."
            ),
            None => String::new(),
        };
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!(
                "purge of '{name}' needs confirmation, and stdin is not a terminal.{warning}\n  Pass --force to purge without asking"
            )));
        }
        eprint!(
            "Remove all local data of environment '{name}' ({})?{warning} [y/N] ",
            data.env_dir(name).display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(CliError::Usage(
                "purge cancelled; nothing was removed".into(),
            ));
        }
    }
    let purged = environment::purge(&data, name, global.lock_wait())?;
    out.result(&purged, || {
        format!(
            "Purged environment '{}': removed {}",
            purged.name,
            purged.removed.display()
        )
    })?;
    Ok(())
}
