//! `configure`: Docker and Compose from the distribution's packages, the SSH user in the docker
//! group, unattended upgrades and a firewall, as typed idempotent tasks ([`crate::tasks`]).
//!
//! One SSH connection carries the whole run. Facts are read in one round trip, decisions are
//! pure, all packages go in one `apt-get install`, and the facts are read again to verify. A
//! second run finds every goal met and changes nothing; a failed or interrupted run is resumed
//! by running it again.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use super::OpsError;
use super::host::{provisioned_host, ssh_target};
use super::steps::{Done, StepRun};
use crate::host::Host;
use crate::ssh::{ConnectOptions, PassphraseSource, Session};
use crate::state::{DataDir, EnvironmentState, HostSetup, Lifecycle};
use crate::tasks::apt_source;
use crate::tasks::facts::Facts;
use crate::tasks::host::{self, ComposeFlavor, Distro, FirewallOutcome, Goals};
use crate::tasks::{Plan, Status, TaskError, TaskReport};

#[derive(Debug, Clone)]
pub struct ConfigureOptions {
    /// Report what would change; change nothing.
    pub dry_run: bool,
    /// How long to wait for cloud-init and the apt locks.
    pub ready_timeout: Duration,
    /// How long to keep trying to reach the host over SSH.
    pub ssh_timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct Configured {
    pub name: String,
    pub host: String,
    pub dry_run: bool,
    /// Whether anything changed (dry run: would change).
    pub changed: bool,
    pub os: String,
    /// The Compose command later steps use (`None` in a dry run on a host without one).
    pub compose_command: Option<String>,
    pub compose_version: Option<String>,
    pub tasks: Vec<TaskReport>,
    pub warnings: Vec<String>,
    /// SSH connections this run opened (one per command).
    pub ssh_connections: u32,
    pub elapsed_ms: u64,
}

/// Configures the environment's host.
pub async fn configure(
    data: &DataDir,
    env: &str,
    options: &ConfigureOptions,
    lock_wait: Duration,
) -> Result<Configured, OpsError> {
    let started = Instant::now();
    let _lock = data.lock(
        env,
        &super::lock_name("configure", options.dry_run),
        lock_wait,
    )?;
    let mut state = data.load(env)?;
    let host_record = provisioned_host(&state)?;
    let target = ssh_target(data, &state, &host_record.ip, host_record.ssh_port);
    let connect_options = ConnectOptions {
        retry_deadline: options.ssh_timeout,
        passphrase: PassphraseSource::default(),
        // The state's record is the pin when known_hosts was lost.
        expected_host_key: host_record.host_key.clone(),
        ..ConnectOptions::default()
    };
    let session = if options.dry_run {
        Session::connect(&target, &connect_options)
            .await
            .map_err(OpsError::typed)?
    } else {
        // Recorded as a step, so that a host that cannot be reached is named in the state.
        let mut run = StepRun::begin(data, &mut state, "configure")?;
        run.step(&mut state, "connect", async |_s| {
            Session::connect(&target, &connect_options).await
        })
        .await?
    };
    let result = configure_on(data, &mut state, &session, options).await;
    session.close().await;
    let mut configured = result?;
    configured.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(configured)
}

/// Configures (or, in a dry run, plans) on a host already reached, under a lock the caller
/// holds.
pub async fn configure_on(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &dyn Host,
    options: &ConfigureOptions,
) -> Result<Configured, OpsError> {
    let started = Instant::now();
    let host_record = provisioned_host(state)?;
    let goals = Goals {
        user: state.config.ssh_credentials.username.to_string(),
        ssh_port: host_record.ssh_port,
        reboot_time: state
            .config
            .host
            .clone()
            .unwrap_or_default()
            .automatic_reboot_time,
    };
    if options.dry_run {
        let (facts, distro, tasks) = dry_run(host, &goals)
            .await
            .map_err(|e| OpsError::Failed(e.to_string()))?;
        let compose = ComposeFlavor::detect(&facts);
        return Ok(Configured {
            name: state.name.clone(),
            host: host.display(),
            dry_run: true,
            changed: tasks.iter().any(|t| t.status == Status::WouldChange),
            os: distro.label().to_string(),
            compose_command: compose.as_ref().map(|c| c.0.command().to_string()),
            compose_version: compose.map(|c| c.1),
            tasks,
            warnings: Vec::new(),
            ssh_connections: 1,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }

    let mut run = StepRun::begin(data, state, "configure")?;
    let (distro, compose, tasks, warnings, firewall) =
        apply(&mut run, state, host, &goals, options).await?;
    state.host_setup = Some(HostSetup {
        os: serde_json::to_value(distro)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        compose_command: compose.0.command().to_string(),
        compose_version: compose.1.clone(),
        firewall,
        warnings: warnings.clone(),
        configured_at: Utc::now(),
    });
    let lifecycle = (state.lifecycle < Lifecycle::Configured).then_some(Lifecycle::Configured);
    run.finish(state, lifecycle)?;
    Ok(Configured {
        name: state.name.clone(),
        host: host.display(),
        dry_run: false,
        changed: tasks.iter().any(|t| t.status == Status::Changed),
        os: distro.label().to_string(),
        compose_command: Some(compose.0.command().to_string()),
        compose_version: Some(compose.1),
        tasks,
        warnings,
        ssh_connections: 1,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Reads the facts and reports each task's plan. Changes nothing on the host.
async fn dry_run(
    host: &dyn Host,
    goals: &Goals,
) -> Result<(Facts, Distro, Vec<TaskReport>), TaskError> {
    let t = Instant::now();
    let facts = host::read_facts(host, goals).await?;
    let distro = Distro::detect(&facts)?;
    let read = t.elapsed();
    let mut tasks = vec![TaskReport::new(
        "operating system",
        Status::Unchanged,
        distro.label(),
        read,
    )];
    let mut add = |name: &str, apply: bool, text: &str| {
        let status = if apply {
            Status::WouldChange
        } else {
            Status::Unchanged
        };
        tasks.push(TaskReport::new(name, status, text, Duration::ZERO));
    };
    let p = host::plan_dpkg_repair(&facts);
    if p.is_apply() {
        add("repair dpkg", true, p.text());
    }
    let p = host::plan_packages(&facts, distro);
    add("packages", p.is_apply(), p.text());
    let p = host::plan_docker_service(&facts);
    add("docker service", p.is_apply(), p.text());
    let p = host::plan_docker_group(&facts, goals);
    add("docker group", p.is_apply(), p.text());
    let p = host::plan_unattended(&facts, goals);
    add("unattended upgrades", p.is_apply(), p.text());
    let p = host::plan_firewall(&facts, goals);
    add("firewall", p.is_apply(), p.text());
    Ok((facts, distro, tasks))
}

type Applied = (
    Distro,
    (ComposeFlavor, String),
    Vec<TaskReport>,
    Vec<String>,
    String,
);

/// Runs every task as a recorded step: wait, facts, packages ([`facts_steps`]), service,
/// group, upgrades, firewall ([`firewall_step`]), verify.
async fn apply(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    session: &dyn Host,
    goals: &Goals,
    options: &ConfigureOptions,
) -> Result<Applied, OpsError> {
    let mut tasks = Vec::new();
    let mut warnings = Vec::new();
    let (facts, distro) = facts_steps(run, state, session, goals, options, &mut tasks).await?;

    let t = Instant::now();
    let plan = host::plan_docker_service(&facts);
    if plan.is_apply() {
        run.step_changed(state, "docker service", async |_s| {
            host::apply_docker_service(session, &facts)
                .await
                .map(Done::changed)
        })
        .await?;
    }
    tasks.push(report("docker service", &plan, t));

    let t = Instant::now();
    let plan = host::plan_docker_group(&facts, goals);
    if plan.is_apply() {
        run.step_changed(state, "docker group", async |_s| {
            host::apply_docker_group(session, goals)
                .await
                .map(Done::changed)
        })
        .await?;
    }
    tasks.push(report("docker group", &plan, t));

    let t = Instant::now();
    let plan = host::plan_unattended(&facts, goals);
    if let Plan::Apply(files, _) = &plan {
        run.step_changed(state, "unattended upgrades", async |_s| {
            session.upload(files).await.map(Done::changed)
        })
        .await?;
    }
    tasks.push(report("unattended upgrades", &plan, t));

    let (firewall, firewall_refused) = firewall_step(
        run,
        state,
        session,
        &facts,
        goals,
        &mut tasks,
        &mut warnings,
    )
    .await?;

    // Nothing applied: the facts read at the start are the facts now, and they met every goal
    // (that is why nothing was planned), so verifying costs no round trip.
    let applied = tasks.iter().any(|t| t.status != Status::Unchanged);
    let t = Instant::now();
    let unchanged_facts = (!applied).then_some(&facts);
    let compose = run
        .step(state, "verify", async |_s| {
            verify(session, goals, unchanged_facts, distro, firewall_refused).await
        })
        .await?;
    tasks.push(TaskReport::new(
        "compose",
        Status::Unchanged,
        format!("`{}` {}", compose.0.command(), compose.1),
        t.elapsed(),
    ));
    Ok((distro, compose, tasks, warnings, firewall))
}

/// Waits for cloud-init and apt, reads the facts, then installs the missing packages (which
/// changes the facts the other tasks decide from, so they are read again). Recorded steps.
async fn facts_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    session: &dyn Host,
    goals: &Goals,
    options: &ConfigureOptions,
    tasks: &mut Vec<TaskReport>,
) -> Result<(Facts, Distro), OpsError> {
    let t = Instant::now();
    let ready = run
        .step(state, "wait for cloud-init and apt", async |_s| {
            host::wait_ready(session, options.ready_timeout).await
        })
        .await?;
    tasks.push(TaskReport::new(
        "wait for cloud-init and apt",
        Status::Unchanged,
        ready,
        t.elapsed(),
    ));

    let t = Instant::now();
    let (mut facts, distro) = run
        .step(state, "read facts", async |_s| {
            let facts = host::read_facts(session, goals).await?;
            let distro = Distro::detect(&facts)?;
            Ok::<_, TaskError>((facts, distro))
        })
        .await?;
    tasks.push(TaskReport::new(
        "operating system",
        Status::Unchanged,
        distro.label(),
        t.elapsed(),
    ));

    let t = Instant::now();
    let plan = host::plan_dpkg_repair(&facts);
    if plan.is_apply() {
        facts = run
            .step(state, "repair dpkg", async |_s| {
                host::apply_dpkg_repair(session).await?;
                host::read_facts(session, goals).await
            })
            .await?;
        tasks.push(report("repair dpkg", &plan, t));
    }

    let t = Instant::now();
    let plan = host::plan_packages(&facts, distro);
    if let Plan::Apply(packages, text) = &plan {
        let source = package_source(state);
        facts = run
            .step(state, "packages", async |_s| {
                install_packages(session, packages, &source).await?;
                host::read_facts(session, goals).await
            })
            .await?;
        tasks.push(TaskReport::new(
            "packages",
            Status::Changed,
            text,
            t.elapsed(),
        ));
    } else {
        tasks.push(TaskReport::new(
            "packages",
            Status::Unchanged,
            plan.text(),
            Duration::ZERO,
        ));
    }
    Ok((facts, distro))
}

/// Where the packages come from without egress (`host.offline_packages`,
/// `host.apt_proxy_over_ssh`), if anywhere special.
enum PackageSource {
    Mirror,
    Directory(std::path::PathBuf),
    ProxyOverSsh(String),
}

fn package_source(state: &EnvironmentState) -> PackageSource {
    let host = state.config.host.as_ref();
    match (
        host.and_then(|h| h.offline_packages.clone()),
        host.and_then(|h| h.apt_proxy_over_ssh.clone()),
    ) {
        (Some(dir), _) => PackageSource::Directory(dir),
        (None, Some(proxy)) => PackageSource::ProxyOverSsh(proxy),
        (None, None) => PackageSource::Mirror,
    }
}

/// The packages from the host's mirror, from the operator's package directory uploaded
/// first, or through a proxy this machine reaches, over the SSH connection (ADR 39).
async fn install_packages(
    session: &dyn Host,
    packages: &[String],
    source: &PackageSource,
) -> Result<(), TaskError> {
    match source {
        PackageSource::Mirror => host::apply_packages(session, packages).await,
        PackageSource::Directory(dir) => {
            let note = apt_source::upload(session, dir).await?;
            crate::events::note(note);
            apt_source::install(session, packages).await
        }
        PackageSource::ProxyOverSsh(proxy) => {
            let port = session.forward_remote(proxy).await?;
            crate::events::note(format!(
                "apt through 127.0.0.1:{port} on the host, forwarded to {proxy}"
            ));
            let options = apt_source::proxy_options(port);
            host::apply_packages_with(session, packages, &options).await
        }
    }
}

/// The firewall task as a recorded step. A kernel that refuses the rules is a warning, not a
/// failure. Returns the firewall's state for the record and whether it was refused.
async fn firewall_step(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    session: &dyn Host,
    facts: &Facts,
    goals: &Goals,
    tasks: &mut Vec<TaskReport>,
    warnings: &mut Vec<String>,
) -> Result<(String, bool), OpsError> {
    let t = Instant::now();
    let plan = host::plan_firewall(facts, goals);
    if !plan.is_apply() {
        tasks.push(report("firewall", &plan, t));
        return Ok(("active".to_string(), false));
    }
    let outcome = run
        .step(state, "firewall", async |_s| {
            host::apply_firewall(session, goals).await
        })
        .await?;
    match outcome {
        FirewallOutcome::Enabled => {
            tasks.push(report("firewall", &plan, t));
            Ok(("active".to_string(), false))
        }
        FirewallOutcome::Refused(why) => {
            let why = why.replace('\n', " ");
            let warning = format!(
                "firewall not applied: the host's kernel refused ufw's rules ({why}). \
                 Inside an unprivileged container this is expected; on a VM or server, \
                 check that the iptables/nftables modules are available"
            );
            tasks.push(TaskReport::new(
                "firewall",
                Status::Warning,
                warning.clone(),
                t.elapsed(),
            ));
            warnings.push(warning);
            Ok((format!("not applied: {why}"), true))
        }
    }
}

/// Checks every goal against the facts: `unchanged` when nothing was applied (the facts read
/// at the start still hold), else read again. Returns the Compose found.
async fn verify(
    session: &dyn Host,
    goals: &Goals,
    unchanged: Option<&Facts>,
    distro: Distro,
    firewall_refused: bool,
) -> Result<(ComposeFlavor, String), TaskError> {
    let after = match unchanged {
        Some(facts) => facts.clone(),
        None => host::read_facts(session, goals).await?,
    };
    let failures = host::verify(&after, goals, distro, firewall_refused);
    if let Some((task, found)) = failures.into_iter().next() {
        return Err(TaskError::NotVerified {
            task: task.to_string(),
            found,
            fix: "run configure again with -v to see the commands and their output; \
                  if it persists, the host differs from what configure expects"
                .to_string(),
        });
    }
    Ok(ComposeFlavor::detect(&after).expect("verified above"))
}

fn report<A>(task: &str, plan: &Plan<A>, started: Instant) -> TaskReport {
    let status = if plan.is_apply() {
        Status::Changed
    } else {
        Status::Unchanged
    };
    TaskReport::new(task, status, plan.text(), started.elapsed())
}
