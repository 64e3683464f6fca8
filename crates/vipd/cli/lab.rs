//! `vipd lab [--mode active-standby|active-active|bgp] [--advert-interval 100ms] [--no-demo]`: a
//! vipd pair on one machine, in network namespaces, to watch failover happen; or, with
//! `--mode bgp`, three nodes announcing a VIP over BGP through BIRD ([`bgp`]).
//!
//! The lab (crate vipd-lab) is one bridge and six hosts: `lb1` and `lb2` run `vipd run` (this
//! binary), three backends run a tiny built-in HTTP server on threads inside their namespaces, and a
//! client sends requests through the VIP(s) without pause. Only iproute2 is needed. The demo shows
//! the pair's status, kills the master the hard way (SIGKILL and its link cut at the same instant:
//! a dead machine, not a polite shutdown), measures how long the backup takes to hold the VIP and
//! what the client saw, then brings the old master back and watches it preempt. `--no-demo` keeps
//! the lab up with a live view until Ctrl-C.
//!
//! Everything is torn down on exit, on error and on SIGINT / SIGTERM: processes stopped by PID,
//! namespaces deleted, the temporary directory removed. The daemons run in their own process
//! group so that a Ctrl-C in the terminal reaches only this process, which then stops them in
//! order. Addresses come from the lab's plan only (198.51.100.0/24).

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, ValueEnum};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::http::Client;
use vipd_lab::{AddressWatch, Lab, LabError, LabProcess, Watching};

mod bgp;

/// The load-balancer nodes: name and lab host index.
const NODES: [(&str, usize); 2] = [("lb1", 0), ("lb2", 1)];
/// Lab hosts running the built-in backend server.
const BACKEND_HOSTS: [usize; 3] = [2, 3, 4];
const CLIENT_HOST: usize = 5;
const HOSTS: usize = 6;
const BACKEND_PORT: u16 = 8080;
const FRONTEND_PORT: u16 = 80;
/// The control server's default address, inside each node's namespace.
const CONTROL: SocketAddr = vipd_config::defaults::CONTROL_LISTEN;
/// A node that has not answered on its control port by then will not.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack on top of protocol times, for process start-up and a loaded machine.
const SLACK: Duration = Duration::from_secs(5);
/// How often the live view is redrawn.
const VIEW_PERIOD: Duration = Duration::from_millis(500);
/// The client's pause between two requests.
const CLIENT_PAUSE: Duration = Duration::from_millis(20);
/// The client's connect timeout: a SYN sent to a dead master's MAC is lost, and the kernel's
/// own retransmission (1 s) would hide how soon the new master answers.
const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// The backends answer at once; a reply that takes this long went to a node that died.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_millis(500);
/// The client's log of attempts is bounded (a demo makes a few thousand).
const MAX_ATTEMPTS_LOGGED: usize = 200_000;

