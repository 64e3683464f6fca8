//! Listeners: binding (IP_FREEBIND, SO_REUSEADDR, one SO_REUSEPORT socket per session thread) and
//! the accept loop with connection limits and accept-error back-off.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::TcpKeepalive;
use crate::engine::Engine;
use crate::limit::Limit;
use crate::session::{self, Accepted};
use crate::session_log::RefusalLog;

/// Listen backlog: clients wait here while a connection limit is reached.
const BACKLOG: i32 = 4096;
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A frontend's settings that change without rebinding.
#[derive(Debug, Clone)]
pub struct FrontendSettings {
    pub backend: String,
    pub accept_proxy: bool,
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub proxy_header_timeout: Duration,
}

/// State of a frontend that outlives configuration snapshots (kept across reloads by name).
#[derive(Debug)]
pub struct FrontendShared {
    pub name: String,
    pub settings: ArcSwap<FrontendSettings>,
    /// `max_connections`, changed in place by a reload.
    pub limit: Arc<Limit>,
    pub sessions_current: AtomicU64,
    pub sessions_total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_spliced: AtomicU64,
    pub proxy_header_errors: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Limits the session log's refusal lines (`session_log`).
    pub refusal_log: RefusalLog,
}

impl FrontendShared {
    pub fn new(name: &str, settings: FrontendSettings, max_connections: usize) -> Self {
        Self {
            name: name.to_owned(),
            settings: ArcSwap::from_pointee(settings),
            limit: Limit::new(max_connections),
            sessions_current: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            bytes_spliced: AtomicU64::new(0),
            proxy_header_errors: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            refusal_log: RefusalLog::default(),
        }
    }
}

/// Binds a listening socket. IP_FREEBIND lets a backup node listen on a VIP it does not hold yet;
/// SO_REUSEADDR lets a restarted daemon bind while old connections linger in TIME_WAIT.
/// TCP_NODELAY (small writes forwarded at once) is set here because Linux copies it to every
/// accepted connection: one system call per connection less than setting it on each.
///
/// SO_REUSEPORT lets each session thread accept on a socket of its own ([`bind_sibling`]), so the
/// kernel hands every connection to one thread. Threads sharing one socket were all woken by each
/// connection and all but one found nothing to accept. SO_REUSEPORT would also let another
/// process of the same user bind the address silently and take a share of the connections, where
/// the operator expects "address in use" (an old HAProxy still running, a second daemon). So the
/// address is first bound once without it: that fails if anything listens there already.
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    if address.port() != 0 {
        drop(listening_socket(address, false)?);
    }
    let socket = listening_socket(address, true)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `address` beside a listener of our own that it overlaps ([`overlaps`]): the same
