//! The deployment artifacts in `deploy/` against the binary they deploy: the
//! Kubernetes Deployment's exact environment starts a service that turns
//! ready, the manifests refer to each other by names that exist, and
//! `/metrics` answers each scraper in a format it reads (promtool for the
//! classic text format, the strict `OpenMetrics` checker for the other).
//!
//! The manifests' schemas are checked by `kubernetes-validate`, the rules by
//! `promtool`, the image by hadolint and the compose file by `docker-compose
//! config`, all in `cargo xtask deploy-check`; this file checks what those
//! tools cannot know.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_redis::testing::RedisServer;
use serde_yaml::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_positions-api");

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The value the test gives an env entry the Deployment takes from a Secret.
const SECRET_VALUE: &str = "deploy-test-secret-token";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn manifest(name: &str) -> Value {
    let path = deploy_dir().join("kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `value` at `path` (keys, or indexes into sequences as numbers).
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, key| match key.parse::<usize>() {
        Ok(index) => &value[index],
        Err(_) => &value[key],
    })
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(value, path)))
}

/// The Deployment's only container.
fn container(deployment: &Value) -> &Value {
    let containers = at(deployment, "spec.template.spec.containers").as_sequence().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's environment as the kubelet would set it, with the
/// Secret's value replaced by [`SECRET_VALUE`].
fn deployment_env(deployment: &Value) -> BTreeMap<String, String> {
    let entries = at(container(deployment), "env").as_sequence().expect("an env list");
    entries
        .iter()
        .map(|entry| {
            let name = text(entry, "name").to_owned();
            let value = match (entry.get("value"), entry.get("valueFrom")) {
                (Some(value), None) => value.as_str().unwrap_or_else(|| panic!("{name}: quote the value")).to_owned(),
                (None, Some(from)) => {
                    assert!(from.get("secretKeyRef").is_some(), "{name}: only Secret references are expected");
                    SECRET_VALUE.to_owned()
                }
                _ => panic!("{name}: neither value nor valueFrom"),
            };
            (name, value)
        })
        .collect()
}

/// A running binary, killed when dropped.
struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with exactly `env` (and `PATH`), reading its address
/// from the JSON `listening` log line.
fn start(env: &BTreeMap<String, String>) -> Running {
    assert_eq!(env.get("LOG_FORMAT").map(String::as_str), Some("json"), "the test reads JSON logs");
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let addr = support::listening_addr(&support::until_listening(&mut lines, drop));
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running { child, addr }
}

/// An answer: status, headers (names lower-cased) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// A GET, as [`request`].
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers)
}

/// One HTTP/1.1 request without a body over a fresh connection, closed
/// after the answer.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let (status, headers, body) = support::exchange(addr, method, path, headers);
    Reply { status, headers, body }
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is not
/// installed outside CI (`cargo xtask ci` installs it, so CI requires it).
fn promtool_check_metrics(text: &str) -> Option<(bool, String)> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("note: promtool is not installed; skipping its check (`cargo xtask deploy-check` installs it)");
            return None;
        }
        Err(e) => panic!("cannot run promtool (`cargo xtask ci` installs it): {e}"),
    };
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("promtool reads");
    let out = child.wait_with_output().expect("promtool runs");
    Some((
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    ))
}

