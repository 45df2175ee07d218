//! [`Session::attach`]: a command, or the login shell, with its input and output attached to
//! local streams as they come (a shell, `exec`, a log stream), optionally on a pseudo-terminal
//! with the local terminal's size. See [`crate::host::Host::attach`] for the contract.

use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::exec::ExitStatus;
use super::{Session, SshError};
use crate::host::{AttachIo, AttachRequest, Attached};

/// How long a stopped command may take to end before its channel is closed anyway.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What the loop of [`Session::attach`] is waiting for.
struct Flow {
    /// The local input reached its end (or there is none) and EOF was sent.
    eof_sent: bool,
    /// `stop` fired: close the channel at this instant if the command has not ended.
    closing_at: Option<Instant>,
    status: ExitStatus,
    refused: bool,
}

impl Session {
    /// Runs `request` attached to `io` (see [`crate::host::Host::attach`]).
    pub async fn attach(
        &self,
        request: &AttachRequest,
        io: AttachIo,
    ) -> Result<Attached, SshError> {
        let host = self.inner.target.host.clone();
        let shown = request
            .command
            .clone()
            .unwrap_or_else(|| "the login shell".into());
        let channel = self
            .inner
            .handle
            .channel_open_session()
            .await
            .map_err(|e| {
                if self.is_closed() {
                    self.lost(e)
                } else {
                    SshError::Channel {
                        host: host.clone(),
                        command: shown.clone(),
                        detail: format!("cannot open a channel: {e}"),
                    }
                }
            })?;
        if let Some(pty) = &request.pty {
            let (cols, rows) = (u32::from(pty.cols), u32::from(pty.rows));
            channel
                .request_pty(false, &pty.term, cols, rows, 0, 0, &[])
                .await
                .map_err(|e| self.lost(e))?;
        }
        match &request.command {
            Some(command) if request.sudo => channel.exec(true, self.sudo_command(command)).await,
            Some(command) => channel.exec(true, command.as_str()).await,
            None => channel.request_shell(true).await,
        }
        .map_err(|e| self.lost(e))?;
        tracing::debug!(target: "ssh", host = %host, pty = request.pty.is_some(), "attach: {shown}");
        let flow = pump(channel, io).await;
        if flow.refused {
            return Err(SshError::Channel {
                host,
                command: shown,
                detail: "the server refused to run it".into(),
            });
        }
        let stopped = flow.closing_at.is_some();
        if flow.status == ExitStatus::Unknown && !stopped && self.is_closed() {
            return Err(self.lost("the connection closed before the command finished"));
        }
        tracing::debug!(target: "ssh", host = %host, "attach finished ({}, stopped: {stopped}): {shown}", flow.status);
        Ok(Attached {
            status: flow.status,
            stopped,
        })
    }
}

/// Moves bytes both ways until the channel closes (or, once stopped, the grace ends).
async fn pump(channel: russh::Channel<russh::client::Msg>, io: AttachIo) -> Flow {
    let (mut rx, tx) = channel.split();
    let AttachIo {
        mut stdin,
        mut stdout,
        mut stderr,
        mut resize,
        mut stop,
    } = io;
    let mut flow = Flow {
        eof_sent: false,
        closing_at: None,
        status: ExitStatus::Unknown,
        refused: false,
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let reading = stdin.is_some() && !flow.eof_sent;
        let closing_at = flow.closing_at;
        tokio::select! {
            n = async { stdin.as_mut().expect("guarded").read(&mut buf).await }, if reading => {
                match n {
                    Ok(n) if n > 0 => {
                        if tx.data_bytes(buf[..n].to_vec()).await.is_err() {
                            flow.eof_sent = true;
                        }
                    }
                    // End of the local input (or it failed): the command sees end-of-file.
                    _ => {
                        flow.eof_sent = true;
                        let _ = tx.eof().await;
                    }
                }
            }
            size = async { resize.as_mut().expect("guarded").recv().await }, if resize.is_some() => {
                match size {
                    Some((cols, rows)) => {
                        let _ = tx.window_change(cols.into(), rows.into(), 0, 0).await;
                    }
                    None => resize = None,
                }
            }
            () = async { stop.as_mut().expect("guarded").await }, if stop.is_some() => {
                stop = None;
                flow.closing_at = Some(Instant::now() + STOP_GRACE);
                if !flow.eof_sent {
                    flow.eof_sent = true;
                    let _ = tx.eof().await;
                }
                let _ = tx.signal(Sig::INT).await;
            }
            () = async { tokio::time::sleep_until(closing_at.expect("guarded")).await }, if closing_at.is_some() => {
                let _ = tx.close().await;
                break;
            }
            msg = rx.wait() => match msg {
                None | Some(ChannelMsg::Close) => break,
                Some(ChannelMsg::Data { data }) => {
                    if write(&mut stdout, &data).await.is_err() {
                        // Nobody reads our output any more (`| head`): end as if stopped.
                        flow.closing_at.get_or_insert_with(Instant::now);
                        let _ = tx.close().await;
                        break;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let _ = write(&mut stderr, &data).await;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    flow.status = ExitStatus::Code(exit_status);
                }
                Some(ChannelMsg::ExitSignal { signal_name, core_dumped, .. }) => {
                    flow.status = ExitStatus::Signal {
                        name: super::exec::signal_name(&signal_name),
                        core_dumped,
                    };
                }
                Some(ChannelMsg::Failure) => {
                    flow.refused = true;
                    let _ = tx.close().await;
                    break;
                }
                Some(_) => {}
            },
        }
    }
    let _ = stdout.flush().await;
    let _ = stderr.flush().await;
    flow
}

async fn write(out: &mut crate::host::LocalWrite, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data).await?;
    out.flush().await
}
