//! Slow start (HAProxy's `slowstart`): a server that comes back takes a growing share of new
//! sessions over `slow_start`, so `least_conn` does not send it every new client at once
//! (docs/design/proxy.md, Slow start).
//!
//! The share grows linearly from the moment the server comes back (up after a failed check, or
//! back from maintenance) and scales its weight and its `max_connections`, each at least 1. It
//! does not apply when the proxy starts (HAProxy neither): every server would be "coming back".

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Weights are scaled by this for balancing, so that a weight of 1 can ramp too (HAProxy's
/// `BE_WEIGHT_SCALE`). Every algorithm compares weights only relative to each other.
pub const WEIGHT_SCALE: u64 = 16;

/// A fixed origin for instants stored in atomics.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// One server's ramp.
#[derive(Debug, Default)]
pub struct SlowStart {
    /// `slow_start` in nanoseconds; 0 = off.
    duration: AtomicU64,
    /// When the current ramp began, in nanoseconds after [`ORIGIN`] plus one; 0 = no ramp.
    began: AtomicU64,
    /// Ramp the weight as well as the limit (not under `source`, whose hash must agree between
    /// nodes).
    ramps_weight: AtomicBool,
}

/// How far a ramp has come: `elapsed` of `total`, `elapsed < total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    elapsed: u64,
    total: u64,
}

impl SlowStart {
    /// Sets `slow_start` (`None` or zero turns it off, ending a ramp under way).
    pub fn configure(&self, duration: Option<Duration>, ramps_weight: bool) {
        let nanos = duration.map_or(0, |duration| {
            u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
        });
        self.duration.store(nanos, Ordering::Relaxed);
        self.ramps_weight.store(ramps_weight, Ordering::Relaxed);
    }

    /// The server came back: its ramp starts now (if slow start is on).
    pub fn begin(&self) {
        let since_origin = Instant::now().saturating_duration_since(*ORIGIN);
        let nanos = u64::try_from(since_origin.as_nanos()).unwrap_or(u64::MAX - 1);
        self.began.store(nanos + 1, Ordering::Relaxed);
    }

    /// Where the ramp is now; `None` when there is none (or it is over).
    pub fn progress(&self) -> Option<Progress> {
        let total = self.duration.load(Ordering::Relaxed);
        let began = self.began.load(Ordering::Relaxed);
        if total == 0 || began == 0 {
            return None;
        }
        let now = Instant::now().saturating_duration_since(*ORIGIN);
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let elapsed = now.saturating_sub(began - 1);
        if elapsed >= total {
            // Over: later calls stop at the loads above (unless a new ramp began meanwhile).
            let _ = self
                .began
                .compare_exchange(began, 0, Ordering::Relaxed, Ordering::Relaxed);
            return None;
        }
        Some(Progress { elapsed, total })
    }

    /// `weight` as balancing sees it: scaled by [`WEIGHT_SCALE`] and ramped.
    pub fn weight(&self, weight: u32) -> u32 {
        let scaled = u64::from(weight) * WEIGHT_SCALE;
        let ramped = match self.progress() {
            Some(progress) if self.ramps_weight.load(Ordering::Relaxed) => ramp(scaled, progress),
            _ => scaled,
        };
        u32::try_from(ramped).unwrap_or(u32::MAX)
    }

    /// `max_connections` in force now: ramped while the server comes back.
    pub fn limit(&self, max: u64) -> u64 {
        self.progress().map_or(max, |progress| ramp(max, progress))
    }
}

/// `value × elapsed / total`, rounded up, at least 1 when `value` is (a ramping server gets
/// sessions from the start).
fn ramp(value: u64, progress: Progress) -> u64 {
    if value == 0 {
        return 0;
    }
    let share = u128::from(value) * u128::from(progress.elapsed);
    let ramped = share.div_ceil(u128::from(progress.total));
    u64::try_from(ramped).unwrap_or(value).clamp(1, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(elapsed: u64, total: u64) -> Progress {
        Progress { elapsed, total }
    }

    #[test]
    fn the_ramp_is_linear_rounded_up_and_never_zero() {
        assert_eq!(ramp(100, at(0, 10)), 1);
        assert_eq!(ramp(100, at(1, 10)), 10);
        assert_eq!(ramp(100, at(5, 10)), 50);
        assert_eq!(ramp(100, at(9, 10)), 90);
        assert_eq!(ramp(3, at(1, 10)), 1);
        assert_eq!(ramp(0, at(5, 10)), 0, "a drained server stays at 0");
    }

    #[test]
    fn no_ramp_until_the_server_comes_back_and_none_after_slow_start() {
        let slow = SlowStart::default();
        slow.configure(Some(Duration::from_millis(200)), true);
        assert_eq!(slow.weight(2), 32, "scaled, not ramped");
        assert_eq!(slow.limit(40), 40);
        slow.begin();
        assert!(slow.weight(2) < 32, "ramping");
        assert!(slow.limit(40) < 40, "ramping");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(slow.weight(2), 32);
        assert_eq!(slow.limit(40), 40);
    }

    #[test]
    fn without_weight_ramping_only_the_limit_ramps() {
        let slow = SlowStart::default();
        slow.configure(Some(Duration::from_secs(60)), false);
        slow.begin();
        assert_eq!(slow.weight(1), 16);
        assert_eq!(slow.limit(40), 1);
    }

    #[test]
    fn turning_it_off_ends_a_ramp() {
        let slow = SlowStart::default();
        slow.configure(Some(Duration::from_secs(60)), true);
        slow.begin();
        slow.configure(None, true);
        assert_eq!(slow.weight(1), 16);
    }
}
