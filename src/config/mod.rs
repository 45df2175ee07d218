//! The environment file: types, loading, validation, JSON Schema and template.
//!
//! The format is the one of the incumbent deployer (torrust-tracker-deployer v0.1.0), accepted
//! unchanged, plus optional extensions of ours (LXD options, `images`). See
//! `docs/user-guide/environment-file.md` for every field.
//!
//! Loading is done in passes so that *all* the problems of a file are reported at once:
//! 1. JSON syntax (stops at the first error, with line and column);
//! 2. a structural walk of the JSON value against the JSON Schema of the types: unknown fields
//!    (with a "did you mean" hint), missing required fields, wrong JSON types;
//! 3. typed deserialization, then the rules (formats, ranges, cross-field rules).

mod error;
mod images;
mod rules;
mod structure;
mod template;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use error::{ConfigError, Problem};
pub use images::{ImageService, default_image};
pub use template::{HETZNER_API_TOKEN_PLACEHOLDER, template};

/// The whole environment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Torrust Tracker Deployer environment file")]
pub struct EnvironmentConfig {
    /// Identity of the environment.
    pub environment: EnvironmentSection,
    /// How the deployer reaches the instance over SSH.
    pub ssh_credentials: SshCredentials,
    /// Where the instance runs (`lxd` or `hetzner`).
    pub provider: Provider,
    /// The tracker's configuration.
    pub tracker: Tracker,
    /// Metrics collection. Absent: no Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
    /// Dashboards. Absent: no Grafana. Requires `prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<Grafana>,
    /// TLS certificates from Let's Encrypt, for the services with `use_tls_proxy: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<Https>,
    /// Scheduled backups of the database and configuration. Absent: no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Extension: pins or overrides the container image of each service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    /// Extension: host settings applied by `configure`. Absent: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSettings>,
}

/// Extension `host`: settings `configure` applies to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostSettings {
    /// Local time (`HH:MM`, 24 h) at which unattended-upgrades reboots the host when an upgrade
    /// needs it. Default `02:00`.
    #[serde(default = "default_reboot_time")]
    pub automatic_reboot_time: String,
}

fn default_reboot_time() -> String {
    "02:00".to_string()
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            automatic_reboot_time: default_reboot_time(),
        }
    }
}

impl EnvironmentConfig {
    /// The environment's name (`environment.name`).
    pub fn name(&self) -> &str {
        &self.environment.name
    }

    /// The instance (VM/container/server) name: `environment.instance_name`, or
    /// `torrust-tracker-vm-<name>` by default.
    pub fn instance_name(&self) -> String {
        self.environment.instance_name()
    }

    /// The kind of provider.
    pub fn provider_kind(&self) -> ProviderKind {
        self.provider.kind()
    }

    /// The effective image of a service: the `images` override if set, else the pinned default.
    pub fn image(&self, service: ImageService) -> String {
        match &self.images {
            Some(images) => images.effective(service),
            None => default_image(service).to_string(),
        }
    }

    /// Whether any service is behind the TLS proxy (`use_tls_proxy: true`, Grafana included).
    pub fn uses_tls_proxy(&self) -> bool {
        !self.tls_services().is_empty()
    }

    /// The JSON paths of the services that have `use_tls_proxy: true`.
    pub fn tls_services(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, t) in self.tracker.http_trackers.iter().enumerate() {
            if t.use_tls_proxy {
                out.push(format!("tracker.http_trackers[{i}]"));
            }
        }
        if self.tracker.http_api.use_tls_proxy {
            out.push("tracker.http_api".to_string());
        }
        if self.tracker.health_check_api.use_tls_proxy {
            out.push("tracker.health_check_api".to_string());
        }
        if let Some(g) = &self.grafana
            && g.use_tls_proxy
        {
            out.push("grafana".to_string());
        }
        out
    }

    /// Fills the secrets that the file may leave out and that the deployment keeps once chosen:
    /// today, the MySQL root password. Returns whether anything changed.
    pub fn fill_generated_secrets(&mut self) -> bool {
        if let Database::Mysql(m) = &mut self.tracker.core.database
            && m.root_password.is_none()
        {
            m.root_password = Some(Secret::generate(32));
            return true;
        }
        false
    }
}

