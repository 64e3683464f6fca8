//! The validated configuration the daemon consumes: typed values, defaults resolved.
//!
//! Every type is `PartialEq` so that a reload can compare the old and new configuration
//! instance by instance and frontend by frontend and leave what did not change running.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::defaults;

/// A whole vipd.yaml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `node`; `None` means "use the hostname", see [`Config::node_name`].
    pub node: Option<String>,
    pub control: Control,
    /// How long SIGTERM waits for proxy sessions to drain (default 5s, at most
    /// [`defaults::SHUTDOWN_GRACE_MAX`]).
    pub shutdown_grace: Duration,
    /// Concurrent proxy sessions over all frontends (default 100000).
    pub max_connections: u32,
    /// What streaming sessions' grown pipes may hold together (default 2% of RAM).
    pub pipe_memory: PipeMemory,
    pub vrrp: Vec<VrrpInstance>,
    /// `announce`: VIPs the node's routing daemon announces while their trackers allow.
    pub announce: Option<Announce>,
    /// Health-check scripts by name; `track: [{ script: NAME }]` refers to them.
    pub scripts: BTreeMap<String, Script>,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

/// `pipe_memory`: a share of the machine's memory or a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeMemory {
    /// Percent of the machine's memory, 0..=50.
    Percent(u8),
    Bytes(u64),
}

impl Config {
    /// The node name for status, metrics and logs: `node`, or else the kernel's hostname.
    ///
    /// Reads `/proc/sys/kernel/hostname` when `node` is not set (the one read outside the
    /// configuration file; parsing itself stays pure), and falls back to `localhost`.
    pub fn node_name(&self) -> String {
        if let Some(node) = &self.node {
            return node.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    }

    pub fn instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.vrrp.iter().find(|instance| instance.name == name)
    }

    pub fn frontend(&self, name: &str) -> Option<&Frontend> {
        self.frontends.iter().find(|frontend| frontend.name == name)
    }

    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|backend| backend.name == name)
    }
}

/// `announce`: VIPs announced over a routing protocol by the node's routing daemon (BIRD, FRR)
/// instead of elected by VRRP (docs/design/announce.md). vipd puts every VIP on `local_device`
/// while it runs, and a group's VIPs on `device`, which the routing daemon exports, while the
/// group is announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// The TUN device whose addresses are the VIPs announced now (default `vipd-announce`).
    pub device: String,
    /// The TUN device holding every VIP while vipd runs (default `vipd-local`), so packets that
    /// still arrive after a withdrawal are served.
    pub local_device: String,
    /// At SIGTERM, how long the listeners keep serving after the withdrawal (default 3s).
    pub withdraw_delay: Duration,
    /// Never empty.
    pub groups: Vec<AnnounceGroup>,
}

impl Announce {
    pub fn group(&self, name: &str) -> Option<&AnnounceGroup> {
        self.groups.iter().find(|group| group.name == name)
    }
}

/// VIPs announced and withdrawn together, by the same trackers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceGroup {
    pub name: String,
    /// Host addresses, never empty; each is put on the devices as /32 or /128.
    pub vips: Vec<IpAddr>,
    /// 1..=254 (default 100); weighted trackers move it as they move a VRRP priority.
    pub priority: u8,
    /// Withdrawn while the effective priority is below this; `None`: only weight-0 trackers
    /// withdraw.
    pub withdraw_below: Option<u8>,
    pub track: Vec<Tracker>,
}

/// `control`: the status / metrics / admin HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Default [`defaults::CONTROL_LISTEN`].
    pub listen: SocketAddr,
    /// When set, `/api/v1` actions need `Authorization: Bearer <contents of this file>`.
    pub token_file: Option<PathBuf>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            listen: defaults::CONTROL_LISTEN,
            token_file: None,
        }
    }
}

