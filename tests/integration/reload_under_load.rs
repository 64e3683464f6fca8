//! SIGHUP under load (docs/design/proxy.md, Reload and drain): ten reloads that change
//! every server's `max_connections`, weights, backup flags and the backend's `balance` keep each
//! server's state. No request fails, the frontend tracker never sees a server down (the node's
//! priority stays constant), and a server drained through the API stays drained. And a bind
//! moving to the wildcard of its port and back, one reload each.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::reload_control::{hang_up, log_of};
use crate::support::{
    Scratch, holds, http_request, start_vipd, status, wait_for_control, wait_until,
};
use vipd_lab::http::Client;
use vipd_lab::{Lab, LabProcess};

const LB: usize = 0;
const CLIENT: usize = 1;
const BACKEND: usize = 2;
const PORTS: [u16; 3] = [8081, 8082, 8083];
const RELOADS: usize = 10;
const PRIORITY: u64 = 150;
const ANSWER: &str = "wildcard-move-backend";
const BALANCES: [&str; 4] = ["round_robin", "least_conn", "random", "source"];

/// One nginx in the backend host answering 200 on each of [`PORTS`].
fn start_nginx(lab: &Lab, scratch: &Scratch) -> LabProcess {
    let work = scratch.path("nginx");
    for dir in ["logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(work.join(dir)).expect("nginx dirs");
    }
    let address = lab.host(BACKEND).ipv4;
    let mut listens = String::new();
    for port in PORTS {
        let _ = writeln!(listens, "        listen {address}:{port};");
    }
    let work = work.display();
    let conf = scratch.write(
        "nginx.conf",
        &format!(
            "daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
{listens}        location / {{ return 200 \"ok\\n\"; }}
    }}
}}
"
        ),
    );
    let conf = conf.display().to_string();
    lab.spawn(BACKEND, &["nginx", "-p", &work.to_string(), "-c", &conf])
        .expect("nginx starts")
}

