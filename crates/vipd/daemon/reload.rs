//! What a reload does to a running VRRP instance whose entry changed: apply the change in place
//! (the state is kept: a master stays master, holds its VIPs and keeps advertising) or restart
//! it as a new virtual router (a master hands over with priority 0 first). keepalived keeps the
//! running state of every instance its reload matches; vipd restarts only for what redefines
//! the virtual router (docs/design/vrrp.md, Reload).

use std::fmt;

use vipd_config::{Unicast, VrrpInstance, VrrpVersion};

/// How a reload applies a changed `vrrp` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEffect {
    /// Nothing changed.
    Unchanged,
    /// Applied to the running instance; the fields that changed, in file order.
    InPlace(Vec<&'static str>),
    /// The instance is stopped and started again; why, one reason per field.
    Restart(Vec<String>),
}

impl fmt::Display for ReloadEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unchanged => write!(f, "unchanged"),
            Self::InPlace(fields) => write!(f, "changed in place ({})", fields.join(", ")),
            Self::Restart(reasons) => write!(
                f,
                "restarts, a master hands over to its peer first ({})",
                reasons.join("; ")
            ),
        }
    }
}

/// Classifies the change from `old` to `new` (the same instance name). Every field of
/// `VrrpInstance` is named here, so a new field cannot be added without deciding its effect.
pub fn reload_effect(old: &VrrpInstance, new: &VrrpInstance) -> ReloadEffect {
    if old == new {
        return ReloadEffect::Unchanged;
    }
    let VrrpInstance {
        name: _,
        interface,
        vrid,
        priority,
        version,
        advert_interval,
        preempt,
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
    } = new;
    let mut restart = Vec::new();
    let mut in_place = Vec::new();
    if *interface != old.interface {
        restart.push(format!(
            "interface {} → {}: another link",
            old.interface, interface
        ));
    }
    if *vrid != old.vrid {
        restart.push(format!(
            "vrid {} → {vrid}: another virtual router",
            old.vrid
        ));
    }
    if *version != old.version {
        restart.push(format!(
            "version {} → {}: another protocol",
            version_number(old.version),
            version_number(*version)
        ));
    }
    if new.is_ipv6() != old.is_ipv6() {
        restart.push(
            "the first VIP's family changed: the instance advertises over the other family"
                .to_owned(),
        );
    }
    if *auth_password != old.auth_password {
        restart.push("auth_password: adverts under the new one are another group's".to_owned());
    }
    if *virtual_mac != old.virtual_mac {
        restart.push("virtual_mac: the VIPs and adverts move to another interface".to_owned());
    }
    restart.extend(vip_interfaces_restart(&old.vips, vips));
    if let Some(reason) = unicast_restart(old.unicast.as_ref(), unicast.as_ref()) {
        restart.push(reason);
    }
    if *priority != old.priority {
        if old.is_address_owner() == new.is_address_owner() {
            in_place.push("priority");
        } else {
            restart.push(format!(
                "priority {} → {priority}: the address owner (255) starts as master, others wait",
                old.priority
            ));
        }
    }
    let in_place_fields: [(&'static str, bool); 10] = [
        ("advert_interval", *advert_interval != old.advert_interval),
        ("preempt", *preempt != old.preempt),
        ("preempt_delay", *preempt_delay != old.preempt_delay),
        ("checksum", *checksum != old.checksum),
        ("peer_priority", *peer_priority != old.peer_priority),
        ("vips", *vips != old.vips && new.is_ipv6() == old.is_ipv6()),
        ("track", *track != old.track),
        ("notify", *notify != old.notify),
        ("garp", *garp != old.garp),
        (
            "unicast.peers",
            unicast.as_ref().map(|unicast| &unicast.peers)
                != old.unicast.as_ref().map(|unicast| &unicast.peers)
                && unicast.is_some() == old.unicast.is_some(),
        ),
    ];
    in_place.extend(
        in_place_fields
            .into_iter()
            .filter_map(|(field, changed)| changed.then_some(field)),
    );
    if restart.is_empty() {
        ReloadEffect::InPlace(in_place)
    } else {
        ReloadEffect::Restart(restart)
    }
}

/// The interfaces the VIPs live on are set at start: one announcer and one address watch each
/// (docs/design/vrrp.md, Announcements).
fn vip_interfaces_restart(old: &[vipd_config::Vip], new: &[vipd_config::Vip]) -> Option<String> {
    let interfaces = |vips: &[vipd_config::Vip]| -> std::collections::BTreeSet<String> {
        vips.iter().map(|vip| vip.interface.clone()).collect()
    };
    (interfaces(old) != interfaces(new))
        .then(|| "the interfaces the VIPs live on changed: each has its own announcer".to_owned())
}

/// Multicast and unicast, or two unicast sources, are different sockets and different peers'
/// views of who we are (keepalived matches neither across a reload either).
fn unicast_restart(old: Option<&Unicast>, new: Option<&Unicast>) -> Option<String> {
    match (old, new) {
        (None, Some(_)) => Some("multicast → unicast".to_owned()),
        (Some(_), None) => Some("unicast → multicast".to_owned()),
        (Some(old), Some(new)) if old.source != new.source => Some(format!(
            "unicast.source {} → {}: the peers know us by it",
            describe_source(old.source),
            describe_source(new.source)
        )),
        (None, None) | (Some(_), Some(_)) => None,
    }
}

fn describe_source(source: Option<std::net::IpAddr>) -> String {
    source.map_or_else(
        || "the interface's".to_owned(),
        |address| address.to_string(),
    )
}

fn version_number(version: VrrpVersion) -> u8 {
    match version {
        VrrpVersion::V2 => 2,
        VrrpVersion::V3 => 3,
    }
}

#[cfg(test)]
mod tests;
