//! Linux side effects for vipd: VRRP sockets, virtual IPs through rtnetlink, link and address
//! monitors, announcements.
//!
//! # IO contract
//!
//! - **Namespace.** Every socket and netlink connection is opened in the network namespace of
//!   the thread that calls the constructor, and stays there.
//! - **Runtime.** Constructors of async types ([`VrrpSocket`], [`NetlinkAddresses`],
//!   [`AddressMonitor`], [`LinkMonitor`], [`VirtualMac`], [`DeadlineTimer`]) must run inside a tokio runtime (current-
//!   thread or multi-thread); netlink connections run as tasks on it and stop when the owning
//!   value is dropped. [`PacketAnnouncer`] is synchronous (a non-blocking send).
//! - **Privileges.** Raw and packet sockets need `CAP_NET_RAW`; address and link changes need
//!   `CAP_NET_ADMIN`. [`VirtualMac`] also writes per-interface settings under `/proc/sys/net`
//!   ([`InterfaceSetting`]), which `CAP_NET_ADMIN` allows when `/proc/sys` is mounted read-write.
//! - **VRRP bytes.** [`VrrpTransport`] moves VRRP *payloads*: the kernel writes and strips the IP
//!   header. Adverts leave with TTL / hop limit 255. The caller computes the IPv4 checksum with
//!   the vrrp codec, using [`VrrpTransport::source_address`] for the v3 pseudo-header (every
//!   advert is sent from that address explicitly, never from a VIP); for IPv6 the
//!   kernel fills and verifies the checksum (`IPV6_CHECKSUM`), whatever the caller put there.
//! - **Receive validation here.** Multicast mode drops (and counts) TTL / hop limit != 255
//!   (RFC 5798 §7.1); unicast mode counts senders that are not configured peers as dropped and
//!   hands them over flagged ([`ReceivedAdvert::from_unknown_peer`]: never a peer's advert), and
//!   does not check the TTL (keepalived). Datagrams whose IP framing does not hold together are
//!   dropped and counted. Nothing from the wire can panic this crate. Everything about the VRRP
//!   message itself (version, checksum, VRID, auth...) is the caller's to validate.
//! - **Arrival time.** [`ReceivedAdvert::received_at`] is the kernel's receive stamp
//!   (`SO_TIMESTAMPNS`) on the monotonic clock: the RFC timers run from it, not from when a task
//!   got to the socket.
//! - **Blocking.** [`NetlinkAddresses::add`] and [`NetlinkAddresses::remove`] send their netlink
//!   request and read the kernel's acknowledgement in the calling thread (tens of microseconds;
//!   at most one second if the kernel never answers): no task hop on a takeover's critical path.
//! - **Timers.** [`DeadlineTimer`] wakes a task at an instant to within microseconds (a
//!   `timerfd` in tokio's reactor); its module is one of the crate's two `unsafe` blocks
//!   (registering the descriptor with tokio).
//! - **Announce devices.** [`TunDevice`] is a TUN device that the kernel deletes, with its
//!   addresses, when the value is dropped or the process ends; its module holds the other
//!   `unsafe` block (the `TUNSETIFF` ioctl).
//! - **Idempotence.** Adding a present VIP or removing an absent one is success
//!   ([`Change::AlreadyInPlace`]); [`AddressManager::reconcile`] reports what it had to fix.
//! - **Monitors** report events after they start; netlink may drop notifications under
//!   pressure, so owners of VIPs also reconcile periodically.
//! - **Announcements** are single frames; repetition is the caller's policy.
//!
//! The traits [`VrrpTransport`], [`AddressManager`] and [`Announce`] are the seams for tests:
//! [`MemoryLan`], [`MemoryAddresses`] and [`MemoryAnnouncer`] implement them without a kernel.
//!
//! # Wiring one virtual router
//!
//! ```no_run
//! use vipd_net::{
//!     Announce, AddressManager, Family, Mode, NetlinkAddresses, PacketAnnouncer, Vip, VrrpSocket,
//!     VrrpSocketConfig, VrrpTransport,
//! };
//!
//! # async fn run() -> Result<(), vipd_net::NetError> {
//! let socket = VrrpSocket::open(VrrpSocketConfig {
//!     interface: "eth0".into(),
//!     family: Family::Ipv4,
//!     mode: Mode::Multicast,
//! })?;
//! let addresses = NetlinkAddresses::new()?;
//! let announcer = PacketAnnouncer::open("eth0")?;
//! let vip = Vip::new("eth0", "198.51.100.100".parse().unwrap(), 24);
//!
//! // Receive: the payload goes to the vrrp codec with the addresses the socket reports.
//! let advert = socket.recv().await?;
//! let _ = (advert.payload, advert.source, advert.destination);
//!
//! // Become master: the VIP, its announcement, then the advert from the codec
//! // (source_address() for the v3 checksum).
//! addresses.add(&vip).await?;
//! announcer.announce(vip.address)?;
//! let bytes: Vec<u8> = Vec::new(); // Advertisement::to_bytes(socket.source_address(), group, ..)
//! socket.send(&bytes).await?;
//! # Ok(())
//! # }
//! ```

mod addresses;
mod announce;
mod deadline_timer;
mod error;
mod interface;
mod memory;
mod monitor;
mod netlink;
mod netlink_request;
mod sysctl;
mod tun_device;
mod virtual_mac;
mod vrrp_socket;

use std::future::Future;
use std::net::IpAddr;

use vipd_vrrp::wire::{MULTICAST_V4, MULTICAST_V6};

