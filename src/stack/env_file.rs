//! `.env`: every secret of the stack, next to the compose file, mode 0600.
//!
//! Compose reads it for the `${VAR}` references of the compose file (it is not passed whole to
//! any container: each service gets only the variables it names).
//!
//! Format: `KEY='value'`. Single quotes make the value literal for Compose v2 (compose-go: no
//! expansion, no escapes in single quotes) and for docker-compose 1.29 (python-dotenv 0.21)
//! except for one thing: python-dotenv still expands `${NAME}` inside single quotes (checked
//! with docker-compose 1.29.2; `$NAME` without braces stays literal). There is no portable way
//! to write `${`, `'`, `\` or a line break in such a value, so values holding them are refused.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{FileRole, Plan, StackError, StackFile, layout};
use crate::config::{Database, MysqlDatabase};
use crate::secret::Secret;

/// The tracker's API admin token (tracker config override).
pub const ENV_API_ADMIN_TOKEN: &str =
    "TORRUST_TRACKER_CONFIG_OVERRIDE_HTTP_API__ACCESS_TOKENS__ADMIN";
/// The tracker's database driver (tracker config override; the image's entry script reads it).
pub const ENV_DATABASE_DRIVER: &str = "TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__DRIVER";
/// The tracker's MySQL URL (tracker config override), MySQL only.
pub const ENV_DATABASE_PATH: &str = "TORRUST_TRACKER_CONFIG_OVERRIDE_CORE__DATABASE__PATH";
/// MySQL's root password (`MYSQL_ROOT_PASSWORD` of the mysql service).
pub const ENV_MYSQL_ROOT_PASSWORD: &str = "MYSQL_ROOT_PASSWORD";
/// The tracker's MySQL password (`MYSQL_PASSWORD` of the mysql service).
pub const ENV_MYSQL_PASSWORD: &str = "MYSQL_PASSWORD";
/// Grafana's admin password.
pub const ENV_GRAFANA_ADMIN_PASSWORD: &str = "GF_SECURITY_ADMIN_PASSWORD";

/// Everything but the RFC 3986 unreserved characters is percent-encoded in the user, the
/// password and the database name of the MySQL URL.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The tracker's MySQL URL, `mysql://user:password@host:port/database`, with the user, the
/// password and the database name percent-encoded. It holds the password: a [`Secret`].
pub fn mysql_url(m: &MysqlDatabase) -> Secret {
    Secret::new(format!(
        "mysql://{}:{}@{}:{}/{}",
        utf8_percent_encode(m.username.as_str(), URL_COMPONENT),
        utf8_percent_encode(m.password.expose(), URL_COMPONENT),
        m.host,
        m.port,
        utf8_percent_encode(m.database_name.as_str(), URL_COMPONENT),
    ))
}

/// The value for a tracker configuration override, as the tracker's configuration loader
/// (figment) reads it: a bare value that figment would take for a number, a boolean, an array,
/// a table or a quoted string is written as a quoted string instead, so it stays the same text.
fn tracker_override_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.trim() == value
        && !value.starts_with(['"', '\'', '[', '{'])
        && !value.starts_with("true")
        && !value.starts_with("false")
        && value.parse::<f64>().is_err()
        && value.parse::<i128>().is_err();
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('"', "\\\""))
    }
}

/// Why `value` cannot be written between single quotes in `.env`, if it cannot.
fn unwritable(value: &str) -> Option<String> {
    if value.contains("${") {
        return Some("`${` (docker-compose 1.x expands it even in quotes)".to_string());
    }
    value
        .chars()
        .find(|c| *c == '\'' || *c == '\\' || c.is_control())
        .map(|c| match c {
            '\'' => "a single quote (')".to_string(),
            '\\' => "a backslash (\\)".to_string(),
            c => format!("a control character (U+{:04X})", c as u32),
        })
}

