//! VRRP v2 (RFC 3768) and v3 (RFC 9568) as a pure protocol library: the wire codec, the timer
//! formulas and the virtual-router state machine of vipd.
//!
//! # IO contract: none
//!
//! This crate opens no socket, reads no clock, touches no file and spawns no task. Time comes in
//! as an `Instant` argument; everything the router wants done comes out as an [`Output`] value.
//! That is what makes every RFC clause and timer formula testable on a virtual clock (see
//! `tests/integration/simulated_lan.rs`). Outside input never panics it: the codec returns a
//! [`ParseError`] naming the reason, and the router drops and counts adverts that fail its checks.
//!
//! # Wire
//!
//! [`Advertisement::from_bytes`] parses the VRRP payload (the bytes after the IP header) given the
//! IP source and destination, which the v3 checksum needs. The caller checks TTL / hop limit 255
//! and, in unicast mode, the peer list, before it gets here. [`Advertisement::emit`] writes one;
//! for v3 over IPv4 pick [`ChecksumForm::WithPseudoHeader`] (keepalived, the default) or
//! [`ChecksumForm::MessageOnly`] (RFC 9568's wording). Parsing accepts either and reports which.
//!
//! # Driving a router
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Instant;
//! use vipd_vrrp::{Input, Output, Priority, RouterConfig, VirtualRouter, Vrid};
//!
//! let primary = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
//! let vip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));
//! let config = RouterConfig::v3(Vrid::try_from(51)?, Priority::new(150), primary, vec![vip]);
//! let mut router = VirtualRouter::new(config)?;
//!
//! // The driver's loop: feed each event with the current time ...
//! let now = Instant::now();
//! router.handle_input(now, Input::Startup);
//! // ... and when the deadline passes, the timers:
//! if let Some(deadline) = router.poll_timeout() {
//!     if deadline <= now {
//!         router.handle_timeout(now);
//!     }
//! }
//! // After either, carry out every output, in order.
//! while let Some(output) = router.poll_output() {
//!     match output {
//!         Output::SendAdvertisement(advert) => { /* emit and send to 224.0.0.18 or peers */ }
//!         Output::AddVips | Output::RemoveVips => { /* rtnetlink */ }
//!         Output::Announce { count } => { /* `count` GARPs / NAs per VIP */ }
//!         Output::CheckHost { vips } => { /* socket, address and (if `vips`) VIPs still there? */ }
//!         Output::Notice(notice) => { /* log it, rate-limited: peers can cause it at will */ }
//!         Output::StateChanged { from, to, reason } => { /* log, notify, metrics */ }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A received packet becomes [`Input::Advertisement`] after [`Advertisement::from_bytes`];
//! trackers send [`Input::EffectivePriority`] and [`Input::Fault`]; the operator's maintenance
//! switch is [`Input::Maintenance`]; SIGTERM is [`Input::Shutdown`]; what the host reports is
//! [`Input::VipsMissing`] and [`Input::PrimaryAddress`], after [`Output::CheckHost`] or a netlink
//! event (a router built with [`VirtualRouter::checking_host_every`] asks for the check itself). A
//! reload's new settings go to [`VirtualRouter::reconfigure`], which keeps the state. Status comes from
//! [`VirtualRouter::state`], [`VirtualRouter::effective_priority`],
//! [`VirtualRouter::last_master`] and [`VirtualRouter::stats`].

#![forbid(unsafe_code)]

pub mod fields;
pub mod router;
pub mod timers;
pub mod wire;

pub use fields::{Centis, OutOfRange, Priority, Version, Vrid};
pub use router::{
    ConfigError, DropCounts, DropReason, GarpSchedule, Input, MAX_TIMER, MasterInfo, Notice,
    Output, Reason, ReconfigureError, RouterConfig, RouterStats, State, VirtualRouter,
};
pub use wire::{
    AddressFamily, Advertisement, Auth, ChecksumForm, EmitError, Packet, ParseError, Parsed,
    PasswordTooLong, VersionFields,
};
