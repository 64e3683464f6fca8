//! The macvlans of this host's virtual MAC instances, by name. One deleted by someone else
//! (`ip link del vrrp.51`) is created again, as keepalived does with its vmac: otherwise an IPv4
//! instance would stay in Fault (its macvlan is gone) and an IPv6 one could not send, until vipd
//! restarts. Removing one through `Host::remove_virtual_mac` takes it out of here first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::{error, warn};
use vipd_net::{Interface, VirtualMac};

use super::HostEvent;

pub(super) struct KeptVirtualMacs {
    pub(super) by_name: tokio::sync::Mutex<BTreeMap<String, VirtualMac>>,
    /// The host's interface names by index, which address events are named through.
    pub(super) indexes: Arc<Mutex<BTreeMap<u32, String>>>,
    pub(super) events: broadcast::Sender<HostEvent>,
}

impl KeptVirtualMacs {
    /// Recreates `name` if it is one of ours and gone, retrying every second while it fails
    /// (its parent may be gone too) and while it is still wanted.
    pub(super) async fn recreate(&self, name: &str) {
        let mut failed_before = false;
        loop {
            {
                let mut kept = self.by_name.lock().await;
                // Removed on purpose (reload, shutdown): nothing to keep.
                let Some(virtual_mac) = kept.get_mut(name) else {
                    return;
                };
                // A late notification of a deletion already repaired, or of the macvlan an
                // instance that replaced ours created again.
                if Interface::lookup(name).is_ok_and(|found| found.index == virtual_mac.index()) {
                    return;
                }
                match virtual_mac.recreate().await {
                    Ok(()) => {
                        if let Ok(mut indexes) = self.indexes.lock() {
                            indexes.insert(virtual_mac.index(), name.to_owned());
                        }
                        warn!(
                            interface = name,
                            recreated = virtual_mac.recreated(),
                            "the virtual MAC interface was deleted by someone else; created it again"
                        );
                        // Its VIPs went with it, and the kernel said so while it was gone, when a
                        // master putting them back could only fail: say it now that it can work.
                        let _ = self.events.send(HostEvent::InterfaceRecreated {
                            interface: name.to_owned(),
                        });
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
}
