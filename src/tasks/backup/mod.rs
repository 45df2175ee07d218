//! The backup archives on the host: run the backup job now, list the archives and their
//! checksums ([`run_job`], [`list`], [`checksums`]); copy them to this machine and back
//! ([`copy`]); restore the database of one ([`restore`]).
//!
//! The job itself is the script the stack renders (`stack/backup.rs`, installed by `release` at
//! [`layout::BACKUP_SCRIPT`] when the environment has a `backup` section): `backup ENV` runs
//! that very file, the one cron runs, and appends its output to the job's log like cron does.
//! Archives are `torrust-backup-<UTC time>.tar.gz` in [`layout::BACKUP_DIR`] (0700, files 0600).
//!
//! Every read is one script printing sections (`--rc 0`, `--archive`, ...) that a pure parser
//! reads, so the decisions are unit-tested without a host.

pub mod copy;
mod error;
pub mod restore;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::BackupError;

use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::layout;

/// The step that runs the job.
pub const RUN: &str = "run backup job";

/// The prefix and suffix of every archive the job writes.
const PREFIX: &str = "torrust-backup-";
const SUFFIX: &str = ".tar.gz";

/// An archive on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    /// The file name, e.g. `torrust-backup-20261130T030000Z.tar.gz`.
    pub name: String,
    /// Where it is on the host.
    pub path: String,
    pub size: u64,
    /// When it was last written (the job writes it once).
    pub modified: DateTime<Utc>,
    /// Its sha256, computed on the host, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Whether `name` is an archive name: `torrust-backup-` then letters, digits, `.`, `_` or
/// `-`, then `.tar.gz`. Nothing else is looked up on the host (no path, no quoting surprise).
pub fn valid_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .is_some_and(|middle| {
            !middle.is_empty()
                && middle
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// The path of the archive `name` on the host.
pub fn host_path(name: &str) -> String {
    format!("{}/{name}", layout::BACKUP_DIR)
}

/// Checks an archive name given on the command line.
pub fn check_name(name: &str) -> Result<(), BackupError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(BackupError::BadName {
            name: name.to_string(),
        })
    }
}

/// Parses `SIZE MTIME NAME` lines.
fn parse_stat(line: &str) -> Option<Archive> {
    let mut f = line.splitn(3, ' ');
    let size = f.next()?.parse().ok()?;
    let mtime: i64 = f.next()?.parse().ok()?;
    let name = f.next()?.to_string();
    valid_name(&name).then(|| Archive {
        path: host_path(&name),
        name,
        size,
        modified: DateTime::from_timestamp(mtime, 0).unwrap_or_default(),
        sha256: None,
    })
}

/// Parses a `sha256sum` line: `HEX  NAME`.
fn parse_sum(line: &str) -> Option<(String, String)> {
    let (sum, name) = line.split_once("  ")?;
    let ok = sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| (sum.to_ascii_lowercase(), name.to_string()))
}

/// Runs the job as cron does (root, output appended to its log), then prints the archive it
/// made (its `last-success`): `--rc N`, `--archive` with a stat line and a checksum line,
/// `--output` and the job's output. `--not-installed` when the script is not on the host.
pub fn run_script() -> String {
    format!(
        "if [ ! -x {script} ]; then echo --not-installed; exit 0; fi\n\
         rc=0\n\
         out=$({script} 2>&1) || rc=$?\n\
         printf '%s\\n' \"$out\" >>{log}\n\
         echo \"--rc $rc\"\n\
         if [ \"$rc\" = 0 ] && cd {dir} && n=$(cat last-success); then\n\
           echo --archive\n\
           stat -c '%s %Y %n' -- \"$n\" && sha256sum -- \"$n\"\n\
         fi\n\
         echo --output\n\
         printf '%s\\n' \"$out\"\n",
        script = shell_quote(layout::BACKUP_SCRIPT),
        log = shell_quote(layout::BACKUP_LOG),
        dir = shell_quote(layout::BACKUP_DIR),
    )
}

/// What [`run_script`] printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    NotInstalled,
    /// The job's exit code and output.
    Failed {
        code: i64,
        output: String,
    },
    Made {
        archive: Archive,
        output: String,
    },
}

