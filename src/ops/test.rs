//! `test`: checks from the operator's machine that the deployed tracker works, with the protocol
//! probes of [`crate::probe`]: every UDP tracker (BEP 15 connect, announce, scrape), every HTTP
//! tracker (announce and scrape, bencoded, compact peers), the API's health and statistics (with
//! the admin token), the health check API where it is reachable, the announces counted in
//! the API's statistics, and monitoring ([`super::monitoring`]: Prometheus's targets and
//! Grafana's provisioning, through forwards over SSH; `--skip` leaves one out).
//!
//! The addresses come from the stack model ([`crate::stack::endpoints`]) and the host's IP in the
//! state. Domains are answered with that IP (no DNS change needed) unless `use_dns` is set.
//!
//! The environment's lock is held only while the state is read, and nothing is written: the
//! state is the same after a test.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use super::OpsError;
use super::host::HostOnDemand;
use crate::config::EnvironmentConfig;
use crate::host::{Host, tunnel};
use crate::probe::{self, HttpOptions, ProbeOptions, ProbeReport, TlsTrust, UdpRetry, UdpTarget};
use crate::stack::{self, layout};
use crate::state::{DataDir, EnvironmentState, Lifecycle};
use crate::tasks::caddy_ca;

/// How `test` checks.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The limit of one request: an HTTP request, or a UDP request with its retransmissions.
    pub timeout: Duration,
    /// A PEM file of extra trusted roots, e.g. Caddy's internal CA for `.local` domains.
    pub ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate (explicit opt-in; said in the output).
    pub insecure: bool,
    /// Resolve domains through DNS instead of answering them with the host's IP.
    pub use_dns: bool,
    /// Monitoring checks to leave out (`--skip`).
    pub skip: Vec<super::monitoring::MonitoringCheck>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            ca_cert: None,
            insecure: false,
            use_dns: false,
            skip: Vec::new(),
        }
    }
}

/// What `test` found.
#[derive(Debug, Serialize)]
pub struct Tested {
    pub name: String,
    /// The host's IP address, from the state.
    pub host: String,
    pub lifecycle: Lifecycle,
    /// Every check passed.
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    /// Domains answered with the host's IP instead of DNS.
    pub resolve: BTreeMap<String, IpAddr>,
    /// Which TLS certificates were accepted: `system`, `system+ca-cert` or `insecure`.
    pub tls_trust: &'static str,
    /// What was not checked and why, and other things to know about the results.
    pub notes: Vec<String>,
    /// `results`: one entry per check, in order (see [`probe::CheckResult`]'s JSON).
    #[serde(flatten)]
    pub report: ProbeReport,
    pub elapsed_ms: u64,
}

impl Tested {
    /// The error to exit with when a check failed.
    pub fn failure(&self) -> Option<OpsError> {
        if self.ok {
            return None;
        }
        let mut next = format!(
            "Look at each failed check's detail, at `torrust-tracker-deployer status {name}`, \
             and at the tracker's logs on the host (`docker compose logs tracker` in {dir})",
            name = self.name,
            dir = layout::STACK_DIR
        );
        if self.lifecycle < Lifecycle::Running {
            next.push_str(&format!(
                ". The environment is '{}': the tracker may not be running yet \
                 (`torrust-tracker-deployer deploy {}` releases and starts it)",
                self.lifecycle, self.name
            ));
        }
        Some(OpsError::TestFailed {
            env: self.name.clone(),
            failed: self.failed,
            total: self.report.results.len(),
            next,
        })
    }
}

/// What to check, derived from the configuration and the host's IP.
#[derive(Debug)]
pub struct Plan {
    pub endpoints: probe::Endpoints,
    /// Every domain of the endpoints, answered with the host's IP.
    pub resolve: BTreeMap<String, IpAddr>,
    pub notes: Vec<String>,
}

