//! The instruments of the announce benchmark (tests/bench/bgp.sh): what a client behind an ECMP
//! router sees of VIPs announced by several nodes, and what the router's kernel does with them.
//!
//! Everything here addresses a network namespace by its `ip netns` name, so it works in any lab
//! that names its namespaces. Like the lab's own checks it shares no code with vipd: the client
//! side is plain tokio sockets, the router side is iproute2 (`ip monitor`, `ip nexthop`).
//!
//! - [`Greeter`]: a backend that says which node it stands behind, then echoes; every connection
//!   through a VIP thereby tells which node served it.
//! - [`connect_loop`]: new connections at a fixed rate, bounded in count and time; each one
//!   succeeds when the greeting arrives.
//! - [`open_flows`] / [`Flow::alive`]: long-lived idle connections, checked later by an echo.
//! - [`RouteWatch`]: the router kernel's route to a VIP as it changes (`ip -o monitor route`).
//! - [`ResilientMirror`]: the same route re-expressed as a resilient next-hop group, for a routing
//!   daemon that cannot install one itself (BIRD 2 cannot).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

/// Runs `work` on a fresh thread inside network namespace `netns` (a thread, because `setns`
/// changes only the calling thread and cannot be undone safely).
pub fn spawn_in_netns<R, F>(netns: &str, work: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let path = format!("/var/run/netns/{netns}");
    let namespace = File::open(&path).unwrap_or_else(|error| panic!("open {path}: {error}"));
    std::thread::spawn(move || {
        setns(&namespace, CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|error| panic!("setns {path}: {error}"));
        work()
    })
}

/// Runs `args` in namespace `netns` (`ip netns exec`); stdout, or the failure as text.
pub fn run_in(netns: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{args:?}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} in {netns}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A TCP backend that writes `NAME\n` to every new connection, then echoes what it reads.
/// Stopping it (or dropping it) closes the listener and every connection, as a crashed backend
/// would: new connects are refused, health checks fail.
pub struct Greeter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Greeter {
    /// Listens on `listen` inside `netns`; returns once the socket is bound.
    pub fn start(netns: &str, listen: SocketAddr, name: &str) -> Self {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let greeting = format!("{name}\n").into_bytes();
        let thread = spawn_in_netns(netns, move || {
            runtime().block_on(async move {
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(greet_and_echo(stream, greeting.clone()));
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stop_rx => {}
                }
                // Leaving the runtime drops the listener and aborts every connection's task.
            });
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("greeter on {listen} in {netns}: {error}"),
            Err(error) => panic!("greeter on {listen} in {netns} did not start: {error}"),
        }
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Closes the listener and every connection; returns once they are closed.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn greet_and_echo(mut stream: tokio::net::TcpStream, greeting: Vec<u8>) {
    if stream.write_all(&greeting).await.is_err() {
        return;
    }
    let mut buffer = [0u8; 1024];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// One new connection of [`connect_loop`]: when it started, how long it took, and which node
/// greeted it (or why it failed).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Instant,
    pub took: Duration,
    pub served_by: Result<String, String>,
}

/// The pace and bounds of [`connect_loop`].
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// A new connection this often.
    pub every: Duration,
    /// For this long: `span / every` connections at most.
    pub span: Duration,
    /// Each one gets this long to connect and be greeted; longer counts as failed.
    pub timeout: Duration,
}

/// From `netns`, a new TCP connection to `target` every `load.every` for `load.span`; each one
/// succeeds when a greeting line arrives within `load.timeout`. Returns every attempt, in order.
pub fn connect_loop(netns: &str, target: SocketAddr, load: Load) -> JoinHandle<Vec<Attempt>> {
    spawn_in_netns(netns, move || {
        runtime().block_on(async move {
            let mut attempts = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(load.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = Instant::now();
            let mut index = 0usize;
            while started.elapsed() < load.span {
                tick.tick().await;
                let at = Instant::now();
                attempts.spawn(async move {
                    let served_by =
                        match tokio::time::timeout(load.timeout, greeting_from(target)).await {
                            Ok(result) => result,
                            Err(_) => Err(format!("no greeting within {:?}", load.timeout)),
                        };
                    (
                        index,
                        Attempt {
                            at,
                            took: at.elapsed(),
                            served_by,
                        },
                    )
                });
                index += 1;
            }
            let mut done = Vec::with_capacity(index);
            while let Some(joined) = attempts.join_next().await {
                done.push(joined.expect("attempt task"));
            }
            done.sort_by_key(|(index, _)| *index);
            done.into_iter().map(|(_, attempt)| attempt).collect()
        })
    })
}

async fn greeting_from(target: SocketAddr) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stream);
    match reader.read_line(&mut line).await {
        Ok(0) => Err("closed before the greeting".to_owned()),
        Ok(_) => Ok(line.trim().to_owned()),
        Err(error) => Err(format!("read: {error}")),
    }
}

