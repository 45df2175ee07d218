//! The rules: formats, ranges and cross-field rules. Every rule runs; every problem is kept.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::error::Problem;
use super::images::{ImageService, check_image_reference};
use super::structure::{quoted, shorten};
use super::{Database, EnvironmentConfig, Provider};
use crate::secret::REDACTED;

/// The admin token of the incumbent's examples: anyone can guess it.
const EXAMPLE_ADMIN_TOKEN: &str = "MyAccessToken";

/// Expands `~/` and resolves relative SSH key paths against `base_dir`.
pub(super) fn resolve_key_paths(config: &mut EnvironmentConfig, base_dir: &Path) {
    let ssh = &mut config.ssh_credentials;
    for path in [&mut ssh.private_key_path, &mut ssh.public_key_path]
        .into_iter()
        .flatten()
    {
        *path = resolve_path(path, base_dir);
    }
    if let Some(bundle) = config
        .images
        .as_mut()
        .and_then(|i| i.offline_bundle.as_mut())
    {
        *bundle = resolve_path(bundle, base_dir);
    }
}

fn resolve_path(path: &Path, base_dir: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Collects problems and warnings.
#[derive(Default)]
pub(super) struct Report {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Skip the rules that read files (key files, the offline bundle): for a configuration
    /// stored in the state, whose files may have moved since it was created.
    pub skip_files: bool,
}

impl Report {
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        value: Option<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem::new(path, message, value, fix));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(format!("{path}: {}", message.into()));
    }
}

/// A string value as shown in a problem.
fn v(s: &str) -> Option<String> {
    Some(shorten(
        &serde_json::Value::String(s.to_string()).to_string(),
    ))
}

fn secret_v() -> Option<String> {
    Some(REDACTED.to_string())
}

/// Runs every rule.
pub(super) fn validate(config: &EnvironmentConfig) -> Report {
    validate_with(config, Report::default())
}

/// Runs every rule that does not read a file: for the configuration stored in a state file.
pub(super) fn validate_stored(config: &EnvironmentConfig) -> Report {
    validate_with(
        config,
        Report {
            skip_files: true,
            ..Report::default()
        },
    )
}

