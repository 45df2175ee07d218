//! [`Session`]: one authenticated connection, shared by every command run on the host.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;

use super::auth::{self, AuthFailure, Identity};
use super::known_hosts::{self, Verdict, fingerprint};
use super::{ConnectOptions, SshError, Target};

/// Why the handshake stopped, as reported by the handler.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Russh(russh::Error),
    /// A changed host key or a known_hosts failure: reported as is, never retried.
    Fatal(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

/// Checks the host key against the pinned one; pins it on first contact.
pub(crate) struct PinningHandler {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    /// [`ConnectOptions::expected_host_key`].
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
    /// The host's forwarded ports and where their connections go ([`super::remote_forward`]).
    forwards: super::remote_forward::RemoteForwards,
}

impl client::Handler for PinningHandler {
    type Error = HandlerError;

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        super::remote_forward::open(&self.forwards, channel, connected_port, reply);
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = key.public_key();
        let presented = fingerprint(&key);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(presented.clone());
        if let Some(expected) = self.expected.as_ref().filter(|e| **e != presented) {
            let pinned = known_hosts::pinned_keys(&self.known_hosts, &self.host, self.port)
                .map_err(HandlerError::Fatal)?;
            if pinned.is_empty() {
                // Nothing pinned here: the recorded key is the pin, not first use.
                return Err(HandlerError::Fatal(SshError::HostKeyNotRecorded {
                    host: self.host.clone(),
                    port: self.port,
                    expected_fingerprint: expected.clone(),
                    presented_fingerprint: presented,
                }));
            }
        }
        match known_hosts::check_and_pin(&self.known_hosts, &self.host, self.port, &key)
            .map_err(HandlerError::Fatal)?
        {
            Verdict::Known => Ok(true),
            Verdict::Unknown | Verdict::Pinned => {
                tracing::info!(
                    target: "ssh",
                    "pinned the host key of {}:{} ({presented}) in {}",
                    self.host,
                    self.port,
                    self.known_hosts.display()
                );
                Ok(true)
            }
            Verdict::Changed {
                line,
                pinned_fingerprint,
            } => Err(HandlerError::Fatal(SshError::HostKeyChanged {
                host: self.host.clone(),
                port: self.port,
                known_hosts: self.known_hosts.clone(),
                line,
                pinned_fingerprint,
                presented_fingerprint: presented,
            })),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) handle: Handle<PinningHandler>,
    pub(crate) target: Target,
    host_key_fingerprint: String,
    pub(crate) forwards: super::remote_forward::RemoteForwards,
}

/// One authenticated SSH connection to a host. Clone it freely: clones share the connection, and
/// commands run concurrently on separate channels. The connection closes when the last clone is
/// dropped, or on [`close`](Self::close).
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.inner.target.display())
            .field("host_key", &self.inner.host_key_fingerprint)
            .finish()
    }
}

fn zero_err_fields(host: &str, port: u16) -> (String, u16, u32, Duration) {
    (host.to_string(), port, 0, Duration::ZERO)
}

/// Classifies an I/O error met while connecting.
fn classify_io(host: &str, port: u16, e: &std::io::Error, timeout: Duration) -> SshError {
    let (host, port, attempts, elapsed) = zero_err_fields(host, port);
    let detail = e.to_string();
    match e.kind() {
        ErrorKind::ConnectionRefused => SshError::ConnectionRefused {
            host,
            port,
            attempts,
            elapsed,
        },
        ErrorKind::TimedOut => SshError::Timeout {
            host,
            port,
            timeout,
            attempts,
            elapsed,
        },
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => SshError::ConnectionReset {
            host,
            port,
            detail,
            attempts,
            elapsed,
        },
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => SshError::Unreachable {
            host,
            port,
            detail,
            attempts,
            elapsed,
        },
        _ => SshError::Protocol { host, port, detail },
    }
}

/// Classifies a russh error met during the handshake.
fn classify_russh(host: &str, port: u16, e: russh::Error, timeout: Duration) -> SshError {
    match e {
        russh::Error::IO(io) => classify_io(host, port, &io, timeout),
        russh::Error::Disconnect | russh::Error::HUP | russh::Error::SendError => {
            let (host, port, attempts, elapsed) = zero_err_fields(host, port);
            SshError::ConnectionReset {
                host,
                port,
                detail: format!("the server closed the connection ({e})"),
                attempts,
                elapsed,
            }
        }
        russh::Error::ConnectionTimeout | russh::Error::Elapsed(_) => {
            let (host, port, attempts, elapsed) = zero_err_fields(host, port);
            SshError::Timeout {
                host,
                port,
                timeout,
                attempts,
                elapsed,
            }
        }
        other => SshError::Protocol {
            host: host.to_string(),
            port,
            detail: other.to_string(),
        },
    }
}

