//! The command line: one file per command. Each parses its arguments, calls an operation in
//! [`crate::ops`] and renders the result as text or JSON. No logic lives here.

mod backup;
mod check;
mod completions;
mod configure;
mod create;
mod deploy;
mod destroy;
mod docs;
#[cfg(test)]
mod error_kinds_tests;
mod exec;
mod exists;
mod history;
mod image;
mod list;
mod lock;
mod logging;
mod logs;
mod monitor;
mod output;
mod plan;
mod provision;
mod purge;
mod register;
mod release;
mod render;
mod restart;
mod restore;
mod rollback;
mod run;
mod several;
mod show;
mod ssh;
mod start;
mod stats_exporter;
mod status;
mod stop;
mod terminal;
mod test;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error_kind::{Classify, ErrorKind};
use crate::events::{self, Events};
use crate::ops::OpsError;
pub use output::{Format, Output};

/// Deploy a Torrust Tracker from nothing to running, prove it works, and tear it down.
#[derive(Debug, Parser)]
#[command(name = "torrust-tracker-deployer", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Where environments' state, keys and logs live.
    #[arg(
        long,
        global = true,
        env = "TORRUST_DEPLOYER_DATA_DIR",
        default_value = "data"
    )]
    pub data_dir: PathBuf,
    /// Output format of results on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// More detail on stderr (-v: debug, -vv: trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Wait up to this many seconds for another command holding the environment's lock.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0)]
    pub lock_wait: u64,
    /// Run a command that changes the environment although its maintenance lock is held
    /// (`lock ENV acquire`); the run is recorded in the lock's record and logged.
    #[arg(long, global = true)]
    pub override_maintenance: bool,
}

impl GlobalArgs {
    pub fn lock_wait(&self) -> Duration {
        Duration::from_secs(self.lock_wait)
    }

