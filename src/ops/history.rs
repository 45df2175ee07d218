//! The release history: recording what a release (or a rollback) put on the host, and `history
//! ENV`, which lists every release, this machine's and the host's merged.
//!
//! A release is recorded when it changed the host, or when the host now holds something other
//! than the newest record says (a release interrupted after its upload, then run again): so a
//! release that changes nothing records nothing and costs nothing more. The record is written
//! here first (durably, with the files' contents), then appended on the host; a record the host
//! did not get (a lost connection) is sent by the next command that records one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::OpsError;
use super::host::{connect_within, provisioned_host};
use super::steps::StepRun;
use crate::host::Host;
use crate::stack::{FileRole, RenderedStack};
use crate::state::history::{
    Changes, Operator, RECORD_VERSION, RecordedFile, RecordedImage, ReleaseRecord,
};
use crate::state::{DataDir, EnvironmentState};
use crate::tasks::history as host_history;

/// What a command put on the host, for its record.
pub(crate) struct Release<'a> {
    pub rendered: &'a RenderedStack,
    /// The ID the host has for each image reference.
    pub image_ids: &'a BTreeMap<String, String>,
    /// Files the upload placed (created or updated).
    pub placed: Vec<String>,
    /// Images whose ID changed on the host during the command.
    pub images_changed: Vec<String>,
    pub command: &'static str,
    pub restores: Option<String>,
    pub note: Option<String>,
}

/// A record written by a command, as its result shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub id: String,
    pub changed: Changes,
}

/// The services a file's change restarts.
fn restarts_of(role: &FileRole) -> Vec<String> {
    match role {
        FileRole::Restart { services } => services.iter().map(|s| s.to_string()).collect(),
        FileRole::Compose | FileRole::Host => Vec::new(),
    }
}

/// The record of `release`, compared with `previous` (the newest record before it).
pub(crate) fn build(
    state: &EnvironmentState,
    release: &Release<'_>,
    previous: Option<&ReleaseRecord>,
) -> ReleaseRecord {
    let files: Vec<RecordedFile> = release
        .rendered
        .files
        .iter()
        .map(|f| RecordedFile {
            path: f.path.to_string_lossy().into_owned(),
            sha256: crate::state::history::sha256_hex(&f.contents),
            mode: f.mode,
            owner: f.owner,
            secret: f.secret,
            restarts: restarts_of(&f.role),
        })
        .collect();
    let images: Vec<RecordedImage> = release
        .rendered
        .images
        .iter()
        .map(|r| RecordedImage {
            reference: r.clone(),
            id: release.image_ids.get(r).cloned(),
        })
        .collect();

    let before: BTreeMap<&str, &RecordedFile> = previous
        .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let mut changed_files: BTreeSet<String> = release.placed.iter().cloned().collect();
    let mut restarts = BTreeSet::new();
    for f in &files {
        let same = before
            .get(f.path.as_str())
            .is_some_and(|b| (&b.sha256, b.mode, b.owner) == (&f.sha256, f.mode, f.owner));
        if !same || release.placed.contains(&f.path) {
            changed_files.insert(f.path.clone());
            restarts.extend(f.restarts.iter().cloned());
        }
    }
    changed_files.extend(
        before
            .keys()
            .filter(|p| !files.iter().any(|f| f.path == **p))
            .map(|p| p.to_string()),
    );
    let ids_before: BTreeMap<&str, &Option<String>> = previous
        .map(|p| {
            p.images
                .iter()
                .map(|i| (i.reference.as_str(), &i.id))
                .collect()
        })
        .unwrap_or_default();
    let mut changed_images: BTreeSet<String> = release.images_changed.iter().cloned().collect();
    changed_images.extend(
        images
            .iter()
            .filter(|i| ids_before.get(i.reference.as_str()) != Some(&&i.id))
            .map(|i| i.reference.clone()),
    );
    ReleaseRecord {
        version: RECORD_VERSION,
        id: ReleaseRecord::new_id(),
        at: Utc::now(),
        by: Operator::current(),
        command: release.command.to_string(),
        restores: release.restores.clone(),
        note: release.note.clone(),
        files,
        images,
        changed: Changes {
            files: changed_files.into_iter().collect(),
            images: changed_images.into_iter().collect(),
            restarts: restarts.into_iter().collect(),
        },
        config: state.config.clone(),
    }
}