/// Parses [`run_script`]'s output.
pub fn parse_run(text: &str) -> Result<JobOutcome, String> {
    if text.lines().next() == Some("--not-installed") {
        return Ok(JobOutcome::NotInstalled);
    }
    let (head, output) = match text.split_once("\n--output\n") {
        Some((h, o)) => (h, o.trim_end().to_string()),
        None => (text.trim_end_matches("\n--output"), String::new()),
    };
    let mut lines = head.lines();
    let code: i64 = lines
        .next()
        .and_then(|l| l.strip_prefix("--rc "))
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| format!("unexpected output of the backup job's wrapper: {text:?}"))?;
    if code != 0 {
        return Ok(JobOutcome::Failed { code, output });
    }
    if lines.next() != Some("--archive") {
        return Err(format!(
            "the backup job succeeded but {}/last-success names no archive",
            layout::BACKUP_DIR
        ));
    }
    let stat = lines.next().and_then(parse_stat);
    let sum = lines.next().and_then(parse_sum);
    match (stat, sum) {
        (Some(mut archive), Some((sha, name))) if name == archive.name => {
            archive.sha256 = Some(sha);
            Ok(JobOutcome::Made { archive, output })
        }
        _ => Err(format!(
            "cannot read the archive the backup job made from: {head:?}"
        )),
    }
}

/// Runs the backup job now, and returns the archive it made, with its checksum.
pub async fn run_job(host: &dyn Host) -> Result<(Archive, String), BackupError> {
    let out = host.sudo(&run_script()).await?.check()?;
    match parse_run(&out.stdout_str()).map_err(BackupError::Unexpected)? {
        JobOutcome::NotInstalled => Err(BackupError::NotInstalled),
        JobOutcome::Failed { code, output } => Err(BackupError::JobFailed { code, output }),
        JobOutcome::Made { archive, output } => Ok((archive, output)),
    }
}

/// The archives on the host, oldest first, and the newest the job completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub archives: Vec<Archive>,
    /// The job's `last-success`: the archive its last successful run wrote.
    pub last_success: Option<String>,
}

/// Lists the archives (`SIZE MTIME NAME` each), then `--last` and the job's `last-success`.
pub fn list_script() -> String {
    format!(
        "cd {dir} 2>/dev/null || exit 0\n\
         for f in {PREFIX}*{SUFFIX}; do if [ -f \"$f\" ]; then stat -c '%s %Y %n' -- \"$f\"; fi; done\n\
         echo --last\n\
         cat last-success 2>/dev/null || true\n",
        dir = shell_quote(layout::BACKUP_DIR),
    )
}

/// Parses [`list_script`]'s output.
pub fn parse_list(text: &str) -> Listing {
    let (files, last) = text.split_once("--last\n").unwrap_or((text, ""));
    let mut archives: Vec<Archive> = files.lines().filter_map(parse_stat).collect();
    archives.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    let last = last.trim();
    Listing {
        last_success: valid_name(last).then(|| last.to_string()),
        archives,
    }
}

/// The archives on the host.
pub async fn list(host: &dyn Host) -> Result<Listing, BackupError> {
    let out = host.sudo(&list_script()).await?.check()?;
    Ok(parse_list(&out.stdout_str()))
}

/// The sha256 of each named archive, computed on the host (absent ones are left out).
pub async fn checksums(
    host: &dyn Host,
    names: &[String],
) -> Result<BTreeMap<String, String>, BackupError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut script = format!("cd {} || exit 0\n", shell_quote(layout::BACKUP_DIR));
    for name in names {
        let n = shell_quote(name);
        let _ = writeln!(script, "if [ -f {n} ]; then sha256sum -- {n}; fi");
    }
    let out = host.sudo(&script).await?.check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(parse_sum)
        .map(|(sum, name)| (name, sum))
        .collect())
}

/// Hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn archive_names_are_the_jobs_and_nothing_else() {
        assert!(valid_name("torrust-backup-20261130T030000Z.tar.gz"));
        assert!(valid_name("torrust-backup-uploaded-0123abcd.tar.gz"));
        for bad in [
            "torrust-backup-.tar.gz",
            "torrust-backup-a/b.tar.gz",
            "../torrust-backup-x.tar.gz",
            "torrust-backup-x.tar",
            "torrust-backup-x y.tar.gz",
            "torrust-backup-x'.tar.gz",
            "other.tar.gz",
            "",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(matches!(
            check_name("x/../y"),
            Err(BackupError::BadName { .. })
        ));
    }

    #[test]
    fn a_job_run_is_parsed() {
        let made = format!(
            "--rc 0\n--archive\n1234 1764471600 torrust-backup-20251130T030000Z.tar.gz\n\
             {SHA}  torrust-backup-20251130T030000Z.tar.gz\n--output\nline 1\nline 2\n"
        );
        let JobOutcome::Made { archive, output } = parse_run(&made).unwrap() else {
            panic!("not made")
        };
        assert_eq!(archive.name, "torrust-backup-20251130T030000Z.tar.gz");
        assert_eq!(
            archive.path,
            "/opt/torrust/storage/backup/torrust-backup-20251130T030000Z.tar.gz"
        );
        assert_eq!(archive.size, 1234);
        assert_eq!(archive.sha256.as_deref(), Some(SHA));
        assert_eq!(archive.modified.to_rfc3339(), "2025-11-30T03:00:00+00:00");
        assert_eq!(output, "line 1\nline 2");

        assert_eq!(
            parse_run("--rc 1\n--output\nanother backup is running\n").unwrap(),
            JobOutcome::Failed {
                code: 1,
                output: "another backup is running".into()
            }
        );
        assert_eq!(
            parse_run("--not-installed\n").unwrap(),
            JobOutcome::NotInstalled
        );
        assert!(parse_run("--rc 0\n--output\n").is_err());
        assert!(parse_run("garbage").is_err());
    }

    #[test]
    fn the_scripts_are_valid_shell() {
        for script in [run_script(), list_script()] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}");
        }
        assert!(run_script().contains("/opt/torrust/bin/backup.sh 2>&1"));
        assert!(run_script().contains(">>/var/log/torrust-backup.log"));
    }

    #[test]
    fn the_list_script_lists_only_archives() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "torrust-backup-20251130T030000Z.tar.gz",
            "torrust-backup-20251201T030000Z.tar.gz",
            ".torrust-backup-20251202T030000Z.tar.gz.tmp",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::write(
            dir.path().join("last-success"),
            "torrust-backup-20251201T030000Z.tar.gz\n",
        )
        .unwrap();
        let script = list_script().replace(layout::BACKUP_DIR, dir.path().to_str().unwrap());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let listing = parse_list(&String::from_utf8(out.stdout).unwrap());
        let names: Vec<&str> = listing.archives.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{listing:?}");
        assert!(names.contains(&"torrust-backup-20251201T030000Z.tar.gz"));
        assert_eq!(listing.archives[0].size, 38);
        assert_eq!(
            listing.last_success.as_deref(),
            Some("torrust-backup-20251201T030000Z.tar.gz")
        );
        // No directory: nothing, and no failure.
        let script = list_script().replace(layout::BACKUP_DIR, "/nonexistent/backup");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            parse_list(&String::from_utf8(out.stdout).unwrap()).archives,
            []
        );
    }

    #[tokio::test]
    async fn running_the_job_reports_its_archive_or_its_failure() {
        let host = FakeHost::new();
        host.reply(
            "backup.sh",
            [
                Reply::ok(format!(
                    "--rc 0\n--archive\n10 1764471600 torrust-backup-a.tar.gz\n\
                     {SHA}  torrust-backup-a.tar.gz\n--output\nwritten\n"
                )),
                Reply::ok("--rc 1\n--output\nERROR: mysqldump wrote nothing\n"),
                Reply::ok("--not-installed\n"),
            ],
        );
        let (archive, output) = run_job(&host).await.unwrap();
        assert_eq!(
            (archive.name.as_str(), output.as_str()),
            ("torrust-backup-a.tar.gz", "written")
        );
        let err = run_job(&host).await.unwrap_err();
        assert!(
            matches!(err, BackupError::JobFailed { code: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("mysqldump wrote nothing"), "{err}");
        let err = run_job(&host).await.unwrap_err();
        assert!(matches!(err, BackupError::NotInstalled), "{err}");
    }

    #[tokio::test]
    async fn checksums_are_read_for_the_named_archives() {
        let host = FakeHost::new();
        host.reply(
            "sha256sum",
            [Reply::ok(format!("{SHA}  torrust-backup-a.tar.gz\n"))],
        );
        let sums = checksums(&host, &["torrust-backup-a.tar.gz".into()])
            .await
            .unwrap();
        assert_eq!(sums["torrust-backup-a.tar.gz"], SHA);
        assert!(checksums(&host, &[]).await.unwrap().is_empty());
        assert_eq!(host.commands().len(), 1);
    }
}
