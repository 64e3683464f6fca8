//! The host the supervisor acts on, behind one trait: the real Linux host (raw sockets, rtnetlink,
//! AF_PACKET, netlink monitors) or an in-memory one for tests that need no root.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{broadcast, watch};
use tracing::{error, warn};
use vipd_config::VrrpInstance;
use vipd_net::{
    AddressEvent, AddressManager, AddressMonitor, Announce, Change, Family, Interface, LinkAdmin,
    LinkMonitor, LinkState, Mode, NetError, NetlinkAddresses, PacketAnnouncer, ReceivedAdvert,
    TransportStats, Vip, VirtualMac, VirtualMacTransport, VrrpSocket, VrrpSocketConfig,
    VrrpTransport,
};

/// Link state of interfaces by name: `true` when up.
pub type Links = BTreeMap<String, bool>;

/// What the supervisor needs from a host.
pub trait Host: Send + Sync + 'static {
    type Transport: VrrpTransport + 'static;
    type Addresses: AddressManager + 'static;
    type Announcer: Announce + 'static;
    /// A virtual MAC interface this host created for an instance.
    type VirtualMac: Send + 'static;

    /// The VRRP transport of one instance (its interface, family, multicast or unicast). With a
    /// virtual MAC it receives on the instance's interface and sends from the macvlan, which
    /// [`Host::create_virtual_mac`] must have created first.
    fn transport(&self, instance: &VrrpInstance) -> Result<Self::Transport>;
    /// Creates (or adopts) the macvlan of an instance with `virtual_mac`, set up so that only a
    /// master ever sends from it.
    fn create_virtual_mac(
        &self,
        instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> impl Future<Output = Result<Self::VirtualMac>> + Send;
    /// Deletes a macvlan made by [`Host::create_virtual_mac`], after its instance released.
    fn remove_virtual_mac(
        &self,
        virtual_mac: Self::VirtualMac,
    ) -> impl Future<Output = Result<()>> + Send;
    /// An announcer (GARP / unsolicited NA) on `interface`.
    fn announcer(&self, interface: &str) -> Result<Self::Announcer>;
    /// The address manager shared by every instance.
    fn addresses(&self) -> Arc<Self::Addresses>;
    /// The kernel index of `interface`, to match address events.
    fn interface_index(&self, interface: &str) -> Result<u32>;
    /// Starts following the link state of `interfaces` (those already followed are kept).
    fn follow_links(&self, interfaces: &[String]);
    /// Link state of every followed interface.
    fn links(&self) -> watch::Receiver<Links>;
    /// Address additions and removals on the host.
    fn address_events(&self) -> broadcast::Receiver<AddressEvent>;
}

/// The real host: everything through the kernel.
pub struct LinuxHost {
    addresses: Arc<LinuxAddresses>,
    links: watch::Sender<Links>,
    indexes: Arc<Mutex<BTreeMap<u32, String>>>,
    address_events: broadcast::Sender<AddressEvent>,
    virtual_macs: Arc<KeptVirtualMacs>,
}

/// The macvlans of this host's virtual MAC instances, by name. One deleted by someone else
/// (`ip link del vrrp.51`) is created again, as keepalived does with its vmac: otherwise an IPv4
/// instance would stay in Fault (its macvlan is gone) and an IPv6 one could not send, until vipd
/// restarts. Removing one through [`Host::remove_virtual_mac`] takes it out of here first.
struct KeptVirtualMacs {
    by_name: tokio::sync::Mutex<BTreeMap<String, KeptVirtualMac>>,
    /// The host's interface names by index, for link events without a name.
    indexes: Arc<Mutex<BTreeMap<u32, String>>>,
    addresses: Arc<LinuxAddresses>,
    address_events: broadcast::Sender<AddressEvent>,
    /// The index a recreated macvlan had when its instance started, by its index now. The
    /// instance matches address events on the first one (a VIP deleted by hand is put back at
    /// once), so the address monitor reports the new one as the old.
    first_index: Mutex<BTreeMap<u32, u32>>,
}

