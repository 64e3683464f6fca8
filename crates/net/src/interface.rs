//! What vipd needs to know about one interface: index, MAC, VRRP source addresses, link state.

use std::net::{Ipv4Addr, Ipv6Addr};

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
            } else if let Some(v6) = address.as_sockaddr_in6()
                && v6.ip().is_unicast_link_local()
            {
                interface.ipv6_link_local.get_or_insert(v6.ip());
            }
        }
        Ok(interface)
    }

    pub(crate) fn require_ipv4(&self) -> Result<Ipv4Addr, NetError> {
        self.primary_ipv4.ok_or_else(|| NetError::NoAddress {
            interface: self.name.clone(),
            what: "IPv4 address",
        })
    }

    pub(crate) fn require_link_local(&self) -> Result<Ipv6Addr, NetError> {
        self.ipv6_link_local.ok_or_else(|| NetError::NoAddress {
            interface: self.name.clone(),
            what: "IPv6 link-local address",
        })
    }
}
