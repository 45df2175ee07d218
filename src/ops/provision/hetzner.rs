//! Provision's steps for a Hetzner Cloud server: connect (the token is checked), ensure the SSH
//! key, ensure the firewall, create the server, start it, record its addresses. Every object
//! carries the environment's id as a label, and every step first looks for it by that label,
//! so a run killed at any moment is resumed by running provision again: it finds the key,
//! firewall and server it made instead of making a second one.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{InstanceUp, ProvisionError, Wanted, report};
use crate::config::HetznerProvider;
use crate::hetzner::api::{FirewallRef, Labels, NewServer, Resource, Rule, Server};
use crate::hetzner::{ENV_LABEL, HetznerClient, HetznerError, ID_LABEL, resolve_token};
use crate::ops::ownership::ForeignError;
use crate::ops::steps::{Done, StepRun};
use crate::ops::{OpsError, StepReport, lxd_host};
use crate::stack::Protocol;
use crate::state::{EnvironmentState, HetznerRecord, HostRecord};

/// The names of the Hetzner steps, as recorded in the state and reported.
pub(super) mod hz_step {
    pub const CONNECT: &str = "connect to Hetzner Cloud";
    pub const SSH_KEY: &str = "ensure SSH key";
    pub const FIREWALL: &str = "ensure firewall";
    pub const CREATE_SERVER: &str = "create server";
    pub const START_SERVER: &str = "start server";
    pub const ADDRESSES: &str = "record addresses";
}

/// How long one action (create, power on, firewall change) may take.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

type W<'a, 'b> = &'a Wanted<'b, HetznerProvider>;

/// The labels every object provision makes carries.
pub(crate) fn labels(env: &str, id: &str) -> Labels {
    let env: String = env.chars().take(63).collect();
    Labels::from([
        (ID_LABEL.to_string(), id.to_string()),
        (ENV_LABEL.to_string(), env),
    ])
}

/// The label selector of the environment's objects.
pub(crate) fn selector(id: &str) -> String {
    format!("{ID_LABEL}={id}")
}

/// A client of the API with the environment's token (the file's, else `HCLOUD_TOKEN`).
pub(crate) fn client(p: &HetznerProvider) -> Result<HetznerClient, HetznerError> {
    HetznerClient::new(resolve_token(&p.api_token)?)
}

/// The host record of the server; the address and host key are filled in later.
pub(super) fn host_record(w: W<'_, '_>) -> HostRecord {
    HostRecord {
        ip: String::new(),
        ssh_port: w.creds.port.get(),
        host_key: None,
        instance: Some(w.instance.clone()),
        profile: None,
        registered: false,
        cloud_init: Some(true),
    }
}

/// The steps done through the Hetzner Cloud API, from connecting to recording the addresses.
pub(super) async fn steps(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    w: W<'_, '_>,
    reports: &mut Vec<StepReport>,
) -> Result<InstanceUp, OpsError> {
    let client = run
        .step(state, hz_step::CONNECT, async |_s| connect(w).await)
        .await?;
    reports.push(report(hz_step::CONNECT, false, client.endpoint().into()));

    let (key_id, detail) = run
        .step_changed(state, hz_step::SSH_KEY, async |s| {
            ensure_ssh_key(&client, w, s).await
        })
        .await?;
    reports.push(report(hz_step::SSH_KEY, detail.1, detail.0));

    let firewall = if w.provider.firewall {
        let (id, changed, detail) = run
            .step_changed(state, hz_step::FIREWALL, async |s| {
                ensure_firewall(&client, w, s).await
            })
            .await?;
        reports.push(report(hz_step::FIREWALL, changed, detail));
        Some(id)
    } else {
        let removed = run
            .step_changed(state, hz_step::FIREWALL, async |s| {
                remove_firewalls(&client, w, s).await
            })
            .await?;
        let detail = if removed.is_empty() {
            "none: provider.firewall is false".to_string()
        } else {
            format!("{} removed: provider.firewall is false", removed.join(", "))
        };
        reports.push(report(hz_step::FIREWALL, !removed.is_empty(), detail));
        None
    };

    // What the state knew before this run: a server found by label that provision never
    // reached over SSH was made by an interrupted run, with the host key made here.
    let reached_before = state
        .host
        .as_ref()
        .is_some_and(|h| h.host_key.is_some())
        .then(|| state.hetzner.as_ref().and_then(|r| r.server_id))
        .flatten();
    let (server, how) = run
        .step_changed(state, hz_step::CREATE_SERVER, async |s| {
            create_server(&client, w, s, key_id, firewall).await
        })
        .await?;
    let detail = match how {
        Found::Made => format!(
            "{} created ({} in {}, {})",
            w.instance, w.provider.server_type, w.provider.location, w.provider.image
        ),
        Found::Labelled => format!("{} exists (id {server})", w.instance),
        Found::Adopted => format!("{} adopted and labelled (id {server})", w.instance),
    };
    reports.push(report(
        hz_step::CREATE_SERVER,
        how != Found::Labelled,
        detail,
    ));
    // A server this environment made and never reached is new: its host key (made here) is
    // pinned before the first connection, as for a server made by this run.
    let created = how == Found::Made || (how == Found::Labelled && reached_before != Some(server));

    let started = run
        .step_changed(state, hz_step::START_SERVER, async |_s| {
            start_server(&client, w, server).await
        })
        .await?;
    let detail = if started { "powered on" } else { "running" };
    reports.push(report(hz_step::START_SERVER, started, detail.into()));

    let ip = run
        .step(state, hz_step::ADDRESSES, async |s| {
            record_addresses(&client, w, s, server).await
        })
        .await?;
    reports.push(report(hz_step::ADDRESSES, false, ip.clone()));
    Ok(InstanceUp {
        ip,
        created,
        started,
        prepared: None,
    })
}

