//! Restoring the database of an archive on the host.
//!
//! - facts: [`inspect`] (one round trip): the archive's size, sha256 and entries, and the
//!   database a MySQL dump selects; [`classify`] says which database it holds (a pure
//!   function, also used on a local archive by [`peek_local`] before it is uploaded);
//! - plan: [`check_matches`] refuses an archive of the other driver, or a dump of another
//!   MySQL database;
//! - apply: [`stop_tracker`], then [`restore_sqlite`] (the file replaced, the previous one kept
//!   beside it) or [`restore_mysql`] (the dump imported while MySQL runs);
//! - verify: the caller starts the stack and waits for health (`tasks::compose`).
//!
//! Only the database is restored. The archive's `config/` (compose file, `.env`, the services'
//! configuration) is what `release` renders from the environment file; restoring it would make
//! the host differ from the model (and `status` report drift). It stays in the archive for
//! reference: docs/decisions/0021-backup-and-restore.md.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::{Archive, BackupError, host_path, parse_stat, parse_sum};
use crate::config::Database;
use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::{Service, layout};
use crate::tasks::compose::{in_stack_dir, indent_tail};

/// The steps of a restore.
pub const CHECK: &str = "check archive";
pub const STOP: &str = "stop tracker";
pub const RESTORE: &str = "restore database";

/// The MySQL dump's entry in an archive.
pub const MYSQL_DUMP: &str = "database/mysql-dump.sql";

/// How much of a dump is read to find the database it selects (`USE ...;` comes first).
const DUMP_HEAD: usize = 1 << 20;

/// The database an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "driver", rename_all = "snake_case")]
pub enum ArchiveDatabase {
    /// A SQLite file (`database/<name>`) and the journal or WAL files copied with it.
    #[serde(rename = "sqlite3")]
    Sqlite {
        file: String,
        companions: Vec<String>,
    },
    /// A `mysqldump --databases` dump, and the database it creates and selects.
    Mysql { database: Option<String> },
}

impl ArchiveDatabase {
    pub fn driver(&self) -> &'static str {
        match self {
            ArchiveDatabase::Sqlite { .. } => "sqlite3",
            ArchiveDatabase::Mysql { .. } => "mysql",
        }
    }
}

const COMPANIONS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Which database an archive holds, from its entries and the `USE` line of its dump.
pub fn classify(entries: &[String], use_line: Option<&str>) -> Result<ArchiveDatabase, String> {
    let files: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.strip_prefix("database/"))
        .filter(|f| !f.is_empty() && !f.ends_with('/'))
        .collect();
    if !entries
        .iter()
        .any(|e| e == "database/" || e.starts_with("database/"))
    {
        return Err("it has no `database/` directory (is it an archive of the backup job?)".into());
    }
    if files.contains(&"mysql-dump.sql") {
        if files.len() > 1 {
            return Err(format!(
                "it holds a MySQL dump and other files ({})",
                files.join(", ")
            ));
        }
        let database = use_line.and_then(|l| {
            l.trim()
                .strip_prefix("USE `")?
                .strip_suffix("`;")
                .map(str::to_string)
        });
        return Ok(ArchiveDatabase::Mysql { database });
    }
    let is_companion = |f: &str| COMPANIONS.iter().any(|c| f.ends_with(c));
    let mains: Vec<&str> = files.iter().copied().filter(|f| !is_companion(f)).collect();
    match mains[..] {
        [] => Err(
            "its `database/` is empty: the tracker had not created its database yet when the \
             backup ran"
                .into(),
        ),
        [main] if !main.contains('/') => {
            let companions = COMPANIONS
                .iter()
                .map(|c| format!("{main}{c}"))
                .filter(|c| files.contains(&c.as_str()))
                .map(|c| format!("database/{c}"))
                .collect();
            Ok(ArchiveDatabase::Sqlite {
                file: format!("database/{main}"),
                companions,
            })
        }
        _ => Err(format!(
            "its `database/` holds several files ({}), not one database",
            files.join(", ")
        )),
    }
}

