//! [`BackupError`]: why a backup, a copy of an archive or a restore failed, and its kind.

use std::path::PathBuf;

use crate::error_kind::{Classify, ErrorKind};
use crate::host::HostError;
use crate::ssh::SshError;
use crate::stack::layout;
use crate::tasks::TaskError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Host(#[from] HostError),
    /// Starting the stack again, or its health, after a restore.
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(
        "the backup job is not on the host ({script}).\n  `release` installs it when the \
         environment file has a `backup` section: add one (`\"backup\": {{}}` is a daily backup \
         at 03:00 kept 7 days), then `create environment --env-file FILE` and `release`",
        script = layout::BACKUP_SCRIPT
    )]
    NotInstalled,
    #[error(
        "the backup job failed on the host (exit code {code}):\n{output}\n  Its log is {log}; \
         fix the cause and run `backup` again",
        log = layout::BACKUP_LOG
    )]
    JobFailed { code: i64, output: String },
    #[error("{0}")]
    Unexpected(String),
    #[error(
        "{name:?} is not a backup archive name: archives are named \
         `torrust-backup-<time>.tar.gz` (`backup ENV --list` lists them)"
    )]
    BadName { name: String },
    #[error("no archive {name:?} {place}.\n  `backup ENV --list` lists the archives on the host")]
    NotFound { name: String, place: String },
    #[error("{archive} is not a backup this environment can restore: {reason}")]
    Invalid { archive: String, reason: String },
    #[error("{archive} holds a {found} database, but the environment uses {expected}.\n  {fix}")]
    Mismatch {
        archive: String,
        found: String,
        expected: String,
        fix: String,
    },
    #[error(
        "{what}: the sha256 is {got}, but {expected} was expected; the copy was removed. Run \
         the command again; if it fails again, the source itself is damaged"
    )]
    Checksum {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{context} {}: {source}", path.display())]
    Local {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{step}: {message}")]
    RestoreFailed { step: String, message: String },
}

impl From<SshError> for BackupError {
    fn from(e: SshError) -> Self {
        BackupError::Host(e.into())
    }
}

impl BackupError {
    /// A local file operation's failure, with what was being done.
    pub fn local(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BackupError {
        let (context, path) = (context.into(), path.into());
        move |source| BackupError::Local {
            context,
            path,
            source,
        }
    }
}

impl Classify for BackupError {
    fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Host(e) => e.kind(),
            BackupError::Task(e) => e.kind(),
            BackupError::NotInstalled => ErrorKind::Refused,
            BackupError::JobFailed { .. } => ErrorKind::BackupFailed,
            BackupError::Unexpected(_) => ErrorKind::RemoteCommandFailed,
            BackupError::BadName { .. } => ErrorKind::Usage,
            BackupError::NotFound { .. } => ErrorKind::NotFound,
            BackupError::Invalid { .. } | BackupError::Mismatch { .. } => ErrorKind::ArchiveInvalid,
            BackupError::Checksum { .. } => ErrorKind::ChecksumMismatch,
            BackupError::Local { .. } => ErrorKind::Io,
            BackupError::RestoreFailed { .. } => ErrorKind::RestoreFailed,
        }
    }
}
