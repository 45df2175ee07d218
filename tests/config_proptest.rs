//! Property tests of the environment file parser: whatever the input, it never panics; what it
//! accepts is usable (no bind address on port 0) and round-trips.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use torrust_tracker_deployer::config::{self, ConfigError, ProviderKind};

fn base_dir() -> &'static Path {
    Path::new("/nonexistent-torrust-proptest-dir")
}

/// Valid documents to mutate: the templates and a file with every section.
fn seeds() -> Vec<Value> {
    let full = json!({
        "environment": { "name": "prop", "instance_name": "prop-vm", "description": "d" },
        "ssh_credentials": { "username": "torrust", "port": 22 },
        "provider": {
            "provider": "lxd", "profile_name": "torrust-profile-prop", "image": "ubuntu:24.04",
            "instance_type": "virtual-machine", "storage_pool": "default", "network": "lxdbr0",
            "project": "p", "cpu": 2, "memory": "2GiB", "disk": "20GiB"
        },
        "tracker": {
            "core": { "database": { "driver": "mysql", "host": "mysql", "port": 3306,
                "database_name": "torrust", "username": "torrust", "password": "pw",
                "root_password": "rpw" }, "private": true },
            "udp_trackers": [ { "bind_address": "0.0.0.0:6969", "domain": "t.example.com" },
                { "bind_address": "[::]:6868" } ],
            "http_trackers": [ { "bind_address": "0.0.0.0:7070", "domain": "h.example.com",
                "use_tls_proxy": true } ],
            "http_api": { "bind_address": "127.0.0.1:1212", "admin_token": "token-0123456789",
                "domain": "api.example.com", "use_tls_proxy": false },
            "health_check_api": { "bind_address": "127.0.0.1:1313" }
        },
        "prometheus": { "scrape_interval_in_secs": 15 },
        "grafana": { "admin_user": "admin", "admin_password": "pw-123",
            "domain": "g.example.com", "use_tls_proxy": true },
        "https": { "admin_email": "a@example.com", "use_staging": true },
        "backup": { "schedule": "0 3 * * *", "retention_days": 7 },
        "images": { "tracker": "torrust/tracker:3.0.0" },
        "caddy": { "legacy": true }
    });
    vec![
        serde_json::from_str(&config::template(ProviderKind::Lxd)).unwrap(),
        serde_json::from_str(&config::template(ProviderKind::Hetzner)).unwrap(),
        full,
    ]
}

/// JSON pointers of every node of a document.
fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{prefix}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn interesting_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(65535), Just(65536)].prop_map(Value::from),
        (-1.0e9..1.0e9f64).prop_map(Value::from),
        "[ -~]{0,16}".prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "0.0.0.0:0",
            "0.0.0.0:6969",
            "127.0.0.1:1313",
            "[::1]:7070",
            "localhost:80",
            "REPLACE_WITH_VALUE",
            "lxd",
            "hetzner",
            "sqlite3",
            "mysql",
            "root",
            "container",
            "virtual-machine",
            "0 3 * * *",
            "61 * * * *",
            "@daily",
            "../keys/id",
            "~/.ssh/id",
            "/etc/passwd",
            "2GiB",
            "50%",
            "-1",
            "example.com",
            "a@b.c",
            "caddy:2.10",
            "x@sha256:00",
            "\u{0}",
            "é",
        ])
        .prop_map(Value::from),
        Just(json!({})),
        Just(json!([])),
        Just(json!([{}])),
        Just(json!({"bind_address": "0.0.0.0:6969"})),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
    Insert(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), interesting_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any::<Index>().prop_map(Mutation::Remove),
        (
            any::<Index>(),
            prop_oneof![
                "[a-z_]{1,12}".boxed(),
                prop::sample::select(vec![
                    "caddy",
                    "domain",
                    "use_tls_proxy",
                    "root_password",
                    "image",
                    "cpu",
                    "prometheus",
                    "grafana",
                    "https",
                    "backup",
                    "images",
                    "use_tls_prxy",
                ])
                .prop_map(String::from)
                .boxed(),
            ],
            interesting_value()
        )
            .prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

fn mutate(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    match m {
        Mutation::Replace(i, v) => {
            let p = i.get(&all).clone();
            if p.is_empty() {
                *doc = v.clone();
            } else if let Some(slot) = doc.pointer_mut(&p) {
                *slot = v.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = i.get(&all).clone();
            if let Some((parent, last)) = p.rsplit_once('/') {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(last);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = last.parse::<usize>()
                            && n < a.len()
                        {
                            a.remove(n);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Insert(i, k, v) => {
            let p = i.get(&all).clone();
            match doc.pointer_mut(&p) {
                Some(Value::Object(m)) => {
                    m.insert(k.clone(), v.clone());
                }
                Some(Value::Array(a)) => a.push(v.clone()),
                _ => {}
            }
        }
    }
}

/// What must hold for any input: no panic; an error has problems with a message and a fix; an
/// accepted config is usable and round-trips.
fn check(text: &str) {
    match config::parse(text, base_dir()) {
        Ok(loaded) => {
            let c = &loaded.config;
            let t = &c.tracker;
            let binds = t.udp_trackers.iter().map(|u| u.bind_address);
            let binds = binds.chain(t.http_trackers.iter().map(|h| h.bind_address));
            for bind in binds.chain([t.http_api.bind_address, t.health_check_api.bind_address]) {
                assert_ne!(bind.port(), 0, "{bind}");
            }
            let _ = c.instance_name();
            let again_text = serde_json::to_string(c).unwrap();
            let again = config::parse(&again_text, base_dir())
                .unwrap_or_else(|e| panic!("round trip failed: {}\n{again_text}", e.report()));
            assert_eq!(&again.config, c);
        }
        Err(e) => {
            let problems = e.problems();
            assert!(!problems.is_empty());
            for p in &problems {
                assert!(!p.message.is_empty(), "{p:?}");
                assert!(!p.fix.is_empty(), "{p:?}");
            }
            if let ConfigError::Invalid { problems } = &e {
                assert!(!problems.is_empty());
            }
            let _ = e.report();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn json_looking_strings_never_panic(text in "[{}\\[\\]\":,0-9a-z_. \\n-]{0,120}") {
        check(&text);
    }

    #[test]
    fn truncated_valid_files_never_panic(seed in 0usize..3, cut in any::<Index>()) {
        let text = serde_json::to_string_pretty(&seeds()[seed]).unwrap();
        let at = cut.index(text.len() + 1);
        if let Some(prefix) = text.get(..at) {
            check(prefix);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(
        seed in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut doc = seeds()[seed].clone();
        for m in &mutations {
            mutate(&mut doc, m);
        }
        check(&doc.to_string());
    }
}

#[test]
fn the_seeds_are_valid_except_the_hetzner_placeholder() {
    let seeds = seeds();
    config::parse(&seeds[0].to_string(), base_dir()).unwrap();
    assert!(config::parse(&seeds[1].to_string(), base_dir()).is_err());
    let loaded = config::parse(&seeds[2].to_string(), base_dir())
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}