/// An archive on the host and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspected {
    pub archive: Archive,
    pub database: ArchiveDatabase,
}

/// Prints `--absent`, or `--sum` (a stat line and a checksum line), `--entries` (from
/// `tar -t`, then `--unreadable` if tar failed) and `--use` (the dump's `USE` line, if any).
pub fn inspect_script(name: &str) -> String {
    let a = shell_quote(&host_path(name));
    format!(
        "cd {dir} 2>/dev/null || {{ echo --absent; exit 0; }}\n\
         if [ ! -f {n} ]; then echo --absent; exit 0; fi\n\
         echo --sum\n\
         stat -c '%s %Y %n' -- {n}\n\
         sha256sum -- {n}\n\
         echo --entries\n\
         tar -tzf {a} 2>&1 || echo --unreadable\n\
         echo --use\n\
         tar -xzOf {a} {dump} 2>/dev/null | head -c {DUMP_HEAD} | grep -m1 '^USE ' || true\n",
        dir = shell_quote(layout::BACKUP_DIR),
        n = shell_quote(name),
        dump = MYSQL_DUMP,
    )
}

/// Parses [`inspect_script`]'s output: `None` when the archive is absent.
pub fn parse_inspect(name: &str, text: &str) -> Result<Option<Inspected>, BackupError> {
    if text.lines().next() == Some("--absent") {
        return Ok(None);
    }
    let invalid = |reason: String| BackupError::Invalid {
        archive: name.to_string(),
        reason,
    };
    let (mut section, mut sums, mut entries, mut use_line) = ("", Vec::new(), Vec::new(), None);
    let mut unreadable = false;
    for line in text.lines() {
        match line {
            "--sum" | "--entries" | "--use" => section = line,
            "--unreadable" if section == "--entries" => unreadable = true,
            _ if section == "--sum" => sums.push(line),
            _ if section == "--entries" => entries.push(line.to_string()),
            _ if section == "--use" => use_line = Some(line),
            _ => {}
        }
    }
    let mut archive = sums
        .first()
        .and_then(|l| parse_stat(l))
        .ok_or_else(|| BackupError::Unexpected(format!("cannot read {name} on the host")))?;
    archive.sha256 = sums.get(1).and_then(|l| parse_sum(l)).map(|(s, _)| s);
    if unreadable {
        let why = entries.last().cloned().unwrap_or_default();
        return Err(invalid(format!("it is not a readable .tar.gz ({why})")));
    }
    let database = classify(&entries, use_line).map_err(invalid)?;
    Ok(Some(Inspected { archive, database }))
}

/// Reads an archive on the host: its checksum, and the database it holds.
pub async fn inspect(host: &dyn Host, name: &str) -> Result<Inspected, BackupError> {
    let out = host.sudo(&inspect_script(name)).await?.check()?;
    parse_inspect(name, &out.stdout_str())?.ok_or_else(|| BackupError::NotFound {
        name: name.to_string(),
        place: format!("on the host (in {})", layout::BACKUP_DIR),
    })
}

/// The database a local archive holds, from its first entries (the job writes `database/`
/// first), before it is sent anywhere.
pub async fn peek_local(path: &Path) -> Result<ArchiveDatabase, BackupError> {
    let p = path.to_path_buf();
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let file = std::fs::File::open(&p).map_err(|e| e.to_string())?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entries = Vec::new();
        let mut use_line = None;
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let name = entry
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .to_string();
            let name = name.trim_start_matches("./").to_string();
            if !name.starts_with("database") {
                break;
            }
            if name == MYSQL_DUMP {
                let mut head = Vec::new();
                (&mut entry)
                    .take(DUMP_HEAD as u64)
                    .read_to_end(&mut head)
                    .map_err(|e| e.to_string())?;
                use_line = String::from_utf8_lossy(&head)
                    .lines()
                    .find(|l| l.starts_with("USE "))
                    .map(str::to_string);
            }
            entries.push(name);
        }
        Ok((entries, use_line))
    })
    .await
    .map_err(|e| BackupError::Unexpected(e.to_string()))?;
    let invalid = |reason: String| BackupError::Invalid {
        archive: shown.clone(),
        reason,
    };
    let (entries, use_line) =
        read.map_err(|e| invalid(format!("it is not a readable .tar.gz ({e})")))?;
    classify(&entries, use_line.as_deref()).map_err(invalid)
}

