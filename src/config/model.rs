//! The types of the environment file, section by section (the provider's are in `provider`).
//! Values with a format are typed (`values`): a loaded configuration holds them parsed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::images::{ImageService, default_image};
use super::provider::{Provider, ProviderKind};
use super::values::{BindAddress, Domain, MysqlDatabaseName, MysqlUser, Port, Username};
use crate::secret::Secret;

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
    /// For hosts without egress: a directory of `.deb` files with its `Packages` (or
    /// `Packages.gz`) index, as provisioning/offline/build-deb-dir.sh writes it. `configure`
    /// uploads it and installs Docker, Compose and its other packages from it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_packages: Option<std::path::PathBuf>,
    /// For hosts without egress: `host:port` of an apt proxy (or a plain-HTTP mirror) that this
    /// machine reaches. `configure` opens a port on the host's loopback over its SSH connection
    /// (remote forwarding) and points apt's HTTP proxy at it for the install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_proxy_over_ssh: Option<String>,
}

fn default_reboot_time() -> String {
    "02:00".to_string()
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            automatic_reboot_time: default_reboot_time(),
            offline_packages: None,
            apt_proxy_over_ssh: None,
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
    #[serde(default = "Username::torrust")]
    pub username: Username,
    /// SSH port. Default 22. 1-65535.
    #[serde(default = "default_ssh_port")]
    pub port: Port,
}

pub(super) fn default_ssh_port() -> Port {
    Port::new(22).expect("22 is not 0")
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
    /// Extension: the announce intervals the tracker gives clients. Absent: 300 s and 300 s,
    /// the incumbent's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_policy: Option<AnnouncePolicy>,
}

impl Core {
    /// The announce policy in effect: the file's, or the default (300 s, 300 s).
    pub fn effective_announce_policy(&self) -> AnnouncePolicy {
        self.announce_policy.clone().unwrap_or_default()
    }
}

/// `tracker.core.announce_policy`: how often clients announce, in seconds, written to the
/// tracker's `[core.announce_policy]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnnouncePolicy {
    /// Seconds a client should wait between regular announces. Default 300.
    /// From 30 to 86400 (one day), and not below `interval_min`.
    #[serde(default = "default_announce_interval")]
    #[schemars(range(min = 30, max = 86400))]
    pub interval: u32,
    /// Seconds a client must wait at least between announces. Default 300.
    /// From 30 to `interval`.
    #[serde(default = "default_announce_interval")]
    #[schemars(range(min = 30, max = 86400))]
    pub interval_min: u32,
}

/// The incumbent's announce interval and minimum: 300 s.
pub const DEFAULT_ANNOUNCE_INTERVAL: u32 = 300;
/// The bounds of `announce_policy.interval` and `interval_min`, in seconds.
pub const ANNOUNCE_INTERVAL_BOUNDS: (u32, u32) = (30, 86_400);

fn default_announce_interval() -> u32 {
    DEFAULT_ANNOUNCE_INTERVAL
}

impl Default for AnnouncePolicy {
    fn default() -> Self {
        Self {
            interval: DEFAULT_ANNOUNCE_INTERVAL,
            interval_min: DEFAULT_ANNOUNCE_INTERVAL,
        }
    }
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
    pub port: Port,
    /// Database name.
    pub database_name: MysqlDatabaseName,
    /// User of the tracker (not `root`).
    pub username: MysqlUser,
    /// Password of `username`. Secret.
    pub password: Secret,
    /// Root password. Secret. Absent: generated randomly once and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<Secret>,
}

/// `tracker.udp_trackers[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UdpTracker {
    /// Socket address, e.g. `0.0.0.0:6969`. Port 0 is rejected.
    pub bind_address: BindAddress,
    /// Domain used in announce URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
}

/// `tracker.http_trackers[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpTracker {
    /// Socket address, e.g. `0.0.0.0:7070`. Port 0 is rejected.
    pub bind_address: BindAddress,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
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
    pub bind_address: BindAddress,
    /// Admin token of the API. Secret.
    pub admin_token: Secret,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Serve through the TLS proxy. Same rules as for HTTP trackers.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

/// `tracker.health_check_api`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheckApi {
    /// Socket address, usually `127.0.0.1:1313`. Port 0 is rejected.
    pub bind_address: BindAddress,
    /// Domain. Required with `use_tls_proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Serve through the TLS proxy. Same rules as for HTTP trackers.
    #[serde(default, deserialize_with = "null_as_false")]
    #[schemars(with = "Option<bool>")]
    pub use_tls_proxy: bool,
}

impl Default for HealthCheckApi {
    fn default() -> Self {
        Self {
            bind_address: BindAddress::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1313)
                .expect("1313 is not 0"),
            domain: None,
            use_tls_proxy: false,
        }
    }
}

/// `false` for an absent or `null` flag (the incumbent's flags are optional booleans).
fn null_as_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

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
    pub domain: Option<Domain>,
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
    /// Ignored (accepted for files that set it): the backup job runs on the host, from its
    /// cron, with the Docker CLI, not in a container, so no image is used. `validate` warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("deprecated" = true))]
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
        }
    }

    /// The override for a service, or its pinned default.
    pub fn effective(&self, service: ImageService) -> String {
        self.get(service)
            .unwrap_or_else(|| default_image(service))
            .to_string()
    }
}
