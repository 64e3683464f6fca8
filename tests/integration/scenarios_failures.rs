//! Failure scenarios 6-10 and the protocol variants: a vipd pair (lb1 priority 150, lb2 priority
//! 100) in front of three backends, with a client, on one lab bridge. Each test builds its own lab,
//! so cargo runs them in parallel threads; the two 30-second holds overlap with everything else.
//!
//! Every timing bound comes from the protocol's timers (RFC 9568 6.1, RFC 3768 for v2):
//! Skew_Time = (256 − priority) × interval / 256, Master_Down_Interval = 3 × interval + Skew_Time,
//! plus a stated margin for scheduling on a loaded machine. Takeovers are timed by a netlink
//! address monitor in the taker's namespace, not by polling.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::failover::{
    CLIENT, DeliveredAdverts, Delivery, LB1, LB1_PRIORITY, LB2, LB2_PRIORITY, Pair, PairSettings,
    since,
};
use crate::support::{mac_text, wait_until};
use vipd_lab::{AddressWatch, Change};
use vipd_net::{AddressManager, NetlinkAddresses, Vip};

/// Scheduling margin on top of a protocol bound: the daemon's timer wakes, the address is added,
/// netlink tells the monitor, all on a machine where other builds run.
const MARGIN: Duration = Duration::from_millis(100);
/// The kernel's linkwatch may batch carrier changes for up to a second before anyone hears them.
const LINKWATCH: Duration = Duration::from_secs(1);
/// How long the no-flapping scenarios watch (30 s).
const HOLD: Duration = Duration::from_secs(30);
const VRRP_PROTOCOL: u8 = 112;

/// The counters that move on any state change, of both nodes.
fn transitions(pair: &Pair) -> [Option<u64>; 4] {
    [
        pair.counter(LB1, "became_master"),
        pair.counter(LB2, "became_master"),
        pair.counter(LB1, "two_masters_seen"),
        pair.counter(LB2, "two_masters_seen"),
    ]
}

/// Scenario 6, first half: lb1 alone loses every backend; its frontend tracker lowers it to
/// 150 − 60 = 90 < 100 and advertises that at once; lb2 (preempt) ignores the lower-priority
/// adverts and takes over when its Master_Down_Timer runs out.
#[test]
fn backends_unreachable_from_the_master_only_move_the_vip() {
    if !vipd_lab::e2e_enabled("backends_unreachable_from_the_master_only_move_the_vip") {
        return;
    }
    let settings = PairSettings {
        track_frontend: true,
        health_interval: Duration::from_millis(100),
        ..PairSettings::default()
    };
    let pair = Pair::start("scn-6-master-only", settings.clone());

    let takeover = AddressWatch::changes(pair.vip, 1, Duration::from_secs(10))
        .start(&pair.lab, LB2)
        .expect("address watch");
    let release = AddressWatch::changes(pair.vip, 1, Duration::from_secs(10))
        .start(&pair.lab, LB1)
        .expect("address watch");
    let blocked = pair.cut_off_backends(LB1);
    let taken = takeover.seen().expect("address watch").first(Change::Added);
    let released = release
        .seen()
        .expect("address watch")
        .first(Change::Removed);
    let taken = since(
        blocked,
        taken.unwrap_or_else(|| panic!("lb2 never took the VIP\n{}", pair.logs())),
    );
    // Detection (fall × health interval + timeout), then lb2's down timer, which the last
    // accepted advert (at or before detection) started.
    let bound = settings.health_detection() + settings.master_down(LB2_PRIORITY) + MARGIN;
    assert!(
        taken <= bound,
        "lb2 took over {taken:?} after the cut, bound {bound:?}"
    );
    assert!(released.is_some(), "lb1 kept the VIP\n{}", pair.logs());
    assert!(
        wait_until(Duration::from_secs(2), || pair.state(LB1).as_deref()
            == Some("backup"))
        .is_some(),
        "lb1 is not backup: {:?}",
        pair.state(LB1)
    );
    pair.assert_serves("after lb1 lost its backends");
    eprintln!("scenario 6 (master only): lb2 took over {taken:?} after the cut (bound {bound:?})");
}

