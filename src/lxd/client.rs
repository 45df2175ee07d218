//! LXD API calls: envelopes, background operations, and the resources the deployer uses.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::transport::{self, Body, Transport};

#[derive(Debug, thiserror::Error)]
pub enum LxdError {
    #[error(
        "no LXD socket found (looked at {}).\n  {}",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if *configured { "Check `provider.socket_path` in the environment file" }
        else { "Install and start LXD (`provisioning/host/prepare-lxd-host.sh` does both), or set `provider.socket_path`" }
    )]
    NoSocket {
        looked: Vec<PathBuf>,
        configured: bool,
    },
    #[error("cannot reach LXD at {endpoint} while {doing}: {message}.\n  {fix}")]
    Unreachable {
        endpoint: String,
        doing: String,
        message: String,
        fix: String,
    },
    #[error("LXD refused {doing}: {message} (HTTP {status})")]
    Api {
        doing: String,
        status: u16,
        message: String,
    },
    #[error("LXD operation for {doing} failed: {message}")]
    Operation { doing: String, message: String },
    #[error(
        "LXD did not finish {doing} within {secs} s; the operation may still be running in LXD.\n  \
         Run the command again: it carries on (for provision, `--lxd-timeout SECONDS` allows more \
         time, e.g. for a large image download)"
    )]
    Timeout { doing: String, secs: u64 },
    #[error("unexpected answer from LXD while {doing}: {message}")]
    Decode { doing: String, message: String },
}

impl crate::error_kind::Classify for LxdError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            LxdError::NoSocket { .. } | LxdError::Unreachable { .. } => ErrorKind::LxdUnreachable,
            LxdError::Timeout { .. } => ErrorKind::LxdTimeout,
            LxdError::Api { .. } | LxdError::Operation { .. } | LxdError::Decode { .. } => {
                ErrorKind::LxdFailed
            }
        }
    }
}

impl LxdError {
    /// LXD answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LxdError::Api { status: 404, .. })
    }
}

/// The envelope every LXD response comes in.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_code: u16,
}

/// A background operation, as `/1.0/operations/<id>` reports it.
#[derive(Debug, Deserialize)]
struct Operation {
    #[serde(default)]
    status_code: u16,
    #[serde(default)]
    err: String,
    #[serde(default)]
    metadata: Option<Value>,
}

/// The outcome of a command run in an instance.
#[derive(Debug)]
pub struct ExecResult {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// An instance's runtime state.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceState {
    pub status: String,
    #[serde(default)]
    pub network: Option<serde_json::Map<String, Value>>,
}

impl InstanceState {
    /// The first global IPv4 address of `nic` (read per interface: once Docker runs inside,
    /// docker0 and br-* have addresses too).
    pub fn ipv4(&self, nic: &str) -> Option<String> {
        let addresses = self
            .network
            .as_ref()?
            .get(nic)?
            .get("addresses")?
            .as_array()?;
        addresses
            .iter()
            .find(|a| a["family"] == "inet" && a["scope"] == "global")
            .and_then(|a| a["address"].as_str())
            .map(str::to_string)
    }
}

/// An LXD API client over some [`Transport`], optionally scoped to a project.
pub struct LxdClient<T: Transport> {
    transport: T,
    project: Option<String>,
    /// How long to wait for any one background operation.
    pub operation_timeout: Duration,
}

impl<T: Transport> LxdClient<T> {
    pub fn new(transport: T, project: Option<String>) -> Self {
        Self {
            transport,
            project,
            operation_timeout: Duration::from_secs(300),
        }
    }

    pub fn endpoint(&self) -> String {
        self.transport.endpoint()
    }

