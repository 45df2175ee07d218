//! Release history, rollback, interrupted redeploys and an upgrade that never becomes healthy,
//! end to end on LXD with the real tracker (and Debian's Prometheus as the bundle's stand-in,
//! whose API says which configuration it loaded).
//!
//! Needs what `provisioning/test.sh` prepares: LXD, the test images, the offline bundle
//! (`TORRUST_TEST_BUNDLE`).

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::lxd::*;
use common::{Run, Sandbox};
use serde_json::{Value, json};
use torrust_tracker_deployer::state::history::Operator;

const PROM_YML: &str = "/opt/torrust/storage/prometheus/etc/prometheus.yml";

fn bundle() -> PathBuf {
    let dir = std::env::var_os("TORRUST_TEST_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/torrust-deployer/bundle/current"));
    assert!(dir.is_dir(), "no offline bundle at {}", dir.display());
    dir
}

/// The environment file: SQLite, UDP and HTTP trackers, the API, Prometheus scraping every
/// `interval` seconds, and `tracker_image` when given.
fn env_file(sb: &Sandbox, name: &str, interval: u32, tracker_image: Option<&str>) -> String {
    let mut images = json!({ "offline_bundle": bundle() });
    if let Some(image) = tracker_image {
        images["tracker"] = json!(image);
    }
    let cfg = json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-test-{name}"), "image": IMAGE },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "HistAdminToken0123456789abc" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "prometheus": { "scrape_interval_in_secs": interval },
        "images": images
    });
    let tag = tracker_image.map_or("bundle", |_| "upgrade");
    sb.env_file(&format!("{name}-{interval}-{tag}.json"), &cfg)
}

fn deploy(sb: &Sandbox, name: &str, file: &str) -> Value {
    sb.run(&["-o", "json", "deploy", name, "--env-file", file])
        .ok()
        .json()
}

