//! `lock ENV acquire|release|status`: the maintenance lock a person holds, with a message (see
//! [`crate::state::maintenance`]). Acquiring and releasing take the environment's lock, so they
//! wait for (or are refused by) a command that is running.

use std::time::Duration;

use serde::Serialize;

use super::OpsError;
use crate::state::maintenance::{MaintenanceError, MaintenanceLock, Operator};
use crate::state::{DataDir, StateError};

/// The maintenance lock of an environment, as `lock status`, `show` and `status` report it.
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    pub name: String,
    pub locked: bool,
    /// The lock, when held.
    #[serde(flatten)]
    pub lock: Option<MaintenanceLock>,
}

/// What `lock release` did.
#[derive(Debug, Serialize)]
pub struct LockReleased {
    pub name: String,
    /// Whether a lock was held (and is now released).
    pub released: bool,
    /// Who released it.
    pub by: Operator,
    /// The lock that was released; `None` when none was held, or its record was not readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<MaintenanceLock>,
}

fn ensure_exists(data: &DataDir, env: &str) -> Result<(), OpsError> {
    if data.exists(env) {
        Ok(())
    } else {
        Err(StateError::NotFound(env.to_string()).into())
    }
}

fn typed(e: MaintenanceError) -> OpsError {
    OpsError::typed(e)
}

/// Acquires the maintenance lock of `env` with `message` (already checked with
/// [`crate::state::maintenance::check_message`]). Refused while another one is held.
pub fn acquire(
    data: &DataDir,
    env: &str,
    message: String,
    lock_wait: Duration,
) -> Result<LockStatus, OpsError> {
    let _lock = data.lock(env, "lock acquire", lock_wait)?;
    ensure_exists(data, env)?;
    if let Some(held) = data.maintenance(env).map_err(typed)? {
        return Err(typed(MaintenanceError::AlreadyHeld {
            env: env.to_string(),
            lock: Box::new(held),
        }));
    }
    let lock = MaintenanceLock::new(message);
    data.save_maintenance(env, &lock).map_err(typed)?;
    tracing::info!(
        "maintenance lock of environment '{env}' acquired by {}",
        lock.describe()
    );
    Ok(LockStatus {
        name: env.to_string(),
        locked: true,
        lock: Some(lock),
    })
}

/// Releases the maintenance lock of `env`, whoever holds it; nothing to do when none is held.
/// A record that cannot be read is removed too.
pub fn release(data: &DataDir, env: &str, lock_wait: Duration) -> Result<LockReleased, OpsError> {
    let _lock = data.lock(env, "lock release", lock_wait)?;
    ensure_exists(data, env)?;
    let lock = match data.maintenance(env) {
        Ok(lock) => lock,
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    };
    let released = data.remove_maintenance(env).map_err(typed)?;
    let by = Operator::current();
    if let Some(lock) = &lock {
        tracing::info!(
            "maintenance lock of environment '{env}' ({}) released by {by}; {} command(s) \
             overrode it",
            lock.describe(),
            lock.overrides.len()
        );
    }
    Ok(LockReleased {
        name: env.to_string(),
        released,
        by,
        lock,
    })
}

/// The maintenance lock of `env`. Reads only, without the environment's lock.
pub fn status(data: &DataDir, env: &str) -> Result<LockStatus, OpsError> {
    ensure_exists(data, env)?;
    let lock = data.maintenance(env).map_err(typed)?;
    Ok(LockStatus {
        name: env.to_string(),
        locked: lock.is_some(),
        lock,
    })
}

/// For the reports of `show` and `status`: the lock if one is held, and a record that cannot
/// be read as a note instead of a failure (those commands must keep working).
pub fn view(data: &DataDir, env: &str) -> Option<MaintenanceView> {
    match data.maintenance(env) {
        Ok(lock) => lock.map(MaintenanceView::Held),
        Err(e) => Some(MaintenanceView::Unreadable {
            problem: e.to_string(),
        }),
    }
}

/// The maintenance lock as `show` and `status` report it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MaintenanceView {
    Held(MaintenanceLock),
    Unreadable { problem: String },
}

impl MaintenanceView {
    /// One line for people.
    pub fn line(&self) -> String {
        match self {
            MaintenanceView::Held(lock) => format!(
                "locked by {} (changes are refused; `lock ENV release` ends it)",
                lock.describe()
            ),
            MaintenanceView::Unreadable { problem } => {
                problem.lines().next().unwrap_or_default().to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::{Classify, ErrorKind};

    fn data_with(env: &str) -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        std::fs::create_dir_all(data.env_dir(env)).unwrap();
        std::fs::write(data.state_file(env), "{}").unwrap();
        (dir, data)
    }

    #[test]
    fn acquire_status_release() {
        let (_dir, data) = data_with("m1");
        assert!(!status(&data, "m1").unwrap().locked);
        let held = acquire(&data, "m1", "disk".into(), Duration::ZERO).unwrap();
        assert!(held.locked);
        let again = acquire(&data, "m1", "other".into(), Duration::ZERO).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::MaintenanceLocked);
        assert!(again.to_string().contains("\"disk\""), "{again}");
        let shown = status(&data, "m1").unwrap();
        assert_eq!(shown.lock.as_ref().unwrap().message, "disk");
        let json = serde_json::to_value(&shown).unwrap();
        assert_eq!(json["locked"], true);
        assert_eq!(json["message"], "disk");
        let released = release(&data, "m1", Duration::ZERO).unwrap();
        assert!(released.released);
        assert_eq!(released.lock.unwrap().message, "disk");
        let none = release(&data, "m1", Duration::ZERO).unwrap();
        assert!(!none.released && none.lock.is_none());
    }

    #[test]
    fn an_unknown_environment_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let err = acquire(&data, "nope", "m".into(), Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            status(&data, "nope").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn an_unreadable_record_is_a_note_in_views_and_release_removes_it() {
        let (_dir, data) = data_with("m2");
        std::fs::write(data.maintenance_file("m2"), "not json").unwrap();
        match view(&data, "m2") {
            Some(MaintenanceView::Unreadable { problem }) => {
                assert!(problem.contains("lock m2 release"), "{problem}")
            }
            other => panic!("{other:?}"),
        }
        assert!(release(&data, "m2", Duration::ZERO).unwrap().released);
        assert!(view(&data, "m2").is_none());
    }
}
