//! The maintenance lock through the real binary: `lock ENV acquire -m`, `status`, `release`;
//! every command that changes the environment refused while it is held (exit 2,
//! `maintenance_locked`, with the holder, the time and the message), reading commands and dry
//! runs still running, and `--override-maintenance` running one anyway, recorded.

use crate::common;
use crate::support::sshd;

use common::{Sandbox, minimal, mode};
use serde_json::{Value, json};
use sshd::{Sshd, require_test_user};

const MESSAGE: &str = "disk upgrade, back at 14:00 (ana)";

fn created(name: &str) -> (Sandbox, String) {
    let sb = Sandbox::new();
    let file = sb.env_file(&format!("{name}.json"), &minimal(name));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    (sb, file)
}

/// `user@machine` as the binary names this process's operator.
fn holder(lock: &Value) -> String {
    format!(
        "{}@{}",
        lock["held_by"]["user"].as_str().unwrap(),
        lock["held_by"]["machine"].as_str().unwrap()
    )
}

#[test]
fn acquire_status_and_release() {
    let (sb, _) = created("lk-basic");
    let free = sb.run(&["-o", "json", "lock", "lk-basic", "status"]).ok();
    assert_eq!(free.json(), json!({ "name": "lk-basic", "locked": false }));
    let text = sb.run(&["lock", "lk-basic", "status"]).ok();
    assert!(text.stdout.contains("is not locked"), "{text:?}");

    let held = sb
        .run(&["-o", "json", "lock", "lk-basic", "acquire", "-m", MESSAGE])
        .ok()
        .json();
    assert_eq!(held["locked"], true);
    assert_eq!(held["message"], MESSAGE);
    let by = holder(&held);
    assert!(!by.starts_with('@') && !by.ends_with('@'), "{held:#}");
    let file = sb.data().join("lk-basic/maintenance.json");
    assert_eq!(mode(&file), 0o600);

    let status = sb.run(&["lock", "lk-basic", "status"]).ok();
    for part in [MESSAGE, &by, " UTC", "lock lk-basic release"] {
        assert!(status.stdout.contains(part), "{part}: {status:?}");
    }

    // A second acquire is refused and names the first.
    let again = sb
        .run(&["-o", "json", "lock", "lk-basic", "acquire", "-m", "other"])
        .code(2);
    assert_eq!(again.json()["error"]["kind"], "maintenance_locked");
    assert!(
        again.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(MESSAGE),
        "{again:?}"
    );

    let released = sb.run(&["lock", "lk-basic", "release"]).ok();
    assert!(
        released.stdout.contains("Released the maintenance lock")
            && released.stdout.contains(MESSAGE),
        "{released:?}"
    );
    assert!(!file.exists());
    let twice = sb.run(&["-o", "json", "lock", "lk-basic", "release"]).ok();
    assert_eq!(twice.json()["released"], false);
}

#[test]
fn a_message_is_required_and_must_be_one_plain_line() {
    let (sb, _) = created("lk-msg");
    for bad in ["", "   ", "two\nlines", "esc \u{1b}[2J"] {
        let run = sb
            .run(&["-o", "json", "lock", "lk-msg", "acquire", "-m", bad])
            .code(2);
        assert_eq!(run.json()["error"]["kind"], "usage", "{bad:?}: {run:?}");
    }
    let long = "x".repeat(501);
    sb.run(&["lock", "lk-msg", "acquire", "-m", &long]).code(2);
    // Without -m, clap refuses it.
    let run = sb.run(&["lock", "lk-msg", "acquire"]).code(2);
    assert!(run.stderr.contains("--message"), "{run:?}");
    assert!(!sb.data().join("lk-msg/maintenance.json").exists());
    let missing = sb
        .run(&["-o", "json", "lock", "nope", "acquire", "-m", "m"])
        .code(2);
    assert_eq!(missing.json()["error"]["kind"], "not_found");
}

