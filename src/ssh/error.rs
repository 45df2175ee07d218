//! [`SshError`]: every way the SSH layer fails, each with what failed, why, and the fix.

use std::path::PathBuf;
use std::time::Duration;

use super::exec::ExitStatus;

/// Where a passphrase came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseOrigin {
    /// The `TORRUST_DEPLOYER_SSH_PASSPHRASE` environment variable (or the one configured).
    EnvVar,
    /// Typed at the terminal prompt.
    Prompt,
    /// Given by the caller in [`super::ConnectOptions`].
    Caller,
}

impl std::fmt::Display for PassphraseOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EnvVar => "the passphrase environment variable",
            Self::Prompt => "the terminal prompt",
            Self::Caller => "the configured passphrase",
        })
    }
}

fn secs(d: &Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// An SSH failure. Each message says what failed, the likely cause, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// TCP connection refused: nothing listens on the port.
    #[error(
        "cannot connect to {host}:{port}: connection refused ({attempts} attempt(s) over {elapsed}). \
         Nothing listens on that port: sshd is not running (yet) on the host, or the SSH port is \
         wrong. Fix: check that the host has finished booting and runs sshd, and that the SSH port \
         in the environment file is the one sshd listens on.",
        elapsed = secs(elapsed)
    )]
    ConnectionRefused {
        host: String,
        port: u16,
        attempts: u32,
        elapsed: Duration,
    },

    /// No answer within the connect timeout.
    #[error(
        "cannot connect to {host}:{port}: no SSH answer within {timeout} per attempt ({attempts} \
         attempt(s) over {elapsed}). The host is down or still booting, its address is wrong, or a \
         firewall drops the traffic. Fix: check that the host runs and the address is right, and \
         that every firewall on the way (host, cloud provider) allows TCP port {port} from this \
         machine.",
        timeout = secs(timeout),
        elapsed = secs(elapsed)
    )]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
        attempts: u32,
        elapsed: Duration,
    },

    /// The connection was reset or closed during the handshake.
    #[error(
        "cannot connect to {host}:{port}: the connection was reset or closed during the SSH \
         handshake ({detail}; {attempts} attempt(s) over {elapsed}). sshd may be restarting, \
         refusing connections (MaxStartups), or something other than sshd listens on that port. \
         Fix: retry once the host has settled; check that port {port} is sshd's.",
        elapsed = secs(elapsed)
    )]
    ConnectionReset {
        host: String,
        port: u16,
        detail: String,
        attempts: u32,
        elapsed: Duration,
    },

    /// No route to the host (network or host unreachable).
    #[error(
        "cannot connect to {host}:{port}: {detail} ({attempts} attempt(s) over {elapsed}). There is \
         no route to that address from this machine. Fix: check the host's address and that this \
         machine's network reaches it.",
        elapsed = secs(elapsed)
    )]
    Unreachable {
        host: String,
        port: u16,
        detail: String,
        attempts: u32,
        elapsed: Duration,
    },

    /// The host name does not resolve.
    #[error(
        "cannot resolve the host name {host:?}: {detail}. Fix: check the host name in the \
         environment file, or use an IP address."
    )]
    Resolve {
        host: String,
        port: u16,
        detail: String,
    },

    /// The server refused every offered key for the user.
    #[error(
        "{user}@{host}:{port} rejected the SSH key {key} ({fingerprint}){via}. The public key is not \
         in the authorized_keys of user {user:?} on the host, or that user does not exist or may \
         not log in. Fix: add the public key ({key}.pub) to ~{user}/.ssh/authorized_keys on the host \
         (cloud-init `ssh_authorized_keys`), or set the SSH user and key in the environment file to \
         a pair the host accepts.",
        key = key_path.display(),
        via = if *via_agent { " offered through ssh-agent" } else { "" }
    )]
    AuthRejected {
        user: String,
        host: String,
        port: u16,
        key_path: PathBuf,
        fingerprint: String,
        via_agent: bool,
    },

    /// The host presented a key other than the pinned one.
    #[error(
        "the SSH host key of {host}:{port} has CHANGED: {known_hosts} (line {line}) pins \
         {pinned_fingerprint}, but the host now presents {presented_fingerprint}. Either the host \
         was recreated (a new machine at the same address) or someone is intercepting the \
         connection; refusing to connect. Fix: if the host was legitimately recreated, destroy the \
         environment (`torrust-tracker-deployer destroy`) and provision it again, or remove the \
         host's line(s) from {known_hosts}; otherwise find out why before connecting.",
        known_hosts = known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        port: u16,
        known_hosts: PathBuf,
        line: usize,
        pinned_fingerprint: String,
        presented_fingerprint: String,
    },

    /// Nothing pinned in known_hosts, and the host presented a key other than the recorded one.
    #[error(
        "the SSH host key of {host}:{port} is not the one recorded for it: the environment's \
         state records {expected_fingerprint} (known_hosts pins nothing for it), but the host \
         presents {presented_fingerprint}. Refusing to connect: this is not trust on first use. \
         Fix: if the host was legitimately recreated, destroy the environment and provision it \
         again; otherwise find out who answers at {host}:{port}."
    )]
    HostKeyNotRecorded {
        host: String,
        port: u16,
        expected_fingerprint: String,
        presented_fingerprint: String,
    },

    /// The private key file cannot be read.
    #[error(
        "cannot read the SSH private key {path}: {source}. Fix: check the key path in the \
         environment file and that this user may read the file.",
        path = path.display()
    )]
    KeyUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The private key file is not a key this tool can use.
    #[error(
        "the SSH private key {path} cannot be used: {detail}. Supported: OpenSSH-format ed25519, \
         ECDSA (nistp256/384/521) and RSA private keys (PEM PKCS#1/PKCS#8 too). Fix: point to such \
         a key, or make one with `ssh-keygen -t ed25519 -f <path>`.",
        path = path.display()
    )]
    KeyUnsupported { path: PathBuf, detail: String },

    /// The key is passphrase-protected and no passphrase source is available.
    #[error(
        "the SSH private key {path} ({fingerprint}) is passphrase-protected and no passphrase is \
         available ({tried}). Fix: load the key into a running ssh-agent (`ssh-add {path}`) and \
         export SSH_AUTH_SOCK, or export TORRUST_DEPLOYER_SSH_PASSPHRASE, or run the command from \
         a terminal to be asked.",
        path = path.display()
    )]
    KeyEncryptedNoPassphrase {
        path: PathBuf,
        fingerprint: String,
        tried: String,
    },

    /// The passphrase did not decrypt the key.
    #[error(
        "the passphrase from {origin} does not decrypt the SSH private key {path}. Fix: give the \
         right passphrase, or load the key into ssh-agent (`ssh-add {path}`).",
        path = path.display()
    )]
    WrongPassphrase {
        path: PathBuf,
        origin: PassphraseOrigin,
    },

    /// Talking to ssh-agent failed.
    #[error(
        "ssh-agent at {socket} failed: {detail}. Fix: check that the agent runs (`ssh-add -l`), \
         or unset SSH_AUTH_SOCK to use the key file directly."
    )]
    Agent { socket: String, detail: String },

    /// Reading or writing the known_hosts file failed.
    #[error(
        "known_hosts file {path}: {detail}. Fix: check that the file and its directory are \
         readable and writable by this user.",
        path = path.display()
    )]
    KnownHosts { path: PathBuf, detail: String },

    /// Any other SSH protocol failure while connecting.
    #[error(
        "SSH handshake with {host}:{port} failed: {detail}. Fix: check that the host runs a \
         current OpenSSH server on that port."
    )]
    Protocol {
        host: String,
        port: u16,
        detail: String,
    },

    /// The connection broke after it was established.
    #[error(
        "the SSH connection to {host}:{port} was lost: {detail}. The host may have rebooted or the \
         network dropped. Fix: check the host, then run the command again (it is safe to repeat)."
    )]
    ConnectionLost {
        host: String,
        port: u16,
        detail: String,
    },

    /// Opening or driving a channel failed.
    #[error("SSH channel to {host} for `{command}` failed: {detail}")]
    Channel {
        host: String,
        command: String,
        detail: String,
    },

    /// Reading the local stdin source for a remote command failed.
    #[error("reading the input for `{command}` on {host} failed: {source}")]
    Stdin {
        host: String,
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// A remote command did not succeed (see [`super::ExecOutput::check`]).
    #[error(
        "`{command}` on {host} failed ({status}){stderr}",
        stderr = if stderr_tail.is_empty() { String::new() } else { format!(": {stderr_tail}") }
    )]
    CommandFailed {
        host: String,
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },

    /// An upload failed.
    #[error("upload to {host} failed: {detail}")]
    Upload { host: String, detail: String },
}

