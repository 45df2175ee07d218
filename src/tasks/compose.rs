//! The stack's containers: `compose up`, restarts of services whose mounted files changed, and
//! the wait until every service is healthy.
//!
//! - facts: [`read`], one round trip: each container of the project (service, ID, state, the
//!   hash of the compose definition it was created from) and the hash of each service's current
//!   definition (`compose config --hash`);
//! - plan: [`plan_up`] (services `up -d` would create, start or recreate) and [`plan_restart`]
//!   (services to restart because a file they mount changed), both pure;
//! - apply: [`up`] and [`restart`];
//! - verify: [`wait_healthy`] probes every service (container state, health check, HTTP probe
//!   from the host) until all are healthy or the time is up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::Host;
use crate::ssh::shell_quote;
use crate::stack::{HealthProbe, RenderedStack, layout};

use super::{Plan, TaskError};

pub const UP: &str = "compose up";
pub const RESTART: &str = "restart changed services";
pub const HEALTH: &str = "wait until healthy";

/// One container of the Compose project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFact {
    pub id: String,
    /// Docker's state: `running`, `exited`, `created`, ...
    pub state: String,
    /// The `com.docker.compose.config-hash` label: the definition it was created from.
    pub config_hash: String,
    /// The ID of the image it runs.
    pub image_id: String,
}

/// What the host runs, compared with what Compose would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFacts {
    /// service -> its container.
    pub containers: BTreeMap<String, ContainerFact>,
    /// service -> the hash of its definition in the compose file on the host; empty when this
    /// Compose cannot tell (`config --hash` is missing).
    pub config_hashes: BTreeMap<String, String>,
    /// image reference -> the ID the host has for it.
    pub image_ids: BTreeMap<String, String>,
    /// The first health probe: a [`health_script`] line per service.
    pub health: Vec<String>,
}

/// `cd /opt/torrust && COMPOSE`: Compose run where it finds the compose file and `.env`.
pub fn in_stack_dir(compose: &str) -> String {
    format!("cd {} && {compose}", shell_quote(layout::STACK_DIR))
}

fn project_filter() -> String {
    format!(
        "--filter label=com.docker.compose.project={}",
        layout::COMPOSE_PROJECT_NAME
    )
}

fn containers_command() -> String {
    format!(
        "docker ps -a --no-trunc {} --format '{{{{.Label \"com.docker.compose.service\"}}}} {{{{.ID}}}}'",
        project_filter()
    )
}

/// Where the facts script keeps the last `compose config --hash` answer, under the sha256 of
/// what it depends on (the Compose command, the compose file, `.env`): Compose v1 takes about
/// 0.3 s to answer (it starts Python), and a no-op `run` needs only this lookup.
pub const CONFIG_HASH_CACHE: &str = "/opt/torrust/.compose-config-hash";

/// The facts script (it fails only when `docker ps` does), one section after the other:
/// `--containers` (`service id state hash image-id health` per container), `--hash` (`service
/// hash` per service, from `compose config --hash`), `--images` (`ref id` per image of the
/// model that the host has), `--health` (the first probe of each service, as
/// [`health_script`] prints it).
pub fn facts_script(compose: &str, rendered: &RenderedStack) -> String {
    let images = &rendered.images;
    let mut s = format!(
        "echo --containers\n\
         ids=$(docker ps -aq --no-trunc {}) || exit 3\n\
         c=\"\"\n\
         [ -z \"$ids\" ] || c=$(docker inspect --format '{{{{index .Config.Labels \"com.docker.compose.service\"}}}} \
         {{{{.ID}}}} {{{{.State.Status}}}} {{{{index .Config.Labels \"com.docker.compose.config-hash\"}}}} \
         {{{{.Image}}}} {HEALTH_FORMAT}' $ids)\n\
         printf '%s\\n' \"$c\"\n\
         echo --hash\n\
         key=$( (echo {compose_q}; cat {file} {env}) 2>/dev/null | sha256sum | cut -c1-64)\n\
         if [ \"$(head -n1 {cache} 2>/dev/null)\" = \"$key\" ]; then tail -n +2 {cache}\n\
         elif h=$({up} config --hash='*' 2>/dev/null); then\n\
           printf '%s\\n%s\\n' \"$key\" \"$h\" > {cache}.tmp && mv {cache}.tmp {cache}\n\
           printf '%s\\n' \"$h\"\n\
         fi\n\
         echo --images\n",
        project_filter(),
        compose_q = shell_quote(compose),
        file = layout::COMPOSE_FILE,
        env = layout::ENV_FILE,
        cache = CONFIG_HASH_CACHE,
        up = in_stack_dir(compose),
    );
    s.push_str(&super::images::facts_script(
        &images.iter().cloned().collect(),
    ));
    // The first health probe, from the same containers' facts.
    s.push_str("echo --health\nall=$(printf '%s\\n' \"$c\" | awk 'NF { print $1, $3, $6 }')\n");
    s.push_str(&probe_lines(rendered));
    // A missing image is a fact, not a failure.
    s.push_str("exit 0\n");
    s
}

