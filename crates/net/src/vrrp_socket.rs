//! Raw IP sockets for VRRP (protocol 112), IPv4 and IPv6, multicast or unicast.
//!
//! One socket per (interface, family, mode) sends and receives. It is bound to the interface
//! (`SO_BINDTODEVICE`) and, in multicast mode, never to an address: a raw socket bound to a
//! unicast address receives no multicast. The kernel builds the IP header; the payload is the
//! VRRP message. For IPv6 the kernel also fills and verifies the VRRP checksum (`IPV6_CHECKSUM`
//! at offset 6, over the pseudo-header as RFC 5798 §5.2.8 asks).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use vipd_vrrp::wire::{IP_PROTOCOL, MULTICAST_V4, MULTICAST_V6, TTL};

use crate::interface::Interface;
use crate::{NetError, ReceivedAdvert, TransportStats, VrrpTransport};

/// Offset of the checksum in a VRRP message, for `IPV6_CHECKSUM`.
const CHECKSUM_OFFSET: i32 = 6;
/// Largest datagram we read: an Ethernet MTU is plenty for 255 IPv6 addresses (4 KiB + header).
const RECEIVE_BUFFER: usize = 9000;

// nix has no wrapper for IPV6_CHECKSUM; its exported macro builds one from a plain c_int option.
use nix::{setsockopt_impl, sockopt_impl};
sockopt_impl!(
    /// `IPV6_CHECKSUM`: the kernel computes (send) and verifies (receive) the checksum at this
    /// offset of raw IPv6 payloads.
    Ipv6Checksum,
    SetOnly,
    libc::IPPROTO_IPV6,
    libc::IPV6_CHECKSUM,
    libc::c_int
);

/// The options of every raw socket that sends adverts, on `interface_index`: TTL / hop limit 255
/// (RFC 5798 §5.1.1.3, §5.1.2.3; receivers drop anything else, §7.1), no loopback of our own
/// adverts (they would come back as a peer's), and for IPv6 the output interface of multicast
/// and the kernel-computed checksum over the pseudo-header (§5.2.8). On failure, the option
/// that failed.
pub(crate) fn set_advert_send_options(
    socket: &Socket,
    family: Family,
    interface_index: u32,
) -> Result<(), (&'static str, io::Error)> {
    let named = |action: &'static str| move |source: io::Error| (action, source);
    match family {
        Family::Ipv4 => {
            socket
                .set_ttl_v4(u32::from(TTL))
                .map_err(named("set TTL"))?;
            socket
                .set_multicast_ttl_v4(u32::from(TTL))
                .map_err(named("set multicast TTL"))?;
            socket
                .set_multicast_loop_v4(false)
                .map_err(named("disable multicast loop"))?;
        }
        Family::Ipv6 => {
            socket
                .set_unicast_hops_v6(u32::from(TTL))
                .map_err(named("set hop limit"))?;
            socket
                .set_multicast_hops_v6(u32::from(TTL))
                .map_err(named("set multicast hop limit"))?;
            socket
                .set_multicast_loop_v6(false)
                .map_err(named("disable multicast loop"))?;
            socket
                .set_multicast_if_v6(interface_index)
                .map_err(named("set multicast interface"))?;
            setsockopt(socket, Ipv6Checksum, &CHECKSUM_OFFSET)
                .map_err(|errno| ("enable IPV6_CHECKSUM", errno.into()))?;
        }
    }
    Ok(())
}

/// The address family of a VRRP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// Where adverts go and whom they are accepted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// To the VRRP group; accept only TTL / hop limit 255 (RFC 5798 §7.1).
    Multicast,
    /// To each peer; accept only from a peer, with any TTL (keepalived's unicast mode: peers may
    /// sit behind a router). `source` pins the source address (keepalived's `unicast_src_ip`);
    /// without it the kernel picks one (normally the interface's primary address).
    Unicast {
        peers: Vec<IpAddr>,
        source: Option<IpAddr>,
    },
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSocketConfig {
    pub interface: String,
    pub family: Family,
    pub mode: Mode,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_ttl: AtomicU64,
    dropped_unknown_peer: AtomicU64,
    dropped_malformed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        TransportStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped_ttl: self.dropped_ttl.load(Ordering::Relaxed),
            dropped_unknown_peer: self.dropped_unknown_peer.load(Ordering::Relaxed),
            dropped_malformed: self.dropped_malformed.load(Ordering::Relaxed),
        }
    }
}

