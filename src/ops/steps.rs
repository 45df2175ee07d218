//! Named, recorded steps: the backbone of resumable commands.
//!
//! A [`StepRun`] records in the state file, before each step, which step the command is in, and
//! after a failure, the failed step, the error and a trace file. Each step must be idempotent
//! (read the current state, act only when needed), so resuming is simply running the command
//! again: finished steps find nothing to do.

use std::error::Error as StdError;
use std::time::Instant;

use chrono::Utc;

use super::OpsError;
use crate::state::{CommandRun, DataDir, EnvironmentState, Lifecycle, RunStatus, fsutil};

pub struct StepRun<'a> {
    data: &'a DataDir,
    command: String,
    started: Instant,
}

impl<'a> StepRun<'a> {
    /// Records that `command` started on the environment. If a previous run of it did not
    /// finish, says so: this run resumes it.
    pub fn begin(
        data: &'a DataDir,
        state: &mut EnvironmentState,
        command: &str,
    ) -> Result<Self, OpsError> {
        if let Some(previous) = state.unfinished_run() {
            let at = match &previous.status {
                RunStatus::Running { step: Some(step) } => format!("interrupted at step '{step}'"),
                RunStatus::Running { step: None } => "interrupted".to_string(),
                RunStatus::Failed { step, .. } => format!("failed at step '{step}'"),
                RunStatus::Succeeded => unreachable!("filtered by unfinished_run"),
            };
            tracing::info!(
                "the previous `{}` {at}; finished steps will find nothing to do",
                previous.command
            );
        }
        state.last_run = Some(CommandRun {
            command: command.to_string(),
            started_at: Utc::now(),
            finished_at: None,
            completed_steps: Vec::new(),
            status: RunStatus::Running { step: None },
        });
        data.save(state)?;
        Ok(Self {
            data,
            command: command.to_string(),
            started: Instant::now(),
        })
    }

    /// Runs one named step, recording it before and after.
    pub async fn step<T, E>(
        &mut self,
        state: &mut EnvironmentState,
        name: &str,
        f: impl AsyncFnOnce(&mut EnvironmentState) -> Result<T, E>,
    ) -> Result<T, OpsError>
    where
        E: StdError,
    {
        self.set_status(
            state,
            RunStatus::Running {
                step: Some(name.to_string()),
            },
        )?;
        tracing::info!(
            "[{:>6.1}s] {}: {name}",
            self.started.elapsed().as_secs_f64(),
            self.command
        );
        let step_started = Instant::now();
        match f(state).await {
            Ok(value) => {
                tracing::debug!("step '{name}' done in {:.1?}", step_started.elapsed());
                if let Some(run) = state.last_run.as_mut() {
                    run.completed_steps.push(name.to_string());
                }
                self.data.save(state)?;
                Ok(value)
            }
            Err(err) => Err(self.fail(state, name, &err)),
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
        self.set_status(state, RunStatus::Succeeded)?;
        tracing::info!(
            "[{:>6.1}s] {}: done",
            self.started.elapsed().as_secs_f64(),
            self.command
        );
        Ok(())
    }

    fn set_status(&self, state: &mut EnvironmentState, status: RunStatus) -> Result<(), OpsError> {
        if let Some(run) = state.last_run.as_mut() {
            run.status = status;
        }
        self.data.save(state)?;
        Ok(())
    }

    fn fail(&self, state: &mut EnvironmentState, step: &str, err: &dyn StdError) -> OpsError {
        let mut chain = err.to_string();
        let mut source = err.source();
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
            "environment: {}\ncommand: {}\nfailed step: {step}\nat: {now}\nelapsed: {:.1}s\ncompleted steps: {completed}\n\nerror:\n{chain}\n",
            state.name,
            self.command,
            self.started.elapsed().as_secs_f64(),
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
            error: err.to_string(),
            trace_file: trace_file.clone(),
        };
        if let Err(e) = self.set_status(state, status) {
            return e;
        }
        OpsError::StepFailed {
            step: step.to_string(),
            message: chain,
            trace_file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ProviderKind};

    fn state(data: &DataDir) -> EnvironmentState {
        let loaded = config::parse(&config::template(ProviderKind::Lxd), data.root()).unwrap();
        let mut state = EnvironmentState::new(loaded.config, None);
        data.save(&mut state).unwrap();
        state
    }

    #[derive(Debug, thiserror::Error)]
    #[error("instance refused to start")]
    struct Boom;

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
        assert!(saved.unfinished_run().is_some());
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
