//! Watching a routed lab's route for one VIP: the moment the kernel of the router reports a
//! change of it, seen by an rtnetlink subscription from a thread inside the router's namespace,
//! and the next hops right after (read with `ip route`, the kernel's whole view, so that an IPv6
//! multipath route, which the kernel may report one next hop at a time, reads right too). This
//! times a withdrawal to the millisecond where polling `ip route` costs a few per look.

use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike as _};
use rtnetlink::packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

use crate::LabError;
use crate::routed::{Place, RoutedLab, next_hops};
use crate::topology::ip;

// linux/rtnetlink.h: the multicast groups of route changes.
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
/// How often the watching thread looks at its stop flag and deadline.
const POLL: Duration = Duration::from_millis(50);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One change of the watched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    /// When the kernel's notification arrived.
    pub at: Instant,
    /// The route's next hops right after; empty when no node announces the VIP any more.
    pub next_hops: Vec<IpAddr>,
}

/// A running watch of one VIP's route; [`RouteWatch::stop`] returns what it saw.
#[derive(Debug)]
pub struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<Vec<RouteChange>, LabError>, LabError>>,
}

impl RouteWatch {
    /// Starts watching `vip`'s route in `place` (the router, usually) for at most
    /// `max_duration`; returns once subscribed, so that no later change is missed.
    pub fn start(
        lab: &RoutedLab,
        place: Place,
        vip: IpAddr,
        max_duration: Duration,
    ) -> Result<Self, LabError> {
        let netns = lab.netns(place)?.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = lab.spawn_in_namespace(place, move || {
            watch(&netns, vip, max_duration, &flag, &ready_tx)
        })?;
        let subscribed = || LabError::Timeout {
            what: format!("the route watch in {place:?} to subscribe"),
        };
        match ready_rx.recv_timeout(SUBSCRIBE_TIMEOUT) {
            Ok(Ok(())) => Ok(Self { stop, thread }),
            Ok(Err(error)) => Err(error),
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Ok(Err(error)) => Err(error),
                _ => Err(subscribed()),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(subscribed()),
        }
    }

    /// Stops watching; every change seen, in order.
    pub fn stop(self) -> Result<Vec<RouteChange>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(result) => result?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl RouteChange {
    /// When `next_hop` first left the route, among `changes`.
    pub fn first_without(changes: &[Self], next_hop: IpAddr) -> Option<Instant> {
        changes
            .iter()
            .find(|change| !change.next_hops.contains(&next_hop))
            .map(|change| change.at)
    }
}

fn watch(
    netns: &str,
    vip: IpAddr,
    max_duration: Duration,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<(), LabError>>,
) -> Result<Vec<RouteChange>, LabError> {
    let socket = match subscribe() {
        Ok(socket) => {
            let _ = ready.send(Ok(()));
            socket
        }
        Err(error) => {
            // The caller learns of it through `ready`.
            let _ = ready.send(Err(error));
            return Ok(Vec::new());
        }
    };
    let deadline = Instant::now() + max_duration;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut changes = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
            Ok(length) => {
                let at = Instant::now();
                if touches(&buffer[..length], vip) {
                    let family = if vip.is_ipv4() { "-4" } else { "-6" };
                    let route = ip(&[
                        "-n",
                        netns,
                        family,
                        "route",
                        "show",
                        "exact",
                        &vip.to_string(),
                    ])?;
                    changes.push(RouteChange {
                        at,
                        next_hops: next_hops(&route),
                    });
                }
            }
            // The poll timeout; an overrun (ENOBUFS) lost events, the next one reads the state.
            Err(Errno::EAGAIN | Errno::EINTR | Errno::ENOBUFS) => {}
            Err(errno) => {
                return Err(LabError::Os {
                    action: "netlink receive".into(),
                    source: errno.into(),
                });
            }
        }
    }
    Ok(changes)
}