struct KeptVirtualMac {
    virtual_mac: VirtualMac,
    first_index: u32,
}

impl KeptVirtualMacs {
    /// Recreates `name` if it is one of ours and gone, retrying every second while it fails
    /// (its parent may be gone too) and while it is still wanted.
    async fn recreate(&self, name: &str) {
        let mut failed_before = false;
        loop {
            {
                let mut kept = self.by_name.lock().await;
                // Removed on purpose (reload, shutdown): nothing to keep.
                let Some(entry) = kept.get_mut(name) else {
                    return;
                };
                let old_index = entry.virtual_mac.index();
                // A late notification of a deletion already repaired, or of the macvlan an
                // instance that replaced ours created again.
                if Interface::lookup(name).is_ok_and(|interface| interface.index == old_index) {
                    return;
                }
                match entry.virtual_mac.recreate().await {
                    Ok(()) => {
                        let index = entry.virtual_mac.index();
                        if let Ok(mut first) = self.first_index.lock() {
                            first.remove(&old_index);
                            first.insert(index, entry.first_index);
                        }
                        if let Ok(mut indexes) = self.indexes.lock() {
                            indexes.insert(index, name.to_owned());
                        }
                        warn!(
                            interface = name,
                            recreated = entry.virtual_mac.recreated(),
                            "the virtual MAC interface was deleted by someone else; created it again"
                        );
                        // The VIPs went with the interface. The kernel said so while it was
                        // gone, when a master putting them back could only fail: say it again
                        // now that it can succeed (an IPv6 master stays master throughout).
                        for (address, prefix_len) in self.addresses.held_on(name) {
                            let _ = self.address_events.send(AddressEvent::Removed {
                                interface_index: entry.first_index,
                                address,
                                prefix_len,
                            });
                        }
                        return;
                    }
                    Err(error) if !failed_before => {
                        failed_before = true;
                        error!(interface = name, %error, "recreating the deleted virtual MAC interface failed; retrying every second");
                    }
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// `event` with the index the instances know for a recreated macvlan.
    fn with_first_index(&self, event: AddressEvent) -> AddressEvent {
        let Ok(first) = self.first_index.lock() else {
            return event;
        };
        let known = |index: u32| first.get(&index).copied().unwrap_or(index);
        match event {
            AddressEvent::Added {
                interface_index,
                address,
                prefix_len,
            } => AddressEvent::Added {
                interface_index: known(interface_index),
                address,
                prefix_len,
            },
            AddressEvent::Removed {
                interface_index,
                address,
                prefix_len,
            } => AddressEvent::Removed {
                interface_index: known(interface_index),
                address,
                prefix_len,
            },
        }
    }
}

impl LinuxHost {
    /// Opens the netlink connections and starts the link and address monitors. Needs a tokio
    /// runtime, CAP_NET_ADMIN.
    pub fn start() -> Result<Self> {
        let addresses = Arc::new(LinuxAddresses {
            netlink: NetlinkAddresses::new().context("opening rtnetlink")?,
            links: LinkAdmin::open().context("opening rtnetlink")?,
            up_while_holding: Mutex::default(),
            held: Mutex::default(),
        });
        let (links, _) = watch::channel(Links::new());
        let indexes: Arc<Mutex<BTreeMap<u32, String>>> = Arc::default();
        let (address_events, _) = broadcast::channel(256);

        let virtual_macs = Arc::new(KeptVirtualMacs {
            by_name: tokio::sync::Mutex::default(),
            indexes: Arc::clone(&indexes),
            addresses: Arc::clone(&addresses),
            address_events: address_events.clone(),
            first_index: Mutex::default(),
        });
        let mut link_monitor = LinkMonitor::start().context("starting the link monitor")?;
        let link_tx = links.clone();
        let link_indexes = Arc::clone(&indexes);
        let kept = Arc::clone(&virtual_macs);
        tokio::spawn(async move {
            while let Some(event) = link_monitor.next().await {
                let name = event.name.clone().or_else(|| {
                    link_indexes
                        .lock()
                        .ok()
                        .and_then(|indexes| indexes.get(&event.interface_index).cloned())
                });
                let Some(name) = name else { continue };
                if event.state == LinkState::Removed {
                    let (kept, name) = (Arc::clone(&kept), name.clone());
                    tokio::spawn(async move { kept.recreate(&name).await });
                }
                let up = event.state == LinkState::Up;
                link_tx.send_if_modified(|links| match links.get_mut(&name) {
                    // Only followed interfaces are published.
                    Some(state) if *state != up => {
                        *state = up;
                        true
                    }
                    _ => false,
                });
            }
            warn!("link monitor ended; link changes are no longer seen");
        });

        let mut address_monitor =
            AddressMonitor::start().context("starting the address monitor")?;
        let events = address_events.clone();
        let kept = Arc::clone(&virtual_macs);
        tokio::spawn(async move {
            while let Some(event) = address_monitor.next().await {
                // No receiver is fine: no instance cares right now.
                let _ = events.send(kept.with_first_index(event));
            }
            warn!("address monitor ended; instances fall back to periodic reconciliation");
        });

        Ok(Self {
            addresses,
            links,
            indexes,
            address_events,
            virtual_macs,
        })
    }
}

impl Host for LinuxHost {
    type Transport = LinuxTransport;
    type Addresses = LinuxAddresses;
    type Announcer = LinuxAnnouncer;
    /// Its name: the macvlan itself is kept by the host, which recreates it when deleted.
    type VirtualMac = String;

    fn transport(&self, instance: &VrrpInstance) -> Result<LinuxTransport> {
        let family = if instance.is_ipv6() {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        let mode = match &instance.unicast {
            None => Mode::Multicast,
            Some(unicast) => Mode::Unicast {
                peers: unicast.peers.clone(),
                source: unicast.source,
            },
        };
        let config = VrrpSocketConfig {
            interface: instance.interface.clone(),
            family,
            mode,
        };
        match &instance.virtual_mac {
            None => VrrpSocket::open(config)
                .map(LinuxTransport::Interface)
                .with_context(|| {
                    format!(
                        "vrrp {}: opening the VRRP socket on {}",
                        instance.name, instance.interface
                    )
                }),
            Some(virtual_mac) => VirtualMacTransport::open(config, &virtual_mac.interface)
                .map(LinuxTransport::VirtualMac)
                .with_context(|| {
                    format!(
                        "vrrp {}: opening the VRRP sockets on {} (receive) and {} (send)",
                        instance.name, instance.interface, virtual_mac.interface
                    )
                }),
        }
    }

    async fn create_virtual_mac(
        &self,
        instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> Result<String> {
        let family = if instance.is_ipv6() {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        let created = VirtualMac::create(
            &instance.interface,
            &virtual_mac.interface,
            instance.vrid,
            family,
        )
        .await
        .with_context(|| {
            format!(
                "vrrp {}: creating the virtual MAC interface {} on {}",
                instance.name, virtual_mac.interface, instance.interface
            )
        })?;
        if family == Family::Ipv6 {
            self.addresses
                .up_while_holding(&virtual_mac.interface, true);
        }
        let name = created.name().to_owned();
        let first_index = created.index();
        self.virtual_macs.by_name.lock().await.insert(
            name.clone(),
            KeptVirtualMac {
                virtual_mac: created,
                first_index,
            },
        );
        Ok(name)
    }

    async fn remove_virtual_mac(&self, name: String) -> Result<()> {
        self.addresses.up_while_holding(&name, false);
        let Some(kept) = self.virtual_macs.by_name.lock().await.remove(&name) else {
            return Ok(());
        };
        if let Ok(mut first) = self.virtual_macs.first_index.lock() {
            first.remove(&kept.virtual_mac.index());
        }
        kept.virtual_mac
            .remove()
            .await
            .with_context(|| format!("removing the virtual MAC interface {name}"))
    }

    fn announcer(&self, interface: &str) -> Result<LinuxAnnouncer> {
        let index = self.interface_index(interface)?;
        let packets = PacketAnnouncer::open(interface)
            .with_context(|| format!("opening a packet socket on {interface}"))?;
        Ok(LinuxAnnouncer {
            interface: interface.to_owned(),
            packets: Mutex::new((packets, index)),
        })
    }

    fn addresses(&self) -> Arc<LinuxAddresses> {
        Arc::clone(&self.addresses)
    }

    fn interface_index(&self, interface: &str) -> Result<u32> {
        Ok(Interface::lookup(interface)
            .with_context(|| format!("interface {interface}"))?
            .index)
    }

    fn follow_links(&self, interfaces: &[String]) {
        for name in interfaces {
            if self.links.borrow().contains_key(name) {
                continue;
            }
            // An interface that does not exist yet is down until the monitor says otherwise.
            let (up, index) = match Interface::lookup(name) {
                Ok(interface) => (interface.is_up, Some(interface.index)),
                Err(_) => (false, None),
            };
            if let (Some(index), Ok(mut indexes)) = (index, self.indexes.lock()) {
                indexes.insert(index, name.clone());
            }
            self.links.send_modify(|links| {
                links.insert(name.clone(), up);
            });
        }
    }

    fn links(&self) -> watch::Receiver<Links> {
        self.links.subscribe()
    }

    fn address_events(&self) -> broadcast::Receiver<AddressEvent> {
        self.address_events.subscribe()
    }
}

/// The real host's VIPs, through rtnetlink. An IPv6 virtual MAC interface is up only while it
/// holds VIPs, that is while its router is master (vipd_net::LinkAdmin says why): it comes up
/// before a VIP is added and goes down before one is removed.
pub struct LinuxAddresses {
    netlink: NetlinkAddresses,
    links: LinkAdmin,
    /// The interfaces that are up only while they hold VIPs.
    up_while_holding: Mutex<BTreeSet<String>>,
    /// The VIPs added through here and not removed since (address, prefix length), by
    /// interface: those a deleted interface took with it.
    held: Mutex<BTreeMap<String, BTreeSet<(IpAddr, u8)>>>,
}

impl LinuxAddresses {
    fn up_while_holding(&self, interface: &str, on: bool) {
        if let Ok(mut interfaces) = self.up_while_holding.lock() {
            if on {
                interfaces.insert(interface.to_owned());
            } else {
                interfaces.remove(interface);
            }
        }
    }

    fn held_on(&self, interface: &str) -> Vec<(IpAddr, u8)> {
        self.held.lock().map_or_else(
            |_| Vec::new(),
            |held| {
                held.get(interface)
                    .map(|vips| vips.iter().copied().collect())
                    .unwrap_or_default()
            },
        )
    }

    fn is_up_while_holding(&self, interface: &str) -> bool {
        self.up_while_holding
            .lock()
            .is_ok_and(|interfaces| interfaces.contains(interface))
    }
}

impl AddressManager for LinuxAddresses {
    async fn add(&self, vip: &Vip) -> Result<Change, NetError> {
        if self.is_up_while_holding(&vip.interface) {
            self.links.set_up(&vip.interface, true).await?;
        }
        let change = self.netlink.add(vip).await?;
        if let Ok(mut held) = self.held.lock() {
            held.entry(vip.interface.clone())
                .or_default()
                .insert((vip.address, vip.prefix_len));
        }
        Ok(change)
    }

    async fn remove(&self, vip: &Vip) -> Result<Change, NetError> {
        // Not held any more even when this fails: an interface that is gone holds nothing.
        if let Ok(mut held) = self.held.lock() {
            if let Some(vips) = held.get_mut(&vip.interface) {
                vips.remove(&(vip.address, vip.prefix_len));
            }
        }
        if self.is_up_while_holding(&vip.interface) {
            // Down first: the kernel then drops the IPv6 VIPs without reporting (MLD) the
            // groups it leaves from the shared MAC.
            self.links.set_up(&vip.interface, false).await?;
        }
        self.netlink.remove(vip).await
    }

    async fn contains(&self, vip: &Vip) -> Result<bool, NetError> {
        self.netlink.contains(vip).await
    }
}

/// The real host's announcer: a packet socket addressed to the interface's index, opened again
/// when a send fails because the interface was deleted and created again since (a virtual MAC
/// interface [`KeptVirtualMacs`] recreated has a new index).
pub struct LinuxAnnouncer {
    interface: String,
    /// The socket, and the interface index it sends to.
    packets: Mutex<(PacketAnnouncer, u32)>,
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

/// An in-memory host for supervisor tests: adverts on a [`vipd_net::MemoryLan`], addresses in a
/// table, announcements recorded, link state and address events driven by the test.
#[cfg(test)]
pub struct MemoryHost {
    pub lan: vipd_net::MemoryLan,
    /// The node's primary address on the LAN.
    pub address: std::net::IpAddr,
    pub addresses: Arc<vipd_net::MemoryAddresses>,
    pub announcer: vipd_net::MemoryAnnouncer,
    pub links: watch::Sender<Links>,
    pub address_events: broadcast::Sender<AddressEvent>,
    /// The virtual MAC interfaces that exist now, by name.
    pub virtual_macs: Arc<Mutex<Vec<String>>>,
}

#[cfg(test)]
impl MemoryHost {
    pub fn new(lan: &vipd_net::MemoryLan, address: std::net::IpAddr) -> Self {
        Self {
            lan: lan.clone(),
            address,
            addresses: Arc::default(),
            announcer: vipd_net::MemoryAnnouncer::new(),
            links: watch::channel(Links::new()).0,
            address_events: broadcast::channel(16).0,
            virtual_macs: Arc::default(),
        }
    }
}

#[cfg(test)]
impl Host for MemoryHost {
    type Transport = vipd_net::MemoryTransport;
    type Addresses = vipd_net::MemoryAddresses;
    type Announcer = vipd_net::MemoryAnnouncer;
    type VirtualMac = String;

    fn transport(&self, _instance: &VrrpInstance) -> Result<Self::Transport> {
        Ok(self.lan.join(self.address))
    }

    async fn create_virtual_mac(
        &self,
        _instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> Result<String> {
        let mut existing = self.virtual_macs.lock().expect("not poisoned");
        if !existing.contains(&virtual_mac.interface) {
            existing.push(virtual_mac.interface.clone());
        }
        Ok(virtual_mac.interface.clone())
    }

    async fn remove_virtual_mac(&self, virtual_mac: String) -> Result<()> {
        self.virtual_macs
            .lock()
            .expect("not poisoned")
            .retain(|name| *name != virtual_mac);
        Ok(())
    }

    fn announcer(&self, _interface: &str) -> Result<Self::Announcer> {
        Ok(self.announcer.clone())
    }

    fn addresses(&self) -> Arc<Self::Addresses> {
        Arc::clone(&self.addresses)
    }

    fn interface_index(&self, _interface: &str) -> Result<u32> {
        Ok(1)
    }

    fn follow_links(&self, interfaces: &[String]) {
        self.links.send_if_modified(|links| {
            let mut added = false;
            for name in interfaces {
                if !links.contains_key(name) {
                    links.insert(name.clone(), true);
                    added = true;
                }
            }
            added
        });
    }

    fn links(&self) -> watch::Receiver<Links> {
        self.links.subscribe()
    }

    fn address_events(&self) -> broadcast::Receiver<AddressEvent> {
        self.address_events.subscribe()
    }
}
