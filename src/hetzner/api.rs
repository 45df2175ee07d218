//! The JSON the Hetzner Cloud API sends and takes, as far as the deployer reads or writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type Labels = BTreeMap<String, String>;

/// `{"error": {...}}`, the body of every failed request.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<ErrorDetails>,
}

/// `details` of an error: the fields of `invalid_input`, the limits of `resource_limit_exceeded`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorDetails {
    #[serde(default)]
    pub fields: Vec<NamedDetail>,
    #[serde(default)]
    pub limits: Vec<NamedDetail>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedDetail {
    pub name: String,
}

/// `meta.pagination` of a list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pagination {
    pub page: u64,
    #[serde(default)]
    pub next_page: Option<u64>,
    #[serde(default)]
    pub last_page: Option<u64>,
}

/// An action: what the API does in the background after a request.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    pub id: i64,
    pub command: String,
    /// `running`, `success` or `error`.
    pub status: String,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub error: Option<ActionError>,
}

impl Action {
    /// Failed: `status` is `error`, or an error code is set (its message may be empty).
    pub fn failed(&self) -> bool {
        self.status == "error" || self.error.as_ref().is_some_and(|e| !e.code.is_empty())
    }

    pub fn finished(&self) -> bool {
        self.status == "success" || self.failed()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SshKey {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub fingerprint: String,
    pub public_key: String,
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewSshKey<'a> {
    pub name: &'a str,
    pub public_key: &'a str,
    pub labels: &'a Labels,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub id: i64,
    pub name: String,
    /// initializing, starting, running, stopping, off, deleting, migrating, rebuilding, unknown.
    pub status: String,
    #[serde(default)]
    pub public_net: PublicNet,
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PublicNet {
    #[serde(default)]
    pub ipv4: Option<Address>,
    /// `ip` is the server's /64 network, e.g. `2001:db8:1:2::/64`.
    #[serde(default)]
    pub ipv6: Option<Address>,
    #[serde(default)]
    pub firewalls: Vec<AppliedFirewall>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    pub ip: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppliedFirewall {
    pub id: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewServer<'a> {
    pub name: &'a str,
    pub server_type: &'a str,
    pub image: &'a str,
    pub location: &'a str,
    pub ssh_keys: Vec<i64>,
    pub user_data: &'a str,
    pub labels: &'a Labels,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<FirewallRef>,
    pub start_after_create: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirewallRef {
    pub firewall: i64,
}

/// The answer to a server create.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedServer {
    pub server: Server,
    pub action: Action,
    #[serde(default)]
    pub next_actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `in` or `out`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, `esp` or `gre`.
    pub protocol: String,
    /// `"22"` or `"1024-5000"`; only for tcp and udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Rule {
    /// An inbound rule from anywhere (IPv4 and IPv6).
    pub fn inbound(protocol: &str, port: Option<u16>, description: &str) -> Self {
        Self {
            direction: "in".into(),
            protocol: protocol.into(),
            port: port.map(|p| p.to_string()),
            source_ips: vec!["0.0.0.0/0".into(), "::/0".into()],
            destination_ips: Vec::new(),
            description: Some(description.into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Firewall {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub applied_to: Vec<Resource>,
}

/// What a firewall applies to: `{"type":"server","server":{"id":N}}` (or a label selector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<IdRef>,
}

impl Resource {
    pub fn server(id: i64) -> Self {
        Self {
            kind: "server".into(),
            server: Some(IdRef { id }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewFirewall<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
    pub rules: &'a [Rule],
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreatedFirewall {
    pub firewall: Firewall,
    #[serde(default)]
    pub actions: Vec<Action>,
}
