//! `VirtualRouter::reconfigure` on a virtual clock: what a reload changes in place, and what it
//! refuses (docs/design/vrrp.md, Reload).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::router::{GarpSchedule, Input, Output, RouterConfig, State, VirtualRouter};
use crate::wire::Auth;
use crate::{Priority, ReconfigureError, Version, Vrid};

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));
const NEW_VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 51));

fn config(priority: u8) -> RouterConfig {
    RouterConfig::v3(
        Vrid::try_from(51).unwrap(),
        Priority::new(priority),
        OURS,
        vec![VIP],
    )
}

fn drain(router: &mut VirtualRouter) -> Vec<Output> {
    std::iter::from_fn(|| router.poll_output()).collect()
}

/// A router that became master by its down timer; returns it and when that was.
fn master(config: RouterConfig, t0: Instant) -> (VirtualRouter, Instant) {
    let mut router = VirtualRouter::new(config).unwrap();
    router.handle_input(t0, Input::Startup);
    let down_at = router.poll_timeout().unwrap();
    router.handle_timeout(down_at);
    drain(&mut router);
    assert_eq!(router.state(), State::Master);
    (router, down_at)
}

fn adverts(outputs: &[Output]) -> Vec<&crate::Advertisement> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::SendAdvertisement(advert) => Some(advert),
            _ => None,
        })
        .collect()
}

#[test]
fn a_master_takes_new_vips_priority_preempt_and_garp_without_a_state_change() {
    let (mut router, at) = master(config(150), Instant::now());
    let next_advert = router.poll_timeout().unwrap();
    let new = RouterConfig {
        priority: Priority::new(120),
        preempt: false,
        preempt_delay: Duration::from_secs(30),
        vips: vec![VIP, NEW_VIP],
        garp: GarpSchedule {
            repeat: 2,
            delay: Some(Duration::from_secs(1)),
            refresh: None,
        },
        ..config(150)
    };
    router.reconfigure(at, new).unwrap();
    assert!(drain(&mut router).is_empty(), "nothing to do at once");
    assert_eq!(router.state(), State::Master);
    assert_eq!(router.stats().became_master, 1);
    assert_eq!(router.configured_priority().get(), 120);
    assert_eq!(
        router.effective_priority().get(),
        150,
        "the driver feeds the effective priority"
    );
    assert_eq!(
        router.poll_timeout(),
        Some(next_advert),
        "the advert timer kept"
    );

    router.handle_timeout(next_advert);
    let outputs = drain(&mut router);
    let sent = adverts(&outputs);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].addresses,
        [VIP, NEW_VIP],
        "the next advert lists the new VIP"
    );
}

/// RFC 9568 6.4.2: a backup learns Master_Adver_Interval from each advert. A master that
/// lengthened its interval and waited for it would outlast the backup's down timer.
#[test]
fn a_master_whose_interval_changed_advertises_the_new_one_at_once() {
    let (mut router, at) = master(config(150), Instant::now());
    let now = at + Duration::from_millis(300);
    let longer = RouterConfig {
        advert_interval: Duration::from_secs(3),
        ..config(150)
    };
    router.reconfigure(now, longer).unwrap();
    let outputs = drain(&mut router);
    let sent = adverts(&outputs);
    assert_eq!(sent.len(), 1, "{outputs:?}");
    assert_eq!(sent[0].interval_micros(), 3_000_000);
    assert_eq!(router.poll_timeout(), Some(now + Duration::from_secs(3)));
    assert_eq!(router.state(), State::Master);
}

#[test]
fn a_refresh_switched_on_is_scheduled_from_the_reload_and_a_dropped_second_burst_is_off() {
    let (mut router, at) = master(config(150), Instant::now());
    let now = at + Duration::from_millis(200);
    let garp = GarpSchedule {
        repeat: 5,
        delay: None,
        refresh: Some(Duration::from_millis(500)),
    };
    router
        .reconfigure(
            now,
            RouterConfig {
                garp,
                ..config(150)
            },
        )
        .unwrap();
    assert_eq!(
        router.poll_timeout(),
        Some(now + Duration::from_millis(500)),
        "refresh before the next advert (1 s) and no second burst at 5 s"
    );
    router.handle_timeout(now + Duration::from_millis(500));
    assert_eq!(drain(&mut router), [Output::Announce { count: 1 }]);
}

#[test]
fn a_backup_keeps_its_down_timer_and_a_v2_backup_times_with_its_new_interval() {
    let t0 = Instant::now();
    let mut router = VirtualRouter::new(config(100)).unwrap();
    router.handle_input(t0, Input::Startup);
    drain(&mut router);
    let down_at = router.poll_timeout();
    router
        .reconfigure(
            t0,
            RouterConfig {
                priority: Priority::new(90),
                ..config(100)
            },
        )
        .unwrap();
    assert!(drain(&mut router).is_empty());
    assert_eq!(router.state(), State::Backup);
    assert_eq!(router.poll_timeout(), down_at);

    let v2 = |interval: u64| RouterConfig {
        version: Version::V2,
        advert_interval: Duration::from_secs(interval),
        ..config(100)
    };
    let mut router = VirtualRouter::new(v2(1)).unwrap();
    router.handle_input(t0, Input::Startup);
    drain(&mut router);
    router.reconfigure(t0, v2(2)).unwrap();
    // RFC 3768 6.1: 3 × 2 s + (256 − 100) / 256 s.
    assert_eq!(
        router.master_down_interval(),
        Duration::from_micros(6_609_375)
    );
}

#[test]
fn what_defines_the_router_is_refused_and_leaves_it_unchanged() {
    let (mut router, at) = master(config(150), Instant::now());
    let before = router.clone();
    let refused = [
        (
            RouterConfig {
                vrid: Vrid::try_from(52).unwrap(),
                ..config(150)
            },
            "VRID",
        ),
        (
            RouterConfig {
                version: Version::V2,
                ..config(150)
            },
            "version",
        ),
        (config(255), "address owner"),
    ];
    for (new, what) in refused {
        assert_eq!(
            router.reconfigure(at, new),
            Err(ReconfigureError::Redefined {
                vrid: Vrid::try_from(51).unwrap(),
                what
            })
        );
    }
    let v2 = |password: &[u8]| RouterConfig {
        version: Version::V2,
        auth: Auth::simple_password(password).unwrap(),
        ..config(100)
    };
    let mut v2_router = VirtualRouter::new(v2(b"one")).unwrap();
    assert!(matches!(
        v2_router.reconfigure(at, v2(b"two")),
        Err(ReconfigureError::Redefined {
            what: "authentication",
            ..
        })
    ));
    let other_family = RouterConfig {
        vips: vec!["2001:db8::50".parse().unwrap()],
        ..config(150)
    };
    assert!(matches!(
        router.reconfigure(at, other_family),
        Err(ReconfigureError::Invalid(_))
    ));
    assert_eq!(router.config(), before.config());
    assert_eq!(router.poll_timeout(), before.poll_timeout());
    assert!(drain(&mut router).is_empty());
}

/// The router keeps the address it follows ([`Input::PrimaryAddress`]) whatever `config` says.
#[test]
fn the_primary_address_of_the_new_configuration_is_ignored() {
    let (mut router, at) = master(config(150), Instant::now());
    router
        .reconfigure(
            at,
            RouterConfig {
                primary_address: PEER,
                ..config(150)
            },
        )
        .unwrap();
    assert_eq!(router.config().primary_address, OURS);
}
