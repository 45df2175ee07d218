//! `deploy`: the porcelain. Creates (or updates) the environment from a file when given one,
//! then runs provision, configure, release and run, and finally the protocol test (`test`).
//!
//! Every phase is idempotent and checks before it acts, so deploy simply runs them all in
//! order: finished phases find nothing to do, a failed one resumes, and a second deploy of the
//! same file changes nothing.
//!
//! - The file's environment name is checked against the one asked for before anything is
//!   created or updated.
//! - One lock is held from the first phase to the last ([`EnvLock::hold`]): no other command
//!   can run between the phases.
//! - One SSH connection carries the host parts of configure, release, run and test.
//! - A release that changed an image (an upgrade) whose services then do not become healthy is
//!   rolled back: the release before it is put back ([`rollback`]) and deploy fails with
//!   `upgrade_rolled_back`.
//! - `--dry-run` reports each phase's plan (files with their diffs, images, services) over that
//!   one connection and changes nothing; on a fresh environment, the phases that need a host
//!   say what they would do once it exists.
//!
//! [`EnvLock::hold`]: crate::state::EnvLock::hold

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::configure::{self, ConfigureOptions, Configured};
use super::environment;
use super::history::Recorded;
use super::host::connect_for;
use super::provision::{self, ProvisionOptions};
use super::release::{self, ReleaseOptions, Released};
use super::rollback;
use super::run::{self, RunOptions, Running};
use super::test::{self, TestOptions};
use crate::config;
use crate::error_kind::Classify;
use crate::events::{Events, What};
use crate::host::Host;
use crate::state::{DataDir, EnvironmentState};
use crate::tasks::passwords;

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub env_file: Option<PathBuf>,
    pub provision: ProvisionOptions,
    pub ready_timeout: Duration,
    pub run: RunOptions,
    /// Report every phase's plan; change nothing.
    pub dry_run: bool,
    /// Monitoring checks the final `test` leaves out (`--skip`).
    pub test_skip: Vec<super::monitoring::MonitoringCheck>,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub phase: &'static str,
    /// It changed something (dry run: it would).
    pub changed: bool,
    pub detail: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Deployed {
    pub name: String,
    pub dry_run: bool,
    pub changed: bool,
    pub phases: Vec<Phase>,
    pub announce_urls: Vec<String>,
    /// The protocol test's checks, one line each (`ok  UDP tracker ... (3 ms): ...`).
    pub test: Vec<String>,
    /// Dry run: configure's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configure: Option<Configured>,
    /// Dry run: release's plan, with the files' diffs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Released>,
    /// Dry run: run's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Running>,
    /// SSH connections opened by configure, release, run and test together (provision's own
    /// wait for SSH not counted).
    pub ssh_connections: u32,
    pub elapsed_ms: u64,
}

impl Deployed {
    fn new(name: &str, dry_run: bool) -> Self {
        Self {
            name: name.to_string(),
            dry_run,
            changed: false,
            phases: Vec::new(),
            announce_urls: Vec::new(),
            test: Vec::new(),
            configure: None,
            release: None,
            run: None,
            ssh_connections: 0,
            elapsed_ms: 0,
        }
    }

    /// Records a finished phase (and, outside a dry run, sends its end as an event: a dry run's
    /// phases are plans, reported in the result only).
    fn add(&mut self, phase: &'static str, changed: bool, detail: String, started: Instant) {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if !self.dry_run {
            tracing::debug!("{phase}: {detail}");
            Events::current().emit(What::PhaseFinished {
                phase: phase.to_string(),
                changed,
                elapsed_ms,
            });
        }
        self.phases.push(Phase {
            phase,
            changed,
            detail,
            elapsed_ms,
        });
    }
}

