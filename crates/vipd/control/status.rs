//! The status model: what `GET /status` returns, what `/metrics` and the dashboard are computed
//! from, and what `vipd status` parses back.
//!
//! Field names and the lowercase state strings are an interface users script against: change them
//! only together with docs/metrics.md and the dashboard.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vipd_proxy::{AdminState, BackendStats, Balance, FrontendStats, ProxyStats, ServerStats};

/// The version of the `/status` schema this daemon serves. Adding a field keeps it; renaming or
/// removing one, or changing a field's meaning or type, raises it (docs/metrics.md).
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// Everything this node knows about itself at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// [`STATUS_SCHEMA_VERSION`]; 0 from a daemon that predates it.
    #[serde(default)]
    pub schema_version: u32,
    pub node: String,
    pub version: String,
    /// The source revision the daemon was built from (build.rs): `1a2b3c4d5e6f`, with `-dirty`
    /// when built from changed sources, or `unknown`; empty from a daemon that predates it.
    #[serde(default)]
    pub revision: String,
    pub uptime_seconds: u64,
    pub instances: Vec<InstanceStatus>,
    /// The `announce` groups: VIPs this node's routing daemon announces while their trackers
    /// allow (empty from a daemon that predates them, or without `announce`).
    #[serde(default)]
    pub announce: Vec<AnnounceStatus>,
    /// Process-wide proxy totals (absent from a daemon that predates them).
    #[serde(default)]
    pub proxy: ProxySummary,
    pub frontends: Vec<FrontendStatus>,
    pub backends: Vec<BackendStatus>,
    /// The daemon process: file descriptors, memory, CPU (absent from a daemon that predates it).
    #[serde(default)]
    pub process: ProcessStatus,
    /// The daemon's process id: what `vipd reload` signals.
    #[serde(default)]
    pub pid: u32,
    /// The last configuration load: the start-up load or the last SIGHUP (absent from a daemon
    /// that predates it).
    #[serde(default)]
    pub last_reload: Option<LastReload>,
    /// When the configuration was last loaded in full (the start-up load counts), seconds since
    /// the Unix epoch: Prometheus' `..._config_last_reload_success_timestamp_seconds`.
    #[serde(default)]
    pub last_successful_reload_at_unix_seconds: f64,
}

/// The verdict of one configuration load, as `vipd reload` reports it. Sequence 0 is the
/// start-up load; each SIGHUP adds one, whatever its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReload {
    pub sequence: u64,
    /// When the verdict was known, seconds since the Unix epoch.
    pub at_unix_seconds: f64,
    /// The whole file was applied.
    pub ok: bool,
    /// The file was applied, but not all of it (an instance that could not restart, a control
    /// address that could not be bound): `errors` says what is missing.
    pub partial: bool,
    /// Why the file was rejected or applied only in part; empty when `ok`.
    pub errors: Vec<String>,
    /// `sha256:<hex>` of the file in force after this load: the previous file's when rejected.
    pub config_digest: String,
}

/// The daemon process as the kernel accounts for it: Prometheus's standard `process_*` metrics.
/// A reading the kernel refused is `None` (its metric is left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// File descriptors open now.
    pub open_fds: Option<u64>,
    /// The soft RLIMIT_NOFILE: past it, accepts and connects fail with EMFILE.
    pub max_fds: Option<u64>,
    pub resident_memory_bytes: Option<u64>,
    /// User and system CPU time used since start.
    pub cpu_seconds: Option<f64>,
    /// When the daemon started, in seconds since the Unix epoch.
    pub start_time_unix_seconds: f64,
}

/// The proxy as a whole: HAProxy's process-level `CurrConns` / `Maxconn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySummary {
    pub sessions_current: u64,
    /// The global `max_connections` of the proxy.
    pub max_connections: u64,
    /// The global limit in force: above `max_connections` after a reload lowered it while more
    /// sessions were open, until enough of them end.
    #[serde(default)]
    pub max_connections_in_force: u64,
    /// Pipes open for splicing: pooled, or held by a streaming direction.
    #[serde(default)]
    pub pipes: u64,
    /// Capacity beyond 64 KiB that grown pipes hold now.
    #[serde(default)]
    pub pipe_grown_bytes: u64,
    /// The budget in force for `pipe_grown_bytes` (`pipe_memory`, within the kernel's limits).
    #[serde(default)]
    pub pipe_budget_bytes: u64,
    /// Streams whose pipe could not grow: the budget was spent or the kernel refused.
    #[serde(default)]
    pub pipe_growth_refused: u64,
}

