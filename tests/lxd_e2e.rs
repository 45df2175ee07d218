//! End to end on LXD with real everything: the real tracker 3.0.0 (built from crates.io) and
//! stand-in images from the offline bundle, deployed into a real container with Docker.
//!
//! Needs LXD, the test images, the tracker build and the offline bundle:
//! `provisioning/test.sh` prepares all of them and passes the bundle in
//! `TORRUST_TEST_BUNDLE` (default: /var/cache/torrust-deployer/bundle/current).

use crate::common;

use std::path::PathBuf;

use common::Sandbox;
use common::lxd::*;
use serde_json::{Value, json};

fn bundle() -> PathBuf {
    let dir = std::env::var_os("TORRUST_TEST_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/torrust-deployer/bundle/current"));
    assert!(
        dir.is_dir(),
        "no offline bundle at {}: run `bash provisioning/images/build-offline-bundle.sh`",
        dir.display()
    );
    dir
}

fn stack_file(sb: &Sandbox, name: &str, database: Value, scrape_interval: u32) -> String {
    let cfg = stack(name, database, scrape_interval);
    sb.env_file(&format!("{name}-{scrape_interval}.json"), &cfg)
}

/// An environment file: UDP and HTTP trackers, the API and Prometheus, images from the bundle.
fn stack(name: &str, database: Value, scrape_interval: u32) -> Value {
    json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-test-{name}"), "image": IMAGE },
        "tracker": {
            "core": { "database": database, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "127.0.0.1:1212", "admin_token": "E2eAdminToken0123456789abc" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "prometheus": { "scrape_interval_in_secs": scrape_interval },
        "images": { "offline_bundle": bundle() }
    })
}

/// `deploy`; its final `test` skips the check of Grafana's API, which the bundle's Grafana stub
/// cannot pass (see [`monitoring_collects`]).
fn deploy(sb: &Sandbox, name: &str, file: &str) -> Value {
    let run = sb
        .run(&[
            "-o",
            "json",
            "deploy",
            name,
            "--env-file",
            file,
            "--skip",
            "grafana-api",
        ])
        .ok();
    // How long placing the deployer's binary (for the stats exporter) took.
    for line in run.stderr.lines() {
        if line.contains("\"step_finished\"") && line.contains("deployer binary") {
            eprintln!("{line}");
        }
    }
    run.json()
}

/// The strings of a JSON array, or (with a `field`) that field of each of its objects.
fn texts<'a>(array: &'a Value, field: &str) -> Vec<&'a str> {
    let items = array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array:#}"));
    items
        .iter()
        .map(|v| if field.is_empty() { v } else { &v[field] })
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:#}")))
        .collect()
}

/// `destroy`, then LXD has no instance of the environment left.
fn destroy_leaves_nothing(sb: &Sandbox, name: &str) {
    let instance = state(sb, name)["host"]["instance"]
        .as_str()
        .unwrap()
        .to_string();
    sb.run(&["destroy", name]).ok();
    assert!(!instance_exists(&instance));
}

