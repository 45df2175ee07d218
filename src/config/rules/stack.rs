//! The stack's own checks, run at validation: what a file of the stack cannot hold (a quote in
//! a password written to `.env`, a MySQL host that is not a service name...) is refused by
//! `validate` and `create`, not first by `render` or `release`.

use super::{Report, secret_v, v};
use crate::config::{Database, EnvironmentConfig};
use crate::stack::StackError;

/// Fields whose values are secrets: a problem never shows them.
const SECRETS: [&str; 4] = [
    "tracker.http_api.admin_token",
    "tracker.core.database.password",
    "tracker.core.database.root_password",
    "grafana.admin_password",
];

pub(super) fn stack(config: &EnvironmentConfig, r: &mut Report) {
    // A tracker image whose statistics Prometheus may not be able to collect.
    if let Some(warning) = crate::stack::monitoring::scrape_warning(config) {
        r.warn("images.tracker", warning);
    }
    // Rendering assumes the other rules passed (and no value holds a stand-in); a problem
    // already found at a field is not reported twice.
    let clean = r.problems.is_empty() && r.reported.is_empty();
    for e in crate::stack::check_values(config, clean) {
        let (field, reason) = match e {
            StackError::UnsafeValue { field, reason } => (field, reason),
            // The root password is generated when absent: not a problem of the file.
            StackError::MissingRootPassword => continue,
        };
        if !r.accepted(&field) || r.problems.iter().any(|p| p.path == field) {
            continue;
        }
        let (value, fix) = describe(config, &field);
        r.add(field, reason, value, fix);
    }
}

/// The value to show and the fix for a problem at `field`.
fn describe(config: &EnvironmentConfig, field: &str) -> (Option<String>, &'static str) {
    if SECRETS.contains(&field) {
        return (
            secret_v(),
            "choose a value without `${`, quotes, backslashes, line breaks or other control \
             characters, e.g. from `openssl rand -hex 32`",
        );
    }
    match (field, &config.tracker.core.database) {
        ("tracker.core.database.host", Database::Mysql(m)) => (
            v(&m.host),
            "use `mysql`, the name of the MySQL service of the stack",
        ),
        _ => (None, "change the value as the message says"),
    }
}
