//! The monitor: the one place that shows the operations' progress events ([`crate::events`]).
//!
//! It owns stderr while a command runs, in one of four modes ([`Mode`]):
//! - **live** (stderr is a terminal): a spinner per running step with its elapsed time (and
//!   bytes sent, for uploads), drawn with `indicatif`; each finished step becomes one permanent
//!   line (`✔ ensure profile   changed   0.3s`). Log lines are printed above the spinners;
//! - **plain** (stderr is not a terminal): one timestamped line per event;
//! - **json** (`--output json`): one JSON object per event and line, as serialized by
//!   [`crate::events::Event`], so stdout keeps its one result document;
//! - **quiet** (`-q`): nothing.
//!
//! In every mode each event is also written to the log file, as its plain line.
//!
//! When one command works on several environments (`deploy A B C`), each event names its
//! environment ([`Event::env`]): live and plain lines start with `[A] `, JSON lines carry
//! `"env"`, and each environment's spinners are its own.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{Format, GlobalArgs};
use crate::events::{Event, Progress, Resumed, Sink, What};

/// The `tracing` target the monitor logs events under: the log file keeps them, the stderr
/// layer leaves them to the monitor.
pub const EVENTS_TARGET: &str = "torrust_tracker_deployer::events";

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Plain,
    Json,
    Quiet,
}

