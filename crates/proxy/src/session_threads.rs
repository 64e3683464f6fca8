//! Session threads: one thread per core, each running its own single-threaded tokio runtime, with
//! an accept loop per listener and the sessions that loop accepts (HAProxy's `nbthread`).
//!
//! A session lives on the thread that accepted it: its two sockets, its timers and its task never
//! move between threads, so no session pays for work stealing, cross-thread wake-ups or a shared
//! I/O driver. Measured on `Connection: close` traffic (tests/bench/proxy.sh), the same sessions on
//! a two-worker work-stealing runtime cost about a sixth more CPU per connection.
//!
//! Every thread accepts on its own socket of every listener, all bound to the same address with
//! SO_REUSEPORT ([`frontend::bind`]): the kernel puts each new connection in the queue of one of
//! them, by a hash of the connection's addresses, and wakes only that thread. (One socket watched
//! by every thread woke them all for each connection; all but one then found nothing to accept.)
//! A hash spreads many connections evenly but a few long-lived ones (API watch streams) may land
//! unevenly, so, like HAProxy, a thread that holds clearly more sessions than the least loaded one
//! hands a fresh connection over to it ([`SessionThreads::pick`]).
//!
//! The threads end when the engine's hard stop is cancelled (end of shutdown, or the [`Proxy`]
//! dropped); dropping a runtime drops the sessions still on it.
//!
//! [`Proxy`]: crate::Proxy
//! [`frontend::bind`]: crate::frontend::bind

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Handles of the running session threads.
pub struct SessionThreads {
    handles: Vec<Handle>,
    loads: Arc<[ThreadLoad]>,
}

/// Sessions on one thread; on its own cache line, as each thread updates its own all the time.
#[derive(Default)]
#[repr(align(64))]
struct ThreadLoad(AtomicUsize);

/// One session counted on its thread until dropped.
pub struct LoadShare {
    loads: Arc<[ThreadLoad]>,
    thread: usize,
}

impl LoadShare {
    /// The session thread the session runs on.
    pub fn thread(&self) -> usize {
        self.thread
    }
}

impl Drop for LoadShare {
    fn drop(&mut self) {
        self.loads[self.thread].0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionThreads {
    /// Starts one session thread per core the process may use, each until `stop` is cancelled.
    /// If one cannot start, `stop` is cancelled so that those already started end too.
    pub fn start(stop: &CancellationToken) -> io::Result<Self> {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            match Self::start_one(index, stop) {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    stop.cancel();
                    return Err(error);
                }
            }
        }
        let loads = (0..count).map(|_| ThreadLoad::default()).collect();
        Ok(Self { handles, loads })
    }

    fn start_one(index: usize, stop: &CancellationToken) -> io::Result<Handle> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("vipd-proxy-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return;
                    }
                };
                let _ = sender.send(Ok(runtime.handle().clone()));
                runtime.block_on(stop.cancelled());
            })?;
        receiver
            .recv()
            .map_err(|_| io::Error::other("session thread ended before its runtime started"))?
    }

    /// The runtimes of the threads, one per thread.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// The thread a connection accepted on thread `accepting` should run on, counted there from
    /// now on: `accepting` itself unless it holds clearly more sessions than the least loaded
    /// thread. The kernel's hash already spreads many connections evenly; the slack keeps short
    /// connections, whose counts come and go, from being handed over (a re-registration and a
    /// cross-thread wake-up) on the ordinary ups and downs of that spread. With a quarter as
    /// slack, 50 `Connection: close` clients saw enough hand-overs to cost 1.5 % of the requests
    /// per second against none at all (tests/bench/proxy.sh workload, paired runs).
    pub fn pick(&self, accepting: usize) -> (usize, LoadShare) {
        let thread = thread_for(accepting, &self.loads);
        self.loads[thread].0.fetch_add(1, Ordering::Relaxed);
        let share = LoadShare {
            loads: Arc::clone(&self.loads),
            thread,
        };
        (thread, share)
    }
}

/// See [`SessionThreads::pick`]: hand over when the accepting thread holds at least four sessions
/// and half as many again more than the least loaded one.
fn thread_for(accepting: usize, loads: &[ThreadLoad]) -> usize {
    let load = |thread: usize| loads[thread].0.load(Ordering::Relaxed);
    let mine = load(accepting);
    let Some((least, least_load)) = (0..loads.len())
        .map(|thread| (thread, load(thread)))
        .min_by_key(|&(_, load)| load)
    else {
        return accepting;
    };
    if mine >= least_load + 4 + least_load / 2 {
        least
    } else {
        accepting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(counts: &[usize]) -> Vec<ThreadLoad> {
        counts
            .iter()
            .map(|&count| ThreadLoad(AtomicUsize::new(count)))
            .collect()
    }

    #[test]
    fn a_thread_keeps_its_connections_while_loads_are_close() {
        assert_eq!(thread_for(0, &loads(&[0, 0])), 0);
        assert_eq!(thread_for(0, &loads(&[3, 0])), 0);
        assert_eq!(thread_for(1, &loads(&[20, 24])), 1);
        // 50 short connections spread by the kernel's hash: a usual swing stays put.
        assert_eq!(thread_for(0, &loads(&[31, 19])), 0);
        assert_eq!(thread_for(0, &loads(&[5])), 0);
    }

    #[test]
    fn a_busier_thread_hands_over_to_the_least_loaded() {
        assert_eq!(thread_for(0, &loads(&[4, 0])), 1);
        assert_eq!(thread_for(1, &loads(&[20, 34])), 0);
        assert_eq!(thread_for(0, &loads(&[9, 4, 1, 3])), 2);
    }

    #[test]
    fn a_burst_on_one_thread_ends_balanced() {
        // 50 long-lived connections all accepted by thread 0 (its socket got them all): the
        // other thread ends up with about two fifths of them, not none.
        let loads = loads(&[0, 0]);
        for _ in 0..50 {
            let thread = thread_for(0, &loads);
            loads[thread].0.fetch_add(1, Ordering::Relaxed);
        }
        let (first, second) = (
            loads[0].0.load(Ordering::Relaxed),
            loads[1].0.load(Ordering::Relaxed),
        );
        assert!(first.abs_diff(second) <= 14, "{first} / {second}");
    }
}