/// Records what `release` put on the host, when it changed anything or the newest record says
/// otherwise, as the step [`host_history::TASK`]; sends the records the host lacks. Returns the
/// new record, if any.
pub(crate) async fn record(
    run: &mut StepRun<'_>,
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    release: Release<'_>,
) -> Result<Option<Recorded>, OpsError> {
    let local = data.history(&state.name);
    let previous = local.latest()?;
    let new = build(state, &release, previous.as_ref());
    let write = previous.is_none() || !new.changed.is_empty();
    if !write && local.unsent()?.is_empty() {
        return Ok(None);
    }
    let contents: BTreeMap<&str, &[u8]> = release
        .rendered
        .files
        .iter()
        .map(|f| (f.path.to_str().unwrap_or_default(), f.contents.as_slice()))
        .collect();
    run.step(state, host_history::TASK, async |_s| {
        if write {
            for f in &new.files {
                local.store_contents(contents.get(f.path.as_str()).copied().unwrap_or_default())?;
            }
            local.write(&new)?;
        }
        for r in local.unsent()? {
            let files: Vec<(String, Vec<u8>)> = r
                .files
                .iter()
                .filter_map(|f| local.contents(&f.sha256).map(|b| (f.sha256.clone(), b)))
                .collect();
            host_history::append(host, &r, &files)
                .await
                .map_err(OpsError::typed)?;
            local.mark_sent(&r)?;
        }
        Ok::<_, OpsError>(())
    })
    .await?;
    Ok(write.then(|| Recorded {
        id: new.id.clone(),
        changed: new.changed.clone(),
    }))
}

/// A record known here, on the host, or both.
#[derive(Debug, Clone)]
pub struct Known {
    pub record: ReleaseRecord,
    pub local: bool,
    pub host: bool,
}

/// This machine's and the host's records, merged by ID, oldest first.
pub fn merge(local: Vec<ReleaseRecord>, host: Vec<ReleaseRecord>) -> Vec<Known> {
    let mut by_id: BTreeMap<String, Known> = BTreeMap::new();
    for (record, on_host) in local
        .into_iter()
        .map(|r| (r, false))
        .chain(host.into_iter().map(|r| (r, true)))
    {
        let entry = by_id.entry(record.id.clone()).or_insert(Known {
            record,
            local: false,
            host: false,
        });
        if on_host {
            entry.host = true;
        } else {
            entry.local = true;
        }
    }
    let mut all: Vec<Known> = by_id.into_values().collect();
    all.sort_by(|a, b| (a.record.at, &a.record.id).cmp(&(b.record.at, &b.record.id)));
    all
}

/// Every record of the environment, this machine's and the host's, merged (oldest first), and
/// the host's lines that could not be read.
pub(crate) async fn known(
    data: &DataDir,
    state: &EnvironmentState,
    host: &dyn Host,
) -> Result<(Vec<Known>, Vec<String>), OpsError> {
    let local = data.history(&state.name).records()?;
    let on_host = host_history::read(host).await.map_err(OpsError::typed)?;
    Ok((merge(local, on_host.records), on_host.skipped))
}

#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// Do not read the host's history.
    pub local_only: bool,
}

/// One release, as `history` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseEntry {
    /// Its place in the merged history, from 1 (what `rollback --to` takes).
    pub number: usize,
    pub id: String,
    pub at: DateTime<Utc>,
    pub user: String,
    pub machine: String,
    pub command: String,
    /// A rollback: the number of the release it put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restores: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub changed: Changes,
    pub images: Vec<RecordedImage>,
    pub files: usize,
    /// Where the record is kept: `local`, `host` or `local+host`.
    pub stored: &'static str,
    /// The newest release: what the host should be running.
    pub current: bool,
}

