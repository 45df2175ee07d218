//! Progress events: what a command is doing, as it happens, sent to one monitor.
//!
//! Operations never print. A step ([`crate::ops::steps::StepRun`]) sends an [`Event`] when it
//! starts, reports progress, finishes (changed or not, and how long it took) or fails (with its
//! [`ErrorKind`]); `deploy` adds its phases around them. The events go to a [`Sink`]: in the
//! binary, the monitor in `cli/monitor.rs` (a live display on a terminal, timestamped lines
//! otherwise, JSON lines with `--output json`); in tests, a [`Recorder`].
//!
//! How the sink is found, like `tracing`'s dispatcher: [`Events::current`] is the handle set for
//! the running task by [`Events::scope`] (tests), else the one [`install`]ed for the process
//! (the CLI), else none (events are dropped). `StepRun` takes it when the command begins.
//!
//! Code running inside a step, however deep, reports progress with [`note`] and [`bytes()`]
//! (no-ops outside a step): the step is found the same way, through the running task.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error_kind::ErrorKind;

/// One thing that happened, with when; `env` names the environment when one command works on
/// several (`deploy A B C`): each environment's events go through [`Events::for_env`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub env: Option<String>,
    pub what: What,
}

impl Serialize for Event {
    /// `{"at": ..., "env": ..., "event": ..., ...}`: `env` only when set, and once
    /// (`command_started` carries its own).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            at: &'a DateTime<Utc>,
            #[serde(skip_serializing_if = "Option::is_none")]
            env: Option<&'a str>,
            #[serde(flatten)]
            what: &'a What,
        }
        let env = match &self.what {
            What::CommandStarted { .. } => None,
            _ => self.env.as_deref(),
        };
        Flat {
            at: &self.at,
            env,
            what: &self.what,
        }
        .serialize(serializer)
    }
}

/// What happened. In `--output json` each event is one line on stderr, tagged by `event`:
/// `{"at": "...", "event": "step_finished", "command": "provision", "step": "ensure profile",
/// "changed": true, "elapsed_ms": 12}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// A command began on an environment; `resumes` says which unfinished run it carries on.
    CommandStarted {
        command: String,
        env: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        resumes: Option<Resumed>,
    },
    StepStarted {
        command: String,
        step: String,
    },
    StepProgress {
        command: String,
        step: String,
        #[serde(flatten)]
        progress: Progress,
    },
    /// `changed` is `None` when the step does not say (see `StepRun::step_changed`).
    StepFinished {
        command: String,
        step: String,
        changed: Option<bool>,
        elapsed_ms: u64,
    },
    StepFailed {
        command: String,
        step: String,
        kind: ErrorKind,
        message: String,
        elapsed_ms: u64,
    },
    CommandFinished {
        command: String,
        elapsed_ms: u64,
    },
    /// `deploy` runs commands as phases.
    PhaseStarted {
        phase: String,
    },
    PhaseFinished {
        phase: String,
        changed: bool,
        elapsed_ms: u64,
    },
    PhaseFailed {
        phase: String,
        kind: ErrorKind,
        elapsed_ms: u64,
    },
    /// A command over several environments began one of them (the event's `env`).
    EnvironmentStarted {},
    /// ... and finished it: `kind` says why it failed.
    EnvironmentFinished {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<ErrorKind>,
        elapsed_ms: u64,
    },
}

/// The unfinished run a command resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resumed {
    pub command: String,
    /// The step it reached, if it reached one.
    pub step: Option<String>,
    /// Whether it failed there (else it was interrupted).
    pub failed: bool,
}

/// Progress inside a step: a note, or bytes sent so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Progress {
    Note { message: String },
    Bytes { bytes: u64, total: Option<u64> },
}

/// Where events go. Called on the sending task: keep it quick.
pub trait Sink: Send + Sync {
    fn send(&self, event: &Event);
}

/// A cheap, cloneable handle on a sink (or on none).
#[derive(Clone, Default)]
pub struct Events {
    sink: Option<Arc<dyn Sink>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() {
            "Events(sink)"
        } else {
            "Events(none)"
        })
    }
}

static INSTALLED: OnceLock<Events> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Events;
    static STEP: StepContext;
}

