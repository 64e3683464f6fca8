//! Running the external programs a configuration names (check scripts and notify hooks): argv
//! only, never a shell; in a process group of their own so that a hung program and everything it
//! started are killed together at the deadline; as a less privileged user when vipd can switch.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, User};
use tokio::process::Command;

/// Who a program runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

impl RunAs {
    /// The user to run scripts as: `configured`, else `vipd-script` if it exists, else `nobody`.
    ///
    /// `None` when vipd is not root: it cannot switch users then (under the systemd unit it runs
    /// as `vipd` with network capabilities only), so programs run as vipd's own user.
    pub fn script_user(configured: Option<&str>) -> Result<Option<Self>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let candidates: Vec<&str> = match configured {
            Some(name) => vec![name],
            None => vec!["vipd-script", "nobody"],
        };
        for name in &candidates {
            match User::from_name(name) {
                Ok(Some(user)) => {
                    return Ok(Some(Self {
                        uid: user.uid.as_raw(),
                        gid: user.gid.as_raw(),
                        name: (*name).to_owned(),
                    }));
                }
                Ok(None) => {}
                Err(error) => return Err(format!("looking up user {name}: {error}")),
            }
        }
        Err(format!("no such user: {}", candidates.join(" or ")))
    }
}

/// How a program run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited (or was killed by a signal it did not get from us).
    Exited(ExitStatus),
    /// It was still running at the deadline; its process group was killed.
    TimedOut,
    /// It could not be started.
    SpawnFailed(String),
}

impl Outcome {
    /// Exit status 0 within the deadline.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Exited(status) if status.success())
    }
}

/// Runs `argv` to completion or until `timeout`, whichever comes first.
pub async fn run(
    program: &std::path::Path,
    args: &[String],
    user: Option<&RunAs>,
    timeout: Duration,
) -> Outcome {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        // systemd listens to the main process only (NotifyAccess=main); a script has nothing
        // to tell it in vipd's name.
        .env_remove("NOTIFY_SOCKET");
    if let Some(user) = user {
        // std drops supplementary groups when a root parent sets a uid.
        command.uid(user.uid).gid(user.gid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return Outcome::SpawnFailed(format!("{}: {error}", program.display())),
    };
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Outcome::Exited(status),
        Ok(Err(error)) => {
            Outcome::SpawnFailed(format!("waiting for {}: {error}", program.display()))
        }
        Err(_elapsed) => {
            if let Some(group) = group {
                // The group leader is our child, so the group id is ours to signal; it may have
                // exited in between, which is fine.
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn exit_status_zero_is_success_and_nonzero_is_failure() {
        let ok = run(Path::new("/bin/true"), &[], None, Duration::from_secs(5)).await;
        assert!(ok.succeeded(), "{ok:?}");
        let failed = run(Path::new("/bin/false"), &[], None, Duration::from_secs(5)).await;
        assert!(matches!(failed, Outcome::Exited(status) if !status.success()));
    }

    #[tokio::test]
    async fn a_hung_program_and_its_children_are_killed_at_the_deadline() {
        let marker = std::env::temp_dir().join(format!("vipd-exec-{}", std::process::id()));
        // The shell forks a grandchild that would write the marker after the deadline.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let outcome = run(
            Path::new("/bin/sh"),
            &["-c".into(), script],
            None,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(outcome, Outcome::TimedOut);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "the grandchild survived the process-group kill"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_failure_not_a_panic() {
        let outcome = run(
            Path::new("/nonexistent/vipd-check"),
            &[],
            None,
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(outcome, Outcome::SpawnFailed(_)), "{outcome:?}");
    }
}
