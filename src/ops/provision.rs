//! `provision`: create the environment's LXD instance or Hetzner Cloud server and make it
//! reachable over SSH.
//!
//! Its steps, each a function below: connect to LXD, ensure the profile, create the instance,
//! start it, wait for its IPv4 address, prepare SSH access (when the image has no cloud-init),
//! wait for SSH, record the host. Every step reads what exists before acting, so a failed or
//! interrupted run is resumed by running the command again.
//!
//! `register` (adopt an existing host) and `destroy` live in their own modules; the start with
//! its retries in `provision/start.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

mod hetzner;
mod start;

/// What destroy shares with provision's Hetzner steps: labels, the client, the firewall's rules.
pub(crate) mod hz {
    pub(crate) use super::hetzner::{client, selector};
}
mod wanted;

use start::start_instance;
use wanted::{Wanted, lxd_host_record, wanted};

use super::host::{self, connect_until, ssh_target};
use super::lxd_host::{self, IpWaitError};
use super::lxd_remote;
use super::ownership::{self, ForeignError, OWNER_KEY};
use super::steps::StepRun;
use super::{OpsError, StepReport};
use crate::config::Provider;
use crate::host::lxd::LxdHost;
use crate::lxd::{LxdClient, LxdError, LxdTransport};
use crate::ssh::{Session, SshError, Target};
use crate::state::{DataDir, EnvironmentState, HostRecord, Lifecycle};
use crate::tasks::lxd_access::{self, SshAccess};
use crate::tasks::{TaskError, cloud_init};

/// The names of provision's steps, as recorded in the state and reported.
mod step {
    pub const CONNECT_LXD: &str = "connect to LXD";
    pub const ENSURE_PROFILE: &str = "ensure profile";
    pub const CREATE_INSTANCE: &str = "create instance";
    pub const START_INSTANCE: &str = "start instance";
    pub const WAIT_FOR_IPV4: &str = "wait for IPv4";
    pub const PREPARE_SSH_ACCESS: &str = "prepare SSH access";
    pub const WAIT_FOR_SSH: &str = "wait for SSH";
    pub const RECORD_HOST: &str = "record host";
}

/// Deadlines of the waits in provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub ip_timeout: Duration,
    pub ssh_timeout: Duration,
    /// How long any one LXD operation (create, image download, start) may take.
    pub lxd_timeout: Duration,
    /// Skip "wait for SSH" when the instance was already running at the recorded address with
    /// a pinned host key: the caller connects next and checks that key itself (`deploy`, so
    /// that a deployed environment costs one SSH connection).
    pub trust_recorded_host: bool,
    /// Adopt (and mark) an instance or profile that carries another environment's id, or none
    /// ([`super::ownership`]).
    pub adopt_foreign: bool,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            ip_timeout: Duration::from_secs(120),
            ssh_timeout: Duration::from_secs(300),
            lxd_timeout: Duration::from_secs(300),
            trust_recorded_host: false,
            adopt_foreign: false,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Provisioned {
    pub name: String,
    pub instance: String,
    pub ip: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub host_key: String,
    pub changed: bool,
    pub steps: Vec<StepReport>,
    /// The DNS records the environment's domains need (none without domains).
    pub dns_records: Vec<crate::stack::DnsRecord>,
}

