//! A simulated LAN of N virtual routers on a virtual clock, with per-link loss and partitions.
//!
//! Every run is deterministic: time only moves when the loop jumps to the next delivery or timer,
//! loss comes from a seeded SplitMix64, and the loop is bounded by a step count. The tests assert
//! invariants of RFC 9568 section 6 against the simulation's delivery and transition logs rather
//! than traces.

#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vipd_vrrp::timers::{master_down_micros, skew_micros};
use vipd_vrrp::{
    Input, Notice, Output, Priority, Reason, RouterConfig, State, Version, VirtualRouter, Vrid,
};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));
/// One-way delay of every link: small against any timer, never zero so causes precede effects.
const LATENCY: Duration = Duration::from_micros(100);
/// Upper bound on loop iterations of any one run: a livelock fails instead of hanging.
const MAX_STEPS: u64 = 2_000_000;

/// Sebastiano Vigna's SplitMix64: tiny, seeded, good enough to drop packets reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        advert: vipd_vrrp::Advertisement,
    },
    Input {
        node: usize,
        input: Input,
    },
    /// The node stops dead: no release, no more adverts.
    Crash {
        node: usize,
    },
    /// A crashed node's daemon starts again with the same configuration.
    Restart {
        node: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    at: Instant,
    from: usize,
    to: usize,
    priority: Priority,
}

#[derive(Debug, Clone, Copy)]
struct Transition {
    at: Instant,
    node: usize,
    from: State,
    to: State,
    reason: Reason,
}

struct Node {
    router: VirtualRouter,
    address: IpAddr,
    alive: bool,
    holds_vips: bool,
}

struct Lan {
    epoch: Instant,
    now: Instant,
    nodes: Vec<Node>,
    queue: BTreeMap<(Instant, u64), Event>,
    next_seq: u64,
    loss_percent: Vec<Vec<u64>>,
    blocked: Vec<Vec<bool>>,
    rng: SplitMix64,
    steps: u64,
    deliveries: Vec<Delivery>,
    transitions: Vec<Transition>,
    /// When each node announced its VIPs (GARP / unsolicited NA bursts).
    announcements: Vec<(Instant, usize)>,
    /// Every advert sent: when, by which node, at which priority.
    sent: Vec<(Instant, usize, Priority)>,
    /// Every notice, with when and by which node.
    notices: Vec<(Instant, usize, Notice)>,
}

impl Lan {
    /// One router per priority, at 198.51.100.10 + index, all started at `epoch`.
    fn new(seed: u64, template: &RouterConfig, priorities: &[u8]) -> Self {
        // The one wall-clock read: an arbitrary epoch for the virtual clock.
        let epoch = Instant::now();
        let nodes: Vec<Node> = priorities
            .iter()
            .zip(10u8..)
            .map(|(&priority, host)| {
                let address = IpAddr::V4(Ipv4Addr::new(198, 51, 100, host));
                let config = RouterConfig {
                    priority: Priority::new(priority),
                    primary_address: address,
                    ..template.clone()
                };
                Node {
                    router: VirtualRouter::new(config).unwrap(),
                    address,
                    alive: true,
                    holds_vips: false,
                }
            })
            .collect();
        let n = nodes.len();
        let mut lan = Self {
            epoch,
            now: epoch,
            nodes,
            queue: BTreeMap::new(),
            next_seq: 0,
            loss_percent: vec![vec![0; n]; n],
            blocked: vec![vec![false; n]; n],
            rng: SplitMix64(seed),
            steps: 0,
            deliveries: Vec::new(),
            transitions: Vec::new(),
            announcements: Vec::new(),
            sent: Vec::new(),
            notices: Vec::new(),
        };
        for node in 0..n {
            lan.schedule(
                epoch,
                Event::Input {
                    node,
                    input: Input::Startup,
                },
            );
        }
        lan
    }

    fn at(&self, micros: u64) -> Instant {
        self.epoch + Duration::from_micros(micros)
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.queue.insert((at, self.next_seq), event);
        self.next_seq += 1;
    }

