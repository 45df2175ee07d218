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
//!
//! The restarts a file change requires are recorded in the state durably before the file is
//! placed, so a release killed or failed after its upload still leaves them to `run` (its rerun
//! finds the files unchanged and could not tell). What a release put on the host is recorded in
//! the release history ([`super::history`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::StepReport;
use super::history::{self, Recorded};
use super::host::{configured_host, connect_for};
use super::steps::StepRun;
use crate::host::Host;
use crate::ssh::{Change, FileChange};
use crate::stack::{self, RenderedStack};
use crate::state::{DataDir, EnvironmentState, Lifecycle, StateError};
use crate::tasks::bundle::{self, BundleArchive};
use crate::tasks::{Plan, TaskError, dirs, docker_firewall, files, images};

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
    /// The release history's new record, when this release changed what the host holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
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
    warn_api_in_clear(&state);
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

/// Says, at every release, when the API's admin token would cross the network in clear text
/// (ADR 31): the API published beyond the host's loopback over plain HTTP. (`validate`,
/// `create environment` and `deploy --env-file` say it from the file's rules.)
fn warn_api_in_clear(state: &EnvironmentState) {
    let api = &state.config.tracker.http_api;
    if !api.use_tls_proxy && !api.bind_address.ip().is_loopback() {
        tracing::warn!(
            "tracker.http_api.bind_address: the API ({}) is published beyond the host's \
             loopback over plain HTTP: its admin token crosses the network in clear text with \
             every request. Use \"127.0.0.1:{}\" (`test` reaches it through SSH), or put it \
             behind the TLS proxy",
            api.bind_address,
            api.bind_address.port()
        );
    }
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
pub(crate) fn bundle_dir(state: &EnvironmentState) -> Option<PathBuf> {
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
        let binary = super::exporter_binary::plan(data, host, &rendered)
            .await
            .map_err(OpsError::typed)?;
        if let Some(step) = binary {
            planned.changed |= step.changed;
            planned.steps.insert(2, step);
        }
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
    let out = release_steps(&mut run, data, state, host, &rendered, bundle.as_deref()).await?;
    // Restarts still owed by an earlier release that `run` has not applied stay owed.
    state.pending_restarts = owed_restarts(state, out.restarts.clone());
    let release = history::Release {
        rendered: &rendered,
        image_ids: &out.image_ids,
        placed: out.placed.clone(),
        images_changed: out.images_changed.clone(),
        command: "release",
        restores: None,
        note: None,
    };
    let recorded = history::record(&mut run, data, state, host, release).await?;
    let lifecycle = (state.lifecycle < Lifecycle::Released).then_some(Lifecycle::Released);
    run.finish(state, lifecycle)?;
    Ok(Released {
        name: state.name.clone(),
        host: host.display(),
        dry_run: false,
        changed: out.steps.iter().any(|s| s.changed),
        steps: out.steps,
        files: out.files,
        images: None,
        pending_restarts: state.pending_restarts.clone(),
        recorded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The restarts already owed plus `new`, sorted, without duplicates.
pub(crate) fn owed_restarts(state: &EnvironmentState, new: Vec<String>) -> Vec<String> {
    let mut all: BTreeSet<String> = state.pending_restarts.iter().cloned().collect();
    all.extend(new);
    all.into_iter().collect()
}

/// Adds `services` to the restarts owed to `run` and saves the state durably
/// ([`DataDir::save`], not a progress save): a command killed right after still owes them.
pub(crate) fn owe_restarts(
    data: &DataDir,
    state: &mut EnvironmentState,
    services: Vec<String>,
) -> Result<(), StateError> {
    let all = owed_restarts(state, services);
    if all != state.pending_restarts {
        state.pending_restarts = all;
        data.save(state)?;
    }
    Ok(())
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

    let open = docker_firewall::open_ports(rendered);
    let firewall_plan = docker_firewall::plan(&open, &docker_firewall::read(host).await?);

    let steps = vec![
        report(dirs::TASK, &dirs_plan),
        report(files::TASK, &files_plan),
        report(images::TASK, &images_plan),
        report(docker_firewall::TASK, &firewall_plan),
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
        recorded: None,
        elapsed_ms: 0,
    })
}

/// What the release steps did.
pub(crate) struct ReleaseOutcome {
    pub steps: Vec<StepReport>,
    pub files: Vec<FileReport>,
    /// The services that mount a file the upload changed.
    pub restarts: Vec<String>,
    /// The files the upload created or updated.
    pub placed: Vec<String>,
    /// The ID the host has for each image of the stack.
    pub image_ids: BTreeMap<String, String>,
    /// The images whose ID changed on the host (loaded or pulled).
    pub images_changed: Vec<String>,
}

/// Runs the tasks as recorded steps: directories, files (the restarts they require recorded
/// durably before anything is placed), images. `rendered` is the stack to put on the host: the
/// model's, or a recorded release's (`rollback`).
pub(crate) async fn release_steps(
    run: &mut StepRun<'_>,
    data: &DataDir,
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

    let changes = upload_step(run, data, state, host, rendered).await?;
    let files_plan = files::plan(&changes);
    let binary_report = super::exporter_binary::step(run, data, state, host, rendered).await?;

    let wanted: BTreeSet<String> = rendered.images.iter().cloned().collect();
    let (images_plan, notes, (had, image_ids)) =
        images_step(run, state, host, &wanted, bundle).await?;
    let image_ids: BTreeMap<String, String> = image_ids
        .into_iter()
        .filter(|(r, _)| wanted.contains(r))
        .collect();
    let images_changed = wanted
        .iter()
        .filter(|r| had.get(*r) != image_ids.get(*r))
        .cloned()
        .collect();

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
    let firewall_plan = firewall_step(run, state, host, rendered).await?;
    let mut steps = vec![report(dirs::TASK, &dirs_plan), files_report];
    steps.extend(binary_report);
    steps.push(images_report);
    steps.push(report(docker_firewall::TASK, &firewall_plan));
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
    Ok(ReleaseOutcome {
        steps,
        files: file_reports,
        restarts: restarts(rendered, &changes),
        placed: files_plan_paths(&files_plan),
        image_ids,
        images_changed,
    })
}

/// The upload step: compares, owes the restarts the changes require (durably), then places
/// the files and checks them. Returns what happened to each file.
async fn upload_step(
    run: &mut StepRun<'_>,
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Vec<FileChange>, OpsError> {
    let uploads: Vec<_> = rendered.files.iter().map(files::upload_file).collect();
    run.step(state, files::TASK, async |s| {
        let before = files::read(host, &uploads).await.map_err(OpsError::typed)?;
        if !files::plan(&before).is_apply() {
            return Ok(before);
        }
        // Owed before anything is placed: after a kill or a failure from here on, the
        // rerun finds the files unchanged, and only the state still knows.
        owe_restarts(data, s, restarts(rendered, &before))?;
        let placed = files::apply(host, &uploads)
            .await
            .map_err(OpsError::typed)?;
        files::verify(host, &uploads)
            .await
            .map_err(OpsError::typed)?;
        Ok::<_, OpsError>(placed)
    })
    .await
}

/// The firewall step (ADR 32): Docker's `DOCKER-USER` chain lets in only the stack's public
/// ports, live and persisted for the next boot.
async fn firewall_step(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Plan<docker_firewall::Fix>, OpsError> {
    let open = docker_firewall::open_ports(rendered);
    run.step(state, docker_firewall::TASK, async |_s| {
        let plan = docker_firewall::plan(&open, &docker_firewall::read(host).await?);
        if let Plan::Apply(fix, _) = &plan {
            docker_firewall::apply(host, fix).await?;
            docker_firewall::verify(host, &open).await?;
        }
        Ok::<_, TaskError>(plan)
    })
    .await
}

type ImagesDone = (
    Plan<images::ImageAction>,
    Vec<String>,
    (BTreeMap<String, String>, BTreeMap<String, String>),
);

/// The images step: loads or pulls what the host lacks and checks every image is there.
/// Returns the plan, the notes, and the IDs before and after.
async fn images_step(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    wanted: &BTreeSet<String>,
    bundle: Option<&Path>,
) -> Result<ImagesDone, OpsError> {
    run.step(state, images::TASK, async |_s| {
        let archives = read_bundle_for(bundle)?;
        let refs = images::refs_to_read(wanted, archives.as_deref());
        let have = images::read(host, &refs).await?;
        let plan = images::plan(wanted, archives.as_deref(), &have);
        let mut notes = Vec::new();
        let mut now = have.clone();
        if let Plan::Apply(action, _) = &plan {
            notes = images::apply(host, action).await?;
            now = images::read(host, wanted).await?;
        }
        images::check(wanted, &now, bundle)?;
        Ok::<_, TaskError>((plan, notes, (have, now)))
    })
    .await
}

fn files_plan_paths(plan: &Plan<Vec<String>>) -> Vec<String> {
    match plan {
        Plan::Apply(paths, _) => paths.clone(),
        Plan::Nothing(_) => Vec::new(),
    }
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
        host.reply("history.jsonl", [Reply::ok("")]);
        // A host without iptables: the Docker firewall has nothing to do.
        host.reply("DOCKER-USER", [Reply::ok("")]);
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

    /// A host that places the files, then never answers again: the process "dies" there. (It
    /// only delegates to the fake host, written as `Host::...` calls.)
    struct DiesAfterUpload<'a>(&'a FakeHost);

    impl Host for DiesAfterUpload<'_> {
        fn display(&self) -> String {
            self.0.display()
        }
        fn exec<'a>(&'a self, c: &'a str) -> crate::host::HostFuture<'a, crate::ssh::ExecOutput> {
            Host::exec(self.0, c)
        }
        fn sudo<'a>(&'a self, c: &'a str) -> crate::host::HostFuture<'a, crate::ssh::ExecOutput> {
            Host::sudo(self.0, c)
        }
        fn sudo_stdin<'a>(
            &'a self,
            c: &'a str,
            stdin: crate::ssh::Stdin,
            size: Option<u64>,
        ) -> crate::host::HostFuture<'a, crate::ssh::ExecOutput> {
            self.0.sudo_stdin(c, stdin, size)
        }
        fn upload<'a>(
            &'a self,
            files: &'a [crate::ssh::UploadFile],
        ) -> crate::host::HostFuture<'a, Vec<FileChange>> {
            Box::pin(async move {
                self.0.upload(files).await?;
                std::future::pending().await
            })
        }
        fn compare<'a>(
            &'a self,
            files: &'a [crate::ssh::UploadFile],
        ) -> crate::host::HostFuture<'a, Vec<FileChange>> {
            self.0.compare(files)
        }
        fn download<'a>(&'a self, path: &'a str) -> crate::host::HostFuture<'a, Option<Vec<u8>>> {
            self.0.download(path)
        }
        fn download_to<'a>(
            &'a self,
            path: &'a str,
            offset: u64,
            to: &'a mut (dyn tokio::io::AsyncWrite + Send + Unpin),
            total: Option<u64>,
        ) -> crate::host::HostFuture<'a, bool> {
            self.0.download_to(path, offset, to, total)
        }
        fn connect_tcp<'a>(
            &'a self,
            address: &'a str,
            port: u16,
        ) -> crate::host::HostFuture<'a, crate::host::HostStream> {
            self.0.connect_tcp(address, port)
        }

        fn attach<'a>(
            &'a self,
            request: &'a crate::host::AttachRequest,
            io: crate::host::AttachIo,
        ) -> crate::host::HostFuture<'a, crate::host::Attached> {
            self.0.attach(request, io)
        }
    }

    /// `run` after the release (on a host whose containers run their current definitions): it
    /// must restart exactly `expected`.
    async fn run_restarts(data: &DataDir, expected: &[&str]) {
        let mut state = data.load("rel").unwrap();
        let rendered = render(&state).unwrap();
        let host = &FakeHost::new();
        host.reply(
            "echo --containers",
            [Reply::ok(crate::ops::run::tests::facts(&rendered, None))],
        );
        crate::ops::run::tests::reply_all_healthy(host, &rendered);
        host.reply(" restart ", [Reply::ok("")]);
        let options = crate::ops::run::RunOptions {
            timeout: Duration::from_secs(5),
            dry_run: false,
        };
        let ran = crate::ops::run::run_on(data, &mut state, host, &options, &[])
            .await
            .unwrap();
        assert_eq!(ran.restarted, expected);
        assert!(data.load("rel").unwrap().pending_restarts.is_empty());
    }

    /// A released and running environment whose tracker setting then changed (saved, as
    /// `create environment` saves it), on a host holding the first release's files.
    async fn changed_after_a_release(data: &DataDir) -> (EnvironmentState, FakeHost) {
        let mut state = configured_state(data);
        let host = host_for(&render(&state).unwrap());
        release_on(data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        state.lifecycle = Lifecycle::Running;
        state.pending_restarts.clear();
        state.config.tracker.core.private = true;
        data.save(&mut state).unwrap();
        host.clear_calls();
        (state, host)
    }

    #[tokio::test]
    async fn a_release_killed_right_after_its_upload_still_owes_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (mut state, host) = changed_after_a_release(&data).await;

        // The release places tracker.toml and the process dies before it returns: nothing after
        // the upload runs, no failure is recorded.
        let dies = DiesAfterUpload(&host);
        let killed = tokio::time::timeout(
            Duration::from_millis(200),
            release_on(&data, &mut state, &dies, &ReleaseOptions::default()),
        )
        .await;
        assert!(killed.is_err(), "the release finished: {killed:?}");
        let toml = "/opt/torrust/storage/tracker/etc/tracker.toml";
        let placed = host.file(toml).unwrap();
        assert!(String::from_utf8_lossy(&placed.contents).contains("private = true"));

        // What the disk holds is what the next process finds.
        let on_disk = data.load("rel").unwrap();
        assert_eq!(on_disk.pending_restarts, vec!["tracker"]);
        assert!(on_disk.unfinished_run().is_some());

        // The plain rerun finds every file unchanged, yet the restart is still owed...
        let mut again = data.load("rel").unwrap();
        let rerun = release_on(&data, &mut again, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(rerun.files.iter().all(|f| f.change == "unchanged"));
        assert_eq!(rerun.pending_restarts, vec!["tracker"]);
        // ... the history records the change the killed run made ...
        let recorded = rerun.recorded.expect("a record");
        assert_eq!(recorded.changed.files, vec![toml]);
        assert_eq!(recorded.changed.restarts, vec!["tracker"]);
        // ... and `run` restarts the tracker.
        run_restarts(&data, &["tracker"]).await;
    }

    #[tokio::test]
    async fn a_release_failing_after_its_upload_still_owes_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (mut state, host) = changed_after_a_release(&data).await;
        let rendered = render(&state).unwrap();
        let images: String = rendered
            .images
            .iter()
            .map(|i| format!("{i} sha256:{}\n", "a".repeat(64)))
            .collect();
        // Docker stops answering after the upload, then comes back.
        let failing = FakeHost::new();
        for f in &rendered.files {
            let path = f.path.to_string_lossy();
            let old = host.file(&path).unwrap();
            failing.put_file(&path, old.contents, old.mode);
        }
        let dirs: String = rendered
            .dirs
            .iter()
            .map(|d| format!("{:o} {}:{}\n", d.mode, d.uid, d.gid))
            .collect();
        failing.reply("stat -c", [Reply::ok(dirs)]);
        failing.reply(
            "docker image inspect",
            [
                Reply::fail(1, "Cannot connect to the Docker daemon"),
                Reply::ok(images),
            ],
        );
        failing.reply("history.jsonl", [Reply::ok("")]);
        // A host without iptables: the Docker firewall has nothing to do.
        failing.reply("DOCKER-USER", [Reply::ok("")]);
        let err = release_on(&data, &mut state, &failing, &ReleaseOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Docker daemon"), "{err}");
        assert_eq!(data.load("rel").unwrap().pending_restarts, vec!["tracker"]);

        let mut again = data.load("rel").unwrap();
        let rerun = release_on(&data, &mut again, &failing, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(!rerun.files.iter().any(|f| f.change != "unchanged"));
        assert_eq!(rerun.pending_restarts, vec!["tracker"]);
        run_restarts(&data, &["tracker"]).await;
    }

    #[tokio::test]
    async fn a_release_records_what_it_uploaded_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let rendered = render(&state).unwrap();
        let host = host_for(&rendered);
        let first = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        let recorded = first
            .recorded
            .clone()
            .expect("the first release is recorded");
        let local = data.history("rel");
        let records = local.records().unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.id, recorded.id);
        assert_eq!(r.files.len(), rendered.files.len());
        assert_eq!(r.by, crate::state::history::Operator::current());
        assert_eq!(r.changed.files.len(), rendered.files.len());
        for f in &rendered.files {
            let rec = r
                .files
                .iter()
                .find(|x| Path::new(&x.path) == f.path)
                .unwrap();
            assert_eq!(local.contents(&rec.sha256).unwrap(), f.contents);
        }
        assert!(
            r.images
                .iter()
                .all(|i| i.id.as_deref() == Some(format!("sha256:{}", "a".repeat(64)).as_str()))
        );
        // Sent to the host: its files, then the record's line.
        assert!(local.unsent().unwrap().is_empty());
        let line = host
            .calls()
            .into_iter()
            .find_map(|c| match c {
                Call::SudoStdin(cmd, bytes) if cmd.contains("history.jsonl") => Some(bytes),
                _ => None,
            })
            .unwrap();
        let sent: crate::state::history::ReleaseRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(&sent, r);
        // The JSON result shows the record, never the configuration's secrets.
        let json = serde_json::to_string(&first.recorded).unwrap();
        assert!(!json.contains(TOKEN), "{json}");

        // Nothing changed: nothing recorded, nothing sent.
        host.clear_calls();
        let again = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(again.recorded.is_none());
        assert_eq!(local.records().unwrap().len(), 1);
        assert!(host.commands().iter().all(|c| !c.contains("history")));
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
