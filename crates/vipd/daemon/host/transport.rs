//! The real host's VRRP transport and announcer.

use std::net::IpAddr;
use std::sync::Mutex;

use anyhow::Result;
use vipd_net::{
    Announce, Interface, NetError, PacketAnnouncer, ReceivedAdvert, TransportStats,
    VirtualMacTransport, VrrpSocket, VrrpTransport,
};

/// The real host's announcer: a packet socket addressed to the interface's index, opened when
/// first needed if the interface did not exist yet (a VIP's own `interface:` may appear after
/// vipd started), and opened again when a send fails because the interface was deleted and
/// created again since (a virtual MAC interface the host recreated has a new index).
pub struct LinuxAnnouncer {
    interface: String,
    /// The socket, and the interface index it sends to; `None` until it could be opened.
    packets: Mutex<Option<(PacketAnnouncer, u32)>>,
}

impl LinuxAnnouncer {
    /// Never fails: an interface that is missing now is looked up again at the first
    /// announcement, which then reports the error.
    pub(super) fn open(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            packets: Mutex::new(Self::open_socket(interface).ok()),
        }
    }

    fn open_socket(interface: &str) -> Result<(PacketAnnouncer, u32), NetError> {
        let index = Interface::lookup(interface)?.index;
        Ok((PacketAnnouncer::open(interface)?, index))
    }
}

impl Announce for LinuxAnnouncer {
    fn announce(&self, address: IpAddr) -> Result<(), NetError> {
        let mut packets = self
            .packets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((socket, index)) = packets.as_ref() {
            let Err(error) = socket.announce(address) else {
                return Ok(());
            };
            match Interface::lookup(&self.interface) {
                Ok(interface) if interface.index != *index => {}
                _ => return Err(error),
            }
        }
        let opened = packets.insert(Self::open_socket(&self.interface)?);
        opened.0.announce(address)
    }
}

/// The real host's VRRP transport: a socket on the instance's interface, or, with a virtual MAC,
/// one that sends from the macvlan.
pub enum LinuxTransport {
    Interface(VrrpSocket),
    VirtualMac(VirtualMacTransport),
}

impl VrrpTransport for LinuxTransport {
    async fn send(&self, payload: &[u8]) -> Result<(), NetError> {
        match self {
            Self::Interface(socket) => socket.send(payload).await,
            Self::VirtualMac(transport) => transport.send(payload).await,
        }
    }

    async fn recv(&self) -> Result<ReceivedAdvert, NetError> {
        match self {
            Self::Interface(socket) => socket.recv().await,
            Self::VirtualMac(transport) => transport.recv().await,
        }
    }

    fn source_address(&self) -> IpAddr {
        match self {
            Self::Interface(socket) => socket.source_address(),
            Self::VirtualMac(transport) => transport.source_address(),
        }
    }

    fn interface_index(&self) -> Option<u32> {
        match self {
            Self::Interface(socket) => VrrpTransport::interface_index(socket),
            Self::VirtualMac(transport) => transport.interface_index(),
        }
    }

    fn follow_source_address(&mut self) -> Result<Option<(IpAddr, IpAddr)>, NetError> {
        match self {
            Self::Interface(socket) => socket.follow_source_address(),
            Self::VirtualMac(transport) => transport.follow_source_address(),
        }
    }

    fn set_unicast_peers(&mut self, peers: Vec<IpAddr>) -> Result<(), NetError> {
        match self {
            Self::Interface(socket) => socket.set_unicast_peers(peers),
            Self::VirtualMac(transport) => transport.set_unicast_peers(peers),
        }
    }

    fn reopen_if_moved(&mut self) -> Result<Option<(u32, u32)>, NetError> {
        match self {
            Self::Interface(socket) => socket.reopen_if_moved(),
            Self::VirtualMac(transport) => transport.reopen_if_moved(),
        }
    }

    fn stats(&self) -> TransportStats {
        match self {
            Self::Interface(socket) => socket.stats(),
            Self::VirtualMac(transport) => transport.stats(),
        }
    }

    fn destinations(&self) -> Vec<IpAddr> {
        match self {
            Self::Interface(socket) => socket.destinations(),
            Self::VirtualMac(transport) => transport.destinations(),
        }
    }

    async fn send_to(&self, payload: &[u8], destination: IpAddr) -> Result<(), NetError> {
        match self {
            Self::Interface(socket) => socket.send_to(payload, destination).await,
            Self::VirtualMac(transport) => transport.send_to(payload, destination).await,
        }
    }
}
