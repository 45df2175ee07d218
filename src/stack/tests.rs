//! The rules of the stack, checked on rendered files (YAML and TOML parsed back).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::config::{self, EnvironmentConfig};

const TOKEN: &str = "Adm1n-T0ken-xyz";
const DB_PASSWORD: &str = "p@ss:w/rd?#%&=+ $x\"y";
const ROOT_PASSWORD: &str = "R00t-Secret-42";
const GRAFANA_PASSWORD: &str = "gr@fana pass $HOME";

/// A minimal valid file: SQLite, one UDP and one HTTP tracker, no TLS.
fn minimal() -> Value {
    crate::config::minimal_test_file("stack-test", TOKEN)
}

/// Everything on: MySQL, Prometheus, Grafana, TLS for an HTTP tracker, the API, the health
/// check API and Grafana, backups.
fn full() -> Value {
    let mut v = minimal();
    v["tracker"]["core"]["database"] = json!({
        "driver": "mysql", "host": "mysql", "port": 3306, "database_name": "torrust_tracker",
        "username": "tr_cker", "password": DB_PASSWORD, "root_password": ROOT_PASSWORD
    });
    v["tracker"]["core"]["private"] = json!(true);
    v["tracker"]["udp_trackers"] = json!([
        { "bind_address": "0.0.0.0:6969", "domain": "udp.example.com" },
        { "bind_address": "0.0.0.0:6868" }
    ]);
    v["tracker"]["http_trackers"] = json!([
        { "bind_address": "0.0.0.0:7070", "domain": "tracker.example.com", "use_tls_proxy": true }
    ]);
    v["tracker"]["http_api"] = json!({
        "bind_address": "0.0.0.0:1212", "admin_token": TOKEN,
        "domain": "api.example.com", "use_tls_proxy": true
    });
    v["tracker"]["health_check_api"] = json!({
        "bind_address": "0.0.0.0:1313", "domain": "health.example.com", "use_tls_proxy": true
    });
    v["prometheus"] = json!({ "scrape_interval_in_secs": 30 });
    v["grafana"] = json!({
        "admin_user": "admin$1", "admin_password": GRAFANA_PASSWORD,
        "domain": "grafana.example.com", "use_tls_proxy": true
    });
    v["https"] = json!({ "admin_email": "admin@example.com" });
    v["backup"] = json!({ "schedule": "0 3 * * *", "retention_days": 5 });
    v
}

fn config(v: &Value) -> EnvironmentConfig {
    match config::parse(&v.to_string(), Path::new("/")) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("test config is invalid: {e}: {:#?}", e.problems()),
    }
}

fn rendered(v: &Value) -> RenderedStack {
    render(&config(v)).expect("renders")
}

fn text<'a>(stack: &'a RenderedStack, path: &str) -> &'a str {
    let file = stack.file(path).unwrap_or_else(|| panic!("no file {path}"));
    std::str::from_utf8(&file.contents).expect("UTF-8")
}

fn tracker_toml_path() -> String {
    layout::tracker_etc()
        .join("tracker.toml")
        .display()
        .to_string()
}

fn prometheus_yml_path() -> String {
    layout::prometheus_etc()
        .join("prometheus.yml")
        .display()
        .to_string()
}

fn caddyfile_path() -> String {
    layout::caddy_etc().join("Caddyfile").display().to_string()
}

/// The compose file, parsed by a YAML parser.
fn compose(stack: &RenderedStack) -> Value {
    serde_norway::from_str(text(stack, layout::COMPOSE_FILE)).expect("the compose file is YAML")
}

