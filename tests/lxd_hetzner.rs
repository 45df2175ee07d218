//! `deploy` of a `hetzner` environment end to end, through the Hetzner code path: the tests'
//! Hetzner Cloud API (tests/support/hetzner_api.rs) makes a real LXD container from the test
//! image for each server it creates, with the server's user-data as its cloud-init user-data
//! (so the user, the login key and the host key made by the deployer come in exactly as on
//! Hetzner), and deletes it with the server. Everything after provision (configure, release,
//! run, test) runs over SSH against that container, as it would against a Hetzner server.
//!
//! Needs LXD, the test image, the tracker build and the offline bundle: `provisioning/test.sh`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use torrust_tracker_deployer::lxd::StateAction;
use torrust_tracker_deployer::lxd::api::{ImageRef, InstanceSource, NewInstance};

use crate::common::lxd::{IMAGE, ONE_AT_A_TIME, instance_exists, lxd, runtime, state, unique};
use crate::common::{Run, Sandbox};
use crate::support::hetzner_api::{CreateHook, DeleteHook, HetznerApi, TOKEN};

fn bundle() -> PathBuf {
    std::env::var_os("TORRUST_TEST_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/torrust-deployer/bundle/current"))
}

/// Makes the container of a new server: the test image, the server's user-data, nesting for
/// Docker; started; its IPv4 address returned.
async fn make_container(name: &str, user_data: &str) -> Result<String, String> {
    let c = lxd();
    let server = c.server().await.map_err(|e| e.to_string())?;
    // LXD before 5.5 (and its `cloud_init` extension) reads `user.user-data`.
    let key = if server.has_extension("cloud_init") {
        "cloud-init.user-data"
    } else {
        "user.user-data"
    };
    let request = NewInstance {
        name: name.to_string(),
        kind: "container".into(),
        profiles: vec!["default".into()],
        source: InstanceSource {
            image: ImageRef::Alias {
                alias: IMAGE.into(),
            },
        },
        config: BTreeMap::from([
            (key.to_string(), user_data.to_string()),
            ("security.nesting".into(), "true".into()),
        ]),
    };
    c.create_instance(&request)
        .await
        .map_err(|e| e.to_string())?;
    c.change_state(name, StateAction::Start, false)
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..600 {
        let st = c.instance_state(name).await.map_err(|e| e.to_string())?;
        if let Some(ip) = st.ipv4("eth0") {
            return Ok(ip);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("container {name} got no IPv4 address in 120 s"))
}

async fn remove_container(name: &str) {
    let c = lxd();
    let _ = c.change_state(name, StateAction::Stop, true).await;
    if let Err(e) = c.delete_instance(name).await {
        eprintln!("deleting container {name}: {e}");
    }
}

fn lxd_backed_api() -> HetznerApi {
    let api = HetznerApi::start();
    let create: CreateHook =
        Arc::new(|name, user_data| runtime().block_on(make_container(name, user_data)));
    let delete: DeleteHook = Arc::new(|name| runtime().block_on(remove_container(name)));
    api.on_create(create, delete);
    api
}

fn run(sb: &Sandbox, api: &HetznerApi, args: &[&str]) -> Run {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    sb.command(&all)
        .env("TORRUST_HETZNER_API_URL", &api.url)
        .env_remove("HCLOUD_TOKEN")
        .output()
        .expect("binary runs")
        .into()
}

/// Destroys the environment whatever happens, and removes a container left behind.
struct Cleanup<'a>(&'a Sandbox, &'a HetznerApi, String, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let r = run(self.0, self.1, &["destroy", &self.2]);
        if r.code != 0 {
            eprintln!("cleanup: destroy {} failed: {}", self.2, r.stderr);
        }
        if instance_exists(&self.3) {
            runtime().block_on(remove_container(&self.3));
        }
    }
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn a_hetzner_environment_deploys_end_to_end_and_destroys() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let api = lxd_backed_api();
    let name = unique("hz-e2e");
    let server = format!("torrust-tracker-vm-{name}");
    let file: Value = json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": {
            "provider": "hetzner", "api_token": TOKEN,
            "server_type": "cx22", "location": "nbg1", "image": "ubuntu-24.04"
        },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "HzE2eAdminToken0123456789" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "images": { "offline_bundle": bundle() }
    });
    let path = sb.env_file(&format!("{name}.json"), &file);
    let _cleanup = Cleanup(&sb, &api, name.clone(), server.clone());

    let deployed = run(&sb, &api, &["deploy", &name, "--env-file", &path]);
    assert_eq!(deployed.code, 0, "{deployed:#?}");
    let doc = deployed.json();
    assert_eq!(doc["changed"], true, "{doc:#}");
    assert!(
        instance_exists(&server),
        "the API made the server as a container"
    );
    let st = state(&sb, &name);
    assert_eq!(st["lifecycle"], "running");
    assert!(st["hetzner"]["server_id"].is_i64(), "{st:#}");
    assert_eq!(api.servers().len(), 1);

    // The tracker works, from here, over the real protocols.
    let tested = run(&sb, &api, &["test", &name]);
    assert_eq!(tested.code, 0, "{tested:#?}");
    let report = tested.json();
    let results = report["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["ok"] == true), "{report:#}");

    // A second deploy changes nothing and makes nothing in the API.
    let posts = api.count("POST ");
    let again = run(&sb, &api, &["deploy", &name, "--env-file", &path]);
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(again.json()["changed"], false, "{again:#?}");
    assert_eq!(api.count("POST "), posts);

    // destroy deletes the server (and so the container), the firewall and the key.
    let destroyed = run(&sb, &api, &["destroy", &name]);
    assert_eq!(destroyed.code, 0, "{destroyed:#?}");
    assert!(api.servers().is_empty() && api.firewalls().is_empty() && api.ssh_keys().is_empty());
    assert!(
        !instance_exists(&server),
        "the container went with the server"
    );
}
