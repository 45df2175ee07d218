//! Nothing lost, end to end on LXD, for SQLite and MySQL: deploy, seed the tracker over its
//! real protocols (completed downloads of several torrents, keys and whitelist entries through
//! its API), `backup`, `backup --download`, `destroy`, deploy again from the same file,
//! `restore --from` the downloaded file; then every torrent's completed count, every key (with
//! its expiry) and every whitelist entry is in the tracker's database again.
//!
//! Where it is checked: the tracker's API shows the completed counts before the backup, but
//! Torrust Tracker 3.0.0 does not load them back from its database when it starts (tracker
//! issue 1264, fixed after 3.0.0), and its API has no endpoint that lists keys or the
//! whitelist. So after the restore the rows are read from the database itself (SQLite through
//! the host's Python, MySQL through the mysql client in its container), and the API is asked to
//! reload the keys and the whitelist from it (which it answers only if it can read them).
//!
//! Needs what tests/lxd_e2e.rs needs (LXD, the images, the tracker build, the offline bundle).

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::Sandbox;
use common::lxd::*;
use reqwest::Url;
use serde_json::{Value, json};
use torrust_tracker_deployer::probe::{
    AnnounceEvent, HttpOptions, InfoHash, TestPeer, http_tracker,
};

const TOKEN: &str = "BackupAdminToken0123456789abc";

fn bundle() -> PathBuf {
    std::env::var_os("TORRUST_TEST_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/torrust-deployer/bundle/current"))
}

/// UDP and HTTP trackers, the API on the host's address, the backup job; no Prometheus.
fn env_file(sb: &Sandbox, name: &str, database: Value) -> String {
    let cfg = json!({
        "environment": { "name": name },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": format!("torrust-test-{name}"), "image": IMAGE },
        "tracker": {
            "core": { "database": database, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": TOKEN },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "backup": { "schedule": "0 3 * * *", "retention_days": 7 },
        "images": { "offline_bundle": bundle() }
    });
    sb.env_file(&format!("{name}.json"), &cfg)
}

fn host_ip(sb: &Sandbox, name: &str) -> String {
    state(sb, name)["host"]["ip"].as_str().unwrap().to_string()
}

fn instance(sb: &Sandbox, name: &str) -> String {
    state(sb, name)["host"]["instance"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The tracker's API, with the admin token.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(ip: &str) -> Self {
        Self {
            base: format!("http://{ip}:1212/api/v1"),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}?token={TOKEN}", self.base)
    }

    /// `method path` with an optional JSON body: the status and the body.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        runtime().block_on(async {
            let mut req = self.client.request(method, self.url(path));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let answer = req.send().await.expect("the API answers");
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap_or_default())
        })
    }
}

/// What the test puts in the tracker: info hash -> completed downloads, keys (with
/// `seconds_valid`), whitelisted info hashes.
struct Seed {
    completed: Vec<(InfoHash, u32)>,
    keys: Vec<(String, Option<u64>)>,
    whitelist: Vec<InfoHash>,
}

impl Seed {
    /// Tracker 3.0.0 cannot store a key without expiry in MySQL (`todo!()` in its MySQL
    /// driver): there both keys expire.
    fn new(mysql: bool) -> Self {
        let first = if mysql { Some(7 * 86_400) } else { None };
        Self {
            completed: (1..=3).map(|n| (InfoHash::random(), n)).collect(),
            keys: vec![
                ("BackupKeyFirst000000000000000001".into(), first),
                ("BackupKeyForOneDay00000000000002".into(), Some(86_400)),
            ],
            whitelist: vec![InfoHash::random(), InfoHash::random()],
        }
    }

    /// Each torrent completed by as many peers as its count (`started` with 1 MiB left, then
    /// `completed` with nothing left, over HTTP), seen in the API; then the keys and the
    /// whitelist through the API.
    fn plant(&self, ip: &str) {
        let base = Url::parse(&format!("http://{ip}:7070")).unwrap();
        let opts = HttpOptions::default();
        runtime().block_on(async {
            for (hash, count) in &self.completed {
                for _ in 0..*count {
                    let mut peer = TestPeer::random();
                    peer.info_hash = *hash;
                    let started = peer.announce(AnnounceEvent::Started);
                    http_tracker::announce(&base, &started, &opts)
                        .await
                        .expect("announce started");
                    let mut done = peer.announce(AnnounceEvent::Completed);
                    done.left = 0;
                    done.downloaded = 1 << 20;
                    http_tracker::announce(&base, &done, &opts)
                        .await
                        .expect("announce completed");
                }
            }
        });
        let api = Api::new(ip);
        for (hash, count) in &self.completed {
            let (status, body) = api.call(reqwest::Method::GET, &format!("torrent/{hash}"), None);
            assert_eq!(status, 200, "{body}");
            let torrent: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(torrent["completed"], json!(count), "{torrent:#}");
        }
        for (key, seconds) in &self.keys {
            let (status, body) = api.call(
                reqwest::Method::POST,
                "keys",
                Some(json!({ "key": key, "seconds_valid": seconds })),
            );
            assert_eq!(status, 200, "{body}");
        }
        for hash in &self.whitelist {
            let (status, body) =
                api.call(reqwest::Method::POST, &format!("whitelist/{hash}"), None);
            assert_eq!(status, 200, "{body}");
        }
    }

