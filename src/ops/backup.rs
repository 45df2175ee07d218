//! `backup`: run the backup job now, list the archives on the host, copy them here.
//!
//! The remote work is the [`backup`](crate::tasks::backup) task: the job is the script `release`
//! installs (what cron runs), the archives are read with one command, copies are streamed and
//! checked by sha256. Running the job is a recorded step of the `backup` command. Listing and
//! copying change nothing on the host nor in the environment's state: they record nothing
//! (a copy resumes from its `.part` file), and the copies report their steps and bytes as
//! progress events all the same.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::host::{configured_host, connect, connect_for, released_host};
use super::steps::{Done, StepRun};
use crate::error_kind::{Classified, Classify};
use crate::events::{self, Events, What};
use crate::host::Host;
use crate::ssh::Session;
use crate::state::{DataDir, EnvironmentState, HostRecord};
use crate::tasks::backup::copy::{self, Fetched};
use crate::tasks::backup::{self, Archive, BackupError, Listing};

/// The step that lists the archives (and reads their checksums) before a download.
pub const LIST: &str = "list archives";

/// What `backup ENV` made.
#[derive(Debug, Serialize)]
pub struct Made {
    pub name: String,
    pub host: String,
    /// The archive, with its path on the host, size and sha256.
    pub archive: Archive,
    /// The job's output (also appended to its log on the host).
    pub output: String,
    pub elapsed_ms: u64,
}

/// What `backup ENV --list` found.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub host: String,
    #[serde(flatten)]
    pub listing: Listing,
}

/// What `backup ENV --download DIR` copied.
#[derive(Debug, Serialize)]
pub struct Downloaded {
    pub name: String,
    pub host: String,
    pub dir: PathBuf,
    pub archives: Vec<Fetched>,
    pub elapsed_ms: u64,
}

const SSH_RETRY: Duration = Duration::from_secs(30);

/// Connects for `command`, recording a failure like a failed step.
async fn reach(
    data: &DataDir,
    state: &mut EnvironmentState,
    record: &HostRecord,
    command: &str,
) -> Result<Session, OpsError> {
    connect_for(data, state, record, command, false, SSH_RETRY).await
}