/// address held by another frontend, or the wildcard of a port one of our specific addresses
/// listens on (or the reverse). [`bind`]'s probe would fail on our own socket; SO_REUSEPORT lets
/// both listen until the old one closes, and the kernel gives each connection to the most
/// specific match, so nothing is split. The probe's guard against another process is lost for
/// this one bind: only a process of our user that bound with SO_REUSEPORT could share it.
pub fn bind_beside_own(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = listening_socket(address, true)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Whether listening on `new` conflicts with a listener on `own` without SO_REUSEPORT: the same
/// port and family, and the same address or either one the wildcard. Port 0 picks a free port.
pub fn overlaps(own: SocketAddr, new: SocketAddr) -> bool {
    new.port() != 0
        && own.port() == new.port()
        && own.is_ipv4() == new.is_ipv4()
        && (own.ip() == new.ip() || own.ip().is_unspecified() || new.ip().is_unspecified())
}

/// One more socket on the address `first` (from [`bind`]) is listening on, for another session
/// thread. The kernel spreads new connections over the sockets by a hash of their addresses.
pub fn bind_sibling(first: &std::net::TcpListener) -> io::Result<std::net::TcpListener> {
    let socket = listening_socket(first.local_addr()?, true)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A bound socket with the options of [`bind`], not yet listening.
fn listening_socket(address: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_tcp_nodelay(true)?;
    if address.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        // `[::]:port` serves IPv6 only, so that `0.0.0.0:port` can be bound next to it.
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

/// The next connection: any, until `stopped` fires; then only those already in the queue
/// (`draining`). `None` once the loop should end.
async fn next_accepted(
    listener: &TcpListener,
    stopped: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    draining: &mut bool,
) -> Option<io::Result<(TcpStream, SocketAddr)>> {
    if !*draining {
        tokio::select! {
            () = stopped => *draining = true,
            accepted = listener.accept() => return Some(accepted),
        }
    }
    accept_queued(listener).await
}

/// A connection already waiting in `listener`'s accept queue, without waiting for one: `None`
/// once the queue is empty.
async fn accept_queued(listener: &TcpListener) -> Option<io::Result<(TcpStream, SocketAddr)>> {
    tokio::select! {
        biased;
        accepted = listener.accept() => Some(accepted),
        () = std::future::ready(()) => None,
    }
}

/// Accepts on session thread `thread` until `stop` is cancelled.
///
/// Connection limits are taken right after accepting, before the session starts: at the limit,
/// the thread holds the one connection it has accepted, unserved, and the clients after it wait
/// in the backlog instead of being accepted and dropped. Taking them before accepting would be
/// wrong here: the socket is this thread's own (SO_REUSEPORT, see [`bind`]), so a thread waiting
/// for a connection of its own could hold the last free permit while another thread's client
/// waits for it.
pub async fn accept_loop(
    listener: std::net::TcpListener,
    thread: usize,
    frontend: Arc<FrontendShared>,
    engine: Arc<Engine>,
    stop: CancellationToken,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(frontend = %frontend.name, %error, "cannot register listener");
            return;
        }
    };
    let mut backoff = Duration::ZERO;
    let mut keepalive = KeepaliveOnListener::default();
    keepalive.follow(&listener, &frontend);
    // One wait for the stop for the whole loop: the token is shared with the other threads'
    // loops, and a wait made afresh per connection would register with it (a lock) every time.
    let mut stopped = std::pin::pin!(stop.cancelled());
    // Once stopped, the connections already in this socket's accept queue are still taken (the
    // kernel resets whatever is queued when it closes): a listener replaced by a reload (an
    // address moving to its port's wildcard) must not cost the clients that were in flight.
    let mut draining = false;
    loop {
        let Some(accepted) = next_accepted(&listener, stopped.as_mut(), &mut draining).await else {
            return;
        };
        let (client, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(error) => {
                frontend.accept_errors.fetch_add(1, Ordering::Relaxed);
                if is_resource_exhaustion(&error) {
                    // EMFILE and friends: the pending connection stays pending, so accepting again
                    // at once would spin a core. Wait, doubling up to a second.
                    backoff = next_backoff(backoff);
                    tracing::warn!(frontend = %frontend.name, %error, ?backoff, "accept failed, backing off");
                    tokio::select! {
                        () = &mut stopped => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                } else {
                    tracing::debug!(frontend = %frontend.name, %error, "accept failed");
                }
                continue;
            }
        };
        let permits = tokio::select! {
            // Slots first, so that a stop or a drain never turns away a client there is room for.
            biased;
            permits = async {
                let frontend_permit = frontend.limit.acquire().await?;
                let global_permit = engine.global_limit.acquire().await?;
                Some((frontend_permit, global_permit))
            } => match permits {
                Some(permits) => permits,
                None => return,
            },
            () = &mut stopped, if !draining => return,
            // Draining does not wait for a slot: a client the limits cannot take now is closed.
            () = std::future::ready(()), if draining => continue,
        };
        let settings = frontend.settings.load_full();
        keepalive.follow(&listener, &frontend);
        let Some(backend) = engine.backend(&settings.backend) else {
            tracing::warn!(frontend = %frontend.name, backend = %settings.backend, "backend missing, closing");
            continue;
        };
        let (target, load) = engine.threads.pick(thread);
        let (accept_proxy, session_frontend) = (settings.accept_proxy, Arc::clone(&frontend));
        let proxy_header_timeout = settings.proxy_header_timeout;
        let accepted = move |client| Accepted {
            client,
            peer,
            accept_proxy,
            frontend: session_frontend,
            backend,
            permits,
            load,
            proxy_header_timeout,
        };
        if target == thread {
            engine.sessions.spawn(session::run(accepted(client)));
            continue;
        }
        // Handed over: the socket leaves this thread's I/O driver for the target's.
        match client.into_std() {
            Ok(client) => {
                let session = async move {
                    match TcpStream::from_std(client) {
                        Ok(client) => session::run(accepted(client)).await,
                        Err(error) => {
                            tracing::debug!(%error, "cannot register a handed-over session");
                        }
                    }
                };
                engine
                    .sessions
                    .spawn_on(session, &engine.threads.handles()[target]);
            }
            Err(error) => tracing::debug!(%error, "cannot hand a session over"),
        }
    }
}

/// The keepalive settings last set on a listening socket. Linux copies SO_KEEPALIVE, TCP_KEEPIDLE,
/// TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT from a listener to the connections it accepts
/// (as TCP_NODELAY, see [`bind`]), so setting them on the listener costs no system call per
/// connection; a reload that changes them sets them again, on the next accept.
#[derive(Default)]
enum KeepaliveOnListener {
    /// Nothing set yet: the socket has the kernel's defaults (keepalive off).
    #[default]
    Unset,
    Applied(Option<TcpKeepalive>),
}

impl KeepaliveOnListener {
    fn follow(&mut self, listener: &TcpListener, frontend: &FrontendShared) {
        let wanted = frontend.settings.load().tcp_keepalive;
        if matches!(self, Self::Applied(applied) if *applied == wanted) {
            return;
        }
        match set_listener_keepalive(listener, wanted.as_ref()) {
            Ok(()) => *self = Self::Applied(wanted),
            Err(error) => {
                // Tried again on the next accept; sessions are served without it meanwhile.
                tracing::warn!(frontend = %frontend.name, %error, "cannot set TCP keepalive on the listener");
            }
        }
    }
}

/// Sets (or clears) the keepalive settings of a listening socket, which the connections it
/// accepts from now on inherit ([`KeepaliveOnListener`]). Called at bind time too, so that the
/// first connections, which may arrive before the accept loop first runs, have it.
pub fn set_listener_keepalive(
    listener: &impl std::os::fd::AsFd,
    keepalive: Option<&TcpKeepalive>,
) -> io::Result<()> {
    let socket = socket2::SockRef::from(listener);
    match keepalive {
        Some(keepalive) => keepalive.apply(&socket),
        None => socket
            .set_keepalive(false)
            .and_then(|()| socket.set_tcp_user_timeout(None)),
    }
}

/// Accept back-off after a resource error: 10 ms, doubling, at most 1 s.
fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
}

pub(crate) fn is_resource_exhaustion(error: &io::Error) -> bool {
    use nix::libc::{EMFILE, ENFILE, ENOBUFS, ENOMEM};
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_small_doubles_and_caps() {
        let mut backoff = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            backoff = next_backoff(backoff);
            seen.push(backoff.as_millis());
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn only_resource_errors_back_off() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(
            nix::libc::EMFILE
        )));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(
            nix::libc::ENFILE
        )));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(
            nix::libc::ECONNABORTED
        )));
    }

    #[test]
    fn binds_with_freebind_an_address_not_on_this_host() {
        // 203.0.113.0/24 (TEST-NET-3) is on no interface here: IP_FREEBIND lets us listen anyway,
        // as a backup node listens on its VIP. Nothing is sent.
        let listener = bind("203.0.113.77:0".parse().unwrap()).unwrap();
        let socket = socket2::SockRef::from(&listener);
        assert!(socket.freebind_v4().unwrap());
        assert!(socket.reuse_address().unwrap());
    }

    #[test]
    fn an_address_another_process_listens_on_is_refused_even_with_reuse_port() {
        // Another HAProxy or vipd would bind with SO_REUSEPORT too; sharing its port silently
        // would split the connections between the two.
        let other = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        other.set_reuse_port(true).unwrap();
        other
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        other.listen(16).unwrap();
        let taken = other.local_addr().unwrap().as_socket().unwrap();
        let error = bind(taken).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn siblings_share_the_address_and_every_connection_is_accepted_once() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let sibling = bind_sibling(&first).unwrap();
        let address = first.local_addr().unwrap();
        assert_eq!(sibling.local_addr().unwrap(), address);
        let clients: Vec<_> = (0..32)
            .map(|_| std::net::TcpStream::connect(address).unwrap())
            .collect();
        let mut accepted = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while accepted < clients.len() && std::time::Instant::now() < deadline {
            for listener in [&first, &sibling] {
                if listener.accept().is_ok() {
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, clients.len());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn accepted_connections_inherit_keepalive_from_the_listener() {
        let listener =
            TcpListener::from_std(bind("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
        let keepalive = TcpKeepalive {
            idle: Duration::from_secs(17),
            interval: Duration::from_secs(3),
            count: 4,
            user_timeout: Some(Duration::from_secs(29)),
        };
        let settings = FrontendSettings {
            backend: "b".into(),
            accept_proxy: false,
            tcp_keepalive: Some(keepalive),
            proxy_header_timeout: Duration::from_secs(5),
        };
        let frontend = FrontendShared::new("f", settings, 10);
        KeepaliveOnListener::default().follow(&listener, &frontend);
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), keepalive.idle);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), keepalive.interval);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), keepalive.count);
        assert_eq!(socket.tcp_user_timeout().unwrap(), keepalive.user_timeout);
    }

    #[test]
    fn accepted_connections_inherit_nodelay_from_the_listener() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
