//! Frame captures: tcpdump writes a pcap file, tshark reads it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::LabError;
use crate::process::{self, LabProcess};

/// How long tcpdump may take to start listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// A sender's `send` returns before the frame crossed the veth pair and the bridge (softirq
/// work, later on a busy machine): stopping tcpdump at once loses it.
pub const SETTLE: Duration = Duration::from_millis(300);

/// A running tcpdump; [`Capture::finish`] stops it and hands over the file.
#[derive(Debug)]
pub struct Capture {
    process: LabProcess,
    file: CaptureFile,
}

impl Capture {
    pub(crate) fn wait_until_listening(
        mut process: LabProcess,
        path: PathBuf,
    ) -> Result<Self, LabError> {
        let stderr = process.child_mut().and_then(|child| child.stderr.take());
        let file = CaptureFile { path };
        let Some(stderr) = stderr else {
            return Ok(Self { process, file });
        };
        // tcpdump says "listening on ..." once its socket is open; keep draining stderr after
        // that so it never blocks on a full pipe.
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        match ready_rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(()) => Ok(Self { process, file }),
            Err(_) => Err(LabError::Timeout {
                what: format!("tcpdump to listen (writing {})", file.path.display()),
            }),
        }
    }

    /// Waits 300 ms for frames still in flight, stops tcpdump (SIGINT, so it flushes) and
    /// returns the capture file.
    pub fn finish(mut self) -> CaptureFile {
        std::thread::sleep(SETTLE);
        self.process.stop_with(Signal::SIGINT);
        std::mem::replace(
            &mut self.file,
            CaptureFile {
                path: PathBuf::new(),
            },
        )
    }
}

/// A pcap file of a finished capture, deleted on drop.
#[derive(Debug)]
pub struct CaptureFile {
    path: PathBuf,
}

impl CaptureFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `tshark -r FILE ARGS...` and returns its stdout, e.g. with
    /// `["-Y", "vrrp", "-T", "fields", "-e", "vrrp.checksum.status"]`.
    pub fn tshark(&self, args: &[&str]) -> Result<String, LabError> {
        let mut command = Command::new("tshark");
        command.arg("-r").arg(&self.path).args(args);
        process::run(command)
    }
}

impl Drop for CaptureFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
