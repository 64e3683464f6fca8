//! The daemon that `vipd run` starts: the supervisor wires the engines (vipd-vrrp routers,
//! vipd-proxy, trackers, notify hooks) to the host (vipd-net) and to the control server.
//!
//! - `supervisor`: start, reload by difference, shutdown; one instance task per VRRP instance.
//! - `admin_state`: drained servers, weights and maintenance set by operators, kept across restarts.
//! - `reload`: which changes of an instance a reload applies in place, which restart it.
//! - `instance`: one VRRP instance's task: inputs into `vipd_vrrp::VirtualRouter`, outputs to the host.
//! - `host`: the Linux host (sockets, rtnetlink, monitors) and an in-memory one for tests.
//! - `tracker`, `priority`: what an instance depends on, and the priority it yields.
//! - `announcement`: one task per `announce` group, putting its VIPs on the announce device
//!   (which the routing daemon exports) while its trackers allow.
//! - `advert_drops`: why received adverts were dropped, per reason, for status and metrics.
//! - `rate_limited_log`: one log line per period for events the LAN can cause at network speed.
//! - `unknown_peer`: unicast adverts for our VRID from addresses that are not configured peers.
//! - `notify`, `exec`: operators' hooks and scripts, run as programs (argv, never a shell).
//! - `release`: `vipd release`, the cleanup after a daemon that died without a shutdown.
//! - `mapping`: from the YAML model to the engines' own configuration types.
//! - `ambient_capabilities`: cleared at start, so scripts and hooks run without the unit's.
//! - `fd_limit`: RLIMIT_NOFILE raised at start to what the connection limits need.
//! - `signals`: the signals vipd answers (reload, stop, dumps) and the ones it catches and logs
//!   only so that they cannot end it; `dumps`: what SIGUSR1 and SIGUSR2 write.
//! - `reload_verdict`: what came of each configuration load, for status, metrics and `vipd reload`.
//! - `systemd_notify`: readiness, reload and stop reported to systemd (`Type=notify`).
//! - `watchdog`: systemd's watchdog keep-alives, sent while every instance task runs.

pub mod admin_state;
pub mod advert_drops;
pub mod ambient_capabilities;
pub mod announcement;
pub mod dumps;
pub mod exec;
pub mod fd_limit;
pub mod host;
pub mod instance;
pub mod mapping;
pub mod notify;
pub mod priority;
pub mod rate_limited_log;
pub mod release;
pub mod reload;
pub mod reload_verdict;
pub mod signals;
pub mod supervisor;
pub mod systemd_notify;
pub mod tracker;
pub mod unknown_peer;
pub mod watchdog;
