//! `provision`: create the environment's LXD instance and make it reachable over SSH.
//! `register`: adopt an existing host instead. `destroy`: remove what provision created.
//!
//! Every step reads what exists before acting, so a failed or interrupted run is resumed by
//! running the command again.

use std::time::Duration;

use serde::Serialize;

use super::OpsError;
use super::lxd_host::{self, IpWaitError};
use super::steps::StepRun;
use crate::config::{LxdProvider, Provider};
use crate::lxd::LxdError;
use crate::ssh::{ConnectOptions, Session, SshError, Target};
use crate::state::{DataDir, EnvironmentState, HostRecord, Lifecycle};

/// Deadlines of the waits in provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub ip_timeout: Duration,
    pub ssh_timeout: Duration,
    /// How long any one LXD operation (create, image download, start) may take.
    pub lxd_timeout: Duration,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            ip_timeout: Duration::from_secs(120),
            ssh_timeout: Duration::from_secs(300),
            lxd_timeout: Duration::from_secs(300),
        }
    }
}

/// One step of a lifecycle command, as reported to the user.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub changed: bool,
    pub detail: String,
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
    #[error("{0}")]
    Host(String),
}

/// How many times provision tries to start an instance. LXD 5.0.2 failed first starts in bursts
/// (its start hook timing out) while a client held a silent connection to its socket (ADR 12);
/// the retries stay for a daemon that is slow for other reasons.
const START_ATTEMPTS: u32 = 5;