/// Runs the body of phase `name`, sending its start and, if it fails, its failure with the
/// error's kind as events. [`Deployed::add`] sends its end.
async fn phase<T>(
    name: &'static str,
    f: impl AsyncFnOnce() -> Result<T, OpsError>,
) -> Result<T, OpsError> {
    let events = Events::current();
    events.emit(What::PhaseStarted {
        phase: name.to_string(),
    });
    let t = Instant::now();
    f().await.inspect_err(|e| {
        events.emit(What::PhaseFailed {
            phase: name.to_string(),
            kind: e.kind(),
            elapsed_ms: t.elapsed().as_millis() as u64,
        })
    })
}

pub async fn deploy(
    data: &DataDir,
    env: &str,
    options: &DeployOptions,
    lock_wait: Duration,
) -> Result<Deployed, OpsError> {
    let started = Instant::now();
    // Before anything is created or updated: the file must be the asked environment's.
    match &options.env_file {
        Some(file) => check_file_names(file, env)?,
        None if !data.exists(env) => {
            return Err(OpsError::Refused(format!(
                "environment '{env}' does not exist; pass its file: \
                 `torrust-tracker-deployer deploy {env} --env-file FILE`"
            )));
        }
        None => {}
    }
    let lock = data.lock(env, &super::lock_name("deploy", options.dry_run), lock_wait)?;
    let mut deployed = lock
        .hold(async {
            if options.dry_run {
                plan_phases(data, env, options).await
            } else {
                apply_phases(data, env, options, lock_wait).await
            }
        })
        .await?;
    deployed.changed = deployed.phases.iter().any(|p| p.changed);
    deployed.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(deployed)
}

/// Refuses a file that defines another environment than `env`.
fn check_file_names(file: &Path, env: &str) -> Result<(), OpsError> {
    let loaded = config::load(file)?;
    let named = loaded.config.name();
    if named != env {
        return Err(OpsError::Refused(format!(
            "{} defines environment '{named}', not '{env}'; pass its name, or the right file",
            file.display()
        )));
    }
    Ok(())
}

/// How long deploy keeps trying to reach a host that was just provisioned.
const SSH_RETRY: Duration = Duration::from_secs(60);

/// Runs every phase for real, under the lock the caller holds.
async fn apply_phases(
    data: &DataDir,
    env: &str,
    options: &DeployOptions,
    lock_wait: Duration,
) -> Result<Deployed, OpsError> {
    let mut d = Deployed::new(env, false);
    if let Some(file) = &options.env_file {
        let t = Instant::now();
        let c = phase("environment", async || {
            environment::create_environment(data, file, lock_wait)
        })
        .await?;
        let detail = format!("{} from {}", c.outcome, file.display());
        d.add("environment", c.outcome != "unchanged", detail, t);
    }
    let t = Instant::now();
    let registered = data.load(env)?.host.as_ref().is_some_and(|h| h.registered);
    if registered {
        d.add(
            "provision",
            false,
            "registered host: nothing to provision".into(),
            t,
        );
    } else {
        let p = phase("provision", async || {
            provision::provision(data, env, &options.provision, lock_wait).await
        })
        .await?;
        let detail = format!("{}:{} ({})", p.ip, p.ssh_port, p.instance);
        d.add("provision", p.changed, detail, t);
    }

    let mut state = data.load(env)?;
    let record = super::host::provisioned_host(&state)?;
    let session = connect_for(data, &mut state, &record, "deploy", false, SSH_RETRY).await?;
    d.ssh_connections = 1;
    let result = host_phases(data, &mut state, &session, options, &mut d).await;
    session.close().await;
    let tested = result?;
    for r in &tested.report.results {
        tracing::info!("{r}");
    }
    if let Some(failure) = tested.failure() {
        return Err(failure);
    }
    d.test = tested
        .report
        .results
        .iter()
        .map(|r| r.to_string())
        .collect();
    Ok(d)
}

