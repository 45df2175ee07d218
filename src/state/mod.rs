//! The persisted state of each environment, the data directory layout and the lock.
//!
//! ```text
//! data/
//!   .locks/<env>.lock        one lock per environment (see [`lock`])
//!   logs/<env>.log           detailed log per environment; deployer.log for the rest
//!   <env>/state.json         [`EnvironmentState`], mode 0600 (it holds the config's secrets)
//!   <env>/state.json.prev    the state before the last durable save, to recover a damaged one
//!   <env>/ssh/id_ed25519     generated key pair when the file names none (0600)
//!   <env>/known_hosts        pinned host keys
//!   <env>/traces/            one trace file per failed command
//!   <env>/maintenance.json   the maintenance lock, while a person holds it (see [`maintenance`])
//!   <env>/history/           the release history kept here (see [`history`])
//! ```
//!
//! Every lifecycle command runs as a sequence of named steps. Before each step the state records
//! the step it is entering; after the last one it records the new lifecycle state. A command that
//! dies leaves `run.status == running` with its step: the next run of any command sees it, and
//! since every step is idempotent, simply running the command again resumes it.

mod error;
pub mod fsutil;
pub mod history;
pub mod lock;
pub mod maintenance;
pub mod operator;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::EnvironmentConfig;
pub use error::StateError;
pub use lock::{EnvLock, LockError, LockOwner};

/// Bumped whenever the state file's shape changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the lifecycle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Created,
    Provisioned,
    Configured,
    Released,
    Running,
    /// The whole stack was stopped with `stop` (its containers kept); `start`, `run` or
    /// `deploy` start it again.
    Stopped,
    Destroyed,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Provisioned => "provisioned",
            Lifecycle::Configured => "configured",
            Lifecycle::Released => "released",
            Lifecycle::Running => "running",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Destroyed => "destroyed",
        }
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last command that changed (or tried to change) the environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandRun {
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Steps finished in this run, in order.
    pub completed_steps: Vec<String>,
    #[serde(flatten)]
    pub status: RunStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RunStatus {
    /// Still running, or interrupted (the lock then shows nobody holds it).
    Running {
        step: Option<String>,
    },
    Succeeded,
    Failed {
        step: String,
        error: String,
        trace_file: PathBuf,
    },
}

/// The state file of one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub schema_version: u32,
    pub name: String,
    /// A random id, made with the environment: it marks the LXD objects provision creates
    /// ([`crate::ops::ownership`]). Empty in states made before ids; provision sets one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub lifecycle: Lifecycle,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The environment file as validated (key paths resolved; secrets included: mode 0600).
    pub config: EnvironmentConfig,
    /// The generated SSH key pair, when the environment file names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_ssh_key: Option<PathBuf>,
    /// The host, once provisioned or registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostRecord>,
    /// The Hetzner Cloud objects provision made (or found by label) for the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hetzner: Option<HetznerRecord>,
    /// The remote LXD the instance lives on, and where in a cluster (`provider.endpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxd: Option<LxdRecord>,
    /// Services whose mounted files a release changed and that `run` has yet to restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_restarts: Vec<String>,
    /// What configure set up on the host (the Compose command later steps call, warnings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_setup: Option<HostSetup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CommandRun>,
}

/// What `configure` found and set up on the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostSetup {
    /// The distribution, e.g. `debian-12`.
    pub os: String,
    /// The Compose command: `docker compose` (v2 plugin) or `docker-compose` (v1).
    pub compose_command: String,
    pub compose_version: String,
    /// `active`, or why the firewall could not be applied.
    pub firewall: String,
    /// Everything configure could not do and said so (also shown in its output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub configured_at: DateTime<Utc>,
}

/// Where the environment's host is and how it was obtained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRecord {
    pub ip: String,
    pub ssh_port: u16,
    /// SHA256 fingerprint of the pinned host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// The LXD instance, when we created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The LXD profile, when we created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Adopted with `register`: never stopped or deleted by `destroy`.
    #[serde(default)]
    pub registered: bool,
    /// Whether the LXD instance's image has cloud-init (which then sets up SSH access), as
    /// provision found it; unknown for older states and registered hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
}

/// What provision learnt about the LXD it used.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LxdRecord {
    /// A remote LXD's certificate fingerprint, pinned at first trust: every later connection
    /// must meet the same certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fingerprint: Option<String>,
    /// The endpoint it was pinned for (a new endpoint is a new server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The fingerprint of the client certificate LXD trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_fingerprint: Option<String>,
    /// The cluster member the instance runs on (LXD's `location`; `none` when not clustered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// What provision made in Hetzner Cloud, by id (each also carries the environment's label, by
