//! One task per VRRP instance: it drives `vipd_vrrp::VirtualRouter` with real time and carries
//! out what the router asks for through the host's seams (transport, addresses, announcer).
//!
//! The task `select!`s on: received adverts, the router's next deadline (its one timer), tracker
//! verdicts, its interface's link state, host events, and commands (maintenance, shutdown). Every
//! input is fed with the current time; then every output is drained before the next wait. The
//! task decides nothing about VRRP: what to do about a VIP found missing, a leftover VIP at
//! start or a renumbered interface is the router's call (docs/design/vrrp.md, "Host events").

use std::collections::HashMap;
use std::mem::Discriminant;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use vipd_net::{AddressManager, Announce, Change, DeadlineTimer, VrrpTransport};
use vipd_vrrp::{
    Advertisement, ChecksumForm, Input, Notice, Output, Priority, State, VirtualRouter,
};

use crate::control::{InstanceCounters, InstanceStatus, MasterSeen, VrrpState};
use crate::daemon::advert_drops;
use crate::daemon::host::HostEvent;
use crate::daemon::notify::{HookState, Notifier};
use crate::daemon::priority::{self, Contribution, Effective};
use crate::daemon::rate_limited_log::RateLimitedLog;
use crate::daemon::tracker::{self, Reading, TrackerInfo};
use crate::daemon::unknown_peer::UnknownPeers;
use crate::daemon::watchdog::{HEARTBEAT_PERIOD, Heartbeat};

mod reconfigure;

pub use reconfigure::Reconfiguration;

/// How often the router asks for its socket, its address and (as master) its VIPs to be checked,
/// in case a netlink notification was lost (the monitors catch the common case at once).
pub const HOST_CHECK_EVERY: Duration = Duration::from_secs(5);

/// At most this many adverts are read in one pass of the task's loop (see `receive_queued`):
/// enough to drain a flood's backlog, few enough (well under a millisecond) that timers and
/// commands never wait long.
const RECEIVE_BATCH: usize = 64;

/// What the supervisor can ask of a running instance.
#[derive(Debug)]
pub enum Command {
    /// Operator maintenance: release mastership (priority 0) and stay backup, or resume.
    Maintenance(bool),
    /// Shut down: a master sends priority 0 and removes its VIPs; the reply comes after that.
    Shutdown(oneshot::Sender<()>),
    /// A reload restarted some of this instance's trackers: follow the new ones.
    ReplaceTrackers(Vec<(TrackerInfo, watch::Receiver<Reading>)>),
    /// A reload changed what can change in place; the reply comes once it is applied, or says
    /// why the transport or the router refused it (then the router is unchanged).
    Reconfigure(Box<Reconfiguration>, oneshot::Sender<anyhow::Result<()>>),
}

/// Everything one instance task needs from the outside, built by the supervisor.
pub struct Parts<T, A, N> {
    pub name: String,
    pub interface: String,
    pub router: VirtualRouter,
    /// v3 over IPv4: which checksum form to send.
    pub checksum: ChecksumForm,
    pub transport: T,
    pub addresses: Arc<A>,
    /// One announcer per interface the VIPs live on, by interface name: each VIP is announced
    /// on its own link with that link's MAC, as keepalived does (docs/design/vrrp.md,
    /// "VIPs on other interfaces").
    pub announcers: Vec<(String, N)>,
    pub vips: Vec<vipd_net::Vip>,
    /// Other VRIDs this node runs on the same interface in the same family: their adverts reach
    /// our socket too and are not "wrong VRID" drops.
    pub sibling_vrids: Vec<u8>,
    pub trackers: Vec<(TrackerInfo, watch::Receiver<Reading>)>,
    /// Whether the instance's interface is up.
    pub link: watch::Receiver<bool>,
    pub events: broadcast::Receiver<HostEvent>,
    /// Deadlines to the microsecond through a timerfd; off on tokio's paused test clock.
    pub precise_timers: bool,
    pub notifier: Notifier,
    /// Beaten after every pass of the loop, for systemd's watchdog (`daemon::watchdog`).
    pub heartbeat: Heartbeat,
    /// For status: the VIPs as configured (with prefix), the VRID and the version number.
    pub vip_strings: Vec<String>,
    pub vrid: u8,
    pub version: u8,
}

