//! A unicast peer renumbered while both nodes run (docs/operations.md, "Unicast"): its adverts
//! come from an address the other node does not list. They are still dropped (only configured
//! peers count), but no longer in silence: the master counts them apart, logs them, and reports
//! two masters when the renumbered node took over.

use std::net::IpAddr;
use std::time::Duration;

use vipd_lab::Lab;

use crate::support::{Scratch, instance_state, start_master_and_backup, status, wait_until};

const LB1: usize = 0;
const LB2: usize = 1;
/// lb2's address after renumbering: a host number no lab host of two uses.
const RENUMBERED: &str = "198.51.100.31";

fn node_config(node: &str, priority: u8, peer: IpAddr, vip: IpAddr) -> String {
    format!(
        "node: {node}
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: {priority}
    advert_interval: 100ms
    unicast: {{ peers: [\"{peer}\"] }}
    vips: [\"{vip}/24\"]
"
    )
}

fn counter(lab: &Lab, host: usize, name: &str) -> u64 {
    status(lab, host).ok().map_or(0, |status| {
        status["instances"][0]["counters"][name]
            .as_u64()
            .unwrap_or(0)
    })
}

#[test]
fn a_renumbered_unicast_peer_is_counted_logged_and_reported_as_a_second_master() {
    if !vipd_lab::e2e_enabled(
        "a_renumbered_unicast_peer_is_counted_logged_and_reported_as_a_second_master",
    ) {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("renumbered-peer");
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let (lb1_address, lb2_address) = (lab.host(LB1).ipv4, lab.host(LB2).ipv4);
    let _pair = start_master_and_backup(
        &lab,
        &scratch,
        [
            &node_config("lb1", 150, lb2_address.into(), vip),
            &node_config("lb2", 100, lb1_address.into(), vip),
        ],
        vip,
    );
    let log = |name: &str| std::fs::read_to_string(scratch.path(name)).unwrap_or_default();
    assert_eq!(counter(&lab, LB1, "adverts_from_unknown_peers"), 0);

    // Renumber lb2 (promote_secondaries keeps the new address when the old primary goes).
    for command in [
        "sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1".to_owned(),
        format!("ip addr add {RENUMBERED}/24 dev eth0"),
        format!("ip addr del {lb2_address}/24 dev eth0"),
    ] {
        lab.run(LB2, &command.split(' ').collect::<Vec<_>>())
            .expect("renumber lb2");
    }

    // lb1's adverts go to lb2's old address: lb2 takes over, and its adverts reach lb1 from an
    // address lb1 does not list.
    let reported = wait_until(Duration::from_secs(5), || {
        counter(&lab, LB1, "unknown_peer_masters_seen") > 0
    });
    assert!(
        reported.is_some(),
        "lb1 never reported the second master: {:?}\nlb1 log:\n{}\nlb2 log:\n{}",
        status(&lab, LB1),
        log("lb1.log"),
        log("lb2.log")
    );
    assert!(counter(&lab, LB1, "adverts_from_unknown_peers") > 0);
    assert_eq!(instance_state(&lab, LB1, "api").as_deref(), Some("master"));
    assert_eq!(instance_state(&lab, LB2, "api").as_deref(), Some("master"));
    let lb1_log = log("lb1.log");
    for expected in [
        "not a configured unicast peer: a renumbered peer?",
        "two masters: a node that is not a configured unicast peer advertises our VRID",
        RENUMBERED,
    ] {
        assert!(
            lb1_log.contains(expected),
            "lb1's log lacks {expected:?}:\n{lb1_log}"
        );
    }
    // Rate-limited: one line of each kind per 10 s, however many adverts arrive (ten a second).
    std::thread::sleep(Duration::from_secs(1));
    let warnings = log("lb1.log")
        .lines()
        .filter(|line| line.contains("two masters:"))
        .count();
    assert_eq!(warnings, 1, "two-master warnings are not rate-limited");
}