fn instance(sb: &Sandbox, name: &str) -> String {
    state(sb, name)["host"]["instance"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `script` as root on the instance; it must succeed.
fn on_host(instance: &str, script: &str) -> String {
    let (code, out) = exec_out(instance, script);
    assert_eq!(code, 0, "{script}: {out}");
    out
}

/// The SHA-256 of every file the stack's services read, as the host has them.
fn stack_hashes(instance: &str) -> String {
    on_host(
        instance,
        "cd /opt/torrust && sha256sum docker-compose.yml .env storage/tracker/etc/tracker.toml \
         storage/prometheus/etc/prometheus.yml",
    )
}

/// service -> when its container started.
fn started_at(instance: &str) -> std::collections::BTreeMap<String, String> {
    on_host(
        instance,
        "docker inspect -f '{{index .Config.Labels \"com.docker.compose.service\"}} \
         {{.State.StartedAt}}' $(docker ps -q --filter label=com.docker.compose.project=torrust)",
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(s, t)| (s.to_string(), t.to_string()))
    .collect()
}

/// The scrape interval of the configuration the running Prometheus loaded (its API).
fn prometheus_interval(instance: &str) -> String {
    let out = on_host(
        instance,
        "docker exec $(docker ps -q --filter label=com.docker.compose.service=prometheus) \
         wget -qO- http://127.0.0.1:9090/api/v1/status/config",
    );
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let yaml = doc["data"]["yaml"].as_str().unwrap();
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("scrape_interval: "))
        .unwrap_or_else(|| panic!("no scrape_interval in {yaml}"))
        .to_string()
}

/// The image the tracker's container runs.
fn tracker_image(instance: &str) -> String {
    on_host(
        instance,
        "docker inspect -f '{{.Config.Image}}' \
         $(docker ps -q --filter label=com.docker.compose.service=tracker)",
    )
    .trim()
    .to_string()
}

fn history(sb: &Sandbox, name: &str) -> Vec<Value> {
    let doc = sb.run(&["-o", "json", "history", name]).ok().json();
    assert_eq!(doc["host"]["status"], "read", "{doc:#}");
    doc["releases"].as_array().unwrap().clone()
}

/// `test` from this machine (real UDP and HTTP announces and scrapes) passes.
fn tracker_test_passes(sb: &Sandbox, name: &str) {
    let report = sb.run(&["-o", "json", "test", name]).ok().json();
    let results = report["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["ok"] == true), "{report:#}");
    assert!(
        results.iter().any(|r| r["name"] == "UDP tracker") && results.len() >= 4,
        "{report:#}"
    );
}

/// A number in `0..bound` that differs from run to run.
fn random_below(bound: u64) -> u64 {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id()).rotate_left(32);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % bound.max(1)
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn history_rollback_interrupted_redeploys_and_an_upgrade_that_never_becomes_healthy() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let name = &unique("e2e-hist");
    let _cleanup = Cleanup(&sb, name);

    // Release 1: deploy from nothing.
    deploy(&sb, name, &env_file(&sb, name, 15, None));
    let host = instance(&sb, name);
    let first_files = stack_hashes(&host);
    let first_prom = on_host(&host, &format!("cat {PROM_YML}"));
    assert_eq!(prometheus_interval(&host), "15s");

    // Release 2: one setting changes; only Prometheus restarts.
    let before = started_at(&host);
    let t = Instant::now();
    let second = deploy(&sb, name, &env_file(&sb, name, 30, None));
    let redeploy = t.elapsed();
    assert_eq!(second["changed"], true, "{second:#}");
    assert_eq!(prometheus_interval(&host), "30s");
    let after = started_at(&host);
    assert_eq!(before["tracker"], after["tracker"]);
    assert_ne!(before["prometheus"], after["prometheus"]);

    // `history` lists both, with who and when, kept here and on the host.
    let me = Operator::current();
    let releases = history(&sb, name);
    assert_eq!(releases.len(), 2, "{releases:#?}");
    for r in &releases {
        assert_eq!(
            (r["user"].as_str(), r["machine"].as_str()),
            (Some(me.user.as_str()), Some(me.machine.as_str()))
        );
        assert_eq!(r["stored"], "local+host", "{r:#}");
        assert!(r["at"].as_str().unwrap().starts_with("20"), "{r:#}");
    }
    assert_eq!(releases[1]["changed"]["files"], json!([PROM_YML]));
    assert_eq!(releases[1]["changed"]["restarts"], json!(["prometheus"]));
    let text = sb.run(&["history", name]).ok().stdout;
    assert!(
        text.contains(&format!("{}@{}", me.user, me.machine)),
        "{text}"
    );
    // The host's copy is root's alone.
    let modes = on_host(
        &host,
        "stat -c '%a %U %n' /var/lib/torrust-deployer /var/lib/torrust-deployer/history.jsonl",
    );
    assert_eq!(
        modes,
        "700 root /var/lib/torrust-deployer\n600 root /var/lib/torrust-deployer/history.jsonl\n"
    );

    // `rollback` puts release 1 back byte for byte and restarts only Prometheus.
    let before = started_at(&host);
    let rolled = sb.run(&["-o", "json", "rollback", name]).ok().json();
    assert_eq!(rolled["to"], 1, "{rolled:#}");
    assert_eq!(rolled["restarted"], json!(["prometheus"]), "{rolled:#}");
    assert_eq!(rolled["recreated"], json!([]), "{rolled:#}");
    assert_eq!(stack_hashes(&host), first_files);
    assert_eq!(on_host(&host, &format!("cat {PROM_YML}")), first_prom);
    assert_eq!(prometheus_interval(&host), "15s");
    let after = started_at(&host);
    assert_eq!(before["tracker"], after["tracker"]);
    assert_ne!(before["prometheus"], after["prometheus"]);
    // The environment is on release 1's settings: no drift, and the rollback is release 3.
    sb.run(&["status", name, "--check"]).ok();
    let releases = history(&sb, name);
    assert_eq!(releases.len(), 3);
    assert_eq!(releases[2]["command"], "rollback");
    assert_eq!(releases[2]["restores"], 1);

    // A second operator (another data directory, another user) releases a change: it shows
    // up in the first operator's history, from the host.
    let other = Sandbox::new();
    let src = sb.data().join(name);
    let dst = other.data().join(name);
    std::fs::create_dir_all(dst.join("ssh")).unwrap();
    for f in [
        "state.json",
        "known_hosts",
        "ssh/id_ed25519",
        "ssh/id_ed25519.pub",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut copied: Value =
        serde_json::from_slice(&std::fs::read(dst.join("state.json")).unwrap()).unwrap();
    copied["generated_ssh_key"] = json!(dst.join("ssh/id_ed25519"));
    std::fs::write(dst.join("state.json"), copied.to_string()).unwrap();
    let as_bob = |args: &[&str]| -> Run {
        other
            .command(args)
            .env("USER", "bob")
            .output()
            .expect("binary runs")
            .into()
    };
    let file = env_file(&other, name, 25, None);
    as_bob(&["create", "environment", "--env-file", &file]).ok();
    as_bob(&["release", name]).ok();
    as_bob(&["run", name]).ok();
    assert_eq!(prometheus_interval(&host), "25s");
    let releases = history(&sb, name);
    assert_eq!(releases.len(), 4, "{releases:#?}");
    assert_eq!(releases[3]["user"], "bob");
    assert_eq!(releases[3]["stored"], "host");

    // A redeploy killed (-9) right after its upload placed the changed file, before release
    // finished, then run again: the rerun finds the file unchanged, yet Prometheus gets the
    // restart it was owed.
    let file = env_file(&sb, name, 45, None);
    let mut child = sb
        .command(&["deploy", name, "--env-file", &file])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("release: upload files: done") {
            let _ = child.kill();
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        seen.last().unwrap().contains("upload files: done"),
        "{seen:#?}"
    );
    assert_eq!(
        on_host(
            &host,
            &format!("grep -c 'scrape_interval: \"45s\"' {PROM_YML}")
        ),
        "1\n"
    );
    assert_eq!(prometheus_interval(&host), "25s");
    deploy(&sb, name, &file);
    assert_eq!(prometheus_interval(&host), "45s");

    // Interrupted redeploys: a setting changes, `deploy` is killed (-9) at a random moment,
    // then run again; the service concerned runs the new setting.
    for interval in [20, 50, 35] {
        let file = env_file(&sb, name, interval, None);
        let delay = Duration::from_millis(random_below(redeploy.as_millis() as u64));
        let mut child = sb
            .command(&["deploy", name, "--env-file", &file])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("deploy (scrape {interval} s) killed after {delay:?}: {status}");
        let rerun = deploy(&sb, name, &file);
        assert_eq!(
            prometheus_interval(&host),
            format!("{interval}s"),
            "killed after {delay:?}; rerun: {rerun:#}"
        );
        sb.run(&["status", name, "--check"]).ok();
    }
    tracker_test_passes(&sb, name);

    // An upgrade to a tracker image that never becomes healthy (built here from the bundle's:
    // it sleeps instead of serving) is rolled back by deploy itself.
    let good_image = tracker_image(&host);
    on_host(
        &host,
        &format!(
            "printf 'FROM {good_image}\\nENTRYPOINT [\"sleep\", \"infinity\"]\\nCMD []\\n' \
             | docker build -q -t torrust/tracker:never-healthy -"
        ),
    );
    let count = history(&sb, name).len();
    let upgrade = env_file(&sb, name, 50, Some("torrust/tracker:never-healthy"));
    let failed = sb.run(&[
        "-o",
        "json",
        "deploy",
        name,
        "--env-file",
        &upgrade,
        "--run-timeout",
        "40",
    ]);
    assert_eq!(failed.code, 1, "{failed:#?}");
    let error = &failed.json()["error"];
    assert_eq!(error["kind"], "upgrade_rolled_back", "{error:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("torrust/tracker:never-healthy") && message.contains("not healthy"),
        "{message}"
    );
    assert_eq!(tracker_image(&host), good_image);
    let releases = history(&sb, name);
    assert_eq!(releases.len(), count + 2, "{releases:#?}");
    let (up, back) = (&releases[count], &releases[count + 1]);
    assert_eq!(
        up["changed"]["images"],
        json!(["torrust/tracker:never-healthy"])
    );
    assert_eq!(back["command"], "rollback");
    assert_eq!(back["restores"], count);
    assert!(
        back["note"].as_str().unwrap().starts_with("automatic"),
        "{back:#}"
    );
    // Real announces keep working, and nothing drifts from the restored settings.
    tracker_test_passes(&sb, name);
    sb.run(&["status", name, "--check"]).ok();
    let shown = sb.run(&["-o", "json", "show", name]).ok().json();
    assert!(!shown.to_string().contains("never-healthy"), "{shown:#}");
}
