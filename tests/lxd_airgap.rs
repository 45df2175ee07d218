//! Air-gapped end to end on LXD: a host that reaches nothing but the operator's SSH.
//!
//! The test's own LXD bridge without NAT, plus a reject rule (in an nftables table of the
//! test's own) for everything forwarded out of it, so the instance has no route out; both are
//! removed when the test ends, whatever happens. The images come from `image pull` against a
//! real local registry (Debian's `docker-registry` on loopback) holding the offline bundle's
//! images, pushed there by the test; the packages from `host.offline_packages`, a `.deb`
//! directory built by provisioning/offline/build-deb-dir.sh. Asserted first: the instance
//! cannot reach its Debian mirror. Then `deploy`: configure, release from the pulled bundle,
//! run, test.
//!
//! Needs LXD, the test images, the offline bundle (`TORRUST_TEST_BUNDLE`), docker-registry and
//! the .deb directory (`TORRUST_TEST_DEBS`, default
//! /var/cache/torrust-deployer/offline-debs/bookworm): provisioning/test.sh prepares them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use torrust_tracker_deployer::oci::Reference;

use crate::common::Sandbox;
use crate::common::lxd::*;
use crate::support::registry::{Push, Registry};

fn dir_from_env(var: &str, default: &str, how: &str) -> PathBuf {
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        dir.is_dir(),
        "nothing at {} ({var}): run `{how}`",
        dir.display()
    );
    dir
}

fn run_cmd(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An LXD bridge of the test's own without NAT, and an nftables table of its own that rejects
/// everything forwarded out of it. Dropped: both removed (after the instance is gone).
struct IsolatedNetwork {
    name: String,
    table: String,
}

impl IsolatedNetwork {
    fn create() -> Self {
        let id = std::process::id() & 0xffff;
        let name = format!("tair-{id:04x}");
        let table = format!("torrust_air_{id:04x}");
        // A /24 no route of this machine uses yet.
        let (_, routes) = run_cmd("ip", &["-4", "route"]);
        let third = (0..200)
            .map(|i| (id as usize + i) % 200 + 20)
            .find(|n| !routes.contains(&format!("10.123.{n}.")))
            .expect("a free subnet");
        let net = Self { name, table };
        let (ok, out) = run_cmd(
            "lxc",
            &[
                "network",
                "create",
                &net.name,
                &format!("ipv4.address=10.123.{third}.1/24"),
                "ipv4.nat=false",
                "ipv6.address=none",
            ],
        );
        assert!(ok, "lxc network create {}: {out}", net.name);
        let chain = "{ type filter hook forward priority filter - 1; policy accept; }";
        for args in [
            vec!["add", "table", "inet", &net.table],
            vec!["add", "chain", "inet", &net.table, "egress_block", chain],
            vec![
                "add",
                "rule",
                "inet",
                &net.table,
                "egress_block",
                "iifname",
                &net.name,
                "oifname",
                "!=",
                &net.name,
                "reject",
                "with",
                "icmpx",
                "type",
                "admin-prohibited",
            ],
        ] {
            let (ok, out) = run_cmd("nft", &args);
            assert!(ok, "nft {args:?}: {out}");
        }
        net
    }
}

impl Drop for IsolatedNetwork {
    fn drop(&mut self) {
        let (ok, out) = run_cmd("nft", &["delete", "table", "inet", &self.table]);
        if !ok {
            eprintln!("cleanup: nft delete table inet {}: {out}", self.table);
        }
        let (ok, out) = run_cmd("lxc", &["network", "delete", &self.name]);
        if !ok {
            eprintln!("cleanup: lxc network delete {}: {out}", self.name);
        }
    }
}

/// Pushes the bundle's archives of `images` to the registry, each under its own repository
/// path; returns image -> image ID as the bundle's manifest.json states it.
fn push_bundle(registry: &Registry, bundle: &Path, images: &[String]) -> BTreeMap<String, String> {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap())
            .unwrap();
    let mut ids = BTreeMap::new();
    for image in images {
        let entry = index["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["image"] == image.as_str())
            .unwrap_or_else(|| panic!("the bundle {} lacks {image}", bundle.display()));
        let r = Reference::parse(image).unwrap();
        let (id, _) = registry.push_archive(
            &bundle.join(entry["file"].as_str().unwrap()),
            &r.repository,
            r.tag.as_deref().unwrap(),
            Push::DockerGzip,
        );
        assert_eq!(entry["id"].as_str(), Some(id.as_str()), "{image}");
        ids.insert(image.clone(), id);
    }
    ids
}

/// The first `http://host` URI of this machine's apt sources, as `host:80`.
fn this_machines_mirror() -> String {
    let mut text = String::new();
    for path in ["/etc/apt/sources.list", "/etc/apt/sources.list.d"] {
        let p = Path::new(path);
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![p.to_path_buf()]
        };
        for f in files {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    let host = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .expect("an http:// mirror in this machine's apt sources");
    format!("{host}:80")
}

fn source_bundle() -> PathBuf {
    dir_from_env(
        "TORRUST_TEST_BUNDLE",
        "/var/cache/torrust-deployer/bundle/current",
        "bash provisioning/images/build-offline-bundle.sh",
    )
}

#[test]
#[ignore = "needs LXD, the offline bundle, docker-registry and the .deb directory: provisioning/test.sh prepares them and runs it"]
fn pulled_images_and_offline_packages_deploy_on_a_host_without_egress() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let debs = dir_from_env(
        "TORRUST_TEST_DEBS",
        "/var/cache/torrust-deployer/offline-debs/bookworm",
        "bash provisioning/offline/build-deb-dir.sh",
    );
    deploy_without_egress("air", json!({ "offline_packages": debs }));
}

/// The packages through this machine's mirror, carried over the deployer's SSH connection
/// (remote forwarding): the instance itself still cannot reach the mirror.
#[test]
#[ignore = "needs LXD, the offline bundle and docker-registry: provisioning/test.sh prepares them and runs it"]
fn packages_through_a_mirror_carried_over_ssh_on_a_host_without_egress() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    deploy_without_egress(
        "air-fwd",
        json!({ "apt_proxy_over_ssh": this_machines_mirror() }),
    );
}