/// Errors of provision's steps, each with its fix.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Lxd(#[from] LxdError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    NoIp(#[from] IpWaitError),
    #[error(
        "image '{image}' is not in LXD's image store{project}.\n  Import it (`provisioning/image/build-debian-image.sh` builds and imports a Debian 12 image; \
         `torrust-tracker-deployer image import` uploads a split image), or set `provider.image` to an alias listed by `GET /1.0/images/aliases`, or to a remote image such as `images:debian/12/cloud`"
    )]
    UnknownImage { image: String, project: String },
    #[error("{what} '{name}' does not exist in LXD.\n  {fix}")]
    Missing {
        what: &'static str,
        name: String,
        fix: String,
    },
    /// LXD's start of the instance kept failing; `log` is the end of LXD's log of it.
    #[error(
        "{source}\n  LXD's lxc.log for '{instance}' ends with:\n{log}\n  If it shows a hook that \
         timed out, check that lxcfs is alive (`stat /var/lib/lxcfs`; \
         `provisioning/host/prepare-lxd-host.sh` restarts it), then run provision again: it \
         resumes here."
    )]
    StartFailed {
        instance: String,
        log: String,
        #[source]
        source: LxdError,
    },
    /// An instance that already existed and ran refuses the environment's key.
    #[error(
        "{source}\n  Instance '{instance}' already existed and was running, so its authorized key \
         was set up earlier, for another key (e.g. the environment was re-created and a new key \
         generated).\n  Fix: `torrust-tracker-deployer destroy {env}` and provision again, or set \
         `ssh_credentials` to the key the instance accepts"
    )]
    AdoptedKeyRejected {
        instance: String,
        env: String,
        #[source]
        source: SshError,
    },
    #[error("cannot reset the pinned host key at {path}: {source}")]
    KnownHosts {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Foreign(#[from] ForeignError),
    #[error(transparent)]
    Hetzner(#[from] crate::hetzner::HetznerError),
}

/// How long a rejected key is retried on an instance that was already running.
const ADOPTED_AUTH_GRACE: Duration = Duration::from_secs(8);

pub async fn provision(
    data: &DataDir,
    env: &str,
    options: &ProvisionOptions,
    lock_wait: Duration,
) -> Result<Provisioned, OpsError> {
    let _lock = data.lock(env, "provision", lock_wait)?;
    let mut state = data.load(env)?;
    host::not_registered(&state)?;
    if state.lifecycle > Lifecycle::Created && state.lifecycle != Lifecycle::Destroyed {
        tracing::info!(
            "environment '{env}' is {}; checking that its instance is still as provisioned",
            state.lifecycle
        );
    }
    if state.id.is_empty() {
        // A state made before ids: this environment gets one now (saved with the run).
        state.id = ownership::new_id();
    }
    // The provider seam: each provider's steps bring an instance up and say what they did
    // ([`InstanceUp`]); reaching it over SSH and recording it are shared ([`reach`]).
    match state.config.provider.clone() {
        Provider::Lxd(p) => {
            let profile = p.profile_name.clone();
            let w = wanted(data, env, options, &state, p, Some(&profile))?;
            let mut run = StepRun::begin(data, &mut state, "provision")?;
            let mut reports = Vec::new();
            let up = lxd_steps(&mut run, &mut state, &w, &mut reports).await?;
            let base = lxd_host_record(&w);
            reach(run, state, &w, up, base, reports).await
        }
        Provider::Hetzner(p) => {
            let w = wanted(data, env, options, &state, p, None)?;
            let mut run = StepRun::begin(data, &mut state, "provision")?;
            let mut reports = Vec::new();
            let up = hetzner::steps(&mut run, &mut state, &w, &mut reports).await?;
            let base = hetzner::host_record(&w);
            reach(run, state, &w, up, base, reports).await
        }
    }
}

/// The shared end of provision: pin the host key made here (on a new instance), wait for SSH
/// (and cloud-init) with it, record the host and finish the run.
async fn reach<P>(
    mut run: StepRun<'_>,
    mut state: EnvironmentState,
    w: &Wanted<'_, P>,
    up: InstanceUp,
    base: HostRecord,
    mut reports: Vec<StepReport>,
) -> Result<Provisioned, OpsError> {
    let (data, env, options) = (w.data, w.env, w.options);
    let ip = up.ip;

    let target = ssh_target(data, &state, &ip, w.creds.port.get());
    if up.created {
        // Its host key was made here and given to it: pinned before the first connection.
        pin_own_host_key(&target, &w.host_key.1)?;
    }
    let previously_pinned = target.pinned_fingerprint().ok().flatten();
    // An instance that was already running before this run has long finished cloud-init: a
    // rejected key there will not fix itself, so don't wait it out.
    let adopted = !up.created && !up.started;
    let recorded = recorded_host_key(&state, &ip, adopted, previously_pinned.as_deref());
    let host_key = match recorded.filter(|_| options.trust_recorded_host) {
        Some(key) => {
            let detail = format!(
                "{} recorded, host key {key} (checked by the next connection)",
                target.display()
            );
            reports.push(report(step::WAIT_FOR_SSH, false, detail));
            key
        }
        None => {
            let session = run
                .step(&mut state, step::WAIT_FOR_SSH, async |_s| {
                    wait_for_ssh(w, &target, adopted, up.prepared.is_none()).await
                })
                .await?;
            let host_key = session.host_key_fingerprint().to_string();
            session.close().await;
            let changed = previously_pinned.as_deref() != Some(host_key.as_str());
            let detail = format!("{} ready, host key {host_key}", target.display());
            reports.push(report(step::WAIT_FOR_SSH, changed, detail));
            host_key
        }
    };

    run.step(&mut state, step::RECORD_HOST, async |s| {
        s.host = Some(HostRecord {
            ip: ip.clone(),
            host_key: Some(host_key.clone()),
            cloud_init: Some(up.prepared.is_none()),
            ..base
        });
        Ok::<_, ProvisionError>(())
    })
    .await?;
    // Re-provisioning a live environment keeps how far it got; a new instance starts over.
    let lifecycle = if state.lifecycle > Lifecycle::Created
        && state.lifecycle != Lifecycle::Destroyed
        && !up.created
    {
        state.lifecycle
    } else {
        Lifecycle::Provisioned
    };
    run.finish(&mut state, Some(lifecycle))?;
    let dns_records = ip
        .parse()
        .map(|ip| crate::stack::dns_records(&state.config, ip))
        .unwrap_or_default();
    Ok(Provisioned {
        name: env.to_string(),
        instance: w.instance.clone(),
        ip,
        ssh_port: w.creds.port.get(),
        ssh_user: w.creds.username.to_string(),
        host_key,
        changed: reports.iter().any(|r| r.changed),
        steps: reports,
        dns_records,
    })
}

/// Pins the public key `line` (OpenSSH format) as the host's only key.
fn pin_own_host_key(target: &Target, line: &str) -> Result<(), OpsError> {
    let key = russh::keys::PublicKey::from_openssh(line.trim())
        .map_err(|e| OpsError::Failed(format!("the host key made here does not parse: {e}")))?;
    crate::ssh::known_hosts::pin_only(&target.known_hosts, &target.host, target.port, &key)
        .map_err(OpsError::typed)
}

/// The host key of an instance that provision finished before and that was still running at the
/// recorded address, with that key pinned: nothing about its SSH can have changed through us.
fn recorded_host_key(
    state: &EnvironmentState,
    ip: &str,
    adopted: bool,
    pinned: Option<&str>,
) -> Option<String> {
    let provisioned =
        state.lifecycle >= Lifecycle::Provisioned && state.lifecycle != Lifecycle::Destroyed;
    let host = state.host.as_ref()?;
    let key = host.host_key.as_deref()?;
    (adopted && provisioned && host.ip == ip && pinned == Some(key)).then(|| key.to_string())
}

/// What a provider's steps left, for the SSH steps that follow.
pub(super) struct InstanceUp {
    pub(super) ip: String,
    pub(super) created: bool,
    pub(super) started: bool,
    /// `None` when cloud-init sets up SSH access, else whether the step changed anything.
    pub(super) prepared: Option<bool>,
}

/// The steps done through LXD: from connecting to it to preparing SSH access.
async fn lxd_steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    w: &Wanted<'_>,
    reports: &mut Vec<StepReport>,
) -> Result<InstanceUp, OpsError> {
    let (client, user_data_key) = run
        .step(state, step::CONNECT_LXD, async |s| connect_lxd(w, s).await)
        .await?;
    reports.push(report(step::CONNECT_LXD, false, client.endpoint()));

    let changed = run
        .step(state, step::ENSURE_PROFILE, async |_s| {
            ensure_profile(&client, w, user_data_key).await
        })
        .await?;
    let detail = if changed { "written" } else { "up to date" };
    let detail = format!("{} {detail}", w.provider.profile_name);
    reports.push(report(step::ENSURE_PROFILE, changed, detail));

    let created = run
        .step(state, step::CREATE_INSTANCE, async |s| {
            create_instance(&client, w, s).await
        })
        .await?;
    let detail = if created {
        format!("{} created from {}", w.instance, w.provider.image)
    } else {
        format!("{} exists (adopted)", w.instance)
    };
    reports.push(report(step::CREATE_INSTANCE, created, detail));

    let started = run
        .step(state, step::START_INSTANCE, async |_s| {
            start_instance(&client, w).await
        })
        .await?;
    let detail = if started { "started" } else { "running" };
    reports.push(report(step::START_INSTANCE, started, detail.into()));

    let ip = run
        .step(state, step::WAIT_FOR_IPV4, async |s| {
            wait_for_ipv4(&client, w, s).await
        })
        .await?;
    reports.push(report(step::WAIT_FOR_IPV4, false, ip.clone()));

    // cloud-init belongs to the image: an instance found running, recorded with it, still has it.
    let recorded_cloud_init = !created
        && !started
        && state.host.as_ref().is_some_and(|h| {
            h.cloud_init == Some(true) && h.instance.as_deref() == Some(w.instance.as_str())
        });
    let prepared = if recorded_cloud_init {
        None
    } else {
        run.step(state, step::PREPARE_SSH_ACCESS, async |_s| {
            prepare_ssh_access(&client, w, created).await
        })
        .await?
    };
    let detail = match prepared {
        None if recorded_cloud_init => "by cloud-init (recorded)",
        None => "by cloud-init",
        Some(true) => "no cloud-init: user and key set up through LXD",
        Some(false) => "no cloud-init: user and key already set up",
    };
    reports.push(report(
        step::PREPARE_SSH_ACCESS,
        prepared == Some(true),
        detail.into(),
    ));
    Ok(InstanceUp {
        ip,
        created,
        started,
        prepared,
    })
}

pub(super) fn report(step: &str, changed: bool, detail: String) -> StepReport {
    StepReport {
        step: step.into(),
        changed,
        detail,
    }
}

/// Step "connect to LXD": the client, after checking that the storage pool and the network
/// exist; and the config key LXD reads cloud-init's user-data from.
async fn connect_lxd(
    w: &Wanted<'_>,
    state: &mut EnvironmentState,
) -> Result<(LxdClient<LxdTransport>, &'static str), ProvisionError> {
    let mut client = lxd_remote::connect(&w.provider, w.data, state).await?;
    lxd_remote::check_target(&client, &w.provider).await?;
    client.operation_timeout = w.options.lxd_timeout;
    let p = &w.provider;
    if client.storage_pool(&p.storage_pool).await?.is_none() {
        return Err(ProvisionError::Missing {
            what: "storage pool",
            name: p.storage_pool.clone(),
            fix: "Create it (`provisioning/host/prepare-lxd-host.sh` creates `default`), or set `provider.storage_pool`".into(),
        });
    }
    if client.network(&p.network).await?.is_none() {
        return Err(ProvisionError::Missing {
            what: "network",
            name: p.network.clone(),
            fix: "Create it (`provisioning/host/prepare-lxd-host.sh` creates `lxdbr0`), or set `provider.network`".into(),
        });
    }
    // LXD before 5.5 (and its `cloud_init` extension) reads `user.user-data`.
    let key = if client.server().await?.has_extension("cloud_init") {
        "cloud-init.user-data"
    } else {
        "user.user-data"
    };
    Ok((client, key))
}

/// Step "ensure profile": writes the profile when it is missing or differs. Returns whether it
/// wrote it.
async fn ensure_profile(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
    user_data_key: &str,
) -> Result<bool, ProvisionError> {
    let user_data = lxd_host::user_data(
        w.creds.username.as_str(),
        &w.public_key,
        w.creds.port.get(),
        Some((w.host_key.0.expose(), &w.host_key.1)),
    );
    let wanted = lxd_host::profile(&w.provider, w.env, &w.owner_id, user_data_key, &user_data);
    let name = &w.provider.profile_name;
    let existing = client.profile(name).await?;
    if let Some(existing) = &existing {
        let found = existing.spec.config.get(OWNER_KEY).map(String::as_str);
        w.check_owner("profile", name, found, w.recorded_profile)?;
        if lxd_host::profile_matches(existing, &wanted) {
            return Ok(false);
        }
    }
    client
        .put_profile(name, existing.is_some(), &wanted)
        .await?;
    Ok(true)
}

/// Step "create instance": creates it unless it exists. One that an interrupted run left
/// half-created and never started is made again. Returns whether it created one.
async fn create_instance(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
    state: &mut EnvironmentState,
) -> Result<bool, ProvisionError> {
    let instance = &w.instance;
    if let Some(found) = client.instance(instance).await? {
        let id = found.config.get(OWNER_KEY).map(String::as_str);
        if w.check_owner("instance", instance, id, w.recorded_instance)? {
            let mark = BTreeMap::from([(OWNER_KEY.to_string(), w.owner_id.clone())]);
            client.set_instance_config(instance, &mark).await?;
        }
        // An interrupted run may have left LXD still creating it.
        client.wait_instance_operations(instance).await?;
        let never_started = client
            .instance(instance)
            .await?
            .is_some_and(|i| i.never_started());
        if !(w.interrupted_create && never_started) {
            lxd_remote::record_location(client, instance, state).await?;
            return Ok(false);
        }
        // LXD may not start such an instance cleanly, so make it again.
        tracing::info!(
            "instance '{instance}' was being created when the previous run stopped; creating it again"
        );
        client.delete_instance(instance).await?;
    }
    if let lxd_host::ImageSource::Local(reference) = lxd_host::image_source(&w.provider.image)
        && client.local_image(&reference).await?.is_none()
    {
        return Err(ProvisionError::UnknownImage {
            image: reference,
            project: w
                .provider
                .project
                .as_ref()
                .map(|p| format!(" (project {p})"))
                .unwrap_or_default(),
        });
    }
    // A new instance is a new host: whatever key was pinned for this environment belonged to a
    // host we no longer have.
    let known_hosts = w.data.known_hosts(&state.name);
    if known_hosts.exists() {
        std::fs::remove_file(&known_hosts).map_err(|source| ProvisionError::KnownHosts {
            path: known_hosts.clone(),
            source,
        })?;
    }
    let request = lxd_host::instance_request(&w.provider, instance, &w.owner_id);
    client
        .create_instance_on(&request, w.provider.target.as_deref())
        .await?;
    state.host = Some(lxd_host_record(w));
    lxd_remote::record_location(client, instance, state).await?;
    Ok(true)
}

/// Step "wait for IPv4": the instance's address, recorded in the state.
async fn wait_for_ipv4(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
    state: &mut EnvironmentState,
) -> Result<String, ProvisionError> {
    let ip = lxd_host::wait_for_ipv4(
        client,
        &w.instance,
        &w.provider.network,
        w.options.ip_timeout,
    )
    .await?;
    let host = state.host.get_or_insert_with(|| lxd_host_record(w));
    host.ip = ip.clone();
    Ok(ip)
}

/// Step "prepare SSH access": nothing when the image has cloud-init (`None`); otherwise sets up
/// the user and key as tasks on the instance through LXD (SSH does not let us in yet) and says
/// whether anything changed.
async fn prepare_ssh_access(
    client: &LxdClient<LxdTransport>,
    w: &Wanted<'_>,
    created: bool,
) -> Result<Option<bool>, ProvisionError> {
    let host = LxdHost::new(client, &w.instance).login_as(w.creds.username.as_str());
    if lxd_access::has_cloud_init(&host).await? {
        return Ok(None);
    }
    let access = SshAccess {
        username: w.creds.username.as_str(),
        public_key: &w.public_key,
        port: w.creds.port.get(),
        // Only a new instance gets our host key: an adopted one keeps its own, already pinned.
        host_key: created.then(|| (w.host_key.0.expose(), w.host_key.1.as_str())),
    };
    Ok(Some(lxd_access::prepare(&host, &access).await?))
}

/// Step "wait for SSH": a session on the instance, once cloud-init (if the image has it) is done.
async fn wait_for_ssh<P>(
    w: &Wanted<'_, P>,
    target: &Target,
    adopted: bool,
    by_cloud_init: bool,
) -> Result<Session, ProvisionError> {
    let auth_grace = adopted.then_some(ADOPTED_AUTH_GRACE);
    let session = connect_until(target, w.options.ssh_timeout, auth_grace)
        .await
        .map_err(|e| match e {
            e @ SshError::AuthRejected { .. } if adopted => ProvisionError::AdoptedKeyRejected {
                instance: w.instance.clone(),
                env: w.env.to_string(),
                source: e,
            },
            e => e.into(),
        })?;
    if by_cloud_init {
        cloud_init::wait_done(&session).await?;
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::wanted::interrupted_while_creating;
    use std::path::Path;

    use super::*;
    use crate::state::{CommandRun, RunStatus};

    fn state_after(command: &str, completed: &[&str], status: RunStatus) -> EnvironmentState {
        let file = crate::config::minimal_test_file("demo", "Adm1n-T0ken-for-provision-test");
        let loaded = crate::config::parse(&file.to_string(), Path::new("/")).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        state.last_run = Some(CommandRun {
            command: command.into(),
            started_at: chrono::Utc::now(),
            finished_at: None,
            completed_steps: completed.iter().map(|s| s.to_string()).collect(),
            status,
        });
        state
    }

    #[test]
    fn a_run_stopped_between_profile_and_instance_was_creating_it() {
        let creating = RunStatus::Running {
            step: Some(step::CREATE_INSTANCE.into()),
        };
        let profiled = [step::CONNECT_LXD, step::ENSURE_PROFILE];
        let st = state_after("provision", &profiled, creating.clone());
        assert!(interrupted_while_creating(&st));

        // Created already, never got that far, another command, or finished: no.
        let created = [
            step::CONNECT_LXD,
            step::ENSURE_PROFILE,
            step::CREATE_INSTANCE,
        ];
        let st = state_after("provision", &created, creating.clone());
        assert!(!interrupted_while_creating(&st));
        let st = state_after("provision", &[step::CONNECT_LXD], creating.clone());
        assert!(!interrupted_while_creating(&st));
        let st = state_after("destroy", &profiled, creating);
        assert!(!interrupted_while_creating(&st));
        let st = state_after("provision", &profiled, RunStatus::Succeeded);
        assert!(!interrupted_while_creating(&st));
    }
}
