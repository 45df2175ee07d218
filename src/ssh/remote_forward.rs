//! Remote port forwarding (`ssh -R`): a port on the host's loopback whose connections the SSH
//! server hands back to us over the session, and that we connect to an address this machine
//! reaches. configure uses it to carry the host's apt traffic to a mirror or proxy that only
//! the operator's machine reaches (ADR 39).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use russh::client::{ChannelOpenHandle, Msg};

use super::{Session, SshError};

/// Host port -> the `host:port` its connections go to, shared with the session's handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct RemoteForwards(Arc<Mutex<HashMap<u32, String>>>);

impl RemoteForwards {
    fn get(&self, port: u32) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
            .cloned()
    }

    fn insert(&self, port: u32, upstream: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port, upstream);
    }
}

/// A connection the server opened on a forwarded port: connected to its upstream from this
/// machine, then accepted and copied both ways; refused (the handle dropped) when the port is
/// not ours or the upstream cannot be reached.
pub(crate) fn open(
    forwards: &RemoteForwards,
    channel: russh::Channel<Msg>,
    port: u32,
    reply: ChannelOpenHandle,
) {
    let Some(upstream) = forwards.get(port) else {
        tracing::warn!(target: "ssh", "refused a forwarded connection on unknown port {port}");
        return;
    };
    tokio::spawn(async move {
        let mut tcp = match tokio::net::TcpStream::connect(&upstream).await {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(target: "ssh", "forwarded port {port}: cannot reach {upstream}: {e}");
                return;
            }
        };
        reply.accept().await;
        let mut stream = channel.into_stream();
        match tokio::io::copy_bidirectional(&mut stream, &mut tcp).await {
            Ok((up, down)) => tracing::debug!(
                target: "ssh",
                "forwarded port {port} -> {upstream}: {up} bytes up, {down} down"
            ),
            Err(e) => tracing::debug!(target: "ssh", "forwarded port {port} -> {upstream}: {e}"),
        }
    });
}

impl Session {
    /// Asks the server for a port on the host's `127.0.0.1` (chosen by the server) whose
    /// connections reach `upstream` (`host:port`) from this machine. Returns the port; the
    /// forward lasts as long as the session.
    pub async fn forward_remote(&self, upstream: &str) -> Result<u16, SshError> {
        let refused = |detail: String| SshError::Channel {
            host: self.inner.target.host.clone(),
            command: format!("a port forwarded to {upstream}"),
            detail,
        };
        let port = self
            .inner
            .handle
            .tcpip_forward("127.0.0.1", 0)
            .await
            .map_err(|e| match e {
                russh::Error::RequestDenied => refused(
                    "the server refused remote forwarding: allow it in the host's sshd \
                     (`AllowTcpForwarding yes` or `remote`)"
                        .into(),
                ),
                other => refused(other.to_string()),
            })?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| refused(format!("the server bound an unusable port {port}")))?;
        self.inner
            .forwards
            .insert(u32::from(port), upstream.to_string());
        tracing::debug!(target: "ssh", "host port 127.0.0.1:{port} forwarded to {upstream}");
        Ok(port)
    }
}
