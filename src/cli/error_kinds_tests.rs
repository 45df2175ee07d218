//! Every error variant the operations can fail with, through the step boundary (or as the
//! operation's own error) to the CLI: its `kind`, its exit code, and the `--output json`
//! document stdout holds. One case per variant; the last test checks that every
//! [`ErrorKind`] is produced by at least one of them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::CliError;
use super::output::error_document;
use crate::config::{ConfigError, Problem};
use crate::error_kind::{Classified, Classify, ErrorKind};
use crate::hetzner::HetznerError;
use crate::host::HostError;
use crate::lxd::LxdError;
use crate::ops::OpsError;
use crate::ops::image::ImageError;
use crate::ops::lxd_host::{IpTimeout, IpWaitError};
use crate::ops::provision::ProvisionError;
use crate::ops::rollback::RollbackError;
use crate::probe::ProbeError;
use crate::ssh::{ExitStatus, PassphraseOrigin, SshError};
use crate::stack::StackError;
use crate::state::maintenance::{MaintenanceError, MaintenanceLock};
use crate::state::{LockError, LockOwner, StateError};
use crate::tasks::TaskError;
use crate::tasks::backup::BackupError;

/// What `StepRun` makes of a step's error.
fn step<E: Classify + std::error::Error + Send + Sync + 'static>(error: E) -> OpsError {
    OpsError::StepFailed {
        step: "a step".into(),
        message: error.to_string(),
        trace_file: PathBuf::from("/data/e/traces/t.txt"),
        error: Classified::new(error),
    }
}

fn io() -> std::io::Error {
    std::io::Error::other("disk on fire")
}

fn s(text: &str) -> String {
    text.to_string()
}

fn backup_errors() -> Vec<(BackupError, &'static str)> {
    vec![
        (
            BackupError::from(SshError::CommandFailed {
                host: s("h"),
                command: s("backup.sh"),
                status: ExitStatus::Code(1),
                stderr_tail: s("no"),
            }),
            "remote_command_failed",
        ),
        (
            BackupError::Task(TaskError::Unhealthy {
                waited: 180,
                failing: s("tracker"),
                logs: String::new(),
            }),
            "health_timeout",
        ),
        (BackupError::NotInstalled, "refused"),
        (
            BackupError::JobFailed {
                code: 1,
                output: s("another backup is running"),
            },
            "backup_failed",
        ),
        (
            BackupError::Unexpected(s("garbled")),
            "remote_command_failed",
        ),
        (BackupError::BadName { name: s("../x") }, "usage"),
        (
            BackupError::NotFound {
                name: s("torrust-backup-x.tar.gz"),
                place: s("on the host"),
            },
            "not_found",
        ),
        (
            BackupError::Invalid {
                archive: s("a"),
                reason: s("not gzip"),
            },
            "archive_invalid",
        ),
        (
            BackupError::Mismatch {
                archive: s("a"),
                found: s("mysql"),
                expected: s("SQLite"),
                fix: s("restore another"),
            },
            "archive_invalid",
        ),
        (
            BackupError::Checksum {
                what: s("the copy"),
                expected: s("aa"),
                got: s("bb"),
            },
            "checksum_mismatch",
        ),
        (
            BackupError::Local {
                context: s("cannot write"),
                path: PathBuf::from("/b"),
                source: io(),
            },
            "io",
        ),
        (
            BackupError::RestoreFailed {
                step: s("restore database"),
                message: s("ERROR 1064"),
            },
            "restore_failed",
        ),
    ]
}

