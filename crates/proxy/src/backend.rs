//! Backends at run time: servers with their live state (health, admin state, weight, active
//! sessions, counters), the balancer of an immutable backend snapshot, the slot reservation that
//! enforces per-server `max_connections`, and the health-check task of each server.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::balance::{Balancer, Candidate};
use crate::config::{BackendConfig, Balance, OnServerDown, ServerConfig};
use crate::health::{CheckTarget, Checker, HealthState, first_check_delay, jittered};
use crate::live_sessions::LiveSessions;
use crate::queue::SlotQueue;
use crate::session::ConnectsAtOnce;
use crate::session_times::SessionTimes;
use crate::slow_start::SlowStart;
use crate::stats::{AdminState, BackendStats, ServerStats};

/// A server's live state. Kept across reloads while the server keeps its backend, name and
/// address; every other field of its configuration changes in place (docs/design/proxy.md,
/// Reload).
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    backup: AtomicBool,
    /// `max_connections`, 0 for none (the configuration refuses 0).
    max_connections: AtomicUsize,
    slow_start: SlowStart,
    configured_weight: AtomicU64,
    /// Weight set by an admin action, or -1: survives reloads, unlike the configured weight.
    weight_override: AtomicI64,
    admin: AtomicU8,
    /// Mirror of `health.state.is_up()` for the hot path.
    up: AtomicBool,
    health: Mutex<HealthRecord>,
    active: AtomicU64,
    /// Cancelled (and replaced) to cut this server's sessions when it goes down.
    sessions_cut: Mutex<CancellationToken>,
    /// Parent of `sessions_cut` (the engine's hard stop), so one token per session says both.
    hard_stop: CancellationToken,
    /// The sessions forwarding to this server, for the admin API to list and kill.
    pub sessions: LiveSessions,
    /// The backend's queue: woken one waiter per freed slot, every waiter when servers change.
    queue: Arc<SlotQueue>,
    pub counters: ServerCounters,
    /// Whether connects to this server finish inside connect(2), for sending the first bytes.
    pub connects_at_once: ConnectsAtOnce,
    /// Connection attempts of client traffic that failed in a row (docs/design/proxy.md,
    /// Connect, retries and redispatch).
    connect_failures: AtomicU32,
    /// Wakes the health-check task when client traffic marked the server down, so that it
    /// announces the change as a failed check would.
    marked_down_by_traffic: Notify,
}

#[derive(Debug)]
struct HealthRecord {
    state: HealthState,
    since: Instant,
    downtime: Duration,
    last_check: Option<String>,
    /// Has been up since the proxy started: coming up again starts slow start, the first time
    /// does not.
    been_up: bool,
}

/// Monotonic counters of a server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub sessions_total: AtomicU64,
    /// Client → server bytes.
    pub bytes_in: AtomicU64,
    /// Server → client bytes.
    pub bytes_out: AtomicU64,
    pub connect_errors: AtomicU64,
    pub retries: AtomicU64,
    pub check_successes: AtomicU64,
    pub check_failures: AtomicU64,
    pub transitions: AtomicU64,
}

const ADMIN_READY: u8 = 0;
const ADMIN_DRAIN: u8 = 1;
const ADMIN_MAINTENANCE: u8 = 2;

impl Server {
    fn new(
        config: &ServerConfig,
        initially_up: bool,
        queue: Arc<SlotQueue>,
        hard_stop: &CancellationToken,
    ) -> Self {
        Self {
            name: config.name.clone(),
            address: config.address,
            backup: AtomicBool::new(config.backup),
            max_connections: AtomicUsize::new(config.max_connections.unwrap_or(0)),
            slow_start: SlowStart::default(),
            configured_weight: AtomicU64::new(u64::from(config.weight)),
            weight_override: AtomicI64::new(-1),
            admin: AtomicU8::new(ADMIN_READY),
            up: AtomicBool::new(initially_up),
            health: Mutex::new(HealthRecord {
                state: HealthState::new(initially_up),
                since: Instant::now(),
                downtime: Duration::ZERO,
                last_check: None,
                been_up: initially_up,
            }),
            active: AtomicU64::new(0),
            sessions_cut: Mutex::new(hard_stop.child_token()),
            hard_stop: hard_stop.clone(),
            sessions: LiveSessions::default(),
            queue,
            counters: ServerCounters::default(),
            connects_at_once: ConnectsAtOnce::default(),
            connect_failures: AtomicU32::new(0),
            marked_down_by_traffic: Notify::new(),
        }
    }

