//! In-memory stand-ins for the kernel: a LAN of VRRP transports, an address table, an announcer.
//! They let the daemon's supervisor be tested without root, on any machine.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use vipd_vrrp::wire::{MULTICAST_V4, MULTICAST_V6, TTL};

use crate::addresses::{AddressManager, Change, Vip};
use crate::announce::Announce;
use crate::{NetError, ReceivedAdvert, TransportStats, VrrpTransport};

#[derive(Debug)]
struct Member {
    id: usize,
    /// The interface's address now (renumbering changes it).
    address: IpAddr,
    inbox: mpsc::UnboundedSender<ReceivedAdvert>,
    connected: bool,
    /// The interface was deleted and created again: the transport's socket is bound to the old
    /// one and neither sends nor receives until it is reopened.
    stale: bool,
    /// The interface's index, which each recreation changes.
    index: u32,
    /// The peers last given to [`VrrpTransport::set_unicast_peers`]; the LAN itself delivers to
    /// every member, as multicast does.
    unicast_peers: Option<Vec<IpAddr>>,
}

/// A simulated LAN segment: every advert one member sends reaches every other connected member
/// of the same address family, as multicast would, with TTL 255.
#[derive(Debug, Clone, Default)]
pub struct MemoryLan {
    members: Arc<Mutex<Vec<Member>>>,
}