impl crate::error_kind::Classify for SshError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            Self::ConnectionRefused { .. }
            | Self::Timeout { .. }
            | Self::ConnectionReset { .. }
            | Self::Unreachable { .. }
            | Self::Resolve { .. } => ErrorKind::SshUnreachable,
            Self::AuthRejected { .. } => ErrorKind::SshAuthFailed,
            Self::HostKeyChanged { .. } | Self::HostKeyNotRecorded { .. } => {
                ErrorKind::SshHostKeyChanged
            }
            Self::KeyUnreadable { .. }
            | Self::KeyUnsupported { .. }
            | Self::KeyEncryptedNoPassphrase { .. }
            | Self::WrongPassphrase { .. }
            | Self::Agent { .. } => ErrorKind::SshKeyUnusable,
            Self::KnownHosts { .. } | Self::Stdin { .. } => ErrorKind::Io,
            Self::Protocol { .. }
            | Self::ConnectionLost { .. }
            | Self::Channel { .. }
            | Self::Upload { .. } => ErrorKind::SshFailed,
            Self::CommandFailed { .. } => ErrorKind::RemoteCommandFailed,
        }
    }
}

impl SshError {
    /// Whether a connect attempt that failed this way is worth repeating.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::ConnectionRefused { .. }
                | Self::Timeout { .. }
                | Self::ConnectionReset { .. }
                | Self::Unreachable { .. }
        )
    }

    /// Sets attempts and elapsed time on a transient variant (no-op otherwise).
    pub(crate) fn with_attempts(mut self, n: u32, took: Duration) -> Self {
        match &mut self {
            Self::ConnectionRefused {
                attempts, elapsed, ..
            }
            | Self::Timeout {
                attempts, elapsed, ..
            }
            | Self::ConnectionReset {
                attempts, elapsed, ..
            }
            | Self::Unreachable {
                attempts, elapsed, ..
            } => {
                *attempts = n;
                *elapsed = took;
            }
            _ => {}
        }
        self
    }
}
