//! The contract's defaults: the value a field of vipd.yaml has when the file leaves it out.
//!
//! One home for each. Validation fills the model with them, and the proxy engine's convenience
//! constructors (`vipd_proxy::BackendConfig::new` and friends, used by its tests and benchmarks)
//! take them from here, so the engine and the contract cannot drift apart. docs/configuration.md
//! lists the same values for operators.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `control.listen`: the status, metrics and admin server, on loopback only.
pub const CONTROL_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9650);

/// `backends[].retries`: connection attempts after the first failed one.
pub const BACKEND_RETRIES: u32 = 3;
/// `backends[].max_queue`: sessions that may wait when every usable server is full.
pub const BACKEND_MAX_QUEUE: u32 = 1024;
/// `frontends[].max_connections`: concurrent sessions of one frontend.
pub const FRONTEND_MAX_CONNECTIONS: u32 = 20_000;

/// `backends[].timeout.connect`: one connection attempt to a server.
pub const TIMEOUT_CONNECT: Duration = Duration::from_secs(3);
/// `backends[].timeout.idle`: inactivity before both sides have spoken.
pub const TIMEOUT_IDLE: Duration = Duration::from_secs(300);
/// `backends[].timeout.tunnel`: inactivity once both sides have spoken (watches, TLS).
pub const TIMEOUT_TUNNEL: Duration = Duration::from_secs(3600);

/// `interval` of health checks and scripts.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// `timeout` of health checks and scripts (never longer than the interval).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// `rise` of health checks and scripts: successes in a row that make a failed one good.
pub const CHECK_RISE: u32 = 2;
/// `fall` of health checks and scripts: failures in a row that make a good one failed.
pub const CHECK_FALL: u32 = 3;
/// `backends[].health.error_limit`: connection attempts of client traffic that fail in a row
/// and mark a server down at once.
pub const HEALTH_ERROR_LIMIT: u32 = 3;
/// `backends[].health.path` of http and https checks.
pub const HEALTH_PATH: &str = "/";
/// `backends[].health.expect_status` of http and https checks.
pub const HEALTH_EXPECT_STATUS: u16 = 200;

/// `tcp_keepalive.idle` of frontends and backends: quiet time before the first probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// `tcp_keepalive.interval`: time between probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// `tcp_keepalive.count`: probes unanswered before the peer counts as gone.
pub const TCP_KEEPALIVE_COUNT: u32 = 6;
/// `frontends[].proxy_header_timeout`: how long a client may take to send its PROXY header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// `announce.device`: the TUN device the routing daemon exports (docs/design/announce.md).
pub const ANNOUNCE_DEVICE: &str = "vipd-announce";
/// `announce.local_device`: the TUN device that keeps every announce VIP local while vipd runs.
pub const ANNOUNCE_LOCAL_DEVICE: &str = "vipd-local";
/// `announce.withdraw_delay`: a BGP UPDATE crosses a top-of-rack router in milliseconds (2.5 ms
/// measured in docs/design/announce.md); 3 s also covers a router busy recomputing its tables
/// and a second hop, while a stop stays short.
pub const WITHDRAW_DELAY: Duration = Duration::from_secs(3);
/// `shutdown_grace`: how long SIGTERM lets proxy sessions drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest `shutdown_grace`. With [`SHUTDOWN_AFTER_DRAIN`] it fits in the shipped unit's
/// `TimeoutStopSec` (deploy/systemd/vipd.service), so systemd never kills a drain vipd would
/// have finished. Longer drains save little: once the VIP has moved, the sessions still open on
/// it cannot reach this node (docs/operations.md, Stopping and draining).
pub const SHUTDOWN_GRACE_MAX: Duration = Duration::from_secs(120);
/// What a stop may take besides the drain: releasing the VIPs before it (priority-0 adverts,
/// netlink) and stopping the control server after it. The daemon exits at
/// `shutdown_grace + SHUTDOWN_AFTER_DRAIN` whatever is still running.
pub const SHUTDOWN_AFTER_DRAIN: Duration = Duration::from_secs(10);
/// The shipped unit's `TimeoutStopSec` (deploy/systemd/vipd.service; a test reads the unit):
/// systemd's SIGKILL, which must never come before vipd's own limit.
pub const UNIT_TIMEOUT_STOP: Duration = Duration::from_secs(135);

/// How long a stop may take in all: the drain (`shutdown_grace`) and the VIP release and control
/// stop around it. Past it vipd exits anyway (the VIPs were released first). Validation bounds
/// `shutdown_grace` by [`SHUTDOWN_GRACE_MAX`] so that this stays within [`UNIT_TIMEOUT_STOP`],
/// and systemd's SIGKILL stays a backstop for a stuck process, never the end of a drain.
pub const fn shutdown_hard_limit(grace: Duration) -> Duration {
    grace.saturating_add(SHUTDOWN_AFTER_DRAIN)
}
/// `backends[].health.jitter_percent`: each wait between checks varies by up to this percent
/// either way (HAProxy's `spread-checks` advises 2 to 5).
pub const CHECK_JITTER_PERCENT: u8 = 5;

/// `pipe_memory`: the share of the machine's memory grown pipes may hold together.
pub const PIPE_MEMORY_PERCENT: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit vipd ships.
    const UNIT: &str = include_str!("../../../deploy/systemd/vipd.service");

    fn unit_timeout_stop() -> Duration {
        let value = UNIT
            .lines()
            .find_map(|line| line.strip_prefix("TimeoutStopSec="))
            .expect("the unit sets TimeoutStopSec");
        Duration::from_secs(value.trim().parse().expect("TimeoutStopSec in seconds"))
    }

    #[test]
    fn the_deadlines_of_a_stop_agree() {
        assert_eq!(
            unit_timeout_stop(),
            UNIT_TIMEOUT_STOP,
            "the constant follows the unit"
        );
        let grace = Duration::from_secs(7);
        assert_eq!(shutdown_hard_limit(grace), grace + SHUTDOWN_AFTER_DRAIN);
        // systemd's SIGKILL never comes before vipd's own limit, for any valid shutdown_grace.
        assert!(
            shutdown_hard_limit(SHUTDOWN_GRACE_MAX) < unit_timeout_stop(),
            "TimeoutStopSec {:?} <= {:?}",
            unit_timeout_stop(),
            shutdown_hard_limit(SHUTDOWN_GRACE_MAX)
        );
    }
}
