//! New settings for a running router (a configuration reload), taken without leaving its state:
//! a master stays master and keeps its VIPs, a backup keeps its down timer. Not part of the
//! RFCs; keepalived keeps the running state of an instance that a reload matches too
//! (docs/design/vrrp.md, Reload).
//!
//! What defines the virtual router cannot change here: its VRID, version, family and v2
//! authentication say which adverts belong to it, and the address owner (priority 255) starts
//! as master where anyone else waits (RFC 9568 6.4.1). A change of those is a new router.

use std::time::{Duration, Instant};

use super::{ConfigError, RouterConfig, RouterState, VirtualRouter};
use crate::fields::{Version, Vrid};

#[cfg(test)]
mod tests;

/// Why [`VirtualRouter::reconfigure`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// The configuration is not valid on its own (see [`VirtualRouter::new`]).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The configuration defines another virtual router: start a new one instead.
    #[error("VRID {vrid}: the {what} cannot change on a running router")]
    Redefined {
        /// The router.
        vrid: Vrid,
        /// What differs: `VRID`, `version`, `authentication` or `address owner` (VIPs of another
        /// family than the router's primary address are [`ConfigError::VipFamily`]).
        what: &'static str,
    },
}

impl VirtualRouter {
    /// Takes `config` in place, whatever the state, and changes no state. The router keeps its
    /// own primary address (it follows [`super::Input::PrimaryAddress`]), so that of `config` is
    /// ignored. It keeps its effective priority too: the caller, which knows the trackers, feeds
    /// [`super::Input::EffectivePriority`] for the new configured priority afterwards (a master
    /// advertises it at once when it differs).
    ///
    /// A master whose advert interval changed advertises at once: a v3 backup learns
    /// Master_Adver_Interval from the advert (RFC 9568 6.4.2), and waiting for the old or the new
    /// interval could outlast its down timer. A changed `garp.refresh` is rescheduled from now;
    /// a second burst still due is dropped if `garp.delay` is now off. Adverts carry the new VIP
    /// list from the next one on; adding, removing and announcing the VIPs is the caller's, since
    /// only a master holds them ([`VirtualRouter::state`]).
    ///
    /// # Errors
    /// [`ReconfigureError::Invalid`] as [`VirtualRouter::new`] would refuse `config`, and
    /// [`ReconfigureError::Redefined`] when it defines another router; the router is then
    /// unchanged.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: RouterConfig,
    ) -> Result<(), ReconfigureError> {
        let checked = Self::new(RouterConfig {
            primary_address: self.config.primary_address,
            ..config
        })?;
        if let Some(what) = redefinition(&self.config, &checked.config) {
            return Err(ReconfigureError::Redefined {
                vrid: self.config.vrid,
                what,
            });
        }
        let interval_changed = checked.advert_interval_micros != self.advert_interval_micros;
        let refresh_changed = checked.config.garp.refresh != self.config.garp.refresh;
        self.config = checked.config;
        self.advert_fields = checked.advert_fields;
        self.advert_interval_micros = checked.advert_interval_micros;
        let interval = Duration::from_micros(self.advert_interval_micros);
        match &mut self.state {
            RouterState::Master(master) => {
                if refresh_changed {
                    master.refresh_at = self.config.garp.refresh.map(|refresh| now + refresh);
                }
                if self.config.garp.delay.is_none() {
                    master.second_burst_at = None;
                }
                if interval_changed {
                    self.send_advert_now(now, interval);
                }
            }
            // RFC 3768 6.1: a v2 backup times its master with its own Advertisement_Interval
            // (it never learns the master's); a v3 backup keeps what it learnt (RFC 9568 6.4.2).
            RouterState::Backup(backup) if self.config.version == Version::V2 => {
                backup.master_interval_micros = self.advert_interval_micros;
            }
            RouterState::Initialize | RouterState::Backup(_) | RouterState::Fault => {}
        }
        Ok(())
    }
}

/// What makes `new` another virtual router than `old`, if anything.
fn redefinition(old: &RouterConfig, new: &RouterConfig) -> Option<&'static str> {
    if old.vrid != new.vrid {
        Some("VRID")
    } else if old.version != new.version {
        Some("version")
    } else if old.auth != new.auth {
        Some("authentication")
    } else if old.priority.is_owner() != new.priority.is_owner() {
        Some("address owner")
    } else {
        None
    }
}