    fn set_loss(&mut self, percent: u64) {
        for row in &mut self.loss_percent {
            row.fill(percent);
        }
    }

    /// Cuts every link between `group` and the rest (both directions), or heals them all.
    fn partition(&mut self, group: &[usize], cut: bool) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in 0..n {
                if group.contains(&a) != group.contains(&b) {
                    self.blocked[a][b] = cut;
                }
            }
        }
    }

    fn next_time(&self) -> Option<Instant> {
        let queued = self.queue.keys().next().map(|(at, _)| *at);
        let timers = self
            .nodes
            .iter()
            .filter(|node| node.alive)
            .filter_map(|node| node.router.poll_timeout())
            .min();
        queued.into_iter().chain(timers).min()
    }

    /// Runs every event and timer up to and including `end`, then leaves the clock at `end`.
    fn run_until(&mut self, end: Instant) {
        while let Some(now) = self.next_time().filter(|at| *at <= end) {
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation did not settle");
            self.now = now;
            // Deliveries first: an advert that arrives exactly at a deadline resets the timer.
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let event = entry.remove();
                self.apply(event);
            }
            for index in 0..self.nodes.len() {
                let node = &mut self.nodes[index];
                if node.alive && node.router.poll_timeout().is_some_and(|at| at <= now) {
                    node.router.handle_timeout(now);
                    self.flush(index);
                }
            }
        }
        self.now = end;
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, advert } => {
                if !self.nodes[to].alive {
                    return;
                }
                let priority = advert.priority;
                self.deliveries.push(Delivery {
                    at: self.now,
                    from,
                    to,
                    priority,
                });
                let source = self.nodes[from].address;
                self.nodes[to]
                    .router
                    .handle_input(self.now, Input::Advertisement { source, advert });
                self.flush(to);
                // RFC 9568 6.4.3: a master that hears a better master yields at once. "Better"
                // as the receiver sees it: with the address it knows as its own.
                let receiver = &self.nodes[to].router;
                let own = receiver.config().primary_address;
                if !priority.is_release()
                    && (priority, source) > (receiver.effective_priority(), own)
                {
                    assert_ne!(
                        receiver.state(),
                        State::Master,
                        "node {to} stayed master after an advert from better node {from}"
                    );
                }
            }
            Event::Input { node, input } => {
                self.nodes[node].router.handle_input(self.now, input);
                self.flush(node);
            }
            Event::Crash { node } => self.nodes[node].alive = false,
            Event::Restart { node } => {
                let config = self.nodes[node].router.config().clone();
                let node_state = &mut self.nodes[node];
                node_state.router = VirtualRouter::new(config).unwrap();
                node_state.alive = true;
                node_state.router.handle_input(self.now, Input::Startup);
                self.flush(node);
            }
        }
    }

    fn flush(&mut self, index: usize) {
        while let Some(output) = self.nodes[index].router.poll_output() {
            match output {
                Output::SendAdvertisement(advert) => {
                    self.sent.push((self.now, index, advert.priority));
                    for to in 0..self.nodes.len() {
                        if to == index
                            || self.blocked[index][to]
                            || self.rng.percent() < self.loss_percent[index][to]
                        {
                            continue;
                        }
                        self.schedule(
                            self.now + LATENCY,
                            Event::Deliver {
                                from: index,
                                to,
                                advert: advert.clone(),
                            },
                        );
                    }
                }
                Output::AddVips => self.nodes[index].holds_vips = true,
                Output::RemoveVips => self.nodes[index].holds_vips = false,
                // These routers have no host to check.
                Output::CheckHost { .. } => {}
                Output::Notice(notice) => self.notices.push((self.now, index, notice)),
                Output::Announce { .. } => self.announcements.push((self.now, index)),
                Output::StateChanged { from, to, reason } => {
                    self.transitions.push(Transition {
                        at: self.now,
                        node: index,
                        from,
                        to,
                        reason,
                    });
                }
            }
        }
        let node = &self.nodes[index];
        assert_eq!(
            node.holds_vips,
            node.router.state() == State::Master,
            "node {index} holds VIPs exactly while master"
        );
    }

    /// Renumbers a node's interface now: its adverts leave from `address` at once, and its
    /// router is told at `told_at` (the instance follows the address on the address event or,
    /// if that was lost, at its next host check).
    fn renumber(&mut self, node: usize, address: IpAddr, told_at: Instant) {
        self.nodes[node].address = address;
        self.schedule(
            told_at,
            Event::Input {
                node,
                input: Input::PrimaryAddress(address),
            },
        );
    }

    /// The most adverts `node` sent within any window of one advert interval.
    fn most_adverts_per_interval(&self, node: usize) -> usize {
        let interval = self.nodes[node].router.config().advert_interval;
        // `sent` is in time order: slide a window over it.
        let times: Vec<Instant> = self
            .sent
            .iter()
            .filter(|(_, from, _)| *from == node)
            .map(|(at, _, _)| *at)
            .collect();
        let mut most = 0;
        let mut first = 0;
        for (last, at) in times.iter().enumerate() {
            while *at >= times[first] + interval {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&index| {
                self.nodes[index].alive && self.nodes[index].router.state() == State::Master
            })
            .collect()
    }

    /// Master_Down_Interval of a node for the interval every node in these tests uses.
    fn master_down(&self, node: usize) -> Duration {
        let router = &self.nodes[node].router;
        let interval = u64::try_from(router.config().advert_interval.as_micros()).unwrap();
        Duration::from_micros(master_down_micros(
            router.config().version,
            router.effective_priority(),
            interval,
        ))
    }

    fn takeovers(&self) -> impl Iterator<Item = &Transition> {
        self.transitions
            .iter()
            .filter(|transition| transition.from == State::Backup && transition.to == State::Master)
    }

    /// The last advert delivered to `to` before `before` from a node that outranks `to`.
    fn last_delivery_from_better(&self, to: usize, before: Instant) -> Option<Instant> {
        let receiver = &self.nodes[to];
        let rank = (receiver.router.effective_priority(), receiver.address);
        self.deliveries
            .iter()
            .filter(|delivery| {
                delivery.to == to
                    && delivery.at < before
                    && !delivery.priority.is_release()
                    && (delivery.priority, self.nodes[delivery.from].address) > rank
            })
            .map(|delivery| delivery.at)
            .max()
    }
}

