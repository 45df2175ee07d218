use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::error_kind::{Classify, ErrorKind};
use crate::host::fake::{Call, FakeHost, Reply};

const ID: &str = "4f2a9c1d7e3b5a6f";
const GRAFANA_ID: &str = "9e8d7c6b5a4f3e2d";

fn mysql_wanted() -> MysqlWanted {
    MysqlWanted {
        root_password: Secret::new("New-Root-Pass-1"),
        user: "torrust".into(),
        password: Secret::new("New-User-Pass-2"),
        database: "torrust_tracker".into(),
        port: 3306,
    }
}

fn wanted() -> Wanted {
    Wanted {
        env_sha256: "ab".repeat(32),
        mysql: Some(mysql_wanted()),
        grafana: Some(Secret::new("New-Grafana-Pass-3")),
    }
}

/// The previous `.env` values: the root and user passwords and Grafana's.
fn previous(root: &str, user: &str, grafana: &str) -> BTreeMap<String, Secret> {
    parse_env(&format!(
        "# comment\nCOMPOSE_PROJECT_NAME='torrust'\n{ENV_MYSQL_ROOT_PASSWORD}='{root}'\n\
         {ENV_MYSQL_PASSWORD}='{user}'\n{ENV_GRAFANA_ADMIN_PASSWORD}='{grafana}'\n"
    ))
}

fn changed_facts(running: &[(&str, &str)]) -> Facts {
    Facts {
        env_file: EnvFile::Changed,
        mysql_initialized: true,
        grafana_initialized: true,
        running: running
            .iter()
            .map(|(s, id)| (s.to_string(), id.to_string()))
            .collect(),
    }
}

#[test]
fn facts_say_whether_env_changed_what_is_initialised_and_what_runs() {
    let facts = parse_facts(&format!(
        "env changed\nmysql initialized\nrunning mysql {ID}\nrunning tracker {GRAFANA_ID}\n\
         running caddy not-an-id\n"
    ))
    .unwrap();
    assert_eq!(facts.env_file, EnvFile::Changed);
    assert!(facts.mysql_initialized && !facts.grafana_initialized);
    assert_eq!(facts.running.get("mysql").map(String::as_str), Some(ID));
    assert!(!facts.running.contains_key("caddy"));
    assert_eq!(
        parse_facts("env current\n").unwrap().env_file,
        EnvFile::Current
    );
    assert_eq!(
        parse_facts("env absent\n").unwrap().env_file,
        EnvFile::Absent
    );
    assert!(parse_facts("").is_err());
}

#[tokio::test]
async fn reading_the_facts_is_one_root_command_that_holds_no_secret() {
    let host = FakeHost::new();
    host.reply("sha256sum", [Reply::ok("env current\n")]);
    let w = wanted();
    let facts = read(&host, &w).await.unwrap();
    assert_eq!(facts.env_file, EnvFile::Current);
    let commands = host.commands();
    assert_eq!(commands.len(), 1);
    assert!(commands[0].contains(&w.env_sha256), "{}", commands[0]);
    assert!(commands[0].contains("/opt/torrust/storage/mysql/data/mysql"));
    assert!(commands[0].contains("/opt/torrust/storage/grafana/data/grafana.db"));
    for secret in ["New-Root-Pass-1", "New-User-Pass-2", "New-Grafana-Pass-3"] {
        assert!(!commands[0].contains(secret));
    }
    // The same .env: nothing is downloaded.
    assert!(previous_of(&host, &facts).await.is_empty());
    assert!(!host.calls().iter().any(|c| matches!(c, Call::Download(_))));
}

async fn previous_of(host: &FakeHost, facts: &Facts) -> BTreeMap<String, Secret> {
    super::previous(host, facts).await.unwrap()
}

#[test]
fn the_facts_script_runs_and_says_absent_then_current_then_changed() {
    // The script itself, with this machine's sh and sha256sum, against a temporary `.env`.
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let mut w = wanted();
    w.env_sha256 = sha256_hex(b"A='1'\n");
    let script = facts_script(&w).replace(layout::ENV_FILE, env.to_str().unwrap());
    let run = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", fake_docker(dir.path()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        parse_facts(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    assert_eq!(run().env_file, EnvFile::Absent);
    std::fs::write(&env, "A='1'\n").unwrap();
    assert_eq!(run().env_file, EnvFile::Current);
    std::fs::write(&env, "A='2'\n").unwrap();
    let facts = run();
    assert_eq!(facts.env_file, EnvFile::Changed);
    assert_eq!(facts.running.get("mysql").map(String::as_str), Some(ID));
}

