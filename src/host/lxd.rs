//! [`Host`] over LXD: an instance reached through LXD's exec and files APIs, with no SSH. For
//! the work done before SSH answers (setting up SSH access on an image without cloud-init).
//!
//! - `exec` and `sudo`: `POST /1.0/instances/NAME/exec` with the output recorded (no
//!   websockets), then the two output logs read and deleted. Commands run as root in LXD's
//!   default environment; `exec` runs as the login user through `su` when one is set
//!   ([`LxdHost::login_as`]), else as root.
//! - `sudo_stdin`: LXD 5.0 only feeds a command's stdin through an exec websocket, so the
//!   stream is first written through the files API to a temporary file in `/var/tmp` (mode
//!   0600, as it is read: not held in memory), then the command runs with its stdin opened on
//!   that file, which is unlinked before the command starts. The instance briefly needs the
//!   stream's size in free disk; the command sees its whole input at once, not as it is sent.
//! - `upload` and `compare`: the same probe and placement scripts as over SSH
//!   ([`crate::ssh`]'s upload), so both transports decide alike; the placement's tar archive
//!   goes in through `sudo_stdin`'s temporary file.
//! - `download`: `GET /1.0/instances/NAME/files?path=`; a symbolic link (which the files API
//!   does not follow) or a directory is read with `cat` as over SSH.
//! - `connect_tcp`: not possible. LXD's exec API carries no port forward, and a proxy device
//!   would change the instance's configuration; it fails with [`HostError::Unsupported`].

use rand::Rng;
use rand::distributions::Alphanumeric;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    AttachIo, AttachRequest, Attached, Host, HostError, HostFuture, HostStream, download_script,
    downloaded,
};
use crate::events::ByteCounter;
use crate::lxd::transport::{self, Transport};
use crate::lxd::{FileMode, InstancePath, LxdClient, LxdError};
use crate::ssh::{ExecOutput, ExitStatus, FileChange, Stdin, UploadFile, shell_quote};
use crate::ssh::{RootShell, place};

/// An LXD instance as a [`Host`]. Borrows the client: one per command, like an SSH session.
pub struct LxdHost<'a, T: Transport> {
    client: &'a LxdClient<T>,
    instance: String,
    /// Who `exec` runs as; `None`: root.
    login: Option<String>,
}

impl<'a, T: Transport> LxdHost<'a, T> {
    /// The instance `instance`, through `client`. `exec` runs as root until
    /// [`login_as`](Self::login_as) names a user.
    pub fn new(client: &'a LxdClient<T>, instance: &str) -> Self {
        Self {
            client,
            instance: instance.to_string(),
            login: None,
        }
    }

    /// Makes `exec` run as `user` (through `su`), as an SSH login would.
    pub fn login_as(mut self, user: &str) -> Self {
        self.login = Some(user.to_string()).filter(|u| u != "root");
        self
    }

    fn name(&self) -> String {
        format!("lxd:{}", self.instance)
    }

