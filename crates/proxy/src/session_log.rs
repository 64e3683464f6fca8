//! The session log: one line per session end on its own tracing target, HAProxy's
//! `option tcplog` (docs/operations.md, Session log).
//!
//! A session that reached forwarding always gets its line. A session that ended before (no
//! usable server, queue full or timed out, connect failed, bad PROXY header) is a refusal: those
//! come at network speed when a backend is down or a client misbehaves, so each frontend logs at
//! most one line per kind of refusal per [`REFUSAL_LOG_PERIOD`], and that line says how many it
//! left out. The backend's `refused` and `connect_errors` counters keep the exact numbers.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Backend, Server};
use crate::forward::SessionEnd;
use crate::forward::Side;
use crate::frontend::FrontendShared;
use crate::resources::is_local_shortage;
use crate::session::SessionError;

/// The tracing target of session lines: `VIPD_LOG=info,vipd::session=off` switches them off.
pub const SESSION_LOG_TARGET: &str = "vipd::session";

/// How often a frontend logs a refusal of one kind.
pub const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(1);

/// Why a session ended: the `termination` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Both sides finished with FIN.
    Closed,
    /// No byte from the client for the timeout in force (or, for `tunnel`, from either side).
    ClientTimeout,
    /// The server left the client waiting for the timeout in force.
    ServerTimeout,
    ClientReset,
    ServerReset,
    /// Another socket error on the client's side (ETIMEDOUT of keepalive, ...).
    ClientError,
    ServerError,
    /// A socket error on neither peer's side: the proxy's own.
    ProxyError,
    /// The proxy ran short of its own resources (fds, buffers, source ports).
    ProxyResources,
    /// Cut because the server went down (`on_server_down: shutdown_sessions`).
    ServerDown,
    /// Cut by the proxy: the drain deadline at shutdown, or `hard_stop_after` for a server that a
    /// reload removed.
    Shutdown,
    /// Killed by an operator through the admin API.
    Killed,
    /// The client closed before a server was connected (before or during its PROXY header).
    ClientAbort,
    BadProxyHeader,
    NoServer,
    QueueFull,
    QueueTimeout,
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
}

impl Cause {
    /// One past the last variant's index: a variant added after `ConnectError` moves this.
    const COUNT: usize = Cause::ConnectError as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Closed => "closed",
            Cause::ClientTimeout => "client_timeout",
            Cause::ServerTimeout => "server_timeout",
            Cause::ClientReset => "client_reset",
            Cause::ServerReset => "server_reset",
            Cause::ClientError => "client_error",
            Cause::ServerError => "server_error",
            Cause::ProxyError => "proxy_error",
            Cause::ProxyResources => "proxy_resources",
            Cause::ServerDown => "server_down",
            Cause::Shutdown => "shutdown",
            Cause::Killed => "killed",
            Cause::ClientAbort => "client_abort",
            Cause::BadProxyHeader => "bad_proxy_header",
            Cause::NoServer => "no_server",
            Cause::QueueFull => "queue_full",
            Cause::QueueTimeout => "queue_timeout",
            Cause::ConnectRefused => "connect_refused",
            Cause::ConnectTimeout => "connect_timeout",
            Cause::ConnectError => "connect_error",
        }
    }
}

/// How a session ended: the cause, HAProxy's two-letter termination state (`%ts`: who ended it,
/// in which phase) and what the error or timeout was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub cause: Cause,
    pub state: &'static str,
    pub detail: Option<String>,
}

impl Termination {
    fn new(cause: Cause, state: &'static str, detail: Option<String>) -> Self {
        Self {
            cause,
            state,
            detail,
        }
    }
}

/// What [`termination`] is asked about.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// Forwarding ended.
    Forwarded {
        end: &'a SessionEnd,
        server_state: &'a Server,
        /// Client → server bytes of the session.
        bytes_in: u64,
        /// An operator killed it (its end is then `Cancelled`).
        killed: bool,
    },
    /// The session ended before forwarding.
    Refused(&'a SessionError),
}

/// The one mapping from how a session ended to its termination.
pub fn termination(outcome: Outcome<'_>) -> Termination {
    match outcome {
        Outcome::Forwarded {
            end,
            server_state,
            bytes_in,
            killed,
        } => match end {
            SessionEnd::Closed => Termination::new(Cause::Closed, "--", None),
            SessionEnd::TimedOut {
                timeout,
                half_closed_by,
            } => {
                let detail = Some(format!("{timeout} timeout"));
                match silent_side(timeout, *half_closed_by, bytes_in) {
                    Side::Client => Termination::new(Cause::ClientTimeout, "cD", detail),
                    Side::Server => Termination::new(Cause::ServerTimeout, "sD", detail),
                }
            }
            SessionEnd::Cancelled if killed => {
                Termination::new(Cause::Killed, "KD", Some("killed by an admin".to_owned()))
            }
            // A server that is up was cut by the proxy, not by its health check.
            SessionEnd::Cancelled if server_state.is_up() => {
                Termination::new(Cause::Shutdown, "KD", None)
            }
            SessionEnd::Cancelled => Termination::new(Cause::ServerDown, "DD", None),
            SessionEnd::Failed { side, error } => socket_failure(error, Some(*side)),
        },
        Outcome::Refused(error) => refusal(error),
    }
}

