//! Processes the lab starts: run to completion, or kept running and killed by PID on drop.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::LabError;

/// How long a process gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// PIDs of the long-running processes a lab started and has not reaped yet.
pub(crate) type PidRegistry = Arc<Mutex<Vec<u32>>>;

pub(crate) fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion and returns its stdout, or an error carrying its stderr.
pub(crate) fn run(mut command: Command) -> Result<String, LabError> {
    let text = describe(&command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: text.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabError::Command {
            command: text,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A long-running process inside a lab host: SIGTERM (then SIGKILL) by PID when dropped.
#[derive(Debug)]
pub struct LabProcess {
    child: Option<Child>,
    registry: PidRegistry,
}

impl LabProcess {
    pub(crate) fn start(mut command: Command, registry: &PidRegistry) -> Result<Self, LabError> {
        let text = describe(&command);
        let child = command.spawn().map_err(|source| LabError::Spawn {
            command: text,
            source,
        })?;
        registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child.id());
        Ok(Self {
            child: Some(child),
            registry: Arc::clone(registry),
        })
    }

    /// The process id (of the command itself: `ip netns exec` execs, it does not fork).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, e.g. to take its piped stdout or stderr.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Sends `signal` and returns at once (a planned stop to be timed while it runs); reap with
    /// [`LabProcess::stop`] or on drop. An error if the process was reaped already.
    pub fn signal(&self, signal: Signal) -> Result<(), LabError> {
        let pid = self
            .child
            .as_ref()
            .and_then(|child| i32::try_from(child.id()).ok())
            .ok_or_else(|| LabError::Os {
                action: format!("send {signal}"),
                source: std::io::Error::other("the process was reaped already"),
            })?;
        kill(Pid::from_raw(pid), signal).map_err(|errno| LabError::Os {
            action: format!("send {signal} to {pid}"),
            source: errno.into(),
        })
    }

    /// Whether the process has exited already.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal`, waits for the exit (SIGKILL after a grace period) and reaps the process.
    pub fn stop_with(&mut self, signal: Signal) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).ok()?);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + TERM_GRACE;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        let id = child.id();
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|pid| *pid != id);
        status
    }

    /// Stops the process with SIGTERM; see [`LabProcess::stop_with`].
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.stop_with(Signal::SIGTERM)
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills what is still registered: processes whose [`LabProcess`] outlived the lab (leaked).
pub(crate) fn kill_remaining(registry: &PidRegistry) {
    let pids = std::mem::take(&mut *registry.lock().unwrap_or_else(PoisonError::into_inner));
    for pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
