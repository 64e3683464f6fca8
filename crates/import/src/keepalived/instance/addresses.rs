//! The instance's addresses: `virtual_ipaddress`, `virtual_ipaddress_excluded`, `native_ipv6`
//! and `use_vmac`, then the checks that need them all (one family advertised, what a VRRP v2
//! instance carries, which interface and label each VIP lands on).

use ipnet::IpNet;
use std::net::IpAddr;

use super::Directives;
use crate::draft::Vip;
use crate::keepalived::syntax::Statement;
use crate::{ImportWarning, Location, is_interface_name, warn};

/// A `virtual_ipaddress` block: one VIP per line.
pub(super) fn virtual_ipaddress(
    directive: &Statement,
    vips: &mut Vec<Vip>,
    warnings: &mut Vec<ImportWarning>,
) {
    for child in directive.children() {
        if let Some(vip) = vip(child, warnings) {
            vips.push(vip);
        }
    }
}

/// A `virtual_ipaddress_excluded` block: VIPs kept with their line until the version is known.
pub(super) fn virtual_ipaddress_excluded(
    directive: &Statement,
    excluded: &mut Vec<(Vip, Location)>,
    warnings: &mut Vec<ImportWarning>,
) {
    for child in directive.children() {
        if let Some(vip) = vip(child, warnings) {
            excluded.push((vip, child.at.clone()));
        }
    }
}

/// `use_vmac [NAME]`: the VIPs move on a macvlan with the virtual MAC.
pub(super) fn use_vmac(
    block: &mut Directives,
    name: Option<&str>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    block.virtual_mac = true;
    if let Some(name) = name {
        if is_interface_name(name) {
            block.virtual_mac_interface = Some(name.to_owned());
        } else {
            warn(
                warnings,
                at,
                format!(
                    "use_vmac `{name}` is not an interface name: vipd's default vrrp.{{vrid}} is used"
                ),
            );
        }
    }
}

