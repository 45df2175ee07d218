//! Bad input found in review, through the real binary: each is refused before anything is
//! written, with a message that names the field (or the file) and the fix.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{BIN, Run, Sandbox, TEST_PUBLIC_KEY, minimal};
use serde_json::{Value, json};

/// `validate` of `value`, expected refused (exit 2); its stderr.
fn refused(sb: &Sandbox, value: &Value) -> String {
    let file = sb.env_file("env.json", value);
    sb.run(&["validate", "--env-file", &file]).code(2).stderr
}

#[test]
fn an_environment_name_with_a_path_writes_no_log_outside_the_data_directory() {
    let sb = Sandbox::new();
    let absolute = sb.path().join("abs").to_string_lossy().into_owned();
    for name in ["../../x", "../escaped", &absolute] {
        let run = sb.run(&["status", name]).code(2);
        assert!(run.stderr.contains("is not an environment name"), "{run:?}");
    }
    // data/logs/../../x.log is the sandbox's x.log; data/logs/../escaped.log is
    // data/escaped.log; an absolute name replaces the whole path.
    assert!(!sb.path().join("x.log").exists());
    assert!(!sb.data().join("escaped.log").exists());
    assert!(!sb.path().join("abs.log").exists());
    // Nothing was created at all: not even the data directory.
    assert!(!sb.data().exists());
}

#[test]
fn an_environment_name_over_63_characters_is_refused_at_validate_and_on_the_command_line() {
    let sb = Sandbox::new();
    let long = "a".repeat(64);
    let mut v = minimal(&long);
    v["environment"]["instance_name"] = json!("short-vm");
    let err = refused(&sb, &v);
    assert!(err.contains("environment.name"), "{err}");
    assert!(err.contains("64 characters long; at most 63"), "{err}");
    assert!(err.contains("fix: use 1-63 lowercase letters"), "{err}");
    // On the command line too, before any file (lock, log) is named after it.
    let run = sb.run(&["status", &long]).code(2);
    assert!(run.stderr.contains("use 1-63 lowercase letters"), "{run:?}");
    assert!(!sb.data().exists());
    // 63 is fine.
    let mut v = minimal(&"a".repeat(63));
    v["environment"]["instance_name"] = json!("short-vm");
    v["provider"]["profile_name"] = json!("short-profile");
    let file = sb.env_file("ok.json", &v);
    sb.run(&["validate", "--env-file", &file]).ok();
}

#[test]
fn what_render_would_refuse_is_refused_by_validate_and_create() {
    let sb = Sandbox::new();
    let mysql = |host: &str, password: &str, user: &str, db: &str| {
        let mut v = minimal("e");
        v["tracker"]["core"]["database"] = json!({
            "driver": "mysql", "host": host, "port": 3306, "database_name": db,
            "username": user, "password": password
        });
        v
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            mysql("mysql", "pass'word", "torrust", "torrust_tracker"),
            "tracker.core.database.password",
            "a single quote",
        ),
        (
            mysql("mysql", "pass\nword", "torrust", "torrust_tracker"),
            "tracker.core.database.password",
            "a control character (U+000A)",
        ),
        (
            mysql("mysql", "pa${HOME}ss", "torrust", "torrust_tracker"),
            "tracker.core.database.password",
            "`${`",
        ),
        (
            mysql("mysql;drop", "password", "torrust", "torrust_tracker"),
            "tracker.core.database.host",
            "use `mysql`",
        ),
        (
            mysql("mysql", "password", "torrust'@'%", "torrust_tracker"),
            "tracker.core.database.username",
            "only ASCII letters, digits, `_` and `-`",
        ),
        (
            mysql(
                "mysql",
                "password",
                "torrust",
                "db`; DROP DATABASE mysql; --",
            ),
            "tracker.core.database.database_name",
            "only ASCII letters, digits, `_` and `-`",
        ),
        (
            {
                let mut v = minimal("e");
                v["tracker"]["http_api"]["admin_token"] = json!("back\\slash-token");
                v
            },
            "tracker.http_api.admin_token",
            "a backslash",
        ),
    ];
    for (v, field, what) in cases {
        let err = refused(&sb, &v);
        assert!(err.contains(field), "{field}: {err}");
        assert!(err.contains(what), "{field}: {what}: {err}");
        assert!(err.contains("fix: "), "{err}");
        // `create` makes the same checks, and writes nothing.
        let file = sb.env_file("env.json", &v);
        sb.run(&["create", "environment", "--env-file", &file])
            .code(2);
        assert!(!sb.data().join("e").exists(), "{field}");
    }
}

