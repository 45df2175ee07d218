//! A complete environment file to start from.

use std::net::{IpAddr, Ipv4Addr};

use crate::secret::Secret;

use super::images::{ImageService, default_image};
use super::model::default_ssh_port;
use super::{
    AnnouncePolicy, Backup, BindAddress, Core, Database, EnvironmentConfig, EnvironmentSection,
    Grafana, HealthCheckApi, HetznerProvider, HostSettings, HttpApi, HttpTracker, Https, Images,
    LxdProvider, Prometheus, Provider, ProviderKind, SqliteDatabase, SshCredentials, Tracker,
    UdpTracker, Username,
};

/// The value of `provider.api_token` in the Hetzner template. Validation rejects it.
pub const HETZNER_API_TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_YOUR_HETZNER_API_TOKEN";

/// `0.0.0.0:<port>`.
fn all_interfaces(port: u16) -> BindAddress {
    BindAddress::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).expect("not port 0")
}

/// Pretty JSON of a complete environment file with safe defaults: environment `my-tracker`,
/// SQLite, one UDP and one HTTP tracker, the API with a random admin token, the health check on
/// loopback, and Prometheus. The SSH key paths are left out (the deployer generates a key pair).
///
/// The LXD template is valid as is; the Hetzner one needs its `api_token` replaced.
pub fn template(kind: ProviderKind) -> String {
    pretty(&serde_json::to_value(base(kind)).expect("an environment config always serializes"))
}

/// The placeholders of the full template: (JSON path, value). Validation refuses each one,
/// naming the path, until it is replaced.
pub const FULL_TEMPLATE_PLACEHOLDERS: [(&str, &str); 3] = [
    (
        "tracker.http_trackers[0].domain",
        "REPLACE_WITH_YOUR_HTTP_TRACKER_DOMAIN",
    ),
    ("grafana.domain", "REPLACE_WITH_YOUR_GRAFANA_DOMAIN"),
    ("https.admin_email", "REPLACE_WITH_YOUR_EMAIL"),
];

/// The JSON paths a template leaves for the operator to fill (placeholders).
pub fn template_placeholders(kind: ProviderKind, full: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if kind == ProviderKind::Hetzner {
        out.push("provider.api_token");
    }
    if full {
        out.extend(FULL_TEMPLATE_PLACEHOLDERS.iter().map(|(path, _)| *path));
    }
    out
}

/// Pretty JSON of the template with every section: [`template`] plus the announce policy,
/// Grafana (random admin password) and the HTTP tracker behind the TLS proxy (`https`), daily
/// backups kept 7 days, every image pinned to its default, and the `host` settings. The
/// domains and the Let's Encrypt e-mail are placeholders ([`FULL_TEMPLATE_PLACEHOLDERS`]).
pub fn full_template(kind: ProviderKind) -> String {
    let mut config = base(kind);
    config.tracker.core.announce_policy = Some(AnnouncePolicy::default());
    config.grafana = Some(Grafana {
        admin_user: "admin".to_string(),
        admin_password: Secret::generate(32),
        domain: None,
        use_tls_proxy: true,
    });
    config.backup = Some(Backup::default());
    config.images = Some(Images {
        tracker: Some(default_image(ImageService::Tracker).to_string()),
        mysql: Some(default_image(ImageService::Mysql).to_string()),
        prometheus: Some(default_image(ImageService::Prometheus).to_string()),
        grafana: Some(default_image(ImageService::Grafana).to_string()),
        caddy: Some(default_image(ImageService::Caddy).to_string()),
        backup: None,
        offline_bundle: None,
    });
    config.https = Some(Https {
        admin_email: FULL_TEMPLATE_PLACEHOLDERS[2].1.to_string(),
        use_staging: false,
    });
    if let Some(http) = config.tracker.http_trackers.first_mut() {
        http.use_tls_proxy = true;
    }
    // A domain is a typed value, which a placeholder is not: set it in the JSON.
    let mut value = serde_json::to_value(&config).expect("an environment config always serializes");
    value["tracker"]["http_trackers"][0]["domain"] = FULL_TEMPLATE_PLACEHOLDERS[0].1.into();
    value["grafana"]["domain"] = FULL_TEMPLATE_PLACEHOLDERS[1].1.into();
    pretty(&value)
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serializes");
    text.push('\n');
    text
}

fn base(kind: ProviderKind) -> EnvironmentConfig {
    let name = "my-tracker";
    let provider = match kind {
        ProviderKind::Lxd => Provider::Lxd(LxdProvider::new(format!("torrust-profile-{name}"))),
        ProviderKind::Hetzner => Provider::Hetzner(HetznerProvider {
            api_token: Secret::new(HETZNER_API_TOKEN_PLACEHOLDER),
            server_type: "cx22".to_string(),
            location: "nbg1".to_string(),
            image: "ubuntu-24.04".to_string(),
            firewall: true,
        }),
    };
    EnvironmentConfig {
        environment: EnvironmentSection {
            name: name.to_string(),
            instance_name: None,
            description: None,
        },
        ssh_credentials: SshCredentials {
            private_key_path: None,
            public_key_path: None,
            username: Username::torrust(),
            port: default_ssh_port(),
        },
        provider,
        tracker: Tracker {
            core: Core {
                database: Database::Sqlite3(SqliteDatabase {
                    database_name: "tracker.db".to_string(),
                }),
                private: false,
                announce_policy: None,
            },
            udp_trackers: vec![UdpTracker {
                bind_address: all_interfaces(6969),
                domain: None,
            }],
            http_trackers: vec![HttpTracker {
                bind_address: all_interfaces(7070),
                domain: None,
                use_tls_proxy: false,
            }],
            http_api: HttpApi {
                // The host's loopback only (ADR 31): `test` and `status` reach it through SSH.
                bind_address: BindAddress::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1212)
                    .expect("not port 0"),
                admin_token: Secret::generate(32),
                domain: None,
                use_tls_proxy: false,
            },
            health_check_api: HealthCheckApi::default(),
        },
        prometheus: Some(Prometheus::default()),
        grafana: None,
        https: None,
        backup: None,
        images: None,
        host: Some(HostSettings::default()),
    }
}
