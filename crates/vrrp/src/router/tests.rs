//! One test per behaviour of docs/design/vrrp.md, each citing its RFC section, with exact deadlines on a
//! virtual clock: `t0` is an arbitrary epoch and every time is `t0` plus a whole number of µs.

use super::*;
use crate::wire::Auth;
use std::net::Ipv4Addr;

const US: u64 = 1;
const MS: u64 = 1_000 * US;
const S: u64 = 1_000 * MS;

/// v3, 100 cs, priority 100: Skew_Time and Master_Down_Interval (RFC 9568 6.1).
const SKEW_100: u64 = 609_375 * US;
const MDI_100: u64 = 3_609_375 * US;

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
const LOWER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
const HIGHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        // The one wall-clock read: an arbitrary epoch. Nothing below measures elapsed time.
        Self(Instant::now())
    }

    fn at(&self, micros: u64) -> Instant {
        self.0 + Duration::from_micros(micros)
    }
}

fn vrid() -> Vrid {
    Vrid::try_from(51).unwrap()
}

fn config(priority: u8) -> RouterConfig {
    RouterConfig::v3(vrid(), Priority::new(priority), OURS, vec![VIP])
}

fn v2_config(priority: u8) -> RouterConfig {
    RouterConfig {
        version: Version::V2,
        ..config(priority)
    }
}

fn advert(priority: u8, centis: u16) -> Advertisement {
    Advertisement {
        vrid: vrid(),
        priority: Priority::new(priority),
        fields: VersionFields::V3 {
            max_advert_interval: Centis::try_from(centis).unwrap(),
        },
        addresses: vec![VIP],
    }
}

fn from(source: IpAddr, advert: Advertisement) -> Input {
    Input::Advertisement { source, advert }
}

fn drain(router: &mut VirtualRouter) -> Vec<Output> {
    std::iter::from_fn(|| router.poll_output()).collect()
}

fn started(config: RouterConfig, clock: &Clock) -> VirtualRouter {
    let mut router = VirtualRouter::new(config).unwrap();
    router.handle_input(clock.at(0), Input::Startup);
    drain(&mut router);
    router
}

/// A router that became master at `t0 + MDI_100` by its down timer.
fn master(config: RouterConfig, clock: &Clock) -> VirtualRouter {
    let mut router = started(config, clock);
    let down_at = router.poll_timeout().unwrap();
    router.handle_timeout(down_at);
    drain(&mut router);
    assert_eq!(router.state(), State::Master);
    router
}

fn sent_priorities(outputs: &[Output]) -> Vec<u8> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::SendAdvertisement(advert) => Some(advert.priority.get()),
            _ => None,
        })
        .collect()
}

fn changed(from: State, to: State, reason: Reason) -> Output {
    Output::StateChanged { from, to, reason }
}

/// The outputs that act (notices set apart).
fn actions(outputs: &[Output]) -> Vec<Output> {
    outputs
        .iter()
        .filter(|output| !matches!(output, Output::Notice(_)))
        .cloned()
        .collect()
}

fn notices(outputs: &[Output]) -> Vec<Notice> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Notice(notice) => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

fn announcements(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|output| matches!(output, Output::Announce { .. }))
        .count()
}

// ---- Initialize (RFC 9568 6.4.1) ----

#[test]
fn initialize_address_owner_adds_vips_sends_advert_announces_and_becomes_master() {
    let clock = Clock::new();
    let mut router = VirtualRouter::new(config(255)).unwrap();
    router.handle_input(clock.at(0), Input::Startup);
    let outputs = drain(&mut router);
    // RFC 9568 6.4.1: send an ADVERTISEMENT, then announce (the VIPs are added first).
    assert_eq!(outputs[0], Output::AddVips);
    assert!(matches!(&outputs[1], Output::SendAdvertisement(a) if a.priority == Priority::OWNER));
    assert_eq!(outputs[2], Output::Announce { count: 5 });
    assert_eq!(
        outputs[3..],
        [changed(
            State::Initialize,
            State::Master,
            Reason::AddressOwner
        ),]
    );
    assert_eq!(router.poll_timeout(), Some(clock.at(S)));
}

#[test]
fn initialize_backup_sets_down_timer_to_master_down_interval_v3_100cs_priority_100() {
    let clock = Clock::new();
    let mut router = VirtualRouter::new(config(100)).unwrap();
    router.handle_input(clock.at(0), Input::Startup);
    assert_eq!(
        drain(&mut router),
        [
            Output::RemoveVips,
            changed(State::Initialize, State::Backup, Reason::Startup)
        ]
    );
    assert_eq!(router.skew_time(), Duration::from_micros(SKEW_100));
    assert_eq!(
        router.master_down_interval(),
        Duration::from_micros(MDI_100)
    );
    assert_eq!(router.poll_timeout(), Some(clock.at(MDI_100)));
}

#[test]
fn initialize_v2_backup_down_timer_is_three_intervals_plus_skew_in_seconds_rfc3768_6_1() {
    let clock = Clock::new();
    let router = started(v2_config(150), &clock);
    assert_eq!(router.poll_timeout(), Some(clock.at(3_414_062)));
    let slow = started(
        RouterConfig {
            advert_interval: Duration::from_secs(3),
            ..v2_config(100)
        },
        &clock,
    );
    assert_eq!(slow.poll_timeout(), Some(clock.at(9_609_375)));
}

#[test]
fn startup_twice_is_ignored() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), Input::Startup);
    assert!(drain(&mut router).is_empty());
    assert_eq!(router.poll_timeout(), Some(clock.at(MDI_100)));
}

// ---- Backup (RFC 9568 6.4.2) ----

#[test]
fn backup_down_timer_adds_vips_sends_advert_then_announces_and_becomes_master() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_timeout(clock.at(MDI_100 - 1));
    assert!(drain(&mut router).is_empty(), "early timeout does nothing");
    router.handle_timeout(clock.at(MDI_100));
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [100]);
    // RFC 9568 6.4.2: send an ADVERTISEMENT, then broadcast a gratuitous ARP / send an
    // unsolicited NA, so a master we preempt drops the VIPs before clients hear ours.
    assert_eq!(outputs[0], Output::AddVips);
    assert!(matches!(&outputs[1], Output::SendAdvertisement(_)));
    assert_eq!(outputs[2], Output::Announce { count: 5 });
    assert_eq!(
        outputs[3..],
        [changed(State::Backup, State::Master, Reason::MasterDown),]
    );
    assert_eq!(router.stats().became_master, 1);
}

