//! A dead server under load costs clients at most one `timeout.connect`, and nothing once client
//! traffic has marked it down (`health.error_limit`): three real nginx servers behind vipd,
//! `wrk` opening a new connection per request, and one server made to drop SYNs (nftables
//! `drop`), to answer them with a reset (`reject with tcp reset`), or killed outright. A probe
//! times every connection of its own, so that the test can say when each client waited.
//! See docs/design/proxy.md, Connect, retries and redispatch; the figures are in
//! docs/benchmarks.md, Dead servers.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Scratch, start_vipd, status, wait_for_control, wait_until};
use vipd_lab::{Lab, LabProcess};

const LB: usize = 0;
const CLIENT: usize = 1;
const SERVERS: [usize; 3] = [2, 3, 4];
/// The server the fault hits.
const VICTIM: usize = 2;
const SERVER_PORT: u16 = 8080;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const ERROR_LIMIT: u32 = 3;
/// Load before the fault, and after it.
const BEFORE: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(6);
/// A client "waited" when its request took longer than this: a dead server costs one connect
/// timeout; without one a request takes milliseconds, or a few hundred when the shared cores
/// are busy (the test runs the debug build).
const WAITED: Duration = Duration::from_millis(500);
const FAULT_TABLE: &str = "vipd_dead_server";
const WRK_CONNECTIONS: usize = 20;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SYNs dropped: every connect to it times out.
    Blackhole,
    /// SYNs answered with a reset: every connect is refused at once.
    Reset,
    /// The nginx process killed: its listening socket goes, connects are refused.
    Kill,
}

fn nginx_config(dir: &Path, address: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {address} backlog=4096;
        location / {{ return 200 \"hello\\n\"; }}
    }}
}}
"
    )
}

fn start_nginx(lab: &Lab, scratch: &Scratch, host: usize) -> LabProcess {
    let dir = scratch.path(&format!("nginx{host}"));
    std::fs::create_dir_all(&dir).expect("nginx dir");
    let address = SocketAddr::new(lab.host(host).ipv4.into(), SERVER_PORT);
    let config = scratch.write(&format!("nginx{host}.conf"), &nginx_config(&dir, address));
    let dir_text = dir.display().to_string();
    let config_text = config.display().to_string();
    lab.spawn(host, &["nginx", "-p", &dir_text, "-c", &config_text])
        .expect("nginx starts")
}