fn v3(centis: u64) -> RouterConfig {
    RouterConfig {
        advert_interval: Duration::from_millis(centis * 10),
        ..RouterConfig::v3(
            Vrid::try_from(51).unwrap(),
            Priority::new(100),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
            vec![VIP],
        )
    }
}

/// v3 at 1 s with only the takeover burst (no second burst), so any later burst is an answer.
fn v3_one_burst() -> RouterConfig {
    RouterConfig {
        garp: vipd_vrrp::GarpSchedule {
            delay: None,
            ..vipd_vrrp::GarpSchedule::default()
        },
        ..v3(100)
    }
}

fn v2() -> RouterConfig {
    RouterConfig {
        version: Version::V2,
        ..v3(100)
    }
}

#[test]
fn converges_to_exactly_one_master_the_highest_priority_rfc9568_6_4() {
    let mut lan = Lan::new(1, &v3(100), &[100, 200, 150, 50]);
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [1]);
    // The highest priority waits exactly its own Master_Down_Interval from startup.
    let first = lan.takeovers().next().unwrap();
    assert_eq!((first.node, first.at), (1, lan.at(3_218_750)));
}

#[test]
fn equal_priorities_elect_the_largest_primary_address_rfc9568_6_4_3() {
    let mut lan = Lan::new(2, &v3(100), &[100, 100, 100]);
    lan.run_until(lan.at(20_000_000));
    // All three time out together, become master, and the two smaller addresses yield.
    assert_eq!(lan.takeovers().count(), 3);
    assert_eq!(lan.masters(), [2]);
}