    /// Runs `argv` in the instance; `command` is what the caller asked for, for messages.
    async fn run(&self, argv: &[&str], command: &str) -> Result<ExecOutput, HostError> {
        let r = self.client.exec(&self.instance, argv).await?;
        Ok(ExecOutput {
            command: command.to_string(),
            host: self.name(),
            status: u32::try_from(r.exit_code).map_or(ExitStatus::Unknown, ExitStatus::Code),
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    async fn root(&self, command: &str) -> Result<ExecOutput, HostError> {
        self.run(&["sh", "-c", command], command).await
    }

    /// `command` as root with `stdin` on its standard input: see the module docs.
    async fn root_with_stdin(
        &self,
        command: &str,
        stdin: Stdin,
        size: Option<u64>,
    ) -> Result<ExecOutput, HostError> {
        let temp = temp_path();
        let result = async {
            self.push_stream(&temp, command, stdin, size).await?;
            let script = stdin_script(&temp, command);
            self.run(&["sh", "-c", &script], command).await
        }
        .await;
        if result.is_err() {
            // Best effort: the script removes the file itself once it has opened it.
            let _ = self.client.delete_file(&self.instance, &temp).await;
        }
        result
    }

    /// Writes `stdin` to `path` in the instance (root, 0600), counting the bytes sent as the
    /// step's progress.
    async fn push_stream(
        &self,
        path: &str,
        command: &str,
        stdin: Stdin,
        size: Option<u64>,
    ) -> Result<(), HostError> {
        let mode = FileMode {
            uid: 0,
            gid: 0,
            mode: 0o600,
        };
        let mut reader = match stdin {
            Stdin::Bytes(bytes) => {
                let body = transport::bytes(bytes);
                self.client
                    .push_file(&self.instance, path, body, mode)
                    .await?;
                return Ok(());
            }
            Stdin::Reader(reader) => reader,
        };
        let (tx, body) = transport::channel(4);
        let feed = async move {
            let mut counter = ByteCounter::new(size);
            loop {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = match reader.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let copy = std::io::Error::new(e.kind(), e.to_string());
                        let _ = tx.send(Err(copy)).await;
                        return Err(e);
                    }
                };
                chunk.truncate(n);
                counter.add(n);
                if tx.send(Ok(chunk.into())).await.is_err() {
                    // The request ended early: its own error says why.
                    break;
                }
            }
            counter.finish();
            Ok(())
        };
        let push = self.client.push_file(&self.instance, path, body, mode);
        let (fed, pushed) = tokio::join!(feed, push);
        fed.map_err(|source| HostError::Input {
            host: self.name(),
            command: command.to_string(),
            source,
        })?;
        Ok(pushed?)
    }
}

/// A fresh temporary path for a command's input, on disk (`/tmp` may be memory).
fn temp_path() -> String {
    let suffix: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("/var/tmp/.torrust-stdin-{suffix}")
}

/// Runs `command` with its stdin opened on `temp`, which is unlinked first.
fn stdin_script(temp: &str, command: &str) -> String {
    let t = shell_quote(temp);
    format!(
        "exec <{t} && rm -f -- {t} && exec sh -c {}",
        shell_quote(command)
    )
}

impl<T: Transport> RootShell for LxdHost<'_, T> {
    type Error = HostError;

    fn host_name(&self) -> String {
        self.name()
    }

    async fn root(&self, script: &str) -> Result<ExecOutput, HostError> {
        LxdHost::root(self, script).await
    }

    async fn root_with_input(&self, script: &str, input: Vec<u8>) -> Result<ExecOutput, HostError> {
        self.root_with_stdin(script, Stdin::Bytes(input), None)
            .await
    }

    fn upload_failed(&self, detail: String) -> HostError {
        LxdError::Operation {
            doing: format!("uploading files to instance '{}'", self.instance),
            message: detail,
        }
        .into()
    }
}

