//! The queue of a backend whose usable servers are all at `max_connections`: first come, first
//! served, one waiter woken per freed slot (docs/design/proxy.md, Queue).
//!
//! A waiter holds a [`Ticket`]. A freed slot wakes the oldest waiter not yet woken; that waiter
//! then picks a server like any session. Newcomers do not pick while anyone waits (the caller
//! checks [`SlotQueue::is_empty`] first), so a freed slot goes to the head of the queue rather
//! than to whoever asks first. A woken waiter that leaves without taking a slot (timed out,
//! refused) passes its wake-up on, so a freed slot is never left unclaimed while others wait.
//!
//! The queue also records how long each waiter waited, in a histogram of powers of two
//! milliseconds, for the p99 in the stats.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// One FIFO queue of sessions waiting for a server slot; shared by a backend's snapshots.
#[derive(Debug, Default)]
pub struct SlotQueue {
    waiters: Mutex<VecDeque<Arc<Waiter>>>,
    /// `waiters.len()`, readable without the lock: the hot path only asks whether anyone waits.
    len: AtomicUsize,
    waits: WaitHistogram,
}

#[derive(Debug, Default)]
struct Waiter {
    /// Set (under the queue's lock) when a freed slot was handed to this waiter and not yet
    /// claimed; cleared by the waiter when it looks for a slot.
    woken: AtomicBool,
    wake: Notify,
}

