//! Named, recorded steps: the backbone of resumable commands, and the one source of progress.
//!
//! A [`StepRun`] records in the state file, before each step, which step the command is in, and
//! after a failure, the failed step, the error and a trace file. Each step must be idempotent
//! (read the current state, act only when needed), so resuming is simply running the command
//! again: finished steps find nothing to do.
//!
//! Every step also sends its events ([`crate::events`]): started, finished (with whether it
//! changed anything, when it says so, and its time) or failed (with the [`crate::error_kind::ErrorKind`] of its
//! error). The error itself is kept whole in [`OpsError::StepFailed`], so `--output json` and
//! the exit code come from what really failed. Code inside a step reports progress with
//! [`crate::events::note`] and [`crate::events::bytes`].

use std::error::Error as StdError;
use std::time::Instant;

use chrono::Utc;

use super::OpsError;
use crate::error_kind::{Classified, Classify};
use crate::events::{self, Events, Resumed, What};
use crate::state::{CommandRun, DataDir, EnvironmentState, Lifecycle, RunStatus, fsutil};

pub struct StepRun<'a> {
    data: &'a DataDir,
    command: String,
    started: Instant,
    events: Events,
}

/// What a step that says whether it changed anything returns (see [`StepRun::step_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done<T> {
    pub value: T,
    pub changed: bool,
}

impl<T> Done<T> {
    pub fn new(value: T, changed: bool) -> Self {
        Self { value, changed }
    }

    pub fn changed(value: T) -> Self {
        Self::new(value, true)
    }

    pub fn unchanged(value: T) -> Self {
        Self::new(value, false)
    }
}

impl<'a> StepRun<'a> {
    /// Records that `command` started on the environment. If a previous run of it did not
    /// finish, the `command_started` event says so: this run resumes it. Events go to
    /// [`Events::current`].
    pub fn begin(
        data: &'a DataDir,
        state: &mut EnvironmentState,
        command: &str,
    ) -> Result<Self, OpsError> {
        let resumes = state.unfinished_run().map(|previous| {
            let (step, failed) = match &previous.status {
                RunStatus::Running { step } => (step.clone(), false),
                RunStatus::Failed { step, .. } => (Some(step.clone()), true),
                RunStatus::Succeeded => unreachable!("filtered by unfinished_run"),
            };
            Resumed {
                command: previous.command.clone(),
                step,
                failed,
            }
        });
        state.last_run = Some(CommandRun {
            command: command.to_string(),
            started_at: Utc::now(),
            finished_at: None,
            completed_steps: Vec::new(),
            status: RunStatus::Running { step: None },
        });
        data.save_progress(state)?;
        let events = Events::current();
        events.emit(What::CommandStarted {
            command: command.to_string(),
            env: state.name.clone(),
            resumes,
        });
        Ok(Self {
            data,
            command: command.to_string(),
            started: Instant::now(),
            events,
        })
    }

    /// Runs one named step, recording it before and after. Its `step_finished` event does not
    /// say whether it changed anything; [`StepRun::step_changed`] does.
    pub async fn step<T, E>(
        &mut self,
        state: &mut EnvironmentState,
        name: &str,
        f: impl AsyncFnOnce(&mut EnvironmentState) -> Result<T, E>,
    ) -> Result<T, OpsError>
    where
        E: Classify + StdError + Send + Sync + 'static,
    {
        self.run_step(state, name, f, |_| None).await
    }

    /// Runs one named step whose body says whether it changed anything ([`Done`]); returns the
    /// value.
    pub async fn step_changed<T, E>(
        &mut self,
        state: &mut EnvironmentState,
        name: &str,
        f: impl AsyncFnOnce(&mut EnvironmentState) -> Result<Done<T>, E>,
    ) -> Result<T, OpsError>
    where
        E: Classify + StdError + Send + Sync + 'static,
    {
        let done = self
            .run_step(state, name, f, |d: &Done<T>| Some(d.changed))
            .await?;
        Ok(done.value)
    }

