//! `register`: adopt an existing host instead of provisioning one. After a real SSH check it
//! pins the host's key and records the host as registered, which `destroy` never touches.

use std::time::Duration;

use serde::Serialize;

use super::OpsError;
use super::host::{self, connect_until, ssh_target};
use super::steps::StepRun;
use crate::ssh::SshError;
use crate::state::{DataDir, HostRecord, Lifecycle};
use crate::tasks::{TaskError, cloud_init};

#[derive(Debug, Serialize)]
pub struct Registered {
    pub name: String,
    pub ip: String,
    pub ssh_port: u16,
    pub host_key: String,
}

/// Adopts the host at `ip` (SSH on `port`, default the environment's) for environment `env`.
pub async fn register(
    data: &DataDir,
    env: &str,
    ip: &str,
    port: Option<u16>,
    lock_wait: Duration,
) -> Result<Registered, OpsError> {
    let _lock = data.lock(env, "register", lock_wait)?;
    let mut state = data.load(env)?;
    host::no_provisioned_instance(&state)?;
    let port = port.unwrap_or(state.config.ssh_credentials.port.get());
    let target = ssh_target(data, &state, ip, port);
    let mut run = StepRun::begin(data, &mut state, "register")?;
    let host_key = run
        .step(&mut state, "check SSH", async |_s| {
            let session = connect_until(&target, Duration::from_secs(30), None).await?;
            cloud_init::check_shell(&session).await?;
            let key = session.host_key_fingerprint().to_string();
            session.close().await;
            Ok::<_, TaskError>(key)
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
            cloud_init: None,
        });
        Ok::<_, SshError>(())
    })
    .await?;
    // A host registered again keeps how far the environment got.
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
