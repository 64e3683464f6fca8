//! The lab topology: one bridge namespace, N host namespaces, a veth from each host into the bridge.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::LabError;
use crate::capture::Capture;
use crate::process::{self, LabProcess, PidRegistry};

/// Makes namespace names unique within this process; the PID makes them unique across processes.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Every lab namespace is named `{NAME_PREFIX}{pid}x{counter}-...`.
const NAME_PREFIX: &str = "vipdlab";
static STALE_CLEANUP: Once = Once::new();

/// Hosts take `.10` to `.99` (and `::a` to `::63`); `.100` up belongs to [`Lab::vip_v4`].
pub const MAX_HOSTS: usize = 90;

/// The host-side interface name, the same in every host (namespaces keep names apart).
pub const HOST_INTERFACE: &str = "eth0";
/// Each host's interface on the second LAN of [`Lab::add_second_lan`].
pub const SECOND_INTERFACE: &str = "eth1";

/// One of a lab's LANs: a bridge in the bridge namespace, and in every host an interface on a
/// veth into it. The first one is always there; the second one only after
/// [`Lab::add_second_lan`] (for a VIP on another link than the VRRP adverts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lan {
    First,
    Second,
}

impl Lan {
    fn bridge(self) -> &'static str {
        match self {
            Self::First => "br0",
            Self::Second => "br1",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            Self::First => HOST_INTERFACE,
            Self::Second => SECOND_INTERFACE,
        }
    }

    /// Host `host`'s port on the bridge.
    fn port(self, host: usize) -> String {
        match self {
            Self::First => format!("p{host}"),
            Self::Second => format!("q{host}"),
        }
    }

    /// The address of the host numbered `number` (10 + index): `198.51.100.0/24` on the first
    /// LAN, `203.0.113.0/24` on the second.
    fn ipv4(self, number: u8) -> Ipv4Addr {
        match self {
            Self::First => Ipv4Addr::new(198, 51, 100, number),
            Self::Second => Ipv4Addr::new(203, 0, 113, number),
        }
    }

    /// `2001:db8::/64` on the first LAN, `2001:db8:1::/64` on the second.
    fn ipv6(self, number: u8) -> Ipv6Addr {
        let subnet = match self {
            Self::First => 0,
            Self::Second => 1,
        };
        Ipv6Addr::new(0x2001, 0xdb8, subnet, 0, 0, 0, 0, u16::from(number))
    }
}
/// How long a new lab may take for its addresses to become usable.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One host of a lab: a namespace with `eth0` on the lab's LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// Position in the lab, from 0.
    pub index: usize,
    /// The network namespace name (`ip netns`), e.g. for `ip -n NAME`.
    pub netns: String,
    /// The interface on the LAN (`eth0`).
    pub interface: String,
    /// `198.51.100.{10+index}`, prefix /24.
    pub ipv4: Ipv4Addr,
    /// `2001:db8::{10+index}`, prefix /64.
    pub ipv6: Ipv6Addr,
    /// The IPv6 link-local address of `eth0` (the source of VRRPv3-over-IPv6 adverts).
    pub link_local: Ipv6Addr,
    /// The MAC address of `eth0`.
    pub mac: [u8; 6],
}

/// A LAN of hosts in network namespaces; everything is torn down on drop.
#[derive(Debug)]
pub struct Lab {
    name: String,
    bridge_netns: String,
    hosts: Vec<Host>,
    /// Every namespace created so far, deleted on drop (also after a half-built lab failed).
    namespaces: Vec<String>,
    processes: PidRegistry,
    captures: AtomicUsize,
}

impl Lab {
    /// Builds a lab with `hosts` hosts, each up, addressed and past IPv6 duplicate detection.
    pub fn new(hosts: usize) -> Result<Self, LabError> {
        if hosts > MAX_HOSTS {
            return Err(LabError::TooManyHosts {
                requested: hosts,
                max: MAX_HOSTS,
            });
        }
        let name = unique_lab_name();
        let mut lab = Self {
            bridge_netns: format!("{name}-br"),
            name,
            hosts: Vec::with_capacity(hosts),
            namespaces: Vec::new(),
            processes: Arc::new(Mutex::new(Vec::new())),
            captures: AtomicUsize::new(0),
        };
        lab.build_bridge()?;
        for index in 0..hosts {
            let host = lab.build_host(index)?;
            lab.hosts.push(host);
        }
        Ok(lab)
    }