/// Pull → bundle, an isolated instance (asserted), then `deploy` with `host` as given.
fn deploy_without_egress(base: &str, host: Value) {
    let source = source_bundle();
    // Declared before `_cleanup`: dropped after it, once the instance using it is destroyed.
    let network = IsolatedNetwork::create();
    let sb = Sandbox::new();
    let name = &unique(base);
    let pulled = sb.path().join("pulled-bundle");
    std::fs::create_dir_all(&pulled).unwrap();
    let cfg = json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": {
            "provider": "lxd", "profile_name": format!("torrust-test-{name}"), "image": IMAGE,
            "network": network.name
        },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "AirAdminToken0123456789abc" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "prometheus": { "scrape_interval_in_secs": 15 },
        "images": { "offline_bundle": pulled },
        "host": host
    });
    let file = sb.env_file(&format!("{name}.json"), &cfg);

    // The images: pushed from the bundle to a local registry, pulled back by the deployer.
    let registry = Registry::start();
    let rendered = sb
        .run(&[
            "-o",
            "json",
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "10.0.0.1",
            "--output-dir",
            sb.path().join("r").to_str().unwrap(),
        ])
        .ok()
        .json();
    let images: Vec<String> = rendered["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    let ids = push_bundle(&registry, &source, &images);
    let pull = sb
        .run(&[
            "-o",
            "json",
            "image",
            "pull",
            "--env-file",
            &file,
            "--registry",
            &registry.addr,
            "--out",
            pulled.to_str().unwrap(),
        ])
        .ok()
        .json();
    let got: BTreeMap<String, String> = pull["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, ids, "{pull:#}");
    drop(registry);

    // The instance, on the isolated bridge: it cannot reach its mirror.
    let _cleanup = Cleanup(&sb, name);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    sb.run(&["-o", "json", "provision", name]).ok();
    let instance = state(&sb, name)["host"]["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mirror) = exec_out(
        &instance,
        "grep -rhoE 'https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1",
    );
    let mirror = mirror.trim();
    assert!(
        mirror.starts_with("http"),
        "no mirror in the image's apt sources: {mirror:?}"
    );
    let (_, rc) = exec_out(
        &instance,
        &format!("curl -sS -m 5 -o /dev/null '{mirror}' 2>/dev/null; echo $?"),
    );
    assert_ne!(
        rc.trim(),
        "0",
        "the instance reached {mirror}: the network is not isolated"
    );

    // deploy goes on from there: configure from the .deb directory, release from the pulled
    // bundle, run, test.
    let deployed = sb.run(&["-o", "json", "deploy", name, "--env-file", &file]);
    assert_eq!(deployed.code, 0, "{deployed:#?}");
    let (_, installed) = exec_out(&instance, "dpkg-query -W -f='${Version}' docker.io");
    assert!(!installed.is_empty(), "docker.io not installed");
    let (_, ids_there) = exec_out(&instance, "docker images -q --no-trunc | sort -u");
    for id in ids.values() {
        assert!(
            ids_there.contains(id.as_str()),
            "{id} not on the host: {ids_there}"
        );
    }
    let report = sb.run(&["-o", "json", "test", name]).ok().json();
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{report:#}"
    );
    // Still isolated at the end.
    let (_, rc) = exec_out(
        &instance,
        &format!("curl -sS -m 5 -o /dev/null '{mirror}' 2>/dev/null; echo $?"),
    );
    assert_ne!(rc.trim(), "0");
}
