//! Operating a running tracker through the real binary: `logs`, `stop`, `start`, `restart`,
//! `ssh` and `exec`. Their argument errors need no host; `ssh` runs against a real OpenSSH
//! server on a loopback port (tests/support/sshd.rs) as the non-root test user, through the
//! deployer's own SSH engine, and its terminal path runs under `script` (a real pty). The
//! stack's side (logs, stop → test → start) is proven on LXD in tests/lxd_e2e.rs.

use crate::common;
use crate::support::sshd;

use std::process::{Command, Stdio};

use common::{BIN, Sandbox, minimal};
use sshd::{Sshd, require_test_user};

fn created(name: &str) -> Sandbox {
    let sb = Sandbox::new();
    let file = sb.env_file(&format!("{name}.json"), &minimal(name));
    sb.run(&["create", "environment", "--env-file", &file]).ok();
    sb
}

#[test]
fn a_missing_environment_is_not_found_for_every_command() {
    let sb = Sandbox::new();
    for args in [
        &["logs", "nope"][..],
        &["stop", "nope"],
        &["start", "nope", "tracker"],
        &["restart", "nope"],
        &["ssh", "nope", "--", "true"],
        &["exec", "nope", "tracker", "--", "true"],
    ] {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let run = sb.run(&all).code(2);
        assert_eq!(
            run.json()["error"]["kind"],
            "not_found",
            "{args:?}: {run:?}"
        );
        assert!(
            run.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("environment 'nope' does not exist"),
            "{run:?}"
        );
    }
    assert!(!sb.data().join("nope").exists());
}

#[test]
fn unknown_services_are_usage_errors_that_list_the_environments_services() {
    let sb = created("ops-args");
    for args in [
        &["logs", "ops-args", "tracker", "trackr"][..],
        &["stop", "ops-args", "trackr"],
        &["start", "ops-args", "trackr"],
        &["restart", "ops-args", "trackr"],
        &["exec", "ops-args", "trackr", "--", "true"],
    ] {
        sb.cmd(args)
            .status(2)
            .stdout("")
            .stderr(
                "error: environment 'ops-args' has no service trackr; its services are: tracker\n",
            )
            .run();
    }
    let run = sb.run(&["-o", "json", "stop", "ops-args", "db"]).code(2);
    assert_eq!(run.json()["error"]["kind"], "usage", "{run:?}");
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let sb = created("ops-bad");
    // exec needs a command after `--`.
    let run = sb.run(&["exec", "ops-bad", "tracker"]).code(2);
    assert!(run.stderr.contains("COMMAND"), "{run:?}");
    let run = sb.run(&["logs", "ops-bad", "--since", "yesterday"]).code(2);
    assert!(
        run.stderr.contains("--since: `yesterday` is not a time"),
        "{run:?}"
    );
    // An environment without a host: each says what to run first.
    let run = sb.run(&["stop", "ops-bad"]).code(2);
    assert!(run.stderr.contains("has no host"), "{run:?}");
    let run = sb.run(&["logs", "ops-bad"]).code(2);
    assert!(run.stderr.contains("has no host"), "{run:?}");
    let run = sb.run(&["ssh", "ops-bad"]).code(2);
    assert!(run.stderr.contains("provision ops-bad"), "{run:?}");
}

/// An environment registered on a running sshd (as the test user).
fn on_sshd(name: &str) -> (Sandbox, Sshd) {
    require_test_user();
    let sb = Sandbox::new();
    let sshd = Sshd::start();
    sb.register_on_sshd(&sshd, name, minimal(name));
    (sb, sshd)
}

#[test]
fn ssh_runs_a_command_and_passes_its_output_input_and_exit_status_through() {
    let (sb, _sshd) = on_sshd("ops-ssh");
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    sb.cmd(&["ssh", "ops-ssh", "--", "cat", "/etc/os-release"])
        .stdout(&os_release)
        .stderr("")
        .run();
    // Several arguments are passed exactly; one is a command line for the remote shell.
    sb.cmd(&["ssh", "ops-ssh", "--", "sh", "-c", "exit 7"])
        .status(7)
        .stdout("")
        .run();
    sb.cmd(&["ssh", "ops-ssh", "--", "echo out; echo err >&2; exit 3"])
        .status(3)
        .stdout("out\n")
        .stderr("err\n")
        .run();
    sb.cmd(&["ssh", "ops-ssh", "--", "echo", "a  b", "$HOME;"])
        .stdout("a  b $HOME;\n")
        .run();
    // Standard input reaches the command, bytes as they are.
    sb.cmd(&["ssh", "ops-ssh", "--", "od -An -c"])
        .stdin(b"a\r\nb".to_vec())
        .stdout("   a  \\r  \\n   b\n")
        .run();
    // The SSH user, without a terminal; a signal's death counts as a shell reports it.
    sb.cmd(&["ssh", "ops-ssh", "--", "id -un; tty || true"])
        .stdout(&format!("{}\nnot a tty\n", sshd::TEST_USER))
        .run();
    sb.cmd(&["ssh", "ops-ssh", "--", "kill -TERM $$"])
        .status(143)
        .run();
}

/// `script` gives the binary a real terminal: `ssh ENV` opens a login shell on a remote pty
/// of that size, what is typed reaches it, and its exit status comes back; the local terminal
/// is left as it was (cooked: `stty` reads the same before and after).
#[test]
fn ssh_without_a_command_is_an_interactive_shell_on_a_terminal() {
    let (sb, _sshd) = on_sshd("ops-pty");
    let data = sb.data();
    let line = format!(
        "stty cols 101 rows 33; before=$(stty -g); {BIN} --data-dir {data} ssh ops-pty; \
         code=$?; [ \"$(stty -g)\" = \"$before\" ] && echo TERMINAL-RESTORED; exit $code",
        data = data.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(sb.path())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Typed on the terminal, one line at a time, as a person would; then kept open until
        // the shell has exited (an early end of input would hang up the terminal).
        std::thread::sleep(std::time::Duration::from_secs(2));
        stdin
            .write_all(b"echo \"size $(stty size) term $TERM tty $(tty | cut -c1-8)\"; exit 3\n")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("size 33 101 term xterm tty /dev/pts"),
        "{stdout}"
    );
    assert!(stdout.contains("TERMINAL-RESTORED"), "{stdout}");
}

#[test]
fn show_gives_the_host_its_addresses_and_a_working_openssh_command() {
    let (sb, sshd) = on_sshd("ops-show");
    let shown = sb.run(&["show", "ops-show"]).ok();
    let port = sshd.port;
    assert!(
        shown
            .stdout
            .contains(&format!("Host:        127.0.0.1:{port}\n")),
        "{shown:?}"
    );
    assert!(
        shown
            .stdout
            .contains("Shell:       torrust-tracker-deployer ssh ops-show\n"),
        "{shown:?}"
    );
    assert!(
        shown.stdout.contains("  API        http://127.0.0.1:"),
        "{shown:?}"
    );
    assert!(
        shown.stdout.contains("  announce   udp://127.0.0.1:"),
        "{shown:?}"
    );
    let doc = sb.run(&["-o", "json", "show", "ops-show"]).ok().json();
    let openssh = doc["host"]["openssh"].as_str().unwrap().to_string();
    assert!(shown.stdout.contains(&openssh), "{shown:?}");
    // The OpenSSH command works as printed, against the pinned key (BatchMode: no prompt).
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} -o BatchMode=yes echo reached", openssh))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reached\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
