//! `tracker.toml`: the tracker's configuration, schema 2.0.0 of Torrust Tracker 3.0.0.
//!
//! Only keys that exist in `torrust-tracker-configuration` 3.0.0 are written. No secret is:
//! the API admin token and the MySQL URL reach the tracker as configuration overrides
//! (`TORRUST_TRACKER_CONFIG_OVERRIDE_*`, from `.env`), which take precedence over this file.

use std::net::SocketAddr;

use serde::Serialize;

use super::{FileRole, Plan, Service, StackError, StackFile, in_container, layout};
use crate::config::Database;

/// The schema version of the configuration file that Torrust Tracker 3.0.0 reads.
pub(crate) const SCHEMA_VERSION: &str = "2.0.0";

#[derive(Debug, Serialize)]
pub(crate) struct TrackerToml {
    metadata: Metadata,
    logging: Logging,
    core: Core,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    udp_trackers: Vec<Bind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_trackers: Vec<Bind>,
    http_api: Bind,
    health_check_api: Bind,
}

#[derive(Debug, Serialize)]
struct Metadata {
    app: &'static str,
    purpose: &'static str,
    schema_version: &'static str,
}

#[derive(Debug, Serialize)]
struct Logging {
    threshold: &'static str,
}

#[derive(Debug, Serialize)]
struct Core {
    /// Mandatory in 2.0.0 (with `private`): the tracker refuses a file without it.
    listed: bool,
    private: bool,
    database: CoreDatabase,
    net: Net,
    tracker_policy: TrackerPolicy,
    announce_policy: AnnouncePolicy,
}

#[derive(Debug, Serialize)]
struct AnnouncePolicy {
    /// Seconds between a client's regular announces (the incumbent's 300 by default).
    interval: u32,
    /// Seconds a client must wait at least between announces.
    interval_min: u32,
}

#[derive(Debug, Serialize)]
struct TrackerPolicy {
    /// Keep each torrent's completed count in the database (the incumbent's setting). Tracker
    /// 3.0.0 writes the counts but does not read them back when it starts (torrust-tracker
    /// issue 1264, fixed in later versions); the database, and so a backup, holds them.
    persistent_torrent_completed_stat: bool,
}

#[derive(Debug, Serialize)]
struct CoreDatabase {
    driver: &'static str,
    /// SQLite only; the MySQL URL holds the password and comes from `.env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

#[derive(Debug, Serialize)]
struct Net {
    /// Take the peer's address from `X-Forwarded-For` (set when HTTP trackers are behind
    /// the TLS proxy).
    on_reverse_proxy: bool,
}

#[derive(Debug, Serialize)]
struct Bind {
    bind_address: String,
}

impl Bind {
    fn new(addr: SocketAddr) -> Self {
        Self {
            bind_address: addr.to_string(),
        }
    }
}

/// The SQLite database file inside the tracker's container.
pub(crate) fn sqlite_path_in_container(database_name: &str) -> String {
    format!(
        "{}/database/{database_name}",
        layout::TRACKER_DATA_IN_CONTAINER
    )
}

pub(crate) fn model(plan: &Plan<'_>) -> TrackerToml {
    let core = &plan.config.tracker.core;
    let policy = core.effective_announce_policy();
    let database = match &core.database {
        Database::Sqlite3(s) => CoreDatabase {
            driver: "sqlite3",
            path: Some(sqlite_path_in_container(&s.database_name)),
        },
        Database::Mysql(_) => CoreDatabase {
            driver: "mysql",
            path: None,
        },
    };
    TrackerToml {
        metadata: Metadata {
            app: "torrust-tracker",
            purpose: "configuration",
            schema_version: SCHEMA_VERSION,
        },
        logging: Logging { threshold: "info" },
        core: Core {
            listed: false,
            private: core.private,
            database,
            net: Net {
                on_reverse_proxy: plan.on_reverse_proxy(),
            },
            tracker_policy: TrackerPolicy {
                persistent_torrent_completed_stat: true,
            },
            announce_policy: AnnouncePolicy {
                interval: policy.interval,
                interval_min: policy.interval_min,
            },
        },
        // Published or proxied: the unspecified address inside the container; where they are
        // reachable from is decided by the host address they are published on.
        udp_trackers: plan
            .udp
            .iter()
            .map(|a| Bind::new(in_container(*a)))
            .collect(),
        http_trackers: plan
            .http
            .iter()
            .map(|(a, _)| Bind::new(in_container(*a)))
            .collect(),
        http_api: Bind::new(in_container(plan.api)),
        // Never published: only the container's own health check uses it.
        health_check_api: Bind::new(plan.health),
    }
}

pub(crate) fn file(plan: &Plan<'_>) -> Result<StackFile, StackError> {
    let body = toml::to_string(&model(plan)).expect("the tracker configuration serializes");
    let text = format!(
        "# Torrust Tracker configuration of environment '{}'.\n\
         # Generated by torrust-tracker-deployer: `release` overwrites this file.\n\
         # The API admin token and the MySQL URL are not here: they come from .env as\n\
         # TORRUST_TRACKER_CONFIG_OVERRIDE_* variables.\n\n{body}",
        plan.config.name()
    );
    Ok(StackFile {
        path: layout::tracker_etc().join("tracker.toml"),
        contents: text.into_bytes(),
        mode: 0o640,
        owner: Some((layout::TRACKER_UID, layout::TRACKER_UID)),
        secret: false,
        role: FileRole::Restart {
            services: vec![Service::Tracker],
        },
    })
}
