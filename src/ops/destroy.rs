//! `destroy`: remove what provision created — the LXD instance (stopped cleanly first) and
//! its profile, or the Hetzner Cloud server, firewall and SSH key (`destroy/hetzner.rs`) —
//! forget the pinned host key, and mark the environment destroyed. Missing pieces
//! are fine, so an interrupted destroy is finished by running it again. A registered host is
//! never stopped or deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

mod hetzner;

use super::lxd_host::WHILE_BUSY;
use super::lxd_remote;
use super::ownership::{self, Action, ForeignError, Found, OWNER_KEY};
use super::steps::StepRun;
use super::{OpsError, StepReport};
use crate::config::{LxdProvider, Provider};
use crate::error_kind::{Classify, ErrorKind};
use crate::lxd::{InstanceStatus, LxdClient, LxdError, LxdTransport, StateAction};
use crate::state::{DataDir, EnvironmentState, Lifecycle};

#[derive(Debug, Serialize)]
pub struct Destroyed {
    pub name: String,
    pub steps: Vec<StepReport>,
}

/// Removes the environment's instance and profile (only those that carry its id, or that its
/// state records, unless `delete_foreign`), and forgets the host key.
pub async fn destroy(
    data: &DataDir,
    env: &str,
    delete_foreign: bool,
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
    } else {
        match state.config.provider.clone() {
            Provider::Lxd(provider) => {
                reports.extend(
                    remove_from_lxd(&mut run, &mut state, data, &provider, delete_foreign).await?,
                );
            }
            Provider::Hetzner(provider) => {
                reports.extend(hetzner::remove(&mut run, &mut state, &provider).await?);
            }
        }
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

/// Steps "connect to LXD", "delete instance" and "delete profile": the instance and profile
/// the state names (or, if it names none, the ones the configuration would have created).
async fn remove_from_lxd(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    data: &DataDir,
    provider: &LxdProvider,
    delete_foreign: bool,
) -> Result<Vec<StepReport>, OpsError> {
    let owner = Ownership {
        env: state.name.clone(),
        id: state.id.clone(),
        instance: state.host.as_ref().and_then(|h| h.instance.clone()),
        profile: state.host.as_ref().and_then(|h| h.profile.clone()),
        force: delete_foreign,
    };
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
        .step(state, "connect to LXD", async |s| {
            lxd_remote::connect(provider, data, s).await
        })
        .await?;
    let deleted = run
        .step(state, "delete instance", async |_s| {
            delete_instance(&client, &instance, &owner).await
        })
        .await?;
    let instance_report = StepReport {
        step: "delete instance".into(),
        changed: deleted,
        detail: format!("{instance} {}", if deleted { "deleted" } else { "absent" }),
    };
    let deleted = run
        .step(state, "delete profile", async |_s| {
            delete_profile(&client, &profile, &owner).await
        })
        .await?;
    let profile_report = StepReport {
        step: "delete profile".into(),
        changed: deleted,
        detail: format!("{profile} {}", if deleted { "deleted" } else { "absent" }),
    };
    let mut reports = vec![instance_report, profile_report];
    // Last: once its certificate is gone, LXD no longer answers this client.
    let forgot = run
        .step(state, "remove client certificate", async |s| {
            lxd_remote::forget_client(&client, provider, s).await
        })
        .await?;
    if let Some(removed) = forgot {
        reports.push(StepReport {
            step: "remove client certificate".into(),
            changed: removed,
            detail: format!(
                "{} {}",
                client.endpoint(),
                if removed {
                    "no longer trusts this environment's certificate"
                } else {
                    "did not hold it"
                }
            ),
        });
    }
    Ok(reports)
}

/// Stops the instance (cleanly, or by force if that fails) and deletes it, waiting while LXD
/// is busy with it. Returns whether it existed.
/// Whose objects `destroy` may delete: those with the environment's id, or without an id
/// and recorded in its state (made before ids), or any with `force`.
struct Ownership {
    env: String,
    id: String,
    instance: Option<String>,
    profile: Option<String>,
    force: bool,
}

impl Ownership {
    fn check(
        &self,
        what: &'static str,
        name: &str,
        config: &BTreeMap<String, String>,
        recorded: Option<&String>,
    ) -> Result<(), ForeignError> {
        let found = Found {
            what,
            name,
            id: config.get(OWNER_KEY).map(String::as_str),
            recorded: recorded.is_some_and(|r| r == name),
        };
        ownership::check(found, &self.env, &self.id, Action::Delete, self.force).map(|_| ())
    }
}

/// Why an object was not deleted.
#[derive(Debug, thiserror::Error)]
enum DeleteError {
    #[error(transparent)]
    Lxd(#[from] LxdError),
    #[error(transparent)]
    Foreign(#[from] ForeignError),
}

impl Classify for DeleteError {
    fn kind(&self) -> ErrorKind {
        match self {
            DeleteError::Lxd(e) => e.kind(),
            DeleteError::Foreign(e) => e.kind(),
        }
    }
}

async fn delete_profile(
    client: &LxdClient<LxdTransport>,
    profile: &str,
    owner: &Ownership,
) -> Result<bool, DeleteError> {
    let Some(found) = client.profile(profile).await? else {
        return Ok(false);
    };
    owner.check(
        "profile",
        profile,
        &found.spec.config,
        owner.profile.as_ref(),
    )?;
    Ok(client.delete_profile(profile).await?)
}

async fn delete_instance(
    client: &LxdClient<LxdTransport>,
    instance: &str,
    owner: &Ownership,
) -> Result<bool, DeleteError> {
    let Some(found) = client.instance(instance).await? else {
        return Ok(false);
    };
    owner.check("instance", instance, &found.config, owner.instance.as_ref())?;
    if client.instance_state(instance).await?.status != InstanceStatus::Stopped {
        // A clean shutdown first; force only if it does not stop in time.
        if let Err(e) = client
            .change_state(instance, StateAction::Stop, false)
            .await
            && client.instance_state(instance).await?.status != InstanceStatus::Stopped
        {
            tracing::info!("clean stop of '{instance}' failed ({e}); forcing it");
            client
                .change_state(instance, StateAction::Stop, true)
                .await?;
        }
    }
    Ok(WHILE_BUSY
        .retry(
            async |_| client.delete_instance(instance).await,
            LxdError::is_busy,
        )
        .await?)
}
