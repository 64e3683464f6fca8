//! Announced VIPs end to end, against the real BIRD: three vipd nodes announce one VIP through
//! their BIRD speakers (deploy/bird/vipd-node.conf as shipped) to a BIRD router that installs it
//! as an ECMP route (L4 hash); a client connects through the router. Each test builds its own
//! [`vipd_lab::RoutedLab`] and prints its numbers: connections attempted and failed, the longest
//! one, and the time until the router stopped using a node.
//!
//! A connection that was in flight at the instant the router's multipath route changed may break
//! whatever vipd does: the kernel's hash-threshold multipath moves flows between the remaining
//! next hops too, and a packet of a flow that lands on another node meets no socket there (the
//! established-flow breakage the benchmarks measure). The tests count those apart: "in the
//! rehash window" is from the event (kill, signal) to the poll that saw the route change.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vipd_lab::{
    ConnectionLoop, ConnectionPlan, ConnectionReport, Place, RouteChange, RouteWatch, RoutedLab,
};

use crate::support::announce::{
    Cluster, ClusterSettings, FRONTEND_PORT, GROUP, PROPAGATION_MARGIN,
};
use crate::support::wait_until;

/// A new client connection this often while something changes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// The design's claim: a SIGKILLed vipd's TUN device vanishes at once and BIRD withdraws
/// (measured 2.5 ms); this bound is generous for a loaded machine.
const KILL_BOUND: Duration = Duration::from_secs(1);
/// BFD's detection time in the lab: 3 missed packets at 100 ms (crates/lab/src/routed.rs).
const BFD_DETECTION: Duration = Duration::from_millis(300);

/// The failures outside `[from, to]`, the window in which the router's route changed.
fn failures_outside(report: &ConnectionReport, from: Instant, to: Instant) -> usize {
    report
        .failures()
        .filter(|attempt| !attempt.overlaps(from, to))
        .count()
}

/// Watches the router's route for the cluster's VIP, to time a withdrawal that follows.
/// The client's connection loop (a connection every `PROBE_INTERVAL`, for at most 8 s), running
/// for 300 ms already, and a watch of the router's route: what a fault test starts before the
/// fault.
fn probe_and_watch(cluster: &Cluster) -> (ConnectionLoop, RouteWatch) {
    let probe = ConnectionLoop::start(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::every(cluster.target(), PROBE_INTERVAL, Duration::from_secs(8)),
    )
    .expect("client loop");
    std::thread::sleep(Duration::from_millis(300));
    (probe, watch_route(cluster))
}

fn watch_route(cluster: &Cluster) -> RouteWatch {
    RouteWatch::start(
        &cluster.lab,
        Place::Router,
        cluster.vip,
        Duration::from_secs(20),
    )
    .expect("route watch")
}

/// Waits (polling, at most `timeout`) until the router's route for the VIP no longer has `node`
/// as a next hop; returns the time from `since` to the kernel's route change, as `watch` saw it.
///
/// # Panics
/// When the route keeps `node`, with the logs.
fn withdrawal(
    cluster: &Cluster,
    watch: RouteWatch,
    node: usize,
    since: Instant,
    timeout: Duration,
) -> Duration {
    let next_hop = cluster.next_hop(node);
    let polled = cluster
        .lab
        .wait_for_next_hops(cluster.vip, timeout, |hops| !hops.contains(&next_hop));
    let seen = since.elapsed();
    let changes = watch.stop().expect("route watch");
    if let Err(error) = polled {
        panic!("{error}\n{}", cluster.logs());
    }
    RouteChange::first_without(&changes, next_hop).map_or(seen, |at| at - since)
}

/// Whether `node`'s vipd reports the group announced, per `/status`.
fn announced(cluster: &Cluster, node: usize) -> Option<bool> {
    let status = cluster.status(node).ok()?;
    status["announce"]
        .as_array()?
        .iter()
        .find(|group| group["name"] == GROUP)
        .and_then(|group| group["announced"].as_bool())
}

