//! The maintenance lock: a lock that a person holds, with a message, until they release it.
//!
//! ```text
//! data/<env>/maintenance.json   who holds it, since when, why, and who overrode it (0600)
//! ```
//!
//! It is not the environment's lock of [`super::lock`], which serialises commands and lasts as
//! long as one runs. `lock ENV acquire -m MESSAGE` writes this record; while it exists, every
//! command that takes the environment's lock for a change is refused (error kind
//! `maintenance_locked`) with the holder, the time and the message, unless it runs with
//! `--override-maintenance`, which is recorded here (and logged). `lock ENV release` removes the
//! record. The check happens in [`DataDir::lock`], after the environment's lock is taken, so a
//! command and `lock acquire` cannot pass each other.
//!
//! Which commands are refused is decided by the name they take the environment's lock with:
//! every name but those of [`UNGUARDED`] (commands that read, or only act inside the host
//! without changing what the deployer put there) and dry runs (`... --dry-run`). A new command
//! is therefore refused until it is added there.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::operator::Operator;
use super::operator::unsafe_char;
use super::{DataDir, fsutil};

/// The record's file name in the environment's directory.
pub const FILE: &str = "maintenance.json";

/// The longest message, in characters.
pub const MAX_MESSAGE: usize = 500;

/// How many overrides the record keeps (the oldest go first).
const MAX_OVERRIDES: usize = 100;

/// The lock names of the commands that run while the maintenance lock is held: they read the
/// environment (`test`, `logs`, `backup` copies data out), work by hand on the host (`ssh`,
/// `exec`: the holder's own tools), or manage the maintenance lock itself.
pub const UNGUARDED: &[&str] = &[
    "test",
    "logs",
    "ssh",
    "exec",
    "backup",
    "lock acquire",
    "lock release",
];

/// Whether a command that takes the environment's lock as `command` is refused while the
/// maintenance lock is held.
pub fn guards(command: &str) -> bool {
    !UNGUARDED.contains(&command) && !command.ends_with(" --dry-run")
}

/// Checks a lock message: one line of printable text, not empty, at most [`MAX_MESSAGE`]
/// characters. Returns it trimmed.
pub fn check_message(message: &str) -> Result<String, String> {
    let m = message.trim();
    if m.is_empty() {
        return Err("the message is empty: say why the environment is locked (-m \"...\")".into());
    }
    if let Some(c) = m.chars().find(|c| unsafe_char(*c)) {
        return Err(format!(
            "the message holds U+{:04X}, a control or invisible character: write one line of \
             plain text",
            c as u32
        ));
    }
    let n = m.chars().count();
    if n > MAX_MESSAGE {
        return Err(format!(
            "the message has {n} characters; keep it to {MAX_MESSAGE} (say where the details are)"
        ));
    }
    Ok(m.to_string())
}

/// A command that ran while the lock was held, with `--override-maintenance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub command: String,
    pub by: Operator,
    pub at: DateTime<Utc>,
}

/// The maintenance lock of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceLock {
    pub held_by: Operator,
    pub acquired_at: DateTime<Utc>,
    pub message: String,
    /// Commands that ran anyway, oldest first.
    #[serde(default)]
    pub overrides: Vec<Override>,
}

impl MaintenanceLock {
    /// A new lock held by this process's operator, now.
    pub fn new(message: String) -> Self {
        Self {
            held_by: Operator::current(),
            acquired_at: Utc::now(),
            message,
            overrides: Vec::new(),
        }
    }

    /// `ana@laptop since 2026-12-01 10:00:00 UTC: "message"`.
    pub fn describe(&self) -> String {
        format!(
            "{} since {}: \"{}\"",
            self.held_by,
            self.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.message
        )
    }