/// One `vrrp` entry: a virtual router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1..=254, or 255 for the address owner (default 100).
    pub priority: u8,
    pub version: VrrpVersion,
    /// v3: a multiple of 10 ms in 10ms..=40.95s; v2: whole seconds 1..=255 (default 1s).
    pub advert_interval: Duration,
    /// Default true.
    pub preempt: bool,
    /// Default 0.
    pub preempt_delay: Duration,
    /// v3 over IPv4 only; always [`V3Checksum::WithPseudoHeader`] for v2 and IPv6 (unused there).
    pub checksum: V3Checksum,
    /// v2 simple password (RFC 3768 auth type 1), at most 8 bytes.
    pub auth_password: Option<String>,
    /// `None`: multicast to 224.0.0.18 / ff02::12.
    pub unicast: Option<Unicast>,
    /// The priority a peer is configured with, when the file says (`peer_priority`): only used
    /// by `vipd check` to warn about tracker weights that cannot move the VIP.
    pub peer_priority: Option<u8>,
    /// `virtual_mac: true`: the VIPs live on a macvlan carrying the VRRP virtual MAC. `None` (the
    /// default): the NIC's own MAC, and failover relies on gratuitous ARP.
    pub virtual_mac: Option<VirtualMac>,
    /// Never empty. The first VIP's family is the family the instance advertises.
    pub vips: Vec<Vip>,
    pub track: Vec<Tracker>,
    pub notify: Notify,
    pub garp: Garp,
}

impl VrrpInstance {
    /// The advertisement interval in the centiseconds of the v3 wire field (v2: in whole
    /// seconds × 100). Validation guarantees it fits 1..=4095 for v3 and 100..=25500 for v2.
    pub fn advert_interval_centis(&self) -> u16 {
        u16::try_from(self.advert_interval.as_millis() / 10).unwrap_or(u16::MAX)
    }

    /// Whether the instance advertises over IPv6 (the family of its first VIP).
    pub fn is_ipv6(&self) -> bool {
        self.vips
            .first()
            .is_some_and(|vip| vip.address.addr().is_ipv6())
    }

    /// The VIPs carried in adverts: those of the first VIP's family (an advert holds one family).
    pub fn advertised_vips(&self) -> impl Iterator<Item = &Vip> {
        let ipv6 = self.is_ipv6();
        self.vips
            .iter()
            .filter(move |vip| vip.address.addr().is_ipv6() == ipv6)
    }

    /// VIPs of the other family (v3 only): added and removed with the instance's state but not
    /// advertised, like keepalived's `virtual_ipaddress_excluded`.
    pub fn unadvertised_vips(&self) -> impl Iterator<Item = &Vip> {
        let ipv6 = self.is_ipv6();
        self.vips
            .iter()
            .filter(move |vip| vip.address.addr().is_ipv6() != ipv6)
    }

    /// Whether this node owns the addresses (priority 255): it takes only weight-0 trackers.
    pub fn is_address_owner(&self) -> bool {
        self.priority == 255
    }
}

/// The macvlan of an instance with `virtual_mac: true` (IPv4 instances only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VirtualMac {
    /// The macvlan's name (`virtual_mac_interface`, default `vrrp.{vrid}`); a valid interface
    /// name of at most 15 characters, used by no other instance.
    pub interface: String,
}

