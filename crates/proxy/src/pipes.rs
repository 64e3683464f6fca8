//! Pipes for splicing, sized to the stream: each thread keeps a pool of small pipes, a direction
//! that streams grows its pipe step by step, and gives it back small once it goes quiet.
//!
//! A pipe starts at the kernel's default capacity ([`BASE_CAPACITY`], 16 slots). A direction
//! that keeps finding more bytes queued than its pipe took, while its destination keeps up,
//! doubles it (`F_SETPIPE_SZ`) up to [`MAX_CAPACITY`]: fewer, larger splices per byte. What a
//! pipe holds beyond the base comes from the process's [`PipeBudget`]; when that is spent, or
//! the kernel refuses (an unprivileged process past `fs.pipe-user-pages-soft`, or past
//! `fs.pipe-max-size`), the pipe stays as it is and the stream goes on at that size.
//!
//! The pool holds only base-sized pipes: a grown pipe is shrunk back when it is given back, so
//! idle sessions and the pool cost what they did before pipes could grow.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// A new pipe's capacity: the kernel's default (16 pages).
pub const BASE_CAPACITY: usize = 64 * 1024;
/// The most a streaming direction's pipe grows to: `fs.pipe-max-size`'s default, the most an
/// unprivileged process may ask for. Measured here (docs/benchmarks.md): past 1 MiB a single
/// stream gains nothing, and every grown pipe is memory a slow reader can fill.
pub const MAX_CAPACITY: usize = 1024 * 1024;

/// Pipes a thread keeps for the next bulk direction: enough for the bulk directions of a busy
/// thread to find one without a system call, few enough that a burst of bulk traffic does not keep
/// hundreds of fds once it is over.
pub const POOLED_PIPES_PER_THREAD: usize = 32;

/// Default share of the machine's memory that grown pipes may hold together.
pub const DEFAULT_BUDGET_PERCENT: u8 = 2;

/// What grown pipes may hold beyond their base capacity, over the whole process.
#[derive(Debug)]
pub struct PipeBudget {
    limit: AtomicUsize,
    granted: AtomicUsize,
    refused: AtomicU64,
}

