//! systemd's watchdog (`WatchdogSec=` in deploy/systemd/vipd.service), fed by the VRRP
//! instances themselves: a hung daemon becomes a dead one, which `ExecStopPost=vipd release`
//! and `Restart=` then deal with (docs/design/architecture.md, The watchdog).
//!
//! What must be alive is what drives VRRP. Each instance task holds a [`Heartbeat`] and beats at
//! the end of every pass of its loop, which passes at least every [`HEARTBEAT_PERIOD`] (a tick
//! of its own `select!`). [`keep_alive`] sends `WATCHDOG=1` every quarter of the watchdog period
//! while every instance has beaten within half of it ([`Heartbeats::stale`]), and withholds it
//! otherwise. So a stuck instance task (a pass that never ends) and a stalled runtime (nothing
//! runs, the notifier included) both stop the keep-alives, and so does a panicked instance task
//! (its heartbeat stays registered, see [`Heartbeat`]'s `Drop`); systemd then sends
//! `WatchdogSignal=` (SIGKILL in the unit) after `WatchdogSec` without one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

// tokio's clock: the real one in the daemon, the paused one in the supervisor's tests.
use tokio::time::Instant;
use tracing::{info, warn};

use super::systemd_notify::SystemdNotify;

/// The longest an idle instance task goes without a pass of its loop (its heartbeat tick).
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(500);

/// The heartbeats of the running instances, by registration.
#[derive(Clone, Default)]
pub struct Heartbeats {
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    beats: BTreeMap<u64, (String, Arc<Mutex<Instant>>)>,
}

/// One instance's heartbeat; unregistered when dropped (the instance task ended), except while a
/// panic unwinds (the task died: it must trip the watchdog).
pub struct Heartbeat {
    id: u64,
    last: Arc<Mutex<Instant>>,
    registry: Arc<Mutex<Registry>>,
}

impl Heartbeats {
    /// A heartbeat for instance `name`, fresh from now.
    pub fn register(&self, name: &str) -> Heartbeat {
        let last = Arc::new(Mutex::new(Instant::now()));
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let id = registry.next;
        registry.next += 1;
        registry
            .beats
            .insert(id, (name.to_owned(), Arc::clone(&last)));
        Heartbeat {
            id,
            last,
            registry: Arc::clone(&self.registry),
        }
    }

    /// The instances that have not beaten within `stale_after` of `now`, with how long ago they
    /// did; empty when all are alive (or none runs: a daemon between instances, or stopping,
    /// is not hung).
    pub fn stale(&self, now: Instant, stale_after: Duration) -> Vec<(String, Duration)> {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry
            .beats
            .values()
            .filter_map(|(name, last)| {
                let last = *last.lock().unwrap_or_else(PoisonError::into_inner);
                let age = now.saturating_duration_since(last);
                (age > stale_after).then(|| (name.clone(), age))
            })
            .collect()
    }
}

impl Heartbeat {
    /// The instance is alive now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    fn beat_at(&self, at: Instant) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        // A panic unwinding the instance task drops the heartbeat too, and nothing else notices
        // the task ended: a master would keep its VIPs and send no adverts while the backup takes
        // over. Left registered with its last beat, the instance goes stale and systemd kills
        // vipd; `vipd release` and `Restart=` follow.
        if std::thread::panicking() {
            return;
        }
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .beats
            .remove(&self.id);
    }
}

/// How old the last heartbeat may be for a keep-alive to be sent, under a watchdog of `period`.
pub fn stale_after(period: Duration) -> Duration {
    period / 2
}

/// How often the keep-alive is considered, under a watchdog of `period`: four chances per
/// period, so one late tick of a loaded runtime does not cost the daemon its life.
pub fn keep_alive_every(period: Duration) -> Duration {
    period / 4
}

