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

struct EnvFile {
    lines: Vec<String>,
}

impl EnvFile {
    fn comment(&mut self, text: &str) {
        for line in text.lines() {
            self.lines.push(format!("# {line}").trim_end().to_string());
        }
    }

    fn var(&mut self, key: &str, value: &str, field: &str) -> Result<(), StackError> {
        let found = if value.contains("${") {
            Some("`${` (docker-compose 1.x expands it even in quotes)".to_string())
        } else {
            value
                .chars()
                .find(|c| *c == '\'' || *c == '\\' || c.is_control())
                .map(|c| match c {
                    '\'' => "a single quote (')".to_string(),
                    '\\' => "a backslash (\\)".to_string(),
                    c => format!("a control character (U+{:04X})", c as u32),
                })
        };
        if let Some(what) = found {
            return Err(StackError::UnsafeValue {
                field: field.to_string(),
                reason: format!(
                    "contains {what}, which cannot be written to the stack's .env file so that \
                     both docker-compose 1.x and Compose v2 read it unchanged; choose a value \
                     without `${{`, single quotes, backslashes or control characters"
                ),
            });
        }
        self.lines.push(format!("{key}='{value}'"));
        Ok(())
    }
}

pub(crate) fn file(plan: &Plan<'_>) -> Result<StackFile, StackError> {
    let config = plan.config;
    let mut env = EnvFile { lines: Vec::new() };
    env.comment(&format!(
        "Secrets of the Torrust Tracker stack of environment '{}'.\n\
         Generated by torrust-tracker-deployer: `release` overwrites this file. Keep it 0600.",
        config.name()
    ));
    env.var(
        "COMPOSE_PROJECT_NAME",
        layout::COMPOSE_PROJECT_NAME,
        "compose project name",
    )?;
    env.lines.push(String::new());
    env.comment("Tracker (configuration overrides).");
    env.var(
        ENV_API_ADMIN_TOKEN,
        &tracker_override_value(config.tracker.http_api.admin_token.expose()),
        "tracker.http_api.admin_token",
    )?;
    match &config.tracker.core.database {
        Database::Sqlite3(_) => {
            env.var(ENV_DATABASE_DRIVER, "sqlite3", "tracker.core.database")?;
        }
        Database::Mysql(m) => {
            env.var(ENV_DATABASE_DRIVER, "mysql", "tracker.core.database")?;
            // Checked separately: the URL encodes them, but MySQL gets them raw below.
            env.var(
                ENV_DATABASE_PATH,
                &tracker_override_value(mysql_url(m).expose()),
                "tracker.core.database",
            )?;
            env.lines.push(String::new());
            env.comment("MySQL.");
            let root = m
                .root_password
                .as_ref()
                .ok_or(StackError::MissingRootPassword)?;
            env.var(
                ENV_MYSQL_ROOT_PASSWORD,
                root.expose(),
                "tracker.core.database.root_password",
            )?;
            env.var(
                ENV_MYSQL_PASSWORD,
                m.password.expose(),
                "tracker.core.database.password",
            )?;
        }
    }
    if let Some(g) = &config.grafana {
        env.lines.push(String::new());
        env.comment("Grafana.");
        env.var(
            ENV_GRAFANA_ADMIN_PASSWORD,
            g.admin_password.expose(),
            "grafana.admin_password",
        )?;
    }
    let mut text = env.lines.join("\n");
    text.push('\n');
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
        let url = mysql_url(&mysql("tr@ck:er", "p@ss:w/rd?#%&=+ é", "torrust_tracker"));
        assert_eq!(
            url.expose(),
            "mysql://tr%40ck%3Aer:p%40ss%3Aw%2Frd%3F%23%25%26%3D%2B%20%C3%A9@mysql:3306/torrust_tracker"
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
        for bad in [
            "it's",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "a${HOME}b",
        ] {
            let mut env = EnvFile { lines: Vec::new() };
            let err = env.var("K", bad, "some.field").unwrap_err().to_string();
            assert!(err.starts_with("some.field: contains"), "{err}");
            assert!(!err.contains(bad), "the value leaked: {err}");
        }
        let mut env = EnvFile { lines: Vec::new() };
        env.var("K", "a $b #c \"d\" e", "f").unwrap();
        assert_eq!(env.lines, ["K='a $b #c \"d\" e'"]);
    }
}
