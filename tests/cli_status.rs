//! `status`, through the real binary, against a real OpenSSH server on a loopback port
//! (tests/support/sshd.rs) as the host, reached as the non-root test user through `sudo -n`.
//! Needs /usr/sbin/sshd and the test user: `sudo bash provisioning/ci/install-sshd-test-deps.sh`.
//!
//! The host here is this machine, whose /opt/torrust and /etc/cron.d must not be touched: every
//! run sets TORRUST_DEPLOYER_STATUS_ROOT (read by `status` only, documented as for tests), so
//! the host's files are read under a temporary directory, filled with `render`'s output. Docker:
//! whatever this machine has (here a `docker` CLI without a daemon) gives the "Docker is not
//! available" case for real; the cases that need containers put a stand-in `docker` in
//! ROOT/usr/bin (status puts it first on PATH under the test root only), which checks the
//! arguments it gets and prints recorded `docker ps --format '{{json .}}'` lines (Docker 20.10).

use crate::support::sshd;

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, Sandbox, minimal};
use serde_json::{Value, json};
use sshd::{Sshd, TEST_USER, require_test_user};
use tempfile::TempDir;

const ROOT_ENV: &str = "TORRUST_DEPLOYER_STATUS_ROOT";
const TOKEN: &str = "Status-Admin-Token-4c2e9a";
const DB_PASSWORD: &str = "Status-Db-Pass-81f3";
const ROOT_PASSWORD: &str = "Status-Root-Pass-6d0b";
const SECRETS: [&str; 3] = [TOKEN, DB_PASSWORD, ROOT_PASSWORD];

/// MySQL, Prometheus (its file is secret and owned by 65534), backups (a file in /etc/cron.d).
fn config(name: &str) -> Value {
    let mut v = minimal(name);
    v["ssh_credentials"] = json!({ "username": TEST_USER });
    v["tracker"]["http_api"]["admin_token"] = json!(TOKEN);
    v["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
        "username": "torrust", "password": DB_PASSWORD, "root_password": ROOT_PASSWORD
    });
    v["prometheus"] = json!({ "scrape_interval_in_secs": 10 });
    v["backup"] = json!({ "schedule": "15 2 * * *", "retention_days": 3 });
    v
}

/// An environment registered on a running sshd, and an empty directory standing for the host's
/// root filesystem.
struct Host {
    sb: Sandbox,
    sshd: Sshd,
    name: String,
    root: TempDir,
}

