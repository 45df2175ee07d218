//! What provision and destroy need from LXD, built on [`crate::lxd`]: the environment's
//! profile, its instance and its address. (Preparing an image that has no cloud-init is a task,
//! [`crate::tasks::lxd_access`], run over [`crate::host::lxd::LxdHost`].)

use super::ownership::OWNER_KEY;
use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{LxdInstanceType, LxdProvider};
use crate::lxd::api::{ImageRef, InstanceSource, NewInstance};
use crate::lxd::transport::Transport;
use crate::lxd::{LxdClient, LxdError, Profile, ProfileSpec};
use crate::retry::Schedule;
use crate::tasks::lxd_access::{PORT_CONF, RESTART_SSH};

/// While LXD says an instance is busy with another operation (the stop hooks of a failed start
/// hold it for a minute or more), a delete or create is tried again every 5 s for 3 minutes.
pub const WHILE_BUSY: Schedule = Schedule::within(Duration::from_secs(180), Duration::from_secs(5));

/// The cloud-init user-data: the SSH user with passwordless sudo and the public key, and the
/// SSH port when it is not 22 (applied without a reboot).
///
/// With `host_key` (OpenSSH private key, public key line), sshd gets that ed25519 key and no
/// other: the key was made on the operator's machine and is pinned before the first connection.
pub fn user_data(
    username: &str,
    public_key: &str,
    ssh_port: u16,
    host_key: Option<(&str, &str)>,
) -> String {
    let mut doc = format!(
        "#cloud-config\n\
         users:\n\
         \x20 - name: {username}\n\
         \x20   shell: /bin/bash\n\
         \x20   sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n\
         \x20   lock_passwd: true\n\
         \x20   ssh_authorized_keys:\n\
         \x20     - {}\n",
        public_key.trim()
    );
    if let Some((private, public)) = host_key {
        doc.push_str(
            "ssh_deletekeys: true\n\
             ssh_genkeytypes: []\n\
             ssh_keys:\n\
             \x20 ed25519_private: |\n",
        );
        for line in private.trim().lines() {
            doc.push_str(&format!("    {line}\n"));
        }
        doc.push_str(&format!("  ed25519_public: {}\n", public.trim()));
    }
    if ssh_port != 22 {
        doc.push_str(&format!(
            "write_files:\n\
             \x20 - path: {PORT_CONF}\n\
             \x20   permissions: \"0644\"\n\
             \x20   content: |\n\
             \x20     Port {ssh_port}\n\
             runcmd:\n\
             \x20 - [sh, -c, \"{RESTART_SSH}\"]\n"
        ));
    }
    doc
}

