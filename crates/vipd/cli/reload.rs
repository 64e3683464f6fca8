//! `vipd reload [-c FILE] [--pid PID] [--control ADDR] [--timeout SECONDS]`: reloads the running
//! daemon and reports its verdict. It is the unit's `ExecReload=`, so `systemctl reload vipd`
//! fails, with the errors, when the daemon rejected the file or applied it only in part; SIGHUP
//! alone is answered in the log only.
//!
//! 1. FILE is validated as `vipd check` does it; a file that does not parse is reported and the
//!    daemon is not signalled (HAProxy's unit runs `haproxy -c` at the same place).
//! 2. `GET /status` (at `--control`, else at FILE's `control.listen`) gives the daemon's PID and
//!    the sequence number of its last load. `--pid` (systemd's `$MAINPID`) names the process when
//!    the control server does not answer there, e.g. because this very reload moves it.
//! 3. SIGHUP, then `/status` every 100 ms until a newer load is reported: a higher sequence
//!    number, or without one from before, a load that ended after the signal was sent.
//! 4. Exit 0 when the whole file was applied; 1 with the errors on stderr when it was rejected,
//!    applied in part, or no verdict came within `--timeout`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ConfigFileArg;
use crate::cli::status::{http_get, reachable};
use crate::control::NodeStatus;
use crate::control::status::LastReload;
use crate::daemon::reload_verdict::unix_now;

/// How often the daemon is asked whether the reload is done.
const POLL_EVERY: Duration = Duration::from_millis(100);

#[derive(Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// The daemon's process id (in the unit: $MAINPID). Default: the one its /status reports.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// The control server's address, HOST:PORT (default: control.listen of FILE).
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// How long to wait for the daemon's verdict.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

