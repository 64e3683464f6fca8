//! An in-memory host for supervisor tests: adverts on a [`vipd_net::MemoryLan`], addresses in a
//! table, announcements recorded, link state and host events driven by the test.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::sync::{broadcast, watch};
use vipd_config::VrrpInstance;
use vipd_net::{MemoryAddresses, MemoryAnnouncer, MemoryLan, MemoryTransport};

use super::{Host, HostEvent, Links};

pub struct MemoryHost {
    pub lan: MemoryLan,
    /// The node's primary address on the LAN.
    pub address: IpAddr,
    pub addresses: Arc<MemoryAddresses>,
    pub announcer: MemoryAnnouncer,
    pub links: watch::Sender<Links>,
    pub events: broadcast::Sender<HostEvent>,
    /// The virtual MAC interfaces that exist now, by name.
    pub virtual_macs: Arc<Mutex<Vec<String>>>,
    /// Interfaces on which no VRRP transport can be opened (a test's broken host).
    pub failing_interfaces: Arc<Mutex<Vec<String>>>,
}

impl MemoryHost {
    pub fn new(lan: &MemoryLan, address: IpAddr) -> Self {
        Self {
            lan: lan.clone(),
            address,
            addresses: Arc::default(),
            announcer: MemoryAnnouncer::new(),
            links: watch::channel(Links::new()).0,
            events: broadcast::channel(16).0,
            virtual_macs: Arc::default(),
            failing_interfaces: Arc::default(),
        }
    }
}

impl Host for MemoryHost {
    type Transport = MemoryTransport;
    type Addresses = MemoryAddresses;
    type Announcer = MemoryAnnouncer;
    type VirtualMac = String;
    /// Its name: the in-memory host has no devices to delete.
    type AnnounceDevice = String;

    fn transport(&self, instance: &VrrpInstance) -> Result<Self::Transport> {
        let failing = self.failing_interfaces.lock().expect("not poisoned");
        if failing.contains(&instance.interface) {
            anyhow::bail!("no VRRP socket on {}", instance.interface);
        }
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

    async fn remove_left_virtual_mac(
        &self,
        _instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> Result<bool> {
        let mut existing = self.virtual_macs.lock().expect("not poisoned");
        let before = existing.len();
        existing.retain(|name| *name != virtual_mac.interface);
        Ok(existing.len() < before)
    }

    fn announcer(&self, _interface: &str) -> Result<Self::Announcer> {
        Ok(self.announcer.clone())
    }

    async fn open_announce_device(&self, name: &str) -> Result<String> {
        Ok(name.to_owned())
    }

    fn addresses(&self) -> Arc<Self::Addresses> {
        Arc::clone(&self.addresses)
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

    fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.events.subscribe()
    }

    fn precise_timers(&self) -> bool {
        false
    }
}
