//! The lifecycle operations. The CLI parses arguments and calls these; they return plain
//! values that the CLI renders as text or JSON. Nothing here prints.

pub mod backup;
pub mod check;
pub mod configure;
pub mod deploy;
pub mod destroy;
pub mod environment;
mod exporter_binary;
pub mod history;
pub mod host;
pub mod image;
pub mod image_pull;
pub mod keys;
pub mod kinds;
pub mod logs;
pub mod lxd_host;
pub mod lxd_remote;
pub mod maintenance;
pub mod monitoring;
pub mod ownership;
mod passwords;
pub mod provision;
pub mod register;
pub mod release;
pub mod render;
pub mod restore;
pub mod rollback;
pub mod run;
pub mod services;
pub mod shell;
pub mod status;
pub mod steps;
pub mod test;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::ConfigError;
use crate::error_kind::{Classified, Classify};
use crate::state::{LockError, StateError};

/// One step of a lifecycle command, as reported to the user.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub changed: bool,
    pub detail: String,
}

/// Why an operation failed. Its kind (`--output json`'s `kind`) and exit code come from
/// [`Classify`], implemented in [`kinds`] with those of the operations' own error enums.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "environment '{env}' already exists in state '{lifecycle}' with a different configuration.\n  {fix}"
    )]
    ConfigChanged {
        env: String,
        lifecycle: String,
        fix: String,
    },
    #[error("{0}")]
    Refused(String),
    /// An operation without recorded steps failed.
    #[error("{0}")]
    Failed(String),
    #[error("{0} check(s) failed; see the fixes above")]
    CheckFailed(usize),
    /// `test`: some protocol checks of the deployed tracker failed (exit 1).
    #[error("{failed} of {total} check(s) of environment '{env}' failed.\n  {next}")]
    TestFailed {
        env: String,
        failed: usize,
        total: usize,
        next: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A recorded step failed; `error` is its error, kept whole (kind and source chain), and
    /// `message` that chain as text.
    #[error("a step failed: {step}: {message}\n  Details: {}", trace_file.display())]
    StepFailed {
        step: String,
        message: String,
        trace_file: PathBuf,
        #[source]
        error: Classified,
    },
    /// An operation failed outside a recorded step with a typed error (see [`OpsError::typed`]).
    #[error(transparent)]
    Typed(Classified),
}

/// The name a command takes the environment's lock with: its own, or `NAME --dry-run` for a dry
/// run, which the maintenance lock lets through ([`crate::state::maintenance::guards`]).
pub(crate) fn lock_name(command: &str, dry_run: bool) -> String {
    if dry_run {
        format!("{command} --dry-run")
    } else {
        command.to_string()
    }
}

impl OpsError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OpsError {
        let context = context.into();
        move |source| OpsError::Io { context, source }
    }

    /// Keeps a typed error, with its kind, as the operation's failure.
    pub fn typed<E>(error: E) -> OpsError
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        OpsError::Typed(Classified::new(error))
    }

    /// The CLI's exit code, from the error's kind.
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }
}
