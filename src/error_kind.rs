//! Error kinds: the stable, machine-readable name of every way a command fails, and its exit code.
//!
//! Each module's error enum says which [`ErrorKind`] each of its variants is by implementing
//! [`Classify`], right beside the enum (SSH in `ssh/error.rs`, LXD in `lxd/error.rs`, the
//! `Host` transports' `HostError` in `host/mod.rs`, the operations' own enums in `ops/kinds.rs`,
//! ...). A wrapper variant asks its inner error. A kind is never guessed from an error's text.
//!
//! A failed step keeps its error whole in a [`Classified`] (the kind beside the boxed source), so
//! the trace file still shows the full chain, and the CLI reads the kind for `--output json` and
//! the exit code from it. docs/user-guide/output.md lists every kind; a unit test keeps that list
//! and [`ErrorKind::ALL`] the same.

use std::error::Error as StdError;
use std::fmt;

use serde::Serialize;

/// Why a command failed, by cause. Serialized in snake_case (`ssh_auth_failed`): these names are
/// part of the `--output json` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    // Invalid input or usage: exit 2.
    Usage,
    InvalidConfig,
    NotFound,
    ConfigChanged,
    Refused,
    MaintenanceLocked,
    ForeignResource,
    // This machine.
    Locked,
    State,
    Io,
    // SSH.
    SshUnreachable,
    SshHostKeyChanged,
    SshAuthFailed,
    SshKeyUnusable,
    SshFailed,
    RemoteCommandFailed,
    // LXD.
    LxdUnreachable,
    LxdBusy,
    LxdTimeout,
    LxdFailed,
    LxdMissing,
    LxdServerMismatch,
    LxdNotTrusted,
    ImageMissing,
    IpTimeout,
    // Hetzner Cloud.
    HetznerUnauthorized,
    HetznerUnreachable,
    HetznerConflict,
    HetznerLimit,
    HetznerUnavailable,
    HetznerRateLimited,
    HetznerActionFailed,
    HetznerFailed,
    // Host tasks.
    UnsupportedOs,
    AptFailed,
    TaskFailed,
    NotVerified,
    // The stack.
    BundleInvalid,
    BinaryIncompatible,
    ComposeFailed,
    HealthTimeout,
    UpgradeRolledBack,
    HistoryIncomplete,
    // Protocol checks of the tracker.
    TrackerUnreachable,
    TrackerTlsFailed,
    TrackerAuthFailed,
    TrackerFailed,
    // Backups.
    BackupFailed,
    RestoreFailed,
    ArchiveInvalid,
    ChecksumMismatch,
    // Pulling images from a registry.
    RegistryUnreachable,
    RegistryAuthDenied,
    RegistryNotFound,
    PlatformMissing,
    DigestMismatch,
    RegistryFailed,
    // Reports and fallbacks.
    EnvironmentsFailed,
    EnvironmentsInvalid,
    CheckFailed,
    TestFailed,
    Failed,
}

