//! The real host: everything through the kernel. Its monitors name every address event by
//! interface (through a table of the interfaces vipd follows and the macvlans it made), so an
//! instance never needs to know an interface index, which changes when an interface is created
//! again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::sync::{broadcast, watch};
use tracing::warn;
use vipd_config::VrrpInstance;
use vipd_net::{
    AddressEvent, AddressMonitor, Family, Interface, LinkMonitor, LinkState, Mode, VirtualMac,
    VirtualMacTransport, VrrpSocket, VrrpSocketConfig,
};

use super::virtual_macs::KeptVirtualMacs;
use super::{Host, HostEvent, Links, LinuxAddresses, LinuxAnnouncer, LinuxTransport};

/// Interface names by kernel index: the followed interfaces and the virtual MAC interfaces.
type Indexes = Arc<Mutex<BTreeMap<u32, String>>>;

pub struct LinuxHost {
    addresses: Arc<LinuxAddresses>,
    links: watch::Sender<Links>,
    indexes: Indexes,
    events: broadcast::Sender<HostEvent>,
    virtual_macs: Arc<KeptVirtualMacs>,
}

impl LinuxHost {
    /// Opens the netlink connections and starts the link and address monitors. Needs a tokio
    /// runtime, CAP_NET_ADMIN.
    pub fn start() -> Result<Self> {
        let addresses = Arc::new(LinuxAddresses::open().context("opening rtnetlink")?);
        let (links, _) = watch::channel(Links::new());
        let indexes = Indexes::default();
        let (events, _) = broadcast::channel(256);
        let virtual_macs = Arc::new(KeptVirtualMacs {
            by_name: tokio::sync::Mutex::default(),
            indexes: Arc::clone(&indexes),
            events: events.clone(),
        });
        let host = Self {
            addresses,
            links,
            indexes,
            events,
            virtual_macs,
        };
        host.start_link_monitor()?;
        host.start_address_monitor()?;
        Ok(host)
    }

