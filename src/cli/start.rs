//! `start ENV [SERVICE...] [--timeout SECONDS]`: start the stopped services (all by default) and
//! wait until they are healthy, like `run`. Starting a `stopped` environment records it as
//! `running` again.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output};
use crate::ops::services::Verb;

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
    let timeout = Duration::from_secs(args.timeout);
    super::stop::operate(&args.env, &args.services, timeout, Verb::Start, global, out)
}