impl NodeStatus {
    /// A node with no instances and no proxy yet; the supervisor fills in the rest.
    pub fn new(node: impl Into<String>, uptime_seconds: u64) -> Self {
        Self {
            schema_version: STATUS_SCHEMA_VERSION,
            node: node.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: env!("VIPD_BUILD_REVISION").to_owned(),
            uptime_seconds,
            instances: Vec::new(),
            announce: Vec::new(),
            proxy: ProxySummary::default(),
            frontends: Vec::new(),
            backends: Vec::new(),
            process: ProcessStatus::default(),
            pid: std::process::id(),
            last_reload: None,
            last_successful_reload_at_unix_seconds: 0.0,
        }
    }

    /// Replaces the frontends and backends with a snapshot of the proxy.
    pub fn set_proxy_stats(&mut self, stats: &ProxyStats) {
        self.proxy = ProxySummary {
            sessions_current: stats.sessions_current,
            max_connections: saturating_u64(stats.max_connections),
            max_connections_in_force: saturating_u64(stats.max_connections_in_force),
            pipes: stats.pipes.pipes,
            pipe_grown_bytes: stats.pipes.grown_bytes,
            pipe_budget_bytes: stats.pipes.budget_bytes,
            pipe_growth_refused: stats.pipes.growth_refused,
        };
        self.frontends = stats.frontends.iter().map(FrontendStatus::from).collect();
        self.backends = stats.backends.iter().map(BackendStatus::from).collect();
    }
}

/// One VRRP virtual router as its router task sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// VRRP version on the wire: 2 or 3.
    pub version: u8,
    pub state: VrrpState,
    /// Released by an operator (priority-0 advertisement, stays backup) until taken out again.
    pub maintenance: bool,
    pub configured_priority: u8,
    /// The priority advertised now: configured priority adjusted by the trackers' weights.
    pub effective_priority: u8,
    /// Virtual addresses with their prefix length, e.g. `198.51.100.50/24`.
    pub vips: Vec<String>,
    /// The last master heard from (none while we are master or have heard nobody).
    pub master: Option<MasterSeen>,
    pub trackers: Vec<TrackerStatus>,
    pub counters: InstanceCounters,
    /// When the instance entered its state, in seconds since the Unix epoch.
    #[serde(default)]
    pub state_since_unix_seconds: f64,
    /// Of `vips`, those on the host's interfaces as this node last added, removed or checked
    /// them: all of them on a master, none on a backup (a master checks every 5 s).
    #[serde(default)]
    pub vips_held: Vec<String>,
}

/// The state of a virtual router (RFC 9568 section 6.4), plus `fault` for a tracker with weight 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl VrrpState {
    pub const ALL: [Self; 4] = [Self::Initialize, Self::Backup, Self::Master, Self::Fault];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Backup => "backup",
            Self::Master => "master",
            Self::Fault => "fault",
        }
    }
}

impl fmt::Display for VrrpState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The master whose advertisements this node last accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterSeen {
    pub address: IpAddr,
    pub priority: u8,
    pub advert_interval_ms: u32,
    pub seen_seconds_ago: f64,
}

/// One `announce` group: whether its VIPs are on the announce device now, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    pub name: String,
    /// The VIPs are on [`AnnounceStatus::device`], so the routing daemon announces them.
    pub announced: bool,
    /// The device the routing daemon exports.
    pub device: String,
    pub configured_priority: u8,
    /// The priority after the weighted trackers; `None` while a weight-0 tracker fails.
    pub effective_priority: Option<u8>,
    /// Withdrawn while the effective priority is below this.
    pub withdraw_below: Option<u8>,
    pub vips: Vec<String>,
    pub trackers: Vec<TrackerStatus>,
    /// Why the group is withdrawn (`None` while announced).
    pub withdrawn_because: Option<String>,
    /// Announcements and withdrawals since the group started.
    pub changes: u64,
    /// When `announced` last changed (or the group started), seconds since the Unix epoch.
    pub since_unix_seconds: f64,
}

