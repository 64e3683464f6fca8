//! Moving bytes between a client and a server socket, both ways, with half-close and timeouts.
//!
//! Bulk traffic splices socket → pipe → socket (`splice(2)`, zero copy: the payload never enters
//! user space). Each direction starts with a buffered copy through a 16 KiB scratch buffer of the
//! worker thread, and switches to splice once a read fills that buffer (see [`pump`]). A bulk
//! direction takes a pipe from its thread's pool for each chunk, and keeps it only while it
//! streams: while the source keeps more queued than the pipe took and the destination keeps up,
//! the pipe doubles, up to 1 MiB, within the process's budget (`pipes.rs`). Quiet for
//! [`QUIET`], a streaming direction gives the pipe back at its base size; any other gives it
//! back after its chunk, so a watch stream that once carried bulk data holds none between events.
//! If a pipe cannot be made (fd limit) or the kernel refuses to splice these sockets, the
//! direction copies through the buffer. A direction owns a buffer only while its destination is
//! slower than its source; an idle session holds neither buffer nor pipe.
//!
//! A socket error on either side (a reset, a keepalive that found the peer gone) is passed on as a
//! reset to the other side (SO_LINGER 0 before closing), never as a FIN: a client whose server
//! reset mid-response must not take the truncated response for a complete one.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{SpliceFFlags, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Timeouts;
use crate::pipes::{Pipe, Pipes};

/// Scratch buffer of the buffered path, per worker thread.
pub const COPY_BUFFER: usize = 16 * 1024;

/// How long a bulk direction keeps its pipe without anything to read: long enough to span the
/// pauses of a stream (a slow sender, a window update), short enough that a burst's grown pipe
/// goes back soon after it.
pub const QUIET: Duration = Duration::from_secs(1);

/// One side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Both directions finished with FIN.
    Closed,
    /// No activity for the timeout that applied (`idle`, `tunnel` or `fin`); `half_closed_by` is
    /// the side whose FIN came first, if one did.
    TimedOut {
        timeout: &'static str,
        half_closed_by: Option<Side>,
    },
    /// Cut from outside: server marked down with `shutdown_sessions`, or hard stop.
    Cancelled,
    /// A socket error on `side`'s socket (`ConnectionReset`: that side reset); the other side was
    /// reset in turn.
    Failed { side: Side, error: io::Error },
}

/// A socket error and the side whose socket it came from.
#[derive(Debug)]
struct Failure {
    side: Side,
    error: io::Error,
}

/// Tags an error of `side`'s socket.
fn on(side: Side) -> impl FnOnce(io::Error) -> Failure {
    move |error| Failure { side, error }
}

/// Where a direction's byte counts go (frontend, backend, server, the session's own).
pub type ByteCounters<'a> = [&'a AtomicU64; 4];

/// Where a session's byte counts go.
pub struct SessionCounters<'a> {
    pub client_to_server: ByteCounters<'a>,
    pub server_to_client: ByteCounters<'a>,
    /// Bytes moved by splice, either way.
    pub spliced: &'a AtomicU64,
}

/// Activity shared by the two directions and the timeout watchdog.
struct Activity {
    start: Instant,
    last_millis: AtomicU64,
    client_spoke: AtomicBool,
    server_spoke: AtomicBool,
    /// The side whose FIN came first: [`NO_FIN`], or a [`Side`] as [`fin_code`] encodes it.
    first_fin: AtomicU8,
    /// Bytes moved but not yet added to the shared counters (client → server, server → client,
    /// spliced): the shared counters are hit by every session, so each session batches.
    unflushed: [AtomicU64; 3],
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
            client_spoke: AtomicBool::new(false),
            server_spoke: AtomicBool::new(false),
            first_fin: AtomicU8::new(NO_FIN),
            unflushed: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn touch(&self, spoke: &AtomicBool) {
        self.moved();
        spoke.store(true, Ordering::Relaxed);
    }