fn validate_with(config: &EnvironmentConfig, mut r: Report) -> Report {
    environment(config, &mut r);
    ssh(config, &mut r);
    provider(config, &mut r);
    tracker(config, &mut r);
    services(config, &mut r);
    tls(config, &mut r);
    ports(config, &mut r);
    images(config, &mut r);
    host(config, &mut r);
    r
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// `environment.name`: lowercase ASCII letters, digits and `-`; no leading digit; no leading or
/// trailing `-`.
pub(super) fn check_environment_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
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

/// Linux user names: 1-32 characters, starts with a letter or `_`, then letters, digits, `_`
/// or `-`.
pub(super) fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 32 {
        return Err(format!("is {} characters long; at most 32", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err("must start with a letter or `_`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

/// A DNS name usable for a certificate: labels of letters, digits and `-` (not at either end),
/// at least two labels, at most 253 characters, not an IP address.
pub(super) fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("must not be empty".into());
    }
    if domain.parse::<IpAddr>().is_ok() {
        return Err("is an IP address; a domain name is needed for a certificate".into());
    }
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err("must be a fully qualified domain name such as `tracker.example.com`".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label (`..` or a leading `.`)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}; labels are ASCII letters, digits and `-` (use punycode for \
                 international names)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("has an all-numeric top-level label".into());
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), String> {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("has no `@`".into());
    };
    if local.is_empty() {
        return Err("has nothing before `@`".into());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    if local.contains('@') || local.starts_with('.') || local.ends_with('.') {
        return Err("has an invalid part before `@`".into());
    }
    check_domain(domain).map_err(|e| format!("domain part {e}"))
}

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

/// A 5-field cron schedule (minute hour day-of-month month day-of-week).
pub(super) fn check_cron(schedule: &str) -> Result<(), String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} field(s); exactly 5 are needed (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    const NAMES: [&str; 19] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
        "MON", "TUE", "WED", "THU", "FRI", "SAT",
    ];
    for field in &fields {
        for token in field.split([',', '-', '/']) {
            if token.is_empty() {
                return Err(format!("field {field:?} has an empty part"));
            }
            let all_digits = token.chars().all(|c| c.is_ascii_digit());
            let is_name = NAMES.contains(&token.to_ascii_uppercase().as_str());
            if !(all_digits || token == "*" || is_name) {
                return Err(format!(
                    "field {field:?} has {token:?}; use numbers, `*`, `,`, `-`, `/` or month and \
                     day names"
                ));
            }
        }
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    parser
        .parse(schedule)
        .map(|_| ())
        .map_err(|e| format!("is not a valid cron schedule: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

fn environment(config: &EnvironmentConfig, r: &mut Report) {
    let env = &config.environment;
    let name_ok = match check_environment_name(&env.name) {
        Ok(()) => true,
        Err(e) => {
            r.add(
                "environment.name",
                format!("invalid environment name: {e}"),
                v(&env.name),
                "use lowercase letters a-z, digits and `-`, starting with a letter and not \
                 ending with `-`, e.g. `my-tracker`",
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

fn ssh(config: &EnvironmentConfig, r: &mut Report) {
    let ssh = &config.ssh_credentials;
    if let Err(e) = check_username(&ssh.username) {
        r.add(
            "ssh_credentials.username",
            format!("invalid SSH username: {e}"),
            v(&ssh.username),
            "use 1-32 characters: a letter or `_`, then letters, digits, `_` or `-` (default \
             `torrust`)",
        );
    } else if ssh.username == "root" {
        r.warn(
            "ssh_credentials.username",
            "logging in as `root` is discouraged; the default `torrust` user has sudo",
        );
    }
    if ssh.port == 0 {
        r.add(
            "ssh_credentials.port",
            "port 0 is not a usable SSH port",
            Some("0".into()),
            "use the SSH port of the instance, 1-65535 (default 22)",
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

/// Warns when the key files look swapped or are not keys (the incumbent only checks existence,
/// so these are warnings).
fn check_key_contents(r: &mut Report, private: &Path, public: &Path) {
    let head = |p: &Path| -> Option<String> {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let n = std::fs::File::open(p).ok()?.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    if let Some(h) = head(public) {
        let looks_public = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
            .iter()
            .any(|p| h.trim_start().starts_with(p));
        if !looks_public {
            r.warn(
                "ssh_credentials.public_key_path",
                format!(
                    "{} does not look like an OpenSSH public key (`ssh-ed25519 AAAA...`)",
                    public.display()
                ),
            );
        }
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

fn provider(config: &EnvironmentConfig, r: &mut Report) {
    match &config.provider {
        Provider::Lxd(lxd) => {
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
        Provider::Hetzner(h) => {
            let token = h.api_token.expose();
            if token.trim().is_empty() {
                r.add(
                    "provider.api_token",
                    "the Hetzner API token is empty",
                    secret_v(),
                    "create a read/write API token in the Hetzner Cloud console (project → \
                     Security → API tokens) and put it here",
                );
            } else if token.chars().any(char::is_whitespace) {
                r.add(
                    "provider.api_token",
                    "the Hetzner API token contains whitespace",
                    secret_v(),
                    "paste the token again without spaces or line breaks",
                );
            }
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
    }
}

/// The parsed bind address, or a problem.
fn bind(r: &mut Report, path: &str, address: &str) -> Option<SocketAddr> {
    match address.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            r.add(
                path,
                "port 0 (a dynamic port) is not supported",
                v(address),
                "choose a fixed port from 1 to 65535",
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            r.add(
                path,
                "not a socket address (IP:PORT)",
                v(address),
                "write an IP address and a port, e.g. `0.0.0.0:6969` (all IPv4 interfaces), \
                 `127.0.0.1:1313` (loopback) or `[::]:6969` (IPv6); host names are not accepted",
            );
            None
        }
    }
}

/// A service that may sit behind the TLS proxy.
struct TlsService<'a> {
    path: String,
    label: String,
    domain: Option<&'a str>,
    use_tls_proxy: bool,
    /// `None` for Grafana (no bind address in the file).
    addr: Option<Option<SocketAddr>>,
}

fn tls_services(config: &EnvironmentConfig) -> Vec<TlsService<'_>> {
    let t = &config.tracker;
    let mut out = Vec::new();
    for (i, h) in t.http_trackers.iter().enumerate() {
        out.push(TlsService {
            path: format!("tracker.http_trackers[{i}]"),
            label: format!("HTTP tracker {}", i + 1),
            domain: h.domain.as_deref(),
            use_tls_proxy: h.use_tls_proxy,
            addr: Some(h.bind_address.parse().ok()),
        });
    }
    out.push(TlsService {
        path: "tracker.http_api".into(),
        label: "the tracker API".into(),
        domain: t.http_api.domain.as_deref(),
        use_tls_proxy: t.http_api.use_tls_proxy,
        addr: Some(t.http_api.bind_address.parse().ok()),
    });
    out.push(TlsService {
        path: "tracker.health_check_api".into(),
        label: "the health check API".into(),
        domain: t.health_check_api.domain.as_deref(),
        use_tls_proxy: t.health_check_api.use_tls_proxy,
        addr: Some(t.health_check_api.bind_address.parse().ok()),
    });
    if let Some(g) = &config.grafana {
        out.push(TlsService {
            path: "grafana".into(),
            label: "Grafana".into(),
            domain: g.domain.as_deref(),
            use_tls_proxy: g.use_tls_proxy,
            addr: None,
        });
    }
    out
}

fn tracker(config: &EnvironmentConfig, r: &mut Report) {
    let t = &config.tracker;
    match &t.core.database {
        Database::Sqlite3(s) => {
            let name = &s.database_name;
            let bad = if name.trim().is_empty() {
                Some("must not be empty".to_string())
            } else if name.contains(['/', '\\']) {
                Some("must be a file name, not a path".to_string())
            } else if name == "." || name == ".." {
                Some("must be a file name".to_string())
            } else if name.chars().any(|c| c.is_control()) {
                Some("contains control characters".to_string())
            } else {
                None
            };
            if let Some(e) = bad {
                r.add(
                    "tracker.core.database.database_name",
                    format!("invalid SQLite database name: {e}"),
                    v(name),
                    "use a file name such as `tracker.db` (it is kept in the tracker's data \
                     directory)",
                );
            }
        }
        Database::Mysql(m) => {
            let base = "tracker.core.database";
            if m.host.trim().is_empty() {
                r.add(
                    format!("{base}.host"),
                    "the MySQL host is empty",
                    v(&m.host),
                    "use the MySQL service name, `mysql`",
                );
            } else if m
                .host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@')
            {
                r.add(
                    format!("{base}.host"),
                    "the MySQL host is not a host name",
                    v(&m.host),
                    "use a host name such as `mysql` (no scheme, user or path)",
                );
            }
            if m.port == 0 {
                r.add(
                    format!("{base}.port"),
                    "port 0 is not a usable MySQL port",
                    Some("0".into()),
                    "use the MySQL port, normally 3306",
                );
            }
            if m.database_name.trim().is_empty() {
                r.add(
                    format!("{base}.database_name"),
                    "the MySQL database name is empty",
                    v(&m.database_name),
                    "name the database, e.g. `torrust_tracker`",
                );
            } else if m.database_name.len() > 64 {
                r.add(
                    format!("{base}.database_name"),
                    "the MySQL database name is longer than 64 characters",
                    v(&m.database_name),
                    "use a shorter name, e.g. `torrust_tracker`",
                );
            }
            if m.username.trim().is_empty() {
                r.add(
                    format!("{base}.username"),
                    "the MySQL user name is empty",
                    v(&m.username),
                    "name the tracker's database user, e.g. `torrust`",
                );
            } else if m.username.eq_ignore_ascii_case("root") {
                r.add(
                    format!("{base}.username"),
                    "the tracker must not use the MySQL `root` account",
                    v(&m.username),
                    "use a dedicated user such as `torrust`; the root password is \
                     `root_password` (generated if absent)",
                );
            } else if m.username.len() > 32 {
                r.add(
                    format!("{base}.username"),
                    "the MySQL user name is longer than 32 characters",
                    v(&m.username),
                    "use a shorter user name",
                );
            }
            if m.password.is_empty() {
                r.add(
                    format!("{base}.password"),
                    "the MySQL password is empty",
                    secret_v(),
                    "set a password for the tracker's database user (e.g. from `openssl rand \
                     -base64 24`)",
                );
            }
            if m.root_password.as_ref().is_some_and(|p| p.is_empty()) {
                r.add(
                    format!("{base}.root_password"),
                    "the MySQL root password is empty",
                    secret_v(),
                    "set a root password, or remove `root_password` to have one generated",
                );
            }
        }
    }

    for (i, u) in t.udp_trackers.iter().enumerate() {
        let path = format!("tracker.udp_trackers[{i}]");
        bind(r, &format!("{path}.bind_address"), &u.bind_address);
        if let Some(d) = &u.domain {
            domain_rule(r, &format!("{path}.domain"), d);
        }
    }
    for (i, h) in t.http_trackers.iter().enumerate() {
        bind(
            r,
            &format!("tracker.http_trackers[{i}].bind_address"),
            &h.bind_address,
        );
    }
    bind(r, "tracker.http_api.bind_address", &t.http_api.bind_address);
    bind(
        r,
        "tracker.health_check_api.bind_address",
        &t.health_check_api.bind_address,
    );
    if t.http_api.admin_token.is_empty() {
        r.add(
            "tracker.http_api.admin_token",
            "the API admin token is empty",
            secret_v(),
            "set a long random token (e.g. from `openssl rand -hex 32`)",
        );
    } else if t
        .http_api
        .admin_token
        .expose()
        .chars()
        .any(char::is_whitespace)
    {
        r.add(
            "tracker.http_api.admin_token",
            "the API admin token contains whitespace",
            secret_v(),
            "use a token without spaces or line breaks (e.g. from `openssl rand -hex 32`)",
        );
    } else if t.http_api.admin_token.expose() == EXAMPLE_ADMIN_TOKEN {
        r.warn(
            "tracker.http_api.admin_token",
            "the admin token is the well-known example value; anyone can use your API. \
             Replace it with a random token (e.g. from `openssl rand -hex 32`)",
        );
    }
    if t.udp_trackers.is_empty() && t.http_trackers.is_empty() {
        r.warn(
            "tracker",
            "no UDP and no HTTP tracker is configured: peers have nothing to announce to",
        );
    }
}

fn domain_rule(r: &mut Report, path: &str, domain: &str) {
    if let Err(e) = check_domain(domain) {
        r.add(
            path,
            format!("invalid domain: {e}"),
            v(domain),
            "use a fully qualified domain name such as `tracker.example.com`, or remove \
             `domain`",
        );
    }
}

fn services(config: &EnvironmentConfig, r: &mut Report) {
    if let Some(p) = &config.prometheus
        && p.scrape_interval_in_secs == 0
    {
        r.add(
            "prometheus.scrape_interval_in_secs",
            "the scrape interval must be greater than 0",
            Some("0".into()),
            "use a number of seconds >= 1 (default 15), or remove the field",
        );
    }
    if let Some(g) = &config.grafana {
        if config.prometheus.is_none() {
            r.add(
                "grafana",
                "Grafana needs Prometheus as its data source, and `prometheus` is absent",
                None,
                "add `\"prometheus\": { \"scrape_interval_in_secs\": 15 }`, or remove the \
                 `grafana` section",
            );
        }
        if g.admin_user.trim().is_empty() {
            r.add(
                "grafana.admin_user",
                "the Grafana admin user is empty",
                v(&g.admin_user),
                "name the Grafana admin user, e.g. `admin`",
            );
        }
        if g.admin_password.is_empty() {
            r.add(
                "grafana.admin_password",
                "the Grafana admin password is empty",
                secret_v(),
                "set a strong password (e.g. from `openssl rand -base64 24`)",
            );
        } else if g.admin_password.expose() == "admin" {
            r.warn(
                "grafana.admin_password",
                "the Grafana admin password is the well-known default `admin`; change it",
            );
        }
    }
    if let Some(h) = &config.https
        && let Err(e) = check_email(&h.admin_email)
    {
        r.add(
            "https.admin_email",
            format!("invalid e-mail address: {e}"),
            v(&h.admin_email),
            "use a real mailbox such as `admin@example.com`: Let's Encrypt sends certificate \
             expiry notices there",
        );
    }
    if let Some(b) = &config.backup {
        if let Err(e) = check_cron(&b.schedule) {
            r.add(
                "backup.schedule",
                format!("invalid backup schedule: {e}"),
                v(&b.schedule),
                "use a 5-field cron schedule `minute hour day-of-month month day-of-week`, e.g. \
                 `0 3 * * *` for every day at 03:00",
            );
        }
        if b.retention_days == 0 {
            r.add(
                "backup.retention_days",
                "the retention must be at least 1 day",
                Some("0".into()),
                "use a number of days >= 1 (default 7)",
            );
        }
    }
}

fn tls(config: &EnvironmentConfig, r: &mut Report) {
    let services = tls_services(config);
    let mut any_tls = false;
    let mut tls_domains: Vec<(&str, &str)> = Vec::new();
    for s in &services {
        if let Some(d) = s.domain {
            domain_rule(r, &format!("{}.domain", s.path), d);
        }
        if !s.use_tls_proxy {
            continue;
        }
        any_tls = true;
        match s.domain {
            None => r.add(
                format!("{}.domain", s.path),
                format!(
                    "`use_tls_proxy` is true for {} but it has no `domain`",
                    s.label
                ),
                None,
                "add the `domain` the certificate is for (e.g. `tracker.example.com`), or set \
                 `use_tls_proxy` to false",
            ),
            Some(d) => {
                let lower = d.trim_end_matches('.').to_ascii_lowercase();
                if let Some((_, other)) = tls_domains
                    .iter()
                    .find(|(dd, _)| dd.eq_ignore_ascii_case(&lower))
                {
                    r.add(
                        format!("{}.domain", s.path),
                        format!(
                            "domain `{d}` is already used by `{other}`; the TLS proxy routes by \
                             domain, so each service needs its own"
                        ),
                        v(d),
                        "give each service behind the TLS proxy a different domain (e.g. \
                         `tracker.example.com`, `api.example.com`)",
                    );
                } else {
                    tls_domains.push((d, s.path.as_str()));
                }
            }
        }
        if let Some(Some(addr)) = s.addr
            && addr.ip().is_loopback()
        {
            r.add(
                format!("{}.bind_address", s.path),
                format!(
                    "{} is behind the TLS proxy but bound to loopback, where the proxy cannot \
                     reach it",
                    s.label
                ),
                Some(format!("\"{addr}\"")),
                format!(
                    "bind to all interfaces, e.g. `0.0.0.0:{}`, or set `use_tls_proxy` to false",
                    addr.port()
                ),
            );
        }
    }
    match (&config.https, any_tls) {
        (Some(_), false) => r.add(
            "https",
            "the `https` section is present but no service has `use_tls_proxy: true`",
            None,
            "set `use_tls_proxy: true` and a `domain` on the services to serve over HTTPS \
             (HTTP trackers, `http_api`, `health_check_api`, `grafana`), or remove `https`",
        ),
        (None, true) => {
            let list: Vec<&str> = services
                .iter()
                .filter(|s| s.use_tls_proxy)
                .map(|s| s.path.as_str())
                .collect();
            r.add(
                "https",
                format!(
                    "missing: {} use(s) `use_tls_proxy: true`, which needs the `https` section",
                    quoted(&list)
                ),
                None,
                "add `\"https\": { \"admin_email\": \"you@example.com\" }` (the Let's Encrypt \
                 account), or set `use_tls_proxy` to false",
            );
        }
        _ => {}
    }
}

/// Two bind addresses conflict when their ports are equal and their IPs are equal, or one is
/// the unspecified address (`0.0.0.0`, `[::]`) of the same family.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() {
        return false;
    }
    if a.ip() == b.ip() {
        return true;
    }
    let same_family = a.is_ipv4() == b.is_ipv4();
    same_family && (a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn ports(config: &EnvironmentConfig, r: &mut Report) {
    let t = &config.tracker;
    // Binds inside the tracker, per protocol: (path, label, addr, published on the host).
    let mut udp: Vec<(String, String, SocketAddr)> = Vec::new();
    for (i, u) in t.udp_trackers.iter().enumerate() {
        if let Ok(a) = u.bind_address.parse::<SocketAddr>() {
            udp.push((
                format!("tracker.udp_trackers[{i}].bind_address"),
                format!("UDP tracker {}", i + 1),
                a,
            ));
        }
    }
    let mut tcp: Vec<(String, String, SocketAddr, bool)> = Vec::new();
    for (i, h) in t.http_trackers.iter().enumerate() {
        if let Ok(a) = h.bind_address.parse::<SocketAddr>() {
            tcp.push((
                format!("tracker.http_trackers[{i}].bind_address"),
                format!("HTTP tracker {}", i + 1),
                a,
                !h.use_tls_proxy,
            ));
        }
    }
    if let Ok(a) = t.http_api.bind_address.parse::<SocketAddr>() {
        tcp.push((
            "tracker.http_api.bind_address".into(),
            "the tracker API".into(),
            a,
            !t.http_api.use_tls_proxy,
        ));
    }
    if let Ok(a) = t.health_check_api.bind_address.parse::<SocketAddr>() {
        // The health check API is never published on the host.
        tcp.push((
            "tracker.health_check_api.bind_address".into(),
            "the health check API".into(),
            a,
            false,
        ));
    }

    let mut reported: Vec<(String, String)> = Vec::new();
    let mut duplicate =
        |r: &mut Report, proto: &str, a: (&str, &str, SocketAddr), b: (&str, &str, SocketAddr)| {
            r.add(
                b.0,
                format!(
                    "{proto} address {} conflicts with {} ({}, at `{}`)",
                    b.2, a.1, a.2, a.0
                ),
                Some(format!("\"{}\"", b.2)),
                format!("give {} another port", b.1),
            );
            reported.push((a.0.to_string(), b.0.to_string()));
        };
    for j in 0..udp.len() {
        for i in 0..j {
            if overlaps(udp[i].2, udp[j].2) {
                duplicate(
                    r,
                    "UDP",
                    (&udp[i].0, &udp[i].1, udp[i].2),
                    (&udp[j].0, &udp[j].1, udp[j].2),
                );
            }
        }
    }
    for j in 0..tcp.len() {
        for i in 0..j {
            if overlaps(tcp[i].2, tcp[j].2) {
                duplicate(
                    r,
                    "TCP",
                    (&tcp[i].0, &tcp[i].1, tcp[i].2),
                    (&tcp[j].0, &tcp[j].1, tcp[j].2),
                );
            }
        }
    }

    // Host ports: Docker publishes `port:port` on all host interfaces, next to the fixed ports
    // of the other services.
    let any_tls = config.uses_tls_proxy();
    let mut fixed_tcp: Vec<(u16, &str)> = Vec::new();
    let mut fixed_udp: Vec<(u16, &str)> = Vec::new();
    if any_tls {
        fixed_tcp.push((80, "the TLS proxy (ACME HTTP challenge)"));
        fixed_tcp.push((443, "the TLS proxy (HTTPS)"));
        fixed_udp.push((443, "the TLS proxy (HTTP/3)"));
    }
    if config.prometheus.is_some() {
        fixed_tcp.push((9090, "Prometheus (127.0.0.1:9090)"));
    }
    if let Some(g) = &config.grafana
        && !g.use_tls_proxy
    {
        fixed_tcp.push((3100, "Grafana (host port 3100)"));
    }
    let mut published_tcp: Vec<(&str, &str, u16)> = Vec::new();
    for (path, label, addr, published) in &tcp {
        if *published {
            published_tcp.push((path, label, addr.port()));
        }
    }
    for (proto, published, fixed) in [
        ("TCP", published_tcp, fixed_tcp),
        (
            "UDP",
            udp.iter()
                .map(|(p, l, a)| (p.as_str(), l.as_str(), a.port()))
                .collect(),
            fixed_udp,
        ),
    ] {
        for (j, (path, label, port)) in published.iter().enumerate() {
            if let Some((_, other)) = fixed.iter().find(|(p, _)| p == port) {
                r.add(
                    *path,
                    format!("{proto} port {port} of {label} is also published by {other}"),
                    Some(port.to_string()),
                    format!("give {label} another port"),
                );
                continue;
            }
            for (other_path, other_label, other_port) in &published[..j] {
                let already = reported.iter().any(|(a, b)| a == other_path && b == path);
                if other_port == port && !already {
                    r.add(
                        *path,
                        format!(
                            "{proto} host port {port} is published twice: by {other_label} \
                             (`{other_path}`) and {label}"
                        ),
                        Some(port.to_string()),
                        format!("give {label} another port"),
                    );
                }
            }
        }
    }
}

fn host(config: &EnvironmentConfig, r: &mut Report) {
    let Some(host) = &config.host else {
        return;
    };
    let time = &host.automatic_reboot_time;
    let valid = time.len() == 5
        && time.as_bytes()[2] == b':'
        && matches!((time[..2].parse::<u8>(), time[3..].parse::<u8>()), (Ok(h), Ok(m)) if h < 24 && m < 60)
        && time[..2]
            .bytes()
            .chain(time[3..].bytes())
            .all(|b| b.is_ascii_digit());
    if !valid {
        r.add(
            "host.automatic_reboot_time",
            "not a time of day in `HH:MM` (24-hour) form",
            v(time),
            "use e.g. `02:00` or `23:30`, or remove the field for the default `02:00`",
        );
    }
}

fn images(config: &EnvironmentConfig, r: &mut Report) {
    let Some(images) = &config.images else {
        return;
    };
    if let Some(bundle) = &images.offline_bundle
        && !r.skip_files
        && !bundle.is_dir()
    {
        r.add(
            "images.offline_bundle",
            "is not a directory",
            v(&bundle.display().to_string()),
            "point it at a directory of `docker save` archives (see docs/user-guide/offline.md), \
             or remove it to pull images from the registry",
        );
    }
    for service in ImageService::ALL {
        if let Some(reference) = images.get(service)
            && let Err(e) = check_image_reference(reference)
        {
            r.add(
                format!("images.{}", service.key()),
                format!("invalid image reference: {e}"),
                v(reference),
                format!(
                    "use `name[:tag][@digest]`, e.g. `{}`, or remove it to use that default",
                    super::images::default_image(service)
                ),
            );
        }
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
        for bad in ["", "Dev", "1dev", "-dev", "dev-", "my_env", "dév"] {
            assert!(check_environment_name(bad).is_err(), "{bad}");
        }
        for ok in ["a", "My-VM-01", &"a".repeat(63)] {
            assert!(check_instance_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1vm", "-vm", "vm-", "v_m", &"a".repeat(64)] {
            assert!(check_instance_name(bad).is_err(), "{bad}");
        }
        for ok in ["torrust", "_x", "a-b_c1", &"u".repeat(32)] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "-a", "a.b", &"u".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains_and_emails() {
        for ok in [
            "example.com",
            "a.b.example.com",
            "xn--bcher-kva.example",
            "tracker.example.com.",
        ] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "1.2.3.4",
            "::1",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a.123",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        assert!(check_email("admin@example.com").is_ok());
        for bad in [
            "admin",
            "@example.com",
            "a@localhost",
            "a b@example.com",
            ".a@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn cron() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * MON-FRI",
            "0 12 * JAN sun",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "@daily",
            "0 3 * *",
            "0 0 3 * * *",
            "60 * * * *",
            "0 3 L * *",
            "0 3 ? * *",
            "0 3 * * 1#2",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(a("0.0.0.0:1"), a("0.0.0.0:1")));
        assert!(overlaps(a("0.0.0.0:1"), a("127.0.0.1:1")));
        assert!(overlaps(a("[::]:1"), a("[::1]:1")));
        assert!(!overlaps(a("0.0.0.0:1"), a("0.0.0.0:2")));
        assert!(!overlaps(a("10.0.0.1:1"), a("10.0.0.2:1")));
        assert!(!overlaps(a("0.0.0.0:1"), a("[::1]:1")));
    }
}
