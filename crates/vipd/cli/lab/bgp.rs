//! `vipd lab --mode bgp`: three vipd nodes announcing one VIP over BGP, on one machine.
//!
//! The lab is vipd-lab's [`RoutedLab`]: a router namespace running BIRD with an eBGP session to
//! each node and the VIP as one ECMP route (L4 hash), three nodes each running BIRD with
//! deploy/bird/vipd-node.conf as shipped, and a client behind the router. Every node runs a
//! backend answering with the node's name and `vipd run` (this binary) announcing the VIP while
//! its frontend has a server up. The demo shows the route with its three next hops and which
//! node served the client's connections, then fails one node's backend and times the route
//! leaving that node, counts what the client saw, brings the backend back and watches the node
//! rejoin. `--no-demo` keeps the lab up with a live view until Ctrl-C. Needs BIRD 2 (`bird2`)
//! besides iproute2. Documentation addresses only (198.51.100.0/24, 203.0.113.0/24).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use vipd_lab::{
    Attempt, ConnectionLoop, ConnectionPlan, ConnectionReport, LabProcess, Place, RoutedLab,
};

use super::{FRONTEND_PORT, Interrupted, VIEW_PERIOD};

const NODES: usize = 3;
const BACKEND_PORT: u16 = 8080;
/// The node whose backend fails in the demo (lb3).
const FAILING: usize = 2;
const GROUP: &str = "ingress";
/// Health checks of the node's one server: a refused connection marks it down at the next check.
const HEALTH_INTERVAL_MS: u64 = 200;
/// Process start, BGP sessions and route propagation on a loaded machine.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// The client's pace, and its bound on connecting and reading (a connection to a node that no
/// longer has the route waits on nothing: it is answered or reset at once).
const CLIENT_INTERVAL: Duration = Duration::from_millis(20);
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the demo watches the client in each phase.
const PHASE: Duration = Duration::from_secs(2);

/// The BGP lab: the routed topology, one backend and one vipd per node.
struct BgpLab {
    // Field order: vipd stops (withdrawing) before the backends and the lab's BIRDs.
    nodes: Vec<Option<LabProcess>>,
    backends: Vec<Option<Backend>>,
    lab: RoutedLab,
    stop: Arc<AtomicBool>,
}

pub(super) fn run(no_demo: bool, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    if !Path::new("/usr/sbin/bird").exists() {
        bail!("lab --mode bgp needs BIRD 2 (/usr/sbin/bird): apt-get install bird2");
    }
    let mut lab = BgpLab::start(Arc::clone(stop))?;
    let outcome = if no_demo { lab.live_view() } else { lab.demo() };
    drop(lab);
    println!(
        "teardown: vipd, backends and BIRD stopped, {} namespaces deleted, temporary files removed",
        NODES + 2
    );
    outcome
}

impl BgpLab {
    fn start(stop: Arc<AtomicBool>) -> anyhow::Result<Self> {
        println!(
            "building the lab: a router running BIRD (AS 65000, ECMP, L4 hash), {NODES} nodes each \
             running BIRD with deploy/bird/vipd-node.conf, a client behind the router"
        );
        let lab = RoutedLab::new().context("building the routed lab")?;
        let files = lab.file("lab");
        let files = files.parent().unwrap_or(&files).to_path_buf();
        println!(
            "lab {}: namespaces {}-*, files in {}",
            lab.name(),
            lab.name(),
            files.display()
        );
        let mut this = Self {
            nodes: Vec::new(),
            backends: Vec::new(),
            lab,
            stop,
        };
        for node in 0..NODES {
            this.check_stop()?;
            let backend = Backend::start(&this.lab, node)?;
            this.backends.push(Some(backend));
            let vipd = this.start_vipd(node)?;
            this.nodes.push(Some(vipd));
        }
        let names: Vec<&str> = this.lab.nodes().iter().map(|n| n.name.as_str()).collect();
        println!(
            "BGP sessions up; vipd running on {} announcing {} (group {GROUP})",
            names.join(", "),
            vip()
        );
        Ok(this)
    }

