//! The rendered backup script, run for real (bash, tar, gzip, flock, find) against a copy of
//! the host layout in a temporary directory, with `docker`/`docker-compose` replaced by fakes
//! that log their calls.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use torrust_tracker_deployer::config;
use torrust_tracker_deployer::stack::{self, layout};

fn env_file(database: Value) -> Value {
    json!({
        "environment": { "name": "backup-test" },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": "torrust-profile-backup-test" },
        "tracker": {
            "core": { "database": database, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "Backup-Token-1" },
        },
        "backup": { "schedule": "0 3 * * *", "retention_days": 2 }
    })
}

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// Renders the stack into a fake root and writes fake Docker commands.
    /// `inspect`: what `docker inspect` prints; `exec`: the body run for `docker-compose exec`.
    fn new(file: &Value, inspect: &str, exec: &str) -> Self {
        let cfg = config::parse(&file.to_string(), Path::new("/"))
            .expect("valid")
            .config;
        let rendered = stack::render(&cfg).expect("renders");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let root_s = root.display().to_string();
        for d in &rendered.dirs {
            std::fs::create_dir_all(root.join(d.path.strip_prefix("/").unwrap())).unwrap();
        }
        for f in &rendered.files {
            let path = root.join(f.path.strip_prefix("/").unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut contents = String::from_utf8(f.contents.clone()).unwrap();
            if f.path == Path::new(layout::BACKUP_SCRIPT) {
                contents = contents.replace(layout::STACK_DIR, &format!("{root_s}/opt/torrust"));
            }
            std::fs::write(&path, contents).unwrap();
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let calls = dir.path().join("calls");
        let fake = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/bash\nprintf '%s\\n' \"{name} $*\" >>'{}'\n{body}\n",
                    calls.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // No Compose v2 plugin: the script falls back to docker-compose.
        fake(
            "docker",
            &format!("case \"$1\" in compose) exit 1;; inspect) echo '{inspect}';; esac\nexit 0"),
        );
        fake(
            "docker-compose",
            &format!("case \"$1\" in ps) echo cid123;; exec) {exec};; esac\nexit 0"),
        );
        Host { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn backups(&self) -> PathBuf {
        self.root().join(layout::BACKUP_DIR.trim_start_matches('/'))
    }

    fn run(&self) -> std::process::Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(
                self.root()
                    .join(layout::BACKUP_SCRIPT.trim_start_matches('/')),
            )
            .env("PATH", path)
            .output()
            .expect("bash runs")
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    fn archives(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backups())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("torrust-backup-"))
            .collect();
        names.sort();
        names
    }

    /// Old and recent archives from earlier runs.
    fn seed_archives(&self) {
        for (name, age) in [("old", "3 days ago"), ("recent", "1 day ago")] {
            let p = self.backups().join(format!("torrust-backup-{name}.tar.gz"));
            std::fs::write(&p, "x").unwrap();
            let ok = Command::new("touch")
                .args(["-d", age])
                .arg(&p)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
    }

    fn archive_listing(&self, name: &str) -> String {
        let out = Command::new("tar")
            .arg("-tzf")
            .arg(self.backups().join(name))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn archive_file(&self, name: &str, member: &str) -> String {
        let out = Command::new("tar")
            .arg("-xzOf")
            .arg(self.backups().join(name))
            .arg(member)
            .output()
            .unwrap();
        assert!(out.status.success(), "{member} not in {name}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn sqlite_copy_is_taken_while_the_tracker_is_paused_then_old_archives_go() {
    let host = Host::new(
        &env_file(json!({ "driver": "sqlite3", "database_name": "tracker.db" })),
        "true false",
        "exit 1",
    );
    let db = host
        .root()
        .join("opt/torrust/storage/tracker/lib/database/tracker.db");
    std::fs::write(&db, "SQLITE DATA").unwrap();
    std::fs::write(db.with_extension("db-journal"), "JOURNAL").unwrap();
    host.seed_archives();

    let out = host.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = host.calls();
    let pause = calls.find("docker-compose pause tracker").expect("paused");
    let unpause = calls
        .find("docker-compose unpause tracker")
        .expect("unpaused");
    assert!(pause < unpause, "{calls}");

    let archives = host.archives();
    assert_eq!(archives.len(), 2, "{archives:?}");
    assert!(archives.contains(&"torrust-backup-recent.tar.gz".to_string()));
    let new = archives
        .iter()
        .find(|n| !n.contains("recent"))
        .unwrap()
        .clone();
    assert_eq!(mode(&host.backups().join(&new)), 0o600);
    assert_eq!(mode(&host.backups()), 0o700);
    assert_eq!(
        std::fs::read_to_string(host.backups().join("last-success"))
            .unwrap()
            .trim(),
        new
    );
    assert_eq!(
        host.archive_file(&new, "database/tracker.db"),
        "SQLITE DATA"
    );
    assert_eq!(
        host.archive_file(&new, "database/tracker.db-journal"),
        "JOURNAL"
    );
    let listing = host.archive_listing(&new);
    for member in [
        "config/docker-compose.yml",
        "config/.env",
        "config/storage/tracker/etc/tracker.toml",
    ] {
        assert!(listing.contains(member), "{member} missing:\n{listing}");
    }
    // No work directory or partial archive is left.
    let leftovers: Vec<_> = std::fs::read_dir(host.backups())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".work") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_stopped_tracker_is_not_paused() {
    let host = Host::new(
        &env_file(json!({ "driver": "sqlite3", "database_name": "tracker.db" })),
        "false false",
        "exit 1",
    );
    std::fs::write(
        host.root()
            .join("opt/torrust/storage/tracker/lib/database/tracker.db"),
        "DB",
    )
    .unwrap();
    let out = host.run();
    assert!(out.status.success());
    assert!(!host.calls().contains("pause"), "{}", host.calls());
    assert_eq!(host.archives().len(), 1);
}

fn mysql() -> Value {
    json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
        "username": "torrust", "password": "Db-Password-1", "root_password": "Root-Password-1"
    })
}

#[test]
fn mysql_is_dumped_inside_its_container() {
    let host = Host::new(
        &env_file(mysql()),
        "true false",
        "echo '-- dump of torrust'",
    );
    let out = host.run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = host.calls();
    assert!(
        calls.contains("docker-compose exec -T mysql sh -c MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\""),
        "{calls}"
    );
    assert!(!calls.contains("Root-Password-1") && !calls.contains("pause"));
    let archives = host.archives();
    assert_eq!(archives.len(), 1);
    assert_eq!(
        host.archive_file(&archives[0], "database/mysql-dump.sql"),
        "-- dump of torrust\n"
    );
}

#[test]
fn a_failed_dump_keeps_every_old_archive() {
    let host = Host::new(&env_file(mysql()), "true false", "exit 2");
    host.seed_archives();
    let out = host.run();
    assert!(!out.status.success());
    assert_eq!(
        host.archives(),
        ["torrust-backup-old.tar.gz", "torrust-backup-recent.tar.gz"]
    );
    assert!(!host.backups().join("last-success").exists());
}
