//! An in-memory server speaking the Hetzner Cloud API, as far as the deployer uses it: SSH keys,
//! servers, firewalls and actions, with labels, label selectors, `name=` filters, pagination and
//! the API's error envelope. Shaped after the public API (the JSON of hcloud-go's `schema`
//! package); written for these tests.
//!
//! Tests inject what the real API does to a client: an error answer (`fail`: any status, code,
//! details and headers, e.g. 429 with `RateLimit-Reset`), actions that end in `error`
//! (`fail_actions`), a request that is carried out but never answered (`hold`: the client is then
//! killed, as by kill -9), a small page size. A hook (`on_create`) may make a real machine for a
//! new server (its address becomes the server's IPv4) and remove it with the server.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// The token the server accepts unless told otherwise.
pub const TOKEN: &str = "test-hcloud-token-0123456789";

/// An injected error answer: the next `times` requests whose method is `method` and whose path
/// starts with `path` get it.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Value,
    pub headers: Vec<(String, String)>,
    pub times: u32,
}

impl Fault {
    pub fn new(method: &str, path: &str, status: u16, code: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            status,
            code: code.into(),
            message: format!("injected {code}"),
            details: Value::Null,
            headers: Vec::new(),
            times: 1,
        }
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// Makes a machine for a new server (name, user-data) and returns its IPv4 address; and
/// removes it (name).
pub type CreateHook = Arc<dyn Fn(&str, &str) -> Result<String, String> + Send + Sync>;
pub type DeleteHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What is left to do after a request, outside the lock: a hook's call.
type MachineWork = Box<dyn FnOnce(&Arc<Mutex<World>>) + Send>;

struct Action {
    json: Value,
    done_at: Option<Instant>,
    /// Server to mark running when it succeeds.
    starts: Option<i64>,
}

#[derive(Default)]
struct World {
    token: String,
    next_id: i64,
    servers: BTreeMap<i64, Value>,
    ssh_keys: BTreeMap<i64, Value>,
    firewalls: BTreeMap<i64, Value>,
    actions: BTreeMap<i64, Action>,
    faults: Vec<Fault>,
    failing_actions: Vec<String>,
    holds: Vec<(String, String, mpsc::Sender<()>)>,
    max_per_page: u64,
    server_ip: String,
    action_time: Duration,
    requests: Vec<String>,
    /// The user-data each server was created with, by name.
    user_data: BTreeMap<String, String>,
    on_create: Option<CreateHook>,
    on_delete: Option<DeleteHook>,
    deleted_names: BTreeMap<i64, String>,
}

pub struct HetznerApi {
    pub url: String,
    world: Arc<Mutex<World>>,
}

impl HetznerApi {
    /// Starts the server on a loopback port, in a thread of its own.
    pub fn start() -> HetznerApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let world = Arc::new(Mutex::new(World {
            token: TOKEN.into(),
            next_id: 100,
            max_per_page: 50,
            server_ip: "127.0.0.1".into(),
            action_time: Duration::from_millis(150),
            ..World::default()
        }));
        let w = world.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, w));
        });
        HetznerApi { url, world }
    }

    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }

    pub fn fail(&self, fault: Fault) {
        self.with(|w| w.faults.push(fault));
    }

    /// Actions of this command (`create_server`, `start_server`, ...) end in `error`.
    pub fn fail_actions(&self, command: &str) {
        self.with(|w| w.failing_actions.push(command.into()));
    }

    pub fn clear_faults(&self) {
        self.with(|w| {
            w.faults.clear();
            w.failing_actions.clear();
            w.holds.clear();
        });
    }

    /// The next request `method path*` is carried out but never answered; the receiver hears
    /// when it arrived.
    pub fn hold(&self, method: &str, path: &str) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        self.with(|w| w.holds.push((method.into(), path.into(), tx)));
        rx
    }

    pub fn max_per_page(&self, n: u64) {
        self.with(|w| w.max_per_page = n);
    }

    pub fn server_ip(&self, ip: &str) {
        self.with(|w| w.server_ip = ip.into());
    }

    pub fn on_create(&self, create: CreateHook, delete: DeleteHook) {
        self.with(|w| {
            w.on_create = Some(create);
            w.on_delete = Some(delete);
        });
    }

    pub fn servers(&self) -> Vec<Value> {
        self.with(|w| w.servers.values().cloned().collect())
    }

    pub fn ssh_keys(&self) -> Vec<Value> {
        self.with(|w| w.ssh_keys.values().cloned().collect())
    }

    pub fn firewalls(&self) -> Vec<Value> {
        self.with(|w| w.firewalls.values().cloned().collect())
    }

    /// The user-data the server `name` was created with.
    pub fn user_data(&self, name: &str) -> Option<String> {
        self.with(|w| w.user_data.get(name).cloned())
    }

    /// Every request so far: `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.with(|w| w.requests.clone())
    }

    /// How many requests start with `prefix` (e.g. `POST /servers`).
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// An SSH key already in the project (made by hand).
    pub fn add_ssh_key(&self, name: &str, public_key: &str, labels: Value) -> i64 {
        self.with(|w| {
            let id = w.id();
            w.ssh_keys
                .insert(id, key_json(id, name, public_key, labels));
            id
        })
    }

    /// A running server already in the project.
    pub fn add_server(&self, name: &str, labels: Value) -> i64 {
        self.with(|w| {
            let id = w.id();
            let s = server_json(id, name, "running", &w.server_ip.clone(), labels);
            w.servers.insert(id, s);
            id
        })
    }

    /// A firewall already in the project.
    pub fn add_firewall(&self, name: &str, labels: Value) -> i64 {
        self.with(|w| {
            let id = w.id();
            w.firewalls.insert(
                id,
                json!({"id": id, "name": name, "labels": labels, "rules": [], "applied_to": []}),
            );
            id
        })
    }
}

