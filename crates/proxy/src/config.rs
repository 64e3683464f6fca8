//! The proxy's own typed configuration: plain data, no parsing.
//!
//! Field names follow the `frontends:` and `backends:` sections of vipd.yaml (docs/configuration.md) so the
//! daemon maps vipd-config's YAML model onto these types one field at a time. Values here are already
//! typed (durations, socket addresses); [`ProxyConfig::validate`] checks what the types cannot say
//! (unique names, references, non-zero `rise`/`fall`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use vipd_config::defaults;

use crate::Error;

/// Everything the proxy serves: `frontends`, `backends` and the global connection limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub frontends: Vec<FrontendConfig>,
    pub backends: Vec<BackendConfig>,
    /// Global limit on concurrent client sessions over all frontends (HAProxy's global `maxconn`).
    /// When reached, listeners stop accepting; clients wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// After a reload, sessions on servers the new configuration no longer has (removed, or
    /// their address changed) are cut after this long; `None` lets them run to their end.
    pub hard_stop_after: Option<Duration>,
    /// What streaming sessions' grown pipes may hold together beyond their base 64 KiB.
    pub pipe_memory: PipeMemory,
}

/// The budget of grown pipes: a share of the machine's memory, or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeMemory {
    /// Percent of `MemTotal` (/proc/meminfo).
    ShareOfRam(u8),
    Bytes(u64),
}

impl Default for PipeMemory {
    fn default() -> Self {
        Self::ShareOfRam(crate::DEFAULT_BUDGET_PERCENT)
    }
}

impl PipeMemory {
    /// In bytes, on this machine. A share is of the memory this process may use: `MemTotal`, or
    /// less if its cgroup (a container's limit, a unit's `MemoryMax=`) allows less, since pipe
    /// pages are charged to the cgroup. If neither can be read, 4 GiB is assumed (a small node;
    /// 2% of it is 80 MiB). At most 100%.
    pub fn bytes(self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::ShareOfRam(percent) => {
                let total = [mem_total(), cgroup_memory_limit()]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(4 << 30);
                total / 100 * u64::from(percent.min(100))
            }
        }
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The tightest `memory.max` of this process's cgroup (v2) and its ancestors; `None` without
/// cgroup v2 or without a limit.
fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    tightest_memory_max(path, |dir| {
        std::fs::read_to_string(format!("/sys/fs/cgroup{dir}/memory.max")).ok()
    })
}

/// The smallest numeric `memory.max` from cgroup `path` up to the root (`max`: no limit).
fn tightest_memory_max(path: &str, memory_max: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let mut dir = path.trim_end_matches('/');
    let mut tightest: Option<u64> = None;
    loop {
        let limit = memory_max(dir).and_then(|text| text.trim().parse::<u64>().ok());
        tightest = match (tightest, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match dir.rsplit_once('/') {
            Some((parent, _)) => dir = parent,
            None => return tightest,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            frontends: Vec::new(),
            backends: Vec::new(),
            max_connections: 100_000,
            hard_stop_after: None,
            pipe_memory: PipeMemory::default(),
        }
    }
}

/// One `frontends:` entry: where clients connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendConfig {
    pub name: String,
    /// Addresses to listen on. Bound with `IP_FREEBIND` so a backup node listens on a VIP it does not
    /// own yet, and `SO_REUSEADDR`.
    pub bind: Vec<SocketAddr>,
    /// Name of the backend that serves this frontend.
    pub backend: String,
    /// Expect a PROXY v1 or v2 header from each client (an upstream load balancer); the address it
    /// carries is what balancing and `send_proxy` see.
    pub accept_proxy: bool,
    /// Concurrent sessions of this frontend; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// TCP keepalive on client sockets (HAProxy's `option clitcpka`); `None`: off.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// How long a client may take to send its PROXY header (`accept_proxy`).
    pub proxy_header_timeout: Duration,
}

