//! Storage directories: each of the stack's directories exists with its owner and mode.
//!
//! - facts: [`read`], one round trip printing `mode uid:gid` (or `absent`) per directory;
//! - plan: [`plan`], pure: the directories whose facts differ from the model;
//! - apply: [`apply`], one `install -d` per directory to fix, in one script;
//! - verify: [`verify`] reads the facts again and plans: nothing may be left to do.

use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::StackDir;

use super::{Plan, TaskError};

/// The task's name in reports.
pub const TASK: &str = "storage directories";

/// What the host has at a directory's path: `mode uid:gid` (`755 1000:1000`), or `None`.
pub type DirFact = Option<String>;

fn wanted(d: &StackDir) -> String {
    format!("{:o} {}:{}", d.mode, d.uid, d.gid)
}

/// The facts script: one line per directory, in order.
pub fn facts_script(dirs: &[StackDir]) -> String {
    let mut s = String::new();
    for d in dirs {
        let p = shell_quote(&d.path.to_string_lossy());
        s.push_str(&format!(
            "if [ -d {p} ]; then stat -c '%a %u:%g' {p}; else echo absent; fi\n"
        ));
    }
    s
}

/// Reads each directory's mode and owner.
pub async fn read(host: &dyn Host, dirs: &[StackDir]) -> Result<Vec<DirFact>, TaskError> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let out = host.sudo(&facts_script(dirs)).await?.check()?;
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != dirs.len() {
        return Err(TaskError::Facts(format!(
            "the storage directories script printed {} line(s) for {} directories: {text:?}",
            lines.len(),
            dirs.len()
        )));
    }
    Ok(lines
        .into_iter()
        .map(|l| (l != "absent").then(|| l.trim().to_string()))
        .collect())
}

/// The directories to create or fix.
pub fn plan(dirs: &[StackDir], facts: &[DirFact]) -> Plan<Vec<StackDir>> {
    let fix: Vec<StackDir> = dirs
        .iter()
        .zip(facts)
        .filter(|(d, f)| f.as_deref() != Some(wanted(d).as_str()))
        .map(|(d, _)| d.clone())
        .collect();
    if fix.is_empty() {
        Plan::Nothing(format!("{} directories in place", dirs.len()))
    } else {
        let names: Vec<String> = fix
            .iter()
            .map(|d| d.path.to_string_lossy().into_owned())
            .collect();
        Plan::Apply(fix, format!("create or fix {}", names.join(", ")))
    }
}

/// The script that creates the directories (parents first, as given) or fixes them.
pub fn apply_script(fix: &[StackDir]) -> String {
    let mut s = String::from("set -e\n");
    for d in fix {
        let p = shell_quote(&d.path.to_string_lossy());
        s.push_str(&format!(
            "install -d -m {m:o} -o {u} -g {g} {p}\nchmod {m:o} {p}\n",
            m = d.mode,
            u = d.uid,
            g = d.gid
        ));
    }
    s
}

/// Creates or fixes the directories.
pub async fn apply(host: &dyn Host, fix: &[StackDir]) -> Result<(), TaskError> {
    host.sudo(&apply_script(fix)).await?.check()?;
    Ok(())
}

/// Reads the facts again: every directory must now be as wanted.
pub async fn verify(host: &dyn Host, dirs: &[StackDir]) -> Result<(), TaskError> {
    let facts = read(host, dirs).await?;
    match plan(dirs, &facts) {
        Plan::Nothing(_) => Ok(()),
        Plan::Apply(_, text) => Err(TaskError::NotVerified {
            task: TASK.into(),
            found: format!("still to do: {text}"),
            fix: "check that the storage filesystem accepts the owners (no root squashing), \
                  then run release again"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    fn dirs() -> Vec<StackDir> {
        vec![
            StackDir {
                path: "/opt/torrust/storage".into(),
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
            StackDir {
                path: "/opt/torrust/storage/tracker".into(),
                uid: 1000,
                gid: 1000,
                mode: 0o750,
            },
        ]
    }

    #[test]
    fn plans_only_the_directories_that_differ() {
        let d = dirs();
        let all_ok = [Some("755 0:0".into()), Some("750 1000:1000".into())];
        assert!(!plan(&d, &all_ok).is_apply());
        let Plan::Apply(fix, text) = plan(&d, &[Some("755 0:0".into()), None]) else {
            panic!("nothing planned")
        };
        assert_eq!(fix, vec![d[1].clone()]);
        assert!(text.contains("/opt/torrust/storage/tracker"), "{text}");
        let Plan::Apply(fix, _) = plan(&d, &[Some("755 0:0".into()), Some("755 0:0".into())])
        else {
            panic!("a wrong owner planned nothing")
        };
        assert_eq!(fix.len(), 1);
    }

    #[test]
    fn the_facts_script_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let missing = StackDir {
            path: dir.path().join("none"),
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        let here = StackDir {
            path: dir.path().to_path_buf(),
            ..missing.clone()
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(facts_script(&[here, missing]))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains(':'), "{text}");
        assert_eq!(lines[1], "absent");
    }

    #[tokio::test]
    async fn apply_sends_one_script_for_the_directories_to_fix_and_verify_rereads() {
        let host = FakeHost::new();
        host.reply(
            "stat -c",
            [
                Reply::ok("755 0:0\nabsent\n"),
                Reply::ok("755 0:0\n750 1000:1000\n"),
            ],
        );
        host.reply("install -d", [Reply::ok("")]);
        let d = dirs();
        let facts = read(&host, &d).await.unwrap();
        let Plan::Apply(fix, _) = plan(&d, &facts) else {
            panic!("nothing planned")
        };
        apply(&host, &fix).await.unwrap();
        verify(&host, &d).await.unwrap();
        let commands = host.commands();
        assert_eq!(commands.len(), 3);
        assert!(commands[1].contains("install -d -m 750 -o 1000 -g 1000"));
        assert!(!commands[1].contains("'/opt/torrust/storage'\n"));
        assert!(matches!(&host.calls()[0], Call::Sudo(_)));
    }

    #[tokio::test]
    async fn verify_fails_when_the_host_did_not_change() {
        let host = FakeHost::new();
        host.reply("stat -c", [Reply::ok("755 0:0\nabsent\n")]);
        let err = verify(&host, &dirs()).await.unwrap_err();
        assert!(matches!(err, TaskError::NotVerified { .. }), "{err}");
    }
}
