//! The rendered compose file and `.env`, read by a real Compose: `config` validates the file
//! against Compose's own schema and shows the values each container would get, so this also
//! proves that `.env` values with `$`, `#`, `"` and spaces reach the containers unchanged.
//!
//! Compose is found through `TORRUST_TEST_DOCKER_COMPOSE` (a command, e.g. the docker-compose
//! 1.29.2 of Debian 12: `python3 -m venv /tmp/c && /tmp/c/bin/pip install "cython<3" wheel &&
//! /tmp/c/bin/pip install --no-build-isolation pyyaml==5.4.1 && /tmp/c/bin/pip install
//! docker-compose==1.29.2`, then `TORRUST_TEST_DOCKER_COMPOSE=/tmp/c/bin/docker-compose`), else
//! `docker-compose` or `docker compose` on the PATH. Without any, the test says so and passes:
//! no Docker engine is needed, only the Compose client.

use crate::common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use torrust_tracker_deployer::config;
use torrust_tracker_deployer::stack::{self, layout};

fn compose_command() -> Option<Vec<String>> {
    if let Ok(cmd) = std::env::var("TORRUST_TEST_DOCKER_COMPOSE") {
        return Some(cmd.split_whitespace().map(String::from).collect());
    }
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["docker-compose", "version"]) {
        Some(vec!["docker-compose".into()])
    } else if works(&["docker", "compose", "version"]) {
        Some(vec!["docker".into(), "compose".into()])
    } else {
        None
    }
}

const DB_PASSWORD: &str = "p@ss $x#y\"z w";
const ROOT_PASSWORD: &str = "R00t$pw#1";
const GRAFANA_PASSWORD: &str = "gr@f $HOME $ {X} pw";
const TOKEN: &str = "123456789012";

fn configs() -> Vec<Value> {
    let mut minimal = common::minimal("compose-test");
    minimal["tracker"]["http_api"]["admin_token"] = json!(TOKEN);
    let mut full = minimal.clone();
    full["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "db", "port": 3307, "database_name": "torrust_tracker",
        "username": "torrust", "password": DB_PASSWORD, "root_password": ROOT_PASSWORD
    });
    full["tracker"]["http_trackers"] = json!([
        { "bind_address": "0.0.0.0:7070", "domain": "tracker.example.com", "use_tls_proxy": true }
    ]);
    full["tracker"]["http_api"]["domain"] = json!("api.example.com");
    full["tracker"]["http_api"]["use_tls_proxy"] = json!(true);
    full["prometheus"] = json!({});
    full["grafana"] = json!({ "admin_user": "adm$n", "admin_password": GRAFANA_PASSWORD });
    full["https"] = json!({ "admin_email": "admin@example.com", "use_staging": true });
    full["backup"] = json!({});
    vec![minimal, full]
}

fn compose_config(compose: &[String], dir: &Path) -> Value {
    let out = Command::new(&compose[0])
        .args(&compose[1..])
        .arg("config")
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .output()
        .expect("compose runs");
    assert!(
        out.status.success(),
        "`{} config` refused the file:\n{}",
        compose.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::from_str(&text).expect("compose prints YAML")
}

/// A value as the container gets it (`config` prints a literal `$` as `$$`).
fn env(doc: &Value, service: &str, key: &str) -> String {
    let v = &doc["services"][service]["environment"][key];
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
        .replace("$$", "$")
}

#[test]
fn compose_reads_the_rendered_stack() {
    let Some(compose) = compose_command() else {
        eprintln!(
            "SKIPPED: no Compose found (set TORRUST_TEST_DOCKER_COMPOSE, see this file's docs)"
        );
        return;
    };
    for v in configs() {
        let cfg = config::parse(&v.to_string(), Path::new("/"))
            .expect("valid")
            .config;
        let rendered = stack::render(&cfg).expect("renders");
        let dir = tempfile::tempdir().unwrap();
        for f in &rendered.files {
            if f.path.parent() == Some(Path::new(layout::STACK_DIR)) {
                std::fs::write(dir.path().join(f.path.file_name().unwrap()), &f.contents).unwrap();
            }
        }
        let doc = compose_config(&compose, dir.path());
        let services: Vec<&str> = doc["services"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = rendered.services.iter().map(|s| s.name.as_str()).collect();
        let mut got = services.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(
            env(&doc, "tracker", stack::ENV_API_ADMIN_TOKEN),
            format!("\"{TOKEN}\"")
        );
        if cfg.grafana.is_some() {
            assert_eq!(
                env(&doc, "mysql", "MYSQL_PASSWORD"),
                DB_PASSWORD,
                "the .env value was altered"
            );
            assert_eq!(env(&doc, "mysql", "MYSQL_ROOT_PASSWORD"), ROOT_PASSWORD);
            assert_eq!(
                env(&doc, "grafana", "GF_SECURITY_ADMIN_PASSWORD"),
                GRAFANA_PASSWORD
            );
            assert_eq!(env(&doc, "grafana", "GF_SECURITY_ADMIN_USER"), "adm$n");
            assert_eq!(
                env(&doc, "tracker", stack::ENV_DATABASE_PATH),
                "mysql://torrust:p%40ss%20%24x%23y%22z%20w@db:3307/torrust_tracker"
            );
            assert_eq!(
                doc["services"]["tracker"]["depends_on"]["mysql"]["condition"],
                "service_healthy"
            );
        } else {
            assert_eq!(env(&doc, "tracker", stack::ENV_DATABASE_DRIVER), "sqlite3");
        }
    }
}
