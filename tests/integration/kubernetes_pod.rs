//! deploy/kubernetes/: the node configuration passes `vipd check`, and the static pod that runs it
//! agrees with it. A pod whose probe asks another port restarts a healthy vipd forever; one whose
//! memory limit is below what `max_connections` sessions take is OOM-killed under load; one
//! without /run/vipd or the state directory loses the maintenance flag and the drains. None of
//! that shows until a kubelet runs the pod, and no kubelet runs here: these checks stand in.
//!
//! The manifest's schema is checked against the Kubernetes API by tests/run
//! (kubernetes-validate); this file checks what a schema cannot, its agreement with vipd.yaml.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use vipd_config::{Config, HealthKind, TlsVerify, TrackTarget, defaults};

use crate::support::{Scratch, text, vipd};

const POD: &str = "deploy/kubernetes/vipd-static-pod.yaml";
const NODE_CONFIG: &str = "deploy/kubernetes/vipd.yaml";

/// The pod's memory besides its sessions: vipd itself (4.2 MiB RSS idle, docs/benchmarks.md,
/// plus threads and health checks) 32 MiB, and 64 MiB for the socket buffers and splice pipes of
/// the sessions moving data at the time. The manifest's comment has the same arithmetic.
const MEMORY_BESIDES_SESSIONS: u64 = 96 << 20;
/// An idle session: 3.9 KiB of vipd's own (docs/benchmarks.md: 41.5 MiB RSS at 9,800 idle
/// connections, 4.2 MiB with none) and 5.1 KiB of kernel memory for its two sockets, which the
/// pod's cgroup is charged for (measured, docs/container.md), rounded up.
const MEMORY_PER_SESSION: u64 = 10 << 10;
/// vipd's own stop limit beyond `shutdown_grace` (docs/operations.md, Stopping and draining).
const STOP_LIMIT_BEYOND_GRACE: Duration = Duration::from_secs(10);

fn repository_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository_file(relative)).expect("the file is in the repository")
}

fn pod() -> Value {
    serde_saphyr::from_str(&read(POD)).expect("the manifest is YAML")
}

fn node_config() -> Config {
    Config::from_yaml_str(&read(NODE_CONFIG))
        .expect("the node configuration is valid")
        .0
}

#[test]
fn the_node_configuration_passes_vipd_check_as_the_pod_mounts_it() {
    // As on the node: the token and the cluster CA exist (here in scratch, there under the
    // mounts the pod agreement test checks).
    let scratch = Scratch::new("kubernetes-check");
    let token = scratch.write("token", "s3cret\n");
    let ca = scratch.write("ca.crt", CA_CERTIFICATE);
    let config = read(NODE_CONFIG)
        .replace("/etc/vipd/token", &token.display().to_string())
        .replace("/etc/kubernetes/pki/ca.crt", &ca.display().to_string());
    let output = vipd()
        .args(["check", "-c"])
        .arg(scratch.write("vipd.yaml", &config))
        .output()
        .expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
    assert!(
        text(&output.stdout)
            .lines()
            .any(|line| line == "ok: node cp1, 1 vrrp instance, 1 frontend, 1 backend, 0 scripts"),
        "{output:?}"
    );
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn the_static_pod_agrees_with_its_node_configuration() {
    assert_eq!(pod_problems(&pod(), &node_config()), Vec::<String>::new());
}

/// Each check of [`pod_problems`] finds the manifest broken the way it guards against.
#[test]
fn a_pod_that_disagrees_with_its_configuration_is_caught() {
    let config = node_config();
    let broken = |what: &str, change: &dyn Fn(&mut Value)| {
        let mut pod = pod();
        change(&mut pod);
        let problems = pod_problems(&pod, &config);
        assert!(
            problems.iter().any(|problem| problem.contains(what)),
            "expected a problem with `{what}`, got {problems:?}"
        );
    };
    broken(
        "probe host 127.0.0.1 port 9651, control.listen 127.0.0.1:9650",
        &|pod| {
            container(pod)["livenessProbe"]["httpGet"]["port"] = json!(9651);
        },
    );
    broken(
        "probe host 198.51.100.10 port 9650, control.listen 127.0.0.1:9650",
        &|pod| {
            container(pod)["livenessProbe"]["httpGet"]["host"] = json!("198.51.100.10");
        },
    );
    broken("probe path /metrics", &|pod| {
        container(pod)["livenessProbe"]["httpGet"]["path"] = json!("/metrics");
    });
    broken("memory limit 128Mi is below 145 MiB", &|pod| {
        container(pod)["resources"]["limits"]["memory"] = json!("128Mi");
    });
    broken("no memory limit", &|pod| {
        container(pod)["resources"] = json!({});
    });
    broken("/run/vipd is not mounted", &|pod| {
        mounts(pod).retain(|mount| mount["mountPath"] != "/run/vipd");
    });
    broken(
        "/run/vipd/maintenance (a tracked file) is not on a writable mount",
        &|pod| {
            for mount in mounts(pod)
                .iter_mut()
                .filter(|mount| mount["mountPath"] == "/run/vipd")
            {
                mount["readOnly"] = json!(true);
            }
        },
    );
    broken("-c /etc/vipd.yaml is not on a mount", &|pod| {
        container(pod)["args"] = json!(["run", "-c", "/etc/vipd.yaml"]);
    });
    broken(
        "/etc/kubernetes/pki/ca.crt (a CA file) is not on a mount",
        &|pod| {
            mounts(pod).retain(|mount| mount["name"] != "apiserver-ca");
        },
    );
    broken(
        "STATE_DIRECTORY /var/lib/vipd is not on a writable mount",
        &|pod| {
            mounts(pod).retain(|mount| mount["mountPath"] != "/var/lib/vipd");
        },
    );
    broken("no STATE_DIRECTORY", &|pod| {
        container(pod)["env"] = json!([]);
    });
    broken("capabilities", &|pod| {
        container(pod)["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN", "NET_RAW"]);
    });
    broken("terminationGracePeriodSeconds 10", &|pod| {
        pod["spec"]["terminationGracePeriodSeconds"] = json!(10);
    });
}

