//! Where everything lives on the host, and the directories the stack needs.

use std::path::{Path, PathBuf};

/// The Compose project directory. Compose runs here (`.env` is found next to the compose file).
pub const STACK_DIR: &str = "/opt/torrust";
/// The Compose file.
pub const COMPOSE_FILE: &str = "/opt/torrust/docker-compose.yml";
/// The secrets and the Compose project name, read by Compose for variable substitution.
pub const ENV_FILE: &str = "/opt/torrust/.env";
/// The Compose project name, pinned in `.env` as `COMPOSE_PROJECT_NAME`.
pub const COMPOSE_PROJECT_NAME: &str = "torrust";
/// Persistent data and configuration of the services, one directory per service.
pub const STORAGE_DIR: &str = "/opt/torrust/storage";
/// Backup archives.
pub const BACKUP_DIR: &str = "/opt/torrust/storage/backup";
/// The backup script run by cron.
pub const BACKUP_SCRIPT: &str = "/opt/torrust/bin/backup.sh";
/// Where `release` puts the deployer's own binary, for the `stats-exporter` service (mounted
/// read-only into its container).
pub const DEPLOYER_BIN_DIR: &str = "/opt/torrust/bin/deployer";
/// The deployer's binary on the host.
pub const DEPLOYER_BIN: &str = "/opt/torrust/bin/deployer/torrust-tracker-deployer";
/// The cron entry of the backup job.
pub const CRON_FILE: &str = "/etc/cron.d/torrust-backup";
/// Where cron appends the output of the backup job.
pub const BACKUP_LOG: &str = "/var/log/torrust-backup.log";

/// The tracker's configuration file inside its container.
pub const TRACKER_CONFIG_IN_CONTAINER: &str = "/etc/torrust/tracker/tracker.toml";
/// The tracker's data directory inside its container (SQLite database under `database/`).
pub const TRACKER_DATA_IN_CONTAINER: &str = "/var/lib/torrust/tracker";
/// The tracker's log directory inside its container.
pub const TRACKER_LOG_IN_CONTAINER: &str = "/var/log/torrust/tracker";

/// The uid/gid the tracker runs as (`USER_ID` of the tracker image).
pub const TRACKER_UID: u32 = 1000;
/// The `mysql` user of the MySQL image.
pub const MYSQL_UID: u32 = 999;
/// The `grafana` user of the Grafana image.
pub const GRAFANA_UID: u32 = 472;
/// `nobody`, the user of the Prometheus image.
pub const PROMETHEUS_UID: u32 = 65534;

pub(crate) fn storage(rel: &str) -> PathBuf {
    Path::new(STORAGE_DIR).join(rel)
}

/// The tracker's configuration directory on the host, mounted read-only on
/// `/etc/torrust/tracker`.
pub(crate) fn tracker_etc() -> PathBuf {
    storage("tracker/etc")
}

pub(crate) fn tracker_lib() -> PathBuf {
    storage("tracker/lib")
}

pub(crate) fn tracker_log() -> PathBuf {
    storage("tracker/log")
}

pub(crate) fn mysql_data() -> PathBuf {
    storage("mysql/data")
}

pub(crate) fn prometheus_etc() -> PathBuf {
    storage("prometheus/etc")
}

pub(crate) fn prometheus_data() -> PathBuf {
    storage("prometheus/data")
}

pub(crate) fn grafana_data() -> PathBuf {
    storage("grafana/data")
}

pub(crate) fn grafana_provisioning() -> PathBuf {
    storage("grafana/provisioning")
}

pub(crate) fn caddy_etc() -> PathBuf {
    storage("caddy/etc")
}

pub(crate) fn caddy_data() -> PathBuf {
    storage("caddy/data")
}

pub(crate) fn caddy_config() -> PathBuf {
    storage("caddy/config")
}

/// `host:container[:ro]`, the short syntax of a bind mount.
pub(crate) fn bind(host: &Path, container: &str, read_only: bool) -> String {
    format!(
        "{}:{container}{}",
        host.display(),
        if read_only { ":ro" } else { "" }
    )
}