impl MemoryLan {
    /// An empty LAN.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects a new member with source address `address` and returns its transport.
    pub fn join(&self, address: IpAddr) -> MemoryTransport {
        let (inbox, receiver) = mpsc::unbounded_channel();
        let mut members = self.lock();
        let id = members.len();
        members.push(Member {
            id,
            address,
            inbox,
            connected: true,
            stale: false,
            index: 1,
            unicast_peers: None,
        });
        MemoryTransport {
            lan: self.clone(),
            id,
            address,
            receiver: tokio::sync::Mutex::new(receiver),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// Cuts (`false`) or restores (`true`) the member's cable: a cut member neither sends nor
    /// receives, like a host behind a failed switch port.
    pub fn set_connected(&self, address: IpAddr, connected: bool) {
        for member in self
            .lock()
            .iter_mut()
            .filter(|member| member.address == address)
        {
            member.connected = connected;
        }
    }

    /// Renumbers the member at `old`: its interface now has address `new`. Adverts its transport
    /// still sends from `old` are lost, as a peer drops adverts whose VRRPv3 checksum covers
    /// another source than the packet's.
    pub fn renumber(&self, old: IpAddr, new: IpAddr) {
        for member in self
            .lock()
            .iter_mut()
            .filter(|member| member.address == old)
        {
            member.address = new;
        }
    }

    /// Deletes the member's interface and creates it again (same name, another index): its
    /// transport neither sends nor receives until [`VrrpTransport::reopen_if_moved`].
    pub fn recreate_interface(&self, address: IpAddr) {
        for member in self
            .lock()
            .iter_mut()
            .filter(|member| member.address == address)
        {
            member.stale = true;
            member.index += 1;
        }
    }

    /// The unicast peers last set on the transport of the member at `address`, if any.
    pub fn unicast_peers(&self, address: IpAddr) -> Option<Vec<IpAddr>> {
        self.lock()
            .iter()
            .find(|member| member.address == address)
            .and_then(|member| member.unicast_peers.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, sender: usize, from: IpAddr, payload: &[u8]) -> bool {
        let members = self.lock();
        if !members.iter().any(|member| {
            member.id == sender && member.address == from && member.connected && !member.stale
        }) {
            return false;
        }
        let group = match from {
            IpAddr::V4(_) => IpAddr::V4(MULTICAST_V4),
            IpAddr::V6(_) => IpAddr::V6(MULTICAST_V6),
        };
        for member in members.iter().filter(|member| {
            member.connected
                && !member.stale
                && member.id != sender
                && member.address.is_ipv4() == from.is_ipv4()
        }) {
            // A member whose transport was dropped just misses the advert, like a dead host.
            let _ = member.inbox.send(ReceivedAdvert {
                payload: payload.to_vec(),
                source: from,
                destination: group,
                ttl: TTL,
                interface: 0,
                received_at: None,
                from_unknown_peer: false,
            });
        }
        true
    }
}

/// One member's end of a [`MemoryLan`].
#[derive(Debug)]
pub struct MemoryTransport {
    lan: MemoryLan,
    id: usize,
    address: IpAddr,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedAdvert>>,
    sent: AtomicU64,
    received: AtomicU64,
}

impl VrrpTransport for MemoryTransport {
    async fn send(&self, payload: &[u8]) -> Result<(), NetError> {
        // A cut cable loses the advert silently, as a real NIC without carrier would.
        if self.lan.deliver(self.id, self.address, payload) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn recv(&self) -> Result<ReceivedAdvert, NetError> {
        let advert = self
            .receiver
            .lock()
            .await
            .recv()
            .await
            .ok_or(NetError::Closed { what: "memory LAN" })?;
        self.received.fetch_add(1, Ordering::Relaxed);
        Ok(advert)
    }

    fn source_address(&self) -> IpAddr {
        self.address
    }

    fn follow_source_address(&mut self) -> Result<Option<(IpAddr, IpAddr)>, NetError> {
        let now = self.lan.lock()[self.id].address;
        let old = std::mem::replace(&mut self.address, now);
        Ok((old != now).then_some((old, now)))
    }

    fn reopen_if_moved(&mut self) -> Result<Option<(u32, u32)>, NetError> {
        let mut members = self.lan.lock();
        let member = &mut members[self.id];
        if !member.stale {
            return Ok(None);
        }
        member.stale = false;
        Ok(Some((member.index - 1, member.index)))
    }

    fn set_unicast_peers(&mut self, peers: Vec<IpAddr>) -> Result<(), NetError> {
        self.lan.lock()[self.id].unicast_peers = Some(peers);
        Ok(())
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            ..TransportStats::default()
        }
    }
}

/// An address table in memory, keyed by (interface, address, prefix), with the same idempotent
/// semantics as the kernel manager.
#[derive(Debug, Clone, Default)]
pub struct MemoryAddresses {
    present: Arc<Mutex<BTreeSet<(String, IpAddr, u8)>>>,
    /// How many of the next removals fail (and leave the address in place).
    failing_removals: Arc<Mutex<usize>>,
}

impl MemoryAddresses {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every address present, as (interface, address, prefix length).
    pub fn snapshot(&self) -> Vec<(String, IpAddr, u8)> {
        self.lock().iter().cloned().collect()
    }

    /// Makes the next `count` removals fail and leave their address in place, as a kernel that
    /// refuses the request (`ENOBUFS`, a netlink timeout) would.
    pub fn fail_next_removals(&self, count: usize) {
        *self
            .failing_removals
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = count;
    }

    /// Removes an address behind the manager's back, as NetworkManager might.
    pub fn remove_externally(&self, vip: &Vip) {
        self.lock().remove(&key(vip));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, IpAddr, u8)>> {
        self.present.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(vip: &Vip) -> (String, IpAddr, u8) {
    (vip.interface.clone(), vip.address, vip.prefix_len)
}

impl AddressManager for MemoryAddresses {
    async fn add(&self, vip: &Vip) -> Result<Change, NetError> {
        vip.validate()?;
        Ok(if self.lock().insert(key(vip)) {
            Change::Applied
        } else {
            Change::AlreadyInPlace
        })
    }

    async fn remove(&self, vip: &Vip) -> Result<Change, NetError> {
        {
            let mut failing = self
                .failing_removals
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *failing > 0 {
                *failing -= 1;
                return Err(NetError::Invalid {
                    what: "removal",
                    detail: format!("{} refused (a failure the test asked for)", vip.address),
                });
            }
        }
        Ok(if self.lock().remove(&key(vip)) {
            Change::Applied
        } else {
            Change::AlreadyInPlace
        })
    }

    async fn contains(&self, vip: &Vip) -> Result<bool, NetError> {
        Ok(self.lock().contains(&key(vip)))
    }
}

/// Records every announcement instead of sending it.
#[derive(Debug, Clone, Default)]
pub struct MemoryAnnouncer {
    sent: Arc<Mutex<Vec<IpAddr>>>,
}

impl MemoryAnnouncer {
    /// An announcer with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The addresses announced so far, in order.
    pub fn announced(&self) -> Vec<IpAddr> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Announce for MemoryAnnouncer {
    fn announce(&self, address: IpAddr) -> Result<(), NetError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(address);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn lan_delivers_to_the_other_members_of_the_family_only() {
        block_on(async {
            let lan = MemoryLan::new();
            let a = lan.join("198.51.100.1".parse().unwrap());
            let b = lan.join("198.51.100.2".parse().unwrap());
            let c = lan.join("2001:db8::3".parse().unwrap());
            a.send(&[1, 2, 3]).await.unwrap();
            let got = b.recv().await.unwrap();
            assert_eq!(got.payload, vec![1, 2, 3]);
            assert_eq!(got.source, a.source_address());
            assert_eq!(got.destination, IpAddr::V4(MULTICAST_V4));
            assert_eq!(got.ttl, 255);
            assert!(a.receiver.lock().await.try_recv().is_err(), "no loopback");
            assert!(
                c.receiver.lock().await.try_recv().is_err(),
                "no cross-family"
            );
            assert_eq!(a.stats().sent, 1);
            assert_eq!(b.stats().received, 1);
        });
    }

    #[test]
    fn a_cut_member_neither_sends_nor_receives() {
        block_on(async {
            let lan = MemoryLan::new();
            let a = lan.join("198.51.100.1".parse().unwrap());
            let b = lan.join("198.51.100.2".parse().unwrap());
            lan.set_connected(b.source_address(), false);
            a.send(&[1]).await.unwrap();
            b.send(&[2]).await.unwrap();
            assert!(b.receiver.lock().await.try_recv().is_err());
            assert!(a.receiver.lock().await.try_recv().is_err());
            lan.set_connected(b.source_address(), true);
            a.send(&[3]).await.unwrap();
            assert_eq!(b.recv().await.unwrap().payload, vec![3]);
        });
    }

    #[test]
    fn memory_addresses_are_idempotent_and_reconcile() {
        block_on(async {
            let table = MemoryAddresses::new();
            let vip = Vip::new("eth0", "198.51.100.100".parse().unwrap(), 24);
            assert_eq!(table.add(&vip).await.unwrap(), Change::Applied);
            assert_eq!(table.add(&vip).await.unwrap(), Change::AlreadyInPlace);
            table.remove_externally(&vip);
            let other = Vip::new("eth0", "203.0.113.7".parse().unwrap(), 32);
            table.add(&other).await.unwrap();
            let report = table
                .reconcile(std::slice::from_ref(&vip), std::slice::from_ref(&other))
                .await
                .unwrap();
            assert_eq!(report.added, vec![vip.clone()]);
            assert_eq!(report.removed, vec![other.clone()]);
            assert!(table.contains(&vip).await.unwrap());
            assert!(!table.contains(&other).await.unwrap());
            assert_eq!(table.remove(&vip).await.unwrap(), Change::Applied);
            assert_eq!(table.remove(&vip).await.unwrap(), Change::AlreadyInPlace);
        });
    }

    #[test]
    fn memory_announcer_records() {
        let announcer = MemoryAnnouncer::new();
        announcer
            .announce("198.51.100.100".parse().unwrap())
            .unwrap();
        assert_eq!(announcer.announced().len(), 1);
    }
}