/// Scenario 6, second half: every backend dies, so both nodes' trackers fail (lb1 90, lb2 40):
/// the master keeps the VIP and nothing flaps for 30 s.
///
/// The nodes see the backends die up to one health interval apart (their probes are not in
/// phase). While lb1 advertises 90 and lb2 still counts itself 100, lb2's down timer runs; it
/// would fire Master_Down_Interval − interval = 261 ms after lb1's last 150-advert at the
/// earliest, far more than the 100 ms health interval this pair uses. Hence no takeover.
#[test]
fn backends_down_for_both_nodes_move_nothing_for_30s() {
    if !vipd_lab::e2e_enabled("backends_down_for_both_nodes_move_nothing_for_30s") {
        return;
    }
    let settings = PairSettings {
        track_frontend: true,
        health_interval: Duration::from_millis(100),
        ..PairSettings::default()
    };
    let mut pair = Pair::start("scn-6-both", settings);
    let before = transitions(&pair);
    let lb1 = AddressWatch::changes(pair.vip, 1, HOLD)
        .start(&pair.lab, LB1)
        .expect("address watch");
    let lb2 = AddressWatch::changes(pair.vip, 1, HOLD)
        .start(&pair.lab, LB2)
        .expect("address watch");
    // Every backend stops: connections are refused for both nodes alike.
    pair.backends.clear();
    assert!(
        wait_until(Duration::from_secs(5), || pair.trackers_down(LB1)
            && pair.trackers_down(LB2))
        .is_some(),
        "the trackers never saw the backends down"
    );
    let (lb1, lb2) = (
        lb1.seen().expect("address watch").changes,
        lb2.seen().expect("address watch").changes,
    );
    assert!(
        lb1.is_empty() && lb2.is_empty(),
        "the VIP moved with all backends down: lb1 {lb1:?}, lb2 {lb2:?}\n{}",
        pair.logs()
    );
    assert_eq!(
        transitions(&pair),
        before,
        "a state changed\n{}",
        pair.logs()
    );
    assert_eq!(pair.state(LB1).as_deref(), Some("master"));
    assert_eq!(pair.state(LB2).as_deref(), Some("backup"));
    eprintln!("scenario 6 (both): no VIP change and no transition in {HOLD:?}");
}

