//! Password changes after the first deploy: MySQL's root and tracker passwords, and Grafana's
//! admin password.
//!
//! MySQL and Grafana read their passwords from the environment only when their data directory
//! is created. A new value in `.env` alone changes nothing inside them: the tracker would then
//! fail to log in to MySQL, and Grafana would keep the old admin password. This task applies
//! the change inside the running services, before `release` uploads the new `.env`:
//!
//! - facts: [`read`], one root command: is the host's `.env` the one this release brings
//!   (sha256), and if not, are MySQL and Grafana initialised (their data directories) and which
//!   of their containers run. Only when `.env` differs is it downloaded (never logged) and the
//!   values of the last release compared with the new ones ([`plan`]).
//! - apply: MySQL: a script fed on standard input to `sh` in the mysql container (`docker exec
//!   -i`), so that no password is on a command line. It logs in as root over the socket with
//!   the root password of the last release (the host's `.env`), else with the new one (a change
//!   applied by a run that was interrupted before the upload), from 0600 option files in a
//!   private temporary directory; runs `ALTER USER` for `root` (`localhost` and `%`) and the
//!   tracker's user; and removes the directory. Grafana: `grafana cli admin
//!   reset-admin-password --password-from-stdin` in its container, the password on its input.
//! - verify: the same MySQL script logs in with the new root password and, over TCP, as the
//!   tracker's user with its new password, and checks that a changed root password of the last
//!   release is refused. Grafana: the CLI's exit status.
//!
//! The order makes the change survive an interruption: until `.env` is replaced, every rerun
//! sees the difference again, and the login falls back to the new root password once the
//! change is applied. `run` then recreates the containers whose environment changed (`compose
//! up -d`): the tracker, with its new database URL.
//!
//! A change that cannot be applied because the service is stopped is refused, saying how.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{Plan, TaskError};
use crate::config::{Database, EnvironmentConfig};
use crate::host::Host;
use crate::secret::Secret;
use crate::ssh::{Stdin, shell_quote};
use crate::stack::{
    ENV_GRAFANA_ADMIN_PASSWORD, ENV_MYSQL_PASSWORD, ENV_MYSQL_ROOT_PASSWORD, Service, layout,
};

pub const TASK: &str = "apply password changes";

/// What this release wants MySQL and Grafana to accept.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The sha256 of the `.env` this release uploads.
    pub env_sha256: String,
    pub mysql: Option<MysqlWanted>,
    /// Grafana's admin password, when the stack has Grafana.
    pub grafana: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct MysqlWanted {
    pub root_password: Secret,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub port: u16,
}

