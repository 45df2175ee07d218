//! Our `tracker.toml` and `.env` overrides, loaded by the configuration crate of Torrust Tracker
//! 3.0.0 exactly as the tracker loads them (file path from `TORRUST_TRACKER_CONFIG_TOML_PATH`,
//! overrides from `TORRUST_TRACKER_CONFIG_OVERRIDE_*`).
//!
//! The crate reads process environment variables, so the test runs in a child process of the
//! test binary, alone there: setting them here would leak into the other tests of this binary
//! (a `docker-compose config` of another test read our overrides and failed now and then).

use std::path::Path;

use serde_json::{Value, json};
use torrust_tracker_configuration::validator::Validator;
use torrust_tracker_configuration::{Configuration, Driver, Info};
use torrust_tracker_deployer::config;
use torrust_tracker_deployer::stack::{self, layout};

fn base() -> Value {
    json!({
        "environment": { "name": "cfg-test" },
        "ssh_credentials": {},
        "provider": { "provider": "lxd", "profile_name": "torrust-profile-cfg-test" },
        "tracker": {
            "core": { "database": { "driver": "sqlite3", "database_name": "tracker.db" }, "private": false },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969" }, { "bind_address": "[::]:6970" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070" } ],
            "http_api": { "bind_address": "0.0.0.0:1212", "admin_token": "MyAccessToken-1" },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        }
    })
}

/// `KEY='value'` lines of our `.env`.
fn env_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect()
}

/// Every leaf of a TOML document as (dotted path, value as JSON).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = value;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        v = v.get(key)?;
        if let Some(i) = index {
            v = v.get(i)?;
        }
    }
    Some(v)
}

/// Loads the rendered configuration with the tracker's crate, as the tracker's container does.
fn load_as_the_tracker(file: &Value, dir: &Path) -> (Configuration, Value) {
    let cfg = config::parse(&file.to_string(), Path::new("/"))
        .expect("valid")
        .config;
    let stack = stack::render(&cfg).expect("renders");
    let toml_host = layout::STORAGE_DIR.to_string() + "/tracker/etc/tracker.toml";
    let toml_text = std::str::from_utf8(&stack.file(&toml_host).unwrap().contents)
        .unwrap()
        .to_string();
    let toml_path = dir.join("tracker.toml");
    std::fs::write(&toml_path, &toml_text).unwrap();
    let env_text = std::str::from_utf8(&stack.file(layout::ENV_FILE).unwrap().contents)
        .unwrap()
        .to_string();

    for (k, _) in std::env::vars() {
        if k.starts_with("TORRUST_TRACKER_CONFIG") {
            // SAFETY: this runs in a child process that runs this one test on one thread
            // (see `in_a_child_process`), so no other thread reads the environment.
            unsafe { std::env::remove_var(&k) };
        }
    }
    // SAFETY: as above.
    unsafe { std::env::set_var("TORRUST_TRACKER_CONFIG_TOML_PATH", &toml_path) };
    for (k, v) in env_vars(&env_text) {
        if k.starts_with("TORRUST_TRACKER_CONFIG_OVERRIDE_") {
            // SAFETY: as above.
            unsafe { std::env::set_var(&k, &v) };
        }
    }
    let info = Info::new("/nonexistent/default.toml".to_string()).unwrap();
    let loaded = Configuration::load(&info).expect("the tracker accepts the configuration");
    loaded.validate().expect("semantically valid");

    // Every key we write exists in schema 2.0.0 with the value we wrote (the crate ignores
    // unknown keys silently, so this is how a typo would show).
    let ours: Value =
        serde_json::to_value(toml::from_str::<toml::Table>(&toml_text).unwrap()).unwrap();
    let theirs: Value = serde_json::from_str(&loaded.to_json()).unwrap();
    let mut ours_leaves = Vec::new();
    leaves("", &ours, &mut ours_leaves);
    for (path, value) in ours_leaves {
        let got = get(&theirs, &path).unwrap_or_else(|| panic!("{path} is not a 3.0.0 key"));
        assert_eq!(got, &value, "{path}");
    }
    (loaded, theirs)
}

