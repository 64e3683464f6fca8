//! The one error type of vipd-net.

use std::net::IpAddr;

/// What went wrong talking to the kernel; every variant says which interface or address.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The named interface does not exist (in this network namespace).
    #[error("interface {interface} does not exist")]
    NoSuchInterface { interface: String },
    /// The interface has no address of the family the caller needs (e.g. no IPv4 to source
    /// VRRPv2 adverts from, or no IPv6 link-local address yet).
    #[error("interface {interface} has no usable {what}")]
    NoAddress {
        interface: String,
        what: &'static str,
    },
    /// A socket call failed.
    #[error("{action} on {interface}: {source}")]
    Socket {
        action: &'static str,
        interface: String,
        #[source]
        source: std::io::Error,
    },
    /// Sending to one destination failed.
    #[error("send to {destination} on {interface}: {source}")]
    Send {
        destination: IpAddr,
        interface: String,
        #[source]
        source: std::io::Error,
    },
    /// A netlink request was refused or failed.
    #[error("netlink {action} for {subject}: {source}")]
    Netlink {
        action: &'static str,
        subject: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// The netlink connection could not be opened.
    #[error("open netlink socket: {source}")]
    NetlinkSocket {
        #[source]
        source: std::io::Error,
    },
    /// A `/proc/sys/net` setting could not be read or written. Writing needs CAP_NET_ADMIN in
    /// the network namespace and `/proc/sys` mounted read-write.
    #[error(
        "{action} {path}: {source} (vipd needs CAP_NET_ADMIN and a writable /proc/sys to change \
         interface settings)"
    )]
    Sysctl {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value the kernel would reject or misread.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// The other side of an in-memory transport or a monitor went away.
    #[error("{what} is closed")]
    Closed { what: &'static str },
}