    /// What is wrong with a record read from a file (it is shown on terminals).
    fn problem(&self) -> Option<String> {
        if let Err(e) = check_message(&self.message) {
            return Some(e);
        }
        let operators = std::iter::once(&self.held_by).chain(self.overrides.iter().map(|o| &o.by));
        for op in operators {
            if op.user.chars().chain(op.machine.chars()).any(unsafe_char) {
                return Some("a user or machine name holds a control character".into());
            }
        }
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| o.command.chars().any(unsafe_char))
        {
            return Some(format!(
                "the override command {:?} holds a control character",
                o.command
            ));
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(
        "environment '{env}' is locked for maintenance by {}.\n  `{command}` would change the \
         environment, so it does not run. Ask {} to release the lock (`torrust-tracker-deployer \
         lock {env} release`), or run it anyway with --override-maintenance (it is recorded)",
        lock.describe(), lock.held_by
    )]
    Held {
        env: String,
        command: String,
        lock: Box<MaintenanceLock>,
    },
    #[error(
        "environment '{env}' is already locked for maintenance by {}.\n  Release it first \
         (`torrust-tracker-deployer lock {env} release`), then acquire it again",
        lock.describe()
    )]
    AlreadyHeld {
        env: String,
        lock: Box<MaintenanceLock>,
    },
    #[error(
        "the maintenance lock record of environment '{env}' at {} is not valid: {reason}.\n  It \
         was changed outside the deployer. Remove it with `torrust-tracker-deployer lock {env} \
         release` (and acquire it again if it is needed)",
        path.display()
    )]
    Unreadable {
        env: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::error_kind::Classify for MaintenanceError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            MaintenanceError::Held { .. } | MaintenanceError::AlreadyHeld { .. } => {
                ErrorKind::MaintenanceLocked
            }
            MaintenanceError::Unreadable { .. } => ErrorKind::State,
            MaintenanceError::Write { .. } => ErrorKind::Io,
        }
    }
}

impl DataDir {
    /// Where the maintenance lock of `env` is recorded.
    pub fn maintenance_file(&self, env: &str) -> PathBuf {
        self.env_dir(env).join(FILE)
    }

    /// The maintenance lock of `env`, if one is held.
    pub fn maintenance(&self, env: &str) -> Result<Option<MaintenanceLock>, MaintenanceError> {
        let path = self.maintenance_file(env);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MaintenanceError::Unreadable {
                    env: env.to_string(),
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let unreadable = |reason: String| MaintenanceError::Unreadable {
            env: env.to_string(),
            path: path.clone(),
            reason,
        };
        let lock: MaintenanceLock =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        match lock.problem() {
            Some(problem) => Err(unreadable(problem)),
            None => Ok(Some(lock)),
        }
    }

    /// Writes the maintenance lock of `env` (atomically, 0600). Call while holding the
    /// environment's lock.
    pub fn save_maintenance(
        &self,
        env: &str,
        lock: &MaintenanceLock,
    ) -> Result<(), MaintenanceError> {
        let path = self.maintenance_file(env);
        let text = serde_json::to_string_pretty(lock).expect("the lock record serializes");
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|source| MaintenanceError::Write { path, source })
    }