fn client_config(options: &ConnectOptions) -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(options.keepalive_interval),
        keepalive_max: options.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    })
}

async fn attempt(
    target: &Target,
    config: Arc<client::Config>,
    identity: &Identity,
    timeout: Duration,
    expected: Option<&String>,
) -> Result<
    (
        Handle<PinningHandler>,
        String,
        super::remote_forward::RemoteForwards,
    ),
    SshError,
> {
    let (host, port) = (target.host.as_str(), target.port);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SshError::Resolve {
            host: host.into(),
            port,
            detail: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(SshError::Resolve {
            host: host.into(),
            port,
            detail: "no address found".into(),
        });
    }
    let mut last_err = None;
    let mut stream = None;
    for addr in &addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let stream = match (stream, last_err) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(classify_io(host, port, &e, timeout)),
        (None, None) => unreachable!("at least one address was tried"),
    };
    let _ = stream.set_nodelay(true);
    let seen = Arc::new(Mutex::new(None));
    let forwards = super::remote_forward::RemoteForwards::default();
    let handler = PinningHandler {
        host: host.to_string(),
        port,
        known_hosts: target.known_hosts.clone(),
        expected: expected.cloned(),
        seen: seen.clone(),
        forwards: forwards.clone(),
    };
    let mut handle = client::connect_stream(config, stream, handler)
        .await
        .map_err(|e| match e {
            HandlerError::Fatal(e) => e,
            HandlerError::Russh(e) => classify_russh(host, port, e, timeout),
        })?;
    let host_fp = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();

    let accepted = auth::authenticate(&mut handle, &target.user, identity)
        .await
        .map_err(|f| match f {
            AuthFailure::Protocol(e) => classify_russh(host, port, e, timeout),
            AuthFailure::Agent { socket, detail } => SshError::Agent { socket, detail },
        })?;
    if !accepted {
        return Err(SshError::AuthRejected {
            user: target.user.clone(),
            host: host.to_string(),
            port,
            key_path: identity.path().to_path_buf(),
            fingerprint: identity.fingerprint(),
            via_agent: identity.via_agent(),
        });
    }
    Ok((handle, host_fp, forwards))
}

impl Session {
    /// Connects to `target` and authenticates with its key.
    ///
    /// Key problems (unreadable, unsupported, encrypted without passphrase) fail at once, before
    /// any network traffic. Connection refused, timeouts, resets and unreachable networks are
    /// retried until [`ConnectOptions::retry_deadline`]; a rejected key or a changed host key is
    /// never retried.
    pub async fn connect(target: &Target, options: &ConnectOptions) -> Result<Session, SshError> {
        let identity = auth::load_identity(&target.private_key, &options.passphrase).await?;
        let config = client_config(options);
        let start = Instant::now();
        let deadline = start + options.retry_deadline;
        let mut pause = Duration::from_millis(250);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let limit = if attempts == 1 {
                options.connect_timeout
            } else {
                options
                    .connect_timeout
                    .min(remaining.max(Duration::from_millis(500)))
            };
            let result = tokio::time::timeout(
                limit,
                attempt(
                    target,
                    config.clone(),
                    &identity,
                    limit,
                    options.expected_host_key.as_ref(),
                ),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SshError::Timeout {
                    host: target.host.clone(),
                    port: target.port,
                    timeout: limit,
                    attempts,
                    elapsed: start.elapsed(),
                })
            });
            match result {
                Ok((handle, host_key_fingerprint, forwards)) => {
                    tracing::debug!(
                        target: "ssh",
                        "connected to {} after {attempts} attempt(s) in {:?}",
                        target.display(),
                        start.elapsed()
                    );
                    return Ok(Session {
                        inner: Arc::new(Inner {
                            handle,
                            target: target.clone(),
                            host_key_fingerprint,
                            forwards,
                        }),
                    });
                }
                Err(e) => {
                    let now = Instant::now();
                    if !e.is_transient() || now + pause >= deadline {
                        return Err(e.with_attempts(attempts, start.elapsed()));
                    }
                    tracing::debug!(target: "ssh", "attempt {attempts} to reach {} failed, retrying: {e}", target.display());
                    tokio::time::sleep(pause).await;
                    pause =
                        (pause * 2).min(options.retry_max_interval.max(Duration::from_millis(250)));
                }
            }
        }
    }

    /// The target this session is connected to.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The SHA256 fingerprint of the key the host presented (`SHA256:...`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.inner.host_key_fingerprint
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed()
    }

    /// Closes the connection for every clone.
    pub async fn close(&self) {
        let _ = self
            .inner
            .handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await;
    }

    pub(crate) fn lost(&self, e: impl std::fmt::Display) -> SshError {
        SshError::ConnectionLost {
            host: self.inner.target.host.clone(),
            port: self.inner.target.port,
            detail: e.to_string(),
        }
    }
}
