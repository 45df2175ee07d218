//! `release --dry-run`, `run --dry-run` and `deploy --dry-run` through the real binary, and
//! deploy's check of the file's environment name before anything is created.
//!
//! The tests that need a host use a real OpenSSH server on a loopback port
//! (tests/support/sshd.rs), reached as the non-root test user through `sudo -n`; the host is
//! this machine, and a dry run only reads it. Needs /usr/sbin/sshd and the test user:
//! `sudo bash provisioning/ci/install-sshd-test-deps.sh`.

use crate::support::sshd;

use crate::common;

use common::{Sandbox, minimal};
use serde_json::{Value, json};
use sshd::{Sshd, require_test_user};

const TOKEN: &str = "Dry-Run-Admin-Token-7c41";

fn config(name: &str) -> Value {
    let mut v = minimal(name);
    v["tracker"]["http_api"]["admin_token"] = json!(TOKEN);
    v
}

fn phases(doc: &Value) -> Vec<(String, bool)> {
    doc["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["changed"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn deploy_dry_run_of_a_new_environment_lists_every_phase_and_creates_nothing() {
    let sb = Sandbox::new();
    let file = sb.env_file("env.json", &config("fresh"));
    let doc = sb
        .run(&[
            "-o",
            "json",
            "deploy",
            "fresh",
            "--env-file",
            &file,
            "--dry-run",
        ])
        .ok()
        .json();
    assert_eq!(doc["dry_run"], json!(true));
    assert_eq!(doc["changed"], json!(true));
    assert_eq!(
        phases(&doc),
        vec![
            ("environment".to_string(), true),
            ("provision".to_string(), true),
            ("configure".to_string(), true),
            ("release".to_string(), true),
            ("run".to_string(), true),
            ("test".to_string(), false),
        ]
    );
    assert_eq!(
        doc["phases"][0]["detail"],
        json!(format!("would be created from {file}"))
    );
    assert_eq!(doc["ssh_connections"], json!(0));
    assert!(
        !sb.data().join("fresh").exists(),
        "a dry run created the environment"
    );

    let text = sb
        .run(&["deploy", "fresh", "--env-file", &file, "--dry-run"])
        .ok()
        .stdout;
    assert!(
        text.starts_with("Environment 'fresh': deploy would change:\n"),
        "{text}"
    );
    assert!(text.contains("would change provision"), "{text}");
    assert!(text.ends_with("(dry run: nothing was changed)\n"), "{text}");
    assert!(!text.contains(TOKEN));
    assert!(!sb.data().join("fresh").exists());
}

#[test]
fn deploy_refuses_a_file_of_another_environment_before_creating_anything() {
    let sb = Sandbox::new();
    let file = sb.env_file("env.json", &config("named-in-file"));
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["-o", "json", "deploy", "asked", "--env-file", &file];
        args.extend_from_slice(extra);
        let run = sb.run(&args).code(2);
        let doc = run.json();
        assert_eq!(doc["error"]["kind"], json!("refused"), "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("defines environment 'named-in-file', not 'asked'"),
            "{message}"
        );
        assert!(
            !sb.data().join("named-in-file").exists(),
            "{extra:?} created it"
        );
        assert!(!sb.data().join("asked").exists(), "{extra:?} created it");
    }
}

#[test]
fn release_and_run_dry_runs_refuse_an_environment_without_a_configured_host() {
    let sb = Sandbox::new();
    let file = sb.env_file("env.json", &config("bare"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let state = std::fs::read(sb.data().join("bare/state.json")).unwrap();
    for command in ["release", "run"] {
        let run = sb.run(&[command, "bare", "--dry-run"]).code(2);
        assert!(
            run.stderr.contains("environment 'bare' has no host"),
            "{command}: {run:#?}"
        );
    }
    let after = std::fs::read(sb.data().join("bare/state.json")).unwrap();
    assert_eq!(state, after, "a refused dry run wrote the state");
}

/// An environment registered on a running sshd (this machine), recorded as configured.
fn configured_on_sshd(sb: &Sandbox, sshd: &Sshd, name: &str) {
    sb.register_on_sshd(sshd, name, config(name));
    // What configure records, written directly: configure itself would install packages here.
    let path = sb.data().join(name).join("state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["lifecycle"] = json!("configured");
    state["host_setup"] = json!({
        "os": "debian-12",
        "compose_command": "docker-compose",
        "compose_version": "1.29.2",
        "firewall": "active",
        "configured_at": "2026-11-29T00:00:00Z"
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

#[test]
fn deploy_dry_run_reads_every_phase_over_one_ssh_connection_and_writes_nothing() {
    require_test_user();
    let sb = Sandbox::new();
    let sshd = Sshd::start();
    configured_on_sshd(&sb, &sshd, "over-ssh");
    let state_file = sb.data().join("over-ssh/state.json");
    let before = std::fs::read(&state_file).unwrap();
    let logins = sshd.accepted_logins();

    let doc = sb
        .run(&["-o", "json", "deploy", "over-ssh", "--dry-run"])
        .ok()
        .json();
    assert_eq!(sshd.accepted_logins() - logins, 1, "{}", sshd.log());
    assert_eq!(doc["ssh_connections"], json!(1));
    let names: Vec<String> = phases(&doc).into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["provision", "configure", "release", "run", "test"]);
    assert_eq!(doc["phases"][0]["changed"], json!(false));
    assert_eq!(doc["release"]["dry_run"], json!(true));
    // The model's three files (compose, .env, tracker.toml), each with its diff; .env masked.
    let files = doc["release"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{doc}");
    let env = files
        .iter()
        .find(|f| f["path"] == json!("/opt/torrust/.env"))
        .unwrap();
    let diff = env["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("+TORRUST_TRACKER_CONFIG_OVERRIDE_HTTP_API__ACCESS_TOKENS__ADMIN=[REDACTED]")
            || env["change"] == json!("unchanged"),
        "{diff}"
    );
    assert!(!doc.to_string().contains(TOKEN), "a secret in the plan");
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        before,
        "a dry run wrote the state"
    );

    // release --dry-run alone: the same plan, one more connection, nothing written.
    let run = sb.run(&["release", "over-ssh", "--dry-run"]).ok();
    // The API on 0.0.0.0 without TLS: said at every release (ADR 31).
    assert!(
        run.stderr
            .contains("its admin token crosses the network in clear text"),
        "{run:?}"
    );
    let text = run.stdout;
    assert!(text.contains("upload files"), "{text}");
    assert!(text.contains("docker firewall"), "{text}");
    assert!(text.ends_with("(dry run: nothing was changed)\n"), "{text}");
    assert!(!text.contains(TOKEN));
    assert_eq!(sshd.accepted_logins() - logins, 2);
    assert_eq!(std::fs::read(&state_file).unwrap(), before);
}