/// Parses [`facts_script`]'s output.
pub fn parse_facts(text: &str) -> ComposeFacts {
    let mut facts = ComposeFacts::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("--") {
            section = match name {
                "containers" => "containers",
                "hash" => "hash",
                "images" => "images",
                "health" => "health",
                _ => "",
            };
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match (section, &f[..]) {
            ("containers", [service, id, state, hash, image, ..]) => {
                facts.containers.insert(
                    service.to_string(),
                    ContainerFact {
                        id: id.to_string(),
                        state: state.to_string(),
                        config_hash: hash.to_string(),
                        image_id: image.to_string(),
                    },
                );
            }
            ("hash", [service, hash]) => {
                facts
                    .config_hashes
                    .insert(service.to_string(), hash.to_string());
            }
            ("health", [_, ..]) => facts.health.push(line.to_string()),
            ("images", [image, id]) if id.starts_with("sha256:") => {
                facts.image_ids.insert(image.to_string(), id.to_string());
            }
            _ => {}
        }
    }
    facts
}

/// Reads the containers, the definitions' hashes and the images' IDs.
pub async fn read(
    host: &dyn Host,
    compose: &str,
    rendered: &RenderedStack,
) -> Result<ComposeFacts, TaskError> {
    let out = host.sudo(&facts_script(compose, rendered)).await?.check()?;
    Ok(parse_facts(&out.stdout_str()))
}

/// A service `up -d` would act on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAction {
    pub service: String,
    /// `create` (no container), `start` (stopped), `recreate` (its definition changed).
    pub action: &'static str,
}

/// The services `up -d` would create, start, recreate (its definition or its image changed) or
/// remove (a container of the project that the model no longer has).
///
/// `exact` is false when this Compose cannot report its definitions' hashes: then a changed
/// definition cannot be seen, and `up -d` must run to find out.
pub fn plan_up(rendered: &RenderedStack, facts: &ComposeFacts) -> (Plan<Vec<ServiceAction>>, bool) {
    let mut acts = Vec::new();
    let mut exact = true;
    for svc in &rendered.services {
        let name = svc.name.as_str();
        let action = match facts.containers.get(name) {
            None => Some("create"),
            Some(c) => {
                let hash = facts.config_hashes.get(name);
                exact &= hash.is_some();
                let image = facts.image_ids.get(&svc.image);
                if hash.is_some_and(|h| *h != c.config_hash) || image != Some(&c.image_id) {
                    Some("recreate")
                } else if c.state != "running" {
                    Some("start")
                } else {
                    None
                }
            }
        };
        if let Some(action) = action {
            acts.push(ServiceAction {
                service: name.to_string(),
                action,
            });
        }
    }
    for service in facts.containers.keys() {
        if !rendered.services.iter().any(|s| s.name.as_str() == service) {
            acts.push(ServiceAction {
                service: service.clone(),
                action: "remove",
            });
        }
    }
    if acts.is_empty() {
        let text = if exact {
            "every container up to date"
        } else {
            "every container runs; this Compose cannot compare definitions, `up -d` decides"
        };
        return (Plan::Nothing(text.into()), exact);
    }
    let text = acts
        .iter()
        .map(|a| format!("{} {}", a.action, a.service))
        .collect::<Vec<_>>()
        .join(", ");
    (Plan::Apply(acts, text), exact)
}

/// service -> container ID, for the project's containers.
async fn container_ids(host: &dyn Host) -> Result<BTreeMap<String, String>, TaskError> {
    let out = host.sudo(&containers_command()).await?.check()?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect())
}

