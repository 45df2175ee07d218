//! [`while_forwarding`]: a port on this machine's loopback that leads to `address:port` as the
//! host sees it, through [`Host::connect_tcp`] (an SSH `direct-tcpip` channel), open exactly
//! while a piece of work runs. It lets any local client (reqwest, a probe) reach a service that
//! is bound to the host's loopback and so not published: the admin API, Prometheus, Grafana.
//! It borrows the connection (`&dyn Host`, e.g. the one `deploy` holds); everything runs in
//! the caller's task, and nothing outlives the call.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::{TcpListener, TcpStream};

use super::Host;

/// Runs `work` with a listener on an ephemeral port of 127.0.0.1 (given to `work`) whose every
/// connection is carried to `address:port` from `host` through [`Host::connect_tcp`]. A failed
/// channel open closes that one local connection (and is logged). The listener and the open
/// connections close when `work` ends.
pub async fn while_forwarding<F, Fut, T>(
    host: &dyn Host,
    address: &str,
    port: u16,
    work: F,
) -> std::io::Result<T>
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = T>,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let local = listener.local_addr()?;
    tracing::debug!(%local, "forwarding to {address}:{port} from the host");
    let work = work(local);
    tokio::pin!(work);
    let mut open = FuturesUnordered::new();
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    open.push(carry(host, address, port, stream));
                }
            }
            Some(()) = open.next(), if !open.is_empty() => {}
        }
    }
}

async fn carry(host: &dyn Host, address: &str, port: u16, mut local: TcpStream) {
    match host.connect_tcp(address, port).await {
        Ok(mut remote) => {
            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
        }
        Err(e) => {
            tracing::warn!("could not open a connection to {address}:{port} from the host: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn work_reaches_the_service_and_the_port_closes_after_it() {
        let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service_addr = service.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = service.accept().await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(b"got ").await.unwrap();
                s.write_all(&buf).await.unwrap();
            }
        });
        let host = FakeHost::new();
        host.route("127.0.0.1", 1212, service_addr);
        let (local, answers) = while_forwarding(&host, "127.0.0.1", 1212, async |local| {
            let mut answers = Vec::new();
            for msg in [b"ping", b"pong"] {
                let mut c = TcpStream::connect(local).await.unwrap();
                c.write_all(msg).await.unwrap();
                let mut answer = Vec::new();
                c.read_to_end(&mut answer).await.unwrap();
                answers.push(answer);
            }
            (local, answers)
        })
        .await
        .unwrap();
        assert!(local.ip().is_loopback());
        assert_eq!(answers, [b"got ping".to_vec(), b"got pong".to_vec()]);
        assert!(TcpStream::connect(local).await.is_err(), "still listening");
    }

    #[tokio::test]
    async fn an_unreachable_service_closes_the_local_connection() {
        let host = FakeHost::new();
        let answer = while_forwarding(&host, "127.0.0.1", 9, async |local| {
            let mut c = TcpStream::connect(local).await.unwrap();
            let mut answer = Vec::new();
            c.read_to_end(&mut answer).await.unwrap();
            answer
        })
        .await
        .unwrap();
        assert!(answer.is_empty());
    }
}