fn ssh_errors() -> Vec<(SshError, &'static str)> {
    let d = Duration::from_secs(1);
    vec![
        (
            SshError::ConnectionRefused {
                host: s("h"),
                port: 22,
                attempts: 1,
                elapsed: d,
            },
            "ssh_unreachable",
        ),
        (
            SshError::Timeout {
                host: s("h"),
                port: 22,
                timeout: d,
                attempts: 1,
                elapsed: d,
            },
            "ssh_unreachable",
        ),
        (
            SshError::ConnectionReset {
                host: s("h"),
                port: 22,
                detail: s("reset"),
                attempts: 1,
                elapsed: d,
            },
            "ssh_unreachable",
        ),
        (
            SshError::Unreachable {
                host: s("h"),
                port: 22,
                detail: s("no route"),
                attempts: 1,
                elapsed: d,
            },
            "ssh_unreachable",
        ),
        (
            SshError::Resolve {
                host: s("h"),
                port: 22,
                detail: s("nxdomain"),
            },
            "ssh_unreachable",
        ),
        (
            SshError::AuthRejected {
                user: s("torrust"),
                host: s("h"),
                port: 22,
                key_path: PathBuf::from("/k"),
                fingerprint: s("SHA256:x"),
                via_agent: false,
            },
            "ssh_auth_failed",
        ),
        (
            SshError::HostKeyChanged {
                host: s("h"),
                port: 22,
                known_hosts: PathBuf::from("/kh"),
                line: 1,
                pinned_fingerprint: s("SHA256:a"),
                presented_fingerprint: s("SHA256:b"),
            },
            "ssh_host_key_changed",
        ),
        (
            SshError::KeyUnreadable {
                path: PathBuf::from("/k"),
                source: io(),
            },
            "ssh_key_unusable",
        ),
        (
            SshError::KeyUnsupported {
                path: PathBuf::from("/k"),
                detail: s("dsa"),
            },
            "ssh_key_unusable",
        ),
        (
            SshError::KeyEncryptedNoPassphrase {
                path: PathBuf::from("/k"),
                fingerprint: s("SHA256:x"),
                tried: s("nothing"),
            },
            "ssh_key_unusable",
        ),
        (
            SshError::WrongPassphrase {
                path: PathBuf::from("/k"),
                origin: PassphraseOrigin::EnvVar,
            },
            "ssh_key_unusable",
        ),
        (
            SshError::Agent {
                socket: s("/agent"),
                detail: s("gone"),
            },
            "ssh_key_unusable",
        ),
        (
            SshError::KnownHosts {
                path: PathBuf::from("/kh"),
                detail: s("read-only"),
            },
            "io",
        ),
        (
            SshError::Protocol {
                host: s("h"),
                port: 22,
                detail: s("kex"),
            },
            "ssh_failed",
        ),
        (
            SshError::ConnectionLost {
                host: s("h"),
                port: 22,
                detail: s("eof"),
            },
            "ssh_failed",
        ),
        (
            SshError::Channel {
                host: s("h"),
                command: s("true"),
                detail: s("refused"),
            },
            "ssh_failed",
        ),
        (
            SshError::Stdin {
                host: s("h"),
                command: s("cat"),
                source: io(),
            },
            "io",
        ),
        (
            SshError::CommandFailed {
                host: s("h"),
                command: s("false"),
                status: ExitStatus::Code(1),
                stderr_tail: String::new(),
            },
            "remote_command_failed",
        ),
        (
            SshError::Upload {
                host: s("h"),
                detail: s("tar"),
            },
            "ssh_failed",
        ),
    ]
}

fn lxd_errors() -> Vec<(LxdError, &'static str)> {
    vec![
        (
            LxdError::NoSocket {
                looked: vec![PathBuf::from("/nope")],
                configured: true,
            },
            "lxd_unreachable",
        ),
        (
            LxdError::Unreachable {
                endpoint: s("unix:/s"),
                doing: s("x"),
                message: s("refused"),
                fix: s("start it"),
            },
            "lxd_unreachable",
        ),
        (
            LxdError::Api {
                doing: s("x"),
                status: 500,
                message: s("boom"),
            },
            "lxd_failed",
        ),
        (
            LxdError::Operation {
                doing: s("x"),
                message: s("boom"),
            },
            "lxd_failed",
        ),
        (
            LxdError::Timeout {
                doing: s("x"),
                secs: 3,
            },
            "lxd_timeout",
        ),
        (
            LxdError::Decode {
                doing: s("x"),
                message: s("not json"),
            },
            "lxd_failed",
        ),
        (
            LxdError::Busy {
                doing: s("starting the instance"),
                action: s("stop"),
                message: s("Instance is busy running a \"stop\" operation"),
            },
            "lxd_busy",
        ),
        (
            LxdError::ServerMismatch {
                endpoint: s("https://10.0.0.5:8443"),
                expected: s("aa"),
                got: s("bb"),
            },
            "lxd_server_mismatch",
        ),
        (
            LxdError::NotTrusted {
                endpoint: s("https://10.0.0.5:8443"),
                why: s("no token"),
                fix: s("make one"),
            },
            "lxd_not_trusted",
        ),
        (
            LxdError::ClientCertificate {
                path: PathBuf::from("/c.crt"),
                message: s("not PEM"),
            },
            "io",
        ),
    ]
}