/// Three nodes announce: the router's route for the VIP has the three as next hops, and the L4
/// hash spreads a client's connections (IPv4 and IPv6) over all of them.
#[test]
fn three_announcing_nodes_are_ecmp_next_hops_and_share_the_connections() {
    if !vipd_lab::e2e_enabled("three_announcing_nodes_are_ecmp_next_hops_and_share_300_connections")
    {
        return;
    }
    let cluster = Cluster::start("bgp-spread", ClusterSettings::default());
    let mut hops = cluster.lab.router_next_hops(cluster.vip).expect("route");
    hops.sort();
    let mut expected: Vec<IpAddr> = (0..3).map(|node| cluster.next_hop(node)).collect();
    expected.sort();
    assert_eq!(hops, expected, "the router's ECMP next hops");

    let report = ConnectionLoop::run(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::back_to_back(cluster.target(), 300),
    )
    .expect("client loop");
    println!("spread over 3 announcing nodes: {report}");
    assert_eq!(report.failed(), 0, "{report}\n{}", cluster.logs());
    let answers = report.answers();
    for node in cluster.lab.nodes() {
        let served = answers.get(&node.name).copied().unwrap_or(0);
        assert!(
            served > 30,
            "{} served {served} of 300 connections (wanted > 10 %): {report}",
            node.name
        );
    }

    // The IPv6 VIP of the same group, over the IPv6 sessions of the shipped snippet's #v6 block.
    let vip_v6 = IpAddr::V6(RoutedLab::vip_v6(0));
    cluster
        .lab
        .wait_for_next_hop_count(vip_v6, 3, Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("{error}\n{}", cluster.logs()));
    let report = ConnectionLoop::run(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::back_to_back(SocketAddr::new(vip_v6, FRONTEND_PORT), 150),
    )
    .expect("client loop");
    println!("IPv6 spread over 3 announcing nodes: {report}");
    assert_eq!(report.failed(), 0, "{report}");
    for node in cluster.lab.nodes() {
        let served = report.answers().get(&node.name).copied().unwrap_or(0);
        assert!(
            served > 15,
            "{} served {served} of 150: {report}",
            node.name
        );
    }
}