    fn url(&self, path: &str) -> String {
        match &self.project {
            Some(p) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}project={p}")
            }
            None => path.to_string(),
        }
    }

    /// Sends a request and unwraps the envelope: sync metadata, or, for async answers, waits
    /// for the operation and returns its metadata.
    async fn call(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Value, LxdError> {
        let (status, bytes) = self
            .transport
            .send(method, &self.url(path), headers, body)
            .await
            .map_err(|e| self.unreachable(doing, &e.0))?;
        let envelope = parse_envelope(doing, status, &bytes)?;
        match envelope.kind.as_str() {
            "sync" => Ok(envelope.metadata),
            "async" => {
                let id = envelope
                    .operation
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| LxdError::Decode {
                        doing: doing.to_string(),
                        message: "async answer without an operation".into(),
                    })?
                    .to_string();
                self.wait_operation(doing, &id, self.operation_timeout)
                    .await
            }
            other => Err(LxdError::Decode {
                doing: doing.to_string(),
                message: format!("unknown response type '{other}'"),
            }),
        }
    }

    fn unreachable(&self, doing: &str, message: &str) -> LxdError {
        let fix = if message.contains("Permission denied") {
            "Run as root or as a member of the `lxd` group (`usermod -aG lxd $USER`, then log in again)"
        } else if message.contains("Connection refused") || message.contains("No such file") {
            "LXD is not running: start it (`provisioning/host/prepare-lxd-host.sh`, or `systemctl start lxd`)"
        } else {
            "Check that LXD is running and answers: `torrust-tracker-deployer check`"
        };
        LxdError::Unreachable {
            endpoint: self.transport.endpoint(),
            doing: doing.to_string(),
            message: message.to_string(),
            fix: fix.to_string(),
        }
    }

    /// Waits for a background operation. Finished operations are forgotten after a few
    /// seconds, so this must be called right after the request that started it.
    pub async fn wait_operation(
        &self,
        doing: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<Value, LxdError> {
        let secs = timeout.as_secs().max(1);
        let path = format!("/1.0/operations/{id}/wait?timeout={secs}");
        let (status, bytes) = self
            .transport
            .send(
                Method::GET,
                &self.url(&path),
                Vec::new(),
                transport::empty(),
            )
            .await
            .map_err(|e| self.unreachable(doing, &e.0))?;
        let envelope = parse_envelope(doing, status, &bytes)?;
        let op: Operation =
            serde_json::from_value(envelope.metadata).map_err(|e| LxdError::Decode {
                doing: doing.to_string(),
                message: e.to_string(),
            })?;
        match op.status_code {
            200 => Ok(op.metadata.unwrap_or(Value::Null)),
            100..=199 => Err(LxdError::Timeout {
                doing: doing.to_string(),
                secs,
            }),
            _ => Err(LxdError::Operation {
                doing: doing.to_string(),
                message: if op.err.is_empty() {
                    format!("status code {}", op.status_code)
                } else {
                    op.err
                },
            }),
        }
    }

    async fn get<D: DeserializeOwned>(&self, doing: &str, path: &str) -> Result<D, LxdError> {
        let value = self
            .call(doing, Method::GET, path, Vec::new(), transport::empty())
            .await?;
        serde_json::from_value(value).map_err(|e| LxdError::Decode {
            doing: doing.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET`, with a 404 as `None`.
    async fn get_opt<D: DeserializeOwned>(
        &self,
        doing: &str,
        path: &str,
    ) -> Result<Option<D>, LxdError> {
        match self.get(doing, path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE`, with a 404 as `false` (already gone).
    async fn delete_opt(&self, doing: &str, path: &str) -> Result<bool, LxdError> {
        match self
            .call(doing, Method::DELETE, path, Vec::new(), transport::empty())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn send_json(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, LxdError> {
        let bytes = serde_json::to_vec(body).expect("json serializes");
        self.call(
            doing,
            method,
            path,
            vec![("content-type", "application/json".into())],
            transport::bytes(bytes),
        )
        .await
    }

    /// `GET /1.0`: the server's description, and whether it trusts us.
    pub async fn server(&self) -> Result<Value, LxdError> {
        self.get("reading the server information", "/1.0").await
    }

    pub async fn profile(&self, name: &str) -> Result<Option<Value>, LxdError> {
        self.get_opt(
            &format!("reading profile '{name}'"),
            &format!("/1.0/profiles/{name}"),
        )
        .await
    }

    /// Creates the profile, or replaces its config, devices and description.
    pub async fn put_profile(
        &self,
        name: &str,
        exists: bool,
        profile: &Value,
    ) -> Result<(), LxdError> {
        if exists {
            self.send_json(
                &format!("updating profile '{name}'"),
                Method::PUT,
                &format!("/1.0/profiles/{name}"),
                profile,
            )
            .await?;
        } else {
            let mut body = profile.clone();
            body["name"] = json!(name);
            self.send_json(
                &format!("creating profile '{name}'"),
                Method::POST,
                "/1.0/profiles",
                &body,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes a profile; a missing one is fine. Returns whether it existed.
    pub async fn delete_profile(&self, name: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting profile '{name}'"),
            &format!("/1.0/profiles/{name}"),
        )
        .await
    }

    pub async fn network(&self, name: &str) -> Result<Option<Value>, LxdError> {
        self.get_opt(
            &format!("reading network '{name}'"),
            &format!("/1.0/networks/{name}"),
        )
        .await
    }

    pub async fn storage_pool(&self, name: &str) -> Result<Option<Value>, LxdError> {
        self.get_opt(
            &format!("reading storage pool '{name}'"),
            &format!("/1.0/storage-pools/{name}"),
        )
        .await
    }

    /// A local image by alias or fingerprint (prefix).
    pub async fn local_image(&self, alias_or_fingerprint: &str) -> Result<Option<Value>, LxdError> {
        let doing = format!("looking up image '{alias_or_fingerprint}'");
        if let Some(alias) = self
            .get_opt::<Value>(
                &doing,
                &format!("/1.0/images/aliases/{alias_or_fingerprint}"),
            )
            .await?
            && let Some(target) = alias["target"].as_str()
        {
            return self.get_opt(&doing, &format!("/1.0/images/{target}")).await;
        }
        if alias_or_fingerprint.len() >= 12
            && alias_or_fingerprint.chars().all(|c| c.is_ascii_hexdigit())
        {
            return self
                .get_opt(&doing, &format!("/1.0/images/{alias_or_fingerprint}"))
                .await;
        }
        Ok(None)
    }

    pub async fn instance(&self, name: &str) -> Result<Option<Value>, LxdError> {
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
        let (status, bytes) = self
            .transport
            .send(
                Method::GET,
                &self.url(&format!("/1.0/instances/{name}/logs/{file}")),
                Vec::new(),
                transport::empty(),
            )
            .await
            .map_err(|e| self.unreachable(&doing, &e.0))?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            // An error envelope: surface LXD's own text.
            parse_envelope(&doing, status, &bytes)?;
        }
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        Ok(Some(all[all.len().saturating_sub(lines)..].join("\n")))
    }

    /// Waits for the background operations still running on an instance (a create, start or
    /// stop that an interrupted command left behind). Returns how many there were.
    pub async fn wait_instance_operations(&self, name: &str) -> Result<usize, LxdError> {
        let doing = format!("listing the operations of instance '{name}'");
        let ops: Value = self.get(&doing, "/1.0/operations?recursion=1").await?;
        let suffix = format!("/instances/{name}");
        let legacy = format!("/containers/{name}");
        let mut ids = Vec::new();
        for op in ops["running"].as_array().into_iter().flatten() {
            let touches = ["instances", "containers"].iter().any(|kind| {
                op["resources"][kind]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| {
                        r.as_str().is_some_and(|r| {
                            r.split('?')
                                .next()
                                .is_some_and(|p| p.ends_with(&suffix) || p.ends_with(&legacy))
                        })
                    })
            });
            if touches && let Some(id) = op["id"].as_str() {
                ids.push((
                    id.to_string(),
                    op["description"].as_str().unwrap_or("?").to_string(),
                ));
            }
        }
        for (id, description) in &ids {
            tracing::info!("waiting for LXD to finish '{description}' on instance '{name}'");
            let doing = format!("waiting for '{description}' on instance '{name}'");
            match self
                .wait_operation(&doing, id, self.operation_timeout)
                .await
            {
                // Gone already, or failed: the caller reads the instance's state next.
                Ok(_) | Err(LxdError::Operation { .. }) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids.len())
    }

    /// Creates an instance (waits for the image download and unpack).
    pub async fn create_instance(&self, request: &Value) -> Result<(), LxdError> {
        let name = request["name"].as_str().unwrap_or("?");
        self.send_json(
            &format!("creating instance '{name}'"),
            Method::POST,
            "/1.0/instances",
            request,
        )
        .await?;
        Ok(())
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
        action: &str,
        force: bool,
    ) -> Result<(), LxdError> {
        self.send_json(
            &format!(
                "{} instance '{name}'",
                match action {
                    "start" => "starting",
                    "stop" => "stopping",
                    "restart" => "restarting",
                    other => other,
                }
            ),
            Method::PUT,
            &format!("/1.0/instances/{name}/state"),
            &json!({ "action": action, "timeout": 30, "force": force }),
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

    /// Writes a file into an instance.
    pub async fn push_file(
        &self,
        instance: &str,
        path: &str,
        contents: impl Into<Bytes>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<(), LxdError> {
        self.call(
            &format!("writing {path} in instance '{instance}'"),
            Method::POST,
            &format!("/1.0/instances/{instance}/files?path={path}"),
            vec![
                ("x-lxd-type", "file".into()),
                ("x-lxd-uid", uid.to_string()),
                ("x-lxd-gid", gid.to_string()),
                ("x-lxd-mode", format!("{mode:04o}")),
                ("x-lxd-write", "overwrite".into()),
                ("content-type", "application/octet-stream".into()),
            ],
            transport::bytes(contents),
        )
        .await?;
        Ok(())
    }

    /// Runs a command in an instance and collects its output.
    pub async fn exec(&self, instance: &str, command: &[&str]) -> Result<ExecResult, LxdError> {
        let doing = format!("running `{}` in instance '{instance}'", command.join(" "));
        let metadata = self
            .send_json(
                &doing,
                Method::POST,
                &format!("/1.0/instances/{instance}/exec"),
                &json!({
                    "command": command,
                    "record-output": true,
                    "wait-for-websocket": false,
                    "interactive": false,
                }),
            )
            .await?;
        let exit_code = metadata["return"].as_i64().unwrap_or(-1);
        let mut out = ExecResult {
            exit_code,
            stdout: String::new(),
            stderr: String::new(),
        };
        for (key, slot) in [("1", &mut out.stdout), ("2", &mut out.stderr)] {
            if let Some(log) = metadata["output"][key].as_str() {
                let (status, bytes) = self
                    .transport
                    .send(Method::GET, &self.url(log), Vec::new(), transport::empty())
                    .await
                    .map_err(|e| self.unreachable(&doing, &e.0))?;
                if status.is_success() {
                    *slot = String::from_utf8_lossy(&bytes).into_owned();
                }
                let _ = self
                    .transport
                    .send(
                        Method::DELETE,
                        &self.url(log),
                        Vec::new(),
                        transport::empty(),
                    )
                    .await;
            }
        }
        Ok(out)
    }

    /// Uploads a split image (metadata tarball + rootfs) as `multipart/form-data` and returns
    /// its fingerprint.
    pub async fn import_image(
        &self,
        body: Body,
        boundary: &str,
        public: bool,
    ) -> Result<String, LxdError> {
        let metadata = self
            .call(
                "importing the image",
                Method::POST,
                "/1.0/images",
                vec![
                    (
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    ),
                    ("x-lxd-public", if public { "1".into() } else { "0".into() }),
                ],
                body,
            )
            .await?;
        metadata["fingerprint"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| LxdError::Decode {
                doing: "importing the image".into(),
                message: "no fingerprint in the finished operation".into(),
            })
    }

    /// Deletes an image (and so its aliases); a missing one is fine.
    pub async fn delete_image(&self, fingerprint: &str) -> Result<bool, LxdError> {
        self.delete_opt(
            &format!("deleting image {fingerprint}"),
            &format!("/1.0/images/{fingerprint}"),
        )
        .await
    }

    /// Points `alias` at `fingerprint`, creating or moving it.
    pub async fn set_alias(&self, alias: &str, fingerprint: &str) -> Result<(), LxdError> {
        let doing = format!("setting image alias '{alias}'");
        let exists = self
            .get_opt::<Value>(&doing, &format!("/1.0/images/aliases/{alias}"))
            .await?
            .is_some();
        if exists {
            self.send_json(
                &doing,
                Method::PUT,
                &format!("/1.0/images/aliases/{alias}"),
                &json!({ "target": fingerprint, "description": "" }),
            )
            .await?;
        } else {
            self.send_json(
                &doing,
                Method::POST,
                "/1.0/images/aliases",
                &json!({ "name": alias, "target": fingerprint }),
            )
            .await?;
        }
        Ok(())
    }
}

fn parse_envelope(doing: &str, status: StatusCode, bytes: &[u8]) -> Result<Envelope, LxdError> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| LxdError::Decode {
        doing: doing.to_string(),
        message: format!(
            "HTTP {status}, body is not an LXD envelope ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    })?;
    if envelope.kind == "error" || !status.is_success() {
        return Err(LxdError::Api {
            doing: doing.to_string(),
            status: if envelope.error_code != 0 {
                envelope.error_code
            } else {
                status.as_u16()
            },
            message: if envelope.error.is_empty() {
                status.to_string()
            } else {
                envelope.error
            },
        });
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Answers requests from a script, recording what was asked.
    struct Scripted {
        answers: Mutex<VecDeque<(u16, Value)>>,
        seen: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: Vec<(u16, Value)>) -> Self {
            Self {
                answers: Mutex::new(answers.into()),
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    impl Transport for Scripted {
        fn endpoint(&self) -> String {
            "scripted".into()
        }

        async fn send(
            &self,
            method: Method,
            path: &str,
            _headers: Vec<(&'static str, String)>,
            _body: Body,
        ) -> Result<(StatusCode, Bytes), transport::TransportError> {
            self.seen.lock().unwrap().push(format!("{method} {path}"));
            let (status, body) = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("scripted answer");
            Ok((
                StatusCode::from_u16(status).unwrap(),
                Bytes::from(serde_json::to_vec(&body).unwrap()),
            ))
        }
    }

    #[tokio::test]
    async fn async_answers_wait_for_the_operation() {
        let t = Scripted::new(vec![
            (
                202,
                json!({"type":"async","status_code":100,"operation":"/1.0/operations/abc","metadata":{}}),
            ),
            (
                200,
                json!({"type":"sync","status_code":200,"metadata":{"status_code":200,"err":"","metadata":{"return":0}}}),
            ),
        ]);
        let client = LxdClient::new(t, Some("demo".into()));
        let v = client
            .send_json("x", Method::POST, "/1.0/instances", &json!({}))
            .await
            .unwrap();
        assert_eq!(v["return"], 0);
        let seen = client.transport.seen.lock().unwrap().clone();
        assert_eq!(seen[0], "POST /1.0/instances?project=demo");
        assert!(
            seen[1].starts_with("GET /1.0/operations/abc/wait?timeout="),
            "{seen:?}"
        );
        assert!(seen[1].ends_with("&project=demo"), "{seen:?}");
    }

    #[tokio::test]
    async fn failed_operations_and_errors_carry_lxd_text() {
        let t = Scripted::new(vec![
            (202, json!({"type":"async","operation":"/1.0/operations/x"})),
            (
                200,
                json!({"type":"sync","metadata":{"status_code":400,"err":"Failed creating instance record: Instance name is invalid"}}),
            ),
            (
                404,
                json!({"type":"error","error":"Not Found","error_code":404}),
            ),
        ]);
        let client = LxdClient::new(t, None);
        let err = client
            .create_instance(&json!({"name": "bad_name"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Instance name is invalid"),
            "{err}"
        );
        assert!(
            err.to_string().contains("creating instance 'bad_name'"),
            "{err}"
        );
        assert!(client.instance("nope").await.unwrap().is_none());
    }

    #[test]
    fn ipv4_reads_the_named_nic_only() {
        let state: InstanceState = serde_json::from_value(json!({
            "status": "Running",
            "network": {
                "docker0": {"addresses": [{"family":"inet","address":"172.17.0.1","scope":"global"}]},
                "eth0": {"addresses": [
                    {"family":"inet6","address":"fe80::1","scope":"link"},
                    {"family":"inet","address":"10.1.2.3","scope":"global"}
                ]}
            }
        }))
        .unwrap();
        assert_eq!(state.ipv4("eth0").as_deref(), Some("10.1.2.3"));
        assert_eq!(state.ipv4("eth1"), None);
    }
}