/// Runs `f` again while LXD answers that the instance is busy with another operation (the
/// stop hooks of a failed start hold it for a minute or more), for up to three minutes.
async fn until_not_busy(mut f: impl AsyncFnMut() -> Result<(), LxdError>) -> Result<(), LxdError> {
    let start = std::time::Instant::now();
    loop {
        match f().await {
            Err(e)
                if e.to_string().contains("is busy running")
                    && start.elapsed() < Duration::from_secs(180) =>
            {
                tracing::debug!("waiting for LXD to finish with the instance: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            other => return other,
        }
    }
}

/// How long a rejected key is retried on an instance that was already running.
const ADOPTED_AUTH_GRACE: Duration = Duration::from_secs(8);

/// Indents every line of `text`.
fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The SSH target for an environment's host.
pub fn ssh_target(data: &DataDir, state: &EnvironmentState, ip: &str, port: u16) -> Target {
    Target {
        host: ip.to_string(),
        port,
        user: state.config.ssh_credentials.username.clone(),
        private_key: state.private_key_path().unwrap_or_default(),
        known_hosts: data.known_hosts(&state.name),
    }
}

fn lxd_provider(state: &EnvironmentState) -> Result<&LxdProvider, OpsError> {
    match &state.config.provider {
        Provider::Lxd(p) => Ok(p),
        Provider::Hetzner(_) => Err(OpsError::Refused(format!(
            "environment '{}' uses the hetzner provider, which this build cannot provision yet; \
             only lxd is supported. Provision the server yourself and adopt it with \
             `torrust-tracker-deployer register {} --instance-ip IP`",
            state.name, state.name
        ))),
    }
}

pub async fn provision(
    data: &DataDir,
    env: &str,
    options: &ProvisionOptions,
    lock_wait: Duration,
) -> Result<Provisioned, OpsError> {
    let _lock = data.lock(env, "provision", lock_wait)?;
    let mut state = data.load(env)?;
    if let Some(host) = &state.host
        && host.registered
    {
        return Err(OpsError::Refused(format!(
            "environment '{env}' uses a registered host ({}); provision only creates LXD instances. \
             Run `torrust-tracker-deployer configure {env}` next",
            host.ip
        )));
    }
    if state.lifecycle > Lifecycle::Created && state.lifecycle != Lifecycle::Destroyed {
        tracing::info!(
            "environment '{env}' is {}; checking that its instance is still as provisioned",
            state.lifecycle
        );
    }
    let provider = lxd_provider(&state)?.clone();
    let instance = state.config.instance_name();
    let creds = state.config.ssh_credentials.clone();
    let public_key_path = state.public_key_path().unwrap_or_default();
    let public_key = std::fs::read_to_string(&public_key_path).map_err(OpsError::io(format!(
        "cannot read the public key {}",
        public_key_path.display()
    )))?;
    let mut reports = Vec::new();
    // Was a previous run stopped while LXD was creating the instance?
    let interrupted_create = state.unfinished_run().is_some_and(|r| {
        r.command == "provision"
            && !r.completed_steps.iter().any(|s| s == "create instance")
            && r.completed_steps.iter().any(|s| s == "ensure profile")
    });
    let mut run = StepRun::begin(data, &mut state, "provision")?;

    let (client, user_data_key) = run
        .step(&mut state, "connect to LXD", async |_s| {
            let mut client = lxd_host::connect(&provider).await?;
            client.operation_timeout = options.lxd_timeout;
            for (what, name, found, fix) in [
                (
                    "storage pool",
                    &provider.storage_pool,
                    client.storage_pool(&provider.storage_pool).await?.is_some(),
                    "Create it (`provisioning/host/prepare-lxd-host.sh` creates `default`), or set `provider.storage_pool`",
                ),
                (
                    "network",
                    &provider.network,
                    client.network(&provider.network).await?.is_some(),
                    "Create it (`provisioning/host/prepare-lxd-host.sh` creates `lxdbr0`), or set `provider.network`",
                ),
            ] {
                if !found {
                    return Err(ProvisionError::Missing {
                        what,
                        name: name.clone(),
                        fix: fix.to_string(),
                    });
                }
            }
            // LXD before 5.5 (and its `cloud_init` extension) reads `user.user-data`.
            let server = client.server().await?;
            let key = if server["api_extensions"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x == "cloud_init"))
            {
                "cloud-init.user-data"
            } else {
                "user.user-data"
            };
            Ok::<_, ProvisionError>((client, key))
        })
        .await?;
    reports.push(StepReport {
        step: "connect to LXD".into(),
        changed: false,
        detail: client.endpoint(),
    });

    let profile_changed = run
        .step(&mut state, "ensure profile", async |_s| {
            let wanted = lxd_host::profile(
                &provider,
                env,
                user_data_key,
                &lxd_host::user_data(&creds.username, &public_key, creds.port),
            );
            let existing = client.profile(&provider.profile_name).await?;
            match existing {
                Some(existing) if lxd_host::profile_matches(&existing, &wanted) => Ok(false),
                Some(_) => {
                    client
                        .put_profile(&provider.profile_name, true, &wanted)
                        .await?;
                    Ok(true)
                }
                None => {
                    client
                        .put_profile(&provider.profile_name, false, &wanted)
                        .await?;
                    Ok::<_, ProvisionError>(true)
                }
            }
        })
        .await?;
    reports.push(StepReport {
        step: "ensure profile".into(),
        changed: profile_changed,
        detail: format!(
            "{} {}",
            provider.profile_name,
            if profile_changed {
                "written"
            } else {
                "up to date"
            }
        ),
    });

    let created = run
        .step(&mut state, "create instance", async |s| {
            if client.instance(&instance).await?.is_some() {
                // An interrupted run may have left LXD still creating it.
                client.wait_instance_operations(&instance).await?;
                let existing = client.instance(&instance).await?.unwrap_or_default();
                let never_started = existing["last_used_at"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("1970"));
                if !(interrupted_create && never_started) {
                    return Ok(false);
                }
                // Half-created by the interrupted run and never started: LXD may not start
                // such an instance cleanly, so make it again.
                tracing::info!(
                    "instance '{instance}' was being created when the previous run stopped; creating it again"
                );
                client.delete_instance(&instance).await?;
            }
            if let lxd_host::ImageSource::Local(reference) = lxd_host::image_source(&provider.image)
                && client.local_image(&reference).await?.is_none()
            {
                return Err(ProvisionError::UnknownImage {
                    image: reference,
                    project: provider
                        .project
                        .as_ref()
                        .map(|p| format!(" (project {p})"))
                        .unwrap_or_default(),
                });
            }
            // A new instance is a new host: whatever key was pinned for this environment
            // belonged to a host we no longer have.
            let known_hosts = data.known_hosts(&s.name);
            if known_hosts.exists() {
                std::fs::remove_file(&known_hosts).map_err(|e| {
                    ProvisionError::Host(format!("cannot reset {}: {e}", known_hosts.display()))
                })?;
            }
            client
                .create_instance(&lxd_host::instance_request(&provider, &instance))
                .await?;
            s.host = Some(lxd_host_record(&instance, &provider, creds.port));
            Ok::<_, ProvisionError>(true)
        })
        .await?;
    reports.push(StepReport {
        step: "create instance".into(),
        changed: created,
        detail: format!(
            "{instance} {}",
            if created {
                format!("created from {}", provider.image)
            } else {
                "exists (adopted)".into()
            }
        ),
    });

    let started = run
        .step(&mut state, "start instance", async |_s| {
            let st = client.instance_state(&instance).await?;
            if st.status == "Running" {
                return Ok(false);
            }
            // LXD's start hooks call back into the daemon; on a loaded host they can time out
            // (`forkstart ... exit status 1`). The start is safe to repeat, so try again.
            let mut attempt = 1;
            loop {
                match client.change_state(&instance, "start", false).await {
                    Ok(()) => return Ok(true),
                    Err(e @ LxdError::Operation { .. }) if attempt < START_ATTEMPTS => {
                        if client.instance_state(&instance).await?.status == "Running" {
                            return Ok(true);
                        }
                        // Seen with LXD 5.0.2: once an instance's FIRST start fails on a hook
                        // timeout, every later start of it fails the same way, while a new
                        // instance usually starts. A never-started instance holds nothing, so
                        // make it again.
                        let never_started =
                            client.instance(&instance).await?.unwrap_or_default()["last_used_at"]
                                .as_str()
                                .is_some_and(|t| t.starts_with("1970"));
                        tracing::warn!(
                            "starting '{instance}' failed (attempt {attempt} of {START_ATTEMPTS}), {}: {e}",
                            if never_started {
                                "creating it again and retrying"
                            } else {
                                "retrying"
                            }
                        );
                        client.wait_instance_operations(&instance).await?;
                        if never_started {
                            // The failed start's stop hooks keep the instance "busy" for a while.
                            until_not_busy(async || client.delete_instance(&instance).await.map(|_| ()))
                                .await?;
                            until_not_busy(async || {
                                client
                                    .create_instance(&lxd_host::instance_request(
                                        &provider, &instance,
                                    ))
                                    .await
                            })
                            .await?;
                        }
                        attempt += 1;
                        // The failures come in bursts (a busy host): give it a moment.
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    Err(e @ LxdError::Operation { .. }) => {
                        // Say why, from LXD's own log of the instance.
                        let log = client
                            .instance_log_tail(&instance, "lxc.log", 15)
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        return Err(ProvisionError::Host(format!(
                            "{e}\n  LXD's lxc.log for '{instance}' ends with:\n{}\n  \
                             If it shows a hook that timed out, check that lxcfs is alive \
                             (`stat /var/lib/lxcfs`; `provisioning/host/prepare-lxd-host.sh` \
                             restarts it), then run provision again: it resumes here.",
                            indent(&log, "    ")
                        )));
                    }
                    Err(e) => return Err(ProvisionError::from(e)),
                }
            }
        })
        .await?;
    reports.push(StepReport {
        step: "start instance".into(),
        changed: started,
        detail: if started { "started" } else { "running" }.into(),
    });

    let ip = run
        .step(&mut state, "wait for IPv4", async |s| {
            let ip =
                lxd_host::wait_for_ipv4(&client, &instance, &provider.network, options.ip_timeout)
                    .await?;
            let host = s
                .host
                .get_or_insert_with(|| lxd_host_record(&instance, &provider, creds.port));
            host.ip = ip.clone();
            Ok::<_, ProvisionError>(ip)
        })
        .await?;
    reports.push(StepReport {
        step: "wait for IPv4".into(),
        changed: false,
        detail: ip.clone(),
    });

    let prepared = run
        .step(&mut state, "prepare SSH access", async |_s| {
            let has_cloud_init = client
                .exec(
                    &instance,
                    &["sh", "-c", "command -v cloud-init >/dev/null || exit 1"],
                )
                .await?
                .exit_code
                == 0;
            if has_cloud_init {
                return Ok(None);
            }
            let changed = lxd_host::prepare_without_cloud_init(
                &client,
                &instance,
                &creds.username,
                &public_key,
                creds.port,
            )
            .await?;
            Ok::<_, ProvisionError>(Some(changed))
        })
        .await?;
    reports.push(StepReport {
        step: "prepare SSH access".into(),
        changed: prepared == Some(true),
        detail: match prepared {
            None => "by cloud-init".into(),
            Some(true) => "no cloud-init: user and key set up through LXD".into(),
            Some(false) => "no cloud-init: user and key already set up".into(),
        },
    });

    let target = ssh_target(data, &state, &ip, creds.port);
    let previously_pinned = target.pinned_fingerprint().ok().flatten();
    let session = run
        .step(&mut state, "wait for SSH", async |_s| {
            // An instance that was already running before this run has long finished
            // cloud-init: a rejected key there will not fix itself, so don't wait it out.
            let auth_grace = (!created && !started).then_some(ADOPTED_AUTH_GRACE);
            let session = connect_until(&target, options.ssh_timeout, auth_grace)
                .await
                .map_err(|e| match e {
                    e @ SshError::AuthRejected { .. } if auth_grace.is_some() => {
                        ProvisionError::Host(format!(
                            "{e}\n  Instance '{instance}' already existed and was running, so its \
                             authorized key was set up earlier, for another key (e.g. the \
                             environment was re-created and a new key generated).\n  Fix: \
                             `torrust-tracker-deployer destroy {env}` and provision again, or \
                             set `ssh_credentials` to the key the instance accepts"
                        ))
                    }
                    e => e.into(),
                })?;
            if prepared.is_none() {
                let out = session
                    .exec("cloud-init status --wait >/dev/null 2>&1; cloud-init status")
                    .await?;
                let status = out.stdout_str();
                if !status.contains("done") {
                    return Err(ProvisionError::Host(format!(
                        "cloud-init on {ip} did not finish cleanly: {}.\n  See /var/log/cloud-init-output.log on the instance",
                        status.trim()
                    )));
                }
            }
            Ok::<_, ProvisionError>(session)
        })
        .await?;
    let host_key = session.host_key_fingerprint().to_string();
    session.close().await;
    reports.push(StepReport {
        step: "wait for SSH".into(),
        changed: previously_pinned.as_deref() != Some(host_key.as_str()),
        detail: format!("{} ready, host key {host_key}", target.display()),
    });

    run.step(&mut state, "record host", async |s| {
        s.host = Some(HostRecord {
            ip: ip.clone(),
            host_key: Some(host_key.clone()),
            ..lxd_host_record(&instance, &provider, creds.port)
        });
        Ok::<_, ProvisionError>(())
    })
    .await?;
    let lifecycle = if state.lifecycle > Lifecycle::Created
        && state.lifecycle != Lifecycle::Destroyed
        && !created
    {
        state.lifecycle
    } else {
        Lifecycle::Provisioned
    };
    run.finish(&mut state, Some(lifecycle))?;
    Ok(Provisioned {
        name: env.to_string(),
        instance,
        ip,
        ssh_port: creds.port,
        ssh_user: creds.username,
        host_key,
        changed: reports.iter().any(|r| r.changed),
        steps: reports,
    })
}

/// The host record of an LXD instance that provision created; the address and host key are
/// filled in as provision learns them.
fn lxd_host_record(instance: &str, provider: &LxdProvider, ssh_port: u16) -> HostRecord {
    HostRecord {
        ip: String::new(),
        ssh_port,
        host_key: None,
        instance: Some(instance.to_string()),
        profile: Some(provider.profile_name.clone()),
        registered: false,
    }
}

/// Connects until `timeout`, also retrying a rejected key for a while: cloud-init may not have
/// created the user yet when sshd first answers. A changed host key is never retried.
///
/// `auth_grace` bounds how long a rejected key is retried (default: the whole `timeout`).
/// Polling is tight (0.25-0.5 s) because a fresh instance's sshd comes up within seconds.
pub async fn connect_until(
    target: &Target,
    timeout: Duration,
    auth_grace: Option<Duration>,
) -> Result<Session, SshError> {
    let start = std::time::Instant::now();
    let auth_deadline = auth_grace.unwrap_or(timeout).min(timeout);
    loop {
        let remaining = timeout.saturating_sub(start.elapsed());
        let options = ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            retry_deadline: remaining,
            retry_max_interval: Duration::from_millis(500),
            passphrase: crate::ssh::PassphraseSource::default(),
            ..ConnectOptions::default()
        };
        match Session::connect(target, &options).await {
            Ok(s) => return Ok(s),
            Err(e @ SshError::AuthRejected { .. }) if start.elapsed() < auth_deadline => {
                tracing::debug!("key not accepted yet (cloud-init may still be running): {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Registered {
    pub name: String,
    pub ip: String,
    pub ssh_port: u16,
    pub host_key: String,
}

/// Adopts an existing host after a real SSH check, pinning its key.
pub async fn register(
    data: &DataDir,
    env: &str,
    ip: &str,
    port: Option<u16>,
    lock_wait: Duration,
) -> Result<Registered, OpsError> {
    let _lock = data.lock(env, "register", lock_wait)?;
    let mut state = data.load(env)?;
    if let Some(host) = &state.host
        && !host.registered
        && state.lifecycle != Lifecycle::Destroyed
    {
        return Err(OpsError::Refused(format!(
            "environment '{env}' already has an LXD instance created by provision ({}); \
             run `torrust-tracker-deployer destroy {env}` first to register another host",
            host.instance.as_deref().unwrap_or(&host.ip)
        )));
    }
    let port = port.unwrap_or(state.config.ssh_credentials.port);
    let target = ssh_target(data, &state, ip, port);
    let mut run = StepRun::begin(data, &mut state, "register")?;
    let host_key = run
        .step(&mut state, "check SSH", async |_s| {
            let session = connect_until(&target, Duration::from_secs(30), None).await?;
            session.exec("true").await?.check()?;
            let key = session.host_key_fingerprint().to_string();
            session.close().await;
            Ok::<_, SshError>(key)
        })
        .await?;
    run.step(&mut state, "record host", async |s| {
        s.host = Some(HostRecord {
            ip: ip.to_string(),
            ssh_port: port,
            host_key: Some(host_key.clone()),
            instance: None,
            profile: None,
            registered: true,
        });
        Ok::<_, SshError>(())
    })
    .await?;
    let lifecycle =
        if state.lifecycle > Lifecycle::Provisioned && state.lifecycle != Lifecycle::Destroyed {
            state.lifecycle
        } else {
            Lifecycle::Provisioned
        };
    run.finish(&mut state, Some(lifecycle))?;
    Ok(Registered {
        name: env.to_string(),
        ip: ip.to_string(),
        ssh_port: port,
        host_key,
    })
}

#[derive(Debug, Serialize)]
pub struct Destroyed {
    pub name: String,
    pub steps: Vec<StepReport>,
}

/// Removes the instance and the profile (missing ones are fine), forgets the pinned key, and
/// marks the environment destroyed. Registered hosts are never touched.
pub async fn destroy(
    data: &DataDir,
    env: &str,
    lock_wait: Duration,
) -> Result<Destroyed, OpsError> {
    let _lock = data.lock(env, "destroy", lock_wait)?;
    let mut state = data.load(env)?;
    let mut reports = Vec::new();
    let registered = state.host.as_ref().is_some_and(|h| h.registered);
    let mut run = StepRun::begin(data, &mut state, "destroy")?;
    if registered {
        reports.push(StepReport {
            step: "leave registered host".into(),
            changed: false,
            detail: "registered hosts are never stopped or deleted".into(),
        });
    } else if let Provider::Lxd(provider) = &state.config.provider {
        let provider = provider.clone();
        let instance = state
            .host
            .as_ref()
            .and_then(|h| h.instance.clone())
            .unwrap_or_else(|| state.config.instance_name());
        let profile = state
            .host
            .as_ref()
            .and_then(|h| h.profile.clone())
            .unwrap_or_else(|| provider.profile_name.clone());
        let client = run
            .step(&mut state, "connect to LXD", async |_s| {
                lxd_host::connect(&provider).await
            })
            .await?;
        let deleted = run
            .step(&mut state, "delete instance", async |_s| {
                if client.instance(&instance).await?.is_none() {
                    return Ok(false);
                }
                if client.instance_state(&instance).await?.status != "Stopped" {
                    // A clean shutdown first; force only if it does not stop in time.
                    if let Err(e) = client.change_state(&instance, "stop", false).await
                        && client.instance_state(&instance).await?.status != "Stopped"
                    {
                        tracing::info!("clean stop of '{instance}' failed ({e}); forcing it");
                        client.change_state(&instance, "stop", true).await?;
                    }
                }
                let mut deleted = false;
                until_not_busy(async || {
                    deleted = client.delete_instance(&instance).await?;
                    Ok(())
                })
                .await?;
                Ok::<_, LxdError>(deleted)
            })
            .await?;
        reports.push(StepReport {
            step: "delete instance".into(),
            changed: deleted,
            detail: format!("{instance} {}", if deleted { "deleted" } else { "absent" }),
        });
        let deleted = run
            .step(&mut state, "delete profile", async |_s| {
                client.delete_profile(&profile).await
            })
            .await?;
        reports.push(StepReport {
            step: "delete profile".into(),
            changed: deleted,
            detail: format!("{profile} {}", if deleted { "deleted" } else { "absent" }),
        });
    }
    let forgot = run
        .step(&mut state, "forget host key", async |s| {
            let path = data.known_hosts(&s.name);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
    reports.push(StepReport {
        step: "forget host key".into(),
        changed: forgot,
        detail: if forgot { "removed" } else { "none pinned" }.into(),
    });
    state.host = None;
    run.finish(&mut state, Some(Lifecycle::Destroyed))?;
    Ok(Destroyed {
        name: env.to_string(),
        steps: reports,
    })
}