#[test]
fn every_change_is_refused_while_held_and_reads_and_dry_runs_still_run() {
    let (sb, file) = created("lk-refuse");
    let held = sb
        .run(&["-o", "json", "lock", "lk-refuse", "acquire", "-m", MESSAGE])
        .ok()
        .json();
    let by = holder(&held);
    let state_before = std::fs::read(sb.data().join("lk-refuse/state.json")).unwrap();

    for args in [
        &["provision", "lk-refuse"][..],
        &["configure", "lk-refuse"],
        &["release", "lk-refuse"],
        &["run", "lk-refuse"],
        &["deploy", "lk-refuse"],
        &["deploy", "lk-refuse", "--env-file", &file],
        &["destroy", "lk-refuse"],
        &["stop", "lk-refuse"],
        &["start", "lk-refuse"],
        &["restart", "lk-refuse", "tracker"],
        &["register", "lk-refuse", "--instance-ip", "127.0.0.1"],
        &["purge", "lk-refuse", "--force"],
        &["create", "environment", "--env-file", &file],
    ] {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let run = sb.run(&all).code(2);
        let error = &run.json()["error"];
        assert_eq!(error["kind"], "maintenance_locked", "{args:?}: {run:?}");
        let message = error["message"].as_str().unwrap();
        for part in [
            MESSAGE,
            &by,
            " UTC",
            "--override-maintenance",
            "lock lk-refuse release",
        ] {
            assert!(message.contains(part), "{args:?}: {part}: {message}");
        }
    }
    // The text form says the same on stderr.
    let text = sb.run(&["release", "lk-refuse"]).code(2);
    assert!(
        text.stderr.contains("is locked for maintenance by") && text.stderr.contains(MESSAGE),
        "{text:?}"
    );
    // Nothing was changed: the state is byte for byte the same, the environment still there.
    assert_eq!(
        std::fs::read(sb.data().join("lk-refuse/state.json")).unwrap(),
        state_before
    );

    // Reading commands keep working, and show mentions the lock.
    let show = sb.run(&["show", "lk-refuse"]).ok();
    assert!(
        show.stdout.contains("Maintenance: locked by") && show.stdout.contains(MESSAGE),
        "{show:?}"
    );
    let show = sb.run(&["-o", "json", "show", "lk-refuse"]).ok().json();
    assert_eq!(show["maintenance"]["status"], "held", "{show:#}");
    assert_eq!(show["maintenance"]["message"], MESSAGE, "{show:#}");
    sb.run(&["list"]).ok();
    sb.run(&["exists", "lk-refuse"]).ok();
    // A dry run is not a change: it gets as far as its own answer (no host yet).
    for dry in [
        &["release", "lk-refuse", "--dry-run"][..],
        &["run", "lk-refuse", "--dry-run"],
        &["configure", "lk-refuse", "--dry-run"],
    ] {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(dry);
        let run = sb.run(&all);
        assert_ne!(
            run.json()["error"]["kind"],
            "maintenance_locked",
            "{dry:?}: {run:?}"
        );
    }
    // After release, the same command is judged on its own again.
    sb.run(&["lock", "lk-refuse", "release"]).ok();
    let after = sb.run(&["-o", "json", "release", "lk-refuse"]).code(2);
    assert_eq!(after.json()["error"]["kind"], "refused", "{after:?}");
    let show = sb.run(&["-o", "json", "show", "lk-refuse"]).ok().json();
    assert!(show.get("maintenance").is_none(), "{show:#}");
}

#[test]
fn override_maintenance_runs_a_change_and_records_it() {
    let (sb, _) = created("lk-force");
    sb.run(&["lock", "lk-force", "acquire", "-m", MESSAGE]).ok();
    let mut changed = minimal("lk-force");
    changed["tracker"]["core"]["private"] = json!(true);
    let file = sb.env_file("changed.json", &changed);

    let run = sb
        .run(&[
            "--override-maintenance",
            "-o",
            "json",
            "create",
            "environment",
            "--env-file",
            &file,
        ])
        .ok();
    assert_eq!(run.json()["outcome"], "updated", "{run:?}");
    assert!(
        run.stderr.contains("--override-maintenance") && run.stderr.contains(MESSAGE),
        "the override is said on stderr: {run:?}"
    );

    let status = sb
        .run(&["-o", "json", "lock", "lk-force", "status"])
        .ok()
        .json();
    assert_eq!(status["locked"], true, "the lock stays held: {status:#}");
    let overrides = status["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1, "{status:#}");
    assert_eq!(overrides[0]["command"], "create environment");
    assert_eq!(overrides[0]["by"], status["held_by"]);
    // And in the log (`create environment` writes the shared one).
    let log = std::fs::read_to_string(sb.data().join("logs/deployer.log")).unwrap();
    assert!(log.contains("runs anyway (--override-maintenance"), "{log}");

    // Without the flag, the next change is refused again.
    sb.run(&["-o", "json", "destroy", "lk-force"]).code(2);
    // `lock release` lists what overrode the lock.
    let released = sb.run(&["lock", "lk-force", "release"]).ok();
    assert!(
        released
            .stdout
            .contains("override: `create environment` by"),
        "{released:?}"
    );
    // purge with the override removes everything, the record too.
    sb.run(&["lock", "lk-force", "acquire", "-m", MESSAGE]).ok();
    sb.run(&["--override-maintenance", "purge", "lk-force", "--force"])
        .ok();
    assert!(!sb.data().join("lk-force").exists());
}

/// On a host (a real sshd): `status` says the lock is held, and `ssh` (the holder's own tool)
/// keeps working, while `stop` is refused before it connects.
#[test]
fn status_mentions_the_lock_and_ssh_still_runs() {
    require_test_user();
    let sshd = Sshd::start();
    let sb = Sandbox::new();
    sb.register_on_sshd(&sshd, "lk-host", minimal("lk-host"));
    sb.run(&["lock", "lk-host", "acquire", "-m", MESSAGE]).ok();

    let root = tempfile::tempdir().unwrap();
    let status: common::Run = sb
        .command(&["status", "lk-host"])
        .env("TORRUST_DEPLOYER_STATUS_ROOT", root.path())
        .output()
        .unwrap()
        .into();
    assert!(
        status.stdout.contains("Maintenance: locked by") && status.stdout.contains(MESSAGE),
        "{status:?}"
    );
    let json: common::Run = sb
        .command(&["-o", "json", "status", "lk-host"])
        .env("TORRUST_DEPLOYER_STATUS_ROOT", root.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(json.json()["maintenance"]["message"], MESSAGE, "{json:?}");

    let ssh = sb.run(&["ssh", "lk-host", "--", "sh", "-c", "exit 3"]);
    assert_eq!(ssh.code, 3, "{ssh:?}");
    let stop = sb.run(&["-o", "json", "stop", "lk-host"]).code(2);
    assert_eq!(stop.json()["error"]["kind"], "maintenance_locked");
}
