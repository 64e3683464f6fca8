//! A connection limit that a reload can lower exactly: the frontend and global `max_connections`
//! (docs/design/proxy.md, Connection limits).
//!
//! A semaphore keeps the waiting fair (first come, first served) but can only withdraw permits
//! that are free: lowering 100 → 10 with 60 sessions open withdraws 40 at once and owes 50. Those
//! are withdrawn one by one as sessions end, so the limit in force comes down to the configured
//! one and never drifts upward across reloads; raising the limit first cancels what is owed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A limit of concurrent sessions.
#[derive(Debug)]
pub struct Limit {
    permits: Arc<Semaphore>,
    /// The configured limit; changed only under `changing`.
    max: AtomicUsize,
    /// Permits still to withdraw when sessions end: `max + owed` permits exist now. A session's
    /// end reads it (one load while nothing is owed, the usual case).
    owed: AtomicUsize,
    /// Serialises [`Limit::set_max`].
    changing: Mutex<()>,
}

/// One session's share of a [`Limit`]; returned (or withdrawn, if the limit owes one) on drop.
#[derive(Debug)]
pub struct LimitPermit {
    permit: Option<OwnedSemaphorePermit>,
    limit: Arc<Limit>,
}

impl Limit {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max)),
            max: AtomicUsize::new(max),
            owed: AtomicUsize::new(0),
            changing: Mutex::new(()),
        })
    }

    /// Waits for a free place, in order of arrival. `None` only if the limit was closed.
    pub async fn acquire(self: &Arc<Self>) -> Option<LimitPermit> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        Some(LimitPermit {
            permit: Some(permit),
            limit: Arc::clone(self),
        })
    }

    /// Changes the configured limit. Permits in use are withdrawn as their sessions end.
    pub fn set_max(&self, new: usize) {
        let _one_at_a_time = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = self.max.swap(new, Ordering::AcqRel);
        if new > old {
            let raise = new - old;
            let cancelled = take_up_to(&self.owed, raise);
            self.permits.add_permits(raise - cancelled);
        } else if new < old {
            let lower = old - new;
            let withdrawn = self.permits.forget_permits(lower);
            self.owed.fetch_add(lower - withdrawn, Ordering::AcqRel);
        }
    }

    /// The configured limit.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Acquire)
    }

    /// How many sessions may be open right now: the configured limit plus the permits still owed
    /// after a lowering (sessions opened under the old limit that have not ended yet).
    pub fn in_force(&self) -> usize {
        self.max() + self.owed.load(Ordering::Acquire)
    }

    /// Withdraws `permit` if a lowering still owes one; else it goes back to the semaphore.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        if take_up_to(&self.owed, 1) == 1 {
            permit.forget();
        } else {
            drop(permit);
        }
    }
}

/// Takes at most `wanted` from `counter`; returns how much it took.
fn take_up_to(counter: &AtomicUsize, wanted: usize) -> usize {
    let previous = counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
            (owed > 0).then(|| owed - owed.min(wanted))
        })
        .unwrap_or(0);
    previous.min(wanted)
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.limit.give_back(permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(limit: &Arc<Limit>, count: usize) -> Vec<LimitPermit> {
        let mut permits = Vec::new();
        for _ in 0..count {
            permits.push(limit.acquire().await.expect("open"));
        }
        permits
    }

    fn free(limit: &Limit) -> usize {
        limit.permits.available_permits()
    }

    #[tokio::test]
    async fn lowering_below_the_sessions_open_applies_exactly_once_they_end() {
        let limit = Limit::new(100);
        let mut open = take(&limit, 60).await;
        limit.set_max(10);
        assert_eq!(limit.max(), 10);
        assert_eq!(limit.in_force(), 60, "the 60 open sessions stay");
        assert_eq!(free(&limit), 0);
        open.truncate(5);
        assert_eq!(limit.in_force(), 10);
        assert_eq!(free(&limit), 5, "10 allowed, 5 open");
        drop(open);
        assert_eq!(free(&limit), 10);
        assert_eq!(limit.in_force(), 10);
    }

    #[tokio::test]
    async fn reloads_that_lower_and_raise_never_drift_upward() {
        let limit = Limit::new(20);
        let open = take(&limit, 20).await;
        for _ in 0..5 {
            limit.set_max(5);
            limit.set_max(20);
        }
        limit.set_max(5);
        drop(open);
        assert_eq!(free(&limit), 5);
        assert_eq!(limit.in_force(), 5);
    }

    #[tokio::test]
    async fn raising_cancels_what_a_lowering_still_owes() {
        let limit = Limit::new(10);
        let open = take(&limit, 10).await;
        limit.set_max(4);
        limit.set_max(12);
        assert_eq!(limit.in_force(), 12);
        assert_eq!(free(&limit), 2);
        drop(open);
        assert_eq!(free(&limit), 12);
    }
}
