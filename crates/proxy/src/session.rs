//! One client session: optional PROXY header from the client, server selection with queueing,
//! connection with retries and redispatch, optional PROXY header to the server, then forwarding.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backend::{Backend, Pick, Server, ServerSlot};
use crate::config::{ProxyProtocol, TcpKeepalive, Timeouts};
use crate::forward::{
    SessionCounters, SessionEnd, Side, forward, read_waiting, send_now, write_all,
};
use crate::frontend::FrontendShared;
use crate::limit::LimitPermit;
use crate::proxy_protocol::{self, MAX_HEADER_LEN, ProxyHeader, ProxyHeaderError};
use crate::resources::is_local_shortage;
use crate::session_log::{ConnectTimings, Outcome, SessionRecord, termination};
use crate::session_threads::LoadShare;

/// Why a session ended before forwarding; logged at debug level and counted where it happens,
/// and in the session log as a refusal (`session_log`).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("PROXY header from {client}: {source}")]
    ProxyHeader {
        client: SocketAddr,
        source: ProxyHeaderError,
    },
    #[error("PROXY header from {client}: {reason}")]
    ProxyHeaderIo { client: SocketAddr, reason: String },
    #[error("PROXY header from {client}: timed out")]
    ProxyHeaderTimeout { client: SocketAddr },
    #[error("reading from client {client}: {source}")]
    ClientRead {
        client: SocketAddr,
        source: io::Error,
    },
    #[error("backend {backend}: no usable server")]
    NoServer { backend: String },
    #[error("backend {backend}: all servers full and the queue is full")]
    QueueFull { backend: String },
    #[error("backend {backend}: no server slot freed within the queue timeout")]
    QueueTimeout { backend: String },
    #[error("backend {backend}: connecting to server {server} failed: {source}")]
    ConnectFailed {
        backend: String,
        server: String,
        source: io::Error,
    },
    #[error("backend {backend}: no local resources to connect to server {server}: {source}")]
    LocalShortage {
        backend: String,
        server: String,
        source: io::Error,
    },
}

/// An accepted client connection and what it needs.
pub struct Accepted {
    pub client: TcpStream,
    pub peer: SocketAddr,
    pub accept_proxy: bool,
    pub frontend: Arc<FrontendShared>,
    pub backend: Arc<Backend>,
    /// Frontend and global connection-limit permits, released when the session ends.
    pub permits: (LimitPermit, LimitPermit),
    /// The session counted on its thread, for the choice of thread for the next ones.
    pub load: LoadShare,
    /// How long the client may take to send its PROXY header.
    pub proxy_header_timeout: Duration,
}

/// Increments a gauge now, decrements it on drop.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn run(mut accepted: Accepted) {
    let frontend = Arc::clone(&accepted.frontend);
    let _current = Gauge::enter(&frontend.sessions_current);
    frontend.sessions_total.fetch_add(1, Ordering::Relaxed);
    let mut record = SessionRecord::new(
        accepted.peer,
        Arc::clone(&accepted.frontend),
        Arc::clone(&accepted.backend),
    );
    let outcome = serve(&mut accepted, &mut record).await;
    match &outcome {
        Ok(SessionEnd::Closed) => {}
        Ok(SessionEnd::TimedOut {
            timeout,
            half_closed_by,
        }) => {
            let half_closed_by = half_closed_by.map(Side::name);
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, timeout, half_closed_by, "session timed out");
        }
        Ok(SessionEnd::Cancelled) => {
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, "session cut");
        }
        Ok(SessionEnd::Failed { side, error }) => {
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, side = side.name(), %error, "session failed, both sides reset");
        }
        Err(error) => tracing::debug!(frontend = %frontend.name, %error, "session refused"),
    }
    record.log(outcome.as_ref().err());
    // The connection-limit permits go back only now, with the sockets closed.
    drop(accepted.client);
    drop(accepted.permits);
    drop(accepted.load);
}

/// The client's address and the one it connected to (if a PROXY header said so), and payload
/// bytes that came with the header.
type Origin = (SocketAddr, Option<SocketAddr>, Vec<u8>);

