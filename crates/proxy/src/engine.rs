//! The running proxy: [`Proxy`] is the handle the daemon holds; [`Engine`] is what its tasks share.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::backend::Backend;
use crate::config::ProxyConfig;
use crate::frontend::{self, FrontendSettings, FrontendShared};
use crate::limit::Limit;
use crate::live_sessions::{SessionFilter, SessionInfo};
use crate::session_threads::SessionThreads;
use crate::stats::{AdminState, FrontendHealth, FrontendStats, HealthReport, ProxyStats};

/// Shared by the listener, session and check tasks.
pub struct Engine {
    /// The global `max_connections`.
    pub global_limit: Arc<Limit>,
    pub sessions: TaskTracker,
    /// Cancelled to cut every session (end of the shutdown grace period, or the handle dropped).
    pub hard_stop: CancellationToken,
    backends: ArcSwap<BTreeMap<String, Arc<Backend>>>,
    frontends: ArcSwap<BTreeMap<String, Arc<FrontendShared>>>,
    listening: ArcSwap<BTreeMap<String, Vec<SocketAddr>>>,
    health: watch::Sender<HealthReport>,
    /// Held from a reload's preparation to its commit ([`PreparedReload`]).
    control: Arc<tokio::sync::Mutex<Control>>,
    /// Where the accept loops and the sessions run.
    pub threads: SessionThreads,
}

/// What only `apply` and `shutdown` touch, one at a time.
struct Control {
    /// Per frontend, per configured bind address.
    listeners: BTreeMap<String, BTreeMap<SocketAddr, Listener>>,
    checks: CancellationToken,
    shut_down: bool,
}

