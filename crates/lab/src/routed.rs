//! A routed lab for announced VIPs: a top-of-rack router running BIRD 2, N load-balancer nodes
//! each running its own BIRD as the BGP speaker vipd hands its VIPs to, and a client behind the
//! router.
//!
//! ```text
//!   client ──eth0── client ── router ── br0 ──eth0── node 0 (lb1, AS 65001)
//!   203.0.113.2/26          203.0.113.1/26   198.51.100.1/24 ├──eth0── node 1 (lb2, AS 65002)
//!   2001:db8:c::2/64        2001:db8:c::1/64 2001:db8::1/64  └──eth0── node 2 (lb3, AS 65003)
//! ```
//!
//! - **Router** (AS 65000): forwards, hashes multipath flows on L4
//!   (`fib_multipath_hash_policy=1`, IPv4 and IPv6) and runs BIRD with an eBGP session per node
//!   and address family and `merge paths on` in its kernel protocols, so a VIP announced by
//!   several nodes is one ECMP route in its kernel (`ip route show VIP` lists the next hops).
//! - **Nodes**: node `i` is `lb{i+1}`, `198.51.100.{11+i}/24` and `2001:db8::{11+i}/64` (the
//!   IPv6 address reads like the IPv4 one) on `eth0`, AS `65001+i`, default routes via the
//!   router. Its BIRD runs deploy/bird/vipd-node.conf as shipped, with the four `define` lines set
//!   and the `#v6` block (and with [`RoutedOptions::bfd`] the `#bfd` lines) enabled: see
//!   [`vipd_node_conf`].
//! - **Client**: `203.0.113.2/26` and `2001:db8:c::2/64`, default routes via the router.
//! - **VIPs**: [`RoutedLab::vip_v4`] (`203.0.113.100` up) and [`RoutedLab::vip_v6`]
//!   (`2001:db8:f::64` up) are on-link nowhere: only a node's `vipd-announce` and `vipd-local`
//!   devices hold them, and the router reaches them only through BGP. [`RoutedLab::lan_vip_v4`] is
//!   a VIP on the nodes' LAN for VRRP beside announced VIPs (mixed mode).
//!
//! **Why eBGP** with a private AS per node: it is the data-center design operators peer a
//! top-of-rack router with (RFC 7938), the shipped snippet's (`TOR_AS` differs from `NODE_AS`),
//! and it needs neither a route reflector nor `next hop self`: the router learns each VIP with
//! the announcing node's own address as next hop, and BIRD merges the equally good paths (same
//! AS-path length) of different peers into one multipath route.
//!
//! **Timers**: the router sets hold time 3 s (keepalive 1 s); BGP negotiates the smaller hold
//! time, so the nodes' shipped 9 s becomes 3 s too. They only bound how long a node whose BIRD or
//! link died stays a next hop (and how fast sessions come up: connect retry 1 s); a withdrawal by
//! vipd, removing an address or dying with its TUN device, reaches the router as an UPDATE within
//! milliseconds. BFD, when asked for, runs 100 ms × 3 on both sides.
//!
//! Dropping the lab stops every process it started (by PID), deletes its namespaces and its
//! directory of BIRD files, also when a test panics.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::LabError;
use crate::process::{self, LabProcess, PidRegistry};
use crate::topology::{
    exec_in, in_netns, ip, spawn_in_netns, unique_lab_name, wait_for_bridge_port,
};

/// The node-speaker configuration deploy/ ships (helper-owned; the lab runs it as shipped).
const SHIPPED_NODE_CONF: &str = include_str!("../../../deploy/bird/vipd-node.conf");
const SHIPPED_NODE_CONF_PATH: &str = "deploy/bird/vipd-node.conf";