async fn client_origin(accepted: &mut Accepted) -> Result<Origin, SessionError> {
    if !accepted.accept_proxy {
        // What the client sent already goes to the server with the connection (connect_to).
        let early = read_waiting(&accepted.client).map_err(|source| SessionError::ClientRead {
            client: accepted.peer,
            source,
        })?;
        return Ok((accepted.peer, None, early));
    }
    let header = tokio::time::timeout(accepted.proxy_header_timeout, read_proxy_header(accepted))
        .await
        .unwrap_or(Err(SessionError::ProxyHeaderTimeout {
            client: accepted.peer,
        }));
    match header {
        Ok((
            ProxyHeader::Proxied {
                source,
                destination,
            },
            early,
        )) => Ok((source, Some(destination), early)),
        Ok((ProxyHeader::Local, early)) => Ok((accepted.peer, None, early)),
        Err(error) => {
            accepted
                .frontend
                .proxy_header_errors
                .fetch_add(1, Ordering::Relaxed);
            Err(error)
        }
    }
}

async fn serve(
    accepted: &mut Accepted,
    record: &mut SessionRecord,
) -> Result<SessionEnd, SessionError> {
    let (frontend, backend) = (&*record.frontend, &*record.backend);
    // Hard stop needs no watching here: it ends the session threads, and with their runtimes
    // every session on them. Forwarding watches the server's token only.
    let (source, destination, early) = client_origin(accepted).await?;
    if source != accepted.peer {
        (record.client, record.via) = (source, Some(accepted.peer));
    }

    let shared = Arc::clone(&backend.shared);
    let _backend_current = Gauge::enter(&shared.sessions_current);
    shared.sessions_total.fetch_add(1, Ordering::Relaxed);
    // The address the client connected to: from its PROXY header, else asked of the socket only
    // when a header needs it (one syscall less per connection otherwise).
    let destination =
        || destination.unwrap_or_else(|| accepted.client.local_addr().unwrap_or(accepted.peer));
    let header = match backend.config.send_proxy {
        ProxyProtocol::None => Vec::new(),
        ProxyProtocol::V1 => proxy_protocol::encode_v1(source, destination()),
        ProxyProtocol::V2 => proxy_protocol::encode_v2(source, destination()),
    };
    let early_bytes = early.len() as u64;
    let first_bytes = if header.is_empty() {
        early
    } else {
        let mut first_bytes = header;
        first_bytes.extend(early);
        first_bytes
    };

    let (server_stream, slot) = connect(
        backend,
        &accepted.client,
        source.ip(),
        FirstBytes {
            bytes: &first_bytes,
            carry_client_payload: early_bytes > 0,
        },
        &mut record.timings,
    )
    .await?;
    // The record holds the session's handle on the server; `slot` holds its place.
    let server: &Server = record.server.insert(Arc::clone(&slot.server));
    // connect_to turned quick ACKs off for the first bytes; forwarding turns them back on.
    let server_acks_delayed = !first_bytes.is_empty();
    // Not held through the session: up to 16 KiB (`forward::read_waiting`).
    drop(first_bytes);
    let cancel = server.session_token();
    // Listed for the admin API until forwarding ends; its byte counts are the session's.
    let registered = slot.server.sessions.register(
        accepted.load.thread(),
        record.client,
        Arc::clone(&record.frontend),
        cancel.clone(),
    );
    let live = &*registered.session;
    if early_bytes > 0 {
        for counter in [
            &frontend.bytes_in,
            &shared.bytes_in,
            &server.counters.bytes_in,
            &live.bytes_in,
        ] {
            counter.fetch_add(early_bytes, Ordering::Relaxed);
        }
    }

    let forwarding = forward(
        &accepted.client,
        &server_stream,
        early_bytes > 0,
        server_acks_delayed,
        &backend.config.timeout,
        &cancel,
        SessionCounters {
            client_to_server: [
                &frontend.bytes_in,
                &shared.bytes_in,
                &server.counters.bytes_in,
                &live.bytes_in,
            ],
            server_to_client: [
                &frontend.bytes_out,
                &shared.bytes_out,
                &server.counters.bytes_out,
                &live.bytes_out,
            ],
            spliced: &frontend.bytes_spliced,
        },
    );
    let keepalive = backend.config.tcp_keepalive.as_ref();
    let end = tokio::select! {
        end = forwarding => end,
        never = keepalive_later(&server_stream, keepalive) => match never {},
    };
    let (killed, (bytes_in, bytes_out)) = (live.was_killed(), live.bytes());
    record.bytes_in.store(bytes_in, Ordering::Relaxed);
    record.bytes_out.store(bytes_out, Ordering::Relaxed);
    drop(registered);
    drop(slot);
    record.termination = Some(termination(Outcome::Forwarded {
        end: &end,
        server_state: server,
        bytes_in: record.bytes_in.load(Ordering::Relaxed),
        killed,
    }));
    Ok(end)
}