#[test]
fn address_owner_is_master_at_once_and_others_stay_backup_rfc9568_6_4_1() {
    let mut lan = Lan::new(3, &v3(100), &[255, 200]);
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [0]);
    assert_eq!(lan.takeovers().count(), 0);
    assert_eq!(lan.transitions[0].reason, Reason::AddressOwner);
}

/// Crashes the converged master and checks the next one takes over at exactly its last received
/// advert + its Master_Down_Interval, and that nobody else does.
fn assert_takeover_after_master_crash(template: &RouterConfig) {
    let mut lan = Lan::new(4, template, &[200, 150, 100]);
    lan.run_until(lan.at(30_000_000));
    assert_eq!(lan.masters(), [0]);
    let crash_at = lan.now + Duration::from_millis(333);
    lan.schedule(crash_at, Event::Crash { node: 0 });
    lan.run_until(crash_at + Duration::from_secs(60));
    assert_eq!(lan.masters(), [1]);
    let takeover = *lan.takeovers().last().unwrap();
    assert_eq!(takeover.node, 1);
    assert_eq!(takeover.reason, Reason::MasterDown);
    let last_advert = lan.last_delivery_from_better(1, takeover.at).unwrap();
    let expected = last_advert + lan.master_down(1);
    let error = takeover.at.max(expected) - takeover.at.min(expected);
    assert!(
        error <= Duration::from_millis(1),
        "takeover {:?} after the last advert, expected {:?}",
        takeover.at - last_advert,
        lan.master_down(1)
    );
    assert_eq!(takeover.at, expected, "exact on a virtual clock");
    assert_eq!(lan.takeovers().filter(|t| t.node == 2).count(), 0);
}

#[test]
fn master_crash_next_takes_over_at_last_advert_plus_master_down_interval_v3_100cs() {
    assert_takeover_after_master_crash(&v3(100));
}

#[test]
fn master_crash_next_takes_over_at_last_advert_plus_master_down_interval_v3_10cs() {
    assert_takeover_after_master_crash(&v3(10));
}

#[test]
fn master_crash_next_takes_over_at_last_advert_plus_master_down_interval_v2() {
    assert_takeover_after_master_crash(&v2());
}

#[test]
fn master_shutdown_releases_and_next_takes_over_after_skew_time_rfc9568_6_4_3() {
    let mut lan = Lan::new(5, &v3(100), &[200, 150, 100]);
    lan.run_until(lan.at(30_000_000));
    let shutdown_at = lan.now;
    lan.schedule(
        shutdown_at,
        Event::Input {
            node: 0,
            input: Input::Shutdown,
        },
    );
    lan.run_until(shutdown_at + Duration::from_secs(10));
    assert_eq!(lan.masters(), [1]);
    let takeover = *lan.takeovers().last().unwrap();
    assert_eq!(takeover.reason, Reason::MasterReleased);
    let skew = skew_micros(Version::V3, Priority::new(150), 1_000_000);
    assert_eq!(
        takeover.at,
        shutdown_at + LATENCY + Duration::from_micros(skew)
    );
}

#[test]
fn partition_heal_leaves_one_master_within_one_master_down_interval() {
    let mut lan = Lan::new(6, &v3(100), &[200, 150, 100]);
    lan.run_until(lan.at(10_000_000));
    lan.partition(&[0], true);
    lan.run_until(lan.at(30_000_000));
    assert_eq!(
        lan.masters(),
        [0, 1],
        "each side of the partition has a master"
    );
    let healed_at = lan.now;
    lan.partition(&[0], false);
    let within = healed_at + lan.master_down(1);
    lan.run_until(within);
    assert_eq!(lan.masters(), [0]);
    let stepped_down = lan
        .transitions
        .iter()
        .find(|t| t.at >= healed_at && t.node == 1 && t.from == State::Master)
        .unwrap();
    assert_eq!(stepped_down.reason, Reason::HigherPriorityMaster);
    assert!(stepped_down.at <= within);
    lan.run_until(within + Duration::from_secs(30));
    assert_eq!(lan.masters(), [0], "and it stays that way");
    for node in 0..3 {
        assert!(lan.most_adverts_per_interval(node) <= 2, "node {node}");
    }
}

