//! Several environments in one command (`deploy A B C`, `destroy`, `status`, `test`): one
//! result in the order given, one summary, the exit code, `--jobs`, and each environment's own
//! log file. Environments that fail fast or live on the tests' sshd: no LXD needed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::common::{Run, Sandbox, minimal};
use crate::support::sshd::Sshd;

/// The JSON lines on stderr.
fn events(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The largest number of environments between their `environment_started` and
/// `environment_finished` events at any point of the stream.
fn most_at_once(events: &[Value]) -> usize {
    let (mut open, mut most) = (0usize, 0usize);
    for e in events {
        match e["event"].as_str() {
            Some("environment_started") => {
                open += 1;
                most = most.max(open);
            }
            Some("environment_finished") => open -= 1,
            _ => {}
        }
    }
    assert_eq!(open, 0, "every environment finishes: {events:#?}");
    most
}

fn created(sb: &Sandbox, name: &str) {
    let file = sb.env_file(&format!("{name}.json"), &minimal(name));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
}

#[test]
fn results_come_in_the_order_given_and_invalid_input_everywhere_exits_2() {
    let sb = Sandbox::new();
    let run = sb
        .run(&["-o", "json", "deploy", "c", "a", "b", "--jobs", "3"])
        .code(2);
    let doc = run.json();
    let envs: Vec<&str> = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["c", "a", "b"]);
    for e in doc["environments"].as_array().unwrap() {
        assert_eq!(e["ok"], false);
        assert_eq!(e["error"]["kind"], "refused", "{e}");
    }
    assert_eq!(doc["failed"], 3);
    assert_eq!(doc["error"]["kind"], "environments_invalid");
    // Every event line names its environment.
    for e in events(&run) {
        if e["event"] != "error" {
            assert!(e["env"].is_string(), "{e}");
        }
    }

    // Text: each failure on stderr, one summary table on stdout in the order given.
    let run = sb.run(&["deploy", "c", "a", "b"]).code(2);
    let table: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        table[0], "ENVIRONMENT  RESULT    ELAPSED  ERROR",
        "{run:#?}"
    );
    assert!(table[1].starts_with("c            FAILED"), "{run:#?}");
    assert!(table[2].starts_with("a            FAILED"), "{run:#?}");
    assert!(table[3].starts_with("b            FAILED"), "{run:#?}");
    assert!(table[1].ends_with("refused"), "{run:#?}");
    assert!(
        table[4].starts_with("3 environments: 0 succeeded, 3 failed"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("error: [a] environment 'a' does not exist"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("error: 3 of 3 environments failed: c (refused), a (refused), b (refused)"),
        "{run:#?}"
    );
}

#[test]
fn names_are_checked_before_anything_runs() {
    let sb = Sandbox::new();
    let run = sb.run(&["destroy", "a", "../b"]).code(2);
    assert!(run.stdout.is_empty(), "{run:#?}");
    let run = sb.run(&["-o", "json", "status", "a", "b", "a"]).code(2);
    assert_eq!(run.json()["error"]["kind"], "usage");
    assert!(!run.stderr.contains("environment_started"), "{run:#?}");
    assert!(!sb.data().exists(), "nothing written for names refused");
    let run = sb
        .run(&["deploy", "a", "b", "--env-file", "a.json"])
        .code(2);
    assert!(
        run.stderr.contains("2 environments and 1 --env-file"),
        "{run:#?}"
    );
}

#[test]
fn jobs_bounds_how_many_run_at_once() {
    let sb = Sandbox::new();
    let names = ["e1", "e2", "e3", "e4", "e5"];
    for n in names {
        created(&sb, n);
    }
    for (jobs, most) in [("1", 1), ("2", 2)] {
        let mut args = vec!["-o", "json", "test", "--jobs", jobs];
        args.extend(names);
        let run = sb.run(&args).code(2);
        let got = most_at_once(&events(&run));
        assert!(got <= most, "--jobs {jobs}: {got} at once\n{run:#?}");
        assert_eq!(run.json()["jobs"], most);
        if jobs == "1" {
            // One after the other, in the order given.
            let started: Vec<Value> = events(&run)
                .into_iter()
                .filter(|e| e["event"] == "environment_started")
                .map(|e| e["env"].clone())
                .collect();
            assert_eq!(started, names);
        }
    }
}

/// `a`'s lock is held here: with `--jobs 2`, `b` runs and finishes while `a` waits for its lock
/// (`--lock-wait`), and `a` completes once the lock is free.
#[test]
fn one_waiting_does_not_hold_up_the_others() {
    let sb = Sandbox::new();
    created(&sb, "a");
    created(&sb, "b");
    let lock_file = sb.data().join(".locks/a.lock");
    std::fs::create_dir_all(lock_file.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_file).unwrap();
    lock.lock().unwrap();
    let mut child = sb
        .command(&[
            "-o",
            "json",
            "test",
            "a",
            "b",
            "--jobs",
            "2",
            "--lock-wait",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let e: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let b_done = e["event"] == "environment_finished" && e["env"] == "b";
        seen.push(e);
        if b_done {
            break;
        }
    }
    assert!(
        !seen
            .iter()
            .any(|e| e["event"] == "environment_finished" && e["env"] == "a"),
        "a waits for its lock: {seen:#?}"
    );
    lock.unlock().unwrap();
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{seen:#?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Both completed: each refused (never deployed), after taking its lock.
    for e in doc["environments"].as_array().unwrap() {
        assert_eq!(e["error"]["kind"], "refused", "{e}");
    }
    assert_eq!(most_at_once(&seen), 2);
}

/// Two environments on the tests' sshd and one that does not exist: the two complete, the
/// missing one fails alone, and each writes its own log file.
#[test]
fn the_others_complete_when_one_fails() {
    crate::support::sshd::require_test_user();
    let sb = Sandbox::new();
    let sshd = Sshd::start();
    sb.register_on_sshd(&sshd, "alpha", minimal("alpha"));
    sb.register_on_sshd(&sshd, "gamma", minimal("gamma"));
    let run = sb.run(&["-o", "json", "status", "gamma", "nosuch", "alpha"]);
    let doc = run.json();
    let by_env = |name: &str| {
        doc["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["env"] == name)
            .unwrap()
            .clone()
    };
    for name in ["gamma", "alpha"] {
        let e = by_env(name);
        assert_eq!(e["ok"], true, "{e}");
        assert_eq!(e["result"]["name"], name, "{e}");
    }
    assert_eq!(by_env("nosuch")["error"]["kind"], "not_found");
    // Invalid input only: 2.
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(doc["error"]["kind"], "environments_invalid");

    // `--check` fails on both (no Docker there): an operation failure, exit 1.
    let run = sb
        .run(&[
            "-o", "json", "status", "--check", "alpha", "gamma", "nosuch",
        ])
        .code(1);
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], "environments_failed");
    assert_eq!(doc["environments"][0]["error"]["kind"], "check_failed");
    assert_eq!(doc["environments"][0]["result"]["name"], "alpha");

    // Each environment's log file has its own lines only.
    let alpha = std::fs::read_to_string(sb.data().join("logs/alpha.log")).unwrap();
    let gamma = std::fs::read_to_string(sb.data().join("logs/gamma.log")).unwrap();
    assert!(alpha.contains("events: started"), "{alpha}");
    assert!(!alpha.contains("gamma"), "{alpha}");
    assert!(!gamma.contains("alpha"), "{gamma}");
}
