//! `docker-compose.yml`: a typed model of the services, written as YAML.
//!
//! Format: the Compose Specification with no `version` key. docker-compose 1.27+ (Debian 12 has
//! 1.29.2) reads it, including `depends_on: {x: {condition: service_healthy}}`, and Compose v2
//! reads it without the "`version` is obsolete" warning. No `privileged`, no `ulimits` (hosts
//! such as unprivileged LXD containers refuse both), no `name` key (1.29 rejects it: the
//! project name comes from `COMPOSE_PROJECT_NAME` in `.env`).
//!
//! The file holds no secret: secrets are `${VAR:?...}` references that Compose fills from the
//! `.env` file next to it. Every literal is written with `$` doubled so Compose never
//! interpolates it.

use std::net::IpAddr;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::env_file::{
    ENV_API_ADMIN_TOKEN, ENV_DATABASE_DRIVER, ENV_DATABASE_PATH, ENV_GRAFANA_ADMIN_PASSWORD,
    ENV_MYSQL_PASSWORD, ENV_MYSQL_ROOT_PASSWORD,
};
use super::{
    FileRole, Plan, Service, StackError, StackFile, grafana, layout, monitoring, prometheus, yaml,
};

/// The port MySQL listens on unless the configuration names another.
pub(crate) const MYSQL_DEFAULT_PORT: u16 = 3306;

/// The per-purpose networks.
pub(crate) const NET_DATABASE: &str = "database";
pub(crate) const NET_METRICS: &str = "metrics";
pub(crate) const NET_VISUALISATION: &str = "visualisation";
pub(crate) const NET_PROXY: &str = "proxy";

/// A map that keeps insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Ordered<V> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, key: impl Into<String>, value: V) {
        self.0.push((key.into(), value));
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ComposeFile {
    services: Ordered<ComposeService>,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    networks: Ordered<NetworkDef>,
}

/// A network of the project: a plain bridge named `<project>_<name>`.
#[derive(Debug, Serialize)]
struct NetworkDef {}

#[derive(Debug, Serialize)]
struct ComposeService {
    image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    restart: &'static str,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    environment: Ordered<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
    #[serde(skip_serializing_if = "Networks::is_empty")]
    networks: Networks,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    depends_on: Ordered<DependsOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    logging: Logging,
}

impl ComposeService {
    fn new(image: String) -> Self {
        Self {
            image,
            entrypoint: Vec::new(),
            command: Vec::new(),
            user: None,
            restart: "unless-stopped",
            environment: Ordered::default(),
            volumes: Vec::new(),
            ports: Vec::new(),
            networks: Networks::List(Vec::new()),
            depends_on: Ordered::default(),
            healthcheck: None,
            logging: Logging::default(),
        }
    }

    /// A literal environment value (`$` escaped).
    fn env(&mut self, key: &str, value: impl AsRef<str>) {
        self.environment.push(key, literal(value.as_ref()));
    }

    /// A value taken from `.env`; Compose stops with an error if `.env` lacks it.
    fn env_ref(&mut self, key: &str, var: &str) {
        self.environment
            .push(key, format!("${{{var}:?{var} is missing from .env}}"));
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Networks {
    List(Vec<String>),
    WithAliases(Ordered<NetworkAttachment>),
}

impl Networks {
    fn is_empty(&self) -> bool {
        match self {
            Networks::List(l) => l.is_empty(),
            Networks::WithAliases(m) => m.is_empty(),
        }
    }
}

#[derive(Debug, Serialize)]
struct NetworkAttachment {
    aliases: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DependsOn {
    condition: &'static str,
}

#[derive(Debug, Serialize)]
struct Healthcheck {
    test: Vec<String>,
    interval: &'static str,
    timeout: &'static str,
    retries: u32,
    start_period: &'static str,
}

impl Healthcheck {
    fn cmd(command: Vec<String>, retries: u32, start_period: &'static str) -> Self {
        let mut test = vec!["CMD".to_string()];
        test.extend(command.into_iter().map(|a| literal(&a)));
        // A check every 2 s: Docker runs the first one an interval after the start (Docker 20.10
        // and Compose v1 have no `start_interval`), and `run` and `status` wait for it.
        Self {
            test,
            interval: "2s",
            timeout: "5s",
            retries,
            start_period,
        }
    }
}

/// Bounded container logs, so a chatty service cannot fill the disk.
#[derive(Debug, Serialize)]
struct Logging {
    driver: &'static str,
    options: Ordered<&'static str>,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            driver: "json-file",
            options: Ordered(vec![("max-size".into(), "10m"), ("max-file".into(), "3")]),
        }
    }
}

/// A literal for the compose file: `$` doubled so Compose does not interpolate it.
fn literal(s: &str) -> String {
    s.replace('$', "$$")
}

pub(crate) fn model(plan: &Plan<'_>) -> Result<ComposeFile, StackError> {
    let mut services = Ordered::default();
    let mut networks: Vec<&'static str> = Vec::new();
    let mut use_net = |n: &'static str| {
        if !networks.contains(&n) {
            networks.push(n);
        }
        n.to_string()
    };

