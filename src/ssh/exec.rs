//! Running commands: [`Session::exec`], [`Session::sudo`] and their options.

use std::fmt;
use std::sync::Arc;

use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::quote::shell_quote;
use super::{Session, SshError};
use crate::events::ByteCounter;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Receives each output line as it arrives (without its newline; invalid UTF-8 replaced). Use it
/// to echo a command's output to the terminal.
pub type OutputSink = Arc<dyn Fn(OutputStream, &str) + Send + Sync>;

/// What to feed a command on its standard input. Without it, the command sees end-of-file.
pub enum Stdin {
    Bytes(Vec<u8>),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Stdin::Bytes({} bytes)", b.len()),
            Self::Reader(_) => f.write_str("Stdin::Reader"),
        }
    }
}

/// Options for [`Session::exec_with`].
#[derive(Default)]
pub struct ExecOptions {
    pub stdin: Option<Stdin>,
    /// The size of a streamed stdin, when known: progress then says "12 MB of 117 MB".
    pub stdin_size: Option<u64>,
    pub sink: Option<OutputSink>,
    /// Never log the output's lines (it holds secrets, e.g. a downloaded `.env`): only a sink
    /// sees them. The command line is logged as always.
    pub quiet: bool,
}

impl ExecOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds these bytes to the command's standard input, then end-of-file.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(Stdin::Bytes(bytes.into()));
        self
    }

    /// Streams this reader to the command's standard input, then end-of-file. Inside a step,
    /// the bytes sent are reported as its progress ([`crate::events::bytes`]).
    pub fn stdin_reader(mut self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.stdin = Some(Stdin::Reader(Box::new(reader)));
        self
    }

    /// [`ExecOptions::stdin_reader`] of `size` bytes in all.
    pub fn stdin_reader_sized(
        self,
        reader: impl AsyncRead + Send + Unpin + 'static,
        size: u64,
    ) -> Self {
        let mut options = self.stdin_reader(reader);
        options.stdin_size = Some(size);
        options
    }

    /// Keeps the output's lines out of the logs: see [`ExecOptions::quiet`].
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Hands every output line to `sink` as well as to `tracing`.
    pub fn sink(mut self, sink: OutputSink) -> Self {
        self.sink = Some(sink);
        self
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by this signal (`KILL`, `TERM`, ...).
    Signal { name: String, core_dumped: bool },
    /// The server reported neither (the connection or channel closed first).
    Unknown,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Code(c) => Some(*c),
            _ => None,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal { name, core_dumped } => {
                write!(
                    f,
                    "killed by signal {name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            Self::Unknown => f.write_str("no exit status reported"),
        }
    }
}

/// The result of a remote command.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The command as the caller gave it (before any `sudo` wrapping).
    pub command: String,
    /// The host it ran on.
    pub host: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `Ok(self)` when the command exited 0, else [`SshError::CommandFailed`] with the end of its
    /// stderr.
    pub fn check(self) -> Result<Self, SshError> {
        if self.success() {
            return Ok(self);
        }
        Err(SshError::CommandFailed {
            host: self.host.clone(),
            command: self.command.clone(),
            status: self.status.clone(),
            stderr_tail: tail(&self.stderr, 2000),
        })
    }
}

/// The last `max` bytes of `bytes`, as trimmed text.
pub(crate) fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

const MAX_LINE: usize = 64 * 1024;

/// Cuts a byte stream into lines for tracing and the sink.
struct Lines {
    stream: OutputStream,
    partial: Vec<u8>,
    /// Whether anyone wants lines (debug logging for `ssh`, or a sink).
    active: bool,
    /// Whether lines go to `tracing` (not for [`ExecOptions::quiet`]).
    trace: bool,
}

impl Lines {
    fn new(stream: OutputStream, active: bool, trace: bool) -> Self {
        Self {
            stream,
            partial: Vec::new(),
            active,
            trace,
        }
    }

    fn emit(&self, host: &str, line: &[u8], sink: Option<&OutputSink>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        if self.trace {
            tracing::debug!(target: "ssh", host = %host, stream = self.stream.as_str(), "{text}");
        }
        if let Some(sink) = sink {
            sink(self.stream, &text);
        }
    }

    fn push(&mut self, host: &str, mut data: &[u8], sink: Option<&OutputSink>) {
        if !self.active {
            return;
        }
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.emit(host, &data[..i], sink);
            } else {
                self.partial.extend_from_slice(&data[..i]);
                let line = std::mem::take(&mut self.partial);
                self.emit(host, &line, sink);
            }
            data = &data[i + 1..];
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() >= MAX_LINE {
            let line = std::mem::take(&mut self.partial);
            self.emit(host, &line, sink);
        }
    }

    fn finish(&mut self, host: &str, sink: Option<&OutputSink>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(host, &line, sink);
        }
    }
}