fn container(pod: &mut Value) -> &mut Value {
    &mut pod["spec"]["containers"][0]
}

fn mounts(pod: &mut Value) -> &mut Vec<Value> {
    container(pod)["volumeMounts"]
        .as_array_mut()
        .expect("the container has volume mounts")
}

/// What `pod` gets wrong about running vipd with `config`; empty when nothing.
fn pod_problems(pod: &Value, config: &Config) -> Vec<String> {
    let container = &pod["spec"]["containers"][0];
    let mut problems = probe_problems(container, config);
    problems.extend(memory_problems(container, config));
    problems.extend(mount_problems(pod, config));
    problems.extend(privilege_problems(pod, config));
    problems
}

/// The liveness probe asks the control server, where it answers on every node: `GET /status`.
fn probe_problems(container: &Value, config: &Config) -> Vec<String> {
    let probe = &container["livenessProbe"]["httpGet"];
    let listen = config.control.listen;
    let host = probe["host"]
        .as_str()
        .and_then(|host| host.parse::<IpAddr>().ok());
    let port = probe["port"].as_u64();
    // A wildcard listen address answers on loopback too.
    let host_matches = host.is_some_and(|host| {
        host == listen.ip() || (listen.ip().is_unspecified() && host.is_loopback())
    });
    let mut problems = Vec::new();
    if !host_matches || port != Some(u64::from(listen.port())) {
        problems.push(format!(
            "livenessProbe: probe host {} port {}, control.listen {listen}",
            probe["host"].as_str().unwrap_or("(none)"),
            port.map_or_else(|| "(none)".to_owned(), |port| port.to_string())
        ));
    }
    if probe["path"] != "/status" {
        problems.push(format!(
            "livenessProbe: probe path {}: /status is the path that answers on backups too",
            probe["path"].as_str().unwrap_or("(none)")
        ));
    }
    problems
}

fn memory_problems(container: &Value, config: &Config) -> Vec<String> {
    let needed = memory_needed(config);
    let needed_mib = needed.div_ceil(1 << 20);
    match container["resources"]["limits"]["memory"].as_str() {
        None => vec![format!(
            "no memory limit: max_connections {} needs {needed_mib} MiB",
            sessions(config)
        )],
        Some(limit) => match quantity_bytes(limit) {
            Some(bytes) if bytes >= needed => Vec::new(),
            _ => vec![format!(
                "memory limit {limit} is below {needed_mib} MiB, what max_connections {} needs",
                sessions(config)
            )],
        },
    }
}

/// The sessions vipd may hold: the global limit, or all frontends' limits if those are lower.
fn sessions(config: &Config) -> u64 {
    let frontends: u64 = config
        .frontends
        .iter()
        .map(|frontend| {
            u64::from(
                frontend
                    .max_connections
                    .unwrap_or(defaults::FRONTEND_MAX_CONNECTIONS),
            )
        })
        .sum();
    u64::from(config.max_connections).min(frontends)
}

fn memory_needed(config: &Config) -> u64 {
    MEMORY_BESIDES_SESSIONS + sessions(config) * MEMORY_PER_SESSION
}

