//! `exists ENV`: prints true or false; exit 0 either way.

use serde::Serialize;

use super::{CliError, GlobalArgs, Output, env_name};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
}

#[derive(Serialize)]
struct Exists<'a> {
    name: &'a str,
    exists: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let name = env_name(&args.env)?;
    let exists = global.data().exists(name);
    out.result(&Exists { name, exists }, || exists.to_string())?;
    Ok(())
}
