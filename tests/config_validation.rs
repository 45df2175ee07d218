//! The environment file: every validation rule (table tests), error reporting, the legacy
//! `caddy` section, key path resolution, secrets, the template and the JSON Schema.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use torrust_tracker_deployer::config::{
    self, ConfigError, Database, ImageService, Loaded, Problem, Provider, ProviderKind,
    default_image,
};
use torrust_tracker_deployer::secret::REDACTED;

use crate::common::{TEST_PUBLIC_KEY, TEST_RSA_PUBLIC_KEY};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// A base directory that does not exist: relative key paths resolve to missing files.
fn nowhere() -> &'static Path {
    Path::new("/nonexistent-torrust-config-test-dir")
}

/// A valid file without SSH keys (the deployer generates them).
fn base() -> Value {
    json!({
        "environment": { "name": "test-env" },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": "torrust-profile-test-env" },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "test-admin-token-0123456789" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        }
    })
}

fn hetzner() -> Value {
    json!({
        "provider": "hetzner",
        "api_token": "test0hetzner0token",
        "server_type": "cx22",
        "location": "nbg1",
        "image": "ubuntu-24.04"
    })
}

fn mysql() -> Value {
    json!({
        "driver": "mysql",
        "host": "mysql",
        "port": 3306,
        "database_name": "torrust_tracker",
        "username": "tracker_user",
        "password": "test-mysql-password"
    })
}

