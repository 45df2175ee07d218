//! `test ENV` through the real binary, against the REAL Torrust Tracker 3.0.0 on loopback, with
//! a real OpenSSH server on a loopback port as the environment's registered host (127.0.0.1).
//! No LXD, no Docker.
//!
//! Each test starts its own tracker (a child process, killed through its own `Child` handle)
//! with UDP, HTTP tracker, API and health check API on free 127.0.0.1 ports, and writes an
//! environment file whose bind ports are the tracker's: `test` then probes 127.0.0.1:<port>,
//! as it probes `<instance IP>:<port>` of a deployed stack.
//!
//! Needs the tracker binary (`bash provisioning/tracker/build-tracker.sh`, or
//! `TORRUST_TRACKER_BIN`) and OpenSSH (`sudo bash provisioning/ci/install-sshd-test-deps.sh`).
//! Missing = failed test, never a skip.

use crate::common;
use crate::support::sshd;
use crate::support::tracker;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{Run, Sandbox, minimal};
use serde_json::{Value, json};
use sshd::{Sshd, keygen};
use tracker::{api_sections, base_config, free_tcp_port, free_udp_port, read_log, wait_listening};

const ENV: &str = "trk";

/// A running tracker on loopback; killed (by its own handle) on drop or [`Tracker::stop`].
struct Tracker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    udp: u16,
    http: u16,
    api: u16,
    health: u16,
    token: String,
}

impl Tracker {
    fn start(token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (udp, http, api, health) = (
            free_udp_port(),
            free_tcp_port(),
            free_tcp_port(),
            free_tcp_port(),
        );
        let db = dir.path().join("tracker.db");
        let config = base_config(&db, udp, http) + &api_sections(api, token, health);
        let child = tracker::spawn(dir.path(), &config);
        let mut t = Tracker {
            child: Some(child),
            dir,
            udp,
            http,
            api,
            health,
            token: token.to_string(),
        };
        wait_listening(
            t.child.as_mut().unwrap(),
            t.dir.path(),
            &[http, api, health],
        );
        t
    }

    fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Kills the tracker and waits until its ports are closed.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The API's statistics, read directly (HTTP/1.0 over a plain socket), not through `test`.
    fn stats(&self) -> Value {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.api)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /api/v1/stats?token={} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
            self.token
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats: {e}: {answer}"))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates environment `ENV` whose tracker section has `tracker`'s ports and `admin_token`, and
/// registers 127.0.0.1 as its host through a real sshd, returned: `test` reaches the API
/// through it (ADR 31).
#[must_use]
fn deployed(sb: &Sandbox, tracker: &Tracker, admin_token: &str) -> Sshd {
    let sshd = Sshd::start();
    let keys = sb.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keygen(&keys, "id_ed25519", "ed25519", "");
    sshd.authorize("root", &key);
    let mut cfg = minimal(ENV);
    cfg["ssh_credentials"] = json!({
        "private_key_path": key,
        "public_key_path": key.with_extension("pub"),
        "username": "root",
        "port": sshd.port,
    });
    cfg["tracker"]["udp_trackers"] =
        json!([{ "bind_address": format!("0.0.0.0:{}", tracker.udp) }]);
    cfg["tracker"]["http_trackers"] =
        json!([{ "bind_address": format!("0.0.0.0:{}", tracker.http) }]);
    cfg["tracker"]["http_api"] = json!({
        "bind_address": format!("0.0.0.0:{}", tracker.api),
        "admin_token": admin_token,
    });
    cfg["tracker"]["health_check_api"] =
        json!({ "bind_address": format!("127.0.0.1:{}", tracker.health) });
    let file = sb.env_file("env.json", &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let port = sshd.port.to_string();
    sb.run(&[
        "register",
        ENV,
        "--instance-ip",
        "127.0.0.1",
        "--ssh-port",
        &port,
    ])
    .ok();
    sshd
}

fn state(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.data().join(ENV).join("state.json")).unwrap()
}

/// Nothing the binary printed or logged holds any of `secrets`.
#[track_caller]
fn assert_hidden(sb: &Sandbox, run: &Run, secrets: &[&str]) {
    let logs = sb.logs();
    for secret in secrets {
        for (what, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("logs", &logs),
        ] {
            assert!(
                !text.contains(secret),
                "a token leaked into {what}:\n{text}"
            );
        }
    }
}

/// The JSON documents of stdout, in order (there must be exactly one).
fn documents(run: &Run) -> Vec<Value> {
    serde_json::Deserializer::from_str(&run.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {run:#?}"))
}

/// The names of the report's checks, in order.
fn check_names(doc: &Value) -> Vec<&str> {
    results(doc)
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

fn results(doc: &Value) -> &Vec<Value> {
    doc["results"].as_array().expect("results")
}

fn by_name<'a>(doc: &'a Value, name: &str) -> Vec<&'a Value> {
    results(doc).iter().filter(|r| r["name"] == name).collect()
}

#[test]
fn all_checks_pass_and_the_announces_are_counted() {
    let token = "CliTestAdminToken0123456789";
    let tracker = Tracker::start(token);
    let sb = Sandbox::new();
    let _sshd = deployed(&sb, &tracker, token);
    let before_state = state(&sb);
    let before = tracker.stats();

    let run = sb.run(&["test", ENV, "--timeout", "3"]);
    assert_eq!(run.code, 0, "{run:#?}\n--- tracker log:\n{}", tracker.log());
    let out = &run.stdout;
    for line in [
        format!(
            "ok     HTTP tracker health http://127.0.0.1:{}/health_check (",
            tracker.http
        ),
        format!(
            "ok     API health http://127.0.0.1:{}/api/health_check (",
            tracker.api
        ),
        format!(
            "ok     API stats http://127.0.0.1:{}/api/v1/stats?token=[REDACTED] (",
            tracker.api
        ),
        format!("ok     UDP tracker udp://127.0.0.1:{} (", tracker.udp),
        format!(
            "ok     HTTP tracker http://127.0.0.1:{}/announce (",
            tracker.http
        ),
        "ok     announces counted".to_string(),
        "1 UDP and 1 HTTP announce(s) counted".to_string(),
        "note: health check API not checked from here".to_string(),
        format!(
            "note: the API was reached through the SSH connection, at 127.0.0.1:{} on the host",
            tracker.api
        ),
        "All 7 checks passed".to_string(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("FAILED"), "{out}");
    // Every check line has its latency.
    let check_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("ok ")).collect();
    assert_eq!(check_lines.len(), 7, "{out}");
    assert!(check_lines.iter().all(|l| l.contains(" ms): ")), "{out}");

    // The tracker itself counted the announces (read directly from its API).
    let after = tracker.stats();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        n(&after, "udp4_announces_handled") > n(&before, "udp4_announces_handled"),
        "{before} -> {after}"
    );
    assert!(
        n(&after, "tcp4_announces_handled") > n(&before, "tcp4_announces_handled"),
        "{before} -> {after}"
    );
    assert!(n(&after, "torrents") >= 2, "{after}");

    assert_hidden(&sb, &run, &[token]);
    assert_eq!(state(&sb), before_state, "test changed the state");
    assert!(
        sb.logs().contains("testing environment 'trk' at 127.0.0.1"),
        "{}",
        sb.logs()
    );
}

#[test]
fn json_output_is_the_report() {
    let token = "CliTestJsonToken0123456789";
    let tracker = Tracker::start(token);
    let sb = Sandbox::new();
    let _sshd = deployed(&sb, &tracker, token);

    let run = sb.run(&["-o", "json", "test", ENV, "--timeout", "3"]);
    assert_eq!(run.code, 0, "{run:#?}\n--- tracker log:\n{}", tracker.log());
    let docs = documents(&run);
    assert_eq!(docs.len(), 1, "{run:#?}");
    let doc = &docs[0];
    assert_eq!(doc["name"], ENV);
    assert_eq!(doc["host"], "127.0.0.1");
    assert_eq!(doc["lifecycle"], "provisioned");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["passed"], 7);
    assert_eq!(doc["failed"], 0);
    assert_eq!(doc["tls_trust"], "system");
    assert_eq!(doc["resolve"], json!({}));
    assert!(doc["elapsed_ms"].is_u64(), "{doc:#}");
    let notes = doc["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("health check API not checked")),
        "{doc:#}"
    );
    assert_eq!(
        check_names(doc),
        [
            "HTTP tracker health",
            "API health",
            "API stats",
            "UDP tracker",
            "HTTP tracker",
            "API stats",
            "announces counted"
        ],
        "{doc:#}"
    );
    for r in results(doc) {
        assert_eq!(r["ok"], true, "{r:#}");
        assert!(r["latency_ms"].is_u64(), "{r:#}");
        assert!(r["target"].is_string() && r["detail"].is_string(), "{r:#}");
        assert!(r.get("error_kind").is_none(), "{r:#}");
        assert!(r["output"]["type"].is_string(), "{r:#}");
    }
    let udp = by_name(doc, "UDP tracker")[0];
    assert_eq!(udp["target"], format!("udp://127.0.0.1:{}", tracker.udp));
    assert_eq!(udp["output"]["type"], "tracker");
    assert_eq!(udp["output"]["scrape"]["leechers"], 1, "{udp:#}");
    let http = by_name(doc, "HTTP tracker")[0];
    assert_eq!(
        http["target"],
        format!("http://127.0.0.1:{}/announce", tracker.http)
    );
    assert_eq!(http["output"]["scrape"]["leechers"], 1, "{http:#}");
    let counted = by_name(doc, "announces counted")[0];
    assert_eq!(counted["output"]["type"], "counted");
    let stats = by_name(doc, "API stats");
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[1]["output"]["type"], "stats");
    assert_hidden(&sb, &run, &[token]);
}

