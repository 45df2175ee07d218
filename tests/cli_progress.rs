//! The progress display, through the real binary: live on a terminal (run inside a private
//! `tmux` server, its pane captured), timestamped lines when stderr is not a terminal, JSON
//! lines with `--output json`. The host is a real OpenSSH server on a loopback port
//! (tests/support/sshd.rs), registered as the environment's host.
//! Needs /usr/sbin/sshd and the test user (`sudo bash provisioning/ci/install-sshd-test-deps.sh`)
//! and tmux (`sudo bash provisioning/ci/install-build-deps.sh`).

use crate::support::sshd;

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Run, Sandbox, minimal};
use serde_json::{Value, json};
use sshd::{Sshd, TEST_USER, require_test_user};

const ENV: &str = "progress";

/// A created environment whose host key sshd accepts.
fn created(sshd: &Sshd) -> Sandbox {
    require_test_user();
    let sb = Sandbox::new();
    let mut cfg = minimal(ENV);
    cfg["ssh_credentials"] = json!({ "username": TEST_USER });
    let file = sb.env_file("env.json", &cfg);
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    sshd.authorize(TEST_USER, &sb.data().join(ENV).join("ssh/id_ed25519"));
    sb
}

fn register_args(sshd: &Sshd) -> Vec<String> {
    ["register", ENV, "--instance-ip", "127.0.0.1", "--ssh-port"]
        .iter()
        .map(|s| s.to_string())
        .chain([sshd.port.to_string()])
        .collect()
}

fn run(sb: &Sandbox, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.command(&args)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("binary runs")
        .into()
}