/// Refuses an archive whose database is not the environment's.
pub fn check_matches(
    archive: &str,
    found: &ArchiveDatabase,
    config: &Database,
) -> Result<(), BackupError> {
    let mismatch = |expected: &str, fix: String| BackupError::Mismatch {
        archive: archive.to_string(),
        found: found.driver().to_string(),
        expected: expected.to_string(),
        fix,
    };
    match (found, config) {
        (ArchiveDatabase::Sqlite { .. }, Database::Sqlite3(_)) => Ok(()),
        (ArchiveDatabase::Mysql { database }, Database::Mysql(m)) => match database {
            Some(d) if d.as_str() != m.database_name.as_str() => Err(mismatch(
                &format!("MySQL database `{}`", m.database_name.as_str()),
                format!(
                    "the dump creates and fills database `{d}`; restore it into an environment \
                     whose `tracker.core.database.database_name` is `{d}`"
                ),
            )),
            _ => Ok(()),
        },
        (_, Database::Sqlite3(_)) => Err(mismatch(
            "SQLite",
            "restore a backup of an SQLite environment, or deploy this one with the MySQL \
             settings the backup was made with"
                .into(),
        )),
        (_, Database::Mysql(_)) => Err(mismatch(
            "MySQL",
            "restore a backup of a MySQL environment, or deploy this one with the SQLite \
             settings the backup was made with"
                .into(),
        )),
    }
}

fn failed(step: &str, what: &str, output: &str) -> BackupError {
    BackupError::RestoreFailed {
        step: step.to_string(),
        message: format!("{what}:\n{}", indent_tail(output, 20)),
    }
}

/// Stops the tracker (and only it): nothing writes the database while it is replaced.
pub async fn stop_tracker(host: &dyn Host, compose: &str) -> Result<(), BackupError> {
    let out = host
        .sudo(&format!(
            "{} stop {} 2>&1",
            in_stack_dir(compose),
            Service::Tracker.as_str()
        ))
        .await?;
    if !out.success() {
        return Err(failed(
            STOP,
            &format!("`{compose} stop tracker` failed"),
            &out.stdout_str(),
        ));
    }
    Ok(())
}

/// Puts the archive's SQLite file (and its journal or WAL) in place of `db`, owned by the
/// tracker; the current files are kept beside it as `<db>.before-restore-<time>`. Prints
/// `--kept PATH` for what it kept.
pub fn sqlite_script(archive: &str, file: &str, db: &str) -> String {
    let uid = layout::TRACKER_UID;
    format!(
        "set -e\n\
         umask 077\n\
         a={a}; main={main}; db={db}\n\
         dir=$(dirname \"$db\")\n\
         if [ ! -d \"$dir\" ]; then mkdir -p \"$dir\"; chown {uid}:{uid} \"$dir\"; fi\n\
         work=$(mktemp -d \"$dir/.restore-XXXXXXXX\")\n\
         trap 'rm -rf \"$work\"' EXIT\n\
         tar -xzf \"$a\" -C \"$work\" database\n\
         [ -f \"$work/$main\" ] || {{ echo \"the archive has no $main\" >&2; exit 1; }}\n\
         stamp=$(date -u +%Y%m%dT%H%M%SZ)\n\
         for s in '' -journal -wal -shm; do\n\
           if [ -e \"$db$s\" ]; then\n\
             mv -f \"$db$s\" \"$db.before-restore-$stamp$s\"\n\
             [ -n \"$s\" ] || echo \"--kept $db.before-restore-$stamp\"\n\
           fi\n\
         done\n\
         for s in '' -journal -wal -shm; do\n\
           if [ -f \"$work/$main$s\" ]; then\n\
             chown {uid}:{uid} \"$work/$main$s\"\n\
             mv -f \"$work/$main$s\" \"$db$s\"\n\
           fi\n\
         done\n",
        a = shell_quote(archive),
        main = shell_quote(file),
        db = shell_quote(db),
    )
}

