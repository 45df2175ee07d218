//! `rollback ENV [--to N]`: put a recorded release back on the host, byte for byte, and restart
//! only what that changes; and the automatic rollback of a `deploy` whose new images never
//! became healthy.
//!
//! The release to put back is found in the merged history ([`super::history`]): by default the
//! one before the newest. Its files' contents come from this machine's history, or from the
//! host's (a release another operator made). Then the same steps as `release` and `run`, on the
//! recorded files instead of the model's: directories, the upload (the restarts it requires owed
//! durably before anything is placed), the images (each reference pointed back at its recorded
//! ID when the host still has it), `compose up` (recreates what the compose file or `.env`
//! changes), the restarts, the wait until healthy. The configuration the release was made from
//! becomes the environment's again (this machine's SSH, provider, `host` and offline bundle
//! settings kept), so `status` finds no drift and `release` keeps it; the next `deploy
//! --env-file` applies the file again. The rollback is recorded as a release of its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::StepReport;
use super::history::{self, Known, Recorded};
use super::host::{configured_host, connect_for, released_host};
use super::release::{FileReport, bundle_dir, owed_restarts, release_steps};
use super::run::{RunOptions, Running, run_steps};
use super::steps::StepRun;
use crate::config::{EnvironmentConfig, Images};
use crate::error_kind::{Classify, ErrorKind};
use crate::host::Host;
use crate::stack::{FileRole, RenderedStack, Service, StackFile};
use crate::state::history::{RecordedImage, ReleaseRecord};
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::compose::ServiceHealth;
use crate::tasks::{TaskError, history as host_history, images};

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The release to put back (its number in `history`); default: the one before the newest.
    pub to: Option<usize>,
    /// How long to wait for every service to be healthy.
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct RolledBack {
    pub name: String,
    pub host: String,
    /// The release put back: its number in `history`, and its ID.
    pub to: usize,
    pub to_id: String,
    pub changed: bool,
    pub steps: Vec<StepReport>,
    pub files: Vec<FileReport>,
    pub images: Vec<RecordedImage>,
    /// Services whose container `up -d` created or recreated.
    pub recreated: Vec<String>,
    /// Services restarted to apply changed files.
    pub restarted: Vec<String>,
    pub services: Vec<ServiceHealth>,
    /// The rollback's own record in the history (when it changed what the host holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "environment '{env}' has {count} recorded release(s): there is no release {asked}.\n  \
         `torrust-tracker-deployer history {env}` lists them"
    )]
    NoSuchRelease {
        env: String,
        asked: usize,
        count: usize,
    },
    #[error(
        "environment '{env}' has {count} recorded release(s): nothing to roll back to.\n  A \
         release is recorded when it changes what the host holds; `torrust-tracker-deployer \
         history {env}` lists them"
    )]
    NothingBefore { env: String, count: usize },
    #[error("release {number} of environment '{env}' cannot be put back: {what}.\n  {fix}")]
    Incomplete {
        env: String,
        number: usize,
        what: String,
        fix: String,
    },
    #[error(
        "environment '{env}': the upgrade ({upgrade}) did not become healthy, so release \
         {restored} was put back ({images}) and is healthy again.\n  Fix the image (`images` in \
         the environment file), then deploy again; `torrust-tracker-deployer history {env}` \
         lists both releases. What failed:\n{cause}"
    )]
    UpgradeRolledBack {
        env: String,
        upgrade: String,
        restored: usize,
        images: String,
        cause: String,
    },
    #[error(
        "environment '{env}': the upgrade ({upgrade}) did not become healthy, and putting \
         release {restored} back failed too: {error}\n  What failed first:\n{cause}"
    )]
    RollbackFailed {
        env: String,
        upgrade: String,
        restored: usize,
        cause: String,
        #[source]
        error: Box<OpsError>,
    },
}