/// The profile the environment's instance uses: cloud-init user-data, nesting for Docker,
/// limits, the root disk on the pool and the NIC on the network.
pub fn profile(
    provider: &LxdProvider,
    env: &str,
    owner_id: &str,
    user_data_key: &str,
    user_data: &str,
) -> ProfileSpec {
    let mut config = BTreeMap::new();
    config.insert(user_data_key.to_string(), user_data.to_string());
    config.insert(OWNER_KEY.to_string(), owner_id.to_string());
    if provider.instance_type == LxdInstanceType::Container {
        config.insert("security.nesting".into(), "true".into());
    }
    if let Some(cpu) = provider.cpu {
        config.insert("limits.cpu".into(), cpu.to_string());
    }
    if let Some(memory) = &provider.memory {
        config.insert("limits.memory".into(), memory.clone());
    }
    let device = |options: &[(&str, &str)]| -> BTreeMap<String, String> {
        options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut root = device(&[
        ("type", "disk"),
        ("path", "/"),
        ("pool", &provider.storage_pool),
    ]);
    if let Some(size) = &provider.disk {
        root.insert("size".into(), size.clone());
    }
    let eth0 = device(&[
        ("type", "nic"),
        ("name", "eth0"),
        ("network", &provider.network),
    ]);
    ProfileSpec {
        description: format!("torrust-tracker-deployer: environment {env}"),
        config,
        devices: BTreeMap::from([("root".to_string(), root), ("eth0".to_string(), eth0)]),
    }
}

/// Whether an existing profile already has what `wanted` asks for.
pub fn profile_matches(existing: &Profile, wanted: &ProfileSpec) -> bool {
    existing.spec == *wanted
}

/// The instance-creation request: the image source, from a remote or local.
pub fn instance_request(provider: &LxdProvider, name: &str, owner_id: &str) -> NewInstance {
    let image = match image_source(&provider.image) {
        ImageSource::Remote { server, alias } => ImageRef::remote(server, alias),
        ImageSource::Local(fingerprint) if is_fingerprint(&fingerprint) => {
            ImageRef::Fingerprint { fingerprint }
        }
        ImageSource::Local(alias) => ImageRef::Alias { alias },
    };
    NewInstance {
        name: name.to_string(),
        kind: provider.instance_type.as_str().to_string(),
        profiles: vec![provider.profile_name.clone()],
        source: InstanceSource { image },
        config: BTreeMap::from([(OWNER_KEY.to_string(), owner_id.to_string())]),
    }
}

pub enum ImageSource {
    Remote { server: String, alias: String },
    Local(String),
}

/// The image servers LXD users know by name.
pub fn remote_url(remote: &str) -> Option<&'static str> {
    match remote {
        "ubuntu" => Some("https://cloud-images.ubuntu.com/releases"),
        "ubuntu-daily" => Some("https://cloud-images.ubuntu.com/daily"),
        "images" => Some("https://images.linuxcontainers.org"),
        _ => None,
    }
}

pub fn image_source(image: &str) -> ImageSource {
    if let Some((remote, alias)) = image.split_once(':')
        && let Some(url) = remote_url(remote)
    {
        return ImageSource::Remote {
            server: url.to_string(),
            alias: alias.to_string(),
        };
    }
    ImageSource::Local(image.to_string())
}

fn is_fingerprint(s: &str) -> bool {
    s.len() >= 12 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Waits for a global IPv4 address on eth0, polling the instance state every 200 ms until
/// `timeout`. LXD may restart under us (a few seconds); when it does not answer for 10 s, waiting
/// is pointless and the wait ends with [`IpWaitError::LxdGone`].
pub async fn wait_for_ipv4<T: Transport>(
    client: &LxdClient<T>,
    instance: &str,
    network: &str,
    timeout: Duration,
) -> Result<String, IpWaitError> {
    const LXD_GONE_AFTER: Duration = Duration::from_secs(10);
    let mut unreachable_since: Option<Instant> = None;
    let mut last_status = String::new();
    let found = Schedule::within(timeout, Duration::from_millis(200))
        .poll(async || match client.instance_state(instance).await {
            Ok(state) => {
                unreachable_since = None;
                last_status = state.status.to_string();
                Ok(state.ipv4("eth0"))
            }
            Err(e @ LxdError::Unreachable { .. }) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= LXD_GONE_AFTER {
                    return Err(IpWaitError::LxdGone {
                        instance: instance.to_string(),
                        secs: since.elapsed().as_secs(),
                        error: e,
                    });
                }
                last_status = format!("unreadable ({e})");
                Ok(None)
            }
            Err(e) => {
                last_status = format!("unreadable ({e})");
                Ok(None)
            }
        })
        .await?;
    found.ok_or_else(|| {
        IpTimeout {
            instance: instance.to_string(),
            network: network.to_string(),
            secs: timeout.as_secs(),
            status: last_status,
        }
        .into()
    })
}

/// Why no IPv4 address came.
#[derive(Debug, thiserror::Error)]
pub enum IpWaitError {
    #[error(transparent)]
    Timeout(#[from] IpTimeout),
    #[error(
        "LXD stopped answering while waiting for the IPv4 address of instance '{instance}' \
         (for {secs} s): {error}\n  Once LXD answers again, run `provision` again: it carries on \
         from this step, and the instance keeps running meanwhile"
    )]
    LxdGone {
        instance: String,
        secs: u64,
        error: LxdError,
    },
}