fn ports_of(compose: &Value, service: &str) -> Vec<String> {
    compose["services"][service]["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().expect("string port").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn env_file(stack: &RenderedStack) -> Vec<(String, String)> {
    text(stack, layout::ENV_FILE)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .expect("single-quoted");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn env_var(stack: &RenderedStack, key: &str) -> Option<String> {
    env_file(stack)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// Exposure
// ---------------------------------------------------------------------------------------------

#[test]
fn without_tls_udp_http_and_api_are_published_and_health_is_not() {
    let stack = rendered(&minimal());
    let c = compose(&stack);
    assert_eq!(
        ports_of(&c, "tracker"),
        ["6969:6969/udp", "7070:7070", "1212:1212"]
    );
    let services: Vec<&str> = c["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(services, ["tracker"]);
    // The model says the same as the file.
    let tracker = &stack.services[0];
    assert_eq!(tracker.name, Service::Tracker);
    let specs: Vec<String> = tracker.ports.iter().map(|p| p.compose_spec()).collect();
    assert_eq!(specs, ports_of(&c, "tracker"));
}

#[test]
fn behind_tls_only_udp_and_the_proxy_are_published() {
    let stack = rendered(&full());
    let c = compose(&stack);
    // UDP always; the HTTP tracker and the API are behind TLS.
    assert_eq!(ports_of(&c, "tracker"), ["6969:6969/udp", "6868:6868/udp"]);
    assert_eq!(ports_of(&c, "mysql"), Vec::<String>::new());
    assert_eq!(ports_of(&c, "grafana"), Vec::<String>::new());
    assert_eq!(ports_of(&c, "prometheus"), ["127.0.0.1:9090:9090"]);
    assert_eq!(ports_of(&c, "caddy"), ["80:80", "443:443", "443:443/udp"]);
    // The health check API (1313) and MySQL (3306) are published by nobody.
    for (name, _) in c["services"].as_object().unwrap() {
        for p in ports_of(&c, name) {
            assert!(!p.contains("1313") && !p.contains("3306"), "{name}: {p}");
        }
    }
}

#[test]
fn each_service_alone_behind_tls_hides_only_its_port() {
    // API behind TLS, HTTP tracker not.
    let mut v = full();
    v["tracker"]["http_trackers"] = json!([{ "bind_address": "0.0.0.0:7070" }]);
    v["tracker"]["health_check_api"] = json!({ "bind_address": "127.0.0.1:1313" });
    v["grafana"]["use_tls_proxy"] = json!(false);
    let c = compose(&rendered(&v));
    assert_eq!(
        ports_of(&c, "tracker"),
        ["6969:6969/udp", "6868:6868/udp", "7070:7070"]
    );
    assert_eq!(ports_of(&c, "grafana"), ["3100:3000"]);

    // HTTP tracker behind TLS, API not.
    let mut v = full();
    v["tracker"]["http_api"]["use_tls_proxy"] = json!(false);
    v["tracker"]["health_check_api"]["use_tls_proxy"] = json!(false);
    v["grafana"]["use_tls_proxy"] = json!(false);
    let c = compose(&rendered(&v));
    assert_eq!(
        ports_of(&c, "tracker"),
        ["6969:6969/udp", "6868:6868/udp", "1212:1212"]
    );
    assert_eq!(ports_of(&c, "caddy"), ["80:80", "443:443", "443:443/udp"]);

    // Grafana behind TLS alone.
    let mut v = full();
    v["tracker"]["http_trackers"] = json!([{ "bind_address": "0.0.0.0:7070" }]);
    v["tracker"]["http_api"]["use_tls_proxy"] = json!(false);
    v["tracker"]["health_check_api"]["use_tls_proxy"] = json!(false);
    let stack = rendered(&v);
    let c = compose(&stack);
    assert_eq!(ports_of(&c, "grafana"), Vec::<String>::new());
    assert_eq!(
        ports_of(&c, "tracker"),
        ["6969:6969/udp", "6868:6868/udp", "7070:7070", "1212:1212"]
    );
    // The tracker is then not on the proxy network, Grafana is.
    let nets = |s: &str| c["services"][s]["networks"].clone();
    assert_eq!(nets("tracker"), json!(["database", "metrics"]));
    assert_eq!(nets("grafana"), json!(["visualisation", "proxy"]));
    assert_eq!(nets("caddy"), json!(["proxy"]));
    let caddy = text(&stack, &caddyfile_path());
    assert!(caddy.contains("grafana.example.com {\n\treverse_proxy grafana:3000\n}"));
    assert!(!caddy.contains("tracker:"), "{caddy}");
}

#[test]
fn networks_separate_database_metrics_visualisation_and_proxy() {
    let c = compose(&rendered(&full()));
    let nets = |s: &str| c["services"][s]["networks"].clone();
    assert_eq!(nets("tracker"), json!(["database", "metrics", "proxy"]));
    assert_eq!(nets("mysql"), json!(["database"]));
    assert_eq!(nets("prometheus"), json!(["metrics", "visualisation"]));
    assert_eq!(nets("grafana"), json!(["visualisation", "proxy"]));
    assert_eq!(nets("caddy"), json!(["proxy"]));
    let declared: Vec<&String> = c["networks"].as_object().unwrap().keys().collect();
    assert_eq!(declared, ["database", "metrics", "visualisation", "proxy"]);
    // The minimal stack has one service on Compose's default network.
    let c = compose(&rendered(&minimal()));
    assert!(c.get("networks").is_none(), "{c:#}");
    assert!(c["services"]["tracker"].get("networks").is_none());
}

// ---------------------------------------------------------------------------------------------
// Compose file
// ---------------------------------------------------------------------------------------------

#[test]
fn compose_is_the_spec_format_without_privileged_or_high_ulimits() {
    for v in [minimal(), full()] {
        let stack = rendered(&v);
        let c = compose(&stack);
        assert!(c.get("version").is_none(), "no `version` key");
        assert!(
            c.get("name").is_none(),
            "docker-compose 1.29 rejects `name`"
        );
        for (name, service) in c["services"].as_object().unwrap() {
            assert!(service.get("privileged").is_none(), "{name} is privileged");
            if let Some(ulimits) = service.get("ulimits") {
                for (limit, value) in ulimits.as_object().unwrap() {
                    let values: Vec<u64> = match value {
                        Value::Number(n) => vec![n.as_u64().unwrap()],
                        Value::Object(o) => o.values().map(|v| v.as_u64().unwrap()).collect(),
                        other => panic!("{name}: ulimit {limit}: {other}"),
                    };
                    assert!(values.iter().all(|v| *v <= 20_000), "{name}: {limit}");
                }
            }
            assert_eq!(service["restart"], "unless-stopped", "{name}");
            assert_eq!(service["logging"]["options"]["max-size"], "10m", "{name}");
        }
        let raw = text(&stack, layout::COMPOSE_FILE);
        assert!(!raw.contains("privileged") && !raw.contains("ulimits"));
    }
}

#[test]
fn tracker_container_contract() {
    let mut v = minimal();
    v["tracker"]["health_check_api"]["bind_address"] = json!("0.0.0.0:1414");
    let c = compose(&rendered(&v));
    let t = &c["services"]["tracker"];
    assert_eq!(t["image"], "torrust/tracker:3.0.0");
    let env = &t["environment"];
    assert_eq!(env["USER_ID"], "1000");
    assert_eq!(
        env["TORRUST_TRACKER_CONFIG_TOML_PATH"],
        "/etc/torrust/tracker/tracker.toml"
    );
    assert_eq!(env["HEALTH_CHECK_API_PORT"], "1414");
    assert_eq!(
        env[ENV_API_ADMIN_TOKEN],
        format!("${{{ENV_API_ADMIN_TOKEN}:?{ENV_API_ADMIN_TOKEN} is missing from .env}}")
    );
    assert_eq!(
        t["volumes"],
        json!([
            "/opt/torrust/storage/tracker/etc:/etc/torrust/tracker:ro",
            "/opt/torrust/storage/tracker/lib:/var/lib/torrust/tracker",
            "/opt/torrust/storage/tracker/log:/var/log/torrust/tracker"
        ])
    );
    assert_eq!(
        t["healthcheck"]["test"],
        json!([
            "CMD",
            "/usr/bin/http_health_check",
            "http://127.0.0.1:1414/health_check"
        ])
    );
}

#[test]
fn mysql_is_healthchecked_and_the_tracker_waits_for_it() {
    let stack = rendered(&full());
    let c = compose(&stack);
    assert_eq!(
        c["services"]["tracker"]["depends_on"],
        json!({ "mysql": { "condition": "service_healthy" } })
    );
    let m = &c["services"]["mysql"];
    assert_eq!(
        m["healthcheck"]["test"],
        json!(["CMD", "mysqladmin", "ping", "-h", "127.0.0.1", "--silent"])
    );
    assert_eq!(m["environment"]["MYSQL_DATABASE"], "torrust_tracker");
    assert_eq!(m["environment"]["MYSQL_USER"], "tr_cker");
    assert!(m.get("command").is_none());
    assert_eq!(
        m["volumes"],
        json!(["/opt/torrust/storage/mysql/data:/var/lib/mysql"])
    );
    let mysql = stack
        .services
        .iter()
        .find(|s| s.name == Service::Mysql)
        .unwrap();
    assert!(matches!(mysql.health, HealthProbe::Container { .. }));
    assert!(mysql.ports.is_empty());

    // Another host name and port: an alias on the database network and `--port`.
    let mut v = full();
    v["tracker"]["core"]["database"]["host"] = json!("db");
    v["tracker"]["core"]["database"]["port"] = json!(3307);
    let stack = rendered(&v);
    let c = compose(&stack);
    let m = &c["services"]["mysql"];
    assert_eq!(m["networks"], json!({ "database": { "aliases": ["db"] } }));
    assert_eq!(m["command"], json!(["--port=3307"]));
    assert_eq!(
        m["healthcheck"]["test"],
        json!([
            "CMD",
            "mysqladmin",
            "ping",
            "-h",
            "127.0.0.1",
            "-P",
            "3307",
            "--silent"
        ])
    );
    assert!(
        env_var(&stack, ENV_DATABASE_PATH)
            .unwrap()
            .contains("@db:3307/")
    );

    // A host the stack cannot serve is refused (by validation first: `check_values`).
    let mut cfg = config(&full());
    if let crate::config::Database::Mysql(m) = &mut cfg.tracker.core.database {
        m.host = "127.0.0.1".into();
    }
    let err = render(&cfg).unwrap_err().to_string();
    assert!(err.contains("tracker.core.database.host"), "{err}");
    assert_eq!(check_values(&cfg, true).len(), 1);
}

#[test]
fn literals_are_not_interpolated_by_compose() {
    let c = compose(&rendered(&full()));
    // `admin$1` must reach Grafana as is: `$` doubled in the file.
    assert_eq!(
        c["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_USER"],
        "admin$$1"
    );
    assert_eq!(
        c["services"]["grafana"]["environment"]["GF_SERVER_ROOT_URL"],
        "https://grafana.example.com/"
    );
}

#[test]
fn images_are_the_configured_ones_in_service_order() {
    let mut v = full();
    v["images"] = json!({ "tracker": "registry.example.com/torrust/tracker:3.0.0-custom" });
    let cfg = config(&v);
    let stack = render(&cfg).unwrap();
    let c = compose(&stack);
    let in_file: Vec<String> = c["services"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["image"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stack.images, in_file);
    assert_eq!(
        stack.images,
        [
            "registry.example.com/torrust/tracker:3.0.0-custom".to_string(),
            cfg.image(ImageService::Mysql),
            // The exporter runs in the tracker's image.
            "registry.example.com/torrust/tracker:3.0.0-custom".to_string(),
            cfg.image(ImageService::Prometheus),
            cfg.image(ImageService::Grafana),
            cfg.image(ImageService::Caddy),
        ]
    );
    assert_eq!(rendered(&minimal()).images, ["torrust/tracker:3.0.0"]);
}

// ---------------------------------------------------------------------------------------------
// Secrets and .env
// ---------------------------------------------------------------------------------------------

#[test]
fn mysql_driver_and_url_are_env_overrides_with_percent_encoding() {
    let stack = rendered(&full());
    assert_eq!(env_var(&stack, ENV_DATABASE_DRIVER).unwrap(), "mysql");
    assert_eq!(
        env_var(&stack, ENV_DATABASE_PATH).unwrap(),
        "mysql://tr_cker:p%40ss%3Aw%2Frd%3F%23%25%26%3D%2B%20%24x%22y@mysql:3306/torrust_tracker"
    );
    assert_eq!(env_var(&stack, ENV_MYSQL_PASSWORD).unwrap(), DB_PASSWORD);
    assert_eq!(
        env_var(&stack, ENV_MYSQL_ROOT_PASSWORD).unwrap(),
        ROOT_PASSWORD
    );
    assert_eq!(env_var(&stack, ENV_API_ADMIN_TOKEN).unwrap(), TOKEN);
    assert_eq!(
        env_var(&stack, ENV_GRAFANA_ADMIN_PASSWORD).unwrap(),
        GRAFANA_PASSWORD
    );
    assert_eq!(env_var(&stack, "COMPOSE_PROJECT_NAME").unwrap(), "torrust");
    // SQLite: only the driver.
    let stack = rendered(&minimal());
    assert_eq!(env_var(&stack, ENV_DATABASE_DRIVER).unwrap(), "sqlite3");
    assert_eq!(env_var(&stack, ENV_DATABASE_PATH), None);
}

#[test]
fn secrets_are_only_in_0600_files_and_never_in_tracker_toml_or_compose() {
    let stack = rendered(&full());
    let cfg = config(&full());
    let url = mysql_url(match &cfg.tracker.core.database {
        crate::config::Database::Mysql(m) => m,
        _ => unreachable!(),
    });
    let secrets = [
        TOKEN,
        DB_PASSWORD,
        ROOT_PASSWORD,
        GRAFANA_PASSWORD,
        // The encoded form of the MySQL password.
        "p%40ss%3Aw%2Frd",
        url.expose(),
    ];
    let mut holders = Vec::new();
    for file in &stack.files {
        let contents = String::from_utf8_lossy(&file.contents);
        let found: Vec<&&str> = secrets.iter().filter(|s| contents.contains(**s)).collect();
        if !found.is_empty() {
            assert!(file.secret, "{} holds a secret", file.path.display());
            assert_eq!(file.mode, 0o600, "{}", file.path.display());
            holders.push(file.path.display().to_string());
        }
        if file.secret {
            assert_eq!(file.mode, 0o600, "{}", file.path.display());
        }
        // Debug never shows contents.
        let debug = format!("{file:?}");
        assert!(secrets.iter().all(|s| !debug.contains(s)), "{debug}");
    }
    assert_eq!(holders, [layout::ENV_FILE.to_string()]);
    for path in [
        layout::COMPOSE_FILE.to_string(),
        tracker_toml_path(),
        prometheus_yml_path(),
    ] {
        let t = text(&stack, &path);
        for s in secrets {
            assert!(!t.contains(s), "{path} contains a secret");
        }
    }
    assert!(!text(&stack, &tracker_toml_path()).contains("access_tokens"));
}

#[test]
fn unsafe_secret_is_refused_naming_the_field_not_the_value() {
    // Validation refuses these (`check_values`); render refuses them too, should a
    // configuration reach it another way.
    let mut cfg = config(&full());
    if let crate::config::Database::Mysql(m) = &mut cfg.tracker.core.database {
        m.password = crate::secret::Secret::new("it's-secret");
    }
    let err = render(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("tracker.core.database.password"), "{err}");
    assert!(!err.contains("it's-secret"), "{err}");

    let mut cfg = config(&full());
    if let Some(g) = &mut cfg.grafana {
        g.admin_password = crate::secret::Secret::new("back\\slash");
    }
    let err = render(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("grafana.admin_password"), "{err}");

    // Every value `.env` cannot hold is found at once, each at its field.
    let mut cfg = config(&full());
    cfg.tracker.http_api.admin_token = crate::secret::Secret::new("\"quoted");
    if let crate::config::Database::Mysql(m) = &mut cfg.tracker.core.database {
        m.password = crate::secret::Secret::new("a${B}");
        m.host = "my;sql".into();
    }
    let fields: Vec<String> = check_values(&cfg, true)
        .iter()
        .map(|e| match e {
            StackError::UnsafeValue { field, .. } => field.clone(),
            e => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "tracker.core.database.host",
            "tracker.http_api.admin_token",
            "tracker.core.database.password"
        ]
    );
}

#[test]
fn a_token_that_figment_would_retype_is_quoted() {
    let mut v = minimal();
    v["tracker"]["http_api"]["admin_token"] = json!("1234567890123456");
    v["prometheus"] = json!({});
    let stack = rendered(&v);
    assert_eq!(
        env_var(&stack, ENV_API_ADMIN_TOKEN).unwrap(),
        "\"1234567890123456\""
    );
    // The exporter reads it from `.env`; Prometheus never has it.
    assert!(!text(&stack, &prometheus_yml_path()).contains("1234567890123456"));
    let c = compose(&stack);
    assert_eq!(
        c["services"]["stats-exporter"]["environment"]["TORRUST_STATS_EXPORTER_TOKEN"],
        format!("${{{ENV_API_ADMIN_TOKEN}:?{ENV_API_ADMIN_TOKEN} is missing from .env}}")
    );
}

#[test]
fn missing_root_password_is_an_error() {
    let mut cfg = config(&full());
    if let crate::config::Database::Mysql(m) = &mut cfg.tracker.core.database {
        m.root_password = None;
    }
    assert!(matches!(render(&cfg), Err(StackError::MissingRootPassword)));
}

// ---------------------------------------------------------------------------------------------
// Determinism, files, dirs
// ---------------------------------------------------------------------------------------------

#[test]
fn rendering_is_deterministic() {
    for v in [minimal(), full()] {
        let a = rendered(&v);
        let b = rendered(&v);
        assert_eq!(a.files.len(), b.files.len());
        for (fa, fb) in a.files.iter().zip(&b.files) {
            assert_eq!(fa.path, fb.path);
            assert_eq!(fa.contents, fb.contents, "{}", fa.path.display());
            assert_eq!((fa.mode, fa.owner), (fb.mode, fb.owner));
        }
        assert_eq!(a.dirs, b.dirs);
        assert_eq!(a.services, b.services);
    }
    // A configuration differing in one value changes only the files that use it.
    let a = rendered(&full());
    let mut v = full();
    v["prometheus"]["scrape_interval_in_secs"] = json!(60);
    let b = rendered(&v);
    let changed: Vec<&Path> = a
        .files
        .iter()
        .zip(&b.files)
        .filter(|(x, y)| x.contents != y.contents)
        .map(|(x, _)| x.path.as_path())
        .collect();
    assert_eq!(changed, [Path::new(&prometheus_yml_path())]);
    assert_eq!(b.restarts_for(changed), [Service::Prometheus]);
}

/// A file's host path, mode and owner.
type FileSummary = (String, u32, Option<(u32, u32)>);

#[test]
fn file_list_modes_owners_and_roles() {
    let stack = rendered(&full());
    let list: Vec<FileSummary> = stack
        .files
        .iter()
        .map(|f| (f.path.display().to_string(), f.mode, f.owner))
        .collect();
    let p = |s: &str| s.to_string();
    assert_eq!(
        list,
        [
            (p("/opt/torrust/docker-compose.yml"), 0o644, None),
            (p("/opt/torrust/.env"), 0o600, None),
            (
                p("/opt/torrust/storage/tracker/etc/tracker.toml"),
                0o640,
                Some((1000, 1000))
            ),
            (
                p("/opt/torrust/storage/prometheus/etc/prometheus.yml"),
                0o640,
                Some((65534, 65534))
            ),
            (
                p("/opt/torrust/storage/grafana/provisioning/datasources/prometheus.yml"),
                0o644,
                None
            ),
            (
                p("/opt/torrust/storage/grafana/provisioning/dashboards/torrust.yml"),
                0o644,
                None
            ),
            (
                p(
                    "/opt/torrust/storage/grafana/provisioning/dashboards/torrust/torrust-tracker.json"
                ),
                0o644,
                None
            ),
            (p("/opt/torrust/storage/caddy/etc/Caddyfile"), 0o644, None),
            (p("/opt/torrust/bin/backup.sh"), 0o755, Some((0, 0))),
            (p("/etc/cron.d/torrust-backup"), 0o644, Some((0, 0))),
        ]
    );
    assert_eq!(
        stack.file(layout::COMPOSE_FILE).unwrap().role,
        FileRole::Compose
    );
    assert_eq!(stack.file(layout::CRON_FILE).unwrap().role, FileRole::Host);
    assert_eq!(
        stack.restarts_for([
            Path::new(layout::COMPOSE_FILE),
            Path::new(layout::ENV_FILE),
            Path::new(layout::CRON_FILE),
        ]),
        Vec::<Service>::new()
    );
    assert_eq!(
        stack.restarts_for([
            Path::new(&caddyfile_path()),
            Path::new(&tracker_toml_path()),
        ]),
        [Service::Tracker, Service::Caddy]
    );
    // Every file's directory is created (or is a system directory).
    for f in &stack.files {
        let parent = f.path.parent().unwrap();
        assert!(
            parent == Path::new("/etc/cron.d") || stack.dirs.iter().any(|d| d.path == parent),
            "no directory for {}",
            f.path.display()
        );
    }
    // The minimal stack: compose, .env, tracker.toml.
    let names: Vec<String> = rendered(&minimal())
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "/opt/torrust/docker-compose.yml",
            "/opt/torrust/.env",
            "/opt/torrust/storage/tracker/etc/tracker.toml"
        ]
    );
}

#[test]
fn storage_directories_have_the_images_owners() {
    let stack = rendered(&full());
    let owner = |rel: &str| {
        let path = layout::storage(rel);
        let d = stack
            .dirs
            .iter()
            .find(|d| d.path == path)
            .unwrap_or_else(|| panic!("no dir {rel}"));
        (d.uid, d.gid, d.mode)
    };
    assert_eq!(owner("tracker/etc"), (1000, 1000, 0o750));
    assert_eq!(owner("tracker/lib"), (1000, 1000, 0o2770));
    assert_eq!(owner("tracker/lib/database"), (1000, 1000, 0o2770));
    assert_eq!(owner("tracker/log"), (1000, 1000, 0o2770));
    assert_eq!(owner("mysql/data"), (999, 999, 0o750));
    assert_eq!(owner("grafana/data"), (472, 472, 0o750));
    assert_eq!(owner("prometheus/data"), (65534, 65534, 0o750));
    assert_eq!(owner("caddy/data"), (0, 0, 0o700));
    assert_eq!(owner("caddy/config"), (0, 0, 0o700));
    assert_eq!(owner("backup"), (0, 0, 0o700));
    // Parents come before children.
    for (i, d) in stack.dirs.iter().enumerate() {
        for later in &stack.dirs[i + 1..] {
            assert!(
                !d.path.starts_with(&later.path),
                "{:?} before {:?}",
                d,
                later
            );
        }
    }
    let minimal = rendered(&minimal());
    assert!(
        !minimal
            .dirs
            .iter()
            .any(|d| d.path.starts_with(layout::storage("mysql")))
    );
    assert!(
        !minimal
            .dirs
            .iter()
            .any(|d| d.path == Path::new(layout::BACKUP_DIR))
    );
}

// ---------------------------------------------------------------------------------------------
// tracker.toml
// ---------------------------------------------------------------------------------------------

#[test]
fn tracker_toml_has_the_schema_2_0_0_structure() {
    let stack = rendered(&minimal());
    let doc: toml::Table = toml::from_str(text(&stack, &tracker_toml_path())).expect("TOML");
    let expected: toml::Table = toml::from_str(
        r#"
        [metadata]
        app = "torrust-tracker"
        purpose = "configuration"
        schema_version = "2.0.0"

        [logging]
        threshold = "info"

        [core]
        listed = false
        private = false

        [core.database]
        driver = "sqlite3"
        path = "/var/lib/torrust/tracker/database/tracker.db"

        [core.net]
        on_reverse_proxy = false

        [core.tracker_policy]
        persistent_torrent_completed_stat = true

        [core.announce_policy]
        interval = 300
        interval_min = 300

        [[udp_trackers]]
        bind_address = "0.0.0.0:6969"

        [[http_trackers]]
        bind_address = "0.0.0.0:7070"

        [http_api]
        bind_address = "0.0.0.0:1212"

        [health_check_api]
        bind_address = "127.0.0.1:1313"
        "#,
    )
    .unwrap();
    assert_eq!(doc, expected);

    let stack = rendered(&full());
    let doc: toml::Table = toml::from_str(text(&stack, &tracker_toml_path())).unwrap();
    assert_eq!(doc["core"]["private"].as_bool(), Some(true));
    assert_eq!(doc["core"]["database"]["driver"].as_str(), Some("mysql"));
    assert!(doc["core"]["database"].get("path").is_none());
    assert_eq!(doc["core"]["net"]["on_reverse_proxy"].as_bool(), Some(true));
    assert_eq!(doc["udp_trackers"].as_array().unwrap().len(), 2);
    assert_eq!(doc["http_trackers"].as_array().unwrap().len(), 1);
    assert!(doc["http_api"].get("access_tokens").is_none());

    // The announce policy from the environment file.
    let mut v = minimal();
    v["tracker"]["core"]["announce_policy"] = json!({ "interval": 1800, "interval_min": 60 });
    let stack = rendered(&v);
    let doc: toml::Table = toml::from_str(text(&stack, &tracker_toml_path())).unwrap();
    assert_eq!(
        doc["core"]["announce_policy"]["interval"].as_integer(),
        Some(1800)
    );
    assert_eq!(
        doc["core"]["announce_policy"]["interval_min"].as_integer(),
        Some(60)
    );

    // No trackers at all: no empty arrays.
    let mut v = minimal();
    v["tracker"]["udp_trackers"] = json!([]);
    v["tracker"]["http_trackers"] = json!([]);
    let stack = rendered(&v);
    let doc: toml::Table = toml::from_str(text(&stack, &tracker_toml_path())).unwrap();
    assert!(doc.get("udp_trackers").is_none() && doc.get("http_trackers").is_none());
}

// ---------------------------------------------------------------------------------------------
// Prometheus, Grafana
// ---------------------------------------------------------------------------------------------

#[test]
fn prometheus_scrapes_the_exporter_at_the_configured_interval() {
    let stack = rendered(&full());
    let p: Value = serde_norway::from_str(text(&stack, &prometheus_yml_path())).unwrap();
    assert_eq!(p["global"]["scrape_interval"], "30s");
    let job = &p["scrape_configs"][0];
    assert_eq!(job["job_name"], "tracker_stats");
    assert_eq!(job["metrics_path"], "/metrics");
    // Nothing asks the tracker for `format=prometheus` (3.0.0 answers JSON), and no token.
    assert!(job.get("params").is_none());
    assert_eq!(
        job["static_configs"][0]["targets"],
        json!(["stats-exporter:9101"])
    );
    let prom = stack
        .services
        .iter()
        .find(|s| s.name == Service::Prometheus)
        .unwrap();
    assert_eq!(
        prom.health,
        HealthProbe::Http {
            url: "http://127.0.0.1:9090/-/ready".into()
        }
    );
}

#[test]
fn the_exporter_is_our_binary_in_the_tracker_image_unpublished_and_unprivileged() {
    let stack = rendered(&full());
    let c = compose(&stack);
    let exp = &c["services"]["stats-exporter"];
    assert_eq!(exp["image"], c["services"]["tracker"]["image"]);
    assert_eq!(
        exp["entrypoint"],
        json!(["/opt/torrust-deployer/torrust-tracker-deployer"])
    );
    assert_eq!(
        exp["command"],
        json!([
            "stats-exporter",
            "--listen",
            "0.0.0.0:9101",
            "--api",
            "http://tracker:1212"
        ])
    );
    assert_eq!(exp["user"], "1000:1000");
    assert_eq!(
        exp["volumes"],
        json!(["/opt/torrust/bin/deployer:/opt/torrust-deployer:ro"])
    );
    assert_eq!(exp["networks"], json!(["metrics"]));
    assert!(exp.get("ports").is_none());
    assert_eq!(
        exp["healthcheck"]["test"],
        json!([
            "CMD",
            "/opt/torrust-deployer/torrust-tracker-deployer",
            "stats-exporter",
            "--listen",
            "0.0.0.0:9101",
            "--healthcheck"
        ])
    );
    assert_eq!(
        c["services"]["prometheus"]["depends_on"],
        json!({"stats-exporter": {"condition": "service_started"}})
    );
    assert!(
        stack
            .dirs
            .iter()
            .any(|d| d.path == Path::new(layout::DEPLOYER_BIN_DIR))
    );
    // Without Prometheus, no exporter and no binary directory.
    let mut v = full();
    v.as_object_mut().unwrap().remove("prometheus");
    v.as_object_mut().unwrap().remove("grafana");
    let stack = rendered(&v);
    assert!(compose(&stack)["services"].get("stats-exporter").is_none());
    assert!(
        !stack
            .dirs
            .iter()
            .any(|d| d.path == Path::new(layout::DEPLOYER_BIN_DIR))
    );
}

#[test]
fn the_dashboard_has_a_panel_per_statistic_the_image_serves() {
    use super::grafana::{dashboard, expressions};
    use super::monitoring::Scrape;
    let exprs = expressions(&dashboard(Scrape::Release3));
    // Every field of tracker 3.0.0's /api/v1/stats is on the dashboard.
    for field in [
        "torrents",
        "seeders",
        "completed",
        "leechers",
        "tcp4_connections_handled",
        "tcp4_announces_handled",
        "tcp4_scrapes_handled",
        "tcp6_connections_handled",
        "tcp6_announces_handled",
        "tcp6_scrapes_handled",
        "udp4_connections_handled",
        "udp4_announces_handled",
        "udp4_scrapes_handled",
        "udp6_connections_handled",
        "udp6_announces_handled",
        "udp6_scrapes_handled",
    ] {
        assert!(exprs.iter().any(|e| e.contains(field)), "{field}");
    }
    assert!(!exprs.iter().any(|e| e.contains("errors")));
    let develop = expressions(&dashboard(Scrape::Develop));
    for field in [
        "udp4_errors_handled",
        "udp_avg_connect_processing_time_ns",
        "udp_avg_announce_processing_time_ns",
        "udp_avg_scrape_processing_time_ns",
        "udp_banned_ips_total",
        "udp_requests_banned",
        "udp_requests_aborted",
    ] {
        assert!(develop.iter().any(|e| e.contains(field)), "{field}");
    }
    // Panel ids are unique.
    let d = dashboard(Scrape::Develop);
    let ids: std::collections::BTreeSet<u64> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), d["panels"].as_array().unwrap().len());
}

#[test]
fn grafana_dashboard_uses_the_provisioned_datasource() {
    let stack = rendered(&full());
    let base = layout::grafana_provisioning();
    let ds: Value = serde_norway::from_str(text(
        &stack,
        &base
            .join("datasources/prometheus.yml")
            .display()
            .to_string(),
    ))
    .unwrap();
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let uid = ds["datasources"][0]["uid"].as_str().unwrap().to_string();
    let provider: Value = serde_norway::from_str(text(
        &stack,
        &base.join("dashboards/torrust.yml").display().to_string(),
    ))
    .unwrap();
    assert_eq!(
        provider["providers"][0]["options"]["path"],
        "/etc/grafana/provisioning/dashboards/torrust"
    );
    let dash: Value = serde_json::from_str(text(
        &stack,
        &base
            .join("dashboards/torrust/torrust-tracker.json")
            .display()
            .to_string(),
    ))
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    for metric in [
        "torrents",
        "seeders",
        "leechers",
        "udp4_announces_handled",
        "tcp4_scrapes_handled",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "no panel for {metric}"
        );
    }
    for p in panels {
        assert_eq!(p["datasource"]["uid"], uid.as_str());
    }
    let ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
}