#[test]
fn a_token_starting_with_a_double_quote_is_named_as_such() {
    let sb = Sandbox::new();
    let mut v = minimal("e");
    v["tracker"]["http_api"]["admin_token"] = json!("\"0123456789abcdef");
    let err = refused(&sb, &v);
    assert!(err.contains("tracker.http_api.admin_token"), "{err}");
    assert!(err.contains("contains a double quote (\")"), "{err}");
    assert!(!err.contains("contains a backslash"), "{err}");
    assert!(!err.contains("0123456789abcdef"), "the token leaked: {err}");
}

#[test]
fn a_public_key_file_with_more_than_one_key_line_is_refused() {
    let sb = Sandbox::new();
    let (private, public) = sb.key_pair("id");
    let mut v = minimal("e");
    v["ssh_credentials"]["private_key_path"] = json!(private);
    v["ssh_credentials"]["public_key_path"] = json!(public);
    let file = sb.env_file("env.json", &v);
    sb.run(&["validate", "--env-file", &file]).ok();
    // A second line would reach cloud-init's user-data.
    std::fs::write(
        &public,
        format!("{TEST_PUBLIC_KEY} me@host\nruncmd:\n  - [touch, /tmp/owned]\n"),
    )
    .unwrap();
    let err = sb.run(&["validate", "--env-file", &file]).code(2).stderr;
    assert!(err.contains("ssh_credentials.public_key_path"), "{err}");
    assert!(err.contains("not an OpenSSH public key file"), "{err}");
    assert!(err.contains("3 non-empty lines"), "{err}");
    assert!(
        err.contains("fix: point `ssh_credentials.public_key_path`"),
        "{err}"
    );
    // Not a key at all.
    std::fs::write(&public, "ssh-ed25519 AAAA me@host\n").unwrap();
    let err = sb.run(&["validate", "--env-file", &file]).code(2).stderr;
    assert!(err.contains("line 1 is not `ALGORITHM BASE64"), "{err}");
}

