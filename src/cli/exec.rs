//! `exec ENV SERVICE -- COMMAND...`: a command inside a service's container on the host
//! (`compose exec`), attached to this terminal or these streams. The exit code is the
//! command's.

use super::{CliError, GlobalArgs, Output, block_on, env_name, terminal};
use crate::ops::shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// The service whose container runs the command (`tracker`, `mysql`, ...).
    pub service: String,
    /// The command and its arguments, passed exactly (no shell in between: use `sh -c '...'`
    /// for one). A terminal is allocated when this one's input and output are terminals.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(args: &Args, global: &GlobalArgs, _out: &Output) -> Result<i32, CliError> {
    let env = env_name(&args.env)?;
    let pty = terminal::wants_pty();
    let data = global.data();
    block_on(async {
        let opened = shell::open_exec(
            &data,
            env,
            &args.service,
            &args.command,
            pty.then(terminal::local_pty),
            global.lock_wait(),
        )
        .await?;
        terminal::run_attached(opened, pty).await
    })
}
