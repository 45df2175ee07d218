//! `restart ENV [SERVICE...] [--timeout SECONDS]`: restart the services (all by default), running
//! or not, and wait until they are healthy. A `stopped` environment is `running` afterwards.

use std::time::Duration;

use super::{CliError, GlobalArgs, Output};
use crate::ops::services::Verb;

/// The same arguments as `start`.
pub use super::start::Args;

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let timeout = Duration::from_secs(args.timeout);
    super::stop::operate(
        &args.env,
        &args.services,
        timeout,
        Verb::Restart,
        global,
        out,
    )
}
