//! [`Host`]: one way onto a machine for every task.
//!
//! Tasks ([`crate::tasks`]) never hold an SSH session: they talk to a `&dyn Host`, which runs
//! commands (as the login user or as root), places files, reads a file back, streams a large
//! input into a command, and opens TCP connections from the host (a port forward, to reach a
//! service bound to the host's loopback). Two implementations:
//!
//! - [`Session`](crate::ssh::Session) (in `ssh.rs`): the real host over one SSH connection;
//! - [`fake::FakeHost`]: in memory, for unit tests. It records every call and answers the
//!   replies a test scripted, and keeps uploaded files so that a second run sees them.
//!
//! The methods return boxed futures (not `async fn`) so that the trait stays object-safe: ops
//! pass one `&dyn Host` through every phase.

pub mod fake;
mod ssh;

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::ssh::{ExecOutput, FileChange, SshError, Stdin, UploadFile};

/// What every [`Host`] method returns: a future that fails with an [`SshError`].
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SshError>> + Send + 'a>>;

/// A byte stream both ways: what [`Host::connect_tcp`] returns.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A TCP connection opened from the host.
pub type HostStream = Box<dyn Duplex>;

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

    /// The contents of the file at `path` (read as root), or `None` when nothing is there.
    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>>;

    /// A TCP connection from the host to `address:port`, as the host sees it (`127.0.0.1` is
    /// the host itself): a local port forward, carried over the existing connection.
    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream>;
}