/// Sets the process's events handle (the CLI's monitor). Only the first call counts.
pub fn install(events: Events) {
    let _ = INSTALLED.set(events);
}

impl Events {
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self { sink: Some(sink) }
    }

    /// A handle that drops every event.
    pub fn none() -> Self {
        Self::default()
    }

    /// The handle for the running task: [`Events::scope`]'s, else the [`install`]ed one, else
    /// none.
    pub fn current() -> Self {
        SCOPED
            .try_with(Clone::clone)
            .ok()
            .or_else(|| INSTALLED.get().cloned())
            .unwrap_or_default()
    }

    /// Runs `future` with this handle as [`Events::current`].
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        SCOPED.scope(self, future).await
    }

    pub fn emit(&self, what: What) {
        if let Some(sink) = &self.sink {
            sink.send(&Event {
                at: Utc::now(),
                env: None,
                what,
            });
        }
    }

    /// A handle that marks every event as `env`'s before this one's sink gets it.
    pub fn for_env(&self, env: &str) -> Events {
        match &self.sink {
            Some(sink) => Events::new(Arc::new(EnvSink {
                env: env.to_string(),
                inner: sink.clone(),
            })),
            None => Events::none(),
        }
    }
}

/// [`Events::for_env`]'s sink.
struct EnvSink {
    env: String,
    inner: Arc<dyn Sink>,
}

impl Sink for EnvSink {
    fn send(&self, event: &Event) {
        let mut event = event.clone();
        event.env = Some(self.env.clone());
        self.inner.send(&event);
    }
}

/// The step the running task is in, for [`note`] and [`bytes()`].
#[derive(Clone)]
struct StepContext {
    events: Events,
    command: Arc<str>,
    step: Arc<str>,
}

impl StepContext {
    fn progress(&self, progress: Progress) {
        self.events.emit(What::StepProgress {
            command: self.command.to_string(),
            step: self.step.to_string(),
            progress,
        });
    }
}

/// Runs `future` as the body of `command`'s step `step`: its [`note`]s and [`bytes()`] go to
/// `events` as that step's progress. `StepRun` runs every step this way.
pub async fn in_step<F: Future>(
    events: &Events,
    command: &str,
    step: &str,
    future: F,
) -> F::Output {
    let context = StepContext {
        events: events.clone(),
        command: command.into(),
        step: step.into(),
    };
    STEP.scope(context, future).await
}

/// Reports a note on the current step ("loading mysql.tar"). No-op outside a step.
pub fn note(message: impl Into<String>) {
    let _ = STEP.try_with(|s| {
        s.progress(Progress::Note {
            message: message.into(),
        })
    });
}

/// Reports bytes sent so far by the current step, of `total` if known. No-op outside a step.
pub fn bytes(sent: u64, total: Option<u64>) {
    let _ = STEP.try_with(|s| s.progress(Progress::Bytes { bytes: sent, total }));
}

/// Counts bytes as they are sent and reports them through [`bytes()`] every [`ByteCounter::EVERY`]
/// bytes and at the end, so a large upload makes a few hundred events, not one per chunk.
#[derive(Debug)]
pub struct ByteCounter {
    sent: u64,
    reported: u64,
    total: Option<u64>,
}

impl ByteCounter {
    pub const EVERY: u64 = 1 << 20;

    pub fn new(total: Option<u64>) -> Self {
        Self {
            sent: 0,
            reported: 0,
            total,
        }
    }

    pub fn add(&mut self, n: usize) {
        self.sent += n as u64;
        if self.sent - self.reported >= Self::EVERY {
            self.report();
        }
    }

    /// Reports the final count (once, if anything was sent since the last report).
    pub fn finish(&mut self) {
        if self.sent > self.reported {
            self.report();
        }
    }

    fn report(&mut self) {
        self.reported = self.sent;
        bytes(self.sent, self.total);
    }
}

/// A sink that keeps every event, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event so far, without their times.
    pub fn whats(&self) -> Vec<What> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.what.clone())
            .collect()
    }
}