/// Sends `WATCHDOG=1` to systemd every [`keep_alive_every`] while no instance is stale; runs
/// until the process ends. Spawn it on the runtime the instances run on, so that a stalled
/// runtime stops it too.
pub async fn keep_alive(heartbeats: Heartbeats, systemd: Arc<SystemdNotify>, period: Duration) {
    if stale_after(period) < 2 * HEARTBEAT_PERIOD {
        warn!(
            ?period,
            "WatchdogSec is shorter than {:?}: an idle instance may look hung",
            4 * HEARTBEAT_PERIOD
        );
    }
    info!(
        ?period,
        "systemd watchdog on: keep-alives while every VRRP instance runs"
    );
    let mut ticks = tokio::time::interval(keep_alive_every(period));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut withheld = false;
    loop {
        ticks.tick().await;
        let stale = heartbeats.stale(Instant::now(), stale_after(period));
        if stale.is_empty() {
            systemd.watchdog_keep_alive();
            if withheld {
                info!("every VRRP instance runs again: watchdog keep-alives resumed");
                withheld = false;
            }
        } else if !withheld {
            warn!(
                ?stale,
                "a VRRP instance has not run: watchdog keep-alives withheld, systemd will restart vipd"
            );
            withheld = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stale_instance_withholds_the_keep_alive() {
        let heartbeats = Heartbeats::default();
        let api = heartbeats.register("api");
        let web = heartbeats.register("web");
        let start = Instant::now();
        let period = Duration::from_secs(5);
        api.beat_at(start);
        web.beat_at(start);
        assert!(
            heartbeats
                .stale(start + stale_after(period), stale_after(period))
                .is_empty()
        );

        // web's task stopped passing; api's goes on.
        let later = start + Duration::from_secs(3);
        api.beat_at(later);
        let stale = heartbeats.stale(later, stale_after(period));
        assert_eq!(stale, [("web".to_owned(), Duration::from_secs(3))]);

        // web passes again: alive.
        web.beat_at(later);
        assert!(heartbeats.stale(later, stale_after(period)).is_empty());
    }

    #[test]
    fn an_ended_instance_is_forgotten() {
        let heartbeats = Heartbeats::default();
        let start = Instant::now();
        let api = heartbeats.register("api");
        api.beat_at(start);
        let much_later = start + Duration::from_secs(60);
        assert_eq!(
            heartbeats.stale(much_later, Duration::from_secs(1)).len(),
            1
        );
        drop(api);
        assert!(
            heartbeats
                .stale(much_later, Duration::from_secs(1))
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_panicked_instance_task_goes_stale() {
        let heartbeats = Heartbeats::default();
        let heartbeat = heartbeats.register("api");
        // As an instance task holds it: in its state, dropped while the panic unwinds.
        let task = tokio::spawn(async move {
            let _heartbeat = heartbeat;
            tokio::task::yield_now().await;
            panic!("a bug in the instance task");
        });
        assert!(task.await.expect_err("the task panicked").is_panic());
        let much_later = Instant::now() + Duration::from_secs(60);
        let stale = heartbeats.stale(much_later, Duration::from_secs(1));
        assert_eq!(stale.len(), 1, "a panicked instance must trip the watchdog");
        assert_eq!(stale[0].0, "api");
    }

    #[tokio::test]
    async fn an_instance_task_that_returns_is_forgotten() {
        let heartbeats = Heartbeats::default();
        let heartbeat = heartbeats.register("api");
        // A reload's removal or restart: the task ends by returning.
        tokio::spawn(async move {
            let _heartbeat = heartbeat;
            tokio::task::yield_now().await;
        })
        .await
        .expect("the task returned");
        let much_later = Instant::now() + Duration::from_secs(60);
        assert!(
            heartbeats
                .stale(much_later, Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn no_instances_is_alive() {
        // A daemon with no VRRP instance (a proxy only, or all removed by a reload) has nothing
        // to be stuck: keep-alives go on.
        assert!(
            Heartbeats::default()
                .stale(Instant::now(), Duration::ZERO)
                .is_empty()
        );
    }

    /// The unit vipd ships.
    const UNIT: &str = include_str!("../../../deploy/systemd/vipd.service");

    fn unit_watchdog() -> Duration {
        let value = UNIT
            .lines()
            .find_map(|line| line.strip_prefix("WatchdogSec="))
            .expect("the unit sets WatchdogSec");
        let seconds = value.trim().strip_suffix('s').unwrap_or(value.trim());
        Duration::from_secs(seconds.parse().expect("WatchdogSec in whole seconds"))
    }

    #[test]
    fn the_units_watchdog_outlasts_an_idle_instance_and_a_late_tick() {
        let period = unit_watchdog();
        // An idle instance beats every HEARTBEAT_PERIOD: a missed tick is not yet stale.
        assert!(stale_after(period) >= 2 * HEARTBEAT_PERIOD, "{period:?}");
        // systemd needs a keep-alive within the period; vipd offers four.
        assert!(keep_alive_every(period) * 4 <= period);
        // A hang is noticed by vipd, then by systemd, well before a stop would be given up on.
        assert!(
            stale_after(period) + period < vipd_config::defaults::UNIT_TIMEOUT_STOP,
            "{period:?}"
        );
    }
}
