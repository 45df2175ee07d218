//! `provider`: LXD names, image and limits; Hetzner Cloud names. (The Hetzner API token is a
//! secret: `secrets`.)

use super::environment::check_instance_name;
use super::{Report, v};
use crate::config::{EnvironmentConfig, HetznerProvider, LxdProvider, Provider};

/// LXD object names (storage pool, network, project).
fn check_lxd_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!(
            "contains {c:?}; only ASCII letters, digits, `-`, `_` and `.` are allowed"
        ));
    }
    if name == "." || name == ".." {
        return Err("must not be `.` or `..`".into());
    }
    Ok(())
}

/// LXD image: `remote:alias`, or a local alias or fingerprint.
fn check_lxd_image(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("must not be empty".into());
    }
    if image.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    let (remote, alias) = match image.split_once(':') {
        Some((remote, alias)) => (Some(remote), alias),
        None => (None, image),
    };
    if let Some(remote) = remote {
        let ok = remote
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && remote
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(format!(
                "remote {remote:?} is invalid; write `remote:alias` such as `ubuntu:24.04` or \
                 `images:debian/12/cloud`"
            ));
        }
    }
    if alias.is_empty() {
        return Err("has no alias after the remote; e.g. `ubuntu:24.04`".into());
    }
    if let Some(c) = alias
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./+".contains(*c)))
    {
        return Err(format!("alias contains {c:?}"));
    }
    if alias.starts_with('/') || alias.ends_with('/') || alias.contains("//") {
        return Err("alias has an empty path segment".into());
    }
    Ok(())
}

/// An LXD size such as `2GiB`, `512MB` or `1073741824`; with `percent`, also `50%`.
fn check_size(size: &str, percent: bool) -> Result<(), String> {
    const UNITS: [&str; 13] = [
        "B", "kB", "MB", "GB", "TB", "PB", "EB", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
    ];
    let digits_end = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let (number, unit) = size.split_at(digits_end);
    let value: f64 = number
        .parse()
        .map_err(|_| "must start with a number".to_string())?;
    if number.starts_with('.') || number.ends_with('.') {
        return Err("must start with a number".into());
    }
    if value <= 0.0 {
        return Err("must be greater than zero".into());
    }
    if unit == "%" {
        if !percent {
            return Err("a percentage is not allowed here".into());
        }
        if value > 100.0 {
            return Err("a percentage must be at most 100%".into());
        }
        return Ok(());
    }
    if !unit.is_empty() && !UNITS.contains(&unit) {
        return Err(format!(
            "unit {unit:?} is not an LXD unit (use one of {})",
            UNITS.join(", ")
        ));
    }
    if (unit.is_empty() || unit == "B") && number.contains('.') {
        return Err("bytes must be a whole number".into());
    }
    Ok(())
}

pub(super) fn provider(config: &EnvironmentConfig, r: &mut Report) {
    match &config.provider {
        Provider::Lxd(lxd) => check_lxd(lxd, r),
        Provider::Hetzner(h) => check_hetzner(h, r),
    }
}

fn check_lxd(lxd: &LxdProvider, r: &mut Report) {
    if let Err(e) = check_instance_name(&lxd.profile_name) {
        r.add(
            "provider.profile_name",
            format!("invalid LXD profile name: {e}"),
            v(&lxd.profile_name),
            "use 1-63 ASCII letters, digits and `-`, starting with a letter and not \
             ending with `-`, e.g. `torrust-profile-<name>`",
        );
    }
    if let Err(e) = check_lxd_image(&lxd.image) {
        r.add(
            "provider.image",
            format!("invalid LXD image: {e}"),
            v(&lxd.image),
            "use `remote:alias` such as `ubuntu:24.04` or `images:debian/12/cloud`, or a \
             local alias or fingerprint (default `ubuntu:24.04`)",
        );
    }
    if let Some(socket) = &lxd.socket_path
        && !socket.is_absolute()
    {
        r.add(
            "provider.socket_path",
            "the LXD socket path must be absolute",
            Some(socket.display().to_string()),
            "use an absolute path such as `/var/snap/lxd/common/lxd/unix.socket`, or \
             remove it to let LXD find its socket",
        );
    }
    for (field, value) in [
        ("storage_pool", Some(&lxd.storage_pool)),
        ("network", Some(&lxd.network)),
        ("project", lxd.project.as_ref()),
    ] {
        if let Some(value) = value
            && let Err(e) = check_lxd_name(value)
        {
            r.add(
                format!("provider.{field}"),
                format!("invalid LXD {} name: {e}", field.replace('_', " ")),
                v(value),
                "use the name of an existing LXD object (`lxc storage list`, `lxc \
                 network list`, `lxc project list`)",
            );
        }
    }
    check_remote_lxd(lxd, r);
    if lxd.cpu == Some(0) {
        r.add(
            "provider.cpu",
            "the CPU limit must be at least 1",
            Some("0".into()),
            "use a whole number of CPUs >= 1, or remove `cpu` for LXD's default",
        );
    }
    if let Some(memory) = &lxd.memory
        && let Err(e) = check_size(memory, true)
    {
        r.add(
            "provider.memory",
            format!("invalid memory limit: {e}"),
            v(memory),
            "use an LXD size such as `2GiB`, `512MiB` or `50%`, or remove `memory`",
        );
    }
    if let Some(disk) = &lxd.disk
        && let Err(e) = check_size(disk, false)
    {
        r.add(
            "provider.disk",
            format!("invalid disk size: {e}"),
            v(disk),
            "use an LXD size such as `20GiB`, or remove `disk`",
        );
    }
}