struct Listener {
    actual: SocketAddr,
    stop: CancellationToken,
    /// One accept loop per session thread.
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    async fn close(self) {
        self.stop.cancel();
        // Each task owns one socket of the group: once all have returned, the port is free again.
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Engine {
    pub fn backend(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends.load().get(name).cloned()
    }

    fn publish_health(&self) {
        let backends = self.backends.load();
        let frontends = self.frontends.load();
        let mut report = HealthReport::default();
        for (name, frontend) in frontends.iter() {
            let backend_name = frontend.settings.load().backend.clone();
            let health = backends.get(&backend_name).map_or_else(
                || FrontendHealth {
                    backend: backend_name.clone(),
                    ..FrontendHealth::default()
                },
                |backend| FrontendHealth {
                    backend: backend_name.clone(),
                    servers_total: backend.servers.len(),
                    servers_up: backend
                        .servers
                        .iter()
                        .filter(|server| server.is_up())
                        .count(),
                    servers_usable: backend.usable_servers(),
                },
            );
            report.frontends.insert(name.clone(), health);
        }
        self.health.send_if_modified(|current| {
            let changed = *current != report;
            if changed {
                *current = report;
            }
            changed
        });
    }

    /// `hard_stop_after`: sessions on servers of `old` that `new` does not have are cut after `after`.
    fn cut_removed_servers_later(
        &self,
        old: &BTreeMap<String, Arc<Backend>>,
        new: &BTreeMap<String, Arc<Backend>>,
        after: Duration,
    ) {
        let kept: Vec<&Arc<crate::backend::Server>> = new
            .values()
            .flat_map(|backend| backend.servers.iter())
            .collect();
        let removed: Vec<Arc<crate::backend::Server>> = old
            .values()
            .flat_map(|backend| backend.servers.iter())
            .filter(|server| !kept.iter().any(|kept| Arc::ptr_eq(kept, server)))
            .filter(|server| server.active_sessions() > 0)
            .cloned()
            .collect();
        if removed.is_empty() {
            return;
        }
        let stop = self.hard_stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(after) => {
                    for server in removed {
                        tracing::info!(server = %server.name, sessions = server.active_sessions(), "hard_stop_after: cutting sessions of a removed server");
                        server.cut_sessions();
                    }
                }
            }
        });
    }

    /// The fallible half of a reload: validation, backends (TLS of checks) and every socket a new
    /// listener needs. Changes nothing; see [`Proxy::prepare`].
    async fn prepare(self: &Arc<Self>, config: ProxyConfig) -> Result<PreparedReload, Error> {
        config.validate()?;
        let control = Arc::clone(&self.control).lock_owned().await;
        if control.shut_down {
            return Err(Error::ShutDown);
        }
        let old_backends = self.backends.load_full();
        let backends = Arc::new(build_backends(&config, &old_backends, &self.hard_stop)?);
        let fresh = bind_fresh(&config, &control)?;
        Ok(PreparedReload {
            engine: Arc::clone(self),
            control,
            config,
            old_backends,
            backends,
            fresh,
        })
    }

    /// The other half: cannot fail. New sessions see the new backends from here on; established
    /// ones keep theirs.
    async fn commit(self: &Arc<Self>, prepared: PreparedReload) {
        let PreparedReload {
            mut control,
            config,
            old_backends,
            backends,
            fresh,
            ..
        } = prepared;
        for backend in backends.values() {
            backend.take_configuration();
        }
        let pipe_memory = usize::try_from(config.pipe_memory.bytes()).unwrap_or(usize::MAX);
        crate::pipes::BUDGET.set_limit(crate::pipes::budget_in_force(pipe_memory));
        self.backends.store(Arc::clone(&backends));
        if let Some(after) = config.hard_stop_after {
            self.cut_removed_servers_later(&old_backends, &backends, after);
        }
        let wanted = wanted_listeners(&config);
        let frontends = self.update_frontends(&config);
        // The new sockets accept before the old ones close: an address moving to the wildcard
        // of its port (or to another frontend) is served throughout.
        self.start_listeners(&mut control, &frontends, fresh);
        close_unwanted(&mut control, &wanted).await;
        self.publish_listening(&control);
        self.restart_checks(&mut control);
        self.publish_health();
    }

    /// Frontend state is kept by name; settings and limits change in place.
    fn update_frontends(&self, config: &ProxyConfig) -> BTreeMap<String, Arc<FrontendShared>> {
        let old_frontends = self.frontends.load_full();
        let mut frontends = BTreeMap::new();
        for frontend in &config.frontends {
            let settings = FrontendSettings {
                backend: frontend.backend.clone(),
                accept_proxy: frontend.accept_proxy,
                tcp_keepalive: frontend.tcp_keepalive,
                proxy_header_timeout: frontend.proxy_header_timeout,
            };
            let shared = if let Some(shared) = old_frontends.get(&frontend.name) {
                shared.settings.store(Arc::new(settings));
                shared.limit.set_max(frontend.max_connections);
                Arc::clone(shared)
            } else {
                Arc::new(FrontendShared::new(
                    &frontend.name,
                    settings,
                    frontend.max_connections,
                ))
            };
            frontends.insert(frontend.name.clone(), shared);
        }
        self.frontends.store(Arc::new(frontends.clone()));
        self.global_limit.set_max(config.max_connections);
        frontends
    }

    /// Starts an accept loop per session thread on each fresh socket.
    fn start_listeners(
        self: &Arc<Self>,
        control: &mut Control,
        frontends: &BTreeMap<String, Arc<FrontendShared>>,
        fresh: Vec<(String, SocketAddr, std::net::TcpListener)>,
    ) {
        for (name, address, socket) in fresh {
            let Some(shared) = frontends.get(&name) else {
                continue;
            };
            let actual = socket.local_addr().unwrap_or(address);
            let stop = self.hard_stop.child_token();
            let group = self.listener_group(socket, &name, actual);
            let keepalive = shared.settings.load().tcp_keepalive;
            for socket in &group {
                if let Err(error) = frontend::set_listener_keepalive(socket, keepalive.as_ref()) {
                    tracing::warn!(frontend = %name, %error, "cannot set TCP keepalive on the listener");
                }
            }
            let tasks = group
                .into_iter()
                .zip(self.threads.handles().iter().enumerate())
                .map(|(socket, (index, thread))| {
                    thread.spawn(frontend::accept_loop(
                        socket,
                        index,
                        Arc::clone(shared),
                        Arc::clone(self),
                        stop.clone(),
                    ))
                })
                .collect();
            tracing::info!(frontend = %name, address = %actual, "listening");
            control.listeners.entry(name).or_default().insert(
                address,
                Listener {
                    actual,
                    stop,
                    tasks,
                },
            );
        }
    }

    fn publish_listening(&self, control: &Control) {
        self.listening.store(Arc::new(
            control
                .listeners
                .iter()
                .map(|(name, listeners)| {
                    let actual = listeners.values().map(|listener| listener.actual);
                    (name.clone(), actual.collect())
                })
                .collect(),
        ));
    }

    /// The listening socket and a sibling on the same address for every further session thread
    /// ([`frontend::bind_sibling`]). If one cannot be made (fd limit), fewer threads accept on
    /// this listener.
    fn listener_group(
        &self,
        socket: std::net::TcpListener,
        frontend: &str,
        address: SocketAddr,
    ) -> Vec<std::net::TcpListener> {
        let wanted = self.threads.handles().len();
        let mut group = Vec::with_capacity(wanted);
        while group.len() + 1 < wanted {
            match frontend::bind_sibling(&socket) {
                Ok(sibling) => group.push(sibling),
                Err(error) => {
                    tracing::warn!(frontend, %address, %error, "listener not bound for every session thread");
                    break;
                }
            }
        }
        group.push(socket);
        group
    }

    /// Health checks restart on the new snapshot; the state lives in the servers.
    fn restart_checks(self: &Arc<Self>, control: &mut Control) {
        control.checks.cancel();
        control.checks = self.hard_stop.child_token();
        let weak: Weak<Engine> = Arc::downgrade(self);
        let on_flip: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if let Some(engine) = weak.upgrade() {
                engine.publish_health();
            }
        });
        for backend in self.backends.load().values() {
            backend.spawn_checks(&control.checks, &on_flip);
        }
    }
}

