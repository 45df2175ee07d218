//! The services' logs, streamed from the host: `compose logs` run through [`Host::attach`],
//! each line handed on with the service it came from.
//!
//! - The command ([`script`]) works with Compose v1 (`docker-compose`) and the v2 plugin alike:
//!   only the options both have (`--no-color`, `--tail`, `--follow`, `--timestamps`). Compose
//!   prefixes each line with the container (`tracker_1  | ` in v1, `tracker-1  | ` in v2);
//!   [`service_of`] turns that prefix into the service's name.
//! - `--since` is applied here, not by Compose (v1 has no `--since`): Compose is asked for
//!   timestamps and the older lines are dropped ([`Since`]).
//! - Ending it: the remote script keeps our end of its input open while Compose runs and kills
//!   Compose's process group (`setsid`) when that input closes, which happens when we stop
//!   (Ctrl-C), when the connection drops, or when this process dies. Nothing is left running
//!   on the host, whatever the server does with signals.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWrite;

use super::TaskError;
use super::compose::indent_tail;
use crate::host::{AttachIo, AttachRequest, Host, StopSignal};
use crate::ssh::{ExitStatus, shell_quote};

pub const LOGS: &str = "logs";

/// What to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsRequest {
    /// Services to show; empty: all.
    pub services: Vec<String>,
    /// Keep streaming new lines until stopped.
    pub follow: bool,
    /// Only the last `n` lines of each service (before `since` applies).
    pub tail: Option<u64>,
    /// Only lines written at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Keep Docker's timestamp at the start of each line.
    pub timestamps: bool,
}

/// One line of a service's log, or a line of Compose's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The service it came from; `None` for Compose's own lines (`Attaching to ...`).
    pub service: Option<String>,
    pub line: String,
}

/// Receives each line as it arrives.
pub type LineSink = Arc<dyn Fn(LogLine) + Send + Sync>;

/// The remote script: Compose's `logs` in its own process group, killed when our end of the
/// script's input closes. Exits with Compose's status.
pub fn script(compose: &str, request: &LogsRequest) -> String {
    let mut logs = format!("{compose} logs --no-color");
    if request.follow {
        logs.push_str(" --follow");
    }
    if let Some(n) = request.tail {
        logs.push_str(&format!(" --tail {n}"));
    }
    if request.timestamps || request.since.is_some() {
        logs.push_str(" --timestamps");
    }
    if !request.services.is_empty() {
        logs.push_str(" --");
        for s in &request.services {
            logs.push(' ');
            logs.push_str(&shell_quote(s));
        }
    }
    format!(
        "cd {dir} || exit 1\n\
         exec 3<&0\n\
         setsid {logs} </dev/null &\n\
         pid=$!\n\
         {{ cat <&3 >/dev/null 2>&1; kill -TERM -$pid 2>/dev/null; }} >/dev/null 2>&1 &\n\
         watch=$!\n\
         exec 3<&-\n\
         wait $pid\n\
         rc=$?\n\
         kill $watch 2>/dev/null\n\
         exit $rc\n",
        dir = shell_quote(crate::stack::layout::STACK_DIR)
    )
}

/// The service a Compose log prefix names: `tracker`, `tracker_1` (v1), `tracker-1` (v2), or
/// with the project in front (`torrust_tracker_1`, `torrust-tracker-1`).
pub fn service_of<'a>(prefix: &str, services: &'a [String]) -> Option<&'a str> {
    let name = prefix.trim();
    let project = crate::stack::layout::COMPOSE_PROJECT_NAME;
    services
        .iter()
        .find(|s| {
            let bare = strip_number(name);
            let bare = bare
                .strip_prefix(project)
                .and_then(|b| b.strip_prefix(['_', '-']))
                .unwrap_or(bare);
            bare == s.as_str() || name == s.as_str()
        })
        .map(String::as_str)
}

