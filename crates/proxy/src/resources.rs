//! What the proxy needs of the host: file descriptors for its limits, and which errors are the
//! proxy's own shortage rather than a server's fault.

use std::io;

use crate::ProxyConfig;

/// Fds kept for everything but sessions: listeners (one per thread and address), health checks,
/// the control server, netlink and VRRP sockets, log files.
pub const FD_RESERVE: u64 = 1024;

/// Fds the proxy needs for `config`'s limits: `(required, wanted)`.
///
/// A session holds two sockets, `required` counts those for every session the limits allow.
/// `wanted` adds the two pipes a session may hold while both directions splice a chunk (without
/// them the chunk is copied instead, so they are not required).
pub fn fds_needed(config: &ProxyConfig) -> (u64, u64) {
    let frontends: usize = config
        .frontends
        .iter()
        .map(|frontend| frontend.max_connections)
        .fold(0, usize::saturating_add);
    let sessions = u64::try_from(frontends.min(config.max_connections)).unwrap_or(u64::MAX);
    let required = sessions.saturating_mul(2).saturating_add(FD_RESERVE);
    let wanted = sessions.saturating_mul(6).saturating_add(FD_RESERVE);
    (required, wanted)
}

/// Whether a failed connect is the proxy's own shortage, not the server's fault: no fd left
/// (EMFILE, ENFILE), no memory or buffers (ENOMEM, ENOBUFS), no local port or source address
/// (EADDRNOTAVAIL). Such a failure does not count against the server (its health, its
/// `connect_errors`) and is not retried: another attempt right away meets the same shortage.
pub fn is_local_shortage(error: &io::Error) -> bool {
    use nix::libc::{EADDRNOTAVAIL, EMFILE, ENFILE, ENOBUFS, ENOMEM};
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM | EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendConfig, FrontendConfig, ServerConfig};

    #[test]
    fn local_shortages_are_told_from_server_failures() {
        for errno in [
            nix::libc::EMFILE,
            nix::libc::ENFILE,
            nix::libc::EADDRNOTAVAIL,
        ] {
            assert!(is_local_shortage(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [
            nix::libc::ECONNREFUSED,
            nix::libc::ETIMEDOUT,
            nix::libc::EHOSTUNREACH,
        ] {
            assert!(!is_local_shortage(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_local_shortage(&io::Error::from(
            io::ErrorKind::TimedOut
        )));
    }

    #[test]
    fn fds_follow_the_tighter_of_the_global_and_frontend_limits() {
        let server = ServerConfig::new("s", "127.0.0.2:80".parse().unwrap());
        let mut frontend = FrontendConfig::new("f", Vec::new(), "b");
        frontend.max_connections = 1000;
        let mut config = ProxyConfig {
            frontends: vec![frontend.clone(), frontend],
            backends: vec![BackendConfig::new("b", vec![server])],
            ..ProxyConfig::default()
        };
        assert_eq!(
            fds_needed(&config),
            (4000 + FD_RESERVE, 12_000 + FD_RESERVE)
        );
        config.max_connections = 500;
        assert_eq!(fds_needed(&config), (1000 + FD_RESERVE, 3000 + FD_RESERVE));
    }
}
