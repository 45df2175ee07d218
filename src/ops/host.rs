//! The environment's host as every command reaches it: its SSH target, connecting to it, and
//! the lifecycle preconditions ("has a host", "is configured", "is released", "was created by
//! provision" or "was registered") in one place, each refusal with the command that fixes it.

use std::time::Duration;

use super::OpsError;
use super::steps::StepRun;
use crate::host::Host;
use crate::retry::Schedule;
use crate::ssh::{ConnectOptions, PassphraseSource, Session, SshError, Target};
use crate::state::{DataDir, EnvironmentState, HostRecord, HostSetup, Lifecycle};

/// The SSH target for an environment's host at `ip:port`.
pub fn ssh_target(data: &DataDir, state: &EnvironmentState, ip: &str, port: u16) -> Target {
    Target {
        host: ip.to_string(),
        port,
        user: state.config.ssh_credentials.username.to_string(),
        private_key: state.private_key_path().unwrap_or_default(),
        known_hosts: data.known_hosts(&state.name),
    }
}

/// Connects to the environment's host (one connection per command), retrying transient
/// failures for 30 s.
pub async fn connect(
    data: &DataDir,
    state: &EnvironmentState,
    host: &HostRecord,
) -> Result<Session, SshError> {
    connect_within(data, state, host, Duration::from_secs(30)).await
}

/// Connects to the environment's host, retrying transient failures for `retry`.
pub async fn connect_within(
    data: &DataDir,
    state: &EnvironmentState,
    host: &HostRecord,
    retry: Duration,
) -> Result<Session, SshError> {
    let target = ssh_target(data, state, &host.ip, host.ssh_port);
    let options = ConnectOptions {
        retry_deadline: retry,
        passphrase: PassphraseSource::default(),
        // The state's record is the pin when known_hosts was lost.
        expected_host_key: host.host_key.clone(),
        ..ConnectOptions::default()
    };
    Session::connect(&target, &options).await
}

