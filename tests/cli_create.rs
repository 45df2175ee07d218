//! `create template | schema | environment` and `validate`, through the real binary.

use crate::common;

use common::{Sandbox, minimal, mode};
use serde_json::json;

#[test]
fn template_to_stdout_is_a_valid_lxd_file_with_a_random_token() {
    let sb = Sandbox::new();
    let a = sb.run(&["create", "template"]).ok();
    let b = sb.run(&["create", "template"]).ok();
    let (a, b) = (a.json(), b.json());
    let token_a = a["tracker"]["http_api"]["admin_token"].as_str().unwrap();
    let token_b = b["tracker"]["http_api"]["admin_token"].as_str().unwrap();
    assert!(token_a.len() >= 24, "token too short: {token_a}");
    assert_ne!(token_a, token_b, "templates must not share a fixed token");
    assert_eq!(a["provider"]["provider"], "lxd");
    // It validates as is.
    let file = sb.env_file("t.json", &a);
    sb.run(&["validate", "--env-file", &file]).ok();
}

#[test]
fn template_to_a_relative_path_is_0600_and_not_overwritten_without_force() {
    let sb = Sandbox::new();
    let run = sb.run(&["create", "template", "env.json"]).ok();
    assert!(run.stdout.contains("env.json"), "{run:?}");
    let path = sb.path().join("env.json");
    assert_eq!(mode(&path), 0o600);
    let before = std::fs::read_to_string(&path).unwrap();
    let run = sb.run(&["create", "template", "env.json"]).code(2);
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    sb.run(&["create", "template", "env.json", "--force"]).ok();
    assert_ne!(std::fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn hetzner_template_needs_its_token_replaced() {
    let sb = Sandbox::new();
    sb.run(&["create", "template", "h.json", "--provider", "hetzner"])
        .ok();
    let run = sb
        .run(&["-o", "json", "validate", "--env-file", "h.json"])
        .code(2);
    let doc = run.json();
    let problems = doc["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{doc:#}");
    assert_eq!(problems[0]["path"], "provider.api_token");
    // Replacing the placeholder makes it valid.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("h.json")).unwrap()).unwrap();
    file["provider"]["api_token"] = json!("a-real-looking-token-0123456789abcdef");
    let path = sb.env_file("h2.json", &file);
    sb.run(&["validate", "--env-file", &path]).ok();
}

#[test]
fn full_template_has_every_section_and_only_the_named_placeholders_to_fill() {
    let sb = Sandbox::new();
    let run = sb.run(&["create", "template", "full.json", "--full"]).ok();
    for path in [
        "tracker.http_trackers[0].domain",
        "grafana.domain",
        "https.admin_email",
    ] {
        assert!(run.stdout.contains(path), "{run:?}");
    }
    let path = sb.path().join("full.json");
    assert_eq!(mode(&path), 0o600);
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for section in [
        "environment",
        "ssh_credentials",
        "provider",
        "tracker",
        "prometheus",
        "grafana",
        "https",
        "backup",
        "images",
        "host",
    ] {
        assert!(file[section].is_object(), "no {section}: {file:#}");
    }
    assert_eq!(
        file["tracker"]["core"]["announce_policy"],
        json!({ "interval": 300, "interval_min": 300 })
    );
    assert_eq!(
        file["backup"],
        json!({ "schedule": "0 3 * * *", "retention_days": 7 })
    );
    assert_eq!(file["images"]["caddy"], "caddy:2.11.2");
    assert_eq!(file["images"]["prometheus"], "prom/prometheus:v3.11.2");
    assert_eq!(file["images"]["grafana"], "grafana/grafana:13.0.0");
    assert!(file["images"].get("backup").is_none(), "{file:#}");
    let grafana_password = file["grafana"]["admin_password"].as_str().unwrap();
    assert!(grafana_password.len() >= 24, "{grafana_password}");

    // As written, `validate` refuses exactly the placeholders the command named.
    let doc = sb
        .run(&["-o", "json", "validate", "--env-file", "full.json"])
        .code(2)
        .json();
    let mut paths: Vec<&str> = doc["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "grafana.domain",
            "https.admin_email",
            "tracker.http_trackers[0].domain"
        ],
        "{doc:#}"
    );

    // Filled in, it is valid with no warning, and the whole stack renders (Caddy included).
    file["tracker"]["http_trackers"][0]["domain"] = json!("tracker.example.org");
    file["grafana"]["domain"] = json!("grafana.example.org");
    file["https"]["admin_email"] = json!("ops@example.org");
    let filled = sb.env_file("filled.json", &file);
    let run = sb.run(&["validate", "--env-file", &filled]).ok();
    assert!(!run.stderr.contains("warning"), "{run:?}");
    sb.run(&[
        "render",
        "--env-file",
        &filled,
        "--instance-ip",
        "192.0.2.10",
        "--output-dir",
        "out",
    ])
    .ok();
    let caddyfile = walk_find(&sb.path().join("out"), "Caddyfile").expect("a Caddyfile");
    let caddyfile = std::fs::read_to_string(caddyfile).unwrap();
    assert!(caddyfile.contains("tracker.example.org"), "{caddyfile}");
    assert!(caddyfile.contains("grafana.example.org"), "{caddyfile}");
    let tracker_toml = walk_find(&sb.path().join("out"), "tracker.toml").expect("tracker.toml");
    let tracker_toml = std::fs::read_to_string(tracker_toml).unwrap();
    assert!(
        tracker_toml.contains("[core.announce_policy]"),
        "{tracker_toml}"
    );
}

#[test]
fn full_template_json_result_lists_the_placeholders() {
    let sb = Sandbox::new();
    let doc = sb
        .run(&[
            "-o",
            "json",
            "create",
            "template",
            "h.json",
            "--full",
            "--provider",
            "hetzner",
        ])
        .ok()
        .json();
    assert_eq!(
        doc["placeholders"],
        json!([
            "provider.api_token",
            "tracker.http_trackers[0].domain",
            "grafana.domain",
            "https.admin_email"
        ]),
        "{doc:#}"
    );
    // To stdout: the file on stdout (valid JSON), the placeholders named on stderr.
    let run = sb.run(&["create", "template", "--full"]).ok();
    assert!(run.json()["grafana"].is_object());
    assert!(run.stderr.contains("https.admin_email"), "{run:?}");
    // The plain template names none: it is valid as is.
    let run = sb.run(&["create", "template", "plain.json"]).ok();
    assert!(!run.stdout.contains("REPLACE_WITH"), "{run:?}");
}

/// The first file named `name` under `dir`, depth first.
fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = walk_find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[test]
fn schema_is_draft_2020_12() {
    let sb = Sandbox::new();
    let doc = sb.run(&["create", "schema"]).ok().json();
    assert_eq!(
        doc["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(doc["properties"]["tracker"].is_object(), "{doc:#}");
    sb.run(&["create", "schema", "schema.json"]).ok();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("schema.json")).unwrap())
            .unwrap();
    assert_eq!(written, doc);
}

#[test]
fn validate_writes_nothing() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    let run = sb.run(&["validate", "--env-file", &file]).ok();
    assert!(run.stdout.contains("is valid"), "{run:?}");
    assert!(!sb.data().exists(), "validate created the data directory");
    let doc = sb
        .run(&["-o", "json", "validate", "--env-file", &file])
        .ok()
        .json();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["name"], "alpha");
    assert_eq!(doc["provider"], "lxd");
}