impl Classify for RollbackError {
    fn kind(&self) -> ErrorKind {
        match self {
            RollbackError::NoSuchRelease { .. } | RollbackError::NothingBefore { .. } => {
                ErrorKind::Refused
            }
            RollbackError::Incomplete { .. } => ErrorKind::HistoryIncomplete,
            RollbackError::UpgradeRolledBack { .. } => ErrorKind::UpgradeRolledBack,
            RollbackError::RollbackFailed { error, .. } => error.kind(),
        }
    }
}

pub async fn rollback(
    data: &DataDir,
    env: &str,
    options: &RollbackOptions,
    lock_wait: Duration,
) -> Result<RolledBack, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(env, "rollback", lock_wait)?;
    let mut state = data.load(env)?;
    let (record, _) = released_host(&state, "rollback")?;
    let session = connect_for(
        data,
        &mut state,
        &record,
        "rollback",
        false,
        Duration::from_secs(30),
    )
    .await?;
    let result = async {
        let (known, _) = history::known(data, &state, &session).await?;
        let index = pick(env, &known, options.to)?;
        rollback_on(
            data,
            &mut state,
            &session,
            &known,
            index,
            options.timeout,
            None,
        )
        .await
    }
    .await;
    session.close().await;
    let mut rolled = result?;
    rolled.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(rolled)
}

/// The index in `known` of release `to` (numbered from 1), or of the one before the newest.
pub fn pick(env: &str, known: &[Known], to: Option<usize>) -> Result<usize, OpsError> {
    let count = known.len();
    match to {
        Some(n) if (1..=count).contains(&n) => Ok(n - 1),
        Some(asked) => Err(OpsError::typed(RollbackError::NoSuchRelease {
            env: env.to_string(),
            asked,
            count,
        })),
        None if count >= 2 => Ok(count - 2),
        None => Err(OpsError::typed(RollbackError::NothingBefore {
            env: env.to_string(),
            count,
        })),
    }
}

/// The recorded configuration with this machine's ways of reaching the host: its SSH
/// credentials, provider, `host` settings and offline bundle.
pub fn restored_config(
    current: &EnvironmentConfig,
    recorded: &EnvironmentConfig,
) -> EnvironmentConfig {
    let mut config = recorded.clone();
    config.environment = current.environment.clone();
    config.ssh_credentials = current.ssh_credentials.clone();
    config.provider = current.provider.clone();
    config.host = current.host.clone();
    let bundle = current
        .images
        .as_ref()
        .and_then(|i| i.offline_bundle.clone());
    match (&mut config.images, bundle) {
        (Some(images), bundle) => images.offline_bundle = bundle,
        (None, Some(bundle)) => {
            config.images = Some(Images {
                offline_bundle: Some(bundle),
                ..Images::default()
            })
        }
        (None, None) => {}
    }
    config
}

fn service_named(name: &str) -> Option<Service> {
    Service::ALL.into_iter().find(|s| s.as_str() == name)
}

/// The stack of a recorded release: its files (recorded bytes) and images over the directories
/// and services of its configuration.
fn recorded_stack(
    mut rendered: RenderedStack,
    record: &ReleaseRecord,
    contents: BTreeMap<String, Vec<u8>>,
) -> RenderedStack {
    rendered.files = record
        .files
        .iter()
        .map(|f| {
            let services: Vec<Service> =
                f.restarts.iter().filter_map(|s| service_named(s)).collect();
            StackFile {
                path: f.path.clone().into(),
                contents: contents.get(&f.sha256).cloned().unwrap_or_default(),
                mode: f.mode,
                owner: f.owner,
                secret: f.secret,
                role: if services.is_empty() {
                    FileRole::Host
                } else {
                    FileRole::Restart { services }
                },
            }
        })
        .collect();
    rendered.images = record.images.iter().map(|i| i.reference.clone()).collect();
    rendered
}