/// A VRRP raw socket on one interface; see the module doc.
#[derive(Debug)]
pub struct VrrpSocket {
    /// The raw socket, registered with tokio through `UdpSocket`: tokio 1.54 deprecated every
    /// safe `AsyncFd` constructor (only `unsafe fn register` remains), while `UdpSocket::from_std`
    /// takes ownership of the descriptor safely. Only readiness (`async_io`) and `send_to` are
    /// used, which are plain `sendto`/`recvmsg` on any datagram-like socket.
    socket: UdpSocket,
    config: VrrpSocketConfig,
    interface_index: u32,
    source: IpAddr,
    /// Addresses never used as the source: the instance's VIPs.
    vips: Vec<IpAddr>,
    counters: Counters,
}

impl VrrpSocket {
    /// Opens the socket. Needs CAP_NET_RAW and a tokio runtime (the socket registers with it).
    pub fn open(config: VrrpSocketConfig) -> Result<Self, NetError> {
        Self::open_with_vips(config, Vec::new())
    }

    /// Opens the socket of an instance whose VIPs are `vips`: none of them is ever the adverts'
    /// source, also when the kernel made one the interface's primary address (the node's own
    /// address was removed) or the route's preferred source.
    pub fn open_with_vips(config: VrrpSocketConfig, vips: Vec<IpAddr>) -> Result<Self, NetError> {
        let interface = Interface::lookup(&config.interface)?;
        let fail = |action: &'static str| {
            let name = config.interface.clone();
            move |source: io::Error| NetError::Socket {
                action,
                interface: name,
                source,
            }
        };
        let domain = match config.family {
            Family::Ipv4 => Domain::IPV4,
            Family::Ipv6 => Domain::IPV6,
        };
        if let Mode::Unicast { peers, source } = &config.mode
            && let Some(wrong) = peers
                .iter()
                .chain(source)
                .find(|a| domain_of(**a) != domain)
        {
            return Err(NetError::Invalid {
                what: "unicast peer or source",
                detail: format!("{wrong} is not of the socket's family {:?}", config.family),
            });
        }
        let source = advert_source(&config, &interface, &vips)?;
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IP_PROTOCOL))),
        )
        .map_err(fail("open raw socket"))?;
        socket
            .set_nonblocking(true)
            .map_err(fail("set non-blocking"))?;
        socket
            .bind_device(Some(config.interface.as_bytes()))
            .map_err(fail("bind to device"))?;
        match config.family {
            Family::Ipv4 => {
                // Only the groups this socket joined: with the default (IP_MULTICAST_ALL on) a
                // raw socket also gets every group any other socket joined on the interface.
                socket
                    .set_multicast_all_v4(false)
                    .map_err(fail("disable IP_MULTICAST_ALL"))?;
                setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
                    .map_err(|errno| fail("enable IP_PKTINFO")(errno.into()))?;
            }
            Family::Ipv6 => {
                socket
                    .set_multicast_all_v6(false)
                    .map_err(fail("disable IPV6_MULTICAST_ALL"))?;
                setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
                    .map_err(|errno| fail("enable IPV6_RECVPKTINFO")(errno.into()))?;
                setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)
                    .map_err(|errno| fail("enable IPV6_RECVHOPLIMIT")(errno.into()))?;
            }
        }
        set_advert_send_options(&socket, config.family, interface.index)
            .map_err(|(action, source)| fail(action)(source))?;
        // The arrival time of each advert: the RFC timers run from it (see `monotonic_arrival`).
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .map_err(|errno| fail("enable SO_TIMESTAMPNS")(errno.into()))?;
        enlarge_receive_queue(&socket);
        match &config.mode {
            Mode::Multicast => match config.family {
                Family::Ipv4 => socket
                    .join_multicast_v4_n(
                        &MULTICAST_V4,
                        &InterfaceIndexOrAddress::Index(interface.index),
                    )
                    .map_err(fail("join 224.0.0.18"))?,
                Family::Ipv6 => socket
                    .join_multicast_v6(&MULTICAST_V6, interface.index)
                    .map_err(fail("join ff02::12"))?,
            },
            Mode::Unicast {
                source: Some(source),
                ..
            } => {
                // Safe to bind here: unicast mode expects no multicast.
                socket
                    .bind(&SockAddr::from(SocketAddr::new(*source, 0)))
                    .map_err(fail("bind to the unicast source"))?;
            }
            Mode::Unicast { source: None, .. } => {}
        }
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
            .map_err(fail("register with tokio"))?;
        Ok(Self {
            socket,
            interface_index: interface.index,
            source,
            vips,
            config,
            counters: Counters::default(),
        })
    }

    /// The configuration the socket was opened with.
    pub fn config(&self) -> &VrrpSocketConfig {
        &self.config
    }

    /// The interface index the socket is bound to.
    pub fn interface_index(&self) -> u32 {
        self.interface_index
    }

    fn socket_destinations(&self) -> Vec<SocketAddr> {
        let targets: Vec<IpAddr> = match (&self.config.mode, self.config.family) {
            (Mode::Multicast, Family::Ipv4) => vec![IpAddr::V4(MULTICAST_V4)],
            (Mode::Multicast, Family::Ipv6) => vec![IpAddr::V6(MULTICAST_V6)],
            (Mode::Unicast { peers, .. }, _) => peers.clone(),
        };
        targets
            .into_iter()
            .map(|target| self.socket_address(target))
            .collect()
    }

    fn socket_address(&self, target: IpAddr) -> SocketAddr {
        match target {
            IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, 0)),
            // Link-local and multicast IPv6 destinations need the interface as scope.
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, self.interface_index)),
        }
    }

    /// Sends `payload` to one destination (a group or a peer), from [`VrrpTransport::source_address`].
    pub async fn send_to_address(
        &self,
        payload: &[u8],
        destination: SocketAddr,
    ) -> Result<(), NetError> {
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, || {
                send_from(self.socket.as_raw_fd(), self.source, payload, destination)
            })
            .await;
        sent.map_err(|source| NetError::Send {
            destination: destination.ip(),
            interface: self.config.interface.clone(),
            source,
        })?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reads one datagram; `Ok(None)` when it was dropped (and counted).
    fn read_one(&self) -> io::Result<Option<ReceivedAdvert>> {
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        let mut control = nix::cmsg_space!(
            libc::in6_pktinfo,
            libc::c_int,
            libc::in_pktinfo,
            libc::timespec
        );
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let length = message.bytes;
        // Larger than any VRRP message can be: what was cut off cannot be checked, drop it.
        let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
        let from = message.address;
        let control = message
            .cmsgs()
            .map(|messages| ControlFacts::read(messages, self.interface_index))
            .unwrap_or(ControlFacts::none(self.interface_index));
        let ControlFacts {
            interface,
            destination,
            hop_limit,
            received_at,
        } = control;
        let data = buffer.get(..length).unwrap_or_default();
        let parsed = match self.config.family {
            _ if truncated => None,
            Family::Ipv4 => parse_ipv4(data),
            Family::Ipv6 => {
                let source = from.as_ref().and_then(SockaddrStorage::as_sockaddr_in6);
                match (source, destination, hop_limit) {
                    (Some(source), Some(destination), Some(hop_limit)) => Some((
                        IpAddr::V6(source.ip()),
                        destination,
                        hop_limit,
                        data.to_vec(),
                    )),
                    _ => None,
                }
            }
        };
        let Some((source, destination, ttl, payload)) = parsed else {
            self.counters
                .dropped_malformed
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                interface = %self.config.interface,
                length,
                "dropped VRRP datagram: unusable IP framing"
            );
            return Ok(None);
        };
        // RFC 5798 §7.1: a multicast advert with TTL / hop limit other than 255 may have crossed
        // a router and MUST be discarded.
        if self.config.mode == Mode::Multicast && ttl != TTL {
            self.counters.dropped_ttl.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                interface = %self.config.interface,
                %source,
                ttl,
                "dropped VRRP advert: TTL / hop limit is not 255"
            );
            return Ok(None);
        }
        // keepalived's unicast mode: only configured peers count; TTL is not checked. A
        // stranger's datagram is counted as dropped and handed over flagged: the caller tells a
        // peer that was renumbered (our VRID: a silent split brain otherwise) from noise.
        let from_unknown_peer = matches!(
            &self.config.mode,
            Mode::Unicast { peers, .. } if !peers.contains(&source)
        );
        let counter = if from_unknown_peer {
            &self.counters.dropped_unknown_peer
        } else {
            &self.counters.received
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(Some(ReceivedAdvert {
            payload,
            source,
            destination,
            ttl,
            interface,
            received_at,
            from_unknown_peer,
        }))
    }
}

