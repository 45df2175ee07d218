//! Several environments in one command: `deploy A B C`, `destroy`, `status` and `test` (ADR 41).
//!
//! - The names are checked first (valid, none twice); nothing runs if one is wrong (exit 2).
//! - At most `--jobs` environments run at once, each on a thread of its own with its own
//!   runtime, exactly as the one-environment command runs it: its own lock (so nothing else runs
//!   on it meanwhile), its own state, keys, `known_hosts`, traces and log file. Nothing else is
//!   shared but the monitor and stdout, which only this module writes after all have finished.
//! - Each one's events are marked with its name ([`Events::for_env`]), between an
//!   `environment_started` and an `environment_finished` event; its log lines run in an
//!   [`ENV_SPAN`] span, which sends them to its own log file.
//! - One failing does not stop the others. At the end: each one's result (text or JSON, in the
//!   order given, whatever the order they finished in), a summary table, and the exit code: 0 if
//!   all succeeded, 2 if every failure was invalid input (an exit-2 kind), else 1.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use tracing::Instrument as _;

use super::logging::ENV_SPAN;
use super::{CliError, Output, env_name};
use crate::config::Problem;
use crate::error_kind::ErrorKind;
use crate::events::{Events, What};

/// `--jobs`: how many environments run at once.
#[derive(Debug, Clone, clap::Args)]
pub struct Jobs {
    /// With several environments: how many run at once (each takes its own lock).
    #[arg(long, short = 'j', value_name = "N", default_value_t = DEFAULT_JOBS,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

/// Enough to overlap the waits of a deploy (LXD, SSH, health) on a small machine.
pub const DEFAULT_JOBS: u16 = 4;

/// What one environment's run produced: its result, its text, and for a command that fails with
/// a report (`test`, `status --check`) the error it fails with.
pub struct Done<T> {
    pub value: T,
    pub text: String,
    pub failure: Option<CliError>,
}

/// One environment's entry in the result.
#[derive(Debug, Serialize)]
struct Entry {
    env: String,
    ok: bool,
    elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
    #[serde(skip)]
    text: Option<String>,
}

#[derive(Debug, Serialize)]
struct Failure {
    kind: ErrorKind,
    message: String,
    problems: Vec<Problem>,
}

/// The result of a command over several environments (`--output json`).
#[derive(Debug, Serialize)]
struct Several {
    command: &'static str,
    environments: Vec<Entry>,
    succeeded: usize,
    failed: usize,
    jobs: usize,
    elapsed_ms: u64,
}

/// Checks the names: each valid, none twice.
pub fn check_names(envs: &[String]) -> Result<(), CliError> {
    let mut seen = HashSet::new();
    for env in envs {
        env_name(env)?;
        if !seen.insert(env.as_str()) {
            return Err(CliError::Usage(format!(
                "environment '{env}' is named twice; name each environment once"
            )));
        }
    }
    Ok(())
}

/// Runs `one` for each environment, at most `jobs` at once, then prints every result and the
/// summary. Fails with [`CliError::Several`] if any failed.
pub fn run<'a, T, F, Fut>(
    command: &'static str,
    envs: &'a [String],
    jobs: u16,
    out: &Output,
    one: F,
) -> Result<(), CliError>
where
    T: Serialize,
    F: Fn(&'a str) -> Fut + Sync,
    Fut: Future<Output = Result<Done<T>, CliError>>,
{
    check_names(envs)?;
    let started = Instant::now();
    let jobs = usize::from(jobs).clamp(1, envs.len().max(1));
    let events = Events::current();
    let next = AtomicUsize::new(0);
    let entries: Mutex<Vec<Option<Entry>>> = Mutex::new(envs.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(env) = envs.get(i) else { break };
                    let entry = run_one(&events, env, &one);
                    entries.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(entry);
                }
            });
        }
    });
    let environments: Vec<Entry> = entries
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let failed: Vec<(String, ErrorKind)> = environments
        .iter()
        .filter_map(|e| e.error.as_ref().map(|f| (e.env.clone(), f.kind)))
        .collect();
    let result = Several {
        command,
        succeeded: environments.len() - failed.len(),
        failed: failed.len(),
        environments,
        jobs,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    if failed.is_empty() {
        out.result(&result, || text(&result))?;
        return Ok(());
    }
    if !out.is_json() {
        for e in &result.environments {
            if let Some(f) = &e.error {
                out.error_of(&e.env, &f.message, &f.problems);
            }
        }
    }
    out.failed_report(&result, || text(&result))?;
    Err(CliError::Several {
        failed,
        total: envs.len(),
    })
}

