//! The virtual-router state machine of RFC 9568 section 6.4 (and RFC 3768 section 6.4 for v2), plus
//! the Fault state and operator maintenance that keepalived operators rely on.
//!
//! It does no IO and reads no clock: the caller passes `now` into [`VirtualRouter::handle_input`]
//! and [`VirtualRouter::handle_timeout`], sleeps until [`VirtualRouter::poll_timeout`], and carries
//! out whatever [`VirtualRouter::poll_output`] returns.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::num::NonZeroU8;
use std::time::{Duration, Instant};

use crate::fields::{Centis, Priority, Version, Vrid};
use crate::timers::{MICROS_PER_SECOND, master_down_micros, skew_micros};
use crate::wire::{AddressFamily, Advertisement, Auth, VersionFields};

mod reconfigure;
#[cfg(test)]
mod tests;

pub use reconfigure::ReconfigureError;

/// When to send gratuitous ARPs / unsolicited NAs after becoming master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpSchedule {
    /// Announcements per VIP in each burst (`garp.repeat`).
    pub repeat: u32,
    /// A second burst this long after becoming master (`garp.delay`); `None` or zero: no second burst.
    pub delay: Option<Duration>,
    /// One announcement per VIP this often while master (`garp.refresh`); `None` or zero: never.
    pub refresh: Option<Duration>,
}

impl Default for GarpSchedule {
    /// docs/design/vrrp.md, Announcements: a burst of 5, a second burst after 5 s, no refresh.
    fn default() -> Self {
        Self {
            repeat: 5,
            delay: Some(Duration::from_secs(5)),
            refresh: None,
        }
    }
}

/// Everything one virtual router needs to know, already in protocol types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Virtual Router Identifier.
    pub vrid: Vrid,
    /// Protocol version.
    pub version: Version,
    /// Configured priority: 1..=254, or 255 for the address owner.
    pub priority: Priority,
    /// Advertisement interval: v3 a multiple of 10 ms in 10 ms..=40.95 s, v2 whole seconds 1..=255.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master (RFC 9568 6.1).
    pub preempt: bool,
    /// How long a preemption is held off after first seeing a lower-priority master (keepalived's
    /// `preempt_delay`). Never delays a takeover from a master that stopped advertising.
    pub preempt_delay: Duration,
    /// This router's primary address on the interface (IPv4 primary or IPv6 link-local): the IP
    /// source of its adverts and the tie-breaker between equal priorities (RFC 9568 6.4.3).
    pub primary_address: IpAddr,
    /// The virtual addresses carried in adverts, all of the primary address's family.
    pub vips: Vec<IpAddr>,
    /// v2 authentication; must be `Auth::None` for v3.
    pub auth: Auth,
    /// Gratuitous ARP / NA schedule on becoming master.
    pub garp: GarpSchedule,
}

impl RouterConfig {
    /// A v3 router with the defaults of docs/configuration.md: 1 s interval, preempt, no delay, default GARP.
    pub fn v3(vrid: Vrid, priority: Priority, primary_address: IpAddr, vips: Vec<IpAddr>) -> Self {
        Self {
            vrid,
            version: Version::V3,
            priority,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address,
            vips,
            auth: Auth::None,
            garp: GarpSchedule::default(),
        }
    }
}

/// The longest delay or period the router takes (`preempt_delay`, `garp.delay`, `garp.refresh`):
/// a deadline is `now` plus one of them, and `Instant + Duration` panics on overflow. A year is far
/// above anything useful and far below any overflow.
pub const MAX_TIMER: Duration = Duration::from_secs(365 * 86_400);

/// A configuration the router refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Priority 0 is only ever sent, never configured (RFC 9568 5.2.4).
    #[error("VRID {vrid}: priority 0 is reserved for releasing mastership")]
    PriorityZero {
        /// The router.
        vrid: Vrid,
    },
    /// An interval the version cannot carry.
    #[error(
        "VRID {vrid}: advert interval {interval:?} does not fit {version} (v3: 10 ms steps up to 40.95 s; v2: whole seconds up to 255 s)"
    )]
    Interval {
        /// The router.
        vrid: Vrid,
        /// Its version.
        version: Version,
        /// The refused interval.
        interval: Duration,
    },
    /// Authentication configured for v3, which has none.
    #[error("VRID {vrid}: VRRPv3 has no authentication")]
    AuthWithV3 {
        /// The router.
        vrid: Vrid,
    },
    /// v2 with an IPv6 primary address.
    #[error("VRID {vrid}: VRRPv2 is IPv4 only, primary address {primary_address}")]
    V2OverIpv6 {
        /// The router.
        vrid: Vrid,
        /// The refused address.
        primary_address: IpAddr,
    },
    /// A VIP of another family than the primary address.
    #[error("VRID {vrid}: VIP {vip} is not of the family of the primary address {primary_address}")]
    VipFamily {
        /// The router.
        vrid: Vrid,
        /// The refused VIP.
        vip: IpAddr,
        /// The primary address.
        primary_address: IpAddr,
    },
    /// A delay or period so long that a deadline computed from it could overflow `Instant`.
    #[error("VRID {vrid}: {field} of {value:?} is longer than the router's limit of {MAX_TIMER:?}")]
    Duration {
        /// The router.
        vrid: Vrid,
        /// Which setting: `preempt_delay`, `garp.delay` or `garp.refresh`.
        field: &'static str,
        /// The refused value.
        value: Duration,
    },
    /// More VIPs than an advert's count byte holds.
    #[error("VRID {vrid}: {count} VIPs, an advertisement carries at most 255")]
    TooManyVips {
        /// The router.
        vrid: Vrid,
        /// How many were given.
        count: usize,
    },
}

