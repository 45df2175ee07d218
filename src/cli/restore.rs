//! `restore ENV --from ARCHIVE`: put the database of a backup back, then start the tracker,
//! wait for health and test it.

use std::time::Duration;

use super::run::service_line;
use super::{CliError, GlobalArgs, Output, block_on, env_name};
use crate::ops::restore::{self, RestoreOptions};
use crate::tasks::backup::restore::ArchiveDatabase;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment's name.
    pub env: String,
    /// The archive: a file here (sent to the host first, checked by sha256), or the name of an
    /// archive on the host (`backup ENV --list`).
    #[arg(long, value_name = "ARCHIVE")]
    pub from: String,
    /// Seconds to wait for every service to be healthy afterwards.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
}

pub fn run(args: &Args, global: &GlobalArgs, out: &Output) -> Result<(), CliError> {
    let env = env_name(&args.env)?;
    let options = RestoreOptions {
        from: args.from.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    let r = block_on(restore::restore(
        &global.data(),
        env,
        &options,
        global.lock_wait(),
    ))?;
    out.result(&r, || {
        let what = match &r.database {
            ArchiveDatabase::Sqlite { .. } => "the SQLite database".to_string(),
            ArchiveDatabase::Mysql { database } => format!(
                "the MySQL database{}",
                database
                    .as_deref()
                    .map(|d| format!(" `{d}`"))
                    .unwrap_or_default()
            ),
        };
        let mut t = format!(
            "Environment '{}' restored: {what} of {}.\n  archive:   {}{}\n  sha256:    {}\n",
            r.name,
            r.archive.name,
            r.archive.path,
            if r.uploaded { " (uploaded)" } else { "" },
            r.archive.sha256.as_deref().unwrap_or("?"),
        );
        if let Some(p) = &r.previous_database {
            t.push_str(&format!("  replaced:  kept on the host as {p}\n"));
        }
        t.push('\n');
        for s in &r.services {
            t.push_str(&service_line(s));
        }
        t.push_str(&format!(
            "\n  test:      {} of {} checks passed\n  took:      {:.1} s\n",
            r.test_passed,
            r.test_total,
            r.elapsed_ms as f64 / 1000.0
        ));
        t
    })?;
    Ok(())
}