#[derive(Args)]
pub struct LabArgs {
    /// One VIP with a preferred master, two VIPs with crossed priorities (each node masters one),
    /// or three nodes announcing one VIP over BGP through BIRD (needs bird2; docs/bgp.md).
    #[arg(long, value_enum, default_value_t = LabMode::ActiveStandby)]
    mode: LabMode,
    /// VRRPv3 advertisement interval of both nodes: a multiple of 10ms, 10ms..=40.95s.
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    advert_interval: String,
    /// Keep the lab running with the live view until Ctrl-C, without the failover demo.
    #[arg(long)]
    no_demo: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LabMode {
    ActiveStandby,
    ActiveActive,
    Bgp,
}

/// One virtual router of the lab, as both nodes configure it.
#[derive(Clone)]
struct InstanceSpec {
    name: &'static str,
    vrid: u8,
    vip: Ipv4Addr,
    /// Priority on lb1 and on lb2.
    priorities: [u8; 2],
}

impl InstanceSpec {
    /// The index (into [`NODES`]) of the node that masters this instance when both are up.
    fn home(&self) -> usize {
        usize::from(self.priorities[1] > self.priorities[0])
    }
}

fn instances(mode: LabMode) -> Vec<InstanceSpec> {
    match mode {
        LabMode::ActiveStandby => vec![InstanceSpec {
            name: "vip",
            vrid: 51,
            vip: Lab::vip_v4(0),
            priorities: [150, 100],
        }],
        LabMode::ActiveActive => vec![
            InstanceSpec {
                name: "vip-a",
                vrid: 51,
                vip: Lab::vip_v4(0),
                priorities: [150, 100],
            },
            InstanceSpec {
                name: "vip-b",
                vrid: 52,
                vip: Lab::vip_v4(1),
                priorities: [100, 150],
            },
        ],
        // Announced over BGP, not elected: bgp::run builds a lab of its own.
        LabMode::Bgp => Vec::new(),
    }
}

/// The configuration file of node `node` (index into [`NODES`]).
fn node_config(
    node: usize,
    specs: &[InstanceSpec],
    interval: &str,
    backends: &[Ipv4Addr],
) -> String {
    let mut text = format!(
        "# Written by `vipd lab`; see docs/configuration.md.\nnode: {}\nshutdown_grace: 1s\nvrrp:\n",
        NODES[node].0
    );
    for spec in specs {
        let _ = write!(
            text,
            "  - name: {}\n    interface: eth0\n    vrid: {}\n    priority: {}\n    peer_priority: {}\n    advert_interval: {interval}\n    vips: [{}/24]\n",
            spec.name,
            spec.vrid,
            spec.priorities[node],
            spec.priorities[1 - node],
            spec.vip,
        );
    }
    let binds: Vec<String> = specs
        .iter()
        .map(|spec| format!("\"{}:{FRONTEND_PORT}\"", spec.vip))
        .collect();
    let _ = write!(
        text,
        "frontends:\n  - name: web\n    bind: [{}]\n    backend: web\nbackends:\n  - name: web\n    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}\n    servers:\n",
        binds.join(", ")
    );
    for (number, address) in backends.iter().enumerate() {
        let _ = writeln!(
            text,
            "      - {{ name: b{}, address: \"{address}:{BACKEND_PORT}\" }}",
            number + 1
        );
    }
    text
}

/// Ended the lab early on SIGINT / SIGTERM.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

pub fn run(args: &LabArgs) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "lab needs root: it creates network namespaces and runs vipd in them. Run `sudo {} lab`",
            std::env::current_exe()
                .map_or_else(|_| "vipd".to_owned(), |path| path.display().to_string())
        );
    }
    if which_ip().is_none() {
        bail!("lab needs iproute2 (`ip`): apt-get install iproute2");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let signals = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the signal handler's runtime")?;
    watch_signals(&signals, &stop)?;

    let outcome = if args.mode == LabMode::Bgp {
        bgp::run(args.no_demo, &stop)
    } else {
        run_pair(args, &stop)
    };
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A Ctrl-C in a terminal also reaches the `ip` commands the lab runs at that moment:
        // their failure is the interruption, not an error of its own.
        Err(error) if error.is::<Interrupted>() || stop.load(Ordering::SeqCst) => {
            println!("interrupted");
            Ok(if args.no_demo {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(130)
            })
        }
        Err(error) => Err(error),
    }
}

/// The VRRP pair lab (active-standby or active-active).
fn run_pair(args: &LabArgs, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let specs = instances(args.mode);
    let backends: Vec<Ipv4Addr> = BACKEND_HOSTS.iter().map(|host| host_ipv4(*host)).collect();
    let configs: Vec<String> = (0..NODES.len())
        .map(|node| node_config(node, &specs, &args.advert_interval, &backends))
        .collect();
    let (parsed, _) = vipd_config::Config::from_yaml_str(&configs[0])
        .map_err(|errors| anyhow!("--advert-interval {}: {errors}", args.advert_interval))?;
    let interval = parsed
        .vrrp
        .first()
        .map(|instance| instance.advert_interval)
        .context("the lab configuration has an instance")?;

    RunningLab::start(&specs, &configs, interval, Arc::clone(stop)).and_then(
        |mut lab| {
            let outcome = if args.no_demo {
                lab.live_view()
            } else {
                lab.demo()
            };
            let namespaces = HOSTS + 1; // the hosts and the bridge
            drop(lab);
            println!(
                "teardown: nodes and backends stopped, {namespaces} namespaces deleted, temporary files removed"
            );
            outcome
        },
    )
}