/// Replaces what changes from run to run: timestamps, step times, the port, the host key's
/// fingerprint and the sandbox's path; and the padding between words (the indentation stays).
fn stable(text: &str, port: u16, sandbox: &Path) -> String {
    let text = text.replace(&sandbox.display().to_string(), "SANDBOX");
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.split_once("SHA256:") {
            Some((before, after)) => {
                let rest = after.trim_start_matches(|c: char| {
                    c.is_ascii_alphanumeric() || c == '+' || c == '/'
                });
                format!("{before}SHA256:FP{rest}")
            }
            None => line.to_string(),
        };
        let indent = line.len() - line.trim_start_matches(' ').len();
        let mut words: Vec<String> = Vec::new();
        for w in line.split(' ').filter(|w| !w.is_empty()) {
            let is_time = |w: &str| {
                w.strip_suffix('s')
                    .is_some_and(|n| n.contains('.') && n.parse::<f64>().is_ok())
            };
            let word = if w.len() == 24 && w.ends_with('Z') && w.as_bytes()[10] == b'T' {
                "TIME".to_string()
            } else if is_time(w) {
                "Ns".to_string()
            } else if w.starts_with('(') && w.ends_with(')') && is_time(&w[1..w.len() - 1]) {
                "(Ns)".to_string()
            } else {
                w.replace(&port.to_string(), "PORT")
            };
            words.push(word);
        }
        out.push_str(&" ".repeat(indent));
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

#[test]
fn without_a_terminal_each_event_is_a_timestamped_line() {
    let sshd = Sshd::start();
    let sb = created(&sshd);
    let run = run(&sb, &register_args(&sshd)).ok();
    assert_eq!(
        stable(&run.stderr, sshd.port, sb.path()),
        format!(
            "TIME register {ENV}\n\
             TIME register: check SSH ...\n\
             TIME pinned the host key of 127.0.0.1:PORT (SHA256:FP) in SANDBOX/data/{ENV}/known_hosts\n\
             TIME register: check SSH: done (Ns)\n\
             TIME register: record host ...\n\
             TIME register: record host: done (Ns)\n\
             TIME register: done (Ns)\n"
        ),
        "{run:#?}"
    );
    // The same lines are in the environment's log file.
    let log = std::fs::read_to_string(sb.data().join(format!("logs/{ENV}.log"))).unwrap();
    assert!(log.contains("register: check SSH: done"), "{log}");
}

#[test]
fn with_output_json_each_event_is_a_json_line_and_stdout_one_document() {
    let sshd = Sshd::start();
    let sb = created(&sshd);
    let mut args = vec!["-o".to_string(), "json".to_string()];
    args.extend(register_args(&sshd));
    let run = run(&sb, &args).ok();
    let doc = run.json();
    assert_eq!(doc["name"], ENV, "{doc:#}");
    let events: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &events {
        let at = e["at"].as_str().expect("at");
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{e}: {at}"));
    }
    // Without the times, the events are exactly these.
    let without_times: Vec<Value> = events
        .into_iter()
        .map(|mut e| {
            let o = e.as_object_mut().unwrap();
            o.remove("at");
            if let Some(ms) = o.remove("elapsed_ms") {
                assert!(ms.is_u64(), "{ms}");
            }
            e
        })
        .collect();
    let pinned = format!(
        "pinned the host key of 127.0.0.1:{} ({}) in {}/data/{ENV}/known_hosts",
        sshd.port,
        sshd.host_fingerprint(),
        sb.path().display()
    );
    let step =
        |event: &str, step: &str| json!({ "event": event, "command": "register", "step": step });
    let finished = |name: &str| {
        let mut v = step("step_finished", name);
        v["changed"] = Value::Null;
        v
    };
    assert_eq!(
        without_times,
        [
            json!({ "event": "command_started", "command": "register", "env": ENV }),
            step("step_started", "check SSH"),
            json!({ "event": "log", "level": "info", "message": pinned }),
            finished("check SSH"),
            step("step_started", "record host"),
            finished("record host"),
            json!({ "event": "command_finished", "command": "register" }),
        ]
    );
}

/// A private tmux server (its own socket name), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Tmux {
        assert!(
            which("tmux"),
            "tmux is missing: run `sudo bash provisioning/ci/install-build-deps.sh`"
        );
        Tmux {
            socket: format!("deployer-progress-{}", std::process::id()),
        }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            // No user configuration.
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Runs `command` in a new 200x30 window of a shell in `dir`, waits until it has exited,
    /// and returns what the pane shows.
    fn run(&self, dir: &Path, command: &str) -> String {
        self.run_watching(dir, command, |_| false).1
    }

    /// [`Tmux::run`], also returning the first pane seen while the command ran for which
    /// `watch` is true.
    fn run_watching(
        &self,
        dir: &Path,
        command: &str,
        watch: impl Fn(&str) -> bool,
    ) -> (Option<String>, String) {
        let script = format!(
            "cd '{}' && env -u TORRUST_DEPLOYER_DATA_DIR -u RUST_LOG -u SSH_AUTH_SOCK NO_COLOR=1 \
             {command}; echo \"EXIT=$?\"; sleep 600",
            dir.display()
        );
        let out = self.tmux(&[
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "30",
            "-s",
            "run",
            "sh",
            "-c",
            &script,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        let start = Instant::now();
        let mut seen = None;
        loop {
            let pane =
                String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "run"]).stdout)
                    .into_owned();
            if pane.contains("EXIT=") {
                self.tmux(&["kill-session", "-t", "run"]);
                return (seen, pane.trim_end().to_string() + "\n");
            }
            if seen.is_none() && watch(&pane) {
                seen = Some(pane.clone());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the command did not finish in tmux:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn on_a_terminal_the_display_is_live_and_each_step_ends_as_one_line() {
    let mut sshd = Sshd::start();
    let sb = created(&sshd);
    let tmux = Tmux::start();

    let pane = tmux.run(
        sb.path(),
        &format!("{BIN} {}", register_args(&sshd).join(" ")),
    );
    eprintln!("{pane}");
    assert_eq!(
        stable(&pane, sshd.port, sb.path()),
        format!(
            "▸ register {ENV}\n\
             pinned the host key of 127.0.0.1:PORT (SHA256:FP) in SANDBOX/data/{ENV}/known_hosts\n\
             \x20 ✔ check SSH Ns\n\
             \x20 ✔ record host Ns\n\
             Host 127.0.0.1:PORT registered for environment '{ENV}' (host key SHA256:FP pinned).\n\
             \x20 It is never stopped or deleted by `destroy`.\n\
             EXIT=0\n"
        )
    );

    // While a step runs, it is a spinner with its elapsed time: here `connect`, retrying a
    // host that refuses connections for 4 s.
    sshd.stop();
    let spinner = |line: &str| {
        let mut chars = line.chars();
        line.starts_with("  ")
            && chars
                .nth(2)
                .is_some_and(|c| ('\u{2800}'..='\u{28ff}').contains(&c))
            && line.split_whitespace().nth(1) == Some("connect")
    };
    let (running, pane) = tmux.run_watching(
        sb.path(),
        &format!("{BIN} configure {ENV} --ssh-timeout 4"),
        |pane| pane.lines().any(spinner),
    );
    eprintln!("{running:?}\n{pane}");
    let running = running.expect("a spinner while `connect` ran");
    let line = running.lines().find(|l| spinner(l)).unwrap();
    let elapsed = line.split_whitespace().last().unwrap();
    assert!(
        elapsed.ends_with('s') && elapsed[..elapsed.len() - 1].parse::<f64>().is_ok(),
        "{line}"
    );
    let lines: Vec<&str> = pane.lines().collect();
    assert_eq!(lines[0], format!("▸ configure {ENV}"));
    assert!(
        lines[1].starts_with("  ✘ connect") && lines[1].contains("ssh_unreachable"),
        "{pane}"
    );

    assert!(
        lines[2].starts_with("error: a step failed: connect"),
        "{pane}"
    );
    assert_eq!(*lines.last().unwrap(), "EXIT=1");

    // The next run says it resumes; a changed host key fails the same step with its kind.
    sshd.restart_with_new_host_key();
    let pane = tmux.run(sb.path(), &format!("{BIN} configure {ENV} --ssh-timeout 1"));
    eprintln!("{pane}");
    let lines: Vec<&str> = pane.lines().collect();
    assert_eq!(lines[0], format!("▸ configure {ENV}"));
    assert_eq!(
        lines[1],
        "  resuming: the previous `configure` failed at step 'connect'; finished steps will \
         find nothing to do"
    );
    assert!(
        lines[2].starts_with("  ✘ connect") && lines[2].contains("ssh_host_key_changed"),
        "{pane}"
    );
    assert!(
        lines[3].starts_with("error: a step failed: connect"),
        "{pane}"
    );
    assert_eq!(*lines.last().unwrap(), "EXIT=1");
}

#[test]
fn deploy_shows_its_phases_around_their_commands_steps() {
    let sb = Sandbox::new();
    let mut cfg = minimal("phases");
    cfg["provider"]["socket_path"] = json!("/nonexistent/lxd/unix.socket");
    let file = sb.env_file("env.json", &cfg);
    let run = sb
        .run(&["-o", "json", "deploy", "phases", "--env-file", &file])
        .code(1);
    let events: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // Which events, in which order: `event`, then the phase or the command and step.
    let seen: Vec<String> = events
        .iter()
        .filter(|e| e["event"] != "log")
        .map(|e| {
            let mut s = e["event"].as_str().unwrap().to_string();
            for key in ["phase", "command", "step", "kind"] {
                if let Some(v) = e[key].as_str() {
                    s.push(' ');
                    s.push_str(v);
                }
            }
            s
        })
        .collect();
    assert_eq!(
        seen,
        [
            "phase_started environment",
            "phase_finished environment",
            "phase_started provision",
            "command_started provision",
            "step_started provision connect to LXD",
            "step_failed provision connect to LXD lxd_unreachable",
            "phase_failed provision lxd_unreachable",
            "error lxd_unreachable",
        ],
        "{run:#?}"
    );
    let environment = events
        .iter()
        .find(|e| e["event"] == "phase_finished")
        .unwrap();
    assert_eq!(environment["changed"], true, "{run:#?}");
    assert_eq!(run.json()["error"]["kind"], "lxd_unreachable");
}