// ---------------------------------------------------------------------------------------------
// Caddy
// ---------------------------------------------------------------------------------------------

#[test]
fn caddyfile_production_staging_and_internal_ca() {
    let stack = rendered(&full());
    let caddy = text(&stack, &caddyfile_path());
    assert!(caddy.contains("\temail admin@example.com\n"), "{caddy}");
    assert!(caddy.contains("\tacme_ca https://acme-v02.api.letsencrypt.org/directory\n"));
    assert!(!caddy.contains("staging") && !caddy.contains("tls internal"));
    for (domain, upstream) in [
        ("tracker.example.com", "tracker:7070"),
        ("api.example.com", "tracker:1212"),
        ("health.example.com", "tracker:1313"),
        ("grafana.example.com", "grafana:3000"),
    ] {
        assert!(
            caddy.contains(&format!("\n{domain} {{\n\treverse_proxy {upstream}\n}}\n")),
            "{domain}: {caddy}"
        );
    }

    let mut v = full();
    v["https"]["use_staging"] = json!(true);
    let caddy = text(&rendered(&v), &caddyfile_path()).to_string();
    assert!(caddy.contains("\tacme_ca https://acme-staging-v02.api.letsencrypt.org/directory\n"));

    let mut v = full();
    v["tracker"]["http_trackers"][0]["domain"] = json!("tracker.local");
    let caddy = text(&rendered(&v), &caddyfile_path()).to_string();
    assert!(caddy.contains("\ntracker.local {\n\ttls internal\n\treverse_proxy tracker:7070\n}\n"));
    // The others still use Let's Encrypt.
    assert!(caddy.contains("acme_ca https://acme-v02"));
    assert!(caddy.contains("\napi.example.com {\n\treverse_proxy tracker:1212\n}\n"));

    // Only `.local` domains: no ACME CA at all.
    let mut v = minimal();
    v["tracker"]["http_trackers"][0] =
        json!({ "bind_address": "0.0.0.0:7070", "domain": "tracker.local", "use_tls_proxy": true });
    v["https"] = json!({ "admin_email": "admin@example.com", "use_staging": true });
    let caddy = text(&rendered(&v), &caddyfile_path()).to_string();
    assert!(!caddy.contains("acme_ca"), "{caddy}");
    assert!(caddy.contains("tls internal"));
}