/// Scenario 7: lb1's link goes down (carrier lost, as a switch port failure): Fault, VIP
/// released; lb2 takes over when its down timer runs out; the link back: lb1 preempts again.
#[test]
fn master_link_down_is_fault_and_the_backup_takes_over_until_it_returns() {
    if !vipd_lab::e2e_enabled(
        "master_link_down_is_fault_and_the_backup_takes_over_until_it_returns",
    ) {
        return;
    }
    let settings = PairSettings::default();
    let pair = Pair::start("scn-7-link", settings.clone());

    let takeover = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(&pair.lab, LB2)
        .expect("address watch");
    let release = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(&pair.lab, LB1)
        .expect("address watch");
    // The carrier goes away somewhere inside the command: time from its end, which the
    // takeover can only follow by Master_Down_Interval at most.
    let cutting = Instant::now();
    pair.lab.cut_link(LB1).expect("cut link");
    let cut = Instant::now();
    let taken = takeover
        .seen()
        .expect("address watch")
        .first(Change::Added)
        .map(|at| since(cut, at));
    let released = release
        .seen()
        .expect("address watch")
        .first(Change::Removed)
        .map(|at| since(cutting, at));
    // lb2 hears nothing more from the moment of the cut.
    let takeover_bound = settings.master_down(LB2_PRIORITY) + MARGIN;
    let taken = taken.unwrap_or_else(|| panic!("lb2 never took the VIP\n{}", pair.logs()));
    assert!(
        taken <= takeover_bound,
        "lb2 took over {taken:?} after the cut command returned, bound {takeover_bound:?}"
    );
    let release_bound = LINKWATCH + MARGIN;
    let released =
        released.unwrap_or_else(|| panic!("lb1 kept the VIP with its link down\n{}", pair.logs()));
    assert!(
        released <= release_bound,
        "lb1 released the VIP {released:?} after the cut command started, bound {release_bound:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || pair.state(LB1).as_deref()
            == Some("fault"))
        .is_some(),
        "lb1 is not in Fault: {:?}",
        pair.state(LB1)
    );
    pair.assert_serves("with lb1's link down");

    // Link back: lb1 leaves Fault as backup, then preempts lb2 (150 > 100) after its own
    // down timer.
    let back = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(&pair.lab, LB1)
        .expect("address watch");
    let restored = Instant::now();
    pair.lab.restore_link(LB1).expect("restore link");
    let returned = back
        .seen()
        .expect("address watch")
        .first(Change::Added)
        .map_or_else(
            || panic!("lb1 never took the VIP back\n{}", pair.logs()),
            |at| since(restored, at),
        );
    let return_bound = LINKWATCH + settings.master_down(LB1_PRIORITY) + MARGIN;
    assert!(
        returned <= return_bound,
        "lb1 took the VIP back {returned:?} after the link came back, bound {return_bound:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || pair.state(LB2).as_deref()
            == Some("backup")
            && !pair.holds(LB2))
        .is_some(),
        "lb2 did not go back to backup: {:?}",
        pair.state(LB2)
    );
    pair.assert_state(LB1, "master");
    pair.assert_serves("after lb1's link came back");
    eprintln!(
        "scenario 7: lb2 took over {taken:?} (bound {takeover_bound:?}), lb1 released {released:?} \
         (bound {release_bound:?}), lb1 back {returned:?} (bound {return_bound:?})"
    );
}

/// `eth0` deleted and created again (same name, MAC and addresses; a network manager or a VLAN
/// reconfiguration does this): the node must listen and send on the new interface. A VRRP
/// socket left bound to the old one hears nothing, so a backup would take the VIP as soon as
/// its down timer ran out, and a master could send no advert.
#[test]
fn an_interface_deleted_and_created_again_is_listened_on_again() {
    if !vipd_lab::e2e_enabled("an_interface_deleted_and_created_again_is_listened_on_again") {
        return;
    }
    let settings = PairSettings::default();
    let pair = Pair::start("scn-recreate", settings.clone());

    // The backup's interface: Fault while it is gone, then backup again, hearing lb1.
    let before = pair.counter(LB2, "became_master");
    pair.lab
        .recreate_interface(LB2)
        .expect("recreate lb2's eth0");
    // Deaf, lb2 would take over one Master_Down_Interval after leaving Fault: watch five.
    std::thread::sleep(LINKWATCH + settings.master_down(LB2_PRIORITY) * 5 + MARGIN);
    assert_lb2_stayed_backup(&pair, before, "after its interface came back");
    assert!(!pair.holds(LB2), "lb2 holds the VIP\n{}", pair.logs());

    // The master's interface: lb2 takes over while it is gone; lb1 comes back as backup,
    // preempts (150 > 100) after its down timer, and lb2 must hear it and step back.
    pair.lab
        .recreate_interface(LB1)
        .expect("recreate lb1's eth0");
    let back = LINKWATCH + settings.master_down(LB1_PRIORITY) + MARGIN;
    assert!(
        wait_until(back * 3, || pair.state(LB1).as_deref() == Some("master")
            && pair.state(LB2).as_deref() == Some("backup"))
        .is_some(),
        "lb1 {:?}, lb2 {:?} after lb1's interface came back\n{}",
        pair.state(LB1),
        pair.state(LB2),
        pair.logs()
    );
    assert!(
        pair.holds(LB1) && !pair.holds(LB2),
        "the VIP is not on lb1 alone"
    );
    pair.assert_serves("after lb1's interface was created again");
}

