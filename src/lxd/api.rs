//! LXD's answers as typed values: the server, instances and their runtime state, profiles,
//! images, storage pools, networks and background operations.
//!
//! Field names are those of LXD's REST API (the same for Incus). Only the fields the deployer
//! reads are declared; serde skips the others. LXD's Go server writes an empty map or list as
//! `null`, so every map and list reads `null` as empty.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Reads `null` (and a missing field, with `#[serde(default)]`) as the type's empty value.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `GET /1.0`: who the server is and whether it trusts us.
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub auth: Auth,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub api_extensions: Vec<String>,
    #[serde(default)]
    pub environment: ServerEnvironment,
}

impl Server {
    /// Whether the server has an API extension, e.g. `cloud_init`.
    pub fn has_extension(&self, name: &str) -> bool {
        self.api_extensions.iter().any(|e| e == name)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerEnvironment {
    #[serde(default)]
    pub server_version: String,
    /// The server's certificate fingerprint (only shown to trusted clients).
    #[serde(default)]
    pub certificate_fingerprint: String,
    /// Whether the server is a cluster member (only shown to trusted clients).
    #[serde(default)]
    pub server_clustered: bool,
}

/// Whether LXD accepts this client's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Trusted,
    Untrusted,
    #[serde(other)]
    Unknown,
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Trusted => "trusted",
            Auth::Untrusted => "untrusted",
            Auth::Unknown => "unknown",
        })
    }
}

/// An instance's status, as LXD names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum InstanceStatus {
    Running,
    Stopped,
    Frozen,
    Error,
    /// A passing status (`Starting`, `Stopping`, ...) or one this build does not know.
    Other(String),
}

impl From<String> for InstanceStatus {
    fn from(status: String) -> Self {
        match status.as_str() {
            "Running" => Self::Running,
            "Stopped" => Self::Stopped,
            "Frozen" => Self::Frozen,
            "Error" => Self::Error,
            _ => Self::Other(status),
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "Running",
            Self::Stopped => "Stopped",
            Self::Frozen => "Frozen",
            Self::Error => "Error",
            Self::Other(status) => status,
        })
    }
}

/// A device of an instance or profile: its type and options, all strings in LXD.
pub type Devices = BTreeMap<String, BTreeMap<String, String>>;

/// `GET /1.0/instances/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    pub name: String,
    pub status: InstanceStatus,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub devices: Devices,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub profiles: Vec<String>,
    /// The cluster member it runs on (`none` on a standalone server).
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// Whether the instance was never started: LXD then reports the Unix epoch as its last use.
    pub fn never_started(&self) -> bool {
        self.last_used_at.is_some_and(|t| t.timestamp() <= 0)
    }
}

/// `GET /1.0/instances/<name>/state`: the runtime state.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceState {
    pub status: InstanceStatus,
    /// Network interfaces by name (`null` while the instance is stopped).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub network: BTreeMap<String, NetworkState>,
}

impl InstanceState {
    /// The first global IPv4 address of `nic` (read per interface: once Docker runs inside,
    /// docker0 and br-* have addresses too).
    pub fn ipv4(&self, nic: &str) -> Option<String> {
        self.network
            .get(nic)?
            .addresses
            .iter()
            .find(|a| a.family == AddressFamily::Inet && a.scope == AddressScope::Global)
            .map(|a| a.address.clone())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkState {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub addresses: Vec<NetworkAddress>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NetworkAddress {
    pub family: AddressFamily,
    pub address: String,
    pub scope: AddressScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Inet,
    Inet6,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressScope {
    Global,
    Link,
    Local,
    #[serde(other)]
    Other,
}

/// What a profile sets: the body of `PUT /1.0/profiles/<name>`, and the part of a profile that
/// provision compares with what it wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub devices: Devices,
}

/// `GET /1.0/profiles/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub name: String,
    #[serde(flatten)]
    pub spec: ProfileSpec,
    /// The instances (and other resources) that use it, as API paths.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub used_by: Vec<String>,
}

/// `GET /1.0/images/<fingerprint>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    pub fingerprint: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub properties: BTreeMap<String, String>,
}

/// `GET /1.0/images/aliases/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageAlias {
    pub name: String,
    /// The fingerprint of the image it points at.
    pub target: String,
}

/// `GET /1.0/storage-pools/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct StoragePool {
    pub name: String,
    #[serde(default)]
    pub driver: String,
}

/// `GET /1.0/networks/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub managed: bool,
}

