//! LXD API calls: envelopes, background operations, and the resources the deployer uses.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{
    ExecOutcome, Image, ImageAlias, ImageUploaded, Instance, InstanceState, Network, NewInstance,
    Operation, OperationOutcome, Operations, Profile, ProfileSpec, Server, StateAction,
    StoragePool,
};
use super::transport::{self, Body, Transport, TransportError};

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
    /// The instance is locked by another of LXD's operations (a start, or the stop hooks of a
    /// failed start, hold it for a minute or more).
    #[error(
        "LXD refused {doing}: {message}.\n  Another LXD operation (\"{action}\") holds the \
         instance, e.g. the stop hooks of a failed start, which take a minute or more. Wait, then \
         run the command again: it carries on"
    )]
    Busy {
        doing: String,
        action: String,
        message: String,
    },
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
            LxdError::Busy { .. } => ErrorKind::LxdBusy,
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

    /// LXD refused because the instance is locked by another operation.
    pub fn is_busy(&self) -> bool {
        matches!(self, LxdError::Busy { .. })
    }

    /// A refusal or a failed operation, as LXD reported it.
    fn refused(doing: &str, status: u16, message: String, operation: bool) -> Self {
        let doing = doing.to_string();
        if let Some(action) = busy_action(&message) {
            return LxdError::Busy {
                doing,
                action,
                message,
            };
        }
        if operation {
            LxdError::Operation { doing, message }
        } else {
            LxdError::Api {
                doing,
                status,
                message,
            }
        }
    }
}

/// The action named by LXD's "instance busy" refusal.
///
/// LXD (5.0 to today) refuses work on an instance that another operation holds with
/// `Instance is busy running a "stop" operation` (its `operationlock` package), and with the
/// status code of any failure (400 for a failed operation, 400 or 500 for a refused request):
/// nothing in its answer but these words tells it apart. This is the one place that reads
/// them; everything else matches [`LxdError::Busy`].
fn busy_action(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("is busy running a \"")?;
    let (action, _) = rest.split_once('"')?;
    Some(action.to_string())
}

/// The kind of an LXD answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ResponseType {
    Sync,
    Async,
    Error,
}

/// The envelope every LXD response comes in.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: ResponseType,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_code: u16,
}

/// The outcome of a command run in an instance.
#[derive(Debug)]
pub struct ExecResult {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
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
            .map_err(|e| self.unreachable(doing, e))?;
        let envelope = parse_envelope(doing, status, &bytes)?;
        match envelope.kind {
            ResponseType::Sync => Ok(envelope.metadata),
            ResponseType::Async => {
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
            ResponseType::Error => Err(LxdError::Decode {
                doing: doing.to_string(),
                message: "an error answer with a success status".into(),
            }),
        }
    }