/// The file of reload `round` (0 is the start): every round changes `balance`, every weight,
/// every `max_connections` and `s2`'s backup flag. The limits stay above wrk's connections, so
/// none of them refuses or queues a client.
fn config(round: usize, vip: IpAddr, backend: IpAddr) -> String {
    let balance = BALANCES[round % BALANCES.len()];
    let limit = |server: usize| match (server + round) % 3 {
        0 => String::new(),
        step => format!(", max_connections: {}", 40 + 10 * step + round),
    };
    let mut servers = String::new();
    for (server, port) in PORTS.iter().enumerate() {
        let _ = writeln!(
            servers,
            "      - {{ name: s{}, address: \"{backend}:{port}\", weight: {}, backup: {}{} }}",
            server + 1,
            1 + (server + round) % 3,
            server == 1 && round % 2 == 1,
            limit(server),
        );
    }
    format!(
        "node: lb1
shutdown_grace: 1s
vrrp:
  - name: api
    interface: eth0
    vrid: 64
    priority: {PRIORITY}
    advert_interval: 100ms
    vips: [{vip}/24]
    track: [{{ frontend: web, weight: -50 }}]
frontends:
  - {{ name: web, bind: [\"{vip}:80\"], backend: web }}
backends:
  - name: web
    balance: {balance}
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 3, fall: 2 }}
    servers:
{servers}"
    )
}

/// Server `name` of backend `web` in the `/status` JSON.
fn server(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["backends"][0]["servers"]
        .as_array()
        .and_then(|servers| servers.iter().find(|server| server["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// What wrk printed, in numbers: requests done, non-2xx/3xx answers and socket errors.
#[derive(Debug, Default)]
struct WrkCounts {
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

fn parse_wrk(output: &str) -> WrkCounts {
    let number = |word: &str| word.trim_matches(',').parse::<u64>().unwrap_or(0);
    let mut counts = WrkCounts::default();
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            counts.non_2xx = number(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            counts.socket_errors = rest.split_whitespace().skip(1).step_by(2).map(number).sum();
        } else if line.contains(" requests in ") {
            counts.requests = line.split_whitespace().next().map_or(0, number);
        }
    }
    counts
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one run told in order: lab, drain, load, ten reloads, what every side saw"
)]
fn ten_reloads_under_wrk_load_fail_no_request_and_keep_every_server_state() {
    if !vipd_lab::e2e_enabled(
        "ten_reloads_under_wrk_load_fail_no_request_and_keep_every_server_state",
    ) {
        return;
    }
    let lab = Lab::new(3).expect("lab");
    let scratch = Scratch::new("reload-under-load");
    let _nginx = start_nginx(&lab, &scratch);
    let vip = IpAddr::V4(Lab::vip_v4(4));
    let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
    let config_path = scratch.write("vipd.yaml", &config(0, vip, backend));
    let log = scratch.path("vipd.log");
    let vipd = start_vipd(&lab, LB, &config_path, &log);
    wait_for_control(&lab, LB);
    let all_up = || status(&lab, LB).is_ok_and(|status| status["backends"][0]["servers_up"] == 3);
    assert!(
        wait_until(Duration::from_secs(15), || holds(&lab, LB, vip) && all_up()).is_some(),
        "no VIP or not every server up: {:?}\n{}",
        status(&lab, LB),
        log_of(&log)
    );
    let drained = http_request(
        &lab,
        LB,
        Client::new(),
        "POST",
        crate::support::CONTROL,
        "/api/v1/servers/web/s3/drain",
    )
    .expect("drain s3");
    assert_eq!(drained.status, 200);
    let s3_sessions = server(&status(&lab, LB).expect("status"), "s3")["sessions_total"].clone();

    let load_for = Duration::from_secs(14);
    let target = format!("http://{}/", SocketAddr::new(vip, 80));
    let (wrk_output, priorities, reloads_done) = std::thread::scope(|scope| {
        let wrk = scope.spawn(|| {
            let duration = format!("{}s", load_for.as_secs());
            lab.run(
                CLIENT,
                &[
                    "timeout",
                    "40",
                    "wrk",
                    "-t1",
                    "-c16",
                    "-d",
                    &duration,
                    "-H",
                    "Connection: close",
                    &target,
                ],
            )
        });
        // Sample the advertised priority throughout; reload once a second from the second on.
        let started = Instant::now();
        let mut priorities = Vec::new();
        let mut reloads_done = 0;
        let mut next_reload = Duration::from_secs(1);
        while started.elapsed() < load_for && !wrk.is_finished() {
            if let Ok(status) = status(&lab, LB) {
                priorities.push(status["instances"][0]["effective_priority"].as_u64());
            }
            if reloads_done < RELOADS && started.elapsed() >= next_reload {
                reloads_done += 1;
                std::fs::write(&config_path, config(reloads_done, vip, backend))
                    .expect("rewrite the file");
                hang_up(&vipd);
                let done = |log: &str| log.matches("reload done").count() >= reloads_done;
                assert!(
                    wait_until(Duration::from_secs(5), || done(&log_of(&log))).is_some(),
                    "reload {reloads_done} not done:\n{}",
                    log_of(&log)
                );
                next_reload += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = wrk.join().expect("wrk thread").expect("wrk runs");
        (output, priorities, reloads_done)
    });
    let counts = parse_wrk(&wrk_output);
    let after = status(&lab, LB).expect("status");
    let lowest = priorities.iter().flatten().min().copied();
    eprintln!(
        "reloads under wrk load: {reloads_done} reloads, {} requests, {} non-2xx, {} socket \
         errors; priority sampled {} times, lowest {lowest:?}",
        counts.requests,
        counts.non_2xx,
        counts.socket_errors,
        priorities.len()
    );
    assert_eq!(reloads_done, RELOADS, "not every reload ran:\n{wrk_output}");
    assert!(
        counts.requests > 1000,
        "too little load to tell:\n{wrk_output}"
    );
    assert_eq!(
        (counts.non_2xx, counts.socket_errors),
        (0, 0),
        "requests failed across the reloads:\n{wrk_output}\n{}",
        log_of(&log)
    );
    assert!(
        priorities
            .iter()
            .all(|priority| *priority == Some(PRIORITY)),
        "the priority dipped: {priorities:?}\n{}",
        log_of(&log)
    );
    let s3 = server(&after, "s3");
    assert_eq!(s3["admin"], "drain", "the drain was undone: {s3}");
    assert_eq!(
        s3["sessions_total"], s3_sessions,
        "a drained server got sessions"
    );
    let s1 = server(&after, "s1");
    assert_eq!(s1["transitions"], 1, "s1 went down and up again: {s1}");
    assert_eq!(
        after["backends"][0]["balance"],
        BALANCES[RELOADS % BALANCES.len()],
        "the last reload applied"
    );
}

/// docs/design/proxy.md, Reload and drain: a bind moves from the VIP to the wildcard of its port
/// and back, one SIGHUP each, while a client loops through the VIP: no attempt fails, and the
/// wildcard serves the node's own address too while it is bound.
#[test]
fn a_bind_moves_to_the_wildcard_of_its_port_and_back_without_a_failed_request() {
    if !vipd_lab::e2e_enabled(
        "a_bind_moves_to_the_wildcard_of_its_port_and_back_without_a_failed_request",
    ) {
        return;
    }
    let lab = Lab::new(3).expect("lab");
    let scratch = Scratch::new("reload-wildcard");
    let _backend = crate::support::start_backend(&lab, BACKEND, 8080, ANSWER);
    let backend = lab.host(BACKEND).ipv4;
    let vip = IpAddr::V4(Lab::vip_v4(5));
    let own = IpAddr::V4(lab.host(LB).ipv4);
    let file = |bind: IpAddr| {
        format!(
            "node: lb1
shutdown_grace: 1s
vrrp:
  - {{ name: api, interface: eth0, vrid: 65, priority: 150, advert_interval: 100ms, vips: [{vip}/24] }}
frontends:
  - {{ name: web, bind: [\"{}\"], backend: web }}
backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
",
            SocketAddr::new(bind, 80)
        )
    };
    let config_path = scratch.write("vipd.yaml", &file(vip));
    let log = scratch.path("vipd.log");
    let vipd = start_vipd(&lab, LB, &config_path, &log);
    let serves = |address: IpAddr| {
        crate::support::fetch(&lab, CLIENT, SocketAddr::new(address, 80))
            .is_ok_and(|text| text.contains(ANSWER))
    };
    assert!(
        wait_until(Duration::from_secs(15), || serves(vip)).is_some(),
        "the VIP never served:\n{}",
        log_of(&log)
    );
    assert!(!serves(own), "only the VIP is bound");
    let client = crate::support::takeover_probe::retrying_client(
        &lab,
        CLIENT,
        SocketAddr::new(vip, 80),
        ANSWER,
        Duration::from_secs(4),
        Duration::from_secs(1),
        Duration::from_secs(2),
    );
    let reload = |bind: IpAddr, count: usize| {
        std::fs::write(&config_path, file(bind)).expect("rewrite the file");
        hang_up(&vipd);
        assert!(
            wait_until(Duration::from_secs(5), || log_of(&log)
                .matches("reload done")
                .count()
                >= count)
            .is_some(),
            "reload {count} not done:\n{}",
            log_of(&log)
        );
    };
    std::thread::sleep(Duration::from_millis(500));
    reload(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 1);
    assert!(
        serves(own),
        "the wildcard does not serve the node's address"
    );
    std::thread::sleep(Duration::from_millis(500));
    reload(vip, 2);
    let record = client
        .join()
        .expect("client thread")
        .expect("in client host");
    eprintln!(
        "wildcard move: {} requests answered, {} failed attempts, {} failed requests",
        record.answered,
        record.retried.len(),
        record.errors.len()
    );
    assert!(record.answered > 0, "the client was never answered");
    assert!(
        record.errors.is_empty() && record.retried.is_empty(),
        "requests failed while the bind moved: {:?} / {:?}\n{}",
        record.retried,
        record.errors,
        log_of(&log)
    );
    assert!(!serves(own), "the wildcard was closed");
}