/// `environment`: identity of the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvironmentSection {
    /// Lowercase ASCII letters, digits and `-`; no leading digit; no leading or trailing `-`.
    pub name: String,
    /// Name of the instance. Default: `torrust-tracker-vm-<name>`. 1-63 characters: ASCII
    /// letters, digits and `-`; no leading digit or `-`; no trailing `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl EnvironmentSection {
    /// `instance_name`, or `torrust-tracker-vm-<name>` by default.
    pub fn instance_name(&self) -> String {
        self.instance_name
            .clone()
            .unwrap_or_else(|| format!("torrust-tracker-vm-{}", self.name))
    }
}

/// `ssh_credentials`: how the deployer reaches the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SshCredentials {
    /// Path of the SSH private key. Relative paths are resolved against the directory of the
    /// environment file. Omit both key paths to let the deployer generate a key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<PathBuf>,
    /// Path of the SSH public key (given with `private_key_path`, or both omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_path: Option<PathBuf>,
    /// User on the instance. Default `torrust`. 1-32 characters, starts with a letter or `_`,
    /// then letters, digits, `_` or `-`.
    #[serde(default = "default_username")]
    pub username: String,
    /// SSH port. Default 22. 1-65535.
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
}

fn default_username() -> String {
    "torrust".to_string()
}

fn default_ssh_port() -> u16 {
    22
}

/// The kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Lxd,
    Hetzner,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Lxd => "lxd",
            ProviderKind::Hetzner => "hetzner",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `provider`: where the instance runs, tagged by `provider`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum Provider {
    /// A local LXD container or virtual machine.
    Lxd(LxdProvider),
    /// A Hetzner Cloud server.
    Hetzner(HetznerProvider),
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Lxd(_) => ProviderKind::Lxd,
            Provider::Hetzner(_) => ProviderKind::Hetzner,
        }
    }
}

/// LXD provider options. Only `profile_name` is required; the rest are our extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LxdProvider {
    /// The LXD profile created for this environment (one per environment). Same rule as
    /// `environment.instance_name`.
    pub profile_name: String,
    /// Extension: image to launch, `remote:alias` (e.g. `images:debian/12/cloud`,
    /// `ubuntu:24.04`), or a local alias or fingerprint. Default `ubuntu:24.04`.
    #[serde(default = "default_lxd_image")]
    pub image: String,
    /// Extension: `container` (default) or `virtual-machine`.
    #[serde(default)]
    pub instance_type: LxdInstanceType,
    /// Extension: path of the LXD unix socket. Default: LXD's own discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    /// Extension: storage pool of the root disk. Default `default`.
    #[serde(default = "default_storage_pool")]
    pub storage_pool: String,
    /// Extension: network the instance attaches to. Default `lxdbr0`.
    #[serde(default = "default_lxd_network")]
    pub network: String,
    /// Extension: LXD project. Default: LXD's current project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Extension: number of CPUs (>= 1). Default: LXD's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu: Option<u32>,
    /// Extension: memory limit, an LXD size such as `2GiB` or `512MB`. Default: LXD's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Extension: root disk size, an LXD size such as `20GiB`. Default: the pool's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
}

/// The default LXD image.
pub const DEFAULT_LXD_IMAGE: &str = "ubuntu:24.04";

fn default_lxd_image() -> String {
    DEFAULT_LXD_IMAGE.to_string()
}

fn default_storage_pool() -> String {
    "default".to_string()
}

fn default_lxd_network() -> String {
    "lxdbr0".to_string()
}

impl LxdProvider {
    /// An LXD provider with the given profile and every extension at its default.
    pub fn new(profile_name: impl Into<String>) -> Self {
        Self {
            profile_name: profile_name.into(),
            image: default_lxd_image(),
            instance_type: LxdInstanceType::default(),
            socket_path: None,
            storage_pool: default_storage_pool(),
            network: default_lxd_network(),
            project: None,
            cpu: None,
            memory: None,
            disk: None,
        }
    }
}

/// LXD instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LxdInstanceType {
    /// A system container (fast, shares the host kernel).
    #[default]
    Container,
    /// A virtual machine.
    VirtualMachine,
}

impl LxdInstanceType {
    pub fn as_str(self) -> &'static str {
        match self {
            LxdInstanceType::Container => "container",
            LxdInstanceType::VirtualMachine => "virtual-machine",
        }
    }
}