/// One `track:` entry of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStatus {
    pub kind: TrackerKind,
    /// Script name, interface name, file path or frontend name.
    pub target: String,
    pub weight: i32,
    pub state: TrackerState,
    /// Why it is in that state, when there is something to say (script exit code, `2 of 3 up`).
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackerKind {
    Script,
    Interface,
    File,
    Frontend,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Script => "script",
            Self::Interface => "interface",
            Self::File => "file",
            Self::Frontend => "frontend",
        }
    }
}

/// A tracker's state on the wire: `"up"`, `"down"`, or `"value N"` for a file tracker, whose
/// integer content is multiplied by the weight (keepalived's `track_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TrackerState {
    Up,
    Down,
    Value(i64),
}

impl fmt::Display for TrackerState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Up => formatter.write_str("up"),
            Self::Down => formatter.write_str("down"),
            Self::Value(value) => write!(formatter, "value {value}"),
        }
    }
}

impl From<TrackerState> for String {
    fn from(state: TrackerState) -> Self {
        state.to_string()
    }
}

impl TryFrom<String> for TrackerState {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            other => other
                .strip_prefix("value ")
                .and_then(|number| number.parse().ok())
                .map(Self::Value)
                .ok_or_else(|| format!("tracker state {other:?} is not up, down or `value N`")),
        }
    }
}

/// Per-instance event counters, all monotonic since the instance started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Advertisements dropped as invalid, all reasons together: the sum of
    /// `adverts_dropped_by_reason`. Adverts of other VRIDs are not in it.
    pub adverts_dropped: u64,
    /// `adverts_dropped` by reason (`ttl`, `checksum`, `length`, `version`, ...; the list is in
    /// docs/metrics.md). Every reason is present, at zero too.
    #[serde(default)]
    pub adverts_dropped_by_reason: BTreeMap<String, u64>,
    /// Well-formed adverts of another VRID: other virtual routers on the same LAN. Not an error.
    #[serde(default)]
    pub adverts_other_vrid: u64,
    pub became_master: u64,
    /// A master that heard another master's advertisement (split brain seen, RFC 9568 6.4.3).
    pub two_masters_seen: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    /// VIPs someone else removed while we were master, put back.
    pub vips_restored: u64,
    /// Unicast: adverts carrying our VRID from an address that is not a configured peer (a
    /// renumbered peer?); also counted in `adverts_dropped`.
    #[serde(default)]
    pub adverts_from_unknown_peers: u64,
    /// Of those, the valid ones with a non-zero priority received while master: another node
    /// claims mastership, a split brain that the peer check would hide.
    #[serde(default)]
    pub unknown_peer_masters_seen: u64,
    /// Accepted adverts whose address list differs from this instance's VIPs: the nodes of the
    /// VRID are configured differently (docs/design/vrrp.md, Receive checks).
    #[serde(default)]
    pub address_list_mismatch: u64,
    /// Accepted VRRPv3 adverts whose interval differs from ours (a backup follows the master's,
    /// but the nodes are configured differently; v2 drops them under the `interval` reason).
    #[serde(default)]
    pub interval_mismatch: u64,
}

/// A proxy frontend (listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontendStatus {
    pub name: String,
    pub backend: String,
    pub bind: Vec<String>,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub max_connections: u64,
    /// Client → server bytes (HAProxy's `bin`).
    pub bytes_in: u64,
    /// Server → client bytes (HAProxy's `bout`).
    pub bytes_out: u64,
    /// Of `bytes_in + bytes_out`, what moved by `splice(2)` without entering user space.
    pub bytes_spliced: u64,
    pub proxy_header_errors: u64,
    pub accept_errors: u64,
    /// The limit in force: above `max_connections` after a reload lowered it while more sessions
    /// were open, until enough of them end.
    #[serde(default)]
    pub max_connections_in_force: u64,
}

