//! The master's daemon killed outright (SIGKILL) and started again, 20 times in a row, with the
//! VIP's holders timed on both nodes by netlink address watches (docs/design/vrrp.md, "Restart
//! after a crash"). Two ways a service manager brings it back:
//!
//! - at once, with nothing run in between: the restarted daemon finds its VIP on the interface
//!   and must keep it while it listens (before, it removed it and preempted a
//!   Master_Down_Interval later: no holder for up to 345 ms);
//! - after 1 to 2 s, with `vipd release` run as soon as the process is gone, as systemd's
//!   `ExecStopPost=` does: the backup takes over after its Skew_Time (before, the dead master's
//!   VIP stayed until the restart: two holders for up to 1.68 s).
//!
//! The same rounds with keepalived (no release command; its numbers are printed, not asserted)
//! make the comparison of docs/benchmarks.md, "Crash and restart".
//!
//! Every window with no holder or with two holders must be shorter than one advert interval plus
//! a margin the protocol gives: the restarted node's Skew_Time (its listening, or the backup's
//! countdown after the priority-0 advert) and [`MARGIN`] for scheduling.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vipd_lab::{AddressWatch, Change, Lab, Watching};

use vipd_lab::keepalived::Keepalived;

use crate::support::failover::{LB1, LB1_PRIORITY, LB2, LB2_PRIORITY, Pair, PairSettings};
use crate::support::keepalived::{RouterSettings, start_keepalived};
use crate::support::{Scratch, VIPD, holds, start_vipd, wait_until};

/// Scheduling margin on a loaded 2-core machine (as in scenarios_failures.rs).
const MARGIN: Duration = Duration::from_millis(100);
/// Rounds restarted at once, then rounds released and restarted after [`LATER`] and more.
const ROUNDS_AT_ONCE: u32 = 10;
const ROUNDS_LATER: u32 = 10;
/// The restart delay of the first later round; each next one waits 90 ms more (up to 1.81 s).
const LATER: Duration = Duration::from_secs(1);
/// How long one round may take to settle (lb1 master with the VIP, lb2 backup without).
const SETTLE: Duration = Duration::from_secs(10);

/// Windows with no holder and with two holders of the VIP, from both nodes' address changes.
#[derive(Debug, Default)]
struct Windows {
    empty: Vec<Duration>,
    two_holders: Vec<Duration>,
}

impl Windows {
    /// Replays both nodes' changes in time order from `start` (lb1 holding, lb2 not), counting
    /// only the windows that begin at or after `from` and before `to`.
    fn of(
        lb1: &[(Change, Instant)],
        lb2: &[(Change, Instant)],
        from: Instant,
        to: Instant,
    ) -> Self {
        let mut events: Vec<(Instant, usize, Change)> = lb1
            .iter()
            .map(|(change, at)| (*at, LB1, *change))
            .chain(lb2.iter().map(|(change, at)| (*at, LB2, *change)))
            .collect();
        events.sort_by_key(|(at, _, _)| *at);
        let mut holds = [true, false];
        let mut opened: Option<Instant> = None;
        let mut windows = Self::default();
        for (at, node, change) in events {
            let before = holds.iter().filter(|held| **held).count();
            holds[node] = change == Change::Added;
            let after = holds.iter().filter(|held| **held).count();
            if before == after {
                continue;
            }
            if let Some(start) = opened.take()
                && (start >= from && start < to)
            {
                let window = at.saturating_duration_since(start);
                if before == 0 {
                    windows.empty.push(window);
                } else if before == 2 {
                    windows.two_holders.push(window);
                }
            }
            if after != 1 {
                opened = Some(at);
            }
        }
        windows
    }

    fn summary(&self) -> String {
        let describe = |windows: &[Duration]| {
            let total: Duration = windows.iter().sum();
            let longest = windows.iter().max().copied().unwrap_or_default();
            format!(
                "{} windows, longest {longest:?}, total {total:?}",
                windows.len()
            )
        };
        format!(
            "no holder: {}; two holders: {}",
            describe(&self.empty),
            describe(&self.two_holders)
        )
    }
}

/// One node's changes of the VIP, in order.
type Changes = Vec<(Change, Instant)>;

/// Both nodes' address watches, ended together.
struct Watches {
    cancel: Arc<AtomicBool>,
    lb1: Watching,
    lb2: Watching,
}

