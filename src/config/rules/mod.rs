//! The rules: formats, ranges and cross-field rules, one module per topic. Every rule runs;
//! every problem is kept. Values with a type of their own (`values`) were parsed before the
//! rules run; a value its type rejected holds a stand-in, which the rules skip
//! ([`Report::accepted`]).

mod database;
mod environment;
mod exposure;
mod network;
mod provider;
mod secrets;
mod services;
mod stack;
mod tls;

use std::path::{Path, PathBuf};

use super::EnvironmentConfig;
use super::error::Problem;
use super::json::shorten;
use crate::secret::REDACTED;

/// Expands `~/` and resolves relative SSH key paths against `base_dir`.
pub(super) fn resolve_key_paths(config: &mut EnvironmentConfig, base_dir: &Path) {
    let ssh = &mut config.ssh_credentials;
    for path in [&mut ssh.private_key_path, &mut ssh.public_key_path]
        .into_iter()
        .flatten()
    {
        *path = resolve_path(path, base_dir);
    }
    if let Some(bundle) = config
        .images
        .as_mut()
        .and_then(|i| i.offline_bundle.as_mut())
    {
        *bundle = resolve_path(bundle, base_dir);
    }
    if let super::Provider::Lxd(lxd) = &mut config.provider {
        for path in [&mut lxd.client_certificate, &mut lxd.client_key]
            .into_iter()
            .flatten()
        {
            *path = resolve_path(path, base_dir);
        }
    }
    if let Some(dir) = config
        .host
        .as_mut()
        .and_then(|h| h.offline_packages.as_mut())
    {
        *dir = resolve_path(dir, base_dir);
    }
}

fn resolve_path(path: &Path, base_dir: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Collects problems and warnings.
#[derive(Default)]
pub(super) struct Report {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Skip the rules that read files (key files, the offline bundle): for a configuration
    /// stored in the state, whose files may have moved since it was created.
    pub skip_files: bool,
    /// JSON paths already reported before the rules ran (placeholders, values their type
    /// rejected): the configuration holds a stand-in there, which no rule may look at.
    pub reported: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        value: Option<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem::new(path, message, value, fix));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(format!("{path}: {}", message.into()));
    }

    /// Whether the value at `path` is the file's own (not a stand-in for a rejected value).
    fn accepted(&self, path: &str) -> bool {
        !self.reported.iter().any(|p| p == path)
    }
}

/// A string value as shown in a problem.
fn v(s: &str) -> Option<String> {
    Some(shorten(
        &serde_json::Value::String(s.to_string()).to_string(),
    ))
}

fn secret_v() -> Option<String> {
    Some(REDACTED.to_string())
}

/// Runs every rule. `reported`: the paths of the problems found before (see
/// [`Report::reported`]).
pub(super) fn validate(config: &EnvironmentConfig, reported: &[String]) -> Report {
    validate_with(
        config,
        Report {
            reported: reported.to_vec(),
            ..Report::default()
        },
    )
}

/// Runs every rule that does not read a file: for the configuration stored in a state file.
pub(super) fn validate_stored(config: &EnvironmentConfig) -> Report {
    validate_with(
        config,
        Report {
            skip_files: true,
            ..Report::default()
        },
    )
}

fn validate_with(config: &EnvironmentConfig, mut r: Report) -> Report {
    environment::environment(config, &mut r);
    environment::ssh(config, &mut r);
    provider::provider(config, &mut r);
    database::database(config, &mut r);
    secrets::secrets(config, &mut r);
    network::trackers(config, &mut r);
    services::announce_policy(config, &mut r);
    services::services(config, &mut r);
    tls::tls(config, &mut r);
    network::ports(config, &mut r);
    exposure::warnings(config, &mut r);
    exposure::mixed_proxying(config, &mut r);
    services::images(config, &mut r);
    services::host(config, &mut r);
    // Last, and for a file only: a stored configuration is checked by rendering it when it is
    // used, and refusing to load it would stop `destroy` too.
    if !r.skip_files {
        stack::stack(config, &mut r);
    }
    r
}