/// The state of a virtual router, for status and [`Output::StateChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down (RFC 9568 6.4.1).
    Initialize,
    /// Watching the master (RFC 9568 6.4.2).
    Backup,
    /// Holding the VIPs and advertising (RFC 9568 6.4.3).
    Master,
    /// A weight-0 tracker failed or the interface is down: no adverts, no VIPs (keepalived).
    Fault,
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Startup (or leaving Fault) as a non-owner: wait a Master_Down_Interval.
    Startup,
    /// Startup as the address owner (priority 255): master at once.
    AddressOwner,
    /// The down timer expired: no advert from the master for a Master_Down_Interval.
    MasterDown,
    /// The down timer expired after the master released with priority 0 (Skew_Time).
    MasterReleased,
    /// The down timer expired while we ignored a lower-priority master's adverts (preemption).
    Preempted,
    /// An advert with a higher priority, or the same priority from a larger primary address.
    HigherPriorityMaster,
    /// The caller shut the router down.
    Shutdown,
    /// A fault was raised.
    Fault,
    /// The fault cleared.
    FaultCleared,
    /// The operator put the router in maintenance.
    Maintenance,
}

/// Something that happened to the router. Times are the caller's, passed with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start (RFC 9568 6.4.1 Startup event). Ignored unless in Initialize.
    Startup,
    /// Start, on a host that already holds some of our VIPs: an earlier run was killed while
    /// master (SIGKILL, OOM, a crash) and could not release them. Not part of the RFC
    /// (docs/design/vrrp.md, "Restart after a crash"): a non-owner keeps them while it listens
    /// for one advert interval plus its Skew_Time, removes them as soon as it accepts a master's
    /// advert, and otherwise becomes master with them. Ignored unless in Initialize.
    StartupHoldingVips,
    /// Stop: a master sends priority 0 and releases its VIPs. Ignored in Initialize.
    Shutdown,
    /// An advertisement that the codec parsed and checksum-checked, with its IP source. The router
    /// checks VRID, version, family, v2 interval and v2 auth, and drops and counts what fails.
    Advertisement {
        /// IP source of the packet: the sender's primary address.
        source: IpAddr,
        /// The advertisement.
        advert: Advertisement,
    },
    /// The tracked priority. Clamped to 1..=254; ignored for an address owner (docs/design/vrrp.md, Tracking).
    EffectivePriority(Priority),
    /// Fault raised (`true`) or cleared (`false`).
    Fault(bool),
    /// Operator maintenance on or off: while on, never master.
    Maintenance(bool),
    /// The host reports that `count` of our VIPs are not on it (deleted by hand, by a network
    /// manager, or with an interface deleted and created again). A master puts them back and
    /// announces them once; any other state ignores it, since it holds none.
    VipsMissing {
        /// How many were found missing.
        count: u32,
    },
    /// The interface's primary address changed while running (renumbering). It becomes the
    /// tie-breaker between equal priorities (RFC 9568 6.4.3) and the address of our own looped
    /// adverts. An address of the other family is ignored: the router's family never changes.
    PrimaryAddress(IpAddr),
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Emit this advertisement (its priority is the one to send) and send it to the group or peers.
    SendAdvertisement(Advertisement),
    /// Add the VIPs to the interface.
    AddVips,
    /// Remove the VIPs from the interface.
    RemoveVips,
    /// Send `count` gratuitous ARPs (IPv4) or unsolicited NAs (IPv6) for every VIP.
    Announce {
        /// Announcements per VIP.
        count: u32,
    },
    /// Verify what the host may have changed behind our back: that the VRRP socket still sits on
    /// the interface and sends from its address of now, and, when `vips` is set (we are master),
    /// that every VIP is on the host; report what is missing with [`Input::VipsMissing`] and a
    /// new address with [`Input::PrimaryAddress`]. Comes every host check interval (see
    /// [`VirtualRouter::checking_host_every`]): netlink notifications of such changes can be lost.
    CheckHost {
        /// Whether the VIPs must be verified too.
        vips: bool,
    },
    /// Something the operator should hear about (a configuration error on some router of the
    /// VRID, a split brain). The router has already acted; the driver only reports it, rate-limited,
    /// since any router on the link can cause these at the rate it sends adverts.
    Notice(Notice),
    /// The state changed; comes after the side effects of the change.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
}

/// What [`Output::Notice`] reports. Each names the advert's IP source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The advert's interval differs from ours. v3 accepts it (a backup learns the master's
    /// interval, RFC 9568 6.4.2) and counts it ([`RouterStats::interval_mismatch`]); v2 drops it
    /// (RFC 3768 7.1, [`DropReason::IntervalMismatch`]). Either way the routers of the VRID are
    /// configured differently.
    IntervalMismatch {
        /// The sender.
        source: IpAddr,
        /// Its interval.
        theirs: Duration,
        /// Ours.
        ours: Duration,
        /// Whether the advert was accepted (v3) or dropped (v2).
        accepted: bool,
    },
    /// An accepted advert whose address list differs from ours ([`RouterStats::address_list_mismatch`]).
    AddressListMismatch {
        /// The sender.
        source: IpAddr,
        /// How many addresses it carried (keepalived sends 0 when every VIP is excluded).
        count: usize,
    },
    /// We are the address owner (priority 255) and another router advertises 255 too: two owners
    /// of one VRID is a configuration error (keepalived logs it as one).
    OwnerHearsAdvert {
        /// The other router.
        source: IpAddr,
        /// The priority it advertised.
        priority: Priority,
    },
    /// Another router is master too: a split brain ([`RouterStats::two_masters_seen`]).
    TwoMasters {
        /// The other master.
        source: IpAddr,
        /// The priority it advertised.
        priority: Priority,
        /// Our priority when we heard it.
        ours: Priority,
        /// Whether we stay master and answered with an advert (RFC 9568 6.4.3: theirs is lower,
        /// or equal from a smaller address); otherwise we yield and become backup.
        kept_master: bool,
    },
    /// A v2 advert whose authentication type or data differs from ours was dropped (RFC 3768
    /// 7.1, [`DropReason::AuthMismatch`]): the routers of the VRID do not hear each other, and
    /// each may become master.
    AuthMismatch {
        /// The sender.
        source: IpAddr,
    },
    /// We gave mastership up to an address owner (priority 255): which address won.
    LostToOwner {
        /// The owner.
        source: IpAddr,
    },
}

