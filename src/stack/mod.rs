//! The typed model of the stack that `release` uploads to the host, derived from a validated
//! environment configuration.
//!
//! [`render`] turns an [`EnvironmentConfig`] into a [`RenderedStack`]: every file with its host
//! path, mode, owner and role, the directories to create, the images the compose file uses and
//! each service's published ports and health probe. Nothing here touches the network or the
//! disk, and the result is deterministic: the same configuration gives byte-identical files, so
//! a second `release` can detect "no change".
//!
//! Files (host paths; see [`layout`]):
//!
//! | file | mode | holds | role |
//! |---|---|---|---|
//! | `/opt/torrust/docker-compose.yml` | 0644 | services, ports, networks, mounts | [`FileRole::Compose`] |
//! | `/opt/torrust/.env` | 0600 | every secret, `COMPOSE_PROJECT_NAME` | [`FileRole::Compose`] |
//! | `/opt/torrust/storage/tracker/etc/tracker.toml` | 0640, 1000:1000 | tracker config, no secret | restart tracker |
//! | `/opt/torrust/storage/prometheus/etc/prometheus.yml` | 0600, 65534:65534 | scrape config with the API token | restart prometheus |
//! | `/opt/torrust/storage/grafana/provisioning/...` | 0644 | datasource, dashboard provider, dashboard | restart grafana |
//! | `/opt/torrust/storage/caddy/etc/Caddyfile` | 0644 | TLS sites | restart caddy |
//! | `/opt/torrust/bin/backup.sh`, `/etc/cron.d/torrust-backup` | 0755, 0644, root | backup job | [`FileRole::Host`] |
//!
//! Exposure (the incumbent's rules): UDP tracker ports are always published; HTTP tracker, API
//! and Grafana ports only when they are not behind the TLS proxy; the health check API and
//! MySQL never; Prometheus only on `127.0.0.1:9090`; Caddy on 80, 443 and 443/udp.
//!
//! A tracker port is published on the host address its `bind_address` names (ADR 31):
//! `0.0.0.0` (or `[::]`) on every interface, `127.0.0.1` on the host's loopback only, another IP
//! on that IP only. Inside the container every published or proxied tracker service binds the
//! unspecified address of its family ([`in_container`]), so that Docker's port mapping and the
//! proxy reach it; the host address is where the exposure is decided.

mod backup;
mod caddy;
mod compose;
mod endpoints;
mod env_file;
mod grafana;
pub mod layout;
pub mod monitoring;
mod prometheus;
mod tracker_toml;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Database, EnvironmentConfig, ImageService, MysqlDatabase};

pub use backup::cron_line;
pub use endpoints::{Endpoints, announce_urls, endpoints};
pub use env_file::{
    ENV_API_ADMIN_TOKEN, ENV_DATABASE_DRIVER, ENV_DATABASE_PATH, ENV_GRAFANA_ADMIN_PASSWORD,
    ENV_MYSQL_PASSWORD, ENV_MYSQL_ROOT_PASSWORD, mysql_url,
};
pub use grafana::{
    DASHBOARD_UID, DATASOURCE_UID, dashboard as grafana_dashboard,
    expressions as dashboard_expressions,
};
pub use monitoring::{Scrape, scrape_support};

/// A service of the compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Tracker,
    Mysql,
    Prometheus,
    Grafana,
    Caddy,
    /// The statistics exporter (our own binary in the tracker's image), scraped by Prometheus.
    StatsExporter,
}

impl Service {
    /// Every service, in the compose file's order.
    pub const ALL: [Service; 6] = [
        Service::Tracker,
        Service::Mysql,
        Service::StatsExporter,
        Service::Prometheus,
        Service::Grafana,
        Service::Caddy,
    ];