    // Tracker.
    let mut tracker = ComposeService::new(plan.image(Service::Tracker));
    tracker.env("USER_ID", layout::TRACKER_UID.to_string());
    tracker.env(
        "TORRUST_TRACKER_CONFIG_TOML_PATH",
        layout::TRACKER_CONFIG_IN_CONTAINER,
    );
    tracker.env_ref(ENV_DATABASE_DRIVER, ENV_DATABASE_DRIVER);
    if plan.mysql().is_some() {
        tracker.env_ref(ENV_DATABASE_PATH, ENV_DATABASE_PATH);
    }
    tracker.env_ref(ENV_API_ADMIN_TOKEN, ENV_API_ADMIN_TOKEN);
    // Read by the HEALTHCHECK of the official image; the compose health check below is the
    // same probe, so images without that HEALTHCHECK are checked too.
    tracker.env("HEALTH_CHECK_API_PORT", plan.health.port().to_string());
    tracker.volumes = vec![
        layout::bind(&layout::tracker_etc(), "/etc/torrust/tracker", true),
        layout::bind(
            &layout::tracker_lib(),
            layout::TRACKER_DATA_IN_CONTAINER,
            false,
        ),
        layout::bind(
            &layout::tracker_log(),
            layout::TRACKER_LOG_IN_CONTAINER,
            false,
        ),
    ];
    tracker.ports = plan
        .ports(Service::Tracker)
        .iter()
        .map(|p| p.compose_spec())
        .collect();
    let mut tracker_nets = Vec::new();
    if plan.mysql().is_some() {
        tracker_nets.push(use_net(NET_DATABASE));
        tracker.depends_on.push(
            Service::Mysql.as_str(),
            DependsOn {
                condition: "service_healthy",
            },
        );
    }
    if plan.prometheus() {
        tracker_nets.push(use_net(NET_METRICS));
    }
    if plan.tracker_behind_proxy() {
        tracker_nets.push(use_net(NET_PROXY));
    }
    tracker.networks = Networks::List(tracker_nets);
    tracker.healthcheck = Some(Healthcheck::cmd(plan.tracker_health_command(), 5, "10s"));
    services.push(Service::Tracker.as_str(), tracker);

    // MySQL.
    if let Some(m) = plan.mysql() {
        check_mysql_host(&m.host)?;
        let mut mysql = ComposeService::new(plan.image(Service::Mysql));
        if m.port != MYSQL_DEFAULT_PORT {
            mysql.command = vec![format!("--port={}", m.port)];
        }
        mysql.env_ref("MYSQL_ROOT_PASSWORD", ENV_MYSQL_ROOT_PASSWORD);
        mysql.env("MYSQL_DATABASE", &m.database_name);
        mysql.env("MYSQL_USER", &m.username);
        mysql.env_ref("MYSQL_PASSWORD", ENV_MYSQL_PASSWORD);
        mysql.volumes = vec![layout::bind(&layout::mysql_data(), "/var/lib/mysql", false)];
        let net = use_net(NET_DATABASE);
        mysql.networks = if m.host == Service::Mysql.as_str() {
            Networks::List(vec![net])
        } else {
            // The tracker reaches MySQL by the configured host name.
            Networks::WithAliases(Ordered(vec![(
                net,
                NetworkAttachment {
                    aliases: vec![literal(&m.host)],
                },
            )]))
        };
        mysql.healthcheck = Some(Healthcheck::cmd(plan.mysql_health_command(), 10, "60s"));
        services.push(Service::Mysql.as_str(), mysql);
    }

    // The statistics exporter, then Prometheus, which scrapes it.
    if plan.prometheus() {
        services.push(
            Service::StatsExporter.as_str(),
            stats_exporter(plan, use_net(NET_METRICS)),
        );
        let mut prom = ComposeService::new(plan.image(Service::Prometheus));
        prom.command = vec![
            format!("--config.file={}", prometheus::CONFIG_IN_CONTAINER),
            "--storage.tsdb.path=/prometheus".to_string(),
        ];
        prom.volumes = vec![
            layout::bind(&layout::prometheus_etc(), "/etc/prometheus", true),
            layout::bind(&layout::prometheus_data(), "/prometheus", false),
        ];
        prom.ports = plan
            .ports(Service::Prometheus)
            .iter()
            .map(|p| p.compose_spec())
            .collect();
        let mut nets = vec![use_net(NET_METRICS)];
        if plan.grafana() {
            nets.push(use_net(NET_VISUALISATION));
        }
        prom.networks = Networks::List(nets);
        prom.depends_on.push(
            Service::StatsExporter.as_str(),
            DependsOn {
                condition: "service_started",
            },
        );
        services.push(Service::Prometheus.as_str(), prom);
    }

