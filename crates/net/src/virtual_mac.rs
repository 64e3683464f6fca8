//! The optional VRRP virtual MAC (RFC 5798 §7.3): a macvlan interface on the parent NIC with
//! 00-00-5E-00-01-{VRID} (IPv4) or 00-00-5E-00-02-{VRID} (IPv6). Off by default: vipd uses the
//! NIC's own MAC and relies on gratuitous ARP, like keepalived without `use_vmac`.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, MacVlanMode};
use rtnetlink::{LinkMacVlan, LinkUnspec};

use crate::NetError;
use crate::netlink::{NetlinkConnection, interface_index};
use crate::vrrp_socket::Family;

/// The virtual router MAC of `vrid` for `family` (RFC 5798 §7.3).
pub fn virtual_mac_address(vrid: u8, family: Family) -> [u8; 6] {
    let family_byte = match family {
        Family::Ipv4 => 0x01,
        Family::Ipv6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, family_byte, vrid]
}

/// A macvlan interface carrying the virtual MAC; removed with [`VirtualMac::remove`].
#[derive(Debug)]
pub struct VirtualMac {
    connection: NetlinkConnection,
    name: String,
    index: u32,
}

impl VirtualMac {
    /// Creates (or adopts, when it exists with this name) the macvlan `name` on `parent`, sets the
    /// virtual MAC and brings it up. Put the VIPs and the VRRP socket on `name`.
    pub async fn create(
        parent: &str,
        name: &str,
        vrid: u8,
        family: Family,
    ) -> Result<Self, NetError> {
        let connection = NetlinkConnection::open()?;
        let parent_index = interface_index(parent)?;
        let mac = virtual_mac_address(vrid, family);
        let subject = || format!("macvlan {name} on {parent}");
        if interface_index(name).is_err() {
            // Private mode: frames between macvlans of one parent stay apart, as between hosts.
            let message = LinkMacVlan::new(name, parent_index, MacVlanMode::Private)
                .address(mac.to_vec())
                .up()
                .build();
            connection
                .handle()
                .link()
                .add(message)
                .execute()
                .await
                .map_err(|source| NetError::Netlink {
                    action: "create link",
                    subject: subject(),
                    source,
                })?;
        }
        let index = interface_index(name)?;
        // An adopted interface may have another MAC or be down: set both.
        let message = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .up()
            .build();
        connection
            .handle()
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                action: "set link",
                subject: subject(),
                source,
            })?;
        Ok(Self {
            connection,
            name: name.to_owned(),
            index,
        })
    }

    /// The macvlan interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The macvlan interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MAC address the kernel reports for the interface now.
    pub async fn current_mac(&self) -> Result<Option<Vec<u8>>, NetError> {
        let mut links = self
            .connection
            .handle()
            .link()
            .get()
            .match_index(self.index)
            .execute();
        let link = links.try_next().await.map_err(|source| NetError::Netlink {
            action: "get link",
            subject: self.name.clone(),
            source,
        })?;
        Ok(link.and_then(|link| {
            link.attributes
                .into_iter()
                .find_map(|attribute| match attribute {
                    LinkAttribute::Address(mac) => Some(mac),
                    _ => None,
                })
        }))
    }

    /// Deletes the interface (and with it the VIPs on it).
    pub async fn remove(self) -> Result<(), NetError> {
        self.connection
            .handle()
            .link()
            .del(self.index)
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                action: "delete link",
                subject: self.name.clone(),
                source,
            })
    }
}