/// Whether the host's history was read.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HostRead {
    Read {
        records: usize,
        /// Lines of the host's log that could not be read.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<String>,
    },
    /// `--local`.
    NotAsked,
    /// The environment has no host.
    NoHost,
    /// The host could not be reached or read: only this machine's records are listed.
    Failed { error: String },
}

/// What `history` prints.
#[derive(Debug, Serialize)]
pub struct History {
    pub name: String,
    pub releases: Vec<ReleaseEntry>,
    pub host: HostRead,
    pub elapsed_ms: u64,
}

/// The entries `history` lists for `known`.
pub fn entries(known: &[Known]) -> Vec<ReleaseEntry> {
    let number_of = |id: &str| known.iter().position(|k| k.record.id == id).map(|i| i + 1);
    known
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let r = &k.record;
            ReleaseEntry {
                number: i + 1,
                id: r.id.clone(),
                at: r.at,
                user: r.by.user.clone(),
                machine: r.by.machine.clone(),
                command: r.command.clone(),
                restores: r.restores.as_deref().and_then(number_of),
                note: r.note.clone(),
                changed: r.changed.clone(),
                images: r.images.clone(),
                files: r.files.len(),
                stored: match (k.local, k.host) {
                    (true, true) => "local+host",
                    (true, false) => "local",
                    _ => "host",
                },
                current: i + 1 == known.len(),
            }
        })
        .collect()
}

/// `history ENV`: this machine's records and, unless `--local`, the host's, merged. Read-only;
/// a host that cannot be reached leaves the local records listed and says why.
pub async fn history(
    data: &DataDir,
    env: &str,
    options: &HistoryOptions,
) -> Result<History, OpsError> {
    let started = Instant::now();
    let state = data.load(env)?;
    let local = data.history(env).records()?;
    let (on_host, host) = if options.local_only {
        (Vec::new(), HostRead::NotAsked)
    } else {
        match provisioned_host(&state) {
            Err(_) => (Vec::new(), HostRead::NoHost),
            Ok(record) => read_host(data, &state, &record).await,
        }
    };
    let known = merge(local, on_host);
    Ok(History {
        name: env.to_string(),
        releases: entries(&known),
        host,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

async fn read_host(
    data: &DataDir,
    state: &EnvironmentState,
    record: &crate::state::HostRecord,
) -> (Vec<ReleaseRecord>, HostRead) {
    let session = match connect_within(data, state, record, Duration::from_secs(20)).await {
        Ok(s) => s,
        Err(e) => {
            return (
                Vec::new(),
                HostRead::Failed {
                    error: e.to_string(),
                },
            );
        }
    };
    let read = host_history::read(&session).await;
    session.close().await;
    match read {
        Ok(h) => {
            let n = h.records.len();
            (
                h.records,
                HostRead::Read {
                    records: n,
                    skipped: h.skipped,
                },
            )
        }
        Err(e) => (
            Vec::new(),
            HostRead::Failed {
                error: e.to_string(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::history::tests::record;

    #[test]
    fn merging_keeps_one_entry_per_id_in_time_order() {
        let sha = "a".repeat(64);
        let a = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        let b = record("00000000000000b2", "2026-12-01T10:00:02Z", &sha);
        let mut c = record("00000000000000c3", "2026-12-01T10:00:03Z", &sha);
        c.command = "rollback".into();
        c.restores = Some(a.id.clone());
        c.by.user = "bo".into();
        // `a` and `c` here; `a` and `b` on the host (another operator released `b`).
        let known = merge(vec![c.clone(), a.clone()], vec![a.clone(), b.clone()]);
        let ids: Vec<&str> = known.iter().map(|k| k.record.id.as_str()).collect();
        assert_eq!(ids, [a.id.as_str(), b.id.as_str(), c.id.as_str()]);
        let list = entries(&known);
        let stored: Vec<&str> = list.iter().map(|e| e.stored).collect();
        assert_eq!(stored, ["local+host", "host", "local"]);
        assert_eq!(list[2].restores, Some(1));
        assert_eq!(list[2].user, "bo");
        assert!(list[2].current && !list[1].current);
        assert_eq!(list.iter().map(|e| e.number).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