/// The receive queue asked for: about a thousand small adverts (the kernel charges each about
/// 1 KiB), so that a flood of forged adverts does not push the master's out of the queue while
/// the instance task is off the CPU for a moment. The default (net.core.rmem_default, 208 KiB)
/// held 0.02 s of a 10 000 packets/s flood.
const RECEIVE_QUEUE: usize = 1 << 20;

/// Sets the receive queue to [`RECEIVE_QUEUE`]: with CAP_NET_ADMIN past net.core.rmem_max
/// (SO_RCVBUFFORCE), else up to it. Best effort: the default queue works, only less well.
fn enlarge_receive_queue(socket: &Socket) {
    if setsockopt(socket, sockopt::RcvBufForce, &RECEIVE_QUEUE).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &RECEIVE_QUEUE);
    }
}

/// Arrival stamps older than this are not trusted: the wall clock may have been stepped between
/// the kernel's stamp and our reading of it. An honest one is never this old, since the socket is
/// read as soon as it is readable.
const MAX_ARRIVAL_AGE: Duration = Duration::from_secs(1);

/// What a received datagram's control messages say: the interface it arrived on, its IPv6
/// destination and hop limit (IPv4 carries those in the header), and the kernel's receive stamp.
struct ControlFacts {
    interface: u32,
    destination: Option<IpAddr>,
    hop_limit: Option<u8>,
    received_at: Option<std::time::Instant>,
}

