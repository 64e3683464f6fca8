//! The supervisor's part of announced VIPs (docs/design/announce.md): the two devices, the VIPs
//! kept local on the local device, and one group task per `announce` group, started, kept,
//! handed over or withdrawn by a reload.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::watch;
use tracing::info;
use vipd_config::{Announce, AnnounceGroup, Config, TrackTarget};
use vipd_net::{AddressManager as _, Vip};

use super::Supervisor;
use crate::control::AnnounceStatus;
use crate::daemon::announcement::{self, GroupHandle, GroupParts};
use crate::daemon::host::Host;

/// The announce part of a running daemon.
pub(super) struct RunningAnnounce<D> {
    /// Open devices by name; closing one (dropping it) deletes it with its addresses.
    pub(super) devices: BTreeMap<String, D>,
    /// Group tasks by group name.
    pub(super) groups: BTreeMap<String, GroupHandle>,
}

impl<D> Default for RunningAnnounce<D> {
    fn default() -> Self {
        Self {
            devices: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// What the control server needs of one announce group.
#[derive(Clone)]
pub(crate) struct AnnounceEntry {
    pub(crate) name: String,
    pub(crate) status: watch::Receiver<AnnounceStatus>,
    pub(crate) maintenance: Arc<watch::Sender<bool>>,
}

/// Devices a configuration needs that are not open yet, opened before a reload commits.
pub(super) type PreparedDevices<D> = HashMap<String, D>;

impl<H: Host> Supervisor<H> {
    /// Opens the devices `new` names that are not open: the fallible part, done before anything
    /// changes. A device of that name held by another process fails here (EBUSY).
    pub(super) async fn prepare_announce(
        &self,
        new: &Config,
    ) -> Result<PreparedDevices<H::AnnounceDevice>> {
        let mut prepared = HashMap::new();
        let Some(announce) = &new.announce else {
            return Ok(prepared);
        };
        for name in [&announce.device, &announce.local_device] {
            if !self.announce.devices.contains_key(name) {
                let device = self.host.open_announce_device(name).await?;
                prepared.insert(name.clone(), device);
            }
        }
        Ok(prepared)
    }

    /// Applies `new`'s `announce` by difference. Unchanged groups keep their task. Every other
    /// old task stops first and leaves the devices as they are (a changed group's new task takes
    /// over what the routers see, with no withdrawal unless its decision is one); then each
    /// device loses the VIPs no group of `new` has, and the local device gets every VIP of
    /// `new`; then the new tasks start. Devices no longer named close. What fails is returned,
    /// one entry per problem.
    pub(super) async fn commit_announce(
        &mut self,
        new: &Config,
        prepared: PreparedDevices<H::AnnounceDevice>,
        restarted_trackers: &[TrackTarget],
    ) -> Vec<String> {
        self.announce.devices.extend(prepared);
        let old_device = self.config.announce.as_ref().map(|old| old.device.clone());
        let new_device = new
            .announce
            .as_ref()
            .map(|announce| announce.device.clone());
        let mut maintenance_of = HashMap::new();
        let mut kept = BTreeMap::new();
        for (name, running) in std::mem::take(&mut self.announce.groups) {
            let unchanged = old_device == new_device
                && new
                    .announce
                    .as_ref()
                    .and_then(|announce| announce.group(&name))
                    == Some(&running.group)
                && !tracks_any(&running.group, restarted_trackers);
            if unchanged {
                kept.insert(name, running);
            } else {
                info!(group = %name, "announce group changed or removed; its task stops");
                maintenance_of.insert(name, Arc::clone(&running.maintenance));
                running.hand_over().await;
            }
        }
        let mut failures = Vec::new();
        if let Some(announce) = &new.announce {
            if let Err(error) = self.keep_only_configured_vips(announce).await {
                failures.push(format!("announce devices: {error:#}"));
            }
            for group in &announce.groups {
                let handle = kept.remove(&group.name).unwrap_or_else(|| {
                    let maintenance = maintenance_of.remove(&group.name);
                    self.spawn_group(group, &announce.device, maintenance)
                });
                self.announce.groups.insert(group.name.clone(), handle);
            }
        }
        let wanted: Vec<&String> = new
            .announce
            .iter()
            .flat_map(|announce| [&announce.device, &announce.local_device])
            .collect();
        self.announce
            .devices
            .retain(|name, _| wanted.contains(&name));
        self.publish_announce(new);
        failures
    }

    /// Takes every VIP of the configuration in force that `announce` does not have off both of
    /// `announce`'s devices (whichever device it was on before: a reload may swap them), and
    /// puts every VIP of `announce` on the local device.
    async fn keep_only_configured_vips(&self, announce: &Announce) -> Result<()> {
        let wanted: Vec<IpAddr> = announce
            .groups
            .iter()
            .flat_map(|group| group.vips.iter().copied())
            .collect();
        let present: Vec<Vip> = announce
            .groups
            .iter()
            .flat_map(|group| announcement::device_vips(group, &announce.local_device))
            .map(with_local_metric)
            .collect();
        let absent: Vec<Vip> = self
            .config
            .announce
            .iter()
            .flat_map(|old| &old.groups)
            .flat_map(|group| group.vips.iter().copied())
            .filter(|address| !wanted.contains(address))
            .flat_map(|address| {
                [&announce.device, &announce.local_device]
                    .map(|device| announcement::host_vip(device, address))
            })
            .collect();
        self.host.addresses().reconcile(&present, &absent).await?;
        Ok(())
    }

    /// Starts a group's task; `maintenance` is the previous task's, so that an operator's
    /// request during a reload is not lost (a group new to the file starts from the admin state).
    fn spawn_group(
        &self,
        group: &AnnounceGroup,
        device: &str,
        maintenance: Option<Arc<watch::Sender<bool>>>,
    ) -> GroupHandle {
        let maintenance = maintenance.unwrap_or_else(|| {
            Arc::new(watch::Sender::new(self.admin.in_maintenance(&group.name)))
        });
        announcement::spawn(GroupParts {
            group: group.clone(),
            device: device.to_owned(),
            trackers: self.tracker_readings(&group.track),
            addresses: self.host.addresses(),
            heartbeat: self
                .heartbeats
                .register(&format!("announce {}", group.name)),
            maintenance,
        })
    }

    /// Publishes the groups' status, in `config`'s order, for the control server.
    pub(super) fn publish_announce(&self, config: &Config) {
        let statuses = config
            .announce
            .iter()
            .flat_map(|announce| &announce.groups)
            .filter_map(|group| self.announce.groups.get(&group.name))
            .map(|handle| AnnounceEntry {
                name: handle.group.name.clone(),
                status: handle.status.clone(),
                maintenance: Arc::clone(&handle.maintenance),
            })
            .collect();
        self.announce_registry.send_replace(statuses);
    }
}

/// The metric of the VIPs' routes on the local device. FRR's zebra keeps one connected route per
/// prefix, the one of lowest metric (the first added on a tie): with equal metrics it kept
/// `vipd-local`'s, and `redistribute connected` matching `vipd-announce` never announced the VIP.
/// BIRD reads the announce device only and does not care.
const LOCAL_DEVICE_METRIC: u32 = 1024;

fn with_local_metric(vip: Vip) -> Vip {
    Vip {
        route_metric: Some(LOCAL_DEVICE_METRIC),
        ..vip
    }
}

/// Whether `group` follows one of `targets` (trackers a reload restarted).
fn tracks_any(group: &AnnounceGroup, targets: &[TrackTarget]) -> bool {
    group
        .track
        .iter()
        .any(|tracker| targets.contains(&tracker.target))
}

/// Withdraws every group at once (a stop): the routing daemon withdraws the routes while the
/// listeners still serve. Returns whether there was anything to withdraw.
pub(super) async fn withdraw_all<D>(announce: &mut RunningAnnounce<D>) -> bool {
    let groups = std::mem::take(&mut announce.groups);
    if groups.is_empty() {
        return false;
    }
    futures::future::join_all(groups.into_values().map(GroupHandle::withdraw)).await;
    true
}

#[cfg(test)]
mod tests;
