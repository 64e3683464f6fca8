//! vipd backends from the `backend` and `listen` sections: servers, and the settings HAProxy
//! has per server but vipd per backend.

use super::bind::socket_address;
use super::check::{health, is_tls_check};
use super::keepalive::draft_keepalive;
use super::section::{Kind, Section, ServerLine, ServerOptions};
use super::timeout::timeouts;
use crate::draft::{Backend, Health, Server};
use crate::{ImportWarning, unique_name, vipd_name, warn};

pub(super) fn backend(
    section: &Section,
    sections: &[Section],
    taken: &[&str],
    warnings: &mut Vec<ImportWarning>,
) -> Option<Backend> {
    let name = vipd_name(&section.name, &section.at, "backend", warnings);
    let name = unique_name(name, taken);
    let mut notes = Vec::new();
    let frontends: Vec<&Section> = sections
        .iter()
        .filter(|other| {
            other.is_frontend()
                && (if other.kind == Kind::Listen {
                    other.name == section.name && section.kind == Kind::Listen
                } else {
                    other
                        .backend
                        .as_ref()
                        .is_some_and(|(name, _)| *name == section.name)
                })
        })
        .collect();
    if section.kind == Kind::Backend
        && let Some(mode_at) = &section.http_mode
    {
        warn(
            warnings,
            &section.at,
            format!(
                "backend {} is in mode http ({mode_at}): vipd is L4 only; translated as TCP pass-through",
                section.name
            ),
        );
    }
    let default_port = default_port(&frontends);
    let mut servers: Vec<Server> = Vec::new();
    let mut checked: Vec<&ServerLine> = Vec::new();
    let mut queues: Vec<Option<u32>> = Vec::new();
    for line in &section.servers {
        let Some(server) = server(line, default_port, &servers, warnings) else {
            continue;
        };
        if line.options.check {
            checked.push(line);
        }
        queues.push(line.options.maxqueue.filter(|queue| *queue > 0));
        servers.push(server);
    }
    if servers.is_empty() {
        warn(
            warnings,
            &section.at,
            format!("backend {} has no usable server: skipped", section.name),
        );
        return None;
    }
    let first_checked = checked.first().map(|line| &line.options);
    warn_differing_checks(&checked, warnings);
    let send_proxy = collect_one(
        section,
        |options| options.send_proxy.filter(|value| *value != "none"),
        "send-proxy",
        warnings,
    );
    let shutdown_sessions = section
        .servers
        .iter()
        .any(|line| line.options.shutdown_sessions);
    let max_queue = queues
        .into_iter()
        .collect::<Option<Vec<u32>>>()
        .map(|queues| queues.iter().sum::<u32>().min(1_000_000));
    if max_queue.is_some() {
        notes.push(
            "max_queue: the sum of HAProxy's per-server maxqueue (vipd queues per backend)."
                .to_owned(),
        );
    }
    let slow_start = slow_start(section, &mut notes);
    let health = health(section, first_checked, &mut notes, warnings);
    warn_plain_apiserver_check(section, first_checked, &servers, &health, warnings);
    let timeout = timeouts(section, &frontends, &mut notes);
    let tcp_keepalive = draft_keepalive(&section.server_keepalive, &mut notes);
    Some(Backend {
        from: section.at.clone(),
        notes,
        name,
        balance: section.balance,
        send_proxy,
        retries: section.retries,
        shutdown_sessions,
        timeout,
        health,
        max_queue,
        servers,
        tcp_keepalive,
        slow_start,
    })
}

/// The Kubernetes apiserver port.
const APISERVER_PORT: u16 = 6443;

/// An apiserver speaks HTTPS only: a TCP check keeps a server that is not ready in rotation, and a
/// plain `option httpchk` is answered with 400 (HAProxy may have accepted that with `http-check
/// expect` on any status; vipd's check would mark every server down). Said at the source line,
/// with what to write instead. TLS checks without `option httpchk` have their own warning.
fn warn_plain_apiserver_check(
    section: &Section,
    checked: Option<&ServerOptions>,
    servers: &[Server],
    health: &Health,
    warnings: &mut Vec<ImportWarning>,
) {
    let port = |server: &Server| health.port.unwrap_or(server.address.port());
    let tls_without_httpchk = section.http_check.is_none()
        && (checked.is_some_and(is_tls_check) || section.check_connect_ssl);
    if tls_without_httpchk || !servers.iter().any(|server| port(server) == APISERVER_PORT) {
        return;
    }
    let problem = match health.kind {
        Some("https") => return,
        Some("http") => {
            "a plain HTTP check (`option httpchk` without `check-ssl`): an apiserver answers it \
             with 400, so vipd would mark every server down"
        }
        _ => {
            "a TCP connect check: an apiserver that accepts connections but is not ready stays \
             in rotation"
        }
    };
    warn(
        warnings,
        &section.at,
        format!(
            "backend {}: port {APISERVER_PORT} with {problem}; apiservers need HTTPS `/readyz`: \
             write `health: {{ kind: https, path: /readyz, tls_verify: none }}` (in HAProxy: \
             `option httpchk GET /readyz` and `check check-ssl verify none`)",
            section.name
        ),
    );
}