/// Why a received advertisement was dropped by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Another VRID.
    WrongVrid,
    /// Another protocol version.
    WrongVersion,
    /// IP source or addresses of another family.
    WrongFamily,
    /// v2 Adver Int differs from ours (RFC 3768 7.1).
    IntervalMismatch,
    /// v2 auth type or password differs from ours (RFC 3768 7.1).
    AuthMismatch,
    /// Our own advert, looped back.
    OwnAdvert,
}

/// Per-reason drop counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// [`DropReason::WrongVrid`].
    pub wrong_vrid: u64,
    /// [`DropReason::WrongVersion`].
    pub wrong_version: u64,
    /// [`DropReason::WrongFamily`].
    pub wrong_family: u64,
    /// [`DropReason::IntervalMismatch`].
    pub interval_mismatch: u64,
    /// [`DropReason::AuthMismatch`].
    pub auth_mismatch: u64,
    /// [`DropReason::OwnAdvert`].
    pub own_advert: u64,
}

impl DropCounts {
    /// The counter of one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::WrongVrid => self.wrong_vrid,
            DropReason::WrongVersion => self.wrong_version,
            DropReason::WrongFamily => self.wrong_family,
            DropReason::IntervalMismatch => self.interval_mismatch,
            DropReason::AuthMismatch => self.auth_mismatch,
            DropReason::OwnAdvert => self.own_advert,
        }
    }

    fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::WrongVrid => &mut self.wrong_vrid,
            DropReason::WrongVersion => &mut self.wrong_version,
            DropReason::WrongFamily => &mut self.wrong_family,
            DropReason::IntervalMismatch => &mut self.interval_mismatch,
            DropReason::AuthMismatch => &mut self.auth_mismatch,
            DropReason::OwnAdvert => &mut self.own_advert,
        };
        *counter += 1;
    }
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Advertisements handed out to send, priority 0 included.
    pub adverts_sent: u64,
    /// Advertisements that passed the router's checks.
    pub adverts_received: u64,
    /// Advertisements dropped, per reason.
    pub dropped: DropCounts,
    /// Accepted adverts whose address list differs from ours. RFC 9568 7.1 makes that check
    /// optional; we count it for diagnosis and accept the advert (see `receive`).
    pub address_list_mismatch: u64,
    /// Accepted v3 adverts whose interval differs from ours (a backup learns the master's, RFC
    /// 9568 6.4.2, but the routers are configured differently). v2 drops them instead
    /// ([`DropCounts::interval_mismatch`]).
    pub interval_mismatch: u64,
    /// Transitions into Master.
    pub became_master: u64,
    /// Split brains seen: as master, another master that did not take over knowingly
    /// (docs/design/vrrp.md, Split brain). At most one per Advertisement_Interval, and only
    /// adverts that pass every check for our VRID count; a planned preemption does not.
    pub two_masters_seen: u64,
    /// Priority-0 adverts sent.
    pub priority_zero_sent: u64,
    /// Priority-0 adverts received.
    pub priority_zero_received: u64,
    /// VIPs put back while master after the host reported them missing.
    pub vips_restored: u64,
}

/// The last advertisement accepted from another router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterInfo {
    /// Its IP source.
    pub address: IpAddr,
    /// The priority it advertised (0: it released).
    pub priority: Priority,
    /// The interval it advertised.
    pub advert_interval: Duration,
    /// When it was received.
    pub seen_at: Instant,
}

/// A VRRP virtual router, driven by the caller (quinn-proto style).
///
/// Call [`handle_input`](Self::handle_input) for each event and
/// [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout) has passed;
/// after either, drain [`poll_output`](Self::poll_output) until `None` and re-read `poll_timeout`.
#[derive(Debug, Clone)]
pub struct VirtualRouter {
    config: RouterConfig,
    /// Interval and auth as they go into our adverts.
    advert_fields: VersionFields,
    advert_interval_micros: u64,
    effective_priority: Priority,
    state: RouterState,
    fault: bool,
    maintenance: bool,
    last_master: Option<MasterInfo>,
    stats: RouterStats,
    outputs: VecDeque<Output>,
    /// How often to ask for [`Output::CheckHost`]; `None`: never.
    host_check_every: Option<Duration>,
    /// When the next [`Output::CheckHost`] is due; `None` in Initialize.
    host_check_at: Option<Instant>,
}

/// The state with the data only that state has.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RouterState {
    Initialize,
    Backup(Backup),
    Master(Master),
    Fault,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Backup {
    /// Master_Adver_Interval: learned from the master's adverts in v3.
    master_interval_micros: u64,
    /// Master_Down_Timer; `None` only in maintenance, which never takes over.
    down_at: Option<Instant>,
    /// End of the preempt_delay hold-off once a lower-priority master has been seen.
    preempt_hold_until: Option<Instant>,
    /// The reason to report if the down timer fires.
    takeover: Reason,
    /// Started with VIPs a killed predecessor left (see [`Input::StartupHoldingVips`]): they are
    /// removed when a master is accepted or the router leaves Backup other than to Master.
    leftover_vips: bool,
}

/// The deadlines of a master: its timer table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::struct_field_names,
    reason = "each field is a deadline; `_at` says so"
)]
struct Master {
    advert_at: Instant,
    second_burst_at: Option<Instant>,
    refresh_at: Option<Instant>,
    /// When and why we became master.
    became_at: Instant,
    took_over: Reason,
    /// When we last spoke of our own accord (an answer to a lower-priority master, or the last
    /// advert on yielding): at most once per Advertisement_Interval (docs/design/vrrp.md, Split brain).
    answered_at: Option<Instant>,
}