fn subscribe() -> Result<std::os::fd::OwnedFd, LabError> {
    let os = |action: &'static str| {
        move |errno: Errno| LabError::Os {
            action: action.into(),
            source: errno.into(),
        }
    };
    let socket = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(os("netlink socket"))?;
    bind(
        socket.as_raw_fd(),
        &NetlinkAddr::new(0, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE),
    )
    .map_err(os("netlink bind to the route groups"))?;
    let poll = TimeVal::milliseconds(i64::try_from(POLL.as_millis()).unwrap_or(50));
    setsockopt(&socket, sockopt::ReceiveTimeout, &poll).map_err(os("netlink receive timeout"))?;
    Ok(socket)
}

/// Whether one datagram of `RTM_NEWROUTE` / `RTM_DELROUTE` messages names exactly `vip`/32
/// (/128).
fn touches(mut datagram: &[u8], vip: IpAddr) -> bool {
    // A checked buffer's length field is at least a header and at most what is left.
    while let Ok(buffer) = NetlinkBuffer::new_checked(datagram) {
        let length = usize::try_from(buffer.length()).unwrap_or(usize::MAX);
        if let Ok(NetlinkMessage {
            payload: NetlinkPayload::InnerMessage(message),
            ..
        }) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..length])
        {
            let route = match &message {
                RouteNetlinkMessage::NewRoute(route) | RouteNetlinkMessage::DelRoute(route) => {
                    Some(route)
                }
                _ => None,
            };
            if route.is_some_and(|route| destination(route) == Some(vip)) {
                return true;
            }
        }
        // Messages are aligned to 4 bytes.
        datagram = datagram.get((length + 3) & !3..).unwrap_or_default();
    }
    false
}

/// A host route's destination: RTA_DST of a /32 or /128.
fn destination(route: &RouteMessage) -> Option<IpAddr> {
    let host_length = match route.header.destination_prefix_length {
        32 | 128 => route.header.destination_prefix_length,
        _ => return None,
    };
    route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) if host_length == 32 => {
                Some(IpAddr::V4(*ip))
            }
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) if host_length == 128 => {
                Some(IpAddr::V6(*ip))
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // linux/rtnetlink.h, to build what the kernel sends.
    const RTM_NEWROUTE: u16 = 24;
    const RTA_DST: u16 = 1;
    const RTA_GATEWAY: u16 = 5;

    /// An RTM_NEWROUTE for `destination`/`length` (IPv4) via 198.51.100.11.
    fn new_route(destination: [u8; 4], length: u8) -> Vec<u8> {
        let attribute = |kind: u16, value: [u8; 4]| {
            let mut bytes = [8_u16.to_ne_bytes(), kind.to_ne_bytes()].concat();
            bytes.extend_from_slice(&value);
            bytes
        };
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
        let mut body = vec![2, length, 0, 0, 254, 12, 0, 1, 0, 0, 0, 0];
        body.extend(attribute(RTA_DST, destination));
        body.extend(attribute(RTA_GATEWAY, [198, 51, 100, 11]));
        let total = u32::try_from(16 + body.len()).unwrap();
        let mut bytes = total.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend(body);
        bytes
    }

    #[test]
    fn a_host_route_for_the_vip_is_seen_and_a_wider_one_is_not() {
        let vip: IpAddr = "203.0.113.100".parse().unwrap();
        assert!(touches(&new_route([203, 0, 113, 100], 32), vip));
        assert!(!touches(&new_route([203, 0, 113, 101], 32), vip));
        assert!(!touches(&new_route([203, 0, 113, 100], 24), vip));
        let mut two = new_route([203, 0, 113, 1], 32);
        two.extend(new_route([203, 0, 113, 100], 32));
        assert!(touches(&two, vip));
    }

    #[test]
    fn truncated_datagrams_end_the_reading() {
        let bytes = new_route([203, 0, 113, 100], 32);
        let vip: IpAddr = "203.0.113.100".parse().unwrap();
        for cut in 0..bytes.len() {
            assert!(!touches(&bytes[..cut], vip));
        }
    }
}
