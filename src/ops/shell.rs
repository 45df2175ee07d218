//! `ssh` and `exec`: a shell or a command on the environment's host, or a command in one of
//! its service containers, attached to the caller's terminal or streams
//! ([`shell`](crate::tasks::shell) task). The connection is the deployer's own (russh), to the
//! pinned host key, with the environment's key; no `ssh` binary is involved. Nothing is
//! recorded, and the lock is held only while the state is read.
//!
//! The caller decides about the terminal (ADR 20): with a pseudo-terminal ([`Pty`]), what the
//! user types goes to the host as it is (Ctrl-C included); without one, the output keeps its
//! bytes and its two streams apart. [`exit_code`] turns how the command ended into the
//! deployer's exit code.

use std::time::Duration;

use super::OpsError;
use super::host::{connect, provisioned_host, released_host};
use super::services::known_services;
use crate::host::{AttachIo, AttachRequest, Attached, Pty};
use crate::ssh::{ExitStatus, Session};
use crate::state::{DataDir, EnvironmentState};
use crate::tasks::shell;

/// A connection to the environment's host and the command to attach to it: opened first, so
/// that the caller can set its terminal up (raw mode) only once the host is reached.
pub struct Opened {
    session: Session,
    request: AttachRequest,
}

impl Opened {
    /// Runs the command attached to `io`, then closes the connection.
    pub async fn attach(self, io: AttachIo) -> Result<Attached, OpsError> {
        let result = shell::attach(&self.session, &self.request, io).await;
        self.session.close().await;
        result.map_err(OpsError::typed)
    }
}

/// `ssh ENV [-- ARGS...]`: the login shell (no `args`), or the command they make
/// ([`shell::ssh_command`]), as the environment's SSH user.
pub async fn open_ssh(
    data: &DataDir,
    env: &str,
    args: &[String],
    pty: Option<Pty>,
    lock_wait: Duration,
) -> Result<Opened, OpsError> {
    let state = read(data, env, "ssh", lock_wait)?;
    let record = provisioned_host(&state)?;
    let request = AttachRequest {
        command: shell::ssh_command(args),
        sudo: false,
        pty,
    };
    let session = connect(data, &state, &record)
        .await
        .map_err(OpsError::typed)?;
    Ok(Opened { session, request })
}

/// `exec ENV SERVICE -- ARGS...`: `ARGS` in `service`'s container (`compose exec`, as root).
pub async fn open_exec(
    data: &DataDir,
    env: &str,
    service: &str,
    argv: &[String],
    pty: Option<Pty>,
    lock_wait: Duration,
) -> Result<Opened, OpsError> {
    let state = read(data, env, "exec", lock_wait)?;
    known_services(&state, &[service.to_string()])?;
    let (record, setup) = released_host(&state, "exec")?;
    let request = AttachRequest {
        command: Some(shell::exec_command(
            &setup.compose_command,
            service,
            argv,
            pty.is_some(),
        )),
        sudo: true,
        pty,
    };
    let session = connect(data, &state, &record)
        .await
        .map_err(OpsError::typed)?;
    Ok(Opened { session, request })
}

fn read(
    data: &DataDir,
    env: &str,
    command: &str,
    lock_wait: Duration,
) -> Result<EnvironmentState, OpsError> {
    let _lock = data.lock(env, command, lock_wait)?;
    Ok(data.load(env)?)
}

/// The deployer's exit code for a command that ended so: its own code; 128 + the signal's
/// number when a signal killed it (as shells report it); 130 when the caller stopped it
/// (Ctrl-C) before it reported anything.
pub fn exit_code(ended: &Attached) -> Result<i32, OpsError> {
    match &ended.status {
        ExitStatus::Code(code) => Ok((*code).min(255) as i32),
        ExitStatus::Signal { name, .. } => Ok(128 + signal_number(name)),
        ExitStatus::Unknown if ended.stopped => Ok(130),
        ExitStatus::Unknown => Err(OpsError::Failed(
            "the host reported no exit status for the command (the SSH channel closed first)"
                .into(),
        )),
    }
}

/// The Linux number of a signal named as SSH names it (`INT`, `TERM`, ...); 127 (so exit 255)
/// for a name it does not know.
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(status: ExitStatus, stopped: bool) -> Attached {
        Attached { status, stopped }
    }

    #[test]
    fn exit_codes_pass_through_and_signals_count_as_shells_do() {
        assert_eq!(exit_code(&ended(ExitStatus::Code(7), false)).unwrap(), 7);
        assert_eq!(exit_code(&ended(ExitStatus::Code(0), true)).unwrap(), 0);
        let killed = |name: &str| ExitStatus::Signal {
            name: name.into(),
            core_dumped: false,
        };
        assert_eq!(exit_code(&ended(killed("TERM"), false)).unwrap(), 143);
        assert_eq!(exit_code(&ended(killed("KILL"), false)).unwrap(), 137);
        assert_eq!(exit_code(&ended(killed("WINCH?"), false)).unwrap(), 255);
        assert_eq!(exit_code(&ended(ExitStatus::Unknown, true)).unwrap(), 130);
        assert!(exit_code(&ended(ExitStatus::Unknown, false)).is_err());
    }
}
