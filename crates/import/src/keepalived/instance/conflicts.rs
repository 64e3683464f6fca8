//! Instances side by side: what one vipd.yaml cannot hold twice (a VRID on an interface, a
//! VIP, a macvlan).

use crate::draft::Instance;
use crate::{ImportWarning, warn};

/// Whether `instance` can join `others` in one vipd.yaml: a VRID once per interface and family
/// (RFC 5798 section 5.2.3 gives each family its own VRID space), a VIP in one instance only,
/// one macvlan per instance. VIPs held elsewhere are dropped; a repeated VRID drops the instance.
pub(crate) fn fits_beside(
    instance: &mut Instance,
    others: &[Instance],
    warnings: &mut Vec<ImportWarning>,
) -> bool {
    let at = instance.from.clone();
    let family = |i: &Instance| {
        i.vips
            .first()
            .is_some_and(|vip| vip.address.addr().is_ipv6())
    };
    if let Some(other) = others.iter().find(|other| {
        other.vrid == instance.vrid
            && other.interface == instance.interface
            && family(other) == family(instance)
    }) {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {}: virtual_router_id {} on {} is already instance {}'s: skipped",
                instance.name, instance.vrid, instance.interface, other.name
            ),
        );
        return false;
    }
    let macvlan = |i: &Instance| {
        i.virtual_mac.then(|| {
            i.virtual_mac_interface
                .clone()
                .unwrap_or_else(|| format!("vrrp.{}", i.vrid))
        })
    };
    if let Some(name) = macvlan(instance)
        && others
            .iter()
            .any(|other| macvlan(other).as_ref() == Some(&name) || other.interface == name)
    {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {}: use_vmac's interface {name} is already used by another instance: the virtual MAC is skipped",
                instance.name
            ),
        );
        instance.virtual_mac = false;
        instance.virtual_mac_interface = None;
    }
    instance.vips.retain(|vip| {
        let held = others
            .iter()
            .any(|other| other.vips.iter().any(|o| o.address.addr() == vip.address.addr()));
        if held {
            warn(warnings, &at, format!("{} is already a VIP of another instance (vipd moves an address with one instance): skipped here", vip.address));
        }
        !held
    });
    if instance.vips.is_empty() {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {} has no VIP of its own left: skipped",
                instance.name
            ),
        );
        return false;
    }
    true
}
