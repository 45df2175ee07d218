//! `render`, through the real binary: files and modes, `--force`, exit codes, JSON, secrets.

use crate::common;

use std::path::Path;

use common::{Sandbox, minimal, mode};
use serde_json::{Value, json};

const TOKEN: &str = "Render-Admin-Token-7f3a9c";
const DB_PASSWORD: &str = "Db-Pass-w0rd!with$pecial";
const ROOT_PASSWORD: &str = "Root-Pass-5e1d2b";
const GRAFANA_PASSWORD: &str = "Grafana-Pass-9a8b7c";
const SECRETS: [&str; 4] = [TOKEN, DB_PASSWORD, ROOT_PASSWORD, GRAFANA_PASSWORD];

/// MySQL, Prometheus, Grafana behind TLS, backups.
fn full(name: &str) -> Value {
    let mut v = minimal(name);
    v["tracker"]["http_api"]["admin_token"] = json!(TOKEN);
    v["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
        "username": "torrust", "password": DB_PASSWORD, "root_password": ROOT_PASSWORD
    });
    v["prometheus"] = json!({ "scrape_interval_in_secs": 10 });
    v["grafana"] = json!({
        "admin_user": "admin", "admin_password": GRAFANA_PASSWORD,
        "domain": "grafana.example.com", "use_tls_proxy": true
    });
    v["https"] = json!({ "admin_email": "admin@example.com" });
    v["backup"] = json!({ "schedule": "15 2 * * *", "retention_days": 3 });
    v
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows a secret:\n{text}");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn writes_the_stack_under_the_output_dir_with_the_host_modes() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &full("alpha"));
    let run = sb
        .run(&[
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "10.20.30.40",
            "--output-dir",
            "out",
        ])
        .ok();
    assert_no_secret("stdout", &run.stdout);
    assert_no_secret("stderr", &run.stderr);
    let out = sb.path().join("out");
    for (rel, expected) in [
        ("opt/torrust/docker-compose.yml", 0o644),
        ("opt/torrust/.env", 0o600),
        ("opt/torrust/storage/tracker/etc/tracker.toml", 0o640),
        ("opt/torrust/storage/prometheus/etc/prometheus.yml", 0o640),
        (
            "opt/torrust/storage/grafana/provisioning/datasources/prometheus.yml",
            0o644,
        ),
        (
            "opt/torrust/storage/grafana/provisioning/dashboards/torrust/torrust-tracker.json",
            0o644,
        ),
        ("opt/torrust/storage/caddy/etc/Caddyfile", 0o644),
        ("opt/torrust/bin/backup.sh", 0o755),
        ("etc/cron.d/torrust-backup", 0o644),
    ] {
        let path = out.join(rel);
        assert!(path.is_file(), "missing {rel}; stdout:\n{}", run.stdout);
        assert_eq!(mode(&path), expected, "{rel}");
        assert!(
            run.stdout.contains(rel),
            "{rel} not listed:\n{}",
            run.stdout
        );
    }
    for (rel, expected) in [
        ("opt/torrust/storage/backup", 0o700),
        ("opt/torrust/storage/caddy/data", 0o700),
        ("opt/torrust/storage/mysql/data", 0o750),
    ] {
        let path = out.join(rel);
        assert!(path.is_dir(), "missing dir {rel}");
        assert_eq!(mode(&path), expected, "{rel}");
    }
    // The secrets are in the 0600 files, and only there.
    let env = read(&out.join("opt/torrust/.env"));
    for s in SECRETS {
        assert!(env.contains(s), ".env lacks a secret");
    }
    assert_no_secret(
        "compose",
        &read(&out.join("opt/torrust/docker-compose.yml")),
    );
    assert_no_secret(
        "tracker.toml",
        &read(&out.join("opt/torrust/storage/tracker/etc/tracker.toml")),
    );
    let cron = read(&out.join("etc/cron.d/torrust-backup"));
    assert!(
        cron.contains("\n15 2 * * * root /opt/torrust/bin/backup.sh"),
        "{cron}"
    );
    // Text output: announce URLs with the instance IP, images.
    assert!(
        run.stdout.contains("udp://10.20.30.40:6969/announce"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("http://10.20.30.40:7070/announce"));
    assert!(run.stdout.contains("torrust/tracker:3.0.0"));
    assert!(run.stdout.contains("https://grafana.example.com/"));
    // render needs no data directory and creates none.
    assert!(!sb.data().exists());
}

