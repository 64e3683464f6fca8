//! `vrrp_instance`: its directives are read family by family into [`Directives`], then the
//! checks that need the whole block run in order (the VIPs' family decides the version, the
//! version what the instance carries, and so on) before it becomes a vipd instance.

mod addresses;
mod authentication;
mod conflicts;
mod election;
mod notify;
mod timers;
mod unicast;

use std::net::IpAddr;
use std::time::Duration;

pub(super) use conflicts::fits_beside;

use super::syntax::Statement;
use super::track::{owner_weights, resolve_track_scripts, track_file, track_interface};
use super::values::{count, seconds};
use super::{Context, Globals, Scripts, unsupported};
use crate::draft::{Draft, Garp, Instance, Notify, Tracker, Vip};
use crate::{ImportWarning, Location, is_interface_name, unique_name, vipd_name, warn};

/// The keywords a `vrrp_instance` translates; any other one has no vipd equivalent.
const VRRP_INSTANCE: &[&str] = &[
    "interface",
    "virtual_router_id",
    "priority",
    "version",
    "advert_int",
    "state",
    "preempt_delay",
    "unicast_src_ip",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify",
    "garp_master_repeat",
    "garp_master_delay",
    "garp_master_refresh",
];

/// What the block's directives say, before the checks that need all of them.
struct Directives<'a> {
    /// Comment lines written above the instance.
    notes: Vec<String>,
    interface: Option<String>,
    vrid: Option<u8>,
    priority: u8,
    version: Option<u8>,
    advert_interval: Option<Duration>,
    preempt: Option<bool>,
    preempt_delay: Option<Duration>,
    auth_password: Option<String>,
    /// `state`: whether it says MASTER, and where.
    state_master: Option<(bool, Location)>,
    unicast_source: Option<IpAddr>,
    unicast_peers: Vec<IpAddr>,
    virtual_mac: bool,
    virtual_mac_interface: Option<String>,
    vips: Vec<Vip>,
    excluded: Vec<(Vip, Location)>,
    track: Vec<Tracker>,
    /// `track_script` blocks with their position among `track`, resolved once the VIPs are
    /// known: a HAProxy check maps to the frontends on them.
    track_scripts: Vec<(&'a Statement, usize)>,
    notify: Notify,
    garp: Garp,
    native_ipv6: bool,
}

impl<'a> Directives<'a> {
    /// keepalived's defaults, and those global_defs changed.
    fn new(globals: &Globals) -> Self {
        Self {
            notes: Vec::new(),
            interface: None,
            vrid: None,
            priority: 100,
            version: globals.version.as_ref().map(|(version, _)| *version),
            advert_interval: None,
            preempt: None,
            preempt_delay: None,
            auth_password: None,
            state_master: None,
            unicast_source: None,
            unicast_peers: Vec::new(),
            virtual_mac: false,
            virtual_mac_interface: None,
            vips: Vec::new(),
            excluded: Vec::new(),
            track: Vec::new(),
            track_scripts: Vec::new(),
            notify: Notify::default(),
            garp: globals.garp.clone(),
            native_ipv6: false,
        }
    }

    /// One directive of the block, handed to its family.
    fn read(
        &mut self,
        directive: &'a Statement,
        context: &Context,
        warnings: &mut Vec<ImportWarning>,
    ) {
        let at = &directive.at;
        let args = directive.args();
        let value = args.first().map(String::as_str);
        match (directive.keyword(), value) {
            ("interface", Some(name)) if is_interface_name(name) => {
                self.interface = Some(name.to_owned());
            }
            ("virtual_router_id", Some(value)) => {
                self.vrid = election::virtual_router_id(value, at, warnings).or(self.vrid);
            }
            ("priority", Some(value)) => {
                self.priority = election::priority(value, at, warnings).unwrap_or(self.priority);
            }
            ("version", Some("2")) => self.version = Some(2),
            ("version", Some("3")) => self.version = Some(3),
            ("advert_int", Some(value)) => self.advert_interval = seconds(value, at, warnings),
            ("state", Some(state)) => election::state(self, state, at),
            ("nopreempt", _) => self.preempt = Some(false),
            ("preempt", _) => self.preempt = Some(true),
            ("preempt_delay", Some(value)) => {
                self.preempt_delay = election::preempt_delay(value, at, warnings);
            }
            ("authentication", _) => {
                self.auth_password = authentication::authentication(directive, warnings);
            }
            ("unicast_src_ip", Some(value)) => {
                self.unicast_source = unicast::source(value, at, warnings).or(self.unicast_source);
            }
            ("unicast_peer", _) => {
                unicast::unicast_peer(directive, &mut self.unicast_peers, warnings);
            }
            ("use_vmac", name) => addresses::use_vmac(self, name, at, warnings),
            ("vmac_xmit_base", _) => warn(
                warnings,
                at,
                "vmac_xmit_base: vipd always sends adverts from the macvlan (the virtual MAC): \
                 skipped",
            ),
            ("native_ipv6", _) => self.native_ipv6 = true,
            ("virtual_ipaddress", _) => {
                addresses::virtual_ipaddress(directive, &mut self.vips, warnings);
            }
            ("virtual_ipaddress_excluded", _) => {
                addresses::virtual_ipaddress_excluded(directive, &mut self.excluded, warnings);
            }
            ("track_script", _) => self.track_scripts.push((directive, self.track.len())),
            ("track_interface", _) => track_interface(directive, &mut self.track, warnings),
            ("track_file", _) => track_file(directive, context, &mut self.track, warnings),
            (
                keyword @ ("notify_master" | "notify_backup" | "notify_fault" | "notify"),
                Some(_),
            ) => notify::hook(keyword, args, at, &mut self.notify, warnings),
            ("notify_stop", _) => notify::notify_stop(at, warnings),
            ("garp_master_repeat", Some(value)) => self.garp.repeat = count(value, at, warnings),
            ("garp_master_delay", Some(value)) => self.garp.delay = seconds(value, at, warnings),
            ("garp_master_refresh", Some(value)) => {
                self.garp.refresh = seconds(value, at, warnings);
            }
            _ => unsupported(directive, "vrrp_instance", VRRP_INSTANCE, warnings),
        }
    }
}

