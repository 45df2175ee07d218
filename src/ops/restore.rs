//! `restore ENV --from ARCHIVE`: put the database of a backup archive back, on a running (or
//! freshly deployed) environment.
//!
//! `ARCHIVE` is a file here (it is checked, then sent to the host's backup directory with its
//! sha256 compared at both ends) or the name of an archive on the host. Steps: upload (a local
//! file), check archive (its database must be the environment's: SQLite or MySQL, and the same
//! MySQL database), stop the tracker (MySQL keeps running: the dump is imported into it),
//! restore the database (the SQLite file replaced, the previous one kept beside it; or the dump
//! imported), `compose up`, wait until healthy: the environment is then `running` (a stopped
//! one too, ADR 19). Then the protocol test, as `deploy` ends with.
//!
//! Only the database is restored; see [`crate::tasks::backup::restore`] for why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::host::{connect_for, released_host};
use super::release::render;
use super::steps::{Done, StepRun};
use super::test::{self, TestOptions};
use crate::config::Database;
use crate::host::Host;
use crate::stack::layout;
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::backup::restore::{self as task, ArchiveDatabase};
use crate::tasks::backup::{self, Archive, BackupError, copy};
use crate::tasks::compose::{self, ServiceHealth};

/// The step that sends a local archive to the host.
pub const UPLOAD: &str = "upload archive";

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// A local archive, or the name of one on the host.
    pub from: String,
    /// How long to wait for every service to be healthy afterwards.
    pub timeout: Duration,
}

/// Where the archive comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An archive in the host's backup directory.
    Host(String),
    /// A file on this machine.
    Local(PathBuf),
}

impl Source {
    /// A path to an existing file is local; otherwise an archive name is looked up on the host.
    pub fn parse(from: &str) -> Result<Source, OpsError> {
        let path = Path::new(from);
        if path.is_file() {
            return Ok(Source::Local(path.to_path_buf()));
        }
        if backup::valid_name(from) {
            return Ok(Source::Host(from.to_string()));
        }
        Err(OpsError::typed(BackupError::NotFound {
            name: from.to_string(),
            place: "here (no such file), and it is not the name of an archive on the host \
                    (`torrust-backup-<time>.tar.gz`)"
                .into(),
        }))
    }
}

/// What `restore` did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub name: String,
    pub host: String,
    /// The archive on the host that was restored, with its sha256.
    pub archive: Archive,
    /// Whether a local archive was sent to the host (false: named on the host, or already there).
    pub uploaded: bool,
    pub database: ArchiveDatabase,
    /// SQLite: where the database it replaced was kept, on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_database: Option<String>,
    pub services: Vec<ServiceHealth>,
    /// The protocol test afterwards: checks passed, of how many.
    pub test_passed: usize,
    pub test_total: usize,
    pub elapsed_ms: u64,
}

pub async fn restore(
    data: &DataDir,
    env: &str,
    options: &RestoreOptions,
    lock_wait: Duration,
) -> Result<Restored, OpsError> {
    let started = Instant::now();
    let source = Source::parse(&options.from)?;
    // A local archive is read first: a wrong file is refused before anything is connected.
    let local = match &source {
        Source::Local(path) => Some(task::peek_local(path).await.map_err(OpsError::typed)?),
        Source::Host(_) => None,
    };
    let _lock = data.lock(env, "restore", lock_wait)?;
    let mut state = data.load(env)?;
    let (record, _) = released_host(&state, "restore")?;
    if let Some(found) = &local {
        task::check_matches(&options.from, found, &state.config.tracker.core.database)
            .map_err(OpsError::typed)?;
    }
    let session = connect_for(
        data,
        &mut state,
        &record,
        "restore",
        false,
        Duration::from_secs(30),
    )
    .await?;
    let result = async {
        let mut restored = restore_on(data, &mut state, &session, &source, options).await?;
        let tested = test::test_with(data, &state, &TestOptions::default(), Some(&session)).await?;
        for r in &tested.report.results {
            tracing::info!("{r}");
        }
        if let Some(failure) = tested.failure() {
            return Err(failure);
        }
        restored.test_passed = tested.passed;
        restored.test_total = tested.passed + tested.failed;
        Ok(restored)
    }
    .await;
    session.close().await;
    let mut restored = result?;
    restored.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(restored)
}

/// Where the environment's SQLite database is on the host.
fn sqlite_file(database: &Database) -> Option<PathBuf> {
    match database {
        Database::Sqlite3(s) => Some(
            layout::tracker_lib()
                .join("database")
                .join(&s.database_name),
        ),
        Database::Mysql(_) => None,
    }
}

