//! The real Torrust Tracker binary for tests that run it on loopback, and free local ports.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEFAULT_BIN: &str = "/var/cache/torrust-deployer/tracker/3.0.0/bin/torrust-tracker";

/// The tracker binary: `TORRUST_TRACKER_BIN`, or the cache `build-tracker.sh` fills. A missing
/// binary fails the test with the command that builds it; it is never a skip.
pub fn tracker_bin() -> PathBuf {
    let path = std::env::var_os("TORRUST_TRACKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
    assert!(
        path.is_file(),
        "the Torrust Tracker binary is missing at {}: run \
         `bash provisioning/tracker/build-tracker.sh` (about 14 minutes), or set \
         TORRUST_TRACKER_BIN to a torrust-tracker 3.0.0 binary",
        path.display()
    );
    path
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The common part of a loopback tracker configuration (schema 2.0.0): SQLite at `db`, one UDP
/// and one HTTP tracker on 127.0.0.1. Callers append the API, health check or TLS sections.
pub fn base_config(db: &Path, udp: u16, http: u16) -> String {
    format!(
        r#"[metadata]
app = "torrust-tracker"
purpose = "configuration"
schema_version = "2.0.0"

[logging]
threshold = "info"

[core]
listed = false
private = false

[core.database]
driver = "sqlite3"
path = "{db}"

[[udp_trackers]]
bind_address = "127.0.0.1:{udp}"

[[http_trackers]]
bind_address = "127.0.0.1:{http}"
"#,
        db = db.display(),
    )
}

/// The API (with the admin `token`) and the health check API sections, both on 127.0.0.1, to
/// append after [`base_config`] and any further trackers.
pub fn api_sections(api: u16, token: &str, health: u16) -> String {
    format!(
        r#"
[http_api]
bind_address = "127.0.0.1:{api}"

[http_api.access_tokens]
admin = "{token}"

[health_check_api]
bind_address = "127.0.0.1:{health}"
"#
    )
}

/// The tracker's output, which the tests send to `tracker.log` in `dir`.
pub fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("tracker.log")).unwrap_or_default()
}

/// Waits until every TCP port accepts on 127.0.0.1 (the UDP socket is bound before the HTTP
/// services in practice; the UDP checks retransmit anyway). Panics with the tracker's log if it
/// exits or does not listen within 30 s.
pub fn wait_listening(child: &mut Child, dir: &Path, ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for &port in ports {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the tracker exited ({status}) during start:\n{}",
                    read_log(dir)
                );
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tracker does not listen on 127.0.0.1:{port} after 30 s:\n{}",
                read_log(dir)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts the tracker in `dir` with `config` (written to `tracker.toml`), its output going to
/// `tracker.log`. Follow with [`wait_listening`].
pub fn spawn(dir: &Path, config: &str) -> Child {
    let bin = tracker_bin();
    let config_path = dir.join("tracker.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.join("tracker.log")).unwrap();
    Command::new(&bin)
        .current_dir(dir)
        .env_remove("TORRUST_TRACKER_CONFIG_TOML")
        .env("TORRUST_TRACKER_CONFIG_TOML_PATH", &config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}
