//! Helpers for the tests that run against the real LXD of this machine.
//!
//! Needs LXD and the test images: `provisioning/ci/install-lxd-test-deps.sh` sets up both.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use torrust_tracker_deployer::lxd::{LxdClient, UnixSocket, find_socket};
use torrust_tracker_deployer::ssh::{ConnectOptions, PassphraseSource, Session, Target};

use super::{Run, Sandbox};

pub const IMAGE: &str = "torrust/debian-12";
pub const IMAGE_NO_CLOUD_INIT: &str = "torrust/debian-12-nocloud";

pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `base` with a suffix unique to this test process, so that two runs sharing one LXD (a
/// developer's and CI's) never touch each other's instances.
pub fn unique(base: &str) -> String {
    format!("{base}-{:04x}", std::process::id() & 0xffff)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn lxd() -> LxdClient<UnixSocket> {
    let socket = find_socket(None).unwrap_or_else(|e| {
        panic!("{e}\nThe LXD tests need LXD: run provisioning/ci/install-lxd-test-deps.sh")
    });
    LxdClient::new(UnixSocket::new(&socket), None)
}

pub fn instance_exists(name: &str) -> bool {
    runtime().block_on(lxd().instance(name)).unwrap().is_some()
}

pub fn profile_exists(name: &str) -> bool {
    runtime().block_on(lxd().profile(name)).unwrap().is_some()
}

/// Runs `script` in the instance through LXD; returns its exit code and stdout.
pub fn exec_out(instance: &str, script: &str) -> (i32, String) {
    let r = runtime()
        .block_on(lxd().exec(instance, &["sh", "-c", script]))
        .unwrap();
    (
        r.exit_code as i32,
        String::from_utf8_lossy(&r.stdout).into_owned(),
    )
}

pub fn exec_in(instance: &str, script: &str) {
    let r = runtime()
        .block_on(lxd().exec(instance, &["sh", "-c", script]))
        .unwrap();
    assert_eq!(
        r.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// An environment file for `name` on the given image, with a unique instance and profile.
pub fn env(sb: &Sandbox, name: &str, image: &str) -> String {
    let cfg = json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-test-{name}"), "image": image },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "TestAdminToken0123456789" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        }
    });
    let file = sb.env_file(&format!("{name}.json"), &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    file
}

pub fn state(sb: &Sandbox, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sb.data().join(name).join("state.json")).unwrap())
        .unwrap()
}

/// Logs in with the environment's key and pinned host key, and runs `command`.
pub fn ssh(sb: &Sandbox, name: &str, command: &str) -> String {
    let st = state(sb, name);
    let target = Target {
        host: st["host"]["ip"].as_str().unwrap().to_string(),
        port: st["host"]["ssh_port"].as_u64().unwrap() as u16,
        user: "torrust".into(),
        private_key: sb.data().join(name).join("ssh/id_ed25519"),
        known_hosts: sb.data().join(name).join("known_hosts"),
    };
    runtime().block_on(async {
        let options = ConnectOptions {
            retry_deadline: Duration::ZERO,
            passphrase: PassphraseSource::none(),
            ..ConnectOptions::default()
        };
        let session = Session::connect(&target, &options).await.unwrap();
        let out = session.exec(command).await.unwrap();
        session.close().await;
        out.stdout_str()
    })
}

/// Destroys the environment whatever happens in the test.
pub struct Cleanup<'a>(pub &'a Sandbox, pub &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let run = self.0.run(&["destroy", self.1]);
        if run.code != 0 {
            eprintln!("cleanup: destroy {} failed: {}", self.1, run.stderr);
        }
    }
}

pub fn provision(sb: &Sandbox, name: &str) -> Run {
    sb.run(&["-o", "json", "provision", name])
}
