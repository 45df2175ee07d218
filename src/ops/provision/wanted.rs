//! What provision works from: read from the environment (and the host key made here) before
//! the first step, and the checks and records made from it.

use super::{ProvisionOptions, step};
use crate::config::{LxdProvider, SshCredentials};
use crate::ops::ownership::{self, Action, ForeignError, Found};
use crate::ops::{OpsError, keys};
use crate::secret::Secret;
use crate::state::{DataDir, EnvironmentState, HostRecord};

/// What provision works from, read from the environment before the first step. `P` is the
/// provider's section of the environment file (LXD or Hetzner).
pub(super) struct Wanted<'a, P = LxdProvider> {
    pub(super) data: &'a DataDir,
    pub(super) env: &'a str,
    pub(super) options: &'a ProvisionOptions,
    pub(super) provider: P,
    pub(super) instance: String,
    pub(super) creds: SshCredentials,
    pub(super) public_key: String,
    /// A previous run was stopped while LXD was creating the instance.
    pub(super) interrupted_create: bool,
    /// The environment's id, marked on the instance and profile ([`super::ownership`]).
    pub(super) owner_id: String,
    /// The host key pair made here for the instance: OpenSSH private key, public key line.
    pub(super) host_key: (Secret, String),
    /// The state records these as the environment's (before ids existed, that was all).
    pub(super) recorded_instance: bool,
    pub(super) recorded_profile: bool,
}

/// Reads what provision needs from the environment: its provider section (`provider`, and
/// for LXD the profile's name), instance name, SSH credentials and public key.
pub(super) fn wanted<'a, P>(
    data: &'a DataDir,
    env: &'a str,
    options: &'a ProvisionOptions,
    state: &EnvironmentState,
    provider: P,
    profile: Option<&str>,
) -> Result<Wanted<'a, P>, OpsError> {
    let public_key_path = state.public_key_path().unwrap_or_default();
    // Parsed: one key on one line, whatever else the file holds is refused.
    let public_key = crate::ssh::read_public_key(&public_key_path).map_err(OpsError::typed)?;
    let host_key_path = data.host_key(env);
    keys::ensure_ed25519(&host_key_path, &format!("torrust-deployer-host-{env}")).map_err(
        OpsError::io(format!(
            "cannot make the host key {}",
            host_key_path.display()
        )),
    )?;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(OpsError::io(format!(
            "cannot read the host key {}",
            path.display()
        )))
    };
    let host_key = (
        Secret::new(read(&host_key_path)?),
        read(&host_key_path.with_extension("pub"))?,
    );
    Ok(Wanted {
        data,
        env,
        options,
        host_key,
        instance: state.config.instance_name(),
        creds: state.config.ssh_credentials.clone(),
        public_key,
        interrupted_create: interrupted_while_creating(state),
        owner_id: state.id.clone(),
        recorded_instance: state.host.as_ref().and_then(|h| h.instance.as_deref())
            == Some(state.config.instance_name().as_str()),
        recorded_profile: profile.is_some()
            && state.host.as_ref().and_then(|h| h.profile.as_deref()) == profile,
        provider,
    })
}

impl<P> Wanted<'_, P> {
    /// [`ownership::check`] of an existing object before adopting it: whether to mark it.
    pub(super) fn check_owner(
        &self,
        what: &'static str,
        name: &str,
        found: Option<&str>,
        recorded: bool,
    ) -> Result<bool, ForeignError> {
        let found = Found {
            what,
            name,
            id: found,
            recorded,
        };
        ownership::check(
            found,
            self.env,
            &self.owner_id,
            Action::Adopt,
            self.options.adopt_foreign,
        )
    }
}

/// Whether the last provision stopped (was killed, or failed) after writing the profile and
/// before the instance was created: LXD may then hold a half-created instance.
pub(super) fn interrupted_while_creating(state: &EnvironmentState) -> bool {
    state.unfinished_run().is_some_and(|r| {
        r.command == "provision"
            && !r.completed_steps.iter().any(|s| s == step::CREATE_INSTANCE)
            && r.completed_steps.iter().any(|s| s == step::ENSURE_PROFILE)
    })
}

/// The host record of an LXD instance that provision created; the address and host key are
/// filled in as provision learns them.
pub(super) fn lxd_host_record(w: &Wanted<'_>) -> HostRecord {
    HostRecord {
        ip: String::new(),
        ssh_port: w.creds.port.get(),
        host_key: None,
        instance: Some(w.instance.clone()),
        profile: Some(w.provider.profile_name.clone()),
        registered: false,
        cloud_init: None,
    }
}
