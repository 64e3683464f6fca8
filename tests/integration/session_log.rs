//! The session log of the daemon with `--log-format json`: one JSON object per session end on
//! target `vipd::session`, with the real client, the server and the termination, and a refusal
//! line for a backend whose one server is dead (docs/operations.md, Session log).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{
    Scratch, fetch, start_backend, start_vipd, start_vipd_logging_json, wait_until,
};
use vipd_lab::{Lab, LabProcess};

const NODE: usize = 0;
const CLIENT: usize = 1;

fn config(node: Ipv4Addr, backend: Ipv4Addr) -> String {
    format!(
        "node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 62
    priority: 150
    advert_interval: 100ms
    vips: [{vip}/24]
frontends:
  - {{ name: served, bind: [\"{node}:80\"], backend: web }}
  - {{ name: refused, bind: [\"{node}:81\"], backend: dead }}
backends:
  - name: web
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
  - name: dead
    servers:
      - {{ name: d1, address: \"{backend}:8081\" }}
",
        vip = Lab::vip_v4(2),
    )
}

/// The session log's JSON objects in the daemon's log so far.
fn session_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "vipd::session")
        .collect()
}

/// The first line of `frontend` with `message` ("session end", "session refused").
fn line_of(log: &Path, frontend: &str, message: &str) -> Option<serde_json::Value> {
    session_lines(log)
        .into_iter()
        .find(|line| line["frontend"] == frontend && line["message"] == message)
}

/// Waits for [`line_of`], failing with the log.
fn wait_for_line(log: &Path, frontend: &str, message: &str) -> serde_json::Value {
    let found = wait_until(Duration::from_secs(10), || {
        line_of(log, frontend, message).is_some()
    });
    assert!(
        found.is_some(),
        "no `{message}` line of {frontend}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    line_of(log, frontend, message).expect("line")
}

/// A lab where vipd (host 0) serves frontend `served` from socat in host 1, which is the client
/// too; the lab, the processes and the scratch directory go on drop.
struct Served {
    lab: Lab,
    node: Ipv4Addr,
    client: Ipv4Addr,
    log: PathBuf,
    _processes: [LabProcess; 2],
    _scratch: Scratch,
}

impl Served {
    fn start(name: &str, json: bool) -> Self {
        let lab = Lab::new(2).expect("lab");
        let (node, client) = (lab.host(NODE).ipv4, lab.host(CLIENT).ipv4);
        let backend = start_backend(&lab, CLIENT, 8080, "hello");
        let scratch = Scratch::new(name);
        let config_path = scratch.write("vipd.yaml", &config(node, client));
        let log = scratch.path("vipd.log");
        let start = if json {
            start_vipd_logging_json
        } else {
            start_vipd
        };
        let vipd = start(&lab, NODE, &config_path, &log);
        Self {
            lab,
            node,
            client,
            log,
            _processes: [vipd, backend],
            _scratch: scratch,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn the_daemon_logs_each_session_end_as_json() {
    if !vipd_lab::e2e_enabled("the_daemon_logs_each_session_end_as_json") {
        return;
    }
    let served = Served::start("session-log-json", true);
    let (lab, node, client, log) = (&served.lab, served.node, served.client, &served.log);
    let log_text = || served.log_text();

    let served_at = SocketAddr::from((node, 80));
    let answered = wait_until(Duration::from_secs(10), || {
        fetch(lab, CLIENT, served_at).is_ok_and(|text| text == "hello\n")
    });
    assert!(
        answered.is_some(),
        "no answer through vipd:\n{}",
        log_text()
    );
    // Sessions before socat listened were refused; this is one it answered.
    let line = wait_for_line(log, "served", "session end");
    assert_eq!(line["level"], "INFO");
    let logged_client: SocketAddr = line["client"]
        .as_str()
        .expect("client")
        .parse()
        .expect("address");
    assert_eq!(logged_client.ip(), client, "{line}");
    assert_eq!(line["backend"], "web");
    assert_eq!(line["server"], "b1");
    assert_eq!(line["termination"], "closed", "{line}");
    assert_eq!(line["state"], "--");
    assert_eq!(line["bytes_out"], 6, "hello and a newline: {line}");

    let _ = fetch(lab, CLIENT, SocketAddr::from((node, 81)));
    let line = wait_for_line(log, "refused", "session refused");
    // Refused by the server, or, once its health check failed, without trying it.
    let termination = line["termination"].as_str().expect("termination");
    assert!(
        ["connect_refused", "no_server"].contains(&termination),
        "{line}"
    );
    assert!(
        line["client"]
            .as_str()
            .is_some_and(|address| address.starts_with(&format!("{client}:"))),
        "{line}"
    );
    assert_eq!(line["suppressed"], 0);
}

/// Under systemd stderr is the journal, not a terminal: the text format has no colour codes, so
/// that `journalctl -g 'vipd::session: '` finds the lines.
#[test]
fn the_text_session_log_is_plain_text_off_a_terminal() {
    if !vipd_lab::e2e_enabled("the_text_session_log_is_plain_text_off_a_terminal") {
        return;
    }
    let served = Served::start("session-log-text", false);
    let log_text = || served.log_text();
    let expected = format!(" INFO vipd::session: session end client={}:", served.client);
    let logged = wait_until(Duration::from_secs(10), || {
        let _ = fetch(&served.lab, CLIENT, SocketAddr::from((served.node, 80)));
        log_text().contains(&expected)
    });
    assert!(logged.is_some(), "no `{expected}` line:\n{}", log_text());
    assert!(
        !log_text().contains('\u{1b}'),
        "colour codes:\n{}",
        log_text()
    );
}
