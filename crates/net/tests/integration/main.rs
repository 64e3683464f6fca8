//! vipd-net's integration tests on real kernels (lab namespaces), linked as one executable: each
//! former test file is a module, so a test reads as `vrrp_sockets::multicast_adverts_do_not_loop_back_to_the_sender`.
// Test helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod addresses;
mod announcements;
mod keepalived_interop;
mod links;
mod tun_devices;
mod vrrp_sockets;
mod wire_checksums;