impl FrontendConfig {
    /// A frontend with the contract's defaults (`vipd_config::defaults`): no PROXY header
    /// expected, [`defaults::FRONTEND_MAX_CONNECTIONS`] sessions.
    pub fn new(name: impl Into<String>, bind: Vec<SocketAddr>, backend: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            bind,
            backend: backend.into(),
            accept_proxy: false,
            max_connections: widen(defaults::FRONTEND_MAX_CONNECTIONS),
            tcp_keepalive: Some(TcpKeepalive::default()),
            proxy_header_timeout: defaults::PROXY_HEADER_TIMEOUT,
        }
    }
}

/// How a backend picks a server for a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's algorithm): weights respected, picks interleaved.
    #[default]
    RoundRobin,
    /// Fewest active sessions relative to weight; the default for apiservers (long watches).
    LeastConn,
    /// Weighted rendezvous hash of the client IP over server names: two nodes with the same
    /// configuration send a client to the same server.
    Source,
    /// Power of two random choices (weighted), the less loaded wins.
    Random,
}

/// PROXY protocol header sent to servers (`send_proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProtocol {
    #[default]
    None,
    V1,
    V2,
}

/// What happens to established sessions of a server its health check marks down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnServerDown {
    #[default]
    KeepSessions,
    ShutdownSessions,
}

/// Session timeouts (`timeout: { connect, idle, tunnel, fin }`).
///
/// - `connect`: per connection attempt to a server.
/// - `idle`: inactivity (no byte in either direction) before the session has carried data both ways.
/// - `tunnel`: inactivity once both sides have spoken (a watch stream, a TLS session); replaces `idle`,
///   as HAProxy's `timeout tunnel` supersedes `timeout client/server`.
/// - `fin`: inactivity of the remaining direction after one side sent FIN (half-closed session),
///   counted from that FIN and restarted by every byte moved; `None` (the default, as HAProxy's
///   unset `timeout client-fin` / `server-fin`) keeps `idle` or `tunnel` in force.
/// - `queue`: the wait in a full backend's queue; `None` is `connect` (HAProxy's default
///   `timeout queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub idle: Duration,
    pub tunnel: Duration,
    pub fin: Option<Duration>,
    pub queue: Option<Duration>,
}

impl Timeouts {
    /// The longest a session waits in the queue.
    pub fn queue_wait(&self) -> Duration {
        self.queue.unwrap_or(self.connect)
    }
}

impl Default for Timeouts {
    /// The contract's defaults (`vipd_config::defaults`).
    fn default() -> Self {
        Self {
            connect: defaults::TIMEOUT_CONNECT,
            idle: defaults::TIMEOUT_IDLE,
            tunnel: defaults::TIMEOUT_TUNNEL,
            fin: None,
            queue: None,
        }
    }
}

/// TCP keepalive of a session's socket (`tcp_keepalive`): after `idle` without traffic the kernel
/// probes the peer every `interval`; `count` probes unanswered and the socket fails with
/// ETIMEDOUT, which ends the session (the other side gets a reset). So a peer that vanished
/// without FIN or RST (powered off, cable cut, a NAT that forgot the flow) frees its session
/// after `idle + interval × count` instead of holding it until `tunnel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before the socket fails (also
    /// bounds keepalive probing); `None` leaves the kernel's retransmission limits.
    pub user_timeout: Option<Duration>,
}

impl Default for TcpKeepalive {
    /// The contract's defaults (`vipd_config::defaults`).
    fn default() -> Self {
        Self {
            idle: defaults::TCP_KEEPALIVE_IDLE,
            interval: defaults::TCP_KEEPALIVE_INTERVAL,
            count: defaults::TCP_KEEPALIVE_COUNT,
            user_timeout: None,
        }
    }
}

impl TcpKeepalive {
    /// Turns keepalive on for `socket` with these settings.
    pub(crate) fn apply(&self, socket: &socket2::SockRef<'_>) -> std::io::Result<()> {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval)
            .with_retries(self.count);
        socket.set_tcp_keepalive(&keepalive)?;
        if let Some(timeout) = self.user_timeout {
            socket.set_tcp_user_timeout(Some(timeout))?;
        }
        Ok(())
    }
}

