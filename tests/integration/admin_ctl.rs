//! `vipd ctl` end to end, as an operator runs it on a node of a vipd pair: it finds the control
//! server and the token in the configuration file, drains a server, lists and kills the
//! sessions on it (the client sees its connection end), sets and resets a weight, and puts the
//! node in maintenance so that the VIP moves to the peer and back; `--json` answers parse and
//! the exit codes say done (0), refused (1) or unreachable (2). A restart of the daemon keeps
//! the drained server and the maintenance (`STATE_DIRECTORY`).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use vipd_lab::{Lab, LabProcess};

use crate::support::{
    Scratch, VIPD, holds, instance_state, start_vipd, start_vipd_keeping_state, status, text,
    wait_for_control, wait_until,
};

const LB1: usize = 0;
const LB2: usize = 1;
const BACKEND: usize = 2;
const CLIENT: usize = 3;
const TOKEN: &str = "ctl-test-token";

fn node_config(node: &str, priority: u8, token: &Path, backend: IpAddr, vip: IpAddr) -> String {
    format!(
        "node: {node}
control:
  listen: 127.0.0.1:9650
  token_file: {token}
vrrp:
  - name: api
    interface: eth0
    vrid: 61
    priority: {priority}
    advert_interval: 100ms
    vips: [{vip}/24]
frontends:
  - name: web
    bind: [\"{vip}:80\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
      - {{ name: b2, address: \"{backend}:8081\" }}
",
        token = token.display()
    )
}

/// `vipd ctl -c config ARGS` inside `host`.
fn ctl(lab: &Lab, host: usize, config: &Path, args: &[&str]) -> Output {
    let config = config.display().to_string();
    let mut all = vec![VIPD, "ctl", "-c", &config];
    all.extend(args);
    lab.command_in(host, &all)
        .expect("host exists")
        .output()
        .expect("vipd ctl runs")
}

/// Runs `vipd ctl --json ARGS`, expects exit 0 and returns the parsed answer.
fn ctl_json(lab: &Lab, host: usize, config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args);
    let output = ctl(lab, host, config, &all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "vipd ctl {args:?}: {output:?}"
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("vipd ctl {args:?} --json: {error}: {output:?}"))
}

/// The server `name` of backend `web` in `host`'s status.
fn server_status(lab: &Lab, host: usize, name: &str) -> Value {
    let status = status(lab, host).expect("status");
    status["backends"][0]["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|server| server["name"] == name)
        .cloned()
        .expect("the server is listed")
}

/// An echo connection from the client through the VIP, open until dropped.
fn open_session(lab: &Lab, target: SocketAddr) -> TcpStream {
    lab.in_host(CLIENT, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .expect("connects through the VIP");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(b"ping\n").expect("writes");
        let mut echo = [0u8; 5];
        stream.read_exact(&mut echo).expect("the backend echoes");
        assert_eq!(&echo, b"ping\n");
        stream
    })
    .expect("client host")
}

fn start_echo_backends(lab: &Lab) -> [LabProcess; 2] {
    [8080, 8081].map(|port| {
        let listen = format!("TCP-LISTEN:{port},reuseaddr,fork");
        lab.spawn(BACKEND, &["socat", &listen, "EXEC:cat"])
            .expect("socat starts")
    })
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one operator's session on a pair, told in order: drain, sessions, weight, maintenance, restart"
)]
fn ctl_drains_lists_and_kills_sessions_sets_weights_and_moves_the_vip_by_maintenance() {
    if !vipd_lab::e2e_enabled(
        "ctl_drains_lists_and_kills_sessions_sets_weights_and_moves_the_vip_by_maintenance",
    ) {
        return;
    }
    let lab = Lab::new(4).expect("lab");
    let scratch = Scratch::new("admin-ctl");
    let vip = IpAddr::V4(Lab::vip_v4(6));
    let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
    let _backends = start_echo_backends(&lab);
    let token = scratch.write("token", &format!("{TOKEN}\n"));
    let lb1_config = scratch.write("lb1.yaml", &node_config("lb1", 150, &token, backend, vip));
    let lb2_config = scratch.write("lb2.yaml", &node_config("lb2", 100, &token, backend, vip));
    let state = scratch.path("state-lb1");
    let mut lb1 =
        start_vipd_keeping_state(&lab, LB1, &lb1_config, &scratch.path("lb1.log"), &state);
    let _lb2 = start_vipd(&lab, LB2, &lb2_config, &scratch.path("lb2.log"));
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);
    assert!(
        wait_until(Duration::from_secs(10), || holds(&lab, LB1, vip)).is_some(),
        "lb1 never took the VIP"
    );
    let usable =
        || status(&lab, LB1).is_ok_and(|status| status["backends"][0]["servers_usable"] == 2);
    assert!(
        wait_until(Duration::from_secs(10), usable).is_some(),
        "both servers up"
    );

    // A session, found by its client address in the backend's listing.
    let target = SocketAddr::new(vip, 80);
    let mut session = open_session(&lab, target);
    let client = lab.host(CLIENT).ipv4.to_string();
    let listing = ctl_json(&lab, LB1, &lb1_config, &["sessions", "list", "web"]);
    let ours = listing["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|entry| {
            entry["client"]
                .as_str()
                .is_some_and(|address| address.starts_with(&client))
        })
        .cloned()
        .unwrap_or_else(|| panic!("our session is not listed: {listing}"));
    let server = ours["server"].as_str().expect("server name").to_owned();
    assert_eq!(ours["frontend"], "web");

    // Drain its server: no new sessions there, the established one stays, and is listed.
    let drained = ctl_json(&lab, LB1, &lb1_config, &["server", "drain", "web", &server]);
    assert_eq!(drained["action"], "drain");
    assert_eq!(server_status(&lab, LB1, &server)["admin"], "drain");
    let human = ctl(
        &lab,
        LB1,
        &lb1_config,
        &["sessions", "list", "web", &server],
    );
    assert_eq!(human.status.code(), Some(0), "{human:?}");
    assert!(text(&human.stdout).contains(&client), "{human:?}");

    // Kill it: the client's connection ends at once.
    let killed = ctl(
        &lab,
        LB1,
        &lb1_config,
        &["sessions", "kill", "web", &server, "--client", &client],
    );
    assert_eq!(killed.status.code(), Some(0), "{killed:?}");
    assert!(
        text(&killed.stdout).contains("1 session(s) killed"),
        "{killed:?}"
    );
    let mut rest = Vec::new();
    let ended = session.read_to_end(&mut rest);
    assert!(
        ended.is_ok()
            || ended
                .as_ref()
                .is_err_and(|error| error.kind() == std::io::ErrorKind::ConnectionReset),
        "the killed session must end, not time out: {ended:?}"
    );
    let after = ctl_json(
        &lab,
        LB1,
        &lb1_config,
        &["sessions", "list", "web", &server],
    );
    assert_eq!(after["sessions"], Value::Array(Vec::new()), "{after}");

    // Weight: set, seen, reset to the file's.
    assert_eq!(
        ctl_json(
            &lab,
            LB1,
            &lb1_config,
            &["server", "enable", "web", &server]
        )["action"],
        "enable"
    );
    assert_eq!(
        ctl_json(
            &lab,
            LB1,
            &lb1_config,
            &["server", "weight", "web", &server, "7"]
        )["weight"],
        7
    );
    let weighted = server_status(&lab, LB1, &server);
    assert_eq!(
        (
            weighted["weight"].clone(),
            weighted["weight_overridden"].clone()
        ),
        (7.into(), true.into())
    );
    ctl_json(
        &lab,
        LB1,
        &lb1_config,
        &["server", "weight", "web", &server, "reset"],
    );
    let reset = server_status(&lab, LB1, &server);
    assert_eq!(
        (reset["weight"].clone(), reset["weight_overridden"].clone()),
        (1.into(), false.into())
    );

    refusals_and_unreachable_daemon(&lab, &lb1_config, &scratch);

    // Maintenance for the node (no instance named): the VIP moves to lb2, and back.
    let on = ctl_json(&lab, LB1, &lb1_config, &["maintenance", "on"]);
    assert_eq!(
        on,
        serde_json::json!([{"instance": "api", "maintenance": true}])
    );
    assert!(
        wait_until(Duration::from_secs(5), || holds(&lab, LB2, vip)
            && !holds(&lab, LB1, vip))
        .is_some(),
        "the VIP did not move to lb2"
    );

    // A restart keeps what the operator set: lb1 comes back drained and in maintenance.
    ctl_json(&lab, LB1, &lb1_config, &["server", "drain", "web", "b2"]);
    lb1.stop();
    let mut lb1 =
        start_vipd_keeping_state(&lab, LB1, &lb1_config, &scratch.path("lb1.log"), &state);
    wait_for_control(&lab, LB1);
    assert!(
        wait_until(Duration::from_secs(5), || instance_state(&lab, LB1, "api")
            .as_deref()
            == Some("backup"))
        .is_some(),
        "lb1 back as backup"
    );
    let restarted = status(&lab, LB1).expect("status");
    assert_eq!(
        restarted["instances"][0]["maintenance"], true,
        "{restarted}"
    );
    assert_eq!(server_status(&lab, LB1, "b2")["admin"], "drain");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        holds(&lab, LB2, vip) && !holds(&lab, LB1, vip),
        "maintenance held over the restart"
    );

    let off = ctl(&lab, LB1, &lb1_config, &["maintenance", "off", "api"]);
    assert_eq!(off.status.code(), Some(0), "{off:?}");
    assert!(
        wait_until(Duration::from_secs(5), || holds(&lab, LB1, vip)).is_some(),
        "lb1 did not take the VIP back after maintenance off"
    );
    ctl_json(&lab, LB1, &lb1_config, &["server", "enable", "web", "b2"]);
    lb1.stop();
}

