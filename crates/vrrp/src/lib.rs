//! VRRP v2 (RFC 3768) and v3 (RFC 9568) as a pure protocol library: no tokio, no sockets, no clock, no filesystem.

pub mod fields;
pub mod wire;

pub use fields::{Centis, OutOfRange, Priority, Version, Vrid};
pub use wire::{
    AddressFamily, Advertisement, Auth, ChecksumForm, EmitError, Packet, ParseError, Parsed,
    VersionFields,
};
pub mod router;
pub mod timers;

pub use router::{
    ConfigError, DropCounts, DropReason, GarpSchedule, Input, MasterInfo, Output, Reason,
    RouterConfig, RouterStats, State, VirtualRouter,
};