/// One `backends:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub name: String,
    pub balance: Balance,
    pub send_proxy: ProxyProtocol,
    /// Connection attempts after the first failed one; each goes to another server than those
    /// that failed this session while one is left (redispatch).
    pub retries: u32,
    pub on_server_down: OnServerDown,
    pub timeout: Timeouts,
    /// `None`: no checks, every server counts as up.
    pub health: Option<HealthCheckConfig>,
    pub servers: Vec<ServerConfig>,
    /// Sessions that may wait for a free slot when every usable server is at its `max_connections`;
    /// beyond this, new sessions are refused at once.
    pub max_queue: usize,
    /// TCP keepalive on server sockets (HAProxy's `option srvtcpka`); `None`: off.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// A server that comes back (up again, or out of maintenance) ramps its weight and
    /// `max_connections` from nothing to full over this long (HAProxy's `slowstart`).
    pub slow_start: Option<Duration>,
}

impl BackendConfig {
    /// A backend with the contract's defaults (`vipd_config::defaults`).
    pub fn new(name: impl Into<String>, servers: Vec<ServerConfig>) -> Self {
        Self {
            name: name.into(),
            balance: Balance::default(),
            send_proxy: ProxyProtocol::None,
            retries: defaults::BACKEND_RETRIES,
            on_server_down: OnServerDown::KeepSessions,
            timeout: Timeouts::default(),
            health: None,
            servers,
            max_queue: widen(defaults::BACKEND_MAX_QUEUE),
            tcp_keepalive: Some(TcpKeepalive::default()),
            slow_start: None,
        }
    }
}

/// One server of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Unique in its backend; the key for admin actions, stats and `source` hashing.
    pub name: String,
    pub address: SocketAddr,
    /// Relative share of new sessions; 0 drains the server (no new sessions).
    pub weight: u32,
    /// Used only when no primary server is usable.
    pub backup: bool,
    /// Concurrent sessions on this server; `None` = unlimited. Excess sessions queue in the backend.
    pub max_connections: Option<usize>,
    /// Address the health checks connect to instead of `address`'s IP (HAProxy's `addr`).
    pub check_address: Option<IpAddr>,
}

impl ServerConfig {
    pub fn new(name: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            name: name.into(),
            address,
            weight: 1,
            backup: false,
            max_connections: None,
            check_address: None,
        }
    }
}

/// `health:` of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub kind: HealthCheckKind,
    /// Request path of `http`/`https` checks.
    pub path: String,
    /// Accepted status codes; empty accepts any 2xx or 3xx (HAProxy's `httpchk` default).
    pub expect_status: Vec<u16>,
    /// Host header and TLS server name; the server's IP address when `None`.
    pub host: Option<String>,
    pub interval: Duration,
    /// Bound of one check, connect to verdict. A check that hangs fails at this timeout.
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    pub rise: u32,
    /// Consecutive failures that bring an up server down.
    pub fall: u32,
    /// Servers start down until they pass `rise` checks; `true` starts them up.
    pub initially_up: bool,
    /// Connection attempts of client traffic that fail in a row (timed out, refused, reset
    /// before the server sent a byte) and mark an up server down at once; 0 turns this off.
    /// HAProxy's `observe layer4` with `error-limit` and `on-error mark-down`.
    pub error_limit: u32,
    /// Port the checks connect to; `None`: each server's traffic port.
    pub port: Option<u16>,
    /// PROXY header in front of each check (v1 `UNKNOWN`, v2 `LOCAL`). `None` follows HAProxy:
    /// the backend's `send_proxy` when the check goes to the server's traffic address and port.
    pub send_proxy: Option<ProxyProtocol>,
    /// Further request headers of `http`/`https` checks, in order.
    pub headers: Vec<(String, String)>,
    /// A file holding a token sent as `Authorization: Bearer`; re-read when it changes.
    pub bearer_token_file: Option<PathBuf>,
    /// Client certificate of `https` checks (mTLS).
    pub client_certificate: Option<ClientCertificate>,
    /// TLS server name (SNI, and the name verified); `None`: `host`, else the server's IP.
    pub sni: Option<String>,
    /// Each wait between two checks varies at random by up to this percent of it, either way, so
    /// the checks of many servers drift apart instead of firing together.
    pub jitter_percent: u8,
}