#[derive(Debug, thiserror::Error)]
#[error(
    "instance '{instance}' got no IPv4 address on eth0 within {secs} s (instance status: {status}).\n  \
     Likely causes: DHCP on the bridge '{network}' is not answering (is LXD's dnsmasq running? \
     `ps` should show one for {network}), or a host firewall drops DHCP or the bridge's traffic \
     (check `nft list ruleset` / `iptables -S` for rules on {network}); or the image does not \
     configure eth0 by DHCP.\n  Raise the wait with --ip-timeout SECONDS if the machine is just slow"
)]
pub struct IpTimeout {
    pub instance: String,
    pub network: String,
    pub secs: u64,
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn remote_and_local_images() {
        let mut p = LxdProvider::new("prof");
        p.image = "images:debian/12/cloud".into();
        let r = instance_request(&p, "vm1", "a1b2");
        assert_eq!(
            r.source.image,
            ImageRef::remote("https://images.linuxcontainers.org", "debian/12/cloud")
        );
        assert_eq!((r.name.as_str(), r.kind.as_str()), ("vm1", "container"));
        assert_eq!(r.profiles, ["prof"]);
        p.image = "torrust/debian-12".into();
        assert_eq!(
            instance_request(&p, "vm1", "a1b2").source.image,
            ImageRef::Alias {
                alias: "torrust/debian-12".into()
            }
        );
        p.image = "5e4b7ef03f46".into();
        assert_eq!(
            instance_request(&p, "vm1", "a1b2").source.image,
            ImageRef::Fingerprint {
                fingerprint: "5e4b7ef03f46".into()
            }
        );
    }

    #[test]
    fn user_data_has_user_key_and_port() {
        let doc = user_data("torrust", "ssh-ed25519 AAAA x\n", 2222, None);
        assert!(doc.starts_with("#cloud-config\n"));
        assert!(doc.contains("  - name: torrust\n"));
        assert!(doc.contains("      - ssh-ed25519 AAAA x\n"));
        assert!(doc.contains("Port 2222"));
        assert!(!user_data("torrust", "k", 22, None).contains("Port"));
    }

    #[test]
    fn the_host_key_made_here_is_the_only_one_cloud_init_installs() {
        let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\nNzaC1\n-----END OPENSSH PRIVATE KEY-----\n";
        let doc = user_data(
            "torrust",
            "k",
            22,
            Some((private, "ssh-ed25519 AAAAhost c\n")),
        );
        assert!(
            doc.contains("ssh_deletekeys: true\nssh_genkeytypes: []\n"),
            "{doc}"
        );
        assert!(
            doc.contains(
                "ssh_keys:\n  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    b3Blbn\n    NzaC1\n    -----END OPENSSH PRIVATE KEY-----\n  ed25519_public: ssh-ed25519 AAAAhost c\n"
            ),
            "{doc}"
        );
    }

    #[test]
    fn profile_has_nesting_limits_and_devices() {
        let mut p = LxdProvider::new("prof");
        p.cpu = Some(2);
        p.memory = Some("2GiB".into());
        let v = profile(
            &p,
            "demo",
            "a1b2",
            "cloud-init.user-data",
            "#cloud-config\n",
        );
        assert_eq!(v.config["security.nesting"], "true");
        assert_eq!(v.config["limits.cpu"], "2");
        assert_eq!(v.config["limits.memory"], "2GiB");
        assert_eq!(v.devices["root"]["pool"], "default");
        assert_eq!(v.devices["eth0"]["network"], "lxdbr0");
        assert_eq!(v.description, "torrust-tracker-deployer: environment demo");

        // As LXD answers it back.
        let mut existing: Profile = serde_json::from_value(json!({
            "name": "prof",
            "description": "torrust-tracker-deployer: environment demo",
            "config": v.config,
            "devices": v.devices,
            "used_by": null
        }))
        .unwrap();
        assert!(profile_matches(&existing, &v));
        existing.spec.config.insert("limits.cpu".into(), "4".into());
        assert!(!profile_matches(&existing, &v));
    }