    fn health(&self) -> MutexGuard<'_, HealthRecord> {
        // The lock guards plain data; a panic elsewhere cannot leave it inconsistent.
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Takes a reload's configuration of this server in place: its state (health, admin state,
    /// weight override, sessions, counters) stays.
    fn reconfigure(&self, config: &ServerConfig, backend: &BackendConfig) {
        self.backup.store(config.backup, Ordering::Relaxed);
        self.max_connections
            .store(config.max_connections.unwrap_or(0), Ordering::Relaxed);
        self.configured_weight
            .store(u64::from(config.weight), Ordering::Relaxed);
        self.slow_start
            .configure(backend.slow_start, backend.balance != Balance::Source);
        if backend.health.is_none() {
            // Without checks a server counts as up; nothing else would ever bring it back.
            self.come_up_unchecked();
        }
        // A raised or removed limit may have room for queued sessions.
        self.queue.wake_all();
    }

    pub fn is_backup(&self) -> bool {
        self.backup.load(Ordering::Relaxed)
    }

    /// The configured `max_connections`.
    pub fn max_connections(&self) -> Option<usize> {
        match self.max_connections.load(Ordering::Relaxed) {
            0 => None,
            max => Some(max),
        }
    }

    /// The limit sessions are held to now: `max_connections`, ramped during slow start.
    pub fn limit_in_force(&self) -> Option<u64> {
        self.max_connections()
            .map(|max| self.slow_start.limit(max as u64))
    }

    pub fn admin_state(&self) -> AdminState {
        match self.admin.load(Ordering::Relaxed) {
            ADMIN_DRAIN => AdminState::Drain,
            ADMIN_MAINTENANCE => AdminState::Maintenance,
            _ => AdminState::Ready,
        }
    }

    pub fn set_admin_state(&self, state: AdminState) {
        let value = match state {
            AdminState::Ready => ADMIN_READY,
            AdminState::Drain => ADMIN_DRAIN,
            AdminState::Maintenance => ADMIN_MAINTENANCE,
        };
        let previous = self.admin.swap(value, Ordering::Relaxed);
        if previous == ADMIN_MAINTENANCE && value == ADMIN_READY {
            // Back from maintenance: ramp up like a server back from a failure.
            self.slow_start.begin();
        }
        // Queued sessions may now have a server.
        self.queue.wake_all();
    }

    pub fn set_weight_override(&self, weight: u32) {
        self.weight_override
            .store(i64::from(weight), Ordering::Relaxed);
        // A server given weight may take queued sessions.
        self.queue.wake_all();
    }

    /// Back to the configured weight.
    pub fn clear_weight_override(&self) {
        self.weight_override.store(-1, Ordering::Relaxed);
        self.queue.wake_all();
    }

    pub fn has_weight_override(&self) -> bool {
        self.weight_override.load(Ordering::Relaxed) >= 0
    }

    /// The weight balancing uses: 0 when draining or in maintenance.
    pub fn effective_weight(&self) -> u32 {
        if self.admin.load(Ordering::Relaxed) != ADMIN_READY {
            return 0;
        }
        let weight = match u64::try_from(self.weight_override.load(Ordering::Relaxed)) {
            Ok(weight) => weight,
            Err(_) => self.configured_weight.load(Ordering::Relaxed),
        };
        u32::try_from(weight).unwrap_or(u32::MAX)
    }

    /// Up, ready and with weight: may receive new sessions.
    pub fn is_usable(&self) -> bool {
        self.is_up() && self.effective_weight() > 0
    }

    fn has_free_slot(&self) -> bool {
        self.limit_in_force()
            .is_none_or(|max| self.active.load(Ordering::Relaxed) < max)
    }

    pub fn active_sessions(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Reserves a session slot, honouring `max_connections`.
    fn reserve(self: &Arc<Self>) -> Option<ServerSlot> {
        let previous = self.active.fetch_add(1, Ordering::AcqRel);
        if self.limit_in_force().is_some_and(|max| previous >= max) {
            self.release();
            return None;
        }
        self.counters.sessions_total.fetch_add(1, Ordering::Relaxed);
        Some(ServerSlot {
            server: Arc::clone(self),
        })
    }

    fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        // Sessions wait for a slot only when every usable server is full, which a server without
        // a limit never is.
        if self.max_connections().is_some() {
            self.queue.wake_one();
        }
    }

    /// A token for one new session: cancelled when this server's sessions are cut (down under
    /// `shutdown_sessions`, `hard_stop_after`) or at hard stop. Each session gets its own child so
    /// that polling it contends with no other session.
    pub fn session_token(&self) -> CancellationToken {
        self.sessions_cut
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .child_token()
    }

