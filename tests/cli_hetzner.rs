//! `provision` and `destroy` of a `hetzner` environment against the in-memory Hetzner Cloud API
//! (tests/support/hetzner_api.rs): the objects made and their labels, the firewall's rules,
//! convergence, the API's errors and rate limits with their kinds, pagination, and resuming
//! after the binary was killed (SIGKILL) in the middle of a request. Where provision must reach
//! the server over SSH, the API gives the server the address of a private OpenSSH server on
//! loopback (tests/support/sshd.rs) that runs with the host key the deployer made for the
//! environment (ADR 26) and a `cloud-init` stand-in that reports `status: done`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{Run, Sandbox, minimal};
use crate::support::hetzner_api::{Fault, HetznerApi, TOKEN};
use crate::support::sshd::{Sshd, TEST_USER, free_port, require_test_user, set_mode};

const API_URL_VAR: &str = "TORRUST_HETZNER_API_URL";

fn hetzner_file(name: &str, token: &str, port: u16) -> Value {
    let mut v = minimal(name);
    v["provider"] = json!({
        "provider": "hetzner", "api_token": token,
        "server_type": "cx22", "location": "nbg1", "image": "ubuntu-24.04"
    });
    v["ssh_credentials"] = json!({ "username": TEST_USER, "port": port });
    v
}

struct Env {
    sb: Sandbox,
    api: HetznerApi,
    name: String,
}

impl Env {
    /// A sandbox with environment `name` (token `token`, SSH port `port`) and a fresh API.
    fn new(name: &str, token: &str, port: u16) -> Env {
        let sb = Sandbox::new();
        let file = sb.env_file(&format!("{name}.json"), &hetzner_file(name, token, port));
        sb.run(&["create", "environment", "--env-file", &file]).ok();
        Env {
            sb,
            api: HetznerApi::start(),
            name: name.into(),
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let mut c = self.sb.command(&all);
        c.env(API_URL_VAR, &self.api.url)
            .env_remove("HCLOUD_TOKEN")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().expect("binary runs").into()
    }

    fn provision(&self) -> Run {
        self.run(&["provision", &self.name, "--ssh-timeout", "30"])
    }

    fn destroy(&self) -> Run {
        self.run(&["destroy", &self.name])
    }

    fn state(&self) -> Value {
        let text =
            std::fs::read_to_string(self.sb.data().join(&self.name).join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn id(&self) -> String {
        self.state()["id"].as_str().unwrap().to_string()
    }

    /// Runs `args` until the API holds the request `method path*`, then kills the binary with
    /// SIGKILL.
    fn kill_at(&self, args: &[&str], method: &str, path: &str) {
        let held = self.api.hold(method, path);
        let mut child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let reached = loop {
            if held.recv_timeout(Duration::from_millis(100)).is_ok() {
                break true;
            }
            if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60) {
                break false;
            }
        };
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        assert!(reached, "the binary never sent {method} {path}");
        self.api.clear_faults();
    }
}

/// The error document of a failed run: its kind and message.
#[track_caller]
fn failed(run: &Run, kind: &str) -> String {
    assert_eq!(run.code, 1, "{run:#?}");
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], kind, "{run:#?}");
    let message = doc["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
    assert!(
        !run.stderr.contains(TOKEN),
        "the token leaked: {}",
        run.stderr
    );
    message
}

fn labelled<'a>(items: &'a [Value], id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|i| i["labels"]["torrust-deployer-id"] == id)
        .collect()
}

/// A firewall's rules as `PORT/PROTOCOL`.
fn rule_strings(firewall: &Value) -> Vec<String> {
    firewall["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["port"].as_str().unwrap(),
                r["protocol"].as_str().unwrap()
            )
        })
        .collect()
}

/// The environment, plus an sshd that the API's servers point at: the environment's key
/// authorized, the host key the deployer will give the server, `cloud-init` that is done.
fn with_sshd(name: &str) -> (Env, Sshd) {
    with_sshd_keyed(name, true)
}

