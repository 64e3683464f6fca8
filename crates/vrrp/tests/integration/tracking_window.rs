//! The window of "nothing moves when no node is better" (docs/design/vrrp.md, "The window of
//! 'nothing moves'"), on a virtual clock: the master's priority drops below the backup's at
//! `t1`, the backup's drops below the master's lowered one `d` later. The backup keeps still
//! when `d` is under 2 × advert_interval (under 3 × when the drop came within Skew_Time of an
//! advert); Master_Down_Interval − advert_interval (2 × I + Skew_Time) is not enough.

#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed unwrap is a failed test"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vipd_vrrp::{Advertisement, Input, Output, Priority, RouterConfig, VirtualRouter, Vrid};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));
const ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12)),
];
const LATENCY: Duration = Duration::from_micros(100);
const MASTER: usize = 0;
const BACKUP: usize = 1;

/// Two routers on a lossless link; node 0 (150) is master, node 1 (100) backup, 1 s adverts.
struct Pair {
    routers: [VirtualRouter; 2],
    in_flight: Vec<(Instant, usize, Advertisement)>,
    inputs: Vec<(Instant, usize, Input)>,
    now: Instant,
}

impl Pair {
    fn new(preempt_delay: Duration) -> Self {
        let router = |node: usize, priority: u8| {
            let config = RouterConfig {
                preempt_delay,
                ..RouterConfig::v3(
                    Vrid::try_from(51).unwrap(),
                    Priority::new(priority),
                    ADDRESSES[node],
                    vec![VIP],
                )
            };
            VirtualRouter::new(config).unwrap()
        };
        let now = Instant::now();
        let mut pair = Self {
            routers: [router(MASTER, 150), router(BACKUP, 100)],
            in_flight: Vec::new(),
            inputs: vec![(now, MASTER, Input::Startup), (now, BACKUP, Input::Startup)],
            now,
        };
        pair.run_for(Duration::from_secs(10));
        assert_eq!(pair.routers[MASTER].stats().became_master, 1);
        assert_eq!(pair.routers[BACKUP].stats().became_master, 0);
        pair
    }

    fn schedule(&mut self, at: Instant, node: usize, priority: u8) {
        self.inputs
            .push((at, node, Input::EffectivePriority(Priority::new(priority))));
    }

    /// Runs every event up to `now + duration`, in time order.
    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..1_000_000 {
            let next = [
                self.routers[0].poll_timeout(),
                self.routers[1].poll_timeout(),
                self.in_flight.iter().map(|(at, ..)| *at).min(),
                self.inputs.iter().map(|(at, ..)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(at) = next.filter(|at| *at <= end) else {
                self.now = end;
                return;
            };
            self.now = at;
            self.step(at);
        }
        panic!("the simulation did not reach its end");
    }

    fn step(&mut self, at: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.inputs.drain(..).partition(|(t, ..)| *t <= at);
        self.inputs = later;
        for (_, node, input) in due {
            self.routers[node].handle_input(at, input);
        }
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(t, ..)| *t <= at);
        self.in_flight = later;
        for (_, to, advert) in due {
            let source = ADDRESSES[1 - to];
            self.routers[to].handle_input(at, Input::Advertisement { source, advert });
        }
        for node in [MASTER, BACKUP] {
            if self.routers[node].poll_timeout().is_some_and(|t| t <= at) {
                self.routers[node].handle_timeout(at);
            }
            while let Some(output) = self.routers[node].poll_output() {
                if let Output::SendAdvertisement(advert) = output {
                    self.in_flight.push((at + LATENCY, 1 - node, advert));
                }
            }
        }
    }

    /// The master's priority drops to 90 `delta` after an advert; the backup's to 40
    /// `backup_after` later. Returns whether the backup became master within 20 s.
    fn both_fail(mut self, delta: Duration, backup_after: Duration) -> bool {
        // The master's next advert (its only timer now) is the last one before the drop.
        let t1 = self.routers[MASTER].poll_timeout().unwrap() + delta;
        self.schedule(t1, MASTER, 90);
        self.schedule(t1 + backup_after, BACKUP, 40);
        self.run_for(Duration::from_secs(20));
        self.routers[BACKUP].stats().became_master > 0
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// v3, 1 s, priority 100: Skew_Time 609 ms, so Master_Down_Interval − I = 2.609 s.
#[test]
fn the_backup_keeps_still_when_it_fails_within_two_intervals_of_the_master() {
    assert!(!Pair::new(Duration::ZERO).both_fail(ms(800), ms(1_900)));
    assert!(!Pair::new(Duration::ZERO).both_fail(ms(100), ms(1_900)));
}

#[test]
fn two_intervals_plus_skew_is_too_long_when_the_drop_came_late_after_an_advert() {
    // The backup's timer runs out at t1 − 0.8 s + 3.609 s = t1 + 2.809 s; the master's next
    // advert would be at t1 + 3 s. Failing at t1 + 2.5 s, inside 2 × I + Skew_Time, is too late.
    assert!(Pair::new(Duration::ZERO).both_fail(ms(800), ms(2_500)));
}

#[test]
fn a_drop_within_skew_time_of_an_advert_leaves_up_to_three_intervals() {
    // Timer at t1 − 0.3 s + 3.609 s = t1 + 3.309 s: the master's advert at t1 + 3 s is in time.
    assert!(!Pair::new(Duration::ZERO).both_fail(ms(300), ms(2_900)));
    assert!(Pair::new(Duration::ZERO).both_fail(ms(300), ms(3_100)));
}

#[test]
fn preempt_delay_widens_the_window_by_itself() {
    assert!(!Pair::new(ms(3_000)).both_fail(ms(800), ms(4_900)));
    assert!(Pair::new(ms(3_000)).both_fail(ms(800), ms(5_600)));
}
