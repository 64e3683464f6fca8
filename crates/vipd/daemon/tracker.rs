//! Trackers: tasks that watch something an instance depends on and publish a [`Verdict`] on a
//! watch channel. One task per tracked thing, however many instances track it; the instance's
//! router task combines the verdicts with [`crate::daemon::priority::effective`].
//!
//! Kinds (docs/design/vrrp.md, Tracking): scripts (interval, timeout, rise, fall; a hung script is killed and
//! counts as a failure), files (an integer × weight), interfaces (link down), and proxy frontends
//! (fewer than `min_up` usable servers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vipd_proxy::HealthState;

use crate::control::{TrackerKind, TrackerState, TrackerStatus};
use crate::daemon::exec::{self, RunAs};
use crate::daemon::priority::Verdict;

/// What an instance knows about one of its trackers besides its reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerInfo {
    pub kind: TrackerKind,
    /// The script name, interface name, file path or frontend name.
    pub target: String,
    pub weight: i16,
}

/// A tracker's latest verdict, with a human-readable detail for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub verdict: Verdict,
    /// Why it fails, or what it read.
    pub detail: Option<String>,
    /// The verdict is a stand-in: the check has not run yet (a script just started). A VRRP
    /// instance takes it as it is (up); an announce group keeps its VIPs as they are until the
    /// first real reading.
    pub unchecked: bool,
}

impl Reading {
    fn new(verdict: Verdict) -> Self {
        Self {
            verdict,
            detail: None,
            unchecked: false,
        }
    }

    /// What a script tracker reads before its first run.
    fn before_the_first_run() -> Self {
        Self {
            verdict: Verdict::Up,
            detail: Some("not run yet".to_owned()),
            unchecked: true,
        }
    }
}

/// The trackers of an instance or announce group as status shows them.
pub fn statuses(trackers: &[(TrackerInfo, watch::Receiver<Reading>)]) -> Vec<TrackerStatus> {
    trackers
        .iter()
        .map(|(info, reading)| {
            let reading = reading.borrow();
            TrackerStatus {
                kind: info.kind,
                target: info.target.clone(),
                weight: i32::from(info.weight),
                state: match reading.verdict {
                    Verdict::Up => TrackerState::Up,
                    Verdict::Down => TrackerState::Down,
                    Verdict::Value(value) => TrackerState::Value(value),
                },
                detail: reading.detail.clone(),
            }
        })
        .collect()
}

/// Resolves when any tracker's reading changes; never when there are none. A tracker whose task
/// ended (stopped by a reload) keeps its last reading and is not waited on.
pub async fn any_changed(trackers: &mut [(TrackerInfo, watch::Receiver<Reading>)]) {
    let changes: Vec<_> = trackers
        .iter_mut()
        .filter(|(_, reading)| reading.has_changed().is_ok())
        .map(|(_, reading)| Box::pin(reading.changed()))
        .collect();
    if changes.is_empty() {
        return std::future::pending().await;
    }
    let _ = futures::future::select_all(changes).await;
}

/// Runs `script` every `interval` and publishes its verdict after rise/fall hysteresis.
///
/// The first result decides at once (as keepalived does), so a node that starts with a failing
/// check does not hold a priority it should not have for `fall` intervals. A program that a
/// non-root user could replace is never run: the tracker then stays down, because a node whose
/// health cannot be checked must not be preferred.
pub fn spawn_script(
    name: String,
    script: vipd_config::Script,
    cancel: CancellationToken,
) -> watch::Receiver<Reading> {
    let (tx, rx) = watch::channel(Reading::before_the_first_run());
    tokio::spawn(async move {
        let refuse = |reason: String| {
            warn!(script = %name, %reason, "refusing to run check script; its tracker stays down");
            tx.send_replace(Reading {
                verdict: Verdict::Down,
                detail: Some(reason),
                unchecked: false,
            });
        };
        if let Some(reason) = vipd_config::non_root_writer(&script.command.program) {
            refuse(reason);
            return;
        }
        let user = match RunAs::script_user(script.user.as_deref()) {
            Ok(user) => user,
            Err(reason) => {
                refuse(reason);
                return;
            }
        };
        let mut state: Option<HealthState> = None;
        let mut ticker = tokio::time::interval(script.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let ran = exec::run(
                &script.command.program,
                &script.command.args,
                user.as_ref(),
                script.timeout,
            )
            .await;
            let success = ran.succeeded();
            let flipped = match state.as_mut() {
                None => {
                    state = Some(HealthState::new(success));
                    true
                }
                Some(state) if success => state.record_success(script.rise),
                Some(state) => state.record_failure(script.fall),
            };
            let up = state.is_some_and(|state| state.is_up());
            // How it failed and its first stderr line: shown in status, so that "why is this
            // node backup" has its answer without running the script by hand.
            let last_failure = (!success).then(|| ran.to_string());
            if flipped {
                info!(script = %name, up, detail = last_failure.as_deref().unwrap_or("-"), "check script changed state");
            }
            tx.send_if_modified(|status| {
                let next = Reading {
                    verdict: if up { Verdict::Up } else { Verdict::Down },
                    detail: last_failure,
                    unchecked: false,
                };
                let changed = *status != next;
                *status = next;
                changed
            });
        }
    });
    rx
}