async fn serve(listener: std::net::TcpListener, world: Arc<Mutex<World>>) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let world = world.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(world.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = (u16, Value, Vec<(String, String)>);

fn error(status: u16, code: &str, message: &str) -> Answer {
    (
        status,
        json!({"error": {"code": code, "message": message, "details": null}}),
        Vec::new(),
    )
}

async fn handle(
    world: Arc<Mutex<World>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().trim_start_matches("/v1").to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);

    let (answer, held, hook) = {
        let mut w = world.lock().unwrap();
        w.requests.push(if query.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}?{query}")
        });
        w.tick();
        let answer = if auth != format!("Bearer {}", w.token) {
            error(401, "unauthorized", "unable to authenticate")
        } else if let Some(f) = w.take_fault(&method, &path) {
            let body =
                json!({"error": {"code": f.code, "message": f.message, "details": f.details}});
            (f.status, body, f.headers)
        } else {
            w.route(&method, &path, &query, &body)
        };
        let held = w.take_hold(&method, &path);
        let hook = w.machine_work(&method, &path, &answer, &body);
        (answer, held, hook)
    };
    if let Some(work) = hook {
        // The hooks may block for long (making a container): a thread of their own, outside
        // the lock and the runtime.
        let world = world.clone();
        std::thread::spawn(move || work(&world));
    }
    if let Some(tx) = held {
        let _ = tx.send(());
        // Carried out, never answered.
        std::future::pending::<()>().await;
    }
    let (status, body, headers) = answer;
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(k, v);
    }
    let bytes = if status == 204 {
        Bytes::new()
    } else {
        resp = resp.header("content-type", "application/json");
        Bytes::from(body.to_string())
    };
    Ok(resp.body(Full::new(bytes)).unwrap())
}

fn key_json(id: i64, name: &str, public_key: &str, labels: Value) -> Value {
    json!({
        "id": id, "name": name, "public_key": public_key, "labels": labels,
        "fingerprint": format!("00:11:22:{:02x}", id % 256), "created": "2026-11-30T00:00:00Z"
    })
}

