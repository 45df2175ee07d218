//! The SSH layer against a real OpenSSH server that each test starts on a loopback port.
//! Needs /usr/sbin/sshd and the test user: `sudo bash provisioning/ci/install-sshd-test-deps.sh`.

use crate::support::sshd;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sshd::{Agent, Sshd, TEST_USER, free_port, keygen, keygen_fingerprint, set_mode};
use tempfile::TempDir;
use torrust_tracker_deployer::secret::Secret;
use torrust_tracker_deployer::ssh::{
    Change, ConnectOptions, ExecOptions, ExitStatus, OutputSink, OutputStream, PASSPHRASE_ENV,
    PassphraseSource, Session, SshError, Target, UploadFile, known_hosts,
};

fn target(sshd: &Sshd, user: &str, key: &Path) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: user.into(),
        private_key: key.to_path_buf(),
        known_hosts: sshd.path().join("client/state/known_hosts"),
    }
}

/// Short timeouts, and nothing but the key file (no agent, variable or prompt).
fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(10),
        passphrase: PassphraseSource::none(),
        ..Default::default()
    }
}

fn keys_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("ssh-keys-")
        .tempdir()
        .unwrap()
}

/// sshd + an authorized ed25519 key for root + a connected session.
async fn root_session() -> (Sshd, TempDir, Session) {
    let sshd = Sshd::start();
    let keys = keys_dir();
    let key = keygen(keys.path(), "id_ed25519", "ed25519", "");
    sshd.authorize("root", &key);
    let session = Session::connect(&target(&sshd, "root", &key), &quick())
        .await
        .unwrap();
    (sshd, keys, session)
}