fn vipd_config(lab: &Lab) -> String {
    let mut servers = String::new();
    for host in SERVERS {
        writeln!(
            servers,
            "      - {{ name: s{host}, address: \"{}:{SERVER_PORT}\" }}",
            lab.host(host).ipv4
        )
        .expect("a String takes any text");
    }
    format!(
        "node: lb1
frontends:
  - name: web
    bind: [\"{}:80\"]
    backend: web
backends:
  - name: web
    timeout: {{ connect: {}ms }}
    health: {{ kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3, error_limit: {ERROR_LIMIT} }}
    servers:
{servers}",
        lab.host(LB).ipv4,
        CONNECT_TIMEOUT.as_millis()
    )
}

fn servers_up(lab: &Lab) -> Option<u64> {
    status(lab, LB).ok()?["backends"][0]["servers_up"].as_u64()
}

/// One client of the probe: when it started (since the probe began), how long its request took,
/// and whether it got an answer.
struct Probe {
    at: Duration,
    took: Duration,
    answered: bool,
}

/// Probing clients, each opening a new connection every 10 ms.
const PROBES: usize = 4;

/// [`PROBES`] clients, each with a new connection every 10 ms for `length` after `start`, each
/// timed to its answer (bounded by 10 s).
fn probe(target: SocketAddr, start: Instant, length: Duration) -> Vec<Probe> {
    let clients: Vec<_> = (0..PROBES)
        .map(|_| std::thread::spawn(move || probe_one(target, start, length)))
        .collect();
    clients
        .into_iter()
        .flat_map(|client| client.join().expect("probe client"))
        .collect()
}

fn probe_one(target: SocketAddr, start: Instant, length: Duration) -> Vec<Probe> {
    let mut probes = Vec::new();
    while start.elapsed() < length && probes.len() < 2000 {
        let at = start.elapsed();
        let answered = fetch_once(target);
        probes.push(Probe {
            at,
            took: start.elapsed().saturating_sub(at),
            answered,
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    probes
}

fn fetch_once(target: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_secs(10)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// wrk's requests, its longest latency and its errors. (Its latency histogram cannot count the
/// requests that waited: wrk adds made-up entries to it to correct for coordinated omission.)
const WRK_SCRIPT: &str = "
done = function(summary, latency, requests)
  io.write(string.format(\"vipd-wrk requests=%d longest_ms=%.1f errors=%d\\n\",
    summary.requests, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
";

fn apply_fault(lab: &Lab, fault: Fault, victim: &mut LabProcess) {
    let rule = match fault {
        Fault::Kill => {
            victim.stop_with(nix::sys::signal::Signal::SIGKILL);
            return;
        }
        Fault::Blackhole => {
            format!("add rule inet {FAULT_TABLE} input tcp dport {SERVER_PORT} drop")
        }
        // SYNs only: the port is closed to new connections. Sessions in flight when the rule
        // comes are the kill case's (their reset is passed to the client, never replayed).
        Fault::Reset => format!(
            "add rule inet {FAULT_TABLE} input tcp dport {SERVER_PORT} tcp flags & (syn | ack) == syn reject with tcp reset"
        ),
    };
    for command in [
        format!("add table inet {FAULT_TABLE}"),
        format!("add chain inet {FAULT_TABLE} input {{ type filter hook input priority 0 ; }}"),
        rule,
    ] {
        lab.run(VICTIM, &["nft", &command]).expect("nft");
    }
}

/// What one run measured.
struct Outcome {
    probes: Vec<Probe>,
    /// When the fault was applied, on the probe's clock.
    fault_at: Duration,
    /// From the fault to vipd's status showing the server down.
    marked_down_after: Option<Duration>,
    wrk: String,
    /// Failed connection attempts to the victim, all clients together: each is a client that
    /// waited one connect timeout (blackhole) or was sent elsewhere at once (reset, kill).
    victim_failures: Option<u64>,
}

fn run(test: &str, fault: Fault) -> Outcome {
    let lab = Lab::new(5).expect("lab");
    let scratch = Scratch::new(test);
    let mut nginx: Vec<LabProcess> = SERVERS
        .iter()
        .map(|&host| start_nginx(&lab, &scratch, host))
        .collect();
    let config = scratch.write("vipd.yaml", &vipd_config(&lab));
    let log = scratch.path("vipd.log");
    let _vipd = start_vipd(&lab, LB, &config, &log);
    wait_for_control(&lab, LB);
    assert!(
        wait_until(Duration::from_secs(15), || servers_up(&lab) == Some(3)).is_some(),
        "the servers never came up: {:?}\n{}",
        status(&lab, LB),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let target = SocketAddr::new(lab.host(LB).ipv4.into(), 80);
    let script = scratch.write("count.lua", WRK_SCRIPT);
    let mut wrk = lab
        .command_in(
            CLIENT,
            &[
                "wrk",
                "-t1",
                &format!("-c{WRK_CONNECTIONS}"),
                "--timeout",
                "10s",
                "-H",
                "Connection: close",
                "-d",
                &format!("{}s", (BEFORE + AFTER).as_secs()),
                "-s",
                &script.display().to_string(),
                &format!("http://{target}/"),
            ],
        )
        .expect("host exists");
    let wrk = std::thread::spawn(move || wrk.output());
    let started = Instant::now();
    let probing = lab
        .spawn_in_host(CLIENT, move || probe(target, started, BEFORE + AFTER))
        .expect("probe");
    std::thread::sleep(BEFORE);
    let fault_at = started.elapsed();
    apply_fault(&lab, fault, &mut nginx[0]);
    let faulted = Instant::now();
    let marked_down_after =
        wait_until(AFTER, || servers_up(&lab) == Some(2)).map(|_| faulted.elapsed());
    let probes = probing.join().expect("probe thread").expect("probe ran");
    let wrk = wrk.join().expect("wrk thread").expect("wrk ran");
    let victim_failures = status(&lab, LB)
        .ok()
        .and_then(|status| status["backends"][0]["servers"][0]["connect_errors"].as_u64());
    let changes: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("health changed") || line.contains("marked down"))
        .map(str::to_owned)
        .collect();
    eprintln!("{}", changes.join("\n"));
    Outcome {
        probes,
        fault_at,
        marked_down_after,
        wrk: String::from_utf8_lossy(&wrk.stdout).into_owned(),
        victim_failures,
    }
}

fn check(test: &str, fault: Fault) {
    if !vipd_lab::e2e_enabled(test) {
        return;
    }
    let outcome = run(test, fault);
    let summary = outcome
        .wrk
        .lines()
        .find(|line| line.starts_with("vipd-wrk"))
        .unwrap_or("no wrk summary")
        .to_owned();
    let waited: Vec<&Probe> = outcome.probes.iter().filter(|p| p.took > WAITED).collect();
    for p in &waited {
        eprintln!(
            "waited: at {:?} took {:?} (fault at {:?})",
            p.at, p.took, outcome.fault_at
        );
    }
    let longest = outcome
        .probes
        .iter()
        .map(|p| p.took)
        .max()
        .unwrap_or_default();
    println!(
        "{fault:?}: {summary}; probe: {} clients, {} waited, longest {longest:?}; marked down after {:?}; failed attempts on it {:?}",
        outcome.probes.len(),
        waited.len(),
        outcome.marked_down_after,
        outcome.victim_failures
    );
    // Sessions open on a server that is killed end with its reset: vipd cannot tell whether
    // it had taken the request, so it does not send it again (HAProxy in TCP mode does not
    // either). A probe has at most one such session.
    let lost_on_victim = if matches!(fault, Fault::Kill) {
        PROBES
    } else {
        0
    };
    let unanswered = outcome.probes.iter().filter(|p| !p.answered).count();
    assert!(
        unanswered <= lost_on_victim,
        "{unanswered} clients got no answer"
    );
    assert!(
        longest < CONNECT_TIMEOUT + Duration::from_millis(500),
        "no client waits more than one timeout.connect: {longest:?}"
    );
    let marked_down = outcome
        .marked_down_after
        .expect("the server is marked down");
    // N failures need at most one connect timeout after the fault (the first attempts hit it
    // then); the health checks alone would take interval + fall × timeout, over 3 s.
    assert!(
        marked_down < CONNECT_TIMEOUT + Duration::from_secs(1),
        "marked down after {marked_down:?}"
    );
    // After the mark-down (and the status poll that saw it), nobody waits.
    let quiet_from = outcome.fault_at + marked_down + Duration::from_millis(200);
    let late_waiters: Vec<Duration> = waited
        .iter()
        .filter(|p| p.at > quiet_from)
        .map(|p| p.took)
        .collect();
    assert!(
        late_waiters.is_empty(),
        "waited after the mark-down: {late_waiters:?}"
    );
    let wrk_errors: usize = summary
        .rsplit("errors=")
        .next()
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(usize::MAX);
    let lost_on_victim = if matches!(fault, Fault::Kill) {
        WRK_CONNECTIONS
    } else {
        0
    };
    assert!(
        wrk_errors <= lost_on_victim,
        "wrk saw errors: {}",
        outcome.wrk
    );
}

#[test]
fn a_blackholed_server_costs_a_client_at_most_one_connect_timeout() {
    check(
        "a_blackholed_server_costs_a_client_at_most_one_connect_timeout",
        Fault::Blackhole,
    );
}

#[test]
fn a_server_answering_with_resets_costs_clients_nothing() {
    check(
        "a_server_answering_with_resets_costs_clients_nothing",
        Fault::Reset,
    );
}

#[test]
fn a_killed_server_costs_clients_nothing() {
    check("a_killed_server_costs_clients_nothing", Fault::Kill);
}
