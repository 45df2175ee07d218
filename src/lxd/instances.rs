//! Instances: reading one, its state and log, creating, starting and stopping, deleting; and
//! waiting for the operations left running on it.

use hyper::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;

use super::api::{Instance, InstanceState, NewInstance, Operations, StateAction};
use super::client::{LxdClient, check_status};
use super::error::LxdError;
use super::transport::{self, Transport};

/// What a query value escapes: all but letters, digits, `-`, `_` and `.` (LXD's name characters).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

impl<T: Transport> LxdClient<T> {
    pub async fn instance(&self, name: &str) -> Result<Option<Instance>, LxdError> {
        self.get_opt(
            &format!("reading instance '{name}'"),
            &format!("/1.0/instances/{name}"),
        )
        .await
    }

    /// The tail (last `lines` lines) of one of an instance's log files, e.g. `lxc.log`: the
    /// place LXD's start/stop failures are explained. `None` when the file is not there.
    pub async fn instance_log_tail(
        &self,
        name: &str,
        file: &str,
        lines: usize,
    ) -> Result<Option<String>, LxdError> {
        let doing = format!("reading log '{file}' of instance '{name}'");
        let path = format!("/1.0/instances/{name}/logs/{file}");
        let response = self
            .raw(&doing, Method::GET, &path, Vec::new(), transport::empty())
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // An error envelope: surface LXD's own text.
        check_status(&doing, &response)?;
        let text = String::from_utf8_lossy(&response.body);
        let all: Vec<&str> = text.lines().collect();
        Ok(Some(all[all.len().saturating_sub(lines)..].join("\n")))
    }

    /// Waits for the background operations still running on an instance (a create, start or
    /// stop that an interrupted command left behind). Returns how many there were.
    pub async fn wait_instance_operations(&self, name: &str) -> Result<usize, LxdError> {
        let doing = format!("listing the operations of instance '{name}'");
        let ops: Operations = self.get(&doing, "/1.0/operations?recursion=1").await?;
        let ids: Vec<(String, String)> = ops
            .running
            .into_iter()
            .filter(|op| !op.id.is_empty() && op.touches_instance(name))
            .map(|op| {
                let description = if op.description.is_empty() {
                    "?".to_string()
                } else {
                    op.description
                };
                (op.id, description)
            })
            .collect();
        for (id, description) in &ids {
            tracing::info!("waiting for LXD to finish '{description}' on instance '{name}'");
            let doing = format!("waiting for '{description}' on instance '{name}'");
            match self
                .wait_operation(&doing, id, self.operation_timeout)
                .await
            {
                // Gone already, or failed: the caller reads the instance's state next.
                Ok(_) | Err(LxdError::Operation { .. } | LxdError::Busy { .. }) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids.len())
    }

    /// Creates an instance (waits for the image download and unpack).
    pub async fn create_instance(&self, request: &NewInstance) -> Result<(), LxdError> {
        self.create_instance_on(request, None).await
    }

    /// Creates an instance on a cluster member (`target`, or `@group` for a cluster group), or
    /// where the cluster chooses (`None`). Send a target only to a cluster: a standalone LXD
    /// refuses it (400 "Target only allowed when clustered").
    pub async fn create_instance_on(
        &self,
        request: &NewInstance,
        target: Option<&str>,
    ) -> Result<(), LxdError> {
        let path = match target {
            Some(t) => format!(
                "/1.0/instances?target={}",
                percent_encoding::utf8_percent_encode(t, QUERY_VALUE)
            ),
            None => "/1.0/instances".to_string(),
        };
        let doing = match target {
            Some(t) => format!("creating instance '{}' on cluster member {t}", request.name),
            None => format!("creating instance '{}'", request.name),
        };
        self.send_json(&doing, Method::POST, &path, request).await?;
        Ok(())
    }

    /// Whether a cluster has a member of this name.
    pub async fn cluster_member_exists(&self, name: &str) -> Result<bool, LxdError> {
        let member: Option<serde_json::Value> = self
            .get_opt(
                &format!("reading cluster member '{name}'"),
                &format!("/1.0/cluster/members/{name}"),
            )
            .await?;
        Ok(member.is_some())
    }

    pub async fn instance_state(&self, name: &str) -> Result<InstanceState, LxdError> {
        self.get(
            &format!("reading the state of instance '{name}'"),
            &format!("/1.0/instances/{name}/state"),
        )
        .await
    }

    /// `start`, `stop` (with `force`), `restart`.
    pub async fn change_state(
        &self,
        name: &str,
        action: StateAction,
        force: bool,
    ) -> Result<(), LxdError> {
        self.send_json(
            &format!("{} instance '{name}'", action.doing()),
            Method::PUT,
            &format!("/1.0/instances/{name}/state"),
            &json!({ "action": action, "timeout": 30, "force": force }),
        )
        .await?;
        Ok(())
    }

    /// Sets config keys of an instance, keeping the others (`PATCH`).
    pub async fn set_instance_config(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<(), LxdError> {
        self.send_json(
            &format!("updating the config of instance '{name}'"),
            Method::PATCH,
            &format!("/1.0/instances/{name}"),
            &json!({ "config": config }),
        )
        .await?;
        Ok(())
    }

    /// Deletes an instance; a missing one is fine. Returns whether it existed.
    pub async fn delete_instance(&self, name: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting instance '{name}'"),
            &format!("/1.0/instances/{name}"),
        )
        .await
    }
}