/// The master renumbered while vipd runs: 198.51.100.20 added, its 198.51.100.10 removed (the
/// kernel promotes a secondary address to primary). Its adverts then leave from another
/// address, and the VRRPv3 IPv4 checksum covers the source: computed over the old one, lb2
/// would drop every advert as malformed and take the VIP.
#[test]
fn a_master_renumbered_while_running_keeps_its_backup() {
    if !vipd_lab::e2e_enabled("a_master_renumbered_while_running_keeps_its_backup") {
        return;
    }
    let settings = PairSettings::default();
    let pair = Pair::start("scn-renumber", settings.clone());
    let before = pair.counter(LB2, "became_master");
    let eth0 = &pair.lab.host(LB1).interface;
    let old = format!("{}/24", pair.lab.host(LB1).ipv4);
    for command in [
        vec!["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"],
        vec!["ip", "addr", "add", "198.51.100.20/24", "dev", eth0],
        vec!["ip", "addr", "del", &old, "dev", eth0],
    ] {
        pair.lab.run(LB1, &command).expect("renumber lb1");
    }
    // Dropping lb1's adverts, lb2 would take over one Master_Down_Interval later: watch five.
    std::thread::sleep(settings.master_down(LB2_PRIORITY) * 5 + MARGIN);
    assert_lb2_stayed_backup(&pair, before, "after lb1 was renumbered");
}

/// Fails unless lb1 is master and lb2 backup, lb2 not having become master since its
/// `became_master` counter read `before`.
fn assert_lb2_stayed_backup(pair: &Pair, before: Option<u64>, when: &str) {
    pair.assert_state(LB1, "master");
    pair.assert_state(LB2, "backup");
    assert_eq!(
        pair.counter(LB2, "became_master"),
        before,
        "lb2 took over {when}\n{}",
        pair.logs()
    );
}

/// Scenario 8: someone deletes the VIP on the master: the address monitor tells the instance,
/// which puts it back at once and counts it (`vips_restored`).
///
/// Timed with the deletion made from this process (RTM_DELADDR, exactly what `ip addr del`
/// sends), right before which the clock starts: the watch often reads the removal and the
/// re-addition in one batch, so their own timestamps say nothing about the gap. Then once more
/// with `ip addr del` itself, whose process start-up is no part of the daemon's reaction.
#[test]
fn a_vip_deleted_by_hand_is_put_back_within_100ms_and_counted() {
    if !vipd_lab::e2e_enabled("a_vip_deleted_by_hand_is_put_back_within_100ms_and_counted") {
        return;
    }
    let pair = Pair::start("scn-8-restore", PairSettings::default());
    assert_eq!(pair.counter(LB1, "vips_restored"), Some(0));
    let before = transitions(&pair);
    let vip = Vip::new("eth0", pair.vip, pair.settings.prefix_len());

    let watch = AddressWatch::changes(pair.vip, 2, Duration::from_secs(3))
        .start(&pair.lab, LB1)
        .expect("address watch");
    let deleting = pair
        .lab
        .in_host(LB1, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let addresses = NetlinkAddresses::new().expect("netlink");
                let deleting = Instant::now();
                addresses.remove(&vip).await.expect("delete the VIP");
                deleting
            })
        })
        .expect("in lb1");
    let events = watch.seen().expect("address watch").changes;
    let [(Change::Removed, _), (Change::Added, added)] = events.as_slice() else {
        panic!(
            "expected the VIP removed then added, saw {events:?}\n{}",
            pair.logs()
        );
    };
    let restored = since(deleting, *added);
    let bound = Duration::from_millis(100);
    assert!(
        restored <= bound,
        "the VIP was back {restored:?} after its deletion, bound {bound:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || pair
            .counter(LB1, "vips_restored")
            == Some(1))
        .is_some(),
        "vips_restored is {:?}, not 1",
        pair.counter(LB1, "vips_restored")
    );

    let watch = AddressWatch::changes(pair.vip, 2, Duration::from_secs(3))
        .start(&pair.lab, LB1)
        .expect("address watch");
    let with_prefix = format!("{}/{}", pair.vip, pair.settings.prefix_len());
    let started = Instant::now();
    pair.lab
        .run(LB1, &["ip", "addr", "del", &with_prefix, "dev", "eth0"])
        .expect("ip addr del");
    let events = watch.seen().expect("address watch").changes;
    let [(Change::Removed, _), (Change::Added, added)] = events.as_slice() else {
        panic!(
            "`ip addr del`: expected the VIP removed then added, saw {events:?}\n{}",
            pair.logs()
        );
    };
    let with_ip = since(started, *added);
    assert!(
        wait_until(Duration::from_secs(2), || pair
            .counter(LB1, "vips_restored")
            == Some(2))
        .is_some(),
        "vips_restored is {:?}, not 2",
        pair.counter(LB1, "vips_restored")
    );
    assert_eq!(transitions(&pair), before, "a state changed");
    assert!(pair.holds(LB1) && !pair.holds(LB2));
    pair.assert_serves("after the VIP was put back");
    eprintln!(
        "scenario 8: VIP back {restored:?} after its deletion (bound {bound:?}); \
         {with_ip:?} after `ip addr del` was started"
    );
}