// ---------------------------------------------------------------------------------------------
// exec

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_reports_exit_codes_signals_and_output() {
    let (_sshd, _keys, s) = root_session().await;

    let ok = s.exec("echo out; echo err >&2").await.unwrap();
    assert_eq!(ok.status, ExitStatus::Code(0));
    assert_eq!(ok.stdout, b"out\n");
    assert_eq!(ok.stderr, b"err\n");
    assert!(ok.clone().check().is_ok());

    let three = s.exec("echo failing >&2; exit 3").await.unwrap();
    assert_eq!(three.status, ExitStatus::Code(3));
    assert_eq!(three.status.code(), Some(3));
    let e = three.check().unwrap_err();
    assert!(matches!(e, SshError::CommandFailed { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("exit code 3") && msg.contains("failing"),
        "{msg}"
    );

    let killed = s.exec("echo before; kill -9 $$").await.unwrap();
    assert_eq!(
        killed.status,
        ExitStatus::Signal {
            name: "KILL".into(),
            core_dumped: false
        }
    );
    assert_eq!(killed.stdout, b"before\n");
    assert!(
        killed
            .check()
            .unwrap_err()
            .to_string()
            .contains("killed by signal KILL")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_large_stdout_and_stderr_at_once_without_deadlock() {
    let (_sshd, _keys, s) = root_session().await;
    const OUT: usize = 12 * 1024 * 1024;
    const ERR: usize = 11 * 1024 * 1024;
    let cmd = format!(
        "(yes 0123456789abcdef | head -c {OUT}) & (yes ERRORLINE | head -c {ERR} >&2) & wait"
    );
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(180), s.exec(&cmd))
        .await
        .expect("large output deadlocked")
        .unwrap();
    eprintln!(
        "large output: {} + {} bytes in {:?}",
        out.stdout.len(),
        out.stderr.len(),
        start.elapsed()
    );
    assert!(out.success());
    assert_eq!(out.stdout.len(), OUT);
    assert_eq!(out.stderr.len(), ERR);
    assert!(out.stdout.starts_with(b"0123456789abcdef\n0123"));
    assert!(
        out.stderr
            .chunks(10)
            .take(1000)
            .all(|c| c == b"ERRORLINE\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_large_stdin_while_reading_large_output() {
    let (_sshd, _keys, s) = root_session().await;
    // `cat` echoes 12 MiB back while we still send: needs stdin and stdout to flow together.
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        s.exec_with("cat", ExecOptions::new().stdin_bytes(data.clone())),
    )
    .await
    .expect("stdin/stdout deadlocked")
    .unwrap();
    eprintln!("12 MiB through cat in {:?}", start.elapsed());
    assert!(out.success());
    assert!(
        out.stdout == data,
        "echoed data differs ({} bytes)",
        out.stdout.len()
    );

    // A reader as stdin.
    let reader = std::io::Cursor::new(b"line one\nline two\n".to_vec());
    let out = s
        .exec_with("wc -l", ExecOptions::new().stdin_reader(reader))
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "2");

    // A failing local input stops the command and is reported, not taken for end-of-file.
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        s.exec_with(
            "cat >/dev/null; echo finished",
            ExecOptions::new().stdin_reader(FailingReader(3)),
        ),
    )
    .await
    .expect("a failing stdin hung the command")
    .unwrap_err();
    assert!(matches!(err, SshError::Stdin { .. }), "{err:?}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(
        s.exec("true").await.unwrap().success(),
        "the session survives"
    );

    // Without stdin, a reading command sees end-of-file rather than hanging.
    let out = tokio::time::timeout(Duration::from_secs(10), s.exec("cat; echo done"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.stdout, b"done\n");
}

/// Gives a few chunks, then fails.
struct FailingReader(usize);

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")));
        }
        self.0 -= 1;
        buf.put_slice(b"some input\n");
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hands_lines_to_the_sink_as_they_arrive() {
    let (_sshd, _keys, s) = root_session().await;
    let lines = Arc::new(Mutex::new(Vec::<(OutputStream, String, Instant)>::new()));
    let l = lines.clone();
    let sink: OutputSink = Arc::new(move |stream, line| {
        l.lock()
            .unwrap()
            .push((stream, line.to_string(), Instant::now()))
    });
    let start = Instant::now();
    let out = s
        .exec_with(
            "echo one; echo two >&2; sleep 1; printf 'three'",
            ExecOptions::new().sink(sink),
        )
        .await
        .unwrap();
    let end = Instant::now();
    assert!(out.success());
    let got = lines.lock().unwrap();
    let texts: Vec<(OutputStream, &str)> = got.iter().map(|(s, l, _)| (*s, l.as_str())).collect();
    assert!(texts.contains(&(OutputStream::Stdout, "one")));
    assert!(texts.contains(&(OutputStream::Stderr, "two")));
    assert_eq!(texts.last(), Some(&(OutputStream::Stdout, "three")));
    // "one" arrived before the command finished, not at the end.
    let one_at = got.iter().find(|(_, l, _)| l == "one").unwrap().2;
    assert!(
        end.duration_since(one_at) > Duration::from_millis(700),
        "lines were not streamed"
    );
    assert!(end.duration_since(start) >= Duration::from_secs(1));
}

/// The full name of a test of this module, as the test binary filters it (`ssh_engine::NAME`),
/// for tests that run another test of this binary in a child process.
fn test_name(name: &str) -> String {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |m| m.1);
    format!("{module}::{name}")
}

/// Set in the child process of the test below: where it writes the captured log.
const TRACING_CHILD_LOG: &str = "TORRUST_TEST_TRACING_CHILD_LOG";

/// Runs in a child process of this test binary, with a GLOBAL subscriber, as the deployer does.
///
/// Why not `tracing::subscriber::with_default` here: `tracing` caches each callsite's interest
/// process-wide, the first time the callsite is hit. While exactly one scoped subscriber exists,
/// that interest is computed from the default of whichever thread hits the callsite first, so
/// another test running an exec on another thread, with no subscriber, fixes the exec's
/// `enabled!(DEBUG)` at "never" for the whole process: the lines were not cut, and this test
/// failed now and then when run next to the others (it always passed alone). The deployer sets
/// one global subscriber before any exec, where every thread agrees, so no line is lost there.
#[test]
fn exec_logs_each_output_line_to_tracing_at_debug_on_target_ssh() {
    if let Some(path) = std::env::var_os(TRACING_CHILD_LOG) {
        exec_with_global_debug_subscriber(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("tracing.log");
    let name = test_name("exec_logs_each_output_line_to_tracing_at_debug_on_target_ssh");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--test-threads=1", "--include-ignored"])
        .env(TRACING_CHILD_LOG, &log_path)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child test failed:\n{}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle) && l.contains("stream="))
            .map(str::to_string)
    };
    let first = line("first-line").unwrap_or_else(|| panic!("no stdout line in:\n{log}"));
    assert!(
        first.contains("DEBUG") && first.contains("ssh:") && first.contains("stdout"),
        "{first}"
    );
    let second = line("second-line").unwrap_or_else(|| panic!("no stderr line in:\n{log}"));
    assert!(
        second.contains("stderr") && second.contains("127.0.0.1"),
        "{second}"
    ); // A download is logged as a command, never its contents (a downloaded `.env` holds secrets).
    assert!(
        log.lines()
            .any(|l| l.contains("exec: ") && l.contains("exec cat --")),
        "the download's command is not in:\n{log}"
    );
    assert!(
        !log.contains("downloaded-secret-line"),
        "a downloaded file's contents reached the log:\n{log}"
    );
}