#[test]
fn backup_advert_from_master_resets_down_timer_to_master_down_interval() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(3 * S), from(HIGHER_ADDRESS, advert(200, 100)));
    assert_eq!(router.poll_timeout(), Some(clock.at(3 * S + MDI_100)));
    router.handle_timeout(clock.at(MDI_100));
    assert_eq!(router.state(), State::Backup);
}

#[test]
fn backup_learns_master_advert_interval_and_recomputes_skew_and_down_interval_v3() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 10)));
    assert_eq!(router.master_advert_interval(), Duration::from_millis(100));
    assert_eq!(router.skew_time(), Duration::from_micros(60_937));
    assert_eq!(
        router.master_down_interval(),
        Duration::from_micros(360_937)
    );
    assert_eq!(router.poll_timeout(), Some(clock.at(S + 360_937)));
}

#[test]
fn backup_priority_zero_advert_sets_down_timer_to_skew_time() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 100)));
    router.handle_input(clock.at(2 * S), from(HIGHER_ADDRESS, advert(0, 100)));
    assert_eq!(router.poll_timeout(), Some(clock.at(2 * S + SKEW_100)));
    router.handle_timeout(clock.at(2 * S + SKEW_100));
    let outputs = drain(&mut router);
    assert_eq!(
        outputs.last(),
        Some(&changed(
            State::Backup,
            State::Master,
            Reason::MasterReleased
        ))
    );
    assert_eq!(router.stats().priority_zero_received, 1);
}

#[test]
fn backup_preempting_discards_lower_priority_advert_and_takes_over_when_down_timer_runs_out() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    for second in 1..=3 {
        router.handle_input(clock.at(second * S), from(HIGHER_ADDRESS, advert(50, 100)));
    }
    assert_eq!(router.poll_timeout(), Some(clock.at(MDI_100)));
    router.handle_timeout(clock.at(MDI_100));
    assert_eq!(
        drain(&mut router).last(),
        Some(&changed(State::Backup, State::Master, Reason::Preempted))
    );
}

#[test]
fn backup_without_preempt_accepts_a_lower_priority_master() {
    let clock = Clock::new();
    let mut router = started(
        RouterConfig {
            preempt: false,
            ..config(100)
        },
        &clock,
    );
    router.handle_input(clock.at(3 * S), from(HIGHER_ADDRESS, advert(50, 100)));
    assert_eq!(router.poll_timeout(), Some(clock.at(3 * S + MDI_100)));
}

#[test]
fn backup_equal_priority_advert_resets_down_timer_whatever_the_address() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), from(LOWER_ADDRESS, advert(100, 100)));
    assert_eq!(router.poll_timeout(), Some(clock.at(S + MDI_100)));
}

#[test]
fn backup_preempt_delay_holds_off_preemption_then_preempts() {
    let clock = Clock::new();
    let mut router = started(
        RouterConfig {
            preempt_delay: Duration::from_secs(5),
            ..config(100)
        },
        &clock,
    );
    // A lower-priority master advertises every second from t = 1 s: the hold-off runs until 6 s.
    for second in 1..=5 {
        router.handle_input(clock.at(second * S), from(HIGHER_ADDRESS, advert(50, 100)));
        assert_eq!(router.poll_timeout(), Some(clock.at(second * S + MDI_100)));
    }
    for second in 6..=8 {
        router.handle_input(clock.at(second * S), from(HIGHER_ADDRESS, advert(50, 100)));
        assert_eq!(router.poll_timeout(), Some(clock.at(5 * S + MDI_100)));
    }
    router.handle_timeout(clock.at(5 * S + MDI_100));
    assert_eq!(
        drain(&mut router).last(),
        Some(&changed(State::Backup, State::Master, Reason::Preempted))
    );
}

#[test]
fn backup_preempt_delay_never_delays_takeover_from_a_dead_master() {
    let clock = Clock::new();
    let mut router = started(
        RouterConfig {
            preempt_delay: Duration::from_secs(300),
            ..config(100)
        },
        &clock,
    );
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 100)));
    router.handle_input(clock.at(2 * S), from(HIGHER_ADDRESS, advert(200, 100)));
    router.handle_timeout(clock.at(2 * S + MDI_100));
    assert_eq!(
        drain(&mut router).last(),
        Some(&changed(State::Backup, State::Master, Reason::MasterDown))
    );
}

#[test]
fn backup_skew_uses_the_effective_priority() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(0), Input::EffectivePriority(Priority::new(150)));
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 100)));
    assert_eq!(router.poll_timeout(), Some(clock.at(S + 3_414_062)));
}

// ---- Master (RFC 9568 6.4.3) ----

#[test]
fn master_sends_an_advert_every_advert_interval() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    let mut at = MDI_100;
    for _ in 0..3 {
        at += S;
        assert_eq!(router.poll_timeout(), Some(clock.at(at)));
        router.handle_timeout(clock.at(at));
        assert_eq!(sent_priorities(&drain(&mut router)), [100]);
    }
}

#[test]
fn master_priority_zero_advert_is_answered_at_once_and_resets_advert_timer() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    let now = MDI_100 + 300 * MS;
    router.handle_input(clock.at(now), from(HIGHER_ADDRESS, advert(0, 100)));
    assert_eq!(sent_priorities(&drain(&mut router)), [100]);
    assert_eq!(router.poll_timeout(), Some(clock.at(now + S)));
    assert_eq!(router.stats().two_masters_seen, 0);
}

#[test]
fn master_higher_priority_advert_goes_backup_and_removes_vips_without_release() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    let now = MDI_100 + 200 * MS;
    router.handle_input(clock.at(now), from(LOWER_ADDRESS, advert(200, 10)));
    let outputs = actions(&drain(&mut router));
    // It took over from a master that went silent, which a partition looks like: one last
    // advert at its own priority (not a release), so a master that never heard it during a
    // split brain learns of it and re-announces (docs/design/vrrp.md, Split brain).
    assert_eq!(sent_priorities(&outputs), [100]);
    assert_eq!(
        outputs[1..],
        [
            Output::RemoveVips,
            changed(State::Master, State::Backup, Reason::HigherPriorityMaster),
        ]
    );
    // It learned the new master's 10 cs interval (RFC 9568 6.4.3).
    assert_eq!(router.poll_timeout(), Some(clock.at(now + 360_937)));
}

#[test]
fn master_equal_priority_from_larger_primary_address_goes_backup() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(
        clock.at(MDI_100 + MS),
        from(HIGHER_ADDRESS, advert(100, 100)),
    );
    assert_eq!(router.state(), State::Backup);
}