impl ControlFacts {
    fn none(interface: u32) -> Self {
        Self {
            interface,
            destination: None,
            hop_limit: None,
            received_at: None,
        }
    }

    fn read(messages: impl Iterator<Item = ControlMessageOwned>, interface: u32) -> Self {
        let mut facts = Self::none(interface);
        for control in messages {
            match control {
                ControlMessageOwned::ScmTimestampns(stamp) => {
                    facts.received_at = monotonic_arrival(stamp);
                }
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    facts.interface = u32::try_from(info.ipi_ifindex).unwrap_or(facts.interface);
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    facts.interface = info.ipi6_ifindex;
                    facts.destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                ControlMessageOwned::Ipv6HopLimit(limit) => {
                    facts.hop_limit = u8::try_from(limit).ok();
                }
                _ => {}
            }
        }
        facts
    }
}

/// Maps the kernel's arrival stamp (`CLOCK_REALTIME`, the only clock `SO_TIMESTAMPNS` offers) onto
/// the monotonic clock the router runs on, by its age. `None` when the age makes no sense (a
/// stamp from the future or older than [`MAX_ARRIVAL_AGE`]: the wall clock moved), and the reader
/// falls back to the time of reading.
fn monotonic_arrival(stamp: nix::sys::time::TimeSpec) -> Option<Instant> {
    let seconds = u64::try_from(stamp.tv_sec()).ok()?;
    let nanos = u32::try_from(stamp.tv_nsec()).ok()?;
    let stamped = SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))?;
    let (now, wall_now) = (Instant::now(), SystemTime::now());
    let age = wall_now.duration_since(stamped).ok()?;
    if age > MAX_ARRIVAL_AGE {
        return None;
    }
    now.checked_sub(age)
}

/// Splits a raw IPv4 datagram (the kernel hands IPv4 raw sockets the header too) into source,
/// destination, TTL and payload; `None` when the header does not hold together.
fn parse_ipv4(data: &[u8]) -> Option<(IpAddr, IpAddr, u8, Vec<u8>)> {
    let first = *data.first()?;
    let header_length = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_length < 20 || data.len() < header_length {
        return None;
    }
    let total_length = usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?]));
    let end = total_length.clamp(header_length, data.len());
    let ttl = *data.get(8)?;
    let source: [u8; 4] = data.get(12..16)?.try_into().ok()?;
    let destination: [u8; 4] = data.get(16..20)?.try_into().ok()?;
    Some((
        IpAddr::V4(Ipv4Addr::from(source)),
        IpAddr::V4(Ipv4Addr::from(destination)),
        ttl,
        data.get(header_length..end)?.to_vec(),
    ))
}