    /// The service name in the compose file.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Tracker => "tracker",
            Service::Mysql => "mysql",
            Service::Prometheus => "prometheus",
            Service::Grafana => "grafana",
            Service::Caddy => "caddy",
            Service::StatsExporter => "stats-exporter",
        }
    }

    /// Which configured image the service runs.
    pub fn image_service(self) -> ImageService {
        match self {
            Service::Tracker => ImageService::Tracker,
            Service::Mysql => ImageService::Mysql,
            Service::Prometheus => ImageService::Prometheus,
            Service::Grafana => ImageService::Grafana,
            Service::Caddy => ImageService::Caddy,
            // The exporter is our binary, run in the tracker's image (already on the host).
            Service::StatsExporter => ImageService::Tracker,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything `release` puts on the host.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    /// The files, in a stable order (compose file first).
    pub files: Vec<StackFile>,
    /// The directories to create before the files, parents first.
    pub dirs: Vec<StackDir>,
    /// The image references the compose file uses, one per service, in service order.
    pub images: Vec<String>,
    /// The services of the compose file, with their published ports and health probes.
    pub services: Vec<ServiceInfo>,
}

impl RenderedStack {
    /// The file at `path` (a host path), if the stack has one.
    pub fn file(&self, path: impl AsRef<Path>) -> Option<&StackFile> {
        self.files.iter().find(|f| f.path == path.as_ref())
    }

    /// The services to restart explicitly after the files at `changed` were replaced: those
    /// that mount them. A change of the compose file or `.env` is applied by `compose up -d`,
    /// which recreates what changed, and host files (backup job) restart nothing.
    pub fn restarts_for<'a>(&self, changed: impl IntoIterator<Item = &'a Path>) -> Vec<Service> {
        let mut out = BTreeSet::new();
        for path in changed {
            if let Some(FileRole::Restart { services }) = self.file(path).map(|f| &f.role) {
                out.extend(services.iter().copied());
            }
        }
        out.into_iter().collect()
    }
}

/// One file for the host.
#[derive(Clone, Serialize)]
pub struct StackFile {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// The exact bytes. Never serialized, never shown by `Debug` (it may hold secrets).
    #[serde(skip)]
    pub contents: Vec<u8>,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    /// `(uid, gid)` to chown to; `None`: owned by whoever uploads it (root, or the SSH user
    /// that runs Compose).
    pub owner: Option<(u32, u32)>,
    /// Holds a secret: mode 0600, never printed.
    pub secret: bool,
    /// What a change of this file requires.
    pub role: FileRole,
}

impl fmt::Debug for StackFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("secret", &self.secret)
            .field("role", &self.role)
            .finish()
    }
}

/// What a change of a file requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FileRole {
    /// Read by Compose itself (compose file, `.env`): `compose up -d` applies a change and
    /// recreates exactly the containers whose configuration changed.
    Compose,
    /// Mounted into these services' containers, which read it at start: restart them.
    Restart { services: Vec<Service> },
    /// Used by the host (backup script, cron entry): nothing to restart.
    Host,
}

/// A directory to create on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackDir {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A service of the compose file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub name: Service,
    pub image: String,
    /// Ports published on the host.
    pub ports: Vec<PublishedPort>,
    /// How to tell that the service is up.
    pub health: HealthProbe,
}

/// A port published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub protocol: Protocol,
    /// The host address it is bound to; `None`: every interface.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PublishedPort {
    fn all(protocol: Protocol, port: u16) -> Self {
        Self {
            protocol,
            host_ip: None,
            host_port: port,
            container_port: port,
        }
    }

    /// `port:port` published on the host address of the bind address `addr`: every interface
    /// for the unspecified address, else that address only.
    fn at(protocol: Protocol, addr: SocketAddr) -> Self {
        Self {
            host_ip: host_ip(addr),
            ..Self::all(protocol, addr.port())
        }
    }

    /// Reachable from other machines: published on every interface or on an address that is
    /// not loopback.
    pub fn is_public(&self) -> bool {
        self.host_ip.is_none_or(|ip| !ip.is_loopback())
    }

    /// The compose short syntax: `[ip:]host:container[/udp]`.
    pub fn compose_spec(&self) -> String {
        let mut s = String::new();
        match self.host_ip {
            Some(IpAddr::V6(ip)) => s.push_str(&format!("[{ip}]:")),
            Some(IpAddr::V4(ip)) => s.push_str(&format!("{ip}:")),
            None => {}
        }
        s.push_str(&format!("{}:{}", self.host_port, self.container_port));
        if self.protocol == Protocol::Udp {
            s.push_str("/udp");
        }
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// How to tell that a service is up, after `compose up -d`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HealthProbe {
    /// The container has a health check (declared in the compose file, running `command`
    /// inside the container): wait until `docker inspect` reports `healthy`.
    Container { command: Vec<String> },
    /// An HTTP GET from the host that must answer 2xx.
    Http { url: String },
    /// The TLS proxy (Caddy): any HTTP answer, whatever its status, from `url` on the host.
    /// With `sni`, the URL's host name is resolved to 127.0.0.1 and the certificate is not
    /// checked (a site of Caddy's internal CA): the answer proves its TLS site is up.
    Proxy { url: String, sni: Option<String> },
    /// No probe: the container must be running (not restarting).
    Running,
}