/// The frontend tracker (weight 0) fails with the node's only backend: the group is withdrawn
/// within one health check. Connections the router sent to lb1 before that fail (vipd retries a
/// refused only server after 1 s, then closes); none after.
#[test]
fn a_node_whose_backend_fails_is_withdrawn_within_one_health_check_period() {
    if !vipd_lab::e2e_enabled(
        "a_node_whose_backend_fails_is_withdrawn_within_one_health_check_period",
    ) {
        return;
    }
    let settings = ClusterSettings::default();
    let bound = settings.withdrawal_bound();
    let mut cluster = Cluster::start("bgp-backend-fails", settings);
    let (probe, watch) = probe_and_watch(&cluster);
    let failed_at = Instant::now();
    if let Some(mut backend) = cluster.backends[0].take() {
        backend.stop_with(Signal::SIGKILL);
    }
    let withdrawn = withdrawal(&cluster, watch, 0, failed_at, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let report = probe.stop().expect("client loop");
    let hops = cluster.lab.router_next_hops(cluster.vip).expect("route");
    let after = report
        .since(failed_at + withdrawn)
        .filter(|attempt| attempt.outcome.is_err())
        .count();
    println!(
        "lb1's backend killed: route withdrawn after {withdrawn:?} (bound {bound:?}); \
         client: {report}; failed after the withdrawal: {after}"
    );
    assert!(
        withdrawn <= bound,
        "withdrawn after {withdrawn:?}, bound {bound:?}"
    );
    assert_eq!(hops.len(), 2, "the other nodes stay: {hops:?}");
    assert_eq!(
        after, 0,
        "connections failed after the withdrawal: {report}"
    );
    assert_eq!(announced(&cluster, 0), Some(false), "lb1's /status");
    assert_eq!(announced(&cluster, 1), Some(true), "lb2's /status");
}

/// A planned stop: vipd withdraws first, serves for `withdraw_delay` (1 s here) while the router
/// converges, then stops its listeners; a client opening a connection every 10 ms sees none fail.
#[test]
fn sigterm_withdraws_before_the_listeners_stop_and_no_new_connection_fails() {
    if !vipd_lab::e2e_enabled(
        "sigterm_withdraws_before_the_listeners_stop_and_no_new_connection_fails",
    ) {
        return;
    }
    let settings = ClusterSettings::default();
    let withdraw_delay = settings.withdraw_delay;
    let mut cluster = Cluster::start("bgp-drain", settings);
    let (probe, watch) = probe_and_watch(&cluster);
    let signalled = Instant::now();
    cluster.vipds[0]
        .as_ref()
        .expect("lb1 runs")
        .signal(Signal::SIGTERM)
        .expect("SIGTERM");
    let withdrawn = withdrawal(&cluster, watch, 0, signalled, Duration::from_secs(3));
    let was_listening = cluster.listening(0);
    let stopped = wait_until(Duration::from_secs(5), || !cluster.listening(0));
    let listeners_gone = signalled.elapsed();
    let exit = cluster.vipds[0].take().and_then(|mut vipd| vipd.stop());
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop().expect("client loop");
    let outside = failures_outside(&report, signalled, signalled + withdrawn);
    println!(
        "lb1 SIGTERMed: route withdrawn after {withdrawn:?}, listeners gone after \
         {listeners_gone:?} (withdraw_delay {withdraw_delay:?}), exit {exit:?}; client: {report}; \
         failed outside the rehash window: {outside}"
    );
    assert!(
        was_listening && stopped.is_some(),
        "lb1 listened at the withdrawal: {was_listening}; stopped listening: {stopped:?}"
    );
    assert!(
        listeners_gone >= withdraw_delay,
        "the listeners stopped {listeners_gone:?} after SIGTERM, before withdraw_delay"
    );
    assert!(
        withdrawn + PROPAGATION_MARGIN < withdraw_delay,
        "the route left the router only after {withdrawn:?}"
    );
    assert_eq!(
        outside,
        0,
        "new connections failed: {report}\n{}",
        cluster.logs()
    );
    assert!(
        exit.is_some_and(|status| status.success()),
        "lb1 exit {exit:?}\n{}",
        cluster.logs()
    );
}

/// The TUN devices die with the process, BIRD withdraws at once. A connection the killed node
/// had accepted gets no reset: the VIP left with the device, so its kernel cannot answer from it,
/// and the client waits for its own timeout (the probe's 2 s read); it is counted in the window.
#[test]
fn a_sigkilled_vipd_stops_being_a_next_hop_at_once_and_leaves_no_vip_behind() {
    if !vipd_lab::e2e_enabled(
        "a_sigkilled_vipd_stops_being_a_next_hop_at_once_and_leaves_no_vip_behind",
    ) {
        return;
    }
    let mut cluster = Cluster::start("bgp-sigkill", ClusterSettings::default());
    let (probe, watch) = probe_and_watch(&cluster);
    let killed = Instant::now();
    if let Some(mut vipd) = cluster.vipds[0].take() {
        vipd.stop_with(Signal::SIGKILL);
    }
    let withdrawn = withdrawal(&cluster, watch, 0, killed, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop().expect("client loop");
    let hops = cluster.lab.router_next_hops(cluster.vip).expect("route");
    let outside = failures_outside(&report, killed, killed + withdrawn);
    println!(
        "lb1 SIGKILLed: route withdrawn after {withdrawn:?} (bound {KILL_BOUND:?}); \
         client: {report}; failed outside the rehash window: {outside}"
    );
    assert!(withdrawn <= KILL_BOUND, "withdrawn after {withdrawn:?}");
    assert_eq!(hops.len(), 2, "the other nodes stay: {hops:?}");
    let links = cluster
        .lab
        .run(Place::Node(0), &["ip", "-o", "link", "show"])
        .expect("ip link");
    assert!(
        !links.contains("vipd-"),
        "vipd's devices outlived it:\n{links}"
    );
    assert!(
        !cluster
            .lab
            .holds(Place::Node(0), cluster.vip)
            .expect("ip addr"),
        "the VIP stayed on lb1 after vipd died"
    );
    assert_eq!(outside, 0, "{report}");
}

/// A node that goes silent (cable cut: no UPDATE, no FIN reaches the router) is noticed by BFD,
/// not by the 3 s hold time: lb1 leaves the route within BFD's detection time plus the margin.
#[test]
fn with_bfd_a_node_cut_off_from_the_router_leaves_the_route_long_before_the_hold_time() {
    if !vipd_lab::e2e_enabled(
        "with_bfd_a_node_cut_off_from_the_router_leaves_the_route_long_before_the_hold_time",
    ) {
        return;
    }
    let settings = ClusterSettings {
        bfd: true,
        ..ClusterSettings::default()
    };
    let cluster = Cluster::start("bgp-bfd", settings);
    let (probe, watch) = probe_and_watch(&cluster);
    let cut = Instant::now();
    cluster.lab.cut_node(0).expect("cut lb1 off");
    let withdrawn = withdrawal(&cluster, watch, 0, cut, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop().expect("client loop");
    let bound = BFD_DETECTION + PROPAGATION_MARGIN;
    println!(
        "lb1 cut off with BFD: route withdrawn after {withdrawn:?} (bound {bound:?}, hold time \
         {:?}); client: {report}",
        vipd_lab::routed::HOLD_TIME
    );
    assert!(
        withdrawn <= bound,
        "withdrawn after {withdrawn:?}, bound {bound:?}"
    );
    // A SYN that went to lb1 in the meantime is retransmitted after 1 s and lands elsewhere.
    assert_eq!(report.failed(), 0, "{report}");
}

/// Mixed mode: lb1 and lb2 also elect a LAN VIP by VRRP, in the same file as the announce group;
/// both serve, and when lb1 dies lb2 takes the VRRP VIP while the router drops lb1.
#[test]
fn vrrp_and_announced_vips_work_side_by_side_in_one_file() {
    if !vipd_lab::e2e_enabled("vrrp_and_announced_vips_work_side_by_side_in_one_file") {
        return;
    }
    let settings = ClusterSettings {
        mixed: true,
        ..ClusterSettings::default()
    };
    let mut cluster = Cluster::start("bgp-mixed", settings);
    let lan_vip = IpAddr::V4(RoutedLab::lan_vip_v4(0));
    assert!(
        wait_until(Duration::from_secs(10), || {
            cluster.lab.holds(Place::Node(0), lan_vip).unwrap_or(false)
                && cluster.instance_state(1).as_deref() == Some("backup")
        })
        .is_some(),
        "no lb1 master / lb2 backup for the LAN VIP\n{}",
        cluster.logs()
    );
    let lan_target = SocketAddr::new(lan_vip, FRONTEND_PORT);
    let by_vrrp = ConnectionLoop::run(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::back_to_back(lan_target, 20),
    )
    .expect("client loop");
    let announced_report = ConnectionLoop::run(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::back_to_back(cluster.target(), 60),
    )
    .expect("client loop");
    println!("mixed: VRRP VIP {by_vrrp}; announced VIP {announced_report}");
    assert_eq!(
        by_vrrp.answers().get("lb1").copied(),
        Some(20),
        "the VRRP VIP is served by its master: {by_vrrp}"
    );
    assert_eq!(announced_report.failed(), 0, "{announced_report}");
    assert_eq!(announced_report.answers().len(), 3, "{announced_report}");
    assert_eq!(announced(&cluster, 0), Some(true), "lb1's /status");

    // lb1 dies: lb2 takes the VRRP VIP, the router drops lb1 for the announced one.
    let lb1 = cluster.next_hop(0);
    if let Some(mut vipd) = cluster.vipds[0].take() {
        vipd.stop_with(Signal::SIGKILL);
    }
    cluster
        .lab
        .wait_for_next_hops(cluster.vip, KILL_BOUND, |hops| !hops.contains(&lb1))
        .unwrap_or_else(|error| panic!("{error}\n{}", cluster.logs()));
    assert!(
        cluster.wait_until_held(1, lan_vip, Duration::from_secs(5)),
        "lb2 never took the VRRP VIP\n{}",
        cluster.logs()
    );
    let after = ConnectionLoop::run(
        &cluster.lab,
        Place::Client,
        ConnectionPlan::back_to_back(lan_target, 10),
    )
    .expect("client loop");
    println!("mixed, lb1 killed: VRRP VIP {after}");
    assert_eq!(after.answers().get("lb2").copied(), Some(10), "{after}");
}
