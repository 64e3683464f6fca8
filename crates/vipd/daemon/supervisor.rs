//! The supervisor wires the engines together: one router task per VRRP instance, the proxy, and
//! the trackers that turn health into priority. It owns reload by difference and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vipd_config::{Config, TrackTarget, VrrpInstance};
use vipd_vrrp::VirtualRouter;

use crate::control::{
    ActionError, Control, InstanceStatus, NodeStatus, ServerAction, SessionStatus, TrackerKind,
};
use crate::daemon::admin_state::{AdminStateStore, OutOfService};
use crate::daemon::host::Host;
use crate::daemon::instance::{self, Command};
use crate::daemon::mapping;
use crate::daemon::notify::Notifier;
use crate::daemon::reload::{ReloadEffect, reload_effect};
use crate::daemon::reload_verdict::ReloadRecord;
use crate::daemon::tracker::{self, Reading, TrackerInfo};
use crate::daemon::watchdog::Heartbeats;

mod announce;
#[cfg(test)]
mod tests;

/// A tracker task and what it was started from (so a reload can tell whether to restart it).
struct RunningTracker {
    /// For scripts, the definition; a changed definition restarts the tracker.
    script: Option<vipd_config::Script>,
    reading: watch::Receiver<Reading>,
    cancel: CancellationToken,
}

struct RunningInstance<V> {
    config: VrrpInstance,
    handle: instance::Handle,
    /// The macvlan of an instance with `virtual_mac`, removed after the instance released.
    virtual_mac: Option<V>,
}

impl<V> RunningInstance<V> {
    /// Releases the instance (priority 0, VIPs removed), then deletes its macvlan.
    async fn stop<H: Host<VirtualMac = V>>(self, host: &H) {
        self.handle.shutdown().await;
        if let Some(virtual_mac) = self.virtual_mac
            && let Err(error) = host.remove_virtual_mac(virtual_mac).await
        {
            warn!(instance = %self.config.name, error = format!("{error:#}"), "removing the virtual MAC interface failed");
        }
    }
}

/// An instance's sockets and router, opened before a reload commits.
struct PreparedInstance<H: Host> {
    transport: H::Transport,
    router: VirtualRouter,
    announcers: Vec<(String, H::Announcer)>,
}

