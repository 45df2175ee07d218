//! Typed, idempotent host tasks: the replacement for the incumbent's Ansible playbooks.
//!
//! Every task follows the same cycle, in batches so that round trips stay few:
//!
//! 1. **facts**: one script reads everything the tasks need ([`facts::Facts`]);
//! 2. **decide**: each task compares the facts with what it wants ([`Plan`]), a pure function;
//! 3. **apply**: only the tasks whose plan says so act (all packages in one `apt-get install`);
//! 4. **verify**: the facts are read again and each task checks its goal now holds;
//! 5. **report**: changed, unchanged, warning or failed, with the time each took.
//!
//! `--dry-run` stops after step 2 and reports what would change.
//!
//! Every task acts through a `&dyn` [`Host`](crate::host::Host), so its decisions and the
//! commands it sends are unit-tested against [`FakeHost`](crate::host::fake::FakeHost).
//!
//! - configure: [`facts`] and [`host`] (packages, Docker, group, upgrades, firewall);
//! - release: [`dirs`] (storage directories), [`passwords`] (changed MySQL and Grafana
//!   passwords applied inside the running services), [`files`] (file upload, dry-run diffs),
//!   [`images`] (load from the [`bundle`] or pull), [`deployer_binary`] (this binary, for the
//!   stats exporter), [`history`] (the host's release history);
//! - run: [`compose`] (up, restarts, health);
//! - test: [`caddy_ca`] (the internal CA's root); status: [`status_probe`];
//! - operating a running stack: [`services`] (stop, start, restart), [`logs`], [`shell`]
//!   (`ssh` and `exec`);
//! - backup and restore: [`backup`] (run the job, list, copy and restore archives).

pub mod apt_source;
pub mod backup;
pub mod bundle;
pub mod caddy_ca;
pub mod cloud_init;
pub mod compose;
pub mod deployer_binary;
pub mod dirs;
pub mod docker_firewall;
pub mod facts;
pub mod files;
pub mod history;
pub mod host;
pub mod images;
pub mod logs;
pub mod lxd_access;
pub mod passwords;
pub mod services;
pub mod shell;
pub mod status_probe;

use std::time::Duration;

use serde::Serialize;

use crate::host::HostError;
use crate::ssh::SshError;

/// What a task found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Already as wanted; nothing was done.
    Unchanged,
    /// It acted, and the goal now holds.
    Changed,
    /// Dry run: it would act.
    WouldChange,
    /// It could not reach its goal for a reason outside our control, and says so (e.g. a
    /// kernel that refuses the firewall). Recorded in the state; never silent.
    Warning,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unchanged => "unchanged",
            Status::Changed => "changed",
            Status::WouldChange => "would change",
            Status::Warning => "warning",
        }
    }
}

/// One line of a task report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub task: String,
    pub status: Status,
    pub detail: String,
    /// Time the task took, in milliseconds (its share of the batched round trips).
    pub elapsed_ms: u64,
}

impl TaskReport {
    pub fn new(task: &str, status: Status, detail: impl Into<String>, elapsed: Duration) -> Self {
        Self {
            task: task.to_string(),
            status,
            detail: detail.into(),
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }
}

/// A task's decision from the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan<A> {
    /// The goal holds; the text says how (e.g. "docker.io 20.10 installed").
    Nothing(String),
    /// Act; the action carries what to do, the text says it for people.
    Apply(A, String),
}

impl<A> Plan<A> {
    pub fn is_apply(&self) -> bool {
        matches!(self, Plan::Apply(..))
    }

    pub fn text(&self) -> &str {
        match self {
            Plan::Nothing(t) | Plan::Apply(_, t) => t,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The host could not be reached or a command on it failed (over SSH or LXD).
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{task}: {message}\n  {fix}")]
    Failed {
        task: String,
        message: String,
        fix: String,
    },
    /// apt or dpkg failed, or their lock stayed held.
    #[error("{task}: {message}\n  {fix}")]
    Apt {
        task: String,
        message: String,
        fix: String,
    },
    /// The host runs an operating system the tasks do not support.
    #[error("{task}: {message}\n  {fix}")]
    UnsupportedOs {
        task: String,
        message: String,
        fix: String,
    },
    #[error("{task}: applied, but the check afterwards found: {found}\n  {fix}")]
    NotVerified {
        task: String,
        found: String,
        fix: String,
    },
    /// The offline bundle could not be read or loaded.
    #[error("{task}: {message}\n  {fix}")]
    Bundle {
        task: String,
        message: String,
        fix: String,
    },
    /// An image the stack uses could not be pulled, or is not on the host.
    #[error("{task}: {message}\n  {fix}")]
    ImageMissing {
        task: String,
        message: String,
        fix: String,
    },
    /// The deployer's binary cannot run on the host (another OS or CPU architecture).
    #[error("{task}: {message}\n  {fix}")]
    BinaryIncompatible {
        task: String,
        message: String,
        fix: String,
    },
    /// `compose up` or `compose restart` failed on the host.
    #[error("{task}: {message}\n  {fix}")]
    Compose {
        task: String,
        message: String,
        fix: String,
    },
    #[error("cannot read the host's facts: {0}")]
    Facts(String),
    #[error(
        "not healthy after {waited} s: {failing}\n{logs}\n  Look at the logs above (and `status`); \
         fix the cause (environment file, then `release`), then `run` again: it resumes"
    )]
    Unhealthy {
        waited: u64,
        failing: String,
        logs: String,
    },
}

impl TaskError {
    pub fn bundle(task: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        TaskError::Bundle {
            task: task.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn image_missing(task: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        TaskError::ImageMissing {
            task: task.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn compose(task: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        TaskError::Compose {
            task: task.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn failed(task: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        TaskError::Failed {
            task: task.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn apt(task: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        TaskError::Apt {
            task: task.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl From<SshError> for TaskError {
    fn from(e: SshError) -> Self {
        TaskError::Host(e.into())
    }
}

impl crate::error_kind::Classify for TaskError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            TaskError::Host(e) => e.kind(),
            TaskError::Failed { .. } | TaskError::Facts(_) => ErrorKind::TaskFailed,
            TaskError::Apt { .. } => ErrorKind::AptFailed,
            TaskError::UnsupportedOs { .. } => ErrorKind::UnsupportedOs,
            TaskError::NotVerified { .. } => ErrorKind::NotVerified,
            TaskError::Bundle { .. } => ErrorKind::BundleInvalid,
            TaskError::BinaryIncompatible { .. } => ErrorKind::BinaryIncompatible,
            TaskError::ImageMissing { .. } => ErrorKind::ImageMissing,
            TaskError::Compose { .. } => ErrorKind::ComposeFailed,
            TaskError::Unhealthy { .. } => ErrorKind::HealthTimeout,
        }
    }
}