/// The remote LXD settings: an HTTPS endpoint, a client certificate given whole, a fingerprint
/// that is one, a target that is an LXD name.
fn check_remote_lxd(lxd: &LxdProvider, r: &mut Report) {
    if let Some(endpoint) = &lxd.endpoint
        && let Err(e) = crate::lxd::https::parse_endpoint(endpoint)
    {
        r.add(
            "provider.endpoint",
            format!("invalid LXD endpoint: {e}"),
            v(endpoint),
            "use `https://HOST:PORT` (LXD's `core.https_address`, port 8443 by default), or \
             remove `endpoint` for the local LXD",
        );
    }
    let remote_only = [
        ("trust_token", lxd.trust_token.is_some()),
        ("server_fingerprint", lxd.server_fingerprint.is_some()),
        ("client_certificate", lxd.client_certificate.is_some()),
        ("client_key", lxd.client_key.is_some()),
    ];
    if lxd.endpoint.is_none() {
        for (field, set) in remote_only {
            if set {
                r.add(
                    format!("provider.{field}"),
                    "only a remote LXD (`provider.endpoint`) uses this",
                    None,
                    "set `provider.endpoint` to the remote LXD, or remove this setting",
                );
            }
        }
    }
    if lxd.client_certificate.is_some() != lxd.client_key.is_some() {
        r.add(
            "provider.client_certificate",
            "`client_certificate` and `client_key` go together",
            None,
            "give both (PEM files), or neither to let the deployer make one",
        );
    }
    if let Some(fp) = &lxd.server_fingerprint {
        let fp = crate::lxd::https::normalize_fingerprint(fp);
        if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
            r.add(
                "provider.server_fingerprint",
                "not a SHA-256 certificate fingerprint (64 hex digits)",
                v(&fp),
                "copy `certificate_fingerprint` from `lxc info` on the server, or remove it \
                 to pin the one the trust token carries",
            );
        }
    }
    if let Some(target) = &lxd.target
        && let Err(e) = check_lxd_name(target.strip_prefix('@').unwrap_or(target))
    {
        r.add(
            "provider.target",
            format!("invalid cluster member: {e}"),
            v(target),
            "use a member's name (`lxc cluster list`) or `@GROUP` for a cluster group, or \
             remove `target` to let the cluster choose",
        );
    }
}

fn check_hetzner(h: &HetznerProvider, r: &mut Report) {
    for (field, value, example) in [
        ("server_type", &h.server_type, "cx22"),
        ("location", &h.location, "nbg1"),
        ("image", &h.image, "ubuntu-24.04"),
    ] {
        if value.trim().is_empty() || value.chars().any(char::is_whitespace) {
            r.add(
                format!("provider.{field}"),
                format!("invalid Hetzner {}", field.replace('_', " ")),
                v(value),
                format!(
                    "use a Hetzner Cloud {} name such as `{example}`",
                    field.replace('_', " ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxd_formats() {
        for ok in [
            "ubuntu:24.04",
            "images:debian/12/cloud",
            "local-alias",
            "a1b2c3d4",
        ] {
            assert!(check_lxd_image(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ubuntu:", ":x", "a b", "images:/x", "images:x/"] {
            assert!(check_lxd_image(bad).is_err(), "{bad}");
        }
        for ok in ["1", "2GiB", "512MB", "1.5GiB", "100kB"] {
            assert!(check_size(ok, false).is_ok(), "{ok}");
        }
        assert!(check_size("50%", true).is_ok());
        for bad in [
            "", "0", "0GiB", "2gib", "GiB", "1.5", "50%", ".5GiB", "2 GiB",
        ] {
            assert!(check_size(bad, false).is_err(), "{bad}");
        }
        assert!(check_size("101%", true).is_err());
    }
}