/// `compose up -d --remove-orphans`. Returns the services whose container it created or
/// recreated (their IDs changed).
pub async fn up(host: &dyn Host, compose: &str) -> Result<Vec<String>, TaskError> {
    let before = container_ids(host).await?;
    let out = host
        .sudo(&format!(
            "{} up -d --remove-orphans 2>&1",
            in_stack_dir(compose)
        ))
        .await?;
    if !out.success() {
        return Err(TaskError::compose(
            UP,
            format!(
                "`{compose} up -d` failed on the host:\n{}",
                indent_tail(&out.stdout_str(), 20)
            ),
            "fix the cause (see `status`), then run again",
        ));
    }
    let after = container_ids(host).await?;
    Ok(after
        .iter()
        .filter(|(svc, id)| before.get(*svc) != Some(id))
        .map(|(svc, _)| svc.clone())
        .collect())
}

/// The services to restart: those owed a restart (their mounted files changed) that `up -d`
/// did not just recreate.
pub fn plan_restart(pending: &[String], recreated: &[String]) -> Plan<Vec<String>> {
    let to_restart: Vec<String> = pending
        .iter()
        .filter(|s| !recreated.contains(s))
        .cloned()
        .collect();
    if to_restart.is_empty() {
        Plan::Nothing("none needed".into())
    } else {
        let text = format!("restart {} (their files changed)", to_restart.join(", "));
        Plan::Apply(to_restart, text)
    }
}

/// `compose restart SERVICE...`.
pub async fn restart(host: &dyn Host, compose: &str, services: &[String]) -> Result<(), TaskError> {
    let list: Vec<String> = services.iter().map(|s| shell_quote(s)).collect();
    let command = format!("{} restart {} 2>&1", in_stack_dir(compose), list.join(" "));
    let out = host.sudo(&command).await?;
    if !out.success() {
        return Err(TaskError::compose(
            RESTART,
            format!(
                "`{compose} restart {}` failed on the host:\n{}",
                services.join(" "),
                indent_tail(&out.stdout_str(), 20)
            ),
            "fix the cause (see `status`), then run again",
        ));
    }
    Ok(())
}

/// A service's health as [`wait_healthy`] judged it.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    pub service: String,
    pub healthy: bool,
    /// e.g. `running, healthy`, `exited`, `no container`.
    pub detail: String,
}

/// The Go template of a container's health: its health check's status, or `none`.
///
/// Docker formats the typed container first and, when that fails, the raw JSON, where a
/// container without a health check has no `Health` key and this template fails. So every
/// template using it names typed fields only: `.ID`, not the JSON's `.Id`.
const HEALTH_FORMAT: &str = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";

/// One round trip: each service's container state and health, and its HTTP probe. Two Docker
/// commands for the whole project (each costs about 40 ms), then one line per service.
pub fn health_script(rendered: &RenderedStack) -> String {
    let mut s = format!(
        "ids=$(docker ps -aq --no-trunc {}) || exit 3\n\
         all=\"\"\n\
         [ -z \"$ids\" ] || all=$(docker inspect --format '{{{{index .Config.Labels \"com.docker.compose.service\"}}}} \
         {{{{.State.Status}}}} {HEALTH_FORMAT}' $ids)\n",
        project_filter()
    );
    s.push_str(&probe_lines(rendered));
    s
}

/// Per service, from `$all` (`service status health` per container): `service status health
/// probe`, where `probe` is the answer of its check from the host.
fn probe_lines(rendered: &RenderedStack) -> String {
    let mut s = String::new();
    for svc in &rendered.services {
        let name = svc.name.as_str();
        s.push_str(&format!(
            "st=$(printf '%s\\n' \"$all\" | awk -v n={q} '$1 == n {{ print $2, $3; exit }}')\n\
             if [ -z \"$st\" ]; then echo '{name} missing none -'; else\n",
            q = shell_quote(name)
        ));
        match &svc.health {
            HealthProbe::Http { url } => s.push_str(&format!(
                "if curl -fsS -o /dev/null -m 3 {u} 2>/dev/null || wget -q -O /dev/null -T 3 {u} 2>/dev/null; \
                 then h=ok; else h=fail; fi\n",
                u = shell_quote(url)
            )),
            HealthProbe::Proxy { url, sni } => {
                let resolve = sni
                    .as_ref()
                    .map(|d| format!("-k --resolve {}", shell_quote(&format!("{d}:443:127.0.0.1"))))
                    .unwrap_or_default();
                s.push_str(&format!(
                    "if curl -sS -o /dev/null -m 3 {resolve} {u} 2>/dev/null; then h=ok; else h=fail; fi\n",
                    u = shell_quote(url)
                ));
            }
            HealthProbe::Container { .. } => s.push_str("h=-\n"),
            HealthProbe::Running => s.push_str("h=-\n"),
        }
        s.push_str(&format!("echo \"{name} $st $h\"; fi\n"));
    }
    s
}