/// The restore's recorded steps on a host already reached, under the lock the caller holds.
pub async fn restore_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    source: &Source,
    options: &RestoreOptions,
) -> Result<Restored, OpsError> {
    let (record, setup) = released_host(state, "restore")?;
    let compose_command = setup.compose_command.clone();
    let rendered = render(state)?;
    let database = state.config.tracker.core.database.clone();
    let mut run = StepRun::begin(data, state, "restore")?;
    let (name, uploaded) = match source {
        Source::Host(name) => (name.clone(), false),
        Source::Local(path) => {
            let up = run
                .step_changed(state, UPLOAD, async |_s| {
                    let up = copy::upload(host, path).await?;
                    let sent = up.sent;
                    Ok::<_, BackupError>(Done::new(up, sent))
                })
                .await?;
            (up.name, up.sent)
        }
    };
    let inspected = run
        .step(state, task::CHECK, async |_s| {
            let inspected = task::inspect(host, &name).await?;
            task::check_matches(&name, &inspected.database, &database)?;
            Ok::<_, BackupError>(inspected)
        })
        .await?;
    run.step(state, task::STOP, async |_s| {
        task::stop_tracker(host, &compose_command).await
    })
    .await?;
    let archive_path = inspected.archive.path.clone();
    let previous = run
        .step(state, task::RESTORE, async |_s| match &inspected.database {
            ArchiveDatabase::Sqlite { file, .. } => {
                let db = sqlite_file(&database).expect("checked: the environment uses SQLite");
                task::restore_sqlite(host, &archive_path, file, &db).await
            }
            ArchiveDatabase::Mysql { .. } => {
                task::restore_mysql(host, &compose_command, &archive_path)
                    .await
                    .map(|()| None)
            }
        })
        .await?;
    run.step(state, compose::UP, async |_s| {
        compose::up(host, &compose_command).await
    })
    .await?;
    let services = run
        .step(state, compose::HEALTH, async |_s| {
            let interval = Duration::from_millis(500);
            compose::wait_healthy(host, &rendered, options.timeout, interval).await
        })
        .await?;
    // Every service is up and healthy, as after `run` (ADR 19: a stopped stack is started).
    run.finish(state, Some(Lifecycle::Running))?;
    Ok(Restored {
        name: state.name.clone(),
        host: record.ip,
        archive: inspected.archive,
        uploaded,
        database: inspected.database,
        previous_database: previous,
        services,
        test_passed: 0,
        test_total: 0,
        elapsed_ms: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::{Classify, ErrorKind};
    use crate::host::fake::{FakeHost, Reply};
    use crate::ops::release::tests::configured_state;
    use crate::tasks::backup::host_path;

    const NAME: &str = "torrust-backup-20251130T030000Z.tar.gz";

    fn inspection(entries: &str) -> String {
        format!(
            "--sum\n99 1764471600 {NAME}\n{}  {NAME}\n--entries\n{entries}--use\n",
            "c".repeat(64)
        )
    }

    fn options() -> RestoreOptions {
        RestoreOptions {
            from: NAME.into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn healthy(state: &EnvironmentState) -> String {
        render(state)
            .unwrap()
            .services
            .iter()
            .map(|s| format!("{} running healthy ok\n", s.name))
            .collect()
    }

    #[tokio::test]
    async fn a_sqlite_archive_replaces_the_file_between_stop_and_start() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Stopped;
        let host = FakeHost::new();
        host.reply(
            "tar -tzf",
            [Reply::ok(inspection("database/\ndatabase/tracker.db\n"))],
        );
        host.reply("stop tracker", [Reply::ok("")]);
        host.reply(
            "before-restore",
            [Reply::ok(
                "--kept /opt/torrust/storage/tracker/lib/database/tracker.db.before-restore-x\n",
            )],
        );
        host.reply("docker ps -a --no-trunc", [Reply::ok("tracker a\n")]);
        host.reply("up -d --remove-orphans", [Reply::ok("")]);
        host.reply("{{.State.Status}}", [Reply::ok(healthy(&state))]);

        let source = Source::Host(NAME.into());
        let restored = restore_on(&data, &mut state, &host, &source, &options())
            .await
            .unwrap();
        assert_eq!(restored.archive.path, host_path(NAME));
        assert!(
            restored
                .previous_database
                .unwrap()
                .contains("before-restore")
        );
        let commands = host.commands();
        let at = |text: &str| {
            commands
                .iter()
                .position(|c| c.contains(text))
                .unwrap_or_else(|| panic!("no {text}: {commands:#?}"))
        };
        assert!(at("tar -tzf") < at("stop tracker"));
        assert!(at("stop tracker") < at("before-restore"));
        assert!(at("before-restore") < at("up -d"));
        let swap = &commands[at("before-restore")];
        assert!(
            swap.contains("db=/opt/torrust/storage/tracker/lib/database/tracker.db\n"),
            "{swap}"
        );
        let saved = data.load(&state.name).unwrap();
        assert_eq!(
            saved.lifecycle,
            Lifecycle::Running,
            "a stopped stack was started"
        );
        let saved = saved.last_run.unwrap();
        assert_eq!(saved.command, "restore");
        assert_eq!(
            saved.completed_steps,
            [
                task::CHECK,
                task::STOP,
                task::RESTORE,
                compose::UP,
                compose::HEALTH
            ]
        );
    }

    #[tokio::test]
    async fn an_archive_of_the_other_database_is_refused_before_anything_stops() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Running;
        let host = FakeHost::new();
        host.reply(
            "tar -tzf",
            [Reply::ok(inspection(
                "database/\ndatabase/mysql-dump.sql\n",
            ))],
        );
        let source = Source::Host(NAME.into());
        let err = restore_on(&data, &mut state, &host, &source, &options())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArchiveInvalid, "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("uses SQLite"), "{err}");
        assert_eq!(host.commands().len(), 1, "{:?}", host.commands());
    }

    #[test]
    fn the_source_is_a_local_file_or_a_name_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("copy.tar.gz");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(
            Source::parse(file.to_str().unwrap()).unwrap(),
            Source::Local(file.clone())
        );
        assert_eq!(Source::parse(NAME).unwrap(), Source::Host(NAME.into()));
        let err = Source::parse("/nowhere/backup.tar.gz").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn the_sqlite_file_is_the_environments() {
        let dir = tempfile::tempdir().unwrap();
        let state = configured_state(&DataDir::new(dir.path()));
        let path = sqlite_file(&state.config.tracker.core.database).unwrap();
        assert!(path.starts_with(layout::STORAGE_DIR), "{}", path.display());
    }
}