/// One edit of a JSON pointer: `Some(value)` sets it (creating objects on the way), `None`
/// removes it.
type Edit = (&'static str, Option<Value>);

fn set(v: &mut Value, pointer: &str, new: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer starts with /");
    let mut cur = v;
    for part in parent.split('/').skip(1) {
        cur = match cur {
            Value::Array(a) => &mut a[part.parse::<usize>().unwrap()],
            Value::Object(_) => {
                if cur.get(part).is_none() {
                    cur[part] = json!({});
                }
                cur.get_mut(part).unwrap()
            }
            _ => panic!("cannot walk {pointer}"),
        };
    }
    match (cur, new) {
        (Value::Object(m), Some(n)) => {
            m.insert(last.to_string(), n);
        }
        (Value::Object(m), None) => {
            m.remove(last);
        }
        (Value::Array(a), Some(n)) => {
            let i: usize = last.parse().unwrap();
            if i == a.len() {
                a.push(n);
            } else {
                a[i] = n;
            }
        }
        (Value::Array(a), None) => {
            a.remove(last.parse::<usize>().unwrap());
        }
        _ => panic!("cannot set {pointer}"),
    }
}

fn apply(edits: &[Edit]) -> Value {
    let mut v = base();
    for (pointer, new) in edits {
        set(&mut v, pointer, new.clone());
    }
    v
}

fn parse_value(v: &Value) -> Result<Loaded, ConfigError> {
    config::parse(&serde_json::to_string_pretty(v).unwrap(), nowhere())
}

fn problems_of(v: &Value) -> Vec<Problem> {
    match parse_value(v) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

fn show(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expected outcome: valid, or a problem at `path` whose message or fix contains `text`.
enum Expect {
    Valid,
    Invalid(&'static str, &'static str),
}

use Expect::{Invalid, Valid};

fn check_cases(cases: Vec<(&str, Vec<Edit>, Expect)>) {
    let mut failures = Vec::new();
    for (name, edits, expect) in cases {
        let v = apply(&edits);
        let result = parse_value(&v);
        match (expect, result) {
            (Valid, Ok(_)) => {}
            (Valid, Err(e)) => failures.push(format!(
                "{name}: expected valid, got:\n{}",
                show(&e.problems())
            )),
            (Invalid(path, _), Ok(_)) => {
                failures.push(format!("{name}: expected a problem at {path}, got valid"))
            }
            (Invalid(path, text), Err(e)) => {
                let problems = e.problems();
                let hit = problems.iter().find(|p| {
                    p.path == path
                        && (p.message.to_lowercase().contains(&text.to_lowercase())
                            || p.fix.to_lowercase().contains(&text.to_lowercase()))
                });
                match hit {
                    None => failures.push(format!(
                        "{name}: expected a problem at `{path}` mentioning {text:?}, got:\n{}",
                        show(&problems)
                    )),
                    Some(p) => {
                        if p.message.trim().is_empty() || p.fix.trim().is_empty() {
                            failures.push(format!("{name}: message or fix is empty: {p:?}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn s(v: &str) -> Option<Value> {
    Some(json!(v))
}

// ---------------------------------------------------------------------------------------------
// Table tests: one per section
// ---------------------------------------------------------------------------------------------

#[test]
fn environment_rules() {
    let long45 = "a".repeat(45);
    let long44 = "a".repeat(44);
    let i64chars = format!("a{}", "b".repeat(63));
    check_cases(vec![
        ("base is valid", vec![], Valid),
        (
            "digits and dashes",
            vec![("/environment/name", s("e2e-test-1"))],
            Valid,
        ),
        (
            "description is free text",
            vec![("/environment/description", s("Ünïcode & stuff!"))],
            Valid,
        ),
        (
            "empty name",
            vec![("/environment/name", s(""))],
            Invalid("environment.name", "empty"),
        ),
        (
            "uppercase name",
            vec![("/environment/name", s("Prod"))],
            Invalid("environment.name", "lowercase"),
        ),
        (
            "underscore in name",
            vec![("/environment/name", s("my_env"))],
            Invalid("environment.name", "only lowercase"),
        ),
        (
            "leading digit",
            vec![("/environment/name", s("1env"))],
            Invalid("environment.name", "digit"),
        ),
        (
            "leading dash",
            vec![("/environment/name", s("-env"))],
            Invalid("environment.name", "`-`"),
        ),
        (
            "trailing dash",
            vec![("/environment/name", s("env-"))],
            Invalid("environment.name", "`-`"),
        ),
        (
            "name not a string",
            vec![("/environment/name", Some(json!(5)))],
            Invalid("environment.name", "expected a string"),
        ),
        (
            "name missing",
            vec![("/environment/name", None)],
            Invalid("environment.name", "missing"),
        ),
        (
            "environment missing",
            vec![("/environment", None)],
            Invalid("environment", "missing"),
        ),
        (
            "name of 44 chars",
            vec![("/environment/name", Some(json!(long44)))],
            Valid,
        ),
        (
            "name too long for the default instance name",
            vec![("/environment/name", Some(json!(long45.clone())))],
            Invalid("environment.name", "63"),
        ),
        (
            "long name with explicit instance name",
            vec![
                ("/environment/name", Some(json!(long45))),
                ("/environment/instance_name", s("short-vm")),
            ],
            Valid,
        ),
        (
            "name of 64 chars with an explicit instance name",
            vec![
                ("/environment/name", Some(json!("a".repeat(64)))),
                ("/environment/instance_name", s("short-vm")),
            ],
            Invalid("environment.name", "at most 63"),
        ),
        (
            "name of 63 chars with an explicit instance name",
            vec![
                ("/environment/name", Some(json!("a".repeat(63)))),
                ("/environment/instance_name", s("short-vm")),
            ],
            Valid,
        ),
        (
            "instance name mixed case",
            vec![("/environment/instance_name", s("My-Instance-01"))],
            Valid,
        ),
        (
            "instance name empty",
            vec![("/environment/instance_name", s(""))],
            Invalid("environment.instance_name", "empty"),
        ),
        (
            "instance name 64 chars",
            vec![("/environment/instance_name", Some(json!(i64chars)))],
            Invalid("environment.instance_name", "63"),
        ),
        (
            "instance name leading digit",
            vec![("/environment/instance_name", s("1vm"))],
            Invalid("environment.instance_name", "digit"),
        ),
        (
            "instance name leading dash",
            vec![("/environment/instance_name", s("-vm"))],
            Invalid("environment.instance_name", "`-`"),
        ),
        (
            "instance name trailing dash",
            vec![("/environment/instance_name", s("vm-"))],
            Invalid("environment.instance_name", "end"),
        ),
        (
            "instance name underscore",
            vec![("/environment/instance_name", s("my_vm"))],
            Invalid("environment.instance_name", "only ascii"),
        ),
        (
            "placeholder name",
            vec![("/environment/name", s("REPLACE_WITH_ENVIRONMENT_NAME"))],
            Invalid("environment.name", "placeholder"),
        ),
    ]);
}

#[test]
fn ssh_rules() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id");
    let public = dir.path().join("id.pub");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n").unwrap();
    std::fs::write(&public, format!("{TEST_PUBLIC_KEY} test\n")).unwrap();
    let p = |path: &Path| Some(json!(path.display().to_string()));
    let subdir = dir.path().join("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let two_lines = dir.path().join("two-lines.pub");
    std::fs::write(
        &two_lines,
        format!("{TEST_PUBLIC_KEY} me\nruncmd: [touch, /tmp/x]\n"),
    )
    .unwrap();
    let not_a_key = dir.path().join("not-a-key.pub");
    std::fs::write(&not_a_key, "ssh-ed25519 AAAA test\n").unwrap();
    let keys = |public: &Path| {
        vec![
            ("/ssh_credentials/private_key_path", p(&private)),
            ("/ssh_credentials/public_key_path", p(public)),
        ]
    };
    check_cases(vec![
        (
            "public key file with a second line",
            keys(&two_lines),
            Invalid(
                "ssh_credentials.public_key_path",
                "2 non-empty lines (line 2 is the second)",
            ),
        ),
        (
            "public key file that is not a key",
            keys(&not_a_key),
            Invalid("ssh_credentials.public_key_path", "ssh-keygen -y -f"),
        ),
        ("keys omitted", vec![], Valid),
        (
            "ssh_credentials empty object",
            vec![("/ssh_credentials", Some(json!({})))],
            Valid,
        ),
        (
            "absolute existing keys",
            vec![
                ("/ssh_credentials/private_key_path", p(&private)),
                ("/ssh_credentials/public_key_path", p(&public)),
            ],
            Valid,
        ),
        (
            "only the private key",
            vec![("/ssh_credentials/private_key_path", p(&private))],
            Invalid(
                "ssh_credentials.public_key_path",
                "without `public_key_path`",
            ),
        ),
        (
            "only the public key",
            vec![("/ssh_credentials/public_key_path", p(&public))],
            Invalid(
                "ssh_credentials.private_key_path",
                "without `private_key_path`",
            ),
        ),
        (
            "missing private key file",
            vec![
                ("/ssh_credentials/private_key_path", s("/nonexistent/id")),
                ("/ssh_credentials/public_key_path", p(&public)),
            ],
            Invalid("ssh_credentials.private_key_path", "not found"),
        ),
        (
            "missing public key file",
            vec![
                ("/ssh_credentials/private_key_path", p(&private)),
                ("/ssh_credentials/public_key_path", s("/nonexistent/id.pub")),
            ],
            Invalid("ssh_credentials.public_key_path", "not found"),
        ),
        (
            "relative path resolved against a missing dir",
            vec![
                ("/ssh_credentials/private_key_path", s("keys/id")),
                ("/ssh_credentials/public_key_path", s("keys/id.pub")),
            ],
            Invalid(
                "ssh_credentials.private_key_path",
                "nonexistent-torrust-config-test-dir",
            ),
        ),
        (
            "key path is a directory",
            vec![
                ("/ssh_credentials/private_key_path", p(&subdir)),
                ("/ssh_credentials/public_key_path", p(&public)),
            ],
            Invalid("ssh_credentials.private_key_path", "not a regular file"),
        ),
        (
            "same file for both keys",
            vec![
                ("/ssh_credentials/private_key_path", p(&private)),
                ("/ssh_credentials/public_key_path", p(&private)),
            ],
            Invalid("ssh_credentials.public_key_path", "same file"),
        ),
        (
            "placeholder key path",
            vec![
                (
                    "/ssh_credentials/private_key_path",
                    s("REPLACE_WITH_SSH_PRIVATE_KEY_ABSOLUTE_PATH"),
                ),
                ("/ssh_credentials/public_key_path", p(&public)),
            ],
            Invalid("ssh_credentials.private_key_path", "placeholder"),
        ),
        (
            "username ubuntu",
            vec![("/ssh_credentials/username", s("ubuntu"))],
            Valid,
        ),
        (
            "username with underscore first",
            vec![("/ssh_credentials/username", s("_deploy-1"))],
            Valid,
        ),
        (
            "username empty",
            vec![("/ssh_credentials/username", s(""))],
            Invalid("ssh_credentials.username", "empty"),
        ),
        (
            "username 33 chars",
            vec![("/ssh_credentials/username", Some(json!("a".repeat(33))))],
            Invalid("ssh_credentials.username", "32"),
        ),
        (
            "username leading digit",
            vec![("/ssh_credentials/username", s("1user"))],
            Invalid("ssh_credentials.username", "start with a letter"),
        ),
        (
            "username with a dot",
            vec![("/ssh_credentials/username", s("first.last"))],
            Invalid("ssh_credentials.username", "only letters"),
        ),
        (
            "port 2222",
            vec![("/ssh_credentials/port", Some(json!(2222)))],
            Valid,
        ),
        (
            "port 0",
            vec![("/ssh_credentials/port", Some(json!(0)))],
            Invalid("ssh_credentials.port", "port 0"),
        ),
        (
            "port too big",
            vec![("/ssh_credentials/port", Some(json!(70000)))],
            Invalid("ssh_credentials.port", "65535"),
        ),
        (
            "port negative",
            vec![("/ssh_credentials/port", Some(json!(-1)))],
            Invalid("ssh_credentials.port", "65535"),
        ),
        (
            "port as a string",
            vec![("/ssh_credentials/port", s("22"))],
            Invalid("ssh_credentials.port", "expected an integer"),
        ),
        (
            "ssh_credentials missing",
            vec![("/ssh_credentials", None)],
            Invalid("ssh_credentials", "missing"),
        ),
    ]);
}

#[test]
fn unreadable_key_file_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id");
    let public = dir.path().join("id.pub");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    std::fs::write(&public, format!("{TEST_PUBLIC_KEY}\n")).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&private).is_ok() {
        // Running as root: permissions do not stop reads, nothing to test.
        return;
    }
    let v = apply(&[
        ("/ssh_credentials/private_key_path", Some(json!(private))),
        ("/ssh_credentials/public_key_path", Some(json!(public))),
    ]);
    let problems = problems_of(&v);
    assert!(
        problems
            .iter()
            .any(|p| p.path == "ssh_credentials.private_key_path"
                && p.message.contains("cannot read")),
        "{}",
        show(&problems)
    );
}

#[test]
fn lxd_provider_rules() {
    check_cases(vec![
        (
            "image remote:alias path",
            vec![("/provider/image", s("images:debian/12/cloud"))],
            Valid,
        ),
        (
            "image ubuntu:24.04",
            vec![("/provider/image", s("ubuntu:24.04"))],
            Valid,
        ),
        (
            "image local alias",
            vec![("/provider/image", s("my-golden-image"))],
            Valid,
        ),
        (
            "image fingerprint",
            vec![("/provider/image", s("a1b2c3d4e5f6a7b8"))],
            Valid,
        ),
        (
            "image empty",
            vec![("/provider/image", s(""))],
            Invalid("provider.image", "empty"),
        ),
        (
            "image with space",
            vec![("/provider/image", s("ubuntu 24.04"))],
            Invalid("provider.image", "whitespace"),
        ),
        (
            "image remote without alias",
            vec![("/provider/image", s("ubuntu:"))],
            Invalid("provider.image", "alias"),
        ),
        (
            "image empty remote",
            vec![("/provider/image", s(":24.04"))],
            Invalid("provider.image", "remote"),
        ),
        (
            "image bad alias char",
            vec![("/provider/image", s("images:debian?12"))],
            Invalid("provider.image", "alias"),
        ),
        (
            "image empty segment",
            vec![("/provider/image", s("images:debian//12"))],
            Invalid("provider.image", "segment"),
        ),
        (
            "instance type vm",
            vec![("/provider/instance_type", s("virtual-machine"))],
            Valid,
        ),
        (
            "instance type container",
            vec![("/provider/instance_type", s("container"))],
            Valid,
        ),
        (
            "instance type typo",
            vec![("/provider/instance_type", s("containr"))],
            Invalid("provider.instance_type", "did you mean `container`"),
        ),
        (
            "socket absolute",
            vec![(
                "/provider/socket_path",
                s("/var/snap/lxd/common/lxd/unix.socket"),
            )],
            Valid,
        ),
        (
            "socket relative",
            vec![("/provider/socket_path", s("lxd.socket"))],
            Invalid("provider.socket_path", "absolute"),
        ),
        (
            "remote endpoint",
            vec![("/provider/endpoint", s("https://lxd1.example.org:8443"))],
            Valid,
        ),
        (
            "remote endpoint with everything",
            vec![
                ("/provider/endpoint", s("https://[2001:db8::5]")),
                ("/provider/trust_token", s("eyJjbGllbnRfbmFtZSI6In0=")),
                ("/provider/server_fingerprint", s(&"AB:".repeat(32)[..95])),
                ("/provider/client_certificate", s("lxd.crt")),
                ("/provider/client_key", s("lxd.key")),
                ("/provider/target", s("member-2")),
            ],
            Valid,
        ),
        (
            "remote endpoint over http",
            vec![("/provider/endpoint", s("http://lxd1:8443"))],
            Invalid("provider.endpoint", "https://"),
        ),
        (
            "remote endpoint bad port",
            vec![("/provider/endpoint", s("https://lxd1:0"))],
            Invalid("provider.endpoint", "not a port"),
        ),
        (
            "trust token without endpoint",
            vec![("/provider/trust_token", s("eyJ9"))],
            Invalid("provider.trust_token", "provider.endpoint"),
        ),
        (
            "client certificate without key",
            vec![
                ("/provider/endpoint", s("https://lxd1")),
                ("/provider/client_certificate", s("lxd.crt")),
            ],
            Invalid("provider.client_certificate", "go together"),
        ),
        (
            "server fingerprint too short",
            vec![
                ("/provider/endpoint", s("https://lxd1")),
                ("/provider/server_fingerprint", s("abcd")),
            ],
            Invalid("provider.server_fingerprint", "64 hex"),
        ),
        (
            "cluster group target",
            vec![("/provider/target", s("@edge"))],
            Valid,
        ),
        (
            "cluster target with a slash",
            vec![("/provider/target", s("a/b"))],
            Invalid("provider.target", "only ascii"),
        ),
        (
            "storage pool named",
            vec![("/provider/storage_pool", s("zfs_pool.1"))],
            Valid,
        ),
        (
            "storage pool empty",
            vec![("/provider/storage_pool", s(""))],
            Invalid("provider.storage_pool", "empty"),
        ),
        (
            "storage pool slash",
            vec![("/provider/storage_pool", s("a/b"))],
            Invalid("provider.storage_pool", "only ascii"),
        ),
        (
            "network space",
            vec![("/provider/network", s("lxd br0"))],
            Invalid("provider.network", "only ascii"),
        ),
        (
            "project named",
            vec![("/provider/project", s("torrust"))],
            Valid,
        ),
        (
            "project bad",
            vec![("/provider/project", s("my project"))],
            Invalid("provider.project", "only ascii"),
        ),
        ("cpu 4", vec![("/provider/cpu", Some(json!(4)))], Valid),
        (
            "cpu 0",
            vec![("/provider/cpu", Some(json!(0)))],
            Invalid("provider.cpu", "at least 1"),
        ),
        (
            "cpu negative",
            vec![("/provider/cpu", Some(json!(-2)))],
            Invalid("provider.cpu", "range"),
        ),
        (
            "cpu fractional",
            vec![("/provider/cpu", Some(json!(1.5)))],
            Invalid("provider.cpu", "expected an integer"),
        ),
        ("memory GiB", vec![("/provider/memory", s("2GiB"))], Valid),
        ("memory MB", vec![("/provider/memory", s("512MB"))], Valid),
        (
            "memory bytes",
            vec![("/provider/memory", s("1073741824"))],
            Valid,
        ),
        (
            "memory percent",
            vec![("/provider/memory", s("50%"))],
            Valid,
        ),
        (
            "memory bad unit",
            vec![("/provider/memory", s("2Gb"))],
            Invalid("provider.memory", "unit"),
        ),
        (
            "memory zero",
            vec![("/provider/memory", s("0MiB"))],
            Invalid("provider.memory", "greater than zero"),
        ),
        (
            "memory words",
            vec![("/provider/memory", s("lots"))],
            Invalid("provider.memory", "number"),
        ),
        (
            "memory over 100%",
            vec![("/provider/memory", s("150%"))],
            Invalid("provider.memory", "100%"),
        ),
        ("disk GiB", vec![("/provider/disk", s("20GiB"))], Valid),
        (
            "disk percent",
            vec![("/provider/disk", s("50%"))],
            Invalid("provider.disk", "percentage"),
        ),
        (
            "disk space inside",
            vec![("/provider/disk", s("20 GiB"))],
            Invalid("provider.disk", "unit"),
        ),
        (
            "profile name empty",
            vec![("/provider/profile_name", s(""))],
            Invalid("provider.profile_name", "empty"),
        ),
        (
            "profile name underscore",
            vec![("/provider/profile_name", s("torrust_profile"))],
            Invalid("provider.profile_name", "only ascii"),
        ),
        (
            "profile name leading digit",
            vec![("/provider/profile_name", s("9profile"))],
            Invalid("provider.profile_name", "digit"),
        ),
        (
            "profile name trailing dash",
            vec![("/provider/profile_name", s("profile-"))],
            Invalid("provider.profile_name", "end"),
        ),
        (
            "profile name missing",
            vec![("/provider/profile_name", None)],
            Invalid("provider.profile_name", "missing"),
        ),
        (
            "provider tag missing",
            vec![("/provider/provider", None)],
            Invalid("provider.provider", "missing"),
        ),
        (
            "provider tag typo",
            vec![("/provider/provider", s("lxdd"))],
            Invalid("provider.provider", "did you mean `lxd`"),
        ),
        (
            "provider unknown field",
            vec![("/provider/profile", s("x"))],
            Invalid("provider.profile", "did you mean `profile_name`"),
        ),
        (
            "hetzner field on lxd",
            vec![("/provider/api_token", s("x"))],
            Invalid("provider.api_token", "unknown field"),
        ),
    ]);
}

#[test]
fn hetzner_provider_rules() {
    let with = |edits: Vec<Edit>| {
        let mut all: Vec<Edit> = vec![("/provider", Some(hetzner()))];
        all.extend(edits);
        all
    };
    check_cases(vec![
        ("hetzner valid", with(vec![]), Valid),
        (
            "template placeholder token",
            with(vec![(
                "/provider/api_token",
                s(config::HETZNER_API_TOKEN_PLACEHOLDER),
            )]),
            Invalid("provider.api_token", "placeholder"),
        ),
        (
            "incumbent placeholder token",
            with(vec![(
                "/provider/api_token",
                s("REPLACE_WITH_HETZNER_API_TOKEN"),
            )]),
            Invalid("provider.api_token", "placeholder"),
        ),
        (
            "empty token: read from HCLOUD_TOKEN when provisioning",
            with(vec![("/provider/api_token", s(""))]),
            Valid,
        ),
        (
            "token with space",
            with(vec![("/provider/api_token", s("abc def"))]),
            Invalid("provider.api_token", "whitespace"),
        ),
        (
            "token missing",
            with(vec![("/provider/api_token", None)]),
            Invalid("provider.api_token", "missing"),
        ),
        (
            "server type empty",
            with(vec![("/provider/server_type", s(""))]),
            Invalid("provider.server_type", "cx22"),
        ),
        (
            "location with space",
            with(vec![("/provider/location", s("nbg 1"))]),
            Invalid("provider.location", "nbg1"),
        ),
        (
            "image empty",
            with(vec![("/provider/image", s(""))]),
            Invalid("provider.image", "ubuntu-24.04"),
        ),
        (
            "lxd field on hetzner",
            with(vec![("/provider/profile_name", s("p"))]),
            Invalid("provider.profile_name", "unknown field"),
        ),
    ]);
}

#[test]
fn database_rules() {
    let with = |edits: Vec<Edit>| {
        let mut all: Vec<Edit> = vec![("/tracker/core/database", Some(mysql()))];
        all.extend(edits);
        all
    };
    check_cases(vec![
        (
            "sqlite other name",
            vec![("/tracker/core/database/database_name", s("data.sqlite3"))],
            Valid,
        ),
        (
            "sqlite empty name",
            vec![("/tracker/core/database/database_name", s(""))],
            Invalid("tracker.core.database.database_name", "empty"),
        ),
        (
            "sqlite path",
            vec![("/tracker/core/database/database_name", s("dir/tracker.db"))],
            Invalid("tracker.core.database.database_name", "not a path"),
        ),
        (
            "sqlite name missing",
            vec![("/tracker/core/database/database_name", None)],
            Invalid("tracker.core.database.database_name", "missing"),
        ),
        (
            "unknown driver",
            vec![("/tracker/core/database/driver", s("postgres"))],
            Invalid("tracker.core.database.driver", "sqlite3"),
        ),
        (
            "driver typo",
            vec![("/tracker/core/database/driver", s("sqlite"))],
            Invalid("tracker.core.database.driver", "did you mean `sqlite3`"),
        ),
        (
            "private missing",
            vec![("/tracker/core/private", None)],
            Invalid("tracker.core.private", "missing"),
        ),
        (
            "private as string",
            vec![("/tracker/core/private", s("false"))],
            Invalid("tracker.core.private", "boolean"),
        ),
        ("mysql valid", with(vec![]), Valid),
        (
            "mysql with root password",
            with(vec![(
                "/tracker/core/database/root_password",
                s("root-secret"),
            )]),
            Valid,
        ),
        (
            "mysql host empty",
            with(vec![("/tracker/core/database/host", s(""))]),
            Invalid("tracker.core.database.host", "empty"),
        ),
        (
            "mysql host url",
            with(vec![("/tracker/core/database/host", s("mysql://db"))]),
            Invalid("tracker.core.database.host", "host name"),
        ),
        (
            "mysql port 0",
            with(vec![("/tracker/core/database/port", Some(json!(0)))]),
            Invalid("tracker.core.database.port", "port 0"),
        ),
        (
            "mysql database empty",
            with(vec![("/tracker/core/database/database_name", s(""))]),
            Invalid("tracker.core.database.database_name", "empty"),
        ),
        (
            "mysql database too long",
            with(vec![(
                "/tracker/core/database/database_name",
                Some(json!("d".repeat(65))),
            )]),
            Invalid("tracker.core.database.database_name", "64"),
        ),
        (
            "mysql user empty",
            with(vec![("/tracker/core/database/username", s(""))]),
            Invalid("tracker.core.database.username", "empty"),
        ),
        (
            "mysql user root",
            with(vec![("/tracker/core/database/username", s("root"))]),
            Invalid("tracker.core.database.username", "root"),
        ),
        (
            "mysql user ROOT",
            with(vec![("/tracker/core/database/username", s("ROOT"))]),
            Invalid("tracker.core.database.username", "root"),
        ),
        (
            "mysql user too long",
            with(vec![(
                "/tracker/core/database/username",
                Some(json!("u".repeat(33))),
            )]),
            Invalid("tracker.core.database.username", "32"),
        ),
        (
            "mysql password empty",
            with(vec![("/tracker/core/database/password", s(""))]),
            Invalid("tracker.core.database.password", "empty"),
        ),
        (
            "mysql password missing",
            with(vec![("/tracker/core/database/password", None)]),
            Invalid("tracker.core.database.password", "missing"),
        ),
        (
            "mysql root password empty",
            with(vec![("/tracker/core/database/root_password", s(""))]),
            Invalid("tracker.core.database.root_password", "empty"),
        ),
        (
            "mysql host missing",
            with(vec![("/tracker/core/database/host", None)]),
            Invalid("tracker.core.database.host", "missing"),
        ),
        (
            "mysql host with a semicolon",
            with(vec![("/tracker/core/database/host", s("mysql;x"))]),
            Invalid("tracker.core.database.host", "use `mysql`"),
        ),
        (
            "mysql host an IP address",
            with(vec![("/tracker/core/database/host", s("10.0.0.5"))]),
            Invalid("tracker.core.database.host", "IP address"),
        ),
        (
            "mysql database name with a backquote",
            with(vec![(
                "/tracker/core/database/database_name",
                s("db`; DROP DATABASE mysql; --"),
            )]),
            Invalid("tracker.core.database.database_name", "only ASCII letters"),
        ),
        (
            "mysql database name starting with a dash",
            with(vec![("/tracker/core/database/database_name", s("-db"))]),
            Invalid("tracker.core.database.database_name", "start with a letter"),
        ),
        (
            "mysql database name with a dash",
            with(vec![(
                "/tracker/core/database/database_name",
                s("torrust-db"),
            )]),
            Valid,
        ),
        (
            "mysql user with a quote",
            with(vec![("/tracker/core/database/username", s("u'@'%"))]),
            Invalid("tracker.core.database.username", "only ASCII letters"),
        ),
        (
            "mysql user with a dot",
            with(vec![("/tracker/core/database/username", s("tr.acker"))]),
            Invalid("tracker.core.database.username", "`_` and `-`"),
        ),
    ]);
}

/// What a file of the stack cannot hold is refused by validation, not first by `render`.
#[test]
fn values_the_stack_cannot_hold_are_refused_at_validation() {
    let mysql_with = |pointer: &'static str, value: &str| -> Vec<Edit> {
        vec![
            ("/tracker/core/database", Some(mysql())),
            (pointer, s(value)),
        ]
    };
    let grafana = |password: &str| -> Vec<Edit> {
        vec![(
            "/grafana",
            Some(json!({"admin_user": "admin", "admin_password": password})),
        )]
    };
    let token = "/tracker/http_api/admin_token";
    check_cases(vec![
        (
            "token with a single quote",
            vec![(token, s("abc'def"))],
            Invalid("tracker.http_api.admin_token", "single quote"),
        ),
        (
            "token with a backslash",
            vec![(token, s("abc\\def"))],
            Invalid("tracker.http_api.admin_token", "backslash"),
        ),
        (
            "token with ${",
            vec![(token, s("abc${HOME}"))],
            Invalid("tracker.http_api.admin_token", "`${`"),
        ),
        (
            "token starting with a double quote",
            vec![(token, s("\"abcdef"))],
            Invalid("tracker.http_api.admin_token", "double quote"),
        ),
        (
            "token with a double quote inside",
            vec![(token, s("abc\"def-0123456789"))],
            Valid,
        ),
        (
            "mysql password with a quote",
            mysql_with("/tracker/core/database/password", "it's"),
            Invalid("tracker.core.database.password", "single quote"),
        ),
        (
            "mysql password with a line break",
            mysql_with("/tracker/core/database/password", "a\nb"),
            Invalid("tracker.core.database.password", "U+000A"),
        ),
        (
            "mysql root password with ${",
            mysql_with("/tracker/core/database/root_password", "x${Y}"),
            Invalid("tracker.core.database.root_password", "`${`"),
        ),
        (
            "grafana password with a backslash",
            grafana("pa\\ss"),
            Invalid("grafana.admin_password", "openssl rand"),
        ),
        (
            "grafana password with $ alone",
            {
                let mut edits = grafana("pa$ss-word");
                edits.push(("/prometheus", Some(json!({}))));
                edits
            },
            Valid,
        ),
    ]);
    // A secret's value is never shown, and the message names the fix.
    let v = apply(&mysql_with("/tracker/core/database/password", "SEKRIT'x"));
    let problems = problems_of(&v);
    let text = show(&problems);
    assert!(!text.contains("SEKRIT"), "{text}");
    assert!(text.contains("fix: choose a value without"), "{text}");
}

#[test]
fn bind_address_rules() {
    check_cases(vec![
        (
            "udp ipv6",
            vec![("/tracker/udp_trackers/0/bind_address", s("[::]:6969"))],
            Valid,
        ),
        (
            "udp with domain",
            vec![("/tracker/udp_trackers/0/domain", s("tracker.example.com"))],
            Valid,
        ),
        (
            "udp bad domain",
            vec![(
                "/tracker/udp_trackers/0/domain",
                s("bad_domain.example.com"),
            )],
            Invalid("tracker.udp_trackers[0].domain", "invalid domain"),
        ),
        (
            "udp not an address",
            vec![("/tracker/udp_trackers/0/bind_address", s("6969"))],
            Invalid("tracker.udp_trackers[0].bind_address", "IP:PORT"),
        ),
        (
            "udp host name",
            vec![("/tracker/udp_trackers/0/bind_address", s("localhost:6969"))],
            Invalid("tracker.udp_trackers[0].bind_address", "host names"),
        ),
        (
            "udp port 0",
            vec![("/tracker/udp_trackers/0/bind_address", s("0.0.0.0:0"))],
            Invalid("tracker.udp_trackers[0].bind_address", "port 0"),
        ),
        (
            "second udp bad",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_address": "0.0.0.0:99999"})),
            )],
            Invalid("tracker.udp_trackers[1].bind_address", "IP:PORT"),
        ),
        (
            "http port 0",
            vec![("/tracker/http_trackers/0/bind_address", s("0.0.0.0:0"))],
            Invalid("tracker.http_trackers[0].bind_address", "port 0"),
        ),
        (
            "api bad address",
            vec![("/tracker/http_api/bind_address", s("0.0.0.0"))],
            Invalid("tracker.http_api.bind_address", "IP:PORT"),
        ),
        (
            "health port 0",
            vec![("/tracker/health_check_api/bind_address", s("127.0.0.1:0"))],
            Invalid("tracker.health_check_api.bind_address", "port 0"),
        ),
        (
            "health check omitted uses the default",
            vec![("/tracker/health_check_api", None)],
            Valid,
        ),
        (
            "no http trackers",
            vec![("/tracker/http_trackers", Some(json!([])))],
            Valid,
        ),
        (
            "udp list omitted",
            vec![("/tracker/udp_trackers", None)],
            Valid,
        ),
        (
            "udp list as object",
            vec![("/tracker/udp_trackers", Some(json!({})))],
            Invalid("tracker.udp_trackers", "expected an array"),
        ),
        (
            "bind address as number",
            vec![("/tracker/http_trackers/0/bind_address", Some(json!(7070)))],
            Invalid("tracker.http_trackers[0].bind_address", "expected a string"),
        ),
        (
            "admin token empty",
            vec![("/tracker/http_api/admin_token", s(""))],
            Invalid("tracker.http_api.admin_token", "empty"),
        ),
        (
            "admin token with space",
            vec![("/tracker/http_api/admin_token", s("a b"))],
            Invalid("tracker.http_api.admin_token", "whitespace"),
        ),
        (
            "admin token missing",
            vec![("/tracker/http_api/admin_token", None)],
            Invalid("tracker.http_api.admin_token", "missing"),
        ),
        (
            "http_api missing",
            vec![("/tracker/http_api", None)],
            Invalid("tracker.http_api", "missing"),
        ),
    ]);
}

#[test]
fn duplicate_and_conflicting_port_rules() {
    check_cases(vec![
        (
            "udp and tcp share a port",
            vec![("/tracker/udp_trackers/0/bind_address", s("0.0.0.0:7070"))],
            Valid,
        ),
        (
            "two udp trackers",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_address": "0.0.0.0:6868"})),
            )],
            Valid,
        ),
        (
            "duplicate udp",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_address": "0.0.0.0:6969"})),
            )],
            Invalid("tracker.udp_trackers[1].bind_address", "conflicts"),
        ),
        (
            "udp wildcard overlap",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_address": "127.0.0.1:6969"})),
            )],
            Invalid("tracker.udp_trackers[1].bind_address", "conflicts"),
        ),
        (
            "http and api same",
            vec![("/tracker/http_api/bind_address", s("0.0.0.0:7070"))],
            Invalid("tracker.http_api.bind_address", "conflicts"),
        ),
        (
            "two http trackers same",
            vec![(
                "/tracker/http_trackers/1",
                Some(json!({"bind_address": "0.0.0.0:7070"})),
            )],
            Invalid("tracker.http_trackers[1].bind_address", "conflicts"),
        ),
        (
            "api and health same",
            vec![("/tracker/health_check_api/bind_address", s("0.0.0.0:1212"))],
            Invalid("tracker.health_check_api.bind_address", "conflicts"),
        ),
        (
            "health loopback vs api wildcard",
            vec![(
                "/tracker/health_check_api/bind_address",
                s("127.0.0.1:1212"),
            )],
            Invalid("tracker.health_check_api.bind_address", "conflicts"),
        ),
        (
            "ipv4 and ipv6 binds on one port share the container's port",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_address": "[::1]:6969"})),
            )],
            Invalid(
                "tracker.udp_trackers[1].bind_address",
                "inside the tracker's container both listen on port 6969",
            ),
        ),
        (
            "health check is not published",
            vec![
                (
                    "/tracker/health_check_api/bind_address",
                    s("127.0.0.1:9090"),
                ),
                ("/prometheus", Some(json!({}))),
            ],
            Valid,
        ),
        (
            "published twice on different IPs",
            vec![
                (
                    "/tracker/http_trackers/1",
                    Some(json!({"bind_address": "10.0.0.1:7070"})),
                ),
                ("/tracker/http_trackers/0/bind_address", s("10.0.0.2:7070")),
            ],
            Invalid(
                "tracker.http_trackers[1].bind_address",
                "inside the tracker's container both listen on port 7070",
            ),
        ),
        (
            "tracker on prometheus port",
            vec![
                ("/prometheus", Some(json!({}))),
                ("/tracker/http_trackers/0/bind_address", s("0.0.0.0:9090")),
            ],
            Invalid("tracker.http_trackers[0].bind_address", "Prometheus"),
        ),
        (
            "9090 fine without prometheus",
            vec![("/tracker/http_trackers/0/bind_address", s("0.0.0.0:9090"))],
            Valid,
        ),
        (
            "tracker on grafana host port",
            vec![
                ("/prometheus", Some(json!({}))),
                (
                    "/grafana",
                    Some(json!({"admin_user": "admin", "admin_password": "pw-123456"})),
                ),
                ("/tracker/http_api/bind_address", s("0.0.0.0:3100")),
            ],
            Invalid("tracker.http_api.bind_address", "Grafana"),
        ),
        (
            "tracker on port 80 with the TLS proxy",
            vec![
                ("/https", Some(json!({"admin_email": "a@example.com"}))),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
                ("/tracker/http_trackers/0/bind_address", s("0.0.0.0:80")),
            ],
            Invalid("tracker.http_trackers[0].bind_address", "TLS proxy"),
        ),
        (
            "udp on 443 with the TLS proxy",
            vec![
                ("/https", Some(json!({"admin_email": "a@example.com"}))),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
                ("/tracker/udp_trackers/0/bind_address", s("0.0.0.0:443")),
            ],
            Invalid("tracker.udp_trackers[0].bind_address", "HTTP/3"),
        ),
        (
            "http tracker behind TLS may use any port",
            vec![
                ("/https", Some(json!({"admin_email": "a@example.com"}))),
                ("/tracker/http_trackers/0/domain", s("t.example.com")),
                ("/tracker/http_trackers/0/use_tls_proxy", Some(json!(true))),
                ("/tracker/http_trackers/0/bind_address", s("0.0.0.0:9090")),
            ],
            Valid,
        ),
    ]);
}

