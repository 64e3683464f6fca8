//! The real host's VRRP transport and announcer.

use std::net::IpAddr;
use std::sync::Mutex;

use anyhow::{Context, Result};
use vipd_net::{
    Announce, Interface, NetError, PacketAnnouncer, ReceivedAdvert, TransportStats,
    VirtualMacTransport, VrrpSocket, VrrpTransport,
};

/// The real host's announcer: a packet socket addressed to the interface's index, opened again
/// when a send fails because the interface was deleted and created again since (a virtual MAC
/// interface the host recreated has a new index).
pub struct LinuxAnnouncer {
    interface: String,
    /// The socket, and the interface index it sends to.
    packets: Mutex<(PacketAnnouncer, u32)>,
}

impl LinuxAnnouncer {
    pub(super) fn open(interface: &str) -> Result<Self> {
        let index = Interface::lookup(interface)
            .with_context(|| format!("interface {interface}"))?
            .index;
        let packets = PacketAnnouncer::open(interface)
            .with_context(|| format!("opening a packet socket on {interface}"))?;
        Ok(Self {
            interface: interface.to_owned(),
            packets: Mutex::new((packets, index)),
        })
    }
}

impl Announce for LinuxAnnouncer {
    fn announce(&self, address: IpAddr) -> Result<(), NetError> {
        let mut packets = self
            .packets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Err(error) = packets.0.announce(address) else {
            return Ok(());
        };
        let index = match Interface::lookup(&self.interface) {
            Ok(interface) if interface.index != packets.1 => interface.index,
            _ => return Err(error),
        };
        *packets = (PacketAnnouncer::open(&self.interface)?, index);
        packets.0.announce(address)
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
