//! How long a backend's sessions took: time queued for a server slot, time connecting, and the
//! whole session from accept to close; the session log's `queue_ms`, `connect_ms` and `total_ms`
//! summed up as histograms (HAProxy keeps averages of the same three times).
//!
//! Recorded once per session, when it ends, with one binary search over [`TIME_BUCKET_BOUNDS`]
//! and two relaxed atomic additions per time: no lock, nothing per packet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, inclusive (Prometheus's `le`), in microseconds: from a
/// fast LAN connect (100 µs) to a long-lived tunnel (1 hour). A last bucket above them takes the
/// rest (`le="+Inf"`). The same for the three times, so that they can be compared bucket by bucket.
pub const TIME_BUCKET_BOUNDS: [u64; 21] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    1_800_000_000,
    3_600_000_000,
];

/// Buckets of a histogram: one per bound and one for everything longer.
const BUCKETS: usize = TIME_BUCKET_BOUNDS.len() + 1;

/// Counts of durations by bucket and their sum; written by every session thread.
#[derive(Debug, Default)]
pub struct TimeHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl TimeHistogram {
    pub fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = TIME_BUCKET_BOUNDS.partition_point(|&bound| bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TimeDistribution {
        TimeDistribution {
            bucket_counts: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of a backend's histogram of one kind of time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeDistribution {
    /// Per bucket, not cumulative: `bucket_counts[i]` counts the durations above
    /// `TIME_BUCKET_BOUNDS[i - 1]` and at most `TIME_BUCKET_BOUNDS[i]`; the last one those above
    /// every bound.
    pub bucket_counts: Vec<u64>,
    pub sum: Duration,
}

impl TimeDistribution {
    pub fn count(&self) -> u64 {
        self.bucket_counts.iter().sum()
    }
}

/// A backend's three histograms, kept across reloads with the rest of its counters.
#[derive(Debug, Default)]
pub struct SessionTimes {
    /// Waiting for a server slot, over every attempt (near zero when a server was free).
    pub queue: TimeHistogram,
    /// Connecting to servers, over every attempt, of sessions that tried one.
    pub connect: TimeHistogram,
    /// From accept to close.
    pub total: TimeHistogram,
}

impl SessionTimes {
    pub fn stats(&self) -> SessionTimeStats {
        SessionTimeStats {
            queue: self.queue.snapshot(),
            connect: self.connect.snapshot(),
            total: self.total.snapshot(),
        }
    }
}

/// Snapshots of a backend's queue, connect and session times, of the sessions handed to it that
/// have ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionTimeStats {
    pub queue: TimeDistribution,
    pub connect: TimeDistribution,
    pub total: TimeDistribution,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_goes_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let histogram = TimeHistogram::default();
        for micros in [0, 100, 101, 250, 3_600_000_000, 3_600_000_001] {
            histogram.record(Duration::from_micros(micros));
        }
        histogram.record(Duration::from_secs(86_400));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.bucket_counts.len(), TIME_BUCKET_BOUNDS.len() + 1);
        assert_eq!(snapshot.bucket_counts[0], 2, "0 and 100 µs: le 100 µs");
        assert_eq!(snapshot.bucket_counts[1], 2, "101 and 250 µs: le 250 µs");
        assert_eq!(snapshot.bucket_counts[TIME_BUCKET_BOUNDS.len() - 1], 1);
        assert_eq!(snapshot.bucket_counts[TIME_BUCKET_BOUNDS.len()], 2, "+Inf");
        assert_eq!(snapshot.count(), 7);
    }

    #[test]
    fn the_sum_adds_every_duration_to_the_microsecond() {
        let histogram = TimeHistogram::default();
        histogram.record(Duration::from_micros(1_500));
        histogram.record(Duration::from_millis(20));
        assert_eq!(histogram.snapshot().sum, Duration::from_micros(21_500));
    }

    #[test]
    fn bounds_rise_strictly() {
        assert!(TIME_BUCKET_BOUNDS.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