    /// Virtual IP number `n` of the lab's address plan: `198.51.100.{100+n}`, on the hosts' /24
    /// and never a host's own address.
    pub fn vip_v4(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 100_u8.saturating_add(n))
    }

    /// Virtual IPv6 number `n`: `2001:db8::1:{n}`, on the hosts' /64 and never a host's own.
    pub fn vip_v6(n: u8) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, u16::from(n))
    }

    /// The lab's unique name (prefix of its namespace names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All hosts, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `index`.
    ///
    /// # Panics
    /// When the lab has no such host (a bug in the test).
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    fn checked_host(&self, index: usize) -> Result<&Host, LabError> {
        self.hosts.get(index).ok_or(LabError::NoSuchHost {
            index,
            hosts: self.hosts.len(),
        })
    }

    fn build_bridge(&mut self) -> Result<(), LabError> {
        let ns = self.bridge_netns.clone();
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        // The bridge namespace only switches frames: no IPv6 of its own, so captures stay quiet.
        exec_in(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        add_bridge(&ns, Lan::First)
    }

    /// Adds a second LAN: a bridge of its own, and in every host `eth1` on it with
    /// `203.0.113.{10+i}/24` and `2001:db8:1::{10+i}/64` (see [`Lab::second_lan_ipv4`]). VRRP
    /// adverts stay on `eth0`; this is where a VIP with its own `interface:` lives. Returns once
    /// frames flow on every host's `eth1`.
    pub fn add_second_lan(&self) -> Result<(), LabError> {
        add_bridge(&self.bridge_netns, Lan::Second)?;
        for host in &self.hosts {
            let number = host_number(host.index)?;
            self.plug_host(
                host.index,
                &host.netns,
                Lan::Second,
                None,
                Lan::Second.ipv4(number),
                Lan::Second.ipv6(number),
            )?;
        }
        Ok(())
    }

    /// Host `index`'s address on the second LAN: `203.0.113.{10+index}`.
    pub fn second_lan_ipv4(index: usize) -> Ipv4Addr {
        let number = host_number(index).unwrap_or(u8::MAX);
        Lan::Second.ipv4(number)
    }

    /// Virtual IP number `n` on the second LAN: `203.0.113.{100+n}`, never a host's own.
    pub fn second_lan_vip_v4(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, 100_u8.saturating_add(n))
    }

    /// The MAC address of `interface` in host `host` (`eth0`'s is also [`Host::mac`]).
    pub fn mac(&self, host: usize, interface: &str) -> Result<[u8; 6], LabError> {
        read_mac(&self.checked_host(host)?.netns, interface)
    }

    fn build_host(&mut self, index: usize) -> Result<Host, LabError> {
        let number = host_number(index)?;
        let ns = format!("{}-h{index}", self.name);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        // Before eth0 exists, so that it inherits "no DAD" and its addresses are usable at once.
        exec_in(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
            ],
        )?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let (ipv4, ipv6) = (Lan::First.ipv4(number), Lan::First.ipv6(number));
        self.plug_host(index, &ns, Lan::First, None, ipv4, ipv6)?;
        let link_local = wait_for_link_local(&ns)?;
        let mac = read_mac(&ns, HOST_INTERFACE)?;
        Ok(Host {
            index,
            netns: ns,
            interface: HOST_INTERFACE.to_owned(),
            ipv4,
            ipv6,
            link_local,
            mac,
        })
    }

    /// Creates host `index`'s interface on `lan` (a veth whose other end is its bridge port),
    /// with `mac` if given, and its addresses; returns once frames flow.
    fn plug_host(
        &self,
        index: usize,
        ns: &str,
        lan: Lan,
        mac: Option<[u8; 6]>,
        ipv4: Ipv4Addr,
        ipv6: Ipv6Addr,
    ) -> Result<(), LabError> {
        let (port, interface, bridge) = (lan.port(index), lan.interface(), lan.bridge());
        let br = &self.bridge_netns;
        ip(&[
            "-n", br, "link", "add", &port, "type", "veth", "peer", "name", interface, "netns", ns,
        ])?;
        if let Some(mac) = mac {
            let mac = mac.map(|byte| format!("{byte:02x}")).join(":");
            ip(&["-n", ns, "link", "set", interface, "address", &mac])?;
        }
        ip(&["-n", br, "link", "set", &port, "master", bridge, "up"])?;
        ip(&["-n", ns, "link", "set", interface, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ipv4}/24"),
            "dev",
            interface,
        ])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ipv6}/64"),
            "dev",
            interface,
            "nodad",
        ])?;
        wait_for_link(br, ns, index, lan)
    }

    /// Deletes host `host`'s `eth0` and creates it again with the same name, MAC and addresses,
    /// as a network manager or a VLAN reconfiguration does: the new interface has another
    /// index, so whatever was bound to the old one is left on nothing. Returns once frames flow
    /// and the link-local address is usable.
    pub fn recreate_interface(&self, host: usize) -> Result<(), LabError> {
        let host = self.checked_host(host)?.clone();
        // Deleting one end of a veth deletes the other, the bridge port.
        ip(&["-n", &host.netns, "link", "del", HOST_INTERFACE])?;
        self.plug_host(
            host.index,
            &host.netns,
            Lan::First,
            Some(host.mac),
            host.ipv4,
            host.ipv6,
        )?;
        wait_for_link_local(&host.netns).map(drop)
    }

    /// Runs `args` inside host `host` (`ip netns exec`) and returns its stdout.
    pub fn run(&self, host: usize, args: &[&str]) -> Result<String, LabError> {
        exec_in(&self.checked_host(host)?.netns, args)
    }

    /// Runs `args` inside the bridge namespace and returns its stdout.
    pub fn run_in_bridge(&self, args: &[&str]) -> Result<String, LabError> {
        exec_in(&self.bridge_netns, args)
    }

    /// Starts a long-running process inside host `host`; it is killed by PID when the returned
    /// value is dropped (or, at the latest, when the lab is). Output goes to this process's stderr
    /// unless the caller pipes it through [`Lab::command_in`] and [`Lab::spawn_command`].
    pub fn spawn(&self, host: usize, args: &[&str]) -> Result<LabProcess, LabError> {
        let mut command = self.command_in(host, args)?;
        command.stdin(Stdio::null()).stdout(Stdio::inherit());
        self.spawn_command(command)
    }

    /// A `Command` that runs `args` inside host `host`, for callers that want to set up pipes.
    pub fn command_in(&self, host: usize, args: &[&str]) -> Result<Command, LabError> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.checked_host(host)?.netns])
            .args(args);
        Ok(command)
    }

    /// Starts `command` (from [`Lab::command_in`]) as a lab process, killed on drop.
    pub fn spawn_command(&self, command: Command) -> Result<LabProcess, LabError> {
        LabProcess::start(command, &self.processes)
    }

    /// Runs `work` on a fresh thread that has entered host `host`'s network namespace, and
    /// returns its result; a panic in `work` is resumed on the caller's thread. The thread is
    /// fresh because `setns` changes the calling thread only and cannot be undone safely.
    pub fn in_host<R, F>(&self, host: usize, work: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        in_netns(&self.checked_host(host)?.netns, work)
    }

    /// Like [`Lab::in_host`], but returns at once with the thread's handle, for work that must
    /// run concurrently in several hosts. Joining yields `Err` if entering the namespace failed.
    pub fn spawn_in_host<R, F>(
        &self,
        host: usize,
        work: F,
    ) -> Result<std::thread::JoinHandle<Result<R, LabError>>, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_in_netns(&self.checked_host(host)?.netns, work)
    }

    /// Pulls host `host`'s cable: the bridge side goes down, so the host sees NO-CARRIER while
    /// its own interface stays administratively up (what a switch port failure looks like).
    pub fn cut_link(&self, host: usize) -> Result<(), LabError> {
        self.checked_host(host)?;
        ip(&[
            "-n",
            &self.bridge_netns,
            "link",
            "set",
            &Lan::First.port(host),
            "down",
        ])
        .map(drop)
    }

    /// Plugs the cable of [`Lab::cut_link`] back in; returns once frames flow again.
    pub fn restore_link(&self, host: usize) -> Result<(), LabError> {
        let netns = self.checked_host(host)?.netns.clone();
        ip(&[
            "-n",
            &self.bridge_netns,
            "link",
            "set",
            &Lan::First.port(host),
            "up",
        ])?;
        wait_for_link(&self.bridge_netns, &netns, host, Lan::First)
    }

    /// Drops `percent` % of the frames arriving at host `host` (nftables `numgen`; this kernel
    /// has no netem). Replaces an earlier loss setting for that host.
    pub fn set_loss(&self, host: usize, percent: u8) -> Result<(), LabError> {
        self.clear_loss(host)?;
        if percent == 0 {
            return Ok(());
        }
        // numgen's range is 0..=99, so "all" is a plain drop.
        let statement = if percent >= 100 {
            "drop".to_owned()
        } else {
            format!("numgen random mod 100 < {percent} drop")
        };
        let rules = format!(
            "table netdev vipd_lab_loss {{\n chain ingress {{\n type filter hook ingress device {HOST_INTERFACE} priority 0\n {statement}\n }}\n}}"
        );
        self.nft(host, &rules)
    }

    /// Removes the loss of [`Lab::set_loss`] (no error when none was set).
    pub fn clear_loss(&self, host: usize) -> Result<(), LabError> {
        self.nft(
            host,
            "table netdev vipd_lab_loss {}\ndelete table netdev vipd_lab_loss",
        )
    }

    /// Drops, at host `to`, every packet of IP protocol `protocol` (e.g. 112 for VRRP) coming
    /// from host `from`'s IPv4, IPv6 and link-local addresses.
    pub fn block(&self, to: usize, from: usize, protocol: u8) -> Result<(), LabError> {
        let source = self.checked_host(from)?.clone();
        let table = block_table(from, protocol);
        let rules = format!(
            "table inet {table} {{\n chain input {{\n type filter hook input priority -10\n \
             ip saddr {} meta l4proto {protocol} drop\n \
             ip6 saddr {{ {}, {} }} meta l4proto {protocol} drop\n }}\n}}",
            source.ipv4, source.ipv6, source.link_local
        );
        self.nft(to, &rules)
    }

    /// Lifts a [`Lab::block`].
    pub fn unblock(&self, to: usize, from: usize, protocol: u8) -> Result<(), LabError> {
        let table = block_table(from, protocol);
        self.nft(
            to,
            &format!("table inet {table} {{}}\ndelete table inet {table}"),
        )
    }

    fn nft(&self, host: usize, rules: &str) -> Result<(), LabError> {
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.checked_host(host)?.netns,
            "nft",
            "-f",
            "-",
        ]);
        let text = process::describe(&command);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: text.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(rules.as_bytes())
                .map_err(|source| LabError::Os {
                    action: format!("write rules to {text}"),
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| LabError::Os {
            action: format!("wait for {text}"),
            source,
        })?;
        if !output.status.success() {
            return Err(LabError::Command {
                command: format!("{text} <<< {rules}"),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Starts capturing frames on host `host`'s `eth0` with `tcpdump` and an optional BPF
    /// `filter`; returns once tcpdump is listening. Read the frames with [`Capture::finish`].
    pub fn capture(&self, host: usize, filter: &[&str]) -> Result<Capture, LabError> {
        let number = self.captures.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{}-h{host}-{number}.pcap", self.name));
        let path_text = path.to_string_lossy().into_owned();
        let mut args = vec![
            "tcpdump",
            "-i",
            HOST_INTERFACE,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            &path_text,
        ];
        args.extend_from_slice(filter);
        let mut command = self.command_in(host, &args)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let process = self.spawn_command(command)?;
        Capture::wait_until_listening(process, path)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        process::kill_remaining(&self.processes);
        for ns in self.namespaces.iter().rev() {
            // Deleting a namespace deletes its interfaces; the veth pairs go with the hosts.
            if let Err(error) = ip(&["netns", "del", ns]) {
                eprintln!("vipd-lab: cannot delete namespace {ns}: {error}");
            }
        }
    }
}

/// A new lab's name, the prefix of its namespace names: unique in this process (a counter) and
/// across processes (the PID). The first call also removes stale namespaces of dead processes.
pub(crate) fn unique_lab_name() -> String {
    STALE_CLEANUP.call_once(remove_stale_namespaces);
    format!(
        "{NAME_PREFIX}{}x{}",
        std::process::id(),
        NEXT_LAB.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `work` on a fresh thread inside the network namespace `netns` and waits for it; a panic
/// in `work` is resumed on the caller's thread. See [`Lab::in_host`].
pub(crate) fn in_netns<R, F>(netns: &str, work: F) -> Result<R, LabError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match spawn_in_netns(netns, work)?.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `work` on a fresh thread that has entered the network namespace `netns`; see
/// [`Lab::spawn_in_host`].
pub(crate) fn spawn_in_netns<R, F>(
    netns: &str,
    work: F,
) -> Result<std::thread::JoinHandle<Result<R, LabError>>, LabError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let path = format!("/var/run/netns/{netns}");
    let namespace = File::open(&path).map_err(|source| LabError::Os {
        action: format!("open {path}"),
        source,
    })?;
    Ok(std::thread::spawn(move || {
        setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(|errno| LabError::Os {
            action: format!("setns {path}"),
            source: errno.into(),
        })?;
        Ok(work())
    }))
}

/// Deletes namespaces of labs whose process died without dropping them (a test binary killed
/// by SIGKILL or a CI timeout): the PID in the name no longer exists.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && let Err(error) = ip(&["netns", "del", &name])
        {
            eprintln!("vipd-lab: cannot delete stale namespace {name}: {error}");
        }
    }
}

/// Host `index`'s number in the address plans: 10 + index.
fn host_number(index: usize) -> Result<u8, LabError> {
    u8::try_from(index + 10)
        .ok()
        .filter(|_| index < MAX_HOSTS)
        .ok_or(LabError::TooManyHosts {
            requested: index + 1,
            max: MAX_HOSTS,
        })
}

/// Creates `lan`'s bridge in the bridge namespace `ns`. Snooping off: VRRP multicast
/// (224.0.0.18, ff02::12) must flood like on a plain switch.
fn add_bridge(ns: &str, lan: Lan) -> Result<(), LabError> {
    let bridge = lan.bridge();
    ip(&[
        "-n",
        ns,
        "link",
        "add",
        bridge,
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])?;
    ip(&["-n", ns, "link", "set", bridge, "up"]).map(drop)
}

fn block_table(from: usize, protocol: u8) -> String {
    format!("vipd_lab_block_h{from}_p{protocol}")
}

pub(crate) fn ip(args: &[&str]) -> Result<String, LabError> {
    let mut command = Command::new("ip");
    command.args(args);
    process::run(command)
}

pub(crate) fn exec_in(netns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns]).args(args);
    process::run(command)
}

