//! [`Host`]: one way onto a machine for every task.
//!
//! Tasks ([`crate::tasks`]) never hold an SSH session: they talk to a `&dyn Host`, which runs
//! commands (as the login user or as root), places files, reads a file back, streams a large
//! input into a command, opens TCP connections from the host (a port forward, to reach a
//! service bound to the host's loopback), and attaches a command to local streams (a shell, a
//! log stream: [`Host::attach`]). Three implementations:
//!
//! - [`Session`](crate::ssh::Session) (in `ssh.rs`): the real host over one SSH connection;
//! - [`lxd::LxdHost`]: an LXD instance through LXD's exec and files APIs, for the work done
//!   before SSH answers (an image without cloud-init); it opens no TCP connection;
//! - [`fake::FakeHost`]: in memory, for unit tests. It records every call and answers the
//!   replies a test scripted, and keeps uploaded files so that a second run sees them.
//!
//! Every method fails with a [`HostError`]: the transport's own error inside, so an error's
//! kind (`ssh_auth_failed`, `lxd_unreachable`, ...) is the transport's.
//!
//! The methods return boxed futures (not `async fn`) so that the trait stays object-safe: ops
//! pass one `&dyn Host` through every phase.

pub mod fake;
pub mod lxd;
mod ssh;
pub mod tunnel;

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error_kind::{Classify, ErrorKind};
use crate::lxd::LxdError;
use crate::ssh::{ExecOutput, ExitStatus, FileChange, SshError, Stdin, UploadFile, shell_quote};

/// What every [`Host`] method returns: a future that fails with a [`HostError`].
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, HostError>> + Send + 'a>>;

/// How a [`Host`] call failed: the error of the transport it went over, or a call that
/// transport cannot make.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Lxd(#[from] LxdError),
    /// The input for a command could not be read here.
    #[error("reading the input for `{command}` on {host} failed: {source}")]
    Input {
        host: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// What a command printed could not be written here (see [`Host::download_to`]).
    #[error("writing the output of `{command}` on {host} here failed: {source}")]
    Output {
        host: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The host's transport cannot do this (e.g. a TCP connection over LXD exec).
    #[error("{what} is not possible on {host}: {why}")]
    Unsupported {
        host: String,
        what: String,
        why: String,
    },
}

impl Classify for HostError {
    fn kind(&self) -> ErrorKind {
        match self {
            HostError::Ssh(e) => e.kind(),
            HostError::Lxd(e) => e.kind(),
            HostError::Input { .. } | HostError::Output { .. } => ErrorKind::Io,
            // A caller asked the wrong transport: a defect, not something to fix on the host.
            HostError::Unsupported { .. } => ErrorKind::Failed,
        }
    }
}

/// The exit code of [`download_script`] when the file does not exist.
const ABSENT: u32 = 3;

/// `cat`s the file, or exits [`ABSENT`] when there is none: [`Host::download`] as a command.
fn download_script(path: &str) -> String {
    download_from_script(path, 0)
}

/// Prints the file from byte `offset` on, or exits [`ABSENT`] when there is none:
/// [`Host::download_to`] as a command.
fn download_from_script(path: &str, offset: u64) -> String {
    let p = shell_quote(path);
    let read = if offset == 0 {
        format!("cat -- {p}")
    } else {
        format!("tail -c +{} -- {p}", offset + 1)
    };
    format!("if [ -e {p} ]; then exec {read}; else exit {ABSENT}; fi")
}

/// [`download_script`]'s output as [`Host::download`]'s answer.
fn downloaded(out: ExecOutput) -> Result<Option<Vec<u8>>, SshError> {
    if out.status.code() == Some(ABSENT) {
        return Ok(None);
    }
    Ok(Some(out.check()?.stdout))
}

/// A byte stream both ways: what [`Host::connect_tcp`] returns.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A TCP connection opened from the host.
pub type HostStream = Box<dyn Duplex>;

/// A terminal for [`Host::attach`]: its type (`TERM`) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pty {
    pub term: String,
    pub cols: u16,
    pub rows: u16,
}

/// What [`Host::attach`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// A shell command line; `None` for the login shell (give it a `pty`).
    pub command: Option<String>,
    /// As root (`sudo -n`, unless the login user is root). Only with a command.
    pub sudo: bool,
    /// A pseudo-terminal on the host; `None`: plain pipes (stdout and stderr apart, bytes as
    /// they are).
    pub pty: Option<Pty>,
}