/// A background operation, as `/1.0/operations/<id>` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: String,
    /// LXD's status code: 100-199 while pending or running, 200 on success, 400 and up on
    /// failure or cancellation.
    #[serde(default)]
    pub status_code: u16,
    /// Why it failed (empty otherwise).
    #[serde(default)]
    pub err: String,
    /// The resources it works on, by kind (`instances`, `containers`, ...), as API paths.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub resources: BTreeMap<String, Vec<String>>,
    /// The result, whose shape depends on the operation (see [`ExecOutcome`]).
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationOutcome {
    Unfinished,
    Succeeded,
    Failed,
}

impl Operation {
    pub fn outcome(&self) -> OperationOutcome {
        match self.status_code {
            200 => OperationOutcome::Succeeded,
            100..=199 => OperationOutcome::Unfinished,
            _ => OperationOutcome::Failed,
        }
    }

    /// Whether it works on instance `name` (as an instance, or under the legacy `containers`).
    pub fn touches_instance(&self, name: &str) -> bool {
        let suffixes = [format!("/instances/{name}"), format!("/containers/{name}")];
        ["instances", "containers"]
            .iter()
            .filter_map(|kind| self.resources.get(*kind))
            .flatten()
            .any(|path| {
                let path = path.split('?').next().unwrap_or(path);
                suffixes.iter().any(|s| path.ends_with(s.as_str()))
            })
    }
}

/// `GET /1.0/operations?recursion=1`: operations by status.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Operations {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub running: Vec<Operation>,
}

/// The metadata of a finished exec operation run with `record-output`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecOutcome {
    /// The command's exit code (-1 when LXD did not say).
    #[serde(rename = "return", default = "no_exit_code")]
    pub exit_code: i64,
    /// API paths of the recorded output, by file descriptor (`"1"`, `"2"`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub output: BTreeMap<String, String>,
}

fn no_exit_code() -> i64 {
    -1
}

/// The metadata of a finished image upload.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageUploaded {
    pub fingerprint: String,
}

/// `POST /1.0/instances`: a new instance from an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewInstance {
    pub name: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
    pub profiles: Vec<String>,
    pub source: InstanceSource,
    /// The instance's own config keys (e.g. the owner's id).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Where a new instance's image comes from (LXD's `source` of `type: image`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "image")]
pub struct InstanceSource {
    #[serde(flatten)]
    pub image: ImageRef,
}

/// An image by alias or fingerprint in LXD's store, or by alias on a simplestreams server
/// (downloaded by LXD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ImageRef {
    Remote {
        /// Always `pull`: LXD downloads the image.
        mode: &'static str,
        /// Always `simplestreams`.
        protocol: &'static str,
        server: String,
        alias: String,
    },
    Fingerprint {
        fingerprint: String,
    },
    Alias {
        alias: String,
    },
}

impl ImageRef {
    /// `alias` on the simplestreams server at `server`.
    pub fn remote(server: impl Into<String>, alias: impl Into<String>) -> Self {
        Self::Remote {
            mode: "pull",
            protocol: "simplestreams",
            server: server.into(),
            alias: alias.into(),
        }
    }
}

/// The action of `PUT /1.0/instances/<name>/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateAction {
    Start,
    Stop,
    Restart,
}

