//! Why a Hetzner Cloud API request failed, typed by the API's `error.code` (never its text),
//! each with what to do.

use crate::error_kind::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum HetznerError {
    #[error(
        "no Hetzner Cloud API token: `provider.api_token` is empty and HCLOUD_TOKEN is not set.\n  \
         Fix: put a read/write token of the project in the environment file, or export HCLOUD_TOKEN"
    )]
    NoToken,
    #[error(
        "the Hetzner Cloud API at {url} cannot be reached while {doing}: {source}\n  Check this \
         machine's network and proxy (or TORRUST_HETZNER_API_URL), then run the command again: it \
         resumes"
    )]
    Unreachable {
        url: String,
        doing: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the Hetzner Cloud API refused the token while {doing} (HTTP {status} {code}: {message}).\n  \
         Fix: use a read/write API token of the project that is to hold the server (Cloud \
         console → project → Security → API tokens), in `provider.api_token` or HCLOUD_TOKEN; \
         a revoked or read-only token is refused"
    )]
    Unauthorized {
        doing: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "Hetzner Cloud already has {what} while {doing} (uniqueness_error: {message}).\n  It does \
         not carry this environment's label, so it was left alone. Fix: rename or delete it in \
         the Cloud console, or give this environment another name (`environment.instance_name`)"
    )]
    Uniqueness {
        doing: String,
        what: String,
        message: String,
    },
    #[error(
        "the Hetzner Cloud project reached a limit while {doing} (resource_limit_exceeded{limits}: \
         {message}).\n  Fix: delete servers or other resources the project no longer needs, or \
         ask Hetzner to raise the limit (Cloud console → project → Limits), then run the command \
         again: it resumes"
    )]
    LimitExceeded {
        doing: String,
        limits: String,
        message: String,
    },
    #[error(
        "Hetzner Cloud cannot place the server while {doing} ({code}: {message}).\n  The server \
         type is not available in the location (or that location has no capacity for it now). \
         Fix: choose another `provider.location` or `provider.server_type` (the API's \
         `GET /v1/server_types` lists each type's locations), then run provision again: it \
         resumes"
    )]
    Unavailable {
        doing: String,
        code: String,
        message: String,
    },
    #[error(
        "the Hetzner Cloud API kept answering 429 rate_limit_exceeded while {doing} ({tries} \
         tries{reset}).\n  The project's request budget (3600 an hour, shared by every tool \
         using it) is spent. Fix: wait until it refills and run the command again: it resumes"
    )]
    RateLimited {
        doing: String,
        tries: u32,
        reset: String,
    },
    #[error(
        "Hetzner Cloud action {id} ({command}) ended in error while {doing}: {code}: {message}\n  \
         Fix: run the command again: it resumes and finds what was made by its label; if it \
         fails the same way, `destroy` the environment and provision again"
    )]
    ActionFailed {
        doing: String,
        id: i64,
        command: String,
        code: String,
        message: String,
    },
    #[error(
        "Hetzner Cloud action {id} ({command}) did not finish within {secs} s while {doing}.\n  \
         Run the command again: it resumes and waits again"
    )]
    ActionTimeout {
        doing: String,
        id: i64,
        command: String,
        secs: u64,
    },
    #[error(
        "the Hetzner Cloud API answered HTTP {status} {code} while {doing}: {message}\n  \
         Run the command again: it resumes; if it keeps failing, check the API's status page"
    )]
    Api {
        doing: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("the Hetzner Cloud API sent an answer this client cannot read while {doing}: {detail}")]
    Decode { doing: String, detail: String },
}

impl Classify for HetznerError {
    fn kind(&self) -> ErrorKind {
        match self {
            HetznerError::NoToken | HetznerError::Unauthorized { .. } => {
                ErrorKind::HetznerUnauthorized
            }
            HetznerError::Unreachable { .. } => ErrorKind::HetznerUnreachable,
            HetznerError::Uniqueness { .. } => ErrorKind::HetznerConflict,
            HetznerError::LimitExceeded { .. } => ErrorKind::HetznerLimit,
            HetznerError::Unavailable { .. } => ErrorKind::HetznerUnavailable,
            HetznerError::RateLimited { .. } => ErrorKind::HetznerRateLimited,
            HetznerError::ActionFailed { .. } | HetznerError::ActionTimeout { .. } => {
                ErrorKind::HetznerActionFailed
            }
            HetznerError::Api { .. } | HetznerError::Decode { .. } => ErrorKind::HetznerFailed,
        }
    }
}

impl HetznerError {
    /// The API's error code, when the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            HetznerError::Unauthorized { code, .. }
            | HetznerError::Unavailable { code, .. }
            | HetznerError::Api { code, .. } => Some(code),
            HetznerError::Uniqueness { .. } => Some("uniqueness_error"),
            HetznerError::LimitExceeded { .. } => Some("resource_limit_exceeded"),
            HetznerError::RateLimited { .. } => Some("rate_limit_exceeded"),
            _ => None,
        }
    }

    /// The typed error of a failed answer, by its `error.code`.
    pub(super) fn from_api(
        doing: &str,
        status: u16,
        error: super::api::ApiError,
        what: &str,
    ) -> Self {
        let doing = doing.to_string();
        let details = error.details.unwrap_or_default();
        let placement_field = details
            .fields
            .iter()
            .any(|f| f.name == "server_type" || f.name == "location");
        match error.code.as_str() {
            "unauthorized" | "forbidden" | "token_readonly" => HetznerError::Unauthorized {
                doing,
                status,
                code: error.code,
                message: error.message,
            },
            "uniqueness_error" => HetznerError::Uniqueness {
                doing,
                what: what.to_string(),
                message: error.message,
            },
            "resource_limit_exceeded" => HetznerError::LimitExceeded {
                doing,
                limits: if details.limits.is_empty() {
                    String::new()
                } else {
                    let names: Vec<_> = details.limits.iter().map(|l| l.name.as_str()).collect();
                    format!(", limit {}", names.join(", "))
                },
                message: error.message,
            },
            "resource_unavailable" | "placement_error" | "invalid_server_type" => {
                HetznerError::Unavailable {
                    doing,
                    code: error.code,
                    message: error.message,
                }
            }
            "invalid_input" if placement_field => HetznerError::Unavailable {
                doing,
                code: error.code,
                message: error.message,
            },
            _ => HetznerError::Api {
                doing,
                status,
                code: error.code,
                message: error.message,
            },
        }
    }
}