/// Connects for `command`. Outside a dry run, a failure is recorded in the state like a failed
/// step (`connect`), with its trace file.
pub async fn connect_for(
    data: &DataDir,
    state: &mut EnvironmentState,
    host: &HostRecord,
    command: &str,
    dry_run: bool,
    retry: Duration,
) -> Result<Session, OpsError> {
    match connect_within(data, state, host, retry).await {
        Ok(session) => Ok(session),
        Err(e) if dry_run => Err(OpsError::typed(e)),
        Err(e) => {
            let mut run = StepRun::begin(data, state, command)?;
            let failed = run
                .step(state, "connect", async |_s| Err::<(), SshError>(e))
                .await;
            Err(failed.expect_err("the step returns the connection error"))
        }
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
    let started = tokio::time::Instant::now();
    let auth_deadline = auth_grace.unwrap_or(timeout).min(timeout);
    Schedule::within(auth_deadline, Duration::from_millis(300))
        .retry(
            async |_| {
                let options = ConnectOptions {
                    connect_timeout: Duration::from_secs(10),
                    retry_deadline: timeout.saturating_sub(started.elapsed()),
                    retry_max_interval: Duration::from_millis(500),
                    passphrase: PassphraseSource::default(),
                    ..ConnectOptions::default()
                };
                Session::connect(target, &options).await
            },
            // The key may not be installed yet (cloud-init still running).
            |e| matches!(e, SshError::AuthRejected { .. }),
        )
        .await
}

/// The host of an environment that has one with a pinned key (provisioned or registered), for
/// `configure`.
pub fn provisioned_host(state: &EnvironmentState) -> Result<HostRecord, OpsError> {
    let env = &state.name;
    match (&state.host, state.lifecycle) {
        (_, Lifecycle::Destroyed) => Err(OpsError::Refused(format!(
            "environment '{env}' is destroyed; provision it again first: \
             `torrust-tracker-deployer provision {env}`"
        ))),
        (Some(h), _) if !h.ip.is_empty() && h.host_key.is_some() => Ok(h.clone()),
        _ => Err(OpsError::Refused(format!(
            "environment '{env}' has no host yet (state '{}'); create one with \
             `torrust-tracker-deployer provision {env}` (or adopt one with `register`)",
            state.lifecycle
        ))),
    }
}

/// The environment's host and what configure found there, or why `command` cannot go on.
pub fn configured_host(
    state: &EnvironmentState,
    command: &str,
) -> Result<(HostRecord, HostSetup), OpsError> {
    let env = &state.name;
    match (&state.host, &state.host_setup, state.lifecycle) {
        (_, _, Lifecycle::Destroyed) | (None, _, _) => Err(OpsError::Refused(format!(
            "environment '{env}' has no host (state '{}'); run `torrust-tracker-deployer deploy {env}` \
             (or provision and configure) first",
            state.lifecycle
        ))),
        (Some(_), None, _) => Err(OpsError::Refused(format!(
            "environment '{env}' is not configured yet, so `{command}` has no Docker to use; run \
             `torrust-tracker-deployer configure {env}` first"
        ))),
        (Some(h), Some(s), _) => Ok((h.clone(), s.clone())),
    }
}

/// Like [`configured_host`], and the stack must have been released (for `run`).
pub fn released_host(
    state: &EnvironmentState,
    command: &str,
) -> Result<(HostRecord, HostSetup), OpsError> {
    let found = configured_host(state, command)?;
    if state.lifecycle < Lifecycle::Released {
        return Err(OpsError::Refused(format!(
            "environment '{}' has not been released yet (state '{}'); run \
             `torrust-tracker-deployer release {}` first",
            state.name, state.lifecycle, state.name
        )));
    }
    Ok(found)
}

/// `provision` creates LXD instances only: it leaves a registered host alone.
pub fn not_registered(state: &EnvironmentState) -> Result<(), OpsError> {
    match &state.host {
        Some(host) if host.registered => Err(OpsError::Refused(format!(
            "environment '{env}' uses a registered host ({}); provision only creates LXD instances. \
             Run `torrust-tracker-deployer configure {env}` next",
            host.ip,
            env = state.name
        ))),
        _ => Ok(()),
    }
}

/// `register` adopts a host only where provision has not created one (or it was destroyed).
pub fn no_provisioned_instance(state: &EnvironmentState) -> Result<(), OpsError> {
    match &state.host {
        Some(host) if !host.registered && state.lifecycle != Lifecycle::Destroyed => {
            Err(OpsError::Refused(format!(
                "environment '{env}' already has an LXD instance created by provision ({}); \
                 run `torrust-tracker-deployer destroy {env}` first to register another host",
                host.instance.as_deref().unwrap_or(&host.ip),
                env = state.name
            )))
        }
        _ => Ok(()),
    }
}

/// The connection to the environment's host for a command that may need one for several
/// things (`test`: the API, Prometheus, Grafana and Caddy's CA through it): the caller's
/// connection when it has one (deploy's), else one opened at the first use and shared by the
/// rest. [`close`](Self::close) closes only a connection opened here.
pub struct HostOnDemand<'a> {
    data: &'a DataDir,
    state: &'a EnvironmentState,
    given: Option<&'a dyn Host>,
    opened: tokio::sync::OnceCell<Session>,
}

