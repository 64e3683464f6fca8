//! The document as written: serde types that mirror vipd.yaml field by field.
//!
//! Unknown fields are rejected here (`deny_unknown_fields`). Everything that can be wrong in more
//! than one place at once — missing fields, numbers out of range, durations, addresses — is kept
//! loose (`Option`, `i64`, `String`) so that validation can report every problem, not only the
//! first one serde meets. Choices (`balance`, `kind`, ...) are enums: serde names the allowed words.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub node: Option<String>,
    pub control: Option<Control>,
    /// Added to the contract (docs/design/configuration.md, Fields added beyond the brief): how long SIGTERM waits for proxy sessions to drain.
    pub shutdown_grace: Option<String>,
    /// Added to the contract (docs/design/proxy.md): the global limit of concurrent proxy sessions.
    pub max_connections: Option<i64>,
    /// Added to the contract (docs/design/proxy.md, Forwarding): what grown pipes of streaming
    /// sessions may hold together, `2%` of RAM or a size such as `256MiB`.
    pub pipe_memory: Option<String>,
    #[serde(default)]
    pub vrrp: Vec<Vrrp>,
    /// Added to the contract (docs/design/announce.md): VIPs announced by the node's routing
    /// daemon instead of elected by VRRP.
    pub announce: Option<Announce>,
    #[serde(default)]
    pub scripts: BTreeMap<String, Script>,
    #[serde(default)]
    pub frontends: Vec<Frontend>,
    #[serde(default)]
    pub backends: Vec<Backend>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    pub device: Option<String>,
    pub local_device: Option<String>,
    pub withdraw_delay: Option<String>,
    #[serde(default)]
    pub groups: Vec<AnnounceGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceGroup {
    pub name: Option<String>,
    #[serde(default)]
    pub vips: Vec<String>,
    pub priority: Option<i64>,
    pub withdraw_below: Option<i64>,
    #[serde(default)]
    pub track: Vec<Track>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub listen: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vrrp {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<i64>,
    pub priority: Option<i64>,
    pub version: Option<i64>,
    pub advert_interval: Option<String>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    pub checksum: Option<Checksum>,
    pub auth_password: Option<String>,
    pub unicast: Option<Unicast>,
    /// Added to the contract: the priority a peer of this VRID is configured with, so that
    /// `vipd check` can tell whether a negative tracker weight can ever move the VIP.
    pub peer_priority: Option<i64>,
    /// Added to the contract (docs/design/vrrp.md, Virtual MAC): carry the VIPs on a macvlan with the VRRP virtual MAC
    /// (RFC 5798 section 7.3), like keepalived's `use_vmac`.
    pub virtual_mac: Option<bool>,
    /// The macvlan's name; default `vrrp.{vrid}`.
    pub virtual_mac_interface: Option<String>,
    #[serde(default)]
    pub vips: Vec<Vip>,
    #[serde(default)]
    pub track: Vec<Track>,
    pub notify: Option<Notify>,
    pub garp: Option<Garp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    WithPseudoHeader,
    MessageOnly,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unicast {
    pub source: Option<String>,
    #[serde(default)]
    pub peers: Vec<String>,
}

/// A VIP: `198.51.100.50/24`, or `{ address, interface, label }`.
#[derive(Debug)]
pub enum Vip {
    Plain(String),
    Detailed(VipDetail),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipDetail {
    pub address: Option<String>,
    pub interface: Option<String>,
    pub label: Option<String>,
}

impl<'de> Deserialize<'de> for Vip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VipVisitor;
        impl<'de> Visitor<'de> for VipVisitor {
            type Value = Vip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a VIP with its prefix length (198.51.100.50/24) or a map \
                     { address, interface, label }",
                )
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Vip, E> {
                Ok(Vip::Plain(value.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vip, A::Error> {
                VipDetail::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Vip::Detailed)
            }
        }
        deserializer.deserialize_any(VipVisitor)
    }
}

/// A tracker: exactly one of `frontend`, `script`, `interface`, `file`, plus `weight` (and
/// `min_up` for a frontend). Kept as one flat map so that "two kinds in one entry" and "no kind"
/// are validation errors with a path, rather than serde's "did not match any variant".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    pub frontend: Option<String>,
    pub script: Option<String>,
    pub interface: Option<String>,
    pub file: Option<String>,
    pub weight: Option<i64>,
    pub min_up: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub state: Option<Vec<String>>,
    /// Added to the contract: how long a hook may run before it is killed.
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    pub repeat: Option<i64>,
    pub delay: Option<String>,
    pub refresh: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub command: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub name: Option<String>,
    #[serde(default)]
    pub bind: Vec<String>,
    pub backend: Option<String>,
    pub accept_proxy: Option<bool>,
    pub max_connections: Option<i64>,
    /// Added to the contract: TCP keepalive on client sockets.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Added to the contract: how long a client may take to send its PROXY header.
    pub proxy_header_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    pub enabled: Option<bool>,
    pub idle: Option<String>,
    pub interval: Option<String>,
    pub count: Option<i64>,
    pub user_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: Option<String>,
    pub balance: Option<Balance>,
    pub send_proxy: Option<SendProxy>,
    pub retries: Option<i64>,
    pub on_server_down: Option<OnServerDown>,
    pub timeout: Option<Timeouts>,
    pub health: Option<Health>,
    /// Added to the contract (docs/design/proxy.md): sessions that may wait when every server is full.
    pub max_queue: Option<i64>,
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Added to the contract: TCP keepalive on server sockets.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Added to the contract (docs/design/proxy.md, Slow start): a server coming back ramps up.
    pub slow_start: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    LeastConn,
    Source,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendProxy {
    None,
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnServerDown {
    KeepSessions,
    ShutdownSessions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub connect: Option<String>,
    pub idle: Option<String>,
    pub tunnel: Option<String>,
    pub fin: Option<String>,
    /// Added to the contract (docs/design/proxy.md): the wait in a full backend's queue.
    pub queue: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub kind: Option<HealthKind>,
    pub path: Option<String>,
    pub expect_status: Option<Vec<i64>>,
    pub host: Option<String>,
    pub tls_verify: Option<TlsVerify>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    /// Added to the contract (docs/design/proxy.md): servers start up instead of down.
    pub initially_up: Option<bool>,
    /// Added to the contract (docs/design/proxy.md): failed connection attempts of client
    /// traffic in a row that mark a server down.
    pub error_limit: Option<i64>,
    /// Options of real clusters (docs/design/proxy.md, Checks of real clusters).
    pub port: Option<i64>,
    pub send_proxy: Option<SendProxy>,
    pub headers: Option<BTreeMap<String, String>>,
    pub bearer_token_file: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    pub sni: Option<String>,
    pub jitter_percent: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    Tcp,
    Http,
    Https,
}

/// `none`, or `{ ca_file: PATH }`.
#[derive(Debug)]
pub enum TlsVerify {
    None,
    CaFile(Option<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsCa {
    ca_file: Option<String>,
}

impl<'de> Deserialize<'de> for TlsVerify {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TlsVerifyVisitor;
        impl<'de> Visitor<'de> for TlsVerifyVisitor {
            type Value = TlsVerify;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`none` or a map { ca_file: PATH }")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<TlsVerify, E> {
                if value == "none" {
                    Ok(TlsVerify::None)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(value), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TlsVerify, A::Error> {
                TlsCa::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|ca| TlsVerify::CaFile(ca.ca_file))
            }
        }
        deserializer.deserialize_any(TlsVerifyVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: Option<String>,
    pub address: Option<String>,
    pub weight: Option<i64>,
    pub backup: Option<bool>,
    pub max_connections: Option<i64>,
    /// Address of the health checks instead of `address`'s IP (HAProxy's `addr`).
    pub check_address: Option<String>,
}
