//! SSH access for an image without cloud-init: the user, its key, passwordless sudo and the SSH
//! port. Provision runs it on an [`LxdHost`](crate::host::lxd::LxdHost) (LXD's exec and files
//! APIs), since SSH does not let us in before it is done; it is a task on a `&dyn Host` like any
//! other, and unit-tested against the fake host.
//!
//! - user: one script creates the user (and its `~/.ssh`, 0700) when missing and prints its
//!   ids and home;
//! - files: `authorized_keys`, the sudoers drop-in and, for a port other than 22, an sshd
//!   drop-in, placed by [`Host::upload`] (compared first: unchanged files are not touched);
//! - sshd restarts only when its port file changed.
//!
//! Idempotent: a second run changes nothing and says so.

use crate::host::Host;
use crate::ssh::{Change, UploadFile, shell_quote};

use super::TaskError;

/// The task's name in messages.
pub const TASK: &str = "SSH access";

/// Where the SSH port is set when it is not 22.
pub const PORT_CONF: &str = "/etc/ssh/sshd_config.d/10-torrust-port.conf";

/// Restarts sshd on Debian and Ubuntu, socket-activated (Ubuntu 24.04) or not.
pub const RESTART_SSH: &str = "systemctl daemon-reload; if systemctl is-enabled ssh.socket >/dev/null 2>&1; then systemctl restart ssh.socket; fi; systemctl restart ssh || service ssh restart";

/// What SSH access is set up for.
#[derive(Debug, Clone, Copy)]
pub struct SshAccess<'a> {
    pub username: &'a str,
    pub public_key: &'a str,
    pub port: u16,
    /// The host key pair to install (OpenSSH private key, public key line), made on the
    /// operator's machine so that it is pinned before the first connection.
    pub host_key: Option<(&'a str, &'a str)>,
}

/// Where sshd reads its ed25519 host key.
pub const HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";

/// The SSH user as the host has it, after the user script.
#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    created: bool,
    uid: String,
    gid: String,
    home: String,
}

/// Whether the host has cloud-init (which then sets up SSH access itself).
pub async fn has_cloud_init(host: &dyn Host) -> Result<bool, TaskError> {
    let out = host.sudo("command -v cloud-init >/dev/null").await?;
    Ok(out.success())
}

/// Sets up the SSH user, its key, sudo and the SSH port. Returns whether anything changed.
pub async fn prepare(host: &dyn Host, access: &SshAccess<'_>) -> Result<bool, TaskError> {
    let out = host.sudo(&user_script(access.username)).await?.check()?;
    let user = parse_user(&out.stdout_str())?;
    let changes = host.upload(&files(access, &user)).await?;
    let changed = |c: &&crate::ssh::FileChange| c.change != Change::Unchanged;
    if changes
        .iter()
        .filter(changed)
        .any(|c| c.remote_path == PORT_CONF || c.remote_path.starts_with(HOST_KEY))
    {
        host.sudo(RESTART_SSH).await?.check()?;
    }
    Ok(user.created || changes.iter().any(|c| changed(&c)))
}

/// Creates the user and its `~/.ssh` when missing; prints `CREATED UID GID HOME`.
fn user_script(username: &str) -> String {
    let u = shell_quote(username);
    format!(
        "set -e; created=0; \
         if ! id -u {u} >/dev/null 2>&1; then useradd -m -s /bin/bash {u}; created=1; fi; \
         home=$(getent passwd {u} | cut -d: -f6); \
         install -d -m 0700 -o {u} -g \"$(id -g {u})\" \"$home/.ssh\"; \
         echo \"$created $(id -u {u}) $(id -g {u}) $home\""
    )
}

fn parse_user(out: &str) -> Result<User, TaskError> {
    let fields: Vec<&str> = out.split_whitespace().collect();
    match fields[..] {
        [created, uid, gid, home]
            if uid.parse::<u32>().is_ok()
                && gid.parse::<u32>().is_ok()
                && home.starts_with('/') =>
        {
            Ok(User {
                created: created == "1",
                uid: uid.to_string(),
                gid: gid.to_string(),
                home: home.to_string(),
            })
        }
        _ => Err(TaskError::Facts(format!(
            "{TASK}: the user script printed {out:?}, not `CREATED UID GID HOME`"
        ))),
    }
}

