//! Concurrent commands on one environment cannot corrupt its state.

use crate::common;

use std::process::{Child, Stdio};

use common::{Sandbox, minimal};
use serde_json::json;

fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Eight writers with different files race on one environment while readers read it. Writers
/// either win or are refused with the lock error; readers always see a whole, valid state; the
/// final state is exactly one writer's file.
#[test]
fn racing_writers_and_readers_never_corrupt_the_state() {
    let sb = Sandbox::new();
    let mut tokens = Vec::new();
    let mut files = Vec::new();
    for i in 0..8 {
        let mut cfg = minimal("race");
        let token = format!("RaceToken{i:02}xxxxxxxxxxxxxxxx");
        cfg["tracker"]["http_api"]["admin_token"] = json!(token);
        tokens.push(token);
        files.push(sb.env_file(&format!("race{i}.json"), &cfg));
    }
    // Seed the environment so readers have something to read from the start.
    sb.run(&["create", "environment", "--env-file", &files[0]])
        .ok();

    for round in 0..3 {
        let writers: Vec<Child> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                // Half of them wait for the lock, half give up at once.
                let wait = if (i + round) % 2 == 0 { "30" } else { "0" };
                spawn(
                    &sb,
                    &[
                        "--lock-wait",
                        wait,
                        "create",
                        "environment",
                        "--env-file",
                        f,
                    ],
                )
            })
            .collect();
        let readers: Vec<Child> = (0..6)
            .map(|_| spawn(&sb, &["-o", "json", "show", "race"]))
            .collect();

        for w in writers {
            let out = w.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {}
                Some(1) => assert!(stderr.contains("locked"), "unexpected failure: {stderr}"),
                other => panic!("writer exited {other:?}: {stderr}"),
            }
        }
        for r in readers {
            let out = r.wait_with_output().unwrap();
            assert!(out.status.success(), "reader failed: {out:?}");
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["name"], "race");
        }
    }

    let text = std::fs::read_to_string(sb.data().join("race/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is valid JSON");
    let token = state["config"]["tracker"]["http_api"]["admin_token"]
        .as_str()
        .unwrap();
    assert!(
        tokens.iter().any(|t| t == token),
        "state holds no writer's token"
    );
    // No temporary files are left next to the state.
    let leftovers: Vec<_> = std::fs::read_dir(sb.data().join("race"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The lock is free again.
    sb.run(&["purge", "race", "--force"]).ok();
}
