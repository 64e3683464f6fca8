//! Plain-data views of the proxy for the metrics layer and the health trackers.
//!
//! Direction convention everywhere: `bytes_in` flows client → server, `bytes_out` server → client
//! (HAProxy's `bin`/`bout`). A running session adds its byte counts in batches, at least every
//! `min(idle, tunnel, fin)` and when it ends, so the hot path never writes a counter that other
//! sessions write too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Balance;
use crate::session_times::SessionTimeStats;

/// A server's administrative state (set by admin actions, kept across reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminState {
    /// Takes new sessions when healthy.
    #[default]
    Ready,
    /// Weight 0: no new sessions; established sessions continue.
    Drain,
    /// Disabled: no new sessions; established sessions continue.
    Maintenance,
}

/// Snapshot of every counter and gauge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyStats {
    pub sessions_current: u64,
    /// The configured global limit.
    pub max_connections: usize,
    pub frontends: Vec<FrontendStats>,
    pub backends: Vec<BackendStats>,
    /// The global limit in force: above `max_connections` after a reload lowered it while more
    /// sessions were open, until enough of them end.
    pub max_connections_in_force: usize,
    /// Pipes for splicing and what grown ones hold (the whole process).
    pub pipes: crate::PipeStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendStats {
    pub name: String,
    pub backend: String,
    pub bind: Vec<SocketAddr>,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub max_connections: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Of `bytes_in + bytes_out`, what moved by `splice(2)` without entering user space.
    pub bytes_spliced: u64,
    /// Connections closed for a missing, malformed or late PROXY header (`accept_proxy`).
    pub proxy_header_errors: u64,
    /// accept(2) failures (EMFILE, ...), each followed by a back-off.
    pub accept_errors: u64,
    /// The limit in force: above `max_connections` after a reload lowered it while more sessions
    /// were open, until enough of them end.
    pub max_connections_in_force: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    pub name: String,
    pub balance: Balance,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
    /// Sessions closed without a server: none usable, queue full, or queue wait timed out.
    pub refused: u64,
    pub queue_current: usize,
    /// Servers whose health check says up.
    pub servers_up: usize,
    /// Servers that take new sessions now (up, ready, weight > 0; backups only if no primary is).
    pub servers_usable: usize,
    pub servers: Vec<ServerStats>,
    /// Sessions that have waited in the queue (served, timed out or refused).
    pub queued_total: u64,
    /// 99th percentile of the time sessions waited in the queue, rounded up to a power of two
    /// milliseconds; `None` before any session queued.
    pub queue_wait_p99: Option<Duration>,
    /// Queue, connect and session times of the sessions handed to the backend that ended.
    pub times: SessionTimeStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub name: String,
    pub address: SocketAddr,
    pub backup: bool,
    /// Effective weight: 0 while draining or in maintenance.
    pub weight: u32,
    pub admin: AdminState,
    /// Health-check state (always up without checks).
    pub up: bool,
    pub sessions_current: u64,
    /// Sessions assigned to this server, counting each connection attempt (a retry elsewhere
    /// counts on both servers).
    pub sessions_total: u64,
    /// The configured `max_connections`.
    pub max_connections: Option<usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_errors: u64,
    pub retries: u64,
    pub check_successes: u64,
    pub check_failures: u64,
    /// `ok` or why the last check failed.
    pub last_check: Option<String>,
    /// Up/down flips so far.
    pub transitions: u64,
    /// Time since the last up/down flip (or since the server was configured).
    pub time_in_state: Duration,
    /// Total time spent down.
    pub downtime: Duration,
    /// The limit sessions are held to now: `max_connections`, ramped during slow start.
    pub max_connections_in_force: Option<usize>,
    /// The weight was set by an admin action and survives reloads until reset.
    pub weight_overridden: bool,
    /// Coming back: weight and limit ramp up over `slow_start`.
    pub slow_starting: bool,
}

/// Health of every frontend's backend, published on a `watch` channel for the trackers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthReport {
    pub frontends: BTreeMap<String, FrontendHealth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontendHealth {
    pub backend: String,
    pub servers_total: usize,
    /// Servers whose checks pass.
    pub servers_up: usize,
    /// Servers that take new sessions (up, ready, weight > 0; backups count only when no primary
    /// is usable). A tracker's `min_up` compares against this.
    pub servers_usable: usize,
}