/// `health.client_certificate` / `client_key`: PEM files read at start and at each reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Certificate chain, leaf first; may also hold the key.
    pub certificate_file: PathBuf,
    /// Private key; `None`: the key is in `certificate_file` (HAProxy's `crt`).
    pub key_file: Option<PathBuf>,
}

impl HealthCheckConfig {
    /// A check of `kind` with the contract's defaults (`vipd_config::defaults`).
    pub fn new(kind: HealthCheckKind) -> Self {
        Self {
            kind,
            path: defaults::HEALTH_PATH.to_owned(),
            expect_status: vec![defaults::HEALTH_EXPECT_STATUS],
            host: None,
            interval: defaults::CHECK_INTERVAL,
            timeout: defaults::CHECK_TIMEOUT,
            rise: defaults::CHECK_RISE,
            fall: defaults::CHECK_FALL,
            initially_up: false,
            error_limit: defaults::HEALTH_ERROR_LIMIT,
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

/// `health.kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect that succeeds within `timeout`.
    Tcp,
    /// `GET path` over HTTP/1.1, status in `expect_status`.
    Http,
    /// `GET path` over TLS.
    Https { tls_verify: TlsVerify },
}

/// `health.tls_verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    /// Accept any certificate (the handshake's signatures are still checked).
    None,
    /// Verify the chain against the CA certificates in this PEM file, and the name against `host`
    /// (or the server's IP address).
    CaFile(PathBuf),
}

impl ProxyConfig {
    /// Checks what the types cannot: unique names, frontends pointing at existing backends,
    /// `rise`/`fall` at least 1, non-zero limits.
    pub fn validate(&self) -> Result<(), Error> {
        let mut backend_names = BTreeSet::new();
        for backend in &self.backends {
            if !backend_names.insert(backend.name.as_str()) {
                return Err(invalid(
                    format!("backends.{}", backend.name),
                    "duplicate backend name",
                ));
            }
            let mut server_names = BTreeSet::new();
            for server in &backend.servers {
                if !server_names.insert(server.name.as_str()) {
                    return Err(invalid(
                        format!("backends.{}.servers.{}", backend.name, server.name),
                        "duplicate server name",
                    ));
                }
                if server.max_connections == Some(0) {
                    return Err(invalid(
                        format!(
                            "backends.{}.servers.{}.max_connections",
                            backend.name, server.name
                        ),
                        "must be at least 1",
                    ));
                }
            }
            if let Some(health) = &backend.health {
                if health.rise == 0 || health.fall == 0 {
                    return Err(invalid(
                        format!("backends.{}.health", backend.name),
                        "rise and fall must be at least 1",
                    ));
                }
                if health.interval.is_zero() || health.timeout.is_zero() {
                    return Err(invalid(
                        format!("backends.{}.health", backend.name),
                        "interval and timeout must be positive",
                    ));
                }
                validate_check_request(health).map_err(|reason| {
                    invalid(format!("backends.{}.health", backend.name), reason)
                })?;
            }
        }
        let mut frontend_names = BTreeSet::new();
        let mut binds = BTreeSet::new();
        for frontend in &self.frontends {
            if !frontend_names.insert(frontend.name.as_str()) {
                return Err(invalid(
                    format!("frontends.{}", frontend.name),
                    "duplicate frontend name",
                ));
            }
            if !backend_names.contains(frontend.backend.as_str()) {
                return Err(invalid(
                    format!("frontends.{}.backend", frontend.name),
                    format!("no backend named {}", frontend.backend),
                ));
            }
            if frontend.max_connections == 0 {
                return Err(invalid(
                    format!("frontends.{}.max_connections", frontend.name),
                    "must be at least 1",
                ));
            }
            for address in &frontend.bind {
                if !binds.insert(*address) {
                    return Err(invalid(
                        format!("frontends.{}.bind", frontend.name),
                        format!("{address} is bound twice"),
                    ));
                }
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections".to_owned(), "must be at least 1"));
        }
        Ok(())
    }
}

/// What goes into a check's request as it is: header names and values that cannot break the
/// request (RFC 9110 section 5.1 token names, no CR, LF or NUL in values), jitter of at most 50 %.
fn validate_check_request(health: &HealthCheckConfig) -> Result<(), String> {
    if health.jitter_percent > 50 {
        return Err("jitter_percent must be 0..=50".to_owned());
    }
    for (name, value) in &health.headers {
        if !is_header_name(name) {
            return Err(format!(
                "header name `{}` is not a token",
                name.escape_debug()
            ));
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(format!("header {name}: the value holds CR, LF or NUL"));
        }
    }
    Ok(())
}

/// RFC 9110 section 5.6.2: `token = 1*tchar`.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

fn invalid(path: String, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        path,
        reason: reason.into(),
    }
}

/// A limit of the contract (u32) as the engine counts it.
fn widen(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn valid() -> ProxyConfig {
        ProxyConfig {
            frontends: vec![FrontendConfig::new(
                "api",
                vec![addr("127.0.0.1:6443")],
                "apis",
            )],
            backends: vec![BackendConfig::new(
                "apis",
                vec![ServerConfig::new("m1", addr("127.0.0.2:6443"))],
            )],
            ..ProxyConfig::default()
        }
    }

    #[test]
    fn accepts_a_valid_config() {
        valid().validate().unwrap();
    }

    #[test]
    fn rejects_unknown_backend_reference() {
        let mut config = valid();
        config.frontends[0].backend = "nope".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("frontends.api.backend"), "{error}");
    }