/// configure, release, run and test over one connection.
async fn host_phases(
    data: &DataDir,
    state: &mut EnvironmentState,
    session: &dyn Host,
    options: &DeployOptions,
    d: &mut Deployed,
) -> Result<test::Tested, OpsError> {
    let t = Instant::now();
    let opts = ConfigureOptions {
        dry_run: false,
        ready_timeout: options.ready_timeout,
        ssh_timeout: SSH_RETRY,
    };
    let c = phase("configure", async || {
        configure::configure_on(data, state, session, &opts).await
    })
    .await?;
    let mut detail = format!(
        "{}, compose: {}",
        c.os,
        c.compose_command.clone().unwrap_or_default()
    );
    for w in &c.warnings {
        detail.push_str(&format!("; WARNING: {w}"));
    }
    d.add("configure", c.changed, detail, t);

    let t = Instant::now();
    let r = phase("release", async || {
        release::release_on(data, state, session, &ReleaseOptions::default()).await
    })
    .await?;
    let changed_files = r.files.iter().filter(|f| f.change != "unchanged").count();
    let mut detail = format!("{changed_files} of {} files changed", r.files.len());
    // A password applied inside MySQL or Grafana is worth saying (release's own step).
    for s in r
        .steps
        .iter()
        .filter(|s| s.changed && s.step == passwords::TASK)
    {
        detail.push_str(&format!("; {}", s.detail));
    }
    d.add("release", r.changed, detail, t);
    let released = r.recorded;

    let t = Instant::now();
    let ran = phase("run", async || {
        run::run_on(data, state, session, &options.run, &[]).await
    })
    .await;
    let r = match ran {
        Ok(r) => r,
        Err(failure) => {
            return Err(undo_upgrade(data, state, session, options, d, released, failure).await);
        }
    };
    let detail = r
        .services
        .iter()
        .map(|s| format!("{} {}", s.service, if s.healthy { "ok" } else { "DOWN" }))
        .collect::<Vec<_>>()
        .join(", ");
    d.add("run", r.changed, detail, t);
    d.announce_urls = r.announce_urls;

    let t = Instant::now();
    let tested = phase("test", async || {
        let options = TestOptions {
            skip: options.test_skip.clone(),
            ..TestOptions::default()
        };
        test::test_with(data, state, &options, Some(session)).await
    })
    .await?;
    let detail = format!(
        "{} of {} checks passed",
        tested.passed,
        tested.passed + tested.failed
    );
    d.add("test", false, detail, t);
    Ok(tested)
}

/// After `run` failed: when this deploy's release changed an image (an upgrade) and the services
/// did not become healthy, puts the release before it back (phase `rollback`) and returns
/// `upgrade_rolled_back`; otherwise returns `failure` as it is.
async fn undo_upgrade(
    data: &DataDir,
    state: &mut EnvironmentState,
    session: &dyn Host,
    options: &DeployOptions,
    d: &mut Deployed,
    released: Option<Recorded>,
    failure: OpsError,
) -> OpsError {
    let undo = rollback::upgrade_to_undo(data, state, session, released.as_ref(), &failure).await;
    let (Some((known, index)), Some(released)) = (undo, released) else {
        return failure;
    };
    let upgrade = rollback::describe_upgrade(&released);
    let note = format!("automatic: the upgrade ({upgrade}) did not become healthy");
    let t = Instant::now();
    let rolled = phase("rollback", async || {
        let timeout = options.run.timeout;
        rollback::rollback_on(data, state, session, &known, index, timeout, Some(note)).await
    })
    .await;
    if let Ok(r) = &rolled {
        d.add("rollback", true, format!("release {} put back", r.to), t);
    }
    rollback::after_upgrade(&state.name, upgrade, &known, index, failure, rolled)
}