impl Master {
    /// Whether an advert of our own accord is allowed now: any on-link host can make us answer,
    /// so one per Advertisement_Interval at most.
    fn may_answer(&self, now: Instant, interval: Duration) -> bool {
        self.answered_at.is_none_or(|at| now >= at + interval)
    }

    /// Whether we took over knowingly from a master that may still be talking: it preempted
    /// (we outranked it) or we are the address owner who takes over at once. Its adverts sent
    /// before ours reached it arrive during our first interval; they are no second master.
    fn in_handover(&self, now: Instant, interval: Duration) -> bool {
        matches!(
            self.took_over,
            Reason::Preempted | Reason::AddressOwner | Reason::FaultCleared
        ) && now < self.became_at + interval
    }
}

/// What `transition` builds the next state from.
#[derive(Debug, Clone, Copy)]
enum Entering {
    Initialize,
    Backup {
        master_interval_micros: u64,
        down_at: Instant,
    },
    Master,
    Fault,
}

impl VirtualRouter {
    /// Validates `config` and builds a router in Initialize. Nothing happens until
    /// [`Input::Startup`].
    pub fn new(config: RouterConfig) -> Result<Self, ConfigError> {
        let mut config = config;
        let vrid = config.vrid;
        if config.priority.is_release() {
            return Err(ConfigError::PriorityZero { vrid });
        }
        let family = AddressFamily::of(config.primary_address);
        if config.version == Version::V2 && family == AddressFamily::Ipv6 {
            return Err(ConfigError::V2OverIpv6 {
                vrid,
                primary_address: config.primary_address,
            });
        }
        if let Some(&vip) = config
            .vips
            .iter()
            .find(|vip| AddressFamily::of(**vip) != family)
        {
            return Err(ConfigError::VipFamily {
                vrid,
                vip,
                primary_address: config.primary_address,
            });
        }
        if config.vips.len() > 255 {
            return Err(ConfigError::TooManyVips {
                vrid,
                count: config.vips.len(),
            });
        }
        let interval_error = ConfigError::Interval {
            vrid,
            version: config.version,
            interval: config.advert_interval,
        };
        let advert_fields = match config.version {
            Version::V3 => {
                if config.auth != Auth::None {
                    return Err(ConfigError::AuthWithV3 { vrid });
                }
                VersionFields::V3 {
                    max_advert_interval: Centis::from_duration(config.advert_interval)
                        .map_err(|_| interval_error)?,
                }
            }
            Version::V2 => {
                let interval = config.advert_interval;
                if interval.subsec_nanos() != 0 {
                    return Err(interval_error);
                }
                let secs = u8::try_from(interval.as_secs())
                    .ok()
                    .and_then(NonZeroU8::new)
                    .ok_or(interval_error)?;
                VersionFields::V2 {
                    advert_interval_secs: secs,
                    auth: config.auth,
                }
            }
        };
        for (field, value) in [
            ("preempt_delay", Some(config.preempt_delay)),
            ("garp.delay", config.garp.delay),
            ("garp.refresh", config.garp.refresh),
        ] {
            if let Some(value) = value.filter(|value| *value > MAX_TIMER) {
                return Err(ConfigError::Duration { vrid, field, value });
            }
        }
        // A zero delay or refresh means "off"; keeping it would make a timer that is always due.
        config.garp.delay = config.garp.delay.filter(|delay| !delay.is_zero());
        config.garp.refresh = config.garp.refresh.filter(|refresh| !refresh.is_zero());
        let advert_interval_micros = match advert_fields {
            VersionFields::V2 {
                advert_interval_secs,
                ..
            } => u64::from(advert_interval_secs.get()) * MICROS_PER_SECOND,
            VersionFields::V3 {
                max_advert_interval,
            } => max_advert_interval.as_micros(),
        };
        Ok(Self {
            effective_priority: config.priority,
            config,
            advert_fields,
            advert_interval_micros,
            state: RouterState::Initialize,
            fault: false,
            maintenance: false,
            last_master: None,
            stats: RouterStats::default(),
            outputs: VecDeque::new(),
            host_check_every: None,
            host_check_at: None,
        })
    }

    /// Asks for [`Output::CheckHost`] every `interval` while running (not in Initialize), so the
    /// caller needs no timer of its own. A router without a host (protocol tests) leaves it off.
    #[must_use]
    pub fn checking_host_every(mut self, interval: Duration) -> Self {
        self.host_check_every =
            Some(interval.min(MAX_TIMER)).filter(|interval| !interval.is_zero());
        self
    }