/// Waits until host `index`'s link on `lan` carries frames; see [`wait_for_bridge_port`].
fn wait_for_link(
    bridge_netns: &str,
    host_netns: &str,
    index: usize,
    lan: Lan,
) -> Result<(), LabError> {
    wait_for_bridge_port(bridge_netns, &lan.port(index), host_netns, lan.interface())
}

/// Waits until `interface` in `host_netns`, a veth whose other end is the bridge port `port` in
/// `bridge_netns`, carries frames: the interface is operationally up and the port forwards.
/// Carrier changes reach both through the kernel's linkwatch, which may batch them for up to a
/// second after `ip link set up` has returned.
pub(crate) fn wait_for_bridge_port(
    bridge_netns: &str,
    port: &str,
    host_netns: &str,
    interface: &str,
) -> Result<(), LabError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let host = ip(&["-n", host_netns, "-o", "link", "show", "dev", interface])?;
        let bridge = ip(&["-n", bridge_netns, "-d", "-o", "link", "show", "dev", port])?;
        if host.contains("state UP") && bridge.contains("bridge_slave state forwarding") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("the link of {host_netns} to carry frames"),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `eth0` has a link-local address that is no longer tentative.
fn wait_for_link_local(netns: &str) -> Result<Ipv6Addr, LabError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let out = ip(&[
            "-n",
            netns,
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            HOST_INTERFACE,
            "scope",
            "link",
        ])?;
        if !out.contains("tentative") {
            let address = out
                .split_whitespace()
                .skip_while(|word| *word != "inet6")
                .nth(1)
                .and_then(|cidr| cidr.split('/').next())
                .and_then(|text| text.parse().ok());
            if let Some(address) = address {
                return Ok(address);
            }
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("a link-local address on {HOST_INTERFACE} in {netns}"),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_mac(netns: &str, interface: &str) -> Result<[u8; 6], LabError> {
    let out = ip(&["-n", netns, "-o", "link", "show", "dev", interface])?;
    let text = out
        .split_whitespace()
        .skip_while(|word| *word != "link/ether")
        .nth(1)
        .unwrap_or_default();
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = parts
            .next()
            .and_then(|part| u8::from_str_radix(part, 16).ok())
            .ok_or_else(|| LabError::Timeout {
                what: format!("a MAC address in `{out}`"),
            })?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_stay_clear_of_host_addresses() {
        assert_eq!(Lab::vip_v4(0), Ipv4Addr::new(198, 51, 100, 100));
        assert_eq!(Lab::vip_v6(2).to_string(), "2001:db8::1:2");
        let last_host = u8::try_from(MAX_HOSTS + 9).unwrap();
        assert!(last_host < Lab::vip_v4(0).octets()[3]);
    }

    #[test]
    fn too_many_hosts_is_refused_before_anything_is_built() {
        let error = Lab::new(MAX_HOSTS + 1).unwrap_err();
        assert!(matches!(
            error,
            LabError::TooManyHosts {
                requested: 91,
                max: 90
            }
        ));
    }
}