/// Why the stack cannot be rendered from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A value that would be written to a file where it cannot be represented safely.
    #[error("{field}: {reason}")]
    UnsafeValue { field: String, reason: String },
    /// The MySQL root password is generated by `create environment`; the stack needs it.
    #[error(
        "tracker.core.database.root_password is not set: it is generated and kept by \
         `create environment`; render from the stored environment, or set it in the file"
    )]
    MissingRootPassword,
}

impl crate::error_kind::Classify for StackError {
    /// A stack that cannot be rendered comes from values in the environment file.
    fn kind(&self) -> crate::error_kind::ErrorKind {
        match self {
            StackError::UnsafeValue { .. } | StackError::MissingRootPassword => {
                crate::error_kind::ErrorKind::InvalidConfig
            }
        }
    }
}

/// The domains the stack serves with Caddy's internal CA (local domains get no public
/// certificate: [`Domain::is_local`](crate::config::Domain::is_local)), each once, in the
/// Caddyfile's order. The one rule for it: `test` trusts that CA for exactly these domains.
pub fn internal_ca_domains(config: &EnvironmentConfig) -> Vec<String> {
    let plan = Plan::new(config);
    let mut out: Vec<String> = Vec::new();
    for site in caddy::sites(&plan) {
        if site.internal_ca && !out.contains(&site.domain) {
            out.push(site.domain);
        }
    }
    out
}

/// A DNS record the operator creates for the stack: `name` resolving to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    pub name: String,
    /// `A` (IPv4) or `AAAA` (IPv6).
    pub kind: &'static str,
    pub value: String,
    /// A `.local` (or other local) name: no public DNS; the operator's resolver or
    /// `/etc/hosts` must answer it.
    pub local: bool,
}

/// The DNS records the stack's domains need on the host at `ip`, each domain once, in the
/// environment file's order.
pub fn dns_records(config: &EnvironmentConfig, ip: std::net::IpAddr) -> Vec<DnsRecord> {
    let t = &config.tracker;
    let domains = t
        .udp_trackers
        .iter()
        .map(|u| u.domain.as_ref())
        .chain(t.http_trackers.iter().map(|h| h.domain.as_ref()))
        .chain([t.http_api.domain.as_ref()])
        .chain([t.health_check_api.domain.as_ref()])
        .chain([config.grafana.as_ref().and_then(|g| g.domain.as_ref())])
        .flatten();
    let mut out: Vec<DnsRecord> = Vec::new();
    for d in domains {
        if out.iter().any(|r| r.name == d.name()) {
            continue;
        }
        out.push(DnsRecord {
            name: d.name().to_string(),
            kind: if ip.is_ipv4() { "A" } else { "AAAA" },
            value: ip.to_string(),
            local: d.is_local(),
        });
    }
    out
}

