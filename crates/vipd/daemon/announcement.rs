//! Announced VIPs (docs/design/announce.md): one task per `announce` group decides from the
//! group's trackers whether this node should be announced, and puts the group's VIPs on the
//! announce device, which the routing daemon exports, or takes them off.
//!
//! The decision uses the VRRP weight semantics (`priority::effective`): a failing weight-0
//! tracker withdraws; weighted trackers move the priority, and the group is withdrawn while it
//! is below `withdraw_below`. The task also puts back what someone else changed on the device,
//! once per [`RECHECK_EVERY`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vipd_config::AnnounceGroup;
use vipd_net::{AddressManager, Vip};

use crate::control::AnnounceStatus;
use crate::daemon::priority::{self, Contribution, Effective};
use crate::daemon::rate_limited_log::RateLimitedLog;
use crate::daemon::reload_verdict::unix_now;
use crate::daemon::tracker::{self, Reading, TrackerInfo};
use crate::daemon::watchdog::Heartbeat;

/// How often a group checks that the device holds what it should (an address deleted by hand
/// comes back) and beats its heartbeat; tracker changes act at once.
const RECHECK_EVERY: Duration = Duration::from_millis(500);

/// What a group task needs.
pub struct GroupParts<A> {
    pub group: AnnounceGroup,
    /// The device the routing daemon exports.
    pub device: String,
    pub trackers: Vec<(TrackerInfo, watch::Receiver<Reading>)>,
    pub addresses: Arc<A>,
    pub heartbeat: Heartbeat,
    /// `true` while an operator holds the group withdrawn (the admin API's maintenance).
    pub maintenance: Arc<watch::Sender<bool>>,
}

/// A running group task.
pub struct GroupHandle {
    pub group: AnnounceGroup,
    pub status: watch::Receiver<AnnounceStatus>,
    /// Set to hold the group withdrawn (maintenance), clear to let its trackers decide.
    pub maintenance: Arc<watch::Sender<bool>>,
    stop: oneshot::Sender<Stop>,
    task: JoinHandle<()>,
}

/// How a group task ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Takes the VIPs off the announce device first (vipd is stopping).
    Withdraw,
    /// Leaves the device as it is, for the task that follows (a reload).
    HandOver,
}

impl GroupHandle {
    /// Takes the group's VIPs off the announce device and ends the task; returns once they are
    /// off (or removing them failed and was logged).
    pub async fn withdraw(self) {
        self.stop_with(Stop::Withdraw).await;
    }

    /// Ends the task and leaves the device as it is, for a new task of the same group (a
    /// reload) to take over without a withdrawal the routers would see.
    pub async fn hand_over(self) {
        self.stop_with(Stop::HandOver).await;
    }

    async fn stop_with(self, how: Stop) {
        let _ = self.stop.send(how);
        let _ = self.task.await;
    }
}

/// Why a group is withdrawn, or `None` when it should be announced.
fn withdrawal_reason(
    group: &AnnounceGroup,
    effective: Effective,
    maintenance: bool,
) -> Option<String> {
    if maintenance {
        return Some("maintenance (admin API)".to_owned());
    }
    match (effective, group.withdraw_below) {
        (Effective::Fault, _) => Some("a weight-0 tracker fails".to_owned()),
        (Effective::Priority(priority), Some(threshold)) if priority < threshold => Some(format!(
            "priority {priority} is below withdraw_below {threshold}"
        )),
        (Effective::Priority(_), _) => None,
    }
}

/// Starts the task of one group.
pub fn spawn<A: AddressManager + 'static>(parts: GroupParts<A>) -> GroupHandle {
    let group = parts.group.clone();
    let maintenance = Arc::clone(&parts.maintenance);
    let (status_tx, status) = watch::channel(initial_status(&parts));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(parts, status_tx, stopped));
    GroupHandle {
        group,
        status,
        maintenance,
        stop,
        task,
    }
}

fn initial_status<A>(parts: &GroupParts<A>) -> AnnounceStatus {
    AnnounceStatus {
        name: parts.group.name.clone(),
        announced: false,
        device: parts.device.clone(),
        configured_priority: parts.group.priority,
        effective_priority: Some(parts.group.priority),
        withdraw_below: parts.group.withdraw_below,
        vips: parts.group.vips.iter().map(ToString::to_string).collect(),
        trackers: tracker::statuses(&parts.trackers),
        withdrawn_because: Some("starting".to_owned()),
        changes: 0,
        since_unix_seconds: unix_now(),
    }
}