/// Hetzner Cloud provider options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HetznerProvider {
    /// Hetzner Cloud API token (read/write). Secret.
    pub api_token: Secret,
    /// Server type, e.g. `cx22`.
    pub server_type: String,
    /// Location, e.g. `nbg1`, `fsn1`, `hel1`.
    pub location: String,
    /// Image, e.g. `ubuntu-24.04`.
    pub image: String,
}

/// `tracker`: the tracker's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tracker {
    /// Database and mode.
    pub core: Core,
    /// UDP trackers (BEP 15).
    #[serde(default)]
    pub udp_trackers: Vec<UdpTracker>,
    /// HTTP trackers.
    #[serde(default)]
    pub http_trackers: Vec<HttpTracker>,
    /// The tracker's REST API.
    pub http_api: HttpApi,
    /// The health check API. Default: `127.0.0.1:1313`.
    #[serde(default)]
    pub health_check_api: HealthCheckApi,
}

/// `tracker.core`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Core {
    /// The tracker's database, tagged by `driver`.
    pub database: Database,
    /// Private tracker mode (peers need a key).
    pub private: bool,
}

/// `tracker.core.database`, tagged by `driver`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "driver")]
pub enum Database {
    /// SQLite, a file in the tracker's data directory.
    #[serde(rename = "sqlite3")]
    Sqlite3(SqliteDatabase),
    /// MySQL, run as a service of the stack.
    #[serde(rename = "mysql")]
    Mysql(MysqlDatabase),
}

/// SQLite database options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SqliteDatabase {
    /// File name of the database, e.g. `tracker.db`.
    pub database_name: String,
}

/// MySQL database options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MysqlDatabase {
    /// Host name of the MySQL service, e.g. `mysql`.
    pub host: String,
    /// Port, e.g. 3306.
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Database name.
    pub database_name: String,
    /// User of the tracker (not `root`).
    pub username: String,
    /// Password of `username`. Secret.
    pub password: Secret,
    /// Root password. Secret. Absent: generated randomly once and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<Secret>,
}

/// Parses a bind address that validation has accepted.
fn validated_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| panic!("bind address {addr:?} was not validated"))
}

/// `tracker.udp_trackers[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UdpTracker {
    /// Socket address, e.g. `0.0.0.0:6969`. Port 0 is rejected.
    pub bind_address: String,
    /// Domain used in announce URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `tracker.http_trackers[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpTracker {
    /// Socket address, e.g. `0.0.0.0:7070`. Port 0 is rejected.
    pub bind_address: String,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Serve through the TLS proxy (Caddy) at `https://<domain>`. Needs `domain`, a non-loopback
    /// `bind_address` and the `https` section.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

/// `tracker.http_api`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpApi {
    /// Socket address, e.g. `0.0.0.0:1212`. Port 0 is rejected.
    pub bind_address: String,
    /// Admin token of the API. Secret.
    pub admin_token: Secret,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Serve through the TLS proxy. Same rules as for HTTP trackers.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

/// `tracker.health_check_api`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheckApi {
    /// Socket address, usually `127.0.0.1:1313`. Port 0 is rejected.
    pub bind_address: String,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Serve through the TLS proxy. Same rules as for HTTP trackers.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

impl Default for HealthCheckApi {
    fn default() -> Self {
        Self {
            bind_address: "127.0.0.1:1313".to_string(),
            domain: None,
            use_tls_proxy: false,
        }
    }
}

/// `false` for an absent or `null` flag (the incumbent's flags are optional booleans).
fn null_as_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

macro_rules! impl_socket_addr {
    ($($t:ty),*) => {$(
        impl $t {
            /// The bind address. Panics if the config was not validated (`load`/`parse` do).
            pub fn socket_addr(&self) -> SocketAddr {
                validated_addr(&self.bind_address)
            }

            /// The bind port.
            pub fn port(&self) -> u16 {
                self.socket_addr().port()
            }
        }
    )*};
}

impl_socket_addr!(UdpTracker, HttpTracker, HttpApi, HealthCheckApi);

/// `prometheus`: metrics collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prometheus {
    /// Scrape interval in seconds, > 0. Default 15.
    #[serde(default = "default_scrape_interval")]
    #[schemars(range(min = 1))]
    pub scrape_interval_in_secs: u32,
}