/// What [`render`] would refuse in `config`, for validation: every value `.env` cannot hold
/// and a MySQL host that is not a service name, each at its field (checks of text, for any
/// configuration); then, with `render_too` and when there are none, the first refusal of the
/// other files (Caddyfile tokens, the backup job...), found by rendering: only for a
/// configuration that passed the environment file's other rules, which rendering assumes. The
/// MySQL root password `create environment` generates need not be set.
pub fn check_values(config: &EnvironmentConfig, render_too: bool) -> Vec<StackError> {
    let plan = Plan::new(config);
    let mut errors = Vec::new();
    if let Some(m) = plan.mysql()
        && let Err(e) = compose::check_mysql_host(&m.host)
    {
        errors.push(e);
    }
    errors.extend(env_file::check(&plan));
    if render_too && errors.is_empty() {
        let mut filled = config.clone();
        filled.fill_generated_secrets();
        if let Err(e) = render(&filled) {
            errors.push(e);
        }
    }
    errors
}

/// Renders every file, directory, image and service of the stack for `config`, which must have
/// been validated (`config::load`/`config::parse` do).
pub fn render(config: &EnvironmentConfig) -> Result<RenderedStack, StackError> {
    let plan = Plan::new(config);
    let mut files = vec![compose::file(&plan)?, env_file::file(&plan)?];
    files.push(tracker_toml::file(&plan)?);
    if plan.prometheus() {
        files.push(prometheus::file(&plan)?);
    }
    if plan.grafana() {
        files.extend(grafana::files(&plan));
    }
    if plan.tls() {
        files.push(caddy::file(&plan)?);
    }
    if let Some(b) = &config.backup {
        files.extend(backup::files(&plan, b)?);
    }
    let services = plan.services();
    Ok(RenderedStack {
        files,
        dirs: dirs(&plan),
        images: services.iter().map(|s| s.image.clone()).collect(),
        services,
    })
}

/// The configuration with its addresses parsed: what every file is derived from.
pub(crate) struct Plan<'a> {
    pub config: &'a EnvironmentConfig,
    pub udp: Vec<SocketAddr>,
    /// Each HTTP tracker's bind address and whether it is behind the TLS proxy.
    pub http: Vec<(SocketAddr, bool)>,
    pub api: SocketAddr,
    pub health: SocketAddr,
}

impl<'a> Plan<'a> {
    fn new(config: &'a EnvironmentConfig) -> Self {
        let t = &config.tracker;
        Self {
            config,
            udp: t
                .udp_trackers
                .iter()
                .map(|u| u.bind_address.socket_addr())
                .collect(),
            http: t
                .http_trackers
                .iter()
                .map(|h| (h.bind_address.socket_addr(), h.use_tls_proxy))
                .collect(),
            api: t.http_api.bind_address.socket_addr(),
            health: t.health_check_api.bind_address.socket_addr(),
        }
    }