/// Which side left the session idle: after a FIN, the side that did not send it; before both
/// sides spoke, the client if it sent nothing, else the server that did not answer; in a quiet
/// tunnel both were, and the client is named, as HAProxy logs `cD` there.
fn silent_side(timeout: &str, half_closed_by: Option<Side>, bytes_in: u64) -> Side {
    match (timeout, half_closed_by) {
        ("fin", Some(Side::Client)) => Side::Server,
        ("idle", _) if bytes_in > 0 => Side::Server,
        // The server's FIN left the client to speak; a quiet tunnel; an idle client.
        _ => Side::Client,
    }
}

fn socket_failure(error: &io::Error, side: Option<Side>) -> Termination {
    let reset = matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    );
    let detail = Some(error.to_string());
    if is_local_shortage(error) {
        return Termination::new(Cause::ProxyResources, "RD", detail);
    }
    match side {
        Some(Side::Client) if reset => Termination::new(Cause::ClientReset, "CD", detail),
        Some(Side::Client) => Termination::new(Cause::ClientError, "CD", detail),
        Some(Side::Server) if reset => Termination::new(Cause::ServerReset, "SD", detail),
        Some(Side::Server) => Termination::new(Cause::ServerError, "SD", detail),
        None => Termination::new(Cause::ProxyError, "PD", detail),
    }
}

/// The second letter of HAProxy's state is the phase: R waiting for the client (its PROXY
/// header), Q queued, C connecting, D forwarding.
fn refusal(error: &SessionError) -> Termination {
    match error {
        SessionError::ProxyHeader { source, .. } => {
            Termination::new(Cause::BadProxyHeader, "PR", Some(source.to_string()))
        }
        SessionError::ProxyHeaderTimeout { .. } => {
            Termination::new(Cause::ClientTimeout, "cR", None)
        }
        SessionError::ProxyHeaderIo { reason, .. } => {
            Termination::new(Cause::ClientAbort, "CR", Some(reason.clone()))
        }
        SessionError::ClientRead { source, .. } => {
            Termination::new(Cause::ClientAbort, "CR", Some(source.to_string()))
        }
        SessionError::NoServer { .. } => Termination::new(Cause::NoServer, "SC", None),
        SessionError::QueueFull { .. } => Termination::new(Cause::QueueFull, "PQ", None),
        SessionError::QueueTimeout { .. } => Termination::new(Cause::QueueTimeout, "sQ", None),
        SessionError::ConnectFailed { source, .. } => connect_failure(source),
        SessionError::LocalShortage { source, .. } => {
            Termination::new(Cause::ProxyResources, "RC", Some(source.to_string()))
        }
    }
}

fn connect_failure(error: &io::Error) -> Termination {
    let detail = Some(error.to_string());
    if is_local_shortage(error) {
        return Termination::new(Cause::ProxyResources, "RC", detail);
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => Termination::new(Cause::ConnectRefused, "SC", detail),
        io::ErrorKind::TimedOut => Termination::new(Cause::ConnectTimeout, "sC", detail),
        _ => Termination::new(Cause::ConnectError, "SC", detail),
    }
}

/// Time spent before forwarding, for the `queue_ms`, `connect_ms` and `retries` fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectTimings {
    /// Waiting for a server slot, over every attempt; `None` if the session never asked for one.
    pub queued: Option<Duration>,
    /// Connecting, over every attempt; `None` if no attempt was made.
    pub connecting: Option<Duration>,
    /// Connection attempts after the first.
    pub retries: u32,
}

impl ConnectTimings {
    pub fn add_queued(&mut self, waited: Duration) {
        self.queued = Some(self.queued.unwrap_or_default() + waited);
    }

    pub fn add_connecting(&mut self, took: Duration) {
        self.connecting = Some(self.connecting.unwrap_or_default() + took);
    }
}

/// One line's values, borrowed for [`session_line!`].
struct Line<'a> {
    record: &'a SessionRecord,
    /// The server connected, or the last one tried.
    server: Option<&'a str>,
    termination: &'a Termination,
}

