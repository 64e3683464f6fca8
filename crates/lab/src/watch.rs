//! Watching a lab host's addresses: the moment the kernel of a host reports that an address (a
//! VIP) was added or removed, seen by an rtnetlink subscription from a thread inside the host's
//! namespace. This is how the end-to-end tests, the failover benchmark and the `vipd lab` demo
//! time a takeover. It is the lab's own small netlink reader, not vipd-net's monitor: like the
//! lab's other checks, it shares no code of vipd's with what it measures; the messages are
//! decoded by netlink-packet-route, the crate rtnetlink is built on.

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
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use crate::{Lab, LabError};

// linux/rtnetlink.h: the multicast groups of address changes.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// How often a waiting watch looks at its deadline and its cancel flag.
const POLL: Duration = Duration::from_millis(50);
/// How long [`AddressWatch::start`] waits for the subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which change of the address to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
}

/// When a watch ends.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// At the first change of this kind.
    Change(Change),
    /// After this many changes of either kind.
    Count(usize),
}

/// What to watch for: changes of one address, within a time, optionally telling another thread
/// at the moment the watch is satisfied or giving up when a flag is set.
#[derive(Debug)]
pub struct AddressWatch {
    address: IpAddr,
    until: Until,
    timeout: Duration,
    then: Option<mpsc::Sender<()>>,
    cancel: Option<Arc<AtomicBool>>,
}

/// What a watch saw: the changes of its address in order, and whether it was satisfied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub changes: Vec<(Change, Instant)>,
    /// The change waited for was seen, or the count reached (not a timeout or a cancel).
    pub satisfied: bool,
}

impl Seen {
    /// When the watch was satisfied; `None` after a timeout or a cancel.
    pub fn at(&self) -> Option<Instant> {
        self.satisfied
            .then(|| self.changes.last().map(|(_, at)| *at))
            .flatten()
    }

    /// When the first change was, if it was `change`.
    pub fn first(&self, change: Change) -> Option<Instant> {
        self.changes
            .first()
            .filter(|(seen, _)| *seen == change)
            .map(|(_, at)| *at)
    }
}

/// A running watch: a thread in the host's namespace.
#[derive(Debug)]
pub struct Watching {
    thread: JoinHandle<Result<Result<Seen, LabError>, LabError>>,
}

impl AddressWatch {
    /// Waits (at most `timeout`) for `address` to be added.
    pub fn added(address: IpAddr, timeout: Duration) -> Self {
        Self::until(address, Until::Change(Change::Added), timeout)
    }

    /// Waits (at most `timeout`) for `address` to be removed.
    pub fn removed(address: IpAddr, timeout: Duration) -> Self {
        Self::until(address, Until::Change(Change::Removed), timeout)
    }

    /// Records the first `count` changes of `address`, of either kind, for at most `timeout`.
    pub fn changes(address: IpAddr, count: usize, timeout: Duration) -> Self {
        Self::until(address, Until::Count(count), timeout)
    }

    fn until(address: IpAddr, until: Until, timeout: Duration) -> Self {
        Self {
            address,
            until,
            timeout,
            then: None,
            cancel: None,
        }
    }

    /// Also sends on `then` the moment the watch is satisfied, for a step that must follow it at
    /// once (the failover benchmark's trigger).
    #[must_use]
    pub fn then_send(mut self, then: mpsc::Sender<()>) -> Self {
        self.then = Some(then);
        self
    }

    /// Gives up (as if timed out) once `cancel` is set, e.g. by a signal handler.
    #[must_use]
    pub fn cancelled_by(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Starts watching in lab host `host`; returns once the subscription is in place, so that
    /// nothing that happens after this call is missed.
    pub fn start(self, lab: &Lab, host: usize) -> Result<Watching, LabError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = lab.spawn_in_host(host, move || self.run(&ready_tx))?;
        match ready_rx.recv_timeout(SUBSCRIBE_TIMEOUT) {
            Ok(Ok(())) => Ok(Watching { thread }),
            Ok(Err(error)) => Err(error),
            // The thread ended without subscribing: entering the namespace failed.
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Ok(Err(error)) => Err(error),
                _ => Err(LabError::Timeout {
                    what: format!("the address watch in host {host} to subscribe"),
                }),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LabError::Timeout {
                what: format!("the address watch in host {host} to subscribe"),
            }),
        }
    }

    fn run(self, ready: &mpsc::Sender<Result<(), LabError>>) -> Result<Seen, LabError> {
        let os = |action: &str| {
            let action = action.to_owned();
            move |errno: Errno| LabError::Os {
                action,
                source: errno.into(),
            }
        };
        let subscribed = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(os("netlink socket"))
        .and_then(|socket| {
            let groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
            bind(socket.as_raw_fd(), &NetlinkAddr::new(0, groups))
                .map_err(os("netlink bind to the address groups"))?;
            let poll = TimeVal::milliseconds(i64::try_from(POLL.as_millis()).unwrap_or(50));
            setsockopt(&socket, sockopt::ReceiveTimeout, &poll)
                .map_err(os("netlink receive timeout"))?;
            Ok(socket)
        });
        let socket = match subscribed {
            Ok(socket) => {
                let _ = ready.send(Ok(()));
                socket
            }
            Err(error) => {
                // The caller learns of it through `ready`.
                let _ = ready.send(Err(error));
                return Ok(Seen::default());
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut seen = Seen::default();
        loop {
            let cancelled = self
                .cancel
                .as_ref()
                .is_some_and(|cancel| cancel.load(Ordering::SeqCst));
            if cancelled || Instant::now() >= deadline {
                return Ok(seen);
            }
            match recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Ok(length) => {
                    let at = Instant::now();
                    for (change, address) in address_events(&buffer[..length]) {
                        if address != self.address {
                            continue;
                        }
                        seen.changes.push((change, at));
                        seen.satisfied = match self.until {
                            Until::Change(wanted) => change == wanted,
                            Until::Count(count) => seen.changes.len() >= count,
                        };
                        if seen.satisfied {
                            if let Some(then) = &self.then {
                                let _ = then.send(());
                            }
                            return Ok(seen);
                        }
                    }
                }
                // The poll timeout; an overrun (ENOBUFS) lost events no later one repeats, but
                // the address is still to come if it has not come yet.
                Err(Errno::EAGAIN | Errno::EINTR | Errno::ENOBUFS) => {}
                Err(errno) => return Err(os("netlink receive")(errno)),
            }
        }
    }
}