    pub fn cut_sessions(&self) {
        let mut token = self
            .sessions_cut
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        token.cancel();
        *token = self.hard_stop.child_token();
    }

    /// During slow start the limit grows with time, not only when a session ends: queued
    /// sessions look again at every check.
    fn wake_queue_while_ramping(&self) {
        if self.max_connections().is_some() && self.slow_start.progress().is_some() {
            self.queue.wake_all();
        }
    }

    /// Up without a check: the backend's checks were removed by a reload.
    fn come_up_unchecked(&self) {
        let mut record = self.health();
        if record.state.is_up() {
            return;
        }
        let now = Instant::now();
        let down_for = now.duration_since(record.since);
        record.downtime += down_for;
        record.since = now;
        record.state = HealthState::new(true);
        record.last_check = None;
        record.been_up = true;
        self.up.store(true, Ordering::Relaxed);
        self.counters.transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one check result; returns whether the server flipped state.
    fn record_check(&self, result: Result<(), String>, rise: u32, fall: u32) -> bool {
        let mut record = self.health();
        let flipped = if result.is_ok() {
            self.counters
                .check_successes
                .fetch_add(1, Ordering::Relaxed);
            record.state.record_success(rise)
        } else {
            self.counters.check_failures.fetch_add(1, Ordering::Relaxed);
            record.state.record_failure(fall)
        };
        record.last_check = Some(result.err().unwrap_or_else(|| "ok".to_owned()));
        if flipped {
            self.flipped(&mut record);
        }
        flipped
    }

    /// Bookkeeping of an up/down change that `record.state` already made.
    fn flipped(&self, record: &mut HealthRecord) {
        let now = Instant::now();
        if record.state.is_up() {
            // Coming up: the time spent down counts as downtime.
            let down_for = now.duration_since(record.since);
            record.downtime += down_for;
            self.connect_failures.store(0, Ordering::Relaxed);
            if record.been_up {
                self.slow_start.begin();
            }
            record.been_up = true;
        }
        record.since = now;
        self.up.store(record.state.is_up(), Ordering::Relaxed);
        self.queue.wake_all();
        self.counters.transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt of client traffic succeeded: the failure streak ends.
    pub fn record_connect_success(&self) {
        // Written only on a change: every session to this server reads the cache line.
        if self.connect_failures.load(Ordering::Relaxed) != 0 {
            self.connect_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connection attempt of client traffic failed (timed out, refused, reset): `limit` in a
    /// row mark the server down at once, without waiting for checks (HAProxy's `observe layer4`
    /// with `on-error mark-down`); 0 never does. Returns whether this failure marked it down.
    pub fn record_connect_failure(&self, limit: u32) -> bool {
        let streak = self.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if limit == 0 || streak < limit {
            return false;
        }
        let mut record = self.health();
        if !record.state.mark_down() {
            return false;
        }
        record.last_check = Some(format!(
            "{streak} connection attempts of client traffic failed in a row"
        ));
        self.flipped(&mut record);
        self.marked_down_by_traffic.notify_one();
        true
    }

    fn is_transitioning(&self) -> bool {
        self.health().state.is_transitioning()
    }

    pub fn stats(&self) -> ServerStats {
        let record = self.health();
        let in_state = record.since.elapsed();
        let up = record.state.is_up();
        ServerStats {
            name: self.name.clone(),
            address: self.address,
            backup: self.is_backup(),
            weight: self.effective_weight(),
            admin: self.admin_state(),
            up,
            sessions_current: self.active_sessions(),
            sessions_total: self.counters.sessions_total.load(Ordering::Relaxed),
            max_connections: self.max_connections(),
            max_connections_in_force: self
                .limit_in_force()
                .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
            weight_overridden: self.has_weight_override(),
            slow_starting: self.slow_start.progress().is_some(),
            bytes_in: self.counters.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.counters.bytes_out.load(Ordering::Relaxed),
            connect_errors: self.counters.connect_errors.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            check_successes: self.counters.check_successes.load(Ordering::Relaxed),
            check_failures: self.counters.check_failures.load(Ordering::Relaxed),
            last_check: record.last_check.clone(),
            transitions: self.counters.transitions.load(Ordering::Relaxed),
            time_in_state: in_state,
            downtime: if up {
                record.downtime
            } else {
                record.downtime + in_state
            },
        }
    }
}

impl Candidate for Arc<Server> {
    fn name(&self) -> &str {
        &self.name
    }
    fn weight(&self) -> u32 {
        self.slow_start.weight(self.effective_weight())
    }
    fn active(&self) -> u64 {
        self.active_sessions()
    }
}

/// A reserved session slot on a server; released (and queued sessions woken) on drop.
#[derive(Debug)]
pub struct ServerSlot {
    pub server: Arc<Server>,
}

impl Drop for ServerSlot {
    fn drop(&mut self) {
        self.server.release();
    }
}

/// State of a backend that outlives configuration snapshots (kept across reloads by name).
#[derive(Debug, Default)]
pub struct BackendShared {
    pub sessions_current: AtomicU64,
    pub sessions_total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connect_errors: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    /// Sessions refused: no usable server, queue full or queue timeout.
    pub refused: AtomicU64,
    /// Sessions waiting for a server slot, first come first served.
    pub queue: Arc<SlotQueue>,
    /// Queue, connect and session times of the sessions that ended.
    pub times: SessionTimes,
}

/// One immutable backend snapshot: configuration, servers and balancer.
#[derive(Debug)]
pub struct Backend {
    pub config: BackendConfig,
    pub servers: Vec<Arc<Server>>,
    pub balancer: Balancer,
    pub shared: Arc<BackendShared>,
    pub checker: Option<Checker>,
}

/// Result of one server selection.
pub enum Pick {
    Server {
        index: usize,
        slot: ServerSlot,
    },
    /// Usable servers exist but all are at `max_connections`: queue.
    AllFull,
    /// No usable server at all.
    NoServer,
}

impl Backend {
    /// Builds a snapshot from `config`, reusing the live state of servers of `previous` with the
    /// same name and address. Fails only on TLS setup of the health check.
    pub fn build(
        config: &BackendConfig,
        previous: Option<&Backend>,
        hard_stop: &CancellationToken,
    ) -> Result<Self, crate::Error> {
        let checker = config
            .health
            .as_ref()
            .map(|health| Checker::new(&config.name, health))
            .transpose()?;
        let shared = previous.map_or_else(
            || Arc::new(BackendShared::default()),
            |old| Arc::clone(&old.shared),
        );
        let initially_up = config
            .health
            .as_ref()
            .is_none_or(|health| health.initially_up);
        let servers = config
            .servers
            .iter()
            .map(|server_config| {
                let reused = previous.and_then(|old| {
                    old.servers.iter().find(|old| {
                        old.name == server_config.name && old.address == server_config.address
                    })
                });
                // A kept server takes its new configuration only at commit
                // (`take_configuration`): a reload that fails later leaves it as it was.
                reused.map_or_else(
                    || {
                        let server = Server::new(
                            server_config,
                            initially_up,
                            Arc::clone(&shared.queue),
                            hard_stop,
                        );
                        server.reconfigure(server_config, config);
                        Arc::new(server)
                    },
                    Arc::clone,
                )
            })
            .collect::<Vec<_>>();
        // Seed `random` from the clock: different on each node is fine (and wanted) for it.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |elapsed| {
                u64::from(elapsed.subsec_nanos()) ^ elapsed.as_secs().rotate_left(32)
            });
        Ok(Self {
            balancer: Balancer::new(config.balance, servers.len(), seed),
            config: config.clone(),
            servers,
            shared,
            checker,
        })
    }

    /// Commits this snapshot's configuration to its servers, kept ones included. Called when the
    /// reload that built the snapshot can no longer fail.
    pub fn take_configuration(&self) {
        for (server, config) in self.servers.iter().zip(&self.config.servers) {
            server.reconfigure(config, &self.config);
        }
    }

    pub fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|server| server.name == name)
    }