#[test]
fn tls_rules() {
    let https = ("/https", Some(json!({"admin_email": "admin@example.com"})));
    let prom = ("/prometheus", Some(json!({})));
    check_cases(vec![
        (
            "http tracker behind TLS",
            vec![
                https.clone(),
                ("/tracker/http_trackers/0/domain", s("t.example.com")),
                ("/tracker/http_trackers/0/use_tls_proxy", Some(json!(true))),
            ],
            Valid,
        ),
        (
            "use_tls_proxy null is false",
            vec![("/tracker/http_trackers/0/use_tls_proxy", Some(Value::Null))],
            Valid,
        ),
        (
            "domain without TLS",
            vec![("/tracker/http_trackers/0/domain", s("t.example.com"))],
            Valid,
        ),
        (
            "TLS without domain",
            vec![
                https.clone(),
                ("/tracker/http_trackers/0/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("tracker.http_trackers[0].domain", "no `domain`"),
        ),
        (
            "TLS on loopback",
            vec![
                https.clone(),
                ("/tracker/http_trackers/0/domain", s("t.example.com")),
                ("/tracker/http_trackers/0/use_tls_proxy", Some(json!(true))),
                ("/tracker/http_trackers/0/bind_address", s("127.0.0.1:7070")),
            ],
            Invalid("tracker.http_trackers[0].bind_address", "loopback"),
        ),
        (
            "TLS on ipv6 loopback",
            vec![
                https.clone(),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
                ("/tracker/http_api/bind_address", s("[::1]:1212")),
            ],
            Invalid("tracker.http_api.bind_address", "loopback"),
        ),
        (
            "health check TLS on its loopback default",
            vec![
                https.clone(),
                ("/tracker/health_check_api/domain", s("health.example.com")),
                ("/tracker/health_check_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("tracker.health_check_api.bind_address", "loopback"),
        ),
        (
            "api TLS without domain",
            vec![
                https.clone(),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("tracker.http_api.domain", "no `domain`"),
        ),
        (
            "TLS without https section",
            vec![
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("https", "missing"),
        ),
        (
            "grafana TLS without https section",
            vec![
                prom.clone(),
                (
                    "/grafana",
                    Some(
                        json!({"admin_user": "admin", "admin_password": "pw-123456", "domain": "grafana.example.com", "use_tls_proxy": true}),
                    ),
                ),
            ],
            Invalid("https", "grafana"),
        ),
        (
            "grafana TLS with https",
            vec![
                prom.clone(),
                https.clone(),
                (
                    "/grafana",
                    Some(
                        json!({"admin_user": "admin", "admin_password": "pw-123456", "domain": "grafana.example.com", "use_tls_proxy": true}),
                    ),
                ),
            ],
            Valid,
        ),
        (
            "grafana TLS without domain",
            vec![
                prom.clone(),
                https.clone(),
                (
                    "/grafana",
                    Some(
                        json!({"admin_user": "admin", "admin_password": "pw-123456", "use_tls_proxy": true}),
                    ),
                ),
            ],
            Invalid("grafana.domain", "no `domain`"),
        ),
        (
            "https without TLS service",
            vec![https.clone()],
            Invalid("https", "no service"),
        ),
        (
            "same domain twice",
            vec![
                https.clone(),
                ("/tracker/http_trackers/0/domain", s("t.example.com")),
                ("/tracker/http_trackers/0/use_tls_proxy", Some(json!(true))),
                ("/tracker/http_api/domain", s("T.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("tracker.http_api.domain", "already used"),
        ),
        (
            "domain is an IP",
            vec![("/tracker/http_trackers/0/domain", s("203.0.113.7"))],
            Invalid("tracker.http_trackers[0].domain", "IP address"),
        ),
        (
            "single label domain",
            vec![("/tracker/http_api/domain", s("localhost"))],
            Invalid("tracker.http_api.domain", "fully qualified"),
        ),
        (
            "domain with empty label",
            vec![("/tracker/http_api/domain", s("api..example.com"))],
            Invalid("tracker.http_api.domain", "empty label"),
        ),
        (
            "domain label dash",
            vec![("/tracker/http_api/domain", s("-api.example.com"))],
            Invalid("tracker.http_api.domain", "`-`"),
        ),
        (
            "domain empty",
            vec![("/tracker/http_api/domain", s(""))],
            Invalid("tracker.http_api.domain", "empty"),
        ),
        (
            "grafana bad domain",
            vec![
                prom.clone(),
                (
                    "/grafana",
                    Some(
                        json!({"admin_user": "admin", "admin_password": "pw-123456", "domain": "grafana example"}),
                    ),
                ),
            ],
            Invalid("grafana.domain", "invalid domain"),
        ),
        (
            "https bad email",
            vec![
                https.clone(),
                ("/https/admin_email", s("not-an-email")),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("https.admin_email", "@"),
        ),
        (
            "https email without domain dot",
            vec![
                https.clone(),
                ("/https/admin_email", s("admin@localhost")),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("https.admin_email", "domain part"),
        ),
        (
            "https staging",
            vec![
                https.clone(),
                ("/https/use_staging", Some(json!(true))),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Valid,
        ),
        (
            "https email missing",
            vec![
                ("/https", Some(json!({}))),
                ("/tracker/http_api/domain", s("api.example.com")),
                ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
            ],
            Invalid("https.admin_email", "missing"),
        ),
    ]);
}

#[test]
fn announce_policy_rules() {
    let p = |v: Value| vec![("/tracker/core/announce_policy", Some(v))];
    check_cases(vec![
        ("announce policy absent is 300/300", vec![], Valid),
        ("announce policy empty", p(json!({})), Valid),
        (
            "announce policy set",
            p(json!({"interval": 1800, "interval_min": 600})),
            Valid,
        ),
        (
            "announce policy bounds inclusive",
            p(json!({"interval": 86400, "interval_min": 30})),
            Valid,
        ),
        (
            "announce interval below the bound",
            p(json!({"interval": 29, "interval_min": 29})),
            Invalid("tracker.core.announce_policy.interval", "from 30 to 86400"),
        ),
        (
            "announce interval above the bound",
            p(json!({"interval": 86401})),
            Invalid("tracker.core.announce_policy.interval", "from 30 to 86400"),
        ),
        (
            "announce minimum above the interval",
            p(json!({"interval": 120})),
            Invalid(
                "tracker.core.announce_policy.interval_min",
                "above the interval",
            ),
        ),
        (
            "announce interval negative",
            p(json!({"interval": -1})),
            Invalid("tracker.core.announce_policy.interval", "range"),
        ),
        (
            "announce policy typo",
            p(json!({"intervall": 600})),
            Invalid(
                "tracker.core.announce_policy.intervall",
                "did you mean `interval`",
            ),
        ),
    ]);
    // Absent, it stays absent (stored configurations of older releases compare equal).
    let loaded = parse_value(&base()).unwrap();
    assert!(loaded.config.tracker.core.announce_policy.is_none());
    let text = serde_json::to_string(&loaded.config).unwrap();
    assert!(!text.contains("announce_policy"), "{text}");
}

#[test]
fn images_backup_is_accepted_and_ignored_with_a_warning() {
    let v = apply(&[("/images", Some(json!({"backup": "alpine:3.22"})))]);
    let loaded = parse_value(&v).unwrap_or_else(|e| panic!("{}", e.report()));
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.starts_with("images.backup"))
        .unwrap_or_else(|| panic!("no warning: {:?}", loaded.warnings));
    assert!(
        warning.contains("ignored") && warning.contains("host"),
        "{warning}"
    );
    // No service uses it: every image the stack can run is one of the other keys.
    let c = &loaded.config;
    for service in config::ImageService::ALL {
        assert_ne!(c.image(service), "alpine:3.22");
    }
    assert_eq!(
        config::schema()["$defs"]["Images"]["properties"]["backup"]["deprecated"],
        json!(true)
    );
}

#[test]
fn monitoring_and_backup_rules() {
    let grafana = json!({"admin_user": "admin", "admin_password": "pw-123456"});
    check_cases(vec![
        (
            "prometheus default",
            vec![("/prometheus", Some(json!({})))],
            Valid,
        ),
        (
            "prometheus 30s",
            vec![("/prometheus", Some(json!({"scrape_interval_in_secs": 30})))],
            Valid,
        ),
        (
            "prometheus null is absent",
            vec![("/prometheus", Some(Value::Null))],
            Valid,
        ),
        (
            "scrape interval 0",
            vec![("/prometheus", Some(json!({"scrape_interval_in_secs": 0})))],
            Invalid("prometheus.scrape_interval_in_secs", "greater than 0"),
        ),
        (
            "scrape interval string",
            vec![(
                "/prometheus",
                Some(json!({"scrape_interval_in_secs": "15"})),
            )],
            Invalid("prometheus.scrape_interval_in_secs", "integer"),
        ),
        (
            "grafana with prometheus",
            vec![
                ("/prometheus", Some(json!({}))),
                ("/grafana", Some(grafana.clone())),
            ],
            Valid,
        ),
        (
            "grafana without prometheus",
            vec![("/grafana", Some(grafana.clone()))],
            Invalid("grafana", "prometheus"),
        ),
        (
            "grafana user empty",
            vec![
                ("/prometheus", Some(json!({}))),
                (
                    "/grafana",
                    Some(json!({"admin_user": "", "admin_password": "pw"})),
                ),
            ],
            Invalid("grafana.admin_user", "empty"),
        ),
        (
            "grafana password empty",
            vec![
                ("/prometheus", Some(json!({}))),
                (
                    "/grafana",
                    Some(json!({"admin_user": "admin", "admin_password": ""})),
                ),
            ],
            Invalid("grafana.admin_password", "empty"),
        ),
        (
            "grafana password missing",
            vec![
                ("/prometheus", Some(json!({}))),
                ("/grafana", Some(json!({"admin_user": "admin"}))),
            ],
            Invalid("grafana.admin_password", "missing"),
        ),
        (
            "grafana not an object",
            vec![("/grafana", Some(json!(true)))],
            Invalid("grafana", "expected an object"),
        ),
        ("backup defaults", vec![("/backup", Some(json!({})))], Valid),
        (
            "backup every 15 min",
            vec![("/backup", Some(json!({"schedule": "*/15 * * * *"})))],
            Valid,
        ),
        (
            "backup weekdays by name",
            vec![("/backup", Some(json!({"schedule": "30 2 * * MON-FRI"})))],
            Valid,
        ),
        (
            "backup list and range",
            vec![(
                "/backup",
                Some(json!({"schedule": "0 1,13 1-15 JAN,JUL *"})),
            )],
            Valid,
        ),
        (
            "backup 4 fields",
            vec![("/backup", Some(json!({"schedule": "0 3 * *"})))],
            Invalid("backup.schedule", "exactly 5"),
        ),
        (
            "backup 6 fields",
            vec![("/backup", Some(json!({"schedule": "0 0 3 * * *"})))],
            Invalid("backup.schedule", "exactly 5"),
        ),
        (
            "backup nickname",
            vec![("/backup", Some(json!({"schedule": "@daily"})))],
            Invalid("backup.schedule", "exactly 5"),
        ),
        (
            "backup minute 61",
            vec![("/backup", Some(json!({"schedule": "61 3 * * *"})))],
            Invalid("backup.schedule", "cron"),
        ),
        (
            "backup hour 24",
            vec![("/backup", Some(json!({"schedule": "0 24 * * *"})))],
            Invalid("backup.schedule", "cron"),
        ),
        (
            "backup quartz L",
            vec![("/backup", Some(json!({"schedule": "0 3 L * *"})))],
            Invalid("backup.schedule", "\"L\""),
        ),
        (
            "backup empty",
            vec![("/backup", Some(json!({"schedule": ""})))],
            Invalid("backup.schedule", "exactly 5"),
        ),
        (
            "retention 1",
            vec![("/backup", Some(json!({"retention_days": 1})))],
            Valid,
        ),
        (
            "retention 0",
            vec![("/backup", Some(json!({"retention_days": 0})))],
            Invalid("backup.retention_days", "at least 1"),
        ),
        (
            "retention negative",
            vec![("/backup", Some(json!({"retention_days": -3})))],
            Invalid("backup.retention_days", "range"),
        ),
    ]);
}

#[test]
fn images_rules() {
    check_cases(vec![
        ("images empty", vec![("/images", Some(json!({})))], Valid),
        ("image tag", vec![("/images/mysql", s("mysql:8.0"))], Valid),
        (
            "image registry and port",
            vec![(
                "/images/tracker",
                s("registry.example.com:5000/torrust/tracker:3.0.0"),
            )],
            Valid,
        ),
        (
            "image digest",
            vec![(
                "/images/caddy",
                s("caddy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            )],
            Valid,
        ),
        (
            "image uppercase",
            vec![("/images/tracker", s("Torrust/Tracker"))],
            Invalid("images.tracker", "name component"),
        ),
        (
            "image empty tag",
            vec![("/images/mysql", s("mysql:"))],
            Invalid("images.mysql", "tag"),
        ),
        (
            "image bad digest",
            vec![("/images/grafana", s("grafana/grafana@sha256:abc"))],
            Invalid("images.grafana", "digest"),
        ),
        (
            "image empty",
            vec![("/images/prometheus", s(""))],
            Invalid("images.prometheus", "empty"),
        ),
        (
            "image space",
            vec![("/images/caddy", s("caddy 2"))],
            Invalid("images.caddy", "whitespace"),
        ),
        (
            "images unknown service",
            vec![("/images/postgres", s("postgres:16"))],
            Invalid("images.postgres", "unknown field"),
        ),
        (
            "images typo",
            vec![("/images/grafna", s("grafana/grafana:12.3.1"))],
            Invalid("images.grafna", "did you mean `grafana`"),
        ),
    ]);
}

#[test]
fn unknown_fields_rules() {
    check_cases(vec![
        (
            "top-level typo",
            vec![("/trackr", Some(json!({})))],
            Invalid("trackr", "did you mean `tracker`"),
        ),
        (
            "nested typo",
            vec![("/tracker/http_trackers/0/use_tls_prxy", Some(json!(true)))],
            Invalid(
                "tracker.http_trackers[0].use_tls_prxy",
                "did you mean `use_tls_proxy`",
            ),
        ),
        (
            "prefix typo",
            vec![("/tracker/http_api/use_tls", Some(json!(true)))],
            Invalid("tracker.http_api.use_tls", "did you mean `use_tls_proxy`"),
        ),
        (
            "top-level $schema for editors",
            vec![("/$schema", s("./env.schema.json"))],
            Valid,
        ),
        (
            "$schema elsewhere is unknown",
            vec![("/environment/$schema", s("x"))],
            Invalid("environment.$schema", "unknown field"),
        ),
        (
            "unrelated field lists the allowed ones",
            vec![("/environment/colour", s("blue"))],
            Invalid("environment.colour", "`description`"),
        ),
        (
            "typo in a second array item",
            vec![(
                "/tracker/udp_trackers/1",
                Some(json!({"bind_adress": "0.0.0.0:6868"})),
            )],
            Invalid(
                "tracker.udp_trackers[1].bind_adress",
                "did you mean `bind_address`",
            ),
        ),
        (
            "typo in mysql",
            vec![
                ("/tracker/core/database", Some(mysql())),
                ("/tracker/core/database/pasword", s("x")),
            ],
            Invalid("tracker.core.database.pasword", "did you mean `password`"),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

#[test]
fn all_problems_of_a_file_are_reported_at_once() {
    let err = config::load(&fixtures().join("invalid/three-problems.json")).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 3, "{}", show(&problems));
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"environment.name"), "{paths:?}");
    assert!(
        paths.contains(&"tracker.http_trackers[0].use_tls_prxy"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"tracker.http_api.bind_address"),
        "{paths:?}"
    );
    assert_eq!(err.to_string(), "3 problem(s) in the environment file");
    let report = err.report();
    for p in &problems {
        assert!(
            report.contains(&p.path) && report.contains(&p.fix),
            "{report}"
        );
    }
}

#[test]
fn many_rule_violations_across_sections_are_collected() {
    let v = apply(&[
        ("/environment/name", s("Bad")),
        ("/ssh_credentials/port", Some(json!(0))),
        ("/provider/cpu", Some(json!(0))),
        ("/tracker/udp_trackers/0/bind_address", s("nope")),
        (
            "/grafana",
            Some(json!({"admin_user": "a", "admin_password": "b"})),
        ),
        ("/backup", Some(json!({"retention_days": 0}))),
        ("/extra", Some(json!(1))),
    ]);
    let problems = problems_of(&v);
    for path in [
        "environment.name",
        "ssh_credentials.port",
        "provider.cpu",
        "tracker.udp_trackers[0].bind_address",
        "grafana",
        "backup.retention_days",
        "extra",
    ] {
        assert!(
            problems.iter().any(|p| p.path == path),
            "no problem at {path}:\n{}",
            show(&problems)
        );
    }
}

/// Typed values (bind addresses, ports, domains, user and database names) are parsed by their
/// types; a rejected one is reported once, at its path, and hides nothing else, and the cross-field
/// rules do not trip over what stands in for it.
#[test]
fn rejected_typed_values_are_reported_once_and_hide_nothing() {
    let v = apply(&[
        ("/ssh_credentials/username", s("first.last")),
        ("/ssh_credentials/port", Some(json!(0))),
        ("/tracker/core/database", Some(mysql())),
        ("/tracker/core/database/username", s("root")),
        ("/tracker/core/database/database_name", s("")),
        ("/tracker/core/database/port", Some(json!(0))),
        ("/tracker/udp_trackers/0/bind_address", s("nope")),
        (
            "/tracker/udp_trackers/1",
            Some(json!({"bind_address": "0:0"})),
        ),
        (
            "/tracker/udp_trackers/0/domain",
            s("bad_domain.example.com"),
        ),
        // Two rejected TCP addresses: no conflict between their stand-ins.
        ("/tracker/http_trackers/0/bind_address", s("0.0.0.0:0")),
        (
            "/tracker/health_check_api/bind_address",
            s("localhost:1313"),
        ),
        // A real conflict and a rule problem elsewhere are still found.
        (
            "/tracker/http_trackers/1",
            Some(json!({"bind_address": "0.0.0.0:1212"})),
        ),
        ("/tracker/http_api/domain", s("api..example.com")),
        ("/tracker/http_api/use_tls_proxy", Some(json!(true))),
        ("/environment/name", s("Bad")),
    ]);
    let problems = problems_of(&v);
    let expected = [
        ("ssh_credentials.username", "invalid SSH username"),
        ("ssh_credentials.port", "port 0"),
        ("tracker.core.database.username", "`root`"),
        ("tracker.core.database.database_name", "empty"),
        ("tracker.core.database.port", "port 0"),
        ("tracker.udp_trackers[0].bind_address", "IP:PORT"),
        ("tracker.udp_trackers[1].bind_address", "IP:PORT"),
        ("tracker.udp_trackers[0].domain", "invalid domain"),
        ("tracker.http_trackers[0].bind_address", "port 0"),
        ("tracker.health_check_api.bind_address", "IP:PORT"),
        ("tracker.http_api.bind_address", "conflicts"),
        ("tracker.http_api.domain", "invalid domain"),
        ("https", "missing"),
        ("environment.name", "lowercase"),
    ];
    for (path, text) in expected {
        let at: Vec<&Problem> = problems.iter().filter(|p| p.path == path).collect();
        assert_eq!(at.len(), 1, "{path}:\n{}", show(&problems));
        assert!(at[0].message.contains(text), "{path}:\n{}", show(&problems));
        assert!(!at[0].fix.is_empty());
    }
    assert_eq!(problems.len(), expected.len(), "{}", show(&problems));
}

#[test]
fn structural_problems_are_all_reported_too() {
    let v = apply(&[
        ("/environment/name", Some(json!(1))),
        ("/ssh_credentials/port", s("22")),
        ("/tracker/core/private", None),
    ]);
    let problems = problems_of(&v);
    assert_eq!(problems.len(), 3, "{}", show(&problems));
}

#[test]
fn problems_carry_the_offending_value() {
    let v = apply(&[("/tracker/http_api/bind_address", s("0.0.0.0:0"))]);
    let problems = problems_of(&v);
    let p = problems
        .iter()
        .find(|p| p.path == "tracker.http_api.bind_address")
        .unwrap();
    assert_eq!(p.value.as_deref(), Some("\"0.0.0.0:0\""));
}

#[test]
fn syntax_errors_report_line_and_column() {
    let text =
        "{\n  \"environment\": { \"name\": \"x\" },\n  \"tracker\": { \"core\": [1, 2,, ] }\n}";
    let err = config::parse(text, nowhere()).unwrap_err();
    match &err {
        ConfigError::Syntax {
            line, column, path, ..
        } => {
            assert_eq!(*line, 3);
            assert!(*column > 0);
            assert!(path.starts_with("tracker.core"), "{path}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let problems = err.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("line 3"));
    assert!(!problems[0].fix.is_empty());
    assert!(err.to_string().contains("line 3"));
}

#[test]
fn trailing_garbage_and_non_objects_are_rejected() {
    assert!(matches!(
        config::parse("{} x", nowhere()),
        Err(ConfigError::Syntax { .. })
    ));
    let err = config::parse("[]", nowhere()).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems[0].path, "");
    assert!(problems[0].message.contains("expected an object"));
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = config::load(Path::new("/nonexistent/env.json")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/env.json"));
    assert_eq!(err.problems().len(), 1);
}

#[test]
fn duplicate_keys_are_reported_with_their_path() {
    let text = base().to_string().replacen(
        "\"name\":\"test-env\"",
        "\"name\":\"test-env\",\"name\":\"other\"",
        1,
    );
    let problems = config::parse(&text, nowhere()).unwrap_err().problems();
    assert!(
        problems
            .iter()
            .any(|p| p.path.starts_with("environment") && p.message.contains("duplicate")),
        "{}",
        show(&problems)
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn secrets_never_appear_in_problems_or_errors() {
    let secrets = [
        "SEKRIT-admin-token-1 ",
        "SEKRIT-mysql-pass-2 x",
        "SEKRIT-root-pass-3 x",
        "SEKRIT-grafana-pass-4 x",
        "SEKRIT hetzner 5",
    ];
    // Whitespace makes each secret itself invalid, so every secret field has a problem.
    let v = apply(&[
        ("/provider", Some(hetzner())),
        ("/provider/api_token", s(secrets[4])),
        ("/tracker/http_api/admin_token", s(secrets[0])),
        ("/tracker/core/database", Some(mysql())),
        ("/tracker/core/database/password", s(secrets[1])),
        ("/tracker/core/database/root_password", s(secrets[2])),
        ("/tracker/core/database/username", s("root")),
        (
            "/grafana",
            Some(json!({"admin_user": "admin", "admin_password": secrets[3]})),
        ),
    ]);
    let err = parse_value(&v).unwrap_err();
    let problems = err.problems();
    assert!(problems.iter().any(|p| p.path == "provider.api_token"));
    assert!(
        problems
            .iter()
            .any(|p| p.path == "tracker.http_api.admin_token")
    );
    let everything = format!(
        "{err}\n{}\n{err:?}\n{}",
        err.report(),
        serde_json::to_string(&problems).unwrap()
    );
    for secret in secrets {
        assert!(!everything.contains(secret.trim()), "leaked {secret:?}");
        assert!(
            !everything.contains("SEKRIT"),
            "leaked a secret:\n{everything}"
        );
    }
    for p in problems.iter().filter(|p| {
        p.path.ends_with("api_token")
            || p.path.ends_with("admin_token")
            || p.path.ends_with("password")
    }) {
        assert_eq!(p.value.as_deref(), Some(REDACTED), "{p:?}");
    }

    // Secrets of the wrong type, and unknown fields under a secret, are redacted too.
    let v = apply(&[("/tracker/http_api/admin_token", Some(json!({"SEKRIT": 1})))]);
    let problems = problems_of(&v);
    let text = serde_json::to_string(&problems).unwrap();
    assert!(!text.contains("SEKRIT"), "{text}");

    // A loaded config's Debug output redacts secrets as well.
    let v = apply(&[("/tracker/http_api/admin_token", s("SEKRIT-valid-token"))]);
    let loaded = parse_value(&v).unwrap();
    assert!(!format!("{:?}", loaded.config).contains("SEKRIT"));
}

// ---------------------------------------------------------------------------------------------
// Compatibility, legacy section, key paths
// ---------------------------------------------------------------------------------------------

/// The incumbent's minimal LXD example (upstream-config.md), with only the key paths changed.
const INCUMBENT_MINIMAL_LXD: &str = r#"{
  "environment": { "name": "minimal-lxd" },
  "ssh_credentials": {
    "private_key_path": "/home/torrust/.ssh/testing_rsa",
    "public_key_path": "/home/torrust/.ssh/testing_rsa.pub"
  },
  "provider": { "provider": "lxd", "profile_name": "torrust-profile-minimal-lxd" },
  "tracker": {
    "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
    "udp_trackers": [ { "bind_address": "0.0.0.0:6969" } ],
    "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
    "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "MyAccessToken" },
    "health_check_api": { "bind_address": "127.0.0.1:1313" }
  }
}"#;

#[test]
fn the_incumbent_minimal_lxd_example_parses_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("testing_rsa");
    let public = dir.path().join("testing_rsa.pub");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    std::fs::write(&public, format!("{TEST_RSA_PUBLIC_KEY} test\n")).unwrap();
    let text = INCUMBENT_MINIMAL_LXD
        .replace(
            "/home/torrust/.ssh/testing_rsa.pub",
            public.to_str().unwrap(),
        )
        .replace("/home/torrust/.ssh/testing_rsa", private.to_str().unwrap());
    let loaded = config::parse(&text, nowhere()).unwrap_or_else(|e| panic!("{}", e.report()));
    let c = &loaded.config;
    assert_eq!(c.name(), "minimal-lxd");
    assert_eq!(c.instance_name(), "torrust-tracker-vm-minimal-lxd");
    assert_eq!(c.ssh_credentials.username.as_str(), "torrust");
    assert_eq!(c.ssh_credentials.port.get(), 22);
    assert_eq!(
        c.ssh_credentials.private_key_path.as_deref(),
        Some(private.as_path())
    );
    match &c.provider {
        Provider::Lxd(lxd) => {
            assert_eq!(lxd.profile_name, "torrust-profile-minimal-lxd");
            assert_eq!(lxd.image, "ubuntu:24.04");
            assert_eq!(lxd.storage_pool, "default");
            assert_eq!(lxd.network, "lxdbr0");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.tracker.core.database, Database::Sqlite3(_)));
    assert_eq!(c.tracker.udp_trackers[0].bind_address.port(), 6969);
    assert_eq!(c.tracker.http_trackers[0].bind_address.port(), 7070);
    assert_eq!(c.tracker.http_api.bind_address.to_string(), "0.0.0.0:1212");
    assert_eq!(
        c.tracker.health_check_api.bind_address.socket_addr(),
        "127.0.0.1:1313".parse().unwrap()
    );
    assert_eq!(c.tracker.http_api.admin_token.expose(), "MyAccessToken");
    assert!(c.prometheus.is_none() && c.grafana.is_none() && c.https.is_none());
    // The example's well-known admin token is accepted, with a warning.
    assert!(
        loaded.warnings.iter().any(|w| w.contains("admin_token")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn the_legacy_caddy_section_is_accepted_with_a_warning() {
    let loaded = config::load(&fixtures().join("valid/legacy-caddy-section.json"))
        .unwrap_or_else(|e| panic!("{}", e.report()));
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.contains("caddy"))
        .expect("a warning about caddy");
    assert!(warning.contains("no effect"), "{warning}");
    assert!(
        warning.contains("https") && warning.contains("use_tls_proxy"),
        "{warning}"
    );
    // Not kept: serializing drops it.
    let text = serde_json::to_string(&loaded.config).unwrap();
    assert!(!text.contains("\"caddy\""), "{text}");

    // Only at the top level: a `caddy` field elsewhere is unknown.
    let v = apply(&[("/tracker/caddy", Some(json!({})))]);
    assert!(problems_of(&v).iter().any(|p| p.path == "tracker.caddy"));
    // And it does not hide other problems.
    let v = apply(&[("/caddy", Some(json!({}))), ("/environment/name", s("X"))]);
    let problems = problems_of(&v);
    assert_eq!(problems.len(), 1, "{}", show(&problems));
}

#[test]
fn relative_key_paths_are_resolved_against_the_file_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("envs/keys")).unwrap();
    std::fs::write(
        dir.path().join("envs/keys/id"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("envs/keys/id.pub"),
        format!("{TEST_PUBLIC_KEY}\n"),
    )
    .unwrap();
    let v = apply(&[
        ("/ssh_credentials/private_key_path", s("keys/id")),
        ("/ssh_credentials/public_key_path", s("./keys/id.pub")),
        // No warning: the API on the host's loopback (ADR 31).
        ("/tracker/http_api/bind_address", s("127.0.0.1:1212")),
    ]);
    let file = dir.path().join("envs/env.json");
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();

    let loaded = config::load(&file).unwrap_or_else(|e| panic!("{}", e.report()));
    let ssh = &loaded.config.ssh_credentials;
    let private = ssh.private_key_path.as_ref().unwrap();
    assert!(private.is_absolute(), "{private:?}");
    assert!(private.ends_with("envs/keys/id"));
    assert!(std::fs::metadata(private).is_ok());
    assert!(std::fs::metadata(ssh.public_key_path.as_ref().unwrap()).is_ok());
    assert_eq!(loaded.source.as_deref(), Some(file.as_path()));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The same text parsed against another directory does not find the keys.
    let problems = problems_of(&v);
    assert!(
        problems
            .iter()
            .any(|p| p.path == "ssh_credentials.private_key_path"
                && p.message.contains("not found")
                && p.fix.contains("relative path"))
    );

    // The round trip keeps absolute paths, valid from anywhere.
    let text = serde_json::to_string(&loaded.config).unwrap();
    let again = config::parse(&text, nowhere()).unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(again.config, loaded.config);
}

#[test]
fn generated_keys_are_allowed() {
    let loaded = parse_value(&base()).unwrap();
    assert!(loaded.config.ssh_credentials.private_key_path.is_none());
    assert!(loaded.config.ssh_credentials.public_key_path.is_none());
}

// ---------------------------------------------------------------------------------------------
// Template, schema, round trip, accessors
// ---------------------------------------------------------------------------------------------

#[test]
fn the_lxd_template_parses_as_is() {
    let text = config::template(ProviderKind::Lxd);
    let loaded = config::parse(&text, nowhere()).unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.name(), "my-tracker");
    assert_eq!(c.provider_kind(), ProviderKind::Lxd);
    match &c.provider {
        Provider::Lxd(lxd) => {
            assert_eq!(lxd.profile_name, "torrust-profile-my-tracker");
            assert_eq!(lxd.image, "ubuntu:24.04");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.ssh_credentials.private_key_path.is_none());
    assert!(matches!(c.tracker.core.database, Database::Sqlite3(_)));
    assert_eq!(c.tracker.udp_trackers.len(), 1);
    assert_eq!(c.tracker.http_trackers.len(), 1);
    assert_eq!(
        c.tracker.health_check_api.bind_address.to_string(),
        "127.0.0.1:1313"
    );
    assert_eq!(c.prometheus.as_ref().unwrap().scrape_interval_in_secs, 15);
    // The admin token is random.
    let other = config::parse(&config::template(ProviderKind::Lxd), nowhere()).unwrap();
    let token = c.tracker.http_api.admin_token.expose();
    assert!(token.len() >= 32);
    assert_ne!(token, other.config.tracker.http_api.admin_token.expose());
    assert!(!text.contains("private_key_path"));
}

#[test]
fn the_hetzner_template_is_rejected_only_for_its_placeholder_token() {
    let text = config::template(ProviderKind::Hetzner);
    let err = config::parse(&text, nowhere()).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert_eq!(problems[0].path, "provider.api_token");
    assert!(problems[0].message.contains("placeholder"));
    assert!(problems[0].fix.contains("replace"));
    assert!(
        !problems[0]
            .fix
            .contains(config::HETZNER_API_TOKEN_PLACEHOLDER)
    );

    let mut v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["provider"]["server_type"], "cx22");
    assert_eq!(v["provider"]["location"], "nbg1");
    assert_eq!(v["provider"]["image"], "ubuntu-24.04");
    v["provider"]["api_token"] = json!("a-real-token-0123456789");
    config::parse(&v.to_string(), nowhere()).unwrap_or_else(|e| panic!("{}", e.report()));
}

fn valid_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

#[test]
fn every_valid_fixture_loads_and_round_trips() {
    for file in valid_fixtures() {
        let loaded =
            config::load(&file).unwrap_or_else(|e| panic!("{}: {}", file.display(), e.report()));
        let text = serde_json::to_string_pretty(&loaded.config).unwrap();
        let again = config::parse(&text, nowhere())
            .unwrap_or_else(|e| panic!("{} again: {}", file.display(), e.report()));
        assert_eq!(again.config, loaded.config, "{}", file.display());
        let value: Value = serde_json::from_str(&text).unwrap();
        let back: config::EnvironmentConfig = serde_json::from_value(value).unwrap();
        assert_eq!(back, loaded.config);
    }
}

#[test]
fn the_schema_is_draft_2020_12_and_accepts_every_valid_fixture() {
    let schema = config::schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["description"].is_string());
    assert!(schema["properties"]["caddy"]["deprecated"] == json!(true));
    let tracker_def = &schema["$defs"]["HttpTracker"]["properties"]["use_tls_proxy"];
    assert!(tracker_def["description"].is_string());

    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let mut docs: Vec<(String, Value)> = valid_fixtures()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (
                f.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    docs.push((
        "template lxd".into(),
        serde_json::from_str(&config::template(ProviderKind::Lxd)).unwrap(),
    ));
    docs.push((
        "template hetzner".into(),
        serde_json::from_str(&config::template(ProviderKind::Hetzner)).unwrap(),
    ));
    docs.push((
        "incumbent minimal".into(),
        serde_json::from_str(INCUMBENT_MINIMAL_LXD).unwrap(),
    ));
    docs.push(("base".into(), base()));
    docs.push((
        "with $schema".into(),
        apply(&[("/$schema", s("./env.schema.json"))]),
    ));
    for (name, doc) in &docs {
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }

    // The schema is as strict as the parser about unknown fields and tags.
    for bad in [
        apply(&[("/tracker/http_trackers/0/use_tls_prxy", Some(json!(true)))]),
        apply(&[("/provider/api_token", s("x"))]),
        apply(&[("/tracker/core/database/host", s("x"))]),
        apply(&[("/trackr", Some(json!({})))]),
        apply(&[("/provider/provider", s("aws"))]),
        apply(&[("/ssh_credentials/port", Some(json!(0)))]),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepted {bad}");
    }
}

#[test]
fn effective_images_default_to_pinned_releases() {
    let loaded = parse_value(&base()).unwrap();
    for service in ImageService::ALL {
        let image = loaded.config.image(service);
        assert_eq!(image, default_image(service));
        assert!(image.contains(':'), "{image} is not pinned");
        assert!(!image.ends_with(":latest") && !image.ends_with(":develop"));
    }
    assert_eq!(
        default_image(ImageService::Tracker),
        "torrust/tracker:3.0.0"
    );
    assert!(default_image(ImageService::Mysql).starts_with("mysql:8."));
    assert!(default_image(ImageService::Prometheus).starts_with("prom/prometheus:"));
    assert!(default_image(ImageService::Grafana).starts_with("grafana/grafana:"));
    assert!(default_image(ImageService::Caddy).starts_with("caddy:2."));

    let v = apply(&[(
        "/images",
        Some(json!({"tracker": "torrust/tracker:develop"})),
    )]);
    let loaded = parse_value(&v).unwrap();
    assert_eq!(
        loaded.config.image(ImageService::Tracker),
        "torrust/tracker:develop"
    );
    assert_eq!(
        loaded.config.image(ImageService::Mysql),
        default_image(ImageService::Mysql)
    );
}

#[test]
fn instance_name_and_generated_secrets() {
    let v = apply(&[("/environment/instance_name", s("custom-vm"))]);
    assert_eq!(parse_value(&v).unwrap().config.instance_name(), "custom-vm");

    let v = apply(&[("/tracker/core/database", Some(mysql()))]);
    let mut c = parse_value(&v).unwrap().config;
    assert!(c.fill_generated_secrets());
    let Database::Mysql(m) = &c.tracker.core.database else {
        panic!()
    };
    let root = m.root_password.clone().unwrap();
    assert!(root.expose().len() >= 32);
    assert!(!c.fill_generated_secrets(), "kept once generated");
}