/// Set in the child process that runs the test proper.
const CHILD: &str = "TORRUST_TEST_TRACKER_CONFIG_CHILD";

/// Runs `name` again in a child process of this test binary, alone and on one thread, with
/// [`CHILD`] set; true when this already is that child.
fn in_a_child_process(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the child test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    false
}

#[test]
fn the_tracker_3_0_0_configuration_crate_loads_our_files() {
    if !in_a_child_process(
        "stack_tracker_config::the_tracker_3_0_0_configuration_crate_loads_our_files",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // SQLite.
    let (c, _) = load_as_the_tracker(&base(), dir.path());
    assert_eq!(c.core.database.driver, Driver::Sqlite3);
    assert_eq!(
        c.core.database.path,
        "/var/lib/torrust/tracker/database/tracker.db"
    );
    assert!(!c.core.private && !c.core.listed);
    let api = c.http_api.as_ref().unwrap();
    assert_eq!(api.access_tokens["admin"], "MyAccessToken-1");
    assert_eq!(api.bind_address.to_string(), "0.0.0.0:1212");
    let udp: Vec<String> = c
        .udp_trackers
        .as_ref()
        .unwrap()
        .iter()
        .map(|u| u.bind_address.to_string())
        .collect();
    assert_eq!(udp, ["0.0.0.0:6969", "[::]:6970"]);
    assert_eq!(c.http_trackers.as_ref().unwrap().len(), 1);
    assert_eq!(
        c.health_check_api.bind_address.to_string(),
        "127.0.0.1:1313"
    );
    // The incumbent's announce policy by default (the tracker's own default is 120 s), and
    // completed counts kept in the database.
    assert_eq!(
        (
            c.core.announce_policy.interval,
            c.core.announce_policy.interval_min
        ),
        (300, 300)
    );
    assert!(c.core.tracker_policy.persistent_torrent_completed_stat);

    // An announce policy set in the environment file.
    let mut v = base();
    v["tracker"]["core"]["announce_policy"] = json!({ "interval": 1800, "interval_min": 600 });
    let (c, _) = load_as_the_tracker(&v, dir.path());
    assert_eq!(
        (
            c.core.announce_policy.interval,
            c.core.announce_policy.interval_min
        ),
        (1800, 600)
    );
    // Only the interval: the minimum stays 300.
    v["tracker"]["core"]["announce_policy"] = json!({ "interval": 900 });
    let (c, _) = load_as_the_tracker(&v, dir.path());
    assert_eq!(
        (
            c.core.announce_policy.interval,
            c.core.announce_policy.interval_min
        ),
        (900, 300)
    );

    // MySQL, a private tracker behind the proxy, a token figment would read as a number,
    // a password full of URL delimiters.
    let mut v = base();
    v["tracker"]["core"]["private"] = json!(true);
    v["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
        "username": "tr_cker", "password": "p@ss:w/rd?#%&=+ \"x\"", "root_password": "r"
    });
    v["tracker"]["http_api"]["admin_token"] = json!("123456789012");
    v["tracker"]["http_trackers"] = json!([
        { "bind_address": "0.0.0.0:7070", "domain": "tracker.example.com", "use_tls_proxy": true }
    ]);
    v["https"] = json!({ "admin_email": "admin@example.com" });
    let (c, _) = load_as_the_tracker(&v, dir.path());
    assert_eq!(c.core.database.driver, Driver::MySQL);
    assert!(c.core.private);
    assert!(c.core.net.on_reverse_proxy);
    assert_eq!(
        c.http_api.as_ref().unwrap().access_tokens["admin"],
        "123456789012"
    );
    let url = c.core.database.path.clone();
    assert_eq!(
        url,
        "mysql://tr_cker:p%40ss%3Aw%2Frd%3F%23%25%26%3D%2B%20%22x%22@mysql:3306/torrust_tracker"
    );
    // The tracker masks the password by parsing the URL: it must be a valid URL whose
    // user and password decode to ours.
    let masked = c.clone().mask_secrets();
    assert_eq!(
        masked.core.database.path,
        "mysql://tr_cker:***@mysql:3306/torrust_tracker"
    );
}