/// Sessions shorter than this never turn keepalive on for their server socket.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(1);

/// Turns TCP keepalive on for the server socket once the session has lasted [`KEEPALIVE_AFTER`]
/// (the client socket has it from the listener, at no cost: `frontend::KeepaliveOnListener`). A
/// probe comes only after `idle` without traffic, so a shorter session could never send one, and
/// most sessions (requests with `Connection: close`) skip four system calls. Never returns.
async fn keepalive_later(
    server: &TcpStream,
    keepalive: Option<&TcpKeepalive>,
) -> std::convert::Infallible {
    if let Some(keepalive) = keepalive {
        tokio::time::sleep(KEEPALIVE_AFTER).await;
        if let Err(error) = keepalive.apply(&socket2::SockRef::from(server)) {
            tracing::debug!(%error, "cannot set TCP keepalive on the server socket");
        }
    }
    std::future::pending().await
}

/// Sends the rest of the first bytes (PROXY header, the client's early bytes) that the connect
/// did not take, within `limit`: a server that accepts but never reads must not hold the session
/// (and its slot) forever before forwarding even starts.
async fn write_first_bytes(server: &TcpStream, rest: &[u8], limit: Duration) -> io::Result<()> {
    if rest.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(limit, write_all(server, rest))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server did not take the first bytes within the connect timeout",
            ))
        })
}

/// Reads the client's PROXY header; returns it and any payload bytes read past it.
async fn read_proxy_header(
    accepted: &mut Accepted,
) -> Result<(ProxyHeader, Vec<u8>), SessionError> {
    let client = accepted.peer;
    let mut buffer = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let read = accepted.client.read(&mut chunk).await.map_err(|error| {
            SessionError::ProxyHeaderIo {
                client,
                reason: error.to_string(),
            }
        })?;
        if read == 0 {
            return Err(SessionError::ProxyHeaderIo {
                client,
                reason: "closed before the header ended".into(),
            });
        }
        buffer.extend_from_slice(&chunk[..read]);
        match proxy_protocol::parse(&buffer) {
            Ok(Some((header, length))) => return Ok((header, buffer.split_off(length))),
            Ok(None) if buffer.len() < MAX_HEADER_LEN => {}
            Ok(None) => {
                return Err(SessionError::ProxyHeader {
                    client,
                    source: ProxyHeaderError::TooLong {
                        length: buffer.len(),
                    },
                });
            }
            Err(source) => return Err(SessionError::ProxyHeader { client, source }),
        }
    }
}

/// The pause before another attempt on a server that refused this session, when no other
/// server is left: HAProxy's one-second turn-around, never longer than `timeout.connect`.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// What a session sends a server with the connection: the PROXY header and what the client sent
/// already.
#[derive(Clone, Copy)]
struct FirstBytes<'a> {
    bytes: &'a [u8],
    /// The client's payload is among them: the server may act on it, so a reset after sending
    /// them is the client's to see, never a reason to send them to another server.
    carry_client_payload: bool,
}

