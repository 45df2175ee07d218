//! The SSH layer: connect to a host, run commands, upload files. Pure Rust (russh); never runs
//! the `ssh` binary.
//!
//! - [`Session::connect`] opens ONE connection to a [`Target`] (retrying transient failures until
//!   a deadline), pins the host key on first contact into the target's `known_hosts` file and
//!   refuses a changed key afterwards, and authenticates with the target's private key (directly,
//!   through ssh-agent, or decrypted with a passphrase). A [`Session`] is cheap to clone; every
//!   command runs on its own channel of that one connection, so commands can run concurrently.
//! - [`Session::exec`] / [`Session::exec_with`] run a command and return its [`ExecOutput`],
//!   logging each output line to `tracing` (debug, target `ssh`) as it arrives and optionally
//!   handing it to an [`OutputSink`]. [`Session::sudo`] runs through `sudo -n` unless the user is
//!   root.
//! - [`Session::upload`] places files atomically with their owner, group and mode, and reports
//!   which ones changed ([`FileChange`]).
//! - [`known_hosts`] reads the pinned fingerprint and forgets a host (for `destroy`).
//!
//! Every failure is an [`SshError`] whose message says what failed, why, and the fix.

mod attach;
mod auth;
mod error;
mod exec;
pub mod known_hosts;
mod public_key;
mod quote;
pub(crate) mod remote_forward;
mod session;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

pub use auth::PASSPHRASE_ENV;
pub use error::{PassphraseOrigin, SshError};
pub use exec::{ExecOptions, ExecOutput, ExitStatus, OutputSink, OutputStream, Stdin};
pub use public_key::{
    MAX_PUBLIC_KEY_FILE, PUBLIC_KEY_FIX, PublicKeyError, public_key_line, read_public_key,
};
pub use quote::{shell_join, shell_quote};
pub use session::Session;
pub use upload::{Change, FileChange, UploadFile};
pub(crate) use upload::{RootShell, place};

use crate::secret::Secret;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address.
    pub host: String,
    /// SSH port, usually 22.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file (OpenSSH or PEM format).
    pub private_key: PathBuf,
    /// The known_hosts file where the host key is pinned (created on first contact).
    pub known_hosts: PathBuf,
}

impl Target {
    /// `user@host:port`, for messages.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// Whether commands run as root without sudo.
    pub fn is_root(&self) -> bool {
        self.user == "root"
    }

    /// The SHA256 fingerprint of the host key pinned for this target, if any.
    pub fn pinned_fingerprint(&self) -> Result<Option<String>, SshError> {
        known_hosts::pinned_fingerprint(&self.known_hosts, &self.host, self.port)
    }

    /// Removes this target's host key lines from its known_hosts file; returns how many.
    pub fn forget_host_key(&self) -> Result<usize, SshError> {
        known_hosts::forget_host(&self.known_hosts, &self.host, self.port)
    }
}

/// How to get at a passphrase-protected private key. They are tried in this order: ssh-agent,
/// [`passphrase`](Self::passphrase), the environment variable, a terminal prompt.
#[derive(Debug, Clone)]
pub struct PassphraseSource {
    /// Use ssh-agent when it holds the key.
    pub agent: bool,
    /// The agent socket; `None` reads `SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    /// A passphrase given directly.
    pub passphrase: Option<Secret>,
    /// The environment variable holding the passphrase ([`PASSPHRASE_ENV`] by default).
    pub env_var: Option<String>,
    /// Ask on the terminal, only when standard input is a terminal.
    pub prompt: bool,
}

impl Default for PassphraseSource {
    fn default() -> Self {
        Self {
            agent: true,
            agent_socket: None,
            passphrase: None,
            env_var: Some(PASSPHRASE_ENV.to_string()),
            prompt: true,
        }
    }
}

impl PassphraseSource {
    /// Nothing but the key file itself: no agent, no variable, no prompt.
    pub fn none() -> Self {
        Self {
            agent: false,
            agent_socket: None,
            passphrase: None,
            env_var: None,
            prompt: false,
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Time allowed for one attempt: TCP connect, SSH handshake and authentication.
    pub connect_timeout: Duration,
    /// Transient failures (refused, timeout, reset, unreachable) are retried until this much time
    /// has passed since the first attempt. Zero means a single attempt.
    pub retry_deadline: Duration,
    /// The longest pause between attempts (pauses grow from 250 ms up to this).
    pub retry_max_interval: Duration,
    /// Send a keepalive after this long without traffic; the connection is dropped after
    /// [`keepalive_max`](Self::keepalive_max) unanswered ones.
    pub keepalive_interval: Duration,
    /// Unanswered keepalives before the connection counts as lost.
    pub keepalive_max: usize,
    /// How to unlock a passphrase-protected key.
    pub passphrase: PassphraseSource,
    /// The host key's fingerprint as recorded elsewhere (the environment's state): when
    /// known_hosts pins nothing for the host (lost, or never written), only this key is
    /// accepted and pinned, never whatever the host presents.
    pub expected_host_key: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            retry_deadline: Duration::from_secs(120),
            retry_max_interval: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
            passphrase: PassphraseSource::default(),
            expected_host_key: None,
        }
    }
}