/// The recorded files' contents: from this machine's history, else from the host's (then kept
/// here too).
async fn gather(
    data: &DataDir,
    env: &str,
    host: &dyn Host,
    record: &ReleaseRecord,
    number: usize,
) -> Result<BTreeMap<String, Vec<u8>>, OpsError> {
    let local = data.history(env);
    let mut out = BTreeMap::new();
    for f in &record.files {
        let bytes = match local.contents(&f.sha256) {
            Some(b) => b,
            None => match host_history::fetch(host, &f.sha256)
                .await
                .map_err(OpsError::typed)?
            {
                Some(b) => {
                    local.store_contents(&b)?;
                    b
                }
                None => {
                    return Err(OpsError::typed(RollbackError::Incomplete {
                        env: env.to_string(),
                        number,
                        what: format!(
                            "the contents of {} (sha256 {}) are neither in this machine's \
                             history nor in the host's",
                            f.path, f.sha256
                        ),
                        fix: "roll back to another release (`history` lists them)".into(),
                    }));
                }
            },
        };
        out.insert(f.sha256.clone(), bytes);
    }
    Ok(out)
}

/// The restored configuration of release `number` (checked against today's rules) and its
/// stack.
fn prepare(
    state: &EnvironmentState,
    target: &ReleaseRecord,
    number: usize,
) -> Result<(EnvironmentConfig, RenderedStack), OpsError> {
    let config = restored_config(&state.config, &target.config);
    let problems = crate::config::validate_stored(&config);
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        return Err(OpsError::typed(RollbackError::Incomplete {
            env: state.name.clone(),
            number,
            what: format!("its configuration fails today's rules: {}", list.join("; ")),
            fix: "roll back to another release (`history` lists them)".into(),
        }));
    }
    let rendered = crate::stack::render(&config).map_err(OpsError::typed)?;
    Ok((config, rendered))
}