#[test]
fn partition_heal_makes_the_surviving_master_re_announce_whoever_hears_whom_first() {
    // Clients followed the other side's GARPs during the split. Whatever the phase of the two
    // masters' adverts at the heal, the survivor must announce again (docs/design/vrrp.md, Pitfalls: no GARP after a
    // split-brain heal is a field pitfall): when its advert crosses first, only the loser's last
    // advert on yielding tells it there was another master.
    for seed in 0..20 {
        let mut lan = Lan::new(seed, &v3(100), &[200, 100]);
        lan.run_until(lan.at(10_000_000));
        lan.partition(&[0], true);
        // Heal at a seed-dependent phase of the two advert cycles.
        lan.run_until(lan.at(20_000_000 + seed * 37_000));
        assert_eq!(lan.masters(), [0, 1], "seed {seed}: split");
        let healed_at = lan.now;
        lan.partition(&[0], false);
        lan.run_until(healed_at + lan.master_down(1));
        assert_eq!(lan.masters(), [0], "seed {seed}: one master");
        assert!(
            lan.announcements
                .iter()
                .any(|&(at, node)| node == 0 && at >= healed_at),
            "seed {seed}: the surviving master did not re-announce after the heal"
        );
    }
}

#[test]
fn lower_priority_master_yields_to_highest_at_its_next_delivered_advert_after_heal() {
    // The better node is the one cut off: the takeover on the other side is a preemption of
    // nobody, and healing must hand mastership back on the first advert that crosses.
    let mut lan = Lan::new(7, &v3(100), &[200, 150]);
    lan.run_until(lan.at(10_000_000));
    lan.partition(&[0], true);
    lan.run_until(lan.at(20_000_000));
    lan.partition(&[0], false);
    let healed_at = lan.now;
    lan.run_until(healed_at + Duration::from_secs(5));
    let first_crossing = lan
        .deliveries
        .iter()
        .find(|d| d.at >= healed_at && d.from == 0 && d.to == 1)
        .unwrap()
        .at;
    let stepped_down = lan
        .transitions
        .iter()
        .find(|t| t.at >= healed_at && t.node == 1)
        .unwrap();
    assert_eq!(stepped_down.at, first_crossing);
    assert_eq!(lan.masters(), [0]);
}

#[test]
fn random_loss_30_percent_3_routers_10000_seconds_takeovers_only_after_a_silent_master_down_interval()
 {
    const SECONDS: u64 = 10_000;
    let mut lan = Lan::new(0x5eed_2026, &v3(100), &[200, 150, 100]);
    lan.set_loss(30);
    lan.run_until(lan.at(SECONDS * 1_000_000));

    let takeovers: Vec<Transition> = lan.takeovers().copied().collect();
    // 3 losses in a row happen 2.7 % of the time: expect hundreds of takeovers, not a handful.
    assert!(takeovers.len() > 100, "only {} takeovers", takeovers.len());
    for takeover in &takeovers {
        let master_down = lan.master_down(takeover.node);
        // Every node starts at the epoch; after that only a better advert resets its timer.
        let silent_since = lan
            .last_delivery_from_better(takeover.node, takeover.at)
            .unwrap_or(lan.epoch);
        assert!(
            takeover.at - silent_since >= master_down,
            "node {} took over {:?} after a better advert, MDI {master_down:?}",
            takeover.node,
            takeover.at - silent_since
        );
        assert_eq!(
            takeover.at,
            silent_since + master_down,
            "and exactly one Master_Down_Interval"
        );
    }
    // The highest priority never loses mastership once it has it: nothing outranks it.
    let first_master = lan.takeovers().find(|t| t.node == 0).unwrap().at;
    assert!(
        lan.transitions
            .iter()
            .all(|t| t.node != 0 || t.at <= first_master)
    );
    // Whoever else took over yielded at the highest's next delivered advert (checked on every
    // delivery by the LAN itself); at the end only it is master.
    lan.set_loss(0);
    let end = lan.now + Duration::from_secs(5);
    lan.run_until(end);
    assert_eq!(lan.masters(), [0]);
    assert!(lan.steps < MAX_STEPS);
    for node in 0..3 {
        assert!(lan.most_adverts_per_interval(node) <= 2, "node {node}");
    }
}

