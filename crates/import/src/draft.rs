//! The configuration being built: vipd.yaml's shape with every value already checked, and where
//! in the source files each block came from. The parsers fill it; `emit` writes it out.
//!
//! Values are kept as vipd will read them (durations, addresses) so that a value keepalived or
//! HAProxy accepts but vipd would refuse is caught, and reported with the source line, while
//! translating rather than by `vipd check` against a line of the generated file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::Location;

#[derive(Debug, Default)]
pub struct Draft {
    pub node: Option<String>,
    /// Comment lines for the top of the file (sources, notes that concern the whole file).
    pub header: Vec<String>,
    pub max_connections: Option<u32>,
    pub instances: Vec<Instance>,
    pub scripts: Vec<Script>,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

#[derive(Debug)]
pub struct Instance {
    pub from: Location,
    /// Comment lines written above the entry.
    pub notes: Vec<String>,
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub advert_interval: Option<Duration>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<Duration>,
    pub auth_password: Option<String>,
    pub unicast_source: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub virtual_mac: bool,
    pub virtual_mac_interface: Option<String>,
    pub vips: Vec<Vip>,
    pub track: Vec<Tracker>,
    pub notify: Notify,
    pub garp: Garp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub address: IpNet,
    pub interface: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackTarget {
    Frontend(String),
    Script(String),
    Interface(String),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub target: TrackTarget,
    pub weight: i16,
    /// A comment written after the entry.
    pub note: Option<String>,
}

#[derive(Debug, Default)]
pub struct Notify {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub state: Option<Vec<String>>,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.master.is_none()
            && self.backup.is_none()
            && self.fault.is_none()
            && self.state.is_none()
    }
}

#[derive(Debug, Default, Clone)]
pub struct Garp {
    pub repeat: Option<u32>,
    pub delay: Option<Duration>,
    pub refresh: Option<Duration>,
}

impl Garp {
    pub fn is_empty(&self) -> bool {
        self.repeat.is_none() && self.delay.is_none() && self.refresh.is_none()
    }
}

#[derive(Debug)]
pub struct Script {
    pub from: Location,
    pub notes: Vec<String>,
    pub name: String,
    pub command: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub user: Option<String>,
}

#[derive(Debug)]
pub struct Frontend {
    pub from: Location,
    pub notes: Vec<String>,
    pub name: String,
    pub bind: Vec<SocketAddr>,
    pub backend: String,
    pub accept_proxy: bool,
    pub max_connections: Option<u32>,
    /// `tcp_keepalive` of client sockets; `None` writes nothing (vipd's default: on).
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// `tcp_keepalive`: `enabled` and the timings HAProxy gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub enabled: bool,
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
}

impl TcpKeepalive {
    /// On, with vipd's timings: nothing to write.
    pub fn default_enabled() -> Self {
        Self {
            enabled: true,
            ..Self::default()
        }
    }
}

#[derive(Debug)]
pub struct Backend {
    pub from: Location,
    pub notes: Vec<String>,
    pub name: String,
    pub balance: Option<&'static str>,
    pub send_proxy: Option<&'static str>,
    pub retries: Option<u32>,
    pub shutdown_sessions: bool,
    pub timeout: Timeouts,
    pub health: Health,
    pub max_queue: Option<u32>,
    pub servers: Vec<Server>,
    /// `tcp_keepalive` of server sockets; `None` writes nothing (vipd's default: on).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// HAProxy's per-server `slowstart`, the longest of the backend's servers.
    pub slow_start: Option<std::time::Duration>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub idle: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub fin: Option<Duration>,
    pub queue: Option<Duration>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Health {
    /// `tcp`, `http` or `https`; `None` writes no `health` unless another field is set.
    pub kind: Option<&'static str>,
    pub path: Option<String>,
    pub expect_status: Option<Vec<u16>>,
    pub host: Option<String>,
    pub tls_verify: Option<TlsVerify>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub initially_up: bool,
    pub error_limit: Option<u32>,
    /// HAProxy's `port`, `check-send-proxy`, `http-check send hdr`, `crt`, `check-sni` and
    /// the global `spread-checks`.
    pub port: Option<u16>,
    pub send_proxy: Option<&'static str>,
    pub headers: Vec<(String, String)>,
    pub client_certificate: Option<String>,
    pub sni: Option<String>,
    pub jitter_percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    None,
    CaFile(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    pub weight: Option<u32>,
    pub backup: bool,
    pub max_connections: Option<u32>,
    pub note: Option<String>,
    /// HAProxy's `addr`.
    pub check_address: Option<IpAddr>,
}
