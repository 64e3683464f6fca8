//! keepalived (the Debian package, 2.2.7) as a lab node next to vipd: one set of VRRP settings
//! rendered as a vipd file and as a keepalived file, so both implementations run the same virtual
//! router. The launcher itself (start, stop, kill, rejected packets) is `vipd_lab::keepalived`,
//! shared with vipd-net's tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use vipd_lab::Lab;
use vipd_lab::keepalived::Keepalived;

use super::Scratch;

/// The virtual router both members run, whichever implementation each one is.
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    pub vrid: u8,
    /// 2 (RFC 3768) or 3 (RFC 5798).
    pub version: u8,
    /// v2: whole seconds; v3: a multiple of 10 ms.
    pub advert_interval: Duration,
    pub vip: Ipv4Addr,
    /// Adverts to the peer's address instead of 224.0.0.18.
    pub unicast: bool,
    /// IPv6 (v3, multicast) instead of `vip`: the VIPs are [`LINK_LOCAL_VIP`] first, as RFC 9568
    /// 5.2.9 asks of an IPv6 virtual router's address list, then `Lab::vip_v6(0)`.
    pub ipv6: bool,
}

/// The virtual router's IPv6 link-local address, first in its IPv6 address list.
pub const LINK_LOCAL_VIP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, 51);

impl RouterSettings {
    /// Skew_Time = (256 − priority) × interval / 256 (RFC 5798 section 6.1; RFC 3768 is the same
    /// with a 1 s interval).
    pub fn skew(&self, priority: u8) -> Duration {
        super::takeover_probe::skew_time(priority, self.advert_interval)
    }

    /// Master_Down_Interval = 3 × interval + Skew_Time.
    pub fn master_down_interval(&self, priority: u8) -> Duration {
        super::takeover_probe::master_down_interval(priority, self.advert_interval)
    }

    /// The VIP a client reaches: `vip`, or the global IPv6 VIP.
    pub fn vip_address(&self) -> IpAddr {
        if self.ipv6 {
            IpAddr::V6(Lab::vip_v6(0))
        } else {
            IpAddr::V4(self.vip)
        }
    }

    /// The VIPs with their prefixes, in the order both files list them.
    fn vips(&self) -> Vec<String> {
        if self.ipv6 {
            vec![
                format!("{LINK_LOCAL_VIP}/64"),
                format!("{}/64", Lab::vip_v6(0)),
            ]
        } else {
            vec![format!("{}/24", self.vip)]
        }
    }

    fn unicast_pair(&self, lab: &Lab, host: usize, peer: usize) -> Option<(IpAddr, IpAddr)> {
        self.unicast.then(|| {
            (
                IpAddr::V4(lab.host(host).ipv4),
                IpAddr::V4(lab.host(peer).ipv4),
            )
        })
    }

    /// A vipd file for `host` (whose peer is `peer`); `extra` is appended (frontends, backends).
    pub fn vipd_config(
        &self,
        lab: &Lab,
        host: usize,
        peer: usize,
        priority: u8,
        extra: &str,
    ) -> String {
        let unicast = self
            .unicast_pair(lab, host, peer)
            .map(|(source, peer)| format!("    unicast: {{ source: {source}, peers: [{peer}] }}\n"))
            .unwrap_or_default();
        format!(
            "node: node{host}
vrrp:
  - name: vi_1
    interface: eth0
    vrid: {vrid}
    version: {version}
    priority: {priority}
    advert_interval: {interval}ms
    vips: [{vips}]
{unicast}{extra}",
            vrid = self.vrid,
            version = self.version,
            interval = self.advert_interval.as_millis(),
            vips = self
                .vips()
                .iter()
                .map(|vip| format!("\"{vip}\""))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The same router as a keepalived file for `host`.
    pub fn keepalived_config(&self, lab: &Lab, host: usize, peer: usize, priority: u8) -> String {
        let unicast = self
            .unicast_pair(lab, host, peer)
            .map(|(source, peer)| {
                format!("  unicast_src_ip {source}\n  unicast_peer {{\n    {peer}\n  }}\n")
            })
            .unwrap_or_default();
        format!(
            "global_defs {{\n  router_id node{host}\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  \
             virtual_router_id {vrid}\n  version {version}\n  priority {priority}\n  \
             advert_int {interval}\n{unicast}  virtual_ipaddress {{\n{vips}  }}\n}}\n",
            vrid = self.vrid,
            version = self.version,
            interval = self.advert_interval.as_secs_f64(),
            vips = self
                .vips()
                .iter()
                .fold(String::new(), |list, vip| list + "    " + vip + "\n"),
        )
    }

    /// [`RouterSettings::keepalived_config`] with `use_vmac`: the VIP on the macvlan
    /// `vrrp.{vrid}` carrying 00-00-5E-00-01-{VRID}, adverts sent from it; keepalived's
    /// counterpart of vipd's `virtual_mac: true`.
    pub fn keepalived_vmac_config(
        &self,
        lab: &Lab,
        host: usize,
        peer: usize,
        priority: u8,
    ) -> String {
        self.keepalived_config(lab, host, peer, priority).replacen(
            "  interface eth0\n",
            "  interface eth0\n  use_vmac\n",
            1,
        )
    }
}

/// keepalived's name for the macvlan of `use_vmac` (vipd's `virtual_mac` default is the same).
pub fn vmac_interface(vrid: u8) -> String {
    format!("vrrp.{vrid}")
}

/// Starts keepalived in `host` with the configuration text `config` (files in the scratch dir,
/// named after `name`) and waits until its VRRP child runs, so that it can be killed meaningfully.
pub fn start_keepalived(
    lab: &Lab,
    host: usize,
    scratch: &Scratch,
    name: &str,
    config: &str,
) -> Keepalived {
    let keepalived =
        Keepalived::start(lab, host, &scratch.0, name, config).expect("keepalived starts");
    keepalived
        .wait_for_vrrp_child(Duration::from_secs(10))
        .expect("keepalived starts its VRRP child");
    keepalived
}