    /// LXD answering `GET /1.0/instances/<name>/state` from a script; `None` is LXD not
    /// answering at all. The last answer repeats.
    struct StateScript(std::sync::Mutex<std::collections::VecDeque<Option<Value>>>);

    impl StateScript {
        fn client(answers: Vec<Option<Value>>) -> LxdClient<StateScript> {
            LxdClient::new(StateScript(std::sync::Mutex::new(answers.into())), None)
        }
    }

    impl Transport for StateScript {
        fn endpoint(&self) -> String {
            "unix:/script".into()
        }

        async fn send(
            &self,
            _method: hyper::Method,
            _path: &str,
            _headers: Vec<(&'static str, String)>,
            _body: crate::lxd::transport::Body,
        ) -> Result<crate::lxd::transport::Response, crate::lxd::transport::TransportError>
        {
            let answer = {
                let mut answers = self.0.lock().unwrap();
                if answers.len() > 1 {
                    answers.pop_front().unwrap()
                } else {
                    answers[0].clone()
                }
            };
            match answer {
                Some(state) => Ok(crate::lxd::transport::Response::new(
                    hyper::StatusCode::OK,
                    serde_json::to_vec(&json!({"type": "sync", "metadata": state})).unwrap(),
                )),
                None => Err(crate::lxd::transport::TransportError {
                    message: "connecting to /script: Connection refused (os error 111)".into(),
                    connect: Some(std::io::ErrorKind::ConnectionRefused),
                    pin_refused: None,
                }),
            }
        }
    }

    fn running(eth0: Option<&str>) -> Option<Value> {
        let addresses = eth0
            .map(
                |ip| json!([{"family": "inet", "address": ip, "netmask": "24", "scope": "global"}]),
            )
            .unwrap_or(json!(null));
        Some(json!({"status": "Running", "network": {"eth0": {"addresses": addresses}}}))
    }

    #[tokio::test(start_paused = true)]
    async fn the_address_is_read_once_the_instance_has_one() {
        let client = StateScript::client(vec![
            Some(json!({"status": "Stopped", "network": null})),
            running(None),
            None,
            running(Some("10.55.0.7")),
        ]);
        let started = Instant::now();
        let ip = wait_for_ipv4(&client, "web", "lxdbr0", Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(ip, "10.55.0.7");
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn lxd_that_stops_answering_ends_the_wait_within_ten_seconds() {
        let client = StateScript::client(vec![running(None), None]);
        let started = Instant::now();
        let err = wait_for_ipv4(&client, "web", "lxdbr0", Duration::from_secs(120))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IpWaitError::LxdGone { secs: 10, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("LXD stopped answering"), "{err}");
        assert!(err.to_string().contains("run `provision` again"), "{err}");
        // Told from the refused connection itself, not from its message.
        assert!(err.to_string().contains("LXD is not running"), "{err}");
        // Unreachable from 0.2 s on: given up 10 s later.
        assert_eq!(started.elapsed(), Duration::from_millis(10_200));
    }

    #[tokio::test(start_paused = true)]
    async fn no_address_in_time_names_the_status_and_the_bridge() {
        let client = StateScript::client(vec![running(None)]);
        let err = wait_for_ipv4(&client, "web", "lxdbr0", Duration::from_secs(3))
            .await
            .unwrap_err();
        let IpWaitError::Timeout(timeout) = &err else {
            panic!("not a timeout: {err:?}");
        };
        assert_eq!(timeout.status, "Running");
        assert_eq!(timeout.secs, 3);
        assert!(err.to_string().contains("bridge 'lxdbr0'"), "{err}");
    }
}