fn which_ip() -> Option<&'static str> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| Path::new(path).exists())
}

/// Lab host `index`'s address, as the lab assigns it (`198.51.100.{10+index}`).
fn host_ipv4(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, u8::try_from(10 + index).unwrap_or(u8::MAX))
}

/// SIGINT, SIGTERM and SIGHUP (the terminal went away) set `stop`; every loop of the lab checks it.
fn watch_signals(runtime: &tokio::runtime::Runtime, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut interrupt, mut terminate, mut hangup) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ))
        })
        .context("installing the SIGINT / SIGTERM / SIGHUP handlers")?;
    let stop = Arc::clone(stop);
    runtime.spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        stop.store(true, Ordering::SeqCst);
    });
    Ok(())
}

/// One request of the client: when it started and ended, and whether the backend answered.
#[derive(Clone, Copy)]
struct Attempt {
    vip: usize,
    started: Instant,
    ended: Instant,
    ok: bool,
}

#[derive(Default)]
struct ClientLog {
    succeeded: AtomicU64,
    failed: AtomicU64,
    attempts: Mutex<Vec<Attempt>>,
}

impl ClientLog {
    fn record(&self, attempt: Attempt) {
        let counter = if attempt.ok {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        if attempts.len() < MAX_ATTEMPTS_LOGGED {
            attempts.push(attempt);
        }
    }

    /// Requests to VIP `vip` that ended at or after `since` (a request in flight at a failure
    /// counts): (succeeded, failed), and when the first success after the last failure ended
    /// (the client got through for good).
    fn since(&self, vip: usize, since: Instant) -> (u64, u64, Option<Instant>) {
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let relevant: Vec<&Attempt> = attempts
            .iter()
            .filter(|attempt| attempt.vip == vip && attempt.ended >= since)
            .collect();
        let succeeded = relevant.iter().filter(|attempt| attempt.ok).count() as u64;
        let failed = relevant.len() as u64 - succeeded;
        let last_failure = relevant
            .iter()
            .filter(|attempt| !attempt.ok)
            .map(|attempt| attempt.started)
            .max();
        let recovered = relevant
            .iter()
            .filter(|attempt| attempt.ok && last_failure.is_none_or(|last| attempt.started > last))
            .map(|attempt| attempt.ended)
            .min();
        (succeeded, failed, recovered)
    }
}

/// A row of the live view.
struct InstanceRow {
    node: &'static str,
    instance: String,
    state: String,
    priority: String,
    vips: String,
    backends_up: String,
}

/// The lab with its daemons, backends and client; torn down on drop.
struct RunningLab {
    stop: Arc<AtomicBool>,
    /// Stops the backends and the client (not set by signals: teardown sets it).
    workers_stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Result<(), LabError>>>,
    nodes: [Option<LabProcess>; 2],
    client: Arc<ClientLog>,
    specs: Vec<InstanceSpec>,
    interval: Duration,
    scratch: Scratch,
    lab: Lab,
}

impl RunningLab {
    fn start(
        specs: &[InstanceSpec],
        configs: &[String],
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let scratch = Scratch::create()?;
        for (node, config) in configs.iter().enumerate() {
            std::fs::write(scratch.config(node), config)
                .with_context(|| format!("writing {}", scratch.config(node).display()))?;
        }
        let lab = Lab::new(HOSTS).context("building the lab's namespaces")?;
        let mut running = Self {
            stop,
            workers_stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            nodes: [None, None],
            client: Arc::new(ClientLog::default()),
            specs: specs.to_vec(),
            interval,
            scratch,
            lab,
        };
        running.describe();
        for host in BACKEND_HOSTS {
            running.start_backend(host)?;
        }
        for node in 0..NODES.len() {
            running.start_node(node)?;
        }
        for node in 0..NODES.len() {
            running.wait_for_control(node)?;
        }
        Ok(running)
    }