/// Connects to a server and sends it `first_bytes` ([`try_server`]), retrying up to `retries`
/// times. Every failed attempt (timed out, refused, reset before the server's first byte)
/// excludes its server for the session's next attempts while another is left (HAProxy's
/// `option redispatch 1`), and counts toward marking it down (`health.error_limit`). See
/// docs/design/proxy.md, Connect, retries and redispatch. `timings` gets the time queued and
/// connecting and the retries, for the session log.
async fn connect(
    backend: &Backend,
    client_stream: &TcpStream,
    client: IpAddr,
    first_bytes: FirstBytes<'_>,
    timings: &mut ConnectTimings,
) -> Result<(TcpStream, ServerSlot), SessionError> {
    let shared = &backend.shared;
    let retries = backend.config.retries;
    let error_limit = backend
        .config
        .health
        .as_ref()
        .map_or(0, |health| health.error_limit);
    let mut excluded = Vec::new();
    let mut refused = false;
    let mut attempt = 0u32;
    loop {
        let queued_since = Instant::now();
        let picked = pick_for_attempt(backend, client, &excluded, refused).await;
        timings.add_queued(queued_since.elapsed());
        let (index, slot) = picked?;
        let server = &slot.server;
        let timeouts = &backend.config.timeout;
        let tried = try_server(server, client_stream, first_bytes, timeouts, timings).await;
        let failure = match tried {
            Ok(stream) => {
                server.record_connect_success();
                return Ok((stream, slot));
            }
            Err(error) => error,
        };
        if is_local_shortage(&failure) {
            // Not the server's fault, and a retry now would meet the same shortage.
            return Err(SessionError::LocalShortage {
                backend: backend.config.name.clone(),
                server: server.name.clone(),
                source: failure,
            });
        }
        server
            .counters
            .connect_errors
            .fetch_add(1, Ordering::Relaxed);
        shared.connect_errors.fetch_add(1, Ordering::Relaxed);
        if server.record_connect_failure(error_limit) {
            tracing::warn!(backend = %backend.config.name, server = %server.name, error = %failure, error_limit, "server marked down: connection attempts of client traffic failed in a row");
        }
        if attempt >= retries {
            return Err(SessionError::ConnectFailed {
                backend: backend.config.name.clone(),
                server: server.name.clone(),
                source: failure,
            });
        }
        attempt += 1;
        timings.retries = attempt;
        tracing::debug!(backend = %backend.config.name, server = %server.name, error = %failure, attempt, "connect failed, retrying");
        shared.retries.fetch_add(1, Ordering::Relaxed);
        server.counters.retries.fetch_add(1, Ordering::Relaxed);
        refused = failure.kind() != io::ErrorKind::TimedOut;
        if !excluded.contains(&index) {
            excluded.push(index);
            shared.redispatches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One attempt on `server`: connect within `timeout.connect`, send `first_bytes` (what
/// [`connect_to`] could not send at once goes with [`write_first_bytes`]), then, unless they
/// carried the client's payload, [`first_sign`].
async fn try_server(
    server: &Server,
    client: &TcpStream,
    first_bytes: FirstBytes<'_>,
    timeouts: &Timeouts,
    timings: &mut ConnectTimings,
) -> io::Result<TcpStream> {
    let connecting_since = Instant::now();
    let connecting = connect_to(server.address, first_bytes.bytes, &server.connects_at_once);
    let connected = tokio::time::timeout(timeouts.connect, connecting).await;
    timings.add_connecting(connecting_since.elapsed());
    let (stream, sent) =
        connected.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    write_first_bytes(&stream, &first_bytes.bytes[sent..], timeouts.connect).await?;
    if !first_bytes.carry_client_payload {
        first_sign(&stream, client, timeouts.connect).await?;
    }
    Ok(stream)
}

/// Waits for the server's first sign before forwarding starts, so that a connection it resets
/// before answering (one that sat in the accept queue of a server that was killed) is a failed
/// attempt, retried elsewhere with the same first bytes, instead of a reset for the client.
/// Only a socket error before any answer counts: data (even followed by a reset), a FIN, the
/// client sending more, or `limit` passing hand the session to forwarding. Only sessions whose
/// first bytes carry no client payload (none, or only a PROXY header) wait here: a server may
/// read part of a payload, act on it and reset with the rest unread, and that request must not
/// reach a second server (HAProxy does not replay TCP data either). A client that sends more
/// ends the wait, and nothing is retried after that.
async fn first_sign(server: &TcpStream, client: &TcpStream, limit: Duration) -> io::Result<()> {
    let server_sign = async {
        let ready = server.ready(Interest::READABLE | Interest::ERROR).await?;
        // EPOLLERR only: a FIN without an error needs no system call here.
        if ready.is_error() {
            error_before_any_answer(server)
        } else {
            Ok(())
        }
    };
    tokio::select! {
        biased;
        sign = server_sign => sign,
        _ = client.ready(Interest::READABLE) => Ok(()),
        () = tokio::time::sleep(limit) => Ok(()),
    }
}

/// The error of a server socket that reported one, unless the server sent bytes first: those
/// are an answer, even with a reset after them (the kernel keeps received bytes readable before
/// it reports the reset). A peek that finds no bytes returns the pending error itself.
fn error_before_any_answer(server: &TcpStream) -> io::Result<()> {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    match socket2::SockRef::from(server).peek(&mut byte) {
        Ok(read) if read > 0 => Ok(()),
        Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
        _ => server.take_error()?.map_or(Ok(()), Err),
    }
}

/// A server slot for the next attempt. When the only server left already refused this session,
/// waits [`RETRY_BACKOFF`] first: a server that restarts needs a moment, and retrying at once
/// would spend every retry within a millisecond. A timed-out attempt has waited already.
async fn pick_for_attempt(
    backend: &Backend,
    client: IpAddr,
    excluded: &[usize],
    refused: bool,
) -> Result<(usize, ServerSlot), SessionError> {
    let (index, slot) = wait_for_slot(backend, client, excluded).await?;
    if !(refused && excluded.contains(&index)) {
        return Ok((index, slot));
    }
    // The slot goes back during the pause: other sessions may use the server meanwhile.
    drop(slot);
    tokio::time::sleep(RETRY_BACKOFF.min(backend.config.timeout.connect)).await;
    wait_for_slot(backend, client, excluded).await
}

/// Whether connects to a server finish inside connect(2). To an address of this host they do:
/// the kernel runs the whole handshake over loopback before the call returns, so the first bytes
/// can be sent right away rather than after the socket's first readiness event, which comes only
/// with the next turn of the thread's event loop. To a remote server they never do, and the send
/// would only answer EAGAIN: after a few misses in a row only one connection in 64 tries, so that
/// a server that becomes local is still noticed.
#[derive(Debug, Default)]
pub struct ConnectsAtOnce {
    /// Connections since one last finished at once (wrapping).
    misses: AtomicU32,
}

impl ConnectsAtOnce {
    const TRIES: u32 = 4;
    const PROBE_EVERY: u32 = 64;

    fn worth_trying(&self) -> bool {
        self.misses.load(Ordering::Relaxed) < Self::TRIES
            || self
                .misses
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(Self::PROBE_EVERY)
    }

    fn record(&self, at_once: bool) {
        if !at_once {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else if self.misses.load(Ordering::Relaxed) != 0 {
            // Written only on a change: every session on every thread reads this cache line.
            self.misses.store(0, Ordering::Relaxed);
        }
    }
}

/// Connects to `address` and sends what it takes of `first_bytes` (a PROXY header, what the
/// client sent already) without waiting, if connects to it finish at once ([`ConnectsAtOnce`]):
/// a send in SYN-SENT answers EAGAIN on a non-blocking socket, in ESTABLISHED it means the
/// handshake is done. Otherwise waits for the socket to become writable, as tokio's
/// `TcpStream::connect` does, less one system call per connection: whether the handshake failed
/// is read from the readiness event (a failed connect reports EPOLLERR or EPOLLHUP, which tokio
/// shows as write-closed) instead of asking the socket for SO_ERROR after every success too.
async fn connect_to(
    address: SocketAddr,
    first_bytes: &[u8],
    at_once: &ConnectsAtOnce,
) -> io::Result<(TcpStream, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    // Forwarding small writes at once matters more than packet count for request/response
    // traffic; set before connecting, so that it holds for the first bytes too. The client's
    // socket has TCP_NODELAY from the listener (`frontend::bind`).
    let _ = socket.set_tcp_nodelay(true);
    if !first_bytes.is_empty() {
        // Bytes to send at once: let the handshake's last ACK wait for them and ride along, one
        // segment less (HAProxy's `option tcp-smart-connect`). Forwarding turns quick ACKs back
        // on when the server first answers (`forward`, `server_acks_delayed`).
        let _ = socket.set_tcp_quickack(false);
    }
    match socket.connect(&address.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    if !first_bytes.is_empty() && at_once.worth_trying() {
        // A failed handshake shows here as the connect's error (ECONNREFUSED, ...).
        let sent = send_now(&stream, first_bytes, false)?;
        at_once.record(sent > 0);
        if sent > 0 {
            return Ok((stream, sent));
        }
    }
    let ready = stream.ready(tokio::io::Interest::WRITABLE).await?;
    if (ready.is_write_closed() || ready.is_error())
        && let Some(error) = stream.take_error()?
    {
        return Err(error);
    }
    Ok((stream, 0))
}

/// Picks a server with a free slot, waiting in the backend's bounded FIFO queue (up to
/// `timeout.queue`) while every usable server is full. While anyone waits, a newcomer queues
/// behind them rather than taking a slot freed for the head (docs/design/proxy.md, Queue).
async fn wait_for_slot(
    backend: &Backend,
    client: IpAddr,
    excluded: &[usize],
) -> Result<(usize, ServerSlot), SessionError> {
    let shared = &backend.shared;
    let queue = &shared.queue;
    let refuse = |error: SessionError| {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        Err(error)
    };
    let name = || backend.config.name.clone();
    // The usual case: nobody waits and a server has a free slot; the queue's lock is not taken.
    if queue.is_empty() {
        match backend.pick(client, excluded) {
            Pick::Server { index, slot } => return Ok((index, slot)),
            Pick::NoServer => return refuse(SessionError::NoServer { backend: name() }),
            Pick::AllFull => {}
        }
    } else if backend.usable_servers() == 0 {
        // No server to wait for: waiters ahead are being refused too.
        return refuse(SessionError::NoServer { backend: name() });
    }
    if queue.len() >= backend.config.max_queue {
        return refuse(SessionError::QueueFull { backend: name() });
    }
    let ticket = queue.join();
    let deadline = Instant::now() + backend.config.timeout.queue_wait();
    // The head looks at once: a slot freed while the queue was empty woke nobody.
    let mut may_pick = ticket.is_first();
    loop {
        if may_pick {
            ticket.claim_wake();
            match backend.pick(client, excluded) {
                Pick::Server { index, slot } => return Ok((index, slot)),
                Pick::NoServer => return refuse(SessionError::NoServer { backend: name() }),
                Pick::AllFull => {}
            }
        }
        if tokio::time::timeout_at(deadline, ticket.woken())
            .await
            .is_err()
        {
            return refuse(SessionError::QueueTimeout { backend: name() });
        }
        may_pick = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_server_that_never_reads_fails_the_first_write_at_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_never_reads, _) = listener.accept().await.unwrap();
        // More than the socket buffers of both ends hold.
        let first_bytes = vec![0u8; 64 << 20];
        let limit = Duration::from_millis(300);
        let written = tokio::time::timeout(
            Duration::from_secs(20),
            write_first_bytes(&server, &first_bytes, limit),
        )
        .await
        .expect("the first write is bounded");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    /// A server that answered and then reset (linger 0, or a close with the request unread)
    /// has answered: its bytes are forwarded, the request is not sent to another server.
    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_followed_by_a_reset_is_an_answer_not_a_failed_attempt() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(client_listener.local_addr().unwrap())
            .await
            .unwrap();
        let server = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut answering, _) = listener.accept().await.unwrap();
        answering.write_all(b"partial").await.unwrap();
        socket2::SockRef::from(&answering)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(answering);
        // Both the answer and the reset have arrived before the proxy looks.
        tokio::time::sleep(Duration::from_millis(50)).await;
        first_sign(&server, &client, Duration::from_secs(5))
            .await
            .expect("an answer, not a failed attempt");
    }

    #[test]
    fn connects_that_never_finish_at_once_are_tried_one_in_64() {
        let at_once = ConnectsAtOnce::default();
        let tried = (0..640)
            .filter(|_| {
                let trying = at_once.worth_trying();
                if trying {
                    at_once.record(false);
                }
                trying
            })
            .count();
        // The first four, then one in 64 of the rest.
        assert!((12..=14).contains(&tried), "{tried}");
    }

    #[test]
    fn one_connect_that_finishes_at_once_makes_every_connection_try_again() {
        let at_once = ConnectsAtOnce::default();
        for _ in 0..10 {
            if at_once.worth_trying() {
                at_once.record(false);
            }
        }
        assert!(!at_once.worth_trying() || !at_once.worth_trying());
        at_once.record(true);
        assert!((0..10).all(|_| at_once.worth_trying()));
    }
}