impl PipeBudget {
    pub const fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            granted: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Sets the limit; pipes grown beyond a lowered limit keep their size until given back.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Takes `bytes` from the budget if that many are left.
    fn reserve(&self, bytes: usize) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let reserved = self
            .granted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |granted| {
                granted.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok();
        if !reserved {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    fn release(&self, bytes: usize) {
        self.granted.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn stats(&self) -> PipeStats {
        PipeStats {
            pipes: PIPES_OPEN.load(Ordering::Relaxed),
            grown_bytes: self.granted.load(Ordering::Relaxed) as u64,
            budget_bytes: self.limit.load(Ordering::Relaxed) as u64,
            growth_refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// The process's budget for grown pipes; [`crate::Proxy`] sets its limit from the configuration.
pub static BUDGET: PipeBudget = PipeBudget::new(64 * 1024 * 1024);

/// The budget in force for a configured one: no more than the kernel lets this process grow.
///
/// An unprivileged process (neither CAP_SYS_RESOURCE nor CAP_SYS_ADMIN, as the shipped unit runs)
/// shares `fs.pipe-user-pages-soft` with every pipe of its user: past it the kernel refuses to grow
/// pipes and makes new ones with 2 slots instead of 16. Grown pipes get at most half of it, so the
/// base-sized pipes of other splicing sessions keep their 16 slots.
pub fn budget_in_force(configured: usize) -> usize {
    let privileged = in_initial_user_namespace()
        && effective_capabilities()
            .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE | 1 << CAP_SYS_ADMIN) != 0);
    let soft_pages = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .ok()
        .and_then(|text| text.trim().parse().ok());
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(4096);
    allowance(configured, privileged, soft_pages, page)
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

fn allowance(configured: usize, privileged: bool, soft_pages: Option<usize>, page: usize) -> usize {
    match soft_pages {
        // 0: no soft limit.
        Some(pages) if !privileged && pages > 0 => configured.min(pages.saturating_mul(page) / 2),
        _ => configured,
    }
}

/// This process's effective capabilities (`CapEff` in /proc/self/status).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether this process runs in the host's user namespace: the kernel exempts pipes from the
/// per-user limits only for capabilities held there, and a rootless container's CapEff shows
/// capabilities of its own namespace.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// Pipes open in the process (pooled or held by a direction).
static PIPES_OPEN: AtomicU64 = AtomicU64::new(0);

/// Pipe memory of the whole process, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipeStats {
    /// Pipes open: pooled, or held by a direction that is streaming.
    pub pipes: u64,
    /// Capacity beyond what they were made with (64 KiB) that grown pipes hold.
    pub grown_bytes: u64,
    /// The budget in force for `grown_bytes`.
    pub budget_bytes: u64,
    /// Streams whose pipe could not grow (the budget was spent or the kernel refused): each
    /// stays at its size until it goes quiet.
    pub growth_refused: u64,
}

/// A pipe for splice and what it may hold.
#[derive(Debug)]
pub struct Pipe {
    pub read_end: OwnedFd,
    pub write_end: OwnedFd,
    capacity: usize,
    /// The capacity the kernel gave it when it was made, which it shrinks back to.
    base: usize,
    /// What its growth took from `budget` and gives back.
    reserved: usize,
    /// Growth was refused (the budget was spent or the kernel said no): it stays at this size
    /// until it is given back, so a stream that cannot grow asks once, not at every chunk.
    stays_at_size: bool,
    budget: &'static PipeBudget,
}

impl Pipe {
    /// A new non-blocking pipe at the kernel's default capacity, growing from `budget`. Boxed:
    /// a session's state holds a pointer, not the pipe, so idle sessions stay as small as before.
    fn open(budget: &'static PipeBudget) -> io::Result<Box<Self>> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // 16 pages; past `fs.pipe-user-pages-soft` an unprivileged process's new pipes get 2.
        let capacity = fcntl(&read_end, FcntlArg::F_GETPIPE_SZ)
            .ok()
            .and_then(|size| usize::try_from(size).ok())
            .unwrap_or(BASE_CAPACITY);
        PIPES_OPEN.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Self {
            read_end,
            write_end,
            capacity,
            base: capacity,
            reserved: 0,
            stays_at_size: capacity < BASE_CAPACITY,
            budget,
        }))
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether it holds more than it was made with.
    pub fn has_grown(&self) -> bool {
        self.capacity > self.base
    }

    /// Whether the stream that holds it asked to grow and was refused (it streams, too).
    pub fn was_refused(&self) -> bool {
        self.stays_at_size && self.capacity >= BASE_CAPACITY
    }

    /// Whether growing could still help: below [`MAX_CAPACITY`] and not refused before.
    pub fn may_grow(&self) -> bool {
        !self.stays_at_size && self.capacity < MAX_CAPACITY
    }

    /// Doubles the capacity if the budget and the kernel allow; the pipe may hold bytes.
    pub fn grow(&mut self) {
        if !self.may_grow() {
            return;
        }
        let wanted = (self.capacity * 2).min(MAX_CAPACITY);
        let extra = wanted - self.capacity;
        if !self.budget.reserve(extra) {
            self.stays_at_size = true;
            return;
        }
        if let Err(error) = self.resize(wanted) {
            self.budget.release(extra);
            self.budget.refused.fetch_add(1, Ordering::Relaxed);
            self.stays_at_size = true;
            tracing::debug!(%error, capacity = self.capacity, "pipe stays at its size");
            return;
        }
        self.reserved += extra;
        #[cfg(test)]
        GROWN_ON_THIS_THREAD.set(GROWN_ON_THIS_THREAD.get() + 1);
    }

    fn resize(&mut self, wanted: usize) -> io::Result<()> {
        let size =
            i32::try_from(wanted).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let granted = fcntl(&self.read_end, FcntlArg::F_SETPIPE_SZ(size))?;
        // The kernel rounds up to a power of two pages: what it gave is what counts.
        let granted = usize::try_from(granted).unwrap_or(wanted);
        if granted != wanted {
            return Err(io::Error::other(format!(
                "asked for {wanted} bytes, the kernel gave {granted}"
            )));
        }
        self.capacity = granted;
        Ok(())
    }

    /// Back to the capacity it was made with, and the next stream may ask to grow again: the
    /// budget or the kernel may allow it by then. False if the kernel would not shrink it.
    fn ready_for_reuse(&mut self) -> bool {
        let shrunk = self.shrink();
        self.stays_at_size = self.capacity < BASE_CAPACITY;
        shrunk
    }

    /// Back to the capacity it was made with (the pipe must be empty); false if the kernel
    /// would not.
    fn shrink(&mut self) -> bool {
        if !self.has_grown() {
            return true;
        }
        if self.resize(self.base).is_err() {
            return false;
        }
        self.budget.release(std::mem::take(&mut self.reserved));
        true
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES_OPEN.fetch_sub(1, Ordering::Relaxed);
        self.budget.release(self.reserved);
    }
}

#[cfg(test)]
thread_local! {
    /// Pipes grown by this thread: what a test of forwarding on its own thread observes.
    pub static GROWN_ON_THIS_THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// Empty base-sized pipes of this thread, for the next bulk direction ([`Pipes`]).
    // Boxed pipes, as directions hold them: taking one from the pool allocates nothing.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Pipe>>> = const { RefCell::new(Vec::new()) };
}

/// The thread's pool of empty pipes.
pub struct Pipes;

impl Pipes {
    /// A pipe from the pool, or a new one; `None` if none can be made (fd limit): the direction
    /// copies instead.
    pub fn take() -> Option<Box<Pipe>> {
        if let Some(pipe) = POOL.with_borrow_mut(Vec::pop) {
            return Some(pipe);
        }
        Pipe::open(&BUDGET)
            .inspect_err(
                |error| tracing::debug!(%error, "no pipe for splice, copying through a buffer"),
            )
            .ok()
    }

    /// Returns an empty pipe, if there is one: shrunk to the capacity it was made with (its
    /// growth back to the budget) and pooled, or closed if the pool is full, it cannot shrink,
    /// or it is one of the 2-slot pipes the kernel makes past the user's soft limit (a new one
    /// may get 16 slots again).
    pub fn give(pipe: Option<Box<Pipe>>) {
        let Some(mut pipe) = pipe else { return };
        if !pipe.ready_for_reuse() || pipe.capacity < BASE_CAPACITY {
            return;
        }
        POOL.with_borrow_mut(|pool| {
            if pool.len() < POOLED_PIPES_PER_THREAD {
                pool.push(pipe);
            }
        });
    }

    #[cfg(test)]
    pub fn pooled() -> usize {
        POOL.with_borrow(Vec::len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn kernel_capacity(pipe: &Pipe) -> usize {
        usize::try_from(fcntl(&pipe.read_end, FcntlArg::F_GETPIPE_SZ).unwrap()).unwrap()
    }

    #[test]
    fn an_unprivileged_process_grows_pipes_within_half_the_users_soft_limit() {
        // fs.pipe-user-pages-soft's default, 16384 pages: 32 MiB for grown pipes.
        assert_eq!(allowance(usize::MAX, false, Some(16384), 4096), 32 << 20);
        assert_eq!(allowance(8 << 20, false, Some(16384), 4096), 8 << 20);
        assert_eq!(allowance(1 << 30, true, Some(16384), 4096), 1 << 30);
        assert_eq!(
            allowance(1 << 30, false, Some(0), 4096),
            1 << 30,
            "0: no soft limit"
        );
        assert_eq!(allowance(1 << 30, false, None, 4096), 1 << 30);
        assert_eq!(allowance(usize::MAX, false, Some(16384), 65536), 512 << 20);
    }

    #[test]
    fn a_pipe_doubles_up_to_the_cap_and_the_budget_follows() {
        static BUDGET: PipeBudget = PipeBudget::new(usize::MAX);
        let budget = &BUDGET;
        let mut pipe = Pipe::open(budget).unwrap();
        assert_eq!(pipe.capacity(), BASE_CAPACITY);
        let mut sizes = Vec::new();
        while pipe.may_grow() {
            pipe.grow();
            sizes.push(kernel_capacity(&pipe));
        }
        assert_eq!(sizes, [128 << 10, 256 << 10, 512 << 10, 1 << 20]);
        assert_eq!(pipe.capacity(), MAX_CAPACITY);
        assert_eq!(
            budget.stats().grown_bytes,
            (MAX_CAPACITY - BASE_CAPACITY) as u64
        );
        assert!(pipe.shrink());
        assert_eq!(kernel_capacity(&pipe), BASE_CAPACITY);
        assert_eq!(budget.stats().grown_bytes, 0);
    }

    #[test]
    fn a_spent_budget_keeps_pipes_small_and_counts_the_refusal() {
        // Room for one pipe's growth from 64 to 256 KiB, not for a second's.
        static BUDGET: PipeBudget = PipeBudget::new(192 << 10);
        let budget = &BUDGET;
        let (mut first, mut second) = (Pipe::open(budget).unwrap(), Pipe::open(budget).unwrap());
        first.grow();
        first.grow();
        assert_eq!(kernel_capacity(&first), 256 << 10);
        second.grow();
        assert_eq!(kernel_capacity(&second), BASE_CAPACITY);
        assert_eq!(budget.stats().growth_refused, 1);
        // Refused, a stream asks once, not at every chunk.
        assert!(first.shrink());
        second.grow();
        assert_eq!(kernel_capacity(&second), BASE_CAPACITY);
        assert_eq!(budget.stats().growth_refused, 1);
        // Given back, the pipe's next stream asks again, and the budget has room now.
        assert!(second.ready_for_reuse());
        second.grow();
        assert_eq!(kernel_capacity(&second), 128 << 10);
        drop(second);
        assert_eq!(
            budget.stats().grown_bytes,
            0,
            "a closed pipe gives its growth back"
        );
    }

    #[test]
    fn the_pool_keeps_only_base_sized_pipes_and_at_most_its_cap() {
        let mut grown = Pipes::take().unwrap();
        grown.grow();
        Pipes::give(Some(grown));
        let pooled = Pipes::take().unwrap();
        assert_eq!(kernel_capacity(&pooled), BASE_CAPACITY);
        Pipes::give(Some(pooled));
        for _ in 0..POOLED_PIPES_PER_THREAD + 8 {
            Pipes::give(Pipe::open(&BUDGET).ok());
        }
        assert_eq!(Pipes::pooled(), POOLED_PIPES_PER_THREAD);
        assert!(Pipes::take().is_some());
        assert_eq!(Pipes::pooled(), POOLED_PIPES_PER_THREAD - 1);
    }
}