fn default_scrape_interval() -> u32 {
    15
}

impl Default for Prometheus {
    fn default() -> Self {
        Self {
            scrape_interval_in_secs: default_scrape_interval(),
        }
    }
}

/// `grafana`: dashboards. Requires `prometheus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Grafana {
    /// Grafana admin user.
    pub admin_user: String,
    /// Grafana admin password. Secret.
    pub admin_password: Secret,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Serve through the TLS proxy at `https://<domain>`. Needs `domain` and `https`.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

/// `https`: Let's Encrypt account for the TLS proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Https {
    /// ACME account e-mail (expiry notices).
    pub admin_email: String,
    /// Use the Let's Encrypt staging CA (untrusted certificates, generous rate limits).
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_staging: bool,
}

/// `backup`: scheduled backups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Backup {
    /// Cron schedule, 5 fields (minute hour day-of-month month day-of-week), host time zone.
    /// Default `0 3 * * *`.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
    /// Days a backup is kept, >= 1. Default 7.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1))]
    pub retention_days: u32,
}

fn default_backup_schedule() -> String {
    "0 3 * * *".to_string()
}

fn default_retention_days() -> u32 {
    7
}

impl Default for Backup {
    fn default() -> Self {
        Self {
            schedule: default_backup_schedule(),
            retention_days: default_retention_days(),
        }
    }
}

/// Extension `images`: container image of each service, `name[:tag][@digest]`. Absent fields
/// use the pinned defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Images {
    /// The tracker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
    /// The MySQL image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<String>,
    /// The Prometheus image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// The Grafana image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<String>,
    /// The Caddy (TLS proxy) image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caddy: Option<String>,
    /// The image that runs the backup job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// For air-gapped hosts: a directory of `docker save` archives (`*.tar`, `*.tar.gz`) that
    /// `release` uploads and loads instead of pulling from a registry. Relative paths are
    /// resolved against the environment file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_bundle: Option<PathBuf>,
}

impl Images {
    /// The override for a service, if any.
    pub fn get(&self, service: ImageService) -> Option<&str> {
        match service {
            ImageService::Tracker => self.tracker.as_deref(),
            ImageService::Mysql => self.mysql.as_deref(),
            ImageService::Prometheus => self.prometheus.as_deref(),
            ImageService::Grafana => self.grafana.as_deref(),
            ImageService::Caddy => self.caddy.as_deref(),
            ImageService::Backup => self.backup.as_deref(),
        }
    }

    /// The override for a service, or its pinned default.
    pub fn effective(&self, service: ImageService) -> String {
        self.get(service)
            .unwrap_or_else(|| default_image(service))
            .to_string()
    }
}

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
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let mut loaded = parse(&text, &base_dir)?;
    loaded.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// Parses and validates the text of an environment file. Relative SSH key paths are resolved
/// against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Loaded, ConfigError> {
    let value = structure::parse_json(text)?;
    let mut warnings = Vec::new();
    let found = structure::check(&value, &mut warnings);
    let structural = found.iter().any(|f| f.is_structural());
    let mut problems: Vec<Problem> = found.into_iter().map(Problem::from).collect();
    if structural {
        return Err(ConfigError::Invalid { problems });
    }
    let mut config = match structure::deserialize(text) {
        Ok(config) => config,
        Err(found) => {
            problems.push(found.into());
            return Err(ConfigError::Invalid { problems });
        }
    };
    rules::resolve_key_paths(&mut config, base_dir);
    let report = rules::validate(&config);
    // A placeholder is reported once, as a placeholder, not again by the rule of its field.
    let placeholder_paths: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    problems.extend(
        report
            .problems
            .into_iter()
            .filter(|p| !placeholder_paths.contains(&p.path)),
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

/// Checks a configuration stored in a state file again, with every rule that does not read a
/// file (key files and the offline bundle may have moved since): what reaches a shell, a
/// compose file or a URL is as valid as the day it was created.
pub fn validate_stored(config: &EnvironmentConfig) -> Vec<Problem> {
    rules::validate_stored(config).problems
}

/// The JSON Schema (draft 2020-12) of the environment file, generated from the types. It accepts
/// the incumbent's files, including the legacy top-level `caddy` section.
pub fn schema() -> serde_json::Value {
    structure::schema()
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
