//! systemd's notification protocol (sd_notify(3)) over the datagram socket `$NOTIFY_SOCKET`
//! names: `READY=1` once vipd serves (the unit is `Type=notify`, so `systemctl start` returns
//! when the VRRP instances and the proxy run, not when the process exists), `RELOADING=1` then
//! `READY=1` around a reload, `STOPPING=1` at shutdown, and a `STATUS=` line that
//! `systemctl status vipd` shows, and `WATCHDOG=1` keep-alives when the unit has a watchdog
//! (`daemon::watchdog` decides when). Without the variable (not under systemd) nothing is sent.
//!
//! Written on std's `UnixDatagram` rather than a crate: it is one datagram per event, and the
//! only subtlety is the abstract socket address (`@name`).

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::warn;

/// Where vipd's notifications go, if anywhere.
pub struct SystemdNotify {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl SystemdNotify {
    /// The socket of `$NOTIFY_SOCKET`; none when it is unset. An address vipd cannot use is
    /// logged and notifications are off (systemd then fails the start at its timeout, which
    /// says more than a daemon that refuses to run).
    pub fn from_environment() -> Self {
        let Some(address) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { target: None };
        };
        match Self::to(&address) {
            Ok(notify) => notify,
            Err(error) => {
                warn!(address = %address.to_string_lossy(), %error, "cannot notify systemd");
                Self { target: None }
            }
        }
    }

    /// Notifications to `address`: a path, or `@name` for an abstract socket.
    fn to(address: &OsStr) -> std::io::Result<Self> {
        let bytes = address.as_bytes();
        let address = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            Some(b'/') => SocketAddr::from_pathname(address)?,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "only path and abstract (@) socket addresses are supported",
                ));
            }
        };
        let socket = UnixDatagram::unbound()?;
        // A full queue (a listener that does not read) costs a notification, never a stall of
        // the daemon's signal loop.
        socket.set_nonblocking(true)?;
        Ok(Self {
            target: Some((socket, address)),
        })
    }

    /// vipd serves: at start-up, and after each reload whatever its verdict.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A reload starts. `MONOTONIC_USEC` lets systemd 253 and later tell this reload from an
    /// earlier one; older versions ignore it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_microseconds()
        ));
    }

    /// Shutdown starts: VIPs released, then the drain.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: releasing VIPs, draining the proxy");
    }

    /// The daemon is alive (`WatchdogSec=`): sent by `daemon::watchdog::keep_alive`.
    pub fn watchdog_keep_alive(&self) {
        self.send("WATCHDOG=1");
    }

    /// The watchdog period systemd expects keep-alives within: `$WATCHDOG_USEC`, for this
    /// process only (`$WATCHDOG_PID` unset or ours, as sd_watchdog_enabled(3) says). `None`
    /// without a watchdog, or with values that are not numbers (logged).
    pub fn watchdog_period_from_environment() -> Option<Duration> {
        let period = std::env::var("WATCHDOG_USEC").ok()?;
        let pid = std::env::var("WATCHDOG_PID").ok();
        watchdog_period(&period, pid.as_deref(), std::process::id())
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(error) = socket.send_to_addr(message.as_bytes(), address)
        {
            warn!(%error, "cannot notify systemd");
        }
    }
}

fn watchdog_period(period: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    match period.parse::<u64>() {
        Ok(0) => None,
        Ok(microseconds) => Some(Duration::from_micros(microseconds)),
        Err(error) => {
            warn!(WATCHDOG_USEC = period, %error, "ignoring the systemd watchdog setting");
            None
        }
    }
}

/// A `STATUS=` value must not break the message's lines.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_microseconds() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        let seconds = u64::try_from(now.tv_sec()).unwrap_or(0);
        let nanoseconds = u64::try_from(now.tv_nsec()).unwrap_or(0);
        seconds
            .saturating_mul(1_000_000)
            .saturating_add(nanoseconds / 1000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0_u8; 512];
        let length = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    }

    fn listening(socket: &UnixDatagram) {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }

    #[test]
    fn ready_reloading_and_stopping_reach_a_path_socket() {
        let path = std::env::temp_dir().join(format!("vipd-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).expect("bind");
        listening(&systemd);
        let notify = SystemdNotify::to(path.as_os_str()).expect("a path address");

        notify.ready("configuration loaded\n(load 0)");
        assert_eq!(
            receive(&systemd),
            "READY=1\nSTATUS=configuration loaded (load 0)"
        );
        let before = monotonic_microseconds();
        notify.reloading();
        let reloading = receive(&systemd);
        let mut lines = reloading.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let stamp: u64 = lines
            .next()
            .and_then(|line| line.strip_prefix("MONOTONIC_USEC="))
            .and_then(|value| value.parse().ok())
            .expect("MONOTONIC_USEC");
        assert!(stamp >= before && stamp <= monotonic_microseconds());
        notify.stopping();
        assert!(receive(&systemd).starts_with("STOPPING=1\n"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_abstract_address_starts_with_an_at_sign() {
        let name = format!("vipd-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let systemd = UnixDatagram::bind_addr(&address).expect("bind");
        listening(&systemd);
        let notify = SystemdNotify::to(OsStr::new(&format!("@{name}"))).expect("abstract");
        notify.ready("up");
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=up");
    }

    #[test]
    fn the_watchdog_is_ours_unless_another_pid_is_named() {
        let five_seconds = Some(Duration::from_secs(5));
        assert_eq!(watchdog_period("5000000", None, 42), five_seconds);
        assert_eq!(watchdog_period("5000000", Some("42"), 42), five_seconds);
        assert_eq!(watchdog_period("5000000", Some("43"), 42), None);
        assert_eq!(watchdog_period("0", None, 42), None);
        assert_eq!(watchdog_period("5s", None, 42), None);
    }

    #[test]
    fn other_addresses_are_refused_not_guessed() {
        for address in ["", "vsock:2:1234", "relative/path"] {
            assert!(SystemdNotify::to(OsStr::new(address)).is_err(), "{address}");
        }
    }
}