fn server_json(id: i64, name: &str, status: &str, ip: &str, labels: Value) -> Value {
    json!({
        "id": id, "name": name, "status": status, "labels": labels,
        "public_net": {
            "ipv4": {"id": id, "ip": ip, "blocked": false, "dns_ptr": "static.example"},
            "ipv6": {"id": id, "ip": format!("2001:db8:{:x}::/64", id), "blocked": false, "dns_ptr": []},
            "firewalls": []
        }
    })
}

/// Whether `labels` match a label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and).
fn matches(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k) == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(term).is_some()
        }
    })
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .to_string();
            (k.to_string(), v)
        })
        .collect()
}

fn key_material(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl World {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| f.method == method && path.starts_with(&f.path) && f.times > 0)?;
        self.faults[i].times -= 1;
        let f = self.faults[i].clone();
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(f)
    }

    fn take_hold(&mut self, method: &str, path: &str) -> Option<mpsc::Sender<()>> {
        let i = self
            .holds
            .iter()
            .position(|(m, p, _)| m == method && path.starts_with(p.as_str()))?;
        Some(self.holds.remove(i).2)
    }

    /// Finishes the actions whose time has come.
    fn tick(&mut self) {
        let now = Instant::now();
        let mut started = Vec::new();
        for a in self.actions.values_mut() {
            if a.json["status"] != "running" || a.done_at.is_none_or(|t| t > now) {
                continue;
            }
            let command = a.json["command"].as_str().unwrap_or("").to_string();
            if self.failing_actions.contains(&command) {
                a.json["status"] = json!("error");
                a.json["error"] = json!({"code": "action_failed", "message": "injected failure"});
            } else {
                a.json["status"] = json!("success");
                a.json["progress"] = json!(100);
                if let Some(s) = a.starts {
                    started.push(s);
                }
            }
            a.json["finished"] = json!("2026-11-30T00:00:01Z");
        }
        for id in started {
            if let Some(s) = self.servers.get_mut(&id) {
                s["status"] = json!("running");
            }
        }
        // A server whose create action failed is left off.
        let failed: Vec<i64> = self
            .actions
            .values()
            .filter(|a| a.json["status"] == "error" && a.starts.is_some())
            .filter_map(|a| a.starts)
            .collect();
        for id in failed {
            if let Some(s) = self.servers.get_mut(&id)
                && s["status"] != "running"
            {
                s["status"] = json!("off");
            }
        }
    }

    fn action(&mut self, command: &str, resource: (i64, &str), starts: Option<i64>) -> Value {
        let id = self.id();
        let json = json!({
            "id": id, "command": command, "status": "running", "progress": 0,
            "started": "2026-11-30T00:00:00Z", "finished": null,
            "resources": [{"id": resource.0, "type": resource.1}], "error": null
        });
        let done_at = Some(Instant::now() + self.action_time);
        self.actions.insert(
            id,
            Action {
                json: json.clone(),
                done_at,
                starts,
            },
        );
        json
    }

    /// The hook's work after a server was created or deleted, if there is a hook.
    fn machine_work(
        &self,
        method: &str,
        path: &str,
        answer: &Answer,
        body: &Value,
    ) -> Option<MachineWork> {
        let made = &answer.1;
        if method == "POST" && path == "/servers" && answer.0 == 201 {
            let hook = self.on_create.clone()?;
            let id = made["server"]["id"].as_i64()?;
            let name = made["server"]["name"].as_str()?.to_string();
            let user_data = body["user_data"].as_str().unwrap_or("").to_string();
            return Some(Box::new(move |world| {
                let result = hook(&name, &user_data);
                world.lock().unwrap().machine_ready(id, result);
            }));
        }
        if method == "DELETE" && path.starts_with("/servers/") && answer.0 == 200 {
            let hook = self.on_delete.clone()?;
            let action = made["action"]["id"].as_i64()?;
            let server = made["action"]["resources"][0]["id"].as_i64()?;
            let name = self.deleted_names.get(&server)?.clone();
            return Some(Box::new(move |world| {
                hook(&name);
                if let Some(a) = world.lock().unwrap().actions.get_mut(&action) {
                    a.done_at = Some(Instant::now());
                }
            }));
        }
        None
    }

    /// A machine made by the create hook: its address, and the create action may finish.
    fn machine_ready(&mut self, server: i64, result: Result<String, String>) {
        let action = self
            .actions
            .values_mut()
            .find(|a| a.starts == Some(server) && a.json["command"] == "create_server");
        match result {
            Ok(ip) => {
                if let Some(s) = self.servers.get_mut(&server) {
                    s["public_net"]["ipv4"]["ip"] = json!(ip);
                }
                if let Some(a) = action {
                    a.done_at = Some(Instant::now());
                }
            }
            Err(e) => {
                if let Some(a) = action {
                    a.json["status"] = json!("error");
                    a.json["error"] = json!({"code": "server_create_failed", "message": e});
                }
            }
        }
    }

    fn list(&self, items: Vec<Value>, key: &str, query: &str) -> Answer {
        let q = query_map(query);
        let items: Vec<Value> = items
            .into_iter()
            .filter(|i| {
                q.get("label_selector")
                    .is_none_or(|s| matches(&i["labels"], s))
            })
            .filter(|i| q.get("name").is_none_or(|n| i["name"] == n.as_str()))
            .collect();
        let per_page = q
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(25u64)
            .min(self.max_per_page)
            .max(1);
        let page = q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1u64)
            .max(1);
        let total = items.len() as u64;
        let last = total.div_ceil(per_page).max(1);
        let start = ((page - 1) * per_page) as usize;
        let slice: Vec<Value> = items
            .into_iter()
            .skip(start)
            .take(per_page as usize)
            .collect();
        let body = json!({
            key: slice,
            "meta": {"pagination": {
                "page": page, "per_page": per_page,
                "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
                "next_page": if page < last { json!(page + 1) } else { Value::Null },
                "last_page": last, "total_entries": total
            }}
        });
        (200, body, Vec::new())
    }

    fn route(&mut self, method: &str, path: &str, query: &str, body: &Value) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let id = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok());
        match (method, parts.as_slice()) {
            ("GET", ["ssh_keys"]) => {
                let items = self.ssh_keys.values().cloned().collect();
                self.list(items, "ssh_keys", query)
            }
            ("POST", ["ssh_keys"]) => self.create_key(body),
            ("DELETE", ["ssh_keys", _]) => match id(1).and_then(|i| self.ssh_keys.remove(&i)) {
                Some(_) => (204, Value::Null, Vec::new()),
                None => error(404, "not_found", "SSH key not found"),
            },
            ("GET", ["servers"]) => {
                let items = self.servers.values().cloned().collect();
                self.list(items, "servers", query)
            }
            ("POST", ["servers"]) => self.create_server(body),
            ("GET", ["servers", _]) => match id(1).and_then(|i| self.servers.get(&i)) {
                Some(s) => (200, json!({ "server": s }), Vec::new()),
                None => error(404, "not_found", "server not found"),
            },
            ("PUT", ["servers", _]) => match id(1).and_then(|i| self.servers.get_mut(&i)) {
                Some(s) => {
                    if let Some(l) = body.get("labels") {
                        s["labels"] = l.clone();
                    }
                    (200, json!({ "server": s }), Vec::new())
                }
                None => error(404, "not_found", "server not found"),
            },
            ("DELETE", ["servers", _]) => self.delete_server(id(1).unwrap_or(0)),
            ("POST", ["servers", _, "actions", "poweron"]) => {
                let sid = id(1).unwrap_or(0);
                if !self.servers.contains_key(&sid) {
                    return error(404, "not_found", "server not found");
                }
                let a = self.action("start_server", (sid, "server"), Some(sid));
                (201, json!({ "action": a }), Vec::new())
            }
            ("GET", ["firewalls"]) => {
                let items = self.firewalls.values().cloned().collect();
                self.list(items, "firewalls", query)
            }
            ("POST", ["firewalls"]) => self.create_firewall(body),
            ("DELETE", ["firewalls", _]) => self.delete_firewall(id(1).unwrap_or(0)),
            ("POST", ["firewalls", _, "actions", what]) => {
                self.firewall_action(id(1).unwrap_or(0), what, body)
            }
            ("GET", ["actions", _]) => match id(1).and_then(|i| self.actions.get(&i)) {
                Some(a) => (200, json!({ "action": a.json }), Vec::new()),
                None => error(404, "not_found", "action not found"),
            },
            _ => error(404, "not_found", &format!("no route {method} {path}")),
        }
    }

    fn create_key(&mut self, body: &Value) -> Answer {
        let name = body["name"].as_str().unwrap_or("");
        let key = body["public_key"].as_str().unwrap_or("");
        if name.is_empty() || key.split_whitespace().count() < 2 {
            return error(
                400,
                "invalid_input",
                "invalid input in fields 'name', 'public_key'",
            );
        }
        if self.ssh_keys.values().any(|k| k["name"] == name) {
            return error(
                409,
                "uniqueness_error",
                "SSH key with the same name already exists",
            );
        }
        if self
            .ssh_keys
            .values()
            .any(|k| key_material(k["public_key"].as_str().unwrap_or("")) == key_material(key))
        {
            let mut e = error(
                409,
                "uniqueness_error",
                "SSH key with the same fingerprint already exists",
            );
            e.1["error"]["details"] = json!({"fields": [{"name": "public_key"}]});
            return e;
        }
        let id = self.id();
        let k = key_json(id, name, key, body["labels"].clone());
        self.ssh_keys.insert(id, k.clone());
        (201, json!({ "ssh_key": k }), Vec::new())
    }

    fn create_server(&mut self, body: &Value) -> Answer {
        let name = body["name"].as_str().unwrap_or("");
        for field in ["name", "server_type", "image", "location"] {
            if body[field].as_str().unwrap_or("").is_empty() {
                let mut e = error(
                    400,
                    "invalid_input",
                    &format!("invalid input in field '{field}'"),
                );
                e.1["error"]["details"] =
                    json!({"fields": [{"name": field, "messages": ["is required"]}]});
                return e;
            }
        }
        if body.get("datacenter").is_some() {
            return error(400, "invalid_input", "datacenter is gone");
        }
        if self.servers.values().any(|s| s["name"] == name) {
            return error(409, "uniqueness_error", "server name is already used");
        }
        let id = self.id();
        let mut s = server_json(
            id,
            name,
            "initializing",
            &self.server_ip.clone(),
            body["labels"].clone(),
        );
        let firewalls: Vec<i64> = body["firewalls"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["firewall"].as_i64()).collect())
            .unwrap_or_default();
        for fw in &firewalls {
            match self.firewalls.get_mut(fw) {
                Some(f) => f["applied_to"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "server", "server": {"id": id}})),
                None => return error(404, "not_found", "firewall not found"),
            }
        }
        s["public_net"]["firewalls"] = json!(
            firewalls
                .iter()
                .map(|f| json!({"id": f, "status": "applied"}))
                .collect::<Vec<_>>()
        );
        self.servers.insert(id, s.clone());
        let user_data = body["user_data"].as_str().unwrap_or("").to_string();
        self.user_data.insert(name.to_string(), user_data);
        let action = self.action("create_server", (id, "server"), Some(id));
        if self.on_create.is_some() {
            // Finished when the hook has made the machine.
            let aid = action["id"].as_i64().unwrap();
            self.actions.get_mut(&aid).unwrap().done_at = None;
        }
        let start = self.action("start_server", (id, "server"), None);
        let body = json!({
            "server": s, "action": action, "next_actions": [start], "root_password": null
        });
        (201, body, Vec::new())
    }

    fn delete_server(&mut self, id: i64) -> Answer {
        let Some(s) = self.servers.remove(&id) else {
            return error(404, "not_found", "server not found");
        };
        for f in self.firewalls.values_mut() {
            let applied = f["applied_to"].as_array_mut().unwrap();
            applied.retain(|r| r["server"]["id"] != id);
        }
        let a = self.action("delete_server", (id, "server"), None);
        if self.on_delete.is_some() {
            // Finished when the hook has removed the machine.
            let aid = a["id"].as_i64().unwrap();
            self.actions.get_mut(&aid).unwrap().done_at = None;
        }
        self.deleted_names
            .insert(id, s["name"].as_str().unwrap_or("").to_string());
        (200, json!({ "action": a }), Vec::new())
    }

    fn create_firewall(&mut self, body: &Value) -> Answer {
        let name = body["name"].as_str().unwrap_or("");
        if self.firewalls.values().any(|f| f["name"] == name) {
            return error(
                409,
                "uniqueness_error",
                "firewall with the same name already exists",
            );
        }
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        for r in &rules {
            let tcp_udp = r["protocol"] == "tcp" || r["protocol"] == "udp";
            if r["direction"] != "in" || (tcp_udp && r["port"].as_str().is_none()) {
                return error(400, "invalid_input", "invalid rule");
            }
        }
        let id = self.id();
        let f = json!({"id": id, "name": name, "labels": body["labels"], "rules": rules, "applied_to": []});
        self.firewalls.insert(id, f.clone());
        (201, json!({ "firewall": f, "actions": [] }), Vec::new())
    }

    fn delete_firewall(&mut self, id: i64) -> Answer {
        let Some(f) = self.firewalls.get(&id) else {
            return error(404, "not_found", "firewall not found");
        };
        if !f["applied_to"].as_array().unwrap().is_empty() {
            return error(
                422,
                "resource_in_use",
                &format!("firewall with ID {id} is still in use"),
            );
        }
        self.firewalls.remove(&id);
        (204, Value::Null, Vec::new())
    }

    fn firewall_action(&mut self, id: i64, what: &str, body: &Value) -> Answer {
        if !self.firewalls.contains_key(&id) {
            return error(404, "not_found", "firewall not found");
        }
        match what {
            "set_rules" => {
                self.firewalls.get_mut(&id).unwrap()["rules"] = body["rules"].clone();
                let a = self.action("set_firewall_rules", (id, "firewall"), None);
                (201, json!({ "actions": [a] }), Vec::new())
            }
            "apply_to_resources" => {
                let mut actions = Vec::new();
                for r in body["apply_to"].as_array().cloned().unwrap_or_default() {
                    let sid = r["server"]["id"].as_i64().unwrap_or(0);
                    let Some(s) = self.servers.get_mut(&sid) else {
                        return error(404, "not_found", "server not found");
                    };
                    s["public_net"]["firewalls"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"id": id, "status": "applied"}));
                    self.firewalls.get_mut(&id).unwrap()["applied_to"]
                        .as_array_mut()
                        .unwrap()
                        .push(r.clone());
                    actions.push(self.action("apply_firewall", (id, "firewall"), None));
                }
                (201, json!({ "actions": actions }), Vec::new())
            }
            "remove_from_resources" => {
                let mut actions = Vec::new();
                for r in body["remove_from"].as_array().cloned().unwrap_or_default() {
                    let sid = r["server"]["id"].as_i64().unwrap_or(0);
                    if let Some(s) = self.servers.get_mut(&sid) {
                        s["public_net"]["firewalls"]
                            .as_array_mut()
                            .unwrap()
                            .retain(|f| f["id"] != id);
                    }
                    self.firewalls.get_mut(&id).unwrap()["applied_to"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|a| a["server"]["id"] != sid);
                    actions.push(self.action("remove_firewall", (id, "firewall"), None));
                }
                (201, json!({ "actions": actions }), Vec::new())
            }
            _ => error(404, "not_found", "no such action"),
        }
    }
}