    /// Feeds one event that happened at `now`. Drain [`poll_output`](Self::poll_output) afterwards.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Startup => {
                if self.state == RouterState::Initialize {
                    self.start(now, false);
                }
            }
            Input::StartupHoldingVips => {
                if self.state == RouterState::Initialize {
                    self.start_holding_vips(now);
                }
            }
            Input::Shutdown => {
                // RFC 9568 6.4.2 / 6.4.3: Shutdown event → Initialize (a master sends priority 0).
                if self.state != RouterState::Initialize {
                    self.transition(now, Entering::Initialize, Reason::Shutdown);
                }
            }
            Input::Advertisement { source, advert } => self.receive(now, source, &advert),
            Input::EffectivePriority(priority) => self.set_effective_priority(now, priority),
            Input::Fault(fault) => self.set_fault(now, fault),
            Input::Maintenance(on) => self.set_maintenance(now, on),
            Input::VipsMissing { count } => self.restore_vips(count),
            Input::PrimaryAddress(address) => self.set_primary_address(address),
        }
    }

    /// Fires every timer due at `now`. Call it when `now` reaches [`poll_timeout`](Self::poll_timeout)
    /// (calling it early does nothing); then drain [`poll_output`](Self::poll_output).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.host_check_due(now);
        if let RouterState::Backup(backup) = &self.state {
            // RFC 9568 6.4.2: Master_Down_Timer fires → send an advert, announce, become Master.
            if backup.down_at.is_some_and(|down_at| down_at <= now) {
                let reason = backup.takeover;
                self.transition(now, Entering::Master, reason);
            }
            return;
        }
        match &mut self.state {
            RouterState::Master(master) => {
                let interval = Duration::from_micros(self.advert_interval_micros);
                let repeat = self.config.garp.repeat;
                let advert_due = master.advert_at <= now;
                if advert_due {
                    // RFC 9568 6.4.3: Adver_Timer fires → send, reset to Advertisement_Interval.
                    master.advert_at = now + interval;
                }
                let second_burst_due = master.second_burst_at.is_some_and(|at| at <= now);
                if second_burst_due {
                    master.second_burst_at = None;
                }
                let refresh_due = master.refresh_at.is_some_and(|at| at <= now);
                if refresh_due {
                    master.refresh_at = self.config.garp.refresh.map(|refresh| now + refresh);
                }
                if advert_due {
                    self.send_advert(self.effective_priority);
                }
                if second_burst_due {
                    self.announce(repeat);
                }
                if refresh_due {
                    self.announce(1);
                }
            }
            RouterState::Initialize | RouterState::Backup(_) | RouterState::Fault => {}
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) must be called, or `None` when no
    /// timer runs. Re-read it after every `handle_*` call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let protocol = match &self.state {
            RouterState::Backup(backup) => backup.down_at,
            RouterState::Master(master) => [
                Some(master.advert_at),
                master.second_burst_at,
                master.refresh_at,
            ]
            .into_iter()
            .flatten()
            .min(),
            RouterState::Initialize | RouterState::Fault => None,
        };
        [protocol, self.host_check_at].into_iter().flatten().min()
    }

    /// The next thing to do, in order. Drain it until `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.state {
            RouterState::Initialize => State::Initialize,
            RouterState::Backup(_) => State::Backup,
            RouterState::Master(_) => State::Master,
            RouterState::Fault => State::Fault,
        }
    }

    /// The validated configuration (a zero GARP delay or refresh reads as `None`).
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The configured priority.
    pub fn configured_priority(&self) -> Priority {
        self.config.priority
    }

    /// The priority in use: configured, adjusted by trackers.
    pub fn effective_priority(&self) -> Priority {
        self.effective_priority
    }

    /// Whether a fault is raised.
    pub fn in_fault(&self) -> bool {
        self.fault
    }

    /// Whether operator maintenance is on.
    pub fn in_maintenance(&self) -> bool {
        self.maintenance
    }

    /// The last advertisement accepted from another router.
    pub fn last_master(&self) -> Option<&MasterInfo> {
        self.last_master.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Master_Adver_Interval: our own interval, or in Backup the one learned from the master (v3).
    pub fn master_advert_interval(&self) -> Duration {
        Duration::from_micros(self.master_interval_micros())
    }

    /// Skew_Time for the effective priority and [`master_advert_interval`](Self::master_advert_interval).
    pub fn skew_time(&self) -> Duration {
        Duration::from_micros(skew_micros(
            self.config.version,
            self.effective_priority,
            self.master_interval_micros(),
        ))
    }

    /// Master_Down_Interval for the effective priority and
    /// [`master_advert_interval`](Self::master_advert_interval).
    pub fn master_down_interval(&self) -> Duration {
        Duration::from_micros(master_down_micros(
            self.config.version,
            self.effective_priority,
            self.master_interval_micros(),
        ))
    }

    fn master_interval_micros(&self) -> u64 {
        match &self.state {
            RouterState::Backup(backup) => backup.master_interval_micros,
            _ => self.advert_interval_micros,
        }
    }

    fn master_down_at(&self, now: Instant, master_interval_micros: u64) -> Instant {
        now + Duration::from_micros(master_down_micros(
            self.config.version,
            self.effective_priority,
            master_interval_micros,
        ))
    }

    /// → Backup with the Master_Down_Timer at Master_Down_Interval for `master_interval_micros`
    /// (RFC 9568 6.4.1 Startup, 6.4.3 a better master).
    fn enter_backup(&mut self, now: Instant, master_interval_micros: u64, reason: Reason) {
        let down_at = self.master_down_at(now, master_interval_micros);
        self.transition(
            now,
            Entering::Backup {
                master_interval_micros,
                down_at,
            },
            reason,
        );
    }

    /// RFC 9568 6.4.1: the owner becomes Master at once, everyone else Backup with the down timer
    /// at Master_Down_Interval. Also the way out of Fault.
    fn start(&mut self, now: Instant, leaving_fault: bool) {
        if !leaving_fault {
            self.host_check_at = self.host_check_every.map(|every| now + every);
        }
        let starts_as_master =
            !self.fault && self.effective_priority.is_owner() && !self.maintenance;
        if !leaving_fault && !starts_as_master {
            // Not part of the RFC: a vipd that was killed (SIGKILL, OOM, a crash) never released
            // its VIPs. Started again as backup or in Fault it must not keep them, or this node
            // and the peer's master both answer for them.
            self.outputs.push_back(Output::RemoveVips);
        }
        if self.fault {
            self.transition(now, Entering::Fault, Reason::Fault);
        } else if self.effective_priority.is_owner() && !self.maintenance {
            let reason = if leaving_fault {
                Reason::FaultCleared
            } else {
                Reason::AddressOwner
            };
            self.transition(now, Entering::Master, reason);
        } else {
            let reason = if leaving_fault {
                Reason::FaultCleared
            } else {
                Reason::Startup
            };
            self.enter_backup(now, self.advert_interval_micros, reason);
        }
    }

    /// The one place where the state changes: performs every side effect of leaving the old state
    /// and entering the new one, counts it, and reports it last.
    fn transition(&mut self, now: Instant, to: Entering, reason: Reason) {
        if !matches!(to, Entering::Master) {
            self.release_leftover_vips();
        }
        let from = self.state();
        if from == State::Master {
            // Losing to a better master needs no release: that master already advertises
            // (`yield_to` may have sent one last advert at our priority).
            if reason != Reason::HigherPriorityMaster {
                // RFC 9568 6.4.3: a master that stops (shutdown, and for us fault and
                // maintenance) sends priority 0 so backups take over after Skew_Time instead
                // of Master_Down_Interval.
                self.send_advert(Priority::RELEASE);
            }
            self.outputs.push_back(Output::RemoveVips);
        }
        if matches!(to, Entering::Initialize) {
            self.host_check_at = None;
        }
        self.state = match to {
            Entering::Initialize => RouterState::Initialize,
            Entering::Fault => RouterState::Fault,
            Entering::Backup {
                master_interval_micros,
                down_at,
            } => RouterState::Backup(Backup {
                master_interval_micros,
                down_at: (!self.maintenance).then_some(down_at),
                preempt_hold_until: None,
                takeover: Reason::MasterDown,
                leftover_vips: false,
            }),
            Entering::Master => {
                // RFC 9568 6.4.1 / 6.4.2: send an ADVERTISEMENT, then announce every address,
                // then become Master; keepalived does the same. The addresses are added first
                // (local, unordered by the RFC, and no announcement may point traffic here before
                // they exist). The advert first makes a master we preempt drop the VIPs before
                // our announcements reach the clients (docs/design/vrrp.md, Entering Master).
                self.outputs.push_back(Output::AddVips);
                self.send_advert(self.effective_priority);
                self.announce(self.config.garp.repeat);
                self.stats.became_master += 1;
                RouterState::Master(Master {
                    advert_at: now + Duration::from_micros(self.advert_interval_micros),
                    second_burst_at: self.config.garp.delay.map(|delay| now + delay),
                    refresh_at: self.config.garp.refresh.map(|refresh| now + refresh),
                    became_at: now,
                    took_over: reason,
                    answered_at: None,
                })
            }
        };
        let to = self.state();
        self.outputs
            .push_back(Output::StateChanged { from, to, reason });
    }

    fn send_advert(&mut self, priority: Priority) {
        self.stats.adverts_sent += 1;
        if priority.is_release() {
            self.stats.priority_zero_sent += 1;
        }
        self.outputs
            .push_back(Output::SendAdvertisement(self.advertisement(priority)));
    }

    fn announce(&mut self, count: u32) {
        if count > 0 && !self.config.vips.is_empty() {
            self.outputs.push_back(Output::Announce { count });
        }
    }

    /// RFC 3768 7.1 / RFC 9568 7.1 receive checks that need our configuration.
    fn check(&self, source: IpAddr, advert: &Advertisement) -> Result<(), DropReason> {
        let family = AddressFamily::of(self.config.primary_address);
        if advert.vrid != self.config.vrid {
            return Err(DropReason::WrongVrid);
        }
        if advert.version() != self.config.version {
            return Err(DropReason::WrongVersion);
        }
        if AddressFamily::of(source) != family
            || advert
                .addresses
                .iter()
                .any(|address| AddressFamily::of(*address) != family)
        {
            return Err(DropReason::WrongFamily);
        }
        if source == self.config.primary_address {
            return Err(DropReason::OwnAdvert);
        }
        if let VersionFields::V2 { auth, .. } = advert.fields {
            // RFC 3768 7.1: the auth type and data must match ours; then the interval must too,
            // since v2 routers do not learn it.
            if auth != self.config.auth {
                return Err(DropReason::AuthMismatch);
            }
            if advert.interval_micros() != self.advert_interval_micros {
                return Err(DropReason::IntervalMismatch);
            }
        }
        Ok(())
    }

    fn receive(&mut self, now: Instant, source: IpAddr, advert: &Advertisement) {
        if let Err(reason) = self.check(source, advert) {
            self.stats.dropped.count(reason);
            if reason == DropReason::IntervalMismatch {
                // RFC 3768 7.1: dropped; routers that disagree on the interval both become master.
                self.notice_interval_mismatch(source, advert, false);
            }
            if reason == DropReason::AuthMismatch {
                // The same for a password typo, which an operator can only see in the log.
                self.notice(Notice::AuthMismatch { source });
            }
            return;
        }
        self.stats.adverts_received += 1;
        if advert.priority.is_release() {
            self.stats.priority_zero_received += 1;
        }
        self.report_differences(source, advert);
        self.last_master = Some(MasterInfo {
            address: source,
            priority: advert.priority,
            advert_interval: Duration::from_micros(advert.interval_micros()),
            seen_at: now,
        });
        match self.state {
            RouterState::Backup(_) => self.receive_in_backup(now, advert),
            RouterState::Master(_) => self.receive_in_master(now, source, advert),
            // Initialize and Fault do not listen (RFC 9568 6.4.1; keepalived's fault).
            RouterState::Initialize | RouterState::Fault => {}
        }
    }

    /// Accepted adverts that show the routers of the VRID configured differently.
    fn report_differences(&mut self, source: IpAddr, advert: &Advertisement) {
        if advert.interval_micros() != self.advert_interval_micros {
            // RFC 9568 7.1 dropped v2's interval check: a v3 backup learns the master's interval
            // (6.4.2). Accepted, but the routers disagree, which an operator wants to know.
            self.stats.interval_mismatch += 1;
            self.notice_interval_mismatch(source, advert, true);
        }
        if !same_addresses(&advert.addresses, &self.config.vips) {
            // RFC 9568 7.1 makes verifying the address list optional (and drops on mismatch only
            // if one verifies). keepalived drops, which turns a VIP-list typo into two masters
            // fighting over the shared VIPs; we count and report it, and accept. A count of 0
            // is one case: keepalived sends it when every VIP is `virtual_ipaddress_excluded`.
            self.stats.address_list_mismatch += 1;
            self.notice(Notice::AddressListMismatch {
                source,
                count: advert.addresses.len(),
            });
        }
        if self.config.priority.is_owner() && advert.priority.is_owner() {
            // RFC 9568 6.1: one router owns the addresses; two owners is a configuration error
            // (keepalived says so). The equal-priority tie-break still elects one master.
            self.notice(Notice::OwnerHearsAdvert {
                source,
                priority: advert.priority,
            });
        }
    }

    fn notice_interval_mismatch(&mut self, source: IpAddr, advert: &Advertisement, accepted: bool) {
        self.notice(Notice::IntervalMismatch {
            source,
            theirs: Duration::from_micros(advert.interval_micros()),
            ours: Duration::from_micros(self.advert_interval_micros),
            accepted,
        });
    }

    fn notice(&mut self, notice: Notice) {
        self.outputs.push_back(Output::Notice(notice));
    }

    fn receive_in_backup(&mut self, now: Instant, advert: &Advertisement) {
        if self.maintenance {
            // Maintenance: never take over, so no timer to set.
            return;
        }
        let our_priority = self.effective_priority;
        let skew = Duration::from_micros(skew_micros(
            self.config.version,
            our_priority,
            self.master_interval_micros(),
        ));
        let mdi_for_advert = self.master_down_at(now, advert.interval_micros());
        let preempt = self.config.preempt;
        let preempt_delay = self.config.preempt_delay;
        let RouterState::Backup(backup) = &mut self.state else {
            return;
        };
        let mut another_master = false;
        if advert.priority.is_release() {
            // RFC 9568 6.4.2: priority 0 → Master_Down_Timer = Skew_Time.
            backup.down_at = Some(now + skew);
            backup.takeover = Reason::MasterReleased;
            return;
        }
        let accept = if !preempt || advert.priority >= our_priority {
            backup.preempt_hold_until = None;
            true
        } else if preempt_delay.is_zero() {
            false
        } else {
            // keepalived preempt_delay: for a while after first seeing a lower-priority master,
            // treat it as a legitimate master. If it stops advertising the timer still runs out.
            let hold_until = *backup.preempt_hold_until.get_or_insert(now + preempt_delay);
            now < hold_until
        };
        if accept {
            // RFC 9568 6.4.2: learn Master_Adver_Interval, recompute, reset the down timer.
            backup.master_interval_micros = advert.interval_micros();
            backup.down_at = Some(mdi_for_advert);
            backup.takeover = Reason::MasterDown;
            another_master = true;
        } else {
            // RFC 9568 6.4.2: preempting → discard and let the down timer run out.
            backup.takeover = Reason::Preempted;
        }
        if another_master {
            self.release_leftover_vips();
        }
    }

    fn receive_in_master(&mut self, now: Instant, source: IpAddr, advert: &Advertisement) {
        let interval = Duration::from_micros(self.advert_interval_micros);
        if advert.priority.is_release() {
            // RFC 9568 6.4.3: priority 0 → send an advert at once and reset the Adver_Timer.
            self.send_advert_now(now, interval);
            return;
        }
        let ours = self.effective_priority;
        // RFC 9568 6.4.3: higher priority, or equal priority from a larger primary address
        // (compared as unsigned integers in network byte order, which octet order is).
        let they_win = advert.priority > ours
            || (advert.priority == ours && octets(source) > octets(self.config.primary_address));
        if they_win {
            self.yield_to(now, source, advert, interval);
        } else {
            self.answer_lower_master(now, source, advert.priority, interval);
        }
    }

    /// RFC 9568 6.4.3 discards a lower-priority advert. keepalived answers it with an advert (and
    /// GARPs if configured) so that a split brain heals and clients that followed the other
    /// master come back. We keep that answer but bound it: one advert and one announcement burst
    /// per Advertisement_Interval, since any on-link host can send such adverts; and none while
    /// the master we just preempted is still being heard (docs/design/vrrp.md, Split brain).
    fn answer_lower_master(
        &mut self,
        now: Instant,
        source: IpAddr,
        priority: Priority,
        interval: Duration,
    ) {
        let RouterState::Master(master) = &mut self.state else {
            return;
        };
        if master.in_handover(now, interval) || !master.may_answer(now, interval) {
            return;
        }
        master.answered_at = Some(now);
        self.stats.two_masters_seen += 1;
        self.notice(Notice::TwoMasters {
            source,
            priority,
            ours: self.effective_priority,
            kept_master: true,
        });
        self.send_advert_now(now, interval);
        self.announce(self.config.garp.repeat);
    }

    /// RFC 9568 6.4.3: a better master → Backup, down timer for its interval. Before leaving, one
    /// last advert at our priority when a split brain is possible: its advert may have reached us
    /// before ours reached it, and then it never learns that clients followed our announcements
    /// (they stay on us until their neighbour entries expire). Hearing it, the winner answers and
    /// re-announces. Not sent when the takeover is known to be planned, where it would only make
    /// the winner log, re-announce and run its hooks (docs/design/vrrp.md, Split brain).
    fn yield_to(
        &mut self,
        now: Instant,
        source: IpAddr,
        advert: &Advertisement,
        interval: Duration,
    ) {
        let RouterState::Master(master) = &self.state else {
            return;
        };
        // RFC 9568 6.4.2: a backup takes over from a live master only with a higher priority and
        // Preempt_Mode on (an owner always does). Otherwise it cannot have heard us: two masters.
        let split_brain_certain = advert.priority == self.effective_priority
            || (!self.config.preempt && !advert.priority.is_owner());
        // We took over because the master went silent: a partition looks just like a crash.
        let split_brain_possible = split_brain_certain || master.took_over == Reason::MasterDown;
        let last_advert = split_brain_possible && master.may_answer(now, interval);
        if split_brain_certain {
            self.stats.two_masters_seen += 1;
            self.notice(Notice::TwoMasters {
                source,
                priority: advert.priority,
                ours: self.effective_priority,
                kept_master: false,
            });
        }
        if advert.priority.is_owner() {
            self.notice(Notice::LostToOwner { source });
        }
        if last_advert {
            self.send_advert(self.effective_priority);
        }
        self.enter_backup(now, advert.interval_micros(), Reason::HigherPriorityMaster);
    }

    fn send_advert_now(&mut self, now: Instant, interval: Duration) {
        if let RouterState::Master(master) = &mut self.state {
            master.advert_at = now + interval;
        }
        self.send_advert(self.effective_priority);
    }

    fn set_effective_priority(&mut self, now: Instant, requested: Priority) {
        // docs/design/vrrp.md, Tracking: an owner keeps 255; others are clamped to 1..=254.
        let priority = if self.config.priority.is_owner() {
            Priority::OWNER
        } else {
            Priority::new(requested.get().clamp(1, 254))
        };
        if priority == self.effective_priority {
            return;
        }
        self.effective_priority = priority;
        if matches!(self.state, RouterState::Master(_)) {
            // docs/design/vrrp.md, Tracking: a changed priority is advertised at once. A raised
            // one stops a backup's pending preemption before its down timer runs out; a lowered
            // one starts a backup's preempt_delay sooner, but does not make it take over sooner:
            // a preempting backup discards lower-priority adverts (RFC 9568 6.4.2).
            self.send_advert_now(now, Duration::from_micros(self.advert_interval_micros));
        }
    }

    fn set_fault(&mut self, now: Instant, fault: bool) {
        self.fault = fault;
        match (&self.state, fault) {
            (RouterState::Backup(_) | RouterState::Master(_), true) => {
                self.transition(now, Entering::Fault, Reason::Fault);
            }
            (RouterState::Fault, false) => self.start(now, true),
            // Initialize remembers the flag for Startup.
            _ => {}
        }
    }

    fn set_maintenance(&mut self, now: Instant, on: bool) {
        if self.maintenance == on {
            return;
        }
        self.maintenance = on;
        let down_at = self.master_down_at(now, self.master_interval_micros());
        match &mut self.state {
            RouterState::Master(_) if on => {
                self.enter_backup(now, self.advert_interval_micros, Reason::Maintenance);
            }
            RouterState::Backup(backup) => {
                // Off: watch the master afresh for a whole Master_Down_Interval.
                backup.down_at = (!on).then_some(down_at);
                backup.preempt_hold_until = None;
                backup.takeover = Reason::MasterDown;
                if on {
                    self.release_leftover_vips();
                }
            }
            _ => {}
        }
    }
}

