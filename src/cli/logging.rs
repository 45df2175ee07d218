//! Logs: people read stderr (progress, warnings); details go to a log file per environment.
//!
//! Progress is not logged here: the operations send events to the monitor (`monitor.rs`), which
//! shows them and logs them under [`EVENTS_TARGET`] for the file only. On stderr, log lines are
//! text (written around the live display), or with `--output json` one JSON object per line:
//! `{"at": "...", "event": "log", "level": "warn", "message": "..."}`.
//!
//! A command over several environments runs each inside a span named [`ENV_SPAN`] with an `env`
//! field; every log line (and event line) of that span goes to that environment's own file, and
//! lines outside any such span to the shared `deployer.log` ([`EnvFiles`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The span a command over several environments runs each one in (`env` = its name).
pub const ENV_SPAN: &str = "environment";

use super::monitor::{EVENTS_TARGET, Mode, StderrWriter};
use super::{Format, GlobalArgs};

/// Installs the subscriber. Returns nothing to keep; logging lasts for the process.
/// `per_env`: a command over several environments, with each one's log file; `log_file` is then
/// the shared file for lines outside them.
pub fn init(
    global: &GlobalArgs,
    log_file: Option<&Path>,
    per_env: &[(String, PathBuf)],
    mode: Mode,
    stderr: StderrWriter,
) {
    let stderr_level = if global.quiet {
        LevelFilter::WARN
    } else {
        match global.verbose {
            0 => LevelFilter::INFO,
            1 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    };
    // Progress events are the monitor's to show.
    let on_stderr =
        move |m: &Metadata<'_>| stderr_level >= *m.level() && m.target() != EVENTS_TARGET;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (text_layer, json_layer) = if global.output == Format::Json {
        (None, Some(JsonLines.with_filter(filter_fn(on_stderr))))
    } else {
        let layer = fmt::layer()
            .with_writer(stderr)
            .with_ansi(color)
            .with_target(false)
            .with_level(global.verbose > 0);
        // Timestamped like the monitor's lines when they are plain.
        let layer = if mode == Mode::Plain {
            layer
                .with_timer(UtcMillis)
                .with_filter(filter_fn(on_stderr))
                .boxed()
        } else {
            layer
                .without_time()
                .with_filter(filter_fn(on_stderr))
                .boxed()
        };
        (Some(layer), None)
    };

    // Our crate at debug in the file, dependencies at info; RUST_LOG overrides.
    let file_filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,torrust_tracker_deployer=debug"))
    };
    let (file_layer, env_files_layer) = if per_env.is_empty() {
        let layer = log_file.and_then(open_log).map(|file| {
            fmt::layer()
                .with_writer(Mutex::new(file))
                .with_ansi(false)
                .with_filter(file_filter())
        });
        (layer, None)
    } else {
        let files = per_env
            .iter()
            .filter_map(|(env, path)| Some((env.clone(), Mutex::new(open_log(path)?))))
            .collect();
        let shared = log_file.and_then(open_log).map(Mutex::new);
        (
            None,
            Some(EnvFiles { files, shared }.with_filter(file_filter())),
        )
    };
    let _ = tracing_subscriber::registry()
        .with(text_layer)
        .with(json_layer)
        .with(file_layer)
        .with(env_files_layer)
        .try_init();
}

/// The environment an [`ENV_SPAN`] span stands for (kept in the span's extensions).
struct EnvTag(String);

/// Log files per environment: a line goes to the file of the [`ENV_SPAN`] it was written in,
/// else to the shared file. Each file has its own mutex, so two environments never interleave
/// inside a line, and no two files are the same.
struct EnvFiles {
    files: HashMap<String, Mutex<std::fs::File>>,
    shared: Option<Mutex<std::fs::File>>,
}

impl<S> tracing_subscriber::Layer<S> for EnvFiles
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != ENV_SPAN {
            return;
        }
        let mut field = EnvField::default();
        attrs.record(&mut field);
        if let (Some(env), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(EnvTag(env));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let env = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<EnvTag>().map(|t| t.0.clone()))
        });
        let Some(file) = env
            .and_then(|env| self.files.get(&env))
            .or(self.shared.as_ref())
        else {
            return;
        };
        let mut message = Message::default();
        event.record(&mut message);
        let meta = event.metadata();
        // As the one-environment file layer writes it: time, level, target, message.
        let line = format!(
            "{}  {:>5} {}: {}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            meta.level(),
            meta.target(),
            message.0
        );
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file.write_all(line.as_bytes());
    }
}

/// The `env` field of an [`ENV_SPAN`] span.
#[derive(Default)]
struct EnvField(Option<String>);

impl Visit for EnvField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "env" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "env" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

fn open_log(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .ok()
}

/// `2026-11-29T21:03:04.123Z`, as the monitor's plain lines start.
struct UtcMillis;

impl fmt::time::FormatTime for UtcMillis {
    fn format_time(&self, w: &mut fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// `--output json`: each log line as one JSON object on stderr.
struct JsonLines;

impl<S: Subscriber> tracing_subscriber::Layer<S> for JsonLines {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let line = serde_json::json!({
            "at": chrono::Utc::now(), "event": "log", "level": level, "message": message.0
        });
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// An event's message, then its other fields as ` name=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
