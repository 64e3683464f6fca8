//! A TUN device that exists exactly as long as vipd holds it: the announce devices
//! (docs/design/announce.md). Opened without `TUNSETPERSIST`, the kernel deletes the device, its
//! addresses and their routes when the last descriptor closes, however the process ends; the
//! routing daemon then sees the routes go and withdraws them.
//!
//! With `deadline_timer`, the crate's other `unsafe` module: `TUNSETIFF` is an ioctl, and Rust
//! has no safe wrapper for it in the crates the project uses.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::NetError;
use crate::sysctl::InterfaceSetting;
use crate::virtual_mac::LinkAdmin;

/// `IFF_TUN`: layer 3 (no Ethernet header); `IFF_NO_PI`: no packet-information prefix
/// (linux/if_tun.h).
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `addr_gen_mode` 1: no IPv6 link-local address is generated (ip-sysctl.rst).
const ADDR_GEN_MODE_NONE: i64 = 1;

fn ipv6_enabled() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags at the start of the union
/// (40 bytes in all on Linux).
#[repr(C)]
struct InterfaceRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest_of_union: [u8; 22],
}

// TUNSETIFF reads the request and writes it back (the name the kernel chose).
nix::ioctl_readwrite_bad!(
    tun_set_interface,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()),
    InterfaceRequest
);
// TUNSETPERSIST takes its argument as an integer, not a pointer.
nix::ioctl_write_int_bad!(
    tun_set_persist,
    nix::request_code_write!(b'T', 203, std::mem::size_of::<libc::c_int>())
);

/// A TUN device, deleted by the kernel when this value (its descriptor) is dropped.
#[derive(Debug)]
pub struct TunDevice {
    name: String,
    /// Never read: vipd only needs the device to exist. Packets routed out of it (none are: its
    /// addresses are host routes) would wait in its queue until dropped.
    _descriptor: File,
}

impl TunDevice {
    /// Creates the device `name` and sets it up. Fails if a device of that name exists and is
    /// held by another process (EBUSY: another vipd), or is not a TUN device.
    pub async fn open(name: &str, links: &LinkAdmin) -> Result<Self, NetError> {
        let failed = |source: std::io::Error| NetError::Socket {
            action: "create TUN device",
            interface: name.to_owned(),
            source,
        };
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(failed(std::io::Error::from(
                std::io::ErrorKind::InvalidInput,
            )));
        }
        let descriptor = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(failed)?;
        let mut request = InterfaceRequest {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _rest_of_union: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: `request` is an initialised, writable `struct ifreq` layout (40 bytes, as the
        // kernel copies in and back out) that outlives the call.
        unsafe { tun_set_interface(descriptor.as_raw_fd(), &raw mut request) }
            .map_err(|errno| failed(std::io::Error::from(errno)))?;
        // A persistent device of that name (`ip tuntap add`) is attached to rather than created:
        // made non-persistent, it dies with vipd like one vipd created, instead of keeping the
        // VIPs announced after vipd has gone.
        // SAFETY: TUNSETPERSIST takes a plain integer; the descriptor is a TUN device now.
        unsafe { tun_set_persist(descriptor.as_raw_fd(), 0) }
            .map_err(|errno| failed(std::io::Error::from(errno)))?;
        // No IPv6 link-local address: the device carries host addresses only, and a routing
        // daemon exporting the device's prefixes must not see an fe80::/64. Absent when the
        // host has IPv6 disabled, which is fine.
        if ipv6_enabled() {
            InterfaceSetting::ipv6(name, "addr_gen_mode").write(ADDR_GEN_MODE_NONE)?;
        }
        links.set_up(name, true).await?;
        Ok(Self {
            name: name.to_owned(),
            _descriptor: descriptor,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