    /// LXD could not be asked: says why, and what fixes that.
    fn unreachable(&self, doing: &str, error: TransportError) -> LxdError {
        use std::io::ErrorKind;
        let fix = match error.connect {
            Some(ErrorKind::PermissionDenied) => {
                "Run as root or as a member of the `lxd` group (`usermod -aG lxd $USER`, then log in again)"
            }
            Some(ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
                "LXD is not running: start it (`provisioning/host/prepare-lxd-host.sh`, or `systemctl start lxd`)"
            }
            _ => "Check that LXD is running and answers: `torrust-tracker-deployer check`",
        };
        LxdError::Unreachable {
            endpoint: self.transport.endpoint(),
            doing: doing.to_string(),
            message: error.message,
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
            .map_err(|e| self.unreachable(doing, e))?;
        let envelope = parse_envelope(doing, status, &bytes)?;
        let op: Operation =
            serde_json::from_value(envelope.metadata).map_err(|e| LxdError::Decode {
                doing: doing.to_string(),
                message: e.to_string(),
            })?;
        match op.outcome() {
            OperationOutcome::Succeeded => Ok(op.metadata.unwrap_or(Value::Null)),
            OperationOutcome::Unfinished => Err(LxdError::Timeout {
                doing: doing.to_string(),
                secs,
            }),
            OperationOutcome::Failed => Err(LxdError::refused(
                doing,
                op.status_code,
                if op.err.is_empty() {
                    format!("status code {}", op.status_code)
                } else {
                    op.err
                },
                true,
            )),
        }
    }

    async fn get<D: DeserializeOwned>(&self, doing: &str, path: &str) -> Result<D, LxdError> {
        let value = self
            .call(doing, Method::GET, path, Vec::new(), transport::empty())
            .await?;
        decode(doing, value)
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
        body: &impl serde::Serialize,
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
    pub async fn server(&self) -> Result<Server, LxdError> {
        self.get("reading the server information", "/1.0").await
    }

    pub async fn profile(&self, name: &str) -> Result<Option<Profile>, LxdError> {
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
        profile: &ProfileSpec,
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
            #[derive(serde::Serialize)]
            struct NewProfile<'a> {
                name: &'a str,
                #[serde(flatten)]
                spec: &'a ProfileSpec,
            }
            let body = NewProfile {
                name,
                spec: profile,
            };
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

    pub async fn network(&self, name: &str) -> Result<Option<Network>, LxdError> {
        self.get_opt(
            &format!("reading network '{name}'"),
            &format!("/1.0/networks/{name}"),
        )
        .await
    }

    pub async fn storage_pool(&self, name: &str) -> Result<Option<StoragePool>, LxdError> {
        self.get_opt(
            &format!("reading storage pool '{name}'"),
            &format!("/1.0/storage-pools/{name}"),
        )
        .await
    }

    /// A local image by alias or fingerprint (prefix).
    pub async fn local_image(&self, alias_or_fingerprint: &str) -> Result<Option<Image>, LxdError> {
        let doing = format!("looking up image '{alias_or_fingerprint}'");
        if let Some(alias) = self
            .get_opt::<ImageAlias>(
                &doing,
                &format!("/1.0/images/aliases/{alias_or_fingerprint}"),
            )
            .await?
        {
            return self
                .get_opt(&doing, &format!("/1.0/images/{}", alias.target))
                .await;
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
        let (status, bytes) = self
            .transport
            .send(
                Method::GET,
                &self.url(&format!("/1.0/instances/{name}/logs/{file}")),
                Vec::new(),
                transport::empty(),
            )
            .await
            .map_err(|e| self.unreachable(&doing, e))?;
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
        self.send_json(
            &format!("creating instance '{}'", request.name),
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
        let outcome: ExecOutcome = decode(&doing, metadata)?;
        let mut out = ExecResult {
            exit_code: outcome.exit_code,
            stdout: String::new(),
            stderr: String::new(),
        };
        for (key, slot) in [("1", &mut out.stdout), ("2", &mut out.stderr)] {
            if let Some(log) = outcome.output.get(key) {
                let (status, bytes) = self
                    .transport
                    .send(Method::GET, &self.url(log), Vec::new(), transport::empty())
                    .await
                    .map_err(|e| self.unreachable(&doing, e))?;
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
        let uploaded: ImageUploaded = decode("importing the image", metadata)?;
        Ok(uploaded.fingerprint)
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
            .get_opt::<ImageAlias>(&doing, &format!("/1.0/images/aliases/{alias}"))
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
    if envelope.kind == ResponseType::Error || !status.is_success() {
        return Err(LxdError::refused(
            doing,
            if envelope.error_code != 0 {
                envelope.error_code
            } else {
                status.as_u16()
            },
            if envelope.error.is_empty() {
                status.to_string()
            } else {
                envelope.error
            },
            false,
        ));
    }
    Ok(envelope)
}

/// Reads an answer's metadata as the type it should have.
fn decode<D: DeserializeOwned>(doing: &str, metadata: Value) -> Result<D, LxdError> {
    serde_json::from_value(metadata).map_err(|e| LxdError::Decode {
        doing: doing.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lxd::api::{ImageRef, InstanceSource};
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
            .create_instance(&NewInstance {
                name: "bad_name".into(),
                kind: "container".into(),
                profiles: Vec::new(),
                source: InstanceSource {
                    image: ImageRef::Alias {
                        alias: "debian".into(),
                    },
                },
            })
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

    #[tokio::test]
    async fn a_busy_instance_is_its_own_error_from_an_operation_or_a_refusal() {
        let t = Scripted::new(vec![
            (202, json!({"type":"async","operation":"/1.0/operations/d"})),
            (
                200,
                json!({"type":"sync","metadata":{"id":"d","status":"Failure","status_code":400,
                       "err":"Instance is busy running a \"stop\" operation"}}),
            ),
            (
                400,
                json!({"type":"error","error":"Instance is busy running a \"start\" operation","error_code":400}),
            ),
            (202, json!({"type":"async","operation":"/1.0/operations/e"})),
            (
                200,
                json!({"type":"sync","metadata":{"id":"e","status_code":400,"err":"Instance is running"}}),
            ),
        ]);
        let client = LxdClient::new(t, None);
        match client.delete_instance("web").await.unwrap_err() {
            LxdError::Busy { action, doing, .. } => {
                assert_eq!(action, "stop");
                assert_eq!(doing, "deleting instance 'web'");
            }
            other => panic!("not busy: {other:?}"),
        }
        let refused = client
            .change_state("web", StateAction::Stop, false)
            .await
            .unwrap_err();
        assert!(refused.is_busy(), "{refused:?}");
        assert!(
            refused.to_string().contains("\"start\" operation"),
            "{refused}"
        );
        let other = client.delete_instance("web").await.unwrap_err();
        assert!(
            matches!(&other, LxdError::Operation { message, .. } if message == "Instance is running"),
            "{other:?}"
        );
    }

    #[tokio::test]
    async fn typed_answers_come_back_typed() {
        let t = Scripted::new(vec![
            (
                200,
                json!({"type":"sync","status_code":200,"metadata":{
                    "name":"web","status":"Running","status_code":103,"profiles":["p"],
                    "last_used_at":"2026-11-26T10:00:05Z","location":"none","config":{},"devices":{}}}),
            ),
            (
                200,
                json!({"type":"sync","status_code":200,"metadata":{"running":[
                    {"id":"op1","description":"Starting instance","status_code":103,
                     "resources":{"instances":["/1.0/instances/web"]}}]}}),
            ),
            (
                200,
                json!({"type":"sync","metadata":{"id":"op1","status_code":200,"metadata":null}}),
            ),
        ]);
        let client = LxdClient::new(t, None);
        let instance = client.instance("web").await.unwrap().unwrap();
        assert_eq!(instance.status, crate::lxd::InstanceStatus::Running);
        assert!(!instance.never_started());
        assert_eq!(client.wait_instance_operations("web").await.unwrap(), 1);
        let seen = client.transport.seen.lock().unwrap().clone();
        assert!(
            seen[2].starts_with("GET /1.0/operations/op1/wait"),
            "{seen:?}"
        );
    }
}
