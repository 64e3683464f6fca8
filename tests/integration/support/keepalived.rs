//! keepalived (the Debian package, 2.2.7) as a lab node next to vipd: one set of VRRP settings
//! rendered as a vipd file and as a keepalived file, so both implementations run the same virtual
//! router; starting, stopping and killing keepalived; and the log lines with which keepalived
//! says it rejected a packet.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::{Lab, LabProcess};

use super::Scratch;

/// The virtual router both members run, whichever implementation each one is.
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    pub vrid: u8,
    /// 2 (RFC 3768) or 3 (RFC 5798).
    pub version: u8,
    /// v2: whole seconds; v3: a multiple of 10 ms.
    pub advert_interval: Duration,
    pub vip: Ipv4Addr,
    /// Adverts to the peer's address instead of 224.0.0.18.
    pub unicast: bool,
}

impl RouterSettings {
    /// Skew_Time = (256 − priority) × interval / 256 (RFC 5798 section 6.1; RFC 3768 is the same
    /// with a 1 s interval).
    pub fn skew(&self, priority: u8) -> Duration {
        super::takeover_probe::skew_time(priority, self.advert_interval)
    }

    /// Master_Down_Interval = 3 × interval + Skew_Time.
    pub fn master_down_interval(&self, priority: u8) -> Duration {
        super::takeover_probe::master_down_interval(priority, self.advert_interval)
    }

    fn unicast_pair(&self, lab: &Lab, host: usize, peer: usize) -> Option<(IpAddr, IpAddr)> {
        self.unicast.then(|| {
            (
                IpAddr::V4(lab.host(host).ipv4),
                IpAddr::V4(lab.host(peer).ipv4),
            )
        })
    }

    /// A vipd file for `host` (whose peer is `peer`); `extra` is appended (frontends, backends).
    pub fn vipd_config(
        &self,
        lab: &Lab,
        host: usize,
        peer: usize,
        priority: u8,
        extra: &str,
    ) -> String {
        let unicast = self
            .unicast_pair(lab, host, peer)
            .map(|(source, peer)| format!("    unicast: {{ source: {source}, peers: [{peer}] }}\n"))
            .unwrap_or_default();
        format!(
            "node: node{host}
vrrp:
  - name: vi_1
    interface: eth0
    vrid: {vrid}
    version: {version}
    priority: {priority}
    advert_interval: {interval}ms
    vips: [{vip}/24]
{unicast}{extra}",
            vrid = self.vrid,
            version = self.version,
            interval = self.advert_interval.as_millis(),
            vip = self.vip,
        )
    }

    /// The same router as a keepalived file for `host`.
    pub fn keepalived_config(&self, lab: &Lab, host: usize, peer: usize, priority: u8) -> String {
        let unicast = self
            .unicast_pair(lab, host, peer)
            .map(|(source, peer)| {
                format!("  unicast_src_ip {source}\n  unicast_peer {{\n    {peer}\n  }}\n")
            })
            .unwrap_or_default();
        format!(
            "global_defs {{\n  router_id node{host}\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  \
             virtual_router_id {vrid}\n  version {version}\n  priority {priority}\n  \
             advert_int {interval}\n{unicast}  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n",
            vrid = self.vrid,
            version = self.version,
            interval = self.advert_interval.as_secs_f64(),
            vip = self.vip,
        )
    }

    /// [`RouterSettings::keepalived_config`] with `use_vmac`: the VIP on the macvlan
    /// `vrrp.{vrid}` carrying 00-00-5E-00-01-{VRID}, adverts sent from it; keepalived's
    /// counterpart of vipd's `virtual_mac: true`.
    pub fn keepalived_vmac_config(
        &self,
        lab: &Lab,
        host: usize,
        peer: usize,
        priority: u8,
    ) -> String {
        self.keepalived_config(lab, host, peer, priority).replacen(
            "  interface eth0\n",
            "  interface eth0\n  use_vmac\n",
            1,
        )
    }
}

/// keepalived's name for the macvlan of `use_vmac` (vipd's `virtual_mac` default is the same).
pub fn vmac_interface(vrid: u8) -> String {
    format!("vrrp.{vrid}")
}

