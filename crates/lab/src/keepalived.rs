//! keepalived (the Debian package) as a lab node: started in a host in the foreground, VRRP only,
//! logging with `--log-detail` to a file; stopped, killed the hard way, or asked which states its
//! instances entered and which packets it rejected. vipd's interop tests and the failover
//! benchmark run it beside vipd, vipd-net's tests beside a bare socket.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Lab, LabError, LabProcess};

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

/// keepalived running in a lab host; its files are `DIR/NAME.conf`, `.log` and the pid files,
/// removed (after the process is stopped) on drop.
pub struct Keepalived {
    process: LabProcess,
    log: PathBuf,
    vrrp_pid: PathBuf,
    files: Vec<PathBuf>,
}

impl Keepalived {
    /// Starts keepalived (VRRP only) in `host` with the configuration text `config`, its files in
    /// `dir` named after `name` (which keeps instances sharing a directory apart).
    pub fn start(
        lab: &Lab,
        host: usize,
        dir: &Path,
        name: &str,
        config: &str,
    ) -> Result<Self, LabError> {
        let file = |suffix: &str| dir.join(format!("{name}.{suffix}"));
        let (config_path, log, pid, vrrp_pid, checkers_pid) = (
            file("conf"),
            file("log"),
            file("pid"),
            file("vrrp.pid"),
            file("checkers.pid"),
        );
        let os = |action: String| move |source| LabError::Os { action, source };
        std::fs::write(&config_path, config)
            .map_err(os(format!("write {}", config_path.display())))?;
        let output =
            std::fs::File::create(&log).map_err(os(format!("create {}", log.display())))?;
        let stderr = output
            .try_clone()
            .map_err(os(format!("clone {}", log.display())))?;
        let text = |path: &PathBuf| path.display().to_string();
        let mut command = lab.command_in(
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
                &text(&config_path),
                "--pid",
                &text(&pid),
                "--vrrp_pid",
                &text(&vrrp_pid),
                "--checkers_pid",
                &text(&checkers_pid),
            ],
        )?;
        command.stdin(Stdio::null()).stdout(output).stderr(stderr);
        let process = lab.spawn_command(command)?;
        Ok(Self {
            process,
            log: log.clone(),
            vrrp_pid: vrrp_pid.clone(),
            files: vec![config_path, log, pid, vrrp_pid, checkers_pid],
        })
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

    /// Waits (at most `timeout`) until keepalived has written its VRRP child's pid file.
    pub fn wait_for_vrrp_child(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        while self.vrrp_child().is_none() {
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!("keepalived's VRRP child; log:\n{}", self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// An unplanned failure: SIGKILL the VRRP child first (a parent that dies first makes the
    /// child shut down gracefully and send priority 0), then the parent.
    pub fn kill_hard(&mut self) {
        if let Some(child) = self.vrrp_child() {
            let _ = kill(child, Signal::SIGKILL);
        }
        self.process.stop_with(Signal::SIGKILL);
    }

    /// A planned stop: SIGTERM to the parent, as `systemctl stop keepalived` does; waits for it.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Sends `signal` to the parent without waiting (the benchmark's planned stop); an error if
    /// it is not running.
    pub fn signal(&self, signal: Signal) -> Result<(), LabError> {
        let pid = i32::try_from(self.process.pid())
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(|| LabError::Os {
                action: format!("send {signal} to keepalived"),
                source: std::io::Error::other("it is not running"),
            })?;
        kill(Pid::from_raw(pid), signal).map_err(|errno| LabError::Os {
            action: format!("send {signal} to keepalived"),
            source: errno.into(),
        })
    }

    /// Reaps the process after a signal sent through [`Keepalived::signal`].
    pub fn reap(&mut self) {
        self.process.stop();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.process.stop();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}