/// Restores the SQLite file; returns where the previous database was kept, if there was one.
pub async fn restore_sqlite(
    host: &dyn Host,
    archive: &str,
    file: &str,
    db: &Path,
) -> Result<Option<String>, BackupError> {
    let db = db.display().to_string();
    let out = host.sudo(&sqlite_script(archive, file, &db)).await?;
    if !out.success() {
        return Err(failed(
            RESTORE,
            &format!("putting {file} of {archive} in place of {db} failed"),
            &format!("{}{}", out.stdout_str(), out.stderr_str()),
        ));
    }
    Ok(out
        .stdout_str()
        .lines()
        .find_map(|l| l.strip_prefix("--kept ").map(str::to_string)))
}

/// Imports the archive's MySQL dump into the running MySQL (started if it is not), as root
/// inside its container (the password stays in the container's environment). The dump drops
/// and recreates each table it holds.
pub fn mysql_script(compose: &str, archive: &str) -> String {
    let container = format!(
        "docker ps -aq --filter label=com.docker.compose.project={} \
         --filter label=com.docker.compose.service={} | head -n1",
        layout::COMPOSE_PROJECT_NAME,
        Service::Mysql.as_str()
    );
    format!(
        "set -e\n\
         umask 077\n\
         a={a}\n\
         cid=$({container})\n\
         if [ -z \"$cid\" ]; then {up} up -d --no-deps mysql 2>&1; cid=$({container}); fi\n\
         docker start \"$cid\" >/dev/null\n\
         i=0\n\
         until docker exec \"$cid\" sh -c 'MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mysqladmin -uroot ping' >/dev/null 2>&1; do\n\
           i=$((i+1)); if [ $i -ge 240 ]; then echo 'MySQL did not answer within 120 s' >&2; exit 1; fi\n\
           sleep 0.5\n\
         done\n\
         work=$(mktemp -d {dir}/.restore-XXXXXXXX)\n\
         trap 'rm -rf \"$work\"' EXIT\n\
         tar -xzf \"$a\" -C \"$work\" {dump}\n\
         docker exec -i \"$cid\" sh -c 'MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mysql -uroot' <\"$work/{dump}\"\n",
        a = shell_quote(archive),
        up = in_stack_dir(compose),
        dir = shell_quote(layout::BACKUP_DIR),
        dump = MYSQL_DUMP,
    )
}