#[test]
fn a_non_empty_output_dir_needs_force() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    let out = sb.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let args = [
        "render",
        "--env-file",
        &file,
        "--instance-ip",
        "192.0.2.1",
        "--output-dir",
        "out",
    ];
    let run = sb.run(&args).code(2);
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert!(!out.join("opt").exists(), "wrote despite the refusal");

    let doc = sb
        .run(&[&["-o", "json"], &args[..]].concat())
        .code(2)
        .json();
    assert_eq!(doc["error"]["kind"], "refused");

    let mut forced = args.to_vec();
    forced.push("--force");
    sb.run(&forced).ok();
    assert!(out.join("opt/torrust/docker-compose.yml").is_file());
    assert_eq!(read(&out.join("keep.txt")), "mine");
    // Again with --force: same bytes.
    let before = read(&out.join("opt/torrust/docker-compose.yml"));
    sb.run(&forced).ok();
    assert_eq!(read(&out.join("opt/torrust/docker-compose.yml")), before);
    // An empty existing directory is fine without --force.
    std::fs::create_dir(sb.path().join("empty")).unwrap();
    sb.run(&[
        "render",
        "--env-file",
        &file,
        "--instance-ip",
        "192.0.2.1",
        "--output-dir",
        "empty",
    ])
    .ok();
}

#[test]
fn json_output_describes_every_file_without_secrets() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &full("alpha"));
    let run = sb
        .run(&[
            "-o",
            "json",
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "2001:db8::7",
            "--output-dir",
            "out",
        ])
        .ok();
    assert_no_secret("stdout", &run.stdout);
    assert_no_secret("stderr", &run.stderr);
    let doc = run.json();
    assert_eq!(doc["environment"], "alpha");
    assert_eq!(doc["instance_ip"], "2001:db8::7");
    let files = doc["files"].as_array().unwrap();
    let env = files
        .iter()
        .find(|f| f["host_path"] == "/opt/torrust/.env")
        .expect(".env listed");
    assert_eq!(env["mode"], "0600");
    assert_eq!(env["secret"], true);
    assert_eq!(env["role"]["kind"], "compose");
    assert!(env.get("contents").is_none());
    let written = Path::new(env["path"].as_str().unwrap());
    assert!(written.ends_with("out/opt/torrust/.env"), "{written:?}");
    assert_eq!(mode(&sb.path().join("out/opt/torrust/.env")), 0o600);
    let toml = files
        .iter()
        .find(|f| f["host_path"] == "/opt/torrust/storage/tracker/etc/tracker.toml")
        .unwrap();
    assert_eq!(toml["owner"], json!({ "uid": 1000, "gid": 1000 }));
    assert_eq!(
        toml["role"],
        json!({ "kind": "restart", "services": ["tracker"] })
    );
    // Every file listed exists with its mode.
    for f in files {
        // Paths are under --output-dir as given (here relative to the working directory).
        let path = &sb.path().join(f["path"].as_str().unwrap());
        let m = u32::from_str_radix(f["mode"].as_str().unwrap(), 8).unwrap();
        assert_eq!(mode(path), m, "{}", path.display());
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            f["bytes"].as_u64().unwrap()
        );
    }
    assert_eq!(
        doc["images"].as_array().unwrap().len(),
        doc["services"].as_array().unwrap().len()
    );
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tracker",
            "mysql",
            "stats-exporter",
            "prometheus",
            "grafana",
            "caddy"
        ]
    );
    assert_eq!(
        doc["endpoints"]["udp_announce"],
        json!(["udp://[2001:db8::7]:6969/announce"])
    );
}

