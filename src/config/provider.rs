//! `provider`: where the instance runs, LXD or Hetzner Cloud.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Lxd,
    Hetzner,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Lxd => "lxd",
            ProviderKind::Hetzner => "hetzner",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `provider`: where the instance runs, tagged by `provider`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "lowercase")]
// One per command, read once: its size does not matter, and a box would touch every match.
#[allow(clippy::large_enum_variant)]
pub enum Provider {
    /// A local LXD container or virtual machine.
    Lxd(LxdProvider),
    /// A Hetzner Cloud server.
    Hetzner(HetznerProvider),
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Lxd(_) => ProviderKind::Lxd,
            Provider::Hetzner(_) => ProviderKind::Hetzner,
        }
    }
}

/// LXD provider options. Only `profile_name` is required; the rest are our extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LxdProvider {
    /// The LXD profile created for this environment (one per environment). Same rule as
    /// `environment.instance_name`.
    pub profile_name: String,
    /// Extension: image to launch, `remote:alias` (e.g. `images:debian/12/cloud`,
    /// `ubuntu:24.04`), or a local alias or fingerprint. Default `ubuntu:24.04`.
    #[serde(default = "default_lxd_image")]
    pub image: String,
    /// Extension: `container` (default) or `virtual-machine`.
    #[serde(default)]
    pub instance_type: LxdInstanceType,
    /// Extension: path of the LXD unix socket. Default: LXD's own discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    /// Extension: storage pool of the root disk. Default `default`.
    #[serde(default = "default_storage_pool")]
    pub storage_pool: String,
    /// Extension: network the instance attaches to. Default `lxdbr0`.
    #[serde(default = "default_lxd_network")]
    pub network: String,
    /// Extension: LXD project. Default: LXD's current project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Extension: number of CPUs (>= 1). Default: LXD's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu: Option<u32>,
    /// Extension: memory limit, an LXD size such as `2GiB` or `512MB`. Default: LXD's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Extension: root disk size, an LXD size such as `20GiB`. Default: the pool's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// Extension: a remote LXD (or a cluster member) over HTTPS, `https://host[:port]` (port
    /// 8443 by default). Default: the local Unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Extension (remote LXD): the trust token made on the server (`lxc config trust add
    /// --name NAME`). Secret; needed only until the client is trusted. Empty: read from
    /// `TORRUST_LXD_TRUST_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_token: Option<Secret>,
    /// Extension (remote LXD): the server certificate's SHA-256 fingerprint, pinned. Default:
    /// the fingerprint the trust token carries, recorded in the state at first trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fingerprint: Option<String>,
    /// Extension (remote LXD): the client certificate (PEM) to present, with `client_key`.
    /// Default: one generated for the environment and kept in its data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// Extension (remote LXD): the client certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Extension (LXD cluster): the member to create the instance on (`?target=`), or
    /// `@group` for a cluster group. Default: the cluster chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The default LXD image.
pub const DEFAULT_LXD_IMAGE: &str = "ubuntu:24.04";

fn default_lxd_image() -> String {
    DEFAULT_LXD_IMAGE.to_string()
}

fn default_storage_pool() -> String {
    "default".to_string()
}

fn default_lxd_network() -> String {
    "lxdbr0".to_string()
}

impl LxdProvider {
    /// An LXD provider with the given profile and every extension at its default.
    pub fn new(profile_name: impl Into<String>) -> Self {
        Self {
            profile_name: profile_name.into(),
            image: default_lxd_image(),
            instance_type: LxdInstanceType::default(),
            socket_path: None,
            storage_pool: default_storage_pool(),
            network: default_lxd_network(),
            project: None,
            cpu: None,
            memory: None,
            disk: None,
            endpoint: None,
            trust_token: None,
            server_fingerprint: None,
            client_certificate: None,
            client_key: None,
            target: None,
        }
    }
}

/// LXD instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LxdInstanceType {
    /// A system container (fast, shares the host kernel).
    #[default]
    Container,
    /// A virtual machine.
    VirtualMachine,
}

impl LxdInstanceType {
    pub fn as_str(self) -> &'static str {
        match self {
            LxdInstanceType::Container => "container",
            LxdInstanceType::VirtualMachine => "virtual-machine",
        }
    }
}

/// Hetzner Cloud provider options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HetznerProvider {
    /// Hetzner Cloud API token (read/write). Secret. Empty: read from `HCLOUD_TOKEN` when
    /// provisioning and destroying.
    pub api_token: Secret,
    /// Server type, e.g. `cx22`.
    pub server_type: String,
    /// Location, e.g. `nbg1`, `fsn1`, `hel1`.
    pub location: String,
    /// Image, e.g. `ubuntu-24.04`.
    pub image: String,
    /// Extension: a Hetzner Cloud firewall that lets in exactly the ports the stack publishes
    /// plus SSH (default `true`). `false`: no firewall is made.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub firewall: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}