/// A running instance, as the supervisor holds it.
pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<InstanceStatus>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Shuts the instance down and waits for its VIPs to be released.
    pub async fn shutdown(self) {
        let (done, released) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = released.await;
        }
        let _ = self.task.await;
    }

    /// Applies a reload's change in place and waits until it is; an error when the transport or
    /// the router refused it or the task is gone.
    pub async fn reconfigure(&self, new: Reconfiguration) -> anyhow::Result<()> {
        let (applied, outcome) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure(Box::new(new), applied))
            .await
            .map_err(|_| anyhow::anyhow!("the instance task has ended"))?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the instance task has ended"))??;
        Ok(())
    }
}

/// Starts the instance task.
pub fn spawn<T, A, N>(parts: Parts<T, A, N>) -> Handle
where
    T: VrrpTransport + 'static,
    A: AddressManager + 'static,
    N: Announce + 'static,
{
    let (commands, command_rx) = mpsc::channel(16);
    let initial = InstanceStatus {
        name: parts.name.clone(),
        interface: parts.interface.clone(),
        vrid: parts.vrid,
        version: parts.version,
        state: VrrpState::Initialize,
        // Kept by an operator across a restart (the supervisor applies it before the start).
        maintenance: parts.router.in_maintenance(),
        configured_priority: parts.router.configured_priority().get(),
        effective_priority: parts.router.effective_priority().get(),
        vips: parts.vip_strings.clone(),
        master: None,
        trackers: Vec::new(),
        counters: InstanceCounters::default(),
        state_since_unix_seconds: unix_seconds(SystemTime::now()),
        vips_held: Vec::new(),
    };
    let (status_tx, status) = watch::channel(initial);
    let task = tokio::spawn(Instance::new(parts, status_tx).run(command_rx));
    Handle {
        commands,
        status,
        task,
    }
}

struct Instance<T, A, N> {
    parts: Parts<T, A, N>,
    status: watch::Sender<InstanceStatus>,
    /// Adverts the codec refused, by reason (the transport and the router count their own).
    parse_drops: advert_drops::Tally,
    /// Unicast adverts from addresses that are not configured peers.
    unknown_peers: UnknownPeers,
    /// A VIP removal failed: every host check removes the VIPs again until none fails, so no VIP
    /// stays behind on a node that is not master (docs/design/vrrp.md, Host events).
    removal_failed: bool,
    /// The interface has no address of its own left (only VIPs, or none): no advert can leave
    /// from a valid source, and a VIP must never be one, so the instance is in Fault until an
    /// address is added (keepalived does the same).
    no_own_address: bool,
    /// Why the VRRP socket could not yet be opened on a recreated interface, if it could not:
    /// retried on every address added and every host check, logged once per reason.
    reopen_failed: Option<String>,
    /// One limiter per kind of router notice: a peer can cause them with every advert.
    notice_logs: HashMap<Discriminant<Notice>, RateLimitedLog>,
    /// When the router entered its state (for status: "in state since").
    state_since: SystemTime,
    /// The VIPs on the host, as last added, removed or checked.
    held_vips: HeldVips,
}

