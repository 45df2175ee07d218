//! Exposure rules (ADR 31) through the real binary: `validate` refuses what cannot work safely
//! (naming the field and the fix) and warns about what is exposed beyond what was likely meant;
//! `create template` publishes the API on the host's loopback only.

use crate::common;

use common::{Sandbox, minimal};
use serde_json::{Value, json};

/// `validate` of `value`: (exit code, stderr).
fn validate(sb: &Sandbox, value: &Value) -> (i32, String) {
    let file = sb.env_file("env.json", value);
    let run = sb.run(&["validate", "--env-file", &file]);
    (run.code, run.stderr)
}

const API_WARNING: &str = "over plain HTTP: its admin token crosses the network in clear text";

#[test]
fn the_template_publishes_the_api_on_loopback_only_and_validates_without_warning() {
    let sb = Sandbox::new();
    let run = sb.run(&["create", "template", "t.json"]).ok();
    let _ = run;
    let text = std::fs::read_to_string(sb.path().join("t.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["tracker"]["http_api"]["bind_address"], "127.0.0.1:1212");
    assert_eq!(v["tracker"]["http_api"]["use_tls_proxy"], false);
    let run = sb.run(&["validate", "--env-file", "t.json"]).ok();
    assert!(!run.stderr.contains(API_WARNING), "{run:?}");
    assert!(!run.stderr.contains("loopback only"), "{run:?}");
}

#[test]
fn an_api_published_beyond_loopback_without_tls_is_a_visible_warning() {
    let sb = Sandbox::new();
    // The incumbent's usual value: still valid (exit 0), with the warning naming the field.
    let v = minimal("expo");
    assert_eq!(v["tracker"]["http_api"]["bind_address"], "0.0.0.0:1212");
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tracker.http_api.bind_address"), "{err}");
    assert!(err.contains(API_WARNING), "{err}");
    assert!(err.contains("\"127.0.0.1:1212\""), "{err}");
    // A specific public address warns too.
    let mut v = minimal("expo");
    v["tracker"]["http_api"]["bind_address"] = json!("192.0.2.4:1212");
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(API_WARNING), "{err}");
    // Loopback: no warning.
    v["tracker"]["http_api"]["bind_address"] = json!("127.0.0.1:1212");
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(API_WARNING), "{err}");
}

#[test]
fn a_tracker_published_on_loopback_only_is_a_warning() {
    let sb = Sandbox::new();
    let mut v = minimal("expo");
    v["tracker"]["http_api"]["bind_address"] = json!("127.0.0.1:1212");
    v["tracker"]["udp_trackers"] = json!([{ "bind_address": "127.0.0.1:6969" }]);
    v["tracker"]["http_trackers"] = json!([{ "bind_address": "127.0.0.1:7070" }]);
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 0, "{err}");
    for field in [
        "tracker.udp_trackers[0].bind_address",
        "tracker.http_trackers[0].bind_address",
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("no warning for {field}: {err}"));
        assert!(line.contains("no peer can announce"), "{line}");
        assert!(line.contains("\"0.0.0.0:"), "{line}");
    }
}

#[test]
fn mixed_proxying_of_http_trackers_is_refused_with_field_and_fix() {
    let sb = Sandbox::new();
    let mut v = minimal("expo");
    v["tracker"]["http_trackers"] = json!([
        { "bind_address": "0.0.0.0:7070", "domain": "tracker.example.com", "use_tls_proxy": true },
        { "bind_address": "0.0.0.0:7071" }
    ]);
    v["https"] = json!({ "admin_email": "admin@example.com" });
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tracker.http_trackers[1].use_tls_proxy"),
        "{err}"
    );
    assert!(err.contains("X-Forwarded-For"), "{err}");
    assert!(
        err.contains("put HTTP tracker 2 behind the TLS proxy too"),
        "{err}"
    );
    // Both behind the proxy: valid.
    v["tracker"]["http_trackers"][1] = json!({
        "bind_address": "0.0.0.0:7071", "domain": "t2.example.com", "use_tls_proxy": true
    });
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 0, "{err}");
    // `create environment` refuses it too, writing nothing.
    v["tracker"]["http_trackers"][1] = json!({ "bind_address": "0.0.0.0:7071" });
    let file = sb.env_file("mixed.json", &v);
    sb.run(&["create", "environment", "--env-file", &file])
        .code(2);
    assert!(!sb.data().join("expo").exists());
}

#[test]
fn two_services_on_one_port_are_refused_whatever_their_addresses() {
    let sb = Sandbox::new();
    let mut v = minimal("expo");
    v["tracker"]["http_trackers"] = json!([
        { "bind_address": "192.0.2.1:7070" },
        { "bind_address": "192.0.2.2:7070" }
    ]);
    let (code, err) = validate(&sb, &v);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tracker.http_trackers[1].bind_address"),
        "{err}"
    );
    assert!(
        err.contains("inside the tracker's container both listen on port 7070"),
        "{err}"
    );
    assert!(err.contains("give HTTP tracker 2 another port"), "{err}");
}