/// How often a tracked file is read. keepalived uses inotify; a one-second poll is simpler, needs
/// no extra descriptor per file, and is well inside any advert interval that matters here.
const FILE_POLL: Duration = Duration::from_secs(1);

/// Reads the integer in `path` every second.
///
/// An absent file is 0 (nothing to say); a file that exists but holds no integer counts as 1, so
/// `touch /run/vipd/maintenance` does what an operator expects.
pub fn spawn_file(path: PathBuf, cancel: CancellationToken) -> watch::Receiver<Reading> {
    let (tx, rx) = watch::channel(Reading::new(read_tracked_file(&path)));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(FILE_POLL) => {}
            }
            let value = read_tracked_file(&path);
            tx.send_if_modified(|current| {
                let changed = current.verdict != value;
                if changed {
                    info!(file = %path.display(), ?value, "tracked file changed");
                    current.verdict = value;
                }
                changed
            });
        }
    });
    rx
}

fn read_tracked_file(path: &Path) -> Verdict {
    match std::fs::read_to_string(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Verdict::Value(0),
        Err(_) => Verdict::Value(1),
        Ok(text) => Verdict::Value(tracked_value(&text)),
    }
}

/// The integer in a tracked file. A number beyond i64 saturates (it is still "very large", not
/// a failure); anything that is not a number counts as 1, a failure.
fn tracked_value(text: &str) -> i64 {
    use std::num::IntErrorKind;
    match text.trim().parse::<i64>() {
        Ok(value) => value,
        Err(error) => match error.kind() {
            IntErrorKind::PosOverflow => i64::MAX,
            IntErrorKind::NegOverflow => i64::MIN,
            _ => 1,
        },
    }
}

/// Follows the usable-server count of a proxy frontend: down while fewer than `min_up` of its
/// backend's servers take sessions. The proxy's own checks supply the rise/fall hysteresis.
pub fn spawn_frontend(
    frontend: String,
    min_up: u32,
    mut health: watch::Receiver<vipd_proxy::HealthReport>,
    cancel: CancellationToken,
) -> watch::Receiver<Reading> {
    let reading_of = move |report: &vipd_proxy::HealthReport, frontend: &str| {
        let usable = report
            .frontends
            .get(frontend)
            .map_or(0, |health| health.servers_usable);
        let up = u32::try_from(usable).unwrap_or(u32::MAX) >= min_up;
        Reading {
            verdict: if up { Verdict::Up } else { Verdict::Down },
            detail: Some(format!("{usable} usable servers, min_up {min_up}")),
            unchecked: false,
        }
    };
    let initial = reading_of(&health.borrow_and_update(), &frontend);
    let (tx, rx) = watch::channel(initial);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = health.changed() => if changed.is_err() { return },
            }
            let next = reading_of(&health.borrow_and_update(), &frontend);
            tx.send_if_modified(|current| {
                let changed = *current != next;
                if current.verdict != next.verdict {
                    info!(%frontend, up = next.verdict == Verdict::Up, detail = ?next.detail, "frontend tracker changed state");
                }
                *current = next;
                changed
            });
        }
    });
    rx
}

