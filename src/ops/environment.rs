//! The offline operations on environments: create, validate, show, list, purge.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::OpsError;
use super::keys;
use crate::config::{self, Database, EnvironmentConfig, Provider};
use crate::secret::redacted;
use crate::state::{CommandRun, DataDir, EnvironmentState, Lifecycle, RunStatus, StateError};

/// What `create environment` did.
#[derive(Debug, Serialize)]
pub struct Created {
    pub name: String,
    /// `created`, `unchanged` (same file again) or `updated` (new file, nothing deployed yet).
    pub outcome: &'static str,
    pub lifecycle: Lifecycle,
    pub state_file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_ssh_key: Option<GeneratedKey>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GeneratedKey {
    pub private_key_path: PathBuf,
    pub public_key_path: PathBuf,
    pub fingerprint: String,
}

/// Validates `env_file` and persists the environment in state `created`.
///
/// Safe to run again: the same file is a no-op; a changed file replaces the configuration while
/// nothing is deployed yet, and is refused afterwards.
pub fn create_environment(
    data: &DataDir,
    env_file: &Path,
    lock_wait: Duration,
) -> Result<Created, OpsError> {
    let loaded = config::load(env_file)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    tracing::debug!("loaded {}: {:?}", env_file.display(), loaded.config);
    let mut config = loaded.config;
    let name = config.name().to_string();
    let _lock = data.lock(&name, "create environment", lock_wait)?;
    let existing = match data.load(&name) {
        Ok(state) => Some(state),
        Err(StateError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    // Secrets the file leaves out are generated once and kept: a re-run must not rotate them.
    if let Some(state) = &existing {
        keep_generated_secrets(&state.config, &mut config);
    }
    config.fill_generated_secrets();

    let generated_ssh_key = if config.ssh_credentials.private_key_path.is_none() {
        let path = data.ssh_key(&name);
        let fingerprint =
            keys::ensure_ed25519(&path, &format!("torrust-deployer-{name}")).map_err(
                OpsError::io(format!("cannot create the SSH key pair {}", path.display())),
            )?;
        Some(GeneratedKey {
            public_key_path: path.with_extension("pub"),
            private_key_path: path,
            fingerprint,
        })
    } else {
        None
    };
    let key_path = generated_ssh_key
        .as_ref()
        .map(|k| k.private_key_path.clone());

    let outcome = match existing {
        None => {
            let mut state = EnvironmentState::new(config, key_path);
            data.save(&mut state)?;
            "created"
        }
        Some(mut state) => {
            if same_config(&state.config, &config) && state.generated_ssh_key == key_path {
                "unchanged"
            } else if matches!(state.lifecycle, Lifecycle::Created | Lifecycle::Destroyed) {
                state.config = config;
                state.generated_ssh_key = key_path;
                state.lifecycle = Lifecycle::Created;
                data.save(&mut state)?;
                "updated"
            } else if same_infrastructure(&state.config, &config)
                && state.generated_ssh_key == key_path
            {
                // Only what release/run (or configure, for `host`) apply changed: keep the host,
                // and step the lifecycle back so that `show` and `deploy` redo what is needed.
                let back_to = if state.config.host != config.host {
                    Lifecycle::Provisioned
                } else {
                    Lifecycle::Configured
                };
                state.lifecycle = state.lifecycle.min(back_to);
                state.config = config;
                data.save(&mut state)?;
                "updated"
            } else {
                return Err(OpsError::ConfigChanged {
                    env: name.clone(),
                    lifecycle: state.lifecycle.to_string(),
                    fix: format!(
                        "Its host exists, and the change touches `environment`, `ssh_credentials` \
                         or `provider`, which only a new host can apply (the tracker stack and \
                         `host` settings may change freely). Use another environment name, or run \
                         `torrust-tracker-deployer destroy {name}` first"
                    ),
                });
            }
        }
    };
    let state = data.load(&name)?;
    tracing::debug!(
        "environment '{name}' {outcome}: {}",
        redacted(|| serde_json::to_string(&state.config)).expect("config serializes")
    );
    Ok(Created {
        state_file: data.state_file(&name),
        name,
        outcome,
        lifecycle: state.lifecycle,
        generated_ssh_key,
        warnings: loaded.warnings,
    })
}

/// What [`create_environment`] would do with `env_file`, decided the same way but without
/// writing anything (for `deploy --dry-run`).
#[derive(Debug)]
pub struct Preview {
    pub name: String,
    /// `created`, `updated` or `unchanged`.
    pub outcome: &'static str,
    /// The configuration the environment would have (generated secrets kept).
    pub config: EnvironmentConfig,
}

/// Decides what [`create_environment`] would do with `env_file`; changes nothing. A change it
/// would refuse is refused here too.
pub fn preview_environment(data: &DataDir, env_file: &Path) -> Result<Preview, OpsError> {
    let mut config = config::load(env_file)?.config;
    let name = config.name().to_string();
    let existing = match data.load(&name) {
        Ok(state) => Some(state),
        Err(StateError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(state) = &existing {
        keep_generated_secrets(&state.config, &mut config);
    }
    config.fill_generated_secrets();
    let outcome = match &existing {
        None => "created",
        Some(state) if same_config(&state.config, &config) => "unchanged",
        Some(state)
            if matches!(state.lifecycle, Lifecycle::Created | Lifecycle::Destroyed)
                || same_infrastructure(&state.config, &config) =>
        {
            "updated"
        }
        Some(state) => {
            return Err(OpsError::ConfigChanged {
                env: name.clone(),
                lifecycle: state.lifecycle.to_string(),
                fix: format!(
                    "The change touches `environment`, `ssh_credentials` or `provider`, which \
                     only a new host can apply. Use another environment name, or run \
                     `torrust-tracker-deployer destroy {name}` first"
                ),
            });
        }
    };
    Ok(Preview {
        name,
        outcome,
        config,
    })
}

/// Carries over the MySQL root password generated by an earlier run when the file has none.
fn keep_generated_secrets(stored: &EnvironmentConfig, new: &mut EnvironmentConfig) {
    if let (Database::Mysql(old), Database::Mysql(m)) = (
        &stored.tracker.core.database,
        &mut new.tracker.core.database,
    ) && m.root_password.is_none()
    {
        m.root_password = old.root_password.clone();
    }
}

/// Whether two configurations describe the same host: same environment identity, SSH access
/// and provider. The rest (the tracker stack, `host` settings) can change on a live host.
fn same_infrastructure(a: &EnvironmentConfig, b: &EnvironmentConfig) -> bool {
    let v = |c: &EnvironmentConfig| {
        (
            serde_json::to_value(&c.environment).ok(),
            serde_json::to_value(&c.ssh_credentials).ok(),
            serde_json::to_value(&c.provider).ok(),
        )
    };
    v(a) == v(b)
}

fn same_config(a: &EnvironmentConfig, b: &EnvironmentConfig) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// What `validate` found in a valid file.
#[derive(Debug, Serialize)]
pub struct Validated {
    pub valid: bool,
    pub name: String,
    pub provider: &'static str,
    pub file: PathBuf,
    pub warnings: Vec<String>,
}

/// Every check `create environment` makes; writes nothing.
pub fn validate(env_file: &Path) -> Result<Validated, OpsError> {
    let loaded = config::load(env_file)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(Validated {
        valid: true,
        name: loaded.config.name().to_string(),
        provider: provider_name(&loaded.config.provider),
        file: env_file.to_path_buf(),
        warnings: loaded.warnings,
    })
}

pub fn provider_name(provider: &Provider) -> &'static str {
    match provider {
        Provider::Lxd(_) => "lxd",
        Provider::Hetzner(_) => "hetzner",
    }
}

/// The next thing to do with an environment.
#[derive(Debug, Serialize)]
pub struct NextStep {
    /// The command to run next.
    pub command: String,
    /// Whether this build has that command.
    pub available: bool,
    pub hint: String,
}

/// `show`: the environment's state and settings, secrets redacted.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub name: String,
    pub lifecycle: Lifecycle,
    pub provider: &'static str,
    pub instance_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_file: PathBuf,
    pub ssh_private_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CommandRun>,
    /// The configuration with every secret replaced by `[REDACTED]`.
    pub config: serde_json::Value,
    /// Where the host is and how to reach it, once provisioned or registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<ShownHost>,
    pub next: NextStep,
    /// The maintenance lock, while one is held (`lock ENV acquire`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<super::maintenance::MaintenanceView>,
}

/// The host of a shown environment: its address, the stack's public addresses, and the
/// commands that open a shell on it.
#[derive(Debug, Serialize)]
pub struct ShownHost {
    pub ip: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// The pinned host key's fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// The announce URLs, the API, Grafana (when the address is an IP this build can place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<crate::stack::Endpoints>,
    /// A shell through this tool (the pinned key, no `ssh` binary needed).
    pub shell: String,
    /// The same with OpenSSH, checking the same pinned key.
    pub openssh: String,
}

fn shown_host(data: &DataDir, state: &EnvironmentState) -> Option<ShownHost> {
    let host = state.host.as_ref().filter(|h| !h.ip.is_empty())?;
    let user = state.config.ssh_credentials.username.to_string();
    let key = state
        .private_key_path()
        .map(|k| format!(" -i {}", crate::ssh::shell_quote(&k.to_string_lossy())))
        .unwrap_or_default();
    let port = if host.ssh_port == 22 {
        String::new()
    } else {
        format!(" -p {}", host.ssh_port)
    };
    let known_hosts = data.known_hosts(&state.name);
    Some(ShownHost {
        ip: host.ip.clone(),
        ssh_port: host.ssh_port,
        ssh_user: user.clone(),
        host_key: host.host_key.clone(),
        endpoints: host
            .ip
            .parse()
            .ok()
            .map(|ip| crate::stack::endpoints(&state.config, ip)),
        shell: format!("torrust-tracker-deployer ssh {}", state.name),
        openssh: format!(
            "ssh{key}{port} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes {user}@{}",
            crate::ssh::shell_quote(&known_hosts.to_string_lossy()),
            host.ip
        ),
    })
}

pub fn show(data: &DataDir, env: &str) -> Result<Shown, OpsError> {
    let state = data.load(env)?;
    let config = redacted(|| serde_json::to_value(&state.config)).expect("config serializes");
    Ok(Shown {
        name: state.name.clone(),
        lifecycle: state.lifecycle,
        provider: provider_name(&state.config.provider),
        instance_name: state.config.instance_name(),
        created_at: state.created_at,
        updated_at: state.updated_at,
        state_file: data.state_file(env),
        ssh_private_key: state.private_key_path(),
        next: next_step(&state),
        host: shown_host(data, &state),
        last_run: state.last_run,
        config,
        maintenance: super::maintenance::view(data, env),
    })
}

/// The commands of the lifecycle that this build implements.
const BUILT_COMMANDS: &[&str] = &[
    "create environment",
    "provision",
    "configure",
    "release",
    "run",
    "deploy",
    "register",
    "destroy",
    "purge",
    "status",
    "test",
    "stop",
    "start",
    "restart",
    "backup",
    "restore",
];

fn next_step(state: &EnvironmentState) -> NextStep {
    let name = &state.name;
    if let Some(run) = state.unfinished_run() {
        let why = match &run.status {
            RunStatus::Failed {
                step, trace_file, ..
            } => format!(
                "`{}` failed at step '{step}' (details in {}); fix the cause, then run it again: it resumes",
                run.command,
                trace_file.display()
            ),
            _ => format!(
                "`{}` was interrupted; run it again: it resumes",
                run.command
            ),
        };
        // `restore` needs its archive again.
        let args = if run.command == "restore" {
            " --from ARCHIVE"
        } else {
            ""
        };
        return NextStep {
            available: BUILT_COMMANDS.contains(&run.command.as_str()),
            command: format!("torrust-tracker-deployer {} {name}{args}", run.command),
            hint: why,
        };
    }
    let (command, hint) = match state.lifecycle {
        Lifecycle::Created => ("provision", "create the host"),
        Lifecycle::Provisioned => ("configure", "install Docker and harden the host"),
        Lifecycle::Configured => ("release", "upload the tracker stack"),
        Lifecycle::Released => ("run", "start the tracker stack"),
        Lifecycle::Running => ("test", "check that the tracker answers"),
        Lifecycle::Stopped => ("start", "start the stopped stack"),
        Lifecycle::Destroyed => ("purge", "remove the local data"),
    };
    let available = BUILT_COMMANDS.contains(&command);
    let hint = if available {
        hint.to_string()
    } else {
        format!("{hint} (`{command}` is not in this build yet)")
    };
    NextStep {
        command: format!("torrust-tracker-deployer {command} {name}"),
        available,
        hint,
    }
}

/// One row of `list`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every environment; unreadable ones are listed with their error instead of failing the list.
pub fn list(data: &DataDir) -> Result<Vec<Listed>, OpsError> {
    let names = data.environment_names().map_err(OpsError::io(format!(
        "cannot read the data directory {}",
        data.root().display()
    )))?;
    Ok(names
        .into_iter()
        .map(|name| match data.load(&name) {
            Ok(state) => Listed {
                lifecycle: Some(state.lifecycle),
                provider: Some(provider_name(&state.config.provider)),
                error: None,
                name,
            },
            Err(e) => Listed {
                name,
                lifecycle: None,
                provider: None,
                error: Some(e.to_string()),
            },
        })
        .collect())
}

/// What `purge` removed.
#[derive(Debug, Serialize)]
pub struct Purged {
    pub name: String,
    pub removed: PathBuf,
    /// The lifecycle state the environment had; anything but created or destroyed means its
    /// infrastructure may still exist.
    pub lifecycle: Option<Lifecycle>,
}

/// Removes all local data of `env`. The caller has asked for confirmation.
pub fn purge(data: &DataDir, env: &str, lock_wait: Duration) -> Result<Purged, OpsError> {
    let _lock = data.lock(env, "purge", lock_wait)?;
    let dir = data.env_dir(env);
    if !dir.exists() {
        return Err(StateError::NotFound(env.to_string()).into());
    }
    let lifecycle = data.load(env).ok().map(|s| s.lifecycle);
    data.remove(env)?;
    Ok(Purged {
        name: env.to_string(),
        removed: dir,
        lifecycle,
    })
}

/// Whether `name` is an acceptable environment name (it becomes a directory name, and names
/// the `.lock` and `.log` files: at most [`config::MAX_ENVIRONMENT_NAME`] characters).
pub fn check_env_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= config::MAX_ENVIRONMENT_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not an environment name: use 1-63 lowercase letters, digits and '-', not starting with a digit or '-', not ending with '-'"
        ))
    }
}
