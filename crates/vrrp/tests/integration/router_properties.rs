//! Properties of the state machine under arbitrary input sequences on a virtual clock: it never
//! panics, its outputs agree with its state, and no timer is ever stuck in the past.

#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed unwrap is a failed test"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU8;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vipd_vrrp::{
    Advertisement, Auth, Centis, GarpSchedule, Input, Output, Priority, Reason, RouterConfig,
    State, Version, VersionFields, VirtualRouter, Vrid,
};

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));

#[derive(Debug, Clone)]
enum Step {
    /// Let this many µs pass, firing every timer due on the way.
    Wait(u64),
    Input(Input),
}

fn any_advert() -> impl Strategy<Value = Input> {
    (
        prop_oneof![Just(51u8), Just(52u8)],
        any::<u8>(),
        prop_oneof![
            (1u16..=300).prop_map(|centis| VersionFields::V3 {
                max_advert_interval: Centis::try_from(centis).unwrap(),
            }),
            (1u8..=3).prop_map(|secs| VersionFields::V2 {
                advert_interval_secs: NonZeroU8::new(secs).unwrap(),
                auth: Auth::None,
            }),
        ],
        10u8..=12,
    )
        .prop_map(|(vrid, priority, fields, host)| Input::Advertisement {
            source: IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)),
            advert: Advertisement {
                vrid: Vrid::try_from(vrid).unwrap(),
                priority: Priority::new(priority),
                fields,
                addresses: vec![VIP],
            },
        })
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..5_000_000).prop_map(Step::Wait),
        4 => any_advert().prop_map(Step::Input),
        1 => Just(Step::Input(Input::Startup)),
        1 => Just(Step::Input(Input::StartupHoldingVips)),
        1 => Just(Step::Input(Input::Shutdown)),
        1 => any::<u8>().prop_map(|p| Step::Input(Input::EffectivePriority(Priority::new(p)))),
        1 => any::<bool>().prop_map(|on| Step::Input(Input::Fault(on))),
        1 => any::<bool>().prop_map(|on| Step::Input(Input::Maintenance(on))),
    ]
}

fn any_config() -> impl Strategy<Value = RouterConfig> {
    (
        prop_oneof![Just(1u8), Just(100), Just(200), Just(255)],
        any::<bool>(),
        prop_oneof![Just(0u64), Just(3)],
        prop_oneof![Just(Version::V3), Just(Version::V2)],
        prop_oneof![Just(None), Just(Some(Duration::from_secs(2)))],
    )
        .prop_map(
            |(priority, preempt, delay_secs, version, refresh)| RouterConfig {
                version,
                preempt,
                preempt_delay: Duration::from_secs(delay_secs),
                garp: GarpSchedule {
                    refresh,
                    ..GarpSchedule::default()
                },
                ..RouterConfig::v3(
                    Vrid::try_from(51).unwrap(),
                    Priority::new(priority),
                    OURS,
                    vec![VIP],
                )
            },
        )
}

/// Drains outputs and checks them against the router's state.
struct Observer {
    state: State,
    holds_vips: bool,
}

impl Observer {
    fn drain(&mut self, router: &mut VirtualRouter) -> Result<(), TestCaseError> {
        // Side effects come before the StateChanged that reports them, so an advert is fine if
        // the segment it is in leaves or enters Master.
        let mut released = false;
        let mut advertised = false;
        while let Some(output) = router.poll_output() {
            match output {
                Output::SendAdvertisement(advert) => {
                    advertised = true;
                    released |= advert.priority.is_release();
                }
                Output::AddVips => self.holds_vips = true,
                Output::RemoveVips => self.holds_vips = false,
                // These routers have no host to check.
                Output::CheckHost { .. } | Output::Notice(_) => {}
                Output::Announce { count } => prop_assert!(count > 0),
                Output::StateChanged { from, to, reason } => {
                    prop_assert_eq!(from, self.state);
                    prop_assert_ne!(from, to);
                    prop_assert!(!advertised || from == State::Master || to == State::Master);
                    let must_release =
                        from == State::Master && reason != Reason::HigherPriorityMaster;
                    prop_assert_eq!(
                        released,
                        must_release,
                        "priority 0 exactly when a master stops"
                    );
                    released = false;
                    advertised = false;
                    self.state = to;
                }
            }
        }
        prop_assert!(
            !advertised || self.state == State::Master,
            "only a master advertises"
        );
        prop_assert!(!released, "priority 0 only with a state change");
        prop_assert_eq!(self.state, router.state());
        prop_assert_eq!(self.holds_vips, router.state() == State::Master);
        let timer_expected = match router.state() {
            State::Master => true,
            State::Backup => !router.in_maintenance(),
            State::Initialize | State::Fault => false,
        };
        prop_assert_eq!(router.poll_timeout().is_some(), timer_expected);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_input_sequence_keeps_outputs_consistent_with_state_and_timers_moving(
        config in any_config(),
        steps in prop::collection::vec(any_step(), 1..60),
    ) {
        // The one wall-clock read: an arbitrary epoch.
        let epoch = Instant::now();
        let mut now = epoch;
        let mut router = VirtualRouter::new(config).unwrap();
        let mut observer = Observer { state: State::Initialize, holds_vips: false };
        for step in steps {
            match step {
                Step::Input(input) => {
                    router.handle_input(now, input);
                    observer.drain(&mut router)?;
                }
                Step::Wait(micros) => {
                    let end = now + Duration::from_micros(micros);
                    // Bounded: at 10 ms intervals a 5 s wait is 500 adverts plus a few bursts.
                    for _ in 0..10_000 {
                        let Some(deadline) = router.poll_timeout().filter(|at| *at <= end) else {
                            break;
                        };
                        prop_assert!(deadline >= now, "timer in the past");
                        now = deadline;
                        router.handle_timeout(now);
                        observer.drain(&mut router)?;
                        prop_assert!(
                            router.poll_timeout().is_none_or(|next| next > now),
                            "handle_timeout left a timer due"
                        );
                    }
                    now = end;
                }
            }
        }
    }
}