    /// The rows these make in the database, as [`rows`] prints them (a key's expiry aside).
    fn expected(&self) -> BTreeSet<String> {
        let mut rows = BTreeSet::new();
        for (hash, count) in &self.completed {
            rows.insert(format!("torrents\t{hash}\t{count}"));
        }
        for hash in &self.whitelist {
            rows.insert(format!("whitelist\t{hash}\t-"));
        }
        rows
    }
}

const QUERIES: [&str; 3] = [
    "SELECT 'torrents', info_hash, completed FROM torrents",
    "SELECT 'keys', `key`, COALESCE(valid_until, 'NULL') FROM `keys`",
    "SELECT 'whitelist', info_hash, '-' FROM whitelist",
];

/// Every row of the tracker's three tables, read in its database on the host:
/// `torrents\tHASH\tCOMPLETED`, `keys\tKEY\tVALID_UNTIL`, `whitelist\tHASH\t-`.
fn rows(sb: &Sandbox, name: &str, mysql: bool) -> BTreeSet<String> {
    let script = if mysql {
        format!(
            "cid=$(docker ps -q --filter label=com.docker.compose.service=mysql)\n\
             docker exec -i \"$cid\" sh -c 'MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mysql -uroot -N -B \"$MYSQL_DATABASE\"' <<'EOF'\n{};\nEOF\n",
            QUERIES.join(";\n")
        )
    } else {
        let queries: Vec<String> = QUERIES.iter().map(|q| format!("{q:?}")).collect();
        format!(
            "python3 - <<'EOF'\n\
             import sqlite3\n\
             c = sqlite3.connect('file:/opt/torrust/storage/tracker/lib/database/tracker.db?mode=ro', uri=True)\n\
             for q in [{}]:\n\
             \x20   for r in c.execute(q):\n\
             \x20       print('\\t'.join('NULL' if v is None else str(v) for v in r))\n\
             EOF\n",
            queries.join(", ")
        )
    };
    let (code, out) = exec_out(&instance(sb, name), &script);
    assert_eq!(code, 0, "reading the database failed: {out}");
    out.lines().map(str::to_string).collect()
}

