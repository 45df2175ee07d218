//! [`LocalForward`]: a port on this machine's loopback that leads to a service on the host,
//! through [`Host::connect_tcp`] (an SSH `direct-tcpip` channel).
//!
//! It lets any local client (reqwest, a probe) reach a service that is bound to the host's
//! loopback or to a Docker network, and so is not published: Prometheus, the admin API when it
//! is loopback-only, the health check API. Each accepted local connection opens its own
//! channel; bytes are copied both ways until either side closes. Nothing listens on anything
//! but 127.0.0.1, and the listener closes when the `LocalForward` is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Host, HostError};

/// A local listener forwarding to `address:port` as seen from the host.
#[derive(Debug)]
pub struct LocalForward {
    local: SocketAddr,
    remote: String,
    task: JoinHandle<()>,
}

impl LocalForward {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards every connection to
    /// `address:port` from `host`. A failed channel open closes that one local connection
    /// (and is logged); the forward stays up.
    pub async fn start<H>(host: Arc<H>, address: &str, port: u16) -> Result<Self, std::io::Error>
    where
        H: Host + ?Sized + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local = listener.local_addr()?;
        let remote = format!("{address}:{port}");
        let address = address.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut local_stream, _)) = listener.accept().await else {
                    return;
                };
                let host = host.clone();
                let address = address.clone();
                tokio::spawn(async move {
                    match host.connect_tcp(&address, port).await {
                        Ok(mut remote_stream) => {
                            let _ = tokio::io::copy_bidirectional(
                                &mut local_stream,
                                &mut remote_stream,
                            )
                            .await;
                        }
                        Err(e) => forward_failed(&address, port, &e),
                    }
                });
            }
        });
        tracing::debug!(%local, %remote, "local forward started");
        Ok(LocalForward {
            local,
            remote,
            task,
        })
    }

    /// The local address to connect to (127.0.0.1 and an ephemeral port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `address:port` on the host's side.
    pub fn remote(&self) -> &str {
        &self.remote
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn forward_failed(address: &str, port: u16, e: &HostError) {
    tracing::warn!("could not open a connection to {address}:{port} from the host: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_the_forward_both_ways() {
        // The service on the "host": an echo of one message with a prefix.
        let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service_addr = service.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = service.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"got ").await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let host = Arc::new(FakeHost::new());
        host.route("127.0.0.1", 9090, service_addr);
        let forward = LocalForward::start(host.clone(), "127.0.0.1", 9090)
            .await
            .unwrap();
        assert_eq!(forward.remote(), "127.0.0.1:9090");
        assert!(forward.local_addr().ip().is_loopback());
        let mut client = tokio::net::TcpStream::connect(forward.local_addr())
            .await
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"got ping");
    }

    #[tokio::test]
    async fn an_unreachable_service_closes_only_that_connection() {
        let host = Arc::new(FakeHost::new());
        let forward = LocalForward::start(host.clone(), "127.0.0.1", 9)
            .await
            .unwrap();
        for _ in 0..2 {
            let mut client = tokio::net::TcpStream::connect(forward.local_addr())
                .await
                .unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            assert!(answer.is_empty());
        }
    }
}