fn owner() -> LockOwner {
    LockOwner {
        pid: 1,
        host: s("here"),
        command: s("release"),
        started_at: chrono::Utc::now(),
    }
}

/// (error as the CLI gets it, expected kind).
fn hetzner_errors() -> Vec<(HetznerError, &'static str)> {
    let doing = || s("creating the server");
    // A reqwest error without any network: a URL that cannot be parsed.
    let unreachable = reqwest::Client::new()
        .get("http://[::1")
        .build()
        .unwrap_err();
    vec![
        (HetznerError::NoToken, "hetzner_unauthorized"),
        (
            HetznerError::Unauthorized {
                doing: doing(),
                status: 401,
                code: s("unauthorized"),
                message: s("unable to authenticate"),
            },
            "hetzner_unauthorized",
        ),
        (
            HetznerError::Unreachable {
                url: s("https://api.hetzner.cloud/v1"),
                doing: doing(),
                source: unreachable,
            },
            "hetzner_unreachable",
        ),
        (
            HetznerError::Uniqueness {
                doing: doing(),
                what: s("a server named 'web'"),
                message: s("server name is already used"),
            },
            "hetzner_conflict",
        ),
        (
            HetznerError::LimitExceeded {
                doing: doing(),
                limits: s(", limit server_limit"),
                message: s("limit reached"),
            },
            "hetzner_limit",
        ),
        (
            HetznerError::Unavailable {
                doing: doing(),
                code: s("resource_unavailable"),
                message: s("error during placement"),
            },
            "hetzner_unavailable",
        ),
        (
            HetznerError::RateLimited {
                doing: doing(),
                tries: 5,
                reset: String::new(),
            },
            "hetzner_rate_limited",
        ),
        (
            HetznerError::ActionFailed {
                doing: doing(),
                id: 1,
                command: s("create_server"),
                code: s("action_failed"),
                message: s("failed"),
            },
            "hetzner_action_failed",
        ),
        (
            HetznerError::ActionTimeout {
                doing: doing(),
                id: 1,
                command: s("create_server"),
                secs: 600,
            },
            "hetzner_action_failed",
        ),
        (
            HetznerError::Api {
                doing: doing(),
                status: 500,
                code: s("server_error"),
                message: s("oops"),
            },
            "hetzner_failed",
        ),
        (
            HetznerError::Decode {
                doing: doing(),
                detail: s("no `server`"),
            },
            "hetzner_failed",
        ),
    ]
}