impl Host {
    fn new(name: &str) -> Host {
        require_test_user();
        let sb = Sandbox::new();
        let sshd = Sshd::start();
        sb.register_on_sshd(&sshd, name, config(name));
        let root = tempfile::Builder::new()
            .prefix("status-root-")
            .tempdir()
            .unwrap();
        Host {
            sb,
            sshd,
            name: name.to_string(),
            root,
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    /// `status` with the test root.
    fn status(&self, extra: &[&str]) -> Run {
        let mut args = vec!["status", self.name.as_str()];
        args.extend_from_slice(extra);
        self.sb
            .command(&args)
            .env(ROOT_ENV, self.root())
            .output()
            .expect("binary runs")
            .into()
    }

    fn status_json(&self) -> Value {
        self.status(&["-o", "json"]).ok().json()
    }

    /// Writes the files `release` would upload under the test root with their modes (`render`)
    /// and owners (as release sets them). Returns render's JSON.
    fn write_rendered_files(&self) -> Value {
        let out = self.root().to_string_lossy().into_owned();
        let doc = self
            .sb
            .run(&[
                "-o",
                "json",
                "render",
                "--env-name",
                &self.name,
                "--instance-ip",
                "127.0.0.1",
                "--output-dir",
                &out,
                "--force",
            ])
            .ok()
            .json();
        for f in doc["files"].as_array().unwrap() {
            if let Some(owner) = f.get("owner") {
                let uid = owner["uid"].as_u64().unwrap() as u32;
                let gid = owner["gid"].as_u64().unwrap() as u32;
                std::os::unix::fs::chown(f["path"].as_str().unwrap(), Some(uid), Some(gid))
                    .unwrap();
            }
        }
        doc
    }

    fn host_file(&self, host_path: &str) -> PathBuf {
        self.root().join(host_path.trim_start_matches('/'))
    }

    /// Puts the stand-in `docker` in ROOT/usr/bin, printing `lines` for the expected `ps`.
    fn stand_in_docker(&self, lines: &[String]) {
        let dir = self.root().join("usr/bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-ps.out"), lines.join("\n") + "\n").unwrap();
        let script = dir.join("docker");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             # Stand-in for `docker` (tests only): prints recorded `docker ps` output.\n\
             want='ps -a --filter label=com.docker.compose.project=torrust --format {{json .}}'\n\
             if [ \"$*\" != \"$want\" ]; then echo \"unexpected arguments: $*\" >&2; exit 64; fi\n\
             cat \"$(dirname \"$0\")/docker-ps.out\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows a secret:\n{text}");
    }
}

fn files_by_path(doc: &Value) -> Vec<(String, String)> {
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether this machine's Docker answers (the sshd runs here, so the host's Docker is ours).
fn local_docker_answers() -> bool {
    Command::new("sh")
        .arg("-c")
        .arg("docker ps -q >/dev/null 2>&1")
        .status()
        .is_ok_and(|s| s.success())
}

/// A recorded Docker 20.10 `docker ps --format '{{json .}}'` line of a Compose v1 container.
fn ps_line(service: &str, image: &str, ports: &str, state: &str, status: &str) -> String {
    format!(
        r#"{{"Command":"\"/usr/local/bin/entr…\"","CreatedAt":"2024-03-12 10:41:07 +0000 UTC","ID":"4f2a9c1d7e3b","Image":"{image}","Labels":"com.docker.compose.config-hash=0b9e8f1c2d3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678,com.docker.compose.container-number=1,com.docker.compose.oneoff=False,com.docker.compose.project=torrust,com.docker.compose.project.config_files=/opt/torrust/docker-compose.yml,com.docker.compose.project.working_dir=/opt/torrust,com.docker.compose.service={service},com.docker.compose.version=1.29.2","LocalVolumes":"0","Mounts":"/opt/torrust/s…","Names":"torrust_{service}_1","Networks":"torrust_default","Ports":"{ports}","RunningFor":"2 minutes ago","Size":"0B","State":"{state}","Status":"{status}"}}"#
    )
}

/// The model's images, by service, from render's JSON.
fn image_of(render: &Value, service: &str) -> String {
    render["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .unwrap_or_else(|| panic!("no {service} in {render}"))["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn without_a_host_status_exits_2_and_names_provision() {
    let sb = Sandbox::new();
    let file = sb.env_file("env.json", &config("nohost"));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let run = sb.run(&["status", "nohost"]).code(2);
    assert!(
        run.stderr.contains("has no host yet")
            && run.stderr.contains("provision nohost")
            && run.stderr.contains("deploy nohost"),
        "{run:?}"
    );
    let doc = sb.run(&["-o", "json", "status", "nohost"]).code(2).json();
    assert_eq!(doc["error"]["kind"], "refused");
    // An unknown environment is exit 2 too.
    sb.run(&["status", "nosuch"]).code(2);
}

#[test]
fn all_files_missing_are_reported_missing() {
    let h = Host::new("st-missing");
    let doc = h.status_json();
    let files = files_by_path(&doc);
    assert!(files.len() >= 6, "{doc:#}");
    for (path, status) in &files {
        assert_eq!(status, "missing", "{path}: {doc:#}");
    }
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "/opt/torrust/docker-compose.yml",
        "/opt/torrust/.env",
        "/opt/torrust/storage/tracker/etc/tracker.toml",
        "/opt/torrust/storage/prometheus/etc/prometheus.yml",
        "/opt/torrust/bin/backup.sh",
        "/etc/cron.d/torrust-backup",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    assert_eq!(doc["summary"]["files_missing"], files.len());
    assert_eq!(doc["summary"]["files_same"], 0);
    assert_eq!(doc["ok"], false);

    // Text: every missing file listed, the summary line, the release hint; exit 0 (a view).
    let run = h.status(&[]).ok();
    let t = &run.stdout;
    assert!(
        t.contains(&format!(
            "Files: 0 files match, {n} differ ({n} missing)",
            n = files.len()
        )),
        "{t}"
    );
    assert!(t.contains("missing  /etc/cron.d/torrust-backup"), "{t}");
    assert!(
        t.contains(&format!("torrust-tracker-deployer release {}", h.name)),
        "{t}"
    );
    // status changes nothing: neither the host (the root stays empty) nor the state.
    assert_eq!(std::fs::read_dir(h.root()).unwrap().count(), 0);
}

#[test]
fn identical_files_are_same_and_changes_are_reported_without_secrets() {
    let h = Host::new("st-drift");
    h.write_rendered_files();
    let state_before = std::fs::read(h.sb.data().join(&h.name).join("state.json")).unwrap();

    let doc = h.status_json();
    for (path, status) in files_by_path(&doc) {
        assert_eq!(status, "same", "{path}: {doc:#}");
    }
    assert_eq!(doc["summary"]["files_differ"], 0);
    let run = h.status(&[]).ok();
    assert!(
        run.stdout.contains(&format!(
            "Files: {} files match, 0 differ\n",
            doc["summary"]["files"]
        )),
        "{}",
        run.stdout
    );
    // Only drifting files are listed without -v; -v lists them all.
    assert!(!run.stdout.contains("/opt/torrust/.env"), "{}", run.stdout);
    let verbose = h.status(&["-v"]).ok();
    assert!(
        verbose.stdout.contains("same  /opt/torrust/.env (secret)"),
        "{}",
        verbose.stdout
    );

    // Change the secret .env's content, tracker.toml's mode and prometheus.yml's owner.
    let env_file = h.host_file("/opt/torrust/.env");
    let mut text = std::fs::read_to_string(&env_file).unwrap();
    text.push_str("EXTRA=1\n");
    std::fs::write(&env_file, text).unwrap();
    let toml = h.host_file("/opt/torrust/storage/tracker/etc/tracker.toml");
    std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let prom = h.host_file("/opt/torrust/storage/prometheus/etc/prometheus.yml");
    std::os::unix::fs::chown(&prom, Some(0), Some(0)).unwrap();

    let run = h.status(&[]).ok();
    let t = &run.stdout;
    assert!(t.contains("3 differ"), "{t}");
    assert!(
        t.contains("differs  /opt/torrust/.env (secret)")
            && t.contains("mode 0644 (model 0640)")
            && t.contains("owner 0:0 (model 65534:65534)"),
        "{t}"
    );
    assert_no_secret("status text", &run.stdout);
    assert_no_secret("status stderr", &run.stderr);

    let run = h.status(&["-o", "json"]).ok();
    assert_no_secret("status JSON", &run.stdout);
    let doc = run.json();
    let file = |p: &str| {
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap()
            .clone()
    };
    let env = file("/opt/torrust/.env");
    assert_eq!(env["status"], "differs");
    assert_eq!(env["differences"], json!(["content"]));
    assert_eq!(env["secret"], true);
    // A secret file's hashes are not reported either.
    assert!(env.get("sha256").is_none() && env.get("expected_sha256").is_none());
    let toml = file("/opt/torrust/storage/tracker/etc/tracker.toml");
    assert_eq!(toml["differences"], json!(["mode"]));
    assert_eq!(
        (&toml["mode"], &toml["expected_mode"]),
        (&json!("0644"), &json!("0640"))
    );
    assert_eq!(toml["sha256"], toml["expected_sha256"]);
    let prom = file("/opt/torrust/storage/prometheus/etc/prometheus.yml");
    assert_eq!(prom["differences"], json!(["owner"]));
    assert_eq!(file("/opt/torrust/docker-compose.yml")["status"], "same");
    assert_eq!(doc["summary"]["files_differ"], 3);

    // The state is untouched.
    assert_eq!(
        std::fs::read(h.sb.data().join(&h.name).join("state.json")).unwrap(),
        state_before
    );
}

#[test]
fn docker_unavailable_is_said_with_configure_and_files_are_still_compared() {
    let h = Host::new("st-nodocker");
    h.write_rendered_files();
    std::fs::remove_file(h.host_file("/etc/cron.d/torrust-backup")).unwrap();
    if local_docker_answers() {
        // A machine whose Docker runs: status must see it (no torrust containers here).
        let doc = h.status_json();
        assert_eq!(doc["docker"]["status"], "available", "{doc:#}");
        eprintln!("this machine's Docker answers: the unavailable case is covered by unit tests");
        return;
    }
    let run = h.status(&[]).ok();
    let t = &run.stdout;
    assert!(
        t.contains("Services: unknown. Docker is not"),
        "{t}\n{}",
        run.stderr
    );
    assert!(
        t.contains("the model has: tracker, mysql, stats-exporter, prometheus"),
        "{t}"
    );
    assert!(
        t.contains(&format!("torrust-tracker-deployer configure {}", h.name)),
        "{t}"
    );
    // Drift is still reported.
    assert!(t.contains("missing  /etc/cron.d/torrust-backup"), "{t}");
    assert!(
        t.contains(&format!("torrust-tracker-deployer release {}", h.name)),
        "{t}"
    );

    let doc = h.status_json();
    let docker = doc["docker"]["status"].as_str().unwrap();
    assert!(
        docker == "unavailable" || docker == "not_installed",
        "{doc:#}"
    );
    if docker == "unavailable" {
        // The docker CLI's own words: here, no daemon.
        assert!(!doc["docker"]["detail"].as_str().unwrap().is_empty());
    }
    assert!(
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "unknown" && s["ok"] == false)
    );
    assert_eq!(doc["summary"]["files_missing"], 1);
    // --check: Docker down is a failure.
    h.status(&["--check"]).code(1);
}

#[test]
fn check_exit_codes_and_the_services_table_with_a_stand_in_docker() {
    let h = Host::new("st-check");
    let render = h.write_rendered_files();
    let tracker = image_of(&render, "tracker");
    let mysql = image_of(&render, "mysql");
    let prometheus = image_of(&render, "prometheus");
    let exporter_line = ps_line(
        "stats-exporter",
        &tracker,
        "",
        "running",
        "Up 2 minutes (healthy)",
    );
    let tracker_line = ps_line(
        "tracker",
        &tracker,
        r"0.0.0.0:1212-\u003e1212/tcp, :::1212-\u003e1212/tcp, 0.0.0.0:7070-\u003e7070/tcp, :::7070-\u003e7070/tcp, 1313/tcp, 0.0.0.0:6969-\u003e6969/udp, :::6969-\u003e6969/udp",
        "running",
        "Up 2 minutes (healthy)",
    );
    let mysql_line = ps_line(
        "mysql",
        &mysql,
        "3306/tcp, 33060/tcp",
        "running",
        "Up 2 minutes (healthy)",
    );
    let prom_up = ps_line(
        "prometheus",
        &prometheus,
        r"127.0.0.1:9090-\u003e9090/tcp",
        "running",
        "Up 2 minutes",
    );
    h.stand_in_docker(&[
        tracker_line.clone(),
        mysql_line.clone(),
        exporter_line.clone(),
        prom_up,
    ]);

    // Everything runs and every file matches: --check exits 0.
    let run = h.status(&["--check"]).ok();
    let t = &run.stdout;
    assert!(
        t.contains("tracker         running  healthy  1212/tcp, 7070/tcp, 6969/udp"),
        "{t}"
    );
    assert!(t.contains("127.0.0.1:9090/tcp"), "{t}");
    assert!(
        t.contains("Everything matches the model, and every service runs."),
        "{t}"
    );
    let doc = h.status(&["-o", "json", "--check"]).ok().json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["docker"], json!({ "status": "available" }));
    assert_eq!(doc["summary"]["services"], 4);
    assert_eq!(doc["summary"]["services_ok"], 4);

    // Prometheus exited, a grafana container the model does not have: a view (exit 0) that
    // says so, and --check exits 1.
    let prom_down = ps_line(
        "prometheus",
        &prometheus,
        "",
        "exited",
        "Exited (2) 40 seconds ago",
    );
    let grafana = ps_line(
        "grafana",
        "grafana/grafana:11.4.0",
        "",
        "exited",
        "Exited (0) 2 days ago",
    );
    h.stand_in_docker(&[
        tracker_line.clone(),
        mysql_line.clone(),
        exporter_line,
        prom_down,
        grafana,
    ]);
    let run = h.status(&[]).ok();
    let t = &run.stdout;
    assert!(t.contains("prometheus      exited"), "{t}");
    assert!(t.contains("(not in the model)"), "{t}");
    assert!(
        t.contains(&format!("torrust-tracker-deployer run {}", h.name)),
        "{t}"
    );
    assert!(t.contains("torrust_grafana_1"), "{t}");
    let run = h.status(&["--check"]).code(1);
    assert!(run.stderr.contains("2 check(s) failed"), "{run:?}");
    // JSON with --check: exit 1, and stdout is exactly one document, the view with the error.
    let run = h.status(&["-o", "json", "--check"]).code(1);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["kind"], "check_failed");
    assert_eq!(doc["summary"]["unexpected_containers"], 1);
    let prom = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "prometheus")
        .unwrap();
    assert_eq!(prom["state"], "exited");
    assert_eq!(prom["ok"], false);

    // No mysql container at all, files back in order but one missing: --check exits 1.
    h.stand_in_docker(&[tracker_line]);
    let run = h.status(&["-o", "json"]).ok();
    let doc = run.json();
    let mysql = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "mysql")
        .unwrap()
        .clone();
    assert_eq!(mysql["state"], "missing");
    std::fs::remove_file(h.host_file("/opt/torrust/docker-compose.yml")).unwrap();
    h.stand_in_docker(&[
        ps_line("tracker", &tracker, "", "running", "Up 1 minute (healthy)"),
        mysql_line,
        ps_line("prometheus", &prometheus, "", "running", "Up 1 minute"),
    ]);
    let run = h.status(&["--check"]).code(1);
    assert!(
        run.stdout
            .contains("missing  /opt/torrust/docker-compose.yml"),
        "{run:?}"
    );
}