/// The router's AS; node `i`'s is `ROUTER_AS + 1 + i`.
pub const ROUTER_AS: u32 = 65000;
/// The router's address on the nodes' LAN (`br0`).
pub const ROUTER_IPV4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The router's IPv6 address on the nodes' LAN.
pub const ROUTER_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The router's address on the client link.
pub const ROUTER_CLIENT_IPV4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The router's IPv6 address on the client link.
pub const ROUTER_CLIENT_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
/// The client's address.
pub const CLIENT_IPV4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The client's IPv6 address.
pub const CLIENT_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);
/// The router's bridge, the nodes' LAN.
pub const ROUTER_LAN_INTERFACE: &str = "br0";
/// The router's interface towards the client.
pub const ROUTER_CLIENT_INTERFACE: &str = "client";
/// The uplink interface of every node, and the client's interface.
pub const NODE_INTERFACE: &str = "eth0";
/// BIRD merges at most 16 paths into one multipath route by default.
pub const MAX_NODES: usize = 16;
/// The BGP hold time the router asks for; the sessions negotiate it (the smaller side wins).
pub const HOLD_TIME: Duration = Duration::from_secs(3);
/// How long [`RoutedLab::new`] waits for every BGP session to be established.
const SESSIONS_TIMEOUT: Duration = Duration::from_secs(15);
/// Routes are read with `ip route`, a few milliseconds a run: this often is enough.
const ROUTE_POLL: Duration = Duration::from_millis(2);

/// A namespace of a [`RoutedLab`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Router,
    Client,
    /// Node `i`, from 0.
    Node(usize),
}

/// What [`RoutedLab::with_options`] builds.
#[derive(Debug, Clone)]
pub struct RoutedOptions {
    /// Node namespaces, 1..=[`MAX_NODES`]; 3 by default.
    pub nodes: usize,
    /// BFD between the router and every node (100 ms × 3), on every BGP session.
    pub bfd: bool,
    /// Start BIRD on every node and wait for all sessions (default). Without, the router waits
    /// for peers that a caller starts ([`RoutedLab::start_speaker`], or another daemon).
    pub node_speakers: bool,
}

impl Default for RoutedOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            bfd: false,
            node_speakers: true,
        }
    }
}

/// One load-balancer node of a [`RoutedLab`].
#[derive(Debug, Clone)]
pub struct RoutedNode {
    /// Position in the lab, from 0.
    pub index: usize,
    /// `lb{index+1}`: the name vipd's `node:` and the backend's answer use.
    pub name: String,
    /// The network namespace name.
    pub netns: String,
    /// `198.51.100.{11+index}` on `eth0`, the router's next hop for this node.
    pub ipv4: Ipv4Addr,
    /// `2001:db8::{11+index}` on `eth0`.
    pub ipv6: Ipv6Addr,
    /// `65001+index`.
    pub asn: u32,
}

/// The router, N nodes and the client, in network namespaces; everything is torn down on drop.
#[derive(Debug)]
pub struct RoutedLab {
    name: String,
    options: RoutedOptions,
    /// BIRD's configurations, control sockets and logs; removed on drop.
    dir: PathBuf,
    router_netns: String,
    client_netns: String,
    nodes: Vec<RoutedNode>,
    namespaces: Vec<String>,
    processes: PidRegistry,
    router_bird: Option<LabProcess>,
    node_birds: Vec<Option<LabProcess>>,
}

impl RoutedLab {
    /// Builds the default lab: three nodes speaking BGP to the router, sessions established.
    pub fn new() -> Result<Self, LabError> {
        Self::with_options(RoutedOptions::default())
    }