/// `tracker` of `tracker_1` or `tracker-1`; anything else as it is.
fn strip_number(n: &str) -> &str {
    match n.rfind(['_', '-']) {
        Some(i) if i + 1 < n.len() && n[i + 1..].chars().all(|c| c.is_ascii_digit()) => &n[..i],
        _ => n,
    }
}

/// Splits a line of Compose's output into its service and text: `tracker_1  | text`.
pub fn split_line(line: &str, services: &[String]) -> LogLine {
    if let Some((prefix, text)) = line.split_once(" | ")
        && let Some(service) = service_of(prefix, services)
    {
        return LogLine {
            service: Some(service.to_string()),
            line: text.to_string(),
        };
    }
    // A service with nothing to say yet prints `tracker_1  |` alone.
    if let Some(prefix) = line.strip_suffix(" |")
        && let Some(service) = service_of(prefix, services)
    {
        return LogLine {
            service: Some(service.to_string()),
            line: String::new(),
        };
    }
    LogLine {
        service: None,
        line: line.to_string(),
    }
}

/// What [`stream`] does with Docker's timestamp at the start of a line.
#[derive(Debug, Clone, Copy)]
pub struct Since {
    pub at: Option<DateTime<Utc>>,
    pub keep_timestamps: bool,
}

impl Since {
    /// `Some(text)` to show, or `None` when the line is older than `at`. A line without a
    /// timestamp is shown as it is.
    pub fn apply(&self, text: &str) -> Option<String> {
        if self.at.is_none() && self.keep_timestamps {
            return Some(text.to_string());
        }
        let (stamp, rest) = text.split_once(' ').unwrap_or((text, ""));
        let Ok(when) = DateTime::parse_from_rfc3339(stamp) else {
            return Some(text.to_string());
        };
        if self.at.is_some_and(|at| when.with_timezone(&Utc) < at) {
            return None;
        }
        Some(if self.keep_timestamps {
            text.to_string()
        } else {
            rest.to_string()
        })
    }
}

/// Reads `--since`: a duration back from `now` (`90s`, `10m`, `2h`, `1d`, `1h30m`), an RFC 3339
/// time (`2026-01-02T10:00:00Z`), or a date (`2026-01-02`, midnight UTC).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let mut total = 0i64;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => 0,
        };
        let n: i64 = number.parse().unwrap_or(-1);
        if unit == 0 || n < 0 {
            return Err(format!(
                "`{text}` is not a time: give a duration back from now (`90s`, `10m`, `2h`, \
                 `1d`, `1h30m`), an RFC 3339 time (`2026-01-02T10:00:00Z`) or a date (`2026-01-02`)"
            ));
        }
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || t.is_empty() {
        return Err(format!(
            "`{text}` is not a time: a duration needs its unit (`s`, `m`, `h`, `d`), e.g. `10m`"
        ));
    }
    Ok(now - chrono::Duration::seconds(total))
}

/// How the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsEnd {
    /// Ended by the stop signal (Ctrl-C) rather than by Compose.
    pub stopped: bool,
    /// Log lines handed on.
    pub lines: u64,
}