    /// Servers that may take new sessions: usable primaries, or usable backups if no primary is.
    fn candidates(&self) -> Vec<usize> {
        let usable = |backup: bool| -> Vec<usize> {
            (0..self.servers.len())
                .filter(|&index| {
                    self.servers[index].is_backup() == backup && self.servers[index].is_usable()
                })
                .collect()
        };
        let primaries = usable(false);
        if primaries.is_empty() {
            usable(true)
        } else {
            primaries
        }
    }

    pub fn usable_servers(&self) -> usize {
        self.candidates().len()
    }

    /// Picks a server for a client at `client`, avoiding `excluded` (servers that failed this
    /// session) unless nothing else is left.
    pub fn pick(&self, client: IpAddr, excluded: &[usize]) -> Pick {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Pick::NoServer;
        }
        let with_slot: Vec<usize> = candidates
            .into_iter()
            .filter(|&index| self.servers[index].has_free_slot())
            .collect();
        let fresh: Vec<usize> = with_slot
            .iter()
            .copied()
            .filter(|index| !excluded.contains(index))
            .collect();
        let mut eligible = if fresh.is_empty() { with_slot } else { fresh };
        // A slot can be taken between the check and the reservation: try the others then.
        while !eligible.is_empty() {
            let Some(index) = self.balancer.pick(&self.servers, &eligible, client) else {
                break;
            };
            if let Some(slot) = self.servers[index].reserve() {
                return Pick::Server { index, slot };
            }
            eligible.retain(|&other| other != index);
        }
        Pick::AllFull
    }

    pub fn stats(&self) -> BackendStats {
        let shared = &self.shared;
        BackendStats {
            name: self.config.name.clone(),
            balance: self.config.balance,
            sessions_current: shared.sessions_current.load(Ordering::Relaxed),
            sessions_total: shared.sessions_total.load(Ordering::Relaxed),
            bytes_in: shared.bytes_in.load(Ordering::Relaxed),
            bytes_out: shared.bytes_out.load(Ordering::Relaxed),
            connect_errors: shared.connect_errors.load(Ordering::Relaxed),
            retries: shared.retries.load(Ordering::Relaxed),
            redispatches: shared.redispatches.load(Ordering::Relaxed),
            refused: shared.refused.load(Ordering::Relaxed),
            queue_current: shared.queue.len(),
            servers_up: self.servers.iter().filter(|server| server.is_up()).count(),
            servers_usable: self.usable_servers(),
            servers: self.servers.iter().map(|server| server.stats()).collect(),
            queued_total: shared.queue.queued_total(),
            queue_wait_p99: shared.queue.wait_p99(),
            times: shared.times.stats(),
        }
    }

    /// Starts one health-check task per server; they stop when `stop` is cancelled.
    /// `on_flip` is called after every state change (to publish health).
    pub fn spawn_checks(&self, stop: &CancellationToken, on_flip: &Arc<dyn Fn() + Send + Sync>) {
        let Some(checker) = &self.checker else {
            return;
        };
        for (server, server_config) in self.servers.iter().zip(&self.config.servers) {
            let task = CheckTask {
                backend: self.config.name.clone(),
                server: Arc::clone(server),
                target: CheckTarget::of(&self.config, server_config),
                checker: checker.clone(),
                shutdown_sessions: self.config.on_server_down == OnServerDown::ShutdownSessions,
                on_flip: Arc::clone(on_flip),
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = task.run() => {}
                }
            });
        }
    }
}

