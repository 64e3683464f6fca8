//! The real host's VIPs, through rtnetlink.

use std::collections::BTreeSet;
use std::sync::Mutex;

use vipd_net::{AddressManager, Change, LinkAdmin, NetError, NetlinkAddresses, Vip};

/// The real host's VIPs, through rtnetlink. An IPv6 virtual MAC interface is up only while it
/// holds VIPs, that is while its router is master (vipd_net::LinkAdmin says why): it comes up
/// before a VIP is added and goes down before one is removed.
pub struct LinuxAddresses {
    netlink: NetlinkAddresses,
    links: LinkAdmin,
    /// The interfaces that are up only while they hold VIPs.
    up_while_holding: Mutex<BTreeSet<String>>,
}

impl LinuxAddresses {
    pub(super) fn open() -> Result<Self, NetError> {
        Ok(Self {
            netlink: NetlinkAddresses::new()?,
            links: LinkAdmin::open()?,
            up_while_holding: Mutex::default(),
        })
    }

    /// Link changes on the same rtnetlink connections.
    pub(super) fn link_admin(&self) -> &LinkAdmin {
        &self.links
    }

    pub(super) fn up_while_holding(&self, interface: &str, on: bool) {
        if let Ok(mut interfaces) = self.up_while_holding.lock() {
            if on {
                interfaces.insert(interface.to_owned());
            } else {
                interfaces.remove(interface);
            }
        }
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
        self.netlink.add(vip).await
    }

    async fn remove(&self, vip: &Vip) -> Result<Change, NetError> {
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