    // Grafana.
    if let Some(g) = &plan.config.grafana {
        let mut graf = ComposeService::new(plan.image(Service::Grafana));
        graf.env("GF_SECURITY_ADMIN_USER", &g.admin_user);
        graf.env_ref("GF_SECURITY_ADMIN_PASSWORD", ENV_GRAFANA_ADMIN_PASSWORD);
        graf.env("GF_USERS_ALLOW_SIGN_UP", "false");
        graf.env("GF_ANALYTICS_REPORTING_ENABLED", "false");
        graf.env("GF_ANALYTICS_CHECK_FOR_UPDATES", "false");
        if g.use_tls_proxy
            && let Some(domain) = &g.domain
        {
            graf.env("GF_SERVER_ROOT_URL", format!("https://{}/", domain.name()));
        }
        graf.volumes = vec![
            layout::bind(&layout::grafana_data(), "/var/lib/grafana", false),
            layout::bind(
                &layout::grafana_provisioning(),
                grafana::PROVISIONING_IN_CONTAINER,
                true,
            ),
        ];
        graf.ports = plan
            .ports(Service::Grafana)
            .iter()
            .map(|p| p.compose_spec())
            .collect();
        let mut nets = vec![use_net(NET_VISUALISATION)];
        if g.use_tls_proxy {
            nets.push(use_net(NET_PROXY));
        }
        graf.networks = Networks::List(nets);
        if plan.prometheus() {
            graf.depends_on.push(
                Service::Prometheus.as_str(),
                DependsOn {
                    condition: "service_started",
                },
            );
        }
        services.push(Service::Grafana.as_str(), graf);
    }

    // Caddy.
    if plan.tls() {
        let mut caddy = ComposeService::new(plan.image(Service::Caddy));
        caddy.volumes = vec![
            layout::bind(&layout::caddy_etc(), "/etc/caddy", true),
            layout::bind(&layout::caddy_data(), "/data", false),
            layout::bind(&layout::caddy_config(), "/config", false),
        ];
        caddy.ports = plan
            .ports(Service::Caddy)
            .iter()
            .map(|p| p.compose_spec())
            .collect();
        caddy.networks = Networks::List(vec![use_net(NET_PROXY)]);
        if plan.tracker_behind_proxy() {
            caddy.depends_on.push(
                Service::Tracker.as_str(),
                DependsOn {
                    condition: "service_started",
                },
            );
        }
        if plan.grafana_tls() {
            caddy.depends_on.push(
                Service::Grafana.as_str(),
                DependsOn {
                    condition: "service_started",
                },
            );
        }
        services.push(Service::Caddy.as_str(), caddy);
    }

    // Networks in a fixed order, whatever order the services asked for them.
    let order = [NET_DATABASE, NET_METRICS, NET_VISUALISATION, NET_PROXY];
    let networks = Ordered(
        order
            .iter()
            .filter(|n| networks.contains(n))
            .map(|n| (n.to_string(), NetworkDef {}))
            .collect(),
    );
    Ok(ComposeFile { services, networks })
}

/// The exporter: the deployer's binary (mounted read-only) as the entrypoint of the tracker's
/// image, as the tracker's unprivileged user, with the admin token from `.env`.
fn stats_exporter(plan: &Plan<'_>, metrics_net: String) -> ComposeService {
    let mut exp = ComposeService::new(plan.image(Service::StatsExporter));
    exp.entrypoint = vec![monitoring::binary_in_container()];
    exp.command = monitoring::exporter_command(plan);
    exp.user = Some(format!("{0}:{0}", layout::TRACKER_UID));
    exp.env_ref(crate::exporter::TOKEN_ENV, ENV_API_ADMIN_TOKEN);
    exp.volumes = vec![monitoring::exporter_volume()];
    exp.networks = Networks::List(vec![metrics_net]);
    exp.depends_on.push(
        Service::Tracker.as_str(),
        DependsOn {
            condition: "service_started",
        },
    );
    exp.healthcheck = Some(Healthcheck::cmd(
        monitoring::exporter_health_command(),
        5,
        "10s",
    ));
    exp
}

/// MySQL runs in the stack: its `host` must be a name on the stack's network.
pub(crate) fn check_mysql_host(host: &str) -> Result<(), StackError> {
    let reason = if host.parse::<IpAddr>().is_ok() {
        Some("is an IP address")
    } else if host.eq_ignore_ascii_case("localhost") {
        Some("is `localhost`, which is the tracker's own container")
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        Some("is not a host name (letters, digits, `-`, `.`, `_`)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StackError::UnsafeValue {
            field: "tracker.core.database.host".into(),
            reason: format!(
                "{reason}; MySQL runs as a service of the stack and the tracker reaches it by \
                 this name on the stack's database network: use `mysql`"
            ),
        }),
        None => Ok(()),
    }
}

pub(crate) fn file(plan: &Plan<'_>) -> Result<StackFile, StackError> {
    let model = model(plan)?;
    let value = serde_json::to_value(&model).expect("the compose model serializes");
    let mut text = format!(
        "# Torrust Tracker stack of environment '{}'.\n\
         # Generated by torrust-tracker-deployer: `release` overwrites this file.\n\
         # Secrets are not here: Compose reads them from .env next to this file.\n",
        plan.config.name()
    );
    text.push_str(&yaml::to_string(&value));
    Ok(StackFile {
        path: layout::COMPOSE_FILE.into(),
        contents: text.into_bytes(),
        mode: 0o644,
        owner: None,
        secret: false,
        role: FileRole::Compose,
    })
}