/// A local byte source for [`AttachIo::stdin`].
pub type LocalRead = Box<dyn AsyncRead + Send + Unpin>;
/// A local byte sink for [`AttachIo::stdout`] and [`AttachIo::stderr`].
pub type LocalWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// What [`AttachIo::stop`] waits on.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The local ends of an attached command.
pub struct AttachIo {
    /// Sent to the command, then end-of-file. `None`: nothing is sent, and the command's input
    /// stays open until `stop` (a remote script can watch it to learn that we went away).
    pub stdin: Option<LocalRead>,
    pub stdout: LocalWrite,
    pub stderr: LocalWrite,
    /// New terminal sizes (columns, rows), forwarded as window-change requests.
    pub resize: Option<UnboundedReceiver<(u16, u16)>>,
    /// Resolves when the local side is done (Ctrl-C): see [`Host::attach`].
    pub stop: Option<StopSignal>,
}

/// How an attached command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub status: ExitStatus,
    /// Ended by [`AttachIo::stop`] rather than by itself.
    pub stopped: bool,
}

/// A machine that tasks act on.
pub trait Host: Send + Sync {
    /// `user@host:port` (or what stands for it), for messages.
    fn display(&self) -> String;

    /// Runs a shell command line as the login user. A non-zero exit is not an error: look at
    /// the output's status, or call [`ExecOutput::check`].
    fn exec<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput>;

    /// Runs a shell command line as root (`sudo -n` unless the login user is root).
    fn sudo<'a>(&'a self, command: &'a str) -> HostFuture<'a, ExecOutput>;

    /// [`sudo`](Self::sudo) with `stdin` streamed into the command (e.g. an image archive into
    /// `docker load`), without holding it all in memory. `size`, when known, is the total the
    /// step's byte progress counts up to.
    fn sudo_stdin<'a>(
        &'a self,
        command: &'a str,
        stdin: Stdin,
        size: Option<u64>,
    ) -> HostFuture<'a, ExecOutput>;

    /// Places the files (as root), each atomically with its mode and owner; unchanged ones are
    /// not touched. Reports each file's change, in order.
    fn upload<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>>;

    /// What [`upload`](Self::upload) would report, changing nothing.
    fn compare<'a>(&'a self, files: &'a [UploadFile]) -> HostFuture<'a, Vec<FileChange>>;

    /// The contents of the file at `path` (read as root), or `None` when nothing is there. The
    /// contents are never logged (the file may hold secrets).
    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>>;

    /// Streams the file at `path` (read as root), from byte `offset` on, into `to`, without
    /// holding it in memory; inside a step the bytes received are its progress, of `total`
    /// when known. `false` when nothing is there (nothing written). A failed write to `to`
    /// fails the call; the writer knows why.
    fn download_to<'a>(
        &'a self,
        path: &'a str,
        offset: u64,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
        total: Option<u64>,
    ) -> HostFuture<'a, bool>;

    /// A TCP connection from the host to `address:port`, as the host sees it (`127.0.0.1` is
    /// the host itself): a local port forward, carried over the existing connection.
    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream>;

    /// A port on the host's loopback whose connections reach `upstream` (`host:port`) from
    /// this machine (SSH remote forwarding). Returns the host's port; it lasts as long as the
    /// connection. Only SSH carries it.
    fn forward_remote<'a>(&'a self, upstream: &'a str) -> HostFuture<'a, u16> {
        Box::pin(async move {
            Err(HostError::Unsupported {
                host: self.display(),
                what: format!("a port on the host forwarded to {upstream}"),
                why: "only an SSH connection carries remote forwards".into(),
            })
        })
    }

    /// Runs `request` with its input and output attached to `io`'s local streams, as they
    /// come, and resolves with its exit status. Nothing is kept in memory.
    ///
    /// When `io.stop` resolves first: the command's input is closed (end-of-file), it is sent
    /// SIGINT (where the server delivers signals), and after a short grace the channel is
    /// closed whether or not it ended; the result then says `stopped`.
    fn attach<'a>(&'a self, request: &'a AttachRequest, io: AttachIo) -> HostFuture<'a, Attached>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_script_reads_a_file_or_says_it_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("it's here");
        std::fs::write(&file, "a\nb\n").unwrap();
        let run = |p: &std::path::Path| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(download_script(p.to_str().unwrap()))
                .output()
                .unwrap()
        };
        let out = run(&file);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, b"a\nb\n");
        let out = run(&dir.path().join("none"));
        assert_eq!(out.status.code(), Some(ABSENT as i32));
        assert!(out.stdout.is_empty());

        let from = |offset: u64| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(download_from_script(file.to_str().unwrap(), offset))
                .output()
                .unwrap()
                .stdout
        };
        assert_eq!(from(0), b"a\nb\n");
        assert_eq!(from(2), b"b\n");
        assert_eq!(from(4), b"");
    }
}
