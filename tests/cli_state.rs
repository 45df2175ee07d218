//! `show`, `list`, `exists`, `purge`, `docs`, `completions`, and the lock, through the real binary.

use crate::common;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{Sandbox, minimal};

fn created(sb: &Sandbox, name: &str) {
    let file = sb.env_file(&format!("{name}.json"), &minimal(name));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
}

#[test]
fn show_gives_state_settings_and_next_step() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let run = sb.run(&["show", "alpha"]).ok();
    for needle in [
        "alpha",
        "created",
        "torrust-tracker-vm-alpha",
        "[REDACTED]",
        "provision",
    ] {
        assert!(
            run.stdout.contains(needle),
            "missing {needle}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("MyAccessToken"));
    let doc = sb.run(&["-o", "json", "show", "alpha"]).ok().json();
    assert_eq!(doc["lifecycle"], "created");
    assert_eq!(
        doc["config"]["tracker"]["http_api"]["admin_token"],
        "[REDACTED]"
    );
    assert_eq!(
        doc["next"]["command"],
        "torrust-tracker-deployer provision alpha"
    );
    assert_eq!(doc["next"]["available"], true);
}

#[test]
fn show_of_an_unknown_environment_exits_2_with_a_fix() {
    let sb = Sandbox::new();
    let run = sb.run(&["show", "nope"]).code(2);
    assert!(run.stderr.contains("does not exist"), "{run:?}");
    assert!(run.stderr.contains("create environment"), "{run:?}");
    let doc = sb.run(&["-o", "json", "show", "nope"]).code(2).json();
    assert_eq!(doc["error"]["kind"], "not_found");
}

#[test]
fn list_reports_unreadable_environments_without_failing() {
    let sb = Sandbox::new();
    let run = sb.run(&["list"]).ok();
    assert!(run.stdout.contains("No environments"), "{run:?}");
    created(&sb, "alpha");
    created(&sb, "beta");
    std::fs::create_dir_all(sb.data().join("broken")).unwrap();
    std::fs::write(sb.data().join("broken/state.json"), "{ not json").unwrap();
    let run = sb.run(&["list"]).ok();
    assert!(run.stdout.contains("alpha"), "{run:?}");
    assert!(run.stdout.contains("unreadable"), "{run:?}");
    let doc = sb.run(&["-o", "json", "list"]).ok().json();
    let rows = doc.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], "alpha");
    assert_eq!(rows[0]["lifecycle"], "created");
    assert_eq!(rows[1]["name"], "beta");
    assert_eq!(rows[2]["name"], "broken");
    assert!(rows[2]["error"].as_str().unwrap().contains("state"));
}

#[test]
fn exists_prints_true_or_false_and_exits_0() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    assert_eq!(sb.run(&["exists", "alpha"]).ok().stdout.trim(), "true");
    assert_eq!(sb.run(&["exists", "other"]).ok().stdout.trim(), "false");
    let doc = sb.run(&["-o", "json", "exists", "other"]).ok().json();
    assert_eq!(doc["exists"], false);
}

#[test]
fn purge_needs_force_without_a_terminal() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let run = sb.run(&["purge", "alpha"]).code(2);
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert!(sb.data().join("alpha/state.json").exists());
    let run = sb.run(&["purge", "alpha", "--force"]).ok();
    assert!(run.stdout.contains("Purged"), "{run:?}");
    assert!(!sb.data().join("alpha").exists());
    assert_eq!(sb.run(&["exists", "alpha"]).ok().stdout.trim(), "false");
    sb.run(&["purge", "alpha", "--force"]).code(2);
}

#[test]
fn docs_and_completions_describe_the_cli() {
    let sb = Sandbox::new();
    let doc = sb.run(&["docs"]).ok().json();
    let names: Vec<&str> = doc["subcommands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for cmd in [
        "create",
        "validate",
        "show",
        "list",
        "exists",
        "purge",
        "docs",
        "completions",
    ] {
        assert!(names.contains(&cmd), "{cmd} missing from {names:?}");
    }
    let run = sb.run(&["completions", "bash"]).ok();
    assert!(run.stdout.contains("torrust-tracker-deployer"));
    assert!(run.stdout.contains("purge"));
    sb.run(&["completions", "tcsh"]).code(2);
}