    pub fn mysql(&self) -> Option<&'a MysqlDatabase> {
        match &self.config.tracker.core.database {
            Database::Mysql(m) => Some(m),
            Database::Sqlite3(_) => None,
        }
    }

    pub fn prometheus(&self) -> bool {
        self.config.prometheus.is_some()
    }

    pub fn grafana(&self) -> bool {
        self.config.grafana.is_some()
    }

    /// Whether any service is behind the TLS proxy (Caddy runs).
    pub fn tls(&self) -> bool {
        self.config.uses_tls_proxy()
    }

    pub fn api_tls(&self) -> bool {
        self.config.tracker.http_api.use_tls_proxy
    }

    pub fn grafana_tls(&self) -> bool {
        self.config
            .grafana
            .as_ref()
            .is_some_and(|g| g.use_tls_proxy)
    }

    /// Whether the tracker must take the peer address from `X-Forwarded-For`: some HTTP
    /// tracker is behind the proxy.
    pub fn on_reverse_proxy(&self) -> bool {
        self.http.iter().any(|(_, tls)| *tls)
    }

    /// Whether the tracker container joins the proxy network.
    pub fn tracker_behind_proxy(&self) -> bool {
        self.on_reverse_proxy()
            || self.api_tls()
            || self.config.tracker.health_check_api.use_tls_proxy
    }

    /// The enabled services, in a stable order.
    pub fn enabled(&self) -> Vec<Service> {
        let mut out = vec![Service::Tracker];
        if self.mysql().is_some() {
            out.push(Service::Mysql);
        }
        if self.prometheus() {
            out.push(Service::StatsExporter);
            out.push(Service::Prometheus);
        }
        if self.grafana() {
            out.push(Service::Grafana);
        }
        if self.tls() {
            out.push(Service::Caddy);
        }
        out
    }

    pub fn image(&self, service: Service) -> String {
        self.config.image(service.image_service())
    }

    /// The ports a service publishes on the host (the exposure rules live here).
    pub fn ports(&self, service: Service) -> Vec<PublishedPort> {
        match service {
            Service::Tracker => {
                let mut ports: Vec<PublishedPort> = self
                    .udp
                    .iter()
                    .map(|a| PublishedPort::at(Protocol::Udp, *a))
                    .collect();
                for (addr, tls) in &self.http {
                    if !tls {
                        ports.push(PublishedPort::at(Protocol::Tcp, *addr));
                    }
                }
                if !self.api_tls() {
                    ports.push(PublishedPort::at(Protocol::Tcp, self.api));
                }
                // The health check API is never published.
                ports
            }
            // MySQL and the exporter are never published.
            Service::Mysql | Service::StatsExporter => Vec::new(),
            Service::Prometheus => vec![PublishedPort {
                protocol: Protocol::Tcp,
                host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                host_port: prometheus::PORT,
                container_port: prometheus::PORT,
            }],
            Service::Grafana => {
                if self.grafana_tls() {
                    Vec::new()
                } else {
                    vec![PublishedPort {
                        protocol: Protocol::Tcp,
                        host_ip: None,
                        host_port: grafana::HOST_PORT,
                        container_port: grafana::PORT,
                    }]
                }
            }
            Service::Caddy => vec![
                PublishedPort::all(Protocol::Tcp, 80),
                PublishedPort::all(Protocol::Tcp, 443),
                PublishedPort::all(Protocol::Udp, 443),
            ],
        }
    }

    /// The health check of the tracker's container: its own probe binary against the health
    /// check API, from inside the container.
    pub fn tracker_health_command(&self) -> Vec<String> {
        vec![
            "/usr/bin/http_health_check".to_string(),
            format!("http://{}/health_check", local_address(self.health)),
        ]
    }

    pub fn mysql_health_command(&self) -> Vec<String> {
        let mut cmd: Vec<String> = ["mysqladmin", "ping", "-h", "127.0.0.1"]
            .map(String::from)
            .to_vec();
        if let Some(m) = self.mysql()
            && m.port != compose::MYSQL_DEFAULT_PORT
        {
            cmd.push("-P".into());
            cmd.push(m.port.to_string());
        }
        cmd.push("--silent".into());
        cmd
    }

    /// Caddy is ready when a site of its internal CA completes a TLS handshake (those
    /// certificates are made at start), else when it answers plain HTTP on port 80 (a site with
    /// a Let's Encrypt certificate may wait for DNS: `test` says so, not `run`).
    fn caddy_health(&self) -> HealthProbe {
        match caddy::sites(self).into_iter().find(|s| s.internal_ca) {
            Some(site) => HealthProbe::Proxy {
                url: format!("https://{}/", site.domain),
                sni: Some(site.domain),
            },
            None => HealthProbe::Proxy {
                url: "http://127.0.0.1:80/".into(),
                sni: None,
            },
        }
    }

    fn health(&self, service: Service) -> HealthProbe {
        match service {
            Service::Tracker => HealthProbe::Container {
                command: self.tracker_health_command(),
            },
            Service::Mysql => HealthProbe::Container {
                command: self.mysql_health_command(),
            },
            Service::Prometheus => HealthProbe::Http {
                url: format!("http://127.0.0.1:{}/-/ready", prometheus::PORT),
            },
            Service::Grafana if !self.grafana_tls() => HealthProbe::Http {
                url: format!("http://127.0.0.1:{}/api/health", grafana::HOST_PORT),
            },
            Service::Caddy => self.caddy_health(),
            Service::Grafana => HealthProbe::Running,
            Service::StatsExporter => HealthProbe::Container {
                command: monitoring::exporter_health_command(),
            },
        }
    }

    fn services(&self) -> Vec<ServiceInfo> {
        self.enabled()
            .into_iter()
            .map(|s| ServiceInfo {
                name: s,
                image: self.image(s),
                ports: self.ports(s),
                health: self.health(s),
            })
            .collect()
    }
}