    fn describe(&self) {
        println!(
            "vipd lab: {} hosts on one bridge (namespaces {}-*), files in {}",
            HOSTS,
            self.lab.name(),
            self.scratch.path.display()
        );
        for (node, (name, host)) in NODES.iter().enumerate() {
            println!(
                "  {name:<8} {:<15} vipd run -c {}",
                host_ipv4(*host),
                self.scratch.config(node).display()
            );
        }
        for (number, host) in BACKEND_HOSTS.iter().enumerate() {
            println!(
                "  b{:<7} {:<15} built-in HTTP server on :{BACKEND_PORT}",
                number + 1,
                host_ipv4(*host)
            );
        }
        let vips: Vec<String> = self
            .specs
            .iter()
            .map(|spec| format!("{}:{FRONTEND_PORT}", spec.vip))
            .collect();
        println!(
            "  {:<8} {:<15} requests to {} every {} ms",
            "client",
            host_ipv4(CLIENT_HOST),
            vips.join(" and "),
            CLIENT_PAUSE.as_millis()
        );
        println!("  advert interval {} ms", self.interval.as_millis());
    }

    fn check_stop(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            Err(Interrupted.into())
        } else {
            Ok(())
        }
    }

    /// Sleeps `duration`, waking early on a signal.
    fn pause(&self, duration: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.check_stop()?;
            std::thread::sleep(Duration::from_millis(20).min(deadline - Instant::now()));
        }
        self.check_stop()
    }

    fn start_backend(&mut self, host: usize) -> anyhow::Result<()> {
        let stop = Arc::clone(&self.workers_stop);
        let name = format!("b{}", host - BACKEND_HOSTS[0] + 1);
        let (ready_tx, ready_rx) = mpsc::channel();
        let handle = self.lab.spawn_in_host(host, move || {
            let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, BACKEND_PORT))
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    listener
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            serve_backend(&listener, &name, &stop);
        })?;
        self.workers.push(handle);
        match ready_rx.recv_timeout(SLACK) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error).context(format!(
                "backend in lab host {host}: listening on :{BACKEND_PORT}"
            )),
            Err(_) => bail!("backend in lab host {host} did not start listening"),
        }
    }

    fn start_node(&mut self, node: usize) -> anyhow::Result<()> {
        let (name, host) = NODES[node];
        let exe = std::env::current_exe().context("finding this vipd binary")?;
        let log_path = self.scratch.log(node);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let exe = exe.display().to_string();
        let config = self.scratch.config(node).display().to_string();
        let mut command = self.lab.command_in(host, &[&exe, "run", "-c", &config])?;
        command
            .env("VIPD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            // Its own process group: Ctrl-C in the terminal reaches the lab, which stops the
            // daemons in order, instead of reaching every process at once.
            .process_group(0);
        let process = self
            .lab
            .spawn_command(command)
            .with_context(|| format!("starting vipd on {name}"))?;
        self.nodes[node] = Some(process);
        Ok(())
    }

    fn wait_for_control(&mut self, node: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        loop {
            self.check_stop()?;
            if self.node_status(node).is_ok() {
                return Ok(());
            }
            // A daemon that exited (a bad file, a taken port) will never answer: say so at once.
            let exited = self.nodes[node].as_mut().is_none_or(LabProcess::has_exited);
            if exited || Instant::now() > deadline {
                let what = if exited { "exited" } else { "did not answer" };
                bail!(
                    "vipd on {} {what} (control server {CONTROL}); its log:\n{}",
                    NODES[node].0,
                    self.log_tail(node)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, node: usize) -> String {
        let text = std::fs::read_to_string(self.scratch.log(node)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `GET /status` of node `node`, from a thread inside its namespace.
    fn node_status(&self, node: usize) -> anyhow::Result<serde_json::Value> {
        let body = self
            .lab
            .in_host(NODES[node].1, || http_get(CONTROL, "/status"))??;
        serde_json::from_str(&body).context("the control server's /status is not JSON")
    }

    /// The state of every instance on node `node`, `None` when the daemon does not answer.
    fn states(&self, node: usize) -> Option<Vec<String>> {
        let status = self.node_status(node).ok()?;
        let instances = status["instances"].as_array()?;
        Some(
            self.specs
                .iter()
                .map(|spec| {
                    instances
                        .iter()
                        .find(|entry| entry["name"] == spec.name)
                        .and_then(|entry| entry["state"].as_str())
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect(),
        )
    }

    /// Waits until every instance is master on `masters[i]` (index into [`NODES`]) and backup on
    /// the other node, when that one runs.
    fn wait_for_masters(&self, masters: &[usize], timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            self.check_stop()?;
            let states: Vec<Option<Vec<String>>> =
                (0..NODES.len()).map(|node| self.states(node)).collect();
            let settled = masters.iter().enumerate().all(|(instance, master)| {
                let master_ok = states[*master]
                    .as_ref()
                    .is_some_and(|states| states[instance] == "master");
                let other = 1 - master;
                let other_ok = self.nodes[other].is_none()
                    || states[other]
                        .as_ref()
                        .is_some_and(|states| states[instance] == "backup");
                master_ok && other_ok
            });
            if settled {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the pair did not settle within {timeout:?}:\n{}\nlb1 log:\n{}\nlb2 log:\n{}",
                    self.render_view(),
                    self.log_tail(0),
                    self.log_tail(1)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn rows(&self) -> Vec<InstanceRow> {
        let mut rows = Vec::new();
        for (node, (name, _)) in NODES.iter().enumerate() {
            let status = if self.nodes[node].is_some() {
                self.node_status(node).ok()
            } else {
                None
            };
            let Some(status) = status else {
                rows.push(InstanceRow {
                    node: name,
                    instance: "-".into(),
                    state: if self.nodes[node].is_some() {
                        "no answer"
                    } else {
                        "down"
                    }
                    .into(),
                    priority: "-".into(),
                    vips: "-".into(),
                    backends_up: "-".into(),
                });
                continue;
            };
            let backends_up = status["backends"].as_array().map_or_else(
                || "-".to_owned(),
                |backends| {
                    let up: u64 = backends
                        .iter()
                        .filter_map(|backend| backend["servers_up"].as_u64())
                        .sum();
                    let total: usize = backends
                        .iter()
                        .filter_map(|backend| backend["servers"].as_array().map(Vec::len))
                        .sum();
                    format!("{up}/{total}")
                },
            );
            for instance in status["instances"].as_array().into_iter().flatten() {
                let state = instance["state"].as_str().unwrap_or("?").to_owned();
                let vips = if state == "master" {
                    instance["vips"]
                        .as_array()
                        .map(|vips| {
                            vips.iter()
                                .filter_map(|vip| vip.as_str())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default()
                } else {
                    "-".to_owned()
                };
                rows.push(InstanceRow {
                    node: name,
                    instance: instance["name"].as_str().unwrap_or("?").to_owned(),
                    state,
                    priority: instance["effective_priority"].to_string(),
                    vips,
                    backends_up: backends_up.clone(),
                });
            }
        }
        rows
    }

    fn render_view(&self) -> String {
        let mut text = format!(
            "  {:<5} {:<9} {:<10} {:>4}  {:<20} {}\n",
            "node", "instance", "state", "prio", "VIPs", "backends up"
        );
        for row in self.rows() {
            let _ = writeln!(
                text,
                "  {:<5} {:<9} {:<10} {:>4}  {:<20} {}",
                row.node, row.instance, row.state, row.priority, row.vips, row.backends_up
            );
        }
        let succeeded = self.client.succeeded.load(Ordering::Relaxed);
        let failed = self.client.failed.load(Ordering::Relaxed);
        if succeeded + failed > 0 {
            let _ = writeln!(
                text,
                "  client: {succeeded} requests succeeded, {failed} failed"
            );
        }
        text
    }

    fn start_client(&mut self) -> anyhow::Result<()> {
        let stop = Arc::clone(&self.workers_stop);
        let log = Arc::clone(&self.client);
        let targets: Vec<SocketAddr> = self
            .specs
            .iter()
            .map(|spec| SocketAddr::new(IpAddr::V4(spec.vip), FRONTEND_PORT))
            .collect();
        let handle = self.lab.spawn_in_host(CLIENT_HOST, move || {
            let mut next = 0;
            while !stop.load(Ordering::SeqCst) {
                let vip = next % targets.len();
                next += 1;
                let started = Instant::now();
                let ok =
                    http_get(targets[vip], "/").is_ok_and(|body| body.starts_with("hello from b"));
                log.record(Attempt {
                    vip,
                    started,
                    ended: Instant::now(),
                    ok,
                });
                std::thread::sleep(CLIENT_PAUSE);
            }
        })?;
        self.workers.push(handle);
        Ok(())
    }

    /// Skew_Time of a backup with `priority` (RFC 5798 section 6.1).
    fn skew(&self, priority: u8) -> Duration {
        self.interval * (256 - u32::from(priority)) / 256
    }

    /// Master_Down_Interval of a backup with `priority` (RFC 5798 section 6.1).
    fn master_down_interval(&self, priority: u8) -> Duration {
        self.interval * 3 + self.skew(priority)
    }

    fn demo(&mut self) -> anyhow::Result<()> {
        let homes: Vec<usize> = self.specs.iter().map(InstanceSpec::home).collect();
        self.demo_election(&homes)?;
        // The failure: lb1 dies as a machine does, process and cable at the same instant.
        let victim = 0;
        let moved: Vec<usize> = (0..self.specs.len())
            .filter(|index| homes[*index] == victim)
            .collect();
        let (killed, down_interval) = self.demo_failure(victim, &moved)?;
        self.demo_client_recovery(&moved, killed, down_interval)?;
        self.demo_return(victim, &moved, &homes)?;
        let failed = self.client.failed.load(Ordering::Relaxed);
        let succeeded = self.client.succeeded.load(Ordering::Relaxed);
        println!("\ndemo done: client {succeeded} requests succeeded, {failed} failed in total");
        Ok(())
    }

    /// Steps 1 and 2: the pair elects its master(s), and the client sends through the VIP(s).
    fn demo_election(&mut self, homes: &[usize]) -> anyhow::Result<()> {
        let election_bound = self.master_down_interval(1) * 2 + SLACK;
        let elected = self.wait_for_masters(homes, election_bound)?;
        println!(
            "\n[1/4] election: settled {} ms after both daemons answered",
            elected.as_millis()
        );
        print!("{}", self.render_view());
        self.start_client()?;
        let observe = (self.interval * 3).max(Duration::from_secs(2));
        self.pause(observe)?;
        println!(
            "\n[2/4] client traffic through the VIP(s) for {} ms",
            observe.as_millis()
        );
        print!("{}", self.render_view());

        Ok(())
    }

    /// Step 3: the master `victim` dies; returns when it died and the survivor's
    /// Master_Down_Interval, once every VIP it held has moved.
    fn demo_failure(
        &mut self,
        victim: usize,
        moved: &[usize],
    ) -> anyhow::Result<(Instant, Duration)> {
        let survivor = 1 - victim;
        let watchers: Vec<_> = moved
            .iter()
            .map(|index| self.watch_vip_added(survivor, self.specs[*index].vip))
            .collect::<anyhow::Result<_>>()?;
        println!("\n[3/4] failure: SIGKILL to vipd on lb1 and lb1's link cut");
        let killed = Instant::now();
        if let Some(mut process) = self.nodes[victim].take() {
            let pid = Pid::from_raw(i32::try_from(process.pid()).unwrap_or(0));
            let _ = kill(pid, Signal::SIGKILL);
            self.lab.cut_link(NODES[victim].1)?;
            process.stop_with(Signal::SIGKILL);
        }
        let survivor_priority = self
            .specs
            .iter()
            .map(|spec| spec.priorities[survivor])
            .min()
            .unwrap_or(100);
        let down_interval = self.master_down_interval(survivor_priority);
        for (watcher, index) in watchers.into_iter().zip(moved) {
            let vip = self.specs[*index].vip;
            let seen = watcher.wait()?;
            self.check_stop()?;
            let Some(seen) = seen else {
                bail!(
                    "VIP {vip} did not move to lb2 within {:?}",
                    down_interval + SLACK
                );
            };
            let takeover = seen.saturating_duration_since(killed);
            println!(
                "  VIP {vip} moved lb1 -> lb2: takeover time {} ms after the failure (the backup's master-down interval, 3 x {} ms + skew {} ms = {} ms, runs from the master's last advert, which came up to one interval before the failure)",
                takeover.as_millis(),
                self.interval.as_millis(),
                self.skew(survivor_priority).as_millis(),
                down_interval.as_millis()
            );
        }
        Ok((killed, down_interval))
    }

    /// What the client saw after the failure: how soon it got through again, and how much failed.
    fn demo_client_recovery(
        &mut self,
        moved: &[usize],
        killed: Instant,
        down_interval: Duration,
    ) -> anyhow::Result<()> {
        // Give the client time to get through again, then report what it saw.
        let deadline = Instant::now() + down_interval + SLACK;
        for index in moved {
            loop {
                self.check_stop()?;
                let (_, _, recovered) = self.client.since(*index, killed);
                if recovered.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the client never got through VIP {} again",
                        self.specs[*index].vip
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.pause(Duration::from_secs(1))?;
        for index in moved {
            let (succeeded, failed, recovered) = self.client.since(*index, killed);
            let recovered = recovered.map_or_else(
                || "-".to_owned(),
                |at| at.saturating_duration_since(killed).as_millis().to_string(),
            );
            println!(
                "  client via {}: served again {recovered} ms after the failure; {failed} requests failed, {succeeded} succeeded since the failure",
                self.specs[*index].vip
            );
        }
        print!("{}", self.render_view());

        Ok(())
    }

    /// Step 4: the old master comes back as after a reboot and preempts.
    fn demo_return(
        &mut self,
        victim: usize,
        moved: &[usize],
        homes: &[usize],
    ) -> anyhow::Result<()> {
        // The return: lb1 reboots (link up, no address left from before) and starts vipd.
        println!(
            "\n[4/4] lb1 comes back (link up, addresses gone as after a reboot) and vipd starts again"
        );
        self.lab.restore_link(NODES[victim].1)?;
        for index in moved {
            let vip = format!("{}/24", self.specs[*index].vip);
            let _ = self
                .lab
                .run(NODES[victim].1, &["ip", "addr", "del", &vip, "dev", "eth0"]);
        }
        let restarted = Instant::now();
        self.start_node(victim)?;
        self.wait_for_control(victim)?;
        self.wait_for_masters(homes, self.master_down_interval(1) * 2 + SLACK)?;
        println!(
            "  lb1 preempted: master again {} ms after its vipd started",
            restarted.elapsed().as_millis()
        );
        self.pause(Duration::from_secs(1))?;
        for index in moved {
            let (succeeded, failed, _) = self.client.since(*index, restarted);
            println!(
                "  client via {} since lb1's return: {failed} requests failed, {succeeded} succeeded",
                self.specs[*index].vip
            );
        }
        print!("{}", self.render_view());
        Ok(())
    }

    fn live_view(&mut self) -> anyhow::Result<()> {
        let homes: Vec<usize> = self.specs.iter().map(InstanceSpec::home).collect();
        self.wait_for_masters(&homes, self.master_down_interval(1) * 2 + SLACK)?;
        self.start_client()?;
        println!(
            "\nlive status, every {} ms; Ctrl-C to stop and tear down",
            VIEW_PERIOD.as_millis()
        );
        let redraw = std::io::stdout().is_terminal();
        let mut previous_lines = 0;
        loop {
            let view = self.render_view();
            let mut out = std::io::stdout().lock();
            if redraw && previous_lines > 0 {
                // Cursor up over the previous view, then clear to the end of the screen.
                let _ = write!(out, "\x1b[{previous_lines}A\x1b[J");
            }
            let _ = write!(out, "{view}");
            if !redraw {
                let _ = writeln!(out);
            }
            let _ = out.flush();
            drop(out);
            previous_lines = view.lines().count();
            self.pause(VIEW_PERIOD)?;
        }
    }

    /// Watches lab node `node` for `vip` being added (the lab's netlink watch, from a thread in
    /// its namespace); returns once the subscription is in place. The watch yields when it saw the
    /// address, `None` after the master-down interval plus slack or on a signal.
    fn watch_vip_added(&self, node: usize, vip: Ipv4Addr) -> anyhow::Result<Watching> {
        let timeout = self.master_down_interval(1) + SLACK;
        AddressWatch::added(IpAddr::V4(vip), timeout)
            .cancelled_by(Arc::clone(&self.stop))
            .start(&self.lab, NODES[node].1)
            .with_context(|| format!("watching addresses on {}", NODES[node].0))
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        self.workers_stop.store(true, Ordering::SeqCst);
        // SIGTERM to both daemons first, so that their graceful shutdowns overlap.
        for process in self.nodes.iter().flatten() {
            if let Ok(pid) = i32::try_from(process.pid()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for process in self.nodes.iter_mut().flatten() {
            process.stop();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // Then `lab` (namespaces) and `scratch` (files) drop.
    }
}

/// Serves `hello from NAME` over HTTP/1.0 until `stop` is set; one short request at a time.
fn serve_backend(listener: &TcpListener, name: &str, stop: &AtomicBool) {
    let reply = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello from {name}\n"
    );
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                // Read the request head (it fits one small read), then answer and close.
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(reply.as_bytes());
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// `GET path` to `target` from the calling thread (inside a lab namespace); the body of a 200
/// answer. Short timeouts: a SYN sent to a dead master's MAC is lost, and the kernel's own
/// retransmission (1 s) would hide how soon the new master answers.
fn http_get(target: SocketAddr, path: &str) -> anyhow::Result<String> {
    let body = Client::new()
        .connect_timeout(CLIENT_CONNECT_TIMEOUT)
        .timeout(CLIENT_CONNECT_TIMEOUT + CLIENT_READ_TIMEOUT)
        .get_blocking(&target.to_string(), path)?
        .success()?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The lab's temporary directory (configs, logs), removed on drop.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("vipd-lab-{}", std::process::id()));
        // A directory of a previous process with the same PID is stale.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    fn config(&self, node: usize) -> PathBuf {
        self.path.join(format!("{}.yaml", NODES[node].0))
    }

    fn log(&self, node: usize) -> PathBuf {
        self.path.join(format!("{}.log", NODES[node].0))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_write_valid_configurations() {
        let backends = [host_ipv4(2), host_ipv4(3), host_ipv4(4)];
        for mode in [LabMode::ActiveStandby, LabMode::ActiveActive] {
            let specs = instances(mode);
            for node in 0..NODES.len() {
                let text = node_config(node, &specs, "100ms", &backends);
                let (config, _) = vipd_config::Config::from_yaml_str(&text)
                    .unwrap_or_else(|errors| panic!("{errors}\n{text}"));
                assert_eq!(config.vrrp.len(), specs.len());
            }
        }
    }

    #[test]
    fn a_bad_advert_interval_is_refused_by_the_configuration_checks() {
        let specs = instances(LabMode::ActiveStandby);
        let text = node_config(0, &specs, "15ms", &[host_ipv4(2)]);
        assert!(vipd_config::Config::from_yaml_str(&text).is_err());
    }

    #[test]
    fn homes_follow_the_higher_priority() {
        let homes: Vec<usize> = instances(LabMode::ActiveActive)
            .iter()
            .map(InstanceSpec::home)
            .collect();
        assert_eq!(homes, [0, 1]);
    }

    #[test]
    fn host_addresses_match_the_lab_plan() {
        assert_eq!(host_ipv4(0), Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(host_ipv4(CLIENT_HOST), Ipv4Addr::new(198, 51, 100, 15));
    }
}
