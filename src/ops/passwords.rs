//! Release's step for password changes after the first deploy ([`passwords`]): it runs before
//! the files are uploaded, so that the host's `.env` still holds the last release's values.
//! Only for a stack with MySQL or Grafana.

use super::OpsError;
use super::StepReport;
use super::steps::StepRun;
use crate::host::Host;
use crate::stack::{RenderedStack, layout};
use crate::state::EnvironmentState;
use crate::tasks::{Plan, TaskError, passwords};

fn wanted(state: &EnvironmentState, rendered: &RenderedStack) -> Option<passwords::Wanted> {
    let env_file = rendered.file(layout::ENV_FILE)?;
    passwords::Wanted::new(&state.config, &env_file.contents)
}

async fn facts_and_plan(
    host: &dyn Host,
    wanted: &passwords::Wanted,
) -> Result<Plan<passwords::Changes>, TaskError> {
    let facts = passwords::read(host, wanted).await?;
    let previous = passwords::previous(host, &facts).await?;
    passwords::plan(wanted, &facts, &previous)
}

/// The recorded step: applies what changed. `None` when the stack has neither service.
pub(super) async fn step(
    run: &mut StepRun<'_>,
    state: &mut EnvironmentState,
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Option<StepReport>, OpsError> {
    let Some(wanted) = wanted(state, rendered) else {
        return Ok(None);
    };
    let report = run
        .step(state, passwords::TASK, async |_s| {
            let plan = facts_and_plan(host, &wanted).await?;
            let detail = match &plan {
                Plan::Apply(changes, _) => passwords::apply(host, changes).await?.join("; "),
                Plan::Nothing(text) => text.clone(),
            };
            Ok::<_, TaskError>(StepReport {
                step: passwords::TASK.into(),
                changed: plan.is_apply(),
                detail,
            })
        })
        .await?;
    Ok(Some(report))
}

/// For a dry run: what the step would do. Changes nothing.
pub(super) async fn plan(
    host: &dyn Host,
    state: &EnvironmentState,
    rendered: &RenderedStack,
) -> Result<Option<StepReport>, TaskError> {
    let Some(wanted) = wanted(state, rendered) else {
        return Ok(None);
    };
    let plan = facts_and_plan(host, &wanted).await?;
    Ok(Some(StepReport {
        step: passwords::TASK.into(),
        changed: plan.is_apply(),
        detail: plan.text().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::release::tests::configured_state;
    use super::super::release::{ReleaseOptions, release_on};
    use crate::config::{self, Database, MysqlDatabase};
    use crate::host::fake::{Call, FakeHost, Reply};
    use crate::secret::Secret;
    use crate::stack::layout;
    use crate::state::{DataDir, EnvironmentState};

    const ID: &str = "4f2a9c1d7e3b5a6f";

    fn with_mysql(state: &mut EnvironmentState, root: &str, password: &str) {
        state.config.tracker.core.database = Database::Mysql(MysqlDatabase {
            host: "mysql".into(),
            port: config::Port::new(3306).unwrap(),
            database_name: "torrust_tracker".parse().unwrap(),
            username: "torrust".parse().unwrap(),
            password: Secret::new(password),
            root_password: Some(Secret::new(root)),
        });
    }

    /// A host whose directories and images are as the model wants (files as uploaded), and
    /// whose facts for this task are `facts`, in turn.
    fn host(state: &EnvironmentState, facts: &[&str]) -> FakeHost {
        let rendered = super::super::release::render(state).unwrap();
        let host = FakeHost::new();
        let dirs: String = rendered
            .dirs
            .iter()
            .map(|d| format!("{:o} {}:{}\n", d.mode, d.uid, d.gid))
            .collect();
        host.reply("stat -c", [Reply::ok(dirs)]);
        let images: String = rendered
            .images
            .iter()
            .map(|i| format!("{i} sha256:{}\n", "a".repeat(64)))
            .collect();
        host.reply("docker image inspect", [Reply::ok(images)]);
        host.reply("sha256sum", facts.iter().map(|f| Reply::ok(*f)));
        host.reply("docker exec -i", [Reply::ok("root login: old\nverified\n")]);
        host.reply("history.jsonl", [Reply::ok("")]);
        // A host without iptables: the Docker firewall has nothing to do.
        host.reply("DOCKER-USER", [Reply::ok("")]);
        host
    }

    #[tokio::test]
    async fn a_release_changes_mysqls_passwords_before_it_uploads_the_new_env() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        with_mysql(&mut state, "First-Root-Pass", "First-User-Pass");
        let changed = format!("env changed\nmysql initialized\nrunning mysql {ID}\n");
        let host = host(&state, &["env absent\n", &changed]);

        // The first release: MySQL takes the passwords when it first starts.
        let first = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert_eq!(first.steps[1].step, "apply password changes");
        assert!(!first.steps[1].changed, "{:?}", first.steps);
        assert!(
            !host.commands().iter().any(|c| c.contains("docker exec")),
            "{:?}",
            host.commands()
        );

        // Both MySQL passwords change in the environment file.
        with_mysql(&mut state, "Second-Root-Pass", "Second-User-Pass");
        host.clear_calls();
        let dry = release_on(&data, &mut state, &host, &ReleaseOptions { dry_run: true })
            .await
            .unwrap();
        assert_eq!(dry.steps[1].step, "apply password changes");
        assert!(dry.steps[1].changed);
        assert_eq!(
            dry.steps[1].detail,
            "change MySQL root's and torrust's password"
        );
        assert!(
            !host
                .calls()
                .iter()
                .any(|c| matches!(c, Call::SudoStdin(..)))
        );

        host.clear_calls();
        let second = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(second.steps[1].changed, "{:?}", second.steps);
        assert_eq!(
            second.steps[1].detail,
            "MySQL: root's and torrust's passwords changed and verified"
        );
        let calls = host.calls();
        let script = calls
            .iter()
            .position(|c| matches!(c, Call::SudoStdin(cmd, _) if cmd.starts_with("docker exec")))
            .expect("the MySQL script ran");
        let upload = calls
            .iter()
            .position(|c| matches!(c, Call::Upload(_)))
            .expect("the files were uploaded");
        assert!(script < upload, "{calls:?}");
        let Call::SudoStdin(_, bytes) = &calls[script] else {
            unreachable!()
        };
        let text = String::from_utf8_lossy(bytes);
        // The old root password comes from the host's .env of the first release.
        assert!(text.contains("password='First-Root-Pass'"), "{text}");
        assert!(text.contains("IDENTIFIED BY 'Second-Root-Pass'"), "{text}");
        assert!(text.contains("IDENTIFIED BY 'Second-User-Pass'"), "{text}");
        let env = String::from_utf8(host.file(layout::ENV_FILE).unwrap().contents).unwrap();
        assert!(
            env.contains("MYSQL_ROOT_PASSWORD='Second-Root-Pass'"),
            "{env}"
        );
        // No secret on any command line.
        for c in host.commands() {
            assert!(!c.contains("Second-") && !c.contains("First-"), "{c}");
        }
    }

    #[tokio::test]
    async fn a_stack_without_mysql_or_grafana_has_no_such_step() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let mut state = configured_state(&data);
        let host = host(&state, &["env absent\n"]);
        let released = release_on(&data, &mut state, &host, &ReleaseOptions::default())
            .await
            .unwrap();
        assert!(
            released
                .steps
                .iter()
                .all(|s| s.step != "apply password changes"),
            "{:?}",
            released.steps
        );
        assert!(!host.commands().iter().any(|c| c.contains("sha256sum")));
    }
}