#[test]
fn a_wrong_admin_token_fails_the_api_stats_and_leaks_no_token() {
    let real = "RealTrackerToken0123456789";
    let wrong = "WrongEnvToken9876543210abc";
    let tracker = Tracker::start(real);
    let sb = Sandbox::new();
    let _sshd = deployed(&sb, &tracker, wrong);
    let before_state = state(&sb);

    let run = sb.run(&["test", ENV, "--timeout", "3"]).code(1);
    let out = &run.stdout;
    assert!(
        out.lines().any(|l| l.starts_with("FAILED API stats")
            && l.contains("rejected the admin token")
            && l.contains("token=[REDACTED]")),
        "{run:#?}"
    );
    // The trackers themselves still work.
    assert!(out.contains("ok     UDP tracker"), "{out}");
    assert!(out.contains("ok     HTTP tracker http"), "{out}");
    assert!(out.contains("ok     API health"), "{out}");
    assert!(out.contains("1 of 5 checks FAILED"), "{out}");
    for needle in [
        "error: 1 of 5 check(s) of environment 'trk' failed",
        "torrust-tracker-deployer status trk",
        "docker compose logs tracker",
    ] {
        assert!(run.stderr.contains(needle), "missing {needle}: {run:#?}");
    }
    assert_hidden(&sb, &run, &[real, wrong]);

    let run = sb
        .run(&["-o", "json", "test", ENV, "--timeout", "3"])
        .code(1);
    let docs = documents(&run);
    assert_eq!(
        docs.len(),
        1,
        "one document, the report with the error: {run:#?}"
    );
    let doc = &docs[0];
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["failed"], 1);
    let stats = by_name(doc, "API stats");
    assert_eq!(stats.len(), 1, "{doc:#}");
    assert_eq!(stats[0]["ok"], false);
    assert_eq!(stats[0]["error_kind"], "auth_rejected");
    assert!(by_name(doc, "announces counted").is_empty(), "{doc:#}");
    assert_eq!(doc["error"]["kind"], "test_failed");
    assert_hidden(&sb, &run, &[real, wrong]);
    assert_eq!(state(&sb), before_state, "test changed the state");
}

#[test]
fn a_stopped_tracker_fails_every_check_as_refused() {
    let token = "StoppedTrackerToken0123456789";
    let mut tracker = Tracker::start(token);
    let sb = Sandbox::new();
    let _sshd = deployed(&sb, &tracker, token);
    tracker.stop();

    let started = Instant::now();
    let run = sb
        .run(&["-o", "json", "test", ENV, "--timeout", "2"])
        .code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let docs = documents(&run);
    assert_eq!(docs.len(), 1, "{run:#?}");
    let doc = &docs[0];
    assert_eq!(doc["ok"], false);
    assert_eq!(
        check_names(doc),
        [
            "HTTP tracker health",
            "API health",
            "API stats",
            "UDP tracker",
            "HTTP tracker"
        ],
        "{doc:#}"
    );
    for r in results(doc) {
        assert_eq!(r["ok"], false, "{r:#}");
        let kind = r["error_kind"].as_str().unwrap();
        if r["name"] == "UDP tracker" {
            // ICMP port unreachable on loopback; a firewall dropping it would be a timeout.
            assert!(matches!(kind, "refused" | "timeout"), "{r:#}");
        } else if r["name"].as_str().unwrap().starts_with("API") {
            // Through the SSH forward (ADR 31): the local connection is accepted, then closed.
            assert_eq!(kind, "network", "{r:#}");
        } else {
            assert_eq!(kind, "refused", "{r:#}");
        }
    }
    assert_eq!(doc["failed"], 5);
    assert_eq!(doc["error"]["kind"], "test_failed");
    let notes = doc["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "the host could not connect to the API at 127.0.0.1:{}",
            tracker.api
        )),
        "{notes}"
    );

    let run = sb.run(&["test", ENV, "--timeout", "2"]).code(1);
    assert!(
        run.stdout.contains(&format!(
            "FAILED HTTP tracker http://127.0.0.1:{}/announce",
            tracker.http
        )),
        "{run:#?}"
    );
    assert!(run.stdout.contains("connection refused"), "{run:#?}");
    assert!(run.stderr.contains("5 of 5 check(s)"), "{run:#?}");
    // Not 'running' yet (registered only): the message says how to start the tracker.
    assert!(run.stderr.contains("deploy trk"), "{run:#?}");
    assert_hidden(&sb, &run, &[token]);
}

#[test]
fn an_environment_without_a_host_exits_2() {
    let sb = Sandbox::new();
    let file = sb.env_file("e.json", &minimal(ENV));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    let before_state = state(&sb);

    let run = sb.run(&["test", ENV]).code(2);
    for needle in ["has no host", "provision trk", "deploy trk"] {
        assert!(run.stderr.contains(needle), "missing {needle}: {run:#?}");
    }
    assert!(run.stdout.is_empty(), "{run:#?}");
    let doc = sb.run(&["-o", "json", "test", ENV]).code(2).json();
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(state(&sb), before_state);
    assert_hidden(&sb, &run, &["MyAccessToken"]);

    // Unknown environment, and flags that exclude each other: usage errors too.
    let run = sb.run(&["test", "nope"]).code(2);
    assert!(run.stderr.contains("does not exist"), "{run:#?}");
    sb.run(&["test", ENV, "--insecure", "--ca-cert", "ca.pem"])
        .code(2);
}
