//! Address and link monitors: kernel notifications (rtnetlink multicast groups) as events.
//!
//! Netlink notifications can be lost when the socket buffer overflows (`ENOBUFS`); a consumer
//! that must not miss a removal also reconciles periodically ([`crate::AddressManager::reconcile`]).

use std::collections::HashMap;
use std::net::IpAddr;

use futures::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use crate::NetError;
use crate::netlink::{NetlinkConnection, Notifications};

/// An address appeared on or disappeared from an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressEvent {
    Added {
        interface_index: u32,
        address: IpAddr,
        prefix_len: u8,
    },
    Removed {
        interface_index: u32,
        address: IpAddr,
        prefix_len: u8,
    },
}

impl AddressEvent {
    /// The interface the address appeared on or disappeared from.
    pub fn interface_index(&self) -> u32 {
        match self {
            Self::Added {
                interface_index, ..
            }
            | Self::Removed {
                interface_index, ..
            } => *interface_index,
        }
    }
}

/// Reports address changes of every interface, IPv4 and IPv6, from whoever made them.
#[derive(Debug)]
pub struct AddressMonitor {
    _connection: NetlinkConnection,
    notifications: Notifications,
}

impl AddressMonitor {
    /// Subscribes in the calling thread's network namespace; needs a tokio runtime. Events are
    /// those after this call returns.
    pub fn start() -> Result<Self, NetError> {
        let (connection, notifications) = NetlinkConnection::subscribe(&[
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        Ok(Self {
            _connection: connection,
            notifications,
        })
    }

    /// The next address event; `None` when the netlink connection ended.
    pub async fn next(&mut self) -> Option<AddressEvent> {
        loop {
            let (message, _) = self.notifications.next().await?;
            let event = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(address)) => {
                    address_parts(&address).map(|(interface_index, address, prefix_len)| {
                        AddressEvent::Added {
                            interface_index,
                            address,
                            prefix_len,
                        }
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(address)) => {
                    address_parts(&address).map(|(interface_index, address, prefix_len)| {
                        AddressEvent::Removed {
                            interface_index,
                            address,
                            prefix_len,
                        }
                    })
                }
                _ => None,
            };
            if event.is_some() {
                return event;
            }
        }
    }
}

fn address_parts(message: &AddressMessage) -> Option<(u32, IpAddr, u8)> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links
    // and equal to IFA_LOCAL elsewhere. IPv6 sends only IFA_ADDRESS.
    let local = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Local(address) => Some(*address),
            _ => None,
        });
    let address = local.or_else(|| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Address(address) => Some(*address),
                _ => None,
            })
    })?;
    Some((message.header.index, address, message.header.prefix_len))
}

/// The state of a link as VRRP cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Administratively up with carrier: adverts can flow.
    Up,
    /// Down or without carrier.
    Down,
    /// The interface was deleted.
    Removed,
}

/// A link changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub interface_index: u32,
    /// The interface name, when the kernel included it (it does for link notifications).
    pub name: Option<String>,
    pub state: LinkState,
}

/// Reports link up / down / removed per interface. The kernel sends a notification for many
/// changes that are not up/down (MTU, statistics, promiscuity): only state changes come out.
#[derive(Debug)]
pub struct LinkMonitor {
    _connection: NetlinkConnection,
    notifications: Notifications,
    last: HashMap<u32, LinkState>,
}

impl LinkMonitor {
    /// Subscribes in the calling thread's network namespace; needs a tokio runtime. The first
    /// notification about an interface always comes out (its state before is unknown here).
    pub fn start() -> Result<Self, NetError> {
        let (connection, notifications) = NetlinkConnection::subscribe(&[MulticastGroup::Link])?;
        Ok(Self {
            _connection: connection,
            notifications,
            last: HashMap::new(),
        })
    }

    /// The next state change; `None` when the netlink connection ended.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (message, _) = self.notifications.next().await?;
            let (link, state) = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    let state = link_state(&link);
                    (link, state)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    (link, LinkState::Removed)
                }
                _ => continue,
            };
            let index = link.header.index;
            if self.last.insert(index, state) == Some(state) {
                continue;
            }
            if state == LinkState::Removed {
                self.last.remove(&index);
            }
            let name = link
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                });
            return Some(LinkEvent {
                interface_index: index,
                name,
                state,
            });
        }
    }
}

fn link_state(link: &LinkMessage) -> LinkState {
    // IFF_RUNNING is the kernel's "operationally up" (carrier and not dormant).
    if link
        .header
        .flags
        .contains(LinkFlags::Up | LinkFlags::Running)
    {
        LinkState::Up
    } else {
        LinkState::Down
    }
}