/// One environment, on this thread: its events marked with its name, its logs in its span.
fn run_one<'a, T, F, Fut>(events: &Events, env: &'a str, one: &F) -> Entry
where
    T: Serialize,
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<Done<T>, CliError>>,
{
    let events = events.for_env(env);
    let span = tracing::info_span!(ENV_SPAN, env = %env);
    let started = Instant::now();
    span.in_scope(|| events.emit(What::EnvironmentStarted {}));
    let outcome = super::block_on(events.clone().scope(one(env)).instrument(span.clone()));
    let (value, text, error) = match outcome {
        Ok(done) => (
            serde_json::to_value(&done.value).ok(),
            Some(done.text),
            done.failure,
        ),
        Err(e) => (None, None, Some(e)),
    };
    let error = error.map(|e| {
        span.in_scope(|| tracing::debug!("failed: {e:?}"));
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            problems: e.problems(),
        }
    });
    let elapsed_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        events.emit(What::EnvironmentFinished {
            ok: error.is_none(),
            kind: error.as_ref().map(|f| f.kind),
            elapsed_ms,
        })
    });
    Entry {
        env: env.to_string(),
        ok: error.is_none(),
        elapsed_ms,
        result: value,
        error,
        text,
    }
}

/// Each environment's own text in the order given, then the summary table.
fn text(s: &Several) -> String {
    let mut t = String::new();
    for e in &s.environments {
        if let Some(text) = &e.text {
            t.push_str(text);
            if !text.ends_with('\n') {
                t.push('\n');
            }
            t.push('\n');
        }
    }
    t.push_str(&summary(s));
    t
}

/// `ENVIRONMENT  RESULT  ELAPSED  ERROR` and a line per environment, in the order given.
fn summary(s: &Several) -> String {
    let width = s
        .environments
        .iter()
        .map(|e| e.env.chars().count())
        .chain(["ENVIRONMENT".len()])
        .max()
        .unwrap_or_default();
    let mut t = format!(
        "{:<width$}  {:<6}  {:>9}  ERROR\n",
        "ENVIRONMENT", "RESULT", "ELAPSED"
    );
    for e in &s.environments {
        let line = format!(
            "{:<width$}  {:<6}  {:>7.1} s  {}",
            e.env,
            if e.ok { "ok" } else { "FAILED" },
            e.elapsed_ms as f64 / 1000.0,
            e.error.as_ref().map(|f| f.kind.as_str()).unwrap_or("-"),
        );
        t.push_str(line.trim_end());
        t.push('\n');
    }
    t.push_str(&format!(
        "{} environments: {} succeeded, {} failed ({:.1} s, at most {} at a time).\n",
        s.environments.len(),
        s.succeeded,
        s.failed,
        s.elapsed_ms as f64 / 1000.0,
        s.jobs
    ));
    t
}

/// `b (not_found), c (health_timeout)`
pub fn list_failed(failed: &[(String, ErrorKind)]) -> String {
    failed
        .iter()
        .map(|(env, kind)| format!("{env} ({kind})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `environments_invalid` (exit 2) when every failure is invalid input, else
/// `environments_failed` (exit 1).
pub fn kind(failed: &[(String, ErrorKind)]) -> ErrorKind {
    if !failed.is_empty() && failed.iter().all(|(_, k)| k.exit_code() == 2) {
        ErrorKind::EnvironmentsInvalid
    } else {
        ErrorKind::EnvironmentsFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(env: &str, kind: Option<ErrorKind>, ms: u64) -> Entry {
        Entry {
            env: env.into(),
            ok: kind.is_none(),
            elapsed_ms: ms,
            result: None,
            error: kind.map(|kind| Failure {
                kind,
                message: "m".into(),
                problems: Vec::new(),
            }),
            text: None,
        }
    }

    #[test]
    fn the_summary_lists_each_environment_in_the_order_given() {
        let s = Several {
            command: "deploy",
            environments: vec![
                entry("b", None, 12_340),
                entry("a-long-name", Some(ErrorKind::NotFound), 5),
            ],
            succeeded: 1,
            failed: 1,
            jobs: 2,
            elapsed_ms: 12_400,
        };
        assert_eq!(
            summary(&s),
            "ENVIRONMENT  RESULT    ELAPSED  ERROR\n\
             b            ok         12.3 s  -\n\
             a-long-name  FAILED      0.0 s  not_found\n\
             2 environments: 1 succeeded, 1 failed (12.4 s, at most 2 at a time).\n"
        );
    }

    #[test]
    fn exit_2_only_when_every_failure_is_invalid_input() {
        let f = |kinds: &[ErrorKind]| {
            kind(
                &kinds
                    .iter()
                    .map(|k| ("e".to_string(), *k))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            f(&[ErrorKind::NotFound, ErrorKind::Refused]),
            ErrorKind::EnvironmentsInvalid
        );
        assert_eq!(
            f(&[ErrorKind::NotFound, ErrorKind::Locked]),
            ErrorKind::EnvironmentsFailed
        );
        assert_eq!(ErrorKind::EnvironmentsInvalid.exit_code(), 2);
        assert_eq!(ErrorKind::EnvironmentsFailed.exit_code(), 1);
    }

    #[test]
    fn names_are_checked_before_anything_runs() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_names(&names(&["a", "b"])).is_ok());
        assert!(matches!(
            check_names(&names(&["a", "b", "a"])),
            Err(CliError::Usage(m)) if m.contains("'a' is named twice")
        ));
        assert!(matches!(
            check_names(&names(&["a", "../x"])),
            Err(CliError::Usage(_))
        ));
    }
}
