//! `release`: put the tracker stack on the host — storage directories with their owners, every
//! file of the stack model in one tar stream, and the images (pulled, or loaded from an offline
//! bundle) — without starting anything. `run` starts it.
//!
//! Each part is a task of [`crate::tasks`] run against a [`Host`]: [`dirs`], [`files`],
//! [`images`]. A second release with no configuration change changes nothing: files are compared
//! by hash on the host, directories by stat, images by ID. What a change requires (services to
//! restart) is recorded in the state for `run`.
//!
//! `--dry-run` reads the same facts and reports what would change — each file to place with a
//! unified diff against the host's copy (secret values masked), the images to load or pull, the
//! services `run` would restart — and changes nothing, neither on the host nor in the state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::StepReport;
use super::host::{configured_host, connect_for};
use super::steps::StepRun;
use crate::host::Host;
use crate::ssh::{Change, FileChange};
use crate::stack::{self, RenderedStack};
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::bundle::{self, BundleArchive};
use crate::tasks::{Plan, TaskError, dirs, files, images};

pub use crate::tasks::bundle::{parse_manifest, read_bundle};

#[derive(Debug, Clone, Default)]
pub struct ReleaseOptions {
    /// Report what would change; change nothing.
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// `created`, `updated` or `unchanged` (dry run: what would happen).
    pub change: &'static str,
    /// Dry run: a unified diff of the host's file and the model's (secret values masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Released {
    pub name: String,
    pub host: String,
    pub dry_run: bool,
    /// Whether anything changed (dry run: would change).
    pub changed: bool,
    pub steps: Vec<StepReport>,
    pub files: Vec<FileReport>,
    /// Dry run: the archives to load and the images to pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<images::ImageAction>,
    /// Services `run` will restart to apply changed mounted files (dry run: would).
    pub pending_restarts: Vec<String>,
    pub elapsed_ms: u64,
}

pub async fn release(
    data: &DataDir,
    env: &str,
    options: &ReleaseOptions,
    lock_wait: Duration,
) -> Result<Released, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(
        env,
        &super::lock_name("release", options.dry_run),
        lock_wait,
    )?;
    let mut state = data.load(env)?;
    let (record, _setup) = configured_host(&state, "release")?;
    let session = connect_for(
        data,
        &mut state,
        &record,
        "release",
        options.dry_run,
        Duration::from_secs(30),
    )
    .await?;
    let result = release_on(data, &mut state, &session, options).await;
    session.close().await;
    let mut released = result?;
    released.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(released)
}

/// The stack model of the state's configuration.
pub(crate) fn render(state: &EnvironmentState) -> Result<RenderedStack, OpsError> {
    stack::render(&state.config).map_err(OpsError::typed)
}

/// The lines of the secret files that hold no secret: the stack rendered from the configuration
/// with every secret redacted (a [`Secret`](crate::secret::Secret) serializes as `[REDACTED]`
/// inside [`redacted`](crate::secret::redacted)).
fn public_lines(state: &EnvironmentState) -> Result<files::Public, OpsError> {
    let failed = |e: serde_json::Error| {
        OpsError::Failed(format!("cannot redact the configuration's secrets: {e}"))
    };
    let value = crate::secret::redacted(|| serde_json::to_value(&state.config)).map_err(failed)?;
    let config = serde_json::from_value(value).map_err(failed)?;
    // A configuration whose redacted form cannot be rendered shows its secret files masked whole.
    Ok(stack::render(&config)
        .map(|r| files::Public::from_redacted(&r.files))
        .unwrap_or_default())
}

/// The offline bundle's directory, if configured.
fn bundle_dir(state: &EnvironmentState) -> Option<PathBuf> {
    state
        .config
        .images
        .as_ref()
        .and_then(|i| i.offline_bundle.clone())
}