/// Refuses a value `.env` cannot hold. `raw` is the value as configured and `value` what is
/// written for it (the same, or `raw` quoted for the tracker's configuration loader): a problem
/// is named in the terms of `raw`.
fn check_var(raw: &str, value: &str, field: &str) -> Result<(), StackError> {
    let reason = match unwritable(raw) {
        Some(what) => format!(
            "contains {what}, which cannot be written to the stack's .env file so that both \
             docker-compose 1.x and Compose v2 read it unchanged; choose a value without `${{`, \
             single quotes, backslashes or control characters"
        ),
        // Only the quoting for the tracker adds a backslash: before a double quote.
        None if unwritable(value).is_some() => "contains a double quote (\") and starts with a \
             quote or bracket, or reads as a number or a boolean: the tracker's configuration \
             loader would need it quoted with the double quote escaped, which the stack's .env \
             file cannot hold; choose a value of letters and digits (e.g. from `openssl rand -hex \
             32`)"
            .to_string(),
        None => return Ok(()),
    };
    Err(StackError::UnsafeValue {
        field: field.to_string(),
        reason,
    })
}

/// One line of `.env`.
enum Line {
    Comment(String),
    Blank,
    /// `KEY='value'`; `raw` is the configured value `value` is written for, `field` where it
    /// is configured.
    Var {
        key: &'static str,
        raw: String,
        value: String,
        field: &'static str,
    },
}

fn var(key: &'static str, raw: &str, field: &'static str) -> Line {
    Line::Var {
        key,
        raw: raw.to_string(),
        value: raw.to_string(),
        field,
    }
}

/// A tracker configuration override: written as [`tracker_override_value`].
fn tracker_var(key: &'static str, raw: &str, field: &'static str) -> Line {
    Line::Var {
        key,
        raw: raw.to_string(),
        value: tracker_override_value(raw),
        field,
    }
}

/// The lines of `.env`, unchecked. Without a MySQL root password (it is generated by
/// `create environment`), its line is left out.
fn lines(plan: &Plan<'_>) -> Vec<Line> {
    let config = plan.config;
    let mut out = Vec::new();
    let comment = |out: &mut Vec<Line>, text: &str| {
        out.extend(text.lines().map(|l| Line::Comment(l.to_string())));
    };
    comment(
        &mut out,
        &format!(
            "Secrets of the Torrust Tracker stack of environment '{}'.\n\
             Generated by torrust-tracker-deployer: `release` overwrites this file. Keep it 0600.",
            config.name()
        ),
    );
    out.push(var(
        "COMPOSE_PROJECT_NAME",
        layout::COMPOSE_PROJECT_NAME,
        "compose project name",
    ));
    out.push(Line::Blank);
    comment(&mut out, "Tracker (configuration overrides).");
    out.push(tracker_var(
        ENV_API_ADMIN_TOKEN,
        config.tracker.http_api.admin_token.expose(),
        "tracker.http_api.admin_token",
    ));
    match &config.tracker.core.database {
        Database::Sqlite3(_) => {
            out.push(var(ENV_DATABASE_DRIVER, "sqlite3", "tracker.core.database"));
        }
        Database::Mysql(m) => {
            out.push(var(ENV_DATABASE_DRIVER, "mysql", "tracker.core.database"));
            // The URL encodes the user, the password and the database name (MySQL gets them
            // raw below): only the host can make it unwritable.
            out.push(tracker_var(
                ENV_DATABASE_PATH,
                mysql_url(m).expose(),
                "tracker.core.database.host",
            ));
            out.push(Line::Blank);
            comment(&mut out, "MySQL.");
            if let Some(root) = &m.root_password {
                out.push(var(
                    ENV_MYSQL_ROOT_PASSWORD,
                    root.expose(),
                    "tracker.core.database.root_password",
                ));
            }
            out.push(var(
                ENV_MYSQL_PASSWORD,
                m.password.expose(),
                "tracker.core.database.password",
            ));
        }
    }
    if let Some(g) = &config.grafana {
        out.push(Line::Blank);
        comment(&mut out, "Grafana.");
        out.push(var(
            ENV_GRAFANA_ADMIN_PASSWORD,
            g.admin_password.expose(),
            "grafana.admin_password",
        ));
    }
    out
}

/// Every value of `.env` it cannot hold, each at its field (for validation; [`file`] stops at
/// the first).
pub(crate) fn check(plan: &Plan<'_>) -> Vec<StackError> {
    lines(plan)
        .iter()
        .filter_map(|line| match line {
            Line::Var {
                raw, value, field, ..
            } => check_var(raw, value, field).err(),
            _ => None,
        })
        .collect()
}