/// Backends of `config`, reusing the live state of servers that keep name and address.
fn build_backends(
    config: &ProxyConfig,
    old: &BTreeMap<String, Arc<Backend>>,
    hard_stop: &CancellationToken,
) -> Result<BTreeMap<String, Arc<Backend>>, Error> {
    let mut backends = BTreeMap::new();
    for backend in &config.backends {
        let previous = old.get(&backend.name).map(AsRef::as_ref);
        backends.insert(
            backend.name.clone(),
            Arc::new(Backend::build(backend, previous, hard_stop)?),
        );
    }
    Ok(backends)
}

/// Binds every listener `config` wants that its frontend does not have yet, so a bind error
/// leaves everything as it was. An address that overlaps one of our own listeners (the same
/// address under another frontend, or the wildcard and a specific address of one port) is bound
/// beside it ([`frontend::bind_beside_own`]): the old listener closes only at commit.
fn bind_fresh(
    config: &ProxyConfig,
    control: &Control,
) -> Result<Vec<(String, SocketAddr, std::net::TcpListener)>, Error> {
    let own: Vec<SocketAddr> = control
        .listeners
        .values()
        .flat_map(|listeners| listeners.values().map(|listener| listener.actual))
        .collect();
    let mut fresh = Vec::new();
    for frontend in &config.frontends {
        let held = control.listeners.get(&frontend.name);
        for &address in frontend
            .bind
            .iter()
            .filter(|address| held.is_none_or(|held| !held.contains_key(address)))
        {
            let beside_own = own.iter().any(|own| frontend::overlaps(*own, address));
            let socket = if beside_own {
                frontend::bind_beside_own(address)
            } else {
                frontend::bind(address)
            };
            let socket = socket.map_err(|source| Error::Bind {
                frontend: frontend.name.clone(),
                address,
                source,
            })?;
            fresh.push((frontend.name.clone(), address, socket));
        }
    }
    Ok(fresh)
}