impl Mode {
    pub fn choose(global: &GlobalArgs) -> Mode {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        if global.quiet {
            Mode::Quiet
        } else if global.output == Format::Json {
            Mode::Json
        } else if terminal {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// Bytes-only progress lines in plain mode: at most one per step this often.
const PLAIN_BYTES_EVERY: Duration = Duration::from_secs(2);

pub struct Monitor {
    mode: Mode,
    color: bool,
    /// The live display (live mode only).
    multi: Option<MultiProgress>,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// `deploy`'s current phase per environment: a command of the same name needs no header of
    /// its own.
    phase: HashMap<Option<String>, String>,
    /// Running steps by (environment, command, step).
    steps: HashMap<StepKey, RunningStep>,
}

/// (environment when several, command, step)
type StepKey = (Option<String>, String, String);

fn key(env: &Option<String>, command: &str, step: &str) -> StepKey {
    (env.clone(), command.to_string(), step.to_string())
}

/// `[env] ` when the command works on several environments, else nothing.
fn prefix(env: &Option<String>) -> String {
    env.as_ref().map(|e| format!("[{e}] ")).unwrap_or_default()
}

struct RunningStep {
    bar: Option<ProgressBar>,
    last_bytes_line: Option<Instant>,
}

impl Monitor {
    pub fn new(mode: Mode) -> Arc<Monitor> {
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let multi = (mode == Mode::Live)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Arc::new(Monitor {
            mode,
            color: color && mode == Mode::Live,
            multi,
            running: Mutex::new(Running::default()),
        })
    }

    /// A writer for log lines on stderr that keeps the live display intact.
    pub fn stderr_writer(&self) -> StderrWriter {
        StderrWriter {
            multi: self.multi.clone(),
        }
    }

    /// Clears whatever is still drawn (a step interrupted by an error outside the steps).
    pub fn finish(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, step) in running.steps.drain() {
            if let Some(bar) = step.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    fn render_live(&self, multi: &MultiProgress, running: &mut Running, event: &Event) {
        let (env, what) = (&event.env, &event.what);
        let pre = prefix(env);
        let (ok, failed, bold, reset) = if self.color {
            ("\x1b[32m✔\x1b[0m", "\x1b[31m✘\x1b[0m", "\x1b[1m", "\x1b[0m")
        } else {
            ("✔", "✘", "", "")
        };
        let line = |text: String| {
            let _ = multi.println(format!("{pre}{text}"));
        };
        match what {
            What::PhaseStarted { phase } => {
                running.phase.insert(env.clone(), phase.clone());
                line(format!("{bold}▸ {phase}{reset}"));
            }
            What::PhaseFinished {
                phase,
                changed,
                elapsed_ms,
            } => {
                running.phase.remove(env);
                line(format!(
                    "{ok} {bold}{phase:<31}{reset} {:<9} {:>7}",
                    if *changed { "changed" } else { "unchanged" },
                    secs(*elapsed_ms)
                ));
            }
            What::PhaseFailed {
                phase,
                kind,
                elapsed_ms,
            } => {
                running.phase.remove(env);
                line(format!(
                    "{failed} {bold}{phase:<31}{reset} {kind:<9} {:>7}",
                    secs(*elapsed_ms)
                ));
            }
            What::CommandStarted {
                command,
                env: name,
                resumes,
            } => {
                if running.phase.get(env) != Some(command) {
                    line(format!("{bold}▸ {command} {name}{reset}"));
                }
                if let Some(r) = resumes {
                    line(format!("  {}", resuming(r)));
                }
            }
            What::StepStarted { command, step } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_message(format!("{pre}{step:<29} {:<9}", ""));
                bar.enable_steady_tick(Duration::from_millis(100));
                running.steps.insert(
                    key(env, command, step),
                    RunningStep {
                        bar: Some(bar),
                        last_bytes_line: None,
                    },
                );
            }
            What::StepProgress {
                command,
                step,
                progress,
            } => {
                if let Some(bar) = running
                    .steps
                    .get(&key(env, command, step))
                    .and_then(|s| s.bar.as_ref())
                {
                    bar.set_message(format!("{pre}{step:<29} {:<9}", progress_text(progress)));
                }
            }
            What::StepFinished {
                command,
                step,
                changed,
                elapsed_ms,
            } => {
                self.end_bar(multi, running, key(env, command, step));
                line(format!(
                    "  {ok} {step:<29} {:<9} {:>7}",
                    match changed {
                        Some(true) => "changed",
                        Some(false) => "unchanged",
                        None => "",
                    },
                    secs(*elapsed_ms)
                ));
            }
            What::StepFailed {
                command,
                step,
                kind,
                elapsed_ms,
                ..
            } => {
                self.end_bar(multi, running, key(env, command, step));
                line(format!(
                    "  {failed} {step:<29} {kind:<9} {:>7}",
                    secs(*elapsed_ms)
                ));
            }
            What::CommandFinished { .. } => {}
            What::EnvironmentStarted {} => line(format!("{bold}▸ started{reset}")),
            What::EnvironmentFinished {
                ok: true,
                elapsed_ms,
                ..
            } => line(format!(
                "{ok} {bold}{:<31}{reset} {:<9} {:>7}",
                "done",
                "",
                secs(*elapsed_ms)
            )),
            What::EnvironmentFinished {
                kind, elapsed_ms, ..
            } => line(format!(
                "{failed} {bold}{:<31}{reset} {:<9} {:>7}",
                "FAILED",
                kind.map(|k| k.as_str()).unwrap_or(""),
                secs(*elapsed_ms)
            )),
        }
    }

    fn end_bar(&self, multi: &MultiProgress, running: &mut Running, key: StepKey) {
        if let Some(bar) = running.steps.remove(&key).and_then(|s| s.bar) {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    }

    fn render_plain(&self, running: &mut Running, event: &Event) {
        let env = &event.env;
        // Byte counts come often: one line per step every few seconds is enough to read.
        match &event.what {
            What::StepStarted { command, step } => {
                running.steps.insert(
                    key(env, command, step),
                    RunningStep {
                        bar: None,
                        last_bytes_line: None,
                    },
                );
            }
            What::StepProgress {
                command,
                step,
                progress: Progress::Bytes { .. },
            } => {
                if let Some(s) = running.steps.get_mut(&key(env, command, step)) {
                    if s.last_bytes_line
                        .is_some_and(|t| t.elapsed() < PLAIN_BYTES_EVERY)
                    {
                        return;
                    }
                    s.last_bytes_line = Some(Instant::now());
                }
            }
            What::StepFinished { command, step, .. } | What::StepFailed { command, step, .. } => {
                running.steps.remove(&key(env, command, step));
            }
            _ => {}
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} {}{}",
            event.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            prefix(env),
            plain_text(&event.what)
        );
    }
}

impl Sink for Monitor {
    fn send(&self, event: &Event) {
        // Several environments: each line goes to the environment's own log file (its span,
        // see `logging`), so the file needs no prefix.
        tracing::info!(target: EVENTS_TARGET, "{}", plain_text(&event.what));
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match self.mode {
            Mode::Live => {
                if let Some(multi) = &self.multi {
                    self.render_live(multi, &mut running, event);
                }
            }
            Mode::Plain => self.render_plain(&mut running, event),
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            Mode::Quiet => {}
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg} {secs:>7}")
        .expect("the template is valid")
        .with_key(
            "secs",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
            },
        )
}

/// `1.2s`
fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// `12.5 MB` (decimal units, as `docker` and `ls -h --si` print them).
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn progress_text(progress: &Progress) -> String {
    match progress {
        Progress::Note { message } => message.clone(),
        Progress::Bytes {
            bytes,
            total: Some(total),
        } => format!("{} of {} sent", size(*bytes), size(*total)),
        Progress::Bytes { bytes, total: None } => format!("{} sent", size(*bytes)),
    }
}

fn resuming(r: &Resumed) -> String {
    let at = match (&r.step, r.failed) {
        (Some(step), true) => format!("failed at step '{step}'"),
        (Some(step), false) => format!("was interrupted at step '{step}'"),
        (None, _) => "was interrupted".to_string(),
    };
    format!(
        "resuming: the previous `{}` {at}; finished steps will find nothing to do",
        r.command
    )
}

/// The event as one line of text (plain mode and the log file).
pub fn plain_text(what: &What) -> String {
    match what {
        What::CommandStarted {
            command,
            env,
            resumes,
        } => match resumes {
            Some(r) => format!("{command} {env}: {}", resuming(r)),
            None => format!("{command} {env}"),
        },
        What::StepStarted { command, step } => format!("{command}: {step} ..."),
        What::StepProgress {
            command,
            step,
            progress,
        } => format!("{command}: {step}: {}", progress_text(progress)),
        What::StepFinished {
            command,
            step,
            changed,
            elapsed_ms,
        } => format!(
            "{command}: {step}: {} ({})",
            match changed {
                Some(true) => "changed",
                Some(false) => "unchanged",
                None => "done",
            },
            secs(*elapsed_ms)
        ),
        What::StepFailed {
            command,
            step,
            kind,
            elapsed_ms,
            ..
        } => format!("{command}: {step}: FAILED ({kind}) ({})", secs(*elapsed_ms)),
        What::CommandFinished {
            command,
            elapsed_ms,
        } => format!("{command}: done ({})", secs(*elapsed_ms)),
        What::PhaseStarted { phase } => format!("== {phase}"),
        What::PhaseFinished {
            phase,
            changed,
            elapsed_ms,
        } => format!(
            "== {phase}: {} ({})",
            if *changed { "changed" } else { "unchanged" },
            secs(*elapsed_ms)
        ),
        What::PhaseFailed {
            phase,
            kind,
            elapsed_ms,
        } => format!("== {phase}: FAILED ({kind}) ({})", secs(*elapsed_ms)),
        What::EnvironmentStarted {} => "started".to_string(),
        What::EnvironmentFinished {
            ok: true,
            elapsed_ms,
            ..
        } => format!("done ({})", secs(*elapsed_ms)),
        What::EnvironmentFinished {
            kind, elapsed_ms, ..
        } => format!(
            "FAILED ({}) ({})",
            kind.map(|k| k.as_str()).unwrap_or("failed"),
            secs(*elapsed_ms)
        ),
    }
}

/// Log lines on stderr. In live mode each line is printed with the spinners hidden, then they
/// are drawn again below it.
#[derive(Clone)]
pub struct StderrWriter {
    multi: Option<MultiProgress>,
}

/// One log line being written (tracing writes a whole event, then drops the writer).
pub struct LineWriter {
    multi: Option<MultiProgress>,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let write = move || {
            let _ = std::io::stderr().lock().write_all(&buf);
        };
        match &self.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::ErrorKind;

    #[test]
    fn plain_lines_say_what_happened() {
        let finished = |changed| What::StepFinished {
            command: "provision".into(),
            step: "ensure profile".into(),
            changed,
            elapsed_ms: 1250,
        };
        assert_eq!(
            plain_text(&finished(Some(true))),
            "provision: ensure profile: changed (1.2s)"
        );
        assert_eq!(
            plain_text(&finished(None)),
            "provision: ensure profile: done (1.2s)"
        );
        assert_eq!(
            plain_text(&What::StepFailed {
                command: "configure".into(),
                step: "connect".into(),
                kind: ErrorKind::SshHostKeyChanged,
                message: "changed".into(),
                elapsed_ms: 40,
            }),
            "configure: connect: FAILED (ssh_host_key_changed) (0.0s)"
        );
        assert_eq!(
            plain_text(&What::StepProgress {
                command: "release".into(),
                step: "images".into(),
                progress: Progress::Bytes {
                    bytes: 12_345_678,
                    total: Some(117_000_000)
                },
            }),
            "release: images: 12.3 MB of 117.0 MB sent"
        );
        assert_eq!(
            plain_text(&What::CommandStarted {
                command: "provision".into(),
                env: "e2e".into(),
                resumes: Some(Resumed {
                    command: "provision".into(),
                    step: Some("wait for SSH".into()),
                    failed: true
                }),
            }),
            "provision e2e: resuming: the previous `provision` failed at step 'wait for SSH'; \
             finished steps will find nothing to do"
        );
    }

    #[test]
    fn deploy_phases_are_lines_of_their_own() {
        assert_eq!(
            plain_text(&What::PhaseStarted {
                phase: "release".into()
            }),
            "== release"
        );
        assert_eq!(
            plain_text(&What::PhaseFinished {
                phase: "release".into(),
                changed: false,
                elapsed_ms: 300
            }),
            "== release: unchanged (0.3s)"
        );
        assert_eq!(
            plain_text(&What::PhaseFailed {
                phase: "run".into(),
                kind: ErrorKind::HealthTimeout,
                elapsed_ms: 180_000
            }),
            "== run: FAILED (health_timeout) (180.0s)"
        );
    }

    #[test]
    fn sizes_use_decimal_units() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1000), "1.0 kB");
        assert_eq!(size(117_400_000), "117.4 MB");
        assert_eq!(size(2_500_000_000), "2.5 GB");
    }
}
