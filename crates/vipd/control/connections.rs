//! How the control server accepts and serves connections: how many at once, how long a client
//! may take to send a request, and who makes room at the cap.
//!
//! The control server shares the process's file descriptors with the proxy, so connections are
//! capped; without that, anyone who can reach `control.listen` could make the proxy's accept(2)
//! fail with EMFILE. A cap alone hands the server to whoever holds its slots, though: 64 silent
//! clients, or a few that send a byte a second, would lock the operator out of `/status` and the
//! admin API. So a request must arrive within deadlines of its own (head, then body), and at the
//! cap a new connection is not queued behind the slow ones: the connection that has waited
//! longest for a request is closed to admit it (docs/design/architecture.md, The control
//! server). A connection whose request is being answered is never closed to make room.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// Connections served at once. Each costs a file descriptor the proxy might want; 64 is far more
/// than the operators, dashboards and scrapers of one node need at a time.
pub const MAX_CONNECTIONS: usize = 64;
/// From the moment a connection waits for a request (accepted, or its last answer sent) until
/// the request's head is complete. curl, a browser or a scraper sends its head in one segment;
/// 5 s leaves room for a slow link and bounds how long a silent client holds a slot. It is also
/// the keep-alive idle time: the dashboard polls every 2 s and keeps its connection.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// From the head until the whole body has arrived: the admin bodies are a few dozen bytes
/// ([`super::MAX_BODY_BYTES`] at most), so only a client trickling bytes on purpose needs longer.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// No byte moved either way for this long closes a connection: a client that stops reading its
/// answer (the head and body deadlines cover the request).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection is closed this long after it was accepted, whatever it does, so no client keeps
/// one forever by keeping it busy. Browsers reconnect.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// At the cap, a connection waiting for a request is closed to make room only once it has waited
/// this long. A client's request follows its connect within a round trip, so a newcomer is heard
/// before it can be the one to go; and clients that reconnect as soon as they are closed make the
/// server cycle through at most `MAX_CONNECTIONS` connections per 50 ms instead of as fast as
/// it can accept.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(50);
/// Connections the kernel completes and queues while the server is not accepting (it pauses at
/// the cap until a slot can be freed). A full queue drops the next SYN, and a dropped SYN costs
/// the client a whole retransmission timeout (1 s): 128 (tokio's default) let 200 reconnecting
/// slow clients delay the operator's `curl` by a second. Room for every slow client of that
/// scale costs nothing until used; the kernel caps it at `net.core.somaxconn` (4096).
pub const ACCEPT_BACKLOG: u32 = 1024;
/// After the shutdown signal, how long requests in flight may take before the server stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How many connections the control server holds and how long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; at the cap, the one waiting longest for a request makes room.
    pub max_connections: usize,
    /// Time for a request's head, counted from when the connection starts waiting for one.
    pub request_head_timeout: Duration,
    /// Time for a request's body, counted from its head.
    pub request_body_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// A connection is closed this long after it was accepted.
    pub max_lifetime: Duration,
    /// After the shutdown signal, how long requests in flight may take before the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            request_head_timeout: REQUEST_HEAD_TIMEOUT,
            request_body_timeout: REQUEST_BODY_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_lifetime: MAX_LIFETIME,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Accepts and serves connections until `shutdown` completes, then lets requests in flight
/// finish for at most [`ConnectionLimits::shutdown_grace`]; returns whether they all did.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let open = Arc::new(OpenConnections::default());
    let stopping = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            stream = accept(&listener) => stream,
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = open.make_room(limits.max_connections.max(1)) => {}
        }
        let member = open.join();
        let connection = Connection {
            stream: GuardedStream::new(stream, limits),
            router: router.clone(),
            limits,
            member,
            stopping: stopping.clone(),
        };
        connections.spawn(connection.serve());
        while connections.try_join_next().is_some() {}
        // Lets the new connection read its request (already in the socket buffer) before the
        // next accept could make it the one to close: a flood of connects must not evict
        // everybody before they are heard.
        tokio::task::yield_now().await;
    }
    stopping.cancel();
    drop(listener);
    let finished = async { while connections.join_next().await.is_some() {} };
    // Dropping the set aborts the connections still open after the grace period.
    tokio::time::timeout(limits.shutdown_grace, finished)
        .await
        .is_ok()
}

