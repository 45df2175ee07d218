//! No secret from an environment file reaches stdout, stderr or the log files.

use crate::common;

use common::{Sandbox, minimal, mode};
use serde_json::json;

const SECRETS: &[&str] = &[
    "AdminTokenS3cretValue",
    "MysqlUserS3cretValue",
    "MysqlRootS3cretValue",
    "GrafanaS3cretValue",
];

fn assert_clean(sb: &Sandbox, what: &str, out: &str) {
    for s in SECRETS {
        assert!(!out.contains(s), "secret {s} leaked in {what}:\n{out}");
    }
    let logs = sb.logs();
    for s in SECRETS {
        assert!(
            !logs.contains(s),
            "secret {s} leaked in the logs after {what}"
        );
    }
}

#[test]
fn secrets_never_reach_output_or_logs() {
    let sb = Sandbox::new();
    let mut cfg = minimal("secretive");
    cfg["tracker"]["http_api"]["admin_token"] = json!(SECRETS[0]);
    cfg["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "tracker",
        "username": "tracker_user", "password": SECRETS[1], "root_password": SECRETS[2]
    });
    cfg["prometheus"] = json!({ "scrape_interval_in_secs": 15 });
    cfg["grafana"] = json!({ "admin_user": "admin", "admin_password": SECRETS[3] });
    let file = sb.env_file("s.json", &cfg);

    let commands: Vec<Vec<&str>> = vec![
        vec!["validate", "--env-file", &file],
        vec!["-vv", "create", "environment", "--env-file", &file],
        vec!["-vv", "create", "environment", "--env-file", &file],
        vec!["show", "secretive"],
        vec!["-vv", "-o", "json", "show", "secretive"],
        vec!["list"],
        vec!["-o", "json", "list"],
        vec!["exists", "secretive"],
    ];
    for args in &commands {
        let run = sb.run(args).ok();
        assert_clean(&sb, &format!("{args:?} stdout"), &run.stdout);
        assert_clean(&sb, &format!("{args:?} stderr"), &run.stderr);
    }
    assert!(!sb.logs().is_empty(), "no log file was written");
    // The state keeps the secrets, readable by its owner only.
    let state = sb.data().join("secretive/state.json");
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains(SECRETS[0])
    );
    assert_eq!(mode(&state), 0o600);

    // Invalid files: the problems name the fields but never show the secret values.
    let mut bad = cfg.clone();
    bad["tracker"]["core"]["database"]["username"] = json!("root");
    bad["tracker"]["http_api"]["bind_address"] = json!("not-an-address");
    bad["grafana"]["admin_password"] = json!("");
    bad["tracker"]["http_api"]["admin_tokn"] = json!(SECRETS[0]);
    let bad_file = sb.env_file("bad.json", &bad);
    for args in [
        vec!["validate", "--env-file", bad_file.as_str()],
        vec![
            "-vv",
            "-o",
            "json",
            "create",
            "environment",
            "--env-file",
            bad_file.as_str(),
        ],
    ] {
        let run = sb.run(&args).code(2);
        assert_clean(&sb, "invalid file stdout", &run.stdout);
        assert_clean(&sb, "invalid file stderr", &run.stderr);
    }
}