/// Step "connect to Hetzner Cloud": a client whose token the API accepts.
async fn connect(w: W<'_, '_>) -> Result<HetznerClient, HetznerError> {
    let client = client(&w.provider)?;
    // Any authenticated read checks the token; this one is needed next anyway.
    client.servers(&selector(&w.owner_id)).await?;
    Ok(client)
}

fn record(state: &mut EnvironmentState) -> &mut HetznerRecord {
    state.hetzner.get_or_insert_with(HetznerRecord::default)
}

/// The type and key material of an OpenSSH public key line (its comment left out).
fn key_material(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Step "ensure SSH key": the environment's public key, uploaded once with the label. A key the
/// project already holds unlabelled (the same key uploaded by hand) is used as it is and left
/// to its owner by `destroy`. Returns its id, and the step's detail.
async fn ensure_ssh_key(
    client: &HetznerClient,
    w: W<'_, '_>,
    state: &mut EnvironmentState,
) -> Result<Done<(i64, (String, bool))>, HetznerError> {
    let ours = key_material(&w.public_key);
    let mut found = None;
    for key in client.ssh_keys(&selector(&w.owner_id)).await? {
        if key_material(&key.public_key) == ours && found.is_none() {
            found = Some(key.id);
        } else {
            // Ours, but for a key this environment no longer uses.
            client.delete_ssh_key(key.id).await?;
        }
    }
    if let Some(id) = found {
        set_key(state, id, true);
        return Ok(Done::unchanged((
            id,
            (format!("id {id} (labelled)"), false),
        )));
    }
    let name = format!("torrust-{}-{}", w.env, w.owner_id);
    match client
        .create_ssh_key(&name, w.public_key.trim(), &labels(w.env, &w.owner_id))
        .await
    {
        Ok(key) => {
            set_key(state, key.id, true);
            Ok(Done::changed((key.id, (format!("{name} uploaded"), true))))
        }
        Err(e @ HetznerError::Uniqueness { .. }) => {
            // The same key is already in the project (uploaded by hand): use it, never delete it.
            let all = client.ssh_keys("").await?;
            let Some(key) = all
                .into_iter()
                .find(|k| key_material(&k.public_key) == ours)
            else {
                return Err(e);
            };
            set_key(state, key.id, false);
            let detail = format!(
                "'{}' (id {}) already holds this key: used, left in place by destroy",
                key.name, key.id
            );
            Ok(Done::unchanged((key.id, (detail, false))))
        }
        Err(e) => Err(e),
    }
}

fn set_key(state: &mut EnvironmentState, id: i64, ours: bool) {
    let r = record(state);
    r.ssh_key_id = Some(id);
    r.ssh_key_ours = ours;
}

/// The firewall's rules: SSH, and exactly the ports the stack publishes on every interface
/// (a port bound to loopback is not reachable from outside anyway).
pub(crate) fn firewall_rules(
    config: &crate::config::EnvironmentConfig,
) -> Result<Vec<Rule>, crate::stack::StackError> {
    let stack = crate::stack::render(config)?;
    let ssh = config.ssh_credentials.port.get();
    let mut seen = BTreeSet::from([("tcp", ssh)]);
    let mut rules = vec![Rule::inbound("tcp", Some(ssh), "SSH")];
    for service in &stack.services {
        for port in &service.ports {
            if port.host_ip.is_some_and(|ip| ip.is_loopback()) {
                continue;
            }
            let proto = match port.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            if seen.insert((proto, port.host_port)) {
                let what = format!("{} {proto}", service.name);
                rules.push(Rule::inbound(proto, Some(port.host_port), &what));
            }
        }
    }
    Ok(rules)
}

/// Why the firewall step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FirewallError {
    #[error(transparent)]
    Api(#[from] HetznerError),
    #[error(transparent)]
    Stack(#[from] crate::stack::StackError),
}

impl crate::error_kind::Classify for FirewallError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        match self {
            FirewallError::Api(e) => e.kind(),
            FirewallError::Stack(e) => e.kind(),
        }
    }
}