/// Scenario 9: VRRP blocked between the nodes makes both master; once it flows again lb2 yields
/// to lb1's next advert (RFC 9568 6.4.3), and lb1 re-announces so that the client, whose ARP
/// cache followed lb2 during the split, comes back to it.
///
/// The blocks are lifted as close together as two nft runs allow, lb1's side first. lb1's
/// advert often reaches lb2 before any of lb2's reaches lb1: lb2 yields at once, and only its
/// last advert on yielding tells lb1 that there was a second master to re-announce over. (Before
/// that advert existed, 7 heals in 8 left the client's ARP entry on lb2 and its connections
/// failing.)
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one split brain told in order: partition, two masters, heal, one master, announcements"
)]
fn split_brain_heals_to_one_master_which_reannounces() {
    if !vipd_lab::e2e_enabled("split_brain_heals_to_one_master_which_reannounces") {
        return;
    }
    let settings = PairSettings {
        // No delayed second burst from lb1's election: any later GARP of lb1's is a
        // re-announcement.
        garp_second_burst: false,
        ..PairSettings::default()
    };
    let pair = Pair::start("scn-9-split", settings.clone());
    let lab = &pair.lab;

    let split = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(lab, LB2)
        .expect("address watch");
    // lb2's down timer runs from the last advert before its own block, in force once that
    // command has returned: time from there.
    lab.block(LB2, LB1, VRRP_PROTOCOL).expect("block");
    let blocked = Instant::now();
    lab.block(LB1, LB2, VRRP_PROTOCOL).expect("block");
    let split = split
        .seen()
        .expect("address watch")
        .first(Change::Added)
        .map_or_else(
            || panic!("lb2 never became master\n{}", pair.logs()),
            |at| since(blocked, at),
        );
    let split_bound = settings.master_down(LB2_PRIORITY) + MARGIN;
    assert!(
        split <= split_bound,
        "split after {split:?}, bound {split_bound:?}"
    );
    assert!(pair.holds(LB1) && pair.holds(LB2), "not both masters");
    pair.assert_state(LB2, "master");
    // The client follows lb2's GARPs (Linux updates an existing entry on a GARP).
    let lb2_mac = mac_text(lab.host(LB2).mac);
    assert!(
        wait_until(Duration::from_secs(2), || lab
            .run(CLIENT, &["ip", "neigh", "show", &pair.vip.to_string()])
            .is_ok_and(|entry| entry.contains(&lb2_mac)))
        .is_some(),
        "the client's ARP entry never followed lb2 during the split"
    );

    let arp = lab.capture(CLIENT, &["arp"]).expect("capture");
    let capture_start = SystemTime::now();
    let yielded = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(lab, LB2)
        .expect("address watch");
    let healed = Instant::now();
    lab.unblock(LB1, LB2, VRRP_PROTOCOL).expect("unblock");
    lab.unblock(LB2, LB1, VRRP_PROTOCOL).expect("unblock");
    let one_master = yielded
        .seen()
        .expect("address watch")
        .first(Change::Removed)
        .map_or_else(
            || panic!("lb2 never yielded\n{}", pair.logs()),
            |at| since(healed, at),
        );
    let heal_bound = settings.master_down(LB2_PRIORITY);
    assert!(
        one_master <= heal_bound,
        "one master {one_master:?} after VRRP flowed again, bound one Master_Down_Interval \
         {heal_bound:?}"
    );
    pair.assert_state(LB2, "backup");
    pair.assert_state(LB1, "master");
    assert!(pair.holds(LB1) && !pair.holds(LB2));
    // What the operator finds in the log: the winner says it kept MASTER, and over
    // whom; the loser's state change reads as keepalived's.
    let logs = pair.logs();
    let (lb1_log, lb2_log) = logs.split_once("--- lb2 log:").expect("both logs");
    assert!(
        lb1_log.contains("(api) two masters: kept MASTER over peer"),
        "lb1 did not log keeping MASTER:\n{logs}"
    );
    assert!(
        lb2_log.contains("(api) entering BACKUP state"),
        "lb2 did not log entering BACKUP:\n{logs}"
    );

    let frames = arp.finish();
    let lb1_mac = mac_text(lab.host(LB1).mac);
    let announcements = frames
        .tshark(&[
            "-Y",
            &format!(
                "arp.isgratuitous == 1 && arp.src.proto_ipv4 == {} && eth.src == {lb1_mac}",
                pair.vip
            ),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
        ])
        .expect("tshark");
    let start_epoch = capture_start
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    let reannounced = announcements
        .lines()
        .filter_map(|line| line.trim().parse::<f64>().ok())
        .filter(|epoch| *epoch >= start_epoch)
        .count();
    assert!(
        reannounced > 0,
        "the client saw no GARP from lb1 for the VIP after the heal: {announcements:?}"
    );
    let neighbour = lab
        .run(CLIENT, &["ip", "neigh", "show", &pair.vip.to_string()])
        .expect("ip neigh");
    assert!(
        neighbour.contains(&lb1_mac),
        "the client's neighbour entry for the VIP is not lb1's MAC {lb1_mac}: {neighbour}"
    );
    pair.assert_serves("after the split brain");
    eprintln!(
        "scenario 9: split after {split:?} (bound {split_bound:?}); one master {one_master:?} \
         after the heal (bound {heal_bound:?}); {reannounced} GARPs from lb1 seen by the client"
    );
}