/// Exit 1 with the daemon's message for a refusal (unknown server, wrong token), exit 2 when no
/// daemon answers or the command line is wrong.
fn refusals_and_unreachable_daemon(lab: &Lab, config: &Path, scratch: &Scratch) {
    let unknown = ctl(lab, LB1, config, &["server", "drain", "web", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(
        text(&unknown.stderr).contains("no server named"),
        "{unknown:?}"
    );
    let unknown_json = ctl(
        lab,
        LB1,
        config,
        &["--json", "server", "drain", "web", "nosuch"],
    );
    let answer: Value = serde_json::from_slice(&unknown_json.stdout).expect("JSON error body");
    assert!(answer["error"].is_string(), "{answer}");

    let wrong = scratch.write("wrong-token", "not-the-token\n");
    let wrong = wrong.display().to_string();
    let refused = ctl(
        lab,
        LB1,
        config,
        &["--token-file", &wrong, "server", "drain", "web", "b1"],
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(text(&refused.stderr).contains("401"), "{refused:?}");

    let unreachable = ctl(
        lab,
        LB1,
        config,
        &["--control", "127.0.0.1:1", "server", "drain", "web", "b1"],
    );
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
    assert!(
        text(&unreachable.stderr).contains("is vipd running?"),
        "{unreachable:?}"
    );

    let usage = ctl(lab, LB1, config, &["sessions", "kill", "web", "b1"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "kill needs --all, --client or --id: {usage:?}"
    );
}