/// Orders and deduplicates the VIPs; whether the instance is IPv6 (its first VIP's family),
/// or `None` (with a warning) when it has no usable VIP.
pub(super) fn primary_family(
    block: &mut Directives,
    source_name: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<bool> {
    let vips = &mut block.vips;
    if block.native_ipv6 {
        // The family vipd advertises is the first VIP's: put the IPv6 ones first.
        vips.sort_by_key(|vip| !vip.address.addr().is_ipv6());
    }
    dedup_vips(vips);
    let Some(first) = vips.first() else {
        warn(
            warnings,
            at,
            format!("vrrp_instance {source_name} has no usable virtual_ipaddress: skipped"),
        );
        return None;
    };
    let ipv6 = first.address.addr().is_ipv6();
    if vips.iter().any(|vip| vip.address.addr().is_ipv6() != ipv6) {
        warn(
            warnings,
            at,
            "virtual_ipaddress mixes IPv4 and IPv6: vipd advertises the first VIP's family and \
             moves the others with it unadvertised (keepalived puts them in separate adverts)",
        );
    }
    Some(ipv6)
}

/// vipd's VRRP v2 carries IPv4 only: the IPv6 VIPs of a v2 instance are dropped.
pub(super) fn keep_what_v2_carries(
    vips: &mut Vec<Vip>,
    version: u8,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    if version == 2 && vips.iter().any(|vip| vip.address.addr().is_ipv6()) {
        warn(
            warnings,
            at,
            "IPv6 virtual_ipaddress in a VRRP v2 instance: vipd's v2 carries IPv4 only (use version 3 on both nodes, or another instance): the IPv6 addresses are skipped",
        );
        vips.retain(|vip| vip.address.addr().is_ipv4());
    }
}

/// The excluded VIPs join the others: vipd has no unadvertised addresses of the advertised
/// family. At most 255 VIPs in all (the advert's count field).
pub(super) fn add_excluded(
    vips: &mut Vec<Vip>,
    excluded: Vec<(Vip, Location)>,
    version: u8,
    ipv6: bool,
    warnings: &mut Vec<ImportWarning>,
) {
    for (vip, at) in excluded {
        if version == 2 && vip.address.addr().is_ipv6() {
            warn(
                warnings,
                &at,
                format!(
                    "virtual_ipaddress_excluded {}: a VRRP v2 instance of vipd carries IPv4 only (use version 3 on both nodes, or another instance): skipped",
                    vip.address
                ),
            );
            continue;
        }
        if vip.address.addr().is_ipv6() == ipv6 {
            warn(
                warnings,
                &at,
                format!(
                    "virtual_ipaddress_excluded {}: vipd advertises every VIP of the instance's family; it is moved with the instance and listed in adverts",
                    vip.address
                ),
            );
        }
        vips.push(vip);
    }
    dedup_vips(vips);
    vips.truncate(255);
}

/// Where each VIP lands: an IPv6 VIP of an IPv4 instance stays off the macvlan (which carries
/// IPv4 only), and a label must name that interface and fit the kernel's 15 bytes.
pub(super) fn place(
    vips: &mut [Vip],
    macvlan: Option<&String>,
    interface: &str,
    ipv6: bool,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    for vip in vips {
        let ipv4 = vip.address.addr().is_ipv4();
        if let (Some(macvlan), false, None) = (macvlan, ipv4, &vip.interface)
            && !ipv6
        {
            // vipd's IPv4 macvlan carries IPv4 only.
            warn(
                warnings,
                at,
                format!(
                    "{} would land on the IPv4 macvlan {macvlan}, which carries IPv4 only: written with `interface: {interface}`",
                    vip.address
                ),
            );
            vip.interface = Some(interface.to_owned());
        }
        let on = vip
            .interface
            .as_deref()
            .or(macvlan.map(String::as_str))
            .unwrap_or(interface);
        if let Some(label) = &vip.label
            && (!label.starts_with(on) || label.len() > 15)
        {
            warn(
                warnings,
                at,
                format!(
                    "label `{label}` of {} does not start with `{on}` or is over 15 bytes (the kernel refuses it): skipped",
                    vip.address
                ),
            );
            vip.label = None;
        }
    }
}

/// A `virtual_ipaddress` line: `ADDR[/LEN] [dev IF] [label L] [brd B] [scope S] ...`.
pub(super) fn vip(line: &Statement, warnings: &mut Vec<ImportWarning>) -> Option<Vip> {
    let at = &line.at;
    let address_text = line.keyword();
    // keepalived's default prefix is the host prefix.
    let parsed = address_text
        .parse::<IpNet>()
        .ok()
        .or_else(|| address_text.parse::<IpAddr>().ok().map(IpNet::from));
    let Some(address) = parsed else {
        warn(
            warnings,
            at,
            format!(
                "virtual_ipaddress `{address_text}` is not an address (ranges are not supported): skipped"
            ),
        );
        return None;
    };
    let ip = address.addr();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        warn(
            warnings,
            at,
            format!("virtual_ipaddress {ip} cannot be a virtual IP in vipd: skipped"),
        );
        return None;
    }
    let mut vip = Vip {
        address,
        interface: None,
        label: None,
    };
    let mut args = line.args().iter();
    while let Some(option) = args.next() {
        let value = args.next();
        match (option.as_str(), value) {
            ("dev", Some(name)) if is_interface_name(name) => vip.interface = Some(name.clone()),
            ("label", Some(label)) if address.addr().is_ipv4() => vip.label = Some(label.clone()),
            ("brd" | "broadcast", Some(_)) => {}
            ("scope", Some(scope)) if scope == "global" => {}
            (option, _) => {
                warn(
                    warnings,
                    at,
                    format!("virtual_ipaddress option `{option}` has no vipd equivalent: skipped"),
                );
            }
        }
    }
    Some(vip)
}

/// The same address twice would be an error in vipd; keepalived just adds it once.
pub(super) fn dedup_vips(vips: &mut Vec<Vip>) {
    let mut seen = Vec::new();
    vips.retain(|vip| {
        let fresh = !seen.contains(&vip.address.addr());
        seen.push(vip.address.addr());
        fresh
    });
}