/// The session log's fields, in HAProxy's tcplog order, plus `$extra` fields. Text fields are
/// recorded with `%` so that the text format writes them without quotes.
macro_rules! session_line {
    ($line:expr, $message:literal $(, $extra:ident)*) => {{
        let Line { record, server, termination } = $line;
        tracing::info!(
            target: SESSION_LOG_TARGET,
            client = %record.client,
            via = %Dash(record.via),
            frontend = %record.frontend.name,
            backend = %record.backend.config.name,
            server = %Dash(server),
            queue_ms = millis(record.timings.queued),
            connect_ms = millis(record.timings.connecting),
            total_ms = millis(Some(record.started.elapsed())),
            bytes_in = record.bytes_in.load(Ordering::Relaxed),
            bytes_out = record.bytes_out.load(Ordering::Relaxed),
            retries = record.timings.retries,
            termination = %termination.cause.as_str(),
            state = %termination.state,
            detail = %Dash(termination.detail.as_ref()),
            $($extra,)*
            $message
        )
    }};
}

/// What the session log says of one session, filled in as the session goes. Logged by
/// [`SessionRecord::log`], or when dropped unlogged: the session's thread ended at hard stop.
pub struct SessionRecord {
    started: Instant,
    pub frontend: Arc<FrontendShared>,
    pub backend: Arc<Backend>,
    /// The real client: the TCP peer, or the source of its PROXY header.
    pub client: SocketAddr,
    /// The TCP peer, when a PROXY header named another client.
    pub via: Option<SocketAddr>,
    pub server: Option<Arc<Server>>,
    pub timings: ConnectTimings,
    /// Client → server bytes, counted by forwarding with the shared counters.
    pub bytes_in: AtomicU64,
    /// Server → client bytes.
    pub bytes_out: AtomicU64,
    /// Set when forwarding ends.
    pub termination: Option<Termination>,
    logged: bool,
}

impl SessionRecord {
    pub fn new(peer: SocketAddr, frontend: Arc<FrontendShared>, backend: Arc<Backend>) -> Self {
        Self {
            started: Instant::now(),
            frontend,
            backend,
            client: peer,
            via: None,
            server: None,
            timings: ConnectTimings::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            termination: None,
            logged: false,
        }
    }

    /// Logs the session's end: always after forwarding; a refusal only if its kind is due on
    /// the frontend ([`RefusalLog`]).
    pub fn log(&mut self, refused: Option<&SessionError>) {
        self.logged = true;
        self.record_times();
        match (refused, &self.termination) {
            (Some(error), _) => {
                let termination = termination(Outcome::Refused(error));
                if let Some(suppressed) = self.frontend.refusal_log.allow(termination.cause) {
                    let server = match error {
                        SessionError::ConnectFailed { server, .. }
                        | SessionError::LocalShortage { server, .. } => Some(server.as_str()),
                        _ => None,
                    };
                    session_line!(
                        self.line(server, &termination),
                        "session refused",
                        suppressed
                    );
                }
            }
            (None, Some(termination)) => {
                session_line!(self.line(self.server_name(), termination), "session end");
            }
            // Forwarding always sets a termination.
            (None, None) => {}
        }
    }

    /// Adds the session's times to its backend's histograms, if the session was handed to the
    /// backend: it asked for a server. Refused before that (a bad PROXY header), it was the
    /// frontend's alone, and the backend's counters do not have it either.
    fn record_times(&self) {
        let Some(queued) = self.timings.queued else {
            return;
        };
        let times = &self.backend.shared.times;
        times.queue.record(queued);
        if let Some(connecting) = self.timings.connecting {
            times.connect.record(connecting);
        }
        times.total.record(self.started.elapsed());
    }

    fn server_name(&self) -> Option<&str> {
        self.server.as_ref().map(|server| server.name.as_str())
    }

    fn line<'a>(&'a self, server: Option<&'a str>, termination: &'a Termination) -> Line<'a> {
        Line {
            record: self,
            server,
            termination,
        }
    }
}

impl Drop for SessionRecord {
    /// A session whose thread ended under it, at hard stop (the drain deadline of a shutdown):
    /// HAProxy's `K`, in the phase the session had reached. Bytes not yet flushed by forwarding
    /// are missing from its counts.
    fn drop(&mut self) {
        if self.logged {
            return;
        }
        let state = match (&self.server, self.timings.connecting, self.timings.queued) {
            (Some(_), _, _) => "KD",
            (None, Some(_), _) => "KC",
            (None, None, Some(_)) => "KQ",
            (None, None, None) => "KR",
        };
        let termination = Termination::new(Cause::Shutdown, state, None);
        session_line!(self.line(self.server_name(), &termination), "session end");
    }
}