/// (frontend, configured address) of every listener `config` wants.
fn wanted_listeners(config: &ProxyConfig) -> BTreeSet<(String, SocketAddr)> {
    config
        .frontends
        .iter()
        .flat_map(|frontend| {
            frontend
                .bind
                .iter()
                .map(|address| (frontend.name.clone(), *address))
        })
        .collect()
}

/// Closes the listeners `wanted` no longer has and waits until their sockets are gone.
async fn close_unwanted(control: &mut Control, wanted: &BTreeSet<(String, SocketAddr)>) {
    let mut closing = Vec::new();
    for (name, listeners) in &mut control.listeners {
        let gone: Vec<SocketAddr> = listeners
            .keys()
            .copied()
            .filter(|address| !wanted.contains(&(name.clone(), *address)))
            .collect();
        for address in gone {
            closing.extend(listeners.remove(&address));
        }
    }
    control
        .listeners
        .retain(|_, listeners| !listeners.is_empty());
    for listener in closing {
        listener.close().await;
    }
}

/// A reload ready to commit ([`Proxy::prepare`]).
pub struct PreparedReload {
    engine: Arc<Engine>,
    control: tokio::sync::OwnedMutexGuard<Control>,
    config: ProxyConfig,
    old_backends: Arc<BTreeMap<String, Arc<Backend>>>,
    backends: Arc<BTreeMap<String, Arc<Backend>>>,
    fresh: Vec<(String, SocketAddr, std::net::TcpListener)>,
}

impl PreparedReload {
    /// Applies the reload; nothing can fail any more.
    pub async fn commit(self) {
        let engine = Arc::clone(&self.engine);
        engine.commit(self).await;
    }
}

impl std::fmt::Debug for PreparedReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedReload")
            .field("new_listeners", &self.fresh.len())
            .finish_non_exhaustive()
    }
}

/// The running proxy. Dropping it cuts every session and closes every listener; call
/// [`Proxy::shutdown`] for a graceful stop.
pub struct Proxy {
    engine: Arc<Engine>,
}

impl Proxy {
    /// Validates `config`, binds every frontend (IP_FREEBIND, SO_REUSEADDR), and starts the
    /// listeners and health checks. Must run inside a tokio runtime.
    pub async fn start(config: ProxyConfig) -> Result<Self, Error> {
        let (health, _) = watch::channel(HealthReport::default());
        let hard_stop = CancellationToken::new();
        let threads =
            SessionThreads::start(&hard_stop).map_err(|source| Error::Threads { source })?;
        let engine = Arc::new(Engine {
            global_limit: Limit::new(0),
            sessions: TaskTracker::new(),
            backends: ArcSwap::from_pointee(BTreeMap::new()),
            frontends: ArcSwap::from_pointee(BTreeMap::new()),
            listening: ArcSwap::from_pointee(BTreeMap::new()),
            health,
            control: Arc::new(tokio::sync::Mutex::new(Control {
                listeners: BTreeMap::new(),
                checks: hard_stop.child_token(),
                shut_down: false,
            })),
            hard_stop,
            threads,
        });
        // A refused configuration ends the session threads with the engine.
        let stop_on_error = engine.hard_stop.clone().drop_guard();
        let prepared = engine.prepare(config).await?;
        engine.commit(prepared).await;
        stop_on_error.disarm();
        Ok(Self { engine })
    }

    /// Reloads by difference. Listeners whose frontend keeps its name and address keep their socket
    /// (no refused connection); established sessions continue on the servers they have; new sessions
    /// use the new backends; servers keeping backend, name and address keep health, admin state,
    /// weight override, counters and active sessions, and take every other setting in place.
    /// All or nothing: an error leaves the running configuration untouched. Same as
    /// [`Proxy::prepare`] then [`PreparedReload::commit`].
    pub async fn apply(&self, config: ProxyConfig) -> Result<(), Error> {
        let prepared = self.prepare(config).await?;
        prepared.commit().await;
        Ok(())
    }

