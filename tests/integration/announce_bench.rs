//! The announce benchmark's measuring run (tests/bench/bgp.sh): three vipd nodes announce one VIP
//! over BGP (each through its own BIRD) to a BIRD router that spreads the client's connections
//! over them by ECMP (L4 hash), in vipd-lab's [`RoutedLab`]. Not a timed test: `#[ignore]`, it
//! prints one `RESULT` line per run (`FAILED` for a run that could not complete) and asserts
//! nothing about the numbers.
//!
//! Behind every node's vipd is one backend on the node, a [`Greeter`]: it names its node, then
//! echoes, so every connection through the VIP tells which node served it, and an idle
//! connection can be checked later by an echo. vipd tracks its frontend (`min_up: 1`, health
//! checks every 100 ms, fall 2), so a node whose backend dies withdraws the VIP.
//!
//! Runs (node `k` is the one that fails, turn by turn over the repeats):
//! - `spread`: 3000 new connections, one per millisecond: how many each node served.
//! - `backend-failure`, `sigterm`, `sigkill`, `link-cut-bfd`, `link-cut-hold`: under a load of a
//!   new connection every 2 ms, node `k`'s backend dies / its vipd gets SIGTERM / SIGKILL / its
//!   uplink drops every packet (nftables; BFD 100 ms × 3 on, or off with the lab's 3 s hold time):
//!   the time until the router's kernel route lost node `k` (`ip monitor`, as it happens), and how
//!   many of the connections failed.
//! - `flows`: 300 idle connections through the VIP, node `k` withdrawn (SIGTERM: it keeps
//!   serving what reaches it for `withdraw_delay`), then each connection checked by an echo: how
//!   many broke on the surviving nodes, with the router's default multipath hashing (BIRD's own
//!   route) and with a resilient next-hop group ([`ResilientMirror`]: BIRD cannot install one).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::LabProcess;
use vipd_lab::routed::{NODE_INTERFACE, Place, RoutedLab, RoutedOptions};

use crate::support::ecmp::{
    Attempt, Greeter, Load, ResilientMirror, RouteWatch, connect_loop, open_flows, run_in,
};
use crate::support::{Scratch, VIPD};

const NODES: usize = 3;
const SERVICE_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
/// The routing daemon's name for its routes in the router's kernel (`proto bird`).
const ROUTER_PROTOCOL: &str = "bird";
/// vipd's SIGTERM wait between withdrawing and stopping its listeners (the contract's default).
const WITHDRAW_DELAY: Duration = Duration::from_secs(3);
/// Bounds every wait for the router: the lab's hold time is 3 s, a re-established session
/// takes a connect retry (1 s) and an UPDATE.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);
/// The load of the failure runs.
const FAILURE_LOAD: Load = Load {
    every: Duration::from_millis(2),
    span: Duration::from_secs(4),
    timeout: Duration::from_secs(2),
};
/// When, into the load, the failure comes: the load before it shows the steady state.
const FAILURE_AFTER: Duration = Duration::from_secs(1);
const SPREAD_LOAD: Load = Load {
    every: Duration::from_millis(1),
    span: Duration::from_secs(3),
    timeout: Duration::from_secs(2),
};
const FLOWS: usize = 300;
const FLOW_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// One node's vipd and backend.
struct Node {
    vipd: Option<LabProcess>,
    backend: Option<Greeter>,
    config: PathBuf,
    log: PathBuf,
}

/// The lab with vipd and a backend on every node, all three announcing the VIP.
struct Bench {
    nodes: Vec<Node>,
    vip: Ipv4Addr,
    scratch: Scratch,
    // Dropped last: the namespaces outlive the processes in them.
    lab: RoutedLab,
}