/// Scenario 10: 5 % of frames lost at every host for 30 s, adverts every 100 ms: nothing may
/// change.
///
/// Except what RFC 9568 demands: lb2 must take over once three adverts in a row are lost
/// (Master_Down_Interval 360.9 ms < 4 intervals). At 5 % i.i.d. loss that happens in about
/// 1 − (1 − 0.95 × 0.05³)^300 ≈ 3.5 % of runs, for any conforming implementation. So the test
/// records which adverts lb2 really received, and a state change passes only if lb2 went a whole
/// Master_Down_Interval without one; any other change is a bug. The record's times are when
/// tcpdump read each advert, so a stalled machine can stretch a gap (one loaded run showed
/// 526 ms without a takeover, the daemon stalled alike); a takeover amid regular adverts
/// still fails.
#[test]
fn five_percent_loss_for_30s_changes_no_state() {
    if !vipd_lab::e2e_enabled("five_percent_loss_for_30s_changes_no_state") {
        return;
    }
    let pair = Pair::start("scn-10-loss", PairSettings::default());
    let received = pair.counter(LB2, "adverts_received").expect("counters");
    let before = transitions(&pair);
    let delivered = DeliveredAdverts::start(&pair, LB2);
    for host in 0..pair.lab.hosts().len() {
        pair.lab.set_loss(host, 5).expect("set loss");
    }
    let lb1 = AddressWatch::changes(pair.vip, 1, HOLD)
        .start(&pair.lab, LB1)
        .expect("address watch");
    let lb2 = AddressWatch::changes(pair.vip, 1, HOLD)
        .start(&pair.lab, LB2)
        .expect("address watch");
    let (lb1, lb2) = (
        lb1.seen().expect("address watch").changes,
        lb2.seen().expect("address watch").changes,
    );
    // A VIP change ends the watches early; the gap that caused it is recorded by then.
    let longest_gap = delivered.longest_gap();
    for host in 0..pair.lab.hosts().len() {
        pair.lab.clear_loss(host).expect("clear loss");
    }
    let changed = !lb1.is_empty() || !lb2.is_empty() || transitions(&pair) != before;
    let master_down = pair.settings.master_down(LB2_PRIORITY);
    if changed {
        assert!(
            longest_gap >= master_down,
            "a state changed under 5 % loss although lb2 never went {master_down:?} without an \
             advert (longest gap {longest_gap:?}): lb1 {lb1:?}, lb2 {lb2:?}\n{}",
            pair.logs()
        );
        eprintln!(
            "scenario 10: lb2 took over as RFC 9568 demands after {longest_gap:?} without an \
             advert (three in a row lost); not a vipd fault"
        );
        return;
    }
    pair.assert_state(LB1, "master");
    pair.assert_state(LB2, "backup");
    assert!(pair.holds(LB1) && !pair.holds(LB2), "VIP misplaced");
    let heard = pair.counter(LB2, "adverts_received").expect("counters") - received;
    // 30 s at 100 ms is 300 adverts; a lossy LAN drops some, a stalled sender sends fewer.
    assert!(heard >= 200, "lb2 heard only {heard} adverts in {HOLD:?}");
    eprintln!(
        "scenario 10: no state change in {HOLD:?} at 5 % loss; lb2 heard {heard} adverts, \
         longest gap {longest_gap:?} (takeover at {master_down:?})"
    );
}