pub(crate) fn file(plan: &Plan<'_>) -> Result<StackFile, StackError> {
    if plan.mysql().is_some_and(|m| m.root_password.is_none()) {
        return Err(StackError::MissingRootPassword);
    }
    let mut text = String::new();
    for line in lines(plan) {
        match line {
            Line::Comment(c) => text.push_str(format!("# {c}").trim_end()),
            Line::Blank => {}
            Line::Var {
                key,
                raw,
                value,
                field,
            } => {
                check_var(&raw, &value, field)?;
                text.push_str(&format!("{key}='{value}'"));
            }
        }
        text.push('\n');
    }
    Ok(StackFile {
        path: layout::ENV_FILE.into(),
        contents: text.into_bytes(),
        mode: 0o600,
        owner: None,
        secret: true,
        role: FileRole::Compose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Port;

    fn mysql(user: &str, password: &str, db: &str) -> MysqlDatabase {
        MysqlDatabase {
            host: "mysql".into(),
            port: Port::new(3306).unwrap(),
            database_name: db.parse().unwrap(),
            username: user.parse().unwrap(),
            password: Secret::new(password),
            root_password: Some(Secret::new("root")),
        }
    }

    #[test]
    fn mysql_url_percent_encodes_user_password_and_database() {
        let url = mysql_url(&mysql("tr_ck-er", "p@ss:w/rd?#%&=+ é", "torrust_tracker"));
        assert_eq!(
            url.expose(),
            "mysql://tr_ck-er:p%40ss%3Aw%2Frd%3F%23%25%26%3D%2B%20%C3%A9@mysql:3306/torrust_tracker"
        );
        let plain = mysql_url(&mysql("torrust", "Secret-1.2_3~x", "db"));
        assert_eq!(
            plain.expose(),
            "mysql://torrust:Secret-1.2_3~x@mysql:3306/db"
        );
    }

    #[test]
    fn override_values_that_figment_would_retype_are_quoted() {
        for plain in [
            "MyAccessToken",
            "abc123",
            "mysql://u:p@mysql:3306/db",
            "true-ish",
        ] {
            let expected = if plain.starts_with("true") {
                format!("\"{plain}\"")
            } else {
                plain.to_string()
            };
            assert_eq!(tracker_override_value(plain), expected);
        }
        for typed in [
            "12345", "-3", "1.5", "1e9", "true", "false", "[a]", "{a=1}", "\"q\"", "'c'",
        ] {
            let v = tracker_override_value(typed);
            assert!(v.starts_with('"') && v.ends_with('"'), "{typed} -> {v}");
        }
        assert_eq!(tracker_override_value("\"q\""), "\"\\\"q\\\"\"");
    }

    #[test]
    fn unsafe_characters_are_refused_without_showing_the_value() {
        for (bad, what) in [
            ("it's", "single quote"),
            ("back\\slash", "backslash"),
            ("line\nbreak", "control character (U+000A)"),
            ("tab\there", "control character (U+0009)"),
            ("a${HOME}b", "`${`"),
        ] {
            let err = check_var(bad, bad, "some.field").unwrap_err().to_string();
            assert!(err.starts_with("some.field: contains"), "{err}");
            assert!(err.contains(what), "{bad:?}: {err}");
            assert!(!err.contains(bad), "the value leaked: {err}");
        }
        check_var("a $b #c \"d\" e", "a $b #c \"d\" e", "f").unwrap();
    }

    #[test]
    fn a_token_the_tracker_needs_quoted_with_a_double_quote_is_named_as_such() {
        for token in ["\"abc", "[\"x\"]", "\"\""] {
            let err = check_var(token, &tracker_override_value(token), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains("double quote"), "{token}: {err}");
            assert!(!err.contains("backslash"), "{token}: {err}");
        }
        // Quoted without a double quote inside, or plain with one: written as it is.
        for token in ["12345", "ab\"c"] {
            check_var(token, &tracker_override_value(token), "t").unwrap();
        }
        // A backslash of its own is named.
        let err = check_var("\"a\\b", &tracker_override_value("\"a\\b"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backslash"), "{err}");
    }
}