#[test]
fn json_shape() {
    let h = Host::new("st-json");
    h.write_rendered_files();
    let doc = h.status_json();
    for key in [
        "name",
        "host",
        "lifecycle",
        "files_root",
        "docker",
        "services",
        "files",
        "summary",
        "ok",
        "hints",
        "ssh_connections",
        "elapsed_ms",
    ] {
        assert!(doc.get(key).is_some(), "no {key}: {doc:#}");
    }
    assert_eq!(doc["name"], "st-json");
    assert_eq!(
        doc["host"],
        format!("{TEST_USER}@127.0.0.1:{}", h.sshd.port)
    );
    assert_eq!(doc["lifecycle"], "provisioned");
    assert_eq!(doc["ssh_connections"], 1);
    for key in [
        "services",
        "services_ok",
        "unexpected_containers",
        "files",
        "files_same",
        "files_differ",
        "files_missing",
    ] {
        assert!(doc["summary"][key].is_u64(), "summary.{key}: {doc:#}");
    }
    let compose = &doc["files"][0];
    assert_eq!(compose["path"], "/opt/torrust/docker-compose.yml");
    for key in [
        "status",
        "differences",
        "secret",
        "expected_mode",
        "mode",
        "owner",
        "sha256",
        "expected_sha256",
    ] {
        assert!(compose.get(key).is_some(), "files[0].{key}: {compose:#}");
    }
    let service = &doc["services"][0];
    for key in ["service", "expected", "state", "health", "ports", "ok"] {
        assert!(service.get(key).is_some(), "services[0].{key}: {service:#}");
    }
    // One SSH login per run.
    let before = h.sshd.accepted_logins();
    h.status(&[]).ok();
    assert_eq!(h.sshd.accepted_logins(), before + 1);
}