pub(super) fn vrrp_instance(
    statement: &Statement,
    context: &Context,
    scripts: &mut Scripts,
    draft: &Draft,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Instance> {
    let at = &statement.at;
    let Some(source_name) = statement.args().first() else {
        warn(warnings, at, "vrrp_instance without a name: skipped");
        return None;
    };
    let name = vipd_name(source_name, at, "vrrp_instance", warnings);
    let taken: Vec<&str> = draft.instances.iter().map(|i| i.name.as_str()).collect();
    let name = unique_name(name, &taken);
    let mut block = Directives::new(context.globals);
    for directive in statement.children() {
        block.read(directive, context, warnings);
    }
    let Some(interface) = block.interface.take() else {
        let message = format!("vrrp_instance {source_name} has no valid `interface`: skipped");
        warn(warnings, at, message);
        return None;
    };
    let Some(vrid) = block.vrid else {
        let message =
            format!("vrrp_instance {source_name} has no valid `virtual_router_id`: skipped");
        warn(warnings, at, message);
        return None;
    };
    let track_scripts = std::mem::take(&mut block.track_scripts);
    resolve_track_scripts(
        track_scripts,
        &mut block.track,
        scripts,
        draft,
        &block.vips,
        warnings,
    );
    let ipv6 = addresses::primary_family(&mut block, source_name, at, warnings)?;
    let version = version(&mut block, ipv6, at, warnings);
    addresses::keep_what_v2_carries(&mut block.vips, version, at, warnings);
    let excluded = std::mem::take(&mut block.excluded);
    addresses::add_excluded(&mut block.vips, excluded, version, ipv6, warnings);
    let macvlan = block.virtual_mac.then(|| {
        block
            .virtual_mac_interface
            .clone()
            .unwrap_or_else(|| format!("vrrp.{vrid}"))
    });
    addresses::place(
        &mut block.vips,
        macvlan.as_ref(),
        &interface,
        ipv6,
        at,
        warnings,
    );
    let advert_interval = timers::fit_advert_interval(block.advert_interval, version, at, warnings);
    authentication::drop_for_v3(&mut block.auth_password, version, at, warnings);
    election::warn_nopreempt_master(block.preempt, block.state_master.as_ref(), warnings);
    unicast::keep_family(
        &mut block.unicast_peers,
        &mut block.unicast_source,
        ipv6,
        at,
        warnings,
    );
    timers::clamp_garp(&mut block.garp);
    owner_weights(block.priority, &mut block.track, at, warnings);
    Some(Instance {
        from: at.clone(),
        notes: block.notes,
        name,
        interface,
        vrid,
        priority: block.priority,
        version,
        advert_interval,
        preempt: block.preempt,
        preempt_delay: block.preempt_delay,
        auth_password: block.auth_password,
        unicast_source: block
            .unicast_source
            .filter(|_| !block.unicast_peers.is_empty()),
        unicast_peers: block.unicast_peers,
        virtual_mac: block.virtual_mac,
        virtual_mac_interface: block.virtual_mac_interface,
        vips: block.vips,
        track: block.track,
        notify: block.notify,
        garp: block.garp,
    })
}

/// The instance's VRRP version: as written (or in global_defs), else keepalived's default (v2
/// for IPv4, v3 for IPv6); an IPv6 instance cannot be v2.
fn version(
    block: &mut Directives,
    ipv6: bool,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> u8 {
    match (block.version, ipv6) {
        (Some(2), true) => {
            warn(
                warnings,
                at,
                "VRRP v2 carries IPv4 only: an IPv6 instance is written as version 3",
            );
            3
        }
        (Some(version), _) => version,
        // keepalived itself uses v3 for IPv6 instances.
        (None, true) => 3,
        (None, false) => {
            block.notes.push(
                "version 2: keepalived's default (no vrrp_version / version written).".to_owned(),
            );
            2
        }
    }
}
