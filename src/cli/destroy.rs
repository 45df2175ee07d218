//! `destroy ENV`: remove the instance and profile provision created; forget the host key.

use super::{CliError, GlobalArgs, Output, block_on, env_name, render_steps};
use crate::ops::destroy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Delete the instance and profile of this environment's name even when they carry another
    /// environment's id (or none, and the state does not record them).
    #[arg(long)]
    pub delete_foreign: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let d = block_on(destroy::destroy(
        &global.data(),
        env,
        args.delete_foreign,
        global.lock_wait(),
    ))?;
    out.result(&d, || {
        format!(
            "Environment '{}' destroyed.\n{}  next: torrust-tracker-deployer purge {} (removes the local data)\n",
            d.name,
            render_steps(&d.steps),
            d.name
        )
    })?;
    Ok(())
}