/// Takes the environment's lock from this test process, as a running command would.
fn hold_lock(sb: &Sandbox, env: &str) -> std::fs::File {
    let dir = sb.data().join(".locks");
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(format!("{env}.lock")))
        .unwrap();
    file.try_lock().unwrap();
    let record = serde_json::json!({
        "pid": 4242, "host": "test-host", "command": "provision",
        "started_at": "2026-11-25T21:00:00Z"
    });
    file.write_all(record.to_string().as_bytes()).unwrap();
    file
}

#[test]
fn a_locked_environment_is_refused_at_once_naming_the_holder() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let lock = hold_lock(&sb, "alpha");
    let started = Instant::now();
    let run = sb.run(&["purge", "alpha", "--force"]).code(1);
    assert!(started.elapsed() < Duration::from_secs(5));
    for needle in ["locked", "4242", "test-host", "provision", "--lock-wait"] {
        assert!(run.stderr.contains(needle), "missing {needle}: {run:?}");
    }
    assert!(sb.data().join("alpha/state.json").exists());
    let doc = sb
        .run(&["-o", "json", "purge", "alpha", "--force"])
        .code(1)
        .json();
    assert_eq!(doc["error"]["kind"], "locked");
    drop(lock);
}

#[test]
fn lock_wait_waits_for_the_holder() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let lock = hold_lock(&sb, "alpha");
    let child = sb
        .command(&["--lock-wait", "20", "purge", "alpha", "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!sb.data().join("alpha").exists());
}

#[test]
fn a_stale_lock_record_does_not_block() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    // A record left by a holder that died: the file exists, but nobody holds the lock.
    drop(hold_lock(&sb, "alpha"));
    let run = sb.run(&["purge", "alpha", "--force"]).ok();
    assert!(run.stderr.contains("stale"), "{run:?}");
}

/// A state file changed by hand is checked when loaded: its name must be its directory's, its
/// settings must pass the environment file's rules, and what reaches a shell must be ours.
#[test]
fn a_state_changed_by_hand_is_refused_with_what_is_wrong() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let path = sb.data().join("alpha/state.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    type Change = fn(&mut serde_json::Value);
    let cases: [(&str, Change, &str); 6] = [
        (
            "another name",
            |s| s["name"] = "beta".into(),
            "`name` is 'beta', but the state is in the directory of environment 'alpha'",
        ),
        (
            "a compose command with a shell tail",
            |s| {
                s["host_setup"] = serde_json::json!({
                    "os": "debian-12", "compose_command": "docker-compose; touch /tmp/x",
                    "compose_version": "1.29.2", "firewall": "active",
                    "configured_at": "2026-11-29T21:00:00Z"
                })
            },
            "`host_setup.compose_command` \"docker-compose; touch /tmp/x\" is neither of",
        ),
        (
            "a bind address with a shell tail",
            |s| {
                s["config"]["tracker"]["udp_trackers"][0]["bind_address"] =
                    "0.0.0.0:6969; id".into()
            },
            "config.tracker.udp_trackers[0].bind_address: not a socket address",
        ),
        (
            "a user name with a shell tail",
            |s| s["config"]["ssh_credentials"]["username"] = "torrust; id".into(),
            "config.ssh_credentials.username: invalid SSH username",
        ),
        (
            "a domain with a shell tail",
            |s| s["config"]["tracker"]["udp_trackers"][0]["domain"] = "a.example.com;id".into(),
            "config.tracker.udp_trackers[0].domain: invalid domain",
        ),
        (
            "a host that is not an IP",
            |s| s["host"] = serde_json::json!({ "ip": "10.0.0.1;id", "ssh_port": 22 }),
            "`host.ip` \"10.0.0.1;id\" is not an IP address",
        ),
    ];
    for (what, change, expected) in cases {
        let mut state = original.clone();
        change(&mut state);
        std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
        let run = sb.run(&["show", "alpha"]).code(1);
        assert!(
            run.stderr.contains("is not valid") && run.stderr.contains(expected),
            "{what}: {run:#?}"
        );
        assert!(run.stderr.contains("purge alpha"), "{what}: {run:#?}");
    }
    std::fs::write(&path, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    sb.run(&["show", "alpha"]).ok();
}