#[test]
fn master_equal_priority_from_smaller_primary_address_stays_master_and_answers() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(
        clock.at(MDI_100 + MS),
        from(LOWER_ADDRESS, advert(100, 100)),
    );
    assert_eq!(router.state(), State::Master);
    assert_eq!(sent_priorities(&drain(&mut router)), [100]);
}

#[test]
fn master_tie_break_compares_ipv6_addresses_as_unsigned_network_order() {
    let clock = Clock::new();
    let ours: IpAddr = "fe80::8000".parse().unwrap();
    let vip: IpAddr = "2001:db8::50".parse().unwrap();
    let mut router = master(
        RouterConfig::v3(vrid(), Priority::new(100), ours, vec![vip]),
        &clock,
    );
    let mut theirs = advert(100, 100);
    theirs.addresses = vec![vip];
    router.handle_input(
        clock.at(MDI_100 + MS),
        from("fe80::7fff".parse().unwrap(), theirs.clone()),
    );
    assert_eq!(router.state(), State::Master);
    router.handle_input(
        clock.at(MDI_100 + 2 * MS),
        from("fe80::1:0".parse().unwrap(), theirs),
    );
    assert_eq!(router.state(), State::Backup);
}

#[test]
fn master_lower_priority_advert_is_answered_at_once_and_reannounced_after_split_brain() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    let now = MDI_100 + 400 * MS;
    router.handle_input(clock.at(now), from(HIGHER_ADDRESS, advert(50, 100)));
    let outputs = drain(&mut router);
    assert_eq!(
        notices(&outputs),
        [Notice::TwoMasters {
            source: HIGHER_ADDRESS,
            priority: Priority::new(50),
            ours: Priority::new(100),
            kept_master: true,
        }]
    );
    let outputs = actions(&outputs);
    assert_eq!(sent_priorities(&outputs), [100]);
    assert_eq!(outputs[1], Output::Announce { count: 5 });
    assert_eq!(router.state(), State::Master);
    assert_eq!(router.poll_timeout(), Some(clock.at(now + S)));
    assert_eq!(router.stats().two_masters_seen, 1);
}

/// A backup of priority 100 that preempts a priority-50 master at `t0 + MDI_100`.
fn master_by_preemption(clock: &Clock) -> VirtualRouter {
    let mut router = started(config(100), clock);
    router.handle_input(clock.at(S), from(LOWER_ADDRESS, advert(50, 100)));
    router.handle_timeout(clock.at(MDI_100));
    let outputs = drain(&mut router);
    assert!(outputs.contains(&changed(State::Backup, State::Master, Reason::Preempted)));
    router
}

#[test]
fn a_flood_of_lower_priority_adverts_gets_one_answer_and_one_burst_per_advert_interval() {
    let clock = Clock::new();
    let mut router = master(
        RouterConfig {
            garp: GarpSchedule {
                delay: None,
                ..GarpSchedule::default()
            },
            ..config(100)
        },
        &clock,
    );
    // 10 000 valid lower-priority adverts in 1 s, as any on-link host can send, then 10 s more.
    let mut sent = Vec::new();
    let mut bursts = Vec::new();
    let flood_start = MDI_100 + MS;
    for k in 0..110_000 {
        let now = clock.at(flood_start + k * 100 * US);
        if router.poll_timeout().is_some_and(|at| at <= now) {
            router.handle_timeout(now);
        }
        router.handle_input(now, from(LOWER_ADDRESS, advert(50, 100)));
        for output in drain(&mut router) {
            match output {
                Output::SendAdvertisement(_) => sent.push(now),
                Output::Announce { .. } => bursts.push(now),
                _ => {}
            }
        }
        if k == 9_999 {
            // The first second: one answer, one burst (the periodic advert is not yet due).
            assert_eq!((sent.len(), bursts.len()), (1, 1), "{sent:?}");
        }
    }
    let per_interval = |times: &[Instant]| {
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    };
    assert!(per_interval(&sent) <= 2, "adverts per interval: {sent:?}");
    assert_eq!(per_interval(&bursts), 1, "bursts per interval: {bursts:?}");
    assert_eq!(bursts.len(), 11);
    assert_eq!(
        router.stats().two_masters_seen,
        11,
        "one split brain per interval at most"
    );
    assert_eq!(router.state(), State::Master);
}

#[test]
fn a_planned_preemption_sends_no_last_advert_and_counts_no_split_brain() {
    let clock = Clock::new();
    // We took over from a master that released (priority 0: shutdown, maintenance, fault) ...
    let mut released = started(config(100), &clock);
    released.handle_input(clock.at(S), from(LOWER_ADDRESS, advert(0, 100)));
    released.handle_timeout(clock.at(S + SKEW_100));
    drain(&mut released);
    // ... or we preempted a lower-priority one.
    let preempted = master_by_preemption(&clock);
    for mut router in [released, preempted] {
        assert_eq!(router.state(), State::Master);
        // It comes back better and preempts us: nothing to heal, so no last advert.
        router.handle_input(clock.at(5 * S), from(LOWER_ADDRESS, advert(200, 100)));
        let outputs = drain(&mut router);
        assert_eq!(sent_priorities(&outputs), Vec::<u8>::new());
        assert_eq!(router.state(), State::Backup);
        assert_eq!(router.stats().two_masters_seen, 0);
        assert!(notices(&outputs).is_empty(), "{outputs:?}");
    }
}

#[test]
fn after_preempting_the_old_masters_adverts_in_flight_are_neither_answered_nor_counted() {
    let clock = Clock::new();
    let mut router = master_by_preemption(&clock);
    // Its periodic advert crossed ours, or it sent a last one on yielding.
    router.handle_input(clock.at(MDI_100 + MS), from(LOWER_ADDRESS, advert(50, 100)));
    assert!(drain(&mut router).is_empty());
    assert_eq!(router.stats().two_masters_seen, 0);
    // Still master a whole interval later: it did not hear us; that is a second master.
    router.handle_input(clock.at(MDI_100 + S), from(LOWER_ADDRESS, advert(50, 100)));
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [100]);
    assert_eq!(announcements(&outputs), 1);
    assert_eq!(router.stats().two_masters_seen, 1);
}