impl StateAction {
    /// The action as a verb in "-ing" form, for messages.
    pub fn doing(self) -> &'static str {
        match self {
            Self::Start => "starting",
            Self::Stop => "stopping",
            Self::Restart => "restarting",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `GET /1.0/instances/<name>` metadata as LXD 5.0 writes it (trimmed of fields we skip).
    fn instance_json(status: &str, last_used_at: &str) -> Value {
        json!({
            "architecture": "x86_64",
            "config": {"image.os": "Debian", "volatile.eth0.hwaddr": "00:16:3e:aa:bb:cc"},
            "devices": {},
            "ephemeral": false,
            "profiles": ["torrust-profile-demo"],
            "stateful": false,
            "description": "",
            "created_at": "2026-11-26T10:00:00.123456789Z",
            "expanded_config": {},
            "expanded_devices": {"root": {"path": "/", "pool": "default", "type": "disk"}},
            "name": "torrust-tracker-vm-demo",
            "status": status,
            "status_code": 102,
            "last_used_at": last_used_at,
            "location": "none",
            "type": "container",
            "project": "default"
        })
    }

    #[test]
    fn an_instance_reads_its_status_profiles_and_first_start() {
        let fresh: Instance =
            serde_json::from_value(instance_json("Stopped", "1970-01-01T00:00:00Z")).unwrap();
        assert_eq!(fresh.name, "torrust-tracker-vm-demo");
        assert_eq!(fresh.status, InstanceStatus::Stopped);
        assert_eq!(fresh.profiles, ["torrust-profile-demo"]);
        assert_eq!(fresh.location, "none");
        assert_eq!(fresh.config["image.os"], "Debian");
        assert!(fresh.devices.is_empty());
        assert!(fresh.never_started());

        let used: Instance =
            serde_json::from_value(instance_json("Running", "2026-11-26T10:00:05.987654321Z"))
                .unwrap();
        assert_eq!(used.status, InstanceStatus::Running);
        assert!(!used.never_started());
    }

    #[test]
    fn statuses_outside_the_four_are_kept_by_name() {
        let frozen: Instance =
            serde_json::from_value(instance_json("Frozen", "1970-01-01T00:00:00Z")).unwrap();
        assert_eq!(frozen.status, InstanceStatus::Frozen);
        let stopping: Instance =
            serde_json::from_value(instance_json("Stopping", "1970-01-01T00:00:00Z")).unwrap();
        assert_eq!(stopping.status, InstanceStatus::Other("Stopping".into()));
        assert_eq!(stopping.status.to_string(), "Stopping");
    }

    #[test]
    fn a_stopped_instance_has_no_network_and_no_address() {
        let state: InstanceState = serde_json::from_value(json!({
            "status": "Stopped", "status_code": 102, "disk": null, "memory": {"usage": 0},
            "network": null, "pid": 0, "processes": 0, "cpu": {"usage": 0}
        }))
        .unwrap();
        assert_eq!(state.status, InstanceStatus::Stopped);
        assert_eq!(state.ipv4("eth0"), None);
    }

    #[test]
    fn ipv4_reads_the_global_inet_address_of_the_named_nic_only() {
        let state: InstanceState = serde_json::from_value(json!({
            "status": "Running",
            "status_code": 103,
            "network": {
                "docker0": {"addresses": [{"family":"inet","address":"172.17.0.1","netmask":"16","scope":"global"}],
                            "hwaddr": "02:42:00:00:00:00", "state": "up", "type": "broadcast"},
                "eth0": {"addresses": [
                    {"family":"inet6","address":"fe80::216:3eff:feaa:bbcc","netmask":"64","scope":"link"},
                    {"family":"inet","address":"10.1.2.3","netmask":"24","scope":"global"}
                ], "state": "up", "type": "broadcast"},
                "lo": {"addresses": [{"family":"inet","address":"127.0.0.1","netmask":"8","scope":"local"}]},
                "eth1": {"addresses": null}
            }
        }))
        .unwrap();
        assert_eq!(state.ipv4("eth0").as_deref(), Some("10.1.2.3"));
        assert_eq!(state.ipv4("lo"), None);
        assert_eq!(state.ipv4("eth1"), None);
        assert_eq!(state.ipv4("eth2"), None);
    }

    #[test]
    fn a_profile_reads_its_spec_and_users() {
        let profile: Profile = serde_json::from_value(json!({
            "name": "torrust-profile-demo",
            "description": "torrust-tracker-deployer: environment demo",
            "config": {"security.nesting": "true", "cloud-init.user-data": "#cloud-config\n"},
            "devices": {
                "eth0": {"name": "eth0", "network": "lxdbr0", "type": "nic"},
                "root": {"path": "/", "pool": "default", "type": "disk"}
            },
            "used_by": ["/1.0/instances/torrust-tracker-vm-demo"],
            "project": "default"
        }))
        .unwrap();
        assert_eq!(profile.name, "torrust-profile-demo");
        assert_eq!(profile.spec.config["security.nesting"], "true");
        assert_eq!(profile.spec.devices["eth0"]["network"], "lxdbr0");
        assert_eq!(profile.used_by.len(), 1);

        // A profile as `lxc profile create` leaves it: no description, null maps and users.
        let bare: Profile = serde_json::from_value(json!({
            "name": "bare", "config": null, "devices": null, "used_by": null
        }))
        .unwrap();
        assert_eq!(bare.spec, ProfileSpec::default());
        assert!(bare.used_by.is_empty());
    }

    #[test]
    fn a_profile_spec_writes_what_put_expects() {
        let mut spec = ProfileSpec {
            description: "d".into(),
            ..ProfileSpec::default()
        };
        spec.config.insert("limits.cpu".into(), "2".into());
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"description": "d", "config": {"limits.cpu": "2"}, "devices": {}})
        );
    }

    #[test]
    fn the_server_says_whether_it_trusts_us() {
        let server: Server = serde_json::from_value(json!({
            "api_extensions": ["storage_zfs_remove_snapshots", "cloud_init"],
            "api_status": "stable",
            "auth": "trusted",
            "environment": {"server_version": "5.0.2", "storage": "dir"}
        }))
        .unwrap();
        assert_eq!(server.auth, Auth::Trusted);
        assert!(server.has_extension("cloud_init"));
        assert!(!server.has_extension("instances"));
        assert_eq!(server.environment.server_version, "5.0.2");

        let untrusted: Server =
            serde_json::from_value(json!({"auth": "untrusted", "api_extensions": null})).unwrap();
        assert_eq!(untrusted.auth, Auth::Untrusted);
        let odd: Server = serde_json::from_value(json!({"auth": "tls-pending"})).unwrap();
        assert_eq!(odd.auth, Auth::Unknown);
    }

    #[test]
    fn operations_tell_their_outcome_and_the_instances_they_touch() {
        let list: Operations = serde_json::from_value(json!({
            "running": [
                {"id": "a1", "class": "task", "description": "Creating instance",
                 "status": "Running", "status_code": 103,
                 "resources": {"containers": ["/1.0/containers/web"], "instances": ["/1.0/instances/web?project=demo"]},
                 "metadata": null, "may_cancel": false, "err": ""},
                {"id": "b2", "description": "Starting instance", "status_code": 103,
                 "resources": {"instances": ["/1.0/instances/web2"]}},
                {"id": "c3", "description": "Updating images", "status_code": 103, "resources": null}
            ],
            "success": [{"id": "d4", "status_code": 200}]
        }))
        .unwrap();
        assert_eq!(list.running.len(), 3);
        assert!(list.running[0].touches_instance("web"));
        assert!(!list.running[1].touches_instance("web"));
        assert!(list.running[1].touches_instance("web2"));
        assert!(!list.running[2].touches_instance("web"));
        assert_eq!(list.running[0].outcome(), OperationOutcome::Unfinished);

        let failed: Operation = serde_json::from_value(json!({
            "id": "x", "status": "Failure", "status_code": 400,
            "err": "Failed to run: forkstart: exit status 1", "metadata": null
        }))
        .unwrap();
        assert_eq!(failed.outcome(), OperationOutcome::Failed);
        let done: Operation = serde_json::from_value(
            json!({"id": "y", "status_code": 200, "metadata": {"return": 0}}),
        )
        .unwrap();
        assert_eq!(done.outcome(), OperationOutcome::Succeeded);
    }

    #[test]
    fn exec_outcome_and_image_answers() {
        let exec: ExecOutcome = serde_json::from_value(json!({
            "return": 1,
            "output": {"1": "/1.0/instances/web/logs/exec_1.stdout", "2": "/1.0/instances/web/logs/exec_1.stderr"}
        }))
        .unwrap();
        assert_eq!(exec.exit_code, 1);
        assert_eq!(exec.output["2"], "/1.0/instances/web/logs/exec_1.stderr");

        let image: Image = serde_json::from_value(json!({
            "fingerprint": "5e4b7ef03f46aaaa", "properties": {"description": "torrust test image"},
            "aliases": [{"name": "torrust/debian-12", "description": ""}], "size": 123
        }))
        .unwrap();
        assert_eq!(image.properties["description"], "torrust test image");
        let alias: ImageAlias = serde_json::from_value(
            json!({"name": "torrust/debian-12", "target": "5e4b7ef03f46aaaa", "description": "", "type": "container"}),
        )
        .unwrap();
        assert_eq!(alias.target, image.fingerprint);
    }

    #[test]
    fn a_new_instance_is_written_as_lxd_reads_it() {
        let new = |image| NewInstance {
            name: "vm1".into(),
            kind: "container".into(),
            profiles: vec!["prof".into()],
            source: InstanceSource { image },
            config: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_value(new(ImageRef::remote(
                "https://images.example",
                "debian/12/cloud"
            )))
            .unwrap(),
            json!({"name": "vm1", "type": "container", "profiles": ["prof"], "source": {
                "type": "image", "mode": "pull", "protocol": "simplestreams",
                "server": "https://images.example", "alias": "debian/12/cloud"}})
        );
        assert_eq!(
            serde_json::to_value(new(ImageRef::Fingerprint {
                fingerprint: "5e4b7ef03f46".into()
            }))
            .unwrap()["source"],
            json!({"type": "image", "fingerprint": "5e4b7ef03f46"})
        );
        assert_eq!(
            serde_json::to_value(new(ImageRef::Alias {
                alias: "torrust/debian-12".into()
            }))
            .unwrap()["source"],
            json!({"type": "image", "alias": "torrust/debian-12"})
        );
    }

    #[test]
    fn state_actions_are_written_in_lowercase() {
        assert_eq!(serde_json::to_value(StateAction::Start).unwrap(), "start");
        assert_eq!(StateAction::Stop.doing(), "stopping");
    }
}
