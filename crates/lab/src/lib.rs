//! A network-namespace lab: bridges, hosts and links for end-to-end tests and `vipd lab`.
//!
//! End-to-end tests call [`e2e_enabled`] first. `VIPD_E2E` decides what happens when the lab
//! cannot run here (not root, or `ip` missing):
//! - `required`: the test fails; CI runs this way, so a skipped end-to-end test is a red build;
//! - anything else: the test returns early, says so on stderr, and records its name in the file
//!   named by `VIPD_SKIP_LOG` so that `tests/run` can list every skip at the end.
//!
//! A [`Lab`] is one LAN: a bridge namespace and N host namespaces, each host with `eth0` on a veth
//! into the bridge. Host `i` has `198.51.100.{10+i}/24` and `2001:db8::{10+i}/64` (documentation
//! ranges only; nothing here ever routes elsewhere); [`Lab::vip_v4`] and [`Lab::vip_v6`] name
//! virtual IPs on the same subnets that no host owns. [`Lab::add_second_lan`] adds a second LAN
//! (`eth1` in every host, `203.0.113.{10+i}/24`, `2001:db8:1::{10+i}/64`) for a VIP on another
//! link than the VRRP adverts. Namespace names carry the process id and a
//! counter, so tests in one process or in several run in parallel. Dropping the lab kills the
//! processes it started (by PID) and deletes its namespaces, also when a test panics; namespaces
//! of a test process that was killed outright are removed by the next process that builds a lab.
//!
//! The lab shells out to iproute2 (`ip`), nftables (`nft`), `tcpdump` and `tshark`: the same tools
//! an operator would use to check what vipd did, so a test's expectations are checked by code that
//! vipd does not share. [`AddressWatch`], the one way the tests, the failover benchmark and
//! `vipd lab` time a VIP appearing on or leaving a host, is such code too: the lab's own small
//! rtnetlink reader, not vipd-net's address monitor.
//!
//! A [`RoutedLab`] is the other shape, for VIPs announced over BGP: a router namespace running
//! BIRD with ECMP, N node namespaces each running BIRD as vipd's speaker, and a client behind
//! the router (module [`routed`] has the address plan). A [`ConnectionLoop`] opens connections
//! from one of its namespaces and counts who answered and what failed; a [`RouteWatch`] times the
//! router's route changes by rtnetlink.
//!
//! [`Injector`] sends raw VRRP packets from a host: crafted bytes with a chosen TTL, one at a
//! time or as a flood bounded in rate, count and time (the hostile-input tests).
//!
//! Besides the namespaces, the helpers that tests of more than one package share live here once:
//! [`keepalived`] (keepalived as a lab node) and [`http`] (the HTTP/1.1 client of `vipd status`,
//! `vipd lab` and the tests).

#![forbid(unsafe_code)]

mod capture;
mod connections;
pub mod http;
mod inject;
pub mod keepalived;
mod process;
mod route_watch;
pub mod routed;
mod topology;
mod watch;

pub use capture::{Capture, CaptureFile};
pub use connections::{Attempt, ConnectionLoop, ConnectionPlan, ConnectionReport};
pub use inject::{Flooded, Injector};
pub use process::LabProcess;
pub use route_watch::{RouteChange, RouteWatch};
pub use routed::{NodeSpeaker, Place, RoutedLab, RoutedNode, RoutedOptions, vipd_node_conf};
pub use topology::{HOST_INTERFACE, Host, Lab, MAX_HOSTS, SECOND_INTERFACE};
pub use watch::{AddressWatch, Change, Seen, Watching};

use std::io::Write;
use std::path::Path;

/// What went wrong while building or driving a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not be started at all (binary missing, fork failed).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// Entering a namespace or another OS call failed.
    #[error("{action}: {source}")]
    Os {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// The lab did not reach the expected state in time.
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    /// More hosts than the lab's address plan holds.
    #[error("a lab holds at most {max} hosts, {requested} were requested")]
    TooManyHosts { requested: usize, max: usize },
    /// A file the lab runs as shipped (deploy/) no longer has a line the lab fills in.
    #[error("{file} has no line starting `{missing}`: the lab runs it as shipped")]
    Shipped { file: &'static str, missing: String },
    /// A host index outside the lab.
    #[error("host {index} does not exist (the lab has {hosts} hosts)")]
    NoSuchHost { index: usize, hosts: usize },
}

/// Returns whether the end-to-end test `test` can run here; see the crate doc for `VIPD_E2E`.
///
/// # Panics
/// When the test cannot run and `VIPD_E2E=required`.
pub fn e2e_enabled(test: &str) -> bool {
    let Some(reason) = missing_prerequisite() else {
        return true;
    };
    assert!(
        std::env::var("VIPD_E2E").as_deref() != Ok("required"),
        "end-to-end test {test} cannot run ({reason}) and VIPD_E2E=required"
    );
    eprintln!("SKIPPED end-to-end test {test}: {reason}");
    if let Ok(log) = std::env::var("VIPD_SKIP_LOG") {
        // Best effort: the skip is already on stderr.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
    false
}

fn missing_prerequisite() -> Option<String> {
    if !running_as_root() {
        return Some("needs root for network namespaces".into());
    }
    let has_ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|path| Path::new(path).exists());
    if !has_ip {
        return Some("iproute2 (`ip`) is not installed".into());
    }
    None
}

fn running_as_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs": the effective uid is the second field.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
