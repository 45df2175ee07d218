//! What can go wrong pulling an image, each with its kind and a fix.

use std::path::PathBuf;

use crate::error_kind::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("image reference {reference:?} {why}")]
    BadReference { reference: String, why: String },
    #[error(
        "cannot reach the registry {registry} ({url}): {}.\n  Fix: check the name and port, \
         this machine's network, DNS and proxy (HTTPS_PROXY); a registry without TLS must be on \
         loopback or named with --insecure-registry",
        chain(.source)
    )]
    Unreachable {
        registry: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the registry {registry} refused access to {repository} (HTTP {status}{detail}).\n  Fix: \
         check the image name; for a private repository set TORRUST_DEPLOYER_REGISTRY_USERNAME and \
         TORRUST_DEPLOYER_REGISTRY_PASSWORD (a token works as the password)"
    )]
    AuthDenied {
        registry: String,
        repository: String,
        status: u16,
        detail: String,
    },
    #[error(
        "{what} not found on the registry {registry}{detail}.\n  Fix: check the name and tag \
         (`images.*` in the environment file, or --image); with --registry, the mirror must hold \
         the same repository paths (Docker Hub's official images are under library/)"
    )]
    NotFound {
        registry: String,
        what: String,
        detail: String,
    },
    #[error(
        "{image} has no image for {platform} (it has: {available}).\n  Fix: pass --platform with \
         one of those, or use an image built for {platform}"
    )]
    NoMatchingPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error(
        "{what} from {registry} does not match its digest: expected {expected}, got {actual}.\n  \
         The data was corrupted in transit or the registry serves something else under that \
         digest; the bad copy was deleted. Fix: pull again; if it persists, the registry or a \
         proxy between is at fault"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("the registry {registry} answered {what} with {detail}")]
    Protocol {
        registry: String,
        what: String,
        detail: String,
    },
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes, `a: b: c` (reqwest's own text hides the cause: DNS, refused, TLS).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

impl OciError {
    pub(crate) fn io(
        context: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| OciError::Io {
            context,
            path,
            source,
        }
    }
}

impl Classify for OciError {
    fn kind(&self) -> ErrorKind {
        match self {
            OciError::BadReference { .. } => ErrorKind::InvalidConfig,
            OciError::Unreachable { .. } => ErrorKind::RegistryUnreachable,
            OciError::AuthDenied { .. } => ErrorKind::RegistryAuthDenied,
            OciError::NotFound { .. } => ErrorKind::RegistryNotFound,
            OciError::NoMatchingPlatform { .. } => ErrorKind::PlatformMissing,
            OciError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            OciError::Protocol { .. } => ErrorKind::RegistryFailed,
            OciError::Io { .. } => ErrorKind::Io,
        }
    }
}
