//! Runs the real binary in a temporary directory and captures what it did.
#![allow(dead_code)]

pub mod lxd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_torrust-tracker-deployer");

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
        let out = self.command(args).output().expect("binary runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
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
        std::fs::write(&public, "ssh-ed25519 AAAA test\n").unwrap();
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