impl<'a> HostOnDemand<'a> {
    pub fn new(
        data: &'a DataDir,
        state: &'a EnvironmentState,
        given: Option<&'a dyn Host>,
    ) -> Self {
        HostOnDemand {
            data,
            state,
            given,
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// The connection: the given one, the one opened earlier, or a new one (retrying transient
    /// failures for 30 s). Refused when the environment has no host.
    pub async fn get(&self) -> Result<&dyn Host, OpsError> {
        if let Some(host) = self.given {
            return Ok(host);
        }
        let session = self
            .opened
            .get_or_try_init(async || {
                let record = self.state.host.as_ref().ok_or_else(|| {
                    OpsError::Refused(format!("environment '{}' has no host", self.state.name))
                })?;
                connect(self.data, self.state, record)
                    .await
                    .map_err(OpsError::typed)
            })
            .await?;
        Ok(session)
    }

    /// Closes the connection if it was opened here.
    pub async fn close(self) {
        if let Some(session) = self.opened.into_inner() {
            session.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn state(lifecycle: Lifecycle, host: Option<HostRecord>, setup: bool) -> EnvironmentState {
        let file = config::minimal_test_file("demo", "Adm1n-T0ken-for-host-test");
        let loaded = config::parse(&file.to_string(), Path::new("/")).expect("valid test file");
        let mut state = EnvironmentState::new(loaded.config, None);
        state.lifecycle = lifecycle;
        state.host = host;
        state.host_setup = setup.then(|| HostSetup {
            os: "debian-12".into(),
            compose_command: "docker compose".into(),
            compose_version: "2.20.0".into(),
            firewall: "active".into(),
            warnings: Vec::new(),
            configured_at: chrono::Utc::now(),
        });
        state
    }

    fn lxd_host(key: Option<&str>) -> Option<HostRecord> {
        Some(HostRecord {
            ip: "10.1.2.3".into(),
            ssh_port: 22,
            host_key: key.map(str::to_string),
            instance: Some("torrust-tracker-vm-demo".into()),
            profile: Some("torrust-profile-demo".into()),
            registered: false,
            cloud_init: None,
        })
    }

    fn registered_host() -> Option<HostRecord> {
        Some(HostRecord {
            instance: None,
            profile: None,
            registered: true,
            cloud_init: None,
            ..lxd_host(Some("SHA256:abc")).unwrap()
        })
    }

    fn refusal(result: Result<impl std::fmt::Debug, OpsError>) -> String {
        match result {
            Err(e @ OpsError::Refused(_)) => e.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn configure_needs_a_host_with_a_pinned_key() {
        let st = state(Lifecycle::Provisioned, lxd_host(Some("SHA256:abc")), false);
        assert_eq!(provisioned_host(&st).unwrap().ip, "10.1.2.3");

        let no_key = state(Lifecycle::Created, lxd_host(None), false);
        let why = refusal(provisioned_host(&no_key));
        assert!(why.contains("has no host yet (state 'created')"), "{why}");
        assert!(
            why.contains("torrust-tracker-deployer provision demo"),
            "{why}"
        );

        let destroyed = state(Lifecycle::Destroyed, lxd_host(Some("k")), false);
        assert!(refusal(provisioned_host(&destroyed)).contains("is destroyed"));
    }

    #[test]
    fn release_needs_a_configured_host_and_run_a_released_one() {
        let none = state(Lifecycle::Created, None, false);
        let why = refusal(configured_host(&none, "release"));
        assert!(why.contains("has no host"), "{why}");
        assert!(why.contains("deploy demo"), "{why}");

        let unconfigured = state(Lifecycle::Provisioned, lxd_host(Some("k")), false);
        let why = refusal(configured_host(&unconfigured, "release"));
        assert!(why.contains("`release` has no Docker"), "{why}");
        assert!(why.contains("configure demo"), "{why}");

        let configured = state(Lifecycle::Configured, lxd_host(Some("k")), true);
        let (host, setup) = configured_host(&configured, "release").unwrap();
        assert_eq!(
            (host.ip.as_str(), setup.compose_command.as_str()),
            ("10.1.2.3", "docker compose")
        );
        let why = refusal(released_host(&configured, "run"));
        assert!(
            why.contains("has not been released yet (state 'configured')"),
            "{why}"
        );
        assert!(why.contains("release demo"), "{why}");

        let released = state(Lifecycle::Released, lxd_host(Some("k")), true);
        assert!(released_host(&released, "run").is_ok());
        let destroyed = state(Lifecycle::Destroyed, lxd_host(Some("k")), true);
        assert!(refusal(released_host(&destroyed, "run")).contains("has no host"));
    }

    #[test]
    fn provision_and_register_do_not_take_each_others_host() {
        let registered = state(Lifecycle::Provisioned, registered_host(), false);
        let why = refusal(not_registered(&registered));
        assert!(why.contains("uses a registered host (10.1.2.3)"), "{why}");
        assert!(no_provisioned_instance(&registered).is_ok());

        let provisioned = state(Lifecycle::Provisioned, lxd_host(Some("k")), false);
        assert!(not_registered(&provisioned).is_ok());
        let why = refusal(no_provisioned_instance(&provisioned));
        assert!(why.contains("(torrust-tracker-vm-demo)"), "{why}");
        assert!(why.contains("destroy demo"), "{why}");

        let destroyed = state(Lifecycle::Destroyed, lxd_host(Some("k")), false);
        assert!(no_provisioned_instance(&destroyed).is_ok());
        let fresh = state(Lifecycle::Created, None, false);
        assert!(not_registered(&fresh).is_ok() && no_provisioned_instance(&fresh).is_ok());
    }

    #[test]
    fn the_target_is_the_environments_user_key_and_known_hosts() {
        let st = state(Lifecycle::Provisioned, lxd_host(Some("k")), false);
        let data = DataDir::new("/var/lib/deployer-test");
        let target = ssh_target(&data, &st, "10.1.2.3", 2222);
        assert_eq!((target.host.as_str(), target.port), ("10.1.2.3", 2222));
        assert_eq!(target.user, "torrust");
        assert_eq!(target.known_hosts, data.known_hosts("demo"));
    }
}