impl Wanted {
    /// From the configuration and the `.env` the stack renders for it. `None`: the stack has
    /// neither MySQL nor Grafana, so there is nothing to check.
    pub fn new(config: &EnvironmentConfig, env_file: &[u8]) -> Option<Wanted> {
        let mysql = match &config.tracker.core.database {
            Database::Mysql(m) => Some(MysqlWanted {
                root_password: m.root_password.clone().unwrap_or_default(),
                user: m.username.as_str().to_string(),
                password: m.password.clone(),
                database: m.database_name.as_str().to_string(),
                port: m.port.get(),
            }),
            Database::Sqlite3(_) => None,
        };
        let grafana = config.grafana.as_ref().map(|g| g.admin_password.clone());
        if mysql.is_none() && grafana.is_none() {
            return None;
        }
        Some(Wanted {
            env_sha256: sha256_hex(env_file),
            mysql,
            grafana,
        })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host's `.env` compared with the one this release brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFile {
    /// No `.env` yet: the first release.
    Absent,
    /// The same file: no password changed since the last release.
    Current,
    /// Another file: some value changed.
    Changed,
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub env_file: EnvFile,
    /// MySQL's data directory holds its system schema: it read its passwords already.
    pub mysql_initialized: bool,
    /// Grafana's database exists: it read its admin password already.
    pub grafana_initialized: bool,
    /// service -> the ID of its running container.
    pub running: BTreeMap<String, String>,
}

fn mysql_system_dir() -> String {
    layout::mysql_data()
        .join("mysql")
        .to_string_lossy()
        .into_owned()
}

fn grafana_db() -> String {
    layout::grafana_data()
        .join("grafana.db")
        .to_string_lossy()
        .into_owned()
}

/// The facts script: `env absent|current|changed`, then (changed only) `mysql initialized`,
/// `grafana initialized` and `running SERVICE ID` lines.
pub fn facts_script(wanted: &Wanted) -> String {
    let mut s = format!(
        "e={env}\n\
         if [ ! -f \"$e\" ]; then echo env absent; exit 0; fi\n\
         if [ \"$(sha256sum < \"$e\" | cut -c1-64)\" = {sha} ]; then echo env current; exit 0; fi\n\
         echo env changed\n",
        env = shell_quote(layout::ENV_FILE),
        sha = shell_quote(&wanted.env_sha256),
    );
    if wanted.mysql.is_some() {
        s.push_str(&format!(
            "[ -d {} ] && echo mysql initialized\n",
            shell_quote(&mysql_system_dir())
        ));
    }
    if wanted.grafana.is_some() {
        s.push_str(&format!(
            "[ -f {} ] && echo grafana initialized\n",
            shell_quote(&grafana_db())
        ));
    }
    s.push_str(&format!(
        "c=$(docker ps --no-trunc --filter label=com.docker.compose.project={} --filter \
         status=running --format '{{{{.Label \"com.docker.compose.service\"}}}} {{{{.ID}}}}') || exit 3\n\
         printf '%s\\n' \"$c\" | sed -n 's/^\\(..*\\) \\(..*\\)$/running \\1 \\2/p'\n\
         exit 0\n",
        layout::COMPOSE_PROJECT_NAME
    ));
    s
}

/// Parses [`facts_script`]'s output.
pub fn parse_facts(text: &str) -> Result<Facts, TaskError> {
    let mut env_file = None;
    let mut facts = Facts {
        env_file: EnvFile::Absent,
        mysql_initialized: false,
        grafana_initialized: false,
        running: BTreeMap::new(),
    };
    for line in text.lines() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["env", "absent"] => env_file = Some(EnvFile::Absent),
            ["env", "current"] => env_file = Some(EnvFile::Current),
            ["env", "changed"] => env_file = Some(EnvFile::Changed),
            ["mysql", "initialized"] => facts.mysql_initialized = true,
            ["grafana", "initialized"] => facts.grafana_initialized = true,
            ["running", service, id] if is_container_id(id) => {
                facts.running.insert(service.to_string(), id.to_string());
            }
            _ => {}
        }
    }
    facts.env_file = env_file.ok_or_else(|| {
        TaskError::Facts(format!("{TASK}: the facts script said nothing about .env"))
    })?;
    Ok(facts)
}

fn is_container_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the facts: one root command.
pub async fn read(host: &dyn Host, wanted: &Wanted) -> Result<Facts, TaskError> {
    let out = host.sudo(&facts_script(wanted)).await?.check()?;
    parse_facts(&out.stdout_str())
}

/// The values of a `.env` the deployer wrote (`KEY='value'` lines).
pub fn parse_env(text: &str) -> BTreeMap<String, Secret> {
    text.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
            Some((key.to_string(), Secret::new(value)))
        })
        .collect()
}

/// The passwords of the last release: the host's `.env`, downloaded (never logged) only when
/// the facts say it differs from this release's.
pub async fn previous(
    host: &dyn Host,
    facts: &Facts,
) -> Result<BTreeMap<String, Secret>, TaskError> {
    if facts.env_file != EnvFile::Changed {
        return Ok(BTreeMap::new());
    }
    let bytes = host.download(layout::ENV_FILE).await?.unwrap_or_default();
    Ok(parse_env(&String::from_utf8_lossy(&bytes)))
}

/// A MySQL password change to apply in its running container.
#[derive(Debug, Clone)]
pub struct MysqlChange {
    pub container: String,
    /// The root password of the last release, when known.
    pub old_root: Option<Secret>,
    pub wanted: MysqlWanted,
    pub root_changed: bool,
    pub user_changed: bool,
}

/// Grafana's admin password reset in its running container.
#[derive(Debug, Clone)]
pub struct GrafanaChange {
    pub container: String,
    pub password: Secret,
}

/// What to apply.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub mysql: Option<MysqlChange>,
    pub grafana: Option<GrafanaChange>,
}

/// Refuses a change that cannot be applied because `service` does not run.
fn not_running(service: Service, what: &str) -> TaskError {
    TaskError::failed(
        TASK,
        format!(
            "{what} changed since the last release, but {service} only reads it when its data \
             directory is created, and its container is not running, so the change cannot be \
             applied inside it"
        ),
        format!(
            "start it (`torrust-tracker-deployer start ENV {service}`) and release again; or put \
             the previous value back in the environment file"
        ),
    )
}

