//! `start ENV [SERVICE...] [--timeout SECONDS]`: start the stopped services (all by default) and
//! wait until they are healthy, like `run`. Starting a `stopped` environment records it as
//! `running` again.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::services::{self, ServicesOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Seconds to wait for the services to be healthy.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = ServicesOptions {
        services: args.services.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    let done = block_on(services::start(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&done, || super::stop::text(&done))?;
    Ok(())
}
