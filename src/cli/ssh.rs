//! `ssh ENV [-- COMMAND...]`: a shell on the environment's host, or a command there, over the
//! deployer's own SSH connection (pinned host key, the environment's key; no `ssh` binary).
//! The exit code is the remote command's.

use super::{CliError, GlobalArgs, Output, block_on, env_name, terminal};
use crate::ops::shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// A command to run instead of the login shell. ONE argument is a command line for the
    /// remote shell (`'ls /opt | wc -l'`); several are a command and its arguments, passed
    /// exactly (`sh -c 'exit 7'`). A terminal is allocated when this one's input and output
    /// are terminals.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(args: &Args, global: &GlobalArgs, _out: &Output) -> Result<i32, CliError> {
    let env = env_name(&args.env)?;
    let pty = terminal::wants_pty();
    let data = global.data();
    block_on(async {
        let opened = shell::open_ssh(
            &data,
            env,
            &args.command,
            pty.then(terminal::local_pty),
            global.lock_wait(),
        )
        .await?;
        terminal::run_attached(opened, pty).await
    })
}