/// Whether every variable the Deployment sets is one the binary reads: clap
/// ignores unknown environment variables, so a misspelt or not yet
/// supported setting would otherwise pass unnoticed.
fn help_text() -> String {
    let out = Command::new(BINARY).arg("--help").output().expect("the binary runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deployment_env_starts_a_service_that_turns_ready_and_healthy() {
    let deployment = manifest("deployment.yaml");
    let mut env = deployment_env(&deployment);
    let help = help_text();
    for name in env.keys() {
        // `[env: NAME=]`, or `[env: NAME]` for a value `--help` hides.
        let read = help.contains(&format!("[env: {name}=")) || help.contains(&format!("[env: {name}]"));
        assert!(read, "the binary does not read {name}, which the Deployment sets");
    }
    assert!(env.contains_key("ADMIN_TOKEN"), "ADMIN_TOKEN comes from a Secret");

    // The manifest's env, with only the address and the Redis it points at
    // replaced by this test's own.
    let redis = RedisServer::start();
    env.insert("POSITIONS_BIND".into(), "127.0.0.1:0".into());
    env.insert("REDIS_URL".into(), redis.url());
    let service = start(&env);

    // With Redis the replica first warms its memory from it (the list of
    // wallets in demand): `/readyz` says so with a 503 until that is done,
    // then turns ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let readyz = get(&service.addr, "/readyz", &[]);
        if readyz.status == 200 {
            break;
        }
        assert!(readyz.status == 503 && readyz.body.contains("warming up"), "{} {}", readyz.status, readyz.body);
        assert!(Instant::now() < deadline, "/readyz never turned ready: {}", readyz.body);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(get(&service.addr, "/livez", &[]).status, 200);
    // Redis connects in the background: /health turns ok once it answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(&service.addr, "/health", &[]);
        let health: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON health");
        if health["status"] == "ok" && health["cache_stats"]["backend"] == "redis" {
            break;
        }
        assert!(Instant::now() < deadline, "not healthy on Redis within 10 s: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The Secret's token is the admin token: a DELETE with it is authorised.
    let wallet = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
    let authorization = format!("Bearer {SECRET_VALUE}");
    let delete = request(&service.addr, "DELETE", wallet, &[("Authorization", &authorization)]);
    assert!((200..300).contains(&delete.status), "DELETE with the Secret's token: {} {}", delete.status, delete.body);
    let probes =
        ["livenessProbe", "readinessProbe"].map(|p| text(container(&deployment), &format!("{p}.httpGet.path")));
    assert_eq!(probes, ["/livez", "/readyz"]);
}

#[test]
fn the_deployment_leaves_room_for_its_shutdown_and_its_cache() {
    let deployment = manifest("deployment.yaml");
    let env = deployment_env(&deployment);
    let ms = |name: &str| -> u64 { env[name].parse().unwrap_or_else(|e| panic!("{name}: {e}")) };
    let grace_period = at(&deployment, "spec.template.spec.terminationGracePeriodSeconds").as_u64().expect("a period");
    let pre_stop = at(container(&deployment), "lifecycle.preStop.sleep.seconds").as_u64().unwrap_or(0);
    // Serving while unready for SHUTDOWN_DELAY_MS, then open requests and
    // loads within one SHUTDOWN_GRACE_MS.
    let delay = env.get("SHUTDOWN_DELAY_MS").map_or(0, |_| ms("SHUTDOWN_DELAY_MS"));
    assert!(delay > 0, "the Deployment sets SHUTDOWN_DELAY_MS, or endpoints still routing to it are refused");
    assert!(
        grace_period * 1000 > pre_stop * 1000 + delay + ms("SHUTDOWN_GRACE_MS"),
        "terminationGracePeriodSeconds {grace_period} leaves no room for the shutdown"
    );

    // docs/benchmarks.md: at most 4 KB per cached wallet of 10 positions.
    let limit = text(container(&deployment), "resources.limits.memory");
    let mebibytes: u64 = limit.strip_suffix("Mi").and_then(|m| m.parse().ok()).expect("a limit in Mi");
    assert!(mebibytes << 20 > ms("POSITION_CACHE_MAX") * 4096, "memory limit {limit} is below the cache's size");
    assert_eq!(text(container(&deployment), "resources.requests.memory"), limit);

    let security = at(container(&deployment), "securityContext");
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(at(&deployment, "spec.template.spec.securityContext.runAsNonRoot"), &Value::Bool(true));
}

#[test]
fn the_manifests_refer_to_each_other_by_names_that_exist() {
    let deployment = manifest("deployment.yaml");
    let service = manifest("service.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let policy = manifest("networkpolicy.yaml");
    let budget = manifest("poddisruptionbudget.yaml");
    let autoscaler = manifest("horizontalpodautoscaler.yaml");

    let subset = |selector: &Value, labels: &Value, what: &str| {
        let selector = selector.as_mapping().unwrap_or_else(|| panic!("{what}: a selector"));
        assert!(!selector.is_empty(), "{what}: an empty selector");
        for (key, value) in selector {
            assert_eq!(labels.get(key), Some(value), "{what}: {key:?} does not match");
        }
    };
    let pod_labels = at(&deployment, "spec.template.metadata.labels");
    subset(at(&deployment, "spec.selector.matchLabels"), pod_labels, "Deployment selector");
    subset(at(&service, "spec.selector"), pod_labels, "Service selector");
    subset(at(&budget, "spec.selector.matchLabels"), pod_labels, "PodDisruptionBudget selector");
    subset(at(&policy, "spec.podSelector.matchLabels"), pod_labels, "NetworkPolicy selector");
    subset(at(&monitor, "spec.selector.matchLabels"), at(&service, "metadata.labels"), "ServiceMonitor selector");
    assert_eq!(text(&autoscaler, "spec.scaleTargetRef.name"), text(&deployment, "metadata.name"));

    // One named port, "http", from the container through the Service to the
    // ServiceMonitor and the NetworkPolicy.
    let port = text(container(&deployment), "ports.0.name");
    assert_eq!(text(&service, "spec.ports.0.targetPort"), port);
    let service_port = text(&service, "spec.ports.0.name");
    assert_eq!(text(&monitor, "spec.endpoints.0.port"), service_port);
    assert_eq!(text(&monitor, "spec.endpoints.0.path"), "/metrics");
    assert_eq!(text(&policy, "spec.ingress.0.ports.0.port"), port);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(text(container(&deployment), &format!("{probe}.httpGet.port")), port);
    }
}

#[test]
fn the_image_builds_with_the_release_command_and_checks_livez() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("container/Dockerfile")).expect("a Dockerfile");
    assert!(dockerfile.contains("    cargo build --release --locked -p positions-api\n"), "{dockerfile}");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/livez"), "{dockerfile}");
    assert!(dockerfile.contains("\nUSER 10001:10001\n"), "non-root, with the Deployment's uid");
}