impl Watching {
    /// Waits for the watch to end: what it saw.
    pub fn seen(self) -> Result<Seen, LabError> {
        match self.thread.join() {
            Ok(result) => result?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Waits for the watch to end: when it was satisfied, `None` after a timeout or a cancel.
    pub fn wait(self) -> Result<Option<Instant>, LabError> {
        Ok(self.seen()?.at())
    }
}

/// The (change, address) pairs of the `RTM_NEWADDR` / `RTM_DELADDR` messages in one datagram.
fn address_events(mut datagram: &[u8]) -> impl Iterator<Item = (Change, IpAddr)> {
    let mut events = Vec::new();
    // A checked buffer's length field is at least a header and at most what is left.
    while let Ok(buffer) = NetlinkBuffer::new_checked(datagram) {
        let length = usize::try_from(buffer.length()).unwrap_or(usize::MAX);
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..length]);
        if let Ok(NetlinkMessage {
            payload: NetlinkPayload::InnerMessage(message),
            ..
        }) = message
        {
            let event = match message {
                RouteNetlinkMessage::NewAddress(address) => Some((Change::Added, address)),
                RouteNetlinkMessage::DelAddress(address) => Some((Change::Removed, address)),
                _ => None,
            };
            events.extend(event.and_then(|(change, address)| {
                message_address(&address).map(|address| (change, address))
            }));
        }
        // Messages are aligned to 4 bytes.
        datagram = datagram.get((length + 3) & !3..).unwrap_or_default();
    }
    events.into_iter()
}

/// The address of one message: IFA_LOCAL, else IFA_ADDRESS (IPv4 carries both, and on a
/// point-to-point link IFA_ADDRESS is the peer's; IPv6 carries IFA_ADDRESS only).
fn message_address(message: &AddressMessage) -> Option<IpAddr> {
    let (mut local, mut address) = (None, None);
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = local.or(Some(*ip)),
            AddressAttribute::Address(ip) => address = address.or(Some(*ip)),
            _ => {}
        }
    }
    local.or(address)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    // linux/rtnetlink.h and linux/if_addr.h, to build what the kernel sends.
    const RTM_NEWADDR: u16 = 20;
    const RTM_DELADDR: u16 = 21;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const NLMSG_HEADER: usize = 16;

    fn align(length: usize) -> usize {
        (length + 3) & !3
    }

    /// An RTM_NEWADDR for 198.51.100.100/24 as the kernel sends it (IFA_ADDRESS, IFA_LOCAL, a
    /// label), followed by an RTM_DELADDR for 2001:db8::1:0.
    fn datagram() -> Vec<u8> {
        fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
            let length = u16::try_from(4 + value.len()).unwrap();
            let mut bytes = [length.to_ne_bytes(), kind.to_ne_bytes()].concat();
            bytes.extend_from_slice(value);
            bytes.resize(align(bytes.len()), 0);
            bytes
        }
        fn message(kind: u16, family: u8, attributes: &[Vec<u8>]) -> Vec<u8> {
            let mut body = vec![family, 24, 0, 0, 2, 0, 0, 0];
            for attribute in attributes {
                body.extend_from_slice(attribute);
            }
            let length = u32::try_from(NLMSG_HEADER + body.len()).unwrap();
            let mut bytes = length.to_ne_bytes().to_vec();
            bytes.extend_from_slice(&kind.to_ne_bytes());
            bytes.extend_from_slice(&[0; 10]);
            bytes.extend_from_slice(&body);
            bytes
        }
        let v4 = [198, 51, 100, 100];
        let v6 = "2001:db8::1:0".parse::<Ipv6Addr>().unwrap().octets();
        let mut bytes = message(
            RTM_NEWADDR,
            2,
            &[
                attribute(IFA_ADDRESS, &v4),
                attribute(IFA_LOCAL, &v4),
                attribute(3, b"eth0\0"),
            ],
        );
        bytes.extend(message(RTM_DELADDR, 10, &[attribute(IFA_ADDRESS, &v6)]));
        bytes
    }

    #[test]
    fn additions_and_removals_are_read_from_a_datagram() {
        let events: Vec<_> = address_events(&datagram()).collect();
        let v4: IpAddr = "198.51.100.100".parse().unwrap();
        let v6: IpAddr = "2001:db8::1:0".parse().unwrap();
        assert_eq!(events, [(Change::Added, v4), (Change::Removed, v6)]);
    }

    #[test]
    fn truncated_datagrams_end_the_reading() {
        let bytes = datagram();
        for cut in 0..bytes.len() {
            let _ = address_events(&bytes[..cut]).count();
        }
    }
}
