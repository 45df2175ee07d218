//! Errors of the environment file: every problem names the JSON path, the bad value (secrets
//! redacted) and how to fix it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One problem found in an environment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON path, e.g. `tracker.http_api.bind_address` or `tracker.udp_trackers[1].bind_address`.
    /// Empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The offending value as written (JSON), secrets redacted. `None` when absent.
    pub value: Option<String>,
    /// How to fix it.
    pub fix: String,
}

impl Problem {
    pub(crate) fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        value: Option<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            value,
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)?;
        if let Some(value) = &self.value {
            write!(f, " (value: {value})")?;
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

/// Why an environment file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the environment file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, a FIFO, a device...).
    #[error("the environment file {} is not a regular file but {what}", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    /// The file is larger than [`super::MAX_ENV_FILE`].
    #[error(
        "the environment file {} is larger than {} KiB", path.display(), limit / 1024
    )]
    TooLarge { path: PathBuf, limit: u64 },
    /// The file is not UTF-8 text.
    #[error(
        "the environment file {} is not UTF-8 text: invalid byte at line {line}, column {column}",
        path.display()
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// The file starts with a UTF-8 byte order mark, which JSON does not allow.
    #[error(
        "the environment file {} starts with a UTF-8 byte order mark (BOM), which JSON does not allow",
        path.display()
    )]
    ByteOrderMark { path: PathBuf },
    /// The file is not valid JSON.
    #[error("the environment file is not valid JSON: {message} at line {line}, column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
        /// JSON path where the parser stopped (empty at the top level).
        path: String,
    },
    /// The file is JSON but breaks the format's rules; every problem found is listed.
    #[error("{} problem(s) in the environment file", problems.len())]
    Invalid { problems: Vec<Problem> },
}

impl crate::error_kind::Classify for ConfigError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        match self {
            ConfigError::Read { .. }
            | ConfigError::NotAFile { .. }
            | ConfigError::TooLarge { .. }
            | ConfigError::NotUtf8 { .. }
            | ConfigError::ByteOrderMark { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::Invalid { .. } => crate::error_kind::ErrorKind::InvalidConfig,
        }
    }
}

impl ConfigError {
    /// Every problem, one per entry; a read or syntax error is a single problem.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => vec![Problem::new(
                "",
                format!(
                    "cannot read the environment file {}: {source}",
                    path.display()
                ),
                None,
                "check that the path is right and that the file is readable by this user",
            )],
            ConfigError::NotAFile { .. } => vec![Problem::new(
                "",
                self.to_string(),
                None,
                "give the path of the JSON file itself (`--env-file FILE`); a pipe or a device \
                 is not read",
            )],
            ConfigError::TooLarge { .. } => vec![Problem::new(
                "",
                self.to_string(),
                None,
                "check that this is the environment file: one is a few KiB of JSON",
            )],
            ConfigError::NotUtf8 { .. } => vec![Problem::new(
                "",
                self.to_string(),
                None,
                "save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8 FILE > NEW`); it is \
                 not a permission problem",
            )],
            ConfigError::ByteOrderMark { .. } => vec![Problem::new(
                "",
                self.to_string(),
                None,
                "save the file as UTF-8 without BOM (e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' \
                 FILE`)",
            )],
            ConfigError::Syntax {
                message,
                line,
                column,
                path,
            } => vec![Problem::new(
                path.clone(),
                format!("invalid JSON at line {line}, column {column}: {message}"),
                None,
                "fix the JSON syntax there (quotes, commas, brackets); comments and trailing \
                 commas are not allowed in JSON",
            )],
            ConfigError::Invalid { problems } => problems.clone(),
        }
    }

    /// A human-readable report: the summary line, then each problem with its fix.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        if let ConfigError::Invalid { problems } = self {
            for p in problems {
                out.push_str("\n- ");
                out.push_str(&p.to_string().replace('\n', "\n  "));
            }
        }
        out
    }
}