/// The host address Docker publishes a bind address on: `None` (every interface) for the
/// unspecified address, else the address itself.
pub fn host_ip(addr: SocketAddr) -> Option<IpAddr> {
    (!addr.ip().is_unspecified()).then(|| addr.ip())
}

/// Where a service that is published or proxied binds inside its container: the unspecified
/// address of its family and the same port. The container has none of the host's addresses,
/// and a loopback bind there is out of reach of Docker's port mapping and of the proxy.
pub(crate) fn in_container(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, addr.port())
}

/// The address to reach a socket bound at `addr` from inside the same container.
fn local_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() || ip.is_loopback() => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(ip) if ip.is_unspecified() || ip.is_loopback() => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn dirs(plan: &Plan<'_>) -> Vec<StackDir> {
    let root = |path: PathBuf, mode: u32| StackDir {
        path,
        uid: 0,
        gid: 0,
        mode,
    };
    let owned = |path: PathBuf, uid: u32, mode: u32| StackDir {
        path,
        uid,
        gid: uid,
        mode,
    };
    let mut d = vec![
        root(PathBuf::from(layout::STACK_DIR), 0o755),
        root(PathBuf::from(layout::STORAGE_DIR), 0o755),
        root(layout::storage("tracker"), 0o755),
        // The tracker image's entry script sets 2770 on its data and log directories at each
        // start; the same mode here keeps them stable.
        owned(layout::tracker_etc(), layout::TRACKER_UID, 0o750),
        owned(layout::tracker_lib(), layout::TRACKER_UID, 0o2770),
        owned(
            layout::tracker_lib().join("database"),
            layout::TRACKER_UID,
            0o2770,
        ),
        owned(layout::tracker_log(), layout::TRACKER_UID, 0o2770),
    ];
    if plan.mysql().is_some() {
        d.push(root(layout::storage("mysql"), 0o755));
        d.push(owned(layout::mysql_data(), layout::MYSQL_UID, 0o750));
    }
    if plan.prometheus() {
        d.push(root(layout::storage("prometheus"), 0o755));
        d.push(owned(
            layout::prometheus_etc(),
            layout::PROMETHEUS_UID,
            0o750,
        ));
        d.push(owned(
            layout::prometheus_data(),
            layout::PROMETHEUS_UID,
            0o750,
        ));
    }
    if plan.grafana() {
        d.push(root(layout::storage("grafana"), 0o755));
        d.push(owned(layout::grafana_data(), layout::GRAFANA_UID, 0o750));
        let prov = layout::grafana_provisioning();
        d.push(root(prov.clone(), 0o755));
        d.push(root(prov.join("datasources"), 0o755));
        d.push(root(prov.join("dashboards"), 0o755));
        d.push(root(prov.join(grafana::DASHBOARDS_SUBDIR), 0o755));
    }
    if plan.tls() {
        d.push(root(layout::storage("caddy"), 0o755));
        d.push(root(layout::caddy_etc(), 0o755));
        // Certificates and their private keys.
        d.push(root(layout::caddy_data(), 0o700));
        d.push(root(layout::caddy_config(), 0o700));
    }
    let bin_dir = Path::new(layout::BACKUP_SCRIPT)
        .parent()
        .expect("the script has a directory")
        .to_path_buf();
    if plan.prometheus() {
        // The deployer's binary, for the exporter (placed by `release`).
        d.push(root(bin_dir.clone(), 0o755));
        d.push(root(PathBuf::from(layout::DEPLOYER_BIN_DIR), 0o755));
    }
    if plan.config.backup.is_some() {
        if !plan.prometheus() {
            d.push(root(bin_dir, 0o755));
        }
        d.push(root(PathBuf::from(layout::BACKUP_DIR), 0o700));
    }
    d
}
