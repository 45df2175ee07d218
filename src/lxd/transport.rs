//! How requests reach LXD. Today: HTTP/1.1 over the local Unix socket. A remote LXD over HTTPS
//! with a client certificate is another [`Transport`].

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;

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

/// What a transport failed at, before LXD could answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

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
    ) -> impl Future<Output = Result<(StatusCode, Bytes), TransportError>> + Send;
}

/// LXD's local Unix socket.
#[derive(Clone)]
pub struct UnixSocket {
    path: PathBuf,
    client: Client<UnixConnector, Body>,
}

impl UnixSocket {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            client: Client::builder(TokioExecutor::new()).build(UnixConnector),
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
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.path, path_and_query).into();
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(body)
            .map_err(|e| TransportError(format!("bad request: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            TransportError(msg)
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| TransportError(format!("reading the response: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}
