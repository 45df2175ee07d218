//! [`LxdError`]: every way a call to LXD fails, with what was being done and, where one is
//! known, the fix; and its [`ErrorKind`](crate::error_kind::ErrorKind).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LxdError {
    #[error(
        "no LXD socket found (looked at {}).\n  {}",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if *configured { "Check `provider.socket_path` in the environment file" }
        else { "Install and start LXD (`provisioning/host/prepare-lxd-host.sh` does both), or set `provider.socket_path`" }
    )]
    NoSocket {
        looked: Vec<PathBuf>,
        configured: bool,
    },
    #[error("cannot reach LXD at {endpoint} while {doing}: {message}.\n  {fix}")]
    Unreachable {
        endpoint: String,
        doing: String,
        message: String,
        fix: String,
    },
    /// A remote LXD presented a certificate other than the pinned one.
    #[error(
        "the LXD server at {endpoint} is not the one pinned: its certificate's fingerprint is \
         {got}, the pinned one is {expected}.\n  Another server answers at this address, or this \
         server's certificate was replaced. If you replaced it, read the new fingerprint on the \
         server (`lxc info | grep certificate_fingerprint`), set `provider.server_fingerprint` to \
         it and run the command again; otherwise do not go on"
    )]
    ServerMismatch {
        endpoint: String,
        expected: String,
        got: String,
    },
    /// A remote LXD does not trust our client certificate (and no token made it).
    #[error("LXD at {endpoint} does not trust this client: {why}.\n  {fix}")]
    NotTrusted {
        endpoint: String,
        why: String,
        fix: String,
    },
    /// The client certificate of a remote LXD could not be read, made or used.
    #[error(
        "the LXD client certificate {} cannot be used: {message}.\n  Check \
         `provider.client_certificate` and `provider.client_key` (PEM files), or remove both to \
         let the deployer make one for the environment",
        path.display()
    )]
    ClientCertificate { path: PathBuf, message: String },
    #[error("LXD refused {doing}: {message} (HTTP {status})")]
    Api {
        doing: String,
        status: u16,
        message: String,
    },
    #[error("LXD operation for {doing} failed: {message}")]
    Operation { doing: String, message: String },
    /// The instance is locked by another of LXD's operations (a start, or the stop hooks of a
    /// failed start, hold it for a minute or more).
    #[error(
        "LXD refused {doing}: {message}.\n  Another LXD operation (\"{action}\") holds the \
         instance, e.g. the stop hooks of a failed start, which take a minute or more. Wait, then \
         run the command again: it carries on"
    )]
    Busy {
        doing: String,
        action: String,
        message: String,
    },
    #[error(
        "LXD did not finish {doing} within {secs} s; the operation may still be running in LXD.\n  \
         Run the command again: it carries on (for provision, `--lxd-timeout SECONDS` allows more \
         time, e.g. for a large image download)"
    )]
    Timeout { doing: String, secs: u64 },
    #[error("unexpected answer from LXD while {doing}: {message}")]
    Decode { doing: String, message: String },
}

impl crate::error_kind::Classify for LxdError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            LxdError::NoSocket { .. } | LxdError::Unreachable { .. } => ErrorKind::LxdUnreachable,
            LxdError::ServerMismatch { .. } => ErrorKind::LxdServerMismatch,
            LxdError::NotTrusted { .. } => ErrorKind::LxdNotTrusted,
            LxdError::ClientCertificate { .. } => ErrorKind::Io,
            LxdError::Timeout { .. } => ErrorKind::LxdTimeout,
            LxdError::Busy { .. } => ErrorKind::LxdBusy,
            LxdError::Api { .. } | LxdError::Operation { .. } | LxdError::Decode { .. } => {
                ErrorKind::LxdFailed
            }
        }
    }
}

impl LxdError {
    /// LXD answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LxdError::Api { status: 404, .. })
    }

    /// LXD refused because the instance is locked by another operation.
    pub fn is_busy(&self) -> bool {
        matches!(self, LxdError::Busy { .. })
    }

    /// A refusal or a failed operation, as LXD reported it.
    pub(super) fn refused(doing: &str, status: u16, message: String, operation: bool) -> Self {
        let doing = doing.to_string();
        if let Some(action) = busy_action(&message) {
            return LxdError::Busy {
                doing,
                action,
                message,
            };
        }
        if operation {
            LxdError::Operation { doing, message }
        } else {
            LxdError::Api {
                doing,
                status,
                message,
            }
        }
    }
}

/// The action named by LXD's "instance busy" refusal.
///
/// LXD (5.0 to today) refuses work on an instance that another operation holds with
/// `Instance is busy running a "stop" operation` (its `operationlock` package), and with the
/// status code of any failure (400 for a failed operation, 400 or 500 for a refused request):
/// nothing in its answer but these words tells it apart. This is the one place that reads
/// them; everything else matches [`LxdError::Busy`].
fn busy_action(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("is busy running a \"")?;
    let (action, _) = rest.split_once('"')?;
    Some(action.to_string())
}