/// As [`with_sshd`]; with `same_host_key` false, the sshd keeps a host key of its own (another
/// machine answering at the server's address).
fn with_sshd_keyed(name: &str, same_host_key: bool) -> (Env, Sshd) {
    require_test_user();
    let port = free_port();
    let mut sshd = Sshd::prepare(port);
    let env = Env::new(name, TOKEN, port);
    let bin = sshd.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("cloud-init");
    std::fs::write(&fake, "#!/bin/sh\necho 'status: done'\n").unwrap();
    set_mode(&bin, 0o755);
    set_mode(&fake, 0o755);
    sshd.extra_config = format!("SetEnv PATH={}:/usr/bin:/bin\n", bin.display());
    let ssh = env.sb.data().join(name).join("ssh");
    sshd.authorize(TEST_USER, &ssh.join("id_ed25519"));
    if same_host_key {
        // The host key the deployer makes for the environment is the one this sshd presents.
        std::fs::copy(&sshd.host_key, ssh.join("host_ed25519")).unwrap();
        let mut public = sshd.host_key.as_os_str().to_owned();
        public.push(".pub");
        std::fs::copy(Path::new(&public), ssh.join("host_ed25519.pub")).unwrap();
        set_mode(&ssh.join("host_ed25519"), 0o600);
    }
    sshd.launch();
    (env, sshd)
}

#[test]
fn provision_makes_a_labelled_key_firewall_and_server_converges_and_destroy_removes_them() {
    let (env, _sshd) = with_sshd("hz-full");
    let foreign_key = env.api.add_ssh_key(
        "someone-else",
        crate::common::TEST_RSA_PUBLIC_KEY,
        json!({}),
    );
    let foreign_server = env.api.add_server("not-ours", json!({"team": "web"}));
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    let id = env.id();

    let servers = env.api.servers();
    let ours = labelled(&servers, &id);
    assert_eq!(ours.len(), 1, "{servers:#?}");
    let server = ours[0];
    assert_eq!(server["name"], "torrust-tracker-vm-hz-full");
    assert_eq!(server["labels"]["torrust-deployer-env"], "hz-full");
    // The user-data carries the user, the login key and the host key made here.
    let user_data = env.api.user_data("torrust-tracker-vm-hz-full").unwrap();
    let host_pub =
        std::fs::read_to_string(env.sb.data().join("hz-full/ssh/host_ed25519.pub")).unwrap();
    let login_pub =
        std::fs::read_to_string(env.sb.data().join("hz-full/ssh/id_ed25519.pub")).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(
        user_data.contains(&format!("- name: {TEST_USER}")),
        "{user_data}"
    );
    assert!(user_data.contains(login_pub.trim()), "{user_data}");
    assert!(
        user_data.contains(&format!("ed25519_public: {}", host_pub.trim())),
        "{user_data}"
    );
    assert!(user_data.contains("ssh_deletekeys: true"), "{user_data}");

    let keys = env.api.ssh_keys();
    assert_eq!(labelled(&keys, &id).len(), 1, "{keys:#?}");
    let firewalls = env.api.firewalls();
    let fw = labelled(&firewalls, &id);
    assert_eq!(fw.len(), 1, "{firewalls:#?}");
    let mut rules: Vec<String> = rule_strings(fw[0]);
    rules.sort();
    let ssh_rule = format!("{}/tcp", env.state()["host"]["ssh_port"]);
    let mut want = vec![
        "1212/tcp".to_string(),
        "6969/udp".into(),
        "7070/tcp".into(),
        ssh_rule,
    ];
    want.sort();
    assert_eq!(rules, want, "exactly SSH and the published ports");
    assert_eq!(server["public_net"]["firewalls"][0]["id"], fw[0]["id"]);

    let state = env.state();
    assert_eq!(state["lifecycle"], "provisioned");
    assert_eq!(state["host"]["ip"], "127.0.0.1");
    assert_eq!(state["hetzner"]["server_id"], server["id"]);
    let ipv6 = state["hetzner"]["ipv6"].as_str().unwrap();
    assert!(
        ipv6.starts_with("2001:db8:") && ipv6.ends_with("::1"),
        "{ipv6}"
    );

    // Again: everything is found by its label; nothing is made or changed.
    // (Below, after a port changes, the firewall's rules follow; with `firewall: false` it goes.)
    let posts = env.api.count("POST ");
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["changed"], false, "{run:#?}");
    assert_eq!(env.api.count("POST "), posts);

    let run = env.destroy();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(labelled(&env.api.servers(), &id).is_empty());
    assert!(labelled(&env.api.ssh_keys(), &id).is_empty());
    assert!(labelled(&env.api.firewalls(), &id).is_empty());
    // What lacks the label is untouched.
    assert!(env.api.servers().iter().any(|s| s["id"] == foreign_server));
    assert!(env.api.ssh_keys().iter().any(|k| k["id"] == foreign_key));
    assert!(env.state().get("hetzner").is_none());
    // And again: nothing left to do.
    let deletes = env.api.count("DELETE ");
    assert_eq!(env.destroy().code, 0);
    assert_eq!(env.api.count("DELETE "), deletes);
}