/// Decides from the facts and the last release's values what must change. Pure.
pub fn plan(
    wanted: &Wanted,
    facts: &Facts,
    previous: &BTreeMap<String, Secret>,
) -> Result<Plan<Changes>, TaskError> {
    match facts.env_file {
        EnvFile::Absent => {
            return Ok(Plan::Nothing(
                "first release: the services take their passwords when they first start".into(),
            ));
        }
        EnvFile::Current => return Ok(Plan::Nothing("no password changed".into())),
        EnvFile::Changed => {}
    }
    let differs = |key: &str, new: &Secret| previous.get(key) != Some(new);
    let mut changes = Changes::default();
    let mut done = Vec::new();
    let mut notes = Vec::new();
    if let Some(m) = &wanted.mysql {
        let root_changed = differs(ENV_MYSQL_ROOT_PASSWORD, &m.root_password);
        let user_changed = differs(ENV_MYSQL_PASSWORD, &m.password);
        if (root_changed || user_changed) && facts.mysql_initialized {
            let container = facts
                .running
                .get(Service::Mysql.as_str())
                .ok_or_else(|| not_running(Service::Mysql, "a MySQL password"))?;
            check_mysql_values(m)?;
            changes.mysql = Some(MysqlChange {
                container: container.clone(),
                old_root: previous.get(ENV_MYSQL_ROOT_PASSWORD).cloned(),
                wanted: m.clone(),
                root_changed,
                user_changed,
            });
            let which = match (root_changed, user_changed) {
                (true, true) => format!("root's and {}'s", m.user),
                (true, false) => "root's".to_string(),
                _ => format!("{}'s", m.user),
            };
            done.push(format!("change MySQL {which} password"));
        } else if root_changed || user_changed {
            notes.push("MySQL has no data yet: it takes its passwords when it first starts");
        }
    }
    if let Some(new) = &wanted.grafana
        && differs(ENV_GRAFANA_ADMIN_PASSWORD, new)
    {
        if facts.grafana_initialized {
            let container = facts
                .running
                .get(Service::Grafana.as_str())
                .ok_or_else(|| not_running(Service::Grafana, "Grafana's admin password"))?;
            changes.grafana = Some(GrafanaChange {
                container: container.clone(),
                password: new.clone(),
            });
            done.push("reset Grafana's admin password".to_string());
        } else {
            notes.push("Grafana has no database yet: it takes its password when it first starts");
        }
    }
    if done.is_empty() {
        let text = if notes.is_empty() {
            "no password changed".to_string()
        } else {
            notes.join("; ")
        };
        return Ok(Plan::Nothing(text));
    }
    Ok(Plan::Apply(changes, done.join("; ")))
}

/// The values the MySQL script writes into SQL strings, option files and here-documents: no
/// control characters (a line break could end a here-document), and no quote or backslash in
/// the passwords (the environment file's rules refuse them already).
fn check_mysql_values(m: &MysqlWanted) -> Result<(), TaskError> {
    let bad_password = |p: &Secret| {
        p.expose()
            .chars()
            .any(|c| c.is_control() || c == '\'' || c == '\\')
    };
    if m.user.chars().any(char::is_control)
        || bad_password(&m.password)
        || bad_password(&m.root_password)
    {
        return Err(TaskError::failed(
            TASK,
            "a MySQL user name or password holds a control character, a quote or a backslash",
            "choose values without them",
        ));
    }
    Ok(())
}

/// An SQL string literal of `s` (quotes doubled, backslashes escaped).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A `[client]` option file with this password (quoted; it holds no quote or backslash).
fn option_file(name: &str, password: &Secret) -> String {
    format!(
        "cat > \"$d/{name}.cnf\" <<'TORRUST_EOF'\n[client]\npassword='{}'\nTORRUST_EOF\n",
        password.expose()
    )
}

/// Exit codes of [`mysql_script`].
const NO_TEMP: u32 = 90;
const NO_ROOT_LOGIN: u32 = 91;
const ALTER_FAILED: u32 = 92;
const NEW_ROOT_REFUSED: u32 = 93;
const NEW_USER_REFUSED: u32 = 94;
const OLD_ROOT_ACCEPTED: u32 = 95;

