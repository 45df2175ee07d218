//! The LXD API client's core: envelopes (sync, async, error), background operations, and the
//! request helpers every call builds on. The calls themselves are grouped by topic: [`profiles`]
//! (profiles, networks, storage pools), [`images`], [`instances`] (lifecycle and state) and
//! [`instance_io`] (exec and the files API).
//!
//! [`profiles`]: super::profiles
//! [`images`]: super::images
//! [`instances`]: super::instances
//! [`instance_io`]: super::instance_io

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::{Operation, OperationOutcome, Server};
use super::error::LxdError;
use super::transport::{self, Body, Response, Transport, TransportError};

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

/// What a request started.
pub(super) enum Started {
    /// A sync answer, with its metadata.
    Done(Value),
    /// A background operation, by id.
    Operation(String),
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

    /// The transport requests go through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn endpoint(&self) -> String {
        self.transport.endpoint()
    }

    pub(super) fn url(&self, path: &str) -> String {
        match &self.project {
            Some(p) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}project={p}")
            }
            None => path.to_string(),
        }
    }

    /// Sends a request and unwraps the envelope: sync metadata, or, for async answers, waits
    /// for the operation (up to [`operation_timeout`](Self::operation_timeout)) and returns its
    /// metadata.
    pub(super) async fn call(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Value, LxdError> {
        match self.start(doing, method, path, headers, body).await? {
            Started::Done(metadata) => Ok(metadata),
            Started::Operation(id) => {
                self.wait_operation(doing, &id, self.operation_timeout)
                    .await
            }
        }
    }

    /// Sends a request and unwraps the envelope, without waiting for a background operation.
    pub(super) async fn start(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Started, LxdError> {
        let response = self.raw(doing, method, path, headers, body).await?;
        let envelope = parse_envelope(doing, response.status, &response.body)?;
        match envelope.kind {
            ResponseType::Sync => Ok(Started::Done(envelope.metadata)),
            ResponseType::Async => {
                let id = envelope
                    .operation
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| LxdError::Decode {
                        doing: doing.to_string(),
                        message: "async answer without an operation".into(),
                    })?;
                Ok(Started::Operation(id.to_string()))
            }
            ResponseType::Error => Err(LxdError::Decode {
                doing: doing.to_string(),
                message: "an error answer with a success status".into(),
            }),
        }
    }

    /// Sends a request (scoped to the project) and returns LXD's answer as it is, for the
    /// answers that are not envelopes: logs, files.
    pub(super) async fn raw(
        &self,
        doing: &str,
        method: Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Response, LxdError> {
        self.transport
            .send(method, &self.url(path), headers, body)
            .await
            .map_err(|e| self.unreachable(doing, e))
    }

    /// LXD could not be asked: says why, and what fixes that.
    fn unreachable(&self, doing: &str, error: TransportError) -> LxdError {
        use std::io::ErrorKind;
        if let Some((expected, got)) = error.pin_refused {
            return LxdError::ServerMismatch {
                endpoint: self.transport.endpoint(),
                expected,
                got,
            };
        }
        let fix = match error.connect {
            Some(ErrorKind::PermissionDenied) => {
                "Run as root or as a member of the `lxd` group (`usermod -aG lxd $USER`, then log in again)"
            }
            Some(ErrorKind::ConnectionRefused)
                if self.transport.endpoint().starts_with("https:") =>
            {
                "Check `provider.endpoint`, and that the LXD there listens on it (`lxc config get core.https_address` on the server)"
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
        let op = self.operation(doing, id, timeout).await?;
        match op.outcome() {
            OperationOutcome::Succeeded => Ok(op.metadata.unwrap_or(Value::Null)),
            OperationOutcome::Unfinished => Err(LxdError::Timeout {
                doing: doing.to_string(),
                secs: timeout.as_secs().max(1),
            }),
            OperationOutcome::Failed => Err(operation_failed(doing, op)),
        }
    }

    /// An operation as LXD reports it once it has finished, or after `timeout` (then still
    /// running).
    pub(super) async fn operation(
        &self,
        doing: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<Operation, LxdError> {
        let secs = timeout.as_secs().max(1);
        let path = format!("/1.0/operations/{id}/wait?timeout={secs}");
        let response = self
            .raw(doing, Method::GET, &path, Vec::new(), transport::empty())
            .await?;
        let envelope = parse_envelope(doing, response.status, &response.body)?;
        decode(doing, envelope.metadata)
    }

    pub(super) async fn get<D: DeserializeOwned>(
        &self,
        doing: &str,
        path: &str,
    ) -> Result<D, LxdError> {
        let value = self
            .call(doing, Method::GET, path, Vec::new(), transport::empty())
            .await?;
        decode(doing, value)
    }

    /// `GET`, with a 404 as `None`.
    pub(super) async fn get_opt<D: DeserializeOwned>(
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
    pub(super) async fn delete_opt(&self, doing: &str, path: &str) -> Result<bool, LxdError> {
        match self
            .call(doing, Method::DELETE, path, Vec::new(), transport::empty())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn send_json(
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
}

/// The error of a failed operation, with LXD's reason.
pub(super) fn operation_failed(doing: &str, op: Operation) -> LxdError {
    let message = if op.err.is_empty() {
        format!("status code {}", op.status_code)
    } else {
        op.err
    };
    LxdError::refused(doing, op.status_code, message, true)
}

/// `Ok` for a success; else LXD's error (its own text when the answer is an envelope).
pub(super) fn check_status(doing: &str, response: &Response) -> Result<(), LxdError> {
    if response.status.is_success() {
        return Ok(());
    }
    parse_envelope(doing, response.status, &response.body).map(|_| ())
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
pub(super) fn decode<D: DeserializeOwned>(doing: &str, metadata: Value) -> Result<D, LxdError> {
    serde_json::from_value(metadata).map_err(|e| LxdError::Decode {
        doing: doing.to_string(),
        message: e.to_string(),
    })
}

/// A transport that answers from a script, for unit tests of calls.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Answers requests from a script, recording what was asked.
    pub(crate) struct Scripted {
        pub(crate) answers: Mutex<VecDeque<(u16, Value)>>,
        pub(crate) seen: Mutex<Vec<String>>,
    }

    impl Scripted {
        pub(crate) fn new(answers: Vec<(u16, Value)>) -> Self {
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
        ) -> Result<Response, transport::TransportError> {
            self.seen.lock().unwrap().push(format!("{method} {path}"));
            let (status, body) = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("scripted answer");
            Ok(Response::new(
                StatusCode::from_u16(status).unwrap(),
                serde_json::to_vec(&body).unwrap(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Scripted;
    use super::*;
    use crate::lxd::api::{ImageRef, InstanceSource, NewInstance, StateAction};
    use serde_json::json;

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
                config: Default::default(),
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