#[test]
fn equal_priority_or_preempt_off_makes_the_yielding_master_count_a_split_brain() {
    let clock = Clock::new();
    // RFC 9568 6.4.2: a backup never preempts an equal priority, nor anyone with preempt off;
    // such a master cannot have heard us.
    let no_preempt = RouterConfig {
        preempt: false,
        ..config(100)
    };
    for (config, theirs) in [(config(100), 100), (no_preempt, 200)] {
        let mut router = master(config, &clock);
        router.handle_input(
            clock.at(MDI_100 + MS),
            from(HIGHER_ADDRESS, advert(theirs, 100)),
        );
        let outputs = drain(&mut router);
        assert_eq!(sent_priorities(&outputs), [100], "the last advert");
        assert_eq!(router.stats().two_masters_seen, 1);
        assert_eq!(
            notices(&outputs),
            [Notice::TwoMasters {
                source: HIGHER_ADDRESS,
                priority: Priority::new(theirs),
                ours: Priority::new(100),
                kept_master: false,
            }]
        );
    }
}

#[test]
fn the_last_advert_on_yielding_shares_the_answers_limit() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(clock.at(MDI_100 + MS), from(LOWER_ADDRESS, advert(50, 100)));
    assert_eq!(sent_priorities(&drain(&mut router)), [100]);
    // The better master heard that answer: no second advert in the same interval.
    router.handle_input(
        clock.at(MDI_100 + 2 * MS),
        from(HIGHER_ADDRESS, advert(200, 100)),
    );
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), Vec::<u8>::new());
    assert_eq!(router.state(), State::Backup);
}

#[test]
fn yielding_to_an_address_owner_says_which_address_won() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(
        clock.at(MDI_100 + MS),
        from(LOWER_ADDRESS, advert(255, 100)),
    );
    let outputs = drain(&mut router);
    assert_eq!(
        notices(&outputs),
        [Notice::LostToOwner {
            source: LOWER_ADDRESS
        }]
    );
    assert_eq!(router.state(), State::Backup);
}

#[test]
fn adverts_that_fail_a_check_never_raise_two_masters_seen_nor_an_answer() {
    let clock = Clock::new();
    let mut other_vrid = advert(50, 100);
    other_vrid.vrid = Vrid::try_from(52).unwrap();
    let mut other_family = advert(50, 100);
    other_family.addresses = vec!["2001:db8::50".parse().unwrap()];
    let v2 = Advertisement {
        fields: VersionFields::V2 {
            advert_interval_secs: NonZeroU8::new(1).unwrap(),
            auth: Auth::None,
        },
        ..advert(50, 100)
    };
    let failing = [
        (LOWER_ADDRESS, other_vrid),
        (LOWER_ADDRESS, other_family),
        (LOWER_ADDRESS, v2),
        (OURS, advert(50, 100)),
    ];
    let mut router = master(config(100), &clock);
    for (source, advert) in failing {
        router.handle_input(clock.at(MDI_100 + MS), from(source, advert));
        assert!(drain(&mut router).is_empty());
    }
    let mut v2_router = master(v2_config(100), &clock);
    let wrong_password = v2_advert(1, Auth::simple_password(b"guess").unwrap());
    let wrong_interval = v2_advert(2, Auth::None);
    for advert in [wrong_password, wrong_interval] {
        let advert = Advertisement {
            priority: Priority::new(50),
            ..advert
        };
        v2_router.handle_input(clock.at(MDI_100 + MS), from(LOWER_ADDRESS, advert));
        assert!(actions(&drain(&mut v2_router)).is_empty());
    }
    for router in [router, v2_router] {
        assert_eq!(router.stats().two_masters_seen, 0);
        assert_eq!(router.stats().adverts_received, 0);
        assert_eq!(router.state(), State::Master);
    }
}

#[test]
fn master_effective_priority_change_is_advertised_at_once() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    let now = MDI_100 + 500 * MS;
    router.handle_input(clock.at(now), Input::EffectivePriority(Priority::new(40)));
    assert_eq!(sent_priorities(&drain(&mut router)), [40]);
    assert_eq!(router.poll_timeout(), Some(clock.at(now + S)));
    router.handle_input(clock.at(now), Input::EffectivePriority(Priority::new(40)));
    assert!(
        drain(&mut router).is_empty(),
        "unchanged priority sends nothing"
    );
}

#[test]
fn effective_priority_is_clamped_to_1_254_and_the_owner_keeps_255() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(0), Input::EffectivePriority(Priority::new(0)));
    assert_eq!(router.effective_priority(), Priority::new(1));
    router.handle_input(clock.at(0), Input::EffectivePriority(Priority::OWNER));
    assert_eq!(router.effective_priority(), Priority::new(254));
    assert_eq!(router.configured_priority(), Priority::new(100));
    let mut owner = started(config(255), &clock);
    owner.handle_input(clock.at(0), Input::EffectivePriority(Priority::new(10)));
    assert_eq!(owner.effective_priority(), Priority::OWNER);
}

// ---- Shutdown, Fault, maintenance ----

#[test]
fn shutdown_as_master_sends_priority_zero_then_removes_vips() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(clock.at(MDI_100 + MS), Input::Shutdown);
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [0]);
    assert_eq!(
        outputs[1..],
        [
            Output::RemoveVips,
            changed(State::Master, State::Initialize, Reason::Shutdown),
        ]
    );
    assert_eq!(router.poll_timeout(), None);
    assert_eq!(router.stats().priority_zero_sent, 1);
}

#[test]
fn shutdown_as_backup_goes_to_initialize_without_sending() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), Input::Shutdown);
    assert_eq!(
        drain(&mut router),
        [changed(State::Backup, State::Initialize, Reason::Shutdown)]
    );
    assert_eq!(router.poll_timeout(), None);
}

#[test]
fn entering_fault_as_master_sends_priority_zero_removes_vips_and_stops_advertising() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(clock.at(MDI_100 + MS), Input::Fault(true));
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [0]);
    assert_eq!(
        outputs[1..],
        [
            Output::RemoveVips,
            changed(State::Master, State::Fault, Reason::Fault),
        ]
    );
    assert_eq!(router.poll_timeout(), None);
    router.handle_input(
        clock.at(MDI_100 + 2 * MS),
        from(HIGHER_ADDRESS, advert(0, 100)),
    );
    assert!(
        drain(&mut router).is_empty(),
        "Fault does not answer adverts"
    );
}

#[test]
fn leaving_fault_returns_to_backup_with_a_fresh_master_down_interval() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), Input::Fault(true));
    router.handle_input(clock.at(10 * S), Input::Fault(false));
    assert_eq!(
        drain(&mut router),
        [
            changed(State::Backup, State::Fault, Reason::Fault),
            changed(State::Fault, State::Backup, Reason::FaultCleared),
        ]
    );
    assert_eq!(router.poll_timeout(), Some(clock.at(10 * S + MDI_100)));
}