/// Follows one interface's link state.
pub fn spawn_interface(
    interface: String,
    mut links: watch::Receiver<std::collections::BTreeMap<String, bool>>,
    cancel: CancellationToken,
) -> watch::Receiver<Reading> {
    let reading_of =
        |links: &std::collections::BTreeMap<String, bool>, name: &str| match links.get(name) {
            Some(true) => Reading::new(Verdict::Up),
            Some(false) => Reading {
                verdict: Verdict::Down,
                detail: Some("link down".into()),
                unchecked: false,
            },
            None => Reading {
                verdict: Verdict::Down,
                detail: Some("no such interface".into()),
                unchecked: false,
            },
        };
    let (tx, rx) = watch::channel(reading_of(&links.borrow_and_update(), &interface));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = links.changed() => if changed.is_err() { return },
            }
            let next = reading_of(&links.borrow_and_update(), &interface);
            tx.send_if_modified(|current| {
                let changed = *current != next;
                *current = next;
                changed
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(
        program: &str,
        args: &[&str],
        interval_ms: u64,
        timeout_ms: u64,
    ) -> vipd_config::Script {
        vipd_config::Script {
            command: vipd_config::Command {
                program: PathBuf::from(program),
                args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            },
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise: 2,
            fall: 2,
            user: Some("root".into()),
        }
    }

    async fn wait_for_verdict(reading: &mut watch::Receiver<Reading>, verdict: Verdict) -> Reading {
        tokio::time::timeout(
            Duration::from_secs(10),
            reading.wait_for(|reading| reading.verdict == verdict),
        )
        .await
        .expect("verdict within 10 s")
        .expect("tracker alive")
        .clone()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vipd-tracker-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// docs/design/vrrp.md, Tracking: scripts with rise/fall; the first result decides at once.
    #[tokio::test]
    async fn a_script_tracker_follows_its_exit_status_with_rise_and_fall() {
        let dir = scratch("rise-fall");
        let marker = dir.join("failing");
        let check = format!("test ! -e {}", marker.display());
        let cancel = CancellationToken::new();
        let mut reading = spawn_script(
            "chk".into(),
            script("/bin/sh", &["-c", &check], 50, 1000),
            cancel.clone(),
        );
        wait_for_verdict(&mut reading, Verdict::Up).await;
        std::fs::write(&marker, "").unwrap();
        let down = wait_for_verdict(&mut reading, Verdict::Down).await;
        assert!(down.detail.is_some(), "a failure says why");
        std::fs::remove_file(&marker).unwrap();
        wait_for_verdict(&mut reading, Verdict::Up).await;
        cancel.cancel();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The detail used to say `Exited(ExitStatus(unix_wait_status(512)))` and nothing of why.
    #[tokio::test]
    async fn a_failing_script_puts_its_exit_status_and_first_stderr_line_in_the_detail() {
        let cancel = CancellationToken::new();
        let check = "echo 'db: connection refused' >&2; echo more >&2; exit 2";
        let mut reading = spawn_script(
            "db".into(),
            script("/bin/sh", &["-c", check], 1000, 1000),
            cancel.clone(),
        );
        let down = wait_for_verdict(&mut reading, Verdict::Down).await;
        assert_eq!(
            down.detail.as_deref(),
            Some("exit status: 2, stderr: db: connection refused")
        );
        cancel.cancel();
    }

    #[test]
    fn a_tracked_value_beyond_i64_saturates_and_garbage_is_a_failure() {
        assert_eq!(tracked_value(" -42\n"), -42);
        assert_eq!(tracked_value("99999999999999999999999"), i64::MAX);
        assert_eq!(tracked_value("-99999999999999999999999"), i64::MIN);
        assert_eq!(tracked_value("ok"), 1);
        assert_eq!(tracked_value(""), 1);
    }

    /// docs/design/vrrp.md, Tracking: "a hung script is killed at timeout and counts as a failure".
    #[tokio::test]
    async fn a_hung_script_counts_as_a_failure_at_its_timeout() {
        let cancel = CancellationToken::new();
        let mut hung = script("/bin/sleep", &["30"], 300, 100);
        hung.fall = 1;
        let mut reading = spawn_script("hung".into(), hung, cancel.clone());
        let down = wait_for_verdict(&mut reading, Verdict::Down).await;
        assert!(
            down.detail
                .as_deref()
                .is_some_and(|detail| detail.contains("timed out")),
            "{down:?}"
        );
        cancel.cancel();
    }

    /// docs/design/vrrp.md, Pitfalls: a script writable by non-root is refused; its tracker stays down.
    #[tokio::test]
    async fn a_script_anyone_can_write_is_refused_and_stays_down() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("writable");
        let program = dir.join("check");
        std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cancel = CancellationToken::new();
        let mut reading = spawn_script(
            "writable".into(),
            script(&program.display().to_string(), &[], 50, 1000),
            cancel.clone(),
        );
        let down = wait_for_verdict(&mut reading, Verdict::Down).await;
        assert!(down.detail.is_some(), "{down:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            reading.borrow().verdict,
            Verdict::Down,
            "a refused script never runs"
        );
        cancel.cancel();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tracked_file_absent_is_zero_integer_is_read_and_anything_else_is_one() {
        let dir = std::env::temp_dir().join(format!("vipd-track-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("maintenance");
        assert_eq!(read_tracked_file(&file), Verdict::Value(0));
        std::fs::write(&file, "").unwrap();
        assert_eq!(read_tracked_file(&file), Verdict::Value(1));
        std::fs::write(&file, " -3\n").unwrap();
        assert_eq!(read_tracked_file(&file), Verdict::Value(-3));
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(read_tracked_file(&file), Verdict::Value(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
