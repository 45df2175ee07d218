//! `environment` (names) and `ssh_credentials` (key files).

use std::path::Path;

use super::{EnvironmentConfig, Report, v};

/// `environment.name`: 1-63 lowercase ASCII letters, digits and `-`; no leading digit; no
/// leading or trailing `-`. (It names the environment's directory, its log and lock files.)
fn check_environment_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > crate::config::MAX_ENVIRONMENT_NAME {
        return Err(format!(
            "is {} characters long; at most {}",
            name.len(),
            crate::config::MAX_ENVIRONMENT_NAME
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c.is_ascii_uppercase() {
            "must be lowercase".into()
        } else {
            format!("contains {c:?}; only lowercase letters a-z, digits and `-` are allowed")
        });
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("must not start with a digit".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must not start or end with `-`".into());
    }
    Ok(())
}

/// Instance and LXD profile names: 1-63 characters, ASCII letters, digits and `-`, no leading
/// digit or `-`, no trailing `-`.
pub(super) fn check_instance_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!("is {} characters long; at most 63", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only ASCII letters, digits and `-` are allowed"
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return Err("must not start with a digit or `-`".into());
    }
    if name.ends_with('-') {
        return Err("must not end with `-`".into());
    }
    Ok(())
}

pub(super) fn environment(config: &EnvironmentConfig, r: &mut Report) {
    let env = &config.environment;
    let name_ok = match check_environment_name(&env.name) {
        Ok(()) => true,
        Err(e) => {
            r.add(
                "environment.name",
                format!("invalid environment name: {e}"),
                v(&env.name),
                "use 1-63 lowercase letters a-z, digits and `-`, starting with a letter and \
                 not ending with `-`, e.g. `my-tracker`",
            );
            false
        }
    };
    match &env.instance_name {
        Some(instance) => {
            if let Err(e) = check_instance_name(instance) {
                r.add(
                    "environment.instance_name",
                    format!("invalid instance name: {e}"),
                    v(instance),
                    "use 1-63 ASCII letters, digits and `-`, starting with a letter and not \
                     ending with `-`; or remove `instance_name` to use \
                     `torrust-tracker-vm-<name>`",
                );
            }
        }
        None => {
            let derived = env.instance_name();
            if name_ok && check_instance_name(&derived).is_err() {
                r.add(
                    "environment.name",
                    format!(
                        "too long: the default instance name `{derived}` would be {} characters; \
                         at most 63",
                        derived.len()
                    ),
                    v(&env.name),
                    "shorten the name to at most 44 characters, or set \
                     `environment.instance_name` explicitly",
                );
            }
        }
    }
}

pub(super) fn ssh(config: &EnvironmentConfig, r: &mut Report) {
    let ssh = &config.ssh_credentials;
    // The user name and the port are typed (`Username`, `Port`): parsed when read.
    if ssh.username.as_str() == "root" {
        r.warn(
            "ssh_credentials.username",
            "logging in as `root` is discouraged; the default `torrust` user has sudo",
        );
    }
    match (&ssh.private_key_path, &ssh.public_key_path) {
        (None, None) => {}
        (Some(_), None) => r.add(
            "ssh_credentials.public_key_path",
            "missing: `private_key_path` is given without `public_key_path`",
            None,
            "add `public_key_path` (usually the private key path plus `.pub`), or remove both \
             key paths to let the deployer generate a key pair",
        ),
        (None, Some(_)) => r.add(
            "ssh_credentials.private_key_path",
            "missing: `public_key_path` is given without `private_key_path`",
            None,
            "add `private_key_path`, or remove both key paths to let the deployer generate a \
             key pair",
        ),
        (Some(_), Some(_)) if r.skip_files => {}
        (Some(private), Some(public)) => {
            let private_ok = check_key_file(r, "ssh_credentials.private_key_path", private);
            let public_ok = check_key_file(r, "ssh_credentials.public_key_path", public);
            if private_ok && public_ok {
                if private == public {
                    r.add(
                        "ssh_credentials.public_key_path",
                        "the public key path is the same file as the private key path",
                        Some(public.display().to_string()),
                        "point `public_key_path` at the public key (usually the private key \
                         path plus `.pub`)",
                    );
                } else {
                    check_key_contents(r, private, public);
                }
            }
        }
    }
}

fn check_key_file(r: &mut Report, json_path: &str, path: &Path) -> bool {
    let shown = Some(path.display().to_string());
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.add(
                json_path,
                format!("file not found: {}", path.display()),
                shown,
                "correct the path (a relative path is resolved against the environment file's \
                 directory), create the key with `ssh-keygen -t ed25519 -f <path>`, or remove \
                 both key paths to let the deployer generate a key pair",
            );
            false
        }
        Err(e) => {
            r.add(
                json_path,
                format!("cannot access {}: {e}", path.display()),
                shown,
                "check the permissions of the file and of its directories",
            );
            false
        }
        Ok(meta) if !meta.is_file() => {
            r.add(
                json_path,
                format!("not a regular file: {}", path.display()),
                shown,
                "point the path at the key file itself, not at a directory",
            );
            false
        }
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => true,
            Err(e) => {
                r.add(
                    json_path,
                    format!("cannot read {}: {e}", path.display()),
                    shown,
                    "make the file readable by the user running the deployer (e.g. `chmod 600` \
                     for a private key you own)",
                );
                false
            }
        },
    }
}

/// The public key is parsed: it goes into cloud-init and `authorized_keys`, so a file that is
/// not exactly one OpenSSH public key is refused. The private key may be encrypted or in a
/// format only the SSH engine reads: one that does not look like a private key is a warning
/// (the incumbent only checks that it exists).
fn check_key_contents(r: &mut Report, private: &Path, public: &Path) {
    let head = |p: &Path| -> Option<String> {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let n = std::fs::File::open(p).ok()?.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    match crate::ssh::read_public_key(public) {
        Ok(_) => {}
        Err(crate::ssh::PublicKeyError::Invalid { reason, .. }) => r.add(
            "ssh_credentials.public_key_path",
            format!(
                "{} is not an OpenSSH public key file: {reason}",
                public.display()
            ),
            Some(public.display().to_string()),
            crate::ssh::PUBLIC_KEY_FIX,
        ),
        Err(e) => r.add(
            "ssh_credentials.public_key_path",
            e.to_string(),
            Some(public.display().to_string()),
            "make the file readable by the user running the deployer",
        ),
    }
    if let Some(h) = head(private)
        && !h.trim_start().starts_with("-----BEGIN")
    {
        r.warn(
            "ssh_credentials.private_key_path",
            format!(
                "{} does not look like a private key (`-----BEGIN ... PRIVATE KEY-----`)",
                private.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "dev", "e2e-test-1"] {
            assert!(check_environment_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Dev",
            "1dev",
            "-dev",
            "dev-",
            "my_env",
            "dév",
            &"a".repeat(64),
        ] {
            assert!(check_environment_name(bad).is_err(), "{bad}");
        }
        assert!(check_environment_name(&"a".repeat(63)).is_ok());
        for ok in ["a", "My-VM-01", &"a".repeat(63)] {
            assert!(check_instance_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1vm", "-vm", "vm-", "v_m", &"a".repeat(64)] {
            assert!(check_instance_name(bad).is_err(), "{bad}");
        }
    }
}
