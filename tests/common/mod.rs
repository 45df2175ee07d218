//! Runs the real binary in a temporary directory and captures what it did.
//!
//! Two ways to assert: [`Sandbox::run`] returns a [`Run`] to look into, and [`Sandbox::cmd`]
//! builds a [`Test`] that compares the whole of stdout and stderr with what is expected, after
//! putting placeholders in for what changes from run to run (see [`Sandbox::normalize`]).
#![allow(dead_code)]

pub mod exposure;
pub mod lxd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::sshd::{Sshd, TEST_USER};

pub const BIN: &str = env!("CARGO_BIN_EXE_torrust-tracker-deployer");

/// A real OpenSSH public key line (validation parses the public key file).
pub const TEST_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINXyjB0NKXWa/UKodLoFN/ZGCMcLfZy0PKLeNApdci4p";

/// A real OpenSSH RSA public key line.
pub const TEST_RSA_PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC1f4awPNkjqf/CNgz7acOlHO280T6f768I+I56yfaTpBzJ3UYJpZFUCx7nnIqW+m8n1pdOmkd4QOQX8GQUOfPMdcvd844KKAREWtPYekvkbHf0xpTEp7db4FY47bLNCo7NBCZ8H+oQBv4q87nNxI3SMrfjuVgC07ZIbR1cX58PezRg2ov7DjVEhxQpHkVw8eSEegQwQUqmEbQUW3lsHioY2T6kc+og5ZE7M9Niv/HMaYbiVAb1WNj8oBOzpTOTBHA9+n+3m+OmuupHI9emjsxTyDnbFsvzkxi67Bwbq1Bm60z9ue6QG7h2nyFyJ+oLmjuqHRLlrER3/kGnpgVdyduV";

/// A temporary working directory; the binary's data directory is `<dir>/data`.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("TORRUST_DEPLOYER_DATA_DIR")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("binary runs").into()
    }

    /// Creates environment `name` from `config`, its SSH user the sshd's test user, and
    /// registers the running `sshd` (127.0.0.1) as its host, with the generated key authorized.
    pub fn register_on_sshd(&self, sshd: &Sshd, name: &str, mut config: Value) {
        config["ssh_credentials"]["username"] = json!(TEST_USER);
        let file = self.env_file(&format!("{name}.json"), &config);
        self.run(&["create", "environment", "--env-file", &file])
            .ok();
        sshd.authorize(TEST_USER, &self.data().join(name).join("ssh/id_ed25519"));
        let port = sshd.port.to_string();
        self.run(&[
            "register",
            name,
            "--instance-ip",
            "127.0.0.1",
            "--ssh-port",
            &port,
        ])
        .ok();
    }

    /// A test of one run of the binary that compares whole outputs: see [`Test`].
    pub fn cmd<'a>(&'a self, args: &[&str]) -> Test<'a> {
        Test {
            sandbox: self,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            status: 0,
            stdout: None,
            stderr: None,
        }
    }

    /// `text` with placeholders for what differs between runs: the sandbox's path is `[TMP]`,
    /// a duration (`12 ms`, `1.5 s`, `[  3.2s]`, `"elapsed_ms": 41`) is `[ELAPSED]`, and a
    /// timestamp (`2026-11-29T21:18:16.123Z`, `20261129T211816.123Z`, `2026-11-29 21:18:16 UTC`)
    /// is `[TIME]`.
    pub fn normalize(&self, text: &str) -> String {
        use std::sync::LazyLock;
        static PATTERNS: LazyLock<[(regex::Regex, &str); 5]> = LazyLock::new(|| {
            [
                (
                    regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( UTC)?").unwrap(),
                    "[TIME]",
                ),
                (
                    regex::Regex::new(
                        r"\d{4}-?\d{2}-?\d{2}T\d{2}:?\d{2}:?\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
                    )
                    .unwrap(),
                    "[TIME]",
                ),
                (
                    regex::Regex::new(r#""elapsed_ms": \d+"#).unwrap(),
                    r#""elapsed_ms": [ELAPSED]"#,
                ),
                (
                    regex::Regex::new(r"\[ *\d+(\.\d+)?s\]").unwrap(),
                    "[ELAPSED]",
                ),
                (
                    regex::Regex::new(r"\b\d+(\.\d+)? ?(ms|s)\b").unwrap(),
                    "[ELAPSED]",
                ),
            ]
        });
        let mut out = text.replace(&self.path().to_string_lossy().into_owned(), "[TMP]");
        for (pattern, placeholder) in PATTERNS.iter() {
            out = pattern.replace_all(&out, *placeholder).into_owned();
        }
        out
    }

    /// Writes `value` as an environment file named `name` and returns its path as a string.
    pub fn env_file(&self, name: &str, value: &Value) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// Creates placeholder key files at `<dir>/keys/<name>{,.pub}` (validation checks they exist).
    pub fn key_pair(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.path().join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        let private = dir.join(name);
        let public = dir.join(format!("{name}.pub"));
        std::fs::write(&private, "not parsed by validation\n").unwrap();
        std::fs::write(&public, format!("{TEST_PUBLIC_KEY} test\n")).unwrap();
        (private, public)
    }

    /// Every file under the data directory's `logs/`, concatenated.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.data().join("logs")) {
            for entry in entries.flatten() {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }
}

/// One run of the binary and what it must print, compared whole (after
/// [`Sandbox::normalize`]): like `just`'s test builder.
///
/// ```ignore
/// sb.cmd(&["exists", "alpha"]).stdout("false\n").run();
/// ```
pub struct Test<'a> {
    sandbox: &'a Sandbox,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    status: i32,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl Test<'_> {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The expected exit code (0 unless said).
    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// The whole of stdout, after normalising. Unchecked unless said.
    pub fn stdout(mut self, text: &str) -> Self {
        self.stdout = Some(text.into());
        self
    }

    /// The whole of stderr, after normalising. Unchecked unless said.
    pub fn stderr(mut self, text: &str) -> Self {
        self.stderr = Some(text.into());
        self
    }

    /// Runs the binary and checks the exit code and the outputs that were given.
    #[track_caller]
    pub fn run(self) -> Run {
        use std::io::Write;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut cmd = self.sandbox.command(&args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("binary runs");
        if let Some(bytes) = &self.stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let shown = || format!("`{}`", self.args.join(" "));
        let mut problems = Vec::new();
        if run.code != self.status {
            problems.push(format!("exit code {} (expected {})", run.code, self.status));
        }
        for (name, expected, got) in [
            ("stdout", &self.stdout, &run.stdout),
            ("stderr", &self.stderr, &run.stderr),
        ] {
            if let Some(expected) = expected {
                let got = self.sandbox.normalize(got);
                if &got != expected {
                    problems.push(format!(
                        "{name} differs\n--- expected\n{expected}\n--- got (normalised)\n{got}\n---"
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{}: {}\nraw run: {run:#?}",
            shown(),
            problems.join("\n")
        );
        run
    }
}

/// A minimal LXD environment file in the incumbent's format, without SSH keys.
pub fn minimal(name: &str) -> Value {
    json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-profile-{name}") },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "MyAccessToken" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        }
    })
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