impl<T: Transport> Host for LxdHost<'_, T> {
    fn display(&self) -> String {
        self.name()
    }

    fn exec<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput> {
        Box::pin(async move {
            match &self.login {
                Some(user) => {
                    self.run(&["su", "-s", "/bin/sh", "-c", command, user], command)
                        .await
                }
                None => LxdHost::root(self, command).await,
            }
        })
    }

    fn sudo<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput> {
        Box::pin(LxdHost::root(self, command))
    }

    fn sudo_stdin<'a>(
        &'a self,
        command: &'a str,
        stdin: Stdin,
        size: Option<u64>,
    ) -> HostFuture<'a, ExecOutput> {
        Box::pin(self.root_with_stdin(command, stdin, size))
    }

    fn upload<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>> {
        Box::pin(place(self, files, true))
    }

    fn compare<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>> {
        Box::pin(place(self, files, false))
    }

    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            match self.client.pull_file(&self.instance, path).await? {
                None => Ok(None),
                Some(InstancePath::File(bytes)) => Ok(Some(bytes.to_vec())),
                // Followed (or refused, for a directory) by `cat`, as over SSH.
                Some(InstancePath::Symlink(_) | InstancePath::Other(_)) => {
                    let out = LxdHost::root(self, &download_script(path)).await?;
                    Ok(downloaded(out)?)
                }
            }
        })
    }

    /// Read whole through LXD's files API, then written from `offset` on: LXD hosts serve
    /// the work before SSH answers, never large files.
    fn download_to<'a>(
        &'a self,
        path: &'a str,
        offset: u64,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
        _total: Option<u64>,
    ) -> HostFuture<'a, bool> {
        Box::pin(async move {
            let Some(bytes) = self.download(path).await? else {
                return Ok(false);
            };
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let written = async {
                to.write_all(&bytes[start..]).await?;
                to.flush().await
            };
            written.await.map_err(|source| HostError::Output {
                host: self.name(),
                command: format!("read {path}"),
                source,
            })?;
            Ok(true)
        })
    }

    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream> {
        Box::pin(async move {
            Err(HostError::Unsupported {
                host: self.name(),
                what: format!("a TCP connection to {address}:{port}"),
                why: "LXD's exec API carries no port forward; connect over SSH instead".into(),
            })
        })
    }

    fn attach<'a>(&'a self, request: &'a AttachRequest, _io: AttachIo) -> HostFuture<'a, Attached> {
        Box::pin(async move {
            Err(HostError::Unsupported {
                host: self.name(),
                what: format!(
                    "attaching to `{}`",
                    request.command.as_deref().unwrap_or("a login shell")
                ),
                why: "this LXD host runs recorded commands only; attach over SSH instead".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake LXD at the HTTP level: it answers the exec, operations, logs and files
    //! endpoints as LXD 5.0 does, runs the commands on this machine and keeps files on its
    //! disk, so the scripts the host sends run in a real shell.
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::sync::Mutex;

    use http_body_util::BodyExt;
    use hyper::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::*;
    use crate::error_kind::{Classify, ErrorKind};
    use crate::events::{Events, Progress, Recorder, What, in_step};
    use crate::lxd::transport::{Body, Response, TransportError};
    use crate::ssh::Change;

    #[derive(Default)]
    struct Fake {
        /// `METHOD path` of every request, in order.
        seen: Vec<String>,
        /// The argv of every exec.
        commands: Vec<Vec<String>>,
        /// Operation id -> (waits answered "running" so far, metadata when done).
        ops: BTreeMap<String, (u32, Value)>,
        logs: BTreeMap<String, Vec<u8>>,
    }

    #[derive(Default)]
    struct FakeLxd(Mutex<Fake>);

    fn sync(metadata: Value) -> Response {
        let body = json!({"type": "sync", "status_code": 200, "metadata": metadata});
        Response::new(StatusCode::OK, body.to_string())
    }

    fn not_found() -> Response {
        let body = json!({"type": "error", "error": "Not Found", "error_code": 404});
        Response::new(StatusCode::NOT_FOUND, body.to_string())
    }

    fn typed(kind: &str, body: impl Into<bytes::Bytes>) -> Response {
        let mut r = Response::new(StatusCode::OK, body);
        r.headers.insert("x-lxd-type", kind.parse().unwrap());
        r
    }

    impl FakeLxd {
        fn exec(&self, body: &[u8]) -> Response {
            let request: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(request["record-output"], true);
            assert_eq!(request["wait-for-websocket"], false);
            let argv: Vec<String> = serde_json::from_value(request["command"].clone()).unwrap();
            let out = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let mut fake = self.0.lock().unwrap();
            let id = format!("op{}", fake.ops.len());
            let log = |fd: &str| format!("/1.0/instances/web/logs/exec_{id}.{fd}");
            fake.logs.insert(log("stdout"), out.stdout);
            fake.logs.insert(log("stderr"), out.stderr);
            let code = out.status.code().unwrap_or(-1);
            let done = json!({"return": code, "output": {"1": log("stdout"), "2": log("stderr")}});
            fake.ops.insert(id.clone(), (0, done));
            fake.commands.push(argv);
            let body = json!({"type": "async", "operation": format!("/1.0/operations/{id}")});
            Response::new(StatusCode::ACCEPTED, body.to_string())
        }

        /// A command still runs at the first wait, and has finished at the second. As LXD
        /// does, an exit code of 126 or 127 makes a failed operation (with the exit code and
        /// output); a command that says `LXD-FAILS` makes one without them.
        fn wait(&self, id: &str) -> Response {
            let mut fake = self.0.lock().unwrap();
            let lxd_fails = fake.commands[fake.ops.len() - 1]
                .iter()
                .any(|a| a.contains("LXD-FAILS"));
            let (waits, done) = fake.ops.get_mut(id).unwrap();
            *waits += 1;
            if *waits == 1 {
                return sync(json!({"id": id, "status_code": 103}));
            }
            if lxd_fails {
                return sync(json!({"id": id, "status_code": 400, "err": "Failed to start"}));
            }
            if matches!(done["return"].as_i64(), Some(126 | 127)) {
                return sync(
                    json!({"id": id, "status_code": 400, "err": "Command not found",
                                   "metadata": done.clone()}),
                );
            }
            sync(json!({"id": id, "status_code": 200, "metadata": done.clone()}))
        }

        fn files(
            &self,
            method: &Method,
            path: &Path,
            headers: &[(&str, String)],
            body: &[u8],
        ) -> Response {
            let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
            match *method {
                Method::POST => {
                    assert_eq!(header("content-type").unwrap(), "application/octet-stream");
                    let mode = u32::from_str_radix(header("x-lxd-mode").unwrap(), 8).unwrap();
                    if std::fs::write(path, body).is_err() {
                        return not_found();
                    }
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
                    sync(json!({}))
                }
                Method::DELETE => match std::fs::remove_file(path) {
                    Ok(()) => sync(json!({})),
                    Err(_) => not_found(),
                },
                _ => match std::fs::symlink_metadata(path) {
                    Err(_) => not_found(),
                    Ok(m) if m.is_symlink() => {
                        let target = std::fs::read_link(path).unwrap();
                        typed("symlink", target.to_string_lossy().into_owned())
                    }
                    Ok(m) if m.is_dir() => typed("directory", sync(json!([])).body),
                    Ok(_) => typed("file", std::fs::read(path).unwrap()),
                },
            }
        }

        fn seen(&self) -> Vec<String> {
            self.0.lock().unwrap().seen.clone()
        }

        fn commands(&self) -> Vec<Vec<String>> {
            self.0.lock().unwrap().commands.clone()
        }
    }

    impl Transport for FakeLxd {
        fn endpoint(&self) -> String {
            "fake".into()
        }

        async fn send(
            &self,
            method: Method,
            path_and_query: &str,
            headers: Vec<(&'static str, String)>,
            body: Body,
        ) -> Result<Response, TransportError> {
            let body = body
                .collect()
                .await
                .map_err(|e| TransportError::new(format!("reading the body: {e}")))?
                .to_bytes();
            let (path, query) = path_and_query
                .split_once('?')
                .unwrap_or((path_and_query, ""));
            self.0.lock().unwrap().seen.push(format!("{method} {path}"));
            if path == "/1.0/instances/web/exec" {
                return Ok(self.exec(&body));
            }
            if let Some(id) = path.strip_prefix("/1.0/operations/") {
                return Ok(self.wait(id.trim_end_matches("/wait")));
            }
            if path == "/1.0/instances/web/files" {
                let file = query.strip_prefix("path=").unwrap();
                let file = percent_encoding::percent_decode_str(file)
                    .decode_utf8()
                    .unwrap();
                return Ok(self.files(&method, Path::new(&*file), &headers, &body));
            }
            let mut fake = self.0.lock().unwrap();
            Ok(match (method, fake.logs.get(path).cloned()) {
                (Method::GET, Some(log)) => Response::new(StatusCode::OK, log),
                (Method::DELETE, Some(_)) => {
                    fake.logs.remove(path);
                    sync(json!({}))
                }
                _ => not_found(),
            })
        }
    }

    fn client() -> LxdClient<FakeLxd> {
        LxdClient::new(FakeLxd::default(), None)
    }

    fn transport(client: &LxdClient<FakeLxd>) -> &FakeLxd {
        client.transport()
    }

    #[tokio::test]
    async fn commands_run_as_root_through_exec_with_their_output_and_exit_code() {
        let client = client();
        let host = LxdHost::new(&client, "web");
        let out = host
            .sudo("echo out; printf 'e\\0rr' >&2; exit 3")
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Code(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"e\0rr");
        assert_eq!(out.host, "lxd:web");
        assert_eq!(out.command, "echo out; printf 'e\\0rr' >&2; exit 3");
        let fake = transport(&client);
        assert_eq!(
            fake.seen(),
            [
                "POST /1.0/instances/web/exec",
                // Still running at the first wait: waited for again.
                "GET /1.0/operations/op0/wait",
                "GET /1.0/operations/op0/wait",
                "GET /1.0/instances/web/logs/exec_op0.stdout",
                "DELETE /1.0/instances/web/logs/exec_op0.stdout",
                "GET /1.0/instances/web/logs/exec_op0.stderr",
                "DELETE /1.0/instances/web/logs/exec_op0.stderr",
            ]
        );
        assert!(fake.0.lock().unwrap().logs.is_empty(), "logs left behind");
        // Without a login user, `exec` is root too; with one, it goes through `su`.
        host.exec("true").await.unwrap();
        let as_user = LxdHost::new(&client, "web").login_as("torrust");
        let _ = as_user.exec("id -un").await;
        let commands = fake.commands();
        assert_eq!(commands[1], ["sh", "-c", "true"]);
        assert_eq!(
            commands[2],
            ["su", "-s", "/bin/sh", "-c", "id -un", "torrust"]
        );
        assert!(
            LxdHost::new(&client, "web")
                .login_as("root")
                .login
                .is_none()
        );
    }

    #[tokio::test]
    async fn exit_127_is_an_exit_code_not_an_lxd_failure() {
        let client = client();
        let host = LxdHost::new(&client, "web");
        let out = host.sudo("echo missing >&2; exit 127").await.unwrap();
        assert_eq!(out.status, ExitStatus::Code(127));
        assert_eq!(out.stderr, b"missing\n");
        let err = host.sudo("true LXD-FAILS").await.unwrap_err();
        assert!(
            matches!(&err, HostError::Lxd(LxdError::Operation { .. })),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::LxdFailed);
        assert!(err.to_string().contains("Failed to start"), "{err}");
    }

    #[tokio::test]
    async fn upload_compare_and_download_go_through_the_same_scripts_and_the_files_api() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let (uid, gid) = (meta.uid().to_string(), meta.gid().to_string());
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(p("old.conf"), "old\n").unwrap();
        let files = [
            UploadFile::new(p("old.conf"), "new\n", 0o640).owned_by(&uid, &gid),
            UploadFile::new(p("sub dir/it's.txt"), "hi\n", 0o600),
        ];
        let client = client();
        let host = LxdHost::new(&client, "web");

        let changes: Vec<Change> = host
            .compare(&files)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.change)
            .collect();
        assert_eq!(changes, [Change::Updated, Change::Created]);
        assert_eq!(std::fs::read_to_string(p("old.conf")).unwrap(), "old\n");

        let changes: Vec<Change> = host
            .upload(&files)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.change)
            .collect();
        assert_eq!(changes, [Change::Updated, Change::Created]);
        assert_eq!(std::fs::read_to_string(p("old.conf")).unwrap(), "new\n");
        let mode = |name: &str| std::fs::metadata(p(name)).unwrap().mode() & 0o7777;
        assert_eq!(mode("old.conf"), 0o640);
        assert_eq!(mode("sub dir/it's.txt"), 0o600);
        // The archive went in through a temporary file, gone once read.
        let fake = transport(&client);
        let pushed = fake
            .seen()
            .iter()
            .filter(|s| *s == "POST /1.0/instances/web/files")
            .count();
        assert_eq!(pushed, 1);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let again = host.upload(&files).await.unwrap();
        assert!(again.iter().all(|c| c.change == Change::Unchanged));

        // A file through the files API; a link through `cat`; nothing is `None`.
        let execs = fake.commands().len();
        assert_eq!(
            host.download(&p("old.conf")).await.unwrap().unwrap(),
            b"new\n"
        );
        assert_eq!(fake.commands().len(), execs);
        std::os::unix::fs::symlink(p("old.conf"), p("link")).unwrap();
        assert_eq!(host.download(&p("link")).await.unwrap().unwrap(), b"new\n");
        assert_eq!(fake.commands().len(), execs + 1);
        assert!(host.download(&p("none")).await.unwrap().is_none());
        let err = host
            .download(dir.path().to_str().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RemoteCommandFailed, "{err}");
    }

    #[tokio::test]
    async fn a_failed_upload_is_an_lxd_failure() {
        let dir = tempfile::tempdir().unwrap();
        let client = client();
        let host = LxdHost::new(&client, "web");
        let files = [UploadFile::new(dir.path().to_str().unwrap(), "x", 0o644)];
        let err = host.upload(&files).await.unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        assert!(err.to_string().contains("instance 'web'"), "{err}");
        assert_eq!(err.kind(), ErrorKind::LxdFailed);
    }

    #[tokio::test]
    async fn a_stream_goes_through_a_temporary_file_with_its_progress() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let client = client();
        let host = LxdHost::new(&client, "web");
        let recorder = Recorder::new();
        let events = Events::new(recorder.clone());
        let command = format!("cat > {}", shell_quote(out.to_str().unwrap()));
        let reader = std::io::Cursor::new(data.clone());
        let size = Some(data.len() as u64);
        let result = in_step(&events, "release", "images", async {
            host.sudo_stdin(&command, Stdin::Reader(Box::new(reader)), size)
                .await
        })
        .await
        .unwrap();
        assert!(result.success(), "{}", result.stderr_str());
        assert_eq!(result.command, command);
        assert_eq!(std::fs::read(&out).unwrap(), data);
        // Progress from the step's own task, up to the whole size.
        let sent: Vec<u64> = recorder
            .whats()
            .into_iter()
            .filter_map(|w| match w {
                What::StepProgress {
                    progress: Progress::Bytes { bytes, total },
                    ..
                } => {
                    assert_eq!(total, size);
                    Some(bytes)
                }
                _ => None,
            })
            .collect();
        assert_eq!(sent.last(), Some(&(data.len() as u64)), "{sent:?}");
        assert!(sent.len() >= 3, "{sent:?}");
        // The temporary file was unlinked by the command's script.
        let script = &transport(&client).commands()[0][2];
        let temp = script.split_whitespace().nth(1).unwrap();
        let temp = temp.trim_start_matches('<').trim_matches('\'');
        assert!(temp.starts_with("/var/tmp/.torrust-stdin-"), "{script}");
        assert!(!Path::new(temp).exists(), "{temp} left behind");
    }

    /// A reader that fails after its first chunk.
    struct Broken(bool);

    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0 {
                return std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")));
            }
            self.0 = true;
            buf.put_slice(b"first chunk");
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_unreadable_stream_fails_as_input_and_runs_nothing() {
        let client = client();
        let host = LxdHost::new(&client, "web");
        let err = host
            .sudo_stdin("docker load", Stdin::Reader(Box::new(Broken(false))), None)
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::Input { .. }), "{err:?}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Io);
        let fake = transport(&client);
        assert!(fake.commands().is_empty());
        // It tried to clean up after itself.
        assert!(
            fake.seen()
                .iter()
                .any(|s| s == "DELETE /1.0/instances/web/files"),
            "{:?}",
            fake.seen()
        );
    }

    #[tokio::test]
    async fn no_tcp_connection_over_lxd_exec() {
        let client = client();
        let host = LxdHost::new(&client, "web");
        let Err(err) = host.connect_tcp("127.0.0.1", 1212).await else {
            panic!("connected");
        };
        assert!(matches!(err, HostError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:1212"), "{err}");
        assert!(transport(&client).seen().is_empty());
    }
}