/// The source address adverts carry on `interface` now: the pinned unicast source, else the
/// interface's first IPv4 address or IPv6 link-local for the group, the route's source for the
/// first unicast peer; never one of `vips` (a VIP is the kernel's choice once the node's own
/// address is gone or the VIP became primary). Every advert is sent from it explicitly
/// ([`send_from`]), so `source_address()` is what the wire says, for every peer alike.
fn advert_source(
    config: &VrrpSocketConfig,
    interface: &Interface,
    vips: &[IpAddr],
) -> Result<IpAddr, NetError> {
    Ok(match (&config.family, &config.mode) {
        (
            _,
            Mode::Unicast {
                source: Some(source),
                ..
            },
        ) => *source,
        // For IPv6 a global address for a global peer, not the link-local.
        (
            _,
            Mode::Unicast {
                peers,
                source: None,
            },
        ) if !peers.is_empty() => {
            let routed =
                kernel_source(&config.interface, interface.index, peers[0]).map_err(|source| {
                    NetError::Socket {
                        action: "find the source address for the first peer",
                        interface: config.interface.clone(),
                        source,
                    }
                })?;
            if vips.contains(&routed) {
                interface
                    .own_address_like(routed, vips)
                    .ok_or_else(|| NetError::NoAddress {
                        interface: config.interface.clone(),
                        what: "address that is not a VIP",
                    })?
            } else {
                routed
            }
        }
        (Family::Ipv4, _) => IpAddr::V4(interface.require_own_ipv4(vips)?),
        (Family::Ipv6, _) => IpAddr::V6(interface.require_own_link_local(vips)?),
    })
}

/// Sends `payload` to `destination` from `source` (`IP_PKTINFO` / `IPV6_PKTINFO`), whatever the
/// kernel would pick: its pick may be a VIP, or differ from peer to peer, while the v3 IPv4
/// checksum and the peers' tie-break need the one source the advert was built for.
fn send_from(
    socket: std::os::fd::RawFd,
    source: IpAddr,
    payload: &[u8],
    destination: SocketAddr,
) -> io::Result<usize> {
    let iov = [io::IoSlice::new(payload)];
    let flags = MsgFlags::MSG_DONTWAIT;
    let sent = match (source, destination) {
        (IpAddr::V4(source), SocketAddr::V4(target)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(source).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            sendmsg(
                socket,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                flags,
                Some(&SockaddrIn::from(target)),
            )
        }
        (IpAddr::V6(source), SocketAddr::V6(target)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.octets(),
                },
                ipi6_ifindex: 0,
            };
            sendmsg(
                socket,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                flags,
                Some(&SockaddrIn6::from(target)),
            )
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source {source} and destination {destination} differ in family"),
            ));
        }
    };
    sent.map_err(io::Error::from)
}

/// The source address the kernel would use towards `peer` on `interface`: a connected UDP
/// socket learns it from the routing table without sending anything.
fn kernel_source(interface: &str, index: u32, peer: IpAddr) -> io::Result<IpAddr> {
    let probe = Socket::new(domain_of(peer), Type::DGRAM, None)?;
    probe.bind_device(Some(interface.as_bytes()))?;
    let target = match peer {
        IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, 9)),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 9, 0, index)),
    };
    probe.connect(&SockAddr::from(target))?;
    probe
        .local_addr()?
        .as_socket()
        .map(|local| local.ip())
        .ok_or_else(|| io::Error::other("the probe socket has no IP address"))
}

fn domain_of(address: IpAddr) -> Domain {
    match address {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    }
}

