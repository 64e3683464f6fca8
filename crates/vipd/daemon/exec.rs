//! Running the external programs a configuration names (check scripts and notify hooks): argv
//! only, never a shell; in a process group of their own so that a hung program and everything it
//! started are killed together at the deadline; as a less privileged user when vipd can switch.

use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, User};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, ChildStderr, Command};

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
    /// `None` when vipd cannot switch users, so programs run as vipd's own user: when it is not
    /// root (under the systemd unit it runs as `vipd` with network capabilities only), or is root
    /// without CAP_SETUID and CAP_SETGID (a container whose capabilities were dropped, as the
    /// static pod of deploy/kubernetes/ does), where every spawn would fail with EPERM. A user
    /// named in the configuration that cannot be switched to is an error, not silently ignored.
    pub fn script_user(configured: Option<&str>) -> Result<Option<Self>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        if let Some(missing) = missing_switch_capability() {
            return match configured {
                None => Ok(None),
                Some(name) => Err(format!(
                    "cannot run as {name}: vipd runs as root without {missing}, which switching \
                     users needs (remove `user` to run the script as root without capabilities, \
                     or grant {missing})"
                )),
            };
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

/// The capability root needs to switch to another user that this thread lacks, if any.
fn missing_switch_capability() -> Option<&'static str> {
    use caps::{CapSet, Capability};
    let effective = caps::read(None, CapSet::Effective).ok()?;
    [
        (Capability::CAP_SETUID, "CAP_SETUID"),
        (Capability::CAP_SETGID, "CAP_SETGID"),
    ]
    .into_iter()
    .find(|(capability, _)| !effective.contains(capability))
    .map(|(_, name)| name)
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

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(status) => write!(formatter, "{status}"),
            Self::TimedOut => formatter.write_str("timed out (killed)"),
            Self::SpawnFailed(error) => write!(formatter, "cannot start: {error}"),
        }
    }
}

/// A finished run: how it ended and the first line the program wrote to stderr, which is usually
/// why a check failed ("connection refused") and what an operator needs in `vipd status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    pub outcome: Outcome,
    /// The first line of stderr that is not blank, at most [`STDERR_LINE_MAX`] bytes, control
    /// characters replaced by spaces: it is outside input, shown in status and in the log.
    pub stderr: Option<String>,
}

impl Ran {
    /// Exit status 0 within the deadline.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Exited(status) if status.success())
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.outcome)?;
        if let Some(line) = &self.stderr {
            write!(formatter, ", stderr: {line}")?;
        }
        Ok(())
    }
}

/// The most of a stderr line kept: enough for an error message, short enough for a status table.
pub const STDERR_LINE_MAX: usize = 200;
/// After the program exited, how long to wait for the rest of its first stderr line: what it wrote
/// before exiting is already in the pipe, but a process it left behind may hold the pipe open.
const STDERR_AFTER_EXIT: Duration = Duration::from_millis(100);

/// Runs `argv` to completion or until `timeout`, whichever comes first.
pub async fn run(
    program: &std::path::Path,
    args: &[String],
    user: Option<&RunAs>,
    timeout: Duration,
) -> Ran {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
        Err(error) => {
            return Ran {
                outcome: Outcome::SpawnFailed(format!("{}: {error}", program.display())),
                stderr: None,
            };
        }
    };
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);
    let mut stderr = child.stderr.take();
    let mut first_line = FirstLine::default();
    let waited = tokio::time::timeout(
        timeout,
        wait_reading_stderr(&mut child, &mut stderr, &mut first_line),
    )
    .await;
    let outcome = match waited {
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
    };
    let _ = tokio::time::timeout(
        STDERR_AFTER_EXIT,
        read_stderr_until_line(&mut stderr, &mut first_line),
    )
    .await;
    Ran {
        outcome,
        stderr: first_line.text(),
    }
}

/// Waits for the child while reading its stderr, so that a program writing more than the pipe
/// holds is not blocked (and then killed as hung) for want of a reader.
async fn wait_reading_stderr(
    child: &mut Child,
    stderr: &mut Option<ChildStderr>,
    first_line: &mut FirstLine,
) -> std::io::Result<ExitStatus> {
    let mut buffer = [0_u8; 1024];
    loop {
        tokio::select! {
            status = child.wait() => return status,
            read = read_some(stderr, &mut buffer) => match read {
                Ok(count) if count > 0 => first_line.feed(&buffer[..count]),
                // EOF or a broken pipe: nothing more to read; the program may run on.
                _ => *stderr = None,
            },
        }
    }
}

/// Reads stderr until the first line is complete or the pipe closes.
async fn read_stderr_until_line(stderr: &mut Option<ChildStderr>, first_line: &mut FirstLine) {
    let mut buffer = [0_u8; 1024];
    while !first_line.complete && stderr.is_some() {
        match read_some(stderr, &mut buffer).await {
            Ok(count) if count > 0 => first_line.feed(&buffer[..count]),
            _ => *stderr = None,
        }
    }
}

