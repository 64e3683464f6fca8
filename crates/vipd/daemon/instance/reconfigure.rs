//! A reload's change applied to the running instance (docs/design/vrrp.md, Reload): the router
//! takes its new settings without leaving its state, and a master adds and announces the VIPs
//! the reload added and removes those it dropped, leaving the others untouched (no address
//! event, no gap for clients).

use tokio::sync::watch;
use tracing::{debug, error, info};
use vipd_net::{AddressManager, Announce, Change, VrrpTransport};
use vipd_vrrp::{ChecksumForm, RouterConfig, State};

use super::{Instance, now};
use crate::daemon::tracker::{Reading, TrackerInfo};

/// Everything of an instance a reload may change in place.
#[derive(Debug)]
pub struct Reconfiguration {
    pub router: RouterConfig,
    pub checksum: ChecksumForm,
    pub vips: Vec<vipd_net::Vip>,
    /// For status: the VIPs as configured (with prefix).
    pub vip_strings: Vec<String>,
    pub notify: vipd_config::Notify,
    /// Unicast mode: the peers, to and from which adverts go from now on.
    pub peers: Option<Vec<std::net::IpAddr>>,
    /// Every tracker of the new entry, with its (new) weight.
    pub trackers: Vec<(TrackerInfo, watch::Receiver<Reading>)>,
}

impl<T, A, N> Instance<T, A, N>
where
    T: VrrpTransport,
    A: AddressManager,
    N: Announce,
{
    /// Applies `new`. Refused by the transport (peers it cannot take) or the router (it would be
    /// another virtual router), the router is unchanged and the supervisor restarts the
    /// instance instead.
    pub(super) async fn reconfigure(&mut self, new: Reconfiguration) -> anyhow::Result<()> {
        if let Some(peers) = new.peers {
            self.parts.transport.set_unicast_peers(peers)?;
            // Without a pinned source, adverts leave from the address towards the first peer.
            self.follow_the_source_address();
        }
        self.parts
            .router
            .reconfigure(now().into_std(), new.router)?;
        let old_vips = std::mem::replace(&mut self.parts.vips, new.vips);
        if self.parts.router.state() == State::Master {
            self.remove_dropped_vips(&old_vips).await;
            self.add_new_vips(&old_vips).await;
        }
        self.parts.checksum = new.checksum;
        self.parts.vip_strings = new.vip_strings;
        self.parts.notifier.replace_hooks(new.notify);
        self.parts.trackers = new.trackers;
        // The new configured priority and weights: a master advertises a changed priority at
        // once (docs/design/vrrp.md, Tracking).
        self.apply_trackers_and_link(now());
        let configured = self.parts.router.configured_priority().get();
        let vips = self.parts.vip_strings.clone();
        self.status.send_modify(|status| {
            status.configured_priority = configured;
            status.vips = vips;
        });
        info!(instance = %self.parts.name, "configuration applied in place");
        Ok(())
    }

    async fn remove_dropped_vips(&mut self, old_vips: &[vipd_net::Vip]) {
        for vip in old_vips.iter().filter(|vip| !self.parts.vips.contains(vip)) {
            match self.parts.addresses.remove(vip).await {
                Ok(Change::Applied) => {
                    self.held_vips.set(vip, false);
                    info!(instance = %self.parts.name, vip = %vip.address, "VIP removed by reload");
                }
                Ok(Change::AlreadyInPlace) => self.held_vips.set(vip, false),
                Err(error) => {
                    error!(instance = %self.parts.name, vip = %vip.address, %error, "removing VIP failed");
                }
            }
        }
    }

    /// Adds the VIPs `old_vips` lacked and announces each `garp.repeat` times, as a new master
    /// announces all of its VIPs (RFC 9568 6.4.2), so that clients find them at once.
    async fn add_new_vips(&mut self, old_vips: &[vipd_net::Vip]) {
        let repeat = self.parts.router.config().garp.repeat;
        for vip in self.parts.vips.iter().filter(|vip| !old_vips.contains(vip)) {
            match self.parts.addresses.add(vip).await {
                Ok(Change::Applied | Change::AlreadyInPlace) => {
                    self.held_vips.set(vip, true);
                    info!(instance = %self.parts.name, vip = %vip.address, "VIP added by reload");
                }
                Err(error) => {
                    error!(instance = %self.parts.name, vip = %vip.address, %error, "adding VIP failed");
                    continue;
                }
            }
            self.announce_vip(vip, repeat);
            debug!(instance = %self.parts.name, vip = %vip.address, repeat, "announced");
        }
    }
}
