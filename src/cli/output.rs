//! Rendering results: human text by default, `--output json` for scripts.
//!
//! JSON shape (stable): on success, stdout holds one JSON document, the command's result object.
//! On failure, stdout holds `{"error": {"kind": "...", "message": "...", "problems": [...]}}`
//! and the exit code is non-zero; a failure that comes with a report (a failed `test`, `check` or
//! `status --check`) prints that report with the `error` key added, still one document.
//! Progress and logs always go to stderr: with `--output json`, one JSON object per line
//! (progress events from `cli/monitor.rs`, `"event": "log"` lines, and a last
//! `"event": "error"` line on failure), so both streams parse.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::config::Problem;
use crate::error_kind::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Output {
    format: Format,
    color: bool,
    /// JSON mode: a report held back by [`Output::failed_report`] for [`Output::error`].
    held: RefCell<Option<serde_json::Value>>,
}

impl Output {
    pub fn new(format: Format) -> Self {
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal();
        Self {
            format,
            color,
            held: RefCell::new(None),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a result: `text` in text mode, `value` as JSON in JSON mode.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut stdout, value)?;
                writeln!(stdout)
            }
            Format::Text => {
                let text = text();
                if text.ends_with('\n') {
                    write!(stdout, "{text}")
                } else {
                    writeln!(stdout, "{text}")
                }
            }
        }
    }

    /// Prints the report of a command that is about to fail with an error (a failed check):
    /// text at once; in JSON mode the report is held and [`Output::error`] prints it with the
    /// `error` key, so stdout still holds one document.
    pub fn failed_report<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                *self.held.borrow_mut() = Some(serde_json::to_value(value)?);
                Ok(())
            }
            Format::Text => self.result(value, text),
        }
    }

    /// Reports a failure: on stderr for people, and as JSON on stdout in JSON mode (with one
    /// `"event": "error"` line on stderr instead of the text).
    pub fn error(&self, kind: ErrorKind, message: &str, problems: &[Problem]) {
        if self.is_json() {
            let line = serde_json::json!({
                "at": chrono::Utc::now(), "event": "error", "kind": kind, "message": message,
                "exit_code": kind.exit_code()
            });
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            let doc = error_document(kind, message, problems, self.held.borrow_mut().take());
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
            return;
        }
        self.error_text("", message, problems);
    }

    /// Text mode: the failure of one of several environments, on stderr (`error: [b] ...`).
    pub fn error_of(&self, env: &str, message: &str, problems: &[Problem]) {
        self.error_text(&format!("[{env}] "), message, problems);
    }

    fn error_text(&self, prefix: &str, message: &str, problems: &[Problem]) {
        let (red, bold, reset) = if self.color {
            ("\x1b[31m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "")
        };
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{red}{bold}error:{reset} {prefix}{message}");
        for p in problems {
            let _ = writeln!(stderr, "  {bold}{}{reset}: {}", p.path, p.message);
            if let Some(value) = &p.value {
                let _ = writeln!(stderr, "      value: {value}");
            }
            let _ = writeln!(stderr, "      fix: {}", p.fix);
        }
    }
}

/// The document stdout holds on failure in JSON mode: `{"error": {...}}`, or the held report
/// with its `error` key added.
pub fn error_document(
    kind: ErrorKind,
    message: &str,
    problems: &[Problem],
    report: Option<serde_json::Value>,
) -> serde_json::Value {
    let error = serde_json::json!({ "kind": kind, "message": message, "problems": problems });
    match report {
        Some(serde_json::Value::Object(mut report)) => {
            report.insert("error".into(), error);
            serde_json::Value::Object(report)
        }
        _ => serde_json::json!({ "error": error }),
    }
}
