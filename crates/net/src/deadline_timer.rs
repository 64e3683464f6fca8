//! A timer that wakes a task at an instant to within microseconds: a `timerfd` in tokio's
//! reactor.
//!
//! tokio's own timers round a deadline up to their next millisecond tick, and the runtime parks
//! in whole milliseconds, so the RFC timers (Master_Down_Timer, Adver_Timer) would fire up to
//! ~2 ms late: measurable at 100 ms adverts, where a planned failover takes only Skew_Time
//! (~61 ms). A timer thread that wakes the task instead adds a second wake-up (thread, then
//! runtime worker) of 0.1-0.3 ms on a loaded host; a `timerfd` wakes the worker parked in
//! `epoll_wait` directly, as keepalived's scheduler does. timerfd expirations carry no timer
//! slack.
//!
//! One of the crate's two modules with `unsafe` (with `tun_device`): tokio offers no safe way
//! to register a descriptor that is not a socket or pipe (the safe `AsyncFd` constructors are
//! deprecated as unsound).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// One-shot wake-ups at chosen instants of the monotonic clock.
#[derive(Debug)]
pub struct DeadlineTimer {
    timer: AsyncFd<OwnedTimer>,
    armed: Option<Instant>,
}

/// nix's `TimerFd` offers `AsFd` only; tokio wants `AsRawFd`.
#[derive(Debug)]
struct OwnedTimer(TimerFd);

impl AsRawFd for OwnedTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl DeadlineTimer {
    /// A disarmed timer. Must be called inside a tokio runtime with IO enabled.
    pub fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map(OwnedTimer)?;
        // SAFETY: the AsyncFd takes ownership of the TimerFd, which owns its descriptor (an
        // OwnedFd): it stays open and the same for as long as the AsyncFd lives, and is closed
        // only when the AsyncFd (having deregistered it) drops it. `as_raw_fd` always returns
        // that one descriptor.
        let timer = unsafe { AsyncFd::register_with_interest(timer, Interest::READABLE) }
            .map_err(|error| error.into_parts().1)?;
        Ok(Self { timer, armed: None })
    }

    /// Returns at `deadline` (at once if it has passed). Cancel-safe: dropping the future keeps
    /// the timer armed for the next call with the same deadline.
    pub async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        if self.armed != Some(deadline) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.disarm()?;
                return Ok(());
            }
            // Relative to now: std's Instant is CLOCK_MONOTONIC too, but exposes no timespec
            // for an absolute expiry. The error is the few nanoseconds between the two reads.
            self.timer.get_ref().0.set(
                Expiration::OneShot(TimeSpec::from_duration(
                    remaining.max(Duration::from_nanos(1)),
                )),
                TimerSetTimeFlags::empty(),
            )?;
            self.armed = Some(deadline);
        }
        loop {
            let mut ready = self.timer.readable().await?;
            // Reading the expiration count clears the readiness; EAGAIN means the readiness
            // was stale (the timer was re-armed after an earlier expiry).
            match ready.try_io(|timer| timer.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => {
                    self.armed = None;
                    return result;
                }
                Err(_would_block) => {}
            }
        }
    }

    fn disarm(&mut self) -> io::Result<()> {
        if self.armed.take().is_some() {
            self.timer.get_ref().0.unset()?;
            // An expiry that happened before the unset stays readable: drain it.
            let _ = self.timer.get_ref().0.wait();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_at_the_deadline_not_before() {
        let mut timer = DeadlineTimer::new().unwrap();
        for wait in [Duration::from_millis(3), Duration::from_micros(500)] {
            let deadline = Instant::now() + wait;
            timer.sleep_until(deadline).await.unwrap();
            assert!(Instant::now() >= deadline, "woke before the deadline");
        }
    }

    #[tokio::test]
    async fn a_passed_deadline_returns_at_once_and_rearming_replaces_the_old_one() {
        let mut timer = DeadlineTimer::new().unwrap();
        timer.sleep_until(Instant::now()).await.unwrap();
        // Arm far away, abandon it, then wait for a near deadline: the far one must not hold
        // the near one up.
        let far = Instant::now() + Duration::from_secs(3600);
        let abandoned = tokio::time::timeout(Duration::from_millis(5), timer.sleep_until(far));
        assert!(abandoned.await.is_err());
        let near = Instant::now() + Duration::from_millis(2);
        tokio::time::timeout(Duration::from_secs(5), timer.sleep_until(near))
            .await
            .expect("the re-armed timer fires")
            .unwrap();
        assert!(Instant::now() >= near);
    }
}