#[test]
fn tracker_reads_the_peer_address_from_the_proxy_only_for_proxied_http_trackers() {
    let doc = |v: &Value| -> toml::Table {
        toml::from_str(text(&rendered(v), &tracker_toml_path())).unwrap()
    };
    let mut v = full();
    v["tracker"]["http_trackers"][0]["use_tls_proxy"] = json!(false);
    assert_eq!(
        doc(&v)["core"]["net"]["on_reverse_proxy"].as_bool(),
        Some(false)
    );
    assert_eq!(
        doc(&full())["core"]["net"]["on_reverse_proxy"].as_bool(),
        Some(true)
    );
}

// ---------------------------------------------------------------------------------------------
// Backup
// ---------------------------------------------------------------------------------------------

#[test]
fn cron_line_from_the_schedule() {
    assert_eq!(
        cron_line("0 3 * * *"),
        "0 3 * * * root /opt/torrust/bin/backup.sh >>/var/log/torrust-backup.log 2>&1"
    );
    assert_eq!(
        cron_line(" */15  2 * JAN-MAR mon-fri "),
        "*/15 2 * JAN-MAR mon-fri root /opt/torrust/bin/backup.sh >>/var/log/torrust-backup.log 2>&1"
    );
    let mut v = full();
    v["backup"]["schedule"] = json!("30 4 * * 1");
    let stack = rendered(&v);
    let cron = text(&stack, layout::CRON_FILE);
    assert!(cron.ends_with(
        "\n30 4 * * 1 root /opt/torrust/bin/backup.sh >>/var/log/torrust-backup.log 2>&1\n"
    ));
    // Every non-comment line is a variable or the job.
    let lines: Vec<&str> = cron.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "{cron}");
    assert!(!cron.contains('%'));
    // No backup section: no job.
    assert!(rendered(&minimal()).file(layout::CRON_FILE).is_none());
}