/// which `destroy` finds it when this record is lost).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HetznerRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<i64>,
    /// The server's IPv6 address (the first of its /64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_id: Option<i64>,
    /// The SSH key was uploaded by provision (else it was already in the project, unlabelled,
    /// and `destroy` leaves it).
    #[serde(default)]
    pub ssh_key_ours: bool,
}

/// The Compose commands configure records (`ComposeFlavor::command`); later steps run the
/// recorded one in a shell, so nothing else is accepted from a state file.
const COMPOSE_COMMANDS: [&str; 2] = ["docker compose", "docker-compose"];

impl EnvironmentState {
    /// What is wrong with a state loaded from the directory of environment `env`: its name must
    /// be the directory's, its configuration must pass the environment file's rules again (all
    /// but those that read files), and the values that later reach a shell on the host must be
    /// ones the deployer writes.
    pub fn problems(&self, env: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.id.chars().all(|c| c.is_ascii_hexdigit()) || self.id.len() > 32 {
            problems.push(format!(
                "`id` is '{}': an environment id is up to 32 hex digits",
                self.id
            ));
        }
        if self.name != env {
            problems.push(format!(
                "`name` is '{}', but the state is in the directory of environment '{env}'",
                self.name
            ));
        }
        if self.config.name() != self.name {
            problems.push(format!(
                "`config.environment.name` is '{}', but the state is environment '{}'",
                self.config.name(),
                self.name
            ));
        }
        for p in crate::config::validate_stored(&self.config) {
            problems.push(format!("config.{}: {}", p.path, p.message));
        }
        // Provision records the instance before LXD gives it an address: an empty IP is "not yet".
        if let Some(host) = &self.host
            && !host.ip.is_empty()
            && host.ip.parse::<std::net::IpAddr>().is_err()
        {
            problems.push(format!("`host.ip` {:?} is not an IP address", host.ip));
        }
        if let Some(setup) = &self.host_setup
            && !COMPOSE_COMMANDS.contains(&setup.compose_command.as_str())
        {
            problems.push(format!(
                "`host_setup.compose_command` {:?} is neither of {COMPOSE_COMMANDS:?}",
                setup.compose_command
            ));
        }
        for service in &self.pending_restarts {
            let ok = !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                problems.push(format!(
                    "`pending_restarts` holds {service:?}, not a service name"
                ));
            }
        }
        problems
    }

    pub fn new(config: EnvironmentConfig, generated_ssh_key: Option<PathBuf>) -> Self {
        let now = Utc::now();
        Self {
            schema_version: SCHEMA_VERSION,
            name: config.name().to_string(),
            id: crate::ops::ownership::new_id(),
            lifecycle: Lifecycle::Created,
            created_at: now,
            updated_at: now,
            config,
            generated_ssh_key,
            host: None,
            hetzner: None,
            lxd: None,
            host_setup: None,
            pending_restarts: Vec::new(),
            last_run: None,
        }
    }

    /// The private key used to reach the host.
    pub fn private_key_path(&self) -> Option<PathBuf> {
        self.config
            .ssh_credentials
            .private_key_path
            .clone()
            .or_else(|| self.generated_ssh_key.clone())
    }

    /// The public key matching [`Self::private_key_path`].
    pub fn public_key_path(&self) -> Option<PathBuf> {
        self.config
            .ssh_credentials
            .public_key_path
            .clone()
            .or_else(|| {
                self.generated_ssh_key
                    .as_ref()
                    .map(|p| p.with_extension("pub"))
            })
    }

    /// A command that did not finish: interrupted or failed.
    pub fn unfinished_run(&self) -> Option<&CommandRun> {
        self.last_run
            .as_ref()
            .filter(|r| !matches!(r.status, RunStatus::Succeeded))
    }
}

/// `state.json.prev` next to `state.json`: the state as it was before the last durable save (or,
/// after the first, that state itself), for when `state.json` is damaged (a power loss after a
/// progress record, a full disk, an editor). The durable saves are a command's first and last
/// records and every change of the environment, so it is at most one command old.
fn previous_state_file(state_file: &Path) -> PathBuf {
    state_file.with_extension("json.prev")
}