pub use addresses::{AddressManager, Change, NetlinkAddresses, Reconciled, Vip};
pub use announce::{Announce, PacketAnnouncer, gratuitous_arp, unsolicited_neighbor_advertisement};
pub use deadline_timer::DeadlineTimer;
pub use error::NetError;
pub use interface::Interface;
pub use memory::{MemoryAddresses, MemoryAnnouncer, MemoryLan, MemoryTransport};
pub use monitor::{AddressEvent, AddressMonitor, LinkEvent, LinkMonitor, LinkState};
pub use sysctl::InterfaceSetting;
pub use tun_device::TunDevice;
pub use virtual_mac::{
    LinkAdmin, VirtualMac, VirtualMacTransport, remove_left_behind, virtual_mac_address,
};
pub use vrrp_socket::{Family, Mode, VrrpSocket, VrrpSocketConfig};

/// One VRRP message as it arrived, with what the IP layer said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The VRRP message (no IP header).
    pub payload: Vec<u8>,
    /// The IP source: the sender's primary IPv4 or IPv6 link-local address.
    pub source: IpAddr,
    /// The IP destination: the VRRP group, or our address in unicast mode.
    pub destination: IpAddr,
    /// The TTL / hop limit it arrived with.
    pub ttl: u8,
    /// The interface index it arrived on (0 for in-memory transports).
    pub interface: u32,
    /// When the kernel received it (`SO_TIMESTAMPNS`), on the monotonic clock; `None` when the
    /// transport cannot tell (in-memory transports). The RFC timers run from an advert's arrival,
    /// and this is that instant, not the later one at which a task got round to reading it.
    pub received_at: Option<std::time::Instant>,
    /// Unicast mode: the sender is not a configured peer. Such a datagram is no peer's advert
    /// (it is counted in [`TransportStats::dropped_unknown_peer`]); it is handed over so that the
    /// caller can tell a renumbered peer, which still sends our VRID, from noise.
    pub from_unknown_peer: bool,
}

/// Counters of a transport, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub sent: u64,
    pub received: u64,
    /// Multicast adverts with TTL / hop limit other than 255.
    pub dropped_ttl: u64,
    /// Unicast adverts from an address that is not a configured peer.
    pub dropped_unknown_peer: u64,
    /// Datagrams whose IP framing was unusable.
    pub dropped_malformed: u64,
}

/// Sends and receives VRRP messages for one virtual router (or several on one interface).
pub trait VrrpTransport: Send + Sync {
    /// Sends the same `payload` to the group, or to every unicast peer. Right for v2 and for
    /// IPv6 (kernel checksum); for VRRPv3 over IPv4 to more than one peer the checksum differs
    /// per destination: use [`VrrpTransport::destinations`] and [`VrrpTransport::send_to`].
    fn send(&self, payload: &[u8]) -> impl Future<Output = Result<(), NetError>> + Send;
    /// The next accepted advert; dropped ones are counted in [`VrrpTransport::stats`].
    fn recv(&self) -> impl Future<Output = Result<ReceivedAdvert, NetError>> + Send;
    /// The source address our adverts carry (needed for the IPv4 VRRPv3 checksum and for the
    /// "larger primary address wins" tie-break).
    fn source_address(&self) -> IpAddr;
    /// Counters so far.
    fn stats(&self) -> TransportStats;

    /// Where adverts go: the VRRP group of the source's family (multicast), or each unicast peer.
    /// The VRRPv3 IPv4 checksum covers the destination, so a caller that builds adverts itself
    /// builds one per destination and sends it with [`VrrpTransport::send_to`].
    fn destinations(&self) -> Vec<IpAddr> {
        vec![match self.source_address() {
            IpAddr::V4(_) => IpAddr::V4(MULTICAST_V4),
            IpAddr::V6(_) => IpAddr::V6(MULTICAST_V6),
        }]
    }

    /// Opens the receiving socket again if the interface it is bound to was deleted and created
    /// again since (same name, another index, as a network manager or a VLAN reconfiguration
    /// leaves it): a socket stays bound to the interface it was opened on and would never
    /// receive again. Returns the old and the new index if it did. Fails while the interface is
    /// gone or not yet usable (an IPv4 socket needs an address on it).
    fn reopen_if_moved(&mut self) -> Result<Option<(u32, u32)>, NetError> {
        Ok(None)
    }

    /// The interface adverts are received on, when the transport is bound to one: address
    /// changes elsewhere cannot change [`VrrpTransport::source_address`].
    fn interface_index(&self) -> Option<u32> {
        None
    }

    /// Follows a change of the address adverts are sent from (the interface renumbered while
    /// vipd runs): the kernel picks each advert's source, and the VRRPv3 IPv4 checksum covers
    /// it, so with a stale one the peer would drop every advert as malformed. Returns the old
    /// and the new source if it changed; a pinned unicast source never does.
    fn follow_source_address(&mut self) -> Result<Option<(IpAddr, IpAddr)>, NetError> {
        Ok(None)
    }

    /// Replaces the unicast peers (a reload added or removed some): adverts go to the new list,
    /// and only its members' are accepted, from now on. Without a pinned source the address
    /// adverts leave from may change with the first peer: call
    /// [`VrrpTransport::follow_source_address`] afterwards. Fails, changing nothing, for a
    /// multicast transport and for a peer of another family.
    fn set_unicast_peers(&mut self, peers: Vec<IpAddr>) -> Result<(), NetError> {
        let _ = peers;
        Err(NetError::Invalid {
            what: "unicast peers",
            detail: "this transport sends to the VRRP group".into(),
        })
    }

    /// Sends `payload` to one of [`VrrpTransport::destinations`].
    fn send_to(
        &self,
        payload: &[u8],
        destination: IpAddr,
    ) -> impl Future<Output = Result<(), NetError>> + Send {
        let _ = destination;
        self.send(payload)
    }
}