#[test]
fn kill_9_while_the_server_is_created_then_a_rerun_makes_no_second_one() {
    let (env, _sshd) = with_sshd("hz-kill");
    // The API creates the server but the answer never comes: the binary dies not knowing it.
    env.kill_at(&["provision", "hz-kill"], "POST", "/servers");
    assert_eq!(env.api.servers().len(), 1);
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(env.api.servers().len(), 1, "no second server");
    assert_eq!(env.api.ssh_keys().len(), 1, "no second key");
    assert_eq!(env.api.firewalls().len(), 1, "no second firewall");
    assert_eq!(env.api.count("POST /servers"), 1);
    assert_eq!(env.api.count("POST /ssh_keys"), 1);

    // Killed while deleting the firewall, and the state's record of the objects lost: destroy
    // finds what is left by its label.
    env.kill_at(&["destroy", "hz-kill"], "DELETE", "/firewalls/");
    let path = env.sb.data().join("hz-kill").join("state.json");
    let mut state = env.state();
    state.as_object_mut().unwrap().remove("hetzner");
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let run = env.destroy();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(env.api.servers().is_empty());
    assert!(env.api.ssh_keys().is_empty());
    assert!(env.api.firewalls().is_empty());
}

#[test]
fn an_action_that_ends_in_error_fails_and_a_rerun_converges() {
    let (env, _sshd) = with_sshd("hz-action");
    env.api.fail_actions("create_server");
    let message = failed(&env.provision(), "hetzner_action_failed");
    assert!(
        message.contains("create_server") && message.contains("run the command again"),
        "{message}"
    );
    env.api.clear_faults();
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(env.api.servers().len(), 1);
    assert_eq!(env.api.servers()[0]["status"], "running");
    assert_eq!(
        env.api.count("POST /servers/"),
        1,
        "powered on once: {:?}",
        env.api.requests()
    );
}

#[test]
fn a_refused_or_missing_token_is_hetzner_unauthorized_and_never_shown() {
    let env = Env::new("hz-token", "wrong-token-0123", 22);
    let checked = env.run(&["check", "hz-token"]);
    let api_check = |run: &Run| {
        let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| run.json());
        let checks = doc["checks"].as_array().cloned().unwrap_or_default();
        checks
            .into_iter()
            .find(|c| c["check"] == "Hetzner Cloud API")
            .unwrap_or_else(|| panic!("no Hetzner check: {run:#?}"))
    };
    assert_eq!(api_check(&checked)["ok"], false, "{checked:#?}");
    let message = failed(&env.provision(), "hetzner_unauthorized");
    assert!(
        message.contains("refused the token") && message.contains("HCLOUD_TOKEN"),
        "{message}"
    );
    assert!(!message.contains("wrong-token-0123"), "{message}");
    assert!(env.api.servers().is_empty());

    // An empty token in the file: HCLOUD_TOKEN, else a clear error.
    let env = Env::new("hz-envtoken", "", 22);
    let checked: Run = env
        .cmd(&["check", "hz-envtoken"])
        .env("HCLOUD_TOKEN", TOKEN)
        .output()
        .unwrap()
        .into();
    assert_eq!(api_check(&checked)["ok"], true, "{checked:#?}");
    let message = failed(&env.provision(), "hetzner_unauthorized");
    assert!(message.contains("HCLOUD_TOKEN is not set"), "{message}");
    env.api.fail(Fault::new(
        "POST",
        "/servers",
        403,
        "resource_limit_exceeded",
    ));
    let run: Run = env
        .cmd(&["provision", "hz-envtoken"])
        .env("HCLOUD_TOKEN", TOKEN)
        .output()
        .unwrap()
        .into();
    failed(&run, "hetzner_limit");
}

#[test]
fn the_apis_errors_each_have_their_kind_and_fix() {
    let cases = [
        (
            Fault::new("POST", "/servers", 403, "resource_limit_exceeded")
                .details(json!({"limits": [{"name": "server_limit"}]})),
            "hetzner_limit",
            "server_limit",
        ),
        (
            Fault::new("POST", "/servers", 400, "invalid_input")
                .details(json!({"fields": [{"name": "location", "messages": ["unsupported location for server type"]}]})),
            "hetzner_unavailable",
            "provider.location",
        ),
        (
            Fault::new("POST", "/servers", 503, "resource_unavailable"),
            "hetzner_unavailable",
            "provider.server_type",
        ),
        (
            Fault::new("POST", "/firewalls", 409, "uniqueness_error"),
            "hetzner_conflict",
            "left alone",
        ),
        (
            Fault::new("GET", "/servers", 500, "server_error"),
            "hetzner_failed",
            "server_error",
        ),
    ];
    for (fault, kind, fix) in cases {
        let env = Env::new("hz-errors", TOKEN, 22);
        env.api.fail(fault);
        let message = failed(&env.provision(), kind);
        assert!(message.contains(fix), "{kind}: {message}");
    }
}

