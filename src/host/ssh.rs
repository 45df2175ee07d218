//! [`Host`] over SSH: a [`Session`] runs every call on its one connection.

use super::{AttachIo, AttachRequest, Attached, Host, HostFuture, HostStream};
use crate::ssh::{ExecOptions, Session, SshError, Stdin, UploadFile, shell_quote};

/// The exit code of [`download`](Host::download)'s script when the file does not exist.
const ABSENT: u32 = 3;

/// `cat`s the file, or exits [`ABSENT`] when there is none.
fn download_script(path: &str) -> String {
    let p = shell_quote(path);
    format!("if [ -e {p} ]; then exec cat -- {p}; else exit {ABSENT}; fi")
}

impl Host for Session {
    fn display(&self) -> String {
        self.target().display()
    }

    fn exec<'a>(&'a self, command: &'a str) -> HostFuture<'a, crate::ssh::ExecOutput> {
        Box::pin(Session::exec(self, command))
    }

    fn sudo<'a>(&'a self, command: &'a str) -> HostFuture<'a, crate::ssh::ExecOutput> {
        Box::pin(Session::sudo(self, command))
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
        };
        Box::pin(Session::sudo_with(self, command, options))
    }

    fn upload<'a>(
        &'a self,
        files: &'a [UploadFile],
    ) -> HostFuture<'a, Vec<crate::ssh::FileChange>> {
        Box::pin(Session::upload(self, files))
    }

    fn compare<'a>(
        &'a self,
        files: &'a [UploadFile],
    ) -> HostFuture<'a, Vec<crate::ssh::FileChange>> {
        Box::pin(Session::compare(self, files))
    }

    fn download<'a>(&'a self, path: &'a str) -> HostFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let out = Session::sudo(self, &download_script(path)).await?;
            if out.status.code() == Some(ABSENT) {
                return Ok(None);
            }
            Ok(Some(out.check()?.stdout))
        })
    }

    fn connect_tcp<'a>(&'a self, address: &'a str, port: u16) -> HostFuture<'a, HostStream> {
        Box::pin(async move {
            let channel = self
                .inner
                .handle
                .channel_open_direct_tcpip(address, u32::from(port), "127.0.0.1", 0)
                .await
                .map_err(|e| {
                    if self.is_closed() {
                        self.lost(e)
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
                    }
                })?;
            let stream: HostStream = Box::new(channel.into_stream());
            Ok(stream)
        })
    }

    fn attach<'a>(&'a self, request: &'a AttachRequest, io: AttachIo) -> HostFuture<'a, Attached> {
        Box::pin(Session::attach(self, request, io))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_script_reads_a_file_or_says_it_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("it's here");
        std::fs::write(&file, "a\nb\n").unwrap();
        let run = |p: &std::path::Path| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(download_script(p.to_str().unwrap()))
                .output()
                .unwrap()
        };
        let out = run(&file);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, b"a\nb\n");
        let out = run(&dir.path().join("none"));
        assert_eq!(out.status.code(), Some(ABSENT as i32));
        assert!(out.stdout.is_empty());
    }
}