pub(crate) fn signal_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

impl Session {
    /// Runs `command` (a shell command line) and collects its output. A non-zero exit is not an
    /// error here: look at [`ExecOutput::status`] or call [`ExecOutput::check`].
    pub async fn exec(&self, command: &str) -> Result<ExecOutput, SshError> {
        self.exec_with(command, ExecOptions::default()).await
    }

    /// Runs `command` as root: through `sudo -n sh -c '...'` unless the user is root.
    pub async fn sudo(&self, command: &str) -> Result<ExecOutput, SshError> {
        self.sudo_with(command, ExecOptions::default()).await
    }

    /// [`sudo`](Self::sudo) with options.
    pub async fn sudo_with(
        &self,
        command: &str,
        options: ExecOptions,
    ) -> Result<ExecOutput, SshError> {
        let wrapped = self.sudo_command(command);
        let mut out = self.run_channel(&wrapped, options).await?;
        out.command = command.to_string();
        Ok(out)
    }

    /// The command line [`sudo`](Self::sudo) runs for `command`.
    pub fn sudo_command(&self, command: &str) -> String {
        if self.inner.target.is_root() {
            command.to_string()
        } else {
            format!("sudo -n sh -c {}", shell_quote(command))
        }
    }

    /// Runs `command` with stdin and an output sink.
    pub async fn exec_with(
        &self,
        command: &str,
        options: ExecOptions,
    ) -> Result<ExecOutput, SshError> {
        self.run_channel(command, options).await
    }

    /// Runs `command` as root with its standard output written to `to` as it arrives (a large
    /// file read back, without holding it in memory: the SSH window paces the sender), not
    /// collected: the returned output's `stdout` is empty. Inside a step, the bytes received
    /// are its progress, of `total` when known. A failed local write stops the command and
    /// fails with [`SshError::Channel`]; the writer knows the cause.
    pub async fn sudo_to_writer(
        &self,
        command: &str,
        to: &mut (dyn AsyncWrite + Send + Unpin),
        total: Option<u64>,
    ) -> Result<ExecOutput, SshError> {
        let wrapped = self.sudo_command(command);
        let mut out = self
            .run_channel_to(&wrapped, ExecOptions::default(), Some((to, total)))
            .await?;
        out.command = command.to_string();
        Ok(out)
    }

    async fn run_channel(
        &self,
        command: &str,
        options: ExecOptions,
    ) -> Result<ExecOutput, SshError> {
        self.run_channel_to(command, options, None).await
    }

    /// Runs `command`; its standard output goes to the writer when one is given (with the
    /// total expected, for progress), else it is collected.
    async fn run_channel_to(
        &self,
        command: &str,
        options: ExecOptions,
        mut stdout_to: Option<(&mut (dyn AsyncWrite + Send + Unpin), Option<u64>)>,
    ) -> Result<ExecOutput, SshError> {
        let host = self.inner.target.host.clone();
        let chan_err = |detail: String| SshError::Channel {
            host: host.clone(),
            command: command.to_string(),
            detail,
        };
        let channel = self
            .inner
            .handle
            .channel_open_session()
            .await
            .map_err(|e| {
                if self.is_closed() {
                    self.lost(e)
                } else {
                    chan_err(format!("cannot open a channel: {e}"))
                }
            })?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.lost(e))?;
        tracing::debug!(target: "ssh", host = %host, "exec: {command}");
        let (mut rx, tx) = channel.split();
        let ExecOptions {
            stdin,
            stdin_size,
            sink,
            quiet,
        } = options;

        // Feeding stdin runs alongside reading the output, so neither side can block the other.
        let mut stdin_error: Option<std::io::Error> = None;
        let feed = async {
            let result: Result<(), Option<std::io::Error>> = async {
                match stdin {
                    None => {}
                    Some(Stdin::Bytes(bytes)) => tx.data_bytes(bytes).await.map_err(|_| None)?,
                    Some(Stdin::Reader(mut reader)) => {
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut sent = ByteCounter::new(stdin_size);
                        loop {
                            let n = reader.read(&mut buf).await.map_err(Some)?;
                            if n == 0 {
                                break;
                            }
                            tx.data_bytes(buf[..n].to_vec()).await.map_err(|_| None)?;
                            sent.add(n);
                        }
                        sent.finish();
                    }
                }
                tx.eof().await.map_err(|_| None)
            }
            .await;
            result
        };
        tokio::pin!(feed);
        let mut fed = false;