/// A long-lived connection through a VIP and the node that greeted it.
pub struct Flow {
    stream: TcpStream,
    pub node: String,
}

impl Flow {
    /// Whether the connection still works end to end: one byte out, the same byte echoed back
    /// within `timeout`. A flow the router now sends to another node gets a reset from there.
    pub fn alive(&self, timeout: Duration) -> bool {
        let mut stream = &self.stream;
        let sent = stream.set_read_timeout(Some(timeout)).is_ok() && stream.write_all(b"x").is_ok();
        let mut echo = [0u8; 1];
        sent && matches!(stream.read(&mut echo), Ok(1)) && echo == *b"x"
    }
}

/// Opens `count` connections from `netns` to `target`, one after the other, and reads each one's
/// greeting; they stay open and idle until checked or dropped.
pub fn open_flows(netns: &str, target: SocketAddr, count: usize) -> Result<Vec<Flow>, String> {
    spawn_in_netns(netns, move || {
        (0..count)
            .map(|_| {
                let stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                    .map_err(|error| format!("connect: {error}"))?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .map_err(|error| error.to_string())?;
                let mut line = String::new();
                BufReader::new(&stream)
                    .read_line(&mut line)
                    .map_err(|error| format!("greeting: {error}"))?;
                Ok(Flow {
                    stream,
                    node: line.trim().to_owned(),
                })
            })
            .collect()
    })
    .join()
    .expect("flow thread")
}

/// The route types `ip route` prints before the destination.
const ROUTE_TYPES: [&str; 8] = [
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
];

/// The router's kernel route to one prefix at one moment, as `ip -o monitor route` printed it.
#[derive(Debug, Clone)]
pub struct RouteState {
    pub at: Instant,
    /// The route was deleted (no next hop left).
    pub deleted: bool,
    /// The routing protocol that installed it (`bird`, `zebra`, `static`...), if printed.
    pub protocol: Option<String>,
    /// Next hops as (gateway, device).
    pub next_hops: Vec<(Ipv4Addr, String)>,
}

impl RouteState {
    /// Parses one line of `ip -o monitor route` if it is about `prefix` (a host route).
    fn parse(line: &str, prefix: Ipv4Addr, at: Instant) -> Option<Self> {
        let mut words = line.split_whitespace().peekable();
        let deleted = words.peek() == Some(&"Deleted");
        if deleted {
            words.next();
        }
        // A route type other than unicast comes first (the watch's own marker is a blackhole).
        if words.peek().is_some_and(|word| ROUTE_TYPES.contains(word)) {
            words.next();
        }
        let destination = words.next()?;
        let host = destination.strip_suffix("/32").unwrap_or(destination);
        if host.parse::<Ipv4Addr>().ok()? != prefix {
            return None;
        }
        let words: Vec<&str> = words.collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|word| *word == key)
                .and_then(|at| words.get(at + 1))
                .map(|word| (*word).to_owned())
        };
        let mut next_hops = Vec::new();
        for (index, word) in words.iter().enumerate() {
            if *word == "via"
                && let Some(gateway) = words.get(index + 1).and_then(|word| word.parse().ok())
            {
                let device = words
                    .get(index + 2..index + 4)
                    .filter(|pair| pair[0] == "dev")
                    .map(|pair| pair[1].to_owned())
                    .unwrap_or_default();
                next_hops.push((gateway, device));
            }
        }
        Some(Self {
            at,
            deleted,
            protocol: after("proto"),
            next_hops,
        })
    }

    /// The gateways the route sends to now (none once deleted).
    pub fn gateways(&self) -> BTreeSet<Ipv4Addr> {
        if self.deleted {
            return BTreeSet::new();
        }
        self.next_hops.iter().map(|(gateway, _)| *gateway).collect()
    }
}