#[test]
fn validate_reports_every_problem_with_path_and_fix() {
    let sb = Sandbox::new();
    let mut cfg = minimal("alpha");
    cfg["tracker"]["http_trackers"][0]["use_tls_prxy"] = json!(true);
    cfg["tracker"]["udp_trackers"][0]["bind_address"] = json!("0.0.0.0:0");
    cfg["environment"]["name"] = json!("Bad_Name");
    let file = sb.env_file("e.json", &cfg);
    let run = sb.run(&["validate", "--env-file", &file]).code(2);
    for needle in [
        "tracker.http_trackers[0].use_tls_prxy",
        "use_tls_proxy",
        "tracker.udp_trackers[0].bind_address",
        "environment.name",
        "fix:",
    ] {
        assert!(run.stderr.contains(needle), "missing {needle}: {run:?}");
    }
    let doc = sb
        .run(&["-o", "json", "validate", "--env-file", &file])
        .code(2)
        .json();
    assert_eq!(doc["error"]["kind"], "invalid_config");
    assert!(
        doc["error"]["problems"].as_array().unwrap().len() >= 3,
        "{doc:#}"
    );
}

#[test]
fn unreadable_or_broken_files_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["validate", "--env-file", "missing.json"]).code(2);
    assert!(run.stderr.contains("missing.json"), "{run:?}");
    std::fs::write(sb.path().join("broken.json"), "{\n  \"environment\": ").unwrap();
    let run = sb.run(&["validate", "--env-file", "broken.json"]).code(2);
    assert!(run.stderr.contains("line"), "{run:?}");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    sb.run(&["no-such-command"]).code(2);
    sb.run(&["create", "environment"]).code(2);
    sb.run(&["show", "../etc"]).code(2);
    sb.run(&["--help"]).ok();
}

