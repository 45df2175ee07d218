//! `destroy ENV`: remove the instance and profile provision created; forget the host key.
//! `destroy A B C [--jobs N]`: several at once ([`several`]).

use super::several::{self, Done, Jobs};
use super::{CliError, GlobalArgs, Output, block_on, env_name, render_steps};
use crate::ops::destroy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name; several are destroyed at once (`--jobs`), with a summary.
    #[arg(value_name = "ENV", required = true)]
    pub envs: Vec<String>,
    /// Delete the instance and profile of this environment's name even when they carry another
    /// environment's id (or none, and the state does not record them).
    #[arg(long)]
    pub delete_foreign: bool,
    #[command(flatten)]
    pub jobs: Jobs,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    if let [env] = args.envs.as_slice() {
        let env = env_name(env)?;
        let d = block_on(destroy::destroy(
            &global.data(),
            env,
            args.delete_foreign,
            global.lock_wait(),
        ))?;
        out.result(&d, || text(&d))?;
        return Ok(());
    }
    several::run(
        "destroy",
        &args.envs,
        args.jobs.jobs,
        out,
        |env| async move {
            let d = destroy::destroy(&global.data(), env, args.delete_foreign, global.lock_wait())
                .await?;
            Ok(Done {
                text: text(&d),
                value: d,
                failure: None,
            })
        },
    )
}

fn text(d: &destroy::Destroyed) -> String {
    format!(
        "Environment '{}' destroyed.\n{}  next: torrust-tracker-deployer purge {} (removes the local data)\n",
        d.name,
        render_steps(&d.steps),
        d.name
    )
}