async fn run<A: AddressManager>(
    mut parts: GroupParts<A>,
    status: watch::Sender<AnnounceStatus>,
    mut stopped: oneshot::Receiver<Stop>,
) {
    let on_device = device_vips(&parts.group, &parts.device);
    let mut maintenance = parts.maintenance.subscribe();
    let mut failures = RateLimitedLog::default();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let how = loop {
        parts.heartbeat.beat();
        let effective = effective_priority(&parts);
        let held = *maintenance.borrow_and_update();
        let withdrawn_because = if !held && waits_for_a_first_check(&parts) {
            // Neither announce a node whose health is unknown nor withdraw one a reload handed
            // over announced: the device stays as it is until every tracker has read once.
            if device_holds(&*parts.addresses, &on_device).await {
                None
            } else {
                Some("waiting for the first check of its trackers".to_owned())
            }
        } else {
            let decided = withdrawal_reason(&parts.group, effective, held);
            put_in_place(&parts, &on_device, decided, &mut failures).await
        };
        publish(&status, &parts, effective, withdrawn_because);
        tokio::select! {
            // A dropped handle leaves the device as it is, as a hand-over does.
            how = &mut stopped => break how.unwrap_or(Stop::HandOver),
            _ = recheck.tick() => {}
            () = tracker::any_changed(&mut parts.trackers) => {}
            Ok(()) = maintenance.changed() => {}
        }
    };
    if how == Stop::Withdraw {
        match parts.addresses.reconcile(&[], &on_device).await {
            Ok(_) => info!(group = %parts.group.name, "withdrawn: vipd is stopping"),
            Err(error) => {
                warn!(group = %parts.group.name, %error, "announce device: cannot withdraw the VIPs");
            }
        }
    }
}

/// Puts the VIPs on the device, or takes them off, as `withdrawn_because` says; returns why the
/// group is withdrawn now (the decision, or the device's error).
async fn put_in_place<A: AddressManager>(
    parts: &GroupParts<A>,
    on_device: &[Vip],
    withdrawn_because: Option<String>,
    failures: &mut RateLimitedLog,
) -> Option<String> {
    let (present, absent): (&[Vip], &[Vip]) = if withdrawn_because.is_none() {
        (on_device, &[])
    } else {
        (&[], on_device)
    };
    match parts.addresses.reconcile(present, absent).await {
        Ok(_) => withdrawn_because,
        Err(error) => {
            if let Some(unlogged) = failures.allow(std::time::Instant::now()) {
                // Retried every recheck; a device deleted by hand would otherwise log twice a
                // second.
                warn!(group = %parts.group.name, %error, unlogged, "announce device: cannot put the VIPs in place; retrying");
            }
            Some(format!("announce device: {error}"))
        }
    }
}

/// Whether a tracker has not read yet (a script that has not run since it started).
fn waits_for_a_first_check<A>(parts: &GroupParts<A>) -> bool {
    parts
        .trackers
        .iter()
        .any(|(_, reading)| reading.borrow().unchecked)
}

/// Whether every VIP is on the device now; a failed lookup counts as not.
async fn device_holds<A: AddressManager>(addresses: &A, vips: &[Vip]) -> bool {
    for vip in vips {
        if !addresses.contains(vip).await.unwrap_or(false) {
            return false;
        }
    }
    true
}

fn effective_priority<A>(parts: &GroupParts<A>) -> Effective {
    let contributions: Vec<Contribution> = parts
        .trackers
        .iter()
        .map(|(info, reading)| Contribution::of(info.weight, reading.borrow().verdict))
        .collect();
    priority::effective(parts.group.priority, contributions)
}

/// Publishes the group's status; logs and counts a change of `announced`.
fn publish<A>(
    status: &watch::Sender<AnnounceStatus>,
    parts: &GroupParts<A>,
    effective: Effective,
    withdrawn_because: Option<String>,
) {
    let announced = withdrawn_because.is_none();
    status.send_modify(|current| {
        let changed = current.announced != announced;
        if changed {
            match &withdrawn_because {
                None => info!(group = %current.name, vips = ?current.vips, "announced"),
                Some(reason) => {
                    info!(group = %current.name, vips = ?current.vips, %reason, "withdrawn");
                }
            }
            current.changes += 1;
            current.since_unix_seconds = unix_now();
        }
        current.announced = announced;
        current.effective_priority = match effective {
            Effective::Fault => None,
            Effective::Priority(priority) => Some(priority),
        };
        current.trackers = tracker::statuses(&parts.trackers);
        current.withdrawn_because = withdrawn_because;
    });
}

/// The group's VIPs as host addresses on `device`.
pub fn device_vips(group: &AnnounceGroup, device: &str) -> Vec<Vip> {
    group
        .vips
        .iter()
        .map(|address| host_vip(device, *address))
        .collect()
}

/// `address` as a host address (/32, /128) on `device`: how every announce VIP is put on.
pub fn host_vip(device: &str, address: IpAddr) -> Vip {
    let prefix = if address.is_ipv4() { 32 } else { 128 };
    Vip::new(device, address, prefix)
}

#[cfg(test)]
mod tests;