impl Sink for Recorder {
    fn send(&self, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_reaches_the_current_step_only() {
        let rec = Recorder::new();
        let events = Events::new(rec.clone());
        note("outside any step: dropped");
        in_step(&events, "release", "images", async {
            note("loading mysql.tar");
            bytes(5, Some(10));
        })
        .await;
        bytes(1, None);
        assert_eq!(
            rec.whats(),
            [
                What::StepProgress {
                    command: "release".into(),
                    step: "images".into(),
                    progress: Progress::Note {
                        message: "loading mysql.tar".into()
                    }
                },
                What::StepProgress {
                    command: "release".into(),
                    step: "images".into(),
                    progress: Progress::Bytes {
                        bytes: 5,
                        total: Some(10)
                    }
                },
            ]
        );
    }

    #[tokio::test]
    async fn the_scoped_handle_is_current() {
        let rec = Recorder::new();
        Events::new(rec.clone())
            .scope(async {
                Events::current().emit(What::PhaseStarted {
                    phase: "run".into(),
                })
            })
            .await;
        assert_eq!(
            rec.whats(),
            [What::PhaseStarted {
                phase: "run".into()
            }]
        );
    }

    #[tokio::test]
    async fn byte_counts_are_reported_per_mebibyte_and_at_the_end() {
        let rec = Recorder::new();
        let events = Events::new(rec.clone());
        in_step(&events, "release", "images", async {
            let mut counter = ByteCounter::new(Some(3 << 20));
            for _ in 0..(5 * 64) {
                counter.add(8 << 10); // 2.5 MiB in 8 KiB chunks
            }
            counter.finish();
            counter.finish();
        })
        .await;
        let sent: Vec<u64> = rec
            .whats()
            .into_iter()
            .map(|w| match w {
                What::StepProgress {
                    progress: Progress::Bytes { bytes, total },
                    ..
                } => {
                    assert_eq!(total, Some(3 << 20));
                    bytes
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, [1 << 20, 2 << 20, 5 << 19]);
    }

    #[test]
    fn events_of_one_of_several_environments_name_it_once() {
        let rec = Recorder::new();
        let events = Events::new(rec.clone()).for_env("b");
        events.emit(What::PhaseStarted {
            phase: "run".into(),
        });
        events.emit(What::CommandStarted {
            command: "provision".into(),
            env: "b".into(),
            resumes: None,
        });
        let got = rec.events.lock().unwrap().clone();
        assert!(got.iter().all(|e| e.env.as_deref() == Some("b")), "{got:?}");
        let json: Vec<serde_json::Value> = got
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap();
                v.as_object_mut().unwrap().remove("at");
                v
            })
            .collect();
        assert_eq!(
            json,
            [
                serde_json::json!({"env": "b", "event": "phase_started", "phase": "run"}),
                serde_json::json!({"event": "command_started", "command": "provision", "env": "b"}),
            ]
        );
        // A command over one environment does not name it on every event.
        assert!(Events::none().for_env("b").sink.is_none());
    }

    #[test]
    fn events_serialize_as_one_tagged_object() {
        let at = "2026-11-29T21:00:00Z".parse().unwrap();
        let e = |what| {
            serde_json::to_value(Event {
                at,
                env: None,
                what,
            })
            .unwrap()
        };
        assert_eq!(
            e(What::StepFailed {
                command: "configure".into(),
                step: "connect".into(),
                kind: ErrorKind::SshAuthFailed,
                message: "rejected".into(),
                elapsed_ms: 3,
            }),
            serde_json::json!({
                "at": "2026-11-29T21:00:00Z", "event": "step_failed", "command": "configure",
                "step": "connect", "kind": "ssh_auth_failed", "message": "rejected",
                "elapsed_ms": 3
            })
        );
        assert_eq!(
            e(What::StepProgress {
                command: "release".into(),
                step: "images".into(),
                progress: Progress::Bytes {
                    bytes: 7,
                    total: None
                },
            }),
            serde_json::json!({
                "at": "2026-11-29T21:00:00Z", "event": "step_progress", "command": "release",
                "step": "images", "bytes": 7, "total": null
            })
        );
        assert_eq!(
            e(What::CommandStarted {
                command: "provision".into(),
                env: "e2e".into(),
                resumes: None,
            }),
            serde_json::json!({
                "at": "2026-11-29T21:00:00Z", "event": "command_started",
                "command": "provision", "env": "e2e"
            })
        );
    }
}
