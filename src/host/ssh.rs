//! [`Host`] over SSH: a [`Session`] runs every call on its one connection.

use tokio::io::AsyncWrite;

use super::{
    ABSENT, AttachIo, AttachRequest, Attached, Host, HostError, HostFuture, HostStream,
    download_from_script, download_script, downloaded,
};
use crate::ssh::{ExecOptions, Session, SshError, Stdin, UploadFile};

impl Host for Session {
    fn display(&self) -> String {
        self.target().display()
    }

    fn exec<'a>(&'a self, command: &'a str) -> HostFuture<'a, crate::ssh::ExecOutput> {
        Box::pin(async move { Ok(Session::exec(self, command).await?) })
    }

    fn sudo<'a>(&'a self, command: &'a str) -> HostFuture<'a, crate::ssh::ExecOutput> {
        Box::pin(async move { Ok(Session::sudo(self, command).await?) })
    }

    fn sudo_stdin<'a>(
        &'a self,
        command: &'a str,
        stdin: Stdin,
        size: Option<u64>,
    ) -> HostFuture<'a, crate::ssh::ExecOutput> {
        let options = ExecOptions {
            stdin: Some(stdin),
            stdin_size: size,
            sink: None,
            quiet: false,
        };
        Box::pin(async move { Ok(Session::sudo_with(self, command, options).await?) })
    }

    fn upload<'a>(
        &'a self,
        files: &'a [UploadFile],
    ) -> HostFuture<'a, Vec<crate::ssh::FileChange>> {
        Box::pin(async move { Ok(Session::upload(self, files).await?) })
    }

    fn compare<'a>(
        &'a self,
        files: &'a [UploadFile],
    ) -> HostFuture<'a, Vec<crate::ssh::FileChange>> {
        Box::pin(async move { Ok(Session::compare(self, files).await?) })
    }

    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            // A downloaded file may hold secrets (`.env`): its lines are never logged.
            let options = ExecOptions::new().quiet();
            let out = Session::sudo_with(self, &download_script(path), options).await?;
            Ok(downloaded(out)?)
        })
    }

    fn download_to<'a>(
        &'a self,
        path: &'a str,
        offset: u64,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
        total: Option<u64>,
    ) -> HostFuture<'a, bool> {
        Box::pin(async move {
            let script = download_from_script(path, offset);
            let out = Session::sudo_to_writer(self, &script, to, total).await?;
            if out.status.code() == Some(ABSENT) {
                return Ok(false);
            }
            out.check()?;
            Ok(true)
        })
    }

    fn forward_remote<'a>(&'a self, upstream: &'a str) -> HostFuture<'a, u16> {
        Box::pin(async move { Ok(Session::forward_remote(self, upstream).await?) })
    }

    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream> {
        Box::pin(async move {
            let channel = self
                .inner
                .handle
                .channel_open_direct_tcpip(address, u32::from(port), "127.0.0.1", 0)
                .await
                .map_err(|e| -> HostError {
                    if self.is_closed() {
                        self.lost(e).into()
                    } else {
                        SshError::Channel {
                            host: self.target().host.clone(),
                            command: format!("forward to {address}:{port}"),
                            detail: format!(
                                "the server refused to open a TCP connection from the host \
                                 ({e}); is a service listening there, and does sshd allow \
                                 forwarding (`AllowTcpForwarding`)?"
                            ),
                        }
                        .into()
                    }
                })?;
            let stream: HostStream = Box::new(channel.into_stream());
            Ok(stream)
        })
    }

    fn attach<'a>(&'a self, request: &'a AttachRequest, io: AttachIo) -> HostFuture<'a, Attached> {
        Box::pin(async move { Ok(Session::attach(self, request, io).await?) })
    }
}
