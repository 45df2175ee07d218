//! Why the state of an environment cannot be read or written.

use std::path::PathBuf;

use super::SCHEMA_VERSION;
use super::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "environment '{0}' does not exist.\n  List environments with `torrust-tracker-deployer list`, or create it with `torrust-tracker-deployer create environment --env-file FILE`"
    )]
    NotFound(String),
    #[error("cannot read the state of environment '{env}' at {path}: {reason}")]
    Unreadable {
        env: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the state of environment '{env}' at {path} is not valid:\n{}\n  It was changed outside \
         the deployer. Put the values back (the environment file holds the settings), or remove \
         the environment's local data with `torrust-tracker-deployer purge {env}` and create it again",
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    Invalid {
        env: String,
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The state file does not parse (empty, truncated, garbled) and the previous state does.
    #[error(
        "the state of environment '{env}' at {file} is damaged: {reason}.\n  The state before \
         its last save is kept in {prev}: check it, put it back with `cp -p {prev} {file}` and \
         run the command again (`purge --force` would forget the environment's host, which would \
         then be left running)",
        file = path.display(),
        prev = previous.display()
    )]
    Damaged {
        env: String,
        path: PathBuf,
        reason: String,
        previous: PathBuf,
    },
    #[error(
        "the state of environment '{env}' has schema version {found}, but this build reads version {SCHEMA_VERSION}.\n  Use the torrust-tracker-deployer release that created it"
    )]
    SchemaVersion { env: String, found: u64 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl crate::error_kind::Classify for StateError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            StateError::NotFound(_) => ErrorKind::NotFound,
            StateError::Unreadable { .. }
            | StateError::Damaged { .. }
            | StateError::SchemaVersion { .. }
            | StateError::Invalid { .. }
            | StateError::Write { .. } => ErrorKind::State,
            StateError::Lock(e) => e.kind(),
        }
    }
}