#[test]
fn leaving_fault_as_address_owner_becomes_master_at_once() {
    let clock = Clock::new();
    let mut router = started(config(255), &clock);
    router.handle_input(clock.at(S), Input::Fault(true));
    drain(&mut router);
    router.handle_input(clock.at(2 * S), Input::Fault(false));
    assert_eq!(
        drain(&mut router).last(),
        Some(&changed(State::Fault, State::Master, Reason::FaultCleared))
    );
}

#[test]
fn fault_raised_before_startup_starts_in_fault() {
    let clock = Clock::new();
    let mut router = VirtualRouter::new(config(255)).unwrap();
    router.handle_input(clock.at(0), Input::Fault(true));
    router.handle_input(clock.at(0), Input::Startup);
    assert_eq!(
        drain(&mut router),
        [
            Output::RemoveVips,
            changed(State::Initialize, State::Fault, Reason::Fault)
        ]
    );
    assert!(router.in_fault());
}

#[test]
fn maintenance_as_master_releases_with_priority_zero_and_never_takes_over() {
    let clock = Clock::new();
    let mut router = master(config(255), &clock);
    router.handle_input(clock.at(MDI_100 + MS), Input::Maintenance(true));
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [0]);
    assert_eq!(
        outputs[1..],
        [
            Output::RemoveVips,
            changed(State::Master, State::Backup, Reason::Maintenance),
        ]
    );
    assert_eq!(router.poll_timeout(), None);
    router.handle_input(
        clock.at(MDI_100 + 2 * MS),
        from(HIGHER_ADDRESS, advert(0, 100)),
    );
    assert_eq!(router.poll_timeout(), None, "not even after a release");
    assert!(router.in_maintenance());
}

#[test]
fn maintenance_off_watches_the_master_for_a_fresh_master_down_interval() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), Input::Maintenance(true));
    assert_eq!(router.poll_timeout(), None);
    router.handle_input(clock.at(20 * S), Input::Maintenance(false));
    assert_eq!(router.poll_timeout(), Some(clock.at(20 * S + MDI_100)));
}

// ---- Gratuitous ARP / NA schedule (docs/design/vrrp.md, Announcements; RFC 9568 6.4.2 announces on becoming master) ----

#[test]
fn garp_burst_on_master_then_second_burst_after_delay_then_periodic_refresh() {
    let clock = Clock::new();
    let mut router = master(
        RouterConfig {
            garp: GarpSchedule {
                repeat: 3,
                delay: Some(Duration::from_millis(2_500)),
                refresh: Some(Duration::from_secs(60)),
            },
            ..config(100)
        },
        &clock,
    );
    let mut announcements = Vec::new();
    let mut now = MDI_100;
    while now < MDI_100 + 130 * S {
        let next = router.poll_timeout().unwrap();
        now = u64::try_from((next - clock.at(0)).as_micros()).unwrap();
        router.handle_timeout(next);
        for output in drain(&mut router) {
            if let Output::Announce { count } = output {
                announcements.push((now - MDI_100, count));
            }
        }
    }
    assert_eq!(
        announcements,
        [(2_500 * MS, 3), (60 * S, 1), (120 * S, 1)],
        "second burst at +2.5 s, refresh every 60 s (the first burst came with the transition)"
    );
}

#[test]
fn garp_without_delay_or_refresh_sends_only_the_first_burst() {
    let clock = Clock::new();
    let mut router = started(
        RouterConfig {
            garp: GarpSchedule {
                repeat: 2,
                delay: Some(Duration::ZERO),
                refresh: None,
            },
            ..config(100)
        },
        &clock,
    );
    router.handle_timeout(clock.at(MDI_100));
    assert!(drain(&mut router).contains(&Output::Announce { count: 2 }));
    assert_eq!(router.poll_timeout(), Some(clock.at(MDI_100 + S)));
}

// ---- Receive checks (RFC 3768 7.1, RFC 9568 7.1): drop and count, never act ----

fn assert_dropped(config: RouterConfig, source: IpAddr, advert: Advertisement, reason: DropReason) {
    let clock = Clock::new();
    let mut router = started(config, &clock);
    router.handle_input(clock.at(S), from(source, advert));
    assert_eq!(
        router.poll_timeout(),
        Some(clock.at(MDI_100)),
        "timer untouched"
    );
    assert_eq!(router.stats().dropped.get(reason), 1);
    assert_eq!(router.stats().adverts_received, 0);
    assert_eq!(router.last_master(), None);
}

#[test]
fn receive_drops_and_counts_another_vrid() {
    let mut other = advert(200, 100);
    other.vrid = Vrid::try_from(52).unwrap();
    assert_dropped(config(100), HIGHER_ADDRESS, other, DropReason::WrongVrid);
}

#[test]
fn receive_drops_and_counts_another_version() {
    let v2 = Advertisement {
        fields: VersionFields::V2 {
            advert_interval_secs: NonZeroU8::new(1).unwrap(),
            auth: Auth::None,
        },
        ..advert(200, 100)
    };
    assert_dropped(config(100), HIGHER_ADDRESS, v2, DropReason::WrongVersion);
}

#[test]
fn receive_drops_and_counts_another_address_family() {
    let source: IpAddr = "fe80::1".parse().unwrap();
    assert_dropped(
        config(100),
        source,
        advert(200, 100),
        DropReason::WrongFamily,
    );
    let mut v6_addresses = advert(200, 100);
    v6_addresses.addresses = vec!["2001:db8::50".parse().unwrap()];
    assert_dropped(
        config(100),
        HIGHER_ADDRESS,
        v6_addresses,
        DropReason::WrongFamily,
    );
}

#[test]
fn receive_drops_and_counts_our_own_looped_back_advert() {
    assert_dropped(config(100), OURS, advert(200, 100), DropReason::OwnAdvert);
}

fn v2_advert(secs: u8, auth: Auth) -> Advertisement {
    Advertisement {
        fields: VersionFields::V2 {
            advert_interval_secs: NonZeroU8::new(secs).unwrap(),
            auth,
        },
        ..advert(200, 100)
    }
}

#[test]
fn receive_v2_drops_and_counts_an_advert_interval_other_than_ours_rfc3768_7_1() {
    let clock = Clock::new();
    let mut router = started(v2_config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, v2_advert(2, Auth::None)));
    assert_eq!(router.stats().dropped.interval_mismatch, 1);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, v2_advert(1, Auth::None)));
    assert_eq!(router.stats().adverts_received, 1);
}

