//! [`FakeHost`]: a [`Host`] in memory, for unit tests of tasks.
//!
//! It records every call ([`Call`]) in order, answers commands with the replies a test
//! scripted for them ([`FakeHost::reply`]), and keeps the files uploaded to it, so a task
//! applied twice sees its own first run. A command nothing was scripted for fails with exit
//! code 127 and says so on stderr: a test never passes by accident on an unexpected command.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{AttachIo, AttachRequest, Attached, Host, HostError, HostFuture, HostStream};
use crate::ssh::{Change, ExecOutput, ExitStatus, FileChange, SshError, Stdin, UploadFile};

/// One call a task made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Exec(String),
    Sudo(String),
    /// A root command and the bytes streamed into it.
    SudoStdin(String, Vec<u8>),
    /// The paths placed, in order.
    Upload(Vec<String>),
    /// The paths compared, in order.
    Compare(Vec<String>),
    Download(String),
    /// A file streamed from this byte offset on.
    DownloadTo(String, u64),
    /// A TCP connection from the host to this address and port.
    ConnectTcp(String, u16),
    /// An attached command (its command line is matched against the replies; the login
    /// shell's is empty) and the bytes its input got.
    Attach(AttachRequest, Vec<u8>),
}

/// A scripted answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    /// Exit 0 with this output.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// This exit code, with this on stderr.
    pub fn fail(code: u32, stderr: impl Into<String>) -> Self {
        Self {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// A file on the fake host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub contents: Vec<u8>,
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// (text the command contains, replies in turn; the last one repeats)
    replies: Vec<(String, Vec<Reply>)>,
    files: BTreeMap<String, FakeFile>,
    /// (address, port) on the host -> a local address that stands for it.
    ports: BTreeMap<(String, u16), std::net::SocketAddr>,
}

/// An in-memory host. See the module documentation.
#[derive(Default)]
pub struct FakeHost {
    state: Mutex<State>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers every command containing `pattern` with `replies`, one per call in turn, the
    /// last repeating. Patterns are tried in the order they were added; the first that matches
    /// answers.
    pub fn reply(&self, pattern: &str, replies: impl IntoIterator<Item = Reply>) -> &Self {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty(), "a scripted command needs a reply");
        self.lock().replies.push((pattern.to_string(), replies));
        self
    }

    /// Puts a file on the host, as if it had been there before.
    pub fn put_file(&self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> &Self {
        self.lock().files.insert(
            path.to_string(),
            FakeFile {
                contents: contents.into(),
                mode,
                owner: None,
                group: None,
            },
        );
        self
    }

    /// Makes [`Host::connect_tcp`] to `address:port` reach `local` (e.g. a listener the test
    /// runs). Other addresses are refused.
    pub fn route(&self, address: &str, port: u16, local: std::net::SocketAddr) -> &Self {
        self.lock().ports.insert((address.to_string(), port), local);
        self
    }

    /// The file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<FakeFile> {
        self.lock().files.get(path).cloned()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The commands run so far (plain and root, with or without stdin), in order.
    pub fn commands(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec(c) | Call::Sudo(c) | Call::SudoStdin(c, _) => Some(c),
                Call::Attach(r, _) => Some(r.command.unwrap_or_default()),
                _ => None,
            })
            .collect()
    }

    /// Forgets the calls recorded so far (the files and replies stay).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    fn answer(&self, call: Call, command: &str) -> ExecOutput {
        let mut state = self.lock();
        state.calls.push(call);
        let reply = state
            .replies
            .iter_mut()
            .find(|(pattern, _)| command.contains(pattern.as_str()))
            .map(|(_, replies)| {
                if replies.len() > 1 {
                    replies.remove(0)
                } else {
                    replies[0].clone()
                }
            })
            .unwrap_or_else(|| {
                Reply::fail(127, format!("fake host: no reply scripted for: {command}"))
            });
        ExecOutput {
            command: command.to_string(),
            host: "fake".to_string(),
            status: ExitStatus::Code(reply.code),
            stdout: reply.stdout.into_bytes(),
            stderr: reply.stderr.into_bytes(),
        }
    }

    fn change(have: Option<&FakeFile>, want: &UploadFile) -> Change {
        match have {
            None => Change::Created,
            Some(f)
                if f.contents == want.contents
                    && f.mode == want.mode
                    && (want.owner.is_none() || f.owner == want.owner)
                    && (want.group.is_none() || f.group == want.group) =>
            {
                Change::Unchanged
            }
            Some(_) => Change::Updated,
        }
    }

    fn changes(&self, files: &[UploadFile], apply: bool) -> Vec<FileChange> {
        let mut state = self.lock();
        let paths = files.iter().map(|f| f.remote_path.clone()).collect();
        state.calls.push(if apply {
            Call::Upload(paths)
        } else {
            Call::Compare(paths)
        });
        let mut out = Vec::new();
        for f in files {
            let change = Self::change(state.files.get(&f.remote_path), f);
            if apply && change != Change::Unchanged {
                let old = state.files.get(&f.remote_path).cloned();
                state.files.insert(
                    f.remote_path.clone(),
                    FakeFile {
                        contents: f.contents.clone(),
                        mode: f.mode,
                        owner: f
                            .owner
                            .clone()
                            .or(old.as_ref().and_then(|o| o.owner.clone())),
                        group: f.group.clone().or(old.and_then(|o| o.group)),
                    },
                );
            }
            out.push(FileChange {
                remote_path: f.remote_path.clone(),
                change,
            });
        }
        out
    }
}