        let sink = sink.as_ref();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        // Cut the output into lines only when someone reads them. `enabled!` is exact under the
        // global subscriber the CLI installs at start; with scoped test subscribers (`with_default`)
        // tracing's process-wide interest cache can answer for another thread (tests/ssh_engine.rs).
        let trace = !quiet && tracing::enabled!(target: "ssh", tracing::Level::DEBUG);
        let active = sink.is_some() || trace;
        let mut out_lines = Lines::new(OutputStream::Stdout, active, trace);
        let mut err_lines = Lines::new(OutputStream::Stderr, active, trace);
        let mut status = ExitStatus::Unknown;
        let mut refused = false;
        let mut received = ByteCounter::new(stdout_to.as_ref().and_then(|(_, total)| *total));
        let mut write_error: Option<std::io::Error> = None;
        loop {
            tokio::select! {
                r = &mut feed, if !fed => {
                    fed = true;
                    if let Err(Some(e)) = r {
                        // The local input failed: stop the remote command rather than let it see a
                        // truncated input as complete.
                        // (Killing may be refused, e.g. for a command under sudo; closing the
                        // channel then ends its input.) russh forgets a channel we close, so do
                        // not wait for the server's answer.
                        stdin_error = Some(e);
                        let _ = tx.signal(russh::Sig::KILL).await;
                        let _ = tx.close().await;
                        break;
                    }
                }
                msg = rx.wait() => match msg {
                    None | Some(ChannelMsg::Close) => break,
                    Some(ChannelMsg::Data { data }) => match stdout_to.as_mut() {
                        Some((to, _)) => {
                            if let Err(e) = to.write_all(&data).await {
                                write_error = Some(e);
                                let _ = tx.signal(russh::Sig::KILL).await;
                                let _ = tx.close().await;
                                break;
                            }
                            received.add(data.len());
                        }
                        None => {
                            out_lines.push(&host, &data, sink);
                            stdout.extend_from_slice(&data);
                        }
                    },
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        err_lines.push(&host, &data, sink);
                        stderr.extend_from_slice(&data);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = ExitStatus::Code(exit_status),
                    Some(ChannelMsg::ExitSignal { signal_name: sig, core_dumped, .. }) => {
                        status = ExitStatus::Signal { name: signal_name(&sig), core_dumped };
                    }
                    Some(ChannelMsg::Failure) => {
                        refused = true;
                        let _ = tx.close().await;
                        break;
                    }
                    Some(_) => {}
                },
            }
        }
        out_lines.finish(&host, sink);
        err_lines.finish(&host, sink);
        if let Some(e) = write_error {
            return Err(chan_err(format!("writing its output here failed: {e}")));
        }
        if let Some((to, _)) = stdout_to.as_mut() {
            received.finish();
            to.flush()
                .await
                .map_err(|e| chan_err(format!("writing its output here failed: {e}")))?;
        }
        if let Some(source) = stdin_error {
            return Err(SshError::Stdin {
                host,
                command: command.to_string(),
                source,
            });
        }
        if refused {
            return Err(chan_err("the server refused to run the command".into()));
        }
        if status == ExitStatus::Unknown && self.is_closed() {
            return Err(self.lost("the connection closed before the command finished"));
        }
        tracing::debug!(target: "ssh", host = %host, "exec finished ({status}): {command}");
        Ok(ExecOutput {
            command: command.to_string(),
            host,
            status,
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_are_split_across_chunks() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: OutputSink = Arc::new(move |s, l| g.lock().unwrap().push((s, l.to_string())));
        let mut lines = Lines::new(OutputStream::Stderr, true, true);
        lines.push("h", b"ab", Some(&sink));
        lines.push("h", b"c\r\nd\n\ne", Some(&sink));
        lines.push("h", b"f", Some(&sink));
        lines.finish("h", Some(&sink));
        let got: Vec<String> = got.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
        assert_eq!(got, ["abc", "d", "", "ef"]);
    }

    #[test]
    fn exit_status_display() {
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
        assert!(ExitStatus::Code(0).success());
        assert_eq!(
            ExitStatus::Signal {
                name: "KILL".into(),
                core_dumped: false
            }
            .to_string(),
            "killed by signal KILL"
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail(b"  hello world \n", 7), "world");
    }
}
