//! A connection limit that a reload can lower exactly: the frontend and global `max_connections`
//! (docs/design/proxy.md, Connection limits).
//!
//! A semaphore keeps the waiting fair (first come, first served) but can only withdraw permits
//! that are free: lowering 100 → 10 with 60 sessions open withdraws 40 at once and owes 50. Those
//! are withdrawn one by one as sessions end, so the limit in force comes down to the configured
//! one and never drifts upward across reloads; raising the limit first cancels what is owed.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A limit of concurrent sessions.
#[derive(Debug)]
pub struct Limit {
    permits: Arc<Semaphore>,
    state: Mutex<LimitState>,
}

#[derive(Debug, Clone, Copy)]
struct LimitState {
    /// The configured limit.
    max: usize,
    /// Permits still to withdraw when sessions end: `max + owed` permits exist now.
    owed: usize,
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
            state: Mutex::new(LimitState { max, owed: 0 }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LimitState> {
        // Plain numbers: a panic elsewhere cannot leave them half-updated.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let mut state = self.state();
        let old = state.max;
        if new > old {
            let mut raise = new - old;
            let cancelled = raise.min(state.owed);
            state.owed -= cancelled;
            raise -= cancelled;
            self.permits.add_permits(raise);
        } else if new < old {
            let lower = old - new;
            let withdrawn = self.permits.forget_permits(lower);
            state.owed += lower - withdrawn;
        }
        state.max = new;
    }

    /// The configured limit.
    pub fn max(&self) -> usize {
        self.state().max
    }

    /// How many sessions may be open right now: the configured limit plus the permits still owed
    /// after a lowering (sessions opened under the old limit that have not ended yet).
    pub fn in_force(&self) -> usize {
        let state = self.state();
        state.max + state.owed
    }

    /// Withdraws `permit` if a lowering still owes one; else it goes back to the semaphore.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        let mut state = self.state();
        if state.owed > 0 {
            state.owed -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
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
