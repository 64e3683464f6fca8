//! The host the supervisor acts on, behind one trait: the real Linux host (raw sockets, rtnetlink,
//! AF_PACKET, netlink monitors) or an in-memory one for tests that need no root.
//!
//! - `linux`: [`LinuxHost`], its link and address monitors, and the [`HostEvent`]s it publishes.
//! - `virtual_macs`: the macvlans of virtual MAC instances, created again when deleted by hand.
//! - `addresses`: VIPs through rtnetlink.
//! - `transport`: the VRRP transport and the announcer of the real host.
//! - `memory`: the in-memory host of the supervisor tests.

mod addresses;
mod linux;
#[cfg(test)]
mod memory;
mod transport;
mod virtual_macs;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{broadcast, watch};
use vipd_config::VrrpInstance;
use vipd_net::{AddressManager, Announce, VrrpTransport};

pub use addresses::LinuxAddresses;
pub use linux::LinuxHost;
#[cfg(test)]
pub use memory::MemoryHost;
pub use transport::{LinuxAnnouncer, LinuxTransport};

/// Link state of interfaces by name: `true` when up.
pub type Links = BTreeMap<String, bool>;

/// A change the host saw that vipd did not make, named by interface: what an instance needs to
/// keep its socket and its VIPs where they belong. Instances turn them into router inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// An address was added on `interface` (it may be the interface's new primary address).
    AddressAdded { interface: String },
    /// `address` was removed from `interface` (a VIP deleted by hand, or renumbering).
    AddressRemoved { interface: String, address: IpAddr },
    /// vipd created `interface` again after someone deleted it (a virtual MAC interface): the
    /// addresses it held went with it.
    InterfaceRecreated { interface: String },
}

/// What the supervisor needs from a host.
pub trait Host: Send + Sync + 'static {
    type Transport: VrrpTransport + 'static;
    type Addresses: AddressManager + 'static;
    type Announcer: Announce + 'static;
    /// A virtual MAC interface this host created for an instance.
    type VirtualMac: Send + 'static;
    /// An announce device (docs/design/announce.md): it exists as long as this value does.
    type AnnounceDevice: Send + Sync + 'static;

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
    /// Deletes the macvlan of `instance` that a daemon killed outright left (`vipd release`): only
    /// a macvlan of that name on the instance's interface. Whether there was one.
    fn remove_left_virtual_mac(
        &self,
        instance: &VrrpInstance,
        virtual_mac: &vipd_config::VirtualMac,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Creates the announce device `name`, up, for as long as the returned value lives.
    fn open_announce_device(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Self::AnnounceDevice>> + Send;
    /// An announcer (GARP / unsolicited NA) on `interface`.
    fn announcer(&self, interface: &str) -> Result<Self::Announcer>;
    /// The address manager shared by every instance.
    fn addresses(&self) -> Arc<Self::Addresses>;
    /// Starts following the link state of `interfaces` (those already followed are kept).
    fn follow_links(&self, interfaces: &[String]);
    /// Link state of every followed interface.
    fn links(&self) -> watch::Receiver<Links>;
    /// Changes made outside vipd on the followed interfaces and the virtual MAC interfaces.
    fn events(&self) -> broadcast::Receiver<HostEvent>;
    /// Whether the routers' deadlines are kept to the microsecond (a timerfd in the reactor); a
    /// host on tokio's paused test clock keeps tokio's timers, which follow that clock.
    fn precise_timers(&self) -> bool;
}