    /// Bytes moved (read, or written in part) or a FIN received: the inactivity clock restarts.
    fn moved(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// Records `side`'s FIN; whether the other side's FIN had come already (both finished).
    fn fin_from(&self, side: Side) -> bool {
        // The FIN counts as activity: the `fin` timeout runs from it, not from the last byte
        // before it.
        self.moved();
        self.first_fin
            .compare_exchange(NO_FIN, fin_code(side), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    }

    fn half_closed_by(&self) -> Option<Side> {
        match self.first_fin.load(Ordering::Relaxed) {
            NO_FIN => None,
            code if code == fin_code(Side::Client) => Some(Side::Client),
            _ => Some(Side::Server),
        }
    }

    /// Adds the batched byte counts to the shared counters.
    fn flush(&self, counters: &SessionCounters<'_>) {
        let [up, down, zero_copy] = &self.unflushed;
        for (batch, counters) in [
            (up, counters.client_to_server),
            (down, counters.server_to_client),
        ] {
            let bytes = batch.swap(0, Ordering::Relaxed);
            if bytes > 0 {
                for counter in counters {
                    counter.fetch_add(bytes, Ordering::Relaxed);
                }
            }
        }
        let bytes = zero_copy.swap(0, Ordering::Relaxed);
        if bytes > 0 {
            counters.spliced.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }

    /// The inactivity timeout in force: `fin` once half closed, if set; else `tunnel` once both
    /// sides have spoken, `idle` before (HAProxy's `timeout client-fin` / `server-fin` unset).
    fn timeout(&self, timeouts: &Timeouts) -> (Duration, &'static str) {
        if let (Some(fin), Some(_)) = (timeouts.fin, self.half_closed_by()) {
            (fin, "fin")
        } else if self.client_spoke.load(Ordering::Relaxed)
            && self.server_spoke.load(Ordering::Relaxed)
        {
            (timeouts.tunnel, "tunnel")
        } else {
            (timeouts.idle, "idle")
        }
    }
}

const NO_FIN: u8 = 0;

fn fin_code(side: Side) -> u8 {
    match side {
        Side::Client => 1,
        Side::Server => 2,
    }
}

/// Forwards both directions until both are finished, a timeout fires, `cancel` is cancelled or a
/// socket fails. `counters` are updated in batches, at least every `min(idle, tunnel, fin)` and
/// when the session ends. `client_spoke` says the client's first bytes went to the server before
/// forwarding (they count for the choice between `idle` and `tunnel`). `server_acks_delayed`
/// says TCP_QUICKACK is off on the server socket (see [`pump`]'s `acks_delayed`).
pub async fn forward(
    client: &TcpStream,
    server: &TcpStream,
    client_spoke: bool,
    server_acks_delayed: bool,
    timeouts: &Timeouts,
    cancel: &CancellationToken,
    counters: SessionCounters<'_>,
) -> SessionEnd {
    let activity = Activity::new();
    activity.client_spoke.store(client_spoke, Ordering::Relaxed);
    let [up, down, zero_copy] = &activity.unflushed;
    // The pumps are made inside the block, not before it: a future made outside and moved in
    // would be stored twice in this function's state (about 900 bytes more per session).
    let both = async {
        // try_join: the first error ends the session; otherwise wait for both FINs.
        tokio::try_join!(
            pump(
                (client, Side::Client),
                server,
                false,
                &activity,
                &activity.client_spoke,
                up,
                zero_copy,
            ),
            pump(
                (server, Side::Server),
                client,
                server_acks_delayed,
                &activity,
                &activity.server_spoke,
                down,
                zero_copy,
            )
        )
    };
    let flush = || activity.flush(&counters);
    let end = tokio::select! {
        result = both => match result {
            Ok(_) => SessionEnd::Closed,
            Err(Failure { side, error }) => SessionEnd::Failed { side, error },
        },
        timeout = watchdog(&activity, timeouts, &flush) => SessionEnd::TimedOut {
            timeout,
            half_closed_by: activity.half_closed_by(),
        },
        () = cancel.cancelled() => SessionEnd::Cancelled,
    };
    flush();
    if matches!(end, SessionEnd::Failed { .. }) {
        reset_on_close(client);
        reset_on_close(server);
    }
    end
}

/// Makes closing `socket` send a reset (SO_LINGER 0) instead of a FIN. Set on both sockets when
/// one failed: the other side learns the stream broke, and the failed one, whose peer is gone or
/// reset already, does not linger in FIN-WAIT retransmitting to nobody.
fn reset_on_close(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

async fn watchdog(activity: &Activity, timeouts: &Timeouts, flush: &impl Fn()) -> &'static str {
    // The timeout in force can change while we sleep (a half-close switches to `fin`); waking at
    // least every `shortest` bounds how late a switch to a shorter timeout is noticed.
    let shortest = timeouts
        .idle
        .min(timeouts.tunnel)
        .min(timeouts.fin.unwrap_or(Duration::MAX))
        .max(Duration::from_millis(10));
    loop {
        flush();
        let (timeout, name) = activity.timeout(timeouts);
        let last = activity.last();
        let deadline = last + timeout;
        let now = Instant::now();
        if now >= deadline {
            return name;
        }
        tokio::time::sleep_until(deadline.min(now + shortest)).await;
    }
}

/// One direction: `from` → `to` until `from` sends FIN, which is then passed on to `to`.
///
/// Small exchanges (requests, responses) go through the worker thread's scratch buffer: a pipe
/// costs three system calls to make and close, more than it saves on a few hundred bytes. A read
/// that fills the whole buffer means bulk traffic: the direction then switches to splice for good
/// (HAProxy's `splice-auto`), through a pipe of the thread's pool that it keeps while it streams
/// ([`splice_through`] grows it) and gives back after [`QUIET`] without anything to read.
async fn pump(
    (from, from_side): (&TcpStream, Side),
    to: &TcpStream,
    mut acks_delayed: bool,
    activity: &Activity,
    spoke: &AtomicBool,
    unflushed: &AtomicU64,
    spliced: &AtomicU64,
) -> Result<(), Failure> {
    let to_side = match from_side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    };
    let mut bulk = false;
    let mut may_splice = true;
    let mut pipe: Option<Box<Pipe>> = None;
    loop {
        let readiness = if pipe.is_some() {
            // Streaming: wait at most QUIET with the pipe, then give it back and wait without.
            // The timer is boxed: stored inline it would make every session's state larger,
            // idle ones included.
            let waiting = tokio::time::timeout(QUIET, from.ready(Interest::READABLE));
            let Ok(readiness) = Box::pin(waiting).await else {
                Pipes::give(pipe.take());
                continue;
            };
            readiness
        } else {
            from.ready(Interest::READABLE).await
        };
        // EPOLLRDHUP came with the data: the peer's FIN is queued behind what we read now.
        let fin_queued = readiness.map_err(on(from_side))?.is_read_closed();
        if bulk && pipe.is_none() {
            pipe = Pipes::take();
        }
        let via_pipe = pipe.is_some();
        let moved = if let Some(through) = pipe.as_mut() {
            let sides = (from_side, to_side);
            match splice_through(from, to, through, sides, activity).await {
                Err(failure)
                    if failure.side == from_side
                        && failure.error.raw_os_error() == Some(nix::libc::EINVAL) =>
                {
                    // The kernel will not splice from this socket: copy for good. Refused on
                    // the way in, the pipe is empty and goes back.
                    tracing::debug!(error = %failure.error, "splice refused, copying through a buffer");
                    Pipes::give(pipe.take());
                    bulk = false;
                    may_splice = false;
                    continue;
                }
                // On an error the pipe is closed with what it holds.
                other => {
                    let chunk = other?;
                    // Kept across the wait for more only while streaming: an API watch's
                    // occasional event takes a pipe for its chunk and gives it back at once,
                    // so thousands of quiet watches hold no pipes.
                    let streaming = through.has_grown()
                        || through.was_refused()
                        || chunk.as_ref().is_some_and(|c| c.source_ahead);
                    if !streaming {
                        Pipes::give(pipe.take());
                    }
                    chunk.map(|chunk| chunk.bytes)
                }
            }
        } else {
            let moved = copy_through(from, to, fin_queued, (from_side, to_side), activity).await?;
            if may_splice && moved == Some(COPY_BUFFER) {
                bulk = true;
            }
            moved
        };
        if acks_delayed && moved.is_some() {
            // The first answer from a socket whose ACKs were delayed (TCP_QUICKACK off to send
            // the first bytes with the handshake's ACK). Left delayed, a server that answers in
            // two small writes without TCP_NODELAY would hold the second one until our ACK came,
            // 40 ms later (Nagle's algorithm): quick ACKs go back on, which also sends the ACK
            // now. Unless its FIN is queued already: then it sends nothing more, and the ACK
            // rides on our FIN instead of costing a segment of its own.
            acks_delayed = false;
            if !fin_queued {
                let _ = socket2::SockRef::from(from).set_tcp_quickack(true);
            }
        }
        match moved {
            None => {}
            Some(0) => break,
            Some(bytes) => {
                activity.touch(spoke);
                unflushed.fetch_add(bytes as u64, Ordering::Relaxed);
                if via_pipe {
                    spliced.fetch_add(bytes as u64, Ordering::Relaxed);
                }
            }
        }
    }
    Pipes::give(pipe);
    // FIN received. If the other direction has already passed on its FIN, both are finished and
    // the session closes both sockets right away: close sends this FIN, and a shutdown would only
    // be one more system call per connection.
    if activity.fin_from(from_side) {
        return Ok(());
    }
    // Pass the FIN on and keep the other direction open (half-close).
    match socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write) {
        Err(error) if error.kind() != io::ErrorKind::NotConnected => Err(on(to_side)(error)),
        _ => Ok(()),
    }
}

/// Every splice: never wait (tokio's readiness says when to try), and move pages, not copies.
const SPLICE_FLAGS: SpliceFFlags =
    SpliceFFlags::SPLICE_F_NONBLOCK.union(SpliceFFlags::SPLICE_F_MOVE);

/// What one splice step moved.
struct Chunk {
    bytes: usize,
    /// The source still had bytes queued after the pipe took its fill: the stream goes on.
    source_ahead: bool,
}

/// Moves what is readable now (up to the pipe's capacity) through the pipe and writes it all;
/// `None` if nothing was readable after all, `bytes: 0` at end of stream. Returns with the pipe
/// empty, unless it fails.
///
/// Grows the pipe when the source still had bytes queued after filling it and the destination
/// took the whole chunk without making us wait: the pipe, not either peer, set the pace. A slow
/// destination keeps the pipe as it is.
async fn splice_through(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &mut Pipe,
    (from_side, to_side): (Side, Side),
    activity: &Activity,
) -> Result<Option<Chunk>, Failure> {
    let filled = match from.try_io(Interest::READABLE, || {
        splice(
            from,
            None,
            &pipe.write_end,
            None,
            pipe.capacity(),
            SPLICE_FLAGS,
        )
        .map_err(io::Error::from)
    }) {
        Ok(filled) => filled,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(error) => return Err(on(from_side)(error)),
    };
    // The peek may meet the source's pending error (a reset after its last bytes), which the
    // kernel hands out once: kept, it ends the direction after the chunk is passed on, as the
    // next read would have.
    let peeked = (filled > 0 && pipe.may_grow()).then(|| more_queued(from));
    let (source_ahead, source_failed) = match peeked {
        Some(Ok(more)) => (more, None),
        Some(Err(error)) => (false, Some(error)),
        None => (false, None),
    };
    let destination_lagged = drain(pipe, filled, to, to_side, activity).await?;
    if let Some(error) = source_failed {
        return Err(on(from_side)(error));
    }
    if source_ahead && !destination_lagged {
        pipe.grow();
    }
    Ok(Some(Chunk {
        bytes: filled,
        source_ahead,
    }))
}

/// Writes the `in_pipe` bytes of `pipe` to `to`; whether `to` made us wait.
async fn drain(
    pipe: &Pipe,
    mut in_pipe: usize,
    to: &TcpStream,
    to_side: Side,
    activity: &Activity,
) -> Result<bool, Failure> {
    let mut lagged = false;
    while in_pipe > 0 {
        to.writable().await.map_err(on(to_side))?;
        match to.try_io(Interest::WRITABLE, || {
            splice(&pipe.read_end, None, to, None, in_pipe, SPLICE_FLAGS).map_err(io::Error::from)
        }) {
            Ok(drained) => {
                in_pipe -= drained;
                lagged |= in_pipe > 0;
                // A slow reader taking the chunk in parts is activity too.
                activity.moved();
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => lagged = true,
            Err(error) => return Err(on(to_side)(error)),
        }
    }
    Ok(lagged)
}

/// Whether `from` has bytes queued still (a one-byte peek that does not wait); an error is the
/// socket's pending error (a reset, a keepalive timeout), which the peek has now taken.
fn more_queued(from: &TcpStream) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, recv};
    let mut byte = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    match recv(from.as_raw_fd(), &mut byte, flags) {
        Ok(peeked) => Ok(peeked > 0),
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

thread_local! {
    /// The buffered path's buffer, one per worker thread: it is used only between a read and the
    /// write that follows without waiting, so sessions need no buffer of their own for it.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The buffered path of a direction: one read, then write it all.
///
/// The read goes into the thread's scratch buffer and is written on at once; only bytes the
/// destination does not take now are copied into a buffer of this direction, which waits until
/// the destination is writable and is freed when they are written.
///
/// A read shorter than the buffer drained the socket's receive queue (TCP copies until the queue
/// is empty or the buffer full), so readiness is cleared right away instead of by a second read
/// that would only return EAGAIN: one system call less per message. tokio clears readiness only if
/// no new event arrived since the read, so data arriving meanwhile still wakes us.
///
/// `fin_queued` says the peer's FIN follows the data (a server answering and closing, as HTTP
/// with `Connection: close` does). A read that drains the socket then is the last one before end
/// of stream, and [`pump`] passes the FIN on right after it: the bytes are sent with MSG_MORE so
/// that the kernel holds them for the FIN and both leave in one segment, as HAProxy does. That is
/// one packet, one ACK and one wake-up of the receiver less per such message.
async fn copy_through(
    from: &TcpStream,
    to: &TcpStream,
    fin_queued: bool,
    (from_side, to_side): (Side, Side),
    activity: &Activity,
) -> Result<Option<usize>, Failure> {
    let relayed = SCRATCH.with_borrow_mut(|scratch| -> Result<_, Failure> {
        if scratch.is_empty() {
            scratch.resize(COPY_BUFFER, 0);
        }
        let Some(read) = read_draining(from, scratch).map_err(on(from_side))? else {
            return Ok(None);
        };
        let last_before_fin = fin_queued && read < scratch.len();
        let written = if read > 0 {
            send_now(to, &scratch[..read], last_before_fin).map_err(on(to_side))?
        } else {
            0
        };
        Ok(Some((read, scratch[written..read].to_vec())))
    })?;
    let Some((read, unwritten)) = relayed else {
        return Ok(None);
    };
    if !unwritten.is_empty() {
        activity.moved();
        write_all_reporting(to, &unwritten, || activity.moved())
            .await
            .map_err(on(to_side))?;
    }
    Ok(Some(read))
}

/// One read into `buffer`; `None` if nothing was readable after all, `Some(0)` at end of stream.
fn read_draining(from: &TcpStream, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    Ok(match read_if_ready(from, buffer)? {
        ReadOutcome::Read(read) => Some(read),
        ReadOutcome::NotReadable | ReadOutcome::NoEventYet => None,
    })
}

enum ReadOutcome {
    Read(usize),
    /// Read, found nothing.
    NotReadable,
    /// Not read: tokio has seen no readiness event for the socket since it last found nothing.
    NoEventYet,
}

fn read_if_ready(from: &TcpStream, buffer: &mut [u8]) -> io::Result<ReadOutcome> {
    let capacity = buffer.len();
    let mut outcome = ReadOutcome::NoEventYet;
    match from.try_io(Interest::READABLE, || {
        outcome = ReadOutcome::NotReadable;
        let read = nix::unistd::read(from, buffer).map_err(io::Error::from)?;
        outcome = ReadOutcome::Read(read);
        if read > 0 && read < capacity {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(read)
    }) {
        Ok(read) => Ok(ReadOutcome::Read(read)),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(outcome),
        Err(error) => Err(error),
    }
}

/// Reads what `from` has received already, without waiting for a readiness event: a fresh
/// socket's first event comes only with the next turn of the thread's event loop, and a client
/// usually sends its request (or TLS ClientHello) right after connecting. Empty if nothing is
/// there yet or the peer has closed; [`forward`] reads the rest as usual.
pub fn read_waiting(from: &TcpStream) -> io::Result<Vec<u8>> {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.is_empty() {
            scratch.resize(COPY_BUFFER, 0);
        }
        // Through tokio if its event came already: a read that drains the socket then clears the
        // readiness, and forwarding does not read again only to find EAGAIN.
        let read = match read_if_ready(from, scratch)? {
            ReadOutcome::Read(read) => read,
            ReadOutcome::NotReadable => 0,
            ReadOutcome::NoEventYet => match nix::unistd::read(from, scratch) {
                Ok(read) => read,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => 0,
                Err(error) => return Err(error.into()),
            },
        };
        Ok(scratch[..read].to_vec())
    })
}

/// Writes what `to` takes now, without waiting; returns how much that was.
///
/// The send is tried even when tokio has not yet seen `to` writable (a fresh socket's first
/// readiness event may still be on its way): a socket with room in its send buffer takes the bytes
/// at once, and one that has none answers EAGAIN, after which [`write_all`] waits for readiness.
///
/// With `more`, the kernel holds the bytes until the next send without it or the FIN
/// (MSG_MORE); the caller must follow with one of them without waiting.
pub fn send_now(to: &TcpStream, bytes: &[u8], more: bool) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, send};
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if more {
        // nix has no name for MSG_MORE.
        flags |= MsgFlags::from_bits_retain(nix::libc::MSG_MORE);
    }
    match send(to.as_raw_fd(), bytes, flags) {
        Ok(written) => Ok(written),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

/// Writes all of `bytes` to a shared (`&`) stream.
pub async fn write_all(to: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    write_all_reporting(to, bytes, || {}).await
}

/// [`write_all`], calling `progress` after each write that took some of the bytes.
async fn write_all_reporting(
    to: &TcpStream,
    mut bytes: &[u8],
    progress: impl Fn(),
) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(written) => {
                bytes = &bytes[written..];
                progress();
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Two ends of a TCP connection on loopback.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    /// Forwards between a new client and server pair until `exchange` is done with them; what
    /// it returns (the streams it keeps open) is dropped only after the session was cancelled,
    /// so a session that did not end by itself ends `Cancelled`. Returns how it ended and the
    /// bytes it spliced.
    async fn forwarding<F, T>(exchange: impl FnOnce(TcpStream, TcpStream) -> F) -> (SessionEnd, u64)
    where
        F: Future<Output = T>,
    {
        let (client, client_near) = connected().await;
        let (server_near, server) = connected().await;
        let (zero, spliced) = (AtomicU64::new(0), AtomicU64::new(0));
        let counters = SessionCounters {
            client_to_server: [&zero, &zero, &zero, &zero],
            server_to_client: [&zero, &zero, &zero, &zero],
            spliced: &spliced,
        };
        let cancel = CancellationToken::new();
        let timeouts = Timeouts::default();
        // The session's sockets close when it ends, as the proxy's do: a peer waiting for the
        // reset or FIN that ending passes on gets it.
        let session = async {
            let (client_near, server_near) = (client_near, server_near);
            forward(
                &client_near,
                &server_near,
                false,
                false,
                &timeouts,
                &cancel,
                counters,
            )
            .await
        };
        let exchange = async {
            let kept = exchange(client, server).await;
            cancel.cancel();
            kept
        };
        let (end, _kept) = tokio::join!(session, exchange);
        (end, spliced.load(Ordering::Relaxed))
    }

    /// `bytes` from the server to the client, read as fast as they come.
    async fn stream(server: &mut TcpStream, client: &mut TcpStream, bytes: usize) {
        let bulk = vec![7u8; bytes];
        let mut received = vec![0u8; bulk.len()];
        let (sent, read) = tokio::join!(server.write_all(&bulk), client.read_exact(&mut received));
        sent.unwrap();
        read.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_streaming_direction_grows_its_pipe_and_gives_it_back_small_once_quiet() {
        let (end, _) = forwarding(|mut client, mut server| async move {
            stream(&mut server, &mut client, 64 << 20).await;
            assert!(
                crate::pipes::GROWN_ON_THIS_THREAD.get() > 0,
                "64 MiB read as fast as it came grew no pipe"
            );
            // Streaming, the direction keeps its pipe; quiet, it gives it back.
            assert_eq!(Pipes::pooled(), 0);
            tokio::time::sleep(QUIET + Duration::from_millis(200)).await;
            assert_eq!(Pipes::pooled(), 1);
            (client, server)
        })
        .await;
        assert!(matches!(end, SessionEnd::Cancelled), "{end:?}");
    }

    /// An API watch: a large list once (the direction turns bulk), then small events. Each
    /// event takes a pipe for its chunk and gives it back at once, without waiting for QUIET:
    /// thousands of such watches hold no pipes between events.
    #[tokio::test(flavor = "current_thread")]
    async fn a_watch_between_events_holds_no_pipe() {
        let (end, _) = forwarding(|mut client, mut server| async move {
            stream(&mut server, &mut client, 4 << 20).await;
            tokio::time::sleep(QUIET + Duration::from_millis(200)).await;
            assert_eq!(Pipes::pooled(), 1, "the list's pipe went back once quiet");
            let mut event = [0u8; 600];
            for _ in 0..3 {
                server.write_all(&[5; 600]).await.unwrap();
                client.read_exact(&mut event).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert_eq!(
                    Pipes::pooled(),
                    1,
                    "an event's pipe was kept after its chunk"
                );
            }
            (client, server)
        })
        .await;
        assert!(matches!(end, SessionEnd::Cancelled), "{end:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_and_responses_take_no_pipe() {
        let (end, spliced) = forwarding(|mut client, mut server| async move {
            let mut buffer = [0u8; 2048];
            for _ in 0..100 {
                client.write_all(&[1; 1000]).await.unwrap();
                server.read_exact(&mut buffer[..1000]).await.unwrap();
                server.write_all(&[2; 2000]).await.unwrap();
                client.read_exact(&mut buffer[..2000]).await.unwrap();
            }
            assert_eq!(Pipes::pooled(), 0, "a pipe was taken and given back");
            (client, server)
        })
        .await;
        assert!(matches!(end, SessionEnd::Cancelled), "{end:?}");
        assert_eq!(spliced, 0, "small messages went through a pipe");
    }

    /// A reset pending behind the data of a slow reader's direction (its pipe small, so the
    /// direction still peeks to decide on growth) reaches the client as a reset, never as a
    /// clean end of stream that would make a truncated response look complete.
    #[tokio::test(flavor = "current_thread")]
    async fn a_server_reset_reaches_a_slow_client_as_a_reset() {
        let (end, _) = forwarding(|mut client, server| async move {
            let server = async move {
                let mut server = server;
                server.write_all(&vec![7u8; 1 << 20]).await.unwrap();
                reset_on_close(&server);
            };
            let slow_client = async {
                let mut buffer = vec![0u8; 16 << 10];
                loop {
                    match client.read(&mut buffer).await {
                        Ok(0) => return "a clean end of stream",
                        Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {
                            return "a reset";
                        }
                        Err(error) => panic!("{error}"),
                    }
                }
            };
            let ((), seen) = tokio::join!(server, slow_client);
            assert_eq!(seen, "a reset");
        })
        .await;
        assert!(
            matches!(
                end,
                SessionEnd::Failed {
                    side: Side::Server,
                    ..
                }
            ),
            "{end:?}"
        );
    }

    /// Every open session holds this future: an idle connection's memory is mostly its size
    /// (docs/benchmarks.md, RSS with idle connections). Its two pumps must be stored once, inside
    /// the join, not also as locals moved into it (which cost about 900 bytes per session).
    #[tokio::test(flavor = "current_thread")]
    async fn a_sessions_forwarding_state_holds_each_pump_once() {
        let (_client, client_near) = connected().await;
        let (server_near, _server) = connected().await;
        let zero = AtomicU64::new(0);
        let activity = Activity::new();
        let one_pump = std::mem::size_of_val(&pump(
            (&client_near, Side::Client),
            &server_near,
            false,
            &activity,
            &zero_flag(),
            &zero,
            &zero,
        ));
        let (cancel, timeouts) = (CancellationToken::new(), Timeouts::default());
        let counters = SessionCounters {
            client_to_server: [&zero, &zero, &zero, &zero],
            server_to_client: [&zero, &zero, &zero, &zero],
            spliced: &zero,
        };
        let forwarding = forward(
            &client_near,
            &server_near,
            false,
            false,
            &timeouts,
            &cancel,
            counters,
        );
        let whole = std::mem::size_of_val(&forwarding);
        // Two pumps, plus the watchdog, the cancellation wait and the counters: less than four
        // pumps' worth. Stored twice, the pumps alone would be four.
        assert!(
            whole < 4 * one_pump,
            "forward's state is {whole} bytes for pumps of {one_pump}"
        );
    }

    fn zero_flag() -> AtomicBool {
        AtomicBool::new(false)
    }
}