#[test]
fn create_environment_generates_keys_and_is_idempotent() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    let doc = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file])
        .ok()
        .json();
    assert_eq!(doc["outcome"], "created");
    assert_eq!(doc["lifecycle"], "created");
    let key = sb.data().join("alpha/ssh/id_ed25519");
    assert_eq!(
        doc["generated_ssh_key"]["private_key_path"],
        key.to_str().unwrap()
    );
    assert_eq!(mode(&key), 0o600);
    assert!(
        std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    let state = sb.data().join("alpha/state.json");
    assert_eq!(mode(&state), 0o600);
    let key_before = std::fs::read(&key).unwrap();

    let again = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file])
        .ok()
        .json();
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_before,
        "a re-run rotated the key"
    );

    // A different file while nothing is deployed replaces the configuration.
    let mut cfg = minimal("alpha");
    cfg["tracker"]["core"]["private"] = json!(true);
    let file2 = sb.env_file("e2.json", &cfg);
    let doc = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file2])
        .ok()
        .json();
    assert_eq!(doc["outcome"], "updated");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(state["config"]["tracker"]["core"]["private"], true);
    assert_eq!(state["schema_version"], 1);
}

#[test]
fn once_deployed_only_the_stack_may_change() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    // Simulate a later lifecycle state, as `run` leaves it.
    let state_path = sb.data().join("alpha/state.json");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap()
    };
    let mut state = read();
    state["lifecycle"] = json!("running");
    std::fs::write(&state_path, state.to_string()).unwrap();

    // A change of the host (here the SSH user) needs a new host: refused, with the fix.
    let mut cfg = minimal("alpha");
    cfg["ssh_credentials"]["username"] = json!("someone");
    let file2 = sb.env_file("e2.json", &cfg);
    let run = sb
        .run(&["create", "environment", "--env-file", &file2])
        .code(2);
    assert!(run.stderr.contains("running"), "{run:?}");
    assert!(run.stderr.contains("destroy alpha"), "{run:?}");
    assert_eq!(read()["lifecycle"], "running");

    // A change of the tracker stack is accepted; the lifecycle steps back so that release and
    // run apply it.
    let mut cfg = minimal("alpha");
    cfg["tracker"]["core"]["private"] = json!(true);
    let file3 = sb.env_file("e3.json", &cfg);
    let doc = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file3])
        .ok()
        .json();
    assert_eq!(doc["outcome"], "updated");
    let state = read();
    assert_eq!(state["lifecycle"], "configured");
    assert_eq!(state["config"]["tracker"]["core"]["private"], true);
    // The same file again changes nothing.
    let again = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file3])
        .ok()
        .json();
    assert_eq!(again["outcome"], "unchanged");
}

#[test]
fn relative_key_paths_resolve_against_the_file() {
    let sb = Sandbox::new();
    sb.key_pair("id_test");
    let sub = sb.path().join("envs");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cfg = minimal("beta");
    cfg["ssh_credentials"] = json!({
        "private_key_path": "../keys/id_test",
        "public_key_path": "../keys/id_test.pub"
    });
    std::fs::write(sub.join("beta.json"), cfg.to_string()).unwrap();
    let doc = sb
        .run(&[
            "-o",
            "json",
            "create",
            "environment",
            "--env-file",
            "envs/beta.json",
        ])
        .ok()
        .json();
    assert!(doc.get("generated_ssh_key").is_none());
    let shown = sb.run(&["-o", "json", "show", "beta"]).ok().json();
    let key = shown["ssh_private_key"].as_str().unwrap();
    assert!(std::path::Path::new(key).is_absolute(), "{key}");
    assert!(std::path::Path::new(key).exists(), "{key}");
}

#[test]
fn mysql_root_password_is_generated_once_and_kept() {
    let sb = Sandbox::new();
    let mut cfg = minimal("gamma");
    cfg["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "tracker",
        "username": "tracker_user", "password": "UserPassw0rd"
    });
    let file = sb.env_file("g.json", &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let read_root = || {
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(sb.data().join("gamma/state.json")).unwrap(),
        )
        .unwrap();
        state["config"]["tracker"]["core"]["database"]["root_password"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = read_root();
    assert!(first.len() >= 16);
    let again = sb
        .run(&["-o", "json", "create", "environment", "--env-file", &file])
        .ok()
        .json();
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(read_root(), first);
}

#[test]
fn legacy_caddy_section_is_accepted_with_a_warning() {
    let sb = Sandbox::new();
    let mut cfg = minimal("delta");
    cfg["caddy"] = json!({ "admin_email": "admin@example.com" });
    let file = sb.env_file("d.json", &cfg);
    let run = sb.run(&["validate", "--env-file", &file]).ok();
    assert!(run.stderr.contains("caddy"), "{run:?}");
    assert!(run.stderr.contains("https"), "{run:?}");
}