#[test]
fn receive_v2_drops_and_counts_a_wrong_auth_type_or_password_rfc3768_7_1() {
    let clock = Clock::new();
    let password = Auth::simple_password(b"s3cret").unwrap();
    let mut router = started(
        RouterConfig {
            auth: password,
            ..v2_config(100)
        },
        &clock,
    );
    let wrong = Auth::simple_password(b"guess").unwrap();
    for auth in [Auth::None, wrong] {
        router.handle_input(clock.at(S), from(HIGHER_ADDRESS, v2_advert(1, auth)));
    }
    assert_eq!(router.stats().dropped.auth_mismatch, 2);
    assert_eq!(
        notices(&drain(&mut router)),
        vec![
            Notice::AuthMismatch {
                source: HIGHER_ADDRESS
            };
            2
        ],
        "reported, so the instance can log it"
    );
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, v2_advert(1, password)));
    assert_eq!(router.stats().adverts_received, 1);
    assert_eq!(router.poll_timeout(), Some(clock.at(S + 3_609_375)));
}

#[test]
fn receive_counts_an_address_list_mismatch_but_accepts_the_advert_check_optional_rfc9568_7_1() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    let mut other = advert(200, 100);
    other.addresses = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99))];
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, other));
    assert_eq!(router.stats().address_list_mismatch, 1);
    assert_eq!(router.poll_timeout(), Some(clock.at(S + MDI_100)));
}

#[test]
fn an_address_list_mismatch_is_reported_with_the_count_it_carried() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    let mut other = advert(200, 100);
    other.addresses = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99))];
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, other));
    assert_eq!(
        notices(&drain(&mut router)),
        [Notice::AddressListMismatch {
            source: HIGHER_ADDRESS,
            count: 1
        }]
    );
}

#[test]
fn a_count_0_advert_is_accepted_and_reported_as_keepalived_sends_one_with_every_vip_excluded() {
    // keepalived sends count 0 when every VIP is `virtual_ipaddress_excluded`, and drops a count
    // that differs from its own; vipd accepts it like any address-list mismatch (RFC 9568 7.1
    // makes the check optional), so a keepalived master is followed, and reports it.
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    let mut empty = advert(200, 100);
    empty.addresses = vec![];
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, empty));
    assert_eq!(router.stats().adverts_received, 1);
    assert_eq!(router.stats().address_list_mismatch, 1);
    assert_eq!(router.poll_timeout(), Some(clock.at(S + MDI_100)));
    assert_eq!(
        notices(&drain(&mut router)),
        [Notice::AddressListMismatch {
            source: HIGHER_ADDRESS,
            count: 0
        }]
    );
}

#[test]
fn a_v3_interval_mismatch_is_accepted_counted_and_reported_rfc9568_7_1() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 50)));
    assert_eq!(router.stats().adverts_received, 1);
    assert_eq!(router.stats().interval_mismatch, 1);
    assert_eq!(
        notices(&drain(&mut router)),
        [Notice::IntervalMismatch {
            source: HIGHER_ADDRESS,
            theirs: Duration::from_millis(500),
            ours: Duration::from_secs(1),
            accepted: true,
        }]
    );
    router.handle_input(clock.at(2 * S), from(HIGHER_ADDRESS, advert(200, 100)));
    assert!(
        drain(&mut router).is_empty(),
        "a matching interval says nothing"
    );
}

#[test]
fn a_v2_interval_mismatch_is_dropped_and_reported_rfc3768_7_1() {
    let clock = Clock::new();
    let mut router = started(v2_config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, v2_advert(3, Auth::None)));
    assert_eq!(router.stats().dropped.interval_mismatch, 1);
    assert_eq!(router.stats().interval_mismatch, 0);
    assert_eq!(
        notices(&drain(&mut router)),
        [Notice::IntervalMismatch {
            source: HIGHER_ADDRESS,
            theirs: Duration::from_secs(3),
            ours: Duration::from_secs(1),
            accepted: false,
        }]
    );
}

#[test]
fn an_address_owner_hearing_another_owner_reports_a_configuration_error() {
    let clock = Clock::new();
    let mut owner = started(config(255), &clock);
    owner.handle_input(clock.at(S), from(LOWER_ADDRESS, advert(100, 100)));
    assert!(
        !notices(&drain(&mut owner))
            .iter()
            .any(|n| matches!(n, Notice::OwnerHearsAdvert { .. })),
        "a backup that became master is no configuration error"
    );
    owner.handle_input(clock.at(2 * S), from(LOWER_ADDRESS, advert(255, 100)));
    let outputs = drain(&mut owner);
    assert!(notices(&outputs).contains(&Notice::OwnerHearsAdvert {
        source: LOWER_ADDRESS,
        priority: Priority::OWNER
    }));
    // The tie-break still elects one: ours is the larger address.
    assert_eq!(owner.state(), State::Master);
}

#[test]
fn status_reports_the_last_master_seen() {
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), from(HIGHER_ADDRESS, advert(200, 50)));
    assert_eq!(
        router.last_master(),
        Some(&MasterInfo {
            address: HIGHER_ADDRESS,
            priority: Priority::new(200),
            advert_interval: Duration::from_millis(500),
            seen_at: clock.at(S),
        })
    );
    assert_eq!(router.stats().adverts_received, 1);
}

// ---- Configuration ----

#[test]
fn config_refuses_what_the_protocol_cannot_carry() {
    let refused = |config: RouterConfig| VirtualRouter::new(config).unwrap_err();
    assert!(matches!(
        refused(config(0)),
        ConfigError::PriorityZero { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            advert_interval: Duration::from_millis(15),
            ..config(100)
        }),
        ConfigError::Interval { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            advert_interval: Duration::from_millis(1500),
            ..v2_config(100)
        }),
        ConfigError::Interval { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            advert_interval: Duration::from_secs(256),
            ..v2_config(100)
        }),
        ConfigError::Interval { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            auth: Auth::simple_password(b"x").unwrap(),
            ..config(100)
        }),
        ConfigError::AuthWithV3 { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            primary_address: "fe80::1".parse().unwrap(),
            vips: vec![],
            ..v2_config(100)
        }),
        ConfigError::V2OverIpv6 { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            vips: vec!["2001:db8::50".parse().unwrap()],
            ..config(100)
        }),
        ConfigError::VipFamily { .. }
    ));
    assert!(matches!(
        refused(RouterConfig {
            vips: vec![VIP; 256],
            ..config(100)
        }),
        ConfigError::TooManyVips { count: 256, .. }
    ));
}

