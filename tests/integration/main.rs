//! The `vipd` package's integration tests, linked as one executable: each former test file is a
//! module here, so a test reads as its spec, e.g. `scenarios_failures::split_brain_heals_to_one_master_which_reannounces`.
//! One binary links once and cargo runs all of them on the default test threads.
//!
//! Tests that share this process must not collide: labs name their namespaces by PID and a
//! counter, scratch directories and files carry a per-process counter, no test changes the
//! working directory, the environment or a signal disposition of the process, and servers bind
//! port 0 (or a fixed port inside a lab namespace of their own).
//!
//! Run one group with `cargo test -p vipd --test integration MODULE::`.

mod support;

mod admin_ctl;
mod announce_bench;
mod announce_bgp;
mod announce_deploy;
mod bulk_backpressure;
mod check;
mod control_api;
mod control_under_load;
mod cpu_saturation;
mod crash_restart;
mod daemon_pair;
mod dashboard_browser;
mod dead_servers;
mod dual_stack;
mod hostile_adverts;
mod import;
mod keepalived_interop;
mod kubernetes_pod;
#[cfg(feature = "lab")]
mod lab_command;
mod manual;
mod operator_logs;
mod own_address;
mod proxy_keepalive;
mod reload_command;
mod reload_control;
mod reload_under_load;
mod renumbered_peer;
mod scenarios_active_standby;
mod scenarios_failures;
mod session_log;
mod signals;
mod systemd_unit;
mod vip_links;
mod virtual_mac;