/// Before a durable save of `state_file`: the current file becomes the previous state, by a hard
/// link renamed into place (no copy; the save then replaces `state.json` by a new file, which
/// leaves the link alone). The current file may be a progress record not yet on disk: it is
/// synced first (nearly free when the kernel has written it already), so the previous state
/// survives the power loss that could damage a later progress record. The first save has no
/// current file: `new` is written as the previous state too. (A command saves only a state it
/// could load, so the current file is a good one.)
fn keep_previous(state_file: &Path, new: &[u8]) -> std::io::Result<()> {
    let prev = previous_state_file(state_file);
    match fs::File::open(state_file) {
        Ok(current) => {
            current.sync_all()?;
            let tmp = state_file.with_extension(format!("json.prev.tmp-{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            fs::hard_link(state_file, &tmp)?;
            fs::rename(&tmp, &prev).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fsutil::write_atomic(&prev, new, 0o600)
        }
        Err(e) => Err(e),
    }
}

/// The data directory: all environments' state, locks and logs.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// Commands run although the maintenance lock is held (`--override-maintenance`).
    override_maintenance: bool,
}

impl DataDir {
    /// `root` is made absolute, so paths recorded in state stay valid from any directory.
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(root))
                .unwrap_or_else(|_| root.to_path_buf())
        };
        Self {
            root,
            override_maintenance: false,
        }
    }

    /// This data directory, letting commands run although an environment's maintenance lock
    /// is held (each such run is recorded in the lock's record): `--override-maintenance`.
    pub fn overriding_maintenance(mut self, yes: bool) -> Self {
        self.override_maintenance = yes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn env_dir(&self, env: &str) -> PathBuf {
        self.root.join(env)
    }

    pub fn state_file(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("state.json")
    }

    pub fn known_hosts(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("known_hosts")
    }

    /// The client certificate (and, `.key`, its key) made for a remote LXD.
    pub fn lxd_client_cert(&self, env: &str) -> (PathBuf, PathBuf) {
        let dir = self.env_dir(env);
        (dir.join("lxd-client.crt"), dir.join("lxd-client.key"))
    }

    pub fn ssh_key(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("ssh").join("id_ed25519")
    }

    /// The host key pair provision gives a new instance (private key 0600, `.pub` beside it).
    pub fn host_key(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("ssh").join("host_ed25519")
    }

    pub fn traces_dir(&self, env: &str) -> PathBuf {
        self.env_dir(env).join("traces")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log_file(&self, env: Option<&str>) -> PathBuf {
        self.logs_dir()
            .join(format!("{}.log", env.unwrap_or("deployer")))
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join(".locks")
    }

    /// Takes the environment's lock for `command`, waiting up to `wait`. A command that changes
    /// the environment is then refused while its maintenance lock is held
    /// ([`maintenance`]); `command` is the name that decides ([`maintenance::guards`]).
    pub fn lock(&self, env: &str, command: &str, wait: Duration) -> Result<EnvLock, LockError> {
        let lock = EnvLock::acquire(&self.locks_dir(), env, command, wait)?;
        if let Some(stale) = &lock.recovered_stale {
            tracing::warn!(
                "took over a stale lock of environment '{env}' left by {stale}, which is no longer running"
            );
        }
        // A phase inside `deploy` (a nested guard) was checked with deploy.
        if !lock.is_nested() {
            self.check_maintenance(env, command)?;
        }
        Ok(lock)
    }

    pub fn exists(&self, env: &str) -> bool {
        self.state_file(env).is_file()
    }

    pub fn load(&self, env: &str) -> Result<EnvironmentState, StateError> {
        let path = self.state_file(env);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(env.to_string()));
            }
            Err(e) => {
                return Err(StateError::Unreadable {
                    env: env.to_string(),
                    path,
                    reason: e.to_string(),
                });
            }
        };
        // A state that does not parse: name the previous one if it does.
        let unreadable = |reason: String| {
            let previous = self.previous_state_file(env);
            let usable = fs::read(&previous)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v.get("schema_version").is_some());
            if usable {
                StateError::Damaged {
                    env: env.to_string(),
                    path: path.clone(),
                    reason,
                    previous,
                }
            } else {
                StateError::Unreadable {
                    env: env.to_string(),
                    path: path.clone(),
                    reason,
                }
            }
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let version = value
            .get("schema_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| unreadable("no schema_version".into()))?;
        if version != u64::from(SCHEMA_VERSION) {
            return Err(StateError::SchemaVersion {
                env: env.to_string(),
                found: version,
            });
        }
        // The configuration's typed values (bind addresses, domains, user names...) are parsed
        // by its deserialization; check them first to name each rejected one with its path.
        if let Some(config) = value.get("config") {
            let problems: Vec<String> = crate::config::check_stored_json(config)
                .iter()
                .map(|p| match p.path.as_str() {
                    "" => format!("config: {}", p.message),
                    path => format!("config.{path}: {}", p.message),
                })
                .collect();
            if !problems.is_empty() {
                return Err(StateError::Invalid {
                    env: env.to_string(),
                    path,
                    problems,
                });
            }
        }
        let state: EnvironmentState =
            serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))?;
        let problems = state.problems(env);
        if !problems.is_empty() {
            return Err(StateError::Invalid {
                env: env.to_string(),
                path,
                problems,
            });
        }
        Ok(state)
    }

    /// Writes the state atomically, mode 0600. Call only while holding the environment's lock.
    pub fn save(&self, state: &mut EnvironmentState) -> Result<(), StateError> {
        self.write_state(state, true)
    }

    /// [`save`](Self::save) without waiting for the disk: for the progress records of a
    /// command (which step it is in, which finished), which the command's final, durable save
    /// repeats. A killed process loses nothing; a power loss may bring back the previous record.
    pub fn save_progress(&self, state: &mut EnvironmentState) -> Result<(), StateError> {
        self.write_state(state, false)
    }

    fn write_state(&self, state: &mut EnvironmentState, durable: bool) -> Result<(), StateError> {
        state.updated_at = Utc::now();
        let path = self.state_file(&state.name);
        fsutil::create_private_dir(&self.env_dir(&state.name)).map_err(|source| {
            StateError::Write {
                path: path.clone(),
                source,
            }
        })?;
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        let written = if durable {
            keep_previous(&path, text.as_bytes())
                .and_then(|()| fsutil::write_atomic(&path, text.as_bytes(), 0o600))
        } else {
            fsutil::write_atomic_unsynced(&path, text.as_bytes(), 0o600)
        };
        written.map_err(|source| StateError::Write { path, source })
    }

    /// The copy of the state before its last durable save (see `previous_state_file`).
    pub fn previous_state_file(&self, env: &str) -> PathBuf {
        previous_state_file(&self.state_file(env))
    }

    /// Names of every directory that looks like an environment, sorted.
    pub fn environment_names(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "logs" || !entry.path().is_dir() {
                continue;
            }
            if entry.path().join("state.json").exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes everything stored locally for `env`: its directory and its log.
    pub fn remove(&self, env: &str) -> Result<(), StateError> {
        let dir = self.env_dir(env);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|source| StateError::Write { path: dir, source })?;
        }
        let log = self.log_file(Some(env));
        if log.exists() {
            fs::remove_file(&log).map_err(|source| StateError::Write { path: log, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod prev_tests {
    use super::*;

    fn state(name: &str) -> EnvironmentState {
        let file = crate::config::minimal_test_file(name, "token-0123456789abcdef");
        let loaded = crate::config::parse(&file.to_string(), Path::new("/")).unwrap();
        EnvironmentState::new(loaded.config, None)
    }

    #[test]
    fn durable_saves_keep_the_previous_state_and_progress_records_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let prev = data.previous_state_file("e");
        let mut s = state("e");
        data.save(&mut s).unwrap();
        let first = fs::read(data.state_file("e")).unwrap();
        assert_eq!(
            fs::read(&prev).unwrap(),
            first,
            "the first save is its own previous"
        );

        s.lifecycle = Lifecycle::Provisioned;
        data.save_progress(&mut s).unwrap();
        assert_eq!(
            fs::read(&prev).unwrap(),
            first,
            "a progress record leaves it"
        );
        let progress = fs::read(data.state_file("e")).unwrap();

        s.lifecycle = Lifecycle::Configured;
        data.save(&mut s).unwrap();
        assert_eq!(
            fs::read(&prev).unwrap(),
            progress,
            "the state before the durable save"
        );
        assert_ne!(fs::read(data.state_file("e")).unwrap(), progress);
        // No temporary file is left, and both files are private.
        let names: Vec<String> = fs::read_dir(data.env_dir("e"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&prev).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A damaged state names it; an undamaged previous one is what `load` reads once back.
        fs::write(data.state_file("e"), "{\"schema_vers").unwrap();
        match data.load("e") {
            Err(StateError::Damaged { previous, .. }) => assert_eq!(previous, prev),
            other => panic!("{other:?}"),
        }
        fs::copy(&prev, data.state_file("e")).unwrap();
        assert_eq!(data.load("e").unwrap().lifecycle, Lifecycle::Provisioned);
    }
}