pub fn run(args: &ReloadArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config.path;
    // Everything `vipd check` checks (files the configuration names included), so that a file
    // the daemon would reject, or apply only in part, is never signalled.
    let config = match vipd_config::check_file(path) {
        Ok(checked) => {
            for warning in checked.warnings {
                println!("warning: {warning}");
            }
            checked.config
        }
        Err(error) => {
            eprintln!("vipd reload: not reloading: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let address = match &args.control {
        Some(address) => super::status::control_option(address),
        None => reachable(config.control.listen).to_string(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("vipd reload: cannot start the async runtime")?;
    let timeout = Duration::from_secs(args.timeout);
    let Some(last) = runtime.block_on(signal_and_wait(&address, args.pid, timeout))? else {
        eprintln!(
            "vipd reload: no verdict from http://{address}/status within {}s; the daemon's log \
             says what became of the reload (journalctl -u vipd)",
            args.timeout
        );
        return Ok(ExitCode::FAILURE);
    };
    match verdict_text(&last) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(text) => {
            eprint!("{text}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Signals the daemon and waits for the verdict of the load that follows; `None` when none came
/// within `timeout`.
async fn signal_and_wait(
    address: &str,
    pid: Option<u32>,
    timeout: Duration,
) -> anyhow::Result<Option<LastReload>> {
    let before = read_status(address).await;
    let (pid, sequence) = match (before, pid) {
        (Ok(status), pid) => {
            let Some(last) = status.last_reload else {
                bail!(
                    "the vipd at {address} does not report reload verdicts (an older version): \
                     reload it with kill -HUP"
                );
            };
            match pid {
                Some(pid) if pid != status.pid => {
                    bail!("the vipd at {address} is process {}, not {pid}", status.pid)
                }
                _ => (status.pid, Some(last.sequence)),
            }
        }
        (Err(_), Some(pid)) => (pid, None),
        (Err(error), None) => {
            return Err(error.context(
                "vipd reload: is vipd running? (when this reload moves control.listen, \
                 --pid names the daemon)",
            ));
        }
    };
    let sent_at = unix_now();
    let process = Pid::from_raw(i32::try_from(pid).context("vipd reload: no such process id")?);
    kill(process, Signal::SIGHUP)
        .with_context(|| format!("vipd reload: cannot send SIGHUP to process {pid}"))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        tokio::time::sleep(POLL_EVERY).await;
        if let Ok(status) = read_status(address).await
            && status.pid == pid
            && let Some(last) = status.last_reload
            && is_after_the_signal(&last, sequence, sent_at)
        {
            return Ok(Some(last));
        }
    }
    Ok(None)
}

async fn read_status(address: &str) -> anyhow::Result<NodeStatus> {
    let body = http_get(address, "/status")
        .await
        .with_context(|| format!("GET http://{address}/status"))?;
    serde_json::from_slice(&body)
        .with_context(|| format!("http://{address}/status is not vipd's status JSON"))
}

/// Whether `last` is the load our SIGHUP caused: one after `sequence` (the last one before the
/// signal), or without it, one that ended after the signal was sent.
fn is_after_the_signal(last: &LastReload, sequence: Option<u64>, sent_at: f64) -> bool {
    match sequence {
        Some(sequence) => last.sequence > sequence,
        None => last.sequence > 0 && last.at_unix_seconds >= sent_at,
    }
}

/// What to print: `Ok` (stdout, exit 0) when the whole file was applied, `Err` (stderr, exit 1)
/// with every error otherwise.
fn verdict_text(last: &LastReload) -> Result<String, String> {
    if last.ok {
        return Ok(format!(
            "reload done: load {}, configuration {}\n",
            last.sequence, last.config_digest
        ));
    }
    let mut text = if last.partial {
        format!(
            "vipd reload: applied in part (load {}): the file is in force, but not all of it:\n",
            last.sequence
        )
    } else {
        format!(
            "vipd reload: rejected (load {}), the running configuration stays:\n",
            last.sequence
        )
    };
    for error in &last.errors {
        let _ = writeln!(text, "  {error}");
    }
    Err(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sequence: u64, at: f64, ok: bool, partial: bool, errors: &[&str]) -> LastReload {
        LastReload {
            sequence,
            at_unix_seconds: at,
            ok,
            partial,
            errors: errors.iter().map(|error| (*error).to_owned()).collect(),
            config_digest: "sha256:ab".to_owned(),
        }
    }

    #[test]
    fn the_load_that_answers_the_signal_is_the_next_one() {
        let sent_at = 100.0;
        assert!(!is_after_the_signal(
            &load(4, 120.0, true, false, &[]),
            Some(4),
            sent_at
        ));
        assert!(is_after_the_signal(
            &load(5, 120.0, true, false, &[]),
            Some(4),
            sent_at
        ));
        // Without a sequence from before (the control server moved): by time, never the start.
        assert!(!is_after_the_signal(
            &load(5, 99.0, true, false, &[]),
            None,
            sent_at
        ));
        assert!(!is_after_the_signal(
            &load(0, 120.0, true, false, &[]),
            None,
            sent_at
        ));
        assert!(is_after_the_signal(
            &load(5, 100.5, true, false, &[]),
            None,
            sent_at
        ));
    }

    #[test]
    fn a_rejected_or_partial_reload_prints_every_error_and_fails() {
        assert_eq!(
            verdict_text(&load(2, 1.0, true, false, &[])),
            Ok("reload done: load 2, configuration sha256:ab\n".to_owned())
        );
        assert_eq!(
            verdict_text(&load(3, 1.0, false, false, &["first", "second"])),
            Err("vipd reload: rejected (load 3), the running configuration stays:\n  first\n  second\n".to_owned())
        );
        let partial = verdict_text(&load(4, 1.0, false, true, &["vrrp api: eth9"]))
            .expect_err("a partial reload fails");
        assert!(partial.contains("applied in part (load 4)"), "{partial}");
        assert!(partial.contains("  vrrp api: eth9\n"), "{partial}");
    }
}