/// The files SSH access needs, for `user` as the host has it.
fn files(access: &SshAccess<'_>, user: &User) -> Vec<UploadFile> {
    let home = user.home.trim_end_matches('/');
    let mut files = vec![
        UploadFile::new(
            format!("{home}/.ssh/authorized_keys"),
            format!("{}\n", access.public_key.trim()),
            0o600,
        )
        .owned_by(&user.uid, &user.gid),
        UploadFile::new(
            format!("/etc/sudoers.d/90-torrust-{}", access.username),
            format!("{} ALL=(ALL) NOPASSWD:ALL\n", access.username),
            0o440,
        )
        .owned_by("0", "0"),
    ];
    if let Some((private, public)) = access.host_key {
        files.push(UploadFile::new(HOST_KEY, private.to_string(), 0o600).owned_by("0", "0"));
        files.push(
            UploadFile::new(
                format!("{HOST_KEY}.pub"),
                format!("{}\n", public.trim()),
                0o644,
            )
            .owned_by("0", "0"),
        );
    }
    if access.port != 22 {
        files.push(
            UploadFile::new(PORT_CONF, format!("Port {}\n", access.port), 0o644).owned_by("0", "0"),
        );
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Call, FakeHost, Reply};

    const KEY: &str = "ssh-ed25519 AAAAC3Nza test@here\n";

    fn access(port: u16) -> SshAccess<'static> {
        SshAccess {
            username: "torrust",
            public_key: KEY,
            port,
            host_key: None,
        }
    }

    #[tokio::test]
    async fn cloud_init_is_told_by_its_command() {
        let host = FakeHost::new();
        host.reply("command -v cloud-init", [Reply::ok(""), Reply::fail(1, "")]);
        assert!(has_cloud_init(&host).await.unwrap());
        assert!(!has_cloud_init(&host).await.unwrap());
    }

    #[tokio::test]
    async fn a_new_user_gets_its_key_sudo_and_port_then_nothing_changes() {
        let host = FakeHost::new();
        host.reply(
            "useradd",
            [
                Reply::ok("1 1001 1001 /home/torrust\n"),
                Reply::ok("0 1001 1001 /home/torrust\n"),
            ],
        );
        host.reply("systemctl restart ssh", [Reply::ok("")]);
        assert!(prepare(&host, &access(2222)).await.unwrap());
        let keys = host.file("/home/torrust/.ssh/authorized_keys").unwrap();
        assert_eq!(keys.contents, KEY.as_bytes());
        assert_eq!(keys.mode, 0o600);
        assert_eq!(
            (keys.owner.as_deref(), keys.group.as_deref()),
            (Some("1001"), Some("1001"))
        );
        let sudoers = host.file("/etc/sudoers.d/90-torrust-torrust").unwrap();
        assert_eq!(sudoers.contents, b"torrust ALL=(ALL) NOPASSWD:ALL\n");
        assert_eq!(sudoers.mode, 0o440);
        assert_eq!(host.file(PORT_CONF).unwrap().contents, b"Port 2222\n");
        let restarts = |h: &FakeHost| {
            h.calls()
                .iter()
                .filter(|c| matches!(c, Call::Sudo(s) if s == RESTART_SSH))
                .count()
        };
        assert_eq!(restarts(&host), 1);

        // Again: the user exists and the files are in place.
        assert!(!prepare(&host, &access(2222)).await.unwrap());
        assert_eq!(restarts(&host), 1);
    }

    #[tokio::test]
    async fn port_22_writes_no_port_file_and_restarts_nothing() {
        let host = FakeHost::new();
        host.reply("useradd", [Reply::ok("0 1000 1000 /home/torrust\n")]);
        host.put_file("/home/torrust/.ssh/authorized_keys", "old-key\n", 0o600);
        assert!(prepare(&host, &access(22)).await.unwrap());
        assert!(host.file(PORT_CONF).is_none());
        assert!(
            !host
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Sudo(s) if s.contains("systemctl")))
        );
    }

    #[tokio::test]
    async fn a_failed_user_script_or_odd_output_fails_the_task() {
        let host = FakeHost::new();
        host.reply(
            "useradd",
            [
                Reply::fail(1, "useradd: cannot lock /etc/passwd"),
                Reply::ok("garbage"),
            ],
        );
        let err = prepare(&host, &access(22)).await.unwrap_err();
        assert!(err.to_string().contains("cannot lock /etc/passwd"), "{err}");
        let err = prepare(&host, &access(22)).await.unwrap_err();
        assert!(matches!(err, TaskError::Facts(_)), "{err:?}");
    }

    #[test]
    fn the_user_script_runs_in_a_shell() {
        // Against this machine's root user (without touching its home): it exists, so nothing
        // is created.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(user_script("root").replace("install -d", "true"))
            .output()
            .unwrap();
        let user = parse_user(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(
            user,
            User {
                created: false,
                uid: "0".into(),
                gid: "0".into(),
                home: user.home.clone(),
            }
        );
        assert!(user.home.starts_with('/'));
    }
}