/// Runs the binary, killing it after `limit`: a run that blocks fails the test, not the suite.
fn run_within(sb: &Sandbox, args: &[&str], limit: Duration) -> Run {
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .current_dir(sb.path())
        .env_remove("TORRUST_DEPLOYER_DATA_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`{}` still ran after {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap().into()
}

#[test]
fn an_environment_file_that_is_a_fifo_is_refused_without_blocking() {
    let sb = Sandbox::new();
    let fifo = sb.path().join("env.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let path = fifo.to_string_lossy().into_owned();
    let run = run_within(
        &sb,
        &["validate", "--env-file", &path],
        Duration::from_secs(20),
    )
    .code(2);
    assert!(
        run.stderr
            .contains("is not a regular file but a named pipe (FIFO)"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("fix: give the path of the JSON file itself"),
        "{run:?}"
    );
    // A directory is named as such.
    let dir = sb.path().to_string_lossy().into_owned();
    let run = sb.run(&["validate", "--env-file", &dir]).code(2);
    assert!(
        run.stderr.contains("not a regular file but a directory"),
        "{run:?}"
    );
}

#[test]
fn an_environment_file_over_1_mib_is_refused() {
    let sb = Sandbox::new();
    let mut v = minimal("e");
    v["environment"]["description"] = json!("x".repeat(1024 * 1024));
    let err = refused(&sb, &v);
    assert!(err.contains("is larger than 1024 KiB"), "{err}");
    assert!(err.contains("fix: "), "{err}");
    // Just under the limit is read (and valid).
    v["environment"]["description"] = json!("x".repeat(1000 * 1000));
    let file = sb.env_file("ok.json", &v);
    sb.run(&["validate", "--env-file", &file]).ok();
}

#[test]
fn a_byte_order_mark_and_non_utf8_text_are_named() {
    let sb = Sandbox::new();
    let text = serde_json::to_string_pretty(&minimal("e")).unwrap();
    let path = sb.path().join("env.json");
    let file = path.to_string_lossy().into_owned();

    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(text.as_bytes());
    std::fs::write(&path, &bom).unwrap();
    let err = sb.run(&["validate", "--env-file", &file]).code(2).stderr;
    assert!(err.contains("byte order mark (BOM)"), "{err}");
    assert!(
        err.contains("fix: save the file as UTF-8 without BOM"),
        "{err}"
    );
    assert!(!err.contains("expected value"), "{err}");

    // A Latin-1 "é" in the description, on line 3.
    let latin1 = text.replacen(
        "\"name\": \"e\"",
        "\"name\": \"e\", \"description\": \"caf\u{e9}\"",
        1,
    );
    let line = latin1.lines().position(|l| l.contains("caf")).unwrap() + 1;
    let column = latin1.lines().nth(line - 1).unwrap().find("caf").unwrap() + 4;
    let bytes: Vec<u8> = latin1
        .chars()
        .map(|c| if c == '\u{e9}' { 0xE9 } else { c as u8 })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let err = sb.run(&["validate", "--env-file", &file]).code(2).stderr;
    assert!(
        err.contains(&format!(
            "is not UTF-8 text: invalid byte at line {line}, column {column}"
        )),
        "{err}"
    );
    assert!(err.contains("it is not a permission problem"), "{err}");
    assert!(!err.contains("readable"), "{err}");
}

#[test]
fn a_damaged_state_names_the_previous_one_and_how_to_put_it_back() {
    let sb = Sandbox::new();
    let mut v = minimal("alpha");
    let file = sb.env_file("alpha.json", &v);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let state = sb.data().join("alpha/state.json");
    let prev = sb.data().join("alpha/state.json.prev");
    // The first save keeps itself as the previous state.
    assert_eq!(
        std::fs::read(&state).unwrap(),
        std::fs::read(&prev).unwrap()
    );
    assert_eq!(common::mode(&prev), 0o600);
    let first = std::fs::read(&state).unwrap();
    // A second durable save: the first state becomes the previous one.
    v["tracker"]["http_api"]["admin_token"] = json!("another-token-0123456789");
    let file = sb.env_file("alpha.json", &v);
    let run = sb.run(&["create", "environment", "--env-file", &file]).ok();
    assert!(run.stdout.contains("updated"), "{run:?}");
    assert_eq!(std::fs::read(&prev).unwrap(), first);
    let second = std::fs::read(&state).unwrap();
    assert_ne!(second, first);

    // Truncated (a power loss, a full disk) and empty.
    for damaged in [&second[..second.len() / 2], &b""[..]] {
        std::fs::write(&state, damaged).unwrap();
        let run = sb.run(&["show", "alpha"]).code(1);
        let expected = format!(
            "put it back with `cp -p {} {}`",
            prev.display(),
            state.display()
        );
        assert!(run.stderr.contains("is damaged"), "{run:?}");
        assert!(run.stderr.contains(&expected), "{run:?}");
        assert!(
            run.stderr.contains("purge --force` would forget"),
            "{run:?}"
        );
        let doc = sb.run(&["-o", "json", "show", "alpha"]).code(1).json();
        assert_eq!(doc["error"]["kind"], "state");
    }
    // Doing what it says brings the environment back.
    std::fs::copy(&prev, &state).unwrap();
    let doc = sb.run(&["-o", "json", "show", "alpha"]).ok().json();
    assert_eq!(doc["name"], "alpha", "{doc:#}");
}