struct CheckTask {
    backend: String,
    server: Arc<Server>,
    target: CheckTarget,
    checker: Checker,
    shutdown_sessions: bool,
    on_flip: Arc<dyn Fn() + Send + Sync>,
}

impl CheckTask {
    async fn run(self) {
        let config = self.checker.config().clone();
        let mut random = fastrand::Rng::new();
        let mut wait = first_check_delay(config.interval, self.server.is_up(), &mut random);
        loop {
            self.sleep_or_announce_traffic_verdict(wait).await;
            let result = self
                .checker
                .check(self.target)
                .await
                .map_err(|failure| failure.to_string());
            let failure = result.as_ref().err().cloned();
            if self.server.record_check(result, config.rise, config.fall) {
                self.announce(failure.as_deref().unwrap_or("check passed"));
            }
            self.server.wake_queue_while_ramping();
            // Faster checks while a state change is pending (HAProxy's fastinter).
            let interval = if self.server.is_transitioning() {
                (config.interval / 4).max(Duration::from_millis(50))
            } else {
                config.interval
            };
            wait = jittered(interval, config.jitter_percent, &mut random);
        }
    }

    /// Sleeps until the next check, unless client traffic marks the server down first: that is
    /// announced at once, also during the spread first wait after a start or reload, which may
    /// last a whole interval.
    async fn sleep_or_announce_traffic_verdict(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.server.marked_down_by_traffic.notified() => {
                self.announce("connection attempts of client traffic failed in a row");
            }
        }
    }

    /// Logs an up/down change, cuts the sessions of a server gone down if configured, and
    /// republishes health.
    fn announce(&self, reason: &str) {
        let up = self.server.is_up();
        tracing::info!(
            backend = %self.backend,
            server = %self.server.name,
            address = %self.server.address,
            up,
            reason,
            "server health changed"
        );
        if !up && self.shutdown_sessions {
            self.server.cut_sessions();
        }
        (self.on_flip)();
    }
}