impl Host for FakeHost {
    fn display(&self) -> String {
        "fake".to_string()
    }

    fn exec<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput> {
        Box::pin(async move { Ok(self.answer(Call::Exec(command.into()), command)) })
    }

    fn sudo<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput> {
        Box::pin(async move { Ok(self.answer(Call::Sudo(command.into()), command)) })
    }

    fn sudo_stdin<'a>(
        &'a self,
        command: &'a str,
        stdin: Stdin,
        _size: Option<u64>,
    ) -> HostFuture<'a, ExecOutput> {
        Box::pin(async move {
            let bytes = match stdin {
                Stdin::Bytes(b) => b,
                Stdin::Reader(mut r) => {
                    let mut b = Vec::new();
                    r.read_to_end(&mut b).await.map_err(|e| SshError::Channel {
                        host: "fake".into(),
                        command: command.into(),
                        detail: format!("cannot read the input: {e}"),
                    })?;
                    b
                }
            };
            Ok(self.answer(Call::SudoStdin(command.into(), bytes), command))
        })
    }

    fn upload<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>> {
        Box::pin(async move { Ok(self.changes(files, true)) })
    }

    fn compare<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>> {
        Box::pin(async move { Ok(self.changes(files, false)) })
    }

    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut state = self.lock();
            state.calls.push(Call::Download(path.into()));
            Ok(state.files.get(path).map(|f| f.contents.clone()))
        })
    }

    fn download_to<'a>(
        &'a self,
        path: &'a str,
        offset: u64,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
        _total: Option<u64>,
    ) -> HostFuture<'a, bool> {
        Box::pin(async move {
            let contents = {
                let mut state = self.lock();
                state.calls.push(Call::DownloadTo(path.into(), offset));
                state.files.get(path).map(|f| f.contents.clone())
            };
            let Some(contents) = contents else {
                return Ok(false);
            };
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(contents.len());
            let written = async {
                to.write_all(&contents[start..]).await?;
                to.flush().await
            };
            written.await.map_err(|source| HostError::Output {
                host: "fake".into(),
                command: format!("read {path}"),
                source,
            })?;
            Ok(true)
        })
    }

    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream> {
        Box::pin(async move {
            let local = {
                let mut state = self.lock();
                state.calls.push(Call::ConnectTcp(address.into(), port));
                state.ports.get(&(address.to_string(), port)).copied()
            };
            let refused = |detail: String| SshError::Channel {
                host: "fake".into(),
                command: format!("forward to {address}:{port}"),
                detail,
            };
            let local = local.ok_or_else(|| refused("fake host: no route scripted".into()))?;
            let stream = tokio::net::TcpStream::connect(local)
                .await
                .map_err(|e| refused(e.to_string()))?;
            let stream: HostStream = Box::new(stream);
            Ok(stream)
        })
    }

    /// Reads the input to its end, then writes the scripted reply's stdout and stderr to the
    /// local streams and ends with its code. (`stop` is not waited for.)
    fn attach<'a>(&'a self, request: &'a AttachRequest, io: AttachIo) -> HostFuture<'a, Attached> {
        Box::pin(async move {
            let AttachIo {
                stdin,
                mut stdout,
                mut stderr,
                ..
            } = io;
            let command = request.command.clone().unwrap_or_default();
            let failed = |e: std::io::Error| SshError::Channel {
                host: "fake".into(),
                command: command.clone(),
                detail: format!("local stream: {e}"),
            };
            let mut input = Vec::new();
            if let Some(mut r) = stdin {
                r.read_to_end(&mut input).await.map_err(failed)?;
            }
            let out = self.answer(Call::Attach(request.clone(), input), &command);
            stdout.write_all(&out.stdout).await.map_err(failed)?;
            stdout.flush().await.map_err(failed)?;
            stderr.write_all(&out.stderr).await.map_err(failed)?;
            stderr.flush().await.map_err(failed)?;
            Ok(Attached {
                status: out.status,
                stopped: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_in_turn_and_refuses_unscripted_commands() {
        let host = FakeHost::new();
        host.reply("docker ps", [Reply::ok("a"), Reply::ok("b")]);
        let h: &dyn Host = &host;
        assert_eq!(h.sudo("docker ps -a").await.unwrap().stdout, b"a");
        assert_eq!(h.sudo("docker ps -a").await.unwrap().stdout, b"b");
        assert_eq!(h.sudo("docker ps -a").await.unwrap().stdout, b"b");
        let out = h.exec("rm -rf /").await.unwrap();
        assert_eq!(out.status, ExitStatus::Code(127));
        assert!(out.stderr_str().contains("no reply scripted"));
        assert_eq!(
            host.calls(),
            vec![
                Call::Sudo("docker ps -a".into()),
                Call::Sudo("docker ps -a".into()),
                Call::Sudo("docker ps -a".into()),
                Call::Exec("rm -rf /".into()),
            ]
        );
    }

    #[tokio::test]
    async fn keeps_uploaded_files_and_reports_changes_like_the_real_upload() {
        let host = FakeHost::new();
        host.put_file("/etc/old", "x", 0o644);
        let files = [
            UploadFile::new("/etc/new", "n", 0o600),
            UploadFile::new("/etc/old", "x", 0o644),
        ];
        let compared = host.compare(&files).await.unwrap();
        assert_eq!(compared[0].change, Change::Created);
        assert_eq!(compared[1].change, Change::Unchanged);
        assert!(host.file("/etc/new").is_none(), "compare changed nothing");
        host.upload(&files).await.unwrap();
        assert_eq!(host.file("/etc/new").unwrap().contents, b"n");
        let again = host.upload(&files).await.unwrap();
        assert!(again.iter().all(|c| c.change == Change::Unchanged));
        assert_eq!(
            host.download("/etc/new").await.unwrap(),
            Some(b"n".to_vec())
        );
        assert_eq!(host.download("/none").await.unwrap(), None);
        let mode = UploadFile::new("/etc/old", "x", 0o600);
        assert_eq!(
            host.compare(&[mode]).await.unwrap()[0].change,
            Change::Updated
        );
    }

    #[tokio::test]
    async fn records_what_was_streamed() {
        let host = FakeHost::new();
        host.reply("docker load", [Reply::ok("Loaded image: a:1\n")]);
        let reader = std::io::Cursor::new(b"archive".to_vec());
        let out = host
            .sudo_stdin("docker load", Stdin::Reader(Box::new(reader)), None)
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(
            host.calls(),
            vec![Call::SudoStdin("docker load".into(), b"archive".to_vec())]
        );
    }

    #[tokio::test]
    async fn connects_only_where_routed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"hello").await.unwrap();
        });
        let host = FakeHost::new();
        host.route("127.0.0.1", 1313, local);
        let mut stream = host.connect_tcp("127.0.0.1", 1313).await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        assert!(host.connect_tcp("127.0.0.1", 9090).await.is_err());
        assert_eq!(
            host.calls(),
            vec![
                Call::ConnectTcp("127.0.0.1".into(), 1313),
                Call::ConnectTcp("127.0.0.1".into(), 9090)
            ]
        );
    }
}
