//! Announcements that move a VIP's traffic to the new master: gratuitous ARP (IPv4) and
//! unsolicited neighbour advertisements (IPv6), sent as whole Ethernet frames on a send-only
//! packet socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{LinkAddr, MsgFlags, sendto};
use socket2::{Domain, Socket, Type};

use crate::NetError;
use crate::interface::Interface;

/// Sends the announcement for one address.
pub trait Announce: Send + Sync {
    /// IPv4: one gratuitous ARP; IPv6: one unsolicited NA. Repetition and spacing (`garp.repeat`,
    /// `garp.delay`) are the caller's policy.
    fn announce(&self, address: IpAddr) -> Result<(), NetError>;
}

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// ff02::1 (all nodes) maps to 33:33:00:00:00:01 (RFC 2464 §7).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Minimum Ethernet frame without FCS; short frames are padded so every NIC sends them as is.
const MIN_FRAME: usize = 60;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The NA "router" flag (RFC 4861 §4.4): the sender is a router. RFC 9568 6.4.1 and 8.2.2
/// ask a new master to set it: the VIP is a virtual *router*'s address, and a host that cached
/// it as a router keeps it in its default router list.
const NA_ROUTER: u8 = 0x80;
/// The NA "override" flag (RFC 4861 §4.4): receivers replace their cached link-layer address.
const NA_OVERRIDE: u8 = 0x20;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
const NEXT_HEADER_ICMPV6: u8 = 58;

fn ethernet_header(frame: &mut Vec<u8>, destination: [u8; 6], source: [u8; 6], ethertype: u16) {
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

/// A gratuitous ARP request (RFC 5227 §3 "ARP Announcement", RFC 5798 §8.1.2): broadcast,
/// sender = target = `address`, sender MAC = `mac`, target MAC zero.
pub fn gratuitous_arp(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MIN_FRAME);
    ethernet_header(&mut frame, BROADCAST_MAC, mac, ETHERTYPE_ARP);
    frame.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    frame.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    frame.extend_from_slice(&[6, 4]); // address lengths
    frame.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&address.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&address.octets());
    frame.resize(MIN_FRAME, 0);
    frame
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6, RFC 5798 §8.2.2): from `address`
/// to all nodes, hop limit 255, router and override flags set (RFC 9568 6.4.1), target
/// `address`, with the target link-layer address option carrying `mac`.
pub fn unsolicited_neighbor_advertisement(mac: [u8; 6], address: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, 0]); // type, code, checksum
    icmp.extend_from_slice(&[NA_ROUTER | NA_OVERRIDE, 0, 0, 0]);
    icmp.extend_from_slice(&address.octets());
    icmp.extend_from_slice(&[OPTION_TARGET_LINK_LAYER_ADDRESS, 1]); // length in units of 8
    icmp.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(address, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + icmp.len());
    ethernet_header(&mut frame, ALL_NODES_MAC, mac, ETHERTYPE_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class or flow label
    let payload_length = u16::try_from(icmp.len()).expect("an NA is 32 bytes");
    frame.extend_from_slice(&payload_length.to_be_bytes());
    frame.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]); // RFC 4861 §7.1.2: hop limit 255
    frame.extend_from_slice(&address.octets());
    frame.extend_from_slice(&ALL_NODES.octets());
    frame.extend_from_slice(&icmp);
    frame
}

/// The ICMPv6 checksum (RFC 4443 §2.3): one's complement sum over the pseudo-header and message.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    let length = u32::try_from(message.len()).expect("an NA is 32 bytes");
    pseudo.extend_from_slice(&length.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    pseudo.extend_from_slice(message);
    let mut sum: u32 = pseudo
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded to 16 bits")
}

/// Sends announcements on one interface through an `AF_PACKET` socket opened with protocol 0,
/// so it receives nothing (no promiscuous mode, no copy of every frame).
#[derive(Debug)]
pub struct PacketAnnouncer {
    socket: Socket,
    interface: String,
    mac: [u8; 6],
    link: LinkAddr,
}

impl PacketAnnouncer {
    /// Opens the socket for `interface`; frames carry the interface's own MAC (or, with a
    /// virtual MAC, open it on the macvlan interface). Needs CAP_NET_RAW.
    pub fn open(interface: &str) -> Result<Self, NetError> {
        let info = Interface::lookup(interface)?;
        let link = info.link_address.ok_or_else(|| NetError::NoAddress {
            interface: interface.to_owned(),
            what: "link-layer address",
        })?;
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(|source| NetError::Socket {
                action: "open packet socket",
                interface: interface.to_owned(),
                source,
            })?;
        Ok(Self {
            socket,
            interface: interface.to_owned(),
            mac: info.mac,
            link,
        })
    }

    /// The MAC address frames are sent from.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

impl Announce for PacketAnnouncer {
    fn announce(&self, address: IpAddr) -> Result<(), NetError> {
        let frame = match address {
            IpAddr::V4(v4) => gratuitous_arp(self.mac, v4),
            IpAddr::V6(v6) => unsolicited_neighbor_advertisement(self.mac, v6),
        };
        // The link address names the interface (sll_ifindex); the frame carries its own
        // Ethernet header, so the kernel sends it as is.
        sendto(
            self.socket.as_raw_fd(),
            &frame,
            &self.link,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(|errno| NetError::Send {
            destination: address,
            interface: self.interface.clone(),
            source: errno.into(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    #[test]
    fn gratuitous_arp_bytes() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(198, 51, 100, 100));
        let mut expected = vec![0xff; 6];
        expected.extend_from_slice(&MAC);
        expected.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        expected.extend_from_slice(&MAC);
        expected.extend_from_slice(&[198, 51, 100, 100, 0, 0, 0, 0, 0, 0, 198, 51, 100, 100]);
        expected.resize(60, 0);
        assert_eq!(frame, expected);
    }

    #[test]
    fn neighbor_advertisement_checksum_verifies() {
        let address: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let frame = unsolicited_neighbor_advertisement(MAC, address);
        assert_eq!(frame.len(), 14 + 40 + 32);
        assert_eq!(&frame[0..6], &ALL_NODES_MAC);
        assert_eq!(frame[14 + 7], 255, "hop limit");
        let icmp = &frame[54..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], 0xa0, "router and override, not solicited");
        assert_eq!(&icmp[8..24], &address.octets());
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &MAC);
        // Summing a message with its checksum in place gives 0 (one's complement identity).
        assert_eq!(icmpv6_checksum(address, ALL_NODES, icmp), 0);
    }
}
