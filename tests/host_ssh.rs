//! The `Host` trait over SSH (`Session`), against a real OpenSSH server on a loopback port
//! (tests/support/sshd.rs), as the non-root test user through `sudo -n`: what tasks use —
//! root commands, streamed input, compare without change, upload, download, and a TCP
//! connection from the host (port forward).
//! Needs /usr/sbin/sshd and the test user: `sudo bash provisioning/ci/install-sshd-test-deps.sh`.

use crate::support::sshd;

use std::time::Duration;

use sshd::{Sshd, TEST_USER, keygen, require_test_user};
use torrust_tracker_deployer::host::Host;
use torrust_tracker_deployer::ssh::{
    Change, ConnectOptions, PassphraseSource, Session, Stdin, Target, UploadFile,
};

async fn session(sshd: &Sshd, keys: &tempfile::TempDir) -> Session {
    let key = keygen(keys.path(), "id_ed25519", "ed25519", "");
    sshd.authorize(TEST_USER, &key);
    let target = Target {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: TEST_USER.into(),
        private_key: key,
        known_hosts: keys.path().join("known_hosts"),
    };
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(10),
        passphrase: PassphraseSource::none(),
        ..Default::default()
    };
    Session::connect(&target, &options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_a_host_for_the_tasks() {
    require_test_user();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let s = session(&sshd, &keys).await;
    let host: &dyn Host = &s;
    assert_eq!(
        host.display(),
        format!("{TEST_USER}@127.0.0.1:{}", sshd.port)
    );

    assert_eq!(
        host.exec("id -un").await.unwrap().stdout_str().trim(),
        TEST_USER
    );
    assert_eq!(
        host.sudo("id -un").await.unwrap().stdout_str().trim(),
        "root"
    );
    let reader = std::io::Cursor::new(vec![7u8; 300_000]);
    let out = host
        .sudo_stdin("wc -c", Stdin::Reader(Box::new(reader)), None)
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "300000");

    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("etc/app.conf")
        .to_string_lossy()
        .into_owned();
    let files = [UploadFile::new(path.clone(), "v1\n", 0o640).owned_by("0", "0")];
    assert_eq!(
        host.compare(&files).await.unwrap()[0].change,
        Change::Created
    );
    assert_eq!(
        host.download(&path).await.unwrap(),
        None,
        "compare wrote the file"
    );
    assert_eq!(
        host.upload(&files).await.unwrap()[0].change,
        Change::Created
    );
    assert_eq!(
        host.compare(&files).await.unwrap()[0].change,
        Change::Unchanged
    );
    assert_eq!(host.download(&path).await.unwrap(), Some(b"v1\n".to_vec()));

    let changed = [UploadFile::new(path.clone(), "v2\n", 0o640).owned_by("0", "0")];
    assert_eq!(
        host.compare(&changed).await.unwrap()[0].change,
        Change::Updated
    );
    assert_eq!(host.download(&path).await.unwrap(), Some(b"v1\n".to_vec()));

    // A directory is not a file to download: an error, not "absent".
    let err = host
        .download(&dir.path().to_string_lossy())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cat"), "{err}");
    // The directory root created: removed as root, or the temporary directory stays behind.
    let etc = dir.path().join("etc");
    host.sudo(&format!("rm -rf -- '{}'", etc.display()))
        .await
        .unwrap()
        .check()
        .unwrap();
    s.close().await;
}

/// `download_to` streams a file bigger than one SSH window into a writer, from an offset, with
/// the bytes as the step's progress; an absent file writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_to_streams_a_file_from_an_offset() {
    use torrust_tracker_deployer::events::{self, Events, Progress, Recorder, What};
    require_test_user();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let s = session(&sshd, &keys).await;
    let host: &dyn Host = &s;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.tar.gz");
    let contents: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &contents).unwrap();
    let path = path.to_string_lossy().into_owned();

    let rec = Recorder::new();
    let events = Events::new(rec.clone());
    let mut whole: Vec<u8> = Vec::new();
    let found = events::in_step(&events, "backup", "download", async {
        host.download_to(&path, 0, &mut whole, Some(contents.len() as u64))
            .await
            .unwrap()
    })
    .await;
    assert!(found);
    assert!(
        whole == contents,
        "{} bytes of {}",
        whole.len(),
        contents.len()
    );
    let last = rec.whats().into_iter().rev().find_map(|w| match w {
        What::StepProgress {
            progress: Progress::Bytes { bytes, total },
            ..
        } => Some((bytes, total)),
        _ => None,
    });
    assert_eq!(last, Some((3_000_000, Some(3_000_000))));

    let mut rest: Vec<u8> = Vec::new();
    assert!(
        host.download_to(&path, 2_999_000, &mut rest, None)
            .await
            .unwrap()
    );
    assert!(rest == contents[2_999_000..]);

    let mut none: Vec<u8> = Vec::new();
    let absent = format!("{path}.absent");
    assert!(!host.download_to(&absent, 0, &mut none, None).await.unwrap());
    assert!(none.is_empty());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tcp_reaches_a_service_on_the_hosts_loopback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    require_test_user();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let s = session(&sshd, &keys).await;
    // The host is this machine: a service on its loopback, reached through the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut c, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        c.write_all(&buf.to_ascii_uppercase()).await.unwrap();
    });
    let host: &dyn Host = &s;
    let mut stream = host.connect_tcp("127.0.0.1", port).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"PING");
    drop(stream);

    // Nothing listens there: the server refuses the channel, and says where.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port();
    drop(closed);
    let err = host.connect_tcp("127.0.0.1", free).await.err().unwrap();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{free}")),
        "{err}"
    );
    s.close().await;
}

/// Remote forwarding: a port on the host's loopback whose connections reach, through the
/// session, an address this machine reaches (here a greeting server on another loopback port).
/// An upstream that cannot be reached closes the host's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_is_forwarded_to_an_upstream_this_machine_reaches() {
    use tokio::io::AsyncWriteExt;
    require_test_user();
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let s = session(&sshd, &keys).await;
    let host: &dyn Host = &s;

    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = upstream.accept().await {
            let _ = c.write_all(b"hello through the forward\n").await;
        }
    });
    let port = host
        .forward_remote(&format!("127.0.0.1:{upstream_port}"))
        .await
        .unwrap();
    assert_ne!(port, upstream_port);
    let read = |port: u16| format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && head -n1 <&3'");
    for _ in 0..2 {
        let out = host.exec(&read(port)).await.unwrap();
        assert_eq!(
            out.stdout_str().trim(),
            "hello through the forward",
            "{out:?}"
        );
    }

    let closed = crate::support::tracker::free_tcp_port();
    let dead = host
        .forward_remote(&format!("127.0.0.1:{closed}"))
        .await
        .unwrap();
    let out = host.exec(&read(dead)).await.unwrap();
    assert_eq!(out.stdout_str(), "", "{out:?}");
}