    /// Removes the maintenance lock of `env`; `false` when there was none. Call while holding
    /// the environment's lock.
    pub fn remove_maintenance(&self, env: &str) -> Result<bool, MaintenanceError> {
        let path = self.maintenance_file(env);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(MaintenanceError::Write { path, source }),
        }
    }

    /// Refuses `command` on `env` while the maintenance lock is held, unless this data
    /// directory overrides it: then the override is recorded and logged. Called by
    /// [`DataDir::lock`] once the environment's lock is held.
    pub(super) fn check_maintenance(
        &self,
        env: &str,
        command: &str,
    ) -> Result<(), MaintenanceError> {
        if !guards(command) {
            return Ok(());
        }
        let held = match self.maintenance(env) {
            Ok(Some(held)) => held,
            Ok(None) => return Ok(()),
            Err(e) if self.override_maintenance => {
                tracing::warn!("{e}\n  `{command}` runs anyway (--override-maintenance)");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !self.override_maintenance {
            return Err(MaintenanceError::Held {
                env: env.to_string(),
                command: command.to_string(),
                lock: Box::new(held),
            });
        }
        let mut held = held;
        let by = Operator::current();
        tracing::warn!(
            "environment '{env}' is locked for maintenance by {}; `{command}` runs anyway \
             (--override-maintenance by {by}, recorded in {})",
            held.describe(),
            self.maintenance_file(env).display()
        );
        held.overrides.push(Override {
            command: command.to_string(),
            by,
            at: Utc::now(),
        });
        let excess = held.overrides.len().saturating_sub(MAX_OVERRIDES);
        held.overrides.drain(..excess);
        self.save_maintenance(env, &held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::{Classify, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn data_with_env(dir: &std::path::Path) -> DataDir {
        let data = DataDir::new(dir);
        fs::create_dir_all(data.env_dir("e1")).unwrap();
        data
    }

    #[test]
    fn reading_commands_and_dry_runs_are_not_guarded() {
        for free in ["test", "logs", "ssh", "exec", "backup", "lock release"] {
            assert!(!guards(free), "{free}");
        }
        for dry in ["release --dry-run", "deploy --dry-run"] {
            assert!(!guards(dry), "{dry}");
        }
        for changing in [
            "provision",
            "configure",
            "release",
            "run",
            "deploy",
            "destroy",
            "register",
            "purge",
            "create environment",
            "stop",
            "start",
            "restart",
            "restore",
            "rollback",
            "some new command",
        ] {
            assert!(guards(changing), "{changing}");
        }
    }

    #[test]
    fn messages_are_one_line_of_plain_text() {
        assert_eq!(check_message("  disk upgrade  ").unwrap(), "disk upgrade");
        assert!(check_message("   ").is_err());
        assert!(check_message("two\nlines").is_err());
        assert!(check_message("esc \u{1b}[31m red").is_err());
        assert!(check_message("bidi \u{202E} trick").is_err());
        assert!(check_message(&"x".repeat(MAX_MESSAGE)).is_ok());
        assert!(check_message(&"x".repeat(MAX_MESSAGE + 1)).is_err());
        assert!(check_message("Änderung: Plattentausch 🙂").is_ok());
    }

    #[test]
    fn a_held_lock_refuses_changes_and_names_holder_time_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_with_env(dir.path());
        assert!(data.maintenance("e1").unwrap().is_none());
        let lock = MaintenanceLock::new("disk upgrade".into());
        data.save_maintenance("e1", &lock).unwrap();
        let mode = fs::metadata(data.maintenance_file("e1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let err = data
            .lock("e1", "release", Duration::ZERO)
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::MaintenanceLocked);
        let text = err.to_string();
        assert!(text.contains("disk upgrade"), "{text}");
        assert!(text.contains(&lock.held_by.to_string()), "{text}");
        assert!(text.contains(" UTC"), "{text}");
        assert!(text.contains("--override-maintenance"), "{text}");
        // The environment's lock is not left held by the refused command.
        drop(data.lock("e1", "test", Duration::ZERO).unwrap());
        // Reading commands and dry runs still run.
        drop(
            data.lock("e1", "release --dry-run", Duration::ZERO)
                .unwrap(),
        );
        assert!(
            data.maintenance("e1")
                .unwrap()
                .unwrap()
                .overrides
                .is_empty()
        );
    }

    #[test]
    fn an_override_runs_and_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_with_env(dir.path());
        data.save_maintenance("e1", &MaintenanceLock::new("m".into()))
            .unwrap();
        let forced = data.clone().overriding_maintenance(true);
        let guard = forced.lock("e1", "destroy", Duration::ZERO).unwrap();
        drop(guard);
        let held = data.maintenance("e1").unwrap().unwrap();
        assert_eq!(held.overrides.len(), 1);
        assert_eq!(held.overrides[0].command, "destroy");
        assert_eq!(held.overrides[0].by, Operator::current());
        // Still held for everyone else.
        assert!(data.lock("e1", "run", Duration::ZERO).is_err());
        assert!(data.remove_maintenance("e1").unwrap());
        assert!(!data.remove_maintenance("e1").unwrap());
        drop(data.lock("e1", "run", Duration::ZERO).unwrap());
    }

    #[test]
    fn a_tampered_record_is_refused_and_its_text_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_with_env(dir.path());
        let mut lock = MaintenanceLock::new("ok".into());
        lock.message = "\u{1b}]0;pwned\u{7}".into();
        fs::write(
            data.maintenance_file("e1"),
            serde_json::to_string(&lock).unwrap(),
        )
        .unwrap();
        let err = data.maintenance("e1").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::State);
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
        // A change is refused until the record is removed.
        assert!(data.lock("e1", "run", Duration::ZERO).is_err());
        fs::write(data.maintenance_file("e1"), "{").unwrap();
        assert!(data.lock("e1", "run", Duration::ZERO).is_err());
        assert!(data.remove_maintenance("e1").unwrap());
        drop(data.lock("e1", "run", Duration::ZERO).unwrap());
    }

    #[test]
    fn the_operator_is_named() {
        let op = Operator::current();
        assert!(!op.user.is_empty() && !op.machine.is_empty(), "{op}");
        assert_eq!(op.to_string(), format!("{}@{}", op.user, op.machine));
    }
}
