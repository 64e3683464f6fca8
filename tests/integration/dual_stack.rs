//! An IPv4 and an IPv6 virtual router with the same VRID on one interface, as keepalived
//! set-ups often have: RFC 9568 section 6 makes them independent routers, so a pair of `vipd run`
//! nodes elects one master per family, fails over per family, and neither family's instance
//! drops the other's adverts (the two families never share a raw socket).

use std::net::IpAddr;
use std::time::Duration;

use vipd_lab::http::Client;
use vipd_lab::{AddressWatch, Lab};

use crate::support::{
    CONTROL, Scratch, holds, instance_state, start_vipd, status, wait_for_control, wait_until,
};

const LB1: usize = 0;
const LB2: usize = 1;
const VRID: u8 = 51;
const ADVERT_INTERVAL_MS: u64 = 100;
/// Master_Down_Interval of the priority-100 backup: 3 × 100 ms + Skew_Time 60.9 ms (RFC 9568
/// 6.1); the checks of "nothing moved" wait several of them.
const MASTER_DOWN: Duration = Duration::from_millis(361);

fn node_config(node: &str, priority: u8, vip4: IpAddr, vip6: IpAddr) -> String {
    format!(
        "node: {node}
vrrp:
  - name: api4
    interface: eth0
    vrid: {VRID}
    priority: {priority}
    advert_interval: {ADVERT_INTERVAL_MS}ms
    vips: [\"{vip4}/24\"]
  - name: api6
    interface: eth0
    vrid: {VRID}
    priority: {priority}
    advert_interval: {ADVERT_INTERVAL_MS}ms
    vips: [\"{vip6}/64\"]
"
    )
}

/// The counters of `instance` in the `/status` of `host`.
fn counters(lab: &Lab, host: usize, instance: &str) -> serde_json::Value {
    let status = status(lab, host).expect("status");
    status["instances"]
        .as_array()
        .and_then(|instances| instances.iter().find(|entry| entry["name"] == instance))
        .map_or_else(
            || panic!("no instance {instance} in {status}"),
            |entry| entry["counters"].clone(),
        )
}

fn maintenance(lab: &Lab, host: usize, instance: &str, enabled: bool) {
    let path = format!("/api/v1/instances/{instance}/maintenance");
    let body = format!("{{\"enabled\": {enabled}}}");
    let response = lab
        .in_host(host, move || {
            Client::new().timeout(Duration::from_secs(2)).send_blocking(
                "POST",
                CONTROL,
                &path,
                body.as_bytes(),
            )
        })
        .expect("host exists")
        .expect("control server answers");
    assert!(
        response.success().is_ok(),
        "maintenance {enabled} on {instance} refused"
    );
}

/// Waits until `host` holds `vip` and the other node does not, both for longer than a
/// Master_Down_Interval (a split brain shows up within one).
fn assert_only_holder(lab: &Lab, host: usize, vip: IpAddr, what: &str) {
    let other = if host == LB1 { LB2 } else { LB1 };
    assert!(
        wait_until(Duration::from_secs(10), || holds(lab, host, vip)
            && !holds(lab, other, vip))
        .is_some(),
        "{what}: host {host} never became the only holder of {vip}"
    );
    let added = AddressWatch::added(vip, MASTER_DOWN * 3)
        .start(lab, other)
        .expect("address watch")
        .wait()
        .expect("address watch");
    assert_eq!(added, None, "{what}: host {other} took {vip} too");
    assert!(holds(lab, host, vip), "{what}: host {host} lost {vip}");
}

fn assert_state(lab: &Lab, host: usize, instance: &str, state: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || instance_state(
            lab, host, instance
        )
        .as_deref()
            == Some(state))
        .is_some(),
        "{instance} on host {host} is not {state}: {:?}",
        status(lab, host)
    );
}

#[test]
fn ipv4_and_ipv6_routers_with_one_vrid_elect_and_fail_over_independently() {
    if !vipd_lab::e2e_enabled(
        "ipv4_and_ipv6_routers_with_one_vrid_elect_and_fail_over_independently",
    ) {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("dual-stack");
    let vip4 = IpAddr::V4(Lab::vip_v4(0));
    let vip6 = IpAddr::V6(Lab::vip_v6(0));
    let lb1_config = scratch.write("lb1.yaml", &node_config("lb1", 150, vip4, vip6));
    let lb2_config = scratch.write("lb2.yaml", &node_config("lb2", 100, vip4, vip6));
    let _lb1 = start_vipd(&lab, LB1, &lb1_config, &scratch.path("lb1.log"));
    let _lb2 = start_vipd(&lab, LB2, &lb2_config, &scratch.path("lb2.log"));
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);
    let logs = || {
        format!(
            "lb1 log:\n{}\nlb2 log:\n{}",
            std::fs::read_to_string(scratch.path("lb1.log")).unwrap_or_default(),
            std::fs::read_to_string(scratch.path("lb2.log")).unwrap_or_default()
        )
    };

    // One master per family.
    assert_only_holder(&lab, LB1, vip4, "election");
    assert_only_holder(&lab, LB1, vip6, "election");
    for instance in ["api4", "api6"] {
        assert_state(&lab, LB1, instance, "master");
        assert_state(&lab, LB2, instance, "backup");
        // The backup hears its own family's master, and drops nothing: the other family's
        // adverts never reach its socket.
        let seen = counters(&lab, LB2, instance);
        assert!(
            seen["adverts_received"].as_u64().unwrap_or(0) > 0,
            "{instance} on lb2 received nothing: {seen}\n{}",
            logs()
        );
        assert_eq!(seen["adverts_dropped"], 0, "{instance} on lb2: {seen}");
        assert_eq!(seen["two_masters_seen"], 0, "{instance} on lb2: {seen}");
    }

    // Fail over per family: the IPv4 router moves, the IPv6 one stays, and back; then the IPv6
    // router alone.
    maintenance(&lab, LB1, "api4", true);
    assert_only_holder(&lab, LB2, vip4, "IPv4 failover");
    assert_state(&lab, LB1, "api6", "master");
    assert!(
        holds(&lab, LB1, vip6),
        "the IPv6 VIP moved with the IPv4 one"
    );
    maintenance(&lab, LB1, "api4", false);
    assert_only_holder(&lab, LB1, vip4, "IPv4 preemption back");

    maintenance(&lab, LB1, "api6", true);
    assert_only_holder(&lab, LB2, vip6, "IPv6 failover");
    assert_state(&lab, LB1, "api4", "master");
    assert!(
        holds(&lab, LB1, vip4),
        "the IPv4 VIP moved with the IPv6 one"
    );
    maintenance(&lab, LB1, "api6", false);
    assert_only_holder(&lab, LB1, vip6, "IPv6 preemption back");

    for host in [LB1, LB2] {
        for instance in ["api4", "api6"] {
            let seen = counters(&lab, host, instance);
            assert_eq!(
                seen["adverts_dropped"], 0,
                "{instance} on host {host}: {seen}"
            );
        }
    }
}
