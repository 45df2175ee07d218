//! A shell on the host, a command there, or a command in a service's container, attached to
//! the local terminal or streams through [`Host::attach`].
//!
//! - `ssh ENV`: the login shell, on a pseudo-terminal;
//! - `ssh ENV -- ARGS...`: [`ssh_command`], run as the login user;
//! - `exec ENV SERVICE -- ARGS...`: [`exec_command`], `compose exec` as root in the stack's
//!   directory (`-T` unless a terminal is attached).

use super::TaskError;
use super::compose::in_stack_dir;
use crate::host::{AttachIo, AttachRequest, Attached, Host};
use crate::ssh::{shell_join, shell_quote};

pub const SSH: &str = "ssh";
pub const EXEC: &str = "exec";

/// The command line for `ssh ENV -- ARGS...`: ONE argument is a command line for the login
/// shell, as it is (`'ls /opt | wc -l'`); SEVERAL are a command and its arguments, each quoted
/// so that the remote shell sees exactly them (`sh -c 'exit 7'`). No argument: `None`, the
/// login shell.
pub fn ssh_command(args: &[String]) -> Option<String> {
    match args {
        [] => None,
        [line] => Some(line.clone()),
        many => Some(shell_join(many)),
    }
}

/// `compose exec` of `argv` (exactly these arguments) in `service`'s container. `tty`: the
/// caller attaches a terminal, so Compose may allocate one in the container.
pub fn exec_command(compose: &str, service: &str, argv: &[String], tty: bool) -> String {
    let stack = in_stack_dir(compose);
    let (cd, compose) = stack
        .split_once(" && ")
        .expect("in_stack_dir is `cd DIR && COMPOSE`");
    format!(
        "{cd} && exec {compose} exec{} -- {} {}",
        if tty { "" } else { " -T" },
        shell_quote(service),
        shell_join(argv)
    )
}

/// Runs `request` attached to `io` and returns how it ended.
pub async fn attach(
    host: &dyn Host,
    request: &AttachRequest,
    io: AttachIo,
) -> Result<Attached, TaskError> {
    Ok(host.attach(request, io).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};
    use crate::ssh::ExitStatus;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_argument_is_a_command_line_several_are_quoted() {
        assert_eq!(ssh_command(&[]), None);
        assert_eq!(
            ssh_command(&args(&["ls /opt | wc -l"])).as_deref(),
            Some("ls /opt | wc -l")
        );
        assert_eq!(
            ssh_command(&args(&["sh", "-c", "exit 7"])).as_deref(),
            Some("sh -c 'exit 7'")
        );
        assert_eq!(
            ssh_command(&args(&["cat", "/etc/os-release"])).as_deref(),
            Some("cat /etc/os-release")
        );
    }

    #[test]
    fn exec_runs_compose_exec_in_the_stack_directory() {
        assert_eq!(
            exec_command(
                "docker-compose",
                "tracker",
                &args(&["ls", "-la", "a b"]),
                false
            ),
            "cd /opt/torrust && exec docker-compose exec -T -- tracker ls -la 'a b'"
        );
        assert_eq!(
            exec_command("docker compose", "mysql", &args(&["sh"]), true),
            "cd /opt/torrust && exec docker compose exec -- mysql sh"
        );
    }

    #[tokio::test]
    async fn the_exit_status_and_the_output_pass_through() {
        let host = FakeHost::new();
        host.reply(
            "exec -T -- tracker",
            [Reply {
                code: 7,
                stdout: "out\n".into(),
                stderr: "err\n".into(),
            }],
        );
        let (out, mut out_r) = tokio::io::duplex(1024);
        let (err, mut err_r) = tokio::io::duplex(1024);
        let request = AttachRequest {
            command: Some(exec_command(
                "docker-compose",
                "tracker",
                &args(&["cat"]),
                false,
            )),
            sudo: true,
            pty: None,
        };
        let io = AttachIo {
            stdin: Some(Box::new(std::io::Cursor::new(b"in".to_vec()))),
            stdout: Box::new(out),
            stderr: Box::new(err),
            resize: None,
            stop: None,
        };
        let ended = attach(&host, &request, io).await.unwrap();
        assert_eq!(ended.status, ExitStatus::Code(7));
        let mut got = String::new();
        use tokio::io::AsyncReadExt;
        out_r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "out\n");
        got.clear();
        err_r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "err\n");
        assert_eq!(
            host.calls(),
            vec![Call::Attach(request.clone(), b"in".to_vec())]
        );
    }
}