impl Watches {
    fn start(lab: &Lab, vip: IpAddr) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let watch = |host| {
            AddressWatch::changes(vip, 100_000, Duration::from_secs(600))
                .cancelled_by(Arc::clone(&cancel))
                .start(lab, host)
                .expect("address watch")
        };
        let (lb1, lb2) = (watch(LB1), watch(LB2));
        Self { cancel, lb1, lb2 }
    }

    fn stop(self) -> (Changes, Changes) {
        self.cancel.store(true, Ordering::SeqCst);
        let lb1 = self.lb1.seen().expect("address watch").changes;
        let lb2 = self.lb2.seen().expect("address watch").changes;
        (lb1, lb2)
    }
}

/// The windows of the rounds restarted at once and of the later ones.
struct Measured {
    at_once: Windows,
    later: Windows,
}

/// Runs the 20 rounds on `pair` (whose lab is `lab(pair)`): `crash(pair, round, delay)` kills
/// lb1's daemon, waits `delay` (`None`: restarts at once) and starts it again, and returns once
/// the pair has settled.
fn measure<P>(
    pair: &mut P,
    lab: fn(&P) -> &Lab,
    vip: IpAddr,
    crash: fn(&mut P, u32, Option<Duration>),
) -> Measured {
    let watches = Watches::start(lab(pair), vip);
    let started = Instant::now();
    for round in 0..ROUNDS_AT_ONCE {
        crash(pair, round, None);
    }
    let later_started = Instant::now();
    for round in 0..ROUNDS_LATER {
        let delay = LATER + Duration::from_millis(90) * round;
        crash(pair, ROUNDS_AT_ONCE + round, Some(delay));
    }
    let ended = Instant::now();
    let (lb1, lb2) = watches.stop();
    Measured {
        at_once: Windows::of(&lb1, &lb2, started, later_started),
        later: Windows::of(&lb1, &lb2, later_started, ended),
    }
}

impl Measured {
    fn print(&self, who: &str, interval: Duration, later: &str) {
        eprintln!(
            "crash and restart, {who}, {interval:?} adverts, {ROUNDS_AT_ONCE} restarts at once: {}",
            self.at_once.summary()
        );
        eprintln!(
            "crash and restart, {who}, {interval:?} adverts, {ROUNDS_LATER} {later} after 1-1.8 s: {}",
            self.later.summary()
        );
    }
}

/// Kills lb1's vipd outright, optionally runs `vipd release` as the service manager would and
/// waits, then starts it again and waits until lb1 is master with the VIP and lb2 backup without.
fn kill_and_restart(pair: &mut Pair, round: u32, release_and_wait: Option<Duration>) {
    let config = pair.scratch.path("lb1.yaml");
    let mut killed = pair.nodes[LB1].take().expect("lb1 runs");
    killed.stop_with(Signal::SIGKILL);
    if let Some(delay) = release_and_wait {
        release(pair, &config);
        std::thread::sleep(delay);
    }
    let log = pair.scratch.path(&format!("lb1-round{round}.log"));
    pair.nodes[LB1] = Some(start_vipd(&pair.lab, LB1, &config, &log));
    let settled = wait_until(SETTLE, || {
        pair.state(LB1).as_deref() == Some("master")
            && pair.state(LB2).as_deref() == Some("backup")
            && pair.holds(LB1)
            && !pair.holds(LB2)
    });
    assert!(
        settled.is_some(),
        "round {round}: lb1 {:?} holds {}, lb2 {:?} holds {}\n--- lb1 round log:\n{}\n{}",
        pair.state(LB1),
        pair.holds(LB1),
        pair.state(LB2),
        pair.holds(LB2),
        std::fs::read_to_string(&log).unwrap_or_default(),
        pair.logs()
    );
    // A few adverts in the new steady state before the next kill.
    std::thread::sleep(pair.settings.advert_interval * 5);
}

/// `vipd release -c config` in lb1, as `ExecStopPost=` runs it once the process is gone.
fn release(pair: &Pair, config: &Path) {
    let config = config.display().to_string();
    let output = pair
        .lab
        .run(LB1, &[VIPD, "release", "-c", &config])
        .unwrap_or_else(|error| panic!("vipd release failed: {error}"));
    assert!(
        output.contains("released"),
        "vipd release found nothing to release: {output}"
    );
}