/// SIGTERM on lb1: it sends priority 0, so lb2 takes over after its Skew_Time. Returns the
/// measured takeover and its bound.
///
/// These tests are about the variant's packets, not about speed (scenario 3 holds the planned
/// failover to Skew_Time + 100 ms): the bound, Skew_Time + one interval + margin, stays below
/// Master_Down_Interval, so meeting it proves that lb2 received and honoured the release rather
/// than waiting for its down timer. (One loaded run here took 162 ms at 100 ms adverts.)
fn sigterm_failover(pair: &mut Pair) -> (Duration, Duration) {
    let takeover = AddressWatch::changes(pair.vip, 1, Duration::from_secs(5))
        .start(&pair.lab, LB2)
        .expect("address watch");
    let signalled = Instant::now();
    let exit = pair.nodes[LB1].take().expect("lb1 running").stop();
    let taken = takeover
        .seen()
        .expect("address watch")
        .first(Change::Added)
        .map_or_else(
            || panic!("lb2 never took the VIP\n{}", pair.logs()),
            |at| since(signalled, at),
        );
    let bound = pair.settings.skew(LB2_PRIORITY) + pair.settings.advert_interval + MARGIN;
    assert!(bound < pair.settings.master_down(LB2_PRIORITY));
    assert!(
        taken <= bound,
        "lb2 took over {taken:?} after SIGTERM, bound Skew_Time + interval + {MARGIN:?} = {bound:?}"
    );
    assert!(
        exit.is_some_and(|status| status.success()),
        "lb1 did not exit 0: {exit:?}"
    );
    assert!(!pair.holds(LB1), "lb1 kept the VIP");
    pair.assert_state(LB2, "master");
    pair.assert_serves("after the SIGTERM failover");
    (taken, bound)
}