#[test]
fn an_unreachable_host_exits_1_with_the_fix() {
    let mut h = Host::new("st-down");
    h.sshd.stop();
    let run = h.status(&["--ssh-timeout", "1"]).code(1);
    assert!(
        run.stderr.contains("cannot reach the host") && run.stderr.contains("connection refused"),
        "{run:?}"
    );
    assert!(run.stderr.contains("Fix:"), "{run:?}");
}

#[test]
fn restarts_a_release_still_owes_are_a_problem_with_the_run_hint() {
    let h = Host::new("st-owed");
    h.write_rendered_files();
    // Every file matches: a release placed them and was killed before `run` restarted anyone.
    let state_file = h.sb.data().join(&h.name).join("state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["pending_restarts"] = json!(["prometheus"]);
    std::fs::write(&state_file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();

    let doc = h.status_json();
    assert_eq!(doc["summary"]["files_differ"], 0, "{doc:#}");
    assert_eq!(doc["pending_restarts"], json!(["prometheus"]));
    assert_eq!(doc["ok"], false);
    let hint = "files a release changed are not applied yet: `torrust-tracker-deployer run \
                st-owed` restarts prometheus";
    assert!(
        doc["hints"].as_array().unwrap().iter().any(|x| x == hint),
        "{doc:#}"
    );
    let run = h.status(&["--check"]).code(1);
    assert!(run.stdout.contains(hint), "{}", run.stdout);
}