impl<T, A, N> Instance<T, A, N>
where
    T: VrrpTransport,
    A: AddressManager,
    N: Announce,
{
    fn new(parts: Parts<T, A, N>, status: watch::Sender<InstanceStatus>) -> Self {
        Self {
            parts,
            status,
            parse_drops: advert_drops::Tally::default(),
            unknown_peers: UnknownPeers::default(),
            removal_failed: false,
            no_own_address: false,
            reopen_failed: None,
            notice_logs: HashMap::new(),
            state_since: SystemTime::now(),
            held_vips: HeldVips::default(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.apply_trackers_and_link(now());
        let startup = self.startup().await;
        self.parts.router.handle_input(now().into_std(), startup);
        self.drain_outputs().await;
        let mut timer = RouterTimer::start(self.parts.precise_timers, &self.parts.name);
        // A pass at least this often, even with nothing to do, so that the heartbeat says "this
        // task runs" and not "this task had work" (a backup in Fault may wait for minutes).
        let mut heartbeat_tick = tokio::time::interval(HEARTBEAT_PERIOD);
        heartbeat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.parts.heartbeat.beat();
            let deadline = self.parts.router.poll_timeout().map(Instant::from_std);
            tokio::select! {
                // Biased: after a stall, an advert that is already waiting is handled before an
                // expired down timer, so a live master is not taken over from because the task
                // polled its branches in the wrong order. Timers cannot starve: every pass ends
                // with `fire_due_timers`.
                biased;
                command = commands.recv() => {
                    if self.command(command).await.is_break() {
                        return;
                    }
                }
                received = self.parts.transport.recv() => match received {
                    Ok(received) => {
                        self.receive(&received);
                        self.receive_queued();
                    }
                    Err(error) => {
                        warn!(instance = %self.parts.name, %error, "receiving VRRP failed");
                        // A persistent socket error must not spin a core.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = timer.sleep_until(deadline) => {
                    self.parts.router.handle_timeout(now().into_std());
                }
                () = tracker::any_changed(&mut self.parts.trackers) => self.apply_trackers_and_link(now()),
                Ok(()) = self.parts.link.changed() => {
                    // `changed` has marked the new state seen: follow a recreated interface here.
                    if *self.parts.link.borrow() {
                        self.follow_a_recreated_interface();
                    }
                    self.apply_trackers_and_link(now());
                }
                event = self.parts.events.recv() => self.host_event(event).await,
                // Nothing happened: the loop's top beats, nothing changed to publish.
                _ = heartbeat_tick.tick() => continue,
            }
            self.fire_due_timers();
            self.drain_outputs().await;
            self.publish();
        }
    }

    /// The router's start: whether the host holds VIPs of ours that a killed predecessor left
    /// is the router's to weigh (docs/design/vrrp.md, "Restart after a crash").
    async fn startup(&mut self) -> Input {
        for vip in &self.parts.vips {
            match self.parts.addresses.contains(vip).await {
                Ok(true) => {
                    info!(instance = %self.parts.name, vip = %vip.address, "found a VIP of ours on the host at start: listening before keeping or removing it");
                    self.held_vips.set(vip, true);
                    return Input::StartupHoldingVips;
                }
                Ok(false) => {}
                // Unreadable counts as held: listening first is right either way, and removing
                // a VIP that a live master holds here would cut its clients off.
                Err(error) => {
                    warn!(instance = %self.parts.name, vip = %vip.address, %error, "cannot read the host's addresses at start: listening before keeping or removing the VIPs");
                    return Input::StartupHoldingVips;
                }
            }
        }
        Input::Startup
    }

    /// Carries out a command; `Break` when the task must end (the reply, if any, sent).
    async fn command(&mut self, command: Option<Command>) -> std::ops::ControlFlow<()> {
        match command {
            Some(Command::ReplaceTrackers(trackers)) => {
                self.parts.trackers = trackers;
                self.apply_trackers_and_link(now());
            }
            Some(Command::Reconfigure(new, applied)) => {
                let _ = applied.send(self.reconfigure(*new).await);
            }
            Some(Command::Maintenance(on)) => {
                info!(instance = %self.parts.name, on, "maintenance");
                self.parts
                    .router
                    .handle_input(now().into_std(), Input::Maintenance(on));
            }
            Some(Command::Shutdown(done)) => {
                self.parts
                    .router
                    .handle_input(now().into_std(), Input::Shutdown);
                self.drain_outputs().await;
                self.publish();
                let _ = done.send(());
                return std::ops::ControlFlow::Break(());
            }
            // The supervisor is gone: release like a shutdown rather than hold VIPs nobody
            // manages.
            None => {
                self.parts
                    .router
                    .handle_input(now().into_std(), Input::Shutdown);
                self.drain_outputs().await;
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// Fires the router's timers that are due, whichever branch woke the task: under a flood of
    /// packets the timer branches might otherwise never be polled.
    fn fire_due_timers(&mut self) {
        let now = now().into_std();
        if self.parts.router.poll_timeout().is_some_and(|at| at <= now) {
            self.parts.router.handle_timeout(now);
        }
    }

    fn receive(&mut self, received: &vipd_net::ReceivedAdvert) {
        if received.from_unknown_peer {
            let master = self.parts.router.state() == State::Master;
            let vrid = self.parts.vrid;
            let now = now().into_std();
            self.unknown_peers
                .saw(&self.parts.name, vrid, received, master, now);
            return;
        }
        // Adverts of our other instances on this interface arrive on every socket; they are
        // not addressed to this router and are not errors.
        if received
            .payload
            .get(1)
            .is_some_and(|vrid| self.parts.sibling_vrids.contains(vrid))
        {
            return;
        }
        match Advertisement::from_bytes(&received.payload, received.source, received.destination) {
            Ok(parsed) => {
                let input = Input::Advertisement {
                    source: received.source,
                    advert: parsed.advertisement,
                };
                // RFC 9568 6.4.2: the Master_Down_Timer restarts when the advert is received,
                // which is when the kernel stamped it, not when this task got to read it.
                let now = now().into_std();
                let arrived = received.received_at.map_or(now, |at| at.min(now));
                self.parts.router.handle_input(arrived, input);
            }
            Err(error) => {
                self.parse_drops.count(advert_drops::parse_reason(&error));
                debug!(instance = %self.parts.name, source = %received.source, %error, "dropped malformed advertisement");
            }
        }
    }

    /// Reads what else waits on the socket, up to [`RECEIVE_BATCH`], before the rest of the pass
    /// (timers, outputs, status) runs once for all of it: run per packet, that work made a
    /// flood of forged adverts overflow the socket's queue, and the master's adverts were lost
    /// with the rest (a false failover).
    fn receive_queued(&mut self) {
        for _ in 1..RECEIVE_BATCH {
            match self.parts.transport.recv().now_or_never() {
                Some(Ok(received)) => self.receive(&received),
                Some(Err(error)) => {
                    warn!(instance = %self.parts.name, %error, "receiving VRRP failed");
                    return;
                }
                None => return,
            }
        }
    }

    /// Reopens the VRRP socket if the interface was deleted and created again (it has another
    /// index): left on the old one, a backup would hear no master and take over, and a master
    /// could not send. (Host events name interfaces, so nothing else here knows the index.)
    fn follow_a_recreated_interface(&mut self) {
        match self.parts.transport.reopen_if_moved() {
            Ok(None) => {}
            Ok(Some((old, new))) => {
                warn!(instance = %self.parts.name, interface = %self.parts.interface, old_index = old, new_index = new, "interface created again: VRRP socket reopened on it");
                self.reopen_failed = None;
            }
            // Gone (it is in Fault then) or not yet usable: try again later.
            Err(error) => {
                let reason = error.to_string();
                if self.reopen_failed.as_ref() != Some(&reason) && *self.parts.link.borrow() {
                    warn!(instance = %self.parts.name, interface = %self.parts.interface, %error, "cannot reopen the VRRP socket on the interface yet");
                }
                self.reopen_failed = Some(reason);
            }
        }
    }

    /// Sends from the interface's address of now: renumbered while vipd runs, the interface
    /// sends adverts from its new address, and a VRRPv3 IPv4 checksum over the old one would
    /// make the peer drop them all. The router learns it too, for the equal-priority
    /// tie-break. Errors are the interface being gone or without an address: Fault or
    /// reopening covers those.
    fn follow_the_source_address(&mut self) {
        match self.parts.transport.follow_source_address() {
            Ok(Some((old, new))) => {
                warn!(instance = %self.parts.name, interface = %self.parts.interface, %old, %new, "the interface's address changed: adverts now carry the new one");
                self.parts
                    .router
                    .handle_input(now().into_std(), Input::PrimaryAddress(new));
                self.set_no_own_address(false);
            }
            Ok(None) => self.set_no_own_address(false),
            Err(vipd_net::NetError::NoAddress { .. }) => self.set_no_own_address(true),
            Err(error) => {
                debug!(instance = %self.parts.name, %error, "cannot read the interface's address");
            }
        }
    }

    fn set_no_own_address(&mut self, none: bool) {
        if std::mem::replace(&mut self.no_own_address, none) == none {
            return;
        }
        if none {
            warn!(instance = %self.parts.name, interface = %self.parts.interface, "the interface has no address of its own left (a VIP is never the adverts' source): Fault until one is added");
        } else {
            info!(instance = %self.parts.name, interface = %self.parts.interface, "the interface has an address of its own again");
        }
        self.apply_trackers_and_link(now());
    }

    /// Recomputes Fault and the effective priority from the trackers and the link.
    fn apply_trackers_and_link(&mut self, at: Instant) {
        // A link that came up may be an interface deleted and created again: the socket follows
        // it before the router can leave Fault, whichever event noticed the link first (an
        // address added to the new interface can arrive before the link branch runs).
        if self.parts.link.has_changed().unwrap_or(false) && *self.parts.link.borrow() {
            self.follow_a_recreated_interface();
        }
        let link_up = *self.parts.link.borrow_and_update();
        let contributions: Vec<Contribution> = self
            .parts
            .trackers
            .iter_mut()
            .map(|(info, reading)| {
                Contribution::of(info.weight, reading.borrow_and_update().verdict)
            })
            .collect();
        let configured = self.parts.router.configured_priority().get();
        let effective = if link_up && !self.no_own_address {
            priority::effective(configured, contributions)
        } else {
            // docs/design/vrrp.md, Fault: the interface down, or without an address of its own,
            // is a Fault, whatever the trackers say.
            Effective::Fault
        };
        let now = at.into_std();
        match effective {
            Effective::Fault => self.parts.router.handle_input(now, Input::Fault(true)),
            Effective::Priority(value) => {
                // The router advertises a changed priority at once (docs/design/vrrp.md, Tracking).
                self.parts
                    .router
                    .handle_input(now, Input::EffectivePriority(Priority::new(value)));
                self.parts.router.handle_input(now, Input::Fault(false));
            }
        }
    }

    /// What the host saw: the instance's interface renumbered, or VIPs of ours gone.
    async fn host_event(&mut self, event: Result<HostEvent, broadcast::error::RecvError>) {
        match event {
            Ok(HostEvent::AddressAdded { interface }) if interface == self.parts.interface => {
                // An IPv4 socket can be opened on a recreated interface once it has an address.
                if self.reopen_failed.is_some() {
                    self.follow_a_recreated_interface();
                }
                self.follow_the_source_address();
            }
            Ok(HostEvent::AddressRemoved { interface, address }) => {
                if interface == self.parts.interface {
                    self.follow_the_source_address();
                }
                let ours =
                    |vip: &vipd_net::Vip| vip.address == address && vip.interface == interface;
                if self.parts.vips.iter().any(ours) {
                    self.report_missing_vips().await;
                }
            }
            Ok(HostEvent::InterfaceRecreated { interface }) => {
                if self.parts.vips.iter().any(|vip| vip.interface == interface) {
                    self.report_missing_vips().await;
                }
            }
            Ok(HostEvent::AddressAdded { .. }) => {}
            // Missed events: check the host instead of guessing.
            Err(broadcast::error::RecvError::Lagged(_)) => self.check_host(true).await,
            Err(broadcast::error::RecvError::Closed) => {
                // No monitor: the router's periodic host check is all there is.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The router's periodic [`Output::CheckHost`].
    async fn check_host(&mut self, vips: bool) {
        self.follow_a_recreated_interface();
        self.follow_the_source_address();
        if vips {
            self.report_missing_vips().await;
        }
        if self.removal_failed && self.parts.router.state() != State::Master {
            info!(instance = %self.parts.name, "removing the VIPs again after a failed removal");
            self.remove_vips().await;
        }
    }

    /// Tells the router how many of its VIPs the host lacks; a master puts them back.
    async fn report_missing_vips(&mut self) {
        let mut missing = 0;
        for vip in &self.parts.vips {
            match self.parts.addresses.contains(vip).await {
                Ok(true) => self.held_vips.set(vip, true),
                Ok(false) => {
                    self.held_vips.set(vip, false);
                    missing += 1;
                }
                Err(error) => {
                    error!(instance = %self.parts.name, vip = %vip.address, %error, "cannot read the host's addresses");
                }
            }
        }
        if missing > 0 {
            self.parts
                .router
                .handle_input(now().into_std(), Input::VipsMissing { count: missing });
        }
    }

    async fn drain_outputs(&mut self) {
        while let Some(output) = self.parts.router.poll_output() {
            match output {
                Output::SendAdvertisement(advert) => self.send(&advert).await,
                Output::AddVips => self.add_vips().await,
                Output::RemoveVips => self.remove_vips().await,
                Output::Announce { count } => self.announce(count),
                Output::CheckHost { vips } => self.check_host(vips).await,
                Output::Notice(notice) => self.log_notice(&notice),
                Output::StateChanged { from, to, reason } => {
                    self.state_since = SystemTime::now();
                    let priority = self.parts.router.effective_priority().get();
                    let name = &self.parts.name;
                    // keepalived's words ("(VI_1) Entering MASTER STATE"), which operators grep.
                    info!(instance = %name, from = ?from, to = ?to, reason = ?reason, priority, "({name}) entering {} state", state_word(to));
                    let hook = match to {
                        State::Master => Some(HookState::Master),
                        State::Backup => Some(HookState::Backup),
                        State::Fault => Some(HookState::Fault),
                        State::Initialize => None,
                    };
                    if let Some(hook) = hook {
                        self.parts.notifier.state_changed(hook, priority);
                    }
                }
            }
        }
    }

    /// Logs what the router noticed, at most one line per kind per period, saying how many
    /// were left out (the router's counters keep the exact numbers).
    fn log_notice(&mut self, notice: &Notice) {
        let limiter = self
            .notice_logs
            .entry(std::mem::discriminant(notice))
            .or_default();
        let Some(suppressed) = limiter.allow(now().into_std()) else {
            return;
        };
        let instance = &self.parts.name;
        match notice {
            Notice::IntervalMismatch {
                source,
                theirs,
                ours,
                accepted: true,
            } => {
                warn!(%instance, %source, ?theirs, ?ours, suppressed, "a router of this VRID advertises another interval: accepted (a VRRPv3 backup follows the master's), but give every node the same advert_interval");
            }
            Notice::IntervalMismatch {
                source,
                theirs,
                ours,
                accepted: false,
            } => {
                warn!(%instance, %source, ?theirs, ?ours, suppressed, "a router of this VRID advertises another interval: dropped (RFC 3768 7.1), so both may become master; give every node the same advert_interval");
            }
            Notice::AddressListMismatch { source, count: 0 } => {
                warn!(%instance, %source, suppressed, "an advert carries no addresses (keepalived sends none when every VIP is in virtual_ipaddress_excluded): accepted");
            }
            Notice::AddressListMismatch { source, count } => {
                warn!(%instance, %source, count, suppressed, "an advert's address list differs from this instance's VIPs: accepted; give every node the same VIPs");
            }
            Notice::OwnerHearsAdvert { source, priority } => {
                error!(%instance, %source, priority = priority.get(), suppressed, "configuration error: another router of this VRID is an address owner (priority 255) too; only one router may own the addresses");
            }
            Notice::TwoMasters {
                source,
                priority,
                ours,
                kept_master: true,
            } => {
                let (theirs, ours) = (priority.get(), ours.get());
                warn!(%instance, %source, priority = theirs, ours, suppressed, "({instance}) two masters: kept MASTER over peer {source} (priority {ours} vs {theirs}) and answered with an advert, so it yields; adverts were lost or blocked between them");
            }
            Notice::TwoMasters {
                source,
                priority,
                ours,
                kept_master: false,
            } => {
                let (theirs, ours) = (priority.get(), ours.get());
                warn!(%instance, %source, priority = theirs, ours, suppressed, "({instance}) two masters: yielding to peer {source} (priority {theirs} vs {ours}); adverts were lost or blocked between them");
            }
            Notice::AuthMismatch { source } => {
                warn!(%instance, %source, suppressed, "an advert's authentication (auth_type or password) differs from this instance's: dropped (RFC 3768 7.1), so both may become master; give every node the same authentication");
            }
            Notice::LostToOwner { source } => {
                warn!(%instance, owner = %source, suppressed, "the address owner (priority 255) took over");
            }
        }
    }

    async fn add_vips(&mut self) {
        // Master again: the VIPs belong here, whatever an earlier removal left.
        self.removal_failed = false;
        for vip in &self.parts.vips {
            match self.parts.addresses.add(vip).await {
                Ok(Change::Applied) => {
                    self.held_vips.set(vip, true);
                    debug!(instance = %self.parts.name, vip = %vip.address, "VIP added");
                }
                Ok(Change::AlreadyInPlace) => self.held_vips.set(vip, true),
                Err(error) => {
                    error!(instance = %self.parts.name, vip = %vip.address, %error, "adding VIP failed");
                }
            }
        }
    }

    async fn remove_vips(&mut self) {
        // A VIP this run never added was left by an earlier one (killed, OOM, a crash): the
        // router asks for their removal at start.
        let never_master = self.parts.router.stats().became_master == 0;
        self.removal_failed = false;
        for vip in &self.parts.vips {
            let removed = self.parts.addresses.remove(vip).await;
            if removed.is_ok() {
                self.held_vips.set(vip, false);
            }
            match removed {
                Ok(Change::Applied) if never_master => {
                    warn!(instance = %self.parts.name, vip = %vip.address, "removed a VIP left over from an earlier run");
                }
                Ok(Change::Applied) => {
                    debug!(instance = %self.parts.name, vip = %vip.address, "VIP removed");
                }
                Ok(Change::AlreadyInPlace) => {}
                Err(error) => {
                    self.removal_failed = true;
                    error!(instance = %self.parts.name, vip = %vip.address, %error, "removing VIP failed; retried at the next host check");
                }
            }
        }
    }

    async fn send(&mut self, advert: &Advertisement) {
        match send_advertisement(&self.parts.transport, advert, self.parts.checksum).await {
            Ok(failures) => {
                for (destination, error) in failures {
                    warn!(instance = %self.parts.name, %destination, %error, "sending advertisement failed");
                }
            }
            Err(error) => {
                error!(instance = %self.parts.name, %error, "cannot build advertisement");
            }
        }
    }

    fn announce(&self, count: u32) {
        for vip in &self.parts.vips {
            self.announce_vip(vip, count);
        }
    }

    /// Announces `vip` `count` times on its own interface, with that interface's MAC.
    pub(super) fn announce_vip(&self, vip: &vipd_net::Vip, count: u32) {
        let Some((_, announcer)) = self
            .parts
            .announcers
            .iter()
            .find(|(interface, _)| *interface == vip.interface)
        else {
            warn!(instance = %self.parts.name, vip = %vip.address, interface = %vip.interface, "no announcer for the VIP's interface");
            return;
        };
        for _ in 0..count {
            if let Err(error) = announcer.announce(vip.address) {
                warn!(instance = %self.parts.name, vip = %vip.address, %error, "announcement failed");
                break;
            }
        }
    }

    fn publish(&self) {
        let router = &self.parts.router;
        let trackers = tracker::statuses(&self.parts.trackers);
        let stats = router.stats();
        let transport = self.parts.transport.stats();
        let mut counters = InstanceCounters {
            adverts_sent: stats.adverts_sent,
            adverts_received: stats.adverts_received,
            became_master: stats.became_master,
            two_masters_seen: stats.two_masters_seen,
            priority_zero_sent: stats.priority_zero_sent,
            priority_zero_received: stats.priority_zero_received,
            vips_restored: stats.vips_restored,
            adverts_from_unknown_peers: self.unknown_peers.adverts,
            unknown_peer_masters_seen: self.unknown_peers.masters_seen,
            address_list_mismatch: stats.address_list_mismatch,
            interval_mismatch: stats.interval_mismatch,
            ..InstanceCounters::default()
        };
        self.parse_drops
            .fill(&stats.dropped, &transport, &mut counters);
        let master = router.last_master().map(|master| MasterSeen {
            address: master.address,
            priority: master.priority.get(),
            advert_interval_ms: u32::try_from(master.advert_interval.as_millis())
                .unwrap_or(u32::MAX),
            seen_seconds_ago: now()
                .into_std()
                .saturating_duration_since(master.seen_at)
                .as_secs_f64(),
        });
        let vips_held = self
            .parts
            .vips
            .iter()
            .zip(&self.parts.vip_strings)
            .filter(|(vip, _)| self.held_vips.contains(vip))
            .map(|(_, configured)| configured.clone())
            .collect();
        self.status.send_modify(|status| {
            status.state = vrrp_state(router.state());
            status.maintenance = router.in_maintenance();
            status.effective_priority = router.effective_priority().get();
            status.master = master;
            status.trackers = trackers;
            status.counters = counters;
            status.state_since_unix_seconds = unix_seconds(self.state_since);
            status.vips_held = vips_held;
        });
    }
}

/// The VIPs on the host as the instance last added, removed or checked them, for status (and
/// the `vipd_vrrp_vip_present` metric). VIPs a reload dropped may stay listed; status shows
/// only the configured ones.
#[derive(Debug, Default)]
struct HeldVips(Vec<vipd_net::Vip>);

impl HeldVips {
    fn set(&mut self, vip: &vipd_net::Vip, held: bool) {
        self.0.retain(|other| other != vip);
        if held {
            self.0.push(vip.clone());
        }
    }

    fn contains(&self, vip: &vipd_net::Vip) -> bool {
        self.0.contains(vip)
    }
}

/// Seconds since the Unix epoch, 0 for a clock set before it.
fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Sends `advert` from the transport's source to each of its destinations (the group, or every
/// unicast peer) and returns the sends that failed; the others still go out. The v3 IPv4
/// pseudo-header checksum covers the destination, so each copy is built for its peer, as
/// keepalived does. Used by the instance and by `vipd release`.
pub async fn send_advertisement<T: VrrpTransport>(
    transport: &T,
    advert: &Advertisement,
    checksum: ChecksumForm,
) -> Result<Vec<(std::net::IpAddr, vipd_net::NetError)>, vipd_vrrp::EmitError> {
    let source = transport.source_address();
    let mut failures = Vec::new();
    for destination in transport.destinations() {
        let bytes = advert.to_bytes(source, destination, checksum)?;
        if let Err(error) = transport.send_to(&bytes, destination).await {
            failures.push((destination, error));
        }
    }
    Ok(failures)
}

/// The state as keepalived's log names it, for "entering MASTER state" and its siblings.
fn state_word(state: State) -> &'static str {
    match state {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

fn vrrp_state(state: State) -> VrrpState {
    match state {
        State::Initialize => VrrpState::Initialize,
        State::Backup => VrrpState::Backup,
        State::Master => VrrpState::Master,
        State::Fault => VrrpState::Fault,
    }
}

/// The router's one timer. On a real host a timerfd keeps its deadlines to within microseconds
/// (see `vipd_net::DeadlineTimer` for why tokio's millisecond timers are not enough); on tokio's
/// paused test clock, or where no timerfd can be had, tokio's own timer, which follows that
/// clock. A wake-up that is early for the router's clock is harmless (`handle_timeout` acts only
/// on deadlines that have passed).
enum RouterTimer {
    Precise(DeadlineTimer),
    Tokio,
}

impl RouterTimer {
    fn start(precise: bool, instance: &str) -> Self {
        if !precise {
            return Self::Tokio;
        }
        match DeadlineTimer::new() {
            Ok(timer) => Self::Precise(timer),
            Err(error) => {
                warn!(instance, %error, "no timerfd: VRRP timers keep tokio's millisecond granularity");
                Self::Tokio
            }
        }
    }

    /// Returns at `deadline`; never when there is none.
    async fn sleep_until(&mut self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return std::future::pending().await;
        };
        if let Self::Precise(timer) = self {
            match timer.sleep_until(deadline.into_std()).await {
                Ok(()) => return,
                Err(error) => {
                    warn!(%error, "timerfd failed: VRRP timers keep tokio's millisecond granularity");
                    *self = Self::Tokio;
                }
            }
        }
        tokio::time::sleep_until(deadline).await;
    }
}

fn now() -> Instant {
    Instant::now()
}