/// Reports every phase's plan, changing nothing, under the lock the caller holds.
async fn plan_phases(
    data: &DataDir,
    env: &str,
    options: &DeployOptions,
) -> Result<Deployed, OpsError> {
    let mut d = Deployed::new(env, true);
    let t = Instant::now();
    let mut state = if data.exists(env) {
        Some(data.load(env)?)
    } else {
        None
    };
    if let Some(file) = &options.env_file {
        let preview = environment::preview_environment(data, file)?;
        let detail = format!("would be {} from {}", preview.outcome, file.display());
        d.add("environment", preview.outcome != "unchanged", detail, t);
        if let Some(s) = state.as_mut() {
            s.config = preview.config;
        }
    }
    let t = Instant::now();
    let reachable = state.as_ref().and_then(|s| {
        s.host
            .as_ref()
            .filter(|_| super::host::provisioned_host(s).is_ok())
            .cloned()
    });
    let (Some(mut state), Some(record)) = (state, reachable) else {
        let what = "would create the instance and wait for SSH".to_string();
        d.add("provision", true, what, t);
        for phase in ["configure", "release", "run"] {
            d.add(phase, true, "would run once the host exists".into(), t);
        }
        d.add(
            "test",
            false,
            "would check the tracker once it runs".into(),
            t,
        );
        return Ok(d);
    };
    let detail = if record.registered {
        "registered host: nothing to provision".to_string()
    } else {
        format!("host recorded at {}:{}", record.ip, record.ssh_port)
    };
    d.add("provision", false, detail, t);

    let session = connect_for(data, &mut state, &record, "deploy", true, SSH_RETRY).await?;
    d.ssh_connections = 1;
    let result = host_plans(data, &mut state, &session, options, &mut d).await;
    session.close().await;
    result?;
    Ok(d)
}

/// configure's, release's and run's plans over one connection.
async fn host_plans(
    data: &DataDir,
    state: &mut EnvironmentState,
    session: &dyn Host,
    options: &DeployOptions,
    d: &mut Deployed,
) -> Result<(), OpsError> {
    let t = Instant::now();
    let opts = ConfigureOptions {
        dry_run: true,
        ready_timeout: options.ready_timeout,
        ssh_timeout: SSH_RETRY,
    };
    let c = configure::configure_on(data, state, session, &opts).await?;
    let would: Vec<&str> = c
        .tasks
        .iter()
        .filter(|t| t.status == crate::tasks::Status::WouldChange)
        .map(|t| t.task.as_str())
        .collect();
    d.add("configure", c.changed, plan_detail(&would), t);
    d.configure = Some(c);

    if state.host_setup.is_none() {
        let t = Instant::now();
        for phase in ["release", "run"] {
            d.add(phase, true, "would run once configure has run".into(), t);
        }
        d.add(
            "test",
            false,
            "would check the tracker once it runs".into(),
            t,
        );
        return Ok(());
    }
    let t = Instant::now();
    let r = release::release_on(data, state, session, &ReleaseOptions { dry_run: true }).await?;
    let would: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.changed)
        .map(|s| s.step.as_str())
        .collect();
    d.add("release", r.changed, plan_detail(&would), t);

    let t = Instant::now();
    if state.lifecycle < crate::state::Lifecycle::Released {
        d.release = Some(r);
        d.add(
            "run",
            true,
            "would start every service once released".into(),
            t,
        );
        d.add(
            "test",
            false,
            "would check the tracker once it runs".into(),
            t,
        );
        return Ok(());
    }
    let run_options = RunOptions {
        dry_run: true,
        ..options.run.clone()
    };
    let owed = r.pending_restarts.clone();
    d.release = Some(r);
    let r = run::run_on(data, state, session, &run_options, &owed).await?;
    let would: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.changed)
        .map(|s| s.step.as_str())
        .collect();
    d.add("run", r.changed, plan_detail(&would), t);
    d.announce_urls = r.announce_urls.clone();
    d.run = Some(r);
    d.add(
        "test",
        false,
        "would check the tracker (read-only)".into(),
        Instant::now(),
    );
    Ok(())
}

