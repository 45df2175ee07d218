//! How requests reach LXD: HTTP/1.1 over the local Unix socket ([`UnixSocket`]) or over HTTPS
//! with a client certificate ([`super::https::Https`]); [`LxdTransport`] is either, so the same
//! client code serves both.
//!
//! Every request opens its own connection and writes the request at once; there is no pool of idle
//! connections. LXD 5.0's Unix-socket listener reads the first bytes of each new connection inside
//! its accept loop (to tell TLS from plain HTTP), so one connection that is open but silent stops
//! LXD from accepting any other, including the `lxd callhook` of a starting container: the start
//! then fails after 30 s. A pooling client opens such connections (a connect that loses the race
//! to a connection coming back to the pool is kept, idle). ADR 0012 has the details.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// A request body: empty, bytes, or a stream (for image uploads).
pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn bytes(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed through a channel: the sender's side reads the source (and reports progress) in
/// the caller's task, while the request is sent. A body that read its source itself would be
/// read in the connection's task, outside the step it belongs to. An `Err` sent aborts the
/// request.
pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (tx, ChannelBody(rx).boxed())
}

struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// What a transport failed at, before LXD could answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
    /// Why no connection could be opened, when that is what failed (e.g. `PermissionDenied`,
    /// `ConnectionRefused`, `NotFound`).
    pub connect: Option<std::io::ErrorKind>,
    /// Over HTTPS: a server certificate refused because it is not the pinned one: (the pinned
    /// fingerprint, the one presented).
    pub pin_refused: Option<(String, String)>,
}

impl TransportError {
    /// A failure after the connection was open (or before opening one).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            connect: None,
            pin_refused: None,
        }
    }
}

/// LXD's answer to one request: its status, headers (the files API says what a path is in
/// `X-LXD-Type`) and whole body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// An answer without headers.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: hyper::HeaderMap::new(),
            body: body.into(),
        }
    }

    /// A header's value, when it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP exchange with the LXD API.
pub trait Transport: Send + Sync {
    /// Where requests go, for messages (`unix:/var/lib/lxd/unix.socket`).
    fn endpoint(&self) -> String;

    fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send;
}

/// LXD's local Unix socket: one connection per request (see the module docs for why).
#[derive(Clone)]
pub struct UnixSocket {
    path: PathBuf,
}

impl UnixSocket {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Transport for UnixSocket {
    fn endpoint(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Response, TransportError> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| TransportError {
                message: format!("connecting to {}: {e}", self.path.display()),
                connect: Some(e.kind()),
                pin_refused: None,
            })?;
        exchange(stream, "lxd", method, path_and_query, headers, body).await
    }
}

/// One request and its whole answer over a fresh connection, which closes after it (`Connection:
/// close`): the Unix socket and HTTPS share this.
pub(super) async fn exchange<S>(
    stream: S,
    host: &str,
    method: Method,
    path_and_query: &str,
    headers: Vec<(&'static str, String)>,
    body: Body,
) -> Result<Response, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body)
        .map_err(|e| TransportError::new(format!("bad request: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| TransportError::new(chain(&e)))?;
    // The connection task ends, and the socket closes, once the response has been read.
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| TransportError::new(chain(&e)))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| TransportError::new(format!("reading the response: {e}")))?
        .to_bytes();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// The transport of an environment's LXD: the local socket, or a remote LXD over HTTPS.
pub enum LxdTransport {
    Unix(UnixSocket),
    Https(super::https::Https),
}

impl Transport for LxdTransport {
    fn endpoint(&self) -> String {
        match self {
            LxdTransport::Unix(t) => t.endpoint(),
            LxdTransport::Https(t) => t.endpoint(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(&'static str, String)>,
        body: Body,
    ) -> Result<Response, TransportError> {
        match self {
            LxdTransport::Unix(t) => t.send(method, path_and_query, headers, body).await,
            LxdTransport::Https(t) => t.send(method, path_and_query, headers, body).await,
        }
    }
}

/// An error with its causes, `a: b: c`.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut msg = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        msg.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    /// What the server saw: connections, requests answered, and connections that stayed silent
    /// for a second after being accepted (each of which stalls LXD 5.0's accept loop).
    #[derive(Default)]
    struct Seen {
        accepted: AtomicUsize,
        served: AtomicUsize,
        silent: AtomicUsize,
    }

    /// A server shaped like LXD 5.0's Unix listener: after accepting a connection, it waits for
    /// that connection's first bytes before it accepts the next one.
    fn lxd_like_server(listener: UnixListener, seen: Arc<Seen>) {
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                let mut first = [0u8; 8];
                match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => {
                        seen.silent.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                }
                let seen = seen.clone();
                // Keep-alive, like LXD's HTTP server: answer requests until the client closes.
                tokio::spawn(async move {
                    let mut pending = first[..].to_vec();
                    let mut buf = [0u8; 4096];
                    loop {
                        while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                                _ => return,
                            }
                        }
                        let end = pending.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        while pending.len() < end + length {
                            match conn.read(&mut buf).await {
                                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                                _ => return,
                            }
                        }
                        pending.drain(..end + length);
                        seen.served.fetch_add(1, Ordering::SeqCst);
                        let body = br#"{"type":"sync","status_code":200,"metadata":{}}"#;
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).await.is_err()
                            || conn.write_all(body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_carries_a_request_so_lxd_keeps_accepting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unix.socket");
        let seen = Arc::new(Seen::default());
        lxd_like_server(UnixListener::bind(&path).unwrap(), seen.clone());
        let socket = UnixSocket::new(&path);

        // Sequential requests, back to back, then bursts of concurrent ones: the patterns of an
        // operation wait next to state polling.
        for _ in 0..20 {
            let response = socket
                .send(Method::GET, "/1.0", vec![], empty())
                .await
                .unwrap();
            assert_eq!(response.status, StatusCode::OK);
        }
        for _ in 0..5 {
            let (a, b, c) = tokio::join!(
                socket.send(Method::GET, "/1.0/instances", vec![], empty()),
                socket.send(Method::GET, "/1.0/operations", vec![], empty()),
                socket.send(Method::PUT, "/1.0/x", vec![], bytes("{}")),
            );
            a.unwrap();
            b.unwrap();
            c.unwrap();
        }
        // A connection left open and silent would be counted after the server's 1 s wait.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(seen.silent.load(Ordering::SeqCst), 0, "silent connections");
        assert_eq!(seen.served.load(Ordering::SeqCst), 35);
        // One connection per request: a pool keeps connections around, and the connect that
        // loses a race with a returning connection is what leaves one silent.
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 35);
    }
}