impl VirtualMac {
    /// The name a macvlan gets when `virtual_mac_interface` is not written: keepalived's
    /// `vrrp.{VRID}`, so an operator finds it where keepalived would have put it.
    pub fn default_interface(vrid: u8) -> String {
        format!("vrrp.{vrid}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, intervals in whole seconds, optional simple password.
    V2,
    /// RFC 5798 / RFC 9568: IPv4 and IPv6, centisecond intervals, no authentication.
    V3,
}

/// How a VRRPv3 checksum over IPv4 is computed (IPv6 always includes the pseudo-header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum V3Checksum {
    /// Including the IPv4 pseudo-header, as keepalived and Wireshark do (default).
    #[default]
    WithPseudoHeader,
    /// The VRRP message only, as RFC 9568 says.
    MessageOnly,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unicast {
    /// `None`: the interface's primary address of the instance's family.
    pub source: Option<IpAddr>,
    /// Never empty; adverts go to each and are accepted only from these.
    pub peers: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vip {
    /// The address with its prefix length, e.g. 198.51.100.50/24.
    pub address: IpNet,
    /// Where the address is added: the VIP's `interface`, else the instance's.
    pub interface: String,
    /// An IPv4 address label (`eth0:api`); always starts with the interface name.
    pub label: Option<String>,
}

/// One `track` entry, with keepalived weight semantics (docs/design/vrrp.md, Tracking).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tracker {
    pub target: TrackTarget,
    /// -254..=254; 0 (the default) puts the instance in Fault while the tracker fails.
    pub weight: i16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrackTarget {
    /// Fails while fewer than `min_up` servers of the frontend's backend are healthy.
    Frontend { name: String, min_up: u32 },
    /// A script of `scripts`, by name.
    Script { name: String },
    /// Fails while the link is down.
    Interface { name: String },
    /// The integer in the file is multiplied by `weight`.
    File { path: PathBuf },
}

/// An argv to run: `program` is an absolute path, never interpreted by a shell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Hooks run on state changes, in order per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    pub master: Option<Command>,
    pub backup: Option<Command>,
    pub fault: Option<Command>,
    /// Runs on every change with the instance, new state and priority appended.
    pub state: Option<Command>,
    /// A hook still running after this is killed (default 30s).
    pub timeout: Duration,
}

impl Default for Notify {
    fn default() -> Self {
        Self {
            master: None,
            backup: None,
            fault: None,
            state: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Gratuitous ARP / unsolicited NA on becoming master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garp {
    /// Messages per burst (default 5).
    pub repeat: u32,
    /// Delay before the second burst (default 5s); zero means no second burst.
    pub delay: Duration,
    /// Periodic refresh while master; `None` (the default, `0s`) means none.
    pub refresh: Option<Duration>,
}

impl Default for Garp {
    fn default() -> Self {
        Self {
            repeat: 5,
            delay: Duration::from_secs(5),
            refresh: None,
        }
    }
}

/// One entry of `scripts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub command: Command,
    /// Default 2s.
    pub interval: Duration,
    /// Default the smaller of 1s and `interval`; never longer than `interval`.
    pub timeout: Duration,
    /// Successes in a row before the tracker is good (default 2).
    pub rise: u32,
    /// Failures in a row before it fails (default 3).
    pub fall: u32,
    /// `None`: `vipd-script` if that user exists, else `nobody`. Root only when written.
    pub user: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    pub name: String,
    /// Never empty.
    pub bind: Vec<SocketAddr>,
    /// The name of a backend of `backends`.
    pub backend: String,
    /// Expect a PROXY v1/v2 header from clients (default false).
    pub accept_proxy: bool,
    /// Concurrent sessions of this frontend; `None`: [`defaults::FRONTEND_MAX_CONNECTIONS`].
    pub max_connections: Option<u32>,
    /// TCP keepalive on client sockets; `None`: off (`enabled: false`). On by default.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Default [`defaults::PROXY_HEADER_TIMEOUT`].
    pub proxy_header_timeout: Duration,
}

/// `tcp_keepalive` of a frontend (client sockets) or backend (server sockets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Default [`defaults::TCP_KEEPALIVE_IDLE`].
    pub idle: Duration,
    /// Default [`defaults::TCP_KEEPALIVE_INTERVAL`].
    pub interval: Duration,
    /// Default [`defaults::TCP_KEEPALIVE_COUNT`].
    pub count: u32,
    /// TCP_USER_TIMEOUT; default unset.
    pub user_timeout: Option<Duration>,
}

impl Default for TcpKeepalive {
    fn default() -> Self {
        Self {
            idle: defaults::TCP_KEEPALIVE_IDLE,
            interval: defaults::TCP_KEEPALIVE_INTERVAL,
            count: defaults::TCP_KEEPALIVE_COUNT,
            user_timeout: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub balance: Balance,
    pub send_proxy: ProxyProtocol,
    /// Connect retries after the first attempt (default 3).
    pub retries: u32,
    pub on_server_down: OnServerDown,
    pub timeout: Timeouts,
    pub health: HealthCheck,
    /// Sessions that may wait when every usable server is at its `max_connections` (default 1024).
    pub max_queue: u32,
    /// Never empty.
    pub servers: Vec<Server>,
    /// TCP keepalive on server sockets; `None`: off (`enabled: false`). On by default.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// A server that comes back (up again, or out of maintenance) ramps its weight and
    /// `max_connections` up over this long (HAProxy's `slowstart`); `None`: at once.
    pub slow_start: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Balance {
    /// Smooth weighted round robin (default).
    #[default]
    RoundRobin,
    LeastConn,
    /// Consistent hash of the client address.
    Source,
    /// Power of two random choices.
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ProxyProtocol {
    #[default]
    None,
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OnServerDown {
    #[default]
    KeepSessions,
    ShutdownSessions,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Default 3s.
    pub connect: Duration,
    /// Default 5m.
    pub idle: Duration,
    /// Default 1h.
    pub tunnel: Duration,
    /// Inactivity after one side's FIN; default unset: `idle` / `tunnel` stay in force, as in
    /// HAProxy without `timeout client-fin` / `server-fin`.
    pub fin: Option<Duration>,
    /// The wait in a full backend's queue; default `connect`.
    pub queue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: defaults::TIMEOUT_CONNECT,
            idle: defaults::TIMEOUT_IDLE,
            tunnel: defaults::TIMEOUT_TUNNEL,
            fin: None,
            queue: defaults::TIMEOUT_CONNECT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthKind,
    /// Default 2s.
    pub interval: Duration,
    /// Default the smaller of 1s and `interval`.
    pub timeout: Duration,
    /// Default 2.
    pub rise: u32,
    /// Default 3.
    pub fall: u32,
    /// Servers start up rather than down until `rise` checks pass (default false).
    pub initially_up: bool,
    /// Failed connection attempts of client traffic in a row that mark a server down at once;
    /// 0 turns it off (default 3).
    pub error_limit: u32,
    pub options: CheckOptions,
}

/// What checks of real clusters need beyond kind and timing (docs/design/proxy.md, Checks of real
/// clusters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Port of every server's checks; `None`: the server's port.
    pub port: Option<u16>,
    /// PROXY header on checks; `None`: the backend's `send_proxy` when the checks go to the
    /// traffic address and port (HAProxy's default), else none.
    pub send_proxy: Option<ProxyProtocol>,
    /// Request headers of http and https checks (not Host: see `host`).
    pub headers: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer`, read again whenever the file changes.
    pub bearer_token_file: Option<PathBuf>,
    /// https checks: the client certificate of mTLS.
    pub client_certificate: Option<ClientCertificate>,
    /// https checks: the TLS server name, when it is not `host`.
    pub sni: Option<String>,
    /// 0..=50; each wait between checks varies by up to this percent (default 5).
    pub jitter_percent: u8,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            port: None,
            send_proxy: None,
            headers: Vec::new(),
            bearer_token_file: None,
            client_certificate: None,
            sni: None,
            jitter_percent: defaults::CHECK_JITTER_PERCENT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// PEM chain, leaf first; holds the key too when `key_file` is `None`.
    pub certificate_file: PathBuf,
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connect (the default).
    Tcp,
    Http(HttpCheck),
    Https {
        http: HttpCheck,
        tls_verify: TlsVerify,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Default `/`.
    pub path: String,
    /// Default `[200]`.
    pub expect_status: Vec<u16>,
    /// Host header, and SNI for https.
    pub host: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TlsVerify {
    /// Accept any certificate (the default: the check is about liveness, not identity).
    #[default]
    None,
    CaFile(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    /// 0..=256; 0 drains the server (default 1).
    pub weight: u32,
    /// Used only while no primary server is up (default false).
    pub backup: bool,
    pub max_connections: Option<u32>,
    /// Where the health checks connect instead of `address`'s IP.
    pub check_address: Option<IpAddr>,
}