#[test]
fn simulation_is_reproducible_from_its_seed() {
    let run = |seed| {
        let mut lan = Lan::new(seed, &v3(100), &[200, 150, 100]);
        lan.set_loss(30);
        lan.run_until(lan.at(300_000_000));
        lan.transitions
            .iter()
            .map(|t| (t.at - lan.epoch, t.node, t.to))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn equal_priorities_after_renumbering_and_a_healed_partition_elect_one_master_within_master_down_interval()
 {
    // Node 1 (.11) wins the tie at first; node 0 is renumbered to .20 during a partition and
    // told at once, as the instance does on the address event. After the heal both compare the
    // same pair of addresses and agree (RFC 9568 6.4.3).
    let mut lan = Lan::new(8, &v3(100), &[100, 100]);
    lan.run_until(lan.at(10_000_000));
    assert_eq!(lan.masters(), [1]);
    lan.partition(&[0], true);
    lan.run_until(lan.at(15_000_000));
    let renumbered = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
    lan.renumber(0, renumbered, lan.now);
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [0, 1], "split");
    let split_brains_before = lan.nodes[1].router.stats().two_masters_seen;
    let healed_at = lan.now;
    lan.partition(&[0], false);
    lan.run_until(healed_at + lan.master_down(0));
    assert_eq!(lan.masters(), [0], "the larger address of now wins");
    lan.run_until(healed_at + Duration::from_secs(30));
    assert_eq!(lan.masters(), [0], "and keeps it");
    for node in 0..2 {
        assert!(lan.most_adverts_per_interval(node) <= 2, "node {node}");
    }
    // The loser yields to an equal priority: a certain split brain, counted once.
    assert_eq!(
        lan.nodes[1].router.stats().two_masters_seen - split_brains_before,
        1
    );
}

#[test]
fn two_masters_that_each_think_they_win_cannot_start_an_advert_storm() {
    // Node 0 (.12) is renumbered to .10 while split, and its router learns it only at the next
    // host check, 5 s later. Until then each master compares a different pair of addresses and
    // each believes it wins the tie: without a bound they answer each other at network speed.
    let mut lan = Lan::new(9, &v3(100), &[100, 100]);
    let start = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12));
    lan.nodes[0].address = start;
    lan.nodes[0]
        .router
        .handle_input(lan.epoch, Input::PrimaryAddress(start));
    lan.run_until(lan.at(10_000_000));
    assert_eq!(lan.masters(), [0]);
    lan.partition(&[0], true);
    lan.run_until(lan.at(20_000_000));
    let renumbered_at = lan.now;
    lan.renumber(
        0,
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
        renumbered_at + Duration::from_secs(5),
    );
    lan.partition(&[0], false);
    lan.run_until(renumbered_at + Duration::from_millis(4_900));
    assert_eq!(lan.masters(), [0, 1], "both claim the tie");
    for node in 0..2 {
        assert!(
            lan.most_adverts_per_interval(node) <= 2,
            "node {node} sent {} adverts in one interval",
            lan.most_adverts_per_interval(node)
        );
    }
    let told_at = renumbered_at + Duration::from_secs(5);
    lan.run_until(told_at + lan.master_down(1));
    assert_eq!(
        lan.masters(),
        [1],
        "one master once node 0 knows its address"
    );
    for node in 0..2 {
        assert!(lan.most_adverts_per_interval(node) <= 2, "node {node}");
    }
}