/// The script `sh` runs in the mysql container, from its standard input. It holds the
/// passwords: it is never logged and never on a command line. Its output holds none: MySQL's
/// errors are reduced to their codes (`ERROR 1396 (HY000)`), as their text may quote the
/// statement.
pub fn mysql_script(c: &MysqlChange) -> String {
    let m = &c.wanted;
    let user = sql_string(&m.user);
    // Only `sh` builtins, `cat`, `mkdir` and `rm` besides `mysql`: the official image is a slim
    // Oracle Linux.
    let mut s = format!(
        "set -u\numask 077\n\
         d=${{TMPDIR:-/tmp}}/.torrust-passwords.$$\n\
         rm -rf \"$d\" && mkdir -m 700 \"$d\" || exit {NO_TEMP}\n\
         trap 'rm -rf \"$d\"' EXIT\n\
         codes() {{ while IFS= read -r l; do case $l in 'ERROR '*) printf '%s\\n' \"${{l%%:*}}\" >&2; return;; esac; done; }}\n",
    );
    // Root's candidates: the last release's password, then the new one.
    let old = c.old_root.as_ref().filter(|o| *o != &m.root_password);
    if let Some(old) = old {
        s.push_str(&option_file("old", old));
    }
    s.push_str(&option_file("new", &m.root_password));
    s.push_str(&option_file("user", &m.password));
    s.push_str(&format!(
        "cat > \"$d/alter.sql\" <<'TORRUST_EOF'\n\
         ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY {root};\n\
         ALTER USER IF EXISTS 'root'@'%' IDENTIFIED BY {root};\n\
         ALTER USER {user}@'%' IDENTIFIED BY {pass};\n\
         FLUSH PRIVILEGES;\n\
         TORRUST_EOF\n",
        root = sql_string(m.root_password.expose()),
        pass = sql_string(m.password.expose()),
    ));
    let root = "mysql --defaults-extra-file=\"$d/$c.cnf\" --user=root";
    s.push_str(&format!(
        "login=\"\"\n\
         for c in {candidates}; do\n\
           if err=$({root} -e 'SELECT 1' 2>&1 >/dev/null); then login=$c; break; fi\n\
         done\n\
         if [ -z \"$login\" ]; then printf '%s\\n' \"$err\" | codes; exit {NO_ROOT_LOGIN}; fi\n\
         echo \"root login: $login\"\n\
         c=$login\n\
         if ! err=$({root} --default-character-set=utf8mb4 < \"$d/alter.sql\" 2>&1); then printf '%s\\n' \"$err\" | codes; exit {ALTER_FAILED}; fi\n\
         c=new\n\
         if ! err=$({root} -e 'SELECT 1' 2>&1 >/dev/null); then printf '%s\\n' \"$err\" | codes; exit {NEW_ROOT_REFUSED}; fi\n\
         if ! err=$(mysql --defaults-extra-file=\"$d/user.cnf\" --user={shell_user} --protocol=tcp \
         --host=127.0.0.1 --port={port} -e 'SELECT 1' {db} 2>&1 >/dev/null); then printf '%s\\n' \"$err\" | codes; exit {NEW_USER_REFUSED}; fi\n",
        candidates = if old.is_some() { "old new" } else { "new" },
        shell_user = shell_quote(&m.user),
        port = m.port,
        db = shell_quote(&m.database),
    ));
    if old.is_some() {
        s.push_str(&format!(
            "c=old\n\
             if {root} -e 'SELECT 1' >/dev/null 2>&1; then exit {OLD_ROOT_ACCEPTED}; fi\n"
        ));
    }
    s.push_str("echo verified\n");
    s
}

/// Applies the changes: MySQL first (the tracker's login), then Grafana. Returns what was done.
pub async fn apply(host: &dyn Host, changes: &Changes) -> Result<Vec<String>, TaskError> {
    let mut done = Vec::new();
    if let Some(c) = &changes.mysql {
        apply_mysql(host, c).await?;
        done.push(format!(
            "MySQL: {} changed and verified",
            match (c.root_changed, c.user_changed) {
                (true, true) => format!("root's and {}'s passwords", c.wanted.user),
                (true, false) => "root's password".to_string(),
                _ => format!("{}'s password", c.wanted.user),
            }
        ));
    }
    if let Some(g) = &changes.grafana {
        apply_grafana(host, g).await?;
        done.push("Grafana: admin password reset".to_string());
    }
    Ok(done)
}