/// Releases (or, in a dry run, plans) on a host already reached, under a lock the caller holds.
pub async fn release_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    options: &ReleaseOptions,
) -> Result<Released, OpsError> {
    let started = Instant::now();
    configured_host(state, "release")?;
    let rendered = render(state)?;
    let bundle = bundle_dir(state);
    if options.dry_run {
        let public = public_lines(state)?;
        let mut planned = plan_release(host, &rendered, &public, bundle.as_deref())
            .await
            .map_err(|e| OpsError::Failed(format!("release --dry-run: {e}")))?;
        planned.name = state.name.clone();
        // Password changes after the first deploy: applied before the files, so listed second.
        let passwords = super::passwords::plan(host, state, &rendered)
            .await
            .map_err(|e| OpsError::Failed(format!("release --dry-run: {e}")))?;
        if let Some(step) = passwords {
            planned.changed |= step.changed;
            planned.steps.insert(1, step);
        }
        planned.pending_restarts = owed_restarts(state, planned.pending_restarts);
        planned.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(planned);
    }
    let mut run = StepRun::begin(data, state, "release")?;
    let (steps, files, restarts) =
        release_steps(&mut run, state, host, &rendered, bundle.as_deref()).await?;
    // Restarts still owed by an earlier release that `run` has not applied stay owed.
    state.pending_restarts = owed_restarts(state, restarts);
    let lifecycle = (state.lifecycle < Lifecycle::Released).then_some(Lifecycle::Released);
    run.finish(state, lifecycle)?;
    Ok(Released {
        name: state.name.clone(),
        host: host.display(),
        dry_run: false,
        changed: steps.iter().any(|s| s.changed),
        steps,
        files,
        images: None,
        pending_restarts: state.pending_restarts.clone(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The restarts already owed plus `new`, sorted, without duplicates.
fn owed_restarts(state: &EnvironmentState, new: Vec<String>) -> Vec<String> {
    let mut all: BTreeSet<String> = state.pending_restarts.iter().cloned().collect();
    all.extend(new);
    all.into_iter().collect()
}

/// The services that mount a changed file.
fn restarts(rendered: &RenderedStack, changes: &[FileChange]) -> Vec<String> {
    let changed: Vec<&Path> = changes
        .iter()
        .filter(|c| c.change != Change::Unchanged)
        .map(|c| Path::new(c.remote_path.as_str()))
        .collect();
    rendered
        .restarts_for(changed)
        .into_iter()
        .map(|s| s.as_str().to_string())
        .collect()
}

fn report<A>(step: &str, plan: &Plan<A>) -> StepReport {
    StepReport {
        step: step.into(),
        changed: plan.is_apply(),
        detail: plan.text().to_string(),
    }
}

fn read_bundle_for(dir: Option<&Path>) -> Result<Option<Vec<BundleArchive>>, TaskError> {
    dir.map(bundle::read_bundle)
        .transpose()
        .map_err(|e| TaskError::bundle(images::TASK, e, "fix `images.offline_bundle`"))
}

/// Reads the facts of every release task and reports their plans. Changes nothing.
async fn plan_release(
    host: &dyn Host,
    rendered: &RenderedStack,
    public: &files::Public,
    bundle: Option<&Path>,
) -> Result<Released, TaskError> {
    let facts = dirs::read(host, &rendered.dirs).await?;
    let dirs_plan = dirs::plan(&rendered.dirs, &facts);

    let uploads: Vec<_> = rendered.files.iter().map(files::upload_file).collect();
    let changes = files::read(host, &uploads).await?;
    let files_plan = files::plan(&changes);
    let diffs = files::diffs(host, &rendered.files, &changes, public).await?;

    let archives = read_bundle_for(bundle)?;
    let wanted: BTreeSet<String> = rendered.images.iter().cloned().collect();
    let have = images::read(host, &images::refs_to_read(&wanted, archives.as_deref())).await?;
    let images_plan = images::plan(&wanted, archives.as_deref(), &have);

    let steps = vec![
        report(dirs::TASK, &dirs_plan),
        report(files::TASK, &files_plan),
        report(images::TASK, &images_plan),
    ];
    let file_reports = changes
        .iter()
        .map(|c| FileReport {
            path: PathBuf::from(&c.remote_path),
            change: files::change_name(c.change),
            diff: diffs
                .iter()
                .find(|d| d.path == c.remote_path)
                .map(|d| d.diff.clone()),
        })
        .collect();
    Ok(Released {
        name: String::new(),
        host: host.display(),
        dry_run: true,
        changed: steps.iter().any(|s| s.changed),
        steps,
        files: file_reports,
        images: match images_plan {
            Plan::Apply(action, _) => Some(action),
            Plan::Nothing(_) => None,
        },
        pending_restarts: restarts(rendered, &changes),
        elapsed_ms: 0,
    })
}

type ReleaseOutcome = (Vec<StepReport>, Vec<FileReport>, Vec<String>);

/// Runs the tasks as recorded steps: directories, files, images.
async fn release_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
    bundle: Option<&Path>,
) -> Result<ReleaseOutcome, OpsError> {
    let dirs_plan = run
        .step(state, dirs::TASK, async |_s| {
            let facts = dirs::read(host, &rendered.dirs).await?;
            let plan = dirs::plan(&rendered.dirs, &facts);
            if let Plan::Apply(fix, _) = &plan {
                dirs::apply(host, fix).await?;
                dirs::verify(host, &rendered.dirs).await?;
            }
            Ok::<_, TaskError>(plan)
        })
        .await?;

    // Changed MySQL and Grafana passwords, applied inside the services while the host's `.env`
    // still holds the old ones (see `tasks::passwords`).
    let passwords_report = super::passwords::step(run, state, host, rendered).await?;

    let uploads: Vec<_> = rendered.files.iter().map(files::upload_file).collect();
    // The upload compares on the host first (its facts and plan) and places only what differs.
    let changes = run
        .step(state, files::TASK, async |_s| {
            let changes = files::apply(host, &uploads).await?;
            if files::plan(&changes).is_apply() {
                files::verify(host, &uploads).await?;
            }
            Ok::<_, TaskError>(changes)
        })
        .await?;
    let files_plan = files::plan(&changes);

    let (images_plan, notes) = run
        .step(state, images::TASK, async |_s| {
            let archives = read_bundle_for(bundle)?;
            let wanted: BTreeSet<String> = rendered.images.iter().cloned().collect();
            let refs = images::refs_to_read(&wanted, archives.as_deref());
            let have = images::read(host, &refs).await?;
            let plan = images::plan(&wanted, archives.as_deref(), &have);
            let mut notes = Vec::new();
            if let Plan::Apply(action, _) = &plan {
                notes = images::apply(host, action).await?;
                images::verify(host, &wanted, bundle).await?;
            } else {
                images::check(&wanted, &have, bundle)?;
            }
            Ok::<_, TaskError>((plan, notes))
        })
        .await?;

    let mut images_report = report(images::TASK, &images_plan);
    if !notes.is_empty() {
        images_report.detail = format!(
            "{}; all {} images present",
            notes.join(", "),
            rendered.images.len()
        );
    }
    let mut files_report = report(files::TASK, &files_plan);
    if let Plan::Apply(paths, _) = &files_plan {
        files_report.detail = format!(
            "{} of {} files changed (one tar stream)",
            paths.len(),
            changes.len()
        );
    }
    let mut steps = vec![report(dirs::TASK, &dirs_plan), files_report, images_report];
    if let Some(passwords) = passwords_report {
        steps.insert(1, passwords);
    }
    let file_reports = changes
        .iter()
        .map(|c| FileReport {
            path: PathBuf::from(&c.remote_path),
            change: files::change_name(c.change),
            diff: None,
        })
        .collect();
    Ok((steps, file_reports, restarts(rendered, &changes)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config;
    use crate::host::fake::{Call, FakeHost, Reply};
    use crate::state::{HostRecord, HostSetup, RunStatus};

    const TOKEN: &str = "Release-Admin-Token-5f1e";

    /// A configured environment `rel` on a registered host, saved in `data`.
    pub(crate) fn configured_state(data: &DataDir) -> EnvironmentState {
        let file = config::minimal_test_file("rel", TOKEN).to_string();
        let loaded = config::parse(&file, data.root()).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        state.host = Some(HostRecord {
            ip: "10.0.0.5".into(),
            ssh_port: 22,
            host_key: Some("SHA256:x".into()),
            instance: None,
            profile: None,
            registered: true,
            cloud_init: None,
        });
        state.host_setup = Some(HostSetup {
            os: "debian-12".into(),
            compose_command: "docker-compose".into(),
            compose_version: "1.29.2".into(),
            firewall: "active".into(),
            warnings: Vec::new(),
            configured_at: chrono::Utc::now(),
        });
        state.lifecycle = Lifecycle::Configured;
        data.save(&mut state).unwrap();
        state
    }

    /// A host whose directories and images are as the model wants; files as uploaded.
    fn host_for(rendered: &RenderedStack) -> FakeHost {
        let host = FakeHost::new();
        let dirs: String = rendered
            .dirs
            .iter()
            .map(|d| format!("{:o} {}:{}\n", d.mode, d.uid, d.gid))
            .collect();
        host.reply("stat -c", [Reply::ok(dirs)]);
        let images: String = rendered
            .images
            .iter()
            .map(|i| format!("{i} sha256:{}\n", "a".repeat(64)))
            .collect();
        host.reply("docker image inspect", [Reply::ok(images)]);
        host
    }

    fn dry() -> ReleaseOptions {
        ReleaseOptions { dry_run: true }
    }

    #[tokio::test]
    async fn a_dry_run_changes_nothing_and_then_shows_exactly_the_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let rendered = render(&state).unwrap();
        let host = host_for(&rendered);

        // Fresh host: every file would be created; nothing is written, anywhere.
        let plan = release_on(&data, &mut state, &host, &dry()).await.unwrap();
        assert!(plan.dry_run && plan.changed);
        assert!(plan.files.iter().all(|f| f.change == "created"));
        assert!(
            host.calls()
                .iter()
                .all(|c| !matches!(c, Call::Upload(_) | Call::SudoStdin(..)))
        );
        assert!(host.commands().iter().all(|c| !c.contains("install -d")));
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains(TOKEN), "a secret in the plan: {json}");
        let saved = data.load("rel").unwrap();
        assert_eq!(saved.lifecycle, Lifecycle::Configured);
        assert!(saved.last_run.is_none());

        // A real release places every file and records it.
        let released = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(released.changed && !released.dry_run);
        let saved = data.load("rel").unwrap();
        assert_eq!(saved.lifecycle, Lifecycle::Released);
        assert_eq!(saved.last_run.unwrap().status, RunStatus::Succeeded);
        let again = release_on(&data, &mut state, &host, &dry()).await.unwrap();
        assert!(!again.changed, "{:?}", again.steps);

        // One setting changes: the plan names that one file, with its diff, and its restart.
        state.config.tracker.core.private = true;
        host.clear_calls();
        let plan = release_on(&data, &mut state, &host, &dry()).await.unwrap();
        let changed: Vec<&FileReport> = plan
            .files
            .iter()
            .filter(|f| f.change != "unchanged")
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(changed[0].path.ends_with("tracker.toml"), "{changed:?}");
        let diff = changed[0].diff.as_deref().unwrap();
        assert!(
            diff.contains("-private = false") && diff.contains("+private = true"),
            "{diff}"
        );
        assert_eq!(plan.pending_restarts, vec!["tracker"]);
        assert_eq!(
            host.calls()
                .iter()
                .filter(|c| matches!(c, Call::Download(_)))
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_changed_secret_shows_as_a_masked_line_among_the_public_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let rendered = render(&state).unwrap();
        let host = host_for(&rendered);
        release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();

        let new_token = "Rotated-Admin-Token-88aa";
        state.config.tracker.http_api.admin_token = crate::secret::Secret::new(new_token);
        let plan = release_on(&data, &mut state, &host, &dry()).await.unwrap();
        let env = plan
            .files
            .iter()
            .find(|f| f.path.ends_with(".env"))
            .unwrap();
        assert_eq!(env.change, "updated");
        let diff = env.diff.as_deref().unwrap();
        assert!(!diff.contains(TOKEN) && !diff.contains(new_token), "{diff}");
        assert!(
            diff.contains("-TORRUST_TRACKER_CONFIG_OVERRIDE_HTTP_API__ACCESS_TOKENS__ADMIN=[REDACTED]\n\
                           +TORRUST_TRACKER_CONFIG_OVERRIDE_HTTP_API__ACCESS_TOKENS__ADMIN=[REDACTED]\n"),
            "{diff}"
        );
        // The lines without a secret are shown as they are.
        assert!(diff.contains(" COMPOSE_PROJECT_NAME='torrust'\n"), "{diff}");
    }
}
