//! One client session: optional PROXY header from the client, server selection with queueing,
//! connection with retries and redispatch, optional PROXY header to the server, then forwarding.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backend::{Backend, Pick, ServerSlot};
use crate::config::{ProxyProtocol, TcpKeepalive};
use crate::forward::{
    SessionCounters, SessionEnd, Side, forward, read_waiting, send_now, write_all,
};
use crate::frontend::FrontendShared;
use crate::limit::LimitPermit;
use crate::proxy_protocol::{self, MAX_HEADER_LEN, ProxyHeader, ProxyHeaderError};
use crate::resources::is_local_shortage;
use crate::session_threads::LoadShare;

/// Why a session ended before forwarding; logged at debug level and counted where it happens.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("PROXY header from {client}: {source}")]
    ProxyHeader {
        client: SocketAddr,
        source: ProxyHeaderError,
    },
    #[error("PROXY header from {client}: {reason}")]
    ProxyHeaderIo { client: SocketAddr, reason: String },
    #[error("reading from client {client}: {source}")]
    ClientRead {
        client: SocketAddr,
        source: io::Error,
    },
    #[error("backend {backend}: no usable server")]
    NoServer { backend: String },
    #[error("backend {backend}: all servers full and the queue is full")]
    QueueFull { backend: String },
    #[error("backend {backend}: no server slot freed within the connect timeout")]
    QueueTimeout { backend: String },
    #[error("backend {backend}: connecting to server {server} failed: {source}")]
    ConnectFailed {
        backend: String,
        server: String,
        source: io::Error,
    },
    #[error("sending to server {server}: {source}")]
    ServerWrite { server: String, source: io::Error },
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

struct QueueSeat<'a>(&'a AtomicUsize);

impl Drop for QueueSeat<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn run(mut accepted: Accepted) {
    let frontend = Arc::clone(&accepted.frontend);
    let _current = Gauge::enter(&frontend.sessions_current);
    frontend.sessions_total.fetch_add(1, Ordering::Relaxed);
    let outcome = serve(&mut accepted).await;
    match outcome {
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
        .unwrap_or_else(|_| {
            Err(SessionError::ProxyHeaderIo {
                client: accepted.peer,
                reason: "timed out".into(),
            })
        });
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

async fn serve(accepted: &mut Accepted) -> Result<SessionEnd, SessionError> {
    let frontend = Arc::clone(&accepted.frontend);
    let backend = Arc::clone(&accepted.backend);
    // Hard stop needs no watching here: it ends the session threads, and with their runtimes
    // every session on them. Forwarding watches the server's token only.
    let (source, destination, early) = client_origin(accepted).await?;

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

    let (server_stream, slot, sent) = connect(&backend, source.ip(), &first_bytes).await?;
    let server = Arc::clone(&slot.server);
    let first_write = backend.config.timeout.connect;
    write_first_bytes(&server_stream, &first_bytes[sent..], first_write)
        .await
        .map_err(|source| SessionError::ServerWrite {
            server: server.name.clone(),
            source,
        })?;
    // connect_to turned quick ACKs off for the first bytes; forwarding turns them back on.
    let server_acks_delayed = !first_bytes.is_empty();
    // Not held through the session: up to 16 KiB (`forward::read_waiting`).
    drop(first_bytes);
    if early_bytes > 0 {
        for counter in [
            &frontend.bytes_in,
            &shared.bytes_in,
            &server.counters.bytes_in,
        ] {
            counter.fetch_add(early_bytes, Ordering::Relaxed);
        }
    }

    let cancel = server.session_token();
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
            ],
            server_to_client: [
                &frontend.bytes_out,
                &shared.bytes_out,
                &server.counters.bytes_out,
            ],
            spliced: &frontend.bytes_spliced,
        },
    );
    let keepalive = backend.config.tcp_keepalive.as_ref();
    let end = tokio::select! {
        end = forwarding => end,
        never = keepalive_later(&server_stream, keepalive) => match never {},
    };
    drop(slot);
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

/// Connects to a server, retrying up to `retries` times, and sends it what it can take of
/// `first_bytes` at once (see [`connect_to`]); returns how much that was. A refused connection
/// (nothing listens) and the last retry go to another server (redispatch); a timed-out one is
/// retried on the same server, which may only be busy.
async fn connect(
    backend: &Backend,
    client: IpAddr,
    first_bytes: &[u8],
) -> Result<(TcpStream, ServerSlot, usize), SessionError> {
    let shared = &backend.shared;
    let retries = backend.config.retries;
    let mut excluded = Vec::new();
    let mut attempt = 0u32;
    loop {
        let (index, slot) = wait_for_slot(backend, client, &excluded).await?;
        let server = &slot.server;
        let connecting = connect_to(server.address, first_bytes, &server.connects_at_once);
        let failure = match tokio::time::timeout(backend.config.timeout.connect, connecting).await {
            Ok(Ok((stream, sent))) => return Ok((stream, slot, sent)),
            Ok(Err(error)) => error,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
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
        if attempt >= retries {
            return Err(SessionError::ConnectFailed {
                backend: backend.config.name.clone(),
                server: server.name.clone(),
                source: failure,
            });
        }
        attempt += 1;
        tracing::debug!(backend = %backend.config.name, server = %server.name, error = %failure, attempt, "connect failed, retrying");
        shared.retries.fetch_add(1, Ordering::Relaxed);
        server.counters.retries.fetch_add(1, Ordering::Relaxed);
        if failure.kind() == io::ErrorKind::ConnectionRefused || attempt == retries {
            excluded.push(index);
            shared.redispatches.fetch_add(1, Ordering::Relaxed);
        }
    }
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

/// Picks a server with a free slot, waiting in the backend's bounded queue (up to the connect
/// timeout, HAProxy's default `timeout queue`) while every usable server is full.
async fn wait_for_slot(
    backend: &Backend,
    client: IpAddr,
    excluded: &[usize],
) -> Result<(usize, ServerSlot), SessionError> {
    let shared = &backend.shared;
    // The usual case, a server with a free slot, without registering for slot_freed: that is a
    // lock on a Notify every session on every thread shares.
    if let Pick::Server { index, slot } = backend.pick(client, excluded) {
        return Ok((index, slot));
    }
    let deadline = Instant::now() + backend.config.timeout.connect;
    let mut seat: Option<QueueSeat<'_>> = None;
    loop {
        // Registered before looking, so a slot freed in between still wakes us.
        let notified = shared.slot_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let refuse = |error: SessionError| {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            Err(error)
        };
        match backend.pick(client, excluded) {
            Pick::Server { index, slot } => return Ok((index, slot)),
            Pick::NoServer => {
                return refuse(SessionError::NoServer {
                    backend: backend.config.name.clone(),
                });
            }
            Pick::AllFull => {
                if seat.is_none() {
                    if shared.queued.fetch_add(1, Ordering::Relaxed) >= backend.config.max_queue {
                        shared.queued.fetch_sub(1, Ordering::Relaxed);
                        return refuse(SessionError::QueueFull {
                            backend: backend.config.name.clone(),
                        });
                    }
                    seat = Some(QueueSeat(&shared.queued));
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return refuse(SessionError::QueueTimeout {
                        backend: backend.config.name.clone(),
                    });
                }
            }
        }
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
