//! A master whose own address is removed while it holds a VIP on the same subnet: the kernel
//! promotes the VIP to primary (`promote_secondaries`, which systemd sets), and a VIP must never
//! be the adverts' source. With another address of its own left, the master advertises from it
//! and nothing moves; with none left, it is in Fault and the backup takes over.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vipd_lab::Lab;

use crate::support::takeover_probe::master_down_interval;
use crate::support::{Scratch, holds, instance_state, start_master_and_backup, status, wait_until};

const LB1: usize = 0;
const LB2: usize = 1;
const ADVERT_INTERVAL: Duration = Duration::from_millis(100);
/// lb1's second address, which it keeps when its first one goes.
const SECOND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 30);

fn node_config(node: &str, priority: u8, vip: IpAddr) -> String {
    format!(
        "node: {node}
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: {priority}
    advert_interval: {}ms
    vips: [\"{vip}/24\"]
",
        ADVERT_INTERVAL.as_millis()
    )
}

fn run(lab: &Lab, host: usize, command: &str) {
    lab.run(host, &command.split(' ').collect::<Vec<_>>())
        .unwrap_or_else(|error| panic!("{command}: {error}"));
}

#[test]
fn a_master_whose_own_address_goes_never_advertises_from_its_vip() {
    if !vipd_lab::e2e_enabled("a_master_whose_own_address_goes_never_advertises_from_its_vip") {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("own-address");
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let _pair = start_master_and_backup(
        &lab,
        &scratch,
        [&node_config("lb1", 150, vip), &node_config("lb2", 100, vip)],
        vip,
    );
    let log = |name: &str| std::fs::read_to_string(scratch.path(name)).unwrap_or_default();
    let adverts = lab.capture(LB2, &["ip", "proto", "112"]).expect("capture");

    // lb1 loses its first address: the VIP becomes primary, the second address is left.
    run(
        &lab,
        LB1,
        "sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1",
    );
    run(&lab, LB1, &format!("ip addr add {SECOND}/24 dev eth0"));
    run(
        &lab,
        LB1,
        &format!("ip addr del {}/24 dev eth0", lab.host(LB1).ipv4),
    );
    let master_down = master_down_interval(100, ADVERT_INTERVAL);
    std::thread::sleep(master_down * 3);
    assert_eq!(
        instance_state(&lab, LB2, "api").as_deref(),
        Some("backup"),
        "lb2 took over while lb1 had an address of its own; lb2: {:?}\nlb1 log:\n{}",
        status(&lab, LB2),
        log("lb1.log")
    );
    assert!(holds(&lab, LB1, vip));
    let sources = adverts
        .finish()
        .tshark(&["-Y", "vrrp", "-T", "fields", "-e", "ip.src"])
        .expect("tshark");
    let from_vip = sources
        .lines()
        .filter(|source| *source == vip.to_string())
        .count();
    assert_eq!(from_vip, 0, "adverts from the VIP:\n{sources}");
    assert!(
        sources.lines().any(|source| *source == SECOND.to_string()),
        "no advert from lb1's second address:\n{sources}"
    );

    // Its last own address goes too: Fault, the VIP released, lb2 takes over.
    run(&lab, LB1, &format!("ip addr del {SECOND}/24 dev eth0"));
    assert!(
        wait_until(master_down * 3, || holds(&lab, LB2, vip)
            && !holds(&lab, LB1, vip))
        .is_some(),
        "lb2 did not take over from an lb1 without an address; lb1 log:\n{}",
        log("lb1.log")
    );
    assert_eq!(instance_state(&lab, LB1, "api").as_deref(), Some("fault"));
}