    async fn run_step<T, E>(
        &mut self,
        state: &mut EnvironmentState,
        name: &str,
        f: impl AsyncFnOnce(&mut EnvironmentState) -> Result<T, E>,
        changed: impl FnOnce(&T) -> Option<bool>,
    ) -> Result<T, OpsError>
    where
        E: Classify + StdError + Send + Sync + 'static,
    {
        self.set_status(
            state,
            RunStatus::Running {
                step: Some(name.to_string()),
            },
            false,
        )?;
        self.events.emit(What::StepStarted {
            command: self.command.to_string(),
            step: name.to_string(),
        });
        let step_started = Instant::now();
        match events::in_step(&self.events, &self.command, name, f(state)).await {
            Ok(value) => {
                if let Some(run) = state.last_run.as_mut() {
                    run.completed_steps.push(name.to_string());
                }
                self.data.save_progress(state)?;
                self.events.emit(What::StepFinished {
                    command: self.command.to_string(),
                    step: name.to_string(),
                    changed: changed(&value),
                    elapsed_ms: step_started.elapsed().as_millis() as u64,
                });
                Ok(value)
            }
            Err(err) => {
                let error = Classified::new(err);
                self.events.emit(What::StepFailed {
                    command: self.command.to_string(),
                    step: name.to_string(),
                    kind: error.kind(),
                    message: error.to_string(),
                    elapsed_ms: step_started.elapsed().as_millis() as u64,
                });
                Err(self.fail(state, name, error))
            }
        }
    }