/// What keepalived logs (with `--log-detail`) when it drops a VRRP packet as malformed or not
/// acceptable: the messages of its receive checks (vrrp.c, `vrrp_check_packet`). A packet of
/// the peer matching any of these means the two implementations disagree on the wire.
pub const KEEPALIVED_REJECTIONS: &[&str] = &[
    "packet too",
    "Invalid VRRPv3 checksum",
    "checksum to old version",
    "invalid TTL/HL",
    "not in range",
    "wrong version",
    "auth, expecting",
    "invalid passwd",
    "advertisement interval mismatch",
    "Invalid packet type",
    "unexpected ip number count",
    "ip_tot_len mismatch",
    "icast packet but received",
    "VIPs but received",
    "not present in MASTER advert",
    "not a unicast peer",
    "icast packet on",
    "bogus",
];

/// keepalived running in a lab host, in the foreground, logging to a file in the scratch dir.
pub struct Keepalived {
    process: LabProcess,
    log: PathBuf,
    vrrp_pid: PathBuf,
}

impl Keepalived {
    /// Starts keepalived (VRRP only) in `host` with the file `config`; `name` keeps this
    /// instance's files apart from other instances' in the same scratch dir.
    pub fn start(lab: &Lab, host: usize, scratch: &Scratch, name: &str, config: &str) -> Self {
        let config = scratch.write(&format!("{name}.conf"), config);
        let log = scratch.0.join(format!("{name}.log"));
        let pid = scratch.0.join(format!("{name}.pid"));
        let vrrp_pid = scratch.0.join(format!("{name}.vrrp.pid"));
        let checkers_pid = scratch.0.join(format!("{name}.checkers.pid"));
        let path = |path: &PathBuf| path.display().to_string();
        let (config_text, pid_text, vrrp_text, checkers_text) = (
            path(&config),
            path(&pid),
            path(&vrrp_pid),
            path(&checkers_pid),
        );
        let mut command = lab
            .command_in(
                host,
                &[
                    "keepalived",
                    "--dont-fork",
                    "--log-console",
                    "--log-detail",
                    "--no-syslog",
                    // A killed VRRP child must stay dead: the failure is what is measured.
                    "--dont-respawn",
                    "--vrrp",
                    "--use-file",
                    &config_text,
                    "--pid",
                    &pid_text,
                    "--vrrp_pid",
                    &vrrp_text,
                    "--checkers_pid",
                    &checkers_text,
                ],
            )
            .expect("host exists");
        let output = std::fs::File::create(&log).expect("keepalived log file");
        command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output);
        let process = lab.spawn_command(command).expect("keepalived starts");
        Self {
            process,
            log,
            vrrp_pid,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many times the instance logged `Entering {state} STATE` ("MASTER", "BACKUP").
    pub fn entered(&self, state: &str) -> usize {
        self.log()
            .matches(&format!("(VI_1) Entering {state} STATE"))
            .count()
    }

    /// Log lines in which keepalived rejected a packet (see [`KEEPALIVED_REJECTIONS`]).
    pub fn rejections(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| {
                KEEPALIVED_REJECTIONS
                    .iter()
                    .any(|pattern| line.contains(pattern))
            })
            .map(str::to_owned)
            .collect()
    }

    /// The VRRP child process, which does the protocol work (the parent only supervises).
    fn vrrp_child(&self) -> Option<Pid> {
        std::fs::read_to_string(&self.vrrp_pid)
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(Pid::from_raw)
    }

    /// Waits (bounded) until keepalived has written its VRRP child's pid file.
    pub fn wait_for_vrrp_child(&self) {
        assert!(
            super::wait_until(Duration::from_secs(10), || self.vrrp_child().is_some()).is_some(),
            "keepalived never started its VRRP child; log:\n{}",
            self.log()
        );
    }

    /// An unplanned failure: SIGKILL the VRRP child first (a parent that dies first makes the
    /// child shut down gracefully and send priority 0), then the parent.
    pub fn kill_hard(&mut self) {
        if let Some(child) = self.vrrp_child() {
            let _ = kill(child, Signal::SIGKILL);
        }
        self.process.stop_with(Signal::SIGKILL);
    }

    /// A planned stop: SIGTERM to the parent, as `systemctl stop keepalived` does.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// The parent's pid, to signal it without waiting (the benchmark's planned stop).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.process.pid()).expect("pid fits"))
    }

    /// Reaps the process after a signal sent through [`Keepalived::pid`].
    pub fn reap(&mut self) {
        self.process.stop();
    }
}