/// Restart after a crash (docs/design/vrrp.md, "Restart after a crash"). Not part of the RFC,
/// which has no VIPs on the host before Startup.
impl VirtualRouter {
    /// A non-owner that finds VIPs of a killed predecessor listens before deciding: removing
    /// them at once (then taking over a Master_Down_Interval later) leaves the VIPs with no
    /// holder when the predecessor was the master and nobody took over yet. One advert interval
    /// hears any live master; Skew_Time more keeps the priorities' order among routers that
    /// restart together. An owner, or a router in Fault or maintenance, starts as usual.
    fn start_holding_vips(&mut self, now: Instant) {
        if self.fault || self.maintenance || self.effective_priority.is_owner() {
            self.start(now, false);
            return;
        }
        self.host_check_at = self.host_check_every.map(|every| now + every);
        let master_interval_micros = self.advert_interval_micros;
        let listen = master_interval_micros.saturating_add(skew_micros(
            self.config.version,
            self.effective_priority,
            master_interval_micros,
        ));
        let down_at = now + Duration::from_micros(listen);
        self.transition(
            now,
            Entering::Backup {
                master_interval_micros,
                down_at,
            },
            Reason::Startup,
        );
        if let RouterState::Backup(backup) = &mut self.state {
            backup.leftover_vips = true;
        }
    }

