//! `announce`: VIPs announced by the node's routing daemon (docs/design/announce.md).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::{Checker, is_interface_name};
use crate::defaults::{ANNOUNCE_DEVICE, ANNOUNCE_LOCAL_DEVICE, SHUTDOWN_GRACE_MAX, WITHDRAW_DELAY};
use crate::model::{Announce, AnnounceGroup, Config};
use crate::raw;

/// The longest `withdraw_delay`: routers converge in milliseconds to seconds; more only makes a
/// stop slower.
const WITHDRAW_DELAY_MAX: Duration = Duration::from_secs(60);

impl Checker<'_> {
    /// `announce`, checked against the rest of `config` (trackers' targets, VRRP VIPs and
    /// interfaces).
    pub(super) fn announce(
        &mut self,
        raw: Option<raw::Announce>,
        config: &Config,
    ) -> Option<Announce> {
        let raw = raw?;
        let device = self.announce_device(raw.device, "announce.device", ANNOUNCE_DEVICE);
        let local_device = self.announce_device(
            raw.local_device,
            "announce.local_device",
            ANNOUNCE_LOCAL_DEVICE,
        );
        if device == local_device {
            self.error(
                "announce.local_device",
                format!("`{local_device}` is also announce.device: the routing daemon would announce every VIP, withdrawn or not"),
            );
        }
        let withdraw_delay = self.duration(
            raw.withdraw_delay.as_deref(),
            "announce.withdraw_delay",
            WITHDRAW_DELAY,
            Duration::ZERO..=WITHDRAW_DELAY_MAX,
        );
        self.stop_fits_the_unit(config.shutdown_grace, withdraw_delay);
        if raw.groups.is_empty() {
            self.error("announce.groups", "announce needs at least one group");
        }
        // Each VIP with its position in the file (invalid ones leave gaps), for the paths of the
        // checks across groups.
        let (groups, positions): (Vec<AnnounceGroup>, Vec<Vec<usize>>) = raw
            .groups
            .into_iter()
            .enumerate()
            .map(|(position, group)| {
                self.announce_group(group, &format!("announce.groups[{position}]"), config)
            })
            .unzip();
        self.unique_names(
            "announce group",
            groups.iter().enumerate().map(|(position, group)| {
                (
                    format!("announce.groups[{position}].name"),
                    group.name.as_str(),
                )
            }),
        );
        self.names_apart_from_instances(&groups, config);
        let announce = Announce {
            device,
            local_device,
            withdraw_delay,
            groups,
        };
        self.announced_vips_elsewhere(&announce, &positions, config);
        self.devices_used_by_vrrp(&announce, config);
        Some(announce)
    }

    /// The admin API and `vipd ctl maintenance` address instances and groups by name.
    fn names_apart_from_instances(&mut self, groups: &[AnnounceGroup], config: &Config) {
        for (position, group) in groups.iter().enumerate() {
            if config.instance(&group.name).is_some() {
                self.error(
                    &format!("announce.groups[{position}].name"),
                    format!(
                        "`{}` is also a vrrp instance's name; maintenance addresses both by name",
                        group.name
                    ),
                );
            }
        }
    }

    fn announce_device(&mut self, name: Option<String>, path: &str, default: &str) -> String {
        let Some(name) = name else {
            return default.to_owned();
        };
        if !is_interface_name(&name) {
            self.error(
                path,
                format!("`{}` is not an interface name", name.escape_debug()),
            );
        }
        name
    }

    /// A stop withdraws, waits `withdraw_delay`, then drains for `shutdown_grace`: together they
    /// must fit the drain budget the shipped unit's TimeoutStopSec allows.
    fn stop_fits_the_unit(&mut self, shutdown_grace: Duration, withdraw_delay: Duration) {
        if shutdown_grace + withdraw_delay > SHUTDOWN_GRACE_MAX {
            self.error(
                "announce.withdraw_delay",
                format!(
                    "withdraw_delay + shutdown_grace is {}, longer than {}: vipd's stop would outlast the shipped unit's TimeoutStopSec",
                    humantime::format_duration(shutdown_grace + withdraw_delay),
                    humantime::format_duration(SHUTDOWN_GRACE_MAX)
                ),
            );
        }
    }

    fn announce_group(
        &mut self,
        raw: raw::AnnounceGroup,
        path: &str,
        config: &Config,
    ) -> (AnnounceGroup, Vec<usize>) {
        let name = self.required_name(raw.name, &format!("{path}.name"));
        if raw.vips.is_empty() {
            self.error(&format!("{path}.vips"), "a group needs at least one VIP");
        }
        let (positions, vips) = raw
            .vips
            .iter()
            .enumerate()
            .filter_map(|(position, text)| {
                let address = self.host_address(text, &format!("{path}.vips[{position}]"))?;
                Some((position, address))
            })
            .unzip();
        let priority = self.integer(raw.priority, &format!("{path}.priority"), 1..=254, 100u8);
        let withdraw_below = raw.withdraw_below.map(|threshold| {
            self.integer(
                Some(threshold),
                &format!("{path}.withdraw_below"),
                1..=254,
                1u8,
            )
        });
        let track = self.trackers(raw.track, priority, config, path);
        let weighted = track.iter().any(|tracker| tracker.weight != 0);
        match withdraw_below {
            None if weighted => self.warn(
                &format!("{path}.track"),
                "weighted trackers cannot withdraw this group without `withdraw_below`; only weight-0 trackers do",
            ),
            Some(threshold) if threshold > priority && !track.iter().any(|tracker| tracker.weight > 0) => self.warn(
                &format!("{path}.withdraw_below"),
                format!("{threshold} is above the priority {priority} and no tracker adds to it: the group is never announced"),
            ),
            _ => {}
        }
        let group = AnnounceGroup {
            name,
            vips,
            priority,
            withdraw_below,
            track,
        };
        (group, positions)
    }

    /// A VIP of a group: an address, or one with the host prefix (/32, /128).
    fn host_address(&mut self, text: &str, path: &str) -> Option<IpAddr> {
        if let Ok(address) = text.parse::<IpAddr>() {
            return Some(address);
        }
        match text.parse::<IpNet>() {
            Ok(network) if network.prefix_len() == network.max_prefix_len() => Some(network.addr()),
            Ok(network) => {
                self.error(
                    path,
                    format!(
                        "`{text}`: an announced VIP is one address (/{}); the routing daemon announces it as a host route",
                        network.max_prefix_len()
                    ),
                );
                None
            }
            Err(_) => {
                self.error(
                    path,
                    format!("`{}` is not an IP address", text.escape_debug()),
                );
                None
            }
        }
    }

    /// A VIP is announced by one group and elected by no VRRP instance: two owners would add
    /// and remove it behind each other's back.
    fn announced_vips_elsewhere(
        &mut self,
        announce: &Announce,
        positions: &[Vec<usize>],
        config: &Config,
    ) {
        let mut first: BTreeMap<IpAddr, String> = BTreeMap::new();
        for ((position, group), indexes) in announce.groups.iter().enumerate().zip(positions) {
            for (index, vip) in indexes.iter().zip(&group.vips) {
                let path = format!("announce.groups[{position}].vips[{index}]");
                if let Some(other) = first.get(vip) {
                    self.error(
                        &path,
                        format!("{vip} is already announced by group `{other}`"),
                    );
                    continue;
                }
                first.insert(*vip, group.name.clone());
                if let Some(instance) = config.vrrp.iter().find(|instance| {
                    instance
                        .vips
                        .iter()
                        .any(|elected| elected.address.addr() == *vip)
                }) {
                    self.error(
                        &path,
                        format!("{vip} is also a VIP of vrrp instance `{}`: a VIP is elected or announced, not both", instance.name),
                    );
                }
            }
        }
    }

    /// The TUN devices are vipd's own: a VRRP instance on them would lose its addresses with them.
    fn devices_used_by_vrrp(&mut self, announce: &Announce, config: &Config) {
        for (position, instance) in config.vrrp.iter().enumerate() {
            let uses = |device: &str| {
                instance.interface == device
                    || instance.vips.iter().any(|vip| vip.interface == device)
            };
            for (field, device) in [
                ("device", &announce.device),
                ("local_device", &announce.local_device),
            ] {
                if uses(device) {
                    self.error(
                        &format!("announce.{field}"),
                        format!("`{device}` is used by vrrp[{position}] (`{}`); vipd creates and deletes this device", instance.name),
                    );
                }
            }
        }
    }
}