fn same_rules(a: &[Rule], b: &[Rule]) -> bool {
    let key = |r: &Rule| {
        let mut sources = r.source_ips.clone();
        sources.sort();
        (
            r.direction.clone(),
            r.protocol.clone(),
            r.port.clone(),
            sources,
        )
    };
    let a: BTreeSet<_> = a.iter().map(key).collect();
    let b: BTreeSet<_> = b.iter().map(key).collect();
    a == b
}

/// Step "ensure firewall": the environment's firewall with exactly [`firewall_rules`]; made,
/// or its rules set when they differ. Returns its id, whether it changed, and the detail.
async fn ensure_firewall(
    client: &HetznerClient,
    w: W<'_, '_>,
    state: &mut EnvironmentState,
) -> Result<Done<(i64, bool, String)>, FirewallError> {
    let rules = firewall_rules(&state.config)?;
    let ports: Vec<String> = rules
        .iter()
        .map(|r| format!("{}/{}", r.port.as_deref().unwrap_or("*"), r.protocol))
        .collect();
    let ports = ports.join(", ");
    let existing = client.firewalls(&selector(&w.owner_id)).await?;
    if let Some(fw) = existing.into_iter().next() {
        record(state).firewall_id = Some(fw.id);
        if same_rules(&fw.rules, &rules) {
            return Ok(Done::unchanged((
                fw.id,
                false,
                format!("{} lets in {ports}", fw.name),
            )));
        }
        let actions = client.set_firewall_rules(fw.id, &rules).await?;
        client
            .wait_actions(&actions, ACTION_TIMEOUT, "setting the firewall's rules")
            .await?;
        let detail = format!("{} rules set: {ports}", fw.name);
        return Ok(Done::changed((fw.id, true, detail)));
    }
    let name = format!("torrust-{}-{}", w.env, w.owner_id);
    let made = client
        .create_firewall(&name, &labels(w.env, &w.owner_id), &rules)
        .await?;
    record(state).firewall_id = Some(made.firewall.id);
    client
        .wait_actions(&made.actions, ACTION_TIMEOUT, "creating the firewall")
        .await?;
    Ok(Done::changed((
        made.firewall.id,
        true,
        format!("{name} made, lets in {ports}"),
    )))
}

/// Step "ensure firewall" when `provider.firewall` is false: the environment's firewalls made
/// before are taken off what they apply to and deleted. Returns their names.
async fn remove_firewalls(
    client: &HetznerClient,
    w: W<'_, '_>,
    state: &mut EnvironmentState,
) -> Result<Done<Vec<String>>, HetznerError> {
    let mut removed = Vec::new();
    for fw in client.firewalls(&selector(&w.owner_id)).await? {
        if !fw.applied_to.is_empty() {
            let actions = client.remove_firewall(fw.id, &fw.applied_to).await?;
            client
                .wait_actions(&actions, ACTION_TIMEOUT, "removing the firewall")
                .await?;
        }
        client.delete_firewall(fw.id).await?;
        removed.push(fw.name);
    }
    record(state).firewall_id = None;
    let changed = !removed.is_empty();
    Ok(Done::new(removed, changed))
}

