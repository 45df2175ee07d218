//! The [`ErrorKind`] of every error the operations define: [`OpsError`] and the error enums of
//! provision, image import and the LXD host helpers (release's and run's
//! failures are the tasks' [`crate::tasks::TaskError`]).
//!
//! They live here, in one file, rather than beside each enum, so that the list of what each
//! operation's failure means is read in one place. Each `match` names every variant (no `_`
//! arm): a new variant does not compile until it is classified here. A variant that wraps
//! another error asks that error ([`Classify`] of the SSH, LXD and task errors lives beside
//! them). The lower layers' kinds are in `crate::error_kind`'s docs and
//! docs/user-guide/output.md.

use super::OpsError;
use super::image::ImageError;
use super::lxd_host::{IpTimeout, IpWaitError};
use super::provision::ProvisionError;
use super::services::UnknownService;
use crate::error_kind::{Classify, ErrorKind};

impl Classify for OpsError {
    fn kind(&self) -> ErrorKind {
        match self {
            OpsError::Config(e) => e.kind(),
            OpsError::State(e) => e.kind(),
            OpsError::Lock(e) => e.kind(),
            OpsError::ConfigChanged { .. } => ErrorKind::ConfigChanged,
            OpsError::Refused(_) => ErrorKind::Refused,
            OpsError::Failed(_) => ErrorKind::Failed,
            OpsError::CheckFailed(_) => ErrorKind::CheckFailed,
            OpsError::TestFailed { .. } => ErrorKind::TestFailed,
            OpsError::Io { .. } => ErrorKind::Io,
            OpsError::StepFailed { error, .. } => error.kind(),
            OpsError::Typed(error) => error.kind(),
        }
    }
}

impl Classify for ProvisionError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProvisionError::Lxd(e) => e.kind(),
            ProvisionError::Ssh(e) => e.kind(),
            ProvisionError::NoIp(e) => e.kind(),
            ProvisionError::UnknownImage { .. } => ErrorKind::ImageMissing,
            ProvisionError::Missing { .. } => ErrorKind::LxdMissing,
            ProvisionError::StartFailed { source, .. } => source.kind(),
            ProvisionError::AdoptedKeyRejected { .. } => ErrorKind::SshAuthFailed,
            ProvisionError::KnownHosts { .. } => ErrorKind::Io,
            ProvisionError::Foreign(e) => e.kind(),
            ProvisionError::Hetzner(e) => e.kind(),
            ProvisionError::Task(e) => e.kind(),
        }
    }
}

impl Classify for IpWaitError {
    fn kind(&self) -> ErrorKind {
        match self {
            IpWaitError::Timeout(e) => e.kind(),
            // LXD stopped answering while we waited, whatever its error said.
            IpWaitError::LxdGone { .. } => ErrorKind::LxdUnreachable,
        }
    }
}

impl Classify for IpTimeout {
    fn kind(&self) -> ErrorKind {
        ErrorKind::IpTimeout
    }
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::Lxd(e) => e.kind(),
            ImageError::Pack { .. } | ImageError::Read { .. } => ErrorKind::Io,
            // Converted to `refused` by `From<ImageError> for OpsError`: the input is wrong.
            ImageError::NoMetadataYaml { .. } => ErrorKind::Refused,
        }
    }
}

impl Classify for UnknownService {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}