/// The rows `seed` made, and the keys with their expiry, found in `rows`.
fn planted(seed: &Seed, rows: &BTreeSet<String>) -> BTreeSet<String> {
    let keys: Vec<&str> = seed.keys.iter().map(|(k, _)| k.as_str()).collect();
    rows.iter()
        .filter(|r| {
            seed.expected().contains(*r)
                || r.strip_prefix("keys\t")
                    .and_then(|r| r.split('\t').next())
                    .is_some_and(|k| keys.contains(&k))
        })
        .cloned()
        .collect()
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn nothing_lost(base: &str, database: Value) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mysql = database["driver"] == "mysql";
    let sb = Sandbox::new();
    let name = &unique(base);
    let file = env_file(&sb, name, database);
    let _cleanup = Cleanup(&sb, name);

    // 1. deploy, and the tracker's data: completed downloads, keys, whitelist.
    sb.run(&["-o", "json", "deploy", name, "--env-file", &file])
        .ok();
    let seed = Seed::new(mysql);
    seed.plant(&host_ip(&sb, name));
    let before = planted(&seed, &rows(&sb, name, mysql));
    assert_eq!(
        before.len(),
        seed.completed.len() + seed.keys.len() + seed.whitelist.len(),
        "the tracker did not store everything: {before:#?}"
    );
    assert!(
        seed.expected().is_subset(&before),
        "{before:#?}\n{:#?}",
        seed.expected()
    );

    // 2. backup now: the archive on the host, with its size and sha256.
    let made = sb.run(&["-o", "json", "backup", name]).ok().json();
    let archive = made["archive"]["name"].as_str().unwrap().to_string();
    assert!(archive.starts_with("torrust-backup-"), "{made:#}");
    assert_eq!(
        made["archive"]["path"],
        format!("/opt/torrust/storage/backup/{archive}")
    );
    assert!(made["archive"]["size"].as_u64().unwrap() > 0, "{made:#}");
    let sha = made["archive"]["sha256"].as_str().unwrap().to_string();
    let listed = sb
        .run(&["-o", "json", "backup", name, "--list"])
        .ok()
        .json();
    let names: Vec<&str> = listed["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [archive.as_str()], "{listed:#}");
    assert_eq!(listed["last_success"], archive.as_str());

    // 3. copied here: checksummed, private, and not copied twice.
    let dir = sb.path().join("backups");
    let dir_s = dir.to_str().unwrap();
    let got = sb
        .run(&["-o", "json", "backup", name, "--download", dir_s])
        .ok()
        .json();
    assert_eq!(got["archives"][0]["action"], "downloaded", "{got:#}");
    let local = dir.join(&archive);
    assert_eq!(sha256_of(&local), sha);
    assert_eq!(common::mode(&local), 0o600);
    let side = std::fs::read_to_string(dir.join(format!("{archive}.sha256"))).unwrap();
    assert_eq!(side, format!("{sha}  {archive}\n"));
    let again = sb
        .run(&[
            "-o",
            "json",
            "backup",
            name,
            "--download",
            dir_s,
            "--archive",
            &archive,
        ])
        .ok()
        .json();
    assert_eq!(again["archives"][0]["action"], "unchanged", "{again:#}");

    // 4. the host is gone; a new one from the same file has none of it.
    let old = instance(&sb, name);
    sb.run(&["destroy", name]).ok();
    assert!(!instance_exists(&old));
    sb.run(&["-o", "json", "deploy", name, "--env-file", &file])
        .ok();
    assert!(
        planted(&seed, &rows(&sb, name, mysql)).is_empty(),
        "a fresh deploy already has the data"
    );

    // An archive of the other database is refused before anything is touched.
    let other = wrong_archive(sb.path(), mysql);
    let refused = sb
        .run(&[
            "-o",
            "json",
            "restore",
            name,
            "--from",
            other.to_str().unwrap(),
        ])
        .code(2)
        .json();
    assert_eq!(refused["error"]["kind"], "archive_invalid", "{refused:#}");

    // 5. restore from the downloaded file: uploaded, checked, restored, healthy, tested.
    let restored = sb
        .run(&[
            "-o",
            "json",
            "restore",
            name,
            "--from",
            local.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(restored["uploaded"], true, "{restored:#}");
    assert_eq!(restored["archive"]["sha256"], sha.as_str(), "{restored:#}");
    assert_eq!(
        restored["database"]["driver"],
        if mysql { "mysql" } else { "sqlite3" }
    );
    assert_eq!(
        restored["test_passed"], restored["test_total"],
        "{restored:#}"
    );
    assert!(restored["test_total"].as_u64().unwrap() > 0);

    // 6. nothing lost: every completed count, key (with its expiry) and whitelist entry.
    let after = planted(&seed, &rows(&sb, name, mysql));
    assert_eq!(after, before);
    // The tracker reads them: it reloads the keys and the whitelist from the restored tables.
    let api = Api::new(&host_ip(&sb, name));
    for path in ["keys/reload", "whitelist/reload"] {
        let (status, body) = api.call(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "{path}: {body}");
    }
    // And it still works with them, over the real protocols.
    let tested = sb.run(&["-o", "json", "test", name]).ok().json();
    assert_eq!(tested["ok"], true, "{tested:#}");
}

/// A local archive shaped like the job's, of the database this environment does not use.
fn wrong_archive(dir: &Path, mysql: bool) -> PathBuf {
    let src = dir.join("wrong");
    std::fs::create_dir_all(src.join("database")).unwrap();
    std::fs::create_dir_all(src.join("config")).unwrap();
    if mysql {
        std::fs::write(src.join("database/tracker.db"), "SQLite format 3\0").unwrap();
    } else {
        std::fs::write(
            src.join("database/mysql-dump.sql"),
            "CREATE DATABASE `torrust_tracker`;\nUSE `torrust_tracker`;\n",
        )
        .unwrap();
    }
    let path = dir.join("torrust-backup-wrong.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(&path)
        .args(["database", "config"])
        .status()
        .unwrap();
    assert!(status.success());
    path
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn sqlite_nothing_lost_through_backup_destroy_and_restore() {
    nothing_lost(
        "bk-sqlite",
        json!({ "driver": "sqlite3", "database_name": "tracker.db" }),
    );
}

#[test]
#[ignore = "needs LXD, the tracker build and the offline bundle: provisioning/test.sh prepares it and runs it"]
fn mysql_nothing_lost_through_backup_destroy_and_restore() {
    nothing_lost(
        "bk-mysql",
        json!({
            "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
            "username": "torrust", "password": "BackupDbPassword_42"
        }),
    );
}