/// Whole milliseconds, or -1 for a phase the session never reached (as HAProxy logs it).
fn millis(duration: Option<Duration>) -> i64 {
    duration.map_or(-1, |duration| {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    })
}

/// A value, or `-` for none (as HAProxy logs it).
struct Dash<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Dash<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(formatter),
            None => formatter.write_str("-"),
        }
    }
}

/// A frontend's limiter of refusal lines: one per [`REFUSAL_LOG_PERIOD`] and [`Cause`].
#[derive(Debug)]
pub struct RefusalLog {
    causes: [RateLimit; Cause::COUNT],
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self {
            causes: std::array::from_fn(|_| RateLimit::default()),
        }
    }
}

impl RefusalLog {
    /// `Some(n)` if a line for `cause` is due now, with `n` the refusals of that cause left out
    /// since the last line; `None` if it is not (the refusal is counted).
    pub fn allow(&self, cause: Cause) -> Option<u64> {
        // A cause past `Cause::COUNT` (a variant added without moving it) is logged unlimited
        // rather than panicking a session thread.
        self.causes.get(cause as usize).map_or(Some(0), |limit| {
            limit.allow(now_millis(), millis_of(REFUSAL_LOG_PERIOD))
        })
    }
}

/// Milliseconds since the first call, plus one: 0 stays free for "never".
fn now_millis() -> u64 {
    static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    millis_of(EPOCH.elapsed()).saturating_add(1)
}

fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// At most one event per period, shared by every session thread without a lock: the thread
/// that moves `last_logged` forward logs, and takes the count of those left out meanwhile.
#[derive(Debug, Default)]
struct RateLimit {
    /// [`now_millis`] of the last line; 0 before the first.
    last_logged: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    fn allow(&self, now: u64, period: u64) -> Option<u64> {
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= period;
        if due
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_next_says_how_many_were_left_out() {
        let limit = RateLimit::default();
        assert_eq!(limit.allow(5, 1000), Some(0));
        for now in 6..1005 {
            assert_eq!(limit.allow(now, 1000), None);
        }
        assert_eq!(limit.allow(1005, 1000), Some(999));
        assert_eq!(limit.allow(1500, 1000), None);
        assert_eq!(limit.allow(4000, 1000), Some(1));
    }

    #[test]
    fn a_time_behind_the_last_line_is_counted_not_logged() {
        // Another thread may have logged with a later reading of the clock.
        let limit = RateLimit::default();
        assert_eq!(limit.allow(2000, 1000), Some(0));
        assert_eq!(limit.allow(1500, 1000), None);
        assert_eq!(limit.allow(3000, 1000), Some(1));
    }

    #[test]
    fn each_kind_of_refusal_has_its_own_limit() {
        let refusals = RefusalLog::default();
        assert_eq!(refusals.allow(Cause::NoServer), Some(0));
        assert_eq!(refusals.allow(Cause::NoServer), None);
        assert_eq!(refusals.allow(Cause::QueueFull), Some(0));
    }

    fn refused(error: &SessionError) -> (&'static str, &'static str) {
        let termination = termination(Outcome::Refused(error));
        (termination.cause.as_str(), termination.state)
    }

    #[test]
    fn refusals_map_to_haproxy_states() {
        let backend = || "b".to_owned();
        let connect = |source| SessionError::ConnectFailed {
            backend: backend(),
            server: "s".into(),
            source,
        };
        let cases = [
            (
                SessionError::NoServer { backend: backend() },
                ("no_server", "SC"),
            ),
            (
                SessionError::QueueFull { backend: backend() },
                ("queue_full", "PQ"),
            ),
            (
                SessionError::QueueTimeout { backend: backend() },
                ("queue_timeout", "sQ"),
            ),
            (
                connect(io::ErrorKind::ConnectionRefused.into()),
                ("connect_refused", "SC"),
            ),
            (
                connect(io::ErrorKind::TimedOut.into()),
                ("connect_timeout", "sC"),
            ),
            (
                connect(io::Error::from_raw_os_error(nix::libc::EADDRNOTAVAIL)),
                ("proxy_resources", "RC"),
            ),
            (
                SessionError::ProxyHeaderTimeout {
                    client: "192.0.2.1:1".parse().unwrap(),
                },
                ("client_timeout", "cR"),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(refused(&error), expected, "{error}");
        }
    }

    #[test]
    fn unreached_phases_are_minus_one_and_absent_values_a_dash() {
        assert_eq!(millis(None), -1);
        assert_eq!(millis(Some(Duration::from_micros(2500))), 2);
        assert_eq!(Dash::<u8>(None).to_string(), "-");
        assert_eq!(Dash(Some("s1")).to_string(), "s1");
    }
}