/// Parses a line of [`health_script`]: `service status health probe`, where `probe` is the
/// result of the check from the host (`ok`, `fail`, or `-` for none).
pub fn judge(line: &str, probe: &HealthProbe) -> (bool, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (status, health, http) = (
        f.get(1).copied().unwrap_or("?"),
        f.get(2).copied().unwrap_or("?"),
        f.get(3).copied().unwrap_or("-"),
    );
    if status == "missing" {
        return (false, "no container".into());
    }
    let ok = status == "running"
        && match probe {
            HealthProbe::Container { .. } => health == "healthy",
            HealthProbe::Proxy { .. } => http == "ok" && health != "unhealthy",
            HealthProbe::Http { .. } => http == "ok" && health != "unhealthy",
            HealthProbe::Running => health != "unhealthy",
        };
    let mut detail = status.to_string();
    if health != "none" {
        detail.push_str(&format!(", {health}"));
    }
    if let HealthProbe::Http { url } | HealthProbe::Proxy { url, .. } = probe {
        detail.push_str(&format!(
            ", {url} {}",
            if http == "ok" {
                "answers"
            } else {
                "does not answer"
            }
        ));
    }
    (ok, detail)
}

/// Each service's health, judged from [`health_script`]'s output.
pub fn judge_all(rendered: &RenderedStack, text: &str) -> Vec<ServiceHealth> {
    rendered
        .services
        .iter()
        .map(|svc| {
            let name = svc.name.as_str();
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or("");
            let (healthy, detail) = judge(line, &svc.health);
            ServiceHealth {
                service: name.to_string(),
                healthy,
                detail,
            }
        })
        .collect()
}

/// Probes every service once.
pub async fn probe_health(
    host: &dyn Host,
    rendered: &RenderedStack,
) -> Result<Vec<ServiceHealth>, TaskError> {
    let out = host.sudo(&health_script(rendered)).await?.check()?;
    Ok(judge_all(rendered, &out.stdout_str()))
}

fn describe(failing: &[&ServiceHealth]) -> String {
    failing
        .iter()
        .map(|s| format!("{} ({})", s.service, s.detail))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Probes every `interval` until every service is healthy; after `timeout`, fails with the
/// failing services' last log lines.
pub async fn wait_healthy(
    host: &dyn Host,
    rendered: &RenderedStack,
    timeout: Duration,
    interval: Duration,
) -> Result<Vec<ServiceHealth>, TaskError> {
    wait_healthy_from(host, rendered, timeout, interval, None).await
}

/// [`wait_healthy`], whose first probe is `first` when given (read with the facts, when
/// nothing changed since).
pub async fn wait_healthy_from(
    host: &dyn Host,
    rendered: &RenderedStack,
    timeout: Duration,
    interval: Duration,
    mut first: Option<Vec<ServiceHealth>>,
) -> Result<Vec<ServiceHealth>, TaskError> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let report = match first.take() {
            Some(report) => report,
            None => probe_health(host, rendered).await?,
        };
        let failing: Vec<&ServiceHealth> = report.iter().filter(|s| !s.healthy).collect();
        if failing.is_empty() {
            return Ok(report);
        }
        if started.elapsed() >= timeout {
            let mut logs = String::new();
            for s in &failing {
                logs.push_str(&format!(
                    "  last log lines of {}:\n{}\n",
                    s.service,
                    indent_tail(&last_logs(host, &s.service).await?, 25)
                ));
            }
            return Err(TaskError::Unhealthy {
                waited: started.elapsed().as_secs(),
                failing: describe(&failing),
                logs,
            });
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                "[{:>5.1}s] waiting for {}",
                started.elapsed().as_secs_f64(),
                describe(&failing)
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(interval).await;
    }
}