#[test]
fn config_refuses_durations_that_could_overflow_a_deadline() {
    let refused = |config: RouterConfig| VirtualRouter::new(config).unwrap_err();
    assert_eq!(
        refused(RouterConfig {
            preempt_delay: Duration::MAX,
            ..config(100)
        }),
        ConfigError::Duration {
            vrid: vrid(),
            field: "preempt_delay",
            value: Duration::MAX
        }
    );
    for (delay, refresh, field) in [
        (Some(Duration::MAX), None, "garp.delay"),
        (
            None,
            Some(MAX_TIMER + Duration::from_nanos(1)),
            "garp.refresh",
        ),
    ] {
        let error = refused(RouterConfig {
            garp: GarpSchedule {
                repeat: 5,
                delay,
                refresh,
            },
            ..config(100)
        });
        assert!(
            matches!(error, ConfigError::Duration { field: f, .. } if f == field),
            "{error}"
        );
    }
    // The limit itself runs, however far the clock has gone.
    let clock = Clock::new();
    let mut router = master(
        RouterConfig {
            preempt_delay: MAX_TIMER,
            garp: GarpSchedule {
                repeat: 1,
                delay: Some(MAX_TIMER),
                refresh: Some(MAX_TIMER),
            },
            ..config(100)
        },
        &clock,
    );
    router.handle_timeout(clock.at(MDI_100) + MAX_TIMER);
    assert_eq!(announcements(&drain(&mut router)), 2);
    let mut checking = VirtualRouter::new(config(100))
        .unwrap()
        .checking_host_every(Duration::MAX);
    checking.handle_input(clock.at(0), Input::Startup);
    assert_eq!(checking.poll_timeout(), Some(clock.at(MDI_100)));
}

#[test]
fn v2_config_accepts_up_to_255_second_intervals() {
    let router = VirtualRouter::new(RouterConfig {
        advert_interval: Duration::from_secs(255),
        ..v2_config(100)
    })
    .unwrap();
    assert_eq!(router.master_advert_interval(), Duration::from_secs(255));
}

// ---- The host: what vipd adds to the RFC so that the VIPs follow the router, whatever the host does ----

const HOST_CHECK: u64 = 5 * S;

fn checking_host(config: RouterConfig) -> VirtualRouter {
    VirtualRouter::new(config)
        .unwrap()
        .checking_host_every(Duration::from_micros(HOST_CHECK))
}

#[test]
fn a_router_that_starts_as_backup_or_in_fault_removes_vips_a_killed_predecessor_left() {
    let clock = Clock::new();
    let mut backup = VirtualRouter::new(config(100)).unwrap();
    backup.handle_input(clock.at(0), Input::Startup);
    assert_eq!(drain(&mut backup)[0], Output::RemoveVips);
    let mut fault = VirtualRouter::new(config(100)).unwrap();
    fault.handle_input(clock.at(0), Input::Fault(true));
    fault.handle_input(clock.at(0), Input::Startup);
    assert_eq!(drain(&mut fault)[0], Output::RemoveVips);
}

#[test]
fn an_address_owner_that_starts_as_master_keeps_its_vips() {
    let clock = Clock::new();
    let mut owner = VirtualRouter::new(config(255)).unwrap();
    owner.handle_input(clock.at(0), Input::Startup);
    let outputs = drain(&mut owner);
    assert!(!outputs.contains(&Output::RemoveVips), "{outputs:?}");
    assert_eq!(outputs[0], Output::AddVips);
}

#[test]
fn leaving_fault_as_backup_removes_nothing_more() {
    // Entering Fault from Master released the VIPs already; from Backup there were none.
    let clock = Clock::new();
    let mut router = started(config(100), &clock);
    router.handle_input(clock.at(S), Input::Fault(true));
    drain(&mut router);
    router.handle_input(clock.at(2 * S), Input::Fault(false));
    assert_eq!(
        drain(&mut router),
        [changed(State::Fault, State::Backup, Reason::FaultCleared)]
    );
}

#[test]
fn a_master_puts_missing_vips_back_counts_them_and_announces_once() {
    let clock = Clock::new();
    let mut router = master(config(255), &clock);
    router.handle_input(clock.at(S), Input::VipsMissing { count: 1 });
    assert_eq!(
        drain(&mut router),
        [Output::AddVips, Output::Announce { count: 1 }]
    );
    assert_eq!(router.stats().vips_restored, 1);
}

#[test]
fn a_backup_or_a_faulty_router_holds_no_vips_so_missing_ones_stay_missing() {
    let clock = Clock::new();
    let mut backup = started(config(100), &clock);
    backup.handle_input(clock.at(S), Input::VipsMissing { count: 1 });
    assert_eq!(drain(&mut backup), []);
    backup.handle_input(clock.at(S), Input::Fault(true));
    drain(&mut backup);
    backup.handle_input(clock.at(2 * S), Input::VipsMissing { count: 1 });
    assert_eq!(drain(&mut backup), []);
    assert_eq!(backup.stats().vips_restored, 0);
}

#[test]
fn a_renumbered_master_breaks_equal_priority_ties_with_its_new_address_rfc9568_6_4_3() {
    let clock = Clock::new();
    // Ours is .11; a master at equal priority from .12 would win against it.
    let mut router = master(config(100), &clock);
    let renumbered = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 13));
    router.handle_input(clock.at(S), Input::PrimaryAddress(renumbered));
    router.handle_input(clock.at(2 * S), from(HIGHER_ADDRESS, advert(100, 100)));
    let outputs = drain(&mut router);
    assert_eq!(sent_priorities(&outputs), [100], "{outputs:?}");
    assert_eq!(router.state(), State::Master);
    // Our own advert, looped back from the new address, is ours.
    router.handle_input(clock.at(3 * S), from(renumbered, advert(100, 100)));
    assert_eq!(router.stats().dropped.own_advert, 1);
}

#[test]
fn a_primary_address_of_the_other_family_is_ignored() {
    let clock = Clock::new();
    let mut router = master(config(100), &clock);
    router.handle_input(
        clock.at(S),
        Input::PrimaryAddress("2001:db8::13".parse().unwrap()),
    );
    assert_eq!(router.config().primary_address, OURS);
}

