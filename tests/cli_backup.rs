//! `backup` and `restore` through the real binary, where no host is needed: usage, unknown
//! environments, environments without a host, and archives refused before anything is sent.
//! With a host, on LXD: tests/lxd_backup.rs.

use crate::common;

use common::{Sandbox, minimal};

fn created(sb: &Sandbox, name: &str) {
    let file = sb.env_file(&format!("{name}.json"), &minimal(name));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
}

fn kind(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let doc = sb.run(&all).code(2).json();
    doc["error"]["kind"].as_str().unwrap().to_string()
}

#[test]
fn backup_needs_an_environment_with_a_host() {
    let sb = Sandbox::new();
    assert_eq!(kind(&sb, &["backup", "nope"]), "not_found");
    created(&sb, "alpha");
    let run = sb.run(&["backup", "alpha"]).code(2);
    assert!(run.stderr.contains("has no host"), "{run:?}");
    assert!(run.stderr.contains("deploy alpha"), "{run:?}");
    assert_eq!(kind(&sb, &["backup", "alpha", "--list"]), "refused");
    assert_eq!(
        kind(&sb, &["backup", "alpha", "--download", "out"]),
        "refused"
    );
    assert!(!sb.path().join("out").exists());
}

#[test]
fn backup_options_are_checked_before_anything_else() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    // --archive only with --download; --list and --download exclude each other.
    let run = sb.run(&["backup", "alpha", "--archive", "torrust-backup-x.tar.gz"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--download"), "{run:?}");
    let run = sb.run(&["backup", "alpha", "--list", "--download", "d"]);
    assert_eq!(run.code, 2, "{run:?}");
    // An archive name is a name, never a path.
    let run = sb
        .run(&[
            "-o",
            "json",
            "backup",
            "alpha",
            "--download",
            "d",
            "--archive",
            "../x",
        ])
        .code(2);
    assert_eq!(run.json()["error"]["kind"], "usage");
    assert!(
        run.stderr.contains("is not a backup archive name"),
        "{run:?}"
    );
}

#[test]
fn restore_refuses_what_is_not_an_archive_before_connecting() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    let run = sb
        .run(&[
            "-o",
            "json",
            "restore",
            "alpha",
            "--from",
            "/nowhere/b.tar.gz",
        ])
        .code(2);
    assert_eq!(run.json()["error"]["kind"], "not_found");
    assert!(run.stderr.contains("no such file"), "{run:?}");

    let garbage = sb.path().join("torrust-backup-garbage.tar.gz");
    std::fs::write(&garbage, "not gzip").unwrap();
    let run = sb
        .run(&[
            "-o",
            "json",
            "restore",
            "alpha",
            "--from",
            garbage.to_str().unwrap(),
        ])
        .code(2);
    assert_eq!(run.json()["error"]["kind"], "archive_invalid", "{run:?}");
    assert!(run.stderr.contains("not a readable .tar.gz"), "{run:?}");

    // A real archive of the job's shape still needs a released environment.
    let src = sb.path().join("src");
    std::fs::create_dir_all(src.join("database")).unwrap();
    std::fs::write(src.join("database/tracker.db"), "SQLite format 3\0").unwrap();
    let archive = sb.path().join("torrust-backup-ok.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(&archive)
        .arg("database")
        .status()
        .unwrap();
    assert!(status.success());
    let run = sb
        .run(&[
            "-o",
            "json",
            "restore",
            "alpha",
            "--from",
            archive.to_str().unwrap(),
        ])
        .code(2);
    assert_eq!(run.json()["error"]["kind"], "refused", "{run:?}");
}

#[test]
fn a_maintenance_lock_refuses_restore_but_not_backup() {
    let sb = Sandbox::new();
    created(&sb, "alpha");
    sb.run(&["lock", "alpha", "acquire", "-m", "moving the database"])
        .ok();
    let archive = sb.path().join("torrust-backup-x.tar.gz");
    let src = sb.path().join("src");
    std::fs::create_dir_all(src.join("database")).unwrap();
    std::fs::write(src.join("database/tracker.db"), "SQLite format 3\0").unwrap();
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(&archive)
        .arg("database")
        .status()
        .unwrap();
    assert!(status.success());
    let from = archive.to_str().unwrap();
    assert_eq!(
        kind(&sb, &["restore", "alpha", "--from", from]),
        "maintenance_locked"
    );
    // backup reads: it is not refused for the lock (here: for having no host).
    assert_eq!(kind(&sb, &["backup", "alpha"]), "refused");
    assert_eq!(kind(&sb, &["backup", "alpha", "--list"]), "refused");
}