/// Counts, after `since`, what a planned takeover must not cause: adverts from `loser` after it
/// yielded, announcements by `winner` after its takeover burst, and split brains on either.
fn assert_no_split_brain_effects(lan: &Lan, winner: usize, loser: usize, since: Instant) {
    let takeover = lan
        .takeovers()
        .find(|t| t.node == winner && t.at >= since)
        .copied()
        .unwrap();
    let yielded = lan
        .transitions
        .iter()
        .find(|t| t.node == loser && t.at >= takeover.at && t.from == State::Master)
        .copied()
        .unwrap();
    assert_eq!(yielded.reason, Reason::HigherPriorityMaster);
    assert!(
        !lan.sent
            .iter()
            .any(|(at, from, _)| *from == loser && *at >= yielded.at),
        "the loser sent a last advert after a planned takeover"
    );
    let bursts_after = lan
        .announcements
        .iter()
        .filter(|(at, node)| *node == winner && *at > takeover.at)
        .count();
    assert_eq!(bursts_after, 0, "the winner re-announced");
    for node in [winner, loser] {
        assert_eq!(
            lan.nodes[node].router.stats().two_masters_seen,
            0,
            "node {node}"
        );
    }
}

#[test]
fn a_planned_takeover_is_no_split_brain_after_maintenance_or_a_tracker_recovers() {
    let garp_once = v3_one_burst();
    // Maintenance: node 0 releases (priority 0), node 1 takes over, node 0 comes back and
    // preempts it.
    let mut lan = Lan::new(10, &garp_once, &[200, 100]);
    lan.run_until(lan.at(10_000_000));
    let maintenance = |on| Event::Input {
        node: 0,
        input: Input::Maintenance(on),
    };
    lan.schedule(lan.now, maintenance(true));
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [1]);
    let back_at = lan.now;
    lan.schedule(back_at, maintenance(false));
    lan.run_until(back_at + Duration::from_secs(20));
    assert_eq!(lan.masters(), [0]);
    assert_no_split_brain_effects(&lan, 0, 1, back_at);

    // A tracker: node 0 drops to 50 (node 1 preempts it), then recovers and preempts back.
    let mut lan = Lan::new(11, &garp_once, &[200, 100]);
    lan.run_until(lan.at(10_000_000));
    let priority = |value| Event::Input {
        node: 0,
        input: Input::EffectivePriority(Priority::new(value)),
    };
    lan.schedule(lan.now, priority(50));
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [1]);
    let recovered_at = lan.now;
    lan.schedule(recovered_at, priority(200));
    lan.run_until(recovered_at + Duration::from_secs(20));
    assert_eq!(lan.masters(), [0]);
    assert_no_split_brain_effects(&lan, 0, 1, recovered_at);
}

#[test]
fn a_crashed_master_that_restarts_and_preempts_neither_counts_nor_re_announces() {
    // The backup took over from a master that went silent: it cannot tell a crash from a
    // partition, so it sends its last advert on yielding; the restarted master, which has just
    // preempted it, knows that advert for the handover it is.
    let garp_once = v3_one_burst();
    let mut lan = Lan::new(12, &garp_once, &[200, 100]);
    lan.run_until(lan.at(10_000_000));
    lan.schedule(lan.now, Event::Crash { node: 0 });
    lan.run_until(lan.at(20_000_000));
    assert_eq!(lan.masters(), [1]);
    let restart_at = lan.now;
    lan.schedule(restart_at, Event::Restart { node: 0 });
    lan.run_until(restart_at + Duration::from_secs(20));
    assert_eq!(lan.masters(), [0]);
    let takeover = lan
        .takeovers()
        .find(|t| t.node == 0 && t.at >= restart_at)
        .unwrap();
    assert_eq!(takeover.reason, Reason::Preempted);
    assert_eq!(lan.nodes[0].router.stats().two_masters_seen, 0);
    assert!(
        !lan.announcements
            .iter()
            .any(|(at, node)| *node == 0 && *at > takeover.at),
        "the restarted master re-announced"
    );
}