    /// Removes the VIPs a killed predecessor left, if this router still holds them in Backup.
    fn release_leftover_vips(&mut self) {
        if let RouterState::Backup(backup) = &mut self.state
            && std::mem::take(&mut backup.leftover_vips)
        {
            self.outputs.push_back(Output::RemoveVips);
        }
    }

    /// The advertisement this router sends at `priority` (0 to release), e.g. for a tool that
    /// releases a dead daemon's VIPs on its behalf.
    pub fn advertisement(&self, priority: Priority) -> Advertisement {
        Advertisement {
            vrid: self.config.vrid,
            priority,
            fields: self.advert_fields,
            addresses: self.config.vips.clone(),
        }
    }
}

impl VirtualRouter {
    fn host_check_due(&mut self, now: Instant) {
        if self.host_check_at.is_none_or(|at| at > now) {
            return;
        }
        self.host_check_at = self.host_check_every.map(|every| now + every);
        let vips = matches!(self.state, RouterState::Master(_));
        self.outputs.push_back(Output::CheckHost { vips });
    }

    /// Not part of the RFC: the VIPs are the master's to hold, so a master puts back what someone
    /// else removed (and counts it), and announces once so that neighbours that noticed the gap
    /// (an ARP probe answered by nobody) learn the address again.
    fn restore_vips(&mut self, count: u32) {
        if count == 0 || !matches!(self.state, RouterState::Master(_)) {
            return;
        }
        self.stats.vips_restored += u64::from(count);
        self.outputs.push_back(Output::AddVips);
        self.announce(1);
    }

    fn set_primary_address(&mut self, address: IpAddr) {
        if AddressFamily::of(address) == AddressFamily::of(self.config.primary_address) {
            self.config.primary_address = address;
        }
    }
}

fn octets(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn same_addresses(theirs: &[IpAddr], ours: &[IpAddr]) -> bool {
    theirs.len() == ours.len() && theirs.iter().all(|address| ours.contains(address))
}