/// Runs the whole test of `env`'s deployment. Returns the report whether or not the checks
/// passed ([`Tested::failure`] says); fails only when there is nothing to test.
pub async fn test(
    data: &DataDir,
    env: &str,
    options: &TestOptions,
    lock_wait: Duration,
) -> Result<Tested, OpsError> {
    // The lock only while reading: a consistent state, not one half-written by another command.
    let state = {
        let _lock = data.lock(env, "test", lock_wait)?;
        data.load(env)?
    };
    test_with(data, &state, options, None).await
}

/// [`test`](fn@test) of a state already loaded. `host`: a connection to reuse (deploy's) for
/// what goes through SSH (the API, monitoring, Caddy's root CA); `None` opens one at the first
/// such use, shared by the rest.
pub async fn test_with(
    data: &DataDir,
    state: &EnvironmentState,
    options: &TestOptions,
    host: Option<&dyn Host>,
) -> Result<Tested, OpsError> {
    let started = Instant::now();
    let env = state.name.as_str();
    let ip = host_ip(state)?;
    let mut tls = tls_trust(options)?;
    let mut plan = plan(&state.config, ip)?;
    let hosts = HostOnDemand::new(data, state, host);
    let host_ca = trust_host_ca(data, state, &hosts, &mut tls, &mut plan.notes).await;
    let resolve = resolve_overrides(options, &mut plan, ip);
    plan.notes.extend(tls_notes(state, &tls));
    if state.lifecycle < Lifecycle::Running {
        plan.notes.push(format!(
            "the environment is '{}', not 'running': the checks pass only if the tracker was \
             started (`torrust-tracker-deployer deploy {env}`)",
            state.lifecycle
        ));
    }
    let opts = ProbeOptions {
        http: HttpOptions {
            timeout: options.timeout,
            tls: tls.clone(),
            resolve: resolve.clone(),
        },
        udp: udp_retry(options.timeout),
    };
    tracing::info!(
        "testing environment '{env}' at {ip}: {} UDP tracker(s), {} HTTP tracker(s), the API{}",
        plan.endpoints.udp_trackers.len(),
        plan.endpoints.http_trackers.len(),
        if plan.endpoints.health_check.is_some() {
            ", the health check API"
        } else {
            ""
        }
    );
    tracing::debug!("endpoints: {:?}; options: {opts:?}", plan.endpoints);
    let mut report = run_probes(state, &hosts, &mut plan, &opts).await?;
    // Monitoring, through forwards over SSH: after the announces, so the statistics moved.
    let monitoring =
        super::monitoring::checks(&hosts, state, &opts, &options.skip, &mut plan.notes).await;
    report.results.extend(monitoring);
    hosts.close().await;
    for r in &report.results {
        tracing::debug!("{r}");
    }
    let failed = report.failures().count();
    Ok(Tested {
        name: env.to_string(),
        host: ip.to_string(),
        lifecycle: state.lifecycle,
        ok: report.ok(),
        passed: report.results.len() - failed,
        failed,
        resolve,
        tls_trust: match tls {
            TlsTrust::System => "system",
            TlsTrust::ExtraRootPem(_) if host_ca => "system+host-ca",
            TlsTrust::ExtraRootPem(_) => "system+ca-cert",
            TlsTrust::InsecureSkipVerify => "insecure",
        },
        notes: plan.notes,
        report,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Where `test` reaches the API on the host's side when it goes through the SSH connection
/// (ADR 31): whenever it is plain HTTP (not behind the TLS proxy), wherever it is published, so
/// that the admin token never crosses the network in clear. `127.0.0.1` for a bind on every
/// interface, else the bind's own address.
pub fn api_through_ssh(config: &EnvironmentConfig) -> Option<(String, u16)> {
    let api = &config.tracker.http_api;
    if api.use_tls_proxy {
        return None;
    }
    let addr = api.bind_address.socket_addr();
    let ip = stack::host_ip(addr).map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string());
    Some((ip, addr.port()))
}

/// Runs the probes of the plan; the API's through the SSH connection when
/// [`api_through_ssh`] says so, the rest directly.
async fn run_probes(
    state: &EnvironmentState,
    hosts: &HostOnDemand<'_>,
    plan: &mut Plan,
    opts: &ProbeOptions,
) -> Result<ProbeReport, OpsError> {
    let Some((address, port)) = api_through_ssh(&state.config) else {
        return Ok(probe::run_tracker_test(&plan.endpoints, opts).await);
    };
    plan.notes.push(format!(
        "the API was reached through the SSH connection, at {address}:{port} on the host: its \
         admin token did not cross the network"
    ));
    let host = hosts.get().await?;
    api_forwarded(host, &address, port, &plan.endpoints, opts, &mut plan.notes).await
}

/// The whole tracker test with the API's URL replaced by a loopback port forwarded through
/// `host` to `address:port`; the results name the API by its address on the host.
async fn api_forwarded(
    host: &dyn Host,
    address: &str,
    port: u16,
    endpoints: &probe::Endpoints,
    opts: &ProbeOptions,
    notes: &mut Vec<String>,
) -> Result<ProbeReport, OpsError> {
    let on_host = match address.parse::<IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{address}:{port}"),
    };
    // Through a forward, a refused connection shows as one closed after it was accepted: say
    // what the host saw.
    if let Err(e) = host.connect_tcp(address, port).await {
        notes.push(format!(
            "the host could not connect to the API at {on_host}: {e}; is the tracker running?"
        ));
    }
    let (local, mut report) = tunnel::while_forwarding(host, address, port, async |local| {
        let mut e = endpoints.clone();
        if let Some((url, _)) = &mut e.api {
            *url = Url::parse(&format!("http://{local}/")).expect("a loopback URL");
        }
        (local, probe::run_tracker_test(&e, opts).await)
    })
    .await
    .map_err(OpsError::io(
        "cannot listen on 127.0.0.1 for the forward to the tracker API",
    ))?;
    let (from, to) = (format!("http://{local}/"), format!("http://{on_host}/"));
    for result in &mut report.results {
        result.target = result.target.replace(&from, &to);
    }
    Ok(report)
}

/// `.local` domains are served with Caddy's internal CA: trusts its root as the host has it,
/// read over SSH (the host key is pinned), unless --ca-cert or --insecure says otherwise.
/// Returns whether it did; says what happened in `notes`.
async fn trust_host_ca(
    data: &DataDir,
    state: &EnvironmentState,
    hosts: &HostOnDemand<'_>,
    tls: &mut TlsTrust,
    notes: &mut Vec<String>,
) -> bool {
    let local = local_tls_domains(&state.config);
    if !matches!(tls, TlsTrust::System) || local.is_empty() {
        return false;
    }
    match fetch_host_ca(data, state, hosts).await {
        Ok(path) => {
            notes.push(format!(
                "{} use(s) Caddy's internal CA: its root was read from the host over SSH and \
                 trusted for this test (saved in {})",
                local.join(", "),
                path.display()
            ));
            *tls = TlsTrust::ExtraRootPem(path);
            true
        }
        Err(why) => {
            notes.push(format!(
                "could not read the root of Caddy's internal CA from the host: {why}"
            ));
            false
        }
    }
}

/// The names the checks resolve without DNS: the plan's domains answered with the host's IP,
/// or none with `--use-dns`. Says which in the plan's notes.
fn resolve_overrides(
    options: &TestOptions,
    plan: &mut Plan,
    ip: IpAddr,
) -> BTreeMap<String, IpAddr> {
    if plan.resolve.is_empty() {
        return BTreeMap::new();
    }
    if options.use_dns {
        plan.notes.push(format!(
            "--use-dns: the domains ({}) were resolved through DNS",
            names(&plan.resolve)
        ));
        return BTreeMap::new();
    }
    plan.notes.push(format!(
        "the domains ({}) were answered with the host's IP {ip}, not DNS; pass --use-dns to test \
         the DNS records too",
        names(&plan.resolve)
    ));
    plan.resolve.clone()
}

/// Where Caddy keeps the root certificate of its internal CA, on the host.
fn caddy_root_on_host() -> PathBuf {
    layout::caddy_data().join("caddy/pki/authorities/local/root.crt")
}

/// Reads the root of Caddy's internal CA from the host and saves it in the environment's
/// directory.
async fn fetch_host_ca(
    data: &DataDir,
    state: &EnvironmentState,
    hosts: &HostOnDemand<'_>,
) -> Result<PathBuf, String> {
    const WAIT: Duration = Duration::from_secs(20);
    let remote = caddy_root_on_host().to_string_lossy().into_owned();
    let host = hosts.get().await.map_err(|e| e.to_string())?;
    let pem = caddy_ca::read_root_ca(host, &remote, WAIT, Duration::from_secs(1))
        .await
        .map_err(|e| e.to_string())?;
    let local = data.env_dir(&state.name).join("caddy-root.crt");
    crate::state::fsutil::write_atomic(&local, &pem, 0o644)
        .map_err(|e| format!("cannot save it to {}: {e}", local.display()))?;
    Ok(local)
}

fn names(resolve: &BTreeMap<String, IpAddr>) -> String {
    resolve.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The host's IP, or why there is nothing to test.
fn host_ip(state: &EnvironmentState) -> Result<IpAddr, OpsError> {
    let env = &state.name;
    if state.lifecycle == Lifecycle::Destroyed {
        return Err(OpsError::Refused(format!(
            "environment '{env}' is destroyed: there is no tracker to test. Create a host with \
             `torrust-tracker-deployer provision {env}` and start the tracker with \
             `torrust-tracker-deployer deploy {env}`"
        )));
    }
    if state.lifecycle == Lifecycle::Stopped {
        return Err(OpsError::Refused(format!(
            "environment '{env}' is stopped (`stop` stopped its whole stack): there is no              tracker to test. Start it with `torrust-tracker-deployer start {env}`, then test again"
        )));
    }
    let Some(host) = state.host.as_ref().filter(|h| !h.ip.is_empty()) else {
        return Err(OpsError::Refused(format!(
            "environment '{env}' has no host yet (state '{}'): there is no tracker to test. \
             Create one with `torrust-tracker-deployer provision {env}` (or adopt one with \
             `register`), then start the tracker with `torrust-tracker-deployer deploy {env}`",
            state.lifecycle
        )));
    };
    host.ip.parse().map_err(|_| {
        OpsError::Failed(format!(
            "the state of environment '{env}' records the host address {:?}, which is not an IP \
             address",
            host.ip
        ))
    })
}

fn tls_trust(options: &TestOptions) -> Result<TlsTrust, OpsError> {
    match (&options.ca_cert, options.insecure) {
        (Some(_), true) => Err(OpsError::Refused(
            "--ca-cert and --insecure exclude each other: --ca-cert verifies the certificates \
             with an extra root, --insecure does not verify them at all"
                .into(),
        )),
        (Some(path), false) => {
            std::fs::File::open(path).map_err(|e| {
                OpsError::Refused(format!(
                    "cannot read the CA certificate given with --ca-cert, {}: {e}",
                    path.display()
                ))
            })?;
            Ok(TlsTrust::ExtraRootPem(path.clone()))
        }
        (None, true) => Ok(TlsTrust::InsecureSkipVerify),
        (None, false) => Ok(TlsTrust::System),
    }
}

/// Each UDP request waits `timeout` in all: three sends, a third of it apart.
fn udp_retry(timeout: Duration) -> UdpRetry {
    UdpRetry {
        timeout: (timeout / 3).max(Duration::from_millis(100)),
        tries: 3,
        backoff: false,
    }
}

/// A domain without its trailing dot, lowercase.
fn bare(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// The TLS-proxied services' domains whose certificate comes from Caddy's internal CA: the
/// stack's own rule, so `test` trusts exactly what was deployed.
fn local_tls_domains(config: &EnvironmentConfig) -> Vec<String> {
    stack::internal_ca_domains(config)
}

fn tls_notes(state: &EnvironmentState, tls: &TlsTrust) -> Vec<String> {
    let mut notes = Vec::new();
    let local = local_tls_domains(&state.config);
    match tls {
        TlsTrust::InsecureSkipVerify => notes.push(
            "--insecure: TLS certificates were NOT verified; a passing HTTPS check proves the \
             service answers, not that its certificate is valid"
                .into(),
        ),
        TlsTrust::System if !local.is_empty() => {
            let (user, ip, port) = match &state.host {
                Some(h) => (
                    state.config.ssh_credentials.username.as_str(),
                    h.ip.as_str(),
                    h.ssh_port,
                ),
                None => ("USER", "HOST", 22),
            };
            notes.push(format!(
                "{} use(s) Caddy's internal CA, which this machine does not trust: copy its root \
                 (`ssh -p {port} {user}@{ip} sudo cat {} > caddy-root.crt`) and pass \
                 `--ca-cert caddy-root.crt`, or pass --insecure to skip the verification",
                local.join(", "),
                caddy_root_on_host().display()
            ));
        }
        _ => {}
    }
    notes
}

/// Converts the stack's public addresses into the probes' endpoints.
pub fn plan(config: &EnvironmentConfig, ip: IpAddr) -> Result<Plan, OpsError> {
    let public = stack::endpoints(config, ip);
    let bad = |what: &str, url: &str, detail: String| {
        OpsError::Failed(format!(
            "cannot test the {what} at {url}: {detail} (is the environment's configuration \
             valid? `torrust-tracker-deployer show` prints it)"
        ))
    };
    let udp_trackers = public
        .udp_announce
        .iter()
        .map(|u| UdpTarget::parse(u).map_err(|e| bad("UDP tracker", u, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let base = |what: &str, url: &str, suffix: &str| -> Result<Url, OpsError> {
        let mut parsed = Url::parse(url).map_err(|e| bad(what, url, e.to_string()))?;
        let path = parsed.path().to_string();
        let prefix = path
            .strip_suffix(suffix)
            .ok_or_else(|| bad(what, url, format!("the path does not end with {suffix}")))?;
        parsed.set_path(prefix);
        Ok(parsed)
    };
    let http_trackers = public
        .http_announce
        .iter()
        .map(|u| base("HTTP tracker", u, "announce"))
        .collect::<Result<Vec<_>, _>>()?;
    let api = base("tracker API", &public.api, "api")?;
    let health_check = public
        .health_check
        .as_deref()
        .map(|u| base("health check API", u, "health_check"))
        .transpose()?;
    let grafana = public
        .grafana
        .as_deref()
        .map(|u| Url::parse(u).map_err(|e| bad("Grafana", u, e.to_string())))
        .transpose()?;

    let mut resolve = BTreeMap::new();
    for target in &udp_trackers {
        if target.host.parse::<IpAddr>().is_err() {
            resolve.insert(bare(&target.host), ip);
        }
    }
    for url in http_trackers
        .iter()
        .chain([&api])
        .chain(health_check.iter())
        .chain(grafana.iter())
    {
        if let Some(d) = url.domain() {
            resolve.insert(bare(d), ip);
        }
    }

    let mut notes = Vec::new();
    if health_check.is_none() {
        notes.push(format!(
            "health check API not checked from here: it listens on {} inside the tracker's \
             container and is never published; the tracker's health is shown by the `API \
             health` and `HTTP tracker health` checks (to check it from here, put it behind the \
             TLS proxy: `tracker.health_check_api.use_tls_proxy` with a `domain`)",
            config.tracker.health_check_api.bind_address
        ));
    }
    if udp_trackers.is_empty() && http_trackers.is_empty() {
        notes.push("the configuration has no UDP or HTTP tracker: no announce was made".into());
    }
    Ok(Plan {
        endpoints: probe::Endpoints {
            udp_trackers,
            http_trackers,
            api: Some((api, config.tracker.http_api.admin_token.clone())),
            health_check,
            grafana,
        },
        resolve,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::config;

    const TOKEN: &str = "Adm1n-T0ken-for-ops-test";

    fn minimal() -> Value {
        config::minimal_test_file("ops-test", TOKEN)
    }

    fn config(v: &Value) -> EnvironmentConfig {
        match config::parse(&v.to_string(), Path::new("/")) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("test config is invalid: {e}: {:#?}", e.problems()),
        }
    }

    const IP: &str = "203.0.113.7";

    #[test]
    fn plain_endpoints_use_the_host_ip_and_bind_ports() {
        let p = plan(&config(&minimal()), IP.parse().unwrap()).unwrap();
        let e = &p.endpoints;
        assert_eq!(
            e.udp_trackers,
            [UdpTarget::parse("203.0.113.7:6969").unwrap()]
        );
        assert_eq!(e.http_trackers[0].as_str(), "http://203.0.113.7:7070/");
        let (api, token) = e.api.as_ref().unwrap();
        assert_eq!(api.as_str(), "http://203.0.113.7:1212/");
        assert_eq!(token.expose(), TOKEN);
        assert_eq!(e.health_check, None);
        assert!(p.resolve.is_empty());
        assert!(
            p.notes[0].contains("health check API not checked")
                && p.notes[0].contains("127.0.0.1:1313"),
            "{:?}",
            p.notes
        );
        // The probes' own URLs: /announce, /api/health_check below these bases.
        let checks = probe::health_checks(e);
        let targets: Vec<String> = checks.iter().map(probe::Check::target).collect();
        assert_eq!(
            targets,
            [
                "http://203.0.113.7:7070/health_check",
                "http://203.0.113.7:1212/api/health_check"
            ]
        );
        assert!(!format!("{p:?}").contains(TOKEN));
    }

    #[test]
    fn tls_services_are_https_on_their_domain_resolved_to_the_host() {
        let mut v = minimal();
        v["tracker"]["udp_trackers"] =
            json!([{ "bind_address": "0.0.0.0:6969", "domain": "udp.example.com" }]);
        v["tracker"]["http_trackers"] = json!([
            { "bind_address": "0.0.0.0:7070", "domain": "tracker.local", "use_tls_proxy": true }
        ]);
        v["tracker"]["http_api"] = json!({
            "bind_address": "0.0.0.0:1212", "admin_token": TOKEN,
            "domain": "api.example.com.", "use_tls_proxy": true
        });
        v["tracker"]["health_check_api"] = json!({
            "bind_address": "0.0.0.0:1313", "domain": "health.local", "use_tls_proxy": true
        });
        v["prometheus"] = json!({ "scrape_interval_in_secs": 15 });
        v["grafana"] = json!({
            "admin_user": "admin", "admin_password": "Grafana-Pass-0123",
            "domain": "grafana.local", "use_tls_proxy": true
        });
        v["https"] = json!({ "admin_email": "admin@example.com" });
        let c = config(&v);
        let ip: IpAddr = IP.parse().unwrap();
        let p = plan(&c, ip).unwrap();
        let e = &p.endpoints;
        assert_eq!(e.udp_trackers[0].to_string(), "udp://udp.example.com:6969");
        assert_eq!(e.http_trackers[0].as_str(), "https://tracker.local/");
        assert_eq!(e.http_trackers.len(), 1);
        // Behind the TLS proxy: reached directly, over HTTPS, not through SSH.
        assert_eq!(api_through_ssh(&c), None);
        assert_eq!(
            e.api.as_ref().unwrap().0.as_str(),
            "https://api.example.com/"
        );
        assert_eq!(
            e.health_check.as_ref().map(Url::as_str),
            Some("https://health.local/")
        );
        assert_eq!(
            e.grafana.as_ref().map(Url::as_str),
            Some("https://grafana.local/")
        );
        let names: Vec<&str> = p.resolve.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "api.example.com",
                "grafana.local",
                "health.local",
                "tracker.local",
                "udp.example.com"
            ]
        );
        assert!(p.resolve.values().all(|v| *v == ip));
        assert!(p.notes.is_empty(), "{:?}", p.notes);

        assert_eq!(
            local_tls_domains(&c),
            ["tracker.local", "health.local", "grafana.local"]
        );
        let mut state = EnvironmentState::new(c, None);
        state.host = Some(crate::state::HostRecord {
            ip: IP.into(),
            ssh_port: 2222,
            host_key: None,
            instance: None,
            profile: None,
            registered: true,
            cloud_init: None,
        });
        let notes = tls_notes(&state, &TlsTrust::System);
        assert!(
            notes[0].contains("tracker.local, health.local, grafana.local"),
            "{notes:?}"
        );
        assert!(
            notes[0].contains("--ca-cert") && notes[0].contains("--insecure"),
            "{notes:?}"
        );
        assert!(
            notes[0].contains("ssh -p 2222 torrust@203.0.113.7"),
            "{notes:?}"
        );
        assert!(tls_notes(&state, &TlsTrust::ExtraRootPem("ca.pem".into())).is_empty());
        assert!(tls_notes(&state, &TlsTrust::InsecureSkipVerify)[0].contains("NOT verified"));
    }

    #[test]
    fn plain_http_api_is_reached_through_ssh_at_its_host_address() {
        let mut v = minimal();
        for (bind, on_host) in [
            ("0.0.0.0:1212", "127.0.0.1"),
            ("127.0.0.1:1212", "127.0.0.1"),
            ("10.1.2.3:1414", "10.1.2.3"),
        ] {
            v["tracker"]["http_api"]["bind_address"] = json!(bind);
            let port = bind.rsplit_once(':').unwrap().1.parse().unwrap();
            assert_eq!(
                api_through_ssh(&config(&v)),
                Some((on_host.to_string(), port)),
                "{bind}"
            );
        }
    }

    #[test]
    fn no_host_and_destroyed_are_refused_naming_provision_and_deploy() {
        let mut state = EnvironmentState::new(config(&minimal()), None);
        let e = host_ip(&state).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(
            m.contains("provision ops-test") && m.contains("deploy ops-test"),
            "{m}"
        );
        state.lifecycle = Lifecycle::Destroyed;
        assert_eq!(host_ip(&state).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_stopped_stack_is_refused_naming_start() {
        let mut state = EnvironmentState::new(config(&minimal()), None);
        state.lifecycle = Lifecycle::Stopped;
        let e = host_ip(&state).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(m.contains("is stopped"), "{m}");
        assert!(m.contains("torrust-tracker-deployer start ops-test"), "{m}");
    }

    #[test]
    fn tls_options_exclude_each_other_and_need_a_readable_file() {
        let both = TestOptions {
            ca_cert: Some("/nonexistent.pem".into()),
            insecure: true,
            ..TestOptions::default()
        };
        assert_eq!(tls_trust(&both).unwrap_err().exit_code(), 2);
        let missing = TestOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..TestOptions::default()
        };
        let e = tls_trust(&missing).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert_eq!(
            tls_trust(&TestOptions::default()).unwrap(),
            TlsTrust::System
        );
    }

    #[test]
    fn udp_waits_add_up_to_the_timeout() {
        let r = udp_retry(Duration::from_secs(6));
        assert_eq!((r.timeout, r.tries), (Duration::from_secs(2), 3));
        assert_eq!(
            udp_retry(Duration::from_millis(1)).timeout,
            Duration::from_millis(100)
        );
    }
}
