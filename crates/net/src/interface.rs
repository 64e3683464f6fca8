//! What vipd needs to know about one interface: index, MAC, VRRP source addresses, link state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{InterfaceFlags, if_nametoindex};
use nix::sys::socket::LinkAddr;

use crate::NetError;

/// A snapshot of one interface, read with `getifaddrs` in the calling thread's network namespace.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// The kernel's interface index.
    pub index: u32,
    /// The hardware address (all zero for interfaces without one).
    pub mac: [u8; 6],
    /// The first IPv4 address in kernel order: the interface's primary address, which is the
    /// source of IPv4 VRRP adverts (RFC 5798 §5.1.1.1) and part of the v3 checksum.
    pub primary_ipv4: Option<Ipv4Addr>,
    /// The first IPv6 link-local address: the source of IPv6 VRRP adverts (RFC 5798 §5.1.2.1).
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// Every IPv4 address, in kernel order (primary first).
    pub ipv4_addresses: Vec<Ipv4Addr>,
    /// Every IPv6 address, in kernel order, link-local ones included.
    pub ipv6_addresses: Vec<Ipv6Addr>,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub is_up: bool,
    /// The packet-socket address of the interface, used to send announcement frames.
    pub(crate) link_address: Option<LinkAddr>,
}

impl Interface {
    /// Reads the interface `name` now.
    pub fn lookup(name: &str) -> Result<Self, NetError> {
        let index = if_nametoindex(name).map_err(|_| NetError::NoSuchInterface {
            interface: name.to_owned(),
        })?;
        let addresses = getifaddrs().map_err(|errno| NetError::Socket {
            action: "getifaddrs",
            interface: name.to_owned(),
            source: errno.into(),
        })?;
        let mut interface = Self {
            name: name.to_owned(),
            index,
            mac: [0; 6],
            primary_ipv4: None,
            ipv6_link_local: None,
            ipv4_addresses: Vec::new(),
            ipv6_addresses: Vec::new(),
            is_up: false,
            link_address: None,
        };
        for entry in addresses.filter(|entry| entry.interface_name == name) {
            interface.is_up = entry
                .flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
            let Some(address) = entry.address else {
                continue;
            };
            if let Some(link) = address.as_link_addr() {
                interface.mac = link.addr().unwrap_or_default();
                interface.link_address = Some(*link);
            } else if let Some(v4) = address.as_sockaddr_in() {
                interface.primary_ipv4.get_or_insert(v4.ip());
                interface.ipv4_addresses.push(v4.ip());
            } else if let Some(v6) = address.as_sockaddr_in6() {
                if v6.ip().is_unicast_link_local() {
                    interface.ipv6_link_local.get_or_insert(v6.ip());
                }
                interface.ipv6_addresses.push(v6.ip());
            }
        }
        Ok(interface)
    }

    /// The source of IPv4 adverts: the first IPv4 address that is not one of `vips`. When the
    /// node's own address is removed the kernel promotes a VIP to primary, and a VIP must never
    /// be the source (RFC 9568 5.1.1.1: the primary address of the interface, which a VIP
    /// moving to the peer is not).
    pub(crate) fn require_own_ipv4(&self, vips: &[IpAddr]) -> Result<Ipv4Addr, NetError> {
        self.ipv4_addresses
            .iter()
            .copied()
            .find(|address| !vips.contains(&IpAddr::V4(*address)))
            .ok_or_else(|| NetError::NoAddress {
                interface: self.name.clone(),
                what: "IPv4 address that is not a VIP",
            })
    }

    /// The source of IPv6 adverts: the first link-local address that is not one of `vips`
    /// (RFC 9568 5.1.2.1).
    pub(crate) fn require_own_link_local(&self, vips: &[IpAddr]) -> Result<Ipv6Addr, NetError> {
        self.own_ipv6(vips, Ipv6Addr::is_unicast_link_local)
            .ok_or_else(|| NetError::NoAddress {
                interface: self.name.clone(),
                what: "IPv6 link-local address that is not a VIP",
            })
    }

    /// The first address of `family_of`'s family that is not one of `vips`, of the same scope
    /// (link-local or not) as `family_of`: what a unicast advert leaves from when the kernel's
    /// choice is a VIP.
    pub(crate) fn own_address_like(&self, family_of: IpAddr, vips: &[IpAddr]) -> Option<IpAddr> {
        match family_of {
            IpAddr::V4(_) => self.require_own_ipv4(vips).ok().map(IpAddr::V4),
            IpAddr::V6(like) => {
                let link_local = like.is_unicast_link_local();
                self.own_ipv6(vips, |address| {
                    address.is_unicast_link_local() == link_local
                })
                .map(IpAddr::V6)
            }
        }
    }

    fn own_ipv6(&self, vips: &[IpAddr], wanted: impl Fn(&Ipv6Addr) -> bool) -> Option<Ipv6Addr> {
        self.ipv6_addresses
            .iter()
            .copied()
            .find(|address| wanted(address) && !vips.contains(&IpAddr::V6(*address)))
    }
}