/// Every variant of the registry client's error (`image pull`).
fn oci_errors() -> Vec<(crate::oci::OciError, &'static str)> {
    use crate::oci::OciError as E;
    let reqwest_error = reqwest::Client::new()
        .get("not a url")
        .build()
        .expect_err("an invalid URL");
    let registry = || s("127.0.0.1:5000");
    vec![
        (
            E::BadReference {
                reference: s("Bad"),
                why: s("is invalid"),
            },
            "invalid_config",
        ),
        (
            E::Unreachable {
                registry: registry(),
                url: s("http://127.0.0.1:5000/v2/"),
                source: reqwest_error,
            },
            "registry_unreachable",
        ),
        (
            E::AuthDenied {
                registry: registry(),
                repository: s("library/mysql"),
                status: 401,
                detail: String::new(),
            },
            "registry_auth_denied",
        ),
        (
            E::NotFound {
                registry: registry(),
                what: s("library/mysql:9"),
                detail: String::new(),
            },
            "registry_not_found",
        ),
        (
            E::NoMatchingPlatform {
                image: s("mysql:8.4"),
                platform: s("linux/s390x"),
                available: s("linux/amd64"),
            },
            "platform_missing",
        ),
        (
            E::DigestMismatch {
                registry: registry(),
                what: s("a blob"),
                expected: s("sha256:1"),
                actual: s("sha256:2"),
            },
            "digest_mismatch",
        ),
        (
            E::Protocol {
                registry: registry(),
                what: s("a manifest"),
                detail: s("HTTP 500"),
            },
            "registry_failed",
        ),
        (
            E::Io {
                context: "cannot write",
                path: PathBuf::from("/x"),
                source: io(),
            },
            "io",
        ),
    ]
}