#[test]
fn unsafe_schedule_is_refused() {
    let mut cfg = config(&full());
    cfg.backup.as_mut().unwrap().schedule = "0 3 * * * %".into();
    let err = render(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("backup.schedule"), "{err}");
    cfg.backup.as_mut().unwrap().schedule = "0 3 * *\n* * * * * root rm -rf /".into();
    assert!(render(&cfg).is_err());
}

fn bash_syntax_ok(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.sh");
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn backup_script_for_sqlite_and_mysql() {
    let mut v = minimal();
    v["backup"] = json!({ "schedule": "0 3 * * *", "retention_days": 9 });
    let stack = rendered(&v);
    let script = text(&stack, layout::BACKUP_SCRIPT);
    bash_syntax_ok(script);
    assert!(script.starts_with("#!/bin/bash\n"));
    assert!(script.contains("readonly RETENTION_DAYS=9\n"));
    assert!(script.contains("readonly DATABASE=sqlite3\n"));
    assert!(
        script.contains(
            "readonly SQLITE_FILE='/opt/torrust/storage/tracker/lib/database/tracker.db'\n"
        )
    );
    assert!(script.contains("compose pause tracker"));
    assert!(script.contains("{{.State.Running}} {{.State.Paused}}"));
    assert!(script.contains("-mmin +$((RETENTION_DAYS * 1440))"));
    assert!(
        script.contains(
            "readonly CONFIG_PATHS=('docker-compose.yml' '.env' 'storage/tracker/etc')\n"
        )
    );

    let stack = rendered(&full());
    let script = text(&stack, layout::BACKUP_SCRIPT);
    bash_syntax_ok(script);
    assert!(script.contains("readonly DATABASE=mysql\n"));
    assert!(script.contains("exec mysqldump -uroot --single-transaction"));
    assert!(script.contains("readonly RETENTION_DAYS=5\n"));
    assert!(script.contains("'storage/caddy/etc'"));
    // No secret in the script: the dump uses the container's own environment.
    for s in [ROOT_PASSWORD, DB_PASSWORD, TOKEN] {
        assert!(!script.contains(s));
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn announce_urls_use_domains_tls_and_the_instance_ip() {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    assert_eq!(
        announce_urls(&config(&minimal()), ip),
        [
            "udp://10.1.2.3:6969/announce",
            "http://10.1.2.3:7070/announce"
        ]
    );
    let cfg = config(&full());
    assert_eq!(
        announce_urls(&cfg, ip),
        [
            "udp://udp.example.com:6969/announce",
            "udp://10.1.2.3:6868/announce",
            "https://tracker.example.com/announce"
        ]
    );
    let e = endpoints(&cfg, ip);
    assert_eq!(e.api, "https://api.example.com/api");
    assert_eq!(
        e.health_check.as_deref(),
        Some("https://health.example.com/health_check")
    );
    assert_eq!(e.grafana.as_deref(), Some("https://grafana.example.com/"));
    let e = endpoints(&config(&minimal()), "2001:db8::1".parse().unwrap());
    assert_eq!(e.udp_announce, ["udp://[2001:db8::1]:6969/announce"]);
    assert_eq!(e.api, "http://[2001:db8::1]:1212/api");
    assert_eq!(e.health_check, None);
}

#[test]
fn dns_records_name_each_domain_once_and_mark_local_names() {
    let mut config = crate::config::parse(
        &crate::config::minimal_test_file("dns", "Adm1n-T0ken-for-dns-test").to_string(),
        std::path::Path::new("/"),
    )
    .unwrap()
    .config;
    let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    assert!(dns_records(&config, ip).is_empty());
    let domain = |d: &str| Some(d.parse::<crate::config::Domain>().unwrap());
    config.tracker.http_trackers[0].domain = domain("tracker.example.com");
    config.tracker.http_api.domain = domain("tracker.example.com");
    config.tracker.udp_trackers[0].domain = domain("udp.tracker.local");
    let records = dns_records(&config, ip);
    let names: Vec<(&str, &str, bool)> = records
        .iter()
        .map(|r| (r.name.as_str(), r.kind, r.local))
        .collect();
    assert_eq!(
        names,
        [
            ("udp.tracker.local", "A", true),
            ("tracker.example.com", "A", false)
        ]
    );
}

#[test]
fn each_port_is_published_on_the_address_of_its_bind_and_bound_to_all_inside() {
    let mut v = minimal();
    v["tracker"]["udp_trackers"] = json!([
        { "bind_address": "0.0.0.0:6969" },
        { "bind_address": "192.0.2.10:6868" },
        { "bind_address": "[::]:6767" }
    ]);
    v["tracker"]["http_trackers"] = json!([
        { "bind_address": "192.0.2.10:7070" },
        { "bind_address": "[2001:db8::5]:7071" }
    ]);
    v["tracker"]["http_api"]["bind_address"] = json!("127.0.0.1:1212");
    let stack = rendered(&v);
    let c = compose(&stack);
    assert_eq!(
        ports_of(&c, "tracker"),
        [
            "6969:6969/udp",
            "192.0.2.10:6868:6868/udp",
            "6767:6767/udp",
            "192.0.2.10:7070:7070",
            "[2001:db8::5]:7071:7071",
            "127.0.0.1:1212:1212"
        ]
    );
    let tracker = &stack.services[0];
    let public: Vec<bool> = tracker.ports.iter().map(PublishedPort::is_public).collect();
    assert_eq!(public, [true, true, true, true, true, false]);
    // Inside the container: the unspecified address of each family, so that Docker's port
    // mapping and Prometheus (over the Docker network) reach every service.
    let doc: toml::Table = toml::from_str(text(&stack, &tracker_toml_path())).unwrap();
    let binds = |section: &str| -> Vec<String> {
        doc[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["bind_address"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        binds("udp_trackers"),
        ["0.0.0.0:6969", "0.0.0.0:6868", "[::]:6767"]
    );
    assert_eq!(binds("http_trackers"), ["0.0.0.0:7070", "[::]:7071"]);
    assert_eq!(
        doc["http_api"]["bind_address"].as_str(),
        Some("0.0.0.0:1212")
    );
    // Never published: the health check API keeps its own (loopback) bind.
    assert_eq!(
        doc["health_check_api"]["bind_address"].as_str(),
        Some("127.0.0.1:1313")
    );
}
