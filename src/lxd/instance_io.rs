//! Work inside an instance: running a command (`exec` with its output recorded) and the files
//! API (push, pull, delete). [`crate::host::lxd::LxdHost`] builds the `Host` trait on these.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use super::api::{ExecOutcome, OperationOutcome};
use super::client::{LxdClient, Started, check_status, decode, operation_failed};
use super::error::LxdError;
use super::transport::{self, Body, Transport};

/// The outcome of a command run in an instance.
#[derive(Debug)]
pub struct ExecResult {
    /// Its exit code; 128 + N when signal N killed it; -1 when LXD did not say.
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What the files API found at a path.
#[derive(Debug, PartialEq, Eq)]
pub enum InstancePath {
    /// A regular file, with its contents.
    File(Bytes),
    /// A symbolic link (the files API does not follow it), with its target.
    Symlink(String),
    /// A directory, or anything else that is not a file or a link.
    Other(String),
}

/// Owner, group and mode of a file pushed into an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// How long one wait for a running command lasts before the next: the command itself may run
/// for as long as it needs (a `docker load` of a large archive, an `apt-get install`).
const EXEC_WAIT: Duration = Duration::from_secs(60);

/// The bytes of a path kept as they are in a query (`/`, and what needs no escaping).
const PATH_IN_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn files_url(instance: &str, path: &str) -> String {
    format!(
        "/1.0/instances/{instance}/files?path={}",
        utf8_percent_encode(path, PATH_IN_QUERY)
    )
}

impl<T: Transport> LxdClient<T> {
    /// Writes a file into an instance (replacing what is there), with its owner and mode. The
    /// parent directory must exist. `body` may be a stream: it is sent as it is read.
    pub async fn push_file(
        &self,
        instance: &str,
        path: &str,
        body: Body,
        mode: FileMode,
    ) -> Result<(), LxdError> {
        self.call(
            &format!("writing {path} in instance '{instance}'"),
            Method::POST,
            &files_url(instance, path),
            vec![
                ("x-lxd-type", "file".into()),
                ("x-lxd-uid", mode.uid.to_string()),
                ("x-lxd-gid", mode.gid.to_string()),
                ("x-lxd-mode", format!("{:04o}", mode.mode)),
                ("x-lxd-write", "overwrite".into()),
                // Not a form: LXD would read the body as one while looking for `path`.
                ("content-type", "application/octet-stream".into()),
            ],
            body,
        )
        .await?;
        Ok(())
    }

    /// What is at `path` in an instance, or `None` when nothing is.
    pub async fn pull_file(
        &self,
        instance: &str,
        path: &str,
    ) -> Result<Option<InstancePath>, LxdError> {
        let doing = format!("reading {path} in instance '{instance}'");
        let response = self
            .raw(
                &doing,
                Method::GET,
                &files_url(instance, path),
                Vec::new(),
                transport::empty(),
            )
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check_status(&doing, &response)?;
        Ok(Some(match response.header("x-lxd-type") {
            Some("file") => InstancePath::File(response.body),
            Some("symlink") => {
                InstancePath::Symlink(String::from_utf8_lossy(&response.body).into_owned())
            }
            other => InstancePath::Other(other.unwrap_or("unknown").to_string()),
        }))
    }

    /// Deletes a file in an instance; a missing one is fine. Returns whether it existed.
    pub async fn delete_file(&self, instance: &str, path: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting {path} in instance '{instance}'"),
            &files_url(instance, path),
        )
        .await
    }

    /// Runs a command (as root, LXD's default environment, stdin at end-of-file) in an
    /// instance, waits for it however long it runs, and collects its output.
    pub async fn exec(&self, instance: &str, command: &[&str]) -> Result<ExecResult, LxdError> {
        let doing = format!("running `{}` in instance '{instance}'", command.join(" "));
        let body = serde_json::to_vec(&json!({
            "command": command,
            "record-output": true,
            "wait-for-websocket": false,
            "interactive": false,
        }))
        .expect("json serializes");
        let started = self
            .start(
                &doing,
                Method::POST,
                &format!("/1.0/instances/{instance}/exec"),
                vec![("content-type", "application/json".into())],
                transport::bytes(body),
            )
            .await?;
        let op = match started {
            Started::Done(metadata) => {
                return self.exec_result(&doing, decode(&doing, metadata)?).await;
            }
            Started::Operation(id) => loop {
                let op = self.operation(&doing, &id, EXEC_WAIT).await?;
                if op.outcome() != OperationOutcome::Unfinished {
                    break op;
                }
            },
        };
        // LXD reports a command that exits 126 or 127 as a failed operation ("Command not
        // found"), with its exit code and output all the same: it ran, and its exit code says
        // how it ended. Only a failure without them is LXD's own.
        let outcome = op
            .metadata
            .clone()
            .and_then(|m| serde_json::from_value::<ExecOutcome>(m).ok())
            .filter(|o| o.exit_code >= 0);
        match (op.outcome(), outcome) {
            (_, Some(outcome)) => self.exec_result(&doing, outcome).await,
            (OperationOutcome::Failed, None) => Err(operation_failed(&doing, op)),
            (_, None) => Err(LxdError::Decode {
                doing,
                message: "a finished command without an exit code".into(),
            }),
        }
    }

    /// A finished command's exit code and recorded output.
    async fn exec_result(&self, doing: &str, outcome: ExecOutcome) -> Result<ExecResult, LxdError> {
        Ok(ExecResult {
            exit_code: outcome.exit_code,
            stdout: self.take_log(doing, outcome.output.get("1")).await?,
            stderr: self.take_log(doing, outcome.output.get("2")).await?,
        })
    }

    /// Reads one of a finished command's recorded outputs, then deletes it.
    async fn take_log(&self, doing: &str, log: Option<&String>) -> Result<Vec<u8>, LxdError> {
        let Some(log) = log else {
            return Ok(Vec::new());
        };
        let response = self
            .raw(doing, Method::GET, log, Vec::new(), transport::empty())
            .await?;
        check_status(doing, &response)?;
        // Only a leftover in LXD's log directory if it fails.
        let _ = self
            .raw(doing, Method::DELETE, log, Vec::new(), transport::empty())
            .await;
        Ok(response.body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_in_the_query() {
        assert_eq!(
            files_url("web", "/root/a b/x&y?z"),
            "/1.0/instances/web/files?path=/root/a%20b/x%26y%3Fz"
        );
        assert_eq!(
            files_url("web", "/etc/ssh/sshd_config.d/10-torrust-port.conf"),
            "/1.0/instances/web/files?path=/etc/ssh/sshd_config.d/10-torrust-port.conf"
        );
    }
}