#[test]
fn metrics_answer_prometheus_in_openmetrics_and_everyone_else_in_the_classic_format() {
    let mut env = deployment_env(&manifest("deployment.yaml"));
    env.insert("POSITIONS_BIND".into(), "127.0.0.1:0".into());
    // With Redis, as deployed: the Redis families exist only when it is
    // configured, and the rules read them.
    let redis = RedisServer::start();
    env.insert("REDIS_URL".into(), redis.url());
    env.insert("POSITIONS_SOURCE".into(), "sample".into());
    let service = start(&env);
    // Some traffic, so the request families have series.
    assert_eq!(get(&service.addr, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7", &[]).status, 200);
    assert_eq!(get(&service.addr, "/nowhere", &[]).status, 404);

    let openmetrics = get(&service.addr, "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(openmetrics.status, 200);
    assert_eq!(openmetrics.header("content-type"), telemetry::CONTENT_TYPE);
    assert_eq!(openmetrics.header("vary"), "accept");
    telemetry::exposition::check(&openmetrics.body).unwrap_or_else(|e| panic!("{e}\n{}", openmetrics.body));

    for accept in [None, Some("*/*"), Some("text/plain")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let classic = get(&service.addr, "/metrics", &headers);
        assert_eq!(classic.status, 200);
        assert_eq!(classic.header("content-type"), "text/plain; version=0.0.4; charset=utf-8", "Accept {accept:?}");
        assert!(!classic.body.contains("# EOF"), "{}", classic.body);
        assert!(classic.body.contains("# TYPE position_cache_hits_total counter\n"), "{}", classic.body);
        if let Some((ok, report)) = promtool_check_metrics(&classic.body) {
            assert!(ok && report.trim().is_empty(), "promtool check metrics: {report}\n{}", classic.body);
        }
    }

    // Every series the Prometheus rules read is one the service exposes, so
    // that no alert goes quiet because a name drifted.
    let exposed: Vec<&str> =
        openmetrics.body.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let rules = std::fs::read_to_string(deploy_dir().join("prometheus/rules.yaml")).expect("the rules");
    let rules: Value = serde_yaml::from_str(&rules).expect("YAML rules");
    let mut read = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = text(rule, "expr");
            for name in metric_names(expr) {
                assert!(exposed.contains(&name), "rules.yaml reads {name}, which /metrics does not expose:\n{expr}");
                read += 1;
            }
            // Label values the rules select are ones the service writes
            // (a breaker state or a cache outcome renamed would silence them).
            for (label, known) in [
                ("cache", &["hit", "stale", "miss", "bypass", "none"][..]),
                ("state", &["closed", "half_open", "open"][..]),
            ] {
                for value in selected_values(expr, label) {
                    assert!(known.contains(&value), "rules.yaml selects {label}=\"{value}\", which is never written");
                    let series = format!("{label}=\"{value}\"");
                    assert!(
                        value == "stale" || value == "bypass" || openmetrics.body.contains(&series),
                        "no series with {series} in /metrics"
                    );
                }
            }
        }
    }
    assert!(read > 10, "the rules read the service's metrics");
}

/// The names in a `PromQL` expression that are this service's metrics (its
/// families start with `position_`, `positions_api_`, `http_`, `process_`
/// or `tokio_`; recording rules' names contain a colon and are left out).
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    const PREFIXES: [&str; 5] = ["position_", "positions_api_", "http_", "process_", "tokio_"];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| !word.contains(':') && PREFIXES.iter().any(|prefix| word.starts_with(prefix)))
}

/// The label values a `PromQL` expression selects for `label` with `=` or
/// `=~` (alternatives split on `|`).
fn selected_values<'e>(expr: &'e str, label: &str) -> Vec<&'e str> {
    let mut values = Vec::new();
    for op in ["=\"", "=~\""] {
        let pattern = format!("{label}{op}");
        for (at, _) in expr.match_indices(&pattern) {
            let rest = &expr[at + pattern.len()..];
            let value = &rest[..rest.find('"').expect("a closed label value")];
            values.extend(value.split('|'));
        }
    }
    values
}

#[test]
fn the_compose_file_sets_only_settings_the_binary_reads() {
    let path = deploy_dir().join("compose.yaml");
    let compose: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).expect("compose.yaml")).expect("YAML");
    let help = help_text();
    let env = at(&compose, "x-positions-api.environment").as_mapping().expect("the replicas' environment");
    for name in env.keys().map(|k| k.as_str().expect("a name")) {
        let read = help.contains(&format!("[env: {name}=")) || help.contains(&format!("[env: {name}]"));
        assert!(read, "the binary does not read {name}, which compose.yaml sets");
    }
    // Prometheus scrapes both replicas on the port they listen on.
    let config = std::fs::read_to_string(deploy_dir().join("prometheus/prometheus.yml")).expect("prometheus.yml");
    let port = text(&compose, "x-positions-api.environment.POSITIONS_BIND").rsplit(':').next().expect("a port");
    for replica in ["positions-api-a", "positions-api-b"] {
        assert!(at(&compose, "services").get(replica).is_some(), "no service {replica}");
        assert!(config.contains(&format!("\"{replica}:{port}\"")), "Prometheus does not scrape {replica}:{port}");
    }
}
