//! Session threads: one thread per core, each running its own single-threaded tokio runtime, with
//! an accept loop per listener and the sessions that loop accepts (HAProxy's `nbthread`).
//!
//! A session lives on the thread that accepted it: its two sockets, its timers and its task never
//! move between threads, so no session pays for work stealing, cross-thread wake-ups or a shared
//! I/O driver. Measured on `Connection: close` traffic (tests/bench/proxy.sh), the same sessions on
//! a two-worker work-stealing runtime cost about a sixth more CPU per connection.
//!
//! Every thread watches every listener through its own duplicate of the socket: whichever thread
//! wakes first accepts, as HAProxy's threads do on a shared listener. The listening socket stays
//! one socket (one backlog, bind errors as before) rather than one SO_REUSEPORT socket per thread,
//! whose backlog would be lost when one of them closes.
//!
//! The threads end when the engine's hard stop is cancelled (end of shutdown, or the [`Proxy`]
//! dropped); dropping a runtime drops the sessions still on it.
//!
//! [`Proxy`]: crate::Proxy

use std::io;
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Handles of the running session threads.
pub struct SessionThreads {
    handles: Vec<Handle>,
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
        Ok(Self { handles })
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
}