fn exec_with_global_debug_subscriber(log_path: &Path) {
    let file = std::fs::File::create(log_path).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_sshd, _keys, s) = root_session().await;
        let out = s
            .exec("echo first-line; echo second-line >&2")
            .await
            .unwrap();
        assert!(out.success());
        let file = format!("/tmp/torrust-download-test-{}", std::process::id());
        let out = s
            // Written so that the command line does not hold the text itself.
            .exec(&format!(
                "printf '%s-%s\\n' downloaded secret-line > {file}"
            ))
            .await
            .unwrap();
        assert!(out.success());
        let host: &dyn torrust_tracker_deployer::host::Host = &s;
        let got = host.download(&file).await.unwrap();
        let _ = s.exec(&format!("rm -f {file}")).await;
        assert_eq!(got.as_deref(), Some(&b"downloaded-secret-line\n"[..]));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execs_share_one_connection() {
    let (sshd, _keys, s) = root_session().await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.exec(&format!("sleep 1; echo {i}")).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out.stdout_str().trim(), i.to_string());
    }
    let took = start.elapsed();
    eprintln!("8 concurrent 1 s commands took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "commands did not run concurrently: {took:?}"
    );
    assert_eq!(
        sshd.accepted_logins(),
        1,
        "expected one connection:\n{}",
        sshd.log()
    );
    s.close().await;
}