    /// Publishes the followed interfaces' link state, and has a deleted virtual MAC interface
    /// created again.
    fn start_link_monitor(&self) -> Result<()> {
        let mut monitor = LinkMonitor::start().context("starting the link monitor")?;
        let (links, indexes) = (self.links.clone(), Arc::clone(&self.indexes));
        let kept = Arc::clone(&self.virtual_macs);
        tokio::spawn(async move {
            while let Some(event) = monitor.next().await {
                let followed = |name: &String| links.borrow().contains_key(name);
                let name = match event.name {
                    // A followed interface created again has a new index: learn it.
                    Some(name) if followed(&name) => {
                        name_index(&indexes, event.interface_index, &name);
                        name
                    }
                    Some(name) => name,
                    None => match name_of(&indexes, event.interface_index) {
                        Some(name) => name,
                        None => continue,
                    },
                };
                if event.state == LinkState::Removed {
                    let (kept, name) = (Arc::clone(&kept), name.clone());
                    tokio::spawn(async move { kept.recreate(&name).await });
                }
                let up = event.state == LinkState::Up;
                links.send_if_modified(|links| match links.get_mut(&name) {
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
        Ok(())
    }

    /// Publishes address changes on the interfaces vipd knows, by name.
    fn start_address_monitor(&self) -> Result<()> {
        let mut monitor = AddressMonitor::start().context("starting the address monitor")?;
        let (events, indexes) = (self.events.clone(), Arc::clone(&self.indexes));
        let links = self.links.clone();
        tokio::spawn(async move {
            while let Some(event) = monitor.next().await {
                let index = event.interface_index();
                // A followed interface created again may show its address before the link
                // monitor has learnt its new index: ask the kernel for the name once.
                let known = name_of(&indexes, index).or_else(|| {
                    let name = nix::net::if_::if_indextoname(index)
                        .ok()?
                        .into_string()
                        .ok()?;
                    links.borrow().contains_key(&name).then(|| {
                        name_index(&indexes, index, &name);
                        name
                    })
                });
                // Interfaces vipd does not know (a pod's veth) concern no instance.
                let Some(interface) = known else {
                    continue;
                };
                let event = match event {
                    AddressEvent::Added { .. } => HostEvent::AddressAdded { interface },
                    AddressEvent::Removed { address, .. } => {
                        HostEvent::AddressRemoved { interface, address }
                    }
                };
                // No receiver is fine: no instance cares right now.
                let _ = events.send(event);
            }
            warn!("address monitor ended; instances fall back to the periodic host check");
        });
        Ok(())
    }
}

fn name_of(indexes: &Indexes, index: u32) -> Option<String> {
    indexes.lock().ok()?.get(&index).cloned()
}

fn name_index(indexes: &Indexes, index: u32, name: &str) {
    if let Ok(mut indexes) = indexes.lock() {
        indexes.insert(index, name.to_owned());
    }
}

fn family_of(instance: &VrrpInstance) -> Family {
    if instance.is_ipv6() {
        Family::Ipv6
    } else {
        Family::Ipv4
    }
}

impl Host for LinuxHost {
    type Transport = LinuxTransport;
    type Addresses = LinuxAddresses;
    type Announcer = LinuxAnnouncer;
    /// Its name: the macvlan itself is kept by the host, which recreates it when deleted.
    type VirtualMac = String;
    /// A TUN device without TUNSETPERSIST: the kernel deletes it when vipd's process ends.
    type AnnounceDevice = vipd_net::TunDevice;

    fn transport(&self, instance: &VrrpInstance) -> Result<LinuxTransport> {
        let mode = match &instance.unicast {
            None => Mode::Multicast,
            Some(unicast) => Mode::Unicast {
                peers: unicast.peers.clone(),
                source: unicast.source,
            },
        };
        let config = VrrpSocketConfig {
            interface: instance.interface.clone(),
            family: family_of(instance),
            mode,
        };
        let vips = instance.vips.iter().map(|vip| vip.address.addr()).collect();
        match &instance.virtual_mac {
            None => VrrpSocket::open_with_vips(config, vips)
                .map(LinuxTransport::Interface)
                .with_context(|| {
                    format!(
                        "vrrp {}: opening the VRRP socket on {}",
                        instance.name, instance.interface
                    )
                }),
            Some(virtual_mac) => {
                VirtualMacTransport::open_with_vips(config, &virtual_mac.interface, vips)
                    .map(LinuxTransport::VirtualMac)
                    .with_context(|| {
                        format!(
                            "vrrp {}: opening the VRRP sockets on {} (receive) and {} (send)",
                            instance.name, instance.interface, virtual_mac.interface
                        )
                    })
            }
        }
    }

    async fn create_virtual_mac(
        &self,
        instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> Result<String> {
        let family = family_of(instance);
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
        name_index(&self.indexes, created.index(), &name);
        self.virtual_macs
            .by_name
            .lock()
            .await
            .insert(name.clone(), created);
        Ok(name)
    }

    async fn remove_virtual_mac(&self, name: String) -> Result<()> {
        self.addresses.up_while_holding(&name, false);
        let Some(kept) = self.virtual_macs.by_name.lock().await.remove(&name) else {
            return Ok(());
        };
        kept.remove()
            .await
            .with_context(|| format!("removing the virtual MAC interface {name}"))
    }

    async fn remove_left_virtual_mac(
        &self,
        instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> Result<bool> {
        vipd_net::remove_left_behind(&instance.interface, &virtual_mac.interface)
            .await
            .with_context(|| {
                format!(
                    "vrrp {}: removing the virtual MAC interface {}",
                    instance.name, virtual_mac.interface
                )
            })
    }

    fn announcer(&self, interface: &str) -> Result<LinuxAnnouncer> {
        Ok(LinuxAnnouncer::open(interface))
    }

    async fn open_announce_device(&self, name: &str) -> Result<vipd_net::TunDevice> {
        vipd_net::TunDevice::open(name, self.addresses.link_admin())
            .await
            .with_context(|| {
                format!(
                    "announce device {name} (needs /dev/net/tun and CAP_NET_ADMIN; under the \
                     shipped unit, its announce drop-in: docs/bgp.md)"
                )
            })
    }

    fn addresses(&self) -> Arc<LinuxAddresses> {
        Arc::clone(&self.addresses)
    }

    fn follow_links(&self, interfaces: &[String]) {
        for name in interfaces {
            if self.links.borrow().contains_key(name) {
                continue;
            }
            // An interface that does not exist yet is down until the monitor says otherwise.
            let up = match Interface::lookup(name) {
                Ok(interface) => {
                    name_index(&self.indexes, interface.index, name);
                    interface.is_up
                }
                Err(_) => false,
            };
            self.links.send_modify(|links| {
                links.insert(name.clone(), up);
            });
        }
    }

    fn links(&self) -> watch::Receiver<Links> {
        self.links.subscribe()
    }

    fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.events.subscribe()
    }

    fn precise_timers(&self) -> bool {
        true
    }
}