#[test]
fn a_stored_environment_renders_with_its_kept_root_password() {
    let sb = Sandbox::new();
    let mut cfg = full("alpha");
    cfg["tracker"]["core"]["database"]
        .as_object_mut()
        .unwrap()
        .remove("root_password");
    let file = sb.env_file("e.json", &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    for dir in ["a", "b"] {
        let run = sb
            .run(&[
                "render",
                "--env-name",
                "alpha",
                "--instance-ip",
                "10.0.0.9",
                "--output-dir",
                dir,
            ])
            .ok();
        assert!(!run.stderr.contains("root_password"), "{run:?}");
    }
    let env_a = read(&sb.path().join("a/opt/torrust/.env"));
    assert_eq!(env_a, read(&sb.path().join("b/opt/torrust/.env")));
    assert!(env_a.contains("MYSQL_ROOT_PASSWORD='"));

    // From the file, the root password is random for each render, with a warning.
    let run = sb
        .run(&[
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "10.0.0.9",
            "--output-dir",
            "c",
        ])
        .ok();
    assert!(run.stderr.contains("root_password"), "{run:?}");
    let env_c = read(&sb.path().join("c/opt/torrust/.env"));
    assert_ne!(env_a, env_c);
    // Everything else is identical.
    for rel in [
        "opt/torrust/docker-compose.yml",
        "opt/torrust/storage/tracker/etc/tracker.toml",
        "opt/torrust/storage/prometheus/etc/prometheus.yml",
        "opt/torrust/bin/backup.sh",
    ] {
        assert_eq!(
            read(&sb.path().join("a").join(rel)),
            read(&sb.path().join("c").join(rel)),
            "{rel}"
        );
    }
}

#[test]
fn usage_and_input_errors_exit_2() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    // No source, both sources, a bad IP.
    sb.run(&["render", "--instance-ip", "10.0.0.1", "--output-dir", "o"])
        .code(2);
    sb.run(&[
        "render",
        "--env-name",
        "alpha",
        "--env-file",
        &file,
        "--instance-ip",
        "10.0.0.1",
        "--output-dir",
        "o",
    ])
    .code(2);
    sb.run(&[
        "render",
        "--env-file",
        &file,
        "--instance-ip",
        "not-an-ip",
        "--output-dir",
        "o",
    ])
    .code(2);
    // Unknown environment, bad environment name.
    let run = sb
        .run(&[
            "render",
            "--env-name",
            "nobody",
            "--instance-ip",
            "10.0.0.1",
            "--output-dir",
            "o",
        ])
        .code(2);
    assert!(run.stderr.contains("does not exist"), "{run:?}");
    sb.run(&[
        "render",
        "--env-name",
        "../etc",
        "--instance-ip",
        "10.0.0.1",
        "--output-dir",
        "o",
    ])
    .code(2);
    // The output "directory" is a file.
    std::fs::write(sb.path().join("afile"), "x").unwrap();
    let run = sb
        .run(&[
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "10.0.0.1",
            "--output-dir",
            "afile",
            "--force",
        ])
        .code(2);
    assert!(run.stderr.contains("not a directory"), "{run:?}");
    // A secret the .env file cannot hold: refused, naming the field, not showing the value.
    let mut cfg = full("alpha");
    cfg["tracker"]["core"]["database"]["password"] = json!("It's-Secret-Value");
    let bad = sb.env_file("bad.json", &cfg);
    let run = sb
        .run(&[
            "render",
            "--env-file",
            &bad,
            "--instance-ip",
            "10.0.0.1",
            "--output-dir",
            "o2",
        ])
        .code(2);
    assert!(
        run.stderr.contains("tracker.core.database.password"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("It's-Secret-Value") && !run.stdout.contains("It's-Secret"));
    assert!(!sb.path().join("o2").exists(), "wrote files after refusing");
    assert!(!sb.path().join("o").exists());
}

#[test]
fn never_writes_through_a_symlink() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal("alpha"));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = sb.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), out.join("opt")).unwrap();
    let run = sb
        .run(&[
            "render",
            "--env-file",
            &file,
            "--instance-ip",
            "10.0.0.1",
            "--output-dir",
            "out",
            "--force",
        ])
        .code(2);
    assert!(run.stderr.contains("symbolic link"), "{run:?}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}
