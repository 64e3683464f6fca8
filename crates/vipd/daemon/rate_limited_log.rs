//! At most one log line per period for a kind of event that any host on the LAN can cause at
//! network speed (a misconfigured peer, a flood of adverts): the first occurrence is logged at
//! once, later ones within the period are only counted, and the next line says how many were
//! left out. Counters in status and metrics keep the exact numbers; the log says that it happens.

use std::time::{Duration, Instant};

/// How often a line of one kind may be logged, unless said otherwise.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// The limiter of one kind of log line.
#[derive(Debug, Clone)]
pub struct RateLimitedLog {
    period: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new(DEFAULT_PERIOD)
    }
}

impl RateLimitedLog {
    /// A limiter that allows one line per `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// Whether to log the event that happened at `now`: `Some(n)`, with `n` the events left
    /// unlogged since the last line, or `None` when it falls within the period (it is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= self.period);
        if !due {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_and_the_rest_of_the_period_counted() {
        let start = Instant::now();
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        assert_eq!(log.allow(start), Some(0));
        for millis in 1..=1000 {
            assert_eq!(log.allow(start + Duration::from_millis(millis)), None);
        }
        assert_eq!(log.allow(start + Duration::from_secs(10)), Some(1000));
        assert_eq!(log.allow(start + Duration::from_secs(11)), None);
        assert_eq!(log.allow(start + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn a_clock_that_goes_backwards_suppresses_and_does_not_panic() {
        let earlier = Instant::now();
        let start = earlier + Duration::from_secs(60);
        let mut log = RateLimitedLog::default();
        assert_eq!(log.allow(start), Some(0));
        assert_eq!(log.allow(earlier), None);
        assert_eq!(log.allow(start + DEFAULT_PERIOD), Some(1));
    }
}
