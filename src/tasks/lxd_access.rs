//! SSH access set up through LXD's exec and file APIs, for images without cloud-init: the user,
//! its key, sudo and the SSH port. The one host work that runs before SSH answers, so it goes
//! over the LXD client rather than a [`crate::host::Host`]. Idempotent: each file is read first
//! and pushed only when it differs.

use crate::lxd::{LxdClient, LxdError, UnixSocket};
use crate::ops::lxd_host::RESTART_SSH;

/// Whether the instance's image has cloud-init (which then sets up SSH access itself).
pub async fn has_cloud_init(
    client: &LxdClient<UnixSocket>,
    instance: &str,
) -> Result<bool, LxdError> {
    let r = client
        .exec(
            instance,
            &["sh", "-c", "command -v cloud-init >/dev/null || exit 1"],
        )
        .await?;
    Ok(r.exit_code == 0)
}

/// Sets up the SSH user, its key, sudo and the SSH port through LXD's exec and file APIs, for
/// images without cloud-init. Idempotent. Returns whether anything changed.
pub async fn prepare(
    client: &LxdClient<UnixSocket>,
    instance: &str,
    username: &str,
    public_key: &str,
    ssh_port: u16,
) -> Result<bool, LxdError> {
    let check = |r: crate::lxd::ExecResult, what: &str| {
        if r.exit_code == 0 {
            Ok(r)
        } else {
            Err(LxdError::Operation {
                doing: format!("{what} in instance '{instance}'"),
                message: format!("exit code {}: {}", r.exit_code, r.stderr.trim()),
            })
        }
    };
    let script = format!(
        "set -e; changed=0; \
         if ! id -u {username} >/dev/null 2>&1; then useradd -m -s /bin/bash {username}; changed=1; fi; \
         home=$(getent passwd {username} | cut -d: -f6); \
         install -d -m 0700 -o {username} -g {username} \"$home/.ssh\"; \
         echo \"$changed $(id -u {username}) $(id -g {username}) $home\""
    );
    let out = check(
        client.exec(instance, &["sh", "-c", &script]).await?,
        "creating the SSH user",
    )?;
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    let [changed, uid, gid, home] = fields[..] else {
        return Err(LxdError::Decode {
            doing: format!("creating the SSH user in instance '{instance}'"),
            message: format!("unexpected output {:?}", out.stdout),
        });
    };
    let mut any_change = changed == "1";
    let uid: u32 = uid.parse().unwrap_or(0);
    let gid: u32 = gid.parse().unwrap_or(0);

    let files = [
        (
            format!("{home}/.ssh/authorized_keys"),
            format!("{}\n", public_key.trim()),
            uid,
            gid,
            0o600,
        ),
        (
            format!("/etc/sudoers.d/90-torrust-{username}"),
            format!("{username} ALL=(ALL) NOPASSWD:ALL\n"),
            0,
            0,
            0o440,
        ),
    ];
    for (path, contents, uid, gid, mode) in files {
        let current = client.exec(instance, &["cat", &path]).await?;
        if current.exit_code != 0 || current.stdout != contents {
            client
                .push_file(instance, &path, contents.into_bytes(), uid, gid, mode)
                .await?;
            any_change = true;
        }
    }
    if ssh_port != 22 {
        let path = "/etc/ssh/sshd_config.d/10-torrust-port.conf";
        let contents = format!("Port {ssh_port}\n");
        let current = client.exec(instance, &["cat", path]).await?;
        if current.exit_code != 0 || current.stdout != contents {
            client
                .push_file(instance, path, contents.into_bytes(), 0, 0, 0o644)
                .await?;
            check(
                client.exec(instance, &["sh", "-c", RESTART_SSH]).await?,
                "restarting sshd",
            )?;
            any_change = true;
        }
    }
    Ok(any_change)
}