fn node_config(name: &str, vip: Ipv4Addr) -> String {
    format!(
        "node: {name}
shutdown_grace: 1s
announce:
  withdraw_delay: {delay}s
  groups:
    - name: ingress
      vips: [\"{vip}\"]
      track:
        - frontend: web
          min_up: 1
frontends:
  - name: web
    bind: [\"{vip}:{SERVICE_PORT}\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: 100ms, timeout: 80ms, rise: 2, fall: 2 }}
    servers:
      - {{ name: app, address: \"127.0.0.1:{BACKEND_PORT}\" }}
",
        delay = WITHDRAW_DELAY.as_secs()
    )
}

impl Bench {
    fn new(bfd: bool) -> Result<Self, String> {
        let lab = RoutedLab::with_options(RoutedOptions {
            nodes: NODES,
            bfd,
            ..RoutedOptions::default()
        })
        .map_err(|error| error.to_string())?;
        let scratch = Scratch::new(&format!("announce-bench-{}", lab.name()));
        // A round opens some 13,000 connections from one client address to one VIP port, each
        // leaving a TIME_WAIT for 60 s: the whole port range, and reuse of those.
        let client = lab
            .netns(Place::Client)
            .map_err(|error| error.to_string())?;
        run_in(
            client,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_local_port_range=1024 65535",
                "net.ipv4.tcp_tw_reuse=1",
            ],
        )?;
        let vip = RoutedLab::vip_v4(0);
        let mut bench = Self {
            nodes: Vec::new(),
            vip,
            scratch,
            lab,
        };
        for index in 0..NODES {
            let name = bench.lab.node(index).name.clone();
            let config = bench
                .scratch
                .write(&format!("{name}.yaml"), &node_config(&name, vip));
            let log = bench.scratch.path(&format!("{name}.log"));
            bench.nodes.push(Node {
                vipd: None,
                backend: None,
                config,
                log,
            });
            bench.start_backend(index);
            bench.start_vipd(index)?;
        }
        bench.wait_for_all_nodes()?;
        Ok(bench)
    }

    fn netns(&self, place: Place) -> String {
        self.lab
            .netns(place)
            .expect("a place of the lab")
            .to_owned()
    }

    fn target(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.vip), SERVICE_PORT)
    }

    fn start_backend(&mut self, index: usize) {
        let netns = self.netns(Place::Node(index));
        let name = self.lab.node(index).name.clone();
        let listen = SocketAddr::from(([127, 0, 0, 1], BACKEND_PORT));
        self.nodes[index].backend = Some(Greeter::start(&netns, listen, &name));
    }

    fn start_vipd(&mut self, index: usize) -> Result<(), String> {
        let node = &self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|error| error.to_string())?;
        let config = node.config.display().to_string();
        let mut command = self
            .lab
            .command_in(Place::Node(index), &[VIPD, "run", "-c", &config])
            .map_err(|error| error.to_string())?;
        command
            .env("VIPD_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log);
        let process = self
            .lab
            .spawn_command(command)
            .map_err(|error| error.to_string())?;
        self.nodes[index].vipd = Some(process);
        Ok(())
    }

    /// Sends `signal` to node `index`'s vipd and returns at once (a drain takes
    /// `withdraw_delay` and more; [`LabProcess::stop_with`] would SIGKILL it before that).
    fn signal_vipd(&self, index: usize, signal: Signal) -> Result<(), String> {
        let process = self.nodes[index]
            .vipd
            .as_ref()
            .ok_or("vipd is not running")?;
        let pid = i32::try_from(process.pid()).map_err(|error| error.to_string())?;
        kill(Pid::from_raw(pid), signal).map_err(|error| error.to_string())
    }

    /// Waits (bounded) for node `index`'s vipd to exit after a signal, then forgets it.
    fn reap_vipd(&mut self, index: usize) {
        if let Some(mut process) = self.nodes[index].vipd.take() {
            let deadline = Instant::now() + WITHDRAW_DELAY + Duration::from_secs(15);
            while !process.has_exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            process.stop_with(Signal::SIGKILL);
        }
    }

    /// The router's next hop for node `index`.
    fn gateway(&self, index: usize) -> Ipv4Addr {
        self.lab.node(index).ipv4
    }

    fn wait_for_all_nodes(&self) -> Result<Duration, String> {
        self.lab
            .wait_for_next_hop_count(IpAddr::V4(self.vip), NODES, ROUTE_TIMEOUT)
            .map_err(|error| format!("{error}\n{}", self.logs()))
    }

    /// Brings node `index` back to serving and announcing, whatever a run did to it.
    fn restore(&mut self, index: usize) -> Result<(), String> {
        let node = self.netns(Place::Node(index));
        if run_in(&node, &["nft", "delete", "table", "inet", CUT_TABLE]).is_ok() {
            // The link is back, but the node's BIRD, whose session ended in an error (hold
            // timer or BFD), waits `error wait time` (60 s by default) before it connects again:
            // a fresh BIRD skips that wait, which the measurement does not cover.
            self.lab
                .stop_speaker(index, Signal::SIGTERM)
                .and_then(|()| self.lab.start_speaker(index))
                .map_err(|error| error.to_string())?;
        }
        if self.nodes[index].backend.is_none() {
            self.start_backend(index);
        }
        if self.nodes[index]
            .vipd
            .as_mut()
            .is_none_or(LabProcess::has_exited)
        {
            self.reap_vipd(index);
            self.start_vipd(index)?;
        }
        self.wait_for_all_nodes().map(drop)
    }

    /// The last lines of every node's vipd log, for a run that failed.
    fn logs(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let _ = writeln!(text, "--- {}:", node.log.display());
            for line in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }
}

/// The nftables table that blackholes a node's uplink.
const CUT_TABLE: &str = "announce_bench_cut";

/// What one failure run measured.
struct Withdrawal {
    failed_at: Instant,
    /// From the failure to the router's route without the node.
    took: Duration,
    attempts: Vec<Attempt>,
}

fn failed(attempts: &[Attempt]) -> usize {
    attempts
        .iter()
        .filter(|attempt| attempt.served_by.is_err())
        .count()
}

fn longest(attempts: &[Attempt]) -> Duration {
    attempts
        .iter()
        .map(|attempt| attempt.took)
        .max()
        .unwrap_or_default()
}

/// How a failure run fails node `k`.
#[derive(Clone, Copy, Debug)]
enum Failure {
    BackendDies,
    Sigterm,
    Sigkill,
    LinkCut,
}

impl Failure {
    fn inflict(self, bench: &mut Bench, k: usize) -> Result<(), String> {
        match self {
            Self::BackendDies => {
                if let Some(mut backend) = bench.nodes[k].backend.take() {
                    backend.stop();
                }
                Ok(())
            }
            Self::Sigterm => bench.signal_vipd(k, Signal::SIGTERM),
            Self::Sigkill => bench.signal_vipd(k, Signal::SIGKILL),
            Self::LinkCut => {
                let rules = format!(
                    "table inet {CUT_TABLE} {{\n\
                     chain input {{ type filter hook input priority -300; iifname \"{NODE_INTERFACE}\" drop; }}\n\
                     chain output {{ type filter hook output priority -300; oifname \"{NODE_INTERFACE}\" drop; }}\n}}"
                );
                run_in(&bench.netns(Place::Node(k)), &["nft", &rules]).map(drop)
            }
        }
    }
}

/// Under load, fails node `k` as `failure` says; times the router's withdrawal of the node.
fn measure_withdrawal(bench: &mut Bench, failure: Failure, k: usize) -> Result<Withdrawal, String> {
    let router = bench.netns(Place::Router);
    let watch = RouteWatch::start(&router, bench.vip, ROUTER_PROTOCOL)?;
    let load = connect_loop(&bench.netns(Place::Client), bench.target(), FAILURE_LOAD);
    std::thread::sleep(FAILURE_AFTER);
    let failed_at = Instant::now();
    failure.inflict(bench, k)?;
    let gone = bench.gateway(k);
    let withdrawn = watch.wait_for(failed_at, ROUTE_TIMEOUT, |state| {
        !state.gateways().contains(&gone)
    });
    let attempts = load.join().map_err(|_| "the load thread panicked")?;
    if matches!(failure, Failure::Sigterm | Failure::Sigkill) {
        bench.reap_vipd(k);
    }
    let took = withdrawn
        .map(|at| at.saturating_duration_since(failed_at))
        .ok_or_else(|| {
            format!(
                "the router kept {gone} for {ROUTE_TIMEOUT:?}\n{}",
                bench.logs()
            )
        })?;
    bench.restore(k)?;
    Ok(Withdrawal {
        failed_at,
        took,
        attempts,
    })
}

/// Which flows still worked after node `k` was withdrawn: (broken, total) on the surviving
/// nodes, then on node `k`.
fn measure_flows(
    bench: &mut Bench,
    resilient: bool,
    k: usize,
) -> Result<[(usize, usize); 2], String> {
    let router = bench.netns(Place::Router);
    let mirror = resilient
        .then(|| ResilientMirror::start(&router, bench.vip, ROUTER_PROTOCOL))
        .transpose()?;
    let watch = RouteWatch::start(&router, bench.vip, ROUTER_PROTOCOL)?;
    let flows = open_flows(&bench.netns(Place::Client), bench.target(), FLOWS)?;
    let dead_before = flows
        .iter()
        .filter(|flow| !flow.alive(FLOW_CHECK_TIMEOUT))
        .count();
    if dead_before > 0 {
        return Err(format!("{dead_before} flows broke before any withdrawal"));
    }
    let withdrawn_at = Instant::now();
    bench.signal_vipd(k, Signal::SIGTERM)?;
    let gone = bench.gateway(k);
    watch
        .wait_for(withdrawn_at, ROUTE_TIMEOUT, |state| {
            !state.gateways().contains(&gone)
        })
        .ok_or("the router kept the withdrawn node")?;
    // The mirror follows the daemon's route within milliseconds.
    std::thread::sleep(Duration::from_millis(100));
    let name = bench.lab.node(k).name.clone();
    let mut counts = [(0, 0); 2];
    for flow in &flows {
        let slot = usize::from(flow.node == name);
        counts[slot].1 += 1;
        if !flow.alive(FLOW_CHECK_TIMEOUT) {
            counts[slot].0 += 1;
        }
    }
    drop(flows);
    if let Some(mirror) = mirror {
        mirror.stop()?;
    }
    bench.reap_vipd(k);
    bench.restore(k)?;
    Ok(counts)
}

fn report_withdrawal(case: &str, k: usize, repeat: usize, result: Result<Withdrawal, String>) {
    match result {
        Ok(run) => {
            println!(
                "RESULT withdraw {case} lb{} {repeat} {:.1} {} {} {:.1}",
                k + 1,
                run.took.as_secs_f64() * 1000.0,
                failed(&run.attempts),
                run.attempts.len(),
                longest(&run.attempts).as_secs_f64() * 1000.0,
            );
            println!(
                "DETAIL {case} lb{} {repeat}: {}",
                k + 1,
                failure_detail(&run)
            );
        }
        Err(error) => println!("FAILED withdraw {case} lb{} {repeat}: {error}", k + 1),
    }
}

/// Why the failed connections failed and when they started, in ms from the failure.
fn failure_detail(run: &Withdrawal) -> String {
    let mut reasons: Vec<(String, usize, f64, f64)> = Vec::new();
    for attempt in &run.attempts {
        let Err(reason) = &attempt.served_by else {
            continue;
        };
        let offset = if attempt.at >= run.failed_at {
            attempt.at.duration_since(run.failed_at).as_secs_f64() * 1000.0
        } else {
            -(run.failed_at.duration_since(attempt.at).as_secs_f64() * 1000.0)
        };
        match reasons.iter_mut().find(|(known, ..)| known == reason) {
            Some((_, count, first, last)) => {
                *count += 1;
                *first = first.min(offset);
                *last = last.max(offset);
            }
            None => reasons.push((reason.clone(), 1, offset, offset)),
        }
    }
    if reasons.is_empty() {
        return "no failed connection".to_owned();
    }
    reasons
        .iter()
        .map(|(reason, count, first, last)| {
            format!("{count} × \"{reason}\", started {first:.1} to {last:.1} ms after the failure")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn spread(bench: &Bench, repeat: usize) {
    let attempts = connect_loop(&bench.netns(Place::Client), bench.target(), SPREAD_LOAD)
        .join()
        .expect("load thread");
    let served = |name: &str| {
        attempts
            .iter()
            .filter(|attempt| attempt.served_by.as_deref() == Ok(name))
            .count()
    };
    let counts: Vec<String> = bench
        .lab
        .nodes()
        .iter()
        .map(|node| served(&node.name).to_string())
        .collect();
    println!(
        "RESULT spread {repeat} {} {} {}",
        counts.join(" "),
        failed(&attempts),
        attempts.len()
    );
}

fn repeats() -> usize {
    std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3)
}

/// Runs tests/bench/bgp.sh's measurements: `BENCH_REPEATS` (default 3) rounds of every run.
#[test]
#[ignore = "a benchmark, run by tests/bench/bgp.sh"]
fn announce_benchmark() {
    if !vipd_lab::e2e_enabled("announce_benchmark") {
        return;
    }
    let repeats = repeats();
    let mut bench = Bench::new(false).expect("the lab with three announcing nodes");
    for repeat in 1..=repeats {
        let k = (repeat - 1) % NODES;
        spread(&bench, repeat);
        for (case, failure) in [
            ("backend-failure", Failure::BackendDies),
            ("sigterm", Failure::Sigterm),
            ("sigkill", Failure::Sigkill),
            ("link-cut-hold", Failure::LinkCut),
        ] {
            report_withdrawal(case, k, repeat, measure_withdrawal(&mut bench, failure, k));
        }
        for (mode, resilient) in [("default", false), ("resilient", true)] {
            for k in 0..NODES {
                match measure_flows(&mut bench, resilient, k) {
                    Ok([(broken, survivors), (lost, withdrawn)]) => println!(
                        "RESULT flows {mode} lb{} {repeat} {broken} {survivors} {lost} {withdrawn}",
                        k + 1
                    ),
                    Err(error) => println!("FAILED flows {mode} lb{} {repeat}: {error}", k + 1),
                }
            }
        }
    }
    drop(bench);
    let mut bench = Bench::new(true).expect("the lab with BFD");
    for repeat in 1..=repeats {
        let k = (repeat - 1) % NODES;
        let result = measure_withdrawal(&mut bench, Failure::LinkCut, k);
        report_withdrawal("link-cut-bfd", k, repeat, result);
    }
}