impl From<&FrontendStats> for FrontendStatus {
    fn from(stats: &FrontendStats) -> Self {
        Self {
            name: stats.name.clone(),
            backend: stats.backend.clone(),
            bind: stats.bind.iter().map(ToString::to_string).collect(),
            sessions_current: stats.sessions_current,
            sessions_total: stats.sessions_total,
            max_connections: saturating_u64(stats.max_connections),
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            bytes_spliced: stats.bytes_spliced,
            proxy_header_errors: stats.proxy_header_errors,
            accept_errors: stats.accept_errors,
            max_connections_in_force: saturating_u64(stats.max_connections_in_force),
        }
    }
}

/// A proxy backend with its servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub name: String,
    /// `round_robin`, `least_conn`, `source` or `random` (the config's spelling).
    pub balance: String,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
    /// Sessions closed without a server: none usable, queue full or queue wait timed out.
    pub refused: u64,
    pub queue_current: u64,
    /// Servers whose health check passes.
    pub servers_up: u64,
    /// Servers that take new sessions now.
    pub servers_usable: u64,
    pub servers: Vec<ServerStatus>,
    /// Sessions that have waited in the queue (served, timed out or refused).
    #[serde(default)]
    pub queued_total: u64,
    /// 99th percentile of queue waits, rounded up to a power of two milliseconds; 0 before any
    /// session queued.
    #[serde(default)]
    pub queue_wait_p99_seconds: f64,
    /// Queue, connect and session times of the sessions handed to the backend that ended.
    #[serde(default)]
    pub times: SessionTimes,
}

/// A backend's times: the session log's `queue_ms`, `connect_ms` and `total_ms` as histograms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionTimes {
    /// Waiting for a server slot, over every attempt (near zero when a server was free).
    pub queue: TimeHistogram,
    /// Connecting to servers, over every attempt, of sessions that tried one.
    pub connect: TimeHistogram,
    /// From accept to close.
    pub session: TimeHistogram,
}

/// Durations counted by bucket. The buckets' upper bounds are fixed (the `le` values of
/// docs/metrics.md, [`vipd_proxy::TIME_BUCKET_BOUNDS`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeHistogram {
    pub count: u64,
    pub sum_seconds: f64,
    /// Per bucket, not cumulative: one count per bound, then one for the longer durations.
    pub bucket_counts: Vec<u64>,
}

impl From<&vipd_proxy::TimeDistribution> for TimeHistogram {
    fn from(distribution: &vipd_proxy::TimeDistribution) -> Self {
        Self {
            count: distribution.count(),
            sum_seconds: distribution.sum.as_secs_f64(),
            bucket_counts: distribution.bucket_counts.clone(),
        }
    }
}

impl From<&BackendStats> for BackendStatus {
    fn from(stats: &BackendStats) -> Self {
        Self {
            name: stats.name.clone(),
            balance: balance_name(stats.balance).to_owned(),
            sessions_current: stats.sessions_current,
            sessions_total: stats.sessions_total,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            connect_errors: stats.connect_errors,
            retries: stats.retries,
            redispatches: stats.redispatches,
            refused: stats.refused,
            queue_current: saturating_u64(stats.queue_current),
            servers_up: saturating_u64(stats.servers_up),
            servers_usable: saturating_u64(stats.servers_usable),
            servers: stats.servers.iter().map(ServerStatus::from).collect(),
            queued_total: stats.queued_total,
            queue_wait_p99_seconds: stats.queue_wait_p99.map_or(0.0, |wait| wait.as_secs_f64()),
            times: SessionTimes {
                queue: (&stats.times.queue).into(),
                connect: (&stats.times.connect).into(),
                session: (&stats.times.total).into(),
            },
        }
    }
}

/// The spelling of the `balance:` field of docs/configuration.md.
fn balance_name(balance: Balance) -> &'static str {
    match balance {
        Balance::RoundRobin => "round_robin",
        Balance::LeastConn => "least_conn",
        Balance::Source => "source",
        Balance::Random => "random",
    }
}

