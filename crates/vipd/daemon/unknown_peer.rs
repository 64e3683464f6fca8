//! Unicast adverts from an address that is not a configured peer. They are never a peer's
//! advert (docs/design/vrrp.md, Unicast), but one that carries our VRID is most likely a peer
//! whose address changed: dropped in silence, it leaves both nodes master for good. So those are
//! counted apart, logged (rate-limited, any host can send them), and one from a master while we
//! are master is reported as two masters.

use std::time::Instant;

use tracing::warn;
use vipd_net::ReceivedAdvert;
use vipd_vrrp::Advertisement;

use crate::daemon::rate_limited_log::RateLimitedLog;

/// What one instance saw from addresses that are not its configured unicast peers.
#[derive(Debug, Default)]
pub struct UnknownPeers {
    /// Adverts carrying our VRID.
    pub adverts: u64,
    /// Of those, valid ones with a non-zero priority received while we were master.
    pub masters_seen: u64,
    adverts_log: RateLimitedLog,
    masters_log: RateLimitedLog,
}

impl UnknownPeers {
    /// Takes one advert from a non-peer. Other VRIDs are another router's business (the
    /// transport counted them as dropped); ours are counted and logged.
    pub fn saw(
        &mut self,
        instance: &str,
        vrid: u8,
        received: &ReceivedAdvert,
        we_are_master: bool,
        now: Instant,
    ) {
        if received.payload.get(1) != Some(&vrid) {
            return;
        }
        let source = received.source;
        self.adverts += 1;
        if let Some(left_out) = self.adverts_log.allow(now) {
            warn!(instance, %source, vrid, left_out, "dropped an advert for our VRID from an address that is not a configured unicast peer: a renumbered peer? (docs/operations.md, Unicast)");
        }
        if we_are_master && let Some(priority) = claimed_priority(received) {
            self.masters_seen += 1;
            if let Some(left_out) = self.masters_log.allow(now) {
                warn!(instance, %source, priority, left_out, "two masters: a node that is not a configured unicast peer advertises our VRID while we are master (docs/operations.md, Unicast)");
            }
        }
    }
}

/// The priority a valid advert claims mastership with; `None` for an invalid one or a release
/// (priority 0, RFC 9568 6.4.2): neither says that a master is running.
fn claimed_priority(received: &ReceivedAdvert) -> Option<u8> {
    let parsed =
        Advertisement::from_bytes(&received.payload, received.source, received.destination).ok()?;
    let priority = parsed.advertisement.priority.get();
    (priority > 0).then_some(priority)
}