/// The next connection; on EMFILE and friends, backs off instead of spinning.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => return stream,
            Err(error) => {
                tracing::warn!(%error, "control server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One accepted connection and what it needs to serve its requests.
struct Connection {
    stream: GuardedStream,
    router: axum::Router,
    limits: ConnectionLimits,
    member: Member,
    stopping: CancellationToken,
}

impl Connection {
    async fn serve(self) {
        let Self {
            stream,
            router,
            limits,
            member,
            stopping,
        } = self;
        let evicted = member.evicted.clone();
        let member = Arc::new(member);
        let router = TowerToHyperService::new(router);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let answering = Arc::clone(&member).answering();
            let request = request.map(|body| DeadlineBody::new(body, limits.request_body_timeout));
            let answer = router.call(request);
            async move {
                let response = answer.await;
                drop(answering);
                response
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.request_head_timeout);
        let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
        tokio::select! {
            // Errors are the client's (a reset, a timeout, garbage): nothing to log at info.
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "control connection ended");
                }
            }
            () = evicted.cancelled() => {}
            () = stopping.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// The connections open now, and for each whether it waits for a request (and since when).
#[derive(Default)]
struct OpenConnections {
    table: Mutex<ConnectionTable>,
    /// Signalled when a connection closes or finishes an answer: one may make room now.
    changed: Notify,
}

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

struct Entry {
    /// When it started waiting for a request; `None` while a request is being answered.
    waiting_since: Option<Instant>,
    evict: CancellationToken,
}

impl OpenConnections {
    fn table(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        // A panic while holding the lock cannot leave the table half-updated: every update is
        // one insert, remove or field write.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once fewer than `cap` connections are open: at once below the cap; at the cap
    /// after closing the connection that has waited longest for a request (once it has waited
    /// [`EVICTABLE_AFTER`]), or, if every one is being answered, once one is done.
    async fn make_room(&self, cap: usize) {
        loop {
            let changed = self.changed.notified();
            let mut changed = pin!(changed);
            changed.as_mut().enable();
            let evictable_at = {
                let mut table = self.table();
                if table.entries.len() < cap {
                    return;
                }
                let longest_waiting = table
                    .entries
                    .iter()
                    .filter_map(|(id, entry)| entry.waiting_since.map(|since| (since, *id)))
                    .min();
                match longest_waiting {
                    Some((since, id)) if since.elapsed() >= EVICTABLE_AFTER => {
                        if let Some(entry) = table.entries.remove(&id) {
                            entry.evict.cancel();
                        }
                        return;
                    }
                    Some((since, _)) => Some(since + EVICTABLE_AFTER),
                    None => None,
                }
            };
            match evictable_at {
                Some(evictable_at) => tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(evictable_at) => {}
                },
                None => changed.await,
            }
        }
    }

    fn join(self: &Arc<Self>) -> Member {
        let evicted = CancellationToken::new();
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        table.entries.insert(
            id,
            Entry {
                waiting_since: Some(Instant::now()),
                evict: evicted.clone(),
            },
        );
        Member {
            open: Arc::clone(self),
            id,
            evicted,
        }
    }

    fn set_waiting_since(&self, id: u64, waiting_since: Option<Instant>) {
        if let Some(entry) = self.table().entries.get_mut(&id) {
            entry.waiting_since = waiting_since;
        }
        if waiting_since.is_some() {
            self.changed.notify_waiters();
        }
    }
}

/// A connection's place in [`OpenConnections`]; leaving it (on drop) frees the place.
struct Member {
    open: Arc<OpenConnections>,
    id: u64,
    /// Cancelled when the connection is closed to make room for a new one.
    evicted: CancellationToken,
}

impl Member {
    /// Marks the connection as answering a request until the returned guard is dropped.
    fn answering(self: Arc<Self>) -> Answering {
        self.open.set_waiting_since(self.id, None);
        Answering(self)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.open.table().entries.remove(&self.id);
        self.open.changed.notify_waiters();
    }
}

/// While alive, the connection is answering a request and is not closed to make room.
struct Answering(Arc<Member>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0
            .open
            .set_waiting_since(self.0.id, Some(Instant::now()));
    }
}

/// A request body that fails once it has not arrived in full by its deadline (the handler then
/// answers 400 and the connection closes).
struct DeadlineBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(context) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        ready!(this.deadline.as_mut().poll(context));
        Poll::Ready(Some(Err(format!(
            "request body not complete within {:?}",
            this.timeout
        )
        .into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection that fails with `TimedOut` once idle too long or too old.
struct GuardedStream {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    end_of_life: Pin<Box<Sleep>>,
}

impl GuardedStream {
    fn new(stream: TcpStream, limits: ConnectionLimits) -> Self {
        Self {
            stream,
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            idle_timeout: limits.idle_timeout,
            end_of_life: Box::pin(tokio::time::sleep(limits.max_lifetime)),
        }
    }

    fn made_progress(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Called when the stream would block: an error once the idle or the lifetime deadline has
    /// passed (the sleeps register the waker, so a silent peer is noticed without traffic).
    fn poll_idle(&mut self, context: &mut Context<'_>) -> Poll<io::Error> {
        if self.end_of_life.as_mut().poll(context).is_ready() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "control connection open for too long",
            ));
        }
        ready!(self.idle.as_mut().poll(context));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "control connection idle for too long",
        ))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        match Pin::new(&mut this.stream).poll_read(context, buffer) {
            Poll::Ready(result) => {
                if buffer.filled().len() > before {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(context, data) {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(context, buffers) {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
