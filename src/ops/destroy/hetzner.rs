//! Destroy's steps for a Hetzner Cloud environment: the server, then its firewall, then its SSH
//! key, each found by the environment's label (so a lost state still finds them). Nothing
//! without that label is deleted: not a server of the same name, not an SSH key of the same
//! key material that was in the project before.

use std::time::Duration;

use crate::config::HetznerProvider;
use crate::hetzner::{HetznerClient, HetznerError};
use crate::ops::provision::hz;
use crate::ops::steps::StepRun;
use crate::ops::{OpsError, StepReport};
use crate::retry::Schedule;
use crate::state::EnvironmentState;

/// After a server is deleted, its firewall can stay "in use" for a while.
const WHILE_IN_USE: Schedule = Schedule::within(Duration::from_secs(120), Duration::from_secs(2));
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

/// Steps "connect to Hetzner Cloud", "delete server", "delete firewall", "delete SSH key".
pub(super) async fn remove(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    provider: &HetznerProvider,
) -> Result<Vec<StepReport>, OpsError> {
    if state.id.is_empty() {
        // Provision gives an environment its id before it makes anything: without one, nothing
        // in Hetzner Cloud can be this environment's (and an empty selector value would match
        // other objects).
        return Ok(vec![StepReport {
            step: "delete server".into(),
            changed: false,
            detail: "the environment has no id yet, so nothing in Hetzner Cloud is its".into(),
        }]);
    }
    let selector = hz::selector(&state.id);
    let client = run
        .step(state, "connect to Hetzner Cloud", async |_s| {
            hz::client(provider)
        })
        .await?;
    let mut reports = Vec::new();
    let servers = run
        .step(state, "delete server", async |_s| {
            delete_servers(&client, &selector).await
        })
        .await?;
    reports.push(report("delete server", servers));
    let firewalls = run
        .step(state, "delete firewall", async |_s| {
            delete_firewalls(&client, &selector).await
        })
        .await?;
    reports.push(report("delete firewall", firewalls));
    let keys = run
        .step(state, "delete SSH key", async |_s| {
            let mut gone = Vec::new();
            for key in client.ssh_keys(&selector).await? {
                client.delete_ssh_key(key.id).await?;
                gone.push(key.name);
            }
            Ok::<_, HetznerError>(gone)
        })
        .await?;
    reports.push(report("delete SSH key", keys));
    state.hetzner = None;
    Ok(reports)
}

fn report(step: &str, deleted: Vec<String>) -> StepReport {
    StepReport {
        step: step.into(),
        changed: !deleted.is_empty(),
        detail: if deleted.is_empty() {
            "none with this environment's label".into()
        } else {
            format!("{} deleted", deleted.join(", "))
        },
    }
}

async fn delete_servers(
    client: &HetznerClient,
    selector: &str,
) -> Result<Vec<String>, HetznerError> {
    let mut gone = Vec::new();
    for server in client.servers(selector).await? {
        if let Some(action) = client.delete_server(server.id).await? {
            client
                .wait_actions(&[action], ACTION_TIMEOUT, "deleting the server")
                .await?;
        }
        gone.push(server.name);
    }
    Ok(gone)
}

async fn delete_firewalls(
    client: &HetznerClient,
    selector: &str,
) -> Result<Vec<String>, HetznerError> {
    let mut gone = Vec::new();
    for fw in client.firewalls(selector).await? {
        WHILE_IN_USE
            .retry(
                async |_| client.delete_firewall(fw.id).await,
                |e: &HetznerError| e.code() == Some("resource_in_use"),
            )
            .await?;
        gone.push(fw.name);
    }
    Ok(gone)
}