impl VrrpTransport for VrrpSocket {
    /// Sends to the group (multicast) or to every peer (unicast). Every peer is tried; the first
    /// error is returned after the others were attempted.
    async fn send(&self, payload: &[u8]) -> Result<(), NetError> {
        let mut first_error = None;
        for destination in self.socket_destinations() {
            if let Err(error) = self.send_to_address(payload, destination).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn destinations(&self) -> Vec<IpAddr> {
        self.socket_destinations()
            .into_iter()
            .map(|destination| destination.ip())
            .collect()
    }

    async fn send_to(&self, payload: &[u8], destination: IpAddr) -> Result<(), NetError> {
        self.send_to_address(payload, self.socket_address(destination))
            .await
    }

    fn interface_index(&self) -> Option<u32> {
        Some(self.interface_index)
    }

    fn follow_source_address(&mut self) -> Result<Option<(IpAddr, IpAddr)>, NetError> {
        if let Mode::Unicast {
            source: Some(_), ..
        } = self.config.mode
        {
            return Ok(None);
        }
        let source = advert_source(
            &self.config,
            &Interface::lookup(&self.config.interface)?,
            &self.vips,
        )?;
        if source == self.source {
            return Ok(None);
        }
        let changed = (self.source, source);
        self.source = source;
        Ok(Some(changed))
    }

    fn set_unicast_peers(&mut self, new: Vec<IpAddr>) -> Result<(), NetError> {
        let family = domain_of(self.source);
        let Mode::Unicast { peers, .. } = &mut self.config.mode else {
            return Err(NetError::Invalid {
                what: "unicast peers",
                detail: "a multicast socket sends to the VRRP group".into(),
            });
        };
        if let Some(wrong) = new.iter().find(|peer| domain_of(**peer) != family) {
            return Err(NetError::Invalid {
                what: "unicast peer",
                detail: format!(
                    "{wrong} is not of the socket's family {:?}",
                    self.config.family
                ),
            });
        }
        // The receive filter and the destinations read the list on every advert.
        *peers = new;
        Ok(())
    }

    fn reopen_if_moved(&mut self) -> Result<Option<(u32, u32)>, NetError> {
        // Only the index: one ioctl, where a full lookup reads every address of the host.
        let index = crate::netlink::interface_index(&self.config.interface)?;
        if index == self.interface_index {
            return Ok(None);
        }
        let moved = (self.interface_index, index);
        let mut reopened = Self::open_with_vips(self.config.clone(), self.vips.clone())?;
        // The counters describe the instance's traffic, not one socket's.
        reopened.counters = std::mem::take(&mut self.counters);
        *self = reopened;
        Ok(Some(moved))
    }

    async fn recv(&self) -> Result<ReceivedAdvert, NetError> {
        loop {
            // async_io retries on WouldBlock; a dropped datagram is Ok(None): read the next one.
            let read = self
                .socket
                .async_io(Interest::READABLE, || self.read_one())
                .await;
            match read {
                Ok(Some(advert)) => return Ok(advert),
                Ok(None) => {}
                Err(source) => {
                    return Err(NetError::Socket {
                        action: "receive advert",
                        interface: self.config.interface.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn source_address(&self) -> IpAddr {
        self.source
    }

    fn stats(&self) -> TransportStats {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ttl: u8, total: u16) -> Vec<u8> {
        let mut packet = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 112, 0, 0, 198, 51, 100, 10, 224, 0, 0, 18,
        ];
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet
    }

    #[test]
    fn ipv4_header_is_split_from_the_payload() {
        let mut packet = header(255, 24);
        packet.extend_from_slice(&[1, 2, 3, 4, 0xee]); // one byte of trailing padding
        let (source, destination, ttl, payload) = parse_ipv4(&packet).unwrap();
        assert_eq!(source, "198.51.100.10".parse::<IpAddr>().unwrap());
        assert_eq!(destination, IpAddr::V4(MULTICAST_V4));
        assert_eq!(ttl, 255);
        assert_eq!(payload, vec![1, 2, 3, 4]);
    }

    #[test]
    fn peers_and_sources_of_the_other_family_are_refused_before_any_socket() {
        for (peers, source) in [
            (vec!["2001:db8::1".parse().unwrap()], None),
            (vec![], Some("2001:db8::1".parse().unwrap())),
        ] {
            let error = VrrpSocket::open(VrrpSocketConfig {
                interface: "lo".into(),
                family: Family::Ipv4,
                mode: Mode::Unicast { peers, source },
            })
            .unwrap_err();
            assert!(matches!(error, NetError::Invalid { .. }), "{error}");
        }
    }

    #[test]
    fn malformed_ipv4_headers_are_rejected() {
        assert!(parse_ipv4(&[]).is_none());
        assert!(parse_ipv4(&header(255, 20)[..19]).is_none());
        let mut v6 = header(255, 20);
        v6[0] = 0x65;
        assert!(parse_ipv4(&v6).is_none());
        let mut short_ihl = header(255, 20);
        short_ihl[0] = 0x44;
        assert!(parse_ipv4(&short_ihl).is_none());
        let mut long_ihl = header(255, 20);
        long_ihl[0] = 0x4f;
        assert!(parse_ipv4(&long_ihl).is_none());
        // A total length beyond the data is clamped, not trusted.
        let (_, _, _, payload) = parse_ipv4(&header(255, 9000)).unwrap();
        assert!(payload.is_empty());
    }
}
