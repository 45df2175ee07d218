//! Each error kind reachable without LXD, produced for real through the binary with
//! `--output json`: its `kind` in stdout's one document, its exit code, and on stderr the JSON
//! event lines (the failed step's `step_failed` event, the last `error` line), every line
//! parseable. The SSH kinds use a real OpenSSH server on a loopback port (tests/support/sshd.rs)
//! as a registered host. Needs /usr/sbin/sshd and the test user:
//! `sudo bash provisioning/ci/install-sshd-test-deps.sh`.

use crate::support::sshd;

use crate::common;

use std::fs::File;

use common::{Run, Sandbox, minimal};
use serde_json::{Value, json};
use sshd::{Sshd, TEST_USER, require_test_user};

/// Runs the binary with `-o json` (and no ssh-agent, so only the environment's key is offered).
fn run_json(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    sb.command(&all)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("binary runs")
        .into()
}

/// Every stderr line, parsed (panics on a line that is not a JSON object).
fn event_lines(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}\n{run:#?}"));
            assert!(v.is_object() && v["event"].is_string(), "{l}");
            v
        })
        .collect()
}

/// Checks a failed run: exit code, stdout's document, and stderr's last `error` line. Returns
/// the stderr events.
#[track_caller]
fn assert_failed(run: &Run, kind: &str, code: i32) -> Vec<Value> {
    assert_eq!(run.code, code, "{run:#?}");
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], kind, "{doc:#}");
    assert!(doc["error"]["message"].is_string(), "{doc:#}");
    assert!(doc["error"]["problems"].is_array(), "{doc:#}");
    let events = event_lines(run);
    let last = events.last().expect("an error line");
    assert_eq!(last["event"], "error", "{run:#?}");
    assert_eq!(last["kind"], kind);
    assert_eq!(last["exit_code"], code);
    assert_eq!(last["message"], doc["error"]["message"]);
    events
}

/// The `step_failed` event of `command`'s `step`.
#[track_caller]
fn step_failed<'a>(events: &'a [Value], command: &str, step: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "step_failed" && e["command"] == command && e["step"] == step)
        .unwrap_or_else(|| panic!("no step_failed for {command}/{step} in {events:#?}"))
}

/// An environment registered on a running sshd as the test user.
struct Host {
    sb: Sandbox,
    sshd: Sshd,
    name: String,
}

impl Host {
    fn new(name: &str) -> Host {
        require_test_user();
        let sb = Sandbox::new();
        let sshd = Sshd::start();
        sb.register_on_sshd(&sshd, name, minimal(name));
        Host {
            sb,
            sshd,
            name: name.to_string(),
        }
    }

    /// `configure` fails at its first step, connecting: nothing on this machine is changed.
    fn configure(&self) -> Run {
        run_json(&self.sb, &["configure", &self.name, "--ssh-timeout", "1"])
    }
}

#[test]
fn a_changed_host_key_is_ssh_host_key_changed() {
    let mut h = Host::new("hostkey");
    h.sshd.restart_with_new_host_key();
    let run = h.configure();
    let events = assert_failed(&run, "ssh_host_key_changed", 1);
    let failed = step_failed(&events, "configure", "connect");
    assert_eq!(failed["kind"], "ssh_host_key_changed");
    assert!(
        failed["message"].as_str().unwrap().contains("CHANGED"),
        "{failed}"
    );
}

#[test]
fn a_dry_run_keeps_the_kind_of_its_error_too() {
    let mut h = Host::new("dryrun");
    h.sshd.restart_with_new_host_key();
    let run = run_json(
        &h.sb,
        &["configure", &h.name, "--dry-run", "--ssh-timeout", "1"],
    );
    assert_failed(&run, "ssh_host_key_changed", 1);
}

#[test]
fn a_rejected_key_is_ssh_auth_failed() {
    let h = Host::new("authfail");
    std::fs::remove_file(h.sshd.path().join(format!("authorized_keys_{TEST_USER}"))).unwrap();
    let run = h.configure();
    let events = assert_failed(&run, "ssh_auth_failed", 1);
    assert_eq!(
        step_failed(&events, "configure", "connect")["kind"],
        "ssh_auth_failed"
    );
}

#[test]
fn a_host_that_does_not_answer_is_ssh_unreachable() {
    let mut h = Host::new("noanswer");
    h.sshd.stop();
    let run = h.configure();
    let events = assert_failed(&run, "ssh_unreachable", 1);
    assert_eq!(
        step_failed(&events, "configure", "connect")["kind"],
        "ssh_unreachable"
    );
}

#[test]
fn no_lxd_socket_is_lxd_unreachable() {
    let sb = Sandbox::new();
    let mut cfg = minimal("nolxd");
    cfg["provider"]["socket_path"] = json!("/nonexistent/lxd/unix.socket");
    let file = sb.env_file("env.json", &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let run = run_json(&sb, &["provision", "nolxd"]);
    let events = assert_failed(&run, "lxd_unreachable", 1);
    let failed = step_failed(&events, "provision", "connect to LXD");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/lxd/unix.socket"),
        "{failed}"
    );
    // The state records the failed step, so the next run says it resumes.
    let run = run_json(&sb, &["provision", "nolxd"]);
    let events = assert_failed(&run, "lxd_unreachable", 1);
    let started = events
        .iter()
        .find(|e| e["event"] == "command_started")
        .unwrap();
    assert_eq!(
        started["resumes"],
        json!({ "command": "provision", "step": "connect to LXD", "failed": true })
    );
}

#[test]
fn a_held_lock_is_locked() {
    let sb = Sandbox::new();
    let file = sb.env_file("env.json", &minimal("held"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let locks = sb.data().join(".locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = File::create(locks.join("held.lock")).unwrap();
    lock.lock().unwrap();
    assert_failed(&run_json(&sb, &["configure", "held"]), "locked", 1);
    lock.unlock().unwrap();
    // Free again: the next failure is the state's, not the lock's.
    assert_failed(&run_json(&sb, &["configure", "held"]), "refused", 2);
}

#[test]
fn input_errors_exit_2_with_their_kind() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("broken.json"), "{ nope").unwrap();
    let run = run_json(&sb, &["validate", "--env-file", "broken.json"]);
    let doc = run.json();
    assert_failed(&run, "invalid_config", 2);
    assert_eq!(doc["error"]["problems"][0]["path"], "", "{doc:#}");

    assert_failed(&run_json(&sb, &["show", "nosuch"]), "not_found", 2);
    assert_failed(&run_json(&sb, &["show", "../etc"]), "usage", 2);

    // configure before the environment has a host.
    let file = sb.env_file("env.json", &minimal("fresh"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let run = run_json(&sb, &["configure", "fresh"]);
    assert_failed(&run, "refused", 2);
    // Refused before any step ran: no step events.
    assert!(
        event_lines(&run)
            .iter()
            .all(|e| e["event"] == "error" || e["event"] == "log"),
        "{run:#?}"
    );
}

#[test]
fn a_changed_host_of_a_registered_environment_is_config_changed() {
    let h = Host::new("changed");
    let mut cfg = minimal("changed");
    cfg["ssh_credentials"] = json!({ "username": "someone-else" });
    let file = h.sb.env_file("other.json", &cfg);
    let run = run_json(&h.sb, &["create", "environment", "--env-file", &file]);
    assert_failed(&run, "config_changed", 2);
}