impl ErrorKind {
    /// Every kind, in the order docs/user-guide/output.md lists them.
    pub const ALL: [ErrorKind; 62] = [
        ErrorKind::Usage,
        ErrorKind::InvalidConfig,
        ErrorKind::NotFound,
        ErrorKind::ConfigChanged,
        ErrorKind::Refused,
        ErrorKind::MaintenanceLocked,
        ErrorKind::ForeignResource,
        ErrorKind::Locked,
        ErrorKind::State,
        ErrorKind::Io,
        ErrorKind::SshUnreachable,
        ErrorKind::SshHostKeyChanged,
        ErrorKind::SshAuthFailed,
        ErrorKind::SshKeyUnusable,
        ErrorKind::SshFailed,
        ErrorKind::RemoteCommandFailed,
        ErrorKind::LxdUnreachable,
        ErrorKind::LxdBusy,
        ErrorKind::LxdTimeout,
        ErrorKind::LxdFailed,
        ErrorKind::LxdMissing,
        ErrorKind::LxdServerMismatch,
        ErrorKind::LxdNotTrusted,
        ErrorKind::ImageMissing,
        ErrorKind::IpTimeout,
        ErrorKind::HetznerUnauthorized,
        ErrorKind::HetznerUnreachable,
        ErrorKind::HetznerConflict,
        ErrorKind::HetznerLimit,
        ErrorKind::HetznerUnavailable,
        ErrorKind::HetznerRateLimited,
        ErrorKind::HetznerActionFailed,
        ErrorKind::HetznerFailed,
        ErrorKind::UnsupportedOs,
        ErrorKind::AptFailed,
        ErrorKind::TaskFailed,
        ErrorKind::NotVerified,
        ErrorKind::BundleInvalid,
        ErrorKind::BinaryIncompatible,
        ErrorKind::ComposeFailed,
        ErrorKind::HealthTimeout,
        ErrorKind::UpgradeRolledBack,
        ErrorKind::HistoryIncomplete,
        ErrorKind::TrackerUnreachable,
        ErrorKind::TrackerTlsFailed,
        ErrorKind::TrackerAuthFailed,
        ErrorKind::TrackerFailed,
        ErrorKind::BackupFailed,
        ErrorKind::RestoreFailed,
        ErrorKind::ArchiveInvalid,
        ErrorKind::ChecksumMismatch,
        ErrorKind::RegistryUnreachable,
        ErrorKind::RegistryAuthDenied,
        ErrorKind::RegistryNotFound,
        ErrorKind::PlatformMissing,
        ErrorKind::DigestMismatch,
        ErrorKind::RegistryFailed,
        ErrorKind::EnvironmentsFailed,
        ErrorKind::EnvironmentsInvalid,
        ErrorKind::CheckFailed,
        ErrorKind::TestFailed,
        ErrorKind::Failed,
    ];

    /// The name in `--output json` (`"kind": "ssh_auth_failed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::NotFound => "not_found",
            ErrorKind::ConfigChanged => "config_changed",
            ErrorKind::Refused => "refused",
            ErrorKind::MaintenanceLocked => "maintenance_locked",
            ErrorKind::ForeignResource => "foreign_resource",
            ErrorKind::Locked => "locked",
            ErrorKind::State => "state",
            ErrorKind::Io => "io",
            ErrorKind::SshUnreachable => "ssh_unreachable",
            ErrorKind::SshHostKeyChanged => "ssh_host_key_changed",
            ErrorKind::SshAuthFailed => "ssh_auth_failed",
            ErrorKind::SshKeyUnusable => "ssh_key_unusable",
            ErrorKind::SshFailed => "ssh_failed",
            ErrorKind::RemoteCommandFailed => "remote_command_failed",
            ErrorKind::LxdUnreachable => "lxd_unreachable",
            ErrorKind::LxdBusy => "lxd_busy",
            ErrorKind::LxdTimeout => "lxd_timeout",
            ErrorKind::LxdFailed => "lxd_failed",
            ErrorKind::LxdMissing => "lxd_missing",
            ErrorKind::LxdServerMismatch => "lxd_server_mismatch",
            ErrorKind::LxdNotTrusted => "lxd_not_trusted",
            ErrorKind::ImageMissing => "image_missing",
            ErrorKind::IpTimeout => "ip_timeout",
            ErrorKind::HetznerUnauthorized => "hetzner_unauthorized",
            ErrorKind::HetznerUnreachable => "hetzner_unreachable",
            ErrorKind::HetznerConflict => "hetzner_conflict",
            ErrorKind::HetznerLimit => "hetzner_limit",
            ErrorKind::HetznerUnavailable => "hetzner_unavailable",
            ErrorKind::HetznerRateLimited => "hetzner_rate_limited",
            ErrorKind::HetznerActionFailed => "hetzner_action_failed",
            ErrorKind::HetznerFailed => "hetzner_failed",
            ErrorKind::UnsupportedOs => "unsupported_os",
            ErrorKind::AptFailed => "apt_failed",
            ErrorKind::TaskFailed => "task_failed",
            ErrorKind::NotVerified => "not_verified",
            ErrorKind::BundleInvalid => "bundle_invalid",
            ErrorKind::BinaryIncompatible => "binary_incompatible",
            ErrorKind::ComposeFailed => "compose_failed",
            ErrorKind::HealthTimeout => "health_timeout",
            ErrorKind::UpgradeRolledBack => "upgrade_rolled_back",
            ErrorKind::HistoryIncomplete => "history_incomplete",
            ErrorKind::TrackerUnreachable => "tracker_unreachable",
            ErrorKind::TrackerTlsFailed => "tracker_tls_failed",
            ErrorKind::TrackerAuthFailed => "tracker_auth_failed",
            ErrorKind::TrackerFailed => "tracker_failed",
            ErrorKind::BackupFailed => "backup_failed",
            ErrorKind::RestoreFailed => "restore_failed",
            ErrorKind::ArchiveInvalid => "archive_invalid",
            ErrorKind::ChecksumMismatch => "checksum_mismatch",
            ErrorKind::RegistryUnreachable => "registry_unreachable",
            ErrorKind::RegistryAuthDenied => "registry_auth_denied",
            ErrorKind::RegistryNotFound => "registry_not_found",
            ErrorKind::PlatformMissing => "platform_missing",
            ErrorKind::DigestMismatch => "digest_mismatch",
            ErrorKind::RegistryFailed => "registry_failed",
            ErrorKind::EnvironmentsFailed => "environments_failed",
            ErrorKind::EnvironmentsInvalid => "environments_invalid",
            ErrorKind::CheckFailed => "check_failed",
            ErrorKind::TestFailed => "test_failed",
            ErrorKind::Failed => "failed",
        }
    }

    /// The process exit code: 2 when the input or the environment's state is what must change
    /// (arguments, the environment file, which command to run), 1 when the operation failed.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage
            | ErrorKind::InvalidConfig
            | ErrorKind::NotFound
            | ErrorKind::ConfigChanged
            | ErrorKind::Refused
            | ErrorKind::MaintenanceLocked
            | ErrorKind::ArchiveInvalid
            | ErrorKind::EnvironmentsInvalid => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An error that knows its [`ErrorKind`]. Implement it beside the error enum, with one arm per