#[test]
fn a_server_of_the_same_name_without_the_label_is_left_alone() {
    let env = Env::new("hz-foreign", TOKEN, 22);
    let other = env
        .api
        .add_server("torrust-tracker-vm-hz-foreign", json!({}));
    let message = failed(&env.provision(), "foreign_resource");
    assert!(
        message.contains("Hetzner Cloud") && message.contains("--adopt-foreign"),
        "{message}"
    );
    assert_eq!(env.api.servers()[0]["id"], other);
    assert_eq!(env.api.servers()[0]["labels"], json!({}));
    assert_eq!(env.destroy().code, 0);
    assert_eq!(
        env.api.servers().len(),
        1,
        "destroy never deletes what lacks the label"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_rate_limit_is_waited_out_until_its_reset_and_then_reported() {
    let env = Env::new("hz-rate", TOKEN, 22);
    let reset = (unix_now() + 2).to_string();
    env.api.fail(
        Fault::new("GET", "/servers", 429, "rate_limit_exceeded")
            .header("RateLimit-Reset", &reset)
            .header("RateLimit-Remaining", "0"),
    );
    // Stop once past the rate limit.
    env.api.fail(Fault::new(
        "POST",
        "/ssh_keys",
        403,
        "resource_limit_exceeded",
    ));
    let started = Instant::now();
    failed(&env.provision(), "hetzner_limit");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env.api.count("GET /servers"), 2, "{:?}", env.api.requests());

    let env = Env::new("hz-rate", TOKEN, 22);
    let now = unix_now().to_string();
    env.api.fail(
        Fault::new("GET", "/servers", 429, "rate_limit_exceeded")
            .header("RateLimit-Reset", &now)
            .times(100),
    );
    let message = failed(&env.provision(), "hetzner_rate_limited");
    assert!(
        message.contains("429") && message.contains("resumes"),
        "{message}"
    );
    assert_eq!(env.api.count("GET /servers"), 5);
}

#[test]
fn a_key_already_in_the_project_is_found_through_every_page_and_never_deleted() {
    let env = Env::new("hz-pages", TOKEN, 22);
    env.api.max_per_page(2);
    for i in 0..5 {
        env.api.add_ssh_key(
            &format!("k{i}"),
            &format!("ssh-ed25519 AAAAfake{i}"),
            json!({}),
        );
    }
    let public =
        std::fs::read_to_string(env.sb.data().join("hz-pages/ssh/id_ed25519.pub")).unwrap();
    let mine = env
        .api
        .add_ssh_key("uploaded-by-hand", public.trim(), json!({}));
    env.api.fail(Fault::new(
        "POST",
        "/servers",
        403,
        "resource_limit_exceeded",
    ));
    failed(&env.provision(), "hetzner_limit");
    let state = env.state();
    assert_eq!(state["hetzner"]["ssh_key_id"], mine);
    assert_eq!(state["hetzner"]["ssh_key_ours"], false);
    assert!(
        env.api.count("GET /ssh_keys?page=3") == 1,
        "{:?}",
        env.api.requests()
    );
    assert_eq!(env.destroy().code, 0);
    assert_eq!(
        env.api.ssh_keys().len(),
        6,
        "the key uploaded by hand stays"
    );
    assert!(env.api.firewalls().is_empty());
}

#[test]
fn the_firewall_can_be_turned_off() {
    let sb = Sandbox::new();
    let mut file = hetzner_file("hz-nofw", TOKEN, 22);
    file["provider"]["firewall"] = json!(false);
    let path = sb.env_file("hz-nofw.json", &file);
    sb.run(&["create", "environment", "--env-file", &path]).ok();
    let api = HetznerApi::start();
    api.fail(Fault::new(
        "POST",
        "/servers",
        403,
        "resource_limit_exceeded",
    ));
    let run: Run = sb
        .command(&["-o", "json", "provision", "hz-nofw"])
        .env(API_URL_VAR, &api.url)
        .output()
        .unwrap()
        .into();
    failed(&run, "hetzner_limit");
    assert!(api.firewalls().is_empty());
    assert_eq!(api.count("POST /firewalls"), 0);
}

#[test]
fn kill_9_at_each_step_of_provision_and_destroy_still_converges_with_one_of_each() {
    let (env, _sshd) = with_sshd("hz-kills");
    // One kill per step, each in a request the API carries out but never answers; every rerun
    // picks up what the killed ones left.
    for (method, path) in [
        ("GET", "/servers"),
        ("POST", "/ssh_keys"),
        ("POST", "/firewalls"),
        // The server is made and answered; killed while waiting for its actions. (Killed in the
        // POST itself, unanswered: the test above.)
        ("GET", "/actions/"),
        ("GET", "/servers/"),
    ] {
        env.kill_at(&["provision", "hz-kills"], method, path);
        assert!(env.api.servers().len() <= 1, "after {method} {path}");
        assert!(env.api.ssh_keys().len() <= 1, "after {method} {path}");
        assert!(env.api.firewalls().len() <= 1, "after {method} {path}");
    }
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    let id = env.id();
    assert_eq!(labelled(&env.api.servers(), &id).len(), 1);
    assert_eq!(labelled(&env.api.ssh_keys(), &id).len(), 1);
    assert_eq!(labelled(&env.api.firewalls(), &id).len(), 1);
    assert_eq!(
        env.api.count("POST /servers"),
        1,
        "{:?}",
        env.api.requests()
    );

    for (method, path) in [("DELETE", "/servers/"), ("DELETE", "/ssh_keys/")] {
        env.kill_at(&["destroy", "hz-kills"], method, path);
    }
    let run = env.destroy();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(env.api.servers().is_empty());
    assert!(env.api.ssh_keys().is_empty());
    assert!(env.api.firewalls().is_empty());
}

#[test]
fn adopt_foreign_labels_a_server_of_the_environments_name() {
    let (env, _sshd) = with_sshd("hz-adopt");
    let other = env
        .api
        .add_server("torrust-tracker-vm-hz-adopt", json!({"team": "web"}));
    failed(&env.provision(), "foreign_resource");
    let run = env.run(&[
        "provision",
        "hz-adopt",
        "--adopt-foreign",
        "--ssh-timeout",
        "30",
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    let servers = env.api.servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], other);
    assert_eq!(
        servers[0]["labels"]["torrust-deployer-id"],
        env.id().as_str()
    );
    assert_eq!(
        servers[0]["labels"]["team"], "web",
        "its other labels are kept"
    );
    assert_eq!(env.api.count("POST /servers"), 0);
    // Adopted, it is now this environment's: destroy deletes it.
    assert_eq!(env.destroy().code, 0);
    assert!(env.api.servers().is_empty());
}

/// Edits the environment's stored configuration (what `deploy --env-file` would store).
fn edit_config(env: &Env, f: impl FnOnce(&mut Value)) {
    let path = env.sb.data().join(&env.name).join("state.json");
    let mut state = env.state();
    f(&mut state["config"]);
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
}

#[test]
fn the_firewall_follows_the_published_ports_and_goes_when_turned_off() {
    let (env, _sshd) = with_sshd("hz-fw");
    assert_eq!(env.provision().code, 0);
    edit_config(&env, |c| {
        c["tracker"]["udp_trackers"][0]["bind_address"] = json!("0.0.0.0:6970");
    });
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    let fw = &env.api.firewalls()[0];
    let rules: Vec<String> = rule_strings(fw);
    assert!(rules.contains(&"6970/udp".to_string()), "{rules:?}");
    assert!(!rules.contains(&"6969/udp".to_string()), "{rules:?}");
    assert_eq!(
        env.api.count("POST /firewalls/"),
        1,
        "{:?}",
        env.api.requests()
    );

    edit_config(&env, |c| c["provider"]["firewall"] = json!(false));
    let run = env.provision();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(env.api.firewalls().is_empty());
    assert_eq!(env.api.servers()[0]["public_net"]["firewalls"], json!([]));
    assert_eq!(env.api.servers().len(), 1);
}

#[test]
fn a_server_made_by_a_killed_run_is_reached_only_with_the_host_key_made_here() {
    // The machine at the server's address presents another host key than the one the deployer
    // made and put in the user-data: after a kill -9 right after the create, the rerun still
    // pins the key made here and refuses that machine, instead of trusting it on first use.
    let (env, _sshd) = with_sshd_keyed("hz-pin", false);
    env.kill_at(&["provision", "hz-pin"], "POST", "/servers");
    let run = env.provision();
    let message = failed(&run, "ssh_host_key_changed");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert_eq!(env.api.servers().len(), 1);
}
