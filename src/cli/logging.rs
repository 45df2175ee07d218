//! Logs: people read stderr (progress, warnings); details go to a log file per environment.
//!
//! Progress is not logged here: the operations send events to the monitor (`monitor.rs`), which
//! shows them and logs them under [`EVENTS_TARGET`] for the file only. On stderr, log lines are
//! text (written around the live display), or with `--output json` one JSON object per line:
//! `{"at": "...", "event": "log", "level": "warn", "message": "..."}`.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

use super::monitor::{EVENTS_TARGET, Mode, StderrWriter};
use super::{Format, GlobalArgs};

/// Installs the subscriber. Returns nothing to keep; logging lasts for the process.
pub fn init(global: &GlobalArgs, log_file: Option<&Path>, mode: Mode, stderr: StderrWriter) {
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
    let file_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,torrust_tracker_deployer=debug"));
    let file_layer = log_file.and_then(open_log).map(|file| {
        fmt::layer()
            .with_writer(Mutex::new(file))
            .with_ansi(false)
            .with_filter(file_filter)
    });
    let _ = tracing_subscriber::registry()
        .with(text_layer)
        .with(json_layer)
        .with(file_layer)
        .try_init();
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
