//! The status probe: one read-only script, run as root in one round trip, that reports every
//! file of the stack model (hash, mode, owner) and the containers of the Compose project. It is
//! the facts half of a task: `status` ([`crate::ops::status`]) parses and judges the output,
//! and changes nothing.

use std::fmt::Write as _;

use crate::host::Host;
use crate::ssh::{ExecOutput, shell_quote};

use super::TaskError;

/// How long the script waits for `docker ps` (a hung daemon must not hang `status`).
pub const DOCKER_TIMEOUT_SECS: u32 = 30;

/// The one script `status` runs as root. Output, one finding per line:
///
/// ```text
/// F <index> absent|link|other|unreadable
/// F <index> file <sha256> <octal mode> <uid> <gid>
/// D missing                  no docker command
/// D exit <code>              docker ps exited so; then its output (stdout and stderr):
/// C <line>
/// E end                      the script ran to its end
/// ```
///
/// `docker_dir` (tests only) goes first on `PATH`.
pub fn script(paths: &[String], project: &str, docker_dir: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(dir) = docker_dir {
        let _ = writeln!(s, "PATH={}:\"$PATH\"; export PATH", shell_quote(dir));
    }
    // One function per file: a missing or odd file never shifts the lines of the others.
    s.push_str(
        "f() {\n\
         \x20 if [ -L \"$2\" ]; then echo \"F $1 link\"\n\
         \x20 elif [ -f \"$2\" ]; then\n\
         \x20   if h=$(sha256sum < \"$2\") && m=$(stat -c '%a %u %g' \"$2\"); then\n\
         \x20     echo \"F $1 file ${h%% *} $m\"\n\
         \x20   else echo \"F $1 unreadable\"; fi\n\
         \x20 elif [ -e \"$2\" ]; then echo \"F $1 other\"\n\
         \x20 else echo \"F $1 absent\"; fi\n\
         }\n",
    );
    for (i, p) in paths.iter().enumerate() {
        let _ = writeln!(s, "f {i} {}", shell_quote(p));
    }
    let filter = shell_quote(&format!("label=com.docker.compose.project={project}"));
    let _ = write!(
        s,
        "if ! command -v docker >/dev/null 2>&1; then echo 'D missing'\n\
         else\n\
         \x20 if command -v timeout >/dev/null 2>&1; then t='timeout {DOCKER_TIMEOUT_SECS}'; else t=''; fi\n\
         \x20 out=$($t docker ps -a --filter {filter} --format '{{{{json .}}}}' 2>&1); rc=$?\n\
         \x20 echo \"D exit $rc\"\n\
         \x20 printf '%s\\n' \"$out\" | while IFS= read -r l; do printf 'C %s\\n' \"$l\"; done\n\
         fi\n\
         echo 'E end'\n"
    );
    s
}

/// Runs the probe script on the host. The output is returned whatever the exit status: the
/// caller's parser says whether the script completed (its last line is `E end`).
pub async fn run(host: &dyn Host, script: &str) -> Result<ExecOutput, TaskError> {
    Ok(host.sudo(script).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    #[tokio::test]
    async fn runs_the_script_as_root_once() {
        let host = FakeHost::new();
        host.reply(
            "docker ps -a",
            [Reply::ok("F 0 absent\nD missing\nE end\n")],
        );
        let s = script(&["/opt/torrust/.env".into()], "torrust", None);
        let out = run(&host, &s).await.unwrap();
        assert_eq!(out.stdout_str(), "F 0 absent\nD missing\nE end\n");
        assert_eq!(host.calls(), vec![Call::Sudo(s)]);
    }
}
