//! The local end of `ssh` and `exec` (and the Ctrl-C of `logs`): the terminal in raw mode and
//! back, its size and its changes (SIGWINCH), standard input as a stream, and the signals that
//! end an attached command.
//!
//! Raw mode is restored on every way out: [`RawMode`]'s drop (normal return, an error), a
//! panic hook (the release build aborts on panic, so no drop runs), and SIGTERM or SIGHUP end
//! the session through [`stop_on`] so that the drop runs.

use std::io::{IsTerminal, Read};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::host::{AttachIo, LocalRead, Pty, StopSignal};

/// Whether to give the remote command a pseudo-terminal: when both our standard input and
/// output are terminals (so `ssh ENV -- cat FILE > copy` stays byte-exact).
pub fn wants_pty() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The local terminal as the remote one should be: `TERM` and the size (80x24 if unknown).
pub fn local_pty() -> Pty {
    let (cols, rows) = crossterm::terminal::size()
        .ok()
        .filter(|(c, r)| *c > 0 && *r > 0)
        .unwrap_or((80, 24));
    Pty {
        term: std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "xterm-256color".into()),
        cols,
        rows,
    }
}

/// The local terminal in raw mode while this lives.
pub struct RawMode(());

impl RawMode {
    pub fn enable() -> std::io::Result<RawMode> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = crossterm::terminal::disable_raw_mode();
                previous(info);
            }));
        });
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Standard input as an async stream. A thread of its own reads it (a blocking read on a
/// terminal cannot be cancelled; the thread is simply left behind when the command ends).
pub fn stdin() -> LocalRead {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut input = std::io::stdin();
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Box::new(ChannelReader {
        rx,
        pending: Vec::new(),
    })
}

struct ChannelReader {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.pending = chunk,
                // The reading thread ended: end of input.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Poll::Ready(Ok(()))
    }
}

/// The terminal's new size at each SIGWINCH.
pub fn resizes() -> std::io::Result<mpsc::UnboundedReceiver<(u16, u16)>> {
    let mut winch = signal(SignalKind::window_change())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            if let Ok(size) = crossterm::terminal::size()
                && tx.send(size).is_err()
            {
                break;
            }
        }
    });
    Ok(rx)
}

/// Resolves at the first of these signals (SIGINT too when `interrupt`; in raw mode Ctrl-C is
/// a byte for the host, not a signal). Registered now, so that none is missed.
pub fn stop_on(interrupt: bool) -> std::io::Result<StopSignal> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut int = if interrupt {
        Some(signal(SignalKind::interrupt())?)
    } else {
        None
    };
    Ok(Box::pin(async move {
        let ctrl_c = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hangup.recv() => {}
            () = ctrl_c => {}
        }
    }))
}

/// Our standard streams attached to a remote command: with a terminal (`pty`), its size
/// changes are followed; without one, Ctrl-C stops the command.
pub fn attach_io(pty: bool) -> std::io::Result<AttachIo> {
    Ok(AttachIo {
        stdin: Some(stdin()),
        stdout: Box::new(tokio::io::stdout()),
        stderr: Box::new(tokio::io::stderr()),
        resize: if pty { Some(resizes()?) } else { None },
        stop: Some(stop_on(!pty)?),
    })
}

/// Attaches our terminal (raw mode with a `pty`, restored whatever happens) or our streams to
/// an opened command, and returns the exit code it passes through.
pub async fn run_attached(
    opened: crate::ops::shell::Opened,
    pty: bool,
) -> Result<i32, super::CliError> {
    let local = crate::ops::OpsError::io;
    let raw = if pty {
        Some(RawMode::enable().map_err(local("cannot put the local terminal in raw mode"))?)
    } else {
        None
    };
    let io = attach_io(pty).map_err(local("cannot attach the local terminal"))?;
    let ended = opened.attach(io).await;
    drop(raw);
    Ok(crate::ops::shell::exit_code(&ended?)?)
}