/// Imports the MySQL dump of the archive.
pub async fn restore_mysql(
    host: &dyn Host,
    compose: &str,
    archive: &str,
) -> Result<(), BackupError> {
    let out = host.sudo(&mysql_script(compose, archive)).await?;
    if !out.success() {
        return Err(failed(
            RESTORE,
            &format!("importing the MySQL dump of {archive} failed"),
            &format!("{}{}", out.stdout_str(), out.stderr_str()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::host::fake::{FakeHost, Reply};

    fn e(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn archives_are_classified_by_their_database() {
        let sqlite = classify(
            &e(&[
                "database/",
                "database/tracker.db",
                "database/tracker.db-wal",
                "config/",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            sqlite,
            ArchiveDatabase::Sqlite {
                file: "database/tracker.db".into(),
                companions: vec!["database/tracker.db-wal".into()]
            }
        );
        let mysql = classify(
            &e(&["database/", "database/mysql-dump.sql"]),
            Some("USE `torrust_tracker`;"),
        )
        .unwrap();
        assert_eq!(
            mysql,
            ArchiveDatabase::Mysql {
                database: Some("torrust_tracker".into())
            }
        );
        for (bad, why) in [
            (e(&["config/", "config/.env"]), "no `database/`"),
            (e(&["database/", "config/"]), "empty"),
            (e(&["database/a.db", "database/b.db"]), "several files"),
            (
                e(&["database/mysql-dump.sql", "database/a.db"]),
                "a MySQL dump and other files",
            ),
        ] {
            let err = classify(&bad, None).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    fn database(file: serde_json::Value) -> Database {
        let mut cfg: serde_json::Value =
            serde_json::from_str(&config::template(config::ProviderKind::Lxd)).unwrap();
        cfg["tracker"]["core"]["database"] = file;
        config::parse(&cfg.to_string(), Path::new("/tmp"))
            .unwrap()
            .config
            .tracker
            .core
            .database
    }

    #[test]
    fn an_archive_of_the_other_database_is_refused() {
        let sqlite = database(serde_json::json!({"driver": "sqlite3", "database_name": "t.db"}));
        let mysql = database(serde_json::json!({
            "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
            "username": "torrust", "password": "Pass_word_1234"
        }));
        let dump = |name: Option<&str>| ArchiveDatabase::Mysql {
            database: name.map(str::to_string),
        };
        let file = ArchiveDatabase::Sqlite {
            file: "database/other.db".into(),
            companions: vec![],
        };
        assert!(check_matches("a", &file, &sqlite).is_ok());
        assert!(check_matches("a", &dump(Some("torrust_tracker")), &mysql).is_ok());
        let err = check_matches("a", &dump(None), &sqlite).unwrap_err();
        assert!(
            err.to_string()
                .contains("a holds a mysql database, but the environment uses SQLite"),
            "{err}"
        );
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::ArchiveInvalid
        );
        let err = check_matches("a", &file, &mysql).unwrap_err();
        assert!(err.to_string().contains("uses MySQL"), "{err}");
        let err = check_matches("a", &dump(Some("other")), &mysql).unwrap_err();
        assert!(err.to_string().contains("database `other`"), "{err}");
    }

    #[test]
    fn an_inspection_is_parsed() {
        let sha = "a".repeat(64);
        let text = format!(
            "--sum\n99 1764471600 torrust-backup-a.tar.gz\n{sha}  torrust-backup-a.tar.gz\n\
             --entries\ndatabase/\ndatabase/mysql-dump.sql\nconfig/\n--use\nUSE `tt`;\n"
        );
        let got = parse_inspect("torrust-backup-a.tar.gz", &text)
            .unwrap()
            .unwrap();
        assert_eq!(got.archive.size, 99);
        assert_eq!(got.archive.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(
            got.database,
            ArchiveDatabase::Mysql {
                database: Some("tt".into())
            }
        );
        assert!(parse_inspect("x", "--absent\n").unwrap().is_none());
        let broken = format!(
            "--sum\n9 1 torrust-backup-a.tar.gz\n{sha}  torrust-backup-a.tar.gz\n--entries\n\
             gzip: stdin: not in gzip format\n--unreadable\n--use\n"
        );
        let err = parse_inspect("torrust-backup-a.tar.gz", &broken).unwrap_err();
        assert!(err.to_string().contains("not in gzip format"), "{err}");
        assert!(matches!(err, BackupError::Invalid { .. }));
    }

    /// An archive like the job's, built here: `database/` then `config/`.
    fn make_archive(dir: &Path, database: &[(&str, &str)]) -> std::path::PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("database")).unwrap();
        std::fs::create_dir_all(src.join("config")).unwrap();
        for (name, body) in database {
            std::fs::write(src.join("database").join(name), body).unwrap();
        }
        std::fs::write(src.join("config/.env"), "SECRET=1\n").unwrap();
        let path = dir.join("torrust-backup-a.tar.gz");
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
    fn the_inspect_script_reads_a_real_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = make_archive(
            dir.path(),
            &[("mysql-dump.sql", "-- dump\nCREATE DATABASE x;\nUSE `tt`;\n")],
        );
        let script = inspect_script("torrust-backup-a.tar.gz")
            .replace(layout::BACKUP_DIR, dir.path().to_str().unwrap());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let got = parse_inspect("torrust-backup-a.tar.gz", &text)
            .unwrap()
            .unwrap();
        assert_eq!(
            got.database,
            ArchiveDatabase::Mysql {
                database: Some("tt".into())
            },
            "{text}"
        );
        assert_eq!(got.archive.size, std::fs::metadata(&path).unwrap().len());

        std::fs::write(&path, "not an archive").unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let err = parse_inspect(
            "torrust-backup-a.tar.gz",
            &String::from_utf8_lossy(&out.stdout),
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_local_archive_is_classified_before_it_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = make_archive(dir.path(), &[("tracker.db", "SQLite format 3")]);
        assert_eq!(
            peek_local(&path).await.unwrap(),
            ArchiveDatabase::Sqlite {
                file: "database/tracker.db".into(),
                companions: vec![]
            }
        );
        std::fs::write(&path, "not gzip").unwrap();
        let err = peek_local(&path).await.unwrap_err();
        assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
    }

    #[test]
    fn the_sqlite_script_swaps_the_files_and_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let archive = make_archive(
            dir.path(),
            &[
                ("old-name.db", "restored"),
                ("old-name.db-journal", "hot journal"),
            ],
        );
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        let db = lib.join("tracker.db");
        std::fs::write(&db, "current").unwrap();
        std::fs::write(lib.join("tracker.db-wal"), "current wal").unwrap();
        // chown needs root: run the script with chown as a no-op.
        let script = sqlite_script(
            archive.to_str().unwrap(),
            "database/old-name.db",
            db.to_str().unwrap(),
        )
        .replace("chown ", "true ");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "restored");
        assert_eq!(
            std::fs::read_to_string(lib.join("tracker.db-journal")).unwrap(),
            "hot journal"
        );
        assert!(
            !lib.join("tracker.db-wal").exists(),
            "the old WAL is not the new one's"
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let kept = stdout.trim().strip_prefix("--kept ").unwrap();
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "current");
        assert_eq!(
            std::fs::read_to_string(format!("{kept}-wal")).unwrap(),
            "current wal"
        );
        // Nothing else is left in the directory.
        let names: Vec<String> = std::fs::read_dir(&lib)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn the_mysql_script_is_valid_shell_and_keeps_the_password_in_the_container() {
        let s = mysql_script("docker-compose", "/opt/torrust/storage/backup/x.tar.gz");
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(out.status.success(), "{s}");
        assert!(
            s.contains("MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mysql -uroot'"),
            "{s}"
        );
        assert!(s.contains("label=com.docker.compose.service=mysql"), "{s}");
    }

    #[tokio::test]
    async fn a_failed_stop_or_import_is_a_restore_failure() {
        let host = FakeHost::new();
        host.reply("stop tracker", [Reply::fail(1, "")]);
        let err = stop_tracker(&host, "docker-compose").await.unwrap_err();
        assert!(matches!(err, BackupError::RestoreFailed { .. }), "{err}");
        host.reply(
            "mysqladmin",
            [Reply::fail(1, "ERROR 1064 (42000) at line 3")],
        );
        let err = restore_mysql(&host, "docker-compose", "/x.tar.gz")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ERROR 1064"), "{err}");
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::RestoreFailed
        );
    }
}
