//! `logs ENV [SERVICE...] [--follow] [--since T] [--tail N] [--timestamps]`: the services'
//! logs from the host, each line with its service. Ctrl-C ends `--follow` cleanly (exit 0),
//! and nothing is left running on the host.
//!
//! Text: `tracker     | LINE`. `--output json`: one JSON object per line on stdout,
//! `{"service": "tracker", "line": "..."}` (`service` is null for Compose's own lines).

use std::io::Write;
use std::sync::Arc;

use super::{CliError, GlobalArgs, Output, block_on, env_name, terminal};
use crate::ops::logs;
use crate::tasks::logs::{LineSink, LogLine, LogsRequest, parse_since};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep showing new lines until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines since then: a duration back from now (`10m`, `2h`, `1h30m`, `1d`), an RFC 3339
    /// time or a date.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only the last N lines of each service.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Start each line with Docker's timestamp.
    #[arg(long, short = 't')]
    pub timestamps: bool,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let since = args
        .since
        .as_deref()
        .map(|t| parse_since(t, chrono::Utc::now()))
        .transpose()
        .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
    let request = LogsRequest {
        services: args.services.clone(),
        follow: args.follow,
        tail: args.tail,
        since,
        timestamps: args.timestamps,
    };
    let sink = printer(out.is_json(), &args.services);
    block_on(async {
        let stop =
            terminal::stop_on(true).map_err(crate::ops::OpsError::io("cannot watch for Ctrl-C"))?;
        logs::logs(
            &global.data(),
            env,
            &request,
            sink,
            stop,
            global.lock_wait(),
        )
        .await?;
        Ok(())
    })
}

/// Prints each line as it comes: `service | line` (padded to the longest name asked for, or
/// to the longest of the stack's), or a JSON object.
fn printer(json: bool, asked: &[String]) -> LineSink {
    let width = asked.iter().map(String::len).max().unwrap_or(10).max(7);
    Arc::new(move |l: LogLine| {
        if json {
            let text = serde_json::to_string(&l).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            return;
        }
        match &l.service {
            Some(s) => {
                let _ = writeln!(std::io::stdout().lock(), "{s:<width$} | {}", l.line);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{}", l.line);
            }
        }
    })
}
