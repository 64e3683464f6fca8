//! Per-interface kernel settings, `/proc/sys/net/{ipv4,ipv6}/conf/<interface>/<setting>`, read
//! and written in the network namespace of the calling thread.
//!
//! Who may write: the kernel gives a process with `CAP_NET_ADMIN` in the namespace root's access
//! to the `net` sysctls, so the capabilities of deploy/systemd/vipd.service are enough, as long
//! as `/proc/sys` is mounted read-write (systemd's `ProtectKernelTunables=yes` makes it
//! read-only).

use std::path::PathBuf;

use crate::NetError;
use crate::vrrp_socket::Family;

/// One setting of one interface, e.g. `net.ipv4.conf.eth0.arp_ignore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSetting {
    pub family: Family,
    /// An interface name, or `all` / `default`.
    pub interface: String,
    /// The file name under the interface's directory: `arp_ignore`, `disable_ipv6`, ...
    pub name: &'static str,
}

impl InterfaceSetting {
    pub fn ipv4(interface: &str, name: &'static str) -> Self {
        Self {
            family: Family::Ipv4,
            interface: interface.to_owned(),
            name,
        }
    }

    pub fn ipv6(interface: &str, name: &'static str) -> Self {
        Self {
            family: Family::Ipv6,
            interface: interface.to_owned(),
            name,
        }
    }

    fn path(&self) -> PathBuf {
        let family = match self.family {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        };
        // An interface name never holds `/` (the kernel refuses it), so it is one path component.
        PathBuf::from(format!(
            "/proc/sys/net/{family}/conf/{}/{}",
            self.interface, self.name
        ))
    }

    /// The current value (these settings are small integers).
    pub fn read(&self) -> Result<i64, NetError> {
        let path = self.path();
        let text = std::fs::read_to_string(&path).map_err(|source| NetError::Sysctl {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
        text.trim().parse().map_err(|_| NetError::Invalid {
            what: "sysctl value",
            detail: format!("{} holds {:?}, not an integer", path.display(), text.trim()),
        })
    }

    /// Sets the value.
    pub fn write(&self, value: i64) -> Result<(), NetError> {
        let path = self.path();
        std::fs::write(&path, format!("{value}\n")).map_err(|source| NetError::Sysctl {
            action: "write",
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_live_under_the_interface_directory() {
        assert_eq!(
            InterfaceSetting::ipv4("vrrp.51", "arp_ignore").path(),
            PathBuf::from("/proc/sys/net/ipv4/conf/vrrp.51/arp_ignore")
        );
        assert_eq!(
            InterfaceSetting::ipv6("eth0", "disable_ipv6").path(),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0/disable_ipv6")
        );
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_the_file() {
        let error = InterfaceSetting::ipv4("no-such-if0", "arp_ignore")
            .read()
            .unwrap_err();
        assert!(
            error.to_string().contains("no-such-if0/arp_ignore"),
            "{error}"
        );
    }
}
