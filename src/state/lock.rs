//! One lock per environment, held for a command's whole run.
//!
//! The lock is an advisory `flock` on `data/.locks/<env>.lock`: the kernel drops it when the
//! holder dies, so a crashed command never leaves the environment locked. The file's content
//! says who holds it (PID, host, command, start time). Content found in a file whose lock is
//! free belongs to a holder that died: that is a stale lock, reported and taken over.
//!
//! A command made of phases (`deploy`) takes the lock once and runs its phases inside
//! [`EnvLock::hold`]: a phase that asks for the same lock in that task gets a nested guard
//! instead of waiting for itself, so no other command can run between the phases.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (PID {} on {}, since {})",
            self.command,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "environment '{env}' is locked by {owner}.\n  Wait for it to finish, or retry with --lock-wait SECONDS to wait for the lock"
    )]
    Held { env: String, owner: LockOwner },
    #[error(
        "environment '{env}' is still locked by {owner} after waiting {waited_secs} s.\n  Wait for it to finish, or raise --lock-wait"
    )]
    Timeout {
        env: String,
        owner: LockOwner,
        waited_secs: u64,
    },
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A person holds the environment's maintenance lock.
    #[error(transparent)]
    Maintenance(#[from] super::maintenance::MaintenanceError),
}

impl crate::error_kind::Classify for LockError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            LockError::Held { .. } | LockError::Timeout { .. } => ErrorKind::Locked,
            LockError::Io { .. } => ErrorKind::Io,
            LockError::Maintenance(e) => e.kind(),
        }
    }
}

tokio::task_local! {
    /// The lock files held by the running command for the phases it runs ([`EnvLock::hold`]).
    static HELD: Vec<PathBuf>;
}

/// A held lock. Dropping it releases the lock and clears the owner record.
#[derive(Debug)]
pub struct EnvLock {
    /// `None` for a nested guard: the lock belongs to an enclosing [`EnvLock::hold`].
    file: Option<File>,
    path: PathBuf,
    /// The owner record of a holder that died without releasing, if one was found.
    pub recovered_stale: Option<LockOwner>,
}

impl EnvLock {
    /// Takes the lock for `env`, waiting up to `wait` for a live holder to finish.
    pub fn acquire(
        lock_dir: &Path,
        env: &str,
        command: &str,
        wait: Duration,
    ) -> Result<EnvLock, LockError> {
        let path = lock_dir.join(format!("{env}.lock"));
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if HELD.try_with(|held| held.contains(&path)).unwrap_or(false) {
            return Ok(EnvLock {
                file: None,
                path,
                recovered_stale: None,
            });
        }
        std::fs::create_dir_all(lock_dir).map_err(io_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let owner = read_owner(&path).unwrap_or_else(|| LockOwner {
                        pid: 0,
                        host: "unknown".into(),
                        command: "unknown".into(),
                        started_at: Utc::now(),
                    });
                    if start.elapsed() >= wait {
                        return Err(if wait.is_zero() {
                            LockError::Held {
                                env: env.to_string(),
                                owner,
                            }
                        } else {
                            LockError::Timeout {
                                env: env.to_string(),
                                owner,
                                waited_secs: wait.as_secs(),
                            }
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(io_err)?;
        let recovered_stale = serde_json::from_str::<LockOwner>(&previous).ok();
        let owner = LockOwner {
            pid: std::process::id(),
            host: hostname(),
            command: command.to_string(),
            started_at: Utc::now(),
        };
        let record = serde_json::to_string(&owner).expect("lock owner serializes");
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        file.write_all(record.as_bytes()).map_err(io_err)?;
        file.sync_data().map_err(io_err)?;
        Ok(EnvLock {
            file: Some(file),
            path,
            recovered_stale,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this guard only stands for a lock an enclosing [`hold`](Self::hold) owns.
    pub fn is_nested(&self) -> bool {
        self.file.is_none()
    }

    /// Runs `f` with this lock standing for every acquisition of the same environment's lock
    /// made inside it (in the same task): those get a nested guard at once, and the lock stays
    /// held from the first phase to the last.
    pub async fn hold<F: std::future::Future>(&self, f: F) -> F::Output {
        let mut held = HELD.try_with(Clone::clone).unwrap_or_default();
        held.push(self.path.clone());
        HELD.scope(held, f).await
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            // Clear the record first, so a later reader never mistakes us for a stale holder.
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

fn read_owner(path: &Path) -> Option<LockOwner> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// This machine's host name, for lock records.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_owner() {
        let dir = tempfile::tempdir().unwrap();
        let first = EnvLock::acquire(dir.path(), "e1", "provision", Duration::ZERO).unwrap();
        let err = EnvLock::acquire(dir.path(), "e1", "destroy", Duration::ZERO).unwrap_err();
        match &err {
            LockError::Held { owner, .. } => {
                assert_eq!(owner.command, "provision");
                assert_eq!(owner.pid, std::process::id());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("--lock-wait"));
        drop(first);
        EnvLock::acquire(dir.path(), "e1", "destroy", Duration::ZERO).unwrap();
    }

    #[test]
    fn stale_record_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let dead = LockOwner {
            pid: 999_999,
            host: "h".into(),
            command: "provision".into(),
            started_at: Utc::now(),
        };
        std::fs::write(
            dir.path().join("e2.lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let lock = EnvLock::acquire(dir.path(), "e2", "provision", Duration::ZERO).unwrap();
        assert_eq!(lock.recovered_stale, Some(dead));
    }

    #[tokio::test]
    async fn phases_inside_hold_get_a_nested_guard_and_others_wait() {
        let dir = tempfile::tempdir().unwrap();
        let outer = EnvLock::acquire(dir.path(), "e4", "deploy", Duration::ZERO).unwrap();
        assert!(!outer.is_nested());
        outer
            .hold(async {
                let inner = EnvLock::acquire(dir.path(), "e4", "release", Duration::ZERO).unwrap();
                assert!(inner.is_nested());
                drop(inner);
                // Dropping the nested guard released nothing: another environment's lock is
                // separate, and this one is still held for anyone outside the hold.
                let path = dir.path().to_path_buf();
                let other = std::thread::spawn(move || {
                    EnvLock::acquire(&path, "e4", "destroy", Duration::ZERO).map(|_| ())
                })
                .join()
                .unwrap();
                assert!(matches!(other, Err(LockError::Held { .. })), "{other:?}");
                assert!(
                    !EnvLock::acquire(dir.path(), "e5", "x", Duration::ZERO)
                        .unwrap()
                        .is_nested()
                );
            })
            .await;
        // Outside the hold, the same task is an ordinary contender again.
        assert!(EnvLock::acquire(dir.path(), "e4", "run", Duration::ZERO).is_err());
        drop(outer);
        EnvLock::acquire(dir.path(), "e4", "run", Duration::ZERO).unwrap();
    }

    #[test]
    fn waits_for_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = EnvLock::acquire(dir.path(), "e3", "a", Duration::ZERO).unwrap();
        let path = dir.path().to_path_buf();
        let t = std::thread::spawn(move || {
            EnvLock::acquire(&path, "e3", "b", Duration::from_secs(5)).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        t.join().unwrap().unwrap();
    }
}