// ---------------------------------------------------------------------------------------------
// upload

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_detects_changes_applies_mode_and_owner_atomically() {
    let (_sshd, _keys, s) = root_session().await;
    let remote = tempfile::tempdir().unwrap();
    let dir = remote.path().join("etc/app"); // does not exist yet
    let a = dir.join("a.conf");
    let b = dir.join("b.conf");
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let files = vec![
        UploadFile::new(p(&a), "alpha\n", 0o640).owned_by("nobody", "nogroup"),
        UploadFile::new(p(&b), vec![0u8, 1, 2, 255], 0o600),
    ];

    // Created.
    let changes = s.upload(&files).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert!(
        changes.iter().all(|c| c.change == Change::Created),
        "{changes:?}"
    );
    assert_eq!(changes[0].remote_path, p(&a));
    assert_eq!(std::fs::read(&a).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(&b).unwrap(), [0u8, 1, 2, 255]);
    let ma = std::fs::metadata(&a).unwrap();
    assert_eq!(
        (ma.mode() & 0o7777, ma.uid(), ma.gid()),
        (0o640, 65534, 65534)
    );
    let mb = std::fs::metadata(&b).unwrap();
    assert_eq!((mb.mode() & 0o7777, mb.uid(), mb.gid()), (0o600, 0, 0));
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));

    // Unchanged: not rewritten (same inode, same mtime). Numeric ids match names too.
    let (ino_a, mtime_a) = (inode(&a), ma.mtime_nsec() + ma.mtime() * 1_000_000_000);
    let mut same = files.clone();
    same[0].owner = Some("65534".into());
    let changes = s.upload(&same).await.unwrap();
    assert!(
        changes.iter().all(|c| c.change == Change::Unchanged),
        "{changes:?}"
    );
    let ma2 = std::fs::metadata(&a).unwrap();
    assert_eq!(
        (inode(&a), ma2.mtime_nsec() + ma2.mtime() * 1_000_000_000),
        (ino_a, mtime_a)
    );

    // Only the mode differs: fixed in place and reported.
    let mut chmod = files.clone();
    chmod[0].mode = 0o644;
    let changes = s.upload(&chmod).await.unwrap();
    assert_eq!(changes[0].change, Change::Updated);
    assert_eq!(changes[1].change, Change::Unchanged);
    assert_eq!(std::fs::metadata(&a).unwrap().mode() & 0o7777, 0o644);
    assert_eq!(
        inode(&a),
        ino_a,
        "a metadata-only change must not rewrite the file"
    );

    // Only the owner differs.
    let mut chown = chmod.clone();
    chown[0].owner = Some("root".into());
    let changes = s.upload(&chown).await.unwrap();
    assert_eq!(changes[0].change, Change::Updated);
    assert_eq!(std::fs::metadata(&a).unwrap().uid(), 0);

    // New content: replaced by rename (new inode); a reader of the old file keeps the old one.
    let mut old_reader = std::fs::File::open(&a).unwrap();
    let mut changed = chown.clone();
    changed[0].contents = b"beta\n".to_vec();
    let changes = s.upload(&changed).await.unwrap();
    assert_eq!(changes[0].change, Change::Updated);
    assert_eq!(changes[1].change, Change::Unchanged);
    assert_eq!(std::fs::read(&a).unwrap(), b"beta\n");
    assert_ne!(inode(&a), ino_a);
    let mut old = String::new();
    std::io::Read::read_to_string(&mut old_reader, &mut old).unwrap();
    assert_eq!(old, "alpha\n");
    let ma = std::fs::metadata(&a).unwrap();
    assert_eq!((ma.mode() & 0o7777, ma.uid(), ma.gid()), (0o644, 0, 65534));
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));

    // Owner not given: an existing file keeps its owner and group when rewritten.
    std::os::unix::fs::chown(&b, Some(65534), Some(65534)).unwrap();
    let mut keep = changed.clone();
    keep[1].contents = b"new b".to_vec();
    let changes = s.upload(&keep).await.unwrap();
    assert_eq!(changes[1].change, Change::Updated);
    let mb = std::fs::metadata(&b).unwrap();
    assert_eq!(
        (mb.uid(), mb.gid(), mb.mode() & 0o7777),
        (65534, 65534, 0o600)
    );

    // A symlink at the path is replaced by the file.
    let link = dir.join("link.conf");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let changes = s
        .upload(&[UploadFile::new(p(&link), "own\n", 0o644)])
        .await
        .unwrap();
    assert_eq!(changes[0].change, Change::Updated);
    assert!(
        !std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&a).unwrap(), b"beta\n");

    // Bad input is refused before touching the host.
    let e = s
        .upload(&[UploadFile::new("relative/x", "", 0o644)])
        .await
        .unwrap_err();
    assert!(matches!(e, SshError::Upload { .. }), "{e}");
    let e = s
        .upload(&[UploadFile::new(p(&dir), "", 0o644)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_many_and_large_files_in_one_archive() {
    let (_sshd, _keys, s) = root_session().await;
    let remote = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    // Enough files with long paths that the list goes in several batches.
    let deep = "deep-directory-name-".repeat(5);
    let mut files: Vec<UploadFile> = (0..300)
        .map(|i| {
            let path = remote
                .path()
                .join(format!("d{}/{deep}/it's file {i}.txt", i % 3));
            UploadFile::new(path.to_str().unwrap(), format!("file {i}\n"), 0o644)
        })
        .collect();
    let long_dir = "x".repeat(120);
    let big_path = remote.path().join(&long_dir).join("big.bin");
    files.push(UploadFile::new(
        big_path.to_str().unwrap(),
        big.clone(),
        0o600,
    ));
    let start = Instant::now();
    let changes = s.upload(&files).await.unwrap();
    eprintln!("uploaded {} files in {:?}", files.len(), start.elapsed());
    assert!(changes.iter().all(|c| c.change == Change::Created));
    assert_eq!(std::fs::read(&big_path).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(remote.path().join(format!("d1/{deep}/it's file 4.txt"))).unwrap(),
        "file 4\n"
    );
    let start = Instant::now();
    let changes = s.upload(&files).await.unwrap();
    eprintln!(
        "checked {} unchanged files in {:?}",
        files.len(),
        start.elapsed()
    );
    assert!(changes.iter().all(|c| c.change == Change::Unchanged));
}

// ---------------------------------------------------------------------------------------------
// a non-root user with sudo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_user_runs_sudo_and_uploads_through_sudo() {
    sshd::require_test_user();
    let sshd = Sshd::start();
    let keys = keys_dir();
    let key = keygen(keys.path(), "id_user", "ed25519", "");
    sshd.authorize(TEST_USER, &key);
    let s = Session::connect(&target(&sshd, TEST_USER, &key), &quick())
        .await
        .unwrap();

    assert_eq!(
        s.exec("id -un").await.unwrap().stdout_str().trim(),
        TEST_USER
    );
    assert_eq!(s.sudo("id -u").await.unwrap().stdout_str().trim(), "0");
    assert!(s.sudo_command("true").starts_with("sudo -n sh -c "));
    let quoted = s.sudo("echo \"it's $((1 + 2))\"; exit 4").await.unwrap();
    assert_eq!(quoted.status, ExitStatus::Code(4));
    assert_eq!(quoted.stdout_str(), "it's 3\n");
    assert_eq!(quoted.command, "echo \"it's $((1 + 2))\"; exit 4");

    // A root-only directory: only sudo can write there.
    let remote = tempfile::tempdir().unwrap();
    set_mode(remote.path(), 0o700);
    let path = remote.path().join("secret.env");
    let file = UploadFile::new(path.to_str().unwrap(), "TOKEN=x\n", 0o600).owned_by("root", "root");
    assert_eq!(
        s.upload(std::slice::from_ref(&file)).await.unwrap()[0].change,
        Change::Created
    );
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));
    assert_eq!(
        s.upload(std::slice::from_ref(&file)).await.unwrap()[0].change,
        Change::Unchanged
    );
    let mut mine = file.clone();
    mine.owner = Some(TEST_USER.into());
    assert_eq!(s.upload(&[mine]).await.unwrap()[0].change, Change::Updated);
    assert_ne!(std::fs::metadata(&path).unwrap().uid(), 0);
}

