//! The signals vipd answers, and the ones it catches only so that they cannot take it down: a
//! master that dies of a stray signal is an unplanned failover, and keepalived users send SIGUSR1
//! and SIGUSR2 from habit (docs/operations.md, Signals).
//!
//! Caught, never set to "ignore": a caught signal goes back to its default action across exec,
//! so the scripts and hooks vipd runs start with the dispositions every program expects, while an
//! ignored one would be inherited. Not caught:
//!
//! - SIGKILL and SIGSTOP, which cannot be;
//! - SIGSEGV, SIGBUS, SIGILL and SIGFPE: they report a fault of the process itself, and a handler
//!   that returns runs the faulting instruction again, forever. A crash is what they mean, and
//!   `vipd release` cleans up after one;
//! - SIGPIPE, which the Rust runtime ignores already (and resets for children): a broken pipe is
//!   an error return, and the proxy meets one for every connection reset mid-write;
//! - SIGCHLD, SIGCONT, SIGURG and SIGWINCH, whose default is to do nothing (tokio's process
//!   driver listens to SIGCHLD).

use std::fmt;
use std::task::Poll;

use nix::sys::signal::Signal;
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonSignal {
    /// SIGHUP: reload the configuration.
    Reload,
    /// SIGTERM or SIGINT: stop (a second one during the drain cuts it short).
    Stop,
    /// SIGUSR1: write the status to the log and the runtime directory.
    DumpStatus,
    /// SIGUSR2: write the statistics to the runtime directory.
    DumpStats,
    /// Any other signal that would end or stop the process: logged and ignored.
    Unused(UnusedSignal),
}

/// A caught signal that vipd has no use for, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusedSignal(i32);

impl fmt::Display for UnusedSignal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        signal_name(self.0, formatter)
    }
}

/// The standard signals whose default action ends or stops the process and that vipd does not
/// use (numbers 1..=31 less the ones above it uses or leaves alone).
const UNUSED_STANDARD: [Signal; 15] = [
    Signal::SIGQUIT,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGALRM,
    Signal::SIGSTKFLT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSYS,
];

/// The signals that mean something to vipd.
const USED: [(Signal, DaemonSignal); 5] = [
    (Signal::SIGHUP, DaemonSignal::Reload),
    (Signal::SIGTERM, DaemonSignal::Stop),
    (Signal::SIGINT, DaemonSignal::Stop),
    (Signal::SIGUSR1, DaemonSignal::DumpStatus),
    (Signal::SIGUSR2, DaemonSignal::DumpStats),
];

/// Every signal vipd catches, as a stream of what each asks.
pub struct Signals {
    streams: Vec<(DaemonSignal, SignalStream)>,
}

impl Signals {
    /// Installs the handlers; call it first thing on the runtime, so that no signal sent during
    /// start-up ends the process. Handlers stay installed until the process exits (tokio never
    /// removes one), so a signal that arrives after this value is dropped is still harmless.
    pub fn install() -> std::io::Result<Self> {
        let mut streams = USED
            .iter()
            .map(|(signal, meaning)| catch(*meaning, *signal as i32))
            .collect::<std::io::Result<Vec<_>>>()?;
        streams.extend(catch_unused()?);
        Ok(Self { streams })
    }

    /// The next signal received. Several of one kind sent at once may arrive as one (as the
    /// kernel merges standard signals).
    pub async fn recv(&mut self) -> DaemonSignal {
        std::future::poll_fn(|context| {
            for (meaning, stream) in &mut self.streams {
                if let Poll::Ready(Some(())) = stream.poll_recv(context) {
                    return Poll::Ready(*meaning);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// A handler for signal `number`, whose arrivals mean `meaning`.
fn catch(meaning: DaemonSignal, number: i32) -> std::io::Result<(DaemonSignal, SignalStream)> {
    signal(SignalKind::from_raw(number)).map(|stream| (meaning, stream))
}

/// Handlers for the signals caught only to be logged and ignored.
fn catch_unused() -> std::io::Result<Vec<(DaemonSignal, SignalStream)>> {
    unused_signals()
        .map(|number| catch(DaemonSignal::Unused(UnusedSignal(number)), number))
        .collect()
}

/// The numbers of the signals caught only to be logged and ignored.
fn unused_signals() -> impl Iterator<Item = i32> {
    UNUSED_STANDARD
        .iter()
        .map(|signal| *signal as i32)
        .chain(real_time_signals())
}

/// SIGRTMIN..=SIGRTMAX as the C library defines them (it keeps the first two for its threads).
fn real_time_signals() -> std::ops::RangeInclusive<i32> {
    nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX()
}

/// `SIGALRM`, or `SIGRTMIN+3` for a real-time signal.
fn signal_name(number: i32, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    match Signal::try_from(number) {
        Ok(signal) => formatter.write_str(signal.as_str()),
        Err(_) if real_time_signals().contains(&number) => {
            write!(formatter, "SIGRTMIN+{}", number - nix::libc::SIGRTMIN())
        }
        Err(_) => write!(formatter, "signal {number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every signal 1..=31 is used, caught as unused, or left alone for a reason the module
    /// doc gives: a new one (or one dropped by mistake) fails here.
    #[test]
    fn every_standard_signal_is_accounted_for() {
        let left_alone = [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
            Signal::SIGPIPE,
            Signal::SIGCHLD,
            Signal::SIGCONT,
            Signal::SIGURG,
            Signal::SIGWINCH,
        ];
        for number in 1..=31 {
            let signal = Signal::try_from(number).expect("a standard signal");
            let places = [
                USED.iter().any(|(used, _)| *used == signal),
                UNUSED_STANDARD.contains(&signal),
                left_alone.contains(&signal),
            ];
            assert_eq!(
                places.iter().filter(|place| **place).count(),
                1,
                "{signal} must be in exactly one list"
            );
        }
    }

    #[test]
    fn names_read_as_in_kill_l() {
        assert_eq!(UnusedSignal(Signal::SIGALRM as i32).to_string(), "SIGALRM");
        let rtmin = nix::libc::SIGRTMIN();
        assert_eq!(UnusedSignal(rtmin).to_string(), "SIGRTMIN+0");
        assert_eq!(UnusedSignal(rtmin + 3).to_string(), "SIGRTMIN+3");
    }

    /// The handlers catch rather than ignore, so a program started afterwards ignores none of
    /// these signals (its SigIgn mask in /proc; what this process inherited from whoever started
    /// it is not vipd's doing, so only those bits count). Only the unused ones are installed
    /// here: a test binary that caught SIGTERM and SIGINT could no longer be stopped by them.
    #[tokio::test]
    async fn programs_started_after_the_handlers_ignore_none_of_the_caught_signals() {
        let _handlers = catch_unused().expect("the handlers install");
        let output = std::process::Command::new("cat")
            .arg("/proc/self/status")
            .output()
            .expect("cat runs");
        let status = String::from_utf8_lossy(&output.stdout);
        let ignored = status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).expect("a hex mask"))
            .expect("a SigIgn line");
        for number in unused_signals() {
            assert_eq!(
                ignored & (1 << (number - 1)),
                0,
                "signal {number} is ignored"
            );
        }
    }
}