fn cases() -> Vec<(CliError, &'static str)> {
    let mut out: Vec<(CliError, &'static str)> = Vec::new();
    let mut add = |e: OpsError, kind: &'static str| out.push((CliError::Ops(e), kind));

    for (e, kind) in ssh_errors() {
        add(step(e), kind);
    }
    for (e, kind) in lxd_errors() {
        add(step(e), kind);
    }
    for (e, kind) in hetzner_errors() {
        add(step(e), kind);
    }
    for (e, kind) in hetzner_errors() {
        add(step(ProvisionError::Hetzner(e)), kind);
    }
    // Wrappers ask their inner error.
    for (e, kind) in ssh_errors() {
        add(step(TaskError::from(e)), kind);
    }
    // A task over LXD exec (provision's SSH access on an image without cloud-init).
    for (e, kind) in lxd_errors() {
        add(step(TaskError::Host(HostError::Lxd(e))), kind);
    }
    add(
        step(TaskError::Host(HostError::Input {
            host: s("lxd:web"),
            command: s("docker load"),
            source: io(),
        })),
        "io",
    );
    for (e, kind) in oci_errors() {
        add(step(e), kind);
    }
    add(
        step(HostError::Unsupported {
            host: s("lxd:web"),
            what: s("a TCP connection to 127.0.0.1:1212"),
            why: s("no port forward"),
        }),
        "failed",
    );
    for (e, kind) in ssh_errors().into_iter().take(7) {
        add(step(ProvisionError::Ssh(e)), kind);
    }
    for (e, kind) in lxd_errors() {
        add(step(ProvisionError::Lxd(e)), kind);
    }
    for (e, kind) in lxd_errors() {
        add(OpsError::typed(ImageError::Lxd(e)), kind);
    }

    add(
        step(TaskError::failed("firewall", "ufw", "fix")),
        "task_failed",
    );
    add(
        step(TaskError::apt("packages", "apt-get failed", "fix")),
        "apt_failed",
    );
    add(
        step(TaskError::UnsupportedOs {
            task: s("operating system"),
            message: s("debian 11"),
            fix: s("use 12"),
        }),
        "unsupported_os",
    );
    add(
        step(TaskError::NotVerified {
            task: s("docker group"),
            found: s("missing"),
            fix: s("again"),
        }),
        "not_verified",
    );
    add(step(TaskError::Facts(s("garbled"))), "task_failed");

    let ip_timeout = || IpTimeout {
        instance: s("i"),
        network: s("lxdbr0"),
        secs: 1,
        status: s("Running"),
    };
    add(step(IpWaitError::Timeout(ip_timeout())), "ip_timeout");
    add(
        step(ProvisionError::NoIp(IpWaitError::Timeout(ip_timeout()))),
        "ip_timeout",
    );
    add(
        step(IpWaitError::LxdGone {
            instance: s("i"),
            secs: 1,
            error: LxdError::Timeout {
                doing: s("x"),
                secs: 1,
            },
        }),
        "lxd_unreachable",
    );
    add(
        step(ProvisionError::UnknownImage {
            image: s("torrust/debian-12"),
            project: String::new(),
        }),
        "image_missing",
    );
    add(
        step(crate::ops::ownership::ForeignError::new(
            "instance",
            "torrust-tracker-vm-e",
            "e",
            Some("0123456789abcdef"),
            crate::ops::ownership::Action::Delete,
        )),
        "foreign_resource",
    );
    add(
        step(ProvisionError::Missing {
            what: "network",
            name: s("lxdbr0"),
            fix: s("create it"),
        }),
        "lxd_missing",
    );
    add(
        step(ProvisionError::StartFailed {
            instance: s("i"),
            log: s("hook timed out"),
            source: LxdError::Operation {
                doing: s("starting"),
                message: s("boom"),
            },
        }),
        "lxd_failed",
    );
    add(
        step(ProvisionError::AdoptedKeyRejected {
            instance: s("i"),
            env: s("e"),
            source: ssh_errors()
                .into_iter()
                .map(|(e, _)| e)
                .find(|e| matches!(e, SshError::AuthRejected { .. }))
                .expect("an AuthRejected case"),
        }),
        "ssh_auth_failed",
    );
    add(
        step(ProvisionError::KnownHosts {
            path: PathBuf::from("/k"),
            source: std::io::Error::other("read-only"),
        }),
        "io",
    );
    add(
        step(ProvisionError::Task(TaskError::failed(
            "cloud-init",
            "status: error",
            "fix",
        ))),
        "task_failed",
    );

    add(
        step(TaskError::bundle("images", "unreadable", "fix")),
        "bundle_invalid",
    );
    add(
        step(TaskError::image_missing("images", "cannot pull", "fix")),
        "image_missing",
    );
    add(
        step(TaskError::BinaryIncompatible {
            task: s("deployer binary"),
            message: s("built for aarch64, the host is x86_64"),
            fix: s("fix"),
        }),
        "binary_incompatible",
    );
    for e in [
        StackError::UnsafeValue {
            field: s("f"),
            reason: s("newline"),
        },
        StackError::MissingRootPassword,
    ] {
        add(OpsError::typed(e), "invalid_config");
    }
    add(
        step(TaskError::compose(
            "compose up",
            "`docker compose up -d` failed",
            "fix",
        )),
        "compose_failed",
    );
    add(
        step(TaskError::Unhealthy {
            waited: 180,
            failing: s("tracker"),
            logs: String::new(),
        }),
        "health_timeout",
    );

    let probe = |e: ProbeError, kind| (e, kind);
    for (e, kind) in [
        probe(
            ProbeError::Timeout {
                what: "announce",
                target: s("udp://h:6969"),
                proto: "UDP",
                within: Duration::from_secs(1),
            },
            "tracker_unreachable",
        ),
        probe(
            ProbeError::Refused {
                what: "announce",
                target: s("t"),
                proto: "TCP",
            },
            "tracker_unreachable",
        ),
        probe(
            ProbeError::Network {
                what: "announce",
                target: s("t"),
                detail: s("reset"),
            },
            "tracker_unreachable",
        ),
        probe(
            ProbeError::Resolve {
                host: s("h"),
                target: s("t"),
                detail: s("nxdomain"),
            },
            "tracker_unreachable",
        ),
        probe(
            ProbeError::Tls {
                target: s("t"),
                detail: s("untrusted"),
            },
            "tracker_tls_failed",
        ),
        probe(
            ProbeError::AuthRejected {
                target: s("t"),
                detail: s("401"),
            },
            "tracker_auth_failed",
        ),
        probe(
            ProbeError::HttpStatus {
                what: "scrape",
                target: s("t"),
                status: 500,
                body: String::new(),
            },
            "tracker_failed",
        ),
        probe(
            ProbeError::BadResponse {
                what: "scrape",
                target: s("t"),
                detail: s("html"),
            },
            "tracker_failed",
        ),
        probe(
            ProbeError::TrackerFailure {
                what: "announce",
                target: s("t"),
                reason: s("unregistered torrent"),
            },
            "tracker_failed",
        ),
        probe(
            ProbeError::Unhealthy {
                target: s("t"),
                detail: s("udp down"),
            },
            "tracker_failed",
        ),
        probe(
            ProbeError::Setup {
                target: s("t"),
                detail: s("bad url"),
            },
            "failed",
        ),
    ] {
        add(OpsError::typed(e), kind);
    }

    add(
        OpsError::typed(ImageError::Pack {
            path: PathBuf::from("/rootfs"),
            source: io(),
        }),
        "io",
    );
    add(
        OpsError::from(ImageError::NoMetadataYaml {
            path: PathBuf::from("/meta"),
            kind: "directory",
        }),
        "refused",
    );
    add(
        OpsError::typed(ImageError::NoMetadataYaml {
            path: PathBuf::from("/meta"),
            kind: "directory",
        }),
        "refused",
    );
    add(
        OpsError::typed(ImageError::Read {
            path: PathBuf::from("/img"),
            source: io(),
        }),
        "io",
    );

    // Backups: the job, the copies, the restore (as steps, like every task error).
    for (e, kind) in backup_errors() {
        add(step(e), kind);
    }

    // The operations' own errors.
    add(
        OpsError::Config(ConfigError::Read {
            path: PathBuf::from("e.json"),
            source: io(),
        }),
        "invalid_config",
    );
    add(
        OpsError::Config(ConfigError::Syntax {
            message: s("eof"),
            line: 1,
            column: 2,
            path: String::new(),
        }),
        "invalid_config",
    );
    add(
        OpsError::Config(ConfigError::Invalid {
            problems: vec![Problem::new("tracker", "bad", None, "fix it")],
        }),
        "invalid_config",
    );
    add(OpsError::State(StateError::NotFound(s("e"))), "not_found");
    add(
        OpsError::State(StateError::Unreadable {
            env: s("e"),
            path: PathBuf::from("/s"),
            reason: s("garbled"),
        }),
        "state",
    );
    add(
        OpsError::State(StateError::Damaged {
            env: s("e"),
            path: PathBuf::from("/s"),
            reason: s("EOF while parsing a value at line 1 column 0"),
            previous: PathBuf::from("/s.prev"),
        }),
        "state",
    );
    add(
        OpsError::State(StateError::SchemaVersion {
            env: s("e"),
            found: 99,
        }),
        "state",
    );
    add(
        OpsError::State(StateError::Write {
            path: PathBuf::from("/s"),
            source: io(),
        }),
        "state",
    );
    add(
        OpsError::State(StateError::Lock(LockError::Held {
            env: s("e"),
            owner: owner(),
        })),
        "locked",
    );
    add(
        OpsError::Lock(LockError::Held {
            env: s("e"),
            owner: owner(),
        }),
        "locked",
    );
    add(
        OpsError::Lock(LockError::Timeout {
            env: s("e"),
            owner: owner(),
            waited_secs: 3,
        }),
        "locked",
    );
    add(
        OpsError::Lock(LockError::Io {
            path: PathBuf::from("/l"),
            source: io(),
        }),
        "io",
    );
    let maintenance = || Box::new(MaintenanceLock::new(s("disk upgrade")));
    add(
        OpsError::Lock(LockError::Maintenance(MaintenanceError::Held {
            env: s("e"),
            command: s("release"),
            lock: maintenance(),
        })),
        "maintenance_locked",
    );
    add(
        OpsError::typed(MaintenanceError::AlreadyHeld {
            env: s("e"),
            lock: maintenance(),
        }),
        "maintenance_locked",
    );
    add(
        OpsError::typed(MaintenanceError::Unreadable {
            env: s("e"),
            path: PathBuf::from("/m"),
            reason: s("not json"),
        }),
        "state",
    );
    add(
        OpsError::typed(MaintenanceError::Write {
            path: PathBuf::from("/m"),
            source: io(),
        }),
        "io",
    );
    add(
        OpsError::ConfigChanged {
            env: s("e"),
            lifecycle: s("running"),
            fix: s("destroy"),
        },
        "config_changed",
    );
    add(OpsError::Refused(s("no host yet")), "refused");
    add(OpsError::Failed(s("something")), "failed");
    add(OpsError::CheckFailed(2), "check_failed");
    add(
        OpsError::TestFailed {
            env: s("e"),
            failed: 1,
            total: 9,
            next: s("look"),
        },
        "test_failed",
    );
    add(
        OpsError::Io {
            context: s("cannot read the key"),
            source: io(),
        },
        "io",
    );

    // rollback, and deploy's automatic rollback of an upgrade.
    add(
        OpsError::typed(RollbackError::NoSuchRelease {
            env: s("e"),
            asked: 9,
            count: 2,
        }),
        "refused",
    );
    add(
        OpsError::typed(RollbackError::NothingBefore {
            env: s("e"),
            count: 1,
        }),
        "refused",
    );
    add(
        step(RollbackError::Incomplete {
            env: s("e"),
            number: 1,
            what: s("no contents"),
            fix: s("another"),
        }),
        "history_incomplete",
    );
    add(
        OpsError::typed(RollbackError::UpgradeRolledBack {
            env: s("e"),
            upgrade: s("torrust/tracker:next"),
            restored: 1,
            images: s("torrust/tracker:3.0.0"),
            cause: s("not healthy after 30 s"),
        }),
        "upgrade_rolled_back",
    );
    add(
        OpsError::typed(RollbackError::RollbackFailed {
            env: s("e"),
            upgrade: s("torrust/tracker:next"),
            restored: 1,
            cause: s("not healthy after 30 s"),
            error: Box::new(step(TaskError::Unhealthy {
                waited: 30,
                failing: s("tracker"),
                logs: s(""),
            })),
        }),
        "health_timeout",
    );

    out.push((CliError::Usage(s("bad name")), "usage"));
    out.push((CliError::Output(io()), "io"));
    out.push((
        CliError::Several {
            failed: vec![
                (s("a"), ErrorKind::NotFound),
                (s("b"), ErrorKind::HealthTimeout),
            ],
            total: 3,
        },
        "environments_failed",
    ));
    out.push((
        CliError::Several {
            failed: vec![(s("a"), ErrorKind::NotFound), (s("b"), ErrorKind::Refused)],
            total: 3,
        },
        "environments_invalid",
    ));
    out
}

#[test]
fn every_error_reaches_the_json_document_with_its_kind_and_exit_code() {
    for (err, kind) in cases() {
        let got = err.kind();
        assert_eq!(got.as_str(), kind, "{err:?}");
        let code = if matches!(
            kind,
            "usage"
                | "invalid_config"
                | "not_found"
                | "config_changed"
                | "refused"
                | "maintenance_locked"
                | "archive_invalid"
                | "environments_invalid"
        ) {
            2
        } else {
            1
        };
        assert_eq!(err.exit_code(), code, "{err:?}");
        let message = err.to_string();
        let problems = err.problems();
        assert_eq!(
            error_document(got, &message, &problems, None),
            json!({ "error": { "kind": kind, "message": message, "problems": problems } }),
        );
    }
}

#[test]
fn a_report_keeps_its_fields_with_the_error_added() {
    let doc = error_document(
        ErrorKind::CheckFailed,
        "2 check(s) failed",
        &[],
        Some(json!({ "ok": false, "checks": [] })),
    );
    assert_eq!(
        doc,
        json!({
            "ok": false, "checks": [],
            "error": { "kind": "check_failed", "message": "2 check(s) failed", "problems": [] }
        })
    );
}

#[test]
fn every_kind_is_produced_by_an_error() {
    let produced: std::collections::HashSet<ErrorKind> =
        cases().iter().map(|(e, _)| e.kind()).collect();
    let missing: Vec<ErrorKind> = ErrorKind::ALL
        .into_iter()
        .filter(|k| !produced.contains(k))
        .collect();
    assert_eq!(missing, []);
}