impl SlotQueue {
    /// Whether nobody waits: then a newcomer may take a free slot directly.
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Joins the tail of the queue.
    pub fn join(&self) -> Ticket<'_> {
        let waiter = Arc::new(Waiter::default());
        let mut waiters = self.lock();
        waiters.push_back(Arc::clone(&waiter));
        self.len.store(waiters.len(), Ordering::Release);
        Ticket {
            queue: self,
            waiter,
            since: Instant::now(),
        }
    }

    /// A slot was freed: wakes the oldest waiter not woken yet, if any.
    pub fn wake_one(&self) {
        if self.is_empty() {
            return;
        }
        let waiters = self.lock();
        Self::wake_first_sleeper(&waiters);
    }

    /// Servers changed (up, down, enabled, reloaded): every waiter looks again.
    pub fn wake_all(&self) {
        if self.is_empty() {
            return;
        }
        for waiter in self.lock().iter() {
            if !waiter.woken.swap(true, Ordering::Relaxed) {
                waiter.wake.notify_one();
            }
        }
    }

    /// The upper bound of the bucket holding the 99th percentile of queue waits so far; `None`
    /// before any session queued.
    pub fn wait_p99(&self) -> Option<Duration> {
        self.waits.percentile(99)
    }

    /// Sessions that have waited in the queue, served or not.
    pub fn queued_total(&self) -> u64 {
        self.waits.count()
    }

    fn wake_first_sleeper(waiters: &VecDeque<Arc<Waiter>>) {
        if let Some(waiter) = waiters
            .iter()
            .find(|waiter| !waiter.woken.load(Ordering::Relaxed))
        {
            waiter.woken.store(true, Ordering::Relaxed);
            waiter.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Waiter>>> {
        // Plain data; a panic elsewhere cannot leave it inconsistent.
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A place in the queue; leaving it (drop) removes it and passes an unclaimed wake-up on.
#[derive(Debug)]
pub struct Ticket<'a> {
    queue: &'a SlotQueue,
    waiter: Arc<Waiter>,
    since: Instant,
}

impl Ticket<'_> {
    /// Whether nobody waits ahead: the head may look for a slot without being woken (a slot
    /// freed while the queue was empty woke nobody).
    pub fn is_first(&self) -> bool {
        self.queue
            .lock()
            .front()
            .is_some_and(|first| Arc::ptr_eq(first, &self.waiter))
    }

    /// Called before looking for a slot: from now on a freed slot wakes this waiter again, so
    /// one freed between the look and the wait is not lost.
    pub fn claim_wake(&self) {
        let _waiters = self.queue.lock();
        self.waiter.woken.store(false, Ordering::Relaxed);
    }

    /// Until a freed slot is handed to this waiter (may also return spuriously).
    pub async fn woken(&self) {
        self.waiter.wake.notified().await;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut waiters = self.queue.lock();
        let was_first = waiters
            .front()
            .is_some_and(|first| Arc::ptr_eq(first, &self.waiter));
        waiters.retain(|waiter| !Arc::ptr_eq(waiter, &self.waiter));
        self.queue.len.store(waiters.len(), Ordering::Release);
        // An unclaimed wake-up goes on; so does the head's turn: the new head looks once, so
        // that slots freed while it waited behind (or a server a reload added, which frees no
        // slot) serve the queue in a cascade rather than one per released session.
        if was_first || self.waiter.woken.load(Ordering::Relaxed) {
            SlotQueue::wake_first_sleeper(&waiters);
        }
        drop(waiters);
        self.queue.waits.record(self.since.elapsed());
    }
}

/// Counts of waits by powers of two milliseconds: bucket `i` holds waits under `2^i` ms, the
/// last one everything longer.
#[derive(Debug, Default)]
struct WaitHistogram {
    buckets: [AtomicU64; WAIT_BUCKETS],
}

const WAIT_BUCKETS: usize = 20;

impl WaitHistogram {
    fn record(&self, wait: Duration) {
        let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        // Waits under 2^i ms: the bit length of the milliseconds.
        let bucket = usize::try_from(u64::BITS - millis.leading_zeros()).unwrap_or(usize::MAX);
        self.buckets[bucket.min(WAIT_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    fn percentile(&self, percent: u64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The smallest bucket with at least `percent` % of the waits at or below it.
        let wanted = (total * percent).div_ceil(100);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(Duration::from_millis(1 << bucket));
            }
        }
        Some(Duration::from_millis(1 << (WAIT_BUCKETS - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_wakes_the_oldest_waiter_only() {
        let queue = SlotQueue::default();
        let first = queue.join();
        let second = queue.join();
        assert!(first.is_first() && !second.is_first());
        queue.wake_one();
        assert!(first.waiter.woken.load(Ordering::Relaxed));
        assert!(!second.waiter.woken.load(Ordering::Relaxed));
        queue.wake_one();
        assert!(second.waiter.woken.load(Ordering::Relaxed));
    }

    #[test]
    fn a_woken_waiter_that_leaves_passes_its_wake_up_on() {
        let queue = SlotQueue::default();
        let first = queue.join();
        let second = queue.join();
        queue.wake_one();
        drop(first);
        assert!(second.waiter.woken.load(Ordering::Relaxed));
        assert!(second.is_first());
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_claimed_wake_up_is_not_passed_on() {
        let queue = SlotQueue::default();
        let first = queue.join();
        let second = queue.join();
        let third = queue.join();
        queue.wake_one();
        queue.wake_one();
        second.claim_wake();
        drop(second);
        assert!(!third.waiter.woken.load(Ordering::Relaxed));
        drop(first);
        drop(third);
        assert!(queue.is_empty());
        assert_eq!(queue.queued_total(), 3);
    }

    #[test]
    fn the_head_leaving_with_a_slot_lets_the_next_one_look() {
        let queue = SlotQueue::default();
        let first = queue.join();
        let second = queue.join();
        // The head found a slot on its own (it claimed nothing; nobody was woken).
        drop(first);
        assert!(
            second.waiter.woken.load(Ordering::Relaxed),
            "the new head looks for a free slot"
        );
    }

    #[test]
    fn p99_is_the_bucket_bound_of_the_99th_percentile() {
        let histogram = WaitHistogram::default();
        assert_eq!(histogram.percentile(99), None);
        for _ in 0..99 {
            histogram.record(Duration::from_micros(300));
        }
        histogram.record(Duration::from_secs(2));
        assert_eq!(histogram.percentile(99), Some(Duration::from_millis(1)));
        histogram.record(Duration::from_secs(2));
        // 2 s = 2000 ms is under 2^11 ms.
        assert_eq!(histogram.percentile(99), Some(Duration::from_millis(2048)));
        histogram.record(Duration::from_secs(100_000));
        assert_eq!(histogram.count(), 102);
    }
}