// ---------------------------------------------------------------------------------------------
// host keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_is_pinned_then_a_changed_key_is_refused() {
    let mut sshd = Sshd::start();
    let keys = keys_dir();
    let key = keygen(keys.path(), "id_ed25519", "ed25519", "");
    sshd.authorize("root", &key);
    let t = target(&sshd, "root", &key);
    assert_eq!(t.pinned_fingerprint().unwrap(), None);

    let s = Session::connect(&t, &quick()).await.unwrap();
    let first = sshd.host_fingerprint();
    assert_eq!(s.host_key_fingerprint(), first);
    assert_eq!(
        t.pinned_fingerprint().unwrap().as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        known_hosts::pinned_fingerprint(&t.known_hosts, "127.0.0.1", sshd.port).unwrap(),
        Some(first.clone())
    );
    let text = std::fs::read_to_string(&t.known_hosts).unwrap();
    assert!(
        text.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
    assert_eq!(
        std::fs::metadata(&t.known_hosts)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    drop(s);

    // Same key again: accepted, nothing added.
    Session::connect(&t, &quick()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&t.known_hosts).unwrap(), text);

    // The host is "recreated" with a new key on the same address.
    sshd.restart_with_new_host_key();
    let second = sshd.host_fingerprint();
    assert_ne!(first, second);
    let start = Instant::now();
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(30),
        ..quick()
    };
    let err = Session::connect(&t, &opts).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a changed host key must not be retried"
    );
    match &err {
        SshError::HostKeyChanged {
            host,
            port,
            known_hosts,
            line,
            pinned_fingerprint,
            presented_fingerprint,
        } => {
            assert_eq!((host.as_str(), *port, *line), ("127.0.0.1", sshd.port, 1));
            assert_eq!(known_hosts, &t.known_hosts);
            assert_eq!(pinned_fingerprint, &first);
            assert_eq!(presented_fingerprint, &second);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    let msg = err.to_string();
    for needle in [
        &first,
        &second,
        &t.known_hosts.display().to_string(),
        "torrust-tracker-deployer destroy",
        "CHANGED",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    eprintln!("host key changed message: {msg}");
    assert_eq!(
        std::fs::read_to_string(&t.known_hosts).unwrap(),
        text,
        "the pin must stay"
    );

    // Forgetting the host (what destroy does) lets the new key be pinned.
    assert_eq!(t.forget_host_key().unwrap(), 1);
    assert_eq!(t.pinned_fingerprint().unwrap(), None);
    let s = Session::connect(&t, &quick()).await.unwrap();
    assert_eq!(s.host_key_fingerprint(), second);
    assert_eq!(t.pinned_fingerprint().unwrap(), Some(second));
}

// ---------------------------------------------------------------------------------------------
// connection and authentication failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_not_in_authorized_keys_is_rejected_with_user_key_and_fingerprint() {
    let sshd = Sshd::start();
    let keys = keys_dir();
    let good = keygen(keys.path(), "good", "ed25519", "");
    let wrong = keygen(keys.path(), "wrong", "ed25519", "");
    sshd.authorize("root", &good);
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(30),
        ..quick()
    };
    let start = Instant::now();
    let err = Session::connect(&target(&sshd, "root", &wrong), &opts)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "auth rejection must not be retried"
    );
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    let fp = keygen_fingerprint(&wrong);
    for needle in [
        "root@127.0.0.1",
        &wrong.display().to_string(),
        &fp,
        "authorized_keys",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    eprintln!("auth rejected message: {msg}");
    assert_eq!(sshd.log().matches("Accepted publickey").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_retried_until_the_deadline() {
    let keys = keys_dir();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let t = Target {
        host: "127.0.0.1".into(),
        port: free_port(),
        user: "root".into(),
        private_key: key,
        known_hosts: keys.path().join("known_hosts"),
    };
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(2),
        ..quick()
    };
    let start = Instant::now();
    let err = Session::connect(&t, &opts).await.unwrap_err();
    let took = start.elapsed();
    match &err {
        SshError::ConnectionRefused {
            attempts, elapsed, ..
        } => {
            assert!(*attempts >= 3, "{attempts} attempts");
            assert!(*elapsed >= Duration::from_millis(1000) && took < Duration::from_secs(5));
        }
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("connection refused") && msg.contains("sshd"),
        "{msg}"
    );
    eprintln!("refused message: {msg}");
    assert!(!t.known_hosts.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_and_is_retried() {
    // Accepts TCP but never speaks SSH, like a host behind a broken firewall/proxy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let keys = keys_dir();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let t = Target {
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        private_key: key,
        known_hosts: keys.path().join("known_hosts"),
    };
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(700),
        retry_deadline: Duration::from_secs(2),
        ..quick()
    };
    let err = Session::connect(&t, &opts).await.unwrap_err();
    match &err {
        SshError::Timeout { attempts, .. } => assert!(*attempts >= 2, "{attempts}"),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("firewall"), "{msg}");
    eprintln!("timeout message: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_retries_until_sshd_comes_up() {
    let port = free_port();
    let mut sshd = Sshd::prepare(port);
    let keys = keys_dir();
    let key = keygen(keys.path(), "id", "ed25519", "");
    sshd.authorize("root", &key);
    let t = target(&sshd, "root", &key);
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(20),
        ..quick()
    };
    let connecting = tokio::spawn(async move { Session::connect(&t, &opts).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sshd.launch();
    let s = connecting.await.unwrap().unwrap();
    assert_eq!(s.exec("echo up").await.unwrap().stdout, b"up\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_problems_fail_at_once_with_their_own_message() {
    let sshd = Sshd::start();
    let keys = keys_dir();
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(30),
        ..quick()
    };

    // Missing file.
    let missing = keys.path().join("no_such_key");
    let err = Session::connect(&target(&sshd, "root", &missing), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::KeyUnreadable { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()));
    eprintln!("unreadable key message: {err}");

    // A directory instead of a file.
    let err = Session::connect(&target(&sshd, "root", keys.path()), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::KeyUnreadable { .. }), "{err:?}");

    // Not a key.
    let junk = keys.path().join("junk");
    std::fs::write(&junk, "this is not a key\n").unwrap();
    let err = Session::connect(&target(&sshd, "root", &junk), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::KeyUnsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("ssh-keygen -t ed25519"));
    eprintln!("unsupported key message: {err}");

    // Passphrase-protected, with no way to unlock it.
    let enc = keygen(keys.path(), "enc", "ed25519", "s3cret pass");
    sshd.authorize("root", &enc);
    let start = Instant::now();
    let err = Session::connect(&target(&sshd, "root", &enc), &opts)
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, SshError::KeyEncryptedNoPassphrase { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    for needle in [
        &enc.display().to_string(),
        &keygen_fingerprint(&enc),
        "ssh-add",
        PASSPHRASE_ENV,
        "passphrase-protected",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    eprintln!("encrypted key message: {msg}");

    // Same, with the default sources but none available (no agent socket, unset variable).
    let none_there = ConnectOptions {
        passphrase: PassphraseSource {
            agent_socket: Some(keys.path().join("no-agent.sock")),
            env_var: Some("TORRUST_SSH_TEST_UNSET_VARIABLE".into()),
            prompt: false,
            ..PassphraseSource::default()
        },
        ..opts.clone()
    };
    let err = Session::connect(&target(&sshd, "root", &enc), &none_there)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no-agent.sock") && msg.contains("TORRUST_SSH_TEST_UNSET_VARIABLE"),
        "{msg}"
    );

    // A wrong passphrase.
    let wrong = ConnectOptions {
        passphrase: PassphraseSource {
            passphrase: Some(Secret::new("not it")),
            ..PassphraseSource::none()
        },
        ..opts.clone()
    };
    let err = Session::connect(&target(&sshd, "root", &enc), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::WrongPassphrase { .. }), "{err:?}");

    // The right one, given directly.
    let right = ConnectOptions {
        passphrase: PassphraseSource {
            passphrase: Some(Secret::new("s3cret pass")),
            ..PassphraseSource::none()
        },
        ..opts
    };
    let s = Session::connect(&target(&sshd, "root", &enc), &right)
        .await
        .unwrap();
    assert!(s.exec("true").await.unwrap().success());
}

// ---------------------------------------------------------------------------------------------
// key types and passphrase sources

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_keys_authenticate() {
    let sshd = Sshd::start();
    let keys = keys_dir();
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = keygen(keys.path(), &format!("id_{kind}"), kind, "");
        sshd.authorize("root", &key);
        let s = Session::connect(&target(&sshd, "root", &key), &quick())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(s.exec("echo ok").await.unwrap().stdout, b"ok\n", "{kind}");
    }
    let log = sshd.log();
    for alg in ["ED25519", "ECDSA", "RSA"] {
        assert!(
            log.contains("Accepted publickey for root from 127.0.0.1")
                && log.contains(&format!("ssh2: {alg} SHA256:")),
            "no {alg} login in:\n{log}"
        );
    }
    // (OpenSSH >= 8.8 refuses SHA-1 `ssh-rsa` signatures, so the RSA login used rsa-sha2-*.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_protected_keys_work_through_ssh_agent() {
    let sshd = Sshd::start();
    let keys = keys_dir();
    let agent = Agent::start();
    for kind in ["ed25519", "rsa"] {
        let key = keygen(keys.path(), &format!("enc_{kind}"), kind, "agent pass");
        sshd.authorize("root", &key);
        agent.add(&key, "agent pass");
        let opts = ConnectOptions {
            passphrase: PassphraseSource {
                agent: true,
                agent_socket: Some(agent.socket.clone()),
                ..PassphraseSource::none()
            },
            ..quick()
        };
        let s = Session::connect(&target(&sshd, "root", &key), &opts)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            s.exec("echo via agent").await.unwrap().stdout,
            b"via agent\n"
        );
    }
    // A key the agent does not hold, and a key the server does not accept, through the agent.
    let other = keygen(keys.path(), "enc_other", "ed25519", "x");
    agent.add(&other, "x");
    let opts = ConnectOptions {
        passphrase: PassphraseSource {
            agent: true,
            agent_socket: Some(agent.socket.clone()),
            ..PassphraseSource::none()
        },
        ..quick()
    };
    let err = Session::connect(&target(&sshd, "root", &other), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SshError::AuthRejected {
                via_agent: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("through ssh-agent"));
    let not_held = keygen(keys.path(), "enc_not_held", "ed25519", "y");
    let err = Session::connect(&target(&sshd, "root", &not_held), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::KeyEncryptedNoPassphrase { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not hold it"), "{err}");
}

/// Runs in a child process (see the test below) so that setting the environment variable
/// affects no other test. Does nothing when run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_connects_with_default_options() {
    let Ok(spec) = std::env::var("SSH_ENGINE_TEST_CHILD") else {
        return;
    };
    let mut it = spec.split('\n');
    let t = Target {
        host: "127.0.0.1".into(),
        port: it.next().unwrap().parse().unwrap(),
        user: it.next().unwrap().into(),
        private_key: it.next().unwrap().into(),
        known_hosts: it.next().unwrap().into(),
    };
    let opts = ConnectOptions {
        retry_deadline: Duration::from_secs(10),
        ..Default::default()
    };
    match Session::connect(&t, &opts).await {
        Ok(s) => println!(
            "CHILD-OK {}",
            s.exec("echo env").await.unwrap().stdout_str().trim()
        ),
        Err(e) => println!("CHILD-ERR {e}"),
    }
}

fn run_child(sshd: &Sshd, key: &Path, env: &[(&str, &str)]) -> String {
    let spec = format!(
        "{}\nroot\n{}\n{}",
        sshd.port,
        key.display(),
        sshd.path().join("child_known_hosts").display()
    );
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        &test_name("child_process_connects_with_default_options"),
        "--exact",
        "--nocapture",
    ])
    .env("SSH_ENGINE_TEST_CHILD", spec)
    .env_remove("SSH_AUTH_SOCK")
    .env_remove(PASSPHRASE_ENV)
    .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_from_the_environment_variable_and_agent_from_ssh_auth_sock() {
    let sshd = Sshd::start();
    let keys = keys_dir();
    let key = keygen(keys.path(), "enc", "ecdsa", "env pass");
    sshd.authorize("root", &key);

    let out = run_child(&sshd, &key, &[(PASSPHRASE_ENV, "env pass")]);
    assert!(out.contains("CHILD-OK env"), "{out}");

    let out = run_child(&sshd, &key, &[(PASSPHRASE_ENV, "wrong")]);
    assert!(
        out.contains("CHILD-ERR") && out.contains("does not decrypt"),
        "{out}"
    );

    // Nothing set, stdin not a terminal: the actionable error, no hang.
    let out = run_child(&sshd, &key, &[]);
    assert!(
        out.contains("CHILD-ERR") && out.contains("passphrase-protected"),
        "{out}"
    );
    assert!(out.contains("standard input is not a terminal"), "{out}");

    // SSH_AUTH_SOCK is honoured by default.
    let agent = Agent::start();
    agent.add(&key, "env pass");
    let out = run_child(
        &sshd,
        &key,
        &[("SSH_AUTH_SOCK", agent.socket.to_str().unwrap())],
    );
    assert!(out.contains("CHILD-OK env"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_from_the_terminal_prompt_when_stdin_is_a_terminal() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    assert!(
        Path::new("/usr/bin/script").exists(),
        "`script` (util-linux) is needed to give the child a terminal"
    );
    let sshd = Sshd::start();
    let keys = keys_dir();
    let key = keygen(keys.path(), "enc_tty", "ed25519", "tty pass");
    sshd.authorize("root", &key);
    let spec = format!(
        "{}\nroot\n{}\n{}",
        sshd.port,
        key.display(),
        sshd.path().join("tty_known_hosts").display()
    );
    // `script` runs the child on a pseudo-terminal and forwards our stdin to it.
    let exe = std::env::current_exe().unwrap();
    let inner = format!(
        "{} {} --exact --nocapture",
        exe.display(),
        test_name("child_process_connects_with_default_options")
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("SSH_ENGINE_TEST_CHILD", spec)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove(PASSPHRASE_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    // Typed ahead: the terminal keeps the line until the prompt reads it.
    stdin.write_all(b"tty pass\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the prompt test hung");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let out = reader.join().unwrap();
    assert!(out.contains("Passphrase for SSH key"), "{out}");
    assert!(out.contains("CHILD-OK env"), "{out}");
}