/// The unspecified address of `instance`'s family: a running router keeps the primary address
/// it follows, so a reload's router configuration may take any of the family.
fn unspecified_of(instance: &VrrpInstance) -> IpAddr {
    if instance.is_ipv6() {
        IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

/// What the control server needs of one instance.
#[derive(Clone)]
struct InstanceEntry {
    name: String,
    status: watch::Receiver<InstanceStatus>,
    commands: mpsc::Sender<Command>,
}

/// Why a reload was not applied in full.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Refused while preparing: nothing changed, the running configuration stays whole.
    #[error("{0:#}")]
    Rejected(anyhow::Error),
    /// Committed, but what each entry says did not happen: an instance that could not start
    /// again once its old self had released.
    #[error("{}", .0.join("; "))]
    Partial(Vec<String>),
}

/// The running daemon.
pub struct Supervisor<H: Host> {
    host: H,
    config: Config,
    proxy: Arc<vipd_proxy::Proxy>,
    trackers: HashMap<TrackTarget, RunningTracker>,
    instances: BTreeMap<String, RunningInstance<H::VirtualMac>>,
    /// The instances in configuration order, republished after every start and reload.
    registry: watch::Sender<Vec<InstanceEntry>>,
    /// What operators set through the admin API; applied again to a restarted instance.
    admin: Arc<AdminStateStore>,
    /// The instance and announce group tasks' heartbeats, for systemd's watchdog.
    heartbeats: Heartbeats,
    /// The announce devices and group tasks.
    announce: announce::RunningAnnounce<H::AnnounceDevice>,
    /// The announce groups' status in configuration order, republished after start and reloads.
    announce_registry: watch::Sender<Vec<announce::AnnounceEntry>>,
}

impl<H: Host> Supervisor<H> {
    /// Starts the proxy, the trackers and every instance of `config`, with an admin state kept
    /// in memory only (the tests' daemon; `vipd run` keeps it in the state directory).
    #[cfg(test)]
    pub async fn start(host: H, config: Config) -> Result<Self> {
        Self::start_with_admin_state(host, config, AdminStateStore::in_memory()).await
    }

    /// Starts the proxy, the trackers and every instance of `config`, after applying what `admin`
    /// kept of an earlier run (drained servers, weights, maintenance) so that no instance starts
    /// without it.
    pub async fn start_with_admin_state(
        host: H,
        config: Config,
        admin: Arc<AdminStateStore>,
    ) -> Result<Self> {
        let proxy = vipd_proxy::Proxy::start(mapping::proxy_config(&config))
            .await
            .context("starting the proxy")?;
        let mut supervisor = Self {
            host,
            config: Config {
                vrrp: Vec::new(),
                announce: None,
                ..config.clone()
            },
            proxy: Arc::new(proxy),
            trackers: HashMap::new(),
            instances: BTreeMap::new(),
            registry: watch::channel(Vec::new()).0,
            admin,
            heartbeats: Heartbeats::default(),
            announce: announce::RunningAnnounce::default(),
            announce_registry: watch::channel(Vec::new()).0,
        };
        supervisor.restore_server_admin_state(&config).await;
        supervisor.sync_trackers(&config);
        for instance in &config.vrrp {
            supervisor.start_instance(instance, &config).await?;
        }
        let devices = supervisor.prepare_announce(&config).await?;
        let failures = supervisor.commit_announce(&config, devices, &[]).await;
        if !failures.is_empty() {
            anyhow::bail!("{}", failures.join("; "));
        }
        supervisor.config = config;
        supervisor.publish_registry();
        Ok(supervisor)
    }

    /// The control server's view of this node; it follows reloads, and `reloads` says what came
    /// of each.
    pub fn control_handle(
        &self,
        node: String,
        started: Instant,
        reloads: watch::Receiver<ReloadRecord>,
    ) -> NodeControl {
        // The wall clock once: `process_start_time_seconds` must not jitter between scrapes.
        let started_at = SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or_else(SystemTime::now);
        NodeControl {
            node,
            started,
            started_at,
            proxy: Arc::clone(&self.proxy),
            instances: self.registry.subscribe(),
            announce: self.announce_registry.subscribe(),
            reloads,
            admin: Arc::clone(&self.admin),
        }
    }

    /// Applies the kept server overrides to the proxy, after dropping those of servers and
    /// instances `config` does not have.
    async fn restore_server_admin_state(&self, config: &Config) {
        self.forget_unconfigured_admin_state(config).await;
        let kept = self.admin.snapshot();
        for (backend, servers) in &kept.servers {
            for (server, wanted) in servers {
                let mut applied = Ok(());
                if let Some(weight) = wanted.weight {
                    applied = applied.and(self.proxy.set_server_weight(backend, server, weight));
                }
                applied = applied.and(match wanted.admin {
                    Some(OutOfService::Drain) => self.proxy.drain_server(backend, server),
                    Some(OutOfService::Disable) => self.proxy.disable_server(backend, server),
                    None => Ok(()),
                });
                match applied {
                    Ok(()) => {
                        info!(backend = %backend, server = %server, admin = ?wanted.admin, weight = wanted.weight, "admin state restored");
                    }
                    Err(error) => {
                        warn!(backend = %backend, server = %server, %error, "cannot restore the admin state");
                    }
                }
            }
        }
    }

    fn publish_registry(&self) {
        let entries = self
            .config
            .vrrp
            .iter()
            .filter_map(|instance| {
                let running = self.instances.get(&instance.name)?;
                Some(InstanceEntry {
                    name: instance.name.clone(),
                    status: running.handle.status.clone(),
                    commands: running.handle.commands.clone(),
                })
            })
            .collect();
        self.registry.send_replace(entries);
    }

    /// Applies a new configuration by difference: unchanged instances keep running with their
    /// state and VIPs, changed ones take what they can in place (their state kept) and restart
    /// only when redefined (`reload::reload_effect`), unchanged listeners keep their sockets,
    /// established sessions continue.
    ///
    /// All or nothing (docs/design/architecture.md, Reload): everything that can fail is prepared
    /// first (the proxy's sockets and backends, every instance's router configuration, the
    /// sockets of new instances) while nothing changes; any failure there drops what was
    /// prepared and leaves the proxy, the trackers and every instance as they were
    /// ([`ReloadError::Rejected`]). Only then is the reload committed; what fails after that is
    /// [`ReloadError::Partial`].
    pub async fn reload(&mut self, new: Config) -> Result<(), ReloadError> {
        let proxy = self
            .proxy
            .prepare(mapping::proxy_config(&new))
            .await
            .context("applying the proxy configuration")
            .map_err(ReloadError::Rejected)?;
        let mut prepared = self
            .prepare_instances(&new)
            .context("nothing was changed")
            .map_err(ReloadError::Rejected)?;
        let devices = self
            .prepare_announce(&new)
            .await
            .context("nothing was changed")
            .map_err(ReloadError::Rejected)?;
        proxy.commit().await;
        self.forget_unconfigured_admin_state(&new).await;
        self.commit_instances(new, &mut prepared, devices)
            .await
            .map_err(ReloadError::Partial)
    }

    /// The fallible part of each instance's reload, done before anything changes: the router
    /// configuration of every instance the reload starts or changes, and the sockets of instances
    /// that are new or restarted (a restarted one opens them again once the old one has
    /// released). Instances with a virtual MAC are checked only for their configuration: their
    /// interface is made once a removed instance that may own it has released.
    fn prepare_instances(&self, new: &Config) -> Result<HashMap<String, PreparedInstance<H>>> {
        let mut prepared = HashMap::new();
        for instance in &new.vrrp {
            let running = self.instances.get(&instance.name);
            if running.is_some_and(|running| running.config == *instance) {
                continue;
            }
            // The router's own checks, on the configuration the instance would run with.
            let unspecified = unspecified_of(instance);
            VirtualRouter::new(mapping::router_config(instance, unspecified)?)
                .with_context(|| format!("vrrp {}", instance.name))?;
            let restarts = running.is_some_and(|running| {
                matches!(
                    reload_effect(&running.config, instance),
                    ReloadEffect::Restart(_)
                )
            });
            if instance.virtual_mac.is_some() || (running.is_some() && !restarts) {
                continue;
            }
            let opened = self
                .open_instance(instance)
                .with_context(|| format!("vrrp {}", instance.name))?;
            if running.is_none() {
                prepared.insert(instance.name.clone(), opened);
            }
            // A restart opens its sockets again once the old router has released; opening them
            // here proved it can (its new interface exists, say), and they close now.
        }
        Ok(prepared)
    }

    /// The commit: trackers, removed instances, then every instance in file order. From here
    /// on, what fails is an instance that cannot restart (its interface vanished in between);
    /// it is reported, one entry per instance, and the others are still dealt with.
    async fn commit_instances(
        &mut self,
        new: Config,
        prepared: &mut HashMap<String, PreparedInstance<H>>,
        devices: announce::PreparedDevices<H::AnnounceDevice>,
    ) -> Result<(), Vec<String>> {
        let restarted_trackers = self.sync_trackers(&new);

        let mut old_instances = std::mem::take(&mut self.instances);
        // Removed instances release first: a new instance may take over their VIPs or their
        // macvlan (a renamed instance adopts it), which a later release would delete.
        let removed: Vec<String> = old_instances
            .keys()
            .filter(|name| new.instance(name).is_none())
            .cloned()
            .collect();
        for name in removed {
            if let Some(running) = old_instances.remove(&name) {
                info!(instance = %name, "instance removed; releasing it");
                running.stop(&self.host).await;
            }
        }
        let mut failures = Vec::new();
        for instance in &new.vrrp {
            let outcome = if let Some(running) = old_instances.remove(&instance.name) {
                self.reload_instance(running, instance, &new, &restarted_trackers)
                    .await
            } else {
                info!(instance = %instance.name, "new instance");
                let opened = prepared.remove(&instance.name);
                self.start_opened_instance(instance, &new, opened).await
            };
            if let Err(error) = outcome {
                error!(instance = %instance.name, error = format!("{error:#}"), "instance not running after the reload");
                failures.push(format!("vrrp {}: {error:#}", instance.name));
            }
        }
        failures.extend(
            self.commit_announce(&new, devices, &restarted_trackers)
                .await,
        );
        self.config = new;
        self.publish_registry();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// One instance that runs and is still in the file: kept, changed in place, or restarted.
    async fn reload_instance(
        &mut self,
        mut running: RunningInstance<H::VirtualMac>,
        instance: &VrrpInstance,
        config: &Config,
        restarted_trackers: &[TrackTarget],
    ) -> Result<()> {
        let effect = reload_effect(&running.config, instance);
        match &effect {
            ReloadEffect::Unchanged => {
                if instance
                    .track
                    .iter()
                    .any(|tracker| restarted_trackers.contains(&tracker.target))
                {
                    let readings = self.tracker_readings(&instance.track);
                    let _ = running
                        .handle
                        .commands
                        .send(Command::ReplaceTrackers(readings))
                        .await;
                }
                self.instances.insert(instance.name.clone(), running);
                return Ok(());
            }
            ReloadEffect::InPlace(_) => {
                info!(instance = %instance.name, "instance {effect}; its state is kept");
                // Whatever fails here, the running instance is stopped below, never dropped.
                let applied = match self.reconfiguration(instance) {
                    Ok(new) => running.handle.reconfigure(new).await,
                    Err(error) => Err(error),
                };
                match applied {
                    Ok(()) => {
                        running.config = instance.clone();
                        self.instances.insert(instance.name.clone(), running);
                        return Ok(());
                    }
                    Err(error) => {
                        warn!(instance = %instance.name, error = format!("{error:#}"), "cannot change the instance in place; restarting it");
                    }
                }
            }
            ReloadEffect::Restart(_) => {
                warn!(instance = %instance.name, "instance {effect}");
            }
        }
        running.stop(&self.host).await;
        self.start_instance(instance, config).await
    }

    /// What a running instance needs to take `instance` in place.
    fn reconfiguration(&self, instance: &VrrpInstance) -> Result<instance::Reconfiguration> {
        Ok(instance::Reconfiguration {
            router: mapping::router_config(instance, unspecified_of(instance))?,
            checksum: mapping::checksum_form(instance),
            vips: mapping::vips(instance),
            vip_strings: vip_strings(instance),
            notify: instance.notify.clone(),
            peers: instance
                .unicast
                .as_ref()
                .map(|unicast| unicast.peers.clone()),
            trackers: self.tracker_readings(&instance.track),
        })
    }

    /// Drops the admin state of servers and instances `config` does not have: one that a reload
    /// adds again starts afresh, as the proxy and the routers start it.
    async fn forget_unconfigured_admin_state(&self, config: &Config) {
        self.admin
            .update(|state| {
                state.retain(
                    |backend, server| {
                        config.backend(backend).is_some_and(|backend| {
                            backend.servers.iter().any(|entry| entry.name == server)
                        })
                    },
                    |name| {
                        let group =
                            |announce: &vipd_config::Announce| announce.group(name).is_some();
                        config.instance(name).is_some()
                            || config.announce.as_ref().is_some_and(group)
                    },
                );
            })
            .await;
    }

    /// The heartbeats of the instance tasks, now and after reloads, for systemd's watchdog.
    pub fn heartbeats(&self) -> Heartbeats {
        self.heartbeats.clone()
    }

    /// How long a stop may wait in the configuration in force: `shutdown_grace`, and
    /// `announce.withdraw_delay` before it.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        let withdraw_delay = self
            .config
            .announce
            .as_ref()
            .map_or(std::time::Duration::ZERO, |announce| {
                announce.withdraw_delay
            });
        self.config.shutdown_grace + withdraw_delay
    }

    /// SIGTERM: every instance releases (priority 0, VIPs removed) first, so the peer takes over
    /// at once; then the proxy drains for up to `shutdown_grace`.
    #[cfg(test)]
    pub async fn shutdown(self) {
        self.shutdown_unless_cut(std::future::pending()).await;
    }

    /// SIGTERM: every instance releases (priority 0, VIPs removed) and every announce group is
    /// withdrawn, at once; with groups, the listeners keep serving for `withdraw_delay`; then
    /// the proxy drains for up to `shutdown_grace`; the announce devices close last. `cut` (a
    /// second SIGTERM) ends the delay and the drain; it is polled again after completing, which
    /// the callers' futures allow (a token's `cancelled_owned`, which is ready again, and
    /// `pending`). The release and the
    /// withdrawal run to their end whatever `cut` does: a master that exits sends its
    /// priority-0 advert, so the peer takes over after Skew_Time rather than
    /// Master_Down_Interval.
    pub async fn shutdown_unless_cut(self, cut: impl std::future::Future<Output = ()>) {
        let Self {
            host,
            config,
            proxy,
            trackers,
            instances,
            mut announce,
            ..
        } = self;
        let releases = instances.into_values().map(|running| running.stop(&host));
        let (_, withdrawn) = futures::join!(
            futures::future::join_all(releases),
            announce::withdraw_all(&mut announce)
        );
        let mut cut = std::pin::pin!(cut);
        if withdrawn && let Some(delay) = config.announce.as_ref().map(|a| a.withdraw_delay) {
            // docs/design/announce.md, Stopping: the routers move the flows away while the
            // listeners still answer what reaches this node meanwhile.
            info!(
                ?delay,
                "announced VIPs withdrawn; serving until the routers have converged"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut cut => {}
            }
        }
        for tracker in trackers.values() {
            tracker.cancel.cancel();
        }
        proxy.shutdown_unless_cut(config.shutdown_grace, cut).await;
        // Last: closing the devices deletes the VIPs kept local for the drain.
        drop(announce);
    }

    async fn start_instance(&mut self, instance: &VrrpInstance, config: &Config) -> Result<()> {
        self.start_opened_instance(instance, config, None).await
    }

    /// Starts `instance`, on the sockets `opened` for it during a reload's preparation if any.
    async fn start_opened_instance(
        &mut self,
        instance: &VrrpInstance,
        config: &Config,
        opened: Option<PreparedInstance<H>>,
    ) -> Result<()> {
        let virtual_mac = match &instance.virtual_mac {
            Some(virtual_mac) => Some(self.host.create_virtual_mac(instance, virtual_mac).await?),
            None => None,
        };
        let opened = match opened {
            Some(opened) => Ok(opened),
            None => self.open_instance(instance),
        };
        match opened {
            Ok(opened) => {
                let handle = self.spawn_instance(instance, config, opened);
                self.instances.insert(
                    instance.name.clone(),
                    RunningInstance {
                        config: instance.clone(),
                        handle,
                        virtual_mac,
                    },
                );
                Ok(())
            }
            Err(error) => {
                if let Some(virtual_mac) = virtual_mac
                    && let Err(cleanup) = self.host.remove_virtual_mac(virtual_mac).await
                {
                    warn!(instance = %instance.name, error = format!("{cleanup:#}"), "removing the virtual MAC interface failed");
                }
                Err(error)
            }
        }
    }

    /// What can fail in starting `instance`: its sockets, its announcers and its router. Nothing
    /// runs yet; dropping the result closes the sockets.
    fn open_instance(&self, instance: &VrrpInstance) -> Result<PreparedInstance<H>> {
        let transport = self.host.transport(instance)?;
        let primary = vipd_net::VrrpTransport::source_address(&transport);
        let router = VirtualRouter::new(mapping::router_config(instance, primary)?)
            .with_context(|| format!("vrrp {}", instance.name))?
            .checking_host_every(instance::HOST_CHECK_EVERY);
        let announcers = vip_interfaces(instance)
            .into_iter()
            .map(|interface| Ok((interface.clone(), self.host.announcer(&interface)?)))
            .collect::<Result<_>>()?;
        Ok(PreparedInstance {
            transport,
            router,
            announcers,
        })
    }

    fn spawn_instance(
        &mut self,
        instance: &VrrpInstance,
        config: &Config,
        opened: PreparedInstance<H>,
    ) -> instance::Handle {
        let PreparedInstance {
            transport,
            mut router,
            announcers,
        } = opened;
        if self.admin.in_maintenance(&instance.name) {
            // Before Startup: the router starts as backup and never takes over.
            info!(instance = %instance.name, "instance kept in maintenance by an operator");
            router.handle_input(
                tokio::time::Instant::now().into_std(),
                vipd_vrrp::Input::Maintenance(true),
            );
        }
        let vip_interface = mapping::vip_interface(instance).to_owned();
        // The instance is in Fault while its interface, or its IPv4 macvlan, is down or gone (an
        // IPv6 macvlan is down whenever the instance is not master).
        let mut links = vec![instance.interface.clone()];
        if vip_interface != instance.interface && !instance.is_ipv6() {
            links.push(vip_interface.clone());
        }
        self.host.follow_links(&links);
        // Address events are published for followed interfaces only: a VIP deleted by hand on
        // its own interface comes back at once, not at the next host check. Their link state
        // does not make a Fault (keepalived tracks only the instance's interface too).
        self.host.follow_links(&vip_interfaces(instance));
        // Only the same family: an IPv4 and an IPv6 raw socket never see each other's adverts,
        // and the IPv4 and IPv6 virtual routers with one VRID are independent (RFC 9568
        // section 6), so the other family's VRID may well be ours.
        let sibling_vrids = config
            .vrrp
            .iter()
            .filter(|other| {
                other.name != instance.name
                    && other.interface == instance.interface
                    && other.is_ipv6() == instance.is_ipv6()
            })
            .map(|other| other.vrid)
            .collect();
        let parts = instance::Parts {
            name: instance.name.clone(),
            interface: instance.interface.clone(),
            router,
            checksum: mapping::checksum_form(instance),
            transport,
            addresses: self.host.addresses(),
            announcers,
            vips: mapping::vips(instance),
            sibling_vrids,
            trackers: self.tracker_readings(&instance.track),
            link: link_watch(self.host.links(), links),
            events: self.host.events(),
            precise_timers: self.host.precise_timers(),
            notifier: Notifier::spawn(instance.name.clone(), instance.notify.clone()),
            heartbeat: self.heartbeats.register(&instance.name),
            vip_strings: vip_strings(instance),
            vrid: instance.vrid,
            version: match instance.version {
                vipd_config::VrrpVersion::V2 => 2,
                vipd_config::VrrpVersion::V3 => 3,
            },
        };
        instance::spawn(parts)
    }

    fn tracker_readings(
        &self,
        track: &[vipd_config::Tracker],
    ) -> Vec<(TrackerInfo, watch::Receiver<Reading>)> {
        track
            .iter()
            .filter_map(|tracker| {
                let running = self.trackers.get(&tracker.target)?;
                let (kind, target) = match &tracker.target {
                    TrackTarget::Frontend { name, .. } => (TrackerKind::Frontend, name.clone()),
                    TrackTarget::Script { name } => (TrackerKind::Script, name.clone()),
                    TrackTarget::Interface { name } => (TrackerKind::Interface, name.clone()),
                    TrackTarget::File { path } => (TrackerKind::File, path.display().to_string()),
                };
                let info = TrackerInfo {
                    kind,
                    target,
                    weight: tracker.weight,
                };
                Some((info, running.reading.clone()))
            })
            .collect()
    }

    /// Starts the trackers `config` needs that are not running (or whose script changed), stops
    /// those it no longer needs, and returns the targets that got a new tracker task.
    fn sync_trackers(&mut self, config: &Config) -> Vec<TrackTarget> {
        let mut wanted: HashMap<TrackTarget, Option<vipd_config::Script>> = HashMap::new();
        let announced = config.announce.iter().flat_map(|announce| &announce.groups);
        let tracks = config
            .vrrp
            .iter()
            .map(|instance| &instance.track)
            .chain(announced.map(|group| &group.track));
        for track in tracks {
            for tracker in track {
                let script = match &tracker.target {
                    TrackTarget::Script { name } => config.scripts.get(name).cloned(),
                    _ => None,
                };
                wanted.insert(tracker.target.clone(), script);
            }
        }
        self.trackers.retain(|target, running| {
            let keep = wanted
                .get(target)
                .is_some_and(|script| *script == running.script);
            if !keep {
                running.cancel.cancel();
            }
            keep
        });
        let interfaces: Vec<String> = wanted
            .keys()
            .filter_map(|target| match target {
                TrackTarget::Interface { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        self.host.follow_links(&interfaces);
        let mut started = Vec::new();
        for (target, script) in wanted {
            if self.trackers.contains_key(&target) {
                continue;
            }
            let cancel = CancellationToken::new();
            let reading = match (&target, &script) {
                (TrackTarget::Script { name }, Some(definition)) => {
                    tracker::spawn_script(name.clone(), definition.clone(), cancel.clone())
                }
                (TrackTarget::Script { name }, None) => {
                    // Validation refuses dangling references; stay safe if one slips through.
                    warn!(script = %name, "tracked script is not defined; it counts as failed");
                    watch::channel(Reading {
                        verdict: crate::daemon::priority::Verdict::Down,
                        detail: Some("not defined".into()),
                        unchecked: false,
                    })
                    .1
                }
                (TrackTarget::File { path }, _) => {
                    tracker::spawn_file(path.clone(), cancel.clone())
                }
                (TrackTarget::Interface { name }, _) => {
                    tracker::spawn_interface(name.clone(), self.host.links(), cancel.clone())
                }
                (TrackTarget::Frontend { name, min_up }, _) => tracker::spawn_frontend(
                    name.clone(),
                    *min_up,
                    self.proxy.health(),
                    cancel.clone(),
                ),
            };
            started.push(target.clone());
            self.trackers.insert(
                target,
                RunningTracker {
                    script,
                    reading,
                    cancel,
                },
            );
        }
        started
    }
}

/// For status: the VIPs as configured (with prefix).
fn vip_strings(instance: &VrrpInstance) -> Vec<String> {
    instance
        .vips
        .iter()
        .map(|vip| vip.address.to_string())
        .collect()
}

/// The interfaces `instance`'s VIPs live on, each once, in configuration order.
fn vip_interfaces(instance: &VrrpInstance) -> Vec<String> {
    let mut interfaces: Vec<String> = Vec::new();
    for vip in &instance.vips {
        if !interfaces.contains(&vip.interface) {
            interfaces.push(vip.interface.clone());
        }
    }
    interfaces
}

/// A watch of whether all of `interfaces` are up (an unknown one counts as down), derived from
/// the host's map of every followed interface.
fn link_watch(
    mut links: watch::Receiver<crate::daemon::host::Links>,
    interfaces: Vec<String>,
) -> watch::Receiver<bool> {
    let all_up = move |links: &crate::daemon::host::Links| {
        interfaces
            .iter()
            .all(|name| links.get(name).copied().unwrap_or(false))
    };
    let (tx, rx) = watch::channel(all_up(&links.borrow_and_update()));
    tokio::spawn(async move {
        while links.changed().await.is_ok() {
            let up = all_up(&links.borrow_and_update());
            tx.send_if_modified(|current| std::mem::replace(current, up) != up);
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

/// The node as the control server sees it: published instance status, the proxy's stats and
/// admin actions, and maintenance commands to the router tasks.
pub struct NodeControl {
    node: String,
    started: Instant,
    /// `started` on the wall clock.
    started_at: SystemTime,
    proxy: Arc<vipd_proxy::Proxy>,
    instances: watch::Receiver<Vec<InstanceEntry>>,
    announce: watch::Receiver<Vec<announce::AnnounceEntry>>,
    reloads: watch::Receiver<ReloadRecord>,
    admin: Arc<AdminStateStore>,
}

impl Control for NodeControl {
    fn status(&self) -> NodeStatus {
        let mut status = NodeStatus::new(self.node.clone(), self.started.elapsed().as_secs());
        status.instances = self
            .instances
            .borrow()
            .iter()
            .map(|entry| entry.status.borrow().clone())
            .collect();
        status.announce = self
            .announce
            .borrow()
            .iter()
            .map(|group| group.status.borrow().clone())
            .collect();
        status.set_proxy_stats(&self.proxy.stats());
        status.process = crate::control::process::read(self.started_at);
        let reloads = self.reloads.borrow();
        status.last_reload = Some(reloads.last.clone());
        status.last_successful_reload_at_unix_seconds = reloads.last_success_at_unix_seconds;
        status
    }

    async fn server_action(
        &self,
        backend: &str,
        server: &str,
        action: ServerAction,
    ) -> Result<(), ActionError> {
        match action {
            ServerAction::Drain => self.proxy.drain_server(backend, server)?,
            ServerAction::Enable => self.proxy.enable_server(backend, server)?,
            ServerAction::Disable => self.proxy.disable_server(backend, server)?,
            ServerAction::SetWeight(weight) => {
                self.proxy.set_server_weight(backend, server, weight)?;
            }
            ServerAction::ResetWeight => self.proxy.reset_server_weight(backend, server)?,
        }
        info!(backend, server, ?action, "server admin action");
        self.admin
            .update(|state| state.record_server(backend, server, action))
            .await;
        Ok(())
    }

    fn sessions(
        &self,
        backend: &str,
        server: Option<&str>,
    ) -> Result<Vec<SessionStatus>, ActionError> {
        let sessions = self.proxy.sessions(backend, server)?;
        Ok(sessions.iter().map(SessionStatus::from).collect())
    }

    fn kill_sessions(
        &self,
        backend: &str,
        server: &str,
        filter: vipd_proxy::SessionFilter,
    ) -> Result<usize, ActionError> {
        Ok(self.proxy.kill_sessions(backend, server, filter)?)
    }

    async fn maintenance(&self, instance: &str, enabled: bool) -> Result<(), ActionError> {
        let group = self
            .announce
            .borrow()
            .iter()
            .find(|entry| entry.name == instance)
            .map(|entry| Arc::clone(&entry.maintenance));
        if let Some(group) = group {
            group.send_replace(enabled);
            self.admin
                .update(|state| state.record_maintenance(instance, enabled))
                .await;
            return Ok(());
        }
        let commands = self
            .instances
            .borrow()
            .iter()
            .find(|entry| entry.name == instance)
            .map(|entry| entry.commands.clone())
            .ok_or_else(|| ActionError::UnknownInstance {
                instance: instance.to_owned(),
            })?;
        commands
            .send(Command::Maintenance(enabled))
            .await
            .map_err(|_| {
                ActionError::Unavailable(format!("instance {instance} is shutting down"))
            })?;
        self.admin
            .update(|state| state.record_maintenance(instance, enabled))
            .await;
        Ok(())
    }
}