async fn apply_mysql(host: &dyn Host, c: &MysqlChange) -> Result<(), TaskError> {
    let command = format!("docker exec -i {} sh -s", shell_quote(&c.container));
    let script = mysql_script(c).into_bytes();
    let out = host
        .sudo_stdin(&command, Stdin::Bytes(script), None)
        .await?;
    let code = match out.status.code() {
        Some(0) => return Ok(()),
        Some(code) => code,
        None => {
            return Err(TaskError::failed(
                TASK,
                format!(
                    "the MySQL script ended without an exit status ({})",
                    out.status
                ),
                "release again: the change is applied at most once",
            ));
        }
    };
    // Only MySQL's error codes, never its text (it may quote a statement with a password).
    let error = out
        .stderr_str()
        .lines()
        .rev()
        .find(|l| l.starts_with("ERROR "))
        .map(|l| format!(" (MySQL {})", l.trim()))
        .unwrap_or_default();
    let user = &c.wanted.user;
    let (message, fix) = match code {
        NO_ROOT_LOGIN => (
            format!(
                "MySQL accepts neither the root password of the last release nor the new \
                 one{error}"
            ),
            "set `tracker.core.database.root_password` to the root password MySQL has, and \
             release again; or reset it by hand (the MySQL manual: resetting the root password)"
                .to_string(),
        ),
        ALTER_FAILED => (
            format!("ALTER USER failed{error}"),
            format!(
                "MySQL creates the user `{user}` only on its first start: if `username` changed \
                 since, put it back; see `torrust-tracker-deployer logs ENV mysql`"
            ),
        ),
        NEW_ROOT_REFUSED => (
            format!("after ALTER USER, MySQL refuses the new root password{error}"),
            "see `torrust-tracker-deployer logs ENV mysql`, then release again".to_string(),
        ),
        NEW_USER_REFUSED => (
            format!("after ALTER USER, MySQL refuses {user} with the new password over TCP{error}"),
            "see `torrust-tracker-deployer logs ENV mysql`, then release again".to_string(),
        ),
        OLD_ROOT_ACCEPTED => (
            "after ALTER USER, MySQL still accepts the previous root password (another root \
             account?)"
                .to_string(),
            "look at the root accounts: `torrust-tracker-deployer exec ENV mysql -- mysql -uroot \
             -p -e \"SELECT user, host FROM mysql.user\"`"
                .to_string(),
        ),
        NO_TEMP => (
            "cannot create a private temporary directory in the mysql container".to_string(),
            "see `torrust-tracker-deployer logs ENV mysql`".to_string(),
        ),
        other => (
            format!("the MySQL script failed with exit code {other}{error}"),
            "see `torrust-tracker-deployer logs ENV mysql`, then release again".to_string(),
        ),
    };
    Err(if (NEW_ROOT_REFUSED..=OLD_ROOT_ACCEPTED).contains(&code) {
        TaskError::NotVerified {
            task: TASK.into(),
            found: message,
            fix,
        }
    } else {
        TaskError::failed(TASK, message, fix)
    })
}

/// `grafana cli admin reset-admin-password --password-from-stdin` in the Grafana container
/// (Grafana 9.1 and later read the password from the input; the image's working directory is
/// Grafana's home, and its environment names the data directory).
pub fn grafana_command(container: &str) -> String {
    format!(
        "docker exec -i {} grafana cli admin reset-admin-password --password-from-stdin",
        shell_quote(container)
    )
}

async fn apply_grafana(host: &dyn Host, g: &GrafanaChange) -> Result<(), TaskError> {
    let input = format!("{}\n", g.password.expose()).into_bytes();
    let out = host
        .sudo_stdin(&grafana_command(&g.container), Stdin::Bytes(input), None)
        .await?;
    if out.success() {
        return Ok(());
    }
    // Grafana's CLI never prints the password: its last line says what went wrong.
    let said = out
        .stderr_str()
        .lines()
        .chain(out.stdout_str().lines())
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != "New Password:")
        .unwrap_or("no message")
        .to_string();
    Err(TaskError::failed(
        TASK,
        format!(
            "Grafana's admin password reset failed ({}): {said}",
            out.status
        ),
        "see `torrust-tracker-deployer logs ENV grafana`; or reset it in Grafana (profile → \
         change password) and put the same value in `grafana.admin_password`",
    ))
}

#[cfg(test)]
mod tests;