    pub fn data(&self) -> crate::state::DataDir {
        crate::state::DataDir::new(&self.data_dir).overriding_maintenance(self.override_maintenance)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an environment, an environment file template, or the file's JSON Schema.
    #[command(subcommand)]
    Create(create::CreateCommand),
    /// Check an environment file without writing anything.
    Validate(validate::Args),
    /// Create the environment's LXD instance and make it reachable over SSH.
    Provision(provision::Args),
    /// Install Docker and Compose from the distribution's packages and harden the host.
    Configure(configure::Args),
    /// Put the tracker stack's files and images on the host (nothing is started).
    Release(release::Args),
    /// Start the released stack and wait until every service is healthy.
    Run(run::Args),
    /// Create the environment if needed, then provision, configure, release, run and test it.
    Deploy(deploy::Args),
    /// Adopt an existing host (checked over SSH, host key pinned) instead of provisioning one.
    Register(register::Args),
    /// Remove the instance and profile provision created, and forget the host key.
    Destroy(destroy::Args),
    /// Check what this machine needs to provision, and how to fix each gap.
    Check(check::Args),
    /// Images for air-gapped hosts: import an LXD image, pull container images into a bundle.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Show an environment's state, settings (secrets redacted) and what to do next.
    Show(show::Args),
    /// Show the stack as it runs on the host: each service's state, health, ports and image,
    /// and which files differ from the model (read-only; `--check` exits 1 on any problem).
    Status(status::Args),
    /// Check from here that the deployed tracker works: UDP and HTTP announces and scrapes, the
    /// API's health and statistics, Grafana's health; exit 1 if any check fails.
    Test(test::Args),
    /// Show the services' logs from the host, each line with its service (`--follow` until
    /// Ctrl-C).
    Logs(logs::Args),
    /// Stop the stack's services (all by default); stopping all records the environment as
    /// `stopped`.
    Stop(stop::Args),
    /// Start the stopped services (all by default) and wait until they are healthy.
    Start(start::Args),
    /// Restart the services (all by default) and wait until they are healthy.
    Restart(restart::Args),
    /// Open a shell on the host, or run a command there (`-- COMMAND...`); exits with its
    /// status. Over the deployer's own SSH connection, to the pinned host key.
    Ssh(ssh::Args),
    /// Run a command in a service's container (`-- COMMAND...`); exits with its status.
    Exec(exec::Args),
    /// The maintenance lock: `acquire -m MESSAGE`, `release`, `status`. While it is held,
    /// commands that change the environment are refused with who holds it and why.
    Lock(lock::Args),
    /// List the environment's releases (this machine's and the host's history): when, who, what
    /// changed.
    History(history::Args),
    /// Put a recorded release back (files byte for byte, images) and restart only what changes.
    Rollback(rollback::Args),
    /// Write the files `release` would upload (compose file, tracker.toml, .env, ...) under a
    /// local directory, offline.
    Render(render::Args),
    /// List every environment with its state.
    List,
    /// Print whether an environment exists (true/false); exit 0 either way.
    Exists(exists::Args),
    /// Remove an environment's local data (state, generated keys, logs).
    Purge(purge::Args),
    /// Run the backup job on the host now; or list the archives there (--list), or copy them
    /// here (--download DIR), checked by sha256.
    Backup(backup::Args),
    /// Put the database of a backup archive (here or on the host) back, then start the tracker,
    /// wait until healthy and test it.
    Restore(restore::Args),
    /// Serve the tracker API's JSON statistics in the Prometheus text format (what the stack's
    /// `stats-exporter` service runs; the token from a file or TORRUST_STATS_EXPORTER_TOKEN).
    StatsExporter(stats_exporter::Args),
    /// Print the command-line structure as JSON.
    Docs,
    /// Print shell completions.
    Completions(completions::Args),
}

impl Command {
    /// Which log file a command writes: `None` for commands that write nothing (they must not
    /// create the data directory), `Some(None)` for the shared `deployer.log`, `Some(Some(env))`
    /// for the environment's own log.
    fn log_target(&self) -> Option<Option<&str>> {
        match self {
            Command::Create(create::CreateCommand::Environment(_)) => Some(None),
            Command::Provision(a) => Some(Some(&a.env)),
            Command::Configure(a) => Some(Some(&a.env)),
            Command::Release(a) => Some(Some(&a.env)),
            Command::Run(a) => Some(Some(&a.env)),
            Command::Deploy(a) => Some(Some(&a.envs[0])),
            Command::Register(a) => Some(Some(&a.env)),
            Command::Destroy(a) => Some(Some(&a.envs[0])),
            Command::Status(a) => Some(Some(&a.envs[0])),
            Command::Test(a) => Some(Some(&a.envs[0])),
            Command::Logs(a) => Some(Some(&a.env)),
            Command::Stop(a) => Some(Some(&a.env)),
            Command::Start(a) => Some(Some(&a.env)),
            Command::Restart(a) => Some(Some(&a.env)),
            Command::Ssh(a) => Some(Some(&a.env)),
            Command::Exec(a) => Some(Some(&a.env)),
            Command::Lock(a) => Some(Some(&a.env)),
            Command::History(a) => Some(Some(&a.env)),
            Command::Rollback(a) => Some(Some(&a.env)),
            Command::Backup(a) => Some(Some(&a.env)),
            Command::Restore(a) => Some(Some(&a.env)),
            Command::Image(_) => Some(None),
            // purge removes the environment's own log, so it logs to the shared file.
            Command::Purge(_) => Some(None),
            _ => None,
        }
    }

    /// The environments of a command given several (`deploy A B`): each logs to its own file.
    fn several(&self) -> Option<&[String]> {
        let envs = match self {
            Command::Deploy(a) => &a.envs,
            Command::Destroy(a) => &a.envs,
            Command::Status(a) => &a.envs,
            Command::Test(a) => &a.envs,
            _ => return None,
        };
        (envs.len() > 1).then_some(envs.as_slice())
    }
}

/// Why the CLI stopped with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// Invalid input or usage (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Writing the result failed (exit 1).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// A command over several environments: these failed (name, kind), of `total`.
    #[error("{} of {total} environments failed: {}", failed.len(), several::list_failed(failed))]
    Several {
        failed: Vec<(String, ErrorKind)>,
        total: usize,
    },
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            CliError::Ops(e) => e.kind(),
            CliError::Usage(_) => ErrorKind::Usage,
            CliError::Output(_) => ErrorKind::Io,
            CliError::Several { failed, .. } => several::kind(failed),
        }
    }

    pub(crate) fn problems(&self) -> Vec<crate::config::Problem> {
        match self {
            CliError::Ops(OpsError::Config(e)) => e.problems(),
            _ => Vec::new(),
        }
    }
}