/// A server's health-check verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A server's administrative state, as set by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerAdmin {
    Ready,
    Drain,
    Maintenance,
}

impl ServerAdmin {
    pub const ALL: [Self; 3] = [Self::Ready, Self::Drain, Self::Maintenance];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maintenance => "maintenance",
        }
    }
}

impl From<AdminState> for ServerAdmin {
    fn from(state: AdminState) -> Self {
        match state {
            AdminState::Ready => Self::Ready,
            AdminState::Drain => Self::Drain,
            AdminState::Maintenance => Self::Maintenance,
        }
    }
}

/// One server of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub name: String,
    pub address: String,
    pub backup: bool,
    pub health: Health,
    pub admin: ServerAdmin,
    /// Effective weight: 0 while draining or in maintenance.
    pub weight: u32,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub max_connections: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_errors: u64,
    pub retries: u64,
    pub check_successes: u64,
    pub check_failures: u64,
    /// `ok`, or why the last check failed.
    pub last_check: Option<String>,
    /// Up/down flips so far.
    pub transitions: u64,
    pub time_in_state_seconds: f64,
    pub downtime_seconds: f64,
    /// The limit sessions are held to now: `max_connections`, ramped during slow start.
    #[serde(default)]
    pub max_connections_in_force: Option<u64>,
    /// The weight was set through the API; it survives reloads until reset (`DELETE .../weight`).
    #[serde(default)]
    pub weight_overridden: bool,
    /// Coming back from a failure or maintenance: weight and limit ramp up over `slow_start`.
    #[serde(default)]
    pub slow_starting: bool,
}

impl From<&ServerStats> for ServerStatus {
    fn from(stats: &ServerStats) -> Self {
        Self {
            name: stats.name.clone(),
            address: stats.address.to_string(),
            backup: stats.backup,
            health: if stats.up { Health::Up } else { Health::Down },
            admin: stats.admin.into(),
            weight: stats.weight,
            sessions_current: stats.sessions_current,
            sessions_total: stats.sessions_total,
            max_connections: stats.max_connections.map(saturating_u64),
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            connect_errors: stats.connect_errors,
            retries: stats.retries,
            check_successes: stats.check_successes,
            check_failures: stats.check_failures,
            last_check: stats.last_check.clone(),
            transitions: stats.transitions,
            time_in_state_seconds: stats.time_in_state.as_secs_f64(),
            downtime_seconds: stats.downtime.as_secs_f64(),
            max_connections_in_force: stats.max_connections_in_force.map(saturating_u64),
            weight_overridden: stats.weight_overridden,
            slow_starting: stats.slow_starting,
        }
    }
}

