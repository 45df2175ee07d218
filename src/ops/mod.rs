//! The lifecycle operations. The CLI parses arguments and calls these; they return plain
//! values that the CLI renders as text or JSON. Nothing here prints.

pub mod check;
pub mod configure;
pub mod deploy;
pub mod destroy;
pub mod environment;
pub mod host;
pub mod image;
pub mod keys;
pub mod lxd_host;
pub mod provision;
pub mod register;
pub mod release;
pub mod render;
pub mod run;
pub mod status;
pub mod steps;
pub mod test;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::ConfigError;
use crate::state::{LockError, StateError};

/// One step of a lifecycle command, as reported to the user.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub changed: bool,
    pub detail: String,
}

/// Why an operation failed. [`OpsError::exit_code`] maps each to the CLI's exit code:
/// 2 for invalid input or usage, 1 for an operation that failed.
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
    #[error("a step failed: {step}: {message}\n  Details: {}", trace_file.display())]
    StepFailed {
        step: String,
        message: String,
        trace_file: PathBuf,
    },
}

impl OpsError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OpsError {
        let context = context.into();
        move |source| OpsError::Io { context, source }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Config(ConfigError::Read { .. }) => 2,
            OpsError::Config(_) => 2,
            OpsError::State(StateError::NotFound(_)) => 2,
            OpsError::Refused(_) => 2,
            OpsError::ConfigChanged { .. } => 2,
            _ => 1,
        }
    }

    /// A short machine-readable name for `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            OpsError::Config(_) => "invalid_config",
            OpsError::State(StateError::NotFound(_)) => "not_found",
            OpsError::State(_) => "state",
            OpsError::Lock(_) => "locked",
            OpsError::ConfigChanged { .. } => "config_changed",
            OpsError::Refused(_) => "refused",
            OpsError::Io { .. } => "io",
            OpsError::StepFailed { .. } => "step_failed",
            OpsError::CheckFailed(_) => "check_failed",
            OpsError::TestFailed { .. } => "test_failed",
            OpsError::Failed(_) => "failed",
        }
    }
}