    fn start_vipd(&self, node: usize) -> anyhow::Result<LabProcess> {
        let name = &self.lab.node(node).name;
        let config = self.lab.file(&format!("{name}.yaml"));
        std::fs::write(&config, node_config(name)).context("writing a node's vipd.yaml")?;
        let log_path = self.lab.file(&format!("{name}-vipd.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let exe = std::env::current_exe().context("locating this vipd binary")?;
        let (exe, config) = (exe.display().to_string(), config.display().to_string());
        let mut command = self
            .lab
            .command_in(Place::Node(node), &[&exe, "run", "-c", &config])?;
        command
            .env("VIPD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            // As in the pair lab: Ctrl-C reaches `vipd lab`, which stops the daemons in order.
            .process_group(0);
        self.lab
            .spawn_command(command)
            .with_context(|| format!("starting vipd on {name}"))
    }

    fn check_stop(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Interrupted.into());
        }
        Ok(())
    }

    fn node_name(&self, next_hop: IpAddr) -> String {
        self.lab.node_of_next_hop(next_hop).map_or_else(
            || next_hop.to_string(),
            |node| self.lab.node(node).name.clone(),
        )
    }

    /// The router's route for the VIP, next hops by node name.
    fn route_text(&self) -> anyhow::Result<String> {
        let hops = self.lab.router_next_hops(vip())?;
        if hops.is_empty() {
            return Ok("no route: no node announces it".into());
        }
        let names: Vec<String> = hops.iter().map(|hop| self.node_name(*hop)).collect();
        Ok(format!("{} next hop(s): {}", hops.len(), names.join(", ")))
    }

    /// Waits until the router's route for the VIP has `count` next hops; how long it took.
    fn wait_for_next_hops(&self, count: usize) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            self.check_stop()?;
            if self.lab.router_next_hops(vip())?.len() == count {
                return Ok(start.elapsed());
            }
            if start.elapsed() > ROUTE_TIMEOUT {
                bail!(
                    "the router's route for {} did not reach {count} next hops in {} s: {}",
                    vip(),
                    ROUTE_TIMEOUT.as_secs(),
                    self.route_text()?
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs the client for `duration`.
    fn client_for(&self, duration: Duration) -> anyhow::Result<ConnectionReport> {
        let mut plan = ConnectionPlan::every(target(), CLIENT_INTERVAL, duration);
        plan.timeout = CLIENT_TIMEOUT;
        Ok(ConnectionLoop::run(&self.lab, Place::Client, plan)?)
    }

    fn demo(&mut self) -> anyhow::Result<()> {
        let took = self.wait_for_next_hops(NODES)?;
        println!(
            "\nthe router's route for {}: {} ({} ms after the last vipd started)",
            vip(),
            self.route_text()?,
            took.as_millis()
        );
        self.check_stop()?;
        let report = self.client_for(PHASE)?;
        println!(
            "client, {} s of connections: {}",
            PHASE.as_secs(),
            spread(&report.attempts)
        );

        let failing = self.lab.node(FAILING).name.clone();
        println!(
            "\nfailing {failing}'s backend (its listener closes): the frontend's one server goes \
             down, vipd withdraws"
        );
        let mut plan = ConnectionPlan::every(target(), CLIENT_INTERVAL, PHASE * 3);
        plan.timeout = CLIENT_TIMEOUT;
        let client = ConnectionLoop::start(&self.lab, Place::Client, plan)?;
        let failed_at = Instant::now();
        drop(self.backends[FAILING].take());
        let withdrawn = self
            .wait_for_next_hops(NODES - 1)
            .map(|_| failed_at.elapsed());
        std::thread::sleep(PHASE);
        let report = client.stop()?;
        let withdrawn = withdrawn?;
        println!(
            "the route left {failing} {} ms after its backend died (health checks every \
             {HEALTH_INTERVAL_MS} ms): {}",
            withdrawn.as_millis(),
            self.route_text()?
        );
        println!(
            "client since the failure: {} (a failure: a connection {failing} accepted before the \
             withdrawal with no server left to pass it to)",
            spread(report.since(failed_at))
        );

        self.check_stop()?;
        println!("\n{failing}'s backend back");
        self.backends[FAILING] = Some(Backend::start(&self.lab, FAILING)?);
        let back = self.wait_for_next_hops(NODES)?;
        println!(
            "{failing} announced again after {} ms: {}",
            back.as_millis(),
            self.route_text()?
        );
        let report = self.client_for(PHASE)?;
        println!(
            "client, {} s of connections: {}",
            PHASE.as_secs(),
            spread(&report.attempts)
        );
        Ok(())
    }

    fn live_view(&mut self) -> anyhow::Result<()> {
        self.wait_for_next_hops(NODES)?;
        println!(
            "live view, Ctrl-C to stop; try `ip netns` and `ip netns exec NODE ip addr show dev vipd-announce`"
        );
        loop {
            self.check_stop()?;
            let report = self.client_for(VIEW_PERIOD * 2)?;
            // After a Ctrl-C the terminal's signal has reached the lab's BIRDs too: what the
            // client saw meanwhile is the teardown, not the lab.
            self.check_stop()?;
            println!(
                "{} | client: {}",
                self.route_text()?,
                spread(&report.attempts)
            );
        }
    }
}

/// A node's backend: a thread in the node's namespace that answers every connection on
/// 127.0.0.1 with the node's name and closes it. A thread, not a process, so that a Ctrl-C in the
/// terminal does not kill it before the lab stops vipd; dropping it closes the listener (the
/// backend fails: connections are refused).
struct Backend {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), vipd_lab::LabError>>>,
}

impl Backend {
    fn start(lab: &RoutedLab, node: usize) -> anyhow::Result<Self> {
        let name = lab.node(node).name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = lab.spawn_in_namespace(Place::Node(node), move || {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, BACKEND_PORT))
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener));
            let listener = match listener {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    listener
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            let reply = format!("{name}\n");
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Self {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(error)) => Err(error).context(format!("a backend listening on :{BACKEND_PORT}")),
            Err(_) => bail!("the backend of node {node} did not start listening"),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn vip() -> IpAddr {
    IpAddr::V4(RoutedLab::vip_v4(0))
}

fn target() -> SocketAddr {
    SocketAddr::new(vip(), FRONTEND_PORT)
}

/// Node `name`'s vipd.yaml: the VIP announced while the frontend has its one server up.
fn node_config(name: &str) -> String {
    let vip = vip();
    format!(
        "# Written by `vipd lab --mode bgp`; see docs/bgp.md and docs/configuration.md.
node: {name}
shutdown_grace: 1s
announce:
  withdraw_delay: 1s
  groups:
    - name: {GROUP}
      vips: [{vip}]
      track:
        - {{ frontend: web, min_up: 1 }}
frontends:
  - name: web
    bind: [\"{vip}:{FRONTEND_PORT}\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: {HEALTH_INTERVAL_MS}ms, timeout: 100ms, rise: 1, fall: 1 }}
    servers:
      - {{ name: local, address: \"127.0.0.1:{BACKEND_PORT}\" }}
"
    )
}

/// "lb1 34, lb2 33, lb3 33; 0 failed": who answered how many of `attempts`, and the failures.
fn spread<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> String {
    let mut answers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = 0;
    for attempt in attempts {
        match &attempt.outcome {
            Ok(node) => *answers.entry(node.as_str()).or_default() += 1,
            Err(_) => failed += 1,
        }
    }
    let mut text = String::new();
    for (node, count) in &answers {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let _ = write!(text, "{node} {count}");
    }
    if text.is_empty() {
        text.push_str("no answer");
    }
    let _ = write!(text, "; {failed} failed");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_configuration_is_valid() {
        let (config, _) = vipd_config::Config::from_yaml_str(&node_config("lb1"))
            .unwrap_or_else(|errors| panic!("{errors}"));
        let announce = config.announce.expect("an announce section");
        assert_eq!(announce.groups[0].name, GROUP);
    }
}