fn plan_detail(would: &[&str]) -> String {
    if would.is_empty() {
        "nothing would change".into()
    } else {
        format!("would change: {}", would.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};
    use crate::ops::release::render;
    use crate::ops::release::tests::configured_state;
    use crate::state::Lifecycle;
    use crate::tasks::host::{Distro, Goals, unattended_files};
    use sha2::{Digest, Sha256};

    /// configure's facts of a configured Debian 12 host for `user`, SSH on port 22.
    fn configured_facts(user: &str) -> String {
        let mut t = String::from(
            "os_id=debian\nos_version=12\nos_pretty=Debian GNU/Linux 12 (bookworm)\n\
             systemd=yes\ndocker_active=active\ndocker_enabled=enabled\nin_docker_group=yes\n\
             compose_v1=1.29.2\n\
             ufw=active input=DROP allow=22,\n",
        );
        for p in Distro::Debian12.packages() {
            t.push_str(&format!("pkg.{p}=installed 1.0\n"));
        }
        let goals = Goals {
            user: user.into(),
            ssh_port: 22,
            reboot_time: "02:00".into(),
        };
        for (path, body) in unattended_files(&goals) {
            let sha: String = Sha256::digest(body.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            t.push_str(&format!("sha256.{path}={sha}\n"));
        }
        t
    }

    /// A host where the stack runs exactly as the model says.
    async fn deployed_host(data: &DataDir, state: &mut EnvironmentState) -> FakeHost {
        let rendered = render(state).unwrap();
        let host = FakeHost::new();
        host.reply(
            ". /etc/os-release",
            [Reply::ok(configured_facts(
                state.config.ssh_credentials.username.as_str(),
            ))],
        );
        let dirs: String = rendered
            .dirs
            .iter()
            .map(|d| format!("{:o} {}:{}\n", d.mode, d.uid, d.gid))
            .collect();
        host.reply("stat -c", [Reply::ok(dirs)]);
        let images: String = rendered
            .images
            .iter()
            .map(|i| format!("{i} sha256:i\n"))
            .collect();
        let compose = crate::ops::run::tests::facts(&rendered, None);
        host.reply("echo --containers", [Reply::ok(compose)]);
        host.reply("docker image inspect", [Reply::ok(images)]);
        host.reply("history.jsonl", [Reply::ok("")]);
        // A host without iptables: the Docker firewall has nothing to do.
        host.reply("DOCKER-USER", [Reply::ok("")]);
        crate::ops::run::tests::reply_all_healthy(&host, &rendered);
        // The files as a release placed them.
        release::release_on(data, state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        // ... and a run that applied them (it clears the restarts the release owed).
        state.lifecycle = Lifecycle::Running;
        state.pending_restarts.clear();
        data.save(state).unwrap();
        host.clear_calls();
        host
    }

    fn options() -> DeployOptions {
        DeployOptions {
            env_file: None,
            provision: ProvisionOptions::default(),
            ready_timeout: Duration::from_secs(5),
            run: RunOptions {
                timeout: Duration::from_secs(5),
                dry_run: false,
            },
            dry_run: true,
            test_skip: Vec::new(),
        }
    }

    #[tokio::test]
    async fn on_a_deployed_environment_the_plan_says_nothing_would_change_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let host = deployed_host(&data, &mut state).await;
        let before = std::fs::read(data.state_file("rel")).unwrap();

        let mut d = Deployed::new("rel", true);
        host_plans(&data, &mut state, &host, &options(), &mut d)
            .await
            .unwrap();
        let changed: Vec<&Phase> = d.phases.iter().filter(|p| p.changed).collect();
        assert!(changed.is_empty(), "{changed:#?}");
        assert_eq!(d.phases.len(), 4);
        assert!(
            host.calls()
                .iter()
                .all(|c| matches!(c, Call::Sudo(_) | Call::Compare(_))),
            "{:#?}",
            host.calls()
        );
        assert_eq!(std::fs::read(data.state_file("rel")).unwrap(), before);

        // One setting changed: release and run would act, and only on that file's service.
        state.config.tracker.core.private = true;
        let mut d = Deployed::new("rel", true);
        host_plans(&data, &mut state, &host, &options(), &mut d)
            .await
            .unwrap();
        let changed: Vec<&str> = d
            .phases
            .iter()
            .filter(|p| p.changed)
            .map(|p| p.phase)
            .collect();
        assert_eq!(changed, ["release", "run"]);
        assert_eq!(d.run.as_ref().unwrap().restarted, vec!["tracker"]);
    }
}
