//! The first tasks on a new host, right after SSH answers: the account can run commands, and
//! cloud-init (when the image has it) finished what it was given.

use super::TaskError;
use crate::host::Host;

/// The task's name in reports and errors.
pub const TASK: &str = "cloud-init";

/// The account runs a command: logging in alone does not prove a working shell.
pub async fn check_shell(host: &dyn Host) -> Result<(), TaskError> {
    host.exec("true").await?.check()?;
    Ok(())
}

/// Waits until cloud-init is finished, and checks it finished cleanly (`status: done`).
pub async fn wait_done(host: &dyn Host) -> Result<(), TaskError> {
    let out = host
        .exec("cloud-init status --wait >/dev/null 2>&1; cloud-init status")
        .await?;
    let status = out.stdout_str();
    if status.contains("done") {
        return Ok(());
    }
    Err(TaskError::failed(
        TASK,
        format!(
            "cloud-init on {} did not finish cleanly: {}",
            host.display(),
            status.trim()
        ),
        "see /var/log/cloud-init-output.log on the instance; fix the image or the user data, \
         then provision again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, Reply};

    #[tokio::test]
    async fn done_is_done_and_anything_else_fails_with_the_status() {
        let host = FakeHost::new();
        host.reply("cloud-init status", vec![Reply::ok("status: done\n")]);
        wait_done(&host).await.unwrap();

        let host = FakeHost::new();
        host.reply("cloud-init status", vec![Reply::ok("status: error\n")]);
        let err = wait_done(&host).await.unwrap_err();
        assert!(err.to_string().contains("status: error"), "{err}");
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::TaskFailed
        );
    }

    #[tokio::test]
    async fn a_shell_that_fails_is_an_error() {
        let host = FakeHost::new();
        host.reply("true", vec![Reply::ok("")]);
        check_shell(&host).await.unwrap();
        let host = FakeHost::new();
        host.reply("true", vec![Reply::fail(1, "no shell")]);
        assert!(check_shell(&host).await.is_err());
    }
}