/// How provision came by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Made by this run.
    Made,
    /// Found by the environment's label: made by an earlier run.
    Labelled,
    /// Found by name without the label, and labelled with `--adopt-foreign`: its host key is
    /// its own.
    Adopted,
}

/// The server the environment's label finds, else one of its name (which must be ours, or be
/// adopted with `--adopt-foreign`).
async fn find_server(
    client: &HetznerClient,
    w: W<'_, '_>,
) -> Result<Option<(Server, Found)>, ProvisionError> {
    let mut labelled = client.servers(&selector(&w.owner_id)).await?;
    if labelled.len() > 1 {
        tracing::warn!(
            "{} servers carry this environment's label; using '{}'",
            labelled.len(),
            labelled[0].name
        );
    }
    if !labelled.is_empty() {
        return Ok(Some((labelled.swap_remove(0), Found::Labelled)));
    }
    let Some(named) = client.server_by_name(&w.instance).await? else {
        return Ok(None);
    };
    let found = named.labels.get(ID_LABEL).map(String::as_str);
    if !w.options.adopt_foreign {
        return Err(ForeignError::hetzner("server", &w.instance, w.env, found).into());
    }
    let mut marked = named.labels.clone();
    marked.extend(labels(w.env, &w.owner_id));
    client.set_server_labels(named.id, &marked).await?;
    Ok(Some((named, Found::Adopted)))
}

/// Step "create server": finds the server by label (or adopts one by name), else creates it
/// with the user-data (user, key, the host key made here) and waits for its actions. A found
/// server gets the firewall applied when it lacks it. Returns its id and how it was found.
async fn create_server(
    client: &HetznerClient,
    w: W<'_, '_>,
    state: &mut EnvironmentState,
    key_id: i64,
    firewall: Option<i64>,
) -> Result<Done<(i64, Found)>, ProvisionError> {
    if let Some((server, how)) = find_server(client, w).await? {
        record(state).server_id = Some(server.id);
        if let Some(fw) = firewall
            && !server.public_net.firewalls.iter().any(|f| f.id == fw)
        {
            let actions = client
                .apply_firewall(fw, &[Resource::server(server.id)])
                .await?;
            client
                .wait_actions(&actions, ACTION_TIMEOUT, "applying the firewall")
                .await?;
        }
        return Ok(Done::new((server.id, how), how == Found::Adopted));
    }
    // A new server is a new host: a key pinned for this environment belonged to another.
    let known_hosts = w.data.known_hosts(w.env);
    if known_hosts.exists() {
        std::fs::remove_file(&known_hosts).map_err(|source| ProvisionError::KnownHosts {
            path: known_hosts.clone(),
            source,
        })?;
    }
    let user_data = lxd_host::user_data(
        w.creds.username.as_str(),
        &w.public_key,
        w.creds.port.get(),
        Some((w.host_key.0.expose(), &w.host_key.1)),
    );
    let labels = labels(w.env, &w.owner_id);
    let p = &w.provider;
    let new = NewServer {
        name: &w.instance,
        server_type: &p.server_type,
        image: &p.image,
        location: &p.location,
        ssh_keys: vec![key_id],
        user_data: &user_data,
        labels: &labels,
        firewalls: firewall
            .map(|id| FirewallRef { firewall: id })
            .into_iter()
            .collect(),
        start_after_create: true,
    };
    let made = client.create_server(&new).await?;
    let id = made.server.id;
    // Recorded at once; a run killed from here on finds it by its label anyway.
    record(state).server_id = Some(id);
    state.host = Some(host_record(w));
    let mut actions = vec![made.action];
    actions.extend(made.next_actions);
    client
        .wait_actions(&actions, ACTION_TIMEOUT, "creating the server")
        .await?;
    Ok(Done::changed((id, Found::Made)))
}