/// Streams the logs to `sink` until Compose ends or `stop` resolves.
pub async fn stream(
    host: &dyn Host,
    compose: &str,
    request: &LogsRequest,
    services: &[String],
    sink: LineSink,
    stop: StopSignal,
) -> Result<LogsEnd, TaskError> {
    let since = Since {
        at: request.since,
        keep_timestamps: request.timestamps,
    };
    let lines = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = lines.clone();
    let known = services.to_vec();
    let out = LineWriter::new(move |line: &str| {
        let mut l = split_line(line, &known);
        if l.service.is_some() {
            match since.apply(&l.line) {
                Some(text) => l.line = text,
                None => return,
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        sink(l);
    });
    let errors = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let err = TailWriter(errors.clone());
    let attach = AttachRequest {
        command: Some(script(compose, request)),
        sudo: true,
        pty: None,
    };
    let io = AttachIo {
        stdin: None,
        stdout: Box::new(out),
        stderr: Box::new(err),
        resize: None,
        stop: Some(stop),
    };
    let ended = host.attach(&attach, io).await?;
    let lines = lines.load(std::sync::atomic::Ordering::Relaxed);
    if ended.stopped || ended.status.success() {
        return Ok(LogsEnd {
            stopped: ended.stopped,
            lines,
        });
    }
    let stderr =
        String::from_utf8_lossy(&errors.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    Err(TaskError::compose(
        LOGS,
        format!(
            "`{compose} logs` failed on the host ({}):\n{}",
            describe(&ended.status),
            indent_tail(&stderr, 20)
        ),
        "look at `status`; Compose needs the files `release` uploads",
    ))
}

fn describe(status: &ExitStatus) -> String {
    status.to_string()
}

/// An [`AsyncWrite`] that cuts what it gets into lines and hands each to a function.
pub struct LineWriter<F: FnMut(&str)> {
    partial: Vec<u8>,
    each: F,
}

impl<F: FnMut(&str)> LineWriter<F> {
    pub fn new(each: F) -> Self {
        Self {
            partial: Vec::new(),
            each,
        }
    }

    fn emit(&mut self) {
        let line = std::mem::take(&mut self.partial);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        (self.each)(&String::from_utf8_lossy(line));
    }
}

impl<F: FnMut(&str) + Unpin> AsyncWrite for LineWriter<F> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        for &b in buf {
            if b == b'\n' {
                this.emit();
            } else {
                this.partial.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.partial.is_empty() {
            this.emit();
        }
        Poll::Ready(Ok(()))
    }
}

impl<F: FnMut(&str)> Drop for LineWriter<F> {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

/// Keeps the last 8 KiB written to it (Compose's error output, for the error message) and
/// copies it to our stderr as it comes.
struct TailWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl AsyncWrite for TailWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend_from_slice(buf);
        let extra = kept.len().saturating_sub(8 * 1024);
        kept.drain(..extra);
        tracing::debug!(target: "ssh", "compose logs: {}", String::from_utf8_lossy(buf).trim_end());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn services() -> Vec<String> {
        ["tracker", "mysql", "prometheus"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn prefixes_of_both_compose_versions_name_the_service() {
        let s = services();
        for prefix in [
            "tracker_1   ",
            "tracker-1",
            "torrust_tracker_1",
            "torrust-tracker-1 ",
            "tracker",
        ] {
            assert_eq!(service_of(prefix, &s), Some("tracker"), "{prefix}");
        }
        assert_eq!(service_of("grafana_1", &s), None);
        assert_eq!(
            split_line("prometheus_1  | level=info msg=ready | x", &s),
            LogLine {
                service: Some("prometheus".into()),
                line: "level=info msg=ready | x".into()
            }
        );
        assert_eq!(
            split_line("tracker-1  |", &s).service.as_deref(),
            Some("tracker")
        );
        assert_eq!(
            split_line("Attaching to torrust_tracker_1", &s),
            LogLine {
                service: None,
                line: "Attaching to torrust_tracker_1".into()
            }
        );
    }

    #[test]
    fn since_drops_older_lines_and_the_timestamps_unless_kept() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let since = Since {
            at: Some(at),
            keep_timestamps: false,
        };
        assert_eq!(since.apply("2026-01-02T09:59:59.999999999Z old"), None);
        assert_eq!(
            since
                .apply("2026-01-02T10:00:00.000000001Z new line")
                .as_deref(),
            Some("new line")
        );
        assert_eq!(since.apply("no stamp").as_deref(), Some("no stamp"));
        let keep = Since {
            at: None,
            keep_timestamps: true,
        };
        assert_eq!(
            keep.apply("2026-01-02T09:00:00Z x").as_deref(),
            Some("2026-01-02T09:00:00Z x")
        );
    }

    #[test]
    fn since_reads_durations_times_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ago = |s: &str| (now - parse_since(s, now).unwrap()).num_seconds();
        assert_eq!(ago("90s"), 90);
        assert_eq!(ago("10m"), 600);
        assert_eq!(ago("1h30m"), 5400);
        assert_eq!(ago("1d"), 86400);
        assert_eq!(
            parse_since("2026-01-01T00:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2025-12-31T23:00:00+00:00"
        );
        assert_eq!(ago("2026-01-02"), 36000);
        for bad in ["", "10", "ten minutes", "5y", "m"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_script_asks_compose_for_what_both_versions_have() {
        let request = LogsRequest {
            services: vec!["tracker".into()],
            follow: true,
            tail: Some(20),
            since: Some(Utc::now()),
            timestamps: false,
        };
        let s = script("docker-compose", &request);
        assert!(
            s.contains(
                "setsid docker-compose logs --no-color --follow --tail 20 --timestamps -- tracker </dev/null &"
            ),
            "{s}"
        );
        assert!(s.starts_with("cd /opt/torrust || exit 1\n"), "{s}");
        let plain = script("docker compose", &LogsRequest::default());
        assert!(
            plain.contains("setsid docker compose logs --no-color </dev/null &"),
            "{plain}"
        );
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The script, run here with a stand-in Compose that never ends: closing its input kills
    /// the stand-in (and its child), and the script ends.
    #[test]
    fn closing_the_input_ends_the_remote_logs_and_leaves_nothing_running() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let fake = dir.path().join("fake-compose");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nsleep 300 &\necho $$ $! > {}\necho 'tracker_1  | started'\nwait\n",
                pids.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let request = LogsRequest {
            follow: true,
            ..LogsRequest::default()
        };
        // The stack directory does not exist here: run from the temporary one instead.
        let s = script(fake.to_str().unwrap(), &request)
            .replace("cd /opt/torrust", &format!("cd {}", dir.path().display()));
        let mut child = Command::new("sh")
            .args(["-c", &s])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "tracker_1  | started\n");
        let text = std::fs::read_to_string(&pids).unwrap();
        let running: Vec<u32> = text
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        drop(child.stdin.take());
        let started = std::time::Instant::now();
        let status = child.wait().unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(!status.success(), "ended by the kill: {status:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        for pid in running {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .unwrap_or_default()
                        .contains(") Z "),
                "process {pid} still runs"
            );
        }
    }

    #[tokio::test]
    async fn lines_reach_the_sink_with_their_service() {
        let host = FakeHost::new();
        host.reply(
            "logs --no-color",
            [Reply::ok(
                "Attaching to torrust_tracker_1\ntracker_1  | one\ntracker_1  | two\n",
            )],
        );
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        let sink: LineSink = Arc::new(move |l| g.lock().unwrap().push(l));
        let request = LogsRequest {
            services: vec!["tracker".into()],
            tail: Some(2),
            ..LogsRequest::default()
        };
        let end = stream(
            &host,
            "docker-compose",
            &request,
            &services(),
            sink,
            Box::pin(std::future::pending()),
        )
        .await
        .unwrap();
        assert_eq!(
            end,
            LogsEnd {
                stopped: false,
                lines: 2
            }
        );
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].service, None);
        assert_eq!(
            got[2],
            LogLine {
                service: Some("tracker".into()),
                line: "two".into()
            }
        );
        let [Call::Attach(req, input)] = &host.calls()[..] else {
            panic!("{:?}", host.calls())
        };
        assert!(req.sudo && req.pty.is_none() && input.is_empty());

        let host = FakeHost::new();
        host.reply("logs --no-color", [Reply::fail(1, "No such service: x")]);
        let err = stream(
            &host,
            "docker-compose",
            &LogsRequest::default(),
            &services(),
            Arc::new(|_| {}),
            Box::pin(std::future::pending()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TaskError::Compose { .. }), "{err}");
        assert!(err.to_string().contains("No such service: x"), "{err}");
    }
}
