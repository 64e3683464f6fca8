//! One client session: optional PROXY header from the client, server selection with queueing,
//! connection with retries and redispatch, optional PROXY header to the server, then forwarding.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::backend::{Backend, Pick, ServerSlot};
use crate::config::ProxyProtocol;
use crate::forward::{SessionEnd, forward, write_all};
use crate::frontend::FrontendShared;
use crate::proxy_protocol::{self, MAX_HEADER_LEN, ProxyHeader, ProxyHeaderError};
use crate::session_threads::LoadShare;

/// How long a client may take to send its PROXY header (`accept_proxy`).
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// An accepted client connection and what it needs.
pub struct Accepted {
    pub client: TcpStream,
    pub peer: SocketAddr,
    pub accept_proxy: bool,
    pub frontend: Arc<FrontendShared>,
    pub backend: Arc<Backend>,
    /// Frontend and global connection-limit permits, released when the session ends.
    pub permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    /// The session counted on its thread, for the choice of thread for the next ones.
    pub load: LoadShare,
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
        Ok(SessionEnd::TimedOut { timeout }) => {
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, timeout, "session timed out");
        }
        Ok(SessionEnd::Cancelled) => {
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, "session cut");
        }
        Ok(SessionEnd::Failed(error)) => {
            tracing::debug!(frontend = %frontend.name, client = %accepted.peer, %error, "session failed");
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
        return Ok((accepted.peer, None, Vec::new()));
    }
    let header = tokio::time::timeout(PROXY_HEADER_TIMEOUT, read_proxy_header(accepted))
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
    let (server_stream, slot) = connect(&backend, source.ip()).await?;
    let server = Arc::clone(&slot.server);
    // Forwarding small writes at once matters more than packet count for request/response traffic.
    // The client's socket has TCP_NODELAY from the listener (`frontend::bind`).
    let _ = server_stream.set_nodelay(true);

    // The address the client connected to: from its PROXY header, else asked of the socket only
    // when a header needs it (one syscall less per connection otherwise).
    let destination =
        || destination.unwrap_or_else(|| accepted.client.local_addr().unwrap_or(accepted.peer));
    let header = match backend.config.send_proxy {
        ProxyProtocol::None => Vec::new(),
        ProxyProtocol::V1 => proxy_protocol::encode_v1(source, destination()),
        ProxyProtocol::V2 => proxy_protocol::encode_v2(source, destination()),
    };
    let mut first_bytes = header;
    first_bytes.extend_from_slice(&early);
    if !first_bytes.is_empty() {
        write_all(&server_stream, &first_bytes)
            .await
            .map_err(|source| SessionError::ServerWrite {
                server: server.name.clone(),
                source,
            })?;
        let early = early.len() as u64;
        for counter in [
            &frontend.bytes_in,
            &shared.bytes_in,
            &server.counters.bytes_in,
        ] {
            counter.fetch_add(early, Ordering::Relaxed);
        }
    }

    let cancel = server.session_token();
    let end = forward(
        &accepted.client,
        &server_stream,
        &backend.config.timeout,
        &cancel,
        [
            &frontend.bytes_in,
            &shared.bytes_in,
            &server.counters.bytes_in,
        ],
        [
            &frontend.bytes_out,
            &shared.bytes_out,
            &server.counters.bytes_out,
        ],
        &frontend.bytes_spliced,
    )
    .await;
    drop(slot);
    Ok(end)
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

/// Connects to a server, retrying up to `retries` times. A refused connection (nothing listens)
/// and the last retry go to another server (redispatch); a timed-out one is retried on the same
/// server, which may only be busy.
async fn connect(
    backend: &Backend,
    client: IpAddr,
) -> Result<(TcpStream, ServerSlot), SessionError> {
    let shared = &backend.shared;
    let retries = backend.config.retries;
    let mut excluded = Vec::new();
    let mut attempt = 0u32;
    loop {
        let (index, slot) = wait_for_slot(backend, client, &excluded).await?;
        let server = &slot.server;
        let failure =
            match tokio::time::timeout(backend.config.timeout.connect, connect_to(server.address))
                .await
            {
                Ok(Ok(stream)) => return Ok((stream, slot)),
                Ok(Err(error)) => error,
                Err(_) => io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            };
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

/// Connects to `address` as tokio's `TcpStream::connect` does, less one system call per
/// connection: whether the handshake failed is read from the readiness event (a failed connect
/// reports EPOLLERR or EPOLLHUP, which tokio shows as write-closed) instead of asking the socket
/// for SO_ERROR after every success too.
async fn connect_to(address: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    match socket.connect(&address.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    let ready = stream.ready(tokio::io::Interest::WRITABLE).await?;
    if (ready.is_write_closed() || ready.is_error())
        && let Some(error) = stream.take_error()?
    {
        return Err(error);
    }
    Ok(stream)
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