/// Points each reference back at its recorded image when a later release moved the tag (step
/// `image tags`, only then). Returns the references moved back, with their IDs.
async fn retag_step(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    target: &ReleaseRecord,
    image_ids: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, OpsError> {
    let moved: Vec<(String, String)> = target
        .images
        .iter()
        .filter_map(|i| Some((i.reference.clone(), i.id.clone()?)))
        .filter(|(r, id)| image_ids.get(r) != Some(id))
        .collect();
    if !moved.is_empty() {
        run.step(state, "image tags", async |_s| {
            images::tag(host, &moved).await?;
            Ok::<_, TaskError>(())
        })
        .await?;
    }
    Ok(moved)
}

/// `run`'s result before its steps.
fn nothing_run(name: &str, ip: &str) -> Running {
    Running {
        name: name.to_string(),
        host: ip.to_string(),
        dry_run: false,
        changed: false,
        steps: Vec::new(),
        recreated: Vec::new(),
        restarted: Vec::new(),
        would: Vec::new(),
        services: Vec::new(),
        announce_urls: Vec::new(),
        elapsed_ms: 0,
    }
}

/// Puts release `known[index]` back on a host already reached, under a lock the caller holds,
/// and waits until every service is healthy. `note` goes into the rollback's record.
pub async fn rollback_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    known: &[Known],
    index: usize,
    timeout: Duration,
    note: Option<String>,
) -> Result<RolledBack, OpsError> {
    let started = Instant::now();
    let (record, setup) = configured_host(state, "rollback")?;
    let target = &known[index].record;
    let number = index + 1;
    let (config, rendered) = prepare(state, target, number)?;

    let mut run = StepRun::begin(data, state, "rollback")?;
    let name = state.name.clone();
    let contents = run
        .step(state, "recorded files", async |_s| {
            gather(data, &name, host, target, number).await
        })
        .await?;
    let rendered = recorded_stack(rendered, target, contents);
    let bundle = bundle_dir(state);
    let out = release_steps(&mut run, data, state, host, &rendered, bundle.as_deref()).await?;
    let mut steps = out.steps;
    let mut image_ids = out.image_ids;
    let mut images_changed = out.images_changed;
    let moved = retag_step(&mut run, state, host, target, &image_ids).await?;
    for (r, id) in &moved {
        image_ids.insert(r.clone(), id.clone());
        images_changed.push(r.clone());
    }
    if !moved.is_empty() {
        steps.push(StepReport {
            step: "image tags".into(),
            changed: true,
            detail: moved
                .iter()
                .map(|(r, id)| format!("{r} -> {id}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    state.config = config;
    state.pending_restarts = owed_restarts(state, out.restarts);

    let mut running = nothing_run(&state.name, &record.ip);
    let options = RunOptions {
        timeout,
        dry_run: false,
    };
    run_steps(
        &mut run,
        state,
        host,
        &rendered,
        &setup.compose_command,
        &options,
        &mut running,
    )
    .await?;
    state.pending_restarts.clear();
    steps.extend(running.steps);

    let release = history::Release {
        rendered: &rendered,
        image_ids: &image_ids,
        placed: out.placed,
        images_changed,
        command: "rollback",
        restores: Some(target.id.clone()),
        note,
    };
    let recorded = history::record(&mut run, data, state, host, release).await?;
    let lifecycle = (state.lifecycle < Lifecycle::Running).then_some(Lifecycle::Running);
    run.finish(state, lifecycle)?;
    Ok(RolledBack {
        name: state.name.clone(),
        host: host.display(),
        to: number,
        to_id: target.id.clone(),
        changed: steps.iter().any(|s| s.changed),
        steps,
        files: out.files,
        images: target.images.clone(),
        recreated: running.recreated,
        restarted: running.restarted,
        services: running.services,
        recorded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// After `run` failed in a deploy: the history and the index of the release to put back, when
/// the deploy's release was an upgrade (it changed an image), the services did not become
/// healthy (or would not start), and a release came before it.
pub async fn upgrade_to_undo(
    data: &DataDir,
    state: &EnvironmentState,
    host: &dyn Host,
    released: Option<&Recorded>,
    failure: &OpsError,
) -> Option<(Vec<Known>, usize)> {
    let released = released.filter(|r| !r.changed.images.is_empty())?;
    if !matches!(
        failure.kind(),
        ErrorKind::HealthTimeout | ErrorKind::ComposeFailed
    ) {
        return None;
    }
    let known = match history::known(data, state, host).await {
        Ok((known, _)) => known,
        Err(e) => {
            tracing::warn!("cannot read the release history to roll the upgrade back: {e}");
            return None;
        }
    };
    let at = known.iter().position(|k| k.record.id == released.id)?;
    (at > 0).then(|| (known, at - 1))
}

/// The images an upgrade changed, for messages.
pub fn describe_upgrade(released: &Recorded) -> String {
    released.changed.images.join(", ")
}

/// The error a deploy ends with after its automatic rollback: `rolled` is the rollback's result.
pub fn after_upgrade(
    env: &str,
    upgrade: String,
    known: &[Known],
    index: usize,
    failure: OpsError,
    rolled: Result<RolledBack, OpsError>,
) -> OpsError {
    let restored = index + 1;
    let cause = failure.to_string();
    match rolled {
        Ok(_) => OpsError::typed(RollbackError::UpgradeRolledBack {
            env: env.to_string(),
            upgrade,
            restored,
            images: known[index]
                .record
                .images
                .iter()
                .map(|i| i.reference.clone())
                .collect::<Vec<_>>()
                .join(", "),
            cause,
        }),
        Err(error) => OpsError::typed(RollbackError::RollbackFailed {
            env: env.to_string(),
            upgrade,
            restored,
            cause,
            error: Box::new(error),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};
    use crate::ops::release::tests::configured_state;
    use crate::ops::release::{ReleaseOptions, release_on, render};
    use crate::state::history::tests::record;

    /// A host whose containers run their current definitions and are healthy, and that accepts
    /// history records and restarts. (The compose facts are scripted before the images', whose
    /// script they contain.)
    fn running_host(state: &EnvironmentState) -> FakeHost {
        let rendered = render(state).unwrap();
        let host = FakeHost::new();
        let dirs: String = rendered
            .dirs
            .iter()
            .map(|d| format!("{:o} {}:{}\n", d.mode, d.uid, d.gid))
            .collect();
        host.reply("stat -c", [Reply::ok(dirs)]);
        host.reply(
            "echo --containers",
            [Reply::ok(crate::ops::run::tests::facts(&rendered, None))],
        );
        let images: String = rendered
            .images
            .iter()
            .map(|i| format!("{i} sha256:i\n"))
            .collect();
        host.reply("docker image inspect", [Reply::ok(images)]);
        crate::ops::run::tests::reply_all_healthy(&host, &rendered);
        host.reply("history.jsonl", [Reply::ok("")]);
        // A host without iptables: the Docker firewall has nothing to do.
        host.reply("DOCKER-USER", [Reply::ok("")]);
        host.reply(" restart ", [Reply::ok("")]);
        host
    }

    const TOML: &str = "/opt/torrust/storage/tracker/etc/tracker.toml";

    #[tokio::test]
    async fn a_rollback_puts_the_recorded_bytes_back_and_restarts_only_their_service() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let host = running_host(&state);
        release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        let first_toml = host.file(TOML).unwrap().contents;
        state.lifecycle = Lifecycle::Running;
        state.pending_restarts.clear();
        state.config.tracker.core.private = true;
        data.save(&mut state).unwrap();
        let second = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert_eq!(second.recorded.unwrap().changed.files, vec![TOML]);
        assert_ne!(host.file(TOML).unwrap().contents, first_toml);
        state.pending_restarts.clear();
        data.save(&mut state).unwrap();

        // This machine lost the first release's tracker.toml: the host's history has it.
        let (known, _) = history::known(&data, &state, &host).await.unwrap();
        assert_eq!(known.len(), 2);
        let sha = &known[0]
            .record
            .files
            .iter()
            .find(|f| f.path == TOML)
            .unwrap()
            .sha256;
        std::fs::remove_file(data.history("rel").dir().join("files").join(sha)).unwrap();

        host.clear_calls();
        let index = pick("rel", &known, None).unwrap();
        assert_eq!(index, 0);
        let rolled = rollback_on(
            &data,
            &mut state,
            &host,
            &known,
            index,
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap();
        assert_eq!(host.file(TOML).unwrap().contents, first_toml);
        assert_eq!(rolled.to, 1);
        assert_eq!(rolled.restarted, vec!["tracker"]);
        assert!(rolled.recreated.is_empty());
        let placed: Vec<&FileReport> = rolled
            .files
            .iter()
            .filter(|f| f.change != "unchanged")
            .collect();
        assert_eq!(placed.len(), 1, "{placed:?}");
        assert!(
            host.commands()
                .iter()
                .any(|c| c.ends_with("docker-compose restart tracker 2>&1"))
        );
        assert!(host.commands().iter().all(|c| !c.contains("up -d")));

        // The environment is back on the first release's settings, and the rollback recorded.
        let saved = data.load("rel").unwrap();
        assert!(!saved.config.tracker.core.private);
        assert!(saved.pending_restarts.is_empty());
        assert_eq!(saved.lifecycle, Lifecycle::Running);
        let records = data.history("rel").records().unwrap();
        assert_eq!(records.len(), 3);
        let last = &records[2];
        assert_eq!(last.command, "rollback");
        assert_eq!(last.restores.as_deref(), Some(known[0].record.id.as_str()));
        assert_eq!(last.changed.files, vec![TOML]);
        assert_eq!(last.changed.restarts, vec!["tracker"]);
        assert!(last.same_content(&known[0].record));
        assert_eq!(rolled.recorded.unwrap().id, last.id);
    }

    #[test]
    fn the_default_is_the_release_before_the_newest() {
        let sha = "a".repeat(64);
        let k = |id: &str, at: &str| Known {
            record: record(id, at, &sha),
            local: true,
            host: true,
        };
        let known = vec![
            k("00000000000000a1", "2026-12-01T10:00:01Z"),
            k("00000000000000b2", "2026-12-01T10:00:02Z"),
            k("00000000000000c3", "2026-12-01T10:00:03Z"),
        ];
        assert_eq!(pick("e", &known, None).unwrap(), 1);
        assert_eq!(pick("e", &known, Some(1)).unwrap(), 0);
        let err = pick("e", &known, Some(4)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused);
        assert!(err.to_string().contains("no release 4"), "{err}");
        let err = pick("e", &known[..1], None).unwrap_err();
        assert!(err.to_string().contains("nothing to roll back to"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_restored_configuration_keeps_this_machines_access() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let current = configured_state(&data).config;
        let mut recorded = current.clone();
        recorded.ssh_credentials.port = crate::config::Port::new(2222).unwrap();
        recorded.tracker.core.private = true;
        recorded.images = Some(Images {
            tracker: Some("torrust/tracker:2.9".into()),
            offline_bundle: Some("/elsewhere/bundle".into()),
            ..Images::default()
        });
        let restored = restored_config(&current, &recorded);
        assert_eq!(restored.ssh_credentials, current.ssh_credentials);
        assert!(restored.tracker.core.private);
        let images = restored.images.unwrap();
        assert_eq!(images.tracker.as_deref(), Some("torrust/tracker:2.9"));
        assert_eq!(images.offline_bundle, None);
    }

    #[tokio::test]
    async fn only_an_unhealthy_upgrade_with_a_release_before_it_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let state = configured_state(&data);
        let sha = "a".repeat(64);
        let local = data.history("rel");
        let a = record("00000000000000a1", "2026-12-01T10:00:01Z", &sha);
        let b = record("00000000000000b2", "2026-12-01T10:00:02Z", &sha);
        local.write(&a).unwrap();
        local.write(&b).unwrap();
        let host = FakeHost::new();
        let unhealthy = OpsError::typed(TaskError::Unhealthy {
            waited: 30,
            failing: "tracker (running, unhealthy)".into(),
            logs: String::new(),
        });
        let upgrade = Recorded {
            id: b.id.clone(),
            changed: crate::state::history::Changes {
                images: vec!["torrust/tracker:next".into()],
                ..Default::default()
            },
        };
        let (known, index) = upgrade_to_undo(&data, &state, &host, Some(&upgrade), &unhealthy)
            .await
            .unwrap();
        assert_eq!(known[index].record.id, a.id);

        // Not an upgrade; not a health failure; nothing before it: the failure stands.
        let settings = Recorded {
            changed: crate::state::history::Changes {
                files: vec![TOML.into()],
                ..Default::default()
            },
            ..upgrade.clone()
        };
        assert!(
            upgrade_to_undo(&data, &state, &host, Some(&settings), &unhealthy)
                .await
                .is_none()
        );
        let refused = OpsError::Refused("no".into());
        assert!(
            upgrade_to_undo(&data, &state, &host, Some(&upgrade), &refused)
                .await
                .is_none()
        );
        let first = Recorded {
            id: a.id.clone(),
            ..upgrade.clone()
        };
        assert!(
            upgrade_to_undo(&data, &state, &host, Some(&first), &unhealthy)
                .await
                .is_none()
        );

        let err = after_upgrade(
            "rel",
            describe_upgrade(&upgrade),
            &known,
            index,
            unhealthy,
            Err(OpsError::Failed("ssh lost".into())),
        );
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(
            err.to_string()
                .contains("putting release 1 back failed too")
        );
    }
}
