//! `vrrp` entries: virtual routers, their VIPs, trackers, hooks and announcements.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::{Checker, addresses, is_interface_name};
use crate::model::{
    Config, Garp, Notify, TrackTarget, Tracker, Unicast, V3Checksum, Vip, VirtualMac, VrrpInstance,
    VrrpVersion,
};
use crate::raw;

/// VRRPv3's 12-bit Max Adver Int counts centiseconds: 1..=4095 (RFC 5798 section 5.2.7).
const V3_INTERVAL: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_millis(40_950);
/// VRRPv2's 8-bit Adver Int counts whole seconds: 1..=255 (RFC 3768 section 5.3.7).
const V2_INTERVAL_SECONDS: std::ops::RangeInclusive<u64> = 1..=255;
/// VRRPv2's authentication data field is 8 bytes (RFC 3768 section 5.3.10).
const V2_PASSWORD_MAX: usize = 8;
/// An advert counts its addresses in one byte.
const MAX_VIPS: usize = 255;
/// An IPv4 address label is an interface name: at most 15 bytes (IFNAMSIZ - 1).
const LABEL_MAX: usize = 15;

impl Checker<'_> {
    pub(super) fn vrrp_instances(
        &mut self,
        instances: Vec<raw::Vrrp>,
        config: &Config,
    ) -> Vec<VrrpInstance> {
        let typed: Vec<VrrpInstance> = instances
            .into_iter()
            .enumerate()
            .map(|(position, instance)| {
                self.vrrp_instance(instance, &format!("vrrp[{position}]"), config)
            })
            .collect();
        self.unique_names(
            "vrrp instance",
            typed.iter().enumerate().map(|(position, instance)| {
                (format!("vrrp[{position}].name"), instance.name.as_str())
            }),
        );
        self.repeated_vrids(&typed);
        self.repeated_vips(&typed);
        self.shared_virtual_mac_interfaces(&typed);
        for (position, instance) in typed.iter().enumerate() {
            self.weights_below_peer(instance, &format!("vrrp[{position}]"));
            self.detection_outside_window(instance, &format!("vrrp[{position}]"), config);
        }
        typed
    }

    fn vrrp_instance(&mut self, raw: raw::Vrrp, path: &str, config: &Config) -> VrrpInstance {
        let name = self.required_name(raw.name, &format!("{path}.name"));
        let interface = self.interface(raw.interface, &format!("{path}.interface"));
        let vrid = self.required(raw.vrid, &format!("{path}.vrid"));
        let vrid = self.integer(vrid, &format!("{path}.vrid"), 1..=255, 1u8);
        let priority = self.integer(raw.priority, &format!("{path}.priority"), 1..=255, 100u8);
        let version = self.version(raw.version, &format!("{path}.version"));
        let advert_interval = self.advert_interval(
            raw.advert_interval.as_deref(),
            version,
            &format!("{path}.advert_interval"),
        );
        let preempt_delay = self.duration(
            raw.preempt_delay.as_deref(),
            &format!("{path}.preempt_delay"),
            Duration::ZERO,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let checksum = match (raw.checksum, version) {
            (Some(_), VrrpVersion::V2) => {
                self.error(
                    &format!("{path}.checksum"),
                    "applies to VRRP version 3 only (the v2 checksum covers the message only)",
                );
                V3Checksum::default()
            }
            (Some(raw::Checksum::MessageOnly), VrrpVersion::V3) => V3Checksum::MessageOnly,
            _ => V3Checksum::WithPseudoHeader,
        };
        let auth_password =
            self.auth_password(raw.auth_password, version, &format!("{path}.auth_password"));
        let peer_priority = raw
            .peer_priority
            .map(|peer| self.integer(Some(peer), &format!("{path}.peer_priority"), 1..=255, 100u8));
        let virtual_mac = self.virtual_mac(
            raw.virtual_mac,
            raw.virtual_mac_interface,
            vrid,
            &interface,
            path,
        );
        // With a virtual MAC, VIPs live on the macvlan unless they name another interface.
        let vip_interface = virtual_mac
            .as_ref()
            .map_or(interface.as_str(), |virtual_mac| {
                virtual_mac.interface.as_str()
            });
        let vips = self.vips(raw.vips, vip_interface, version, &format!("{path}.vips"));
        let family_is_v6 = vips.first().map(|vip: &Vip| vip.address.addr().is_ipv6());
        if let Some(virtual_mac) = &virtual_mac {
            self.virtual_mac_family(virtual_mac, &vips, path);
        }
        let unicast = raw
            .unicast
            .map(|unicast| self.unicast(unicast, family_is_v6, &format!("{path}.unicast")));
        let track = self.trackers(raw.track, priority, config, path);
        let notify = raw
            .notify
            .map(|notify| self.notify(notify, &format!("{path}.notify")))
            .unwrap_or_default();
        let garp = raw
            .garp
            .map(|garp| self.garp(&garp, &format!("{path}.garp")))
            .unwrap_or_default();
        VrrpInstance {
            name,
            interface,
            vrid,
            priority,
            version,
            advert_interval,
            preempt: raw.preempt.unwrap_or(true),
            preempt_delay,
            checksum,
            auth_password,
            unicast,
            peer_priority,
            virtual_mac,
            vips,
            track,
            notify,
            garp,
        }
    }

    fn interface(&mut self, value: Option<String>, path: &str) -> String {
        let Some(name) = self.required(value, path) else {
            return String::new();
        };
        if !is_interface_name(&name) {
            self.error(
                path,
                format!(
                    "`{}` is not an interface name (1 to 15 characters, no `/`, `:` or spaces)",
                    name.escape_debug()
                ),
            );
        }
        name
    }

    /// `virtual_mac` and `virtual_mac_interface`: the macvlan name, when the switch is on.
    fn virtual_mac(
        &mut self,
        switch: Option<bool>,
        name: Option<String>,
        vrid: u8,
        interface: &str,
        path: &str,
    ) -> Option<VirtualMac> {
        let name_path = format!("{path}.virtual_mac_interface");
        if switch != Some(true) {
            if name.is_some() {
                self.error(&name_path, "takes effect only with `virtual_mac: true`");
            }
            return None;
        }
        let name = match name {
            Some(name) => {
                if !is_interface_name(&name) {
                    self.error(
                        &name_path,
                        format!(
                            "`{}` is not an interface name (1 to 15 characters, no `/`, `:` or spaces)",
                            name.escape_debug()
                        ),
                    );
                } else if name == interface {
                    self.error(
                        &name_path,
                        format!("`{name}` is the instance's own interface; the macvlan needs a name of its own"),
                    );
                }
                name
            }
            None => VirtualMac::default_interface(vrid),
        };
        Some(VirtualMac { interface: name })
    }

    /// The macvlan carries IPv4 only (see the errors for why).
    fn virtual_mac_family(&mut self, virtual_mac: &VirtualMac, vips: &[Vip], path: &str) {
        if vips.first().is_some_and(|vip| vip.address.addr().is_ipv6()) {
            // An IPv6 instance's macvlan (00-00-5E-00-02-{VRID}) carries both families.
            return;
        }
        let vips_path = format!("{path}.vips");
        for (position, vip) in vips.iter().enumerate() {
            if vip.address.addr().is_ipv6() && vip.interface == virtual_mac.interface {
                // IPv6 is disabled on an IPv4 instance's macvlan so that a backup never sends
                // DAD, router solicitations or MLD reports from the shared MAC.
                self.error(
                    &self.vip_address_path(&vips_path, position),
                    format!(
                        "{} is IPv6, but the virtual MAC interface of an IPv4 instance carries \
                         IPv4 only; give this VIP `interface:` to keep it on another interface",
                        vip.address
                    ),
                );
            }
        }
    }

    fn version(&mut self, value: Option<i64>, path: &str) -> VrrpVersion {
        match value {
            None | Some(3) => VrrpVersion::V3,
            Some(2) => VrrpVersion::V2,
            Some(other) => {
                self.error(path, format!("must be 2 or 3, got {other}"));
                VrrpVersion::V3
            }
        }
    }

    fn advert_interval(
        &mut self,
        value: Option<&str>,
        version: VrrpVersion,
        path: &str,
    ) -> Duration {
        let default = Duration::from_secs(1);
        let any = Duration::ZERO..=Duration::MAX;
        let interval = self.duration(value, path, default, any);
        match version {
            VrrpVersion::V3 => {
                // RFC 5798 section 5.2.7: centiseconds on the wire.
                if !interval.subsec_nanos().is_multiple_of(10_000_000) {
                    self.error(
                        path,
                        "VRRP version 3 counts in steps of 10ms (centiseconds)",
                    );
                    return default;
                }
                if !V3_INTERVAL.contains(&interval) {
                    self.error(path, "VRRP version 3 intervals are 10ms..=40.95s");
                    return default;
                }
            }
            VrrpVersion::V2 => {
                // RFC 3768 section 5.3.7: whole seconds on the wire.
                if interval.subsec_nanos() != 0
                    || !V2_INTERVAL_SECONDS.contains(&interval.as_secs())
                {
                    self.error(
                        path,
                        "VRRP version 2 intervals are whole seconds, 1s..=255s",
                    );
                    return default;
                }
            }
        }
        interval
    }

    fn auth_password(
        &mut self,
        value: Option<String>,
        version: VrrpVersion,
        path: &str,
    ) -> Option<String> {
        let password = value?;
        if version == VrrpVersion::V3 {
            // RFC 5798 section 9 removed authentication from VRRP.
            self.error(
                path,
                "VRRP version 3 has no authentication; remove it or use version: 2",
            );
            return None;
        }
        if password.is_empty() || password.len() > V2_PASSWORD_MAX {
            self.error(
                path,
                format!("a v2 password is 1 to {V2_PASSWORD_MAX} bytes"),
            );
        }
        Some(password)
    }

    fn vips(
        &mut self,
        raw: Vec<raw::Vip>,
        interface: &str,
        version: VrrpVersion,
        path: &str,
    ) -> Vec<Vip> {
        if raw.is_empty() {
            self.error(path, "an instance needs at least one VIP");
        }
        if raw.len() > MAX_VIPS {
            // The advert's Count IPvX Addr field is one byte (RFC 5798 section 5.2.5).
            self.error(
                path,
                format!(
                    "an instance holds at most {MAX_VIPS} VIPs, this one {}",
                    raw.len()
                ),
            );
        }
        let vips: Vec<Vip> = raw
            .into_iter()
            .enumerate()
            .filter_map(|(position, vip)| self.vip(vip, interface, &format!("{path}[{position}]")))
            .collect();
        if version == VrrpVersion::V2 {
            // RFC 3768 is IPv4 only, so a v2 instance cannot carry an IPv6 VIP.
            for (position, vip) in vips.iter().enumerate() {
                if vip.address.addr().is_ipv6() {
                    self.error(
                        &self.vip_address_path(path, position),
                        format!(
                            "{} is IPv6, but VRRP version 2 carries IPv4 only (RFC 3768): use version 3",
                            vip.address
                        ),
                    );
                }
            }
        }
        vips
    }

    /// The path of a VIP's address: `vips[1]` for the short form, `vips[1].address` for a map.
    fn vip_address_path(&self, vips_path: &str, position: usize) -> String {
        let detailed = format!("{vips_path}[{position}].address");
        if self.index.position(&detailed)
            == self.index.position(&format!("{vips_path}[{position}]"))
        {
            format!("{vips_path}[{position}]")
        } else {
            detailed
        }
    }

    fn vip(&mut self, raw: raw::Vip, instance_interface: &str, path: &str) -> Option<Vip> {
        let (address, interface, label, address_path) = match raw {
            raw::Vip::Plain(address) => (Some(address), None, None, path.to_owned()),
            raw::Vip::Detailed(detail) => (
                detail.address,
                detail.interface,
                detail.label,
                format!("{path}.address"),
            ),
        };
        let address = self.required(address, &address_path)?;
        let address = self.vip_address(&address, &address_path)?;
        let interface = match interface {
            Some(name) => {
                if !is_interface_name(&name) {
                    self.error(
                        &format!("{path}.interface"),
                        format!("`{}` is not an interface name", name.escape_debug()),
                    );
                }
                name
            }
            None => instance_interface.to_owned(),
        };
        if let Some(label) = &label {
            let label_path = format!("{path}.label");
            if address.addr().is_ipv6() {
                self.error(&label_path, "labels exist for IPv4 addresses only");
            } else if !label.starts_with(interface.as_str()) || label.len() > LABEL_MAX {
                // The kernel refuses a label that does not start with the device name.
                self.error(
                    &label_path,
                    format!("a label starts with the interface name `{interface}` and is at most {LABEL_MAX} bytes"),
                );
            }
        }
        Some(Vip {
            address,
            interface,
            label,
        })
    }

    fn vip_address(&mut self, text: &str, path: &str) -> Option<IpNet> {
        let address = self.address(addresses::ip_network(text), path)?;
        let ip = address.addr();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            self.error(path, format!("{ip} cannot be a virtual IP"));
            return None;
        }
        Some(address)
    }

    fn unicast(&mut self, raw: raw::Unicast, family_is_v6: Option<bool>, path: &str) -> Unicast {
        let family_name = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
        let check_family = |checker: &mut Self, ip: IpAddr, at: &str| {
            if let Some(v6) = family_is_v6
                && ip.is_ipv6() != v6
            {
                checker.error(
                    at,
                    format!(
                        "{ip} is {}, but the instance advertises {} (its first VIP)",
                        family_name(ip.is_ipv6()),
                        family_name(v6)
                    ),
                );
            }
        };
        let source = raw.source.and_then(|source| {
            let at = format!("{path}.source");
            let ip = self.address(addresses::ip_address(&source), &at)?;
            check_family(self, ip, &at);
            Some(ip)
        });
        if raw.peers.is_empty() {
            self.error(&format!("{path}.peers"), "unicast needs at least one peer");
        }
        let mut peers: Vec<IpAddr> = Vec::new();
        for (position, peer) in raw.peers.iter().enumerate() {
            let at = format!("{path}.peers[{position}]");
            let Some(ip) = self.address(addresses::ip_address(peer), &at) else {
                continue;
            };
            check_family(self, ip, &at);
            if ip.is_unspecified() || ip.is_multicast() {
                self.error(&at, format!("{ip} cannot be a unicast peer"));
            } else if Some(ip) == source {
                self.error(&at, format!("{ip} is this node's own source address"));
            } else if peers.contains(&ip) {
                self.error(&at, format!("{ip} is listed twice"));
            } else {
                peers.push(ip);
            }
        }
        Unicast { source, peers }
    }

    /// The `track` list of an instance or announce group at `path`.
    pub(super) fn trackers(
        &mut self,
        raw: Vec<raw::Track>,
        priority: u8,
        config: &Config,
        path: &str,
    ) -> Vec<Tracker> {
        raw.into_iter()
            .enumerate()
            .filter_map(|(position, tracker)| {
                self.tracker(
                    tracker,
                    priority,
                    config,
                    &format!("{path}.track[{position}]"),
                )
            })
            .collect()
    }

    fn tracker(
        &mut self,
        raw: raw::Track,
        priority: u8,
        config: &Config,
        path: &str,
    ) -> Option<Tracker> {
        let kinds = [
            ("frontend", raw.frontend.is_some()),
            ("script", raw.script.is_some()),
            ("interface", raw.interface.is_some()),
            ("file", raw.file.is_some()),
        ];
        let given: Vec<&str> = kinds
            .iter()
            .filter(|(_, set)| *set)
            .map(|(kind, _)| *kind)
            .collect();
        if given.len() != 1 {
            self.error(
                path,
                format!(
                    "a tracker names exactly one of frontend, script, interface, file; this one has {}",
                    if given.is_empty() { "none".to_owned() } else { given.join(" and ") }
                ),
            );
            return None;
        }
        let weight = self.integer(raw.weight, &format!("{path}.weight"), -254..=254, 0i16);
        if priority == 255 && weight != 0 {
            // docs/design/vrrp.md, Tracking: an address owner's priority is fixed at 255; only Fault can stop it.
            self.error(
                &format!("{path}.weight"),
                "priority 255 (address owner) takes only weight-0 trackers",
            );
        }
        if raw.min_up.is_some() && raw.frontend.is_none() {
            self.error(
                &format!("{path}.min_up"),
                "min_up applies to frontend trackers only",
            );
        }
        let target = if let Some(name) = raw.frontend {
            if config.frontend(&name).is_none() {
                self.error(
                    &format!("{path}.frontend"),
                    format!("no frontend is named `{name}`"),
                );
            }
            let min_up = self.integer(raw.min_up, &format!("{path}.min_up"), 1..=100_000, 1u32);
            self.reachable_min_up(config, &name, min_up, &format!("{path}.min_up"));
            TrackTarget::Frontend { name, min_up }
        } else if let Some(name) = raw.script {
            if !config.scripts.contains_key(&name) {
                self.error(
                    &format!("{path}.script"),
                    format!("no script is named `{name}` in `scripts`"),
                );
            }
            TrackTarget::Script { name }
        } else if let Some(name) = raw.interface {
            if !is_interface_name(&name) {
                self.error(
                    &format!("{path}.interface"),
                    format!("`{}` is not an interface name", name.escape_debug()),
                );
            }
            TrackTarget::Interface { name }
        } else {
            let file = raw.file.unwrap_or_default();
            TrackTarget::File {
                path: self.absolute_path(&file, &format!("{path}.file")),
            }
        };
        Some(Tracker { target, weight })
    }

    /// A `min_up` above the backend's server count would keep the tracker failed for ever.
    fn reachable_min_up(&mut self, config: &Config, frontend: &str, min_up: u32, path: &str) {
        let Some(backend) = config
            .frontend(frontend)
            .and_then(|frontend| config.backend(&frontend.backend))
        else {
            return;
        };
        let servers = backend.servers.len();
        if usize::try_from(min_up).is_ok_and(|min_up| min_up > servers) {
            self.error(
                path,
                format!(
                    "min_up {min_up} can never be met: backend `{}` has {servers} server(s)",
                    backend.name
                ),
            );
        }
    }

    fn notify(&mut self, raw: raw::Notify, path: &str) -> Notify {
        let hook = |checker: &mut Self, argv: Option<Vec<String>>, field: &str| {
            argv.and_then(|argv| checker.command(argv, &format!("{path}.{field}")))
        };
        Notify {
            master: hook(self, raw.master, "master"),
            backup: hook(self, raw.backup, "backup"),
            fault: hook(self, raw.fault, "fault"),
            state: hook(self, raw.state, "state"),
            timeout: self.duration(
                raw.timeout.as_deref(),
                &format!("{path}.timeout"),
                Notify::default().timeout,
                Duration::from_millis(1)..=Duration::from_secs(3600),
            ),
        }
    }

    fn garp(&mut self, raw: &raw::Garp, path: &str) -> Garp {
        let defaults = Garp::default();
        let refresh = self.duration(
            raw.refresh.as_deref(),
            &format!("{path}.refresh"),
            Duration::ZERO,
            Duration::ZERO..=Duration::from_secs(86_400),
        );
        Garp {
            repeat: self.integer(
                raw.repeat,
                &format!("{path}.repeat"),
                1..=100,
                defaults.repeat,
            ),
            delay: self.duration(
                raw.delay.as_deref(),
                &format!("{path}.delay"),
                defaults.delay,
                Duration::ZERO..=Duration::from_secs(3600),
            ),
            refresh: (!refresh.is_zero()).then_some(refresh),
        }
    }

    /// Two instances with one VRID on one interface would answer each other's adverts. IPv4 and
    /// IPv6 instances have separate VRID spaces (RFC 5798 section 5.2.3), so the family counts.
    fn repeated_vrids(&mut self, instances: &[VrrpInstance]) {
        let mut seen: HashMap<(&str, u8, bool), usize> = HashMap::new();
        for (position, instance) in instances.iter().enumerate() {
            if instance.interface.is_empty() || instance.vips.is_empty() {
                continue;
            }
            let key = (
                instance.interface.as_str(),
                instance.vrid,
                instance.is_ipv6(),
            );
            if let Some(&first) = seen.get(&key) {
                let line = self.line_of(&format!("vrrp[{first}].vrid"));
                self.error(
                    &format!("vrrp[{position}].vrid"),
                    format!(
                        "VRID {} is already used on {} by instance `{}` (line {line})",
                        instance.vrid, instance.interface, instances[first].name
                    ),
                );
            } else {
                seen.insert(key, position);
            }
        }
    }

    /// Two instances on one macvlan would create, fill and delete it under each other; a macvlan
    /// named like another instance's interface would be that interface.
    fn shared_virtual_mac_interfaces(&mut self, instances: &[VrrpInstance]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (position, instance) in instances.iter().enumerate() {
            let Some(virtual_mac) = &instance.virtual_mac else {
                continue;
            };
            let name = virtual_mac.interface.as_str();
            let path = if name == VirtualMac::default_interface(instance.vrid) {
                format!("vrrp[{position}].virtual_mac")
            } else {
                format!("vrrp[{position}].virtual_mac_interface")
            };
            if let Some(&first) = seen.get(name) {
                let line = self.line_of(&format!("vrrp[{first}].virtual_mac"));
                self.error(
                    &path,
                    format!(
                        "`{name}` is already the virtual MAC interface of instance `{}` (line {line}); \
                         set `virtual_mac_interface` to a name of its own",
                        instances[first].name
                    ),
                );
            } else {
                seen.insert(name, position);
            }
            if let Some((other, owner)) = instances
                .iter()
                .enumerate()
                .find(|(_, other)| other.interface == name)
            {
                let line = self.line_of(&format!("vrrp[{other}].interface"));
                self.error(
                    &path,
                    format!(
                        "`{name}` is the interface of instance `{}` (line {line}); the virtual MAC \
                         interface needs a name of its own",
                        owner.name
                    ),
                );
            }
        }
    }

    /// One address in two places would be added and removed by two state machines.
    fn repeated_vips(&mut self, instances: &[VrrpInstance]) {
        let mut seen: HashMap<IpAddr, String> = HashMap::new();
        for (position, instance) in instances.iter().enumerate() {
            let vips_path = format!("vrrp[{position}].vips");
            for (vip_position, vip) in instance.vips.iter().enumerate() {
                let path = self.vip_address_path(&vips_path, vip_position);
                if let Some(first) = seen.get(&vip.address.addr()) {
                    let line = self.line_of(first);
                    self.error(
                        &path,
                        format!("{} is already a VIP at line {line}", vip.address.addr()),
                    );
                } else {
                    seen.insert(vip.address.addr(), path);
                }
            }
        }
    }

    /// Warns about each negative weight that cannot bring this node below the peer's priority:
    /// the tracker fails and the VIP stays (docs/design/vrrp.md, Pitfalls: "weight < priority gap").
    fn weights_below_peer(&mut self, instance: &VrrpInstance, path: &str) {
        let Some(peer) = instance.peer_priority else {
            return;
        };
        if peer == instance.priority {
            self.warn(
                &format!("{path}.peer_priority"),
                format!(
                    "equal to this node's priority {peer}: the node with the higher primary address \
                     wins, which no field of this file shows; give the preferred master a higher priority"
                ),
            );
        }
        if instance.is_address_owner() || instance.priority <= peer {
            return;
        }
        // With every other tracker good, positive weights are added: the highest this node
        // advertises, clamped to 254 for a non-owner (docs/design/vrrp.md, Tracking).
        let bonus: i32 = instance
            .track
            .iter()
            .map(|tracker| i32::from(tracker.weight.max(0)))
            .sum();
        let highest = (i32::from(instance.priority) + bonus).clamp(1, 254);
        for (position, tracker) in instance.track.iter().enumerate() {
            if tracker.weight >= 0 {
                continue;
            }
            let lowered = (highest + i32::from(tracker.weight)).max(1);
            if lowered >= i32::from(peer) {
                self.warn(
                    &format!("{path}.track[{position}].weight"),
                    format!(
                        "weight {} lowers priority {highest} to {lowered}, not below peer_priority {peer}: \
                         this tracker failing alone does not move the VIP (a weight of {} or lower would)",
                        tracker.weight,
                        i32::from(peer) - highest - 1
                    ),
                );
            }
        }
    }
}
