//! A streamed stdin reports the bytes sent as its step's progress, against a real OpenSSH
//! server on a loopback port (tests/support/sshd.rs).
//! Needs /usr/sbin/sshd: `sudo bash provisioning/ci/install-sshd-test-deps.sh`.

use crate::support::sshd;

use std::time::Duration;

use sshd::{Sshd, keygen};
use torrust_tracker_deployer::events::{self, ByteCounter, Events, Progress, Recorder, What};
use torrust_tracker_deployer::ssh::{
    ConnectOptions, ExecOptions, PassphraseSource, Session, Target,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_stdin_reports_its_bytes_to_the_step() {
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "id_ed25519", "ed25519", "");
    sshd.authorize("root", &key);
    let target = Target {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: "root".into(),
        private_key: key.clone(),
        known_hosts: sshd.path().join("client/known_hosts"),
    };
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(10),
        passphrase: PassphraseSource::none(),
        ..Default::default()
    };
    let session = Session::connect(&target, &options).await.unwrap();

    // 2.5 MiB: reported at 1 MiB, 2 MiB and at the end.
    let size = 5 * ByteCounter::EVERY / 2;
    let data = vec![7u8; size as usize];
    let rec = Recorder::new();
    let out = events::in_step(
        &Events::new(rec.clone()),
        "release",
        "images",
        session.exec_with(
            "wc -c",
            ExecOptions::new().stdin_reader_sized(std::io::Cursor::new(data), size),
        ),
    )
    .await
    .unwrap();
    session.close().await;
    assert_eq!(out.stdout_str().trim(), size.to_string());

    let sent: Vec<(u64, Option<u64>)> = rec
        .whats()
        .into_iter()
        .map(|w| match w {
            What::StepProgress {
                command,
                step,
                progress: Progress::Bytes { bytes, total },
            } => {
                assert_eq!((command.as_str(), step.as_str()), ("release", "images"));
                (bytes, total)
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let mib = ByteCounter::EVERY;
    assert_eq!(
        sent,
        [(mib, Some(size)), (2 * mib, Some(size)), (size, Some(size))]
    );
}