/// Runs the backup job on the host now.
pub async fn backup(data: &DataDir, env: &str, lock_wait: Duration) -> Result<Made, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(env, "backup", lock_wait)?;
    let mut state = data.load(env)?;
    let (record, _) = released_host(&state, "backup")?;
    if state.config.backup.is_none() {
        return Err(OpsError::Refused(format!(
            "environment '{env}' has no backup job: add a `backup` section to its environment \
             file (`\"backup\": {{}}` is a daily backup at 03:00 kept 7 days), then run \
             `torrust-tracker-deployer create environment --env-file FILE` and \
             `torrust-tracker-deployer release {env}`"
        )));
    }
    let session = reach(data, &mut state, &record, "backup").await?;
    let result = backup_on(data, &mut state, &session).await;
    session.close().await;
    let (archive, output) = result?;
    Ok(Made {
        name: env.to_string(),
        host: record.ip,
        archive,
        output,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// [`backup`] on a host already reached, under the lock the caller holds.
pub async fn backup_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
) -> Result<(Archive, String), OpsError> {
    let mut run = StepRun::begin(data, state, "backup")?;
    let made = run
        .step_changed(state, backup::RUN, async |_s| {
            backup::run_job(host).await.map(Done::changed)
        })
        .await?;
    run.finish(state, None)?;
    Ok(made)
}

/// Lists the archives on the host (read-only).
pub async fn list(data: &DataDir, env: &str, lock_wait: Duration) -> Result<Listed, OpsError> {
    // The lock only while reading: a consistent state, not one half-written by another command.
    let state = {
        let _lock = data.lock(env, "backup", lock_wait)?;
        data.load(env)?
    };
    let (record, _) = configured_host(&state, "backup --list")?;
    let session = connect(data, &state, &record)
        .await
        .map_err(OpsError::typed)?;
    let result = backup::list(&session).await;
    session.close().await;
    Ok(Listed {
        name: env.to_string(),
        host: record.ip,
        listing: result.map_err(OpsError::typed)?,
    })
}

/// Copies the archives (all, or the one named) from the host into `dir`.
pub async fn download(
    data: &DataDir,
    env: &str,
    dir: &Path,
    archive: Option<&str>,
    lock_wait: Duration,
) -> Result<Downloaded, OpsError> {
    let started = Instant::now();
    if let Some(name) = archive {
        backup::check_name(name).map_err(OpsError::typed)?;
    }
    // The lock for the whole copy: no `destroy` or `restore` in the middle of it.
    let _lock = data.lock(env, "backup", lock_wait)?;
    let state = data.load(env)?;
    let (record, _) = configured_host(&state, "backup --download")?;
    let session = connect(data, &state, &record)
        .await
        .map_err(OpsError::typed)?;
    let result = download_on(env, &session, dir, archive).await;
    session.close().await;
    Ok(Downloaded {
        name: env.to_string(),
        host: record.ip,
        dir: dir.to_path_buf(),
        archives: result?,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Steps that send the same events as [`StepRun`]'s but record nothing in the state.
pub(crate) struct Unrecorded {
    events: Events,
    command: &'static str,
    started: Instant,
}

impl Unrecorded {
    pub(crate) fn begin(env: &str, command: &'static str) -> Self {
        let events = Events::current();
        events.emit(What::CommandStarted {
            command: command.to_string(),
            env: env.to_string(),
            resumes: None,
        });
        Self {
            events,
            command,
            started: Instant::now(),
        }
    }

    pub(crate) async fn step<T, E>(
        &self,
        name: &str,
        changed: impl FnOnce(&T) -> Option<bool>,
        body: impl Future<Output = Result<T, E>>,
    ) -> Result<T, OpsError>
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        let (command, step) = (self.command.to_string(), name.to_string());
        self.events.emit(What::StepStarted {
            command: command.clone(),
            step: step.clone(),
        });
        let started = Instant::now();
        let result = events::in_step(&self.events, self.command, name, body).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(value) => {
                self.events.emit(What::StepFinished {
                    command,
                    step,
                    changed: changed(&value),
                    elapsed_ms,
                });
                Ok(value)
            }
            Err(e) => {
                let error = Classified::new(e);
                self.events.emit(What::StepFailed {
                    command,
                    step,
                    kind: error.kind(),
                    message: error.to_string(),
                    elapsed_ms,
                });
                Err(OpsError::Typed(error))
            }
        }
    }

    pub(crate) fn finish(self) {
        self.events.emit(What::CommandFinished {
            command: self.command.to_string(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

/// [`download`] on a host already reached: one step lists the archives and reads their
/// checksums, then one step per archive copies it.
pub async fn download_on(
    env: &str,
    host: &dyn Host,
    dir: &Path,
    archive: Option<&str>,
) -> Result<Vec<Fetched>, OpsError> {
    let run = Unrecorded::begin(env, "backup");
    let chosen = run
        .step(LIST, |_| None, async {
            let listing = backup::list(host).await?;
            let mut chosen: Vec<Archive> = match archive {
                None => listing.archives,
                Some(name) => {
                    let found = listing.archives.into_iter().find(|a| a.name == name);
                    vec![found.ok_or_else(|| BackupError::NotFound {
                        name: name.to_string(),
                        place: format!("on the host (in {})", crate::stack::layout::BACKUP_DIR),
                    })?]
                }
            };
            let names: Vec<String> = chosen.iter().map(|a| a.name.clone()).collect();
            let sums = backup::checksums(host, &names).await?;
            for a in &mut chosen {
                a.sha256 = sums.get(&a.name).cloned();
            }
            // An archive removed in between (retention) is not copied.
            chosen.retain(|a| a.sha256.is_some());
            Ok::<_, BackupError>(chosen)
        })
        .await?;
    let mut fetched = Vec::new();
    for a in &chosen {
        let step = format!("download {}", a.name);
        let changed = |f: &Fetched| Some(f.action != copy::FetchAction::Unchanged);
        let f = run.step(&step, changed, copy::fetch(host, a, dir)).await?;
        fetched.push(f);
    }
    run.finish();
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};
    use crate::ops::release::tests::configured_state;
    use crate::state::Lifecycle;
    use sha2::Digest;

    #[tokio::test]
    async fn the_job_runs_as_a_recorded_step() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        state.lifecycle = Lifecycle::Running;
        let host = FakeHost::new();
        let sha = "b".repeat(64);
        host.reply(
            "backup.sh",
            [Reply::ok(format!(
                "--rc 0\n--archive\n5 1764471600 torrust-backup-x.tar.gz\n\
                 {sha}  torrust-backup-x.tar.gz\n--output\nok\n"
            ))],
        );
        let (archive, _) = backup_on(&data, &mut state, &host).await.unwrap();
        assert_eq!(archive.sha256.as_deref(), Some(sha.as_str()));
        let saved = data.load(&state.name).unwrap();
        let last = saved.last_run.unwrap();
        assert_eq!(last.command, "backup");
        assert_eq!(last.completed_steps, vec![backup::RUN]);
    }

    #[tokio::test]
    async fn downloads_copy_every_archive_or_the_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::new();
        let mut listing = String::new();
        let mut sums = String::new();
        for (name, body) in [
            ("torrust-backup-a.tar.gz", "aa"),
            ("torrust-backup-b.tar.gz", "bbb"),
        ] {
            host.put_file(&backup::host_path(name), body, 0o600);
            listing.push_str(&format!("{} 1764471600 {name}\n", body.len()));
            let sha = backup::hex(&sha2::Sha256::digest(body.as_bytes()));
            sums.push_str(&format!("{sha}  {name}\n"));
        }
        listing.push_str("--last\ntorrust-backup-b.tar.gz\n");
        host.reply("for f in torrust-backup-", [Reply::ok(listing)]);
        host.reply("sha256sum --", [Reply::ok(sums)]);
        let out = dir.path().join("out");
        let rec = crate::events::Recorder::new();
        let got = Events::new(rec.clone())
            .scope(download_on("rel", &host, &out, None))
            .await
            .unwrap();
        let steps: Vec<String> = rec
            .whats()
            .into_iter()
            .filter_map(|w| match w {
                What::StepFinished { step, changed, .. } => Some(format!("{step} {changed:?}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            steps,
            [
                "list archives None",
                "download torrust-backup-a.tar.gz Some(true)",
                "download torrust-backup-b.tar.gz Some(true)"
            ]
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            std::fs::read(out.join("torrust-backup-b.tar.gz")).unwrap(),
            b"bbb"
        );

        let again = download_on("rel", &host, &out, Some("torrust-backup-a.tar.gz"))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].action, copy::FetchAction::Unchanged);

        let err = download_on("rel", &host, &out, Some("torrust-backup-c.tar.gz"))
            .await
            .unwrap_err();
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::NotFound
        );
    }
}
