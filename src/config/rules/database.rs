//! `tracker.core.database`: the SQLite file name and the MySQL host. (The MySQL port, database
//! and user names are typed values, parsed when read; the passwords are secrets: `secrets`.)

use super::{Report, v};
use crate::config::{Database, EnvironmentConfig};

pub(super) fn database(config: &EnvironmentConfig, r: &mut Report) {
    match &config.tracker.core.database {
        Database::Sqlite3(s) => {
            let name = &s.database_name;
            let bad = if name.trim().is_empty() {
                Some("must not be empty".to_string())
            } else if name.contains(['/', '\\']) {
                Some("must be a file name, not a path".to_string())
            } else if name == "." || name == ".." {
                Some("must be a file name".to_string())
            } else if name.chars().any(|c| c.is_control()) {
                Some("contains control characters".to_string())
            } else {
                None
            };
            if let Some(e) = bad {
                r.add(
                    "tracker.core.database.database_name",
                    format!("invalid SQLite database name: {e}"),
                    v(name),
                    "use a file name such as `tracker.db` (it is kept in the tracker's data \
                     directory)",
                );
            }
        }
        Database::Mysql(m) => {
            let path = "tracker.core.database.host";
            if m.host.trim().is_empty() {
                r.add(
                    path,
                    "the MySQL host is empty",
                    v(&m.host),
                    "use the MySQL service name, `mysql`",
                );
            } else if m
                .host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@')
            {
                r.add(
                    path,
                    "the MySQL host is not a host name",
                    v(&m.host),
                    "use a host name such as `mysql` (no scheme, user or path)",
                );
            }
        }
    }
}