/// A directory with a stand-in `docker` that lists a running mysql container, first on PATH.
fn fake_docker(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(&docker, format!("#!/bin/sh\necho 'mysql {ID}'\n")).unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn nothing_to_do_on_a_first_release_the_same_env_or_another_value_changed() {
    let w = wanted();
    let mut facts = changed_facts(&[("mysql", ID)]);
    facts.env_file = EnvFile::Absent;
    assert!(!plan(&w, &facts, &BTreeMap::new()).unwrap().is_apply());
    facts.env_file = EnvFile::Current;
    assert!(!plan(&w, &facts, &BTreeMap::new()).unwrap().is_apply());
    // .env changed, but not its passwords (the API token, say).
    let same = previous("New-Root-Pass-1", "New-User-Pass-2", "New-Grafana-Pass-3");
    let p = plan(&w, &changed_facts(&[]), &same).unwrap();
    assert_eq!(p.text(), "no password changed");
}

#[test]
fn a_changed_mysql_password_is_applied_with_the_old_root_password() {
    let w = wanted();
    let old = previous("Old-Root-Pass", "Old-User-Pass", "New-Grafana-Pass-3");
    let p = plan(&w, &changed_facts(&[("mysql", ID)]), &old).unwrap();
    let Plan::Apply(changes, text) = p else {
        panic!("no change planned")
    };
    assert_eq!(text, "change MySQL root's and torrust's password");
    let m = changes.mysql.unwrap();
    assert_eq!(m.container, ID);
    assert_eq!(m.old_root, Some(Secret::new("Old-Root-Pass")));
    assert!(m.root_changed && m.user_changed);
    assert!(changes.grafana.is_none());

    // Only the tracker's password: root logs in with its unchanged password.
    let old = previous("New-Root-Pass-1", "Old-User-Pass", "New-Grafana-Pass-3");
    let Plan::Apply(changes, text) = plan(&w, &changed_facts(&[("mysql", ID)]), &old).unwrap()
    else {
        panic!("no change planned")
    };
    assert_eq!(text, "change MySQL torrust's password");
    let m = changes.mysql.unwrap();
    assert!(!m.root_changed && m.user_changed);
}

#[test]
fn a_change_for_a_service_that_has_no_data_yet_is_left_to_its_first_start() {
    let w = wanted();
    let old = previous("Old-Root-Pass", "Old-User-Pass", "Old-Grafana");
    let mut facts = changed_facts(&[]);
    facts.mysql_initialized = false;
    facts.grafana_initialized = false;
    let p = plan(&w, &facts, &old).unwrap();
    assert!(!p.is_apply());
    assert!(p.text().contains("MySQL has no data yet"), "{}", p.text());
    assert!(
        p.text().contains("Grafana has no database yet"),
        "{}",
        p.text()
    );
}

#[test]
fn a_change_for_a_stopped_service_is_refused_saying_how() {
    let w = wanted();
    let old = previous("Old-Root-Pass", "New-User-Pass-2", "New-Grafana-Pass-3");
    let err = plan(&w, &changed_facts(&[]), &old).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    let text = err.to_string();
    assert!(text.contains("start ENV mysql"), "{text}");
    assert!(
        !text.contains("Old-Root-Pass") && !text.contains("New-Root"),
        "{text}"
    );

    let old = previous("New-Root-Pass-1", "New-User-Pass-2", "Old-Grafana");
    let err = plan(&w, &changed_facts(&[("mysql", ID)]), &old).unwrap_err();
    assert!(err.to_string().contains("start ENV grafana"), "{err}");
}

#[test]
fn a_changed_grafana_password_is_reset_in_its_container() {
    let w = wanted();
    let old = previous("New-Root-Pass-1", "New-User-Pass-2", "Old-Grafana");
    let Plan::Apply(changes, text) =
        plan(&w, &changed_facts(&[("grafana", GRAFANA_ID)]), &old).unwrap()
    else {
        panic!("no change planned")
    };
    assert_eq!(text, "reset Grafana's admin password");
    assert!(changes.mysql.is_none());
    assert_eq!(changes.grafana.unwrap().container, GRAFANA_ID);
}

fn mysql_change(old_root: Option<&str>) -> MysqlChange {
    MysqlChange {
        container: ID.into(),
        old_root: old_root.map(Secret::new),
        wanted: mysql_wanted(),
        root_changed: true,
        user_changed: true,
    }
}

#[tokio::test]
async fn mysql_is_changed_through_stdin_never_on_a_command_line() {
    let host = FakeHost::new();
    host.reply("docker exec -i", [Reply::ok("root login: old\nverified\n")]);
    let changes = Changes {
        mysql: Some(mysql_change(Some("Old-Root-Pass"))),
        grafana: Some(GrafanaChange {
            container: GRAFANA_ID.into(),
            password: Secret::new("New-Grafana-Pass-3"),
        }),
    };
    let done = apply(&host, &changes).await.unwrap();
    assert_eq!(
        done,
        [
            "MySQL: root's and torrust's passwords changed and verified",
            "Grafana: admin password reset"
        ]
    );
    let calls = host.calls();
    let [
        Call::SudoStdin(mysql, script),
        Call::SudoStdin(grafana, input),
    ] = &calls[..]
    else {
        panic!("{calls:?}")
    };
    assert_eq!(mysql, &format!("docker exec -i {ID} sh -s"));
    assert_eq!(
        grafana,
        &format!(
            "docker exec -i {GRAFANA_ID} grafana cli admin reset-admin-password \
             --password-from-stdin"
        )
    );
    assert_eq!(input, b"New-Grafana-Pass-3\n");
    let script = String::from_utf8(script.clone()).unwrap();
    assert!(
        script.contains("ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY 'New-Root-Pass-1';")
    );
    assert!(script.contains("ALTER USER IF EXISTS 'root'@'%' IDENTIFIED BY 'New-Root-Pass-1';"));
    assert!(script.contains("ALTER USER 'torrust'@'%' IDENTIFIED BY 'New-User-Pass-2';"));
    assert!(script.contains("password='Old-Root-Pass'"));
    assert!(script.contains("for c in old new; do"));
}

#[test]
fn the_user_name_is_quoted_for_sql_and_for_the_shell() {
    let mut c = mysql_change(None);
    c.wanted.user = "tr'ck; DROP".into();
    c.wanted.database = "db name".into();
    let script = mysql_script(&c);
    assert!(
        script.contains("ALTER USER 'tr''ck; DROP'@'%' IDENTIFIED BY"),
        "{script}"
    );
    assert!(script.contains("--user='tr'\\''ck; DROP'"), "{script}");
    assert!(script.contains(" 'db name' 2>&1"), "{script}");
    // Without a known old root password, only the new one is tried, and nothing is checked
    // about the old.
    assert!(script.contains("for c in new; do"), "{script}");
    assert!(!script.contains("c=old"), "{script}");
    // A control character in a name could end a here-document: refused before any script.
    let mut w = mysql_wanted();
    w.user = "a\nTORRUST_EOF".into();
    assert!(check_mysql_values(&w).is_err());
}

/// Runs [`mysql_script`] with this machine's `sh` against a stand-in `mysql` that keeps the
/// root and user passwords in files and applies ALTER USER to them.
struct ScriptRun {
    dir: tempfile::TempDir,
}

impl ScriptRun {
    fn new(root: &str, user: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root"), root).unwrap();
        std::fs::write(dir.path().join("user"), user).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // argv: --defaults-extra-file=F --user=U [...] [-e SQL]; stdin: SQL when no -e.
        let fake = r#"#!/bin/sh
state=$(dirname "$0")/..
file=${1#--defaults-extra-file=}
user=${2#--user=}
pass=$(sed -n "s/^password='\(.*\)'$/\1/p" "$file")
case "$*" in *" -e "*) sql="" ;; *) sql=$(cat) ;; esac
if [ "$user" = root ]; then want=$(cat "$state/root"); else want=$(cat "$state/user"); fi
if [ "$pass" != "$want" ]; then
  echo "ERROR 1045 (28000): Access denied for user '$user'@'localhost' (using password: YES) [$pass]" >&2
  exit 1
fi
if [ -n "$sql" ]; then
  printf '%s\n' "$sql" | sed -n "s/^ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY '\(.*\)';$/\1/p" > "$state/root"
  printf '%s\n' "$sql" | sed -n "s/^ALTER USER 'torrust'@'%' IDENTIFIED BY '\(.*\)';$/\1/p" > "$state/user"
fi
"#;
        let mysql = bin.join("mysql");
        std::fs::write(&mysql, fake).unwrap();
        std::fs::set_permissions(&mysql, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn run(&self, change: &MysqlChange) -> std::process::Output {
        use std::io::Write;
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let mut child = Command::new("sh")
            .arg("-s")
            .env("PATH", path)
            .env("TMPDIR", self.dir.path().join("tmp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(mysql_script(change).as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn password(&self, who: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(who))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The script's private directory is gone.
    fn cleaned(&self) -> bool {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    }
}

#[test]
fn the_script_changes_both_passwords_with_the_old_root_password_and_verifies() {
    let s = ScriptRun::new("Old-Root-Pass", "Old-User-Pass");
    let out = s.run(&mysql_change(Some("Old-Root-Pass")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout, "root login: old\nverified\n");
    assert_eq!(s.password("root"), "New-Root-Pass-1");
    assert_eq!(s.password("user"), "New-User-Pass-2");
    assert!(s.cleaned());
}

#[test]
fn a_rerun_after_the_change_logs_in_with_the_new_root_password() {
    // Interrupted after ALTER USER, before the new .env was uploaded: same old values again.
    let s = ScriptRun::new("New-Root-Pass-1", "New-User-Pass-2");
    let out = s.run(&mysql_change(Some("Old-Root-Pass")));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root login: new\nverified\n"
    );
    assert!(s.cleaned());
}

#[test]
fn no_root_login_exits_91_with_only_mysqls_error_code() {
    let s = ScriptRun::new("Another-Pass", "Old-User-Pass");
    let out = s.run(&mysql_change(Some("Old-Root-Pass")));
    assert_eq!(out.status.code(), Some(NO_ROOT_LOGIN as i32), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "ERROR 1045 (28000)\n");
    assert_eq!(s.password("user"), "Old-User-Pass");
    assert!(s.cleaned());
}

#[tokio::test]
async fn exit_codes_become_errors_that_say_what_to_do_and_hold_no_secret() {
    for (code, kind, says) in [
        (
            NO_ROOT_LOGIN,
            ErrorKind::TaskFailed,
            "neither the root password",
        ),
        (ALTER_FAILED, ErrorKind::TaskFailed, "ALTER USER failed"),
        (
            NEW_ROOT_REFUSED,
            ErrorKind::NotVerified,
            "refuses the new root password",
        ),
        (NEW_USER_REFUSED, ErrorKind::NotVerified, "refuses torrust"),
        (
            OLD_ROOT_ACCEPTED,
            ErrorKind::NotVerified,
            "still accepts the previous",
        ),
    ] {
        let host = FakeHost::new();
        host.reply(
            "docker exec -i",
            [Reply::fail(code, "ERROR 1045 (28000)\n")],
        );
        let changes = Changes {
            mysql: Some(mysql_change(Some("Old-Root-Pass"))),
            grafana: None,
        };
        let err = apply(&host, &changes).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{code}: {err}");
        let text = err.to_string();
        assert!(text.contains(says), "{code}: {text}");
        assert!(!text.contains("Pass-"), "{code}: {text}");
    }
}

#[tokio::test]
async fn a_failed_grafana_reset_says_why() {
    let host = FakeHost::new();
    host.reply(
        "grafana cli",
        [Reply::fail(
            1,
            "New Password: \nnew password is too short\n",
        )],
    );
    let changes = Changes {
        mysql: None,
        grafana: Some(GrafanaChange {
            container: GRAFANA_ID.into(),
            password: Secret::new("abc"),
        }),
    };
    let err = apply(&host, &changes).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    assert!(
        err.to_string().contains("new password is too short"),
        "{err}"
    );
}

#[test]
fn env_values_are_read_from_the_deployers_format() {
    let values = parse_env("# c\nA='x y'\nB='it=ok'\nC=unquoted\n\nD=''\n");
    assert_eq!(values.get("A"), Some(&Secret::new("x y")));
    assert_eq!(values.get("B"), Some(&Secret::new("it=ok")));
    assert!(!values.contains_key("C"));
    assert_eq!(values.get("D"), Some(&Secret::new("")));
}

#[test]
fn wanted_is_none_without_mysql_or_grafana() {
    let file = crate::config::minimal_test_file("pw", "Token-For-Passwords-1").to_string();
    let config = crate::config::parse(&file, Path::new("/tmp"))
        .unwrap()
        .config;
    assert!(Wanted::new(&config, b"x").is_none());
}