/// One read from the pipe; never completes once it is gone.
async fn read_some(stderr: &mut Option<ChildStderr>, buffer: &mut [u8]) -> std::io::Result<usize> {
    match stderr {
        Some(pipe) => pipe.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Collects the first line of stderr that is not blank, bounded; the rest is read and dropped.
#[derive(Default)]
struct FirstLine {
    bytes: Vec<u8>,
    complete: bool,
}

impl FirstLine {
    fn feed(&mut self, mut data: &[u8]) {
        while !self.complete && !data.is_empty() {
            let (part, rest, ends) = match data.iter().position(|&byte| byte == b'\n') {
                Some(end) => (&data[..end], &data[end + 1..], true),
                None => (data, &[][..], false),
            };
            let room = STDERR_LINE_MAX.saturating_sub(self.bytes.len());
            self.bytes.extend_from_slice(&part[..part.len().min(room)]);
            if self.bytes.len() >= STDERR_LINE_MAX {
                self.complete = true;
            } else if ends {
                if self.bytes.iter().all(u8::is_ascii_whitespace) {
                    self.bytes.clear();
                } else {
                    self.complete = true;
                }
            }
            data = rest;
        }
    }

    /// The line as text: invalid UTF-8 and control characters (escape sequences, carriage
    /// returns) replaced, surrounding spaces trimmed; `None` if there was none.
    fn text(&self) -> Option<String> {
        let text: String = String::from_utf8_lossy(&self.bytes)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn root_without_the_setuid_capability_runs_scripts_as_itself_or_refuses_a_named_user() {
        // On a thread of its own: capabilities are per thread, the other tests keep theirs.
        std::thread::spawn(|| {
            use caps::{CapSet, Capability};
            if !nix::unistd::geteuid().is_root() {
                eprintln!("skipped: needs root");
                return;
            }
            assert!(matches!(RunAs::script_user(None), Ok(Some(_))));
            // What a container with every capability dropped but the network ones looks like.
            caps::drop(None, CapSet::Effective, Capability::CAP_SETUID).expect("droppable");
            assert_eq!(RunAs::script_user(None), Ok(None));
            let refused = RunAs::script_user(Some("nobody")).expect_err("a named user is refused");
            assert!(refused.contains("CAP_SETUID"), "{refused}");
        })
        .join()
        .expect("the test thread");
    }

    #[tokio::test]
    async fn exit_status_zero_is_success_and_nonzero_is_failure() {
        let ok = run(Path::new("/bin/true"), &[], None, Duration::from_secs(5)).await;
        assert!(ok.succeeded(), "{ok:?}");
        let failed = run(Path::new("/bin/false"), &[], None, Duration::from_secs(5)).await;
        assert!(matches!(failed.outcome, Outcome::Exited(status) if !status.success()));
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
        assert_eq!(outcome.outcome, Outcome::TimedOut);
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
        assert!(
            matches!(outcome.outcome, Outcome::SpawnFailed(_)),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_program_reports_its_first_stderr_line_cleaned_up() {
        let script = r"printf '\n  \n\033[31mdatabase down\r\nsecond line\n' >&2; exit 3";
        let ran = run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            None,
            Duration::from_secs(5),
        )
        .await;
        assert!(!ran.succeeded());
        let line = ran.stderr.clone().expect("a stderr line");
        assert!(line.ends_with("database down"), "{line:?}");
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
        assert_eq!(ran.to_string(), format!("exit status: 3, stderr: {line}"));
    }

    #[tokio::test]
    async fn a_timed_out_program_keeps_what_it_wrote_and_a_silent_one_has_none() {
        let script = "echo still checking >&2; sleep 30";
        let ran = run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            None,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(
            ran.to_string(),
            "timed out (killed), stderr: still checking"
        );
        let silent = run(Path::new("/bin/false"), &[], None, Duration::from_secs(5)).await;
        assert_eq!(silent.stderr, None);
    }

    #[tokio::test]
    async fn a_program_that_writes_much_to_stderr_is_not_blocked_and_its_line_is_bounded() {
        // 1 MB on one line: far more than a pipe holds, so it finishes only if vipd reads on.
        let script = "head -c 1000000 /dev/zero | tr '\\0' x >&2";
        let ran = run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            None,
            Duration::from_secs(10),
        )
        .await;
        assert!(ran.succeeded(), "{ran}");
        assert_eq!(ran.stderr, Some("x".repeat(STDERR_LINE_MAX)));
    }

    #[test]
    fn the_first_line_may_arrive_in_pieces() {
        let mut line = FirstLine::default();
        for piece in [&b"\n"[..], b"conn", b"ection ref", b"used\nnext", b"\n"] {
            line.feed(piece);
        }
        assert_eq!(line.text().as_deref(), Some("connection refused"));
        let mut invalid = FirstLine::default();
        invalid.feed(b"bad \xff byte");
        assert_eq!(invalid.text().as_deref(), Some("bad \u{fffd} byte"));
    }
}