    /// Does everything of a reload that can fail (validation, health-check TLS, binding new
    /// addresses) and changes nothing: the daemon prepares every part of a reload before it
    /// commits any (docs/design/architecture.md, Reload). Other reloads wait until the result is
    /// committed or dropped; dropping it abandons the reload (its new sockets close).
    pub async fn prepare(&self, config: ProxyConfig) -> Result<PreparedReload, Error> {
        self.engine.prepare(config).await
    }

    /// Stops accepting, stops health checks, lets sessions finish for up to `grace`, then cuts the
    /// rest. Returns when every session is gone.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown_unless_cut(grace, std::future::pending())
            .await;
    }

    /// [`Proxy::shutdown`], but the drain also ends, and the sessions left are cut, as soon as
    /// `cut` completes: an operator who sends a second SIGTERM does not want to wait for it.
    pub async fn shutdown_unless_cut(&self, grace: Duration, cut: impl Future<Output = ()>) {
        let mut control = self.engine.control.lock().await;
        control.shut_down = true;
        control.checks.cancel();
        let listeners = std::mem::take(&mut control.listeners);
        for listener in listeners.into_values().flat_map(BTreeMap::into_values) {
            listener.close().await;
        }
        self.engine.listening.store(Arc::new(BTreeMap::new()));
        let sessions = &self.engine.sessions;
        sessions.close();
        tokio::select! {
            () = sessions.wait() => {}
            () = tokio::time::sleep(grace) => {
                tracing::info!(
                    remaining = sessions.len(),
                    "grace period over, cutting sessions"
                );
            }
            () = cut => {
                tracing::info!(remaining = sessions.len(), "drain cut short, cutting sessions");
            }
        }
        self.engine.hard_stop.cancel();
        sessions.wait().await;
    }

    /// Backend health per frontend; changes whenever a server flips or an admin action or reload
    /// changes what is usable. A tracker reads `servers_usable` against its `min_up`.
    pub fn health(&self) -> watch::Receiver<HealthReport> {
        self.engine.health.subscribe()
    }

    /// The addresses each frontend listens on (with the real port when port 0 was configured).
    pub fn listening_addresses(&self) -> BTreeMap<String, Vec<SocketAddr>> {
        self.engine.listening.load().as_ref().clone()
    }

    /// No new sessions on `server` (weight 0); established sessions continue.
    pub fn drain_server(&self, backend: &str, server: &str) -> Result<(), Error> {
        self.set_admin_state(backend, server, AdminState::Drain)
    }

    /// Takes `server` out of service (maintenance); established sessions continue.
    pub fn disable_server(&self, backend: &str, server: &str) -> Result<(), Error> {
        self.set_admin_state(backend, server, AdminState::Maintenance)
    }

    /// Puts a drained or disabled server back into service.
    pub fn enable_server(&self, backend: &str, server: &str) -> Result<(), Error> {
        self.set_admin_state(backend, server, AdminState::Ready)
    }

    /// Sets a server's weight; it overrides the configured weight, also across reloads.
    pub fn set_server_weight(&self, backend: &str, server: &str, weight: u32) -> Result<(), Error> {
        self.with_server(backend, server, |server| server.set_weight_override(weight))
    }

    /// Clears the weight set by [`Proxy::set_server_weight`]: the configured weight applies again.
    pub fn reset_server_weight(&self, backend: &str, server: &str) -> Result<(), Error> {
        self.with_server(
            backend,
            server,
            crate::backend::Server::clear_weight_override,
        )
    }

    /// The sessions forwarding to `server` of `backend`, or to every server of it, oldest first.
    /// Sessions still queued or connecting have no server yet and are not listed.
    pub fn sessions(&self, backend: &str, server: Option<&str>) -> Result<Vec<SessionInfo>, Error> {
        let snapshot = self.backend_snapshot(backend)?;
        let servers: Vec<&Arc<crate::backend::Server>> = match server {
            Some(name) => vec![Self::server_of(&snapshot, backend, name)?],
            None => snapshot.servers.iter().collect(),
        };
        Ok(servers
            .into_iter()
            .flat_map(|server| server.sessions.list(backend, &server.name))
            .collect())
    }

    /// Cuts the sessions of `server` that `filter` picks, as a server going down under
    /// `shutdown_sessions` cuts them (both sockets closed); returns how many.
    pub fn kill_sessions(
        &self,
        backend: &str,
        server: &str,
        filter: SessionFilter,
    ) -> Result<usize, Error> {
        let snapshot = self.backend_snapshot(backend)?;
        let found = Self::server_of(&snapshot, backend, server)?;
        let killed = found.sessions.kill(filter);
        tracing::info!(backend, server, ?filter, killed, "sessions killed");
        Ok(killed)
    }

    fn backend_snapshot(&self, backend: &str) -> Result<Arc<Backend>, Error> {
        self.engine
            .backend(backend)
            .ok_or_else(|| Error::UnknownBackend {
                backend: backend.to_owned(),
            })
    }

    fn server_of<'a>(
        snapshot: &'a Backend,
        backend: &str,
        server: &str,
    ) -> Result<&'a Arc<crate::backend::Server>, Error> {
        snapshot.server(server).ok_or_else(|| Error::UnknownServer {
            backend: backend.to_owned(),
            server: server.to_owned(),
        })
    }

    fn set_admin_state(&self, backend: &str, server: &str, state: AdminState) -> Result<(), Error> {
        self.with_server(backend, server, |server| server.set_admin_state(state))
    }

    fn with_server(
        &self,
        backend: &str,
        server: &str,
        action: impl FnOnce(&crate::backend::Server),
    ) -> Result<(), Error> {
        let snapshot = self.backend_snapshot(backend)?;
        let found = Self::server_of(&snapshot, backend, server)?;
        action(found);
        tracing::info!(backend, server, "server admin state changed");
        self.engine.publish_health();
        Ok(())
    }

    /// Every counter and gauge, per frontend, backend and server.
    pub fn stats(&self) -> ProxyStats {
        use Ordering::Relaxed;
        let listening = self.engine.listening.load();
        let frontends = self.engine.frontends.load();
        let frontend_stats = frontends
            .values()
            .map(|frontend| FrontendStats {
                name: frontend.name.clone(),
                backend: frontend.settings.load().backend.clone(),
                bind: listening.get(&frontend.name).cloned().unwrap_or_default(),
                sessions_current: frontend.sessions_current.load(Relaxed),
                sessions_total: frontend.sessions_total.load(Relaxed),
                max_connections: frontend.limit.max(),
                max_connections_in_force: frontend.limit.in_force(),
                bytes_in: frontend.bytes_in.load(Relaxed),
                bytes_out: frontend.bytes_out.load(Relaxed),
                bytes_spliced: frontend.bytes_spliced.load(Relaxed),
                proxy_header_errors: frontend.proxy_header_errors.load(Relaxed),
                accept_errors: frontend.accept_errors.load(Relaxed),
            })
            .collect::<Vec<_>>();
        let sessions_current = frontend_stats
            .iter()
            .map(|frontend| frontend.sessions_current)
            .sum::<u64>();
        ProxyStats {
            sessions_current,
            pipes: crate::pipes::BUDGET.stats(),
            max_connections: self.engine.global_limit.max(),
            max_connections_in_force: self.engine.global_limit.in_force(),
            frontends: frontend_stats,
            backends: self
                .engine
                .backends
                .load()
                .values()
                .map(|backend| backend.stats())
                .collect(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.engine.hard_stop.cancel();
    }
}