/// Adverts sent to the peer's address only: the pair elects and hands over on SIGTERM, and the
/// client, which is not a peer, never sees an advert.
#[test]
fn unicast_pair_hands_over_on_sigterm() {
    if !vipd_lab::e2e_enabled("unicast_pair_hands_over_on_sigterm") {
        return;
    }
    let mut pair = Pair::start(
        "variant-unicast",
        PairSettings {
            delivery: Delivery::Unicast,
            ..PairSettings::default()
        },
    );
    let adverts = pair
        .lab
        .capture(CLIENT, &["ip", "proto", "112"])
        .expect("capture");
    let (taken, bound) = sigterm_failover(&mut pair);
    let seen = adverts
        .finish()
        .tshark(&["-Y", "vrrp", "-T", "fields", "-e", "ip.dst"])
        .expect("tshark");
    assert!(
        seen.trim().is_empty(),
        "the client saw adverts of a unicast pair: {seen}"
    );
    assert_eq!(pair.counter(LB2, "adverts_dropped"), Some(0));
    eprintln!("unicast: lb2 took over {taken:?} after SIGTERM (bound {bound:?})");
}

/// VRRPv2 with a simple password, at its smallest interval (1 s): lb2 accepts lb1's adverts
/// (the password matches, nothing dropped) and takes over after (256 − 100) / 256 s.
#[test]
fn vrrpv2_with_auth_password_hands_over_on_sigterm() {
    if !vipd_lab::e2e_enabled("vrrpv2_with_auth_password_hands_over_on_sigterm") {
        return;
    }
    let mut pair = Pair::start(
        "variant-v2-auth",
        PairSettings {
            version: 2,
            advert_interval: Duration::from_secs(1),
            auth_password: Some("s3cret"),
            ..PairSettings::default()
        },
    );
    assert!(
        pair.counter(LB2, "adverts_received")
            .is_some_and(|count| count > 0),
        "lb2 accepted no adverts"
    );
    assert_eq!(pair.counter(LB2, "adverts_dropped"), Some(0));
    let (taken, bound) = sigterm_failover(&mut pair);
    eprintln!("v2 + auth_password: lb2 took over {taken:?} after SIGTERM (bound {bound:?})");
}

/// An IPv6 VIP with VRRPv3: lb2 takes over on SIGTERM and tells the LAN with unsolicited
/// neighbour advertisements (RFC 9568 6.4.1: router and override flags set, not solicited), which the
/// client receives.
#[test]
fn ipv6_vip_with_v3_hands_over_and_sends_unsolicited_na() {
    if !vipd_lab::e2e_enabled("ipv6_vip_with_v3_hands_over_and_sends_unsolicited_na") {
        return;
    }
    let mut pair = Pair::start(
        "variant-ipv6",
        PairSettings {
            ipv6: true,
            ..PairSettings::default()
        },
    );
    let frames = pair.lab.capture(CLIENT, &["icmp6"]).expect("capture");
    let (taken, bound) = sigterm_failover(&mut pair);
    let lb2_mac = mac_text(pair.lab.host(LB2).mac);
    let announcements = frames
        .finish()
        .tshark(&[
            "-Y",
            &format!(
                "icmpv6.type == 136 && icmpv6.nd.na.target_address == {} \
                 && icmpv6.nd.na.flag.r == 1 && icmpv6.nd.na.flag.s == 0 \
                 && icmpv6.nd.na.flag.o == 1 && eth.src == {lb2_mac}",
                pair.vip
            ),
            "-T",
            "fields",
            "-e",
            "ipv6.dst",
        ])
        .expect("tshark");
    let count = announcements.lines().count();
    assert!(
        count > 0,
        "the client saw no unsolicited NA from lb2 for {}",
        pair.vip
    );
    eprintln!(
        "IPv6 v3: lb2 took over {taken:?} after SIGTERM (bound {bound:?}); {count} unsolicited NAs seen"
    );
}