fn saturating_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    /// A node as the tests of the server, the metrics and the table printer see it.
    pub fn sample_status() -> NodeStatus {
        let mut status = NodeStatus::new("lb1", 3723);
        status.instances.push(InstanceStatus {
            name: "api".to_owned(),
            interface: "eth0".to_owned(),
            vrid: 51,
            version: 3,
            state: VrrpState::Backup,
            maintenance: false,
            configured_priority: 150,
            effective_priority: 90,
            vips: vec!["198.51.100.50/24".to_owned()],
            master: Some(MasterSeen {
                address: "198.51.100.12".parse().unwrap(),
                priority: 100,
                advert_interval_ms: 1000,
                seen_seconds_ago: 0.4,
            }),
            trackers: vec![
                TrackerStatus {
                    kind: TrackerKind::Frontend,
                    target: "apiserver".to_owned(),
                    weight: -60,
                    state: TrackerState::Down,
                    detail: Some("1 of 3 usable, min_up 2".to_owned()),
                },
                TrackerStatus {
                    kind: TrackerKind::File,
                    target: "/run/vipd/maintenance".to_owned(),
                    weight: -100,
                    state: TrackerState::Value(0),
                    detail: None,
                },
            ],
            counters: InstanceCounters {
                adverts_received: 3600,
                adverts_dropped: 2,
                adverts_dropped_by_reason: [("checksum".to_owned(), 2), ("ttl".to_owned(), 0)]
                    .into_iter()
                    .collect(),
                adverts_other_vrid: 40,
                two_masters_seen: 1,
                address_list_mismatch: 3,
                interval_mismatch: 5,
                ..InstanceCounters::default()
            },
            state_since_unix_seconds: 1_796_000_000.25,
            vips_held: Vec::new(),
        });
        status.set_proxy_stats(&sample_proxy_stats());
        status.process = ProcessStatus {
            open_fds: Some(120),
            max_fds: Some(1024),
            resident_memory_bytes: Some(25_165_824),
            cpu_seconds: Some(12.5),
            start_time_unix_seconds: 1_795_996_277.0,
        };
        status.last_reload = Some(LastReload {
            sequence: 3,
            at_unix_seconds: 1_764_926_000.5,
            ok: false,
            partial: false,
            errors: vec!["vrrp[0].vrid (line 5, column 11): must be 1..255, got 300".to_owned()],
            config_digest: format!("sha256:{}", "ab".repeat(32)),
        });
        status.last_successful_reload_at_unix_seconds = 1_764_925_000.25;
        status.announce.push(AnnounceStatus {
            name: "ingress".to_owned(),
            announced: true,
            device: "vipd-announce".to_owned(),
            configured_priority: 100,
            effective_priority: Some(100),
            withdraw_below: Some(90),
            vips: vec!["203.0.113.100".to_owned()],
            trackers: vec![TrackerStatus {
                kind: TrackerKind::Frontend,
                target: "web".to_owned(),
                weight: 0,
                state: TrackerState::Up,
                detail: None,
            }],
            withdrawn_because: None,
            changes: 1,
            since_unix_seconds: 1_796_000_000.5,
        });
        status
    }

    /// Times of 80 sessions: queued 100 µs or less, connected within 1 ms, done within 1 s.
    fn sample_times() -> vipd_proxy::SessionTimeStats {
        let distribution = |bucket: usize, sum: Duration| {
            let mut bucket_counts = vec![0; vipd_proxy::TIME_BUCKET_BOUNDS.len() + 1];
            bucket_counts[bucket] = 80;
            vipd_proxy::TimeDistribution { bucket_counts, sum }
        };
        vipd_proxy::SessionTimeStats {
            queue: distribution(0, Duration::from_micros(1_600)),
            connect: distribution(3, Duration::from_millis(24)),
            total: distribution(12, Duration::from_secs(40)),
        }
    }

    fn sample_proxy_stats() -> ProxyStats {
        let server = |name: &str, port: u16, up: bool, admin: AdminState| ServerStats {
            name: name.to_owned(),
            address: SocketAddr::from(([198, 51, 100, 21], port)),
            backup: false,
            weight: if admin == AdminState::Ready { 100 } else { 0 },
            admin,
            up,
            sessions_current: 2,
            sessions_total: 40,
            max_connections: Some(500),
            bytes_in: 1000,
            bytes_out: 64_000,
            connect_errors: 1,
            retries: 1,
            check_successes: 120,
            check_failures: u64::from(!up) * 3,
            last_check: Some(if up { "ok" } else { "connection refused" }.to_owned()),
            transitions: 1,
            time_in_state: Duration::from_millis(12_500),
            downtime: Duration::from_secs(5),
            max_connections_in_force: Some(500),
            weight_overridden: false,
            slow_starting: false,
        };
        ProxyStats {
            sessions_current: 4,
            max_connections: 10_000,
            max_connections_in_force: 10_000,
            pipes: vipd_proxy::PipeStats {
                pipes: 3,
                grown_bytes: 960 << 10,
                budget_bytes: 32 << 20,
                growth_refused: 2,
            },
            frontends: vec![FrontendStats {
                name: "apiserver".to_owned(),
                backend: "apiservers".to_owned(),
                bind: vec![SocketAddr::from(([198, 51, 100, 50], 6443))],
                sessions_current: 4,
                sessions_total: 80,
                max_connections: 10_000,
                bytes_in: 2000,
                bytes_out: 128_000,
                bytes_spliced: 100_000,
                proxy_header_errors: 0,
                accept_errors: 0,
                max_connections_in_force: 10_000,
            }],
            backends: vec![BackendStats {
                name: "apiservers".to_owned(),
                balance: Balance::LeastConn,
                sessions_current: 4,
                sessions_total: 80,
                bytes_in: 2000,
                bytes_out: 128_000,
                connect_errors: 2,
                retries: 2,
                redispatches: 0,
                refused: 0,
                queue_current: 0,
                servers_up: 2,
                servers_usable: 1,
                servers: vec![
                    server("cp1", 6443, true, AdminState::Ready),
                    server("cp2", 6443, true, AdminState::Drain),
                    server("cp3", 6443, false, AdminState::Ready),
                ],
                queued_total: 3,
                queue_wait_p99: Some(Duration::from_millis(64)),
                times: sample_times(),
            }],
        }
    }

    #[test]
    fn status_round_trips_through_json() {
        let status = sample_status();
        let text = serde_json::to_string(&status).unwrap();
        let parsed: NodeStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, status);
    }

    #[test]
    fn states_use_the_documented_strings() {
        let value = serde_json::to_value(sample_status()).unwrap();
        let instance = &value["instances"][0];
        assert_eq!(instance["state"], "backup");
        assert_eq!(instance["trackers"][0]["kind"], "frontend");
        assert_eq!(instance["trackers"][0]["state"], "down");
        assert_eq!(instance["trackers"][1]["state"], "value 0");
        assert_eq!(instance["master"]["address"], "198.51.100.12");
        let server = &value["backends"][0]["servers"][1];
        assert_eq!(server["health"], "up");
        assert_eq!(server["admin"], "drain");
        assert_eq!(server["address"], "198.51.100.21:6443");
        assert_eq!(value["backends"][0]["balance"], "least_conn");
        assert_eq!(server["time_in_state_seconds"], 12.5);
    }

    #[test]
    fn the_schema_version_comes_first_and_is_0_from_an_older_daemon() {
        let text = serde_json::to_string(&sample_status()).unwrap();
        assert!(text.starts_with(r#"{"schema_version":1,"#), "{text}");
        let mut value = serde_json::to_value(sample_status()).unwrap();
        value.as_object_mut().unwrap().remove("schema_version");
        let parsed: NodeStatus = serde_json::from_value(value).unwrap();
        assert_eq!(parsed.schema_version, 0);
    }

    #[test]
    fn last_reload_has_the_shape_dashboards_read() {
        let value = serde_json::to_value(sample_status()).unwrap();
        let reload = value["last_reload"].as_object().unwrap();
        let mut keys: Vec<&str> = reload.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "at_unix_seconds",
                "config_digest",
                "errors",
                "ok",
                "partial",
                "sequence"
            ]
        );
        assert_eq!(reload["sequence"], 3);
        assert_eq!(reload["at_unix_seconds"], 1_764_926_000.5);
        assert!(
            reload["config_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        // A daemon that predates it: no last reload, and still vipd's status.
        let mut old = value.clone();
        let object = old.as_object_mut().unwrap();
        object.remove("last_reload");
        object.remove("pid");
        object.remove("last_successful_reload_at_unix_seconds");
        let parsed: NodeStatus = serde_json::from_value(old).unwrap();
        assert_eq!(parsed.last_reload, None);
    }

    #[test]
    fn status_without_proxy_totals_still_parses() {
        let mut value = serde_json::to_value(sample_status()).unwrap();
        value.as_object_mut().unwrap().remove("proxy");
        let parsed: NodeStatus = serde_json::from_value(value).unwrap();
        assert_eq!(parsed.proxy, ProxySummary::default());
        assert_eq!(sample_status().proxy.max_connections, 10_000);
    }

    #[test]
    fn tracker_state_rejects_unknown_strings() {
        for bad in [
            "\"sideways\"",
            "\"value\"",
            "\"value x\"",
            "\"value 1 2\"",
            "3",
        ] {
            assert!(
                serde_json::from_str::<TrackerState>(bad).is_err(),
                "{bad} should not parse"
            );
        }
        assert_eq!(
            serde_json::from_str::<TrackerState>("\"value -3\"").unwrap(),
            TrackerState::Value(-3)
        );
    }
}