#[test]
fn a_master_killed_and_restarted_20_times_leaves_no_gap_and_no_second_holder() {
    if !vipd_lab::e2e_enabled(
        "a_master_killed_and_restarted_20_times_leaves_no_gap_and_no_second_holder",
    ) {
        return;
    }
    let settings = PairSettings {
        garp_second_burst: false,
        ..PairSettings::default()
    };
    let interval = settings.advert_interval;
    let mut pair = Pair::start("crash-restart", settings.clone());
    let vip = pair.vip;
    let measured = measure(&mut pair, |pair| &pair.lab, vip, kill_and_restart);
    measured.print("vipd", interval, "releases + restarts");
    let Measured { at_once, later } = measured;
    // The restarted master listens one interval plus its Skew_Time before it is master again;
    // after a release, lb2 takes over after its own Skew_Time.
    let two_holders_bound = interval + settings.skew(LB1_PRIORITY) + MARGIN;
    let empty_bound = settings.skew(LB2_PRIORITY) + MARGIN;
    for (phase, windows) in [("at once", &at_once), ("later", &later)] {
        let longest_empty = windows.empty.iter().max().copied().unwrap_or_default();
        let longest_two = windows
            .two_holders
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        assert!(
            longest_empty <= empty_bound,
            "restarted {phase}: the VIP had no holder for {longest_empty:?} (bound {empty_bound:?}): {}",
            windows.summary()
        );
        assert!(
            longest_two <= two_holders_bound,
            "restarted {phase}: two nodes held the VIP for {longest_two:?} (bound {two_holders_bound:?}): {}",
            windows.summary()
        );
    }
    assert!(!pair.holds(LB2), "a VIP was left behind on the backup");
}

/// A keepalived pair (the Debian package) on a lab of its own, with the same settings.
struct KeepalivedPair {
    settings: RouterSettings,
    nodes: [Option<Keepalived>; 2],
    scratch: Scratch,
    // Dropped last: the namespaces outlive the processes in them.
    lab: Lab,
}

impl KeepalivedPair {
    fn config(&self, node: usize) -> String {
        let (peer, priority) = if node == LB1 {
            (LB2, LB1_PRIORITY)
        } else {
            (LB1, LB2_PRIORITY)
        };
        self.settings
            .keepalived_config(&self.lab, node, peer, priority)
    }

    fn holds(&self, node: usize) -> bool {
        holds(&self.lab, node, IpAddr::V4(self.settings.vip))
    }

    fn settled(&self) -> bool {
        wait_until(KEEPALIVED_SETTLE, || self.holds(LB1) && !self.holds(LB2)).is_some()
    }
}

/// keepalived may keep two holders for seconds after a restart: wait that long, then go on.
const KEEPALIVED_SETTLE: Duration = Duration::from_secs(20);

/// keepalived killed outright (VRRP child, then parent) and started again; it has no release
/// command, so the later rounds only wait.
fn kill_and_restart_keepalived(pair: &mut KeepalivedPair, round: u32, wait: Option<Duration>) {
    if let Some(mut killed) = pair.nodes[LB1].take() {
        killed.kill_hard();
    }
    if let Some(delay) = wait {
        std::thread::sleep(delay);
    }
    let config = pair.config(LB1);
    let name = format!("lb1-round{round}");
    pair.nodes[LB1] = Some(start_keepalived(
        &pair.lab,
        LB1,
        &pair.scratch,
        &name,
        &config,
    ));
    if !pair.settled() {
        eprintln!("keepalived round {round}: not settled after {KEEPALIVED_SETTLE:?}");
    }
    std::thread::sleep(pair.settings.advert_interval * 5);
}

/// The same 20 rounds with keepalived, for comparison: the numbers are printed (and written in
/// docs/benchmarks.md), nothing is asserted about them.
#[test]
fn keepalived_killed_and_restarted_20_times_for_comparison() {
    if !vipd_lab::e2e_enabled("keepalived_killed_and_restarted_20_times_for_comparison") {
        return;
    }
    let settings = RouterSettings {
        vrid: 51,
        version: 3,
        advert_interval: Duration::from_millis(100),
        vip: Lab::vip_v4(0),
        unicast: false,
        ipv6: false,
    };
    let lab = Lab::new(2).expect("lab");
    let mut pair = KeepalivedPair {
        settings,
        nodes: [None, None],
        scratch: Scratch::new("crash-restart-keepalived"),
        lab,
    };
    for node in [LB1, LB2] {
        let config = pair.config(node);
        let name = format!("lb{}", node + 1);
        pair.nodes[node] = Some(start_keepalived(
            &pair.lab,
            node,
            &pair.scratch,
            &name,
            &config,
        ));
    }
    assert!(pair.settled(), "the keepalived pair never settled");
    let vip = IpAddr::V4(settings.vip);
    let measured = measure(
        &mut pair,
        |pair| &pair.lab,
        vip,
        kill_and_restart_keepalived,
    );
    measured.print("keepalived", settings.advert_interval, "restarts");
}