/// Runs the CLI with the process's arguments and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let data = cli.global.data();
    // An environment name becomes part of the log file's path: a name the command will refuse
    // (`../../x`) gets no log file, so nothing is written before it is refused.
    let several = cli.command.several();
    let log_file = match several {
        // Lines outside every environment's span go to the shared file.
        Some(_) => Some(data.log_file(None)),
        None => cli
            .command
            .log_target()
            .filter(|env| env.is_none_or(|e| env_name(e).is_ok()))
            .map(|env| data.log_file(env)),
    };
    // Nothing is logged for names the command will refuse (it runs none of them then).
    let per_env: Vec<(String, PathBuf)> = several
        .filter(|envs| several::check_names(envs).is_ok())
        .into_iter()
        .flatten()
        .map(|env| (env.clone(), data.log_file(Some(env))))
        .collect();
    let log_file = log_file.filter(|_| several.is_none() || !per_env.is_empty());
    // The monitor shows the operations' progress events; logging writes around it.
    let mode = monitor::Mode::choose(&cli.global);
    let monitor = monitor::Monitor::new(mode);
    logging::init(
        &cli.global,
        log_file.as_deref(),
        &per_env,
        mode,
        monitor.stderr_writer(),
    );
    events::install(Events::new(monitor.clone()));
    let out = Output::new(cli.global.output);
    let result = run(&cli, &out);
    monitor.finish();
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::debug!("failed: {err:?}");
            out.error(err.kind(), &err.to_string(), &err.problems());
            err.exit_code()
        }
    }
}

/// Runs the command; its exit code on success (0, or what `ssh` and `exec` pass through).
fn run(cli: &Cli, out: &Output) -> Result<i32, CliError> {
    let global = &cli.global;
    let done = match &cli.command {
        Command::Ssh(a) => return ssh::run(a, global, out),
        Command::Exec(a) => return exec::run(a, global, out),
        Command::Logs(a) => logs::run(a, global, out),
        Command::Stop(a) => stop::run(a, global, out),
        Command::Start(a) => start::run(a, global, out),
        Command::Restart(a) => restart::run(a, global, out),
        Command::Lock(a) => lock::run(a, global, out),
        Command::Create(c) => create::run(c, global, out),
        Command::Validate(a) => validate::run(a, out),
        Command::Provision(a) => provision::run(a, global, out),
        Command::Configure(a) => configure::run(a, global, out),
        Command::Release(a) => release::run(a, global, out),
        Command::Run(a) => run::run(a, global, out),
        Command::Deploy(a) => deploy::run(a, global, out),
        Command::Register(a) => register::run(a, global, out),
        Command::Destroy(a) => destroy::run(a, global, out),
        Command::Check(a) => check::run(a, global, out),
        Command::Image(c) => image::run(c, global, out),
        Command::Show(a) => show::run(a, global, out),
        Command::Status(a) => status::run(a, global, out),
        Command::Test(a) => test::run(a, global, out),
        Command::History(a) => history::run(a, global, out),
        Command::Rollback(a) => rollback::run(a, global, out),
        Command::Render(a) => render::run(a, global, out),
        Command::List => list::run(global, out),
        Command::Exists(a) => exists::run(a, global, out),
        Command::Purge(a) => purge::run(a, global, out),
        Command::Backup(a) => backup::run(a, global, out),
        Command::Restore(a) => restore::run(a, global, out),
        Command::StatsExporter(a) => stats_exporter::run(a),
        Command::Docs => docs::run(out),
        Command::Completions(a) => completions::run(a),
    };
    done.map(|()| 0)
}

/// Checks an environment name given on the command line (it becomes a directory name).
fn env_name(name: &str) -> Result<&str, CliError> {
    crate::ops::environment::check_env_name(name).map_err(CliError::Usage)?;
    Ok(name)
}

/// Runs an async operation on a runtime made for this command.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(future)
}

/// One line per step: changed or unchanged, and what it found.
fn render_steps(steps: &[crate::ops::StepReport]) -> String {
    let mut t = String::new();
    for s in steps {
        t.push_str(&format!(
            "  {} {:<20} {}\n",
            if s.changed { "changed  " } else { "unchanged" },
            s.step,
            s.detail
        ));
    }
    t
}