/// A Kubernetes memory quantity in bytes: `160Mi`, `1Gi`, `200M`, `134217728`.
fn quantity_bytes(quantity: &str) -> Option<u64> {
    let split = quantity
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// The files vipd reads and writes are on the node, where the operator and the next container
/// find them: the configuration and what it names, the tracked files (the maintenance flag), the
/// runtime directory and the state directory.
fn mount_problems(pod: &Value, config: &Config) -> Vec<String> {
    let container = &pod["spec"]["containers"][0];
    let mounts = host_mounts(pod);
    let mounted = |path: &Path, writable: bool| {
        mounts
            .iter()
            .any(|(at, read_only)| path.starts_with(at) && !(writable && *read_only))
    };
    let mut problems = Vec::new();
    match config_path(container) {
        Some(path) if mounted(&path, false) => {}
        Some(path) => problems.push(format!("-c {} is not on a mount", path.display())),
        None => problems.push("args: no -c FILE".to_owned()),
    }
    for (file, what) in files_read(config) {
        if !mounted(file, false) {
            problems.push(format!("{} ({what}) is not on a mount", file.display()));
        }
    }
    for file in tracked_files(config) {
        if !mounted(file, true) {
            problems.push(format!(
                "{} (a tracked file) is not on a writable mount",
                file.display()
            ));
        }
    }
    if !mounts.iter().any(|(at, _)| at == Path::new("/run/vipd")) {
        problems.push("/run/vipd is not mounted from the node".to_owned());
    }
    let state = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|variable| variable["name"] == "STATE_DIRECTORY")
        .and_then(|variable| variable["value"].as_str());
    match state {
        Some(state) if mounted(Path::new(state), true) => {}
        Some(state) => problems.push(format!(
            "STATE_DIRECTORY {state} is not on a writable mount"
        )),
        None => problems.push("no STATE_DIRECTORY: drains would not survive a restart".to_owned()),
    }
    problems
}

/// The container's mounts of the node's files (hostPath volumes): mount path and read-only.
fn host_mounts(pod: &Value) -> Vec<(PathBuf, bool)> {
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is_host_path = |name: &Value| {
        volumes
            .iter()
            .any(|volume| &volume["name"] == name && volume["hostPath"]["path"].is_string())
    };
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mount| is_host_path(&mount["name"]))
        .filter_map(|mount| {
            let at = mount["mountPath"].as_str()?;
            Some((PathBuf::from(at), mount["readOnly"] == true))
        })
        .collect()
}

fn config_path(container: &Value) -> Option<PathBuf> {
    let args: Vec<&str> = container["args"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = args.iter().position(|arg| *arg == "-c")?;
    args.get(at + 1).map(PathBuf::from)
}

/// The files the daemon reads at start, with what they are.
fn files_read(config: &Config) -> Vec<(&Path, &'static str)> {
    let mut files: Vec<(&Path, &'static str)> = Vec::new();
    if let Some(token) = &config.control.token_file {
        files.push((token, "the control token"));
    }
    for backend in &config.backends {
        let options = &backend.health.options;
        if let HealthKind::Https {
            tls_verify: TlsVerify::CaFile(ca),
            ..
        } = &backend.health.kind
        {
            files.push((ca, "a CA file"));
        }
        if let Some(token) = &options.bearer_token_file {
            files.push((token, "a bearer token"));
        }
        if let Some(client) = &options.client_certificate {
            files.push((&client.certificate_file, "a client certificate"));
            if let Some(key) = &client.key_file {
                files.push((key, "a client key"));
            }
        }
    }
    files
}

fn tracked_files(config: &Config) -> Vec<&Path> {
    config
        .vrrp
        .iter()
        .flat_map(|instance| &instance.track)
        .filter_map(|tracker| match &tracker.target {
            TrackTarget::File { path } => Some(path.as_path()),
            _ => None,
        })
        .collect()
}

/// The systemd unit's capabilities and no more; time to stop before SIGKILL.
fn privilege_problems(pod: &Value, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let capabilities = &pod["spec"]["containers"][0]["securityContext"]["capabilities"];
    let mut added: Vec<&str> = capabilities["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    added.sort_unstable();
    if capabilities["drop"] != json!(["ALL"])
        || added != ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"]
    {
        problems.push(format!(
            "capabilities: drop {} add {}, not drop ALL, add NET_ADMIN NET_RAW NET_BIND_SERVICE",
            capabilities["drop"], capabilities["add"]
        ));
    }
    // Kubernetes' default is 30 s.
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let stop_limit = config.shutdown_grace + STOP_LIMIT_BEYOND_GRACE;
    if Duration::from_secs(grace) < stop_limit {
        problems.push(format!(
            "terminationGracePeriodSeconds {grace} is shorter than vipd's stop limit {stop_limit:?}"
        ));
    }
    problems
}

/// The cluster CA's stand-in: `vipd check` needs the file readable and not empty; the daemon
/// parses it at start, which no test here does.
const CA_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