/// variant (no `_` arm, so a new variant must be classified); a variant that wraps another error
/// returns that error's kind.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

impl Classify for std::io::Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Io
    }
}

/// The boxed error a [`Classified`] keeps.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error kept whole beside its kind, for errors that cross a layer boundary (a failed step,
/// an operation's typed failure). Displays as the error itself and hands out the same source
/// chain, so nothing is lost for the trace file; [`Classified::downcast_ref`] gets the original
/// error back.
pub struct Classified {
    kind: ErrorKind,
    error: BoxError,
}

impl Classified {
    pub fn new<E>(error: E) -> Self
    where
        E: Classify + StdError + Send + Sync + 'static,
    {
        Self {
            kind: error.kind(),
            error: Box::new(error),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The original error, if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }
}

impl fmt::Debug for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.kind, self.error)
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for Classified {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str(), "{kind:?}");
            assert!(seen.insert(kind.as_str()), "{kind:?} twice");
        }
    }

    #[test]
    fn only_input_kinds_exit_2() {
        let two: Vec<&str> = ErrorKind::ALL
            .iter()
            .filter(|k| k.exit_code() == 2)
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            two,
            [
                "usage",
                "invalid_config",
                "not_found",
                "config_changed",
                "refused",
                "maintenance_locked",
                "archive_invalid",
                "environments_invalid"
            ]
        );
        assert!(
            ErrorKind::ALL
                .iter()
                .all(|k| matches!(k.exit_code(), 1 | 2))
        );
    }

    /// Every kind is in docs/user-guide/output.md's table with its exit code, and the table has
    /// no other kind.
    #[test]
    fn the_user_guide_lists_every_kind_with_its_exit_code() {
        let doc = include_str!("../docs/user-guide/output.md");
        let rows: Vec<(String, i32)> = doc
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                // | `kind` | exit | meaning |
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let code = cells.get(2)?.parse().ok()?;
                Some((name.to_string(), code))
            })
            .collect();
        let expected: Vec<(String, i32)> = ErrorKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), k.exit_code()))
            .collect();
        assert_eq!(rows, expected);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    impl Classify for Outer {
        fn kind(&self) -> ErrorKind {
            ErrorKind::SshFailed
        }
    }

    #[test]
    fn classified_keeps_the_error_and_its_chain() {
        let c = Classified::new(Outer(std::io::Error::other("inner")));
        assert_eq!(c.kind(), ErrorKind::SshFailed);
        assert_eq!(c.to_string(), "outer");
        assert_eq!(c.source().unwrap().to_string(), "inner");
        assert!(c.downcast_ref::<Outer>().is_some());
        assert!(c.downcast_ref::<std::io::Error>().is_none());
    }
}