/// HAProxy's `slowstart` is per server, vipd's `slow_start` per backend: the longest, with a
/// note when the servers differ.
fn slow_start(section: &Section, notes: &mut Vec<String>) -> Option<std::time::Duration> {
    let ramps: Vec<Option<std::time::Duration>> = section
        .servers
        .iter()
        .map(|line| line.options.slowstart.filter(|ramp| !ramp.is_zero()))
        .collect();
    let longest = ramps.iter().flatten().max().copied();
    if longest.is_some() && ramps.iter().any(|ramp| *ramp != longest) {
        notes.push(
            "slow_start: the longest of HAProxy's per-server slowstart (vipd ramps every server of a backend alike)."
                .to_owned(),
        );
    }
    longest
}

/// A per-server setting vipd has per backend: the first server's, with a warning if they differ.
fn collect_one(
    section: &Section,
    value: impl Fn(&ServerOptions) -> Option<&'static str>,
    what: &str,
    warnings: &mut Vec<ImportWarning>,
) -> Option<&'static str> {
    let first = section
        .servers
        .first()
        .and_then(|line| value(&line.options));
    if let Some(line) = section
        .servers
        .iter()
        .find(|line| value(&line.options) != first)
    {
        warn(
            warnings,
            &line.at,
            format!(
                "server {}: {what} differs from the backend's first server; vipd sets it per backend: the first server's is used",
                line.name
            ),
        );
    }
    first
}

/// A `server` line as a vipd server, or `None` (with a warning) when its address cannot be
/// connected to; its name is made unique among `others`.
fn server(
    line: &ServerLine,
    default_port: Option<u16>,
    others: &[Server],
    warnings: &mut Vec<ImportWarning>,
) -> Option<Server> {
    let address = match socket_address(&line.address, default_port) {
        Ok(address) => address,
        Err(problem) => {
            warn(
                warnings,
                &line.at,
                format!(
                    "server {} `{}`: {problem}: skipped",
                    line.name, line.address
                ),
            );
            return None;
        }
    };
    if address.port() == 0 || address.ip().is_unspecified() {
        warn(
            warnings,
            &line.at,
            format!(
                "server {}: {address} cannot be connected to: skipped",
                line.name
            ),
        );
        return None;
    }
    let name = vipd_name(&line.name, &line.at, "server", warnings);
    let taken: Vec<&str> = others.iter().map(|s| s.name.as_str()).collect();
    let name = unique_name(name, &taken);
    let mut weight = line.options.weight;
    let mut note = None;
    if line.options.disabled {
        weight = Some(0);
        note = Some("disabled in HAProxy: weight 0 drains it".to_owned());
        warn(
            warnings,
            &line.at,
            format!(
                "server {} disabled: written with weight 0 (vipd still checks it)",
                line.name
            ),
        );
    }
    if line.options.ssl {
        warn(
            warnings,
            &line.at,
            format!(
                "server {} ssl: vipd does not originate TLS to servers (L4 pass-through); its health check uses TLS",
                line.name
            ),
        );
    }
    Some(Server {
        name,
        address,
        weight,
        backup: line.options.backup,
        max_connections: line.options.maxconn,
        note,
        check_address: line.options.check_addr.filter(|_| line.options.check),
    })
}

/// vipd has one health check per backend, the first checked server's: a warning for each
/// server whose check settings differ.
fn warn_differing_checks(checked: &[&ServerLine], warnings: &mut Vec<ImportWarning>) {
    let first_checked = checked.first().map(|line| &line.options);
    for line in checked.iter().skip(1) {
        let (a, b) = (&line.options, first_checked.unwrap_or(&line.options));
        if a.inter != b.inter
            || a.rise != b.rise
            || a.fall != b.fall
            || is_tls_check(a) != is_tls_check(b)
            || a.ca_file != b.ca_file
            || a.check_port != b.check_port
            || a.check_send_proxy != b.check_send_proxy
            || a.check_sni != b.check_sni
            || a.crt != b.crt
        {
            warn(
                warnings,
                &line.at,
                format!(
                    "server {}: check settings differ from the first checked server's; vipd has one health check per backend: the first one's are used",
                    line.name
                ),
            );
        }
    }
}

/// A server without a port takes the port the client connected to: the frontends' one port.
fn default_port(frontends: &[&Section]) -> Option<u16> {
    let mut frontend_ports: Vec<u16> = frontends
        .iter()
        .flat_map(|f| f.binds.iter().map(|(address, _)| address.port()))
        .collect();
    frontend_ports.sort_unstable();
    frontend_ports.dedup();
    match frontend_ports.as_slice() {
        [port] => Some(*port),
        _ => None,
    }
}