/// `test` from this machine: UDP and HTTP announces and scrapes, API health and stats, the
/// announces counted in the stats, and Prometheus's targets (Grafana's API skipped: the bundle's
/// Grafana is a stub).
fn tracker_test_passes(sb: &Sandbox, name: &str) {
    let run = sb
        .run(&["-o", "json", "test", name, "--skip", "grafana-api"])
        .ok();
    let report = run.json();
    let text = report.to_string();
    assert!(!text.contains("E2eAdminToken"), "the token leaked: {text}");
    let results = report["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["ok"] == true), "{report:#}");
    let counted = results
        .iter()
        .find(|r| r["detail"].as_str().unwrap_or("").contains("counted"))
        .unwrap_or_else(|| panic!("no 'announces counted' check: {report:#}"));
    assert_eq!(counted["ok"], true);
}

/// Monitoring collects, proven on the real Prometheus: `test` checks every target up (through a
/// forward over SSH) and fails honestly on the Grafana stub's API; `status` shows the targets;
/// and every PromQL expression of the dashboard as deployed returns data after the announces.
fn monitoring_collects(sb: &Sandbox, name: &str) {
    use std::time::{Duration, Instant};
    use torrust_tracker_deployer::host::tunnel::while_forwarding;
    use torrust_tracker_deployer::probe::HttpOptions;
    use torrust_tracker_deployer::probe::monitoring::prometheus_query;

    // Without --skip, `test` fails on Grafana's API only, and says so.
    let failed = sb.run(&["-o", "json", "test", name]).code(1);
    let report = failed.json();
    let results = report["results"].as_array().unwrap();
    let failures: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert_eq!(failures.len(), 1, "{report:#}");
    assert_eq!(failures[0]["name"], "Grafana API", "{report:#}");
    assert!(
        failures[0]["detail"]
            .as_str()
            .unwrap()
            .contains("Grafana API"),
        "{report:#}"
    );
    assert!(!report.to_string().contains("E2eGrafanaPass"), "{report:#}");
    let targets = results
        .iter()
        .find(|r| r["name"] == "Prometheus targets")
        .unwrap_or_else(|| panic!("no Prometheus targets check: {report:#}"));
    assert_eq!(targets["ok"], true, "{report:#}");
    assert_eq!(
        targets["output"]["targets"][0]["url"], "http://stats-exporter:9101/metrics",
        "{report:#}"
    );

    // `status` shows the targets' health.
    let status = sb.run(&["-o", "json", "status", name]).ok().json();
    let monitoring = &status["monitoring"];
    assert!(monitoring.get("problem").is_none(), "{status:#}");
    assert!(
        monitoring["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["health"] == "up"),
        "{status:#}"
    );

    // The dashboard as deployed, and every expression of every panel on the real Prometheus.
    let dashboard = sb
        .run(&[
            "ssh",
            name,
            "--",
            "cat",
            "/opt/torrust/storage/grafana/provisioning/dashboards/torrust/torrust-tracker.json",
        ])
        .ok();
    let dashboard: Value = serde_json::from_str(&dashboard.stdout).unwrap();
    let exprs = torrust_tracker_deployer::stack::dashboard_expressions(&dashboard);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let data = torrust_tracker_deployer::state::DataDir::new(sb.data());
    let st = data.load(name).unwrap();
    let record = st.host.clone().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let empty: Vec<String> = rt.block_on(async {
        let session = torrust_tracker_deployer::ops::host::connect(&data, &st, &record)
            .await
            .unwrap();
        while_forwarding(&session, "127.0.0.1", 9090, async |local| {
            let base = reqwest::Url::parse(&format!("http://{local}/")).unwrap();
            let opts = HttpOptions::default();
            // Grafana replaces $__rate_interval with a range of at least four scrape intervals.
            let mut queries: Vec<String> = exprs
                .iter()
                .map(|e| e.replace("$__rate_interval", "1m"))
                .collect();
            // The test's announces reached Prometheus.
            queries.push("udp4_announces_handled > 0".into());
            queries.push("tcp4_announces_handled > 0".into());
            // rate() needs two samples in its range: wait (with a deadline) for the scrapes.
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let mut empty = Vec::new();
                for q in &queries {
                    let series = prometheus_query(&base, "prometheus", q, &opts)
                        .await
                        .unwrap();
                    if series == 0 {
                        empty.push(q.clone());
                    }
                }
                if empty.is_empty() || Instant::now() >= deadline {
                    return empty;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
        .await
        .unwrap()
    });
    assert_eq!(empty, Vec::<String>::new(), "queries without data");
    eprintln!("all {} dashboard queries returned data", exprs.len());
}

/// `logs ENV tracker --tail 20` shows the tracker's last lines, each with its service;
/// `--output json` gives one object per line; `logs --follow` ends cleanly on SIGINT and
/// leaves no Compose process behind on the host.
fn logs_show_each_service_and_follow_ends_on_sigint(sb: &Sandbox, name: &str) {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let logs = sb.run(&["logs", name, "tracker", "--tail", "20"]).ok();
    let lines: Vec<&str> = logs.stdout.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 20, "{logs:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("tracker | ")),
        "{logs:?}"
    );
    let all = sb.run(&["-o", "json", "logs", name, "--tail", "3"]).ok();
    let services: std::collections::BTreeSet<String> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter_map(|v| v["service"].as_str().map(str::to_string))
        .collect();
    assert!(
        services.contains("tracker") && services.contains("prometheus"),
        "{all:?}"
    );

    let mut child = sb
        .command(&["logs", name, "--follow", "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains(" | "), "{first:?}");
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "logs --follow still runs 10 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    // `[c]` keeps pgrep's own shell out of what it finds.
    let mut left = String::new();
    for _ in 0..10 {
        left = sb
            .run(&["ssh", name, "--", "pgrep -af '[c]ompose.*logs' || true"])
            .ok()
            .stdout;
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(left, "", "left running on the host");
}

/// `stop` records `stopped`; `test` then refuses, naming `start`; `start` waits for health and
/// `test` passes again. `restart` of one service waits for that one.
fn stop_then_start_and_test_follows(sb: &Sandbox, name: &str) {
    let stopped = sb.run(&["-o", "json", "stop", name]).ok().json();
    assert_eq!(stopped["lifecycle"], "stopped", "{stopped:#}");
    assert!(
        stopped["states"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "exited"),
        "{stopped:#}"
    );
    assert_eq!(state(sb, name)["lifecycle"], "stopped");
    let refused = sb.run(&["test", name]).code(2);
    assert!(
        refused.stderr.contains("is stopped")
            && refused
                .stderr
                .contains(&format!("torrust-tracker-deployer start {name}")),
        "{refused:?}"
    );
    let status = sb.run(&["-o", "json", "status", name]).ok().json();
    assert_eq!(status["lifecycle"], "stopped", "{status:#}");

    let started = sb.run(&["-o", "json", "start", name]).ok().json();
    assert_eq!(started["lifecycle"], "running", "{started:#}");
    assert!(
        started["health"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["healthy"] == true),
        "{started:#}"
    );
    tracker_test_passes(sb, name);

    let restarted = sb
        .run(&["-o", "json", "restart", name, "tracker"])
        .ok()
        .json();
    assert_eq!(restarted["services"], json!(["tracker"]), "{restarted:#}");
    assert_eq!(restarted["health"][0]["healthy"], true, "{restarted:#}");
    assert_eq!(restarted["lifecycle"], "running");
}

/// `ssh ENV -- COMMAND` prints the host's file and passes the exit status through; `exec` runs
/// in the tracker's container.
fn ssh_and_exec_pass_the_exit_status_through(sb: &Sandbox, name: &str) {
    let os = sb.run(&["ssh", name, "--", "cat", "/etc/os-release"]).ok();
    assert!(os.stdout.contains("Debian GNU/Linux 12"), "{os:?}");
    sb.run(&["ssh", name, "--", "sh", "-c", "exit 7"]).code(7);
    let inside = sb
        .run(&[
            "exec",
            name,
            "tracker",
            "--",
            "sh",
            "-c",
            "echo in $(hostname); exit 5",
        ])
        .code(5);
    assert!(inside.stdout.starts_with("in "), "{inside:?}");
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn sqlite_stack_deploys_tests_updates_and_destroys() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let name = &unique("e2e-sqlite");
    // Prometheus every 5 s (rate() has its two samples soon), and Grafana on its own port (the
    // TLS test has it behind Caddy).
    let sqlite_file = |scrape_interval: u32| {
        let mut cfg = stack(
            name,
            json!({ "driver": "sqlite3", "database_name": "tracker.db" }),
            scrape_interval,
        );
        cfg["grafana"] = json!({ "admin_user": "admin", "admin_password": "E2eGrafanaPass0123" });
        sb.env_file(&format!("{name}-{scrape_interval}.json"), &cfg)
    };
    let file = sqlite_file(5);
    let _cleanup = Cleanup(&sb, name);

    // 1. deploy from nothing: provision, configure, release (images from the bundle), run.
    let first = deploy(&sb, name, &file);
    assert_eq!(first["changed"], true, "{first:#}");
    let phases = texts(&first["phases"], "phase");
    assert_eq!(
        phases,
        [
            "environment",
            "provision",
            "configure",
            "release",
            "run",
            "test"
        ]
    );
    assert!(
        first["announce_urls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str().unwrap().starts_with("udp://")),
        "{first:#}"
    );
    assert_eq!(state(&sb, name)["lifecycle"], "running");

    // 2. the tracker works, from here, over the real protocols, and monitoring collects.
    tracker_test_passes(&sb, name);
    monitoring_collects(&sb, name);
    let release = first["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "release")
        .unwrap();
    eprintln!("release phase: {}", release["detail"]);
    // Only what the model publishes is reachable from here (ADR 31, 32).
    common::exposure::only_the_intended_ports_are_open(&sb, name);

    // The live view agrees: every service runs, no file drifts.
    let status = sb.run(&["-o", "json", "status", name, "--check"]).ok();
    assert!(!status.stdout.contains("E2eAdminToken"), "{status:?}");

    // Operating it: logs, stop and start, a shell on the host and in a container.
    logs_show_each_service_and_follow_ends_on_sigint(&sb, name);
    stop_then_start_and_test_follows(&sb, name);
    ssh_and_exec_pass_the_exit_status_through(&sb, name);

    // 3. a second deploy of the same file is a no-op.
    let again = deploy(&sb, name, &file);
    assert_eq!(again["changed"], false, "{again:#}");

    // 4. one setting changes: release uploads only that file, run restarts only its service.
    let changed = sqlite_file(10);
    sb.run(&["create", "environment", "--env-file", &changed])
        .ok();
    // Before release, status sees the drift.
    let drift = sb.run(&["status", name, "--check"]).code(1);
    assert!(drift.stdout.contains("prometheus.yml"), "{drift:?}");
    let release = sb.run(&["-o", "json", "release", name]).ok().json();
    let files: Vec<&str> = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["change"] != "unchanged")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        ["/opt/torrust/storage/prometheus/etc/prometheus.yml"],
        "{release:#}"
    );
    assert_eq!(release["pending_restarts"], json!(["prometheus"]));
    let run = sb.run(&["-o", "json", "run", name]).ok().json();
    assert_eq!(run["recreated"], json!([]), "{run:#}");
    assert_eq!(run["restarted"], json!(["prometheus"]), "{run:#}");
    assert!(
        run["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["healthy"] == true)
    );
    tracker_test_passes(&sb, name);

    // 5. destroy leaves nothing behind.
    destroy_leaves_nothing(&sb, name);
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn mysql_stack_deploys_and_passes_the_protocol_test() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let name = &unique("e2e-mysql");
    let file = stack_file(
        &sb,
        name,
        json!({
            "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
            "username": "torrust", "password": "E2eDbPassword_42"
        }),
        15,
    );
    let _cleanup = Cleanup(&sb, name);
    let first = deploy(&sb, name, &file);
    let services: Vec<&str> = first["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "run")
        .map(|p| p["detail"].as_str().unwrap())
        .collect();
    assert!(services[0].contains("mysql ok"), "{first:#}");
    tracker_test_passes(&sb, name);
    let out = sb.run(&["show", name]).ok();
    assert!(!out.stdout.contains("E2eDbPassword_42"), "{out:?}");

    mysql_passwords_change_after_the_first_deploy(&sb, name, "E2eDbPassword_42");
}

/// A query as `user` with `password` in the mysql container, over TCP as the tracker connects
/// (the password in the container's environment, through `exec`): its exit code.
fn mysql_login(sb: &Sandbox, name: &str, user: &str, password: &str) -> i32 {
    sb.run(&[
        "exec",
        name,
        "mysql",
        "--",
        "sh",
        "-c",
        "MYSQL_PWD=\"$2\" exec mysql --protocol=tcp -h 127.0.0.1 -u \"$1\" -e 'SELECT 1'",
        "sh",
        user,
        password,
    ])
    .code
}

/// Both MySQL passwords change in the environment file after the first deploy: the next deploy
/// changes them inside MySQL (ALTER USER, with the old root password from the host's .env), the
/// tracker logs in with its new one, and MySQL refuses the old ones.
fn mysql_passwords_change_after_the_first_deploy(sb: &Sandbox, name: &str, old_user: &str) {
    let old_root = state(sb, name)["config"]["tracker"]["core"]["database"]["root_password"]
        .as_str()
        .expect("the generated root password is in the state")
        .to_string();
    assert_eq!(mysql_login(sb, name, "root", &old_root), 0);
    assert_eq!(mysql_login(sb, name, "torrust", old_user), 0);

    let (new_root, new_user) = ("E2eRootPassword_New9", "E2eDbPassword_New7");
    let cfg = stack(
        name,
        json!({
            "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
            "username": "torrust", "password": new_user, "root_password": new_root
        }),
        15,
    );
    let file = sb.env_file(&format!("{name}-passwords.json"), &cfg);
    // deploy ends with `test`: it passes only if the recreated tracker logged in to MySQL.
    let again = deploy(sb, name, &file);
    let release = again["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "release")
        .unwrap_or_else(|| panic!("no release phase: {again:#}"));
    assert!(
        release["detail"]
            .as_str()
            .unwrap()
            .contains("MySQL: root's and torrust's passwords changed and verified"),
        "{again:#}"
    );
    let text = again.to_string();
    for secret in [new_root, new_user, old_user, old_root.as_str()] {
        assert!(
            !text.contains(secret),
            "a password in deploy's output: {text}"
        );
    }
    tracker_test_passes(sb, name);

    assert_eq!(mysql_login(sb, name, "root", new_root), 0);
    assert_eq!(mysql_login(sb, name, "torrust", new_user), 0);
    assert_ne!(
        mysql_login(sb, name, "root", &old_root),
        0,
        "the old root password works"
    );
    assert_ne!(
        mysql_login(sb, name, "torrust", old_user),
        0,
        "the old user password works"
    );

    // Nothing left to do: the same file again is a no-op.
    let noop = deploy(sb, name, &file);
    assert_eq!(noop["changed"], false, "{noop:#}");
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn https_stack_with_grafana_passes_the_test_over_tls() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let name = &unique("e2e-tls");
    // `.local` domains: Caddy's internal CA, so nothing here asks Let's Encrypt.
    let mut cfg = stack(
        name,
        json!({ "driver": "sqlite3", "database_name": "tracker.db" }),
        15,
    );
    cfg["tracker"]["http_trackers"] = json!([
        { "bind_address": "0.0.0.0:7070", "domain": "http.tracker.local", "use_tls_proxy": true }
    ]);
    cfg["tracker"]["http_api"]["bind_address"] = json!("0.0.0.0:1212");
    cfg["tracker"]["http_api"]["domain"] = json!("api.tracker.local");
    cfg["tracker"]["http_api"]["use_tls_proxy"] = json!(true);
    cfg["grafana"] = json!({
        "admin_user": "admin", "admin_password": "E2eGrafanaPass0123",
        "domain": "grafana.tracker.local", "use_tls_proxy": true
    });
    cfg["https"] = json!({ "admin_email": "admin@tracker.local" });
    let file = sb.env_file(&format!("{name}.json"), &cfg);
    let _cleanup = Cleanup(&sb, name);

    // deploy ends with `test`: it passes only if the HTTPS checks verified Caddy's certificates.
    let first = deploy(&sb, name, &file);
    assert_eq!(first["changed"], true, "{first:#}");
    let announce = texts(&first["announce_urls"], "");
    assert!(
        announce.contains(&"https://http.tracker.local/announce"),
        "{first:#}"
    );

    let report = sb.run(&["-o", "json", "test", name]).ok().json();
    assert_eq!(report["tls_trust"], "system+host-ca", "{report:#}");
    let results = report["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["ok"] == true), "{report:#}");
    let over_tls = |check: &str| {
        results
            .iter()
            .filter(|r| r["name"] == check)
            .all(|r| r["target"].as_str().unwrap().starts_with("https://"))
    };
    assert!(
        over_tls("HTTP tracker") && over_tls("API stats") && over_tls("Grafana health"),
        "{report:#}"
    );

    // Every service runs (Caddy and Grafana included) and nothing drifts; the secrets stay hidden.
    let status = sb.run(&["-o", "json", "status", name, "--check"]).ok();
    assert!(!status.stdout.contains("E2eGrafanaPass0123"), "{status:?}");
    let view = status.json();
    let services = texts(&view["services"], "service");
    for expected in ["tracker", "prometheus", "grafana", "caddy"] {
        assert!(services.contains(&expected), "{view:#}");
    }

    // Grafana answers through Caddy, with a certificate of the CA read from the host.
    let grafana: Vec<&Value> = results
        .iter()
        .filter(|r| r["name"] == "Grafana health")
        .collect();
    assert_eq!(grafana.len(), 1, "{report:#}");
    assert_eq!(
        grafana[0]["target"], "https://grafana.tracker.local/api/health",
        "{report:#}"
    );
    let ca = std::fs::read_to_string(sb.data().join(name).join("caddy-root.crt")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    destroy_leaves_nothing(&sb, name);
}

/// Two environments deployed in one command (`--jobs 2`), tested and looked at in one command
/// each, then destroyed in one command: every entry succeeds, each environment has its own
/// container and log file, and nothing is left.
#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn two_environments_deploy_and_destroy_in_one_command() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let (a, b) = (&unique("e2e-multi-a"), &unique("e2e-multi-b"));
    let sqlite = || json!({ "driver": "sqlite3", "database_name": "tracker.db" });
    let (file_a, file_b) = (
        stack_file(&sb, a, sqlite(), 15),
        stack_file(&sb, b, sqlite(), 15),
    );
    let _cleanup = (Cleanup(&sb, a), Cleanup(&sb, b));
    let run = sb
        .run(&[
            "-o",
            "json",
            "deploy",
            a,
            b,
            "--env-file",
            &file_a,
            "--env-file",
            &file_b,
            "--jobs",
            "2",
            "--skip",
            "grafana-api",
        ])
        .ok();
    let doc = run.json();
    assert_eq!(texts(&doc["environments"], "env"), [a.as_str(), b.as_str()]);
    for e in doc["environments"].as_array().unwrap() {
        assert_eq!(e["ok"], true, "{e:#}");
        assert_eq!(e["result"]["changed"], true, "{e:#}");
        assert!(!e["result"]["test"].as_array().unwrap().is_empty(), "{e:#}");
    }
    let (ia, ib) = (
        state(&sb, a)["host"]["instance"]
            .as_str()
            .unwrap()
            .to_string(),
        state(&sb, b)["host"]["instance"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert_ne!(ia, ib);
    assert!(instance_exists(&ia) && instance_exists(&ib));
    let log_a = std::fs::read_to_string(sb.data().join(format!("logs/{a}.log"))).unwrap();
    assert!(log_a.contains("== run"), "{log_a}");
    assert!(
        !log_a.contains(b.as_str()),
        "b's lines in a's log:\n{log_a}"
    );

    let tested = sb
        .run(&["-o", "json", "test", a, b, "--skip", "grafana-api"])
        .ok()
        .json();
    assert_eq!(tested["succeeded"], 2, "{tested:#}");
    let status = sb
        .run(&["-o", "json", "status", "--check", b, a])
        .ok()
        .json();
    assert_eq!(
        texts(&status["environments"], "env"),
        [b.as_str(), a.as_str()]
    );

    let destroyed = sb.run(&["-o", "json", "destroy", a, b]).ok().json();
    assert_eq!(destroyed["succeeded"], 2, "{destroyed:#}");
    assert!(!instance_exists(&ia) && !instance_exists(&ib));
}