/// Step "start server": waits while the server is being made or started; powers it on when it
/// is off. Returns whether it powered it on.
async fn start_server(
    client: &HetznerClient,
    w: W<'_, '_>,
    id: i64,
) -> Result<Done<bool>, HetznerError> {
    let deadline = tokio::time::Instant::now() + w.options.ip_timeout.max(ACTION_TIMEOUT);
    let mut powered = false;
    loop {
        let server = client.server(id).await?.ok_or_else(|| HetznerError::Api {
            doing: "starting the server".into(),
            status: 404,
            code: "not_found".into(),
            message: format!("server {id} is gone; run provision again to make a new one"),
        })?;
        match server.status.as_str() {
            "running" => return Ok(Done::new(powered, powered)),
            "off" if !powered => {
                let action = client.power_on(id).await?;
                client
                    .wait_actions(&[action], ACTION_TIMEOUT, "powering the server on")
                    .await?;
                powered = true;
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(HetznerError::ActionTimeout {
                    doing: format!("waiting for server {id} to run (status {})", server.status),
                    id,
                    command: "start_server".into(),
                    secs: deadline.elapsed().as_secs(),
                });
            }
            _ => tokio::time::sleep(client.poll_interval()).await,
        }
    }
}

/// Step "record addresses": the server's IPv4 address (the SSH target) and IPv6 address (the
/// first of its /64), recorded in the state.
async fn record_addresses(
    client: &HetznerClient,
    w: W<'_, '_>,
    state: &mut EnvironmentState,
    id: i64,
) -> Result<String, HetznerError> {
    let server = client.server(id).await?.ok_or_else(|| HetznerError::Api {
        doing: "reading the server's addresses".into(),
        status: 404,
        code: "not_found".into(),
        message: format!("server {id} is gone; run provision again to make a new one"),
    })?;
    let ipv6 = server
        .public_net
        .ipv6
        .as_ref()
        .map(|a| first_address(&a.ip));
    record(state).ipv6 = ipv6;
    let Some(ipv4) = server.public_net.ipv4.map(|a| a.ip) else {
        return Err(HetznerError::Api {
            doing: "reading the server's addresses".into(),
            status: 200,
            code: "no_ipv4".into(),
            message: "the server has no public IPv4 address, which SSH needs here".into(),
        });
    };
    let host = state.host.get_or_insert_with(|| host_record(w));
    host.ip = ipv4.clone();
    Ok(ipv4)
}

/// `2001:db8:1:2::/64` → `2001:db8:1:2::1`, the address Hetzner gives the server.
fn first_address(network: &str) -> String {
    match network.split_once('/') {
        Some((net, _)) => match net.parse::<std::net::Ipv6Addr>() {
            Ok(addr) => std::net::Ipv6Addr::from(u128::from(addr) | 1).to_string(),
            Err(_) => net.to_string(),
        },
        None => network.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_address_of_the_servers_network() {
        assert_eq!(first_address("2001:db8:1:2::/64"), "2001:db8:1:2::1");
        assert_eq!(first_address("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn the_firewall_lets_in_ssh_and_exactly_the_published_ports() {
        let file = crate::config::minimal_test_file("demo", "Adm1n-T0ken-for-firewall-test");
        let loaded = crate::config::parse(&file.to_string(), std::path::Path::new("/")).unwrap();
        let rules = firewall_rules(&loaded.config).unwrap();
        let got: Vec<(String, Option<String>)> = rules
            .iter()
            .map(|r| (r.protocol.clone(), r.port.clone()))
            .collect();
        let stack = crate::stack::render(&loaded.config).unwrap();
        let mut want = vec![("tcp".to_string(), Some("22".to_string()))];
        for s in &stack.services {
            for p in s.ports.iter().filter(|p| p.host_ip.is_none()) {
                let proto = if p.protocol == Protocol::Udp {
                    "udp"
                } else {
                    "tcp"
                };
                want.push((proto.into(), Some(p.host_port.to_string())));
            }
        }
        assert_eq!(got, want);
        assert!(got.len() > 1, "{got:?}");
        assert!(rules.iter().all(|r| r.direction == "in"));
        // The health check API (127.0.0.1:1313) is never let in.
        assert!(!got.iter().any(|(_, p)| p.as_deref() == Some("1313")));
    }

    #[test]
    fn rules_compare_as_sets() {
        let a = vec![
            Rule::inbound("tcp", Some(22), "SSH"),
            Rule::inbound("udp", Some(6969), "x"),
        ];
        let mut b = a.clone();
        b.reverse();
        b[0].description = None;
        assert!(same_rules(&a, &b));
        assert!(!same_rules(&a, &a[..1]));
    }
}
