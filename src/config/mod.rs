//! The environment file: types, loading, validation, JSON Schema and template.
//!
//! The format is the one of the incumbent deployer (torrust-tracker-deployer v0.1.0), accepted
//! unchanged, plus optional extensions of ours (LXD options, `images`). See
//! `docs/user-guide/environment-file.md` for every field.
//!
//! Loading is done in passes so that *all* the problems of a file are reported at once:
//! 1. JSON syntax (stops at the first error, with line and column);
//! 2. a structural walk of the JSON value against the JSON Schema of the types: unknown fields
//!    (with a "did you mean" hint), missing required fields, wrong JSON types, and every value
//!    its type rejects (bind addresses, ports, domains, user and database names: `values`);
//! 3. typed deserialization, then the rules (formats, ranges, cross-field rules). A value its
//!    type rejected is already reported: the deserialization puts a stand-in in its place and the
//!    rules skip it, so that one bad value hides no problem of another field.
//!
//! A loaded configuration holds parsed values ("parse, don't validate"): nothing downstream
//! parses a bind address or a domain again.

mod error;
mod images;
mod json;
mod model;
mod provider;
mod rules;
mod schema;
mod structure;
mod template;
mod values;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Problem};
pub(crate) use images::check_image_reference;
pub use images::{ImageService, default_image};
pub use model::{
    ANNOUNCE_INTERVAL_BOUNDS, AnnouncePolicy, Backup, Core, DEFAULT_ANNOUNCE_INTERVAL, Database,
    EnvironmentConfig, EnvironmentSection, Grafana, HealthCheckApi, HostSettings, HttpApi,
    HttpTracker, Https, Images, MysqlDatabase, Prometheus, SqliteDatabase, SshCredentials, Tracker,
    UdpTracker,
};
pub use provider::{
    DEFAULT_LXD_IMAGE, HetznerProvider, LxdInstanceType, LxdProvider, Provider, ProviderKind,
};
pub use template::{
    FULL_TEMPLATE_PLACEHOLDERS, HETZNER_API_TOKEN_PLACEHOLDER, full_template, template,
    template_placeholders,
};
pub use values::{BindAddress, Domain, MysqlDatabaseName, MysqlUser, Port, Username, ValueError};

/// The longest environment name: it names the environment's directory and its `.lock` and
/// `.log` files.
pub const MAX_ENVIRONMENT_NAME: usize = 63;

/// An environment file, loaded and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: EnvironmentConfig,
    /// Non-fatal notices (e.g. the legacy `caddy` section).
    pub warnings: Vec<String>,
    /// The file it came from (`None` for [`parse`]).
    pub source: Option<PathBuf>,
}

/// Reads, parses and validates an environment file. Relative SSH key paths are resolved against
/// the file's directory.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = read_file(path)?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let mut loaded = parse(&text, &base_dir)?;
    loaded.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// The largest environment file read: a real one is a few KiB.
pub const MAX_ENV_FILE: u64 = 1024 * 1024;

/// Reads an environment file: a regular file (a FIFO would block the read forever), at most
/// [`MAX_ENV_FILE`] bytes, UTF-8 text without a byte order mark.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let not_a_file = |meta: &std::fs::Metadata| {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a named pipe (FIFO)"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        ConfigError::NotAFile {
            path: path.to_path_buf(),
            what,
        }
    };
    // Checked before opening: opening a FIFO for reading waits for a writer.
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(not_a_file(&meta));
    }
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(not_a_file(&meta));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_ENV_FILE,
        });
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(ConfigError::ByteOrderMark {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        ConfigError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })
}

/// Parses and validates the text of an environment file. Relative SSH key paths are resolved
/// against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Loaded, ConfigError> {
    let value = json::parse_json(text)?;
    let mut warnings = Vec::new();
    let found = structure::check(&value, &mut warnings);
    let structural = found.iter().any(|f| f.is_structural());
    let mut problems: Vec<Problem> = found.into_iter().map(Problem::from).collect();
    if structural {
        return Err(ConfigError::Invalid { problems });
    }
    let (config, stand_ins) = values::leniently(|| json::deserialize(text));
    let mut config = match config {
        Ok(config) => config,
        Err(problem) => {
            problems.push(problem);
            return Err(ConfigError::Invalid { problems });
        }
    };
    if problems.is_empty() {
        // The walk reports every value its type rejects; should one slip through, the stand-in
        // still never leaves this function.
        problems.extend(
            stand_ins
                .into_iter()
                .map(|e| Problem::new("", e.message, None, e.fix)),
        );
    }
    rules::resolve_key_paths(&mut config, base_dir);
    // A value reported by the walk (a placeholder, a value its type rejects) is reported once:
    // the rules skip it and do not report it again.
    let reported: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    let report = rules::validate(&config, &reported);
    problems.extend(
        report
            .problems
            .into_iter()
            .filter(|p| !reported.contains(&p.path)),
    );
    warnings.extend(report.warnings);
    if problems.is_empty() {
        Ok(Loaded {
            config,
            warnings,
            source: None,
        })
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// The problems of a configuration stored in a state file, as JSON, before it is deserialized:
/// its structure, and every value its type rejects (a bind address, a domain, a user name...),
/// each at its path.
pub fn check_stored_json(value: &serde_json::Value) -> Vec<Problem> {
    structure::check(value, &mut Vec::new())
        .into_iter()
        .map(Problem::from)
        .collect()
}

/// Checks a configuration stored in a state file again, with every rule that does not read a
/// file (key files and the offline bundle may have moved since): what reaches a shell, a
/// compose file or a URL is as valid as the day it was created. (Its typed values were parsed
/// when the state was read.)
pub fn validate_stored(config: &EnvironmentConfig) -> Vec<Problem> {
    rules::validate_stored(config).problems
}

/// The JSON Schema (draft 2020-12) of the environment file, generated from the types. It accepts
/// the incumbent's files, including the legacy top-level `caddy` section.
pub fn schema() -> serde_json::Value {
    schema::published()
}

/// A minimal valid environment file, for the unit tests: SQLite, one UDP and one HTTP tracker, the
/// API with `admin_token`, the health check API on loopback, no TLS.
#[cfg(test)]
pub(crate) fn minimal_test_file(name: &str, admin_token: &str) -> serde_json::Value {
    serde_json::json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-profile-{name}") },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": admin_token },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        }
    })
}