/// Where a route watch's marker route goes: a table no routing daemon of the lab touches.
const MARKER_TABLE: &str = "250";

/// The router kernel's route to `prefix`, every change as it happens: `ip -o monitor route` in the
/// router's namespace, each line timestamped as it arrives. Only routes of one protocol count
/// (the routing daemon's, not [`ResilientMirror`]'s).
pub struct RouteWatch {
    monitor: Child,
    states: Arc<Mutex<Vec<RouteState>>>,
    reader: Option<JoinHandle<()>>,
}

impl RouteWatch {
    /// Starts watching; returns once the monitor is known to see changes (a marker route added
    /// and deleted in a spare table has come through).
    pub fn start(netns: &str, prefix: Ipv4Addr, protocol: &str) -> Result<Self, String> {
        let mut monitor = Command::new("ip")
            .args(["-o", "-n", netns, "monitor", "route"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("ip monitor: {error}"))?;
        let stdout = monitor.stdout.take().expect("piped stdout");
        let states = Arc::new(Mutex::new(Vec::new()));
        let (marker_tx, marker_rx) = mpsc::channel();
        let marker = Ipv4Addr::new(203, 0, 113, 254);
        let reader = {
            let states = Arc::clone(&states);
            let protocol = protocol.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let at = Instant::now();
                    if RouteState::parse(&line, marker, at).is_some() {
                        let _ = marker_tx.send(());
                    } else if let Some(state) = RouteState::parse(&line, prefix, at)
                        && state.protocol.as_deref() == Some(protocol.as_str())
                    {
                        states
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(state);
                    }
                }
            })
        };
        let mut watch = Self {
            monitor,
            states,
            reader: Some(reader),
        };
        let marker = format!("{marker}/32");
        let marker_change = |change: &str| {
            let args = [
                "ip",
                "route",
                change,
                "blackhole",
                &marker,
                "table",
                MARKER_TABLE,
            ];
            run_in(netns, &args)
        };
        // The monitor subscribes some time after it starts: add and delete the marker in turn
        // (each is a change the kernel reports; replacing it with itself may not be) until one
        // shows.
        let mut seen = false;
        for round in 0..50 {
            let _ = marker_change(if round % 2 == 0 { "add" } else { "del" });
            if marker_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                seen = true;
                break;
            }
        }
        let _ = marker_change("del");
        if seen {
            Ok(watch)
        } else {
            watch.stop();
            Err("ip monitor saw no route change within 5 s".to_owned())
        }
    }

    /// Every change seen so far.
    pub fn states(&self) -> Vec<RouteState> {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until a change seen after `since` satisfies `wanted`; when it happened.
    pub fn wait_for(
        &self,
        since: Instant,
        timeout: Duration,
        wanted: impl Fn(&RouteState) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .states
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|state| state.at >= since && wanted(state))
                .map(|state| state.at);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop(&mut self) {
        // Our own child, by its handle (its PID).
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The group's id and its members' ids: far above what any routing daemon of the lab allocates.
const MIRROR_GROUP: u32 = 9100;
/// Resilient group parameters: 64 buckets; a bucket moves to rebalance only after 120 s without
/// traffic (the kernel's default idle timer), never forced.
const MIRROR_BUCKETS: &str = "64";
const MIRROR_IDLE_TIMER: &str = "120";

/// Follows the routing daemon's multipath route to a VIP with a resilient next-hop group of the
/// same next hops and a route over it of a lower metric, which the kernel prefers: the router then
/// forwards with resilient hashing while the daemon decides, as it would if it installed the group
/// itself. BIRD 2.0 installs multipath routes with inline next hops (RTA_MULTIPATH), never as
/// nexthop objects, so it cannot; FRR 8.4's zebra installs nexthop objects but only of the
/// hash-threshold kind for BGP routes.
pub struct ResilientMirror {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    netns: String,
    prefix: Ipv4Addr,
}

impl ResilientMirror {
    /// Starts following the daemon's route of `protocol` to `prefix` in `netns`; returns once the
    /// resilient route carries the daemon's current next hops.
    pub fn start(netns: &str, prefix: Ipv4Addr, protocol: &str) -> Result<Self, String> {
        let watch = RouteWatch::start(netns, prefix, protocol)?;
        let current = daemon_route(netns, prefix, protocol)?;
        let mut mirror = Self {
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            thread: None,
            netns: netns.to_owned(),
            prefix,
        };
        mirror.remove();
        let mut members = MirrorMembers::default();
        members.apply(netns, prefix, &current)?;
        let stop = Arc::clone(&mirror.stop);
        let namespace = netns.to_owned();
        mirror.thread = Some(std::thread::spawn(move || {
            let mut applied = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let states = watch.states();
                for state in &states[applied..] {
                    members.apply(&namespace, prefix, state)?;
                }
                applied = states.len();
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }));
        Ok(mirror)
    }

    /// Deletes the mirror's route, group and members (no error if they are gone).
    fn remove(&self) {
        let route = format!("{}/32", self.prefix);
        let _ = run_in(
            &self.netns,
            &["ip", "route", "del", &route, "metric", MIRROR_METRIC],
        );
        let _ = run_in(
            &self.netns,
            &["ip", "nexthop", "del", "id", &MIRROR_GROUP.to_string()],
        );
        for member in 1..=MAX_MEMBERS {
            let id = (MIRROR_GROUP + member).to_string();
            let _ = run_in(&self.netns, &["ip", "nexthop", "del", "id", &id]);
        }
    }

    /// Stops following and removes the resilient route; the daemon's own route is in force again.
    /// An error is the first `ip` command of the mirror's that failed.
    pub fn stop(mut self) -> Result<(), String> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let result = thread
            .join()
            .unwrap_or_else(|_| Err("the mirror thread panicked".to_owned()));
        self.remove();
        result
    }
}

impl Drop for ResilientMirror {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The mirror route's metric: below the daemon's (BIRD's default is 32), so it wins.
const MIRROR_METRIC: &str = "1";
const MAX_MEMBERS: u32 = 16;

/// The nexthop objects the mirror made, one per gateway, so that a gateway keeps its id (and
/// with it its buckets) while the group's membership changes.
#[derive(Default)]
struct MirrorMembers {
    ids: Vec<Ipv4Addr>,
    group_installed: bool,
}

impl MirrorMembers {
    fn id_of(&mut self, netns: &str, gateway: Ipv4Addr, device: &str) -> Result<u32, String> {
        if let Some(index) = self.ids.iter().position(|known| *known == gateway) {
            return Ok(MIRROR_GROUP + 1 + u32::try_from(index).expect("few members"));
        }
        self.ids.push(gateway);
        let id = MIRROR_GROUP + u32::try_from(self.ids.len()).expect("few members");
        if id > MIRROR_GROUP + MAX_MEMBERS {
            return Err("more next hops than the mirror holds".to_owned());
        }
        let (id_text, gateway) = (id.to_string(), gateway.to_string());
        run_in(
            netns,
            &[
                "ip", "nexthop", "replace", "id", &id_text, "via", &gateway, "dev", device,
            ],
        )?;
        Ok(id)
    }

    /// Makes the resilient group hold `state`'s gateways (or removes the route when none are left).
    fn apply(&mut self, netns: &str, prefix: Ipv4Addr, state: &RouteState) -> Result<(), String> {
        let route = format!("{prefix}/32");
        let group = MIRROR_GROUP.to_string();
        if state.gateways().is_empty() {
            if self.group_installed {
                run_in(
                    netns,
                    &["ip", "route", "del", &route, "metric", MIRROR_METRIC],
                )?;
                run_in(netns, &["ip", "nexthop", "del", "id", &group])?;
                self.group_installed = false;
            }
            return Ok(());
        }
        let mut members = Vec::new();
        for (gateway, device) in &state.next_hops {
            members.push(self.id_of(netns, *gateway, device)?.to_string());
        }
        let members = members.join("/");
        let mut args = vec!["ip", "nexthop", "replace", "id", &group, "group", &members];
        args.extend(["type", "resilient", "buckets", MIRROR_BUCKETS]);
        args.extend(["idle_timer", MIRROR_IDLE_TIMER, "unbalanced_timer", "0"]);
        run_in(netns, &args)?;
        if !self.group_installed {
            let mut route_args = vec!["ip", "route", "replace", &route, "nhid", &group];
            route_args.extend(["metric", MIRROR_METRIC]);
            run_in(netns, &route_args)?;
            self.group_installed = true;
        }
        Ok(())
    }
}

/// The daemon's route to `prefix` as it is now (`ip -o route show`).
pub fn daemon_route(netns: &str, prefix: Ipv4Addr, protocol: &str) -> Result<RouteState, String> {
    let text = run_in(
        netns,
        &[
            "ip",
            "-o",
            "route",
            "show",
            &format!("{prefix}/32"),
            "proto",
            protocol,
        ],
    )?;
    let now = Instant::now();
    Ok(text
        .lines()
        .find_map(|line| RouteState::parse(line, prefix, now))
        .unwrap_or(RouteState {
            at: now,
            deleted: true,
            protocol: Some(protocol.to_owned()),
            next_hops: Vec::new(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multipath_and_deleted_routes() {
        let vip = Ipv4Addr::new(203, 0, 113, 100);
        let now = Instant::now();
        let line = "203.0.113.100 proto bird metric 32 \\\tnexthop via 198.51.100.22 dev r-n1 \
                    weight 1 \\\tnexthop via 198.51.100.26 dev r-n2 weight 1 ";
        let state = RouteState::parse(line, vip, now).expect("parsed");
        assert_eq!(state.protocol.as_deref(), Some("bird"));
        assert_eq!(
            state.next_hops,
            [
                (Ipv4Addr::new(198, 51, 100, 22), "r-n1".to_owned()),
                (Ipv4Addr::new(198, 51, 100, 26), "r-n2".to_owned())
            ]
        );
        let single = "203.0.113.100 via 198.51.100.22 dev r-n1 proto bird metric 32 ";
        assert_eq!(
            RouteState::parse(single, vip, now)
                .expect("parsed")
                .gateways()
                .len(),
            1
        );
        let deleted = "Deleted 203.0.113.100 via 198.51.100.22 dev r-n1 proto bird metric 32 ";
        assert!(
            RouteState::parse(deleted, vip, now)
                .expect("parsed")
                .gateways()
                .is_empty()
        );
        assert!(RouteState::parse("203.0.113.101 via 1.2.3.4 dev x", vip, now).is_none());
        let marker = Ipv4Addr::new(203, 0, 113, 254);
        let blackhole = "Deleted blackhole 203.0.113.254 table 250 ";
        assert!(
            RouteState::parse(blackhole, marker, now)
                .expect("parsed")
                .deleted
        );
    }
}
