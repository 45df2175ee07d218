//! A complete environment file to start from.

use std::net::{IpAddr, Ipv4Addr};

use crate::secret::Secret;

use super::model::default_ssh_port;
use super::{
    BindAddress, Core, Database, EnvironmentConfig, EnvironmentSection, HealthCheckApi,
    HetznerProvider, HostSettings, HttpApi, HttpTracker, LxdProvider, Prometheus, Provider,
    ProviderKind, SqliteDatabase, SshCredentials, Tracker, UdpTracker, Username,
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
    let config = EnvironmentConfig {
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
                bind_address: all_interfaces(1212),
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
    };
    let mut text =
        serde_json::to_string_pretty(&config).expect("an environment config always serializes");
    text.push('\n');
    text
}