#[test]
fn a_backup_is_asked_to_check_the_host_every_interval_but_not_its_vips() {
    let clock = Clock::new();
    let mut router = checking_host(config(100));
    router.handle_input(clock.at(0), Input::Startup);
    drain(&mut router);
    for second in 1..=4 {
        router.handle_input(clock.at(second * S), from(HIGHER_ADDRESS, advert(200, 100)));
    }
    assert_eq!(router.poll_timeout(), Some(clock.at(HOST_CHECK)));
    router.handle_timeout(clock.at(HOST_CHECK));
    assert_eq!(drain(&mut router), [Output::CheckHost { vips: false }]);
    assert_eq!(router.state(), State::Backup);
    assert_eq!(router.poll_timeout(), Some(clock.at(4 * S + MDI_100)));
}

#[test]
fn a_master_is_asked_to_check_its_vips_too() {
    let clock = Clock::new();
    let mut router = checking_host(config(255));
    router.handle_input(clock.at(0), Input::Startup);
    drain(&mut router);
    // Adverts every second, and the host check at 5 s comes with the one due then.
    for second in 1..=5 {
        router.handle_timeout(clock.at(second * S));
    }
    let outputs = drain(&mut router);
    assert!(
        outputs.contains(&Output::CheckHost { vips: true }),
        "{outputs:?}"
    );
    assert_eq!(router.poll_timeout(), Some(clock.at(6 * S)));
}

#[test]
fn a_router_in_fault_keeps_checking_the_host_so_a_recreated_interface_is_found() {
    let clock = Clock::new();
    let mut router = checking_host(config(100));
    router.handle_input(clock.at(0), Input::Fault(true));
    router.handle_input(clock.at(0), Input::Startup);
    drain(&mut router);
    assert_eq!(router.poll_timeout(), Some(clock.at(HOST_CHECK)));
    router.handle_timeout(clock.at(HOST_CHECK));
    assert_eq!(drain(&mut router), [Output::CheckHost { vips: false }]);
    assert_eq!(router.poll_timeout(), Some(clock.at(2 * HOST_CHECK)));
}

#[test]
fn a_stopped_router_asks_for_nothing() {
    let clock = Clock::new();
    let mut router = checking_host(config(100));
    assert_eq!(router.poll_timeout(), None, "nothing before startup");
    router.handle_input(clock.at(0), Input::Startup);
    router.handle_input(clock.at(S), Input::Shutdown);
    drain(&mut router);
    assert_eq!(router.poll_timeout(), None);
}

// ---- Restart after a crash (docs/design/vrrp.md, "Restart after a crash"; not in the RFC) ----

/// A priority-100 router started on a host that holds the VIPs a killed predecessor left.
fn started_holding_vips(config: RouterConfig, clock: &Clock) -> (VirtualRouter, Vec<Output>) {
    let mut router = VirtualRouter::new(config).unwrap();
    router.handle_input(clock.at(0), Input::StartupHoldingVips);
    let outputs = drain(&mut router);
    (router, outputs)
}

#[test]
fn a_restarted_master_keeps_its_vips_and_takes_over_after_one_interval_and_skew_of_silence() {
    let clock = Clock::new();
    let (mut router, outputs) = started_holding_vips(config(100), &clock);
    assert_eq!(
        outputs,
        [changed(State::Initialize, State::Backup, Reason::Startup)],
        "no removal while it listens"
    );
    let listen = S + SKEW_100;
    assert_eq!(router.poll_timeout(), Some(clock.at(listen)));
    router.handle_timeout(clock.at(listen));
    let outputs = drain(&mut router);
    assert!(!outputs.contains(&Output::RemoveVips), "{outputs:?}");
    assert_eq!(outputs[0], Output::AddVips);
    assert_eq!(sent_priorities(&outputs), [100]);
    assert_eq!(router.state(), State::Master);
}

#[test]
fn a_restarted_router_that_hears_a_master_removes_its_leftover_vips_at_once_and_once() {
    let clock = Clock::new();
    let (mut router, _) = started_holding_vips(config(100), &clock);
    router.handle_input(clock.at(500 * MS), from(HIGHER_ADDRESS, advert(200, 100)));
    assert_eq!(drain(&mut router), [Output::RemoveVips]);
    assert_eq!(router.poll_timeout(), Some(clock.at(500 * MS + MDI_100)));
    router.handle_input(clock.at(1500 * MS), from(HIGHER_ADDRESS, advert(200, 100)));
    assert!(drain(&mut router).is_empty(), "removed once");
    router.handle_input(clock.at(2 * S), Input::Shutdown);
    assert!(!drain(&mut router).contains(&Output::RemoveVips));
}

#[test]
fn a_restarted_router_that_hears_a_lower_priority_master_keeps_its_vips_and_preempts() {
    let clock = Clock::new();
    let (mut router, _) = started_holding_vips(config(100), &clock);
    router.handle_input(clock.at(500 * MS), from(HIGHER_ADDRESS, advert(50, 100)));
    assert!(drain(&mut router).is_empty());
    router.handle_timeout(clock.at(S + SKEW_100));
    let outputs = drain(&mut router);
    assert!(!outputs.contains(&Output::RemoveVips), "{outputs:?}");
    assert_eq!(
        outputs.last(),
        Some(&changed(State::Backup, State::Master, Reason::Preempted))
    );
}

#[test]
fn a_restarted_router_that_stops_faults_or_is_put_in_maintenance_while_listening_removes_them() {
    let clock = Clock::new();
    let inputs = [
        Input::Shutdown,
        Input::Fault(true),
        Input::Maintenance(true),
    ];
    for input in inputs {
        let (mut router, _) = started_holding_vips(config(100), &clock);
        router.handle_input(clock.at(100 * MS), input.clone());
        let outputs = drain(&mut router);
        assert_eq!(outputs.first(), Some(&Output::RemoveVips), "{input:?}");
        assert_eq!(
            outputs.iter().filter(|o| **o == Output::RemoveVips).count(),
            1,
            "{input:?}: {outputs:?}"
        );
    }
}

#[test]
fn an_owner_or_a_faulty_router_started_holding_vips_starts_as_usual() {
    let clock = Clock::new();
    let (owner, outputs) = started_holding_vips(config(255), &clock);
    assert_eq!(owner.state(), State::Master);
    assert!(!outputs.contains(&Output::RemoveVips), "{outputs:?}");
    let mut faulty = VirtualRouter::new(config(100)).unwrap();
    faulty.handle_input(clock.at(0), Input::Fault(true));
    faulty.handle_input(clock.at(0), Input::StartupHoldingVips);
    assert_eq!(drain(&mut faulty)[0], Output::RemoveVips);
    assert_eq!(faulty.state(), State::Fault);
}
