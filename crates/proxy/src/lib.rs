//! The L4 proxy engine of vipd: HAProxy's TCP mode as a library. Knows nothing of VRRP.
//!
//! # Use
//!
//! The daemon maps its YAML model onto [`ProxyConfig`] and calls [`Proxy::start`]. From then on:
//! [`Proxy::apply`] reloads by difference, all or nothing ([`Proxy::prepare`] does what can fail,
//! [`PreparedReload::commit`] the rest), [`Proxy::drain_server`] / [`Proxy::disable_server`] /
//! [`Proxy::enable_server`] / [`Proxy::set_server_weight`] / [`Proxy::reset_server_weight`] are
//! the admin actions, [`Proxy::sessions`] and [`Proxy::kill_sessions`] list and cut the sessions
//! of a server,
//! [`Proxy::health`] is a `watch` channel of per-frontend backend health (for the trackers),
//! [`Proxy::stats`] is a plain-data snapshot of every counter (for the metrics layer) and
//! [`Proxy::shutdown`] drains with a deadline.
//!
//! # Inside
//!
//! - One thread per core (`session_threads.rs`), each with its own single-threaded runtime: a
//!   session stays on the thread that accepted it (HAProxy's `nbthread`).
//! - One task per listener and thread (`frontend.rs`), on its own SO_REUSEPORT socket:
//!   connection limits are taken right after `accept`, so at the limit each thread holds one
//!   accepted client and the others wait in the backlog; `EMFILE` and friends back off (10 ms
//!   doubling to 1 s).
//! - One task per session (`session.rs`), on the thread that accepted it: optional PROXY header
//!   from the client, else what the client has sent already; server choice on an immutable
//!   backend snapshot (`arc-swap`, no lock on the hot path except smooth round robin's short
//!   mutex), bounded queue when servers are full, connect with retries and redispatch, the PROXY
//!   header and the client's first bytes sent with the connection, then `forward.rs`.
//! - One task per server health check (`backend.rs`), on the caller's runtime, feeding the pure
//!   [`HealthState`].
//! - One line per session end on target [`SESSION_LOG_TARGET`] (`session_log.rs`), HAProxy's
//!   tcplog; refusals at most once per [`REFUSAL_LOG_PERIOD`] per frontend and kind.
//!
//! # Memory per session
//!
//! Bounded and independent of traffic: the session task (its future is a few KiB) and two sockets,
//! plus per direction, only while its destination lags, a copy of the bytes it has not taken yet
//! (at most 16 KiB; small messages pass through the thread's 16 KiB scratch buffer), which a bulk
//! direction trades for a pipe of its thread's pool that it keeps while it streams (2 fds; the
//! kernel pipe holds 64 KiB, grown up to 1 MiB within the process's `pipe_memory` budget, and goes
//! back to the pool at 64 KiB after a second of quiet, `pipes.rs`). So at most 32 KiB of user
//! memory per session, none while idle. Before forwarding, a session holds what the client sent
//! before it connected to a server: at most 16 KiB read at once, or a PROXY header read through a
//! 512-byte chunk into at most [`proxy_protocol::MAX_HEADER_LEN`] bytes with what came after it
//! in the same reads.
//!
//! # Timeouts
//!
//! See [`Timeouts`]: `idle` applies until both sides have spoken, then `tunnel`; after a FIN in one
//! direction the other stays open until `fin` (if set) passes without activity from that FIN.

#![forbid(unsafe_code)]

mod backend;
mod balance;
mod bearer_token;
mod check_tls;
mod config;
mod engine;
mod error;
mod forward;
mod frontend;
mod health;
mod limit;
mod live_sessions;
mod pipes;
pub mod proxy_protocol;
mod queue;
pub mod resources;
mod session;
mod session_log;
mod session_threads;
mod session_times;
mod slow_start;
mod stats;

pub use balance::{Balancer, Candidate};
pub use config::*;
pub use engine::{PreparedReload, Proxy};
pub use error::Error;
pub use health::{CheckFailure, CheckTarget, Checker, HealthState};
pub use live_sessions::{SessionFilter, SessionInfo};
pub use pipes::{DEFAULT_BUDGET_PERCENT, PipeStats};
pub use session_log::{REFUSAL_LOG_PERIOD, SESSION_LOG_TARGET};
pub use session_times::{SessionTimeStats, TIME_BUCKET_BOUNDS, TimeDistribution};
pub use stats::*;