    /// Records success and, when given, the new lifecycle state.
    pub fn finish(
        self,
        state: &mut EnvironmentState,
        lifecycle: Option<Lifecycle>,
    ) -> Result<(), OpsError> {
        if let Some(lifecycle) = lifecycle {
            state.lifecycle = lifecycle;
        }
        if let Some(run) = state.last_run.as_mut() {
            run.finished_at = Some(Utc::now());
        }
        self.set_status(state, RunStatus::Succeeded, true)?;
        self.events.emit(What::CommandFinished {
            command: self.command.to_string(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    /// Records `status`; `durable` waits for the disk (the end of a command), otherwise the
    /// record is a progress marker that the command's last save repeats (see
    /// [`DataDir::save_progress`]).
    fn set_status(
        &self,
        state: &mut EnvironmentState,
        status: RunStatus,
        durable: bool,
    ) -> Result<(), OpsError> {
        if let Some(run) = state.last_run.as_mut() {
            run.status = status;
        }
        if durable {
            self.data.save(state)?;
        } else {
            self.data.save_progress(state)?;
        }
        Ok(())
    }

    /// Records the failure (state and trace file) and returns the error that keeps `error`.
    fn fail(&self, state: &mut EnvironmentState, step: &str, error: Classified) -> OpsError {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        let now = Utc::now();
        let trace_file = self.data.traces_dir(&state.name).join(format!(
            "{}-{}.txt",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            self.command
        ));
        let completed = state
            .last_run
            .as_ref()
            .map(|r| r.completed_steps.join(", "))
            .unwrap_or_default();
        let trace = format!(
            "environment: {}\ncommand: {}\nfailed step: {step}\nat: {now}\nelapsed: {:.1}s\ncompleted steps: {completed}\nkind: {}\n\nerror:\n{chain}\n",
            state.name,
            self.command,
            self.started.elapsed().as_secs_f64(),
            error.kind(),
        );
        if let Err(e) = fsutil::write_atomic(&trace_file, trace.as_bytes(), 0o600) {
            tracing::warn!(
                "could not write the trace file {}: {e}",
                trace_file.display()
            );
        }
        if let Some(run) = state.last_run.as_mut() {
            run.finished_at = Some(now);
        }
        let status = RunStatus::Failed {
            step: step.to_string(),
            error: error.to_string(),
            trace_file: trace_file.clone(),
        };
        if let Err(e) = self.set_status(state, status, true) {
            return e;
        }
        OpsError::StepFailed {
            step: step.to_string(),
            message: chain,
            trace_file,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ProviderKind};
    use crate::error_kind::ErrorKind;
    use crate::events::{Progress, Recorder};

    fn state(data: &DataDir) -> EnvironmentState {
        let loaded = config::parse(&config::template(ProviderKind::Lxd), data.root()).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        data.save(&mut state).unwrap();
        state
    }

    #[derive(Debug, thiserror::Error)]
    #[error("instance refused to start")]
    struct Boom;

    impl Classify for Boom {
        fn kind(&self) -> ErrorKind {
            ErrorKind::LxdFailed
        }
    }

    /// A wrapper with a source, as the operations' error enums are.
    #[derive(Debug, thiserror::Error)]
    #[error("starting the instance failed")]
    struct Wrapped(#[source] Boom);

    impl Classify for Wrapped {
        fn kind(&self) -> ErrorKind {
            self.0.kind()
        }
    }

    #[tokio::test]
    async fn records_steps_and_success() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let mut run = StepRun::begin(&data, &mut st, "provision").unwrap();
        let v = run
            .step(&mut st, "create profile", async |_s| Ok::<_, Boom>(7))
            .await
            .unwrap();
        assert_eq!(v, 7);
        run.finish(&mut st, Some(Lifecycle::Provisioned)).unwrap();
        let saved = data.load(&st.name).unwrap();
        assert_eq!(saved.lifecycle, Lifecycle::Provisioned);
        let last = saved.last_run.unwrap();
        assert_eq!(last.completed_steps, vec!["create profile"]);
        assert_eq!(last.status, RunStatus::Succeeded);
    }

    #[tokio::test]
    async fn failure_records_step_error_and_trace() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let mut run = StepRun::begin(&data, &mut st, "provision").unwrap();
        run.step(&mut st, "create profile", async |_s| Ok::<_, Boom>(()))
            .await
            .unwrap();
        let err = run
            .step(&mut st, "start instance", async |_s| Err::<(), _>(Boom))
            .await
            .unwrap_err();
        assert!(matches!(err, OpsError::StepFailed { .. }));
        assert_eq!(err.kind(), ErrorKind::LxdFailed);
        let saved = data.load(&st.name).unwrap();
        assert_eq!(saved.lifecycle, Lifecycle::Created);
        let last = saved.last_run.as_ref().unwrap();
        let RunStatus::Failed {
            step,
            error,
            trace_file,
        } = &last.status
        else {
            panic!("not failed: {last:?}")
        };
        assert_eq!(step, "start instance");
        assert_eq!(error, "instance refused to start");
        let trace = std::fs::read_to_string(trace_file).unwrap();
        assert!(trace.contains("failed step: start instance"));
        assert!(trace.contains("completed steps: create profile"));
        assert!(trace.contains("kind: lxd_failed"));
        assert!(saved.unfinished_run().is_some());
    }

    #[tokio::test]
    async fn a_failed_step_keeps_its_error_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let mut run = StepRun::begin(&data, &mut st, "provision").unwrap();
        let err = run
            .step(&mut st, "start instance", async |_s| {
                Err::<(), _>(Wrapped(Boom))
            })
            .await
            .unwrap_err();
        let OpsError::StepFailed { error, message, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(error.kind(), ErrorKind::LxdFailed);
        assert!(error.downcast_ref::<Wrapped>().is_some());
        assert_eq!(
            message,
            "starting the instance failed\n  caused by: instance refused to start"
        );
        // The chain goes on past the step: the wrapper's source is there.
        let source = StdError::source(&err).unwrap();
        assert_eq!(source.to_string(), "starting the instance failed");
        assert_eq!(
            source.source().unwrap().to_string(),
            "instance refused to start"
        );
    }

    /// The events of a run, without the times.
    fn without_times(whats: Vec<What>) -> Vec<What> {
        whats
            .into_iter()
            .map(|w| match w {
                What::StepFinished {
                    command,
                    step,
                    changed,
                    ..
                } => What::StepFinished {
                    command,
                    step,
                    changed,
                    elapsed_ms: 0,
                },
                What::StepFailed {
                    command,
                    step,
                    kind,
                    message,
                    ..
                } => What::StepFailed {
                    command,
                    step,
                    kind,
                    message,
                    elapsed_ms: 0,
                },
                What::CommandFinished { command, .. } => What::CommandFinished {
                    command,
                    elapsed_ms: 0,
                },
                other => other,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_step_sends_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let env = st.name.clone();
        let rec = Recorder::new();
        Events::new(rec.clone())
            .scope(async {
                let mut run = StepRun::begin(&data, &mut st, "release").unwrap();
                run.step(&mut st, "connect", async |_s| Ok::<_, Boom>(()))
                    .await
                    .unwrap();
                let n = run
                    .step_changed(&mut st, "upload files", async |_s| {
                        events::note("one tar stream");
                        events::bytes(10, Some(10));
                        Ok::<_, Boom>(Done::changed(3))
                    })
                    .await
                    .unwrap();
                assert_eq!(n, 3);
                run.step_changed(&mut st, "images", async |_s| {
                    Ok::<_, Boom>(Done::unchanged(()))
                })
                .await
                .unwrap();
                run.finish(&mut st, None).unwrap();
            })
            .await;
        let step = |name: &str| (String::from("release"), name.to_string());
        let finished = |name: &str, changed| What::StepFinished {
            command: step(name).0,
            step: step(name).1,
            changed,
            elapsed_ms: 0,
        };
        let started = |name: &str| What::StepStarted {
            command: step(name).0,
            step: step(name).1,
        };
        assert_eq!(
            without_times(rec.whats()),
            [
                What::CommandStarted {
                    command: "release".into(),
                    env,
                    resumes: None
                },
                started("connect"),
                finished("connect", None),
                started("upload files"),
                What::StepProgress {
                    command: "release".into(),
                    step: "upload files".into(),
                    progress: Progress::Note {
                        message: "one tar stream".into()
                    }
                },
                What::StepProgress {
                    command: "release".into(),
                    step: "upload files".into(),
                    progress: Progress::Bytes {
                        bytes: 10,
                        total: Some(10)
                    }
                },
                finished("upload files", Some(true)),
                started("images"),
                finished("images", Some(false)),
                What::CommandFinished {
                    command: "release".into(),
                    elapsed_ms: 0
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_failure_is_an_event_with_its_kind_and_the_next_run_says_it_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let env = st.name.clone();
        let rec = Recorder::new();
        Events::new(rec.clone())
            .scope(async {
                let mut run = StepRun::begin(&data, &mut st, "provision").unwrap();
                let _ = run
                    .step(&mut st, "start instance", async |_s| Err::<(), _>(Boom))
                    .await;
                let mut again = data.load(&st.name).unwrap();
                StepRun::begin(&data, &mut again, "provision").unwrap();
            })
            .await;
        assert_eq!(
            without_times(rec.whats())[1..],
            [
                What::StepStarted {
                    command: "provision".into(),
                    step: "start instance".into()
                },
                What::StepFailed {
                    command: "provision".into(),
                    step: "start instance".into(),
                    kind: ErrorKind::LxdFailed,
                    message: "instance refused to start".into(),
                    elapsed_ms: 0
                },
                What::CommandStarted {
                    command: "provision".into(),
                    env,
                    resumes: Some(Resumed {
                        command: "provision".into(),
                        step: Some("start instance".into()),
                        failed: true
                    })
                },
            ]
        );
    }

    #[tokio::test]
    async fn interruption_leaves_the_step_reached() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut st = state(&data);
        let mut run = StepRun::begin(&data, &mut st, "provision").unwrap();
        // The step saves "running: wait for ssh" before its body runs; the body never finishes
        // (the process "dies" here), so that is what a later run finds.
        let _ = run
            .step(&mut st, "wait for ssh", async |s| {
                let on_disk = data.load(&s.name).unwrap();
                assert_eq!(
                    on_disk.last_run.unwrap().status,
                    RunStatus::Running {
                        step: Some("wait for ssh".into())
                    }
                );
                Err::<(), _>(Boom)
            })
            .await;
        // A new run of the command resumes: it starts over with a fresh record.
        let mut st2 = data.load(&st.name).unwrap();
        let run2 = StepRun::begin(&data, &mut st2, "provision").unwrap();
        run2.finish(&mut st2, Some(Lifecycle::Provisioned)).unwrap();
        assert!(data.load(&st.name).unwrap().unfinished_run().is_none());
    }
}