    #[test]
    fn rejects_duplicate_server_and_zero_rise() {
        let mut config = valid();
        config.backends[0]
            .servers
            .push(ServerConfig::new("m1", addr("127.0.0.3:1")));
        assert!(config.validate().is_err());
        let mut config = valid();
        let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
        health.rise = 0;
        config.backends[0].health = Some(health);
        assert!(config.validate().is_err());
    }

    #[test]
    fn rejects_check_headers_that_would_split_the_request() {
        for header in [("X-A", "a\r\nX-B: b"), ("Bad Name", "x"), ("", "x")] {
            let mut config = valid();
            let mut health = HealthCheckConfig::new(HealthCheckKind::Http);
            health.headers = vec![(header.0.to_owned(), header.1.to_owned())];
            config.backends[0].health = Some(health);
            assert!(config.validate().is_err(), "{header:?}");
        }
        let mut config = valid();
        let mut health = HealthCheckConfig::new(HealthCheckKind::Http);
        health.jitter_percent = 51;
        config.backends[0].health = Some(health);
        assert!(config.validate().is_err());
    }

    #[test]
    fn rejects_a_port_bound_twice() {
        let mut config = valid();
        config.frontends.push(FrontendConfig::new(
            "api2",
            vec![addr("127.0.0.1:6443")],
            "apis",
        ));
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_tightest_cgroup_memory_limit_on_the_way_to_the_root_counts() {
        let limits = |dir: &str| match dir {
            "/kubepods/pod1/vipd" => Some("max\n".to_owned()),
            "/kubepods/pod1" => Some("167772160\n".to_owned()),
            "/kubepods" => Some("8589934592\n".to_owned()),
            _ => None,
        };
        assert_eq!(
            tightest_memory_max("/kubepods/pod1/vipd", limits),
            Some(160 << 20)
        );
        assert_eq!(
            tightest_memory_max("/system.slice/vipd.service", limits),
            None
        );
        assert_eq!(tightest_memory_max("/", limits), None);
    }
}