    /// Builds a lab as `options` says; returns once every BGP session is established (when the
    /// nodes run BIRD).
    pub fn with_options(options: RoutedOptions) -> Result<Self, LabError> {
        if options.nodes == 0 || options.nodes > MAX_NODES {
            return Err(LabError::TooManyHosts {
                requested: options.nodes,
                max: MAX_NODES,
            });
        }
        let name = unique_lab_name();
        let dir = std::env::temp_dir().join(format!("{name}-bgp"));
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Os {
            action: format!("create {}", dir.display()),
            source,
        })?;
        let mut lab = Self {
            router_netns: format!("{name}-rt"),
            client_netns: format!("{name}-cl"),
            name,
            options,
            dir,
            nodes: Vec::new(),
            namespaces: Vec::new(),
            processes: Arc::new(Mutex::new(Vec::new())),
            router_bird: None,
            node_birds: Vec::new(),
        };
        lab.build_router()?;
        lab.build_client()?;
        for index in 0..lab.options.nodes {
            let node = lab.build_node(index)?;
            lab.nodes.push(node);
            lab.node_birds.push(None);
        }
        lab.start_router_bird()?;
        if lab.options.node_speakers {
            for index in 0..lab.nodes.len() {
                lab.start_speaker(index)?;
            }
            lab.wait_for_sessions(SESSIONS_TIMEOUT)?;
        }
        Ok(lab)
    }

    /// Announced VIP number `n`: `203.0.113.{100+n}`, routed through the router, on-link nowhere.
    pub fn vip_v4(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, 100_u8.saturating_add(n))
    }

    /// Announced IPv6 VIP number `n`: `2001:db8:f::{100+n}` (`2001:db8:f::64` for 0).
    pub fn vip_v6(n: u8) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 100 + u16::from(n))
    }

    /// A VIP on the nodes' LAN, for VRRP beside announced VIPs: `198.51.100.{100+n}`.
    pub fn lan_vip_v4(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 100_u8.saturating_add(n))
    }

    /// The lab's unique name (prefix of its namespace names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the lab was built.
    pub fn options(&self) -> &RoutedOptions {
        &self.options
    }

    /// All nodes, in index order.
    pub fn nodes(&self) -> &[RoutedNode] {
        &self.nodes
    }

    /// Node `index`.
    ///
    /// # Panics
    /// When the lab has no such node (a bug in the test).
    pub fn node(&self, index: usize) -> &RoutedNode {
        &self.nodes[index]
    }

    /// The node whose uplink address is `next_hop`, as the router's routes name it.
    pub fn node_of_next_hop(&self, next_hop: IpAddr) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| next_hop == IpAddr::V4(node.ipv4) || next_hop == IpAddr::V6(node.ipv6))
    }

    /// The router's next hop for node `index` in `vip`'s address family.
    pub fn next_hop_of(&self, index: usize, vip: IpAddr) -> Result<IpAddr, LabError> {
        let node = self.checked_node(index)?;
        Ok(match vip {
            IpAddr::V4(_) => IpAddr::V4(node.ipv4),
            IpAddr::V6(_) => IpAddr::V6(node.ipv6),
        })
    }

    /// The network namespace of `place`, e.g. for `ip -n`.
    pub fn netns(&self, place: Place) -> Result<&str, LabError> {
        match place {
            Place::Router => Ok(&self.router_netns),
            Place::Client => Ok(&self.client_netns),
            Place::Node(index) => Ok(&self.checked_node(index)?.netns),
        }
    }

    fn checked_node(&self, index: usize) -> Result<&RoutedNode, LabError> {
        self.nodes.get(index).ok_or(LabError::NoSuchHost {
            index,
            hosts: self.nodes.len(),
        })
    }

    /// Runs `args` inside `place` and returns its stdout.
    pub fn run(&self, place: Place, args: &[&str]) -> Result<String, LabError> {
        exec_in(self.netns(place)?, args)
    }

    /// A `Command` that runs `args` inside `place`, for callers that set up pipes or environment.
    pub fn command_in(&self, place: Place, args: &[&str]) -> Result<Command, LabError> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.netns(place)?])
            .args(args);
        Ok(command)
    }

    /// Starts `command` (from [`RoutedLab::command_in`]) as a lab process, killed on drop.
    pub fn spawn_command(&self, command: Command) -> Result<LabProcess, LabError> {
        LabProcess::start(command, &self.processes)
    }

    /// Starts a long-running process inside `place`, its output on this process's stderr.
    pub fn spawn(&self, place: Place, args: &[&str]) -> Result<LabProcess, LabError> {
        let mut command = self.command_in(place, args)?;
        command.stdin(Stdio::null()).stdout(Stdio::inherit());
        self.spawn_command(command)
    }

    /// Runs `work` on a fresh thread inside `place`'s network namespace and returns its result;
    /// a panic in `work` is resumed on the caller's thread.
    pub fn in_namespace<R, F>(&self, place: Place, work: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        in_netns(self.netns(place)?, work)
    }

    /// Like [`RoutedLab::in_namespace`], but returns at once with the thread's handle.
    pub fn spawn_in_namespace<R, F>(
        &self,
        place: Place,
        work: F,
    ) -> Result<std::thread::JoinHandle<Result<R, LabError>>, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_in_netns(self.netns(place)?, work)
    }

    /// Starts node `index`'s backend: on `127.0.0.1:port` in the node's namespace, every
    /// connection gets the node's name and a newline, then the server closes. Python, one
    /// process without a fork per connection, so it answers in well under a millisecond; kill it
    /// (drop or [`LabProcess::stop_with`]) to fail the node's backend.
    pub fn start_backend(&self, index: usize, port: u16) -> Result<LabProcess, LabError> {
        let name = self.checked_node(index)?.name.clone();
        let program = format!(
            "import socket\n\
             server = socket.create_server(('127.0.0.1', {port}), backlog=1024)\n\
             reply = b'{name}\\n'\n\
             while True:\n    \
                 connection, _ = server.accept()\n    \
                 try:\n        connection.sendall(reply)\n    \
                 except OSError:\n        pass\n    \
                 connection.close()\n"
        );
        let mut process = self.spawn(Place::Node(index), &["python3", "-c", &program])?;
        let target = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listening = self.run(Place::Node(index), &["ss", "-Htln", "src", &target])?;
            if !listening.trim().is_empty() {
                return Ok(process);
            }
            if process.has_exited() || Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!("the backend of {name} to listen on {target}"),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Pulls node `index`'s cable: its port on the router's bridge goes down, so nothing passes
    /// while both ends stay configured (a dead node or link, as the router sees it: no UPDATE,
    /// no FIN; only BFD or the hold time notice).
    pub fn cut_node(&self, index: usize) -> Result<(), LabError> {
        self.checked_node(index)?;
        let port = bridge_port(index);
        ip(&["-n", &self.router_netns, "link", "set", &port, "down"]).map(drop)
    }

    /// Plugs the cable of [`RoutedLab::cut_node`] back in; returns once frames flow again.
    pub fn restore_node(&self, index: usize) -> Result<(), LabError> {
        let netns = self.checked_node(index)?.netns.clone();
        let port = bridge_port(index);
        ip(&["-n", &self.router_netns, "link", "set", &port, "up"])?;
        wait_for_bridge_port(&self.router_netns, &port, &netns, NODE_INTERFACE)
    }

    fn build_router(&mut self) -> Result<(), LabError> {
        let ns = self.router_netns.clone();
        self.add_namespace(&ns)?;
        exec_in(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                // L4 hash: the flows of one client spread over the next hops by port.
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv6.fib_multipath_hash_policy=1",
            ],
        )?;
        // Snooping off: VRRP multicast (mixed mode) floods the LAN as on a plain switch.
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            ROUTER_LAN_INTERFACE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &ns, "link", "set", ROUTER_LAN_INTERFACE, "up"])?;
        add_addresses(&ns, ROUTER_LAN_INTERFACE, ROUTER_IPV4, 24, ROUTER_IPV6, 64)
    }

    fn build_client(&mut self) -> Result<(), LabError> {
        let (router, client) = (self.router_netns.clone(), self.client_netns.clone());
        self.add_namespace(&client)?;
        ip(&[
            "-n",
            &router,
            "link",
            "add",
            ROUTER_CLIENT_INTERFACE,
            "type",
            "veth",
            "peer",
            "name",
            NODE_INTERFACE,
            "netns",
            &client,
        ])?;
        ip(&["-n", &router, "link", "set", ROUTER_CLIENT_INTERFACE, "up"])?;
        ip(&["-n", &client, "link", "set", NODE_INTERFACE, "up"])?;
        add_addresses(
            &router,
            ROUTER_CLIENT_INTERFACE,
            ROUTER_CLIENT_IPV4,
            26,
            ROUTER_CLIENT_IPV6,
            64,
        )?;
        add_addresses(&client, NODE_INTERFACE, CLIENT_IPV4, 26, CLIENT_IPV6, 64)?;
        add_default_routes(&client, ROUTER_CLIENT_IPV4, ROUTER_CLIENT_IPV6)?;
        wait_for_carrier(&[
            (&router, ROUTER_CLIENT_INTERFACE),
            (&client, NODE_INTERFACE),
        ])
    }

    fn build_node(&mut self, index: usize) -> Result<RoutedNode, LabError> {
        let number = u8::try_from(11 + index).map_err(|_| LabError::TooManyHosts {
            requested: index + 1,
            max: MAX_NODES,
        })?;
        let ipv4 = Ipv4Addr::new(198, 51, 100, number);
        // 2001:db8::11 for 198.51.100.11: the decimal digits read as hex.
        let ipv6_last = u16::from_str_radix(&number.to_string(), 16).unwrap_or(u16::from(number));
        let ipv6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, ipv6_last);
        let netns = format!("{}-n{index}", self.name);
        self.add_namespace(&netns)?;
        let port = bridge_port(index);
        let router = self.router_netns.clone();
        ip(&[
            "-n",
            &router,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            NODE_INTERFACE,
            "netns",
            &netns,
        ])?;
        ip(&[
            "-n",
            &router,
            "link",
            "set",
            &port,
            "master",
            ROUTER_LAN_INTERFACE,
            "up",
        ])?;
        ip(&["-n", &netns, "link", "set", NODE_INTERFACE, "up"])?;
        add_addresses(&netns, NODE_INTERFACE, ipv4, 24, ipv6, 64)?;
        add_default_routes(&netns, ROUTER_IPV4, ROUTER_IPV6)?;
        wait_for_bridge_port(&router, &port, &netns, NODE_INTERFACE)?;
        Ok(RoutedNode {
            index,
            name: format!("lb{}", index + 1),
            netns,
            ipv4,
            ipv6,
            asn: ROUTER_AS + 1 + u32::try_from(index).unwrap_or(u32::MAX - ROUTER_AS - 1),
        })
    }

    /// Creates namespace `ns` (remembered for deletion) with `lo` up and no IPv6 duplicate
    /// address detection, so that addresses are usable at once.
    fn add_namespace(&mut self, ns: &str) -> Result<(), LabError> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        exec_in(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
            ],
        )?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).map(drop)
    }

    /// Where the lab keeps `file` (BIRD's configurations, sockets and logs).
    pub fn file(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn control_socket(&self, place: Place) -> Result<PathBuf, LabError> {
        Ok(match place {
            Place::Router => self.file("router.ctl"),
            Place::Node(index) => self.file(&format!("{}.ctl", self.checked_node(index)?.name)),
            Place::Client => {
                return Err(LabError::Os {
                    action: "talk to BIRD in the client".into(),
                    source: std::io::Error::other("the client runs no BIRD"),
                });
            }
        })
    }

    /// The path of the BIRD log of `place` (the router or a node).
    pub fn bird_log(&self, place: Place) -> Result<PathBuf, LabError> {
        self.control_socket(place)
            .map(|socket| socket.with_extension("log"))
    }

    /// The BIRD configuration the router runs (see the module doc).
    pub fn router_config(&self) -> String {
        let bfd = if self.options.bfd { " bfd on;" } else { "" };
        let mut text = format!(
            "# The lab's top-of-rack router: eBGP to every node, VIPs merged into ECMP routes.\n\
             router id {ROUTER_IPV4};\n\
             log stderr all;\n\
             protocol device {{ }}\n\
             protocol kernel kernel4 {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             protocol kernel kernel6 {{ ipv6 {{ import none; export all; }}; merge paths on; }}\n"
        );
        if self.options.bfd {
            let _ = writeln!(
                text,
                "protocol bfd {{ interface \"{ROUTER_LAN_INTERFACE}\" {{ min rx interval 100 ms; \
                 min tx interval 100 ms; multiplier 3; }}; }}"
            );
        }
        let hold = HOLD_TIME.as_secs();
        for (family, local) in [
            ("ipv4", IpAddr::V4(ROUTER_IPV4)),
            ("ipv6", IpAddr::V6(ROUTER_IPV6)),
        ] {
            let _ = writeln!(
                text,
                "template bgp node_{family} {{ local {local} as {ROUTER_AS}; hold time {hold}; \
                 keepalive time 1; connect delay time 1; connect retry time 1; \
                 error wait time 1, 5;{bfd} {family} {{ import all; export none; }}; }}"
            );
        }
        for node in &self.nodes {
            let (name, asn) = (&node.name, node.asn);
            let _ = writeln!(
                text,
                "protocol bgp {name} from node_ipv4 {{ neighbor {} as {asn}; }}\n\
                 protocol bgp {name}_v6 from node_ipv6 {{ neighbor {} as {asn}; }}",
                node.ipv4, node.ipv6
            );
        }
        text
    }

    /// The BIRD configuration node `index` runs: [`vipd_node_conf`] for this node.
    pub fn node_config(&self, index: usize) -> Result<String, LabError> {
        let node = self.checked_node(index)?;
        vipd_node_conf(&NodeSpeaker {
            router_id: node.ipv4,
            node_as: node.asn,
            tor_as: ROUTER_AS,
            tor_ipv4: ROUTER_IPV4,
            tor_ipv6: Some(ROUTER_IPV6),
            bfd: self.options.bfd,
        })
    }

    fn start_router_bird(&mut self) -> Result<(), LabError> {
        let config = self.router_config();
        let process = self.start_bird(Place::Router, &config)?;
        self.router_bird = Some(process);
        Ok(())
    }

    /// Starts BIRD on node `index` with [`RoutedLab::node_config`] (again, after
    /// [`RoutedLab::stop_speaker`]); returns once its control socket answers.
    pub fn start_speaker(&mut self, index: usize) -> Result<(), LabError> {
        let config = self.node_config(index)?;
        let process = self.start_bird(Place::Node(index), &config)?;
        self.node_birds[index] = Some(process);
        Ok(())
    }

    /// Stops BIRD on node `index` with `signal` (SIGTERM: a clean shutdown that tells the router;
    /// SIGKILL: the router notices by hold time or BFD).
    pub fn stop_speaker(&mut self, index: usize, signal: Signal) -> Result<(), LabError> {
        self.checked_node(index)?;
        if let Some(mut process) = self.node_birds[index].take() {
            process.stop_with(signal);
        }
        Ok(())
    }

    fn start_bird(&self, place: Place, config: &str) -> Result<LabProcess, LabError> {
        let socket = self.control_socket(place)?;
        let (config_path, log) = (socket.with_extension("conf"), socket.with_extension("log"));
        let os = |action: String| move |source| LabError::Os { action, source };
        std::fs::write(&config_path, config)
            .map_err(os(format!("write {}", config_path.display())))?;
        let output =
            std::fs::File::create(&log).map_err(os(format!("create {}", log.display())))?;
        let errors = output
            .try_clone()
            .map_err(os(format!("clone {}", log.display())))?;
        let (config_text, socket_text) = (
            config_path.display().to_string(),
            socket.display().to_string(),
        );
        let mut command = self.command_in(
            place,
            &["bird", "-f", "-c", &config_text, "-s", &socket_text],
        )?;
        command.stdin(Stdio::null()).stdout(output).stderr(errors);
        let mut process = self.spawn_command(command)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.birdc(place, &["show", "status"]).is_err() {
            if process.has_exited() || Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "BIRD in {place:?} to answer on {socket_text}; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(process)
    }

    /// Runs `birdc` against the BIRD of `place` (the router or a node) and returns its output.
    /// birdc exits 0 on a command BIRD refuses; its text says so.
    pub fn birdc(&self, place: Place, args: &[&str]) -> Result<String, LabError> {
        let socket = self.control_socket(place)?;
        let mut command = Command::new("birdc");
        command.arg("-s").arg(&socket).args(args);
        let output = process::run(command)?;
        if output.contains("Unable to connect") {
            return Err(LabError::Os {
                action: format!("birdc -s {}", socket.display()),
                source: std::io::Error::other(output),
            });
        }
        Ok(output)
    }

    /// How many of the router's BGP sessions are established (two per node: IPv4 and IPv6).
    pub fn established_sessions(&self) -> Result<usize, LabError> {
        let protocols = self.birdc(Place::Router, &["show", "protocols"])?;
        Ok(protocols
            .lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("BGP"))
            .filter(|line| line.contains("Established"))
            .count())
    }

    /// Waits until every BGP session of the router is established.
    pub fn wait_for_sessions(&self, timeout: Duration) -> Result<Duration, LabError> {
        let start = Instant::now();
        let wanted = self.nodes.len() * 2;
        loop {
            if self.established_sessions()? == wanted {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(LabError::Timeout {
                    what: format!(
                        "{wanted} established BGP sessions on the router:\n{}",
                        self.birdc(Place::Router, &["show", "protocols"])?
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next hops of the router's kernel route for `vip` (exactly `vip`/32 or /128), in the
    /// kernel's order; empty when no node announces it.
    pub fn router_next_hops(&self, vip: IpAddr) -> Result<Vec<IpAddr>, LabError> {
        let family = if vip.is_ipv4() { "-4" } else { "-6" };
        let route = self.run(
            Place::Router,
            &["ip", family, "route", "show", "exact", &vip.to_string()],
        )?;
        Ok(next_hops(&route))
    }

    /// Polls the router's route for `vip` until `done` holds for its next hops, at most
    /// `timeout`; returns how long that took and the next hops then.
    pub fn wait_for_next_hops(
        &self,
        vip: IpAddr,
        timeout: Duration,
        mut done: impl FnMut(&[IpAddr]) -> bool,
    ) -> Result<(Duration, Vec<IpAddr>), LabError> {
        let start = Instant::now();
        loop {
            let hops = self.router_next_hops(vip)?;
            if done(&hops) {
                return Ok((start.elapsed(), hops));
            }
            if start.elapsed() > timeout {
                return Err(LabError::Timeout {
                    what: format!(
                        "the router's route for {vip} (next hops now: {hops:?}); its BGP:\n{}",
                        self.birdc(Place::Router, &["show", "route", "for", &vip.to_string()])
                            .unwrap_or_default()
                    ),
                });
            }
            std::thread::sleep(ROUTE_POLL);
        }
    }

    /// Waits until the router's route for `vip` has exactly `count` next hops.
    pub fn wait_for_next_hop_count(
        &self,
        vip: IpAddr,
        count: usize,
        timeout: Duration,
    ) -> Result<Duration, LabError> {
        self.wait_for_next_hops(vip, timeout, |hops| hops.len() == count)
            .map(|(took, _)| took)
    }

    /// Whether `address` is on any interface of `place`.
    pub fn holds(&self, place: Place, address: IpAddr) -> Result<bool, LabError> {
        let family = if address.is_ipv4() { "-4" } else { "-6" };
        let addresses = self.run(place, &["ip", "-o", family, "addr", "show"])?;
        let address = address.to_string();
        Ok(addresses
            .split_whitespace()
            .any(|word| word.split('/').next() == Some(address.as_str())))
    }
}

impl Drop for RoutedLab {
    fn drop(&mut self) {
        // BIRD first and by SIGTERM, so that it shuts its sessions down before the namespaces go.
        for bird in &mut self.node_birds {
            drop(bird.take());
        }
        drop(self.router_bird.take());
        process::kill_remaining(&self.processes);
        for ns in self.namespaces.iter().rev() {
            if let Err(error) = ip(&["netns", "del", ns]) {
                eprintln!("vipd-lab: cannot delete namespace {ns}: {error}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What [`vipd_node_conf`] fills into the shipped node configuration.
#[derive(Debug, Clone)]
pub struct NodeSpeaker {
    /// `NODE_ROUTER_ID`: unique per node, usually its uplink IPv4 address.
    pub router_id: Ipv4Addr,
    /// `NODE_AS`.
    pub node_as: u32,
    /// `TOR_AS`.
    pub tor_as: u32,
    /// `TOR_IPV4`: the router's address on the node's uplink.
    pub tor_ipv4: Ipv4Addr,
    /// `TOR_IPV6`: with it, the `#v6` block (IPv6 VIPs over an IPv6 session) is enabled.
    pub tor_ipv6: Option<Ipv6Addr>,
    /// Enables the `#bfd` lines (BFD to the router).
    pub bfd: bool,
}

/// deploy/bird/vipd-node.conf as an operator installs it: its optional blocks enabled the way its
/// header says (`sed 's/^#bfd //'`, then `sed 's/^#v6 //'`), its four `define` lines set, and
/// nothing else changed but one appended `log stderr all;` (the lab keeps BIRD's log in a file).
/// An error when the shipped file no longer has a `define` line this fills in, so that the lab
/// cannot drift from what deploy/ ships.
pub fn vipd_node_conf(speaker: &NodeSpeaker) -> Result<String, LabError> {
    let mut lines: Vec<String> = SHIPPED_NODE_CONF.lines().map(str::to_owned).collect();
    for (marker, enabled) in [("#bfd ", speaker.bfd), ("#v6 ", speaker.tor_ipv6.is_some())] {
        if enabled {
            for line in &mut lines {
                if let Some(rest) = line.strip_prefix(marker) {
                    *line = rest.to_owned();
                }
            }
        }
    }
    let mut defines = vec![
        ("NODE_ROUTER_ID", speaker.router_id.to_string()),
        ("NODE_AS", speaker.node_as.to_string()),
        ("TOR_AS", speaker.tor_as.to_string()),
        ("TOR_IPV4", speaker.tor_ipv4.to_string()),
    ];
    if let Some(tor_ipv6) = speaker.tor_ipv6 {
        defines.push(("TOR_IPV6", tor_ipv6.to_string()));
    }
    for (name, value) in defines {
        let prefix = format!("define {name} =");
        let line = lines
            .iter_mut()
            .find(|line| line.starts_with(&prefix))
            .ok_or_else(|| LabError::Shipped {
                file: SHIPPED_NODE_CONF_PATH,
                missing: prefix.clone(),
            })?;
        *line = format!("{prefix} {value};");
    }
    let mut text = lines.join("\n");
    text.push_str("\n\nlog stderr all;\n");
    Ok(text)
}

/// The next hops in `ip route show` output: the word after each `via` (one route with one
/// `via`, or a multipath route with a `nexthop via` line per path).
pub(crate) fn next_hops(route: &str) -> Vec<IpAddr> {
    let words: Vec<&str> = route.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "via")
        .filter_map(|pair| pair[1].parse().ok())
        .collect()
}

/// Node `index`'s port on the router's bridge.
fn bridge_port(index: usize) -> String {
    format!("n{index}")
}

fn add_addresses(
    ns: &str,
    interface: &str,
    ipv4: Ipv4Addr,
    ipv4_len: u8,
    ipv6: Ipv6Addr,
    ipv6_len: u8,
) -> Result<(), LabError> {
    let (v4, v6) = (format!("{ipv4}/{ipv4_len}"), format!("{ipv6}/{ipv6_len}"));
    ip(&["-n", ns, "addr", "add", &v4, "dev", interface])?;
    ip(&["-n", ns, "addr", "add", &v6, "dev", interface, "nodad"]).map(drop)
}

fn add_default_routes(ns: &str, ipv4: Ipv4Addr, ipv6: Ipv6Addr) -> Result<(), LabError> {
    ip(&[
        "-n",
        ns,
        "route",
        "add",
        "default",
        "via",
        &ipv4.to_string(),
    ])?;
    ip(&[
        "-n",
        ns,
        "-6",
        "route",
        "add",
        "default",
        "via",
        &ipv6.to_string(),
    ])
    .map(drop)
}

/// Waits until every `(namespace, interface)` is operationally up (linkwatch may take a second).
fn wait_for_carrier(interfaces: &[(&str, &str)]) -> Result<(), LabError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    for (ns, interface) in interfaces {
        while !ip(&["-n", ns, "-o", "link", "show", "dev", interface])?.contains("state UP") {
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!("{interface} in {ns} to come up"),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_a_single_and_a_multipath_route() {
        let single = "203.0.113.100 via 198.51.100.11 dev br0 proto bird metric 32 \n";
        assert_eq!(
            next_hops(single),
            ["198.51.100.11".parse::<IpAddr>().unwrap()]
        );
        let multipath = "203.0.113.100 proto bird metric 32 \n\
            \tnexthop via 198.51.100.11 dev br0 weight 1 \n\
            \tnexthop via 198.51.100.13 dev br0 weight 1 \n";
        assert_eq!(next_hops(multipath).len(), 2);
        let v6 = "2001:db8:f::64 via 2001:db8::12 dev br0 proto bird metric 32 pref medium\n";
        assert_eq!(next_hops(v6), ["2001:db8::12".parse::<IpAddr>().unwrap()]);
        assert!(next_hops("").is_empty());
    }

    #[test]
    fn the_node_conf_is_the_shipped_file_with_its_defines_set() {
        let conf = vipd_node_conf(&NodeSpeaker {
            router_id: Ipv4Addr::new(198, 51, 100, 12),
            node_as: 65002,
            tor_as: 65000,
            tor_ipv4: ROUTER_IPV4,
            tor_ipv6: Some(ROUTER_IPV6),
            bfd: true,
        })
        .unwrap();
        assert!(
            conf.contains("define NODE_ROUTER_ID = 198.51.100.12;\n"),
            "{conf}"
        );
        assert!(conf.contains("define NODE_AS = 65002;\n"), "{conf}");
        assert!(conf.contains("define TOR_IPV6 = 2001:db8::1;\n"), "{conf}");
        assert!(
            !conf
                .lines()
                .any(|line| line.starts_with("#v6 ") || line.starts_with("#bfd "))
        );
        let without = vipd_node_conf(&NodeSpeaker {
            tor_ipv6: None,
            bfd: false,
            router_id: Ipv4Addr::new(198, 51, 100, 12),
            node_as: 65002,
            tor_as: 65000,
            tor_ipv4: ROUTER_IPV4,
        })
        .unwrap();
        assert!(without.contains("\n#v6 protocol bgp tor_v6 {"), "{without}");
    }

    #[test]
    fn vips_are_outside_every_link() {
        assert_eq!(RoutedLab::vip_v4(0), Ipv4Addr::new(203, 0, 113, 100));
        assert_eq!(RoutedLab::vip_v6(0).to_string(), "2001:db8:f::64");
        // The client link is 203.0.113.0/26: .0 to .63.
        assert!(RoutedLab::vip_v4(0).octets()[3] > 63);
    }
}