async fn last_logs(host: &dyn Host, service: &str) -> Result<String, TaskError> {
    let out = host
        .sudo(&format!(
            "id=$(docker ps -aq --filter label=com.docker.compose.project={} \
             --filter label=com.docker.compose.service={} | head -n1); \
             [ -n \"$id\" ] && docker logs --tail 25 \"$id\" 2>&1",
            layout::COMPOSE_PROJECT_NAME,
            shell_quote(service)
        ))
        .await?;
    Ok(out.stdout_str())
}

/// The last `n` lines of `text`, indented.
pub fn indent_tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::host::fake::{FakeHost, Reply};

    fn rendered() -> RenderedStack {
        let loaded = config::parse(
            &config::template(config::ProviderKind::Lxd),
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        crate::stack::render(&loaded.config).unwrap()
    }

    #[test]
    fn judging_health() {
        let container = HealthProbe::Container {
            command: vec!["x".into()],
        };
        assert!(judge("tracker running healthy -", &container).0);
        assert!(!judge("tracker running starting -", &container).0);
        assert!(!judge("tracker exited none -", &container).0);
        let proxy = HealthProbe::Proxy {
            url: "https://tracker.local/".into(),
            sni: Some("tracker.local".into()),
        };
        assert!(judge("caddy running none ok", &proxy).0);
        assert!(!judge("caddy running none fail", &proxy).0);
        let http = HealthProbe::Http {
            url: "http://127.0.0.1:9090/-/ready".into(),
        };
        assert!(judge("prometheus running none ok", &http).0);
        let (ok, detail) = judge("prometheus running none fail", &http);
        assert!(!ok);
        assert!(detail.contains("does not answer"), "{detail}");
        assert!(judge("caddy running none -", &HealthProbe::Running).0);
        assert!(!judge("caddy restarting none -", &HealthProbe::Running).0);
        assert_eq!(
            judge("mysql missing none -", &HealthProbe::Running),
            (false, "no container".into())
        );
    }

    /// Facts where every service runs its current definition and image, changed by `tweak`.
    fn facts(r: &RenderedStack, tweak: impl Fn(&str, &mut ContainerFact)) -> String {
        let mut text = String::from("--containers\n");
        for s in &r.services {
            let mut c = ContainerFact {
                id: format!("id-{}", s.name),
                state: "running".into(),
                config_hash: format!("h-{}", s.name),
                image_id: format!("sha256:{}", s.image),
            };
            tweak(s.name.as_str(), &mut c);
            text.push_str(&format!(
                "{} {} {} {} {}\n",
                s.name, c.id, c.state, c.config_hash, c.image_id
            ));
        }
        text.push_str("--hash\n");
        for s in &r.services {
            text.push_str(&format!("{} h-{}\n", s.name, s.name));
        }
        text.push_str("--images\n");
        for s in &r.services {
            text.push_str(&format!("{} sha256:{}\n", s.image, s.image));
        }
        text
    }

    #[test]
    fn up_plans_only_what_differs_from_the_running_containers() {
        let r = rendered();
        let first = r.services[0].name.to_string();
        let last = r.services[r.services.len() - 1].name.to_string();
        let (plan, exact) = plan_up(&r, &parse_facts(&facts(&r, |_, _| {})));
        assert!(exact);
        assert_eq!(plan, Plan::Nothing("every container up to date".into()));

        let text = facts(&r, |name, c| {
            if name == first {
                c.state = "exited".into();
            }
            if name == last {
                c.config_hash = "old".into();
            }
        });
        let (Plan::Apply(acts, text), _) = plan_up(&r, &parse_facts(&text)) else {
            panic!("nothing planned")
        };
        assert_eq!(text, format!("start {first}, recreate {last}"));
        assert_eq!(acts.len(), 2);

        // A new image under the same tag recreates; a container the model lacks is removed.
        let mut text = facts(&r, |name, c| {
            if name == first {
                c.image_id = "sha256:older".into();
            }
        });
        text = text.replace("--hash\n", "backup id-x running h sha256:x\n--hash\n");
        let (Plan::Apply(acts, _), _) = plan_up(&r, &parse_facts(&text)) else {
            panic!("nothing planned")
        };
        let got: Vec<(&str, &str)> = acts
            .iter()
            .map(|a| (a.service.as_str(), a.action))
            .collect();
        assert_eq!(
            got,
            vec![(first.as_str(), "recreate"), ("backup", "remove")]
        );

        // No container at all; and a Compose without `config --hash` cannot be exact.
        let (Plan::Apply(acts, _), _) = plan_up(&r, &parse_facts("--containers\n--hash\n")) else {
            panic!("nothing planned")
        };
        assert!(acts.iter().all(|a| a.action == "create"));
        let no_hash = facts(&r, |_, _| {});
        let cut = no_hash.find("--hash").unwrap();
        let images = no_hash.find("--images").unwrap();
        let no_hash = format!("{}--hash\n{}", &no_hash[..cut], &no_hash[images..]);
        let (plan, exact) = plan_up(&r, &parse_facts(&no_hash));
        assert!(!exact);
        assert!(!plan.is_apply());
    }

    #[test]
    fn the_facts_script_asks_for_each_image_and_the_hashes() {
        let rendered = rendered();
        let s = facts_script("docker-compose", &rendered);
        assert!(
            s.contains("cd /opt/torrust && docker-compose config --hash='*'"),
            "{s}"
        );
        assert!(s.contains("docker image inspect"), "{s}");
        for image in &rendered.images {
            assert!(s.contains(image.as_str()), "{s}");
        }
        assert!(s.contains("echo --health"), "{s}");
        assert!(s.contains(CONFIG_HASH_CACHE), "{s}");
        assert!(
            s.contains("label=com.docker.compose.project=torrust"),
            "{s}"
        );
        for script in [s, health_script(&rendered)] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn restarts_skip_what_up_recreated() {
        let pending = vec!["tracker".to_string(), "prometheus".to_string()];
        let Plan::Apply(list, _) = plan_restart(&pending, &["tracker".to_string()]) else {
            panic!("nothing planned")
        };
        assert_eq!(list, vec!["prometheus"]);
        assert!(!plan_restart(&[], &[]).is_apply());
    }

    #[tokio::test]
    async fn up_reports_the_services_whose_container_changed() {
        let host = FakeHost::new();
        host.reply(
            "docker ps -a --no-trunc",
            [
                Reply::ok("tracker aaa running x\nmysql bbb running y\n"),
                Reply::ok("tracker aaa running x\nmysql ccc running z\n"),
            ],
        );
        host.reply("up -d --remove-orphans", [Reply::ok("")]);
        let recreated = up(&host, "docker compose").await.unwrap();
        assert_eq!(recreated, vec!["mysql"]);
        let commands = host.commands();
        assert_eq!(commands.len(), 3);
        assert_eq!(
            commands[1],
            "cd /opt/torrust && docker compose up -d --remove-orphans 2>&1"
        );
    }

    #[tokio::test]
    async fn a_failed_up_shows_composes_output() {
        let host = FakeHost::new();
        host.reply("docker ps -a --no-trunc", [Reply::ok("")]);
        host.reply("up -d", [Reply::fail(1, "")]);
        let err = up(&host, "docker-compose").await.unwrap_err().to_string();
        assert!(err.contains("`docker-compose up -d` failed"), "{err}");
    }

    #[tokio::test]
    async fn waits_until_healthy_then_reports() {
        let r = rendered();
        let line = |ok: bool| {
            r.services
                .iter()
                .map(|s| {
                    let (st, h) = match (&s.health, ok) {
                        (_, false) => ("exited", "none"),
                        (HealthProbe::Container { .. }, true) => ("running", "healthy"),
                        _ => ("running", "none"),
                    };
                    let http = if ok { "ok" } else { "fail" };
                    format!("{} {st} {h} {http}\n", s.name)
                })
                .collect::<String>()
        };
        let host = FakeHost::new();
        host.reply(
            "docker inspect",
            [Reply::ok(line(false)), Reply::ok(line(true))],
        );
        let report = wait_healthy(&host, &r, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        assert!(report.iter().all(|s| s.healthy), "{report:?}");
        assert_eq!(host.commands().len(), 2);

        let host = FakeHost::new();
        host.reply("docker inspect", [Reply::ok(line(false))]);
        host.reply("docker logs", [Reply::ok("boom\n")]);
        let err = wait_healthy(&host, &r, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::Unhealthy { .. }), "{err}");
        assert!(err.to_string().contains("    boom"), "{err}");
    }
}
