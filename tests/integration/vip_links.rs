//! A VIP with its own `interface:`, on another link than the VRRP adverts (keepalived's
//! `virtual_ipaddress { ... dev eth1 }`): the new master announces it on that link with that
//! link's MAC, so a client there follows the takeover at once instead of after its ARP entry
//! expires; and a VIP deleted by hand there comes back as fast as one on the advert link.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use vipd_lab::{AddressWatch, HOST_INTERFACE, Lab, SECOND_INTERFACE};

use crate::support::{Scratch, holds, mac_text, start_vipd, wait_for_control, wait_until};

const LB1: usize = 0;
const LB2: usize = 1;
const CLIENT: usize = 2;
/// A VIP deleted by hand is seen by the address monitor at once; the 5 s host check is only
/// the fallback. This bound is far below it and far above a netlink round trip.
const RESTORE_BOUND: Duration = Duration::from_millis(500);
/// Deletions per link: the 5 s host check cannot restore three deletions in a row within
/// `RESTORE_BOUND` each, so a VIP whose removal is not seen fails this test.
const DELETIONS: usize = 3;

fn node_config(node: &str, priority: u8, advert_vip: Ipv4Addr, other_vip: Ipv4Addr) -> String {
    format!(
        "node: {node}
vrrp:
  - name: api
    interface: {HOST_INTERFACE}
    vrid: 51
    priority: {priority}
    advert_interval: 100ms
    vips:
      - \"{advert_vip}/24\"
      - {{ address: \"{other_vip}/24\", interface: {SECOND_INTERFACE} }}
"
    )
}

/// The MAC the client has for `address` on `interface`, if any.
fn client_neighbour(lab: &Lab, address: Ipv4Addr, interface: &str) -> Option<String> {
    let table = lab
        .run(
            CLIENT,
            &[
                "ip",
                "neigh",
                "show",
                &address.to_string(),
                "dev",
                interface,
            ],
        )
        .ok()?;
    let mut words = table.split_whitespace();
    words.find(|word| *word == "lladdr")?;
    words.next().map(str::to_owned)
}

/// Deletes `vip` from `interface` on `host` and returns how long vipd took to add it back.
fn restore_time(lab: &Lab, host: usize, vip: Ipv4Addr, interface: &str) -> Duration {
    let watch = AddressWatch::added(IpAddr::V4(vip), Duration::from_secs(10))
        .start(lab, host)
        .expect("address watch");
    let deleted = Instant::now();
    lab.run(
        host,
        &["ip", "addr", "del", &format!("{vip}/24"), "dev", interface],
    )
    .expect("delete the VIP");
    let added = watch
        .wait()
        .expect("address watch")
        .unwrap_or_else(|| panic!("{vip} on {interface} never came back"));
    added.saturating_duration_since(deleted)
}

#[test]
fn a_vip_on_another_link_is_announced_and_restored_on_that_link() {
    if !vipd_lab::e2e_enabled("a_vip_on_another_link_is_announced_and_restored_on_that_link") {
        return;
    }
    let lab = Lab::new(3).expect("lab");
    lab.add_second_lan().expect("second LAN");
    let scratch = Scratch::new("vip-links");
    let advert_vip = Lab::vip_v4(0);
    let other_vip = Lab::second_lan_vip_v4(0);
    let lb1_config = scratch.write("lb1.yaml", &node_config("lb1", 150, advert_vip, other_vip));
    let lb2_config = scratch.write("lb2.yaml", &node_config("lb2", 100, advert_vip, other_vip));
    let mut lb1 = start_vipd(&lab, LB1, &lb1_config, &scratch.path("lb1.log"));
    let _lb2 = start_vipd(&lab, LB2, &lb2_config, &scratch.path("lb2.log"));
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);
    let log = |name: &str| std::fs::read_to_string(scratch.path(name)).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || holds(
            &lab,
            LB1,
            IpAddr::V4(other_vip)
        ))
        .is_some(),
        "lb1 never took {other_vip}; log:\n{}",
        log("lb1.log")
    );

    // The client on the second link talks to the VIP there: it learns lb1's eth1 MAC.
    let lb1_mac = mac_text(lab.mac(LB1, SECOND_INTERFACE).expect("lb1 MAC"));
    let lb2_mac = mac_text(lab.mac(LB2, SECOND_INTERFACE).expect("lb2 MAC"));
    // Any packet to the VIP resolves it; nothing listens, so the answer is a reset.
    let target = SocketAddr::new(IpAddr::V4(other_vip), 80);
    lab.in_host(CLIENT, move || {
        let _ = TcpStream::connect_timeout(&target, Duration::from_secs(2));
    })
    .expect("client host");
    assert_eq!(
        client_neighbour(&lab, other_vip, SECOND_INTERFACE).as_deref(),
        Some(lb1_mac.as_str())
    );
    // Linux does not override a neighbour entry within its locktime (1 s) of the last update.
    std::thread::sleep(Duration::from_millis(1100));

    // Takeover: the GARPs of lb2 reach the second link with lb2's eth1 MAC, with no traffic
    // from the client and long before its ARP entry would expire.
    let takeover = AddressWatch::added(IpAddr::V4(other_vip), Duration::from_secs(5))
        .start(&lab, LB2)
        .expect("address watch");
    lb1.stop();
    takeover
        .wait()
        .expect("address watch")
        .expect("lb2 took the VIP within 5 s");
    let followed = wait_until(Duration::from_millis(500), || {
        client_neighbour(&lab, other_vip, SECOND_INTERFACE).as_deref() == Some(lb2_mac.as_str())
    });
    assert!(
        followed.is_some(),
        "the client on {SECOND_INTERFACE} still has {:?} for {other_vip}, not lb2's {lb2_mac}; lb2 log:\n{}",
        client_neighbour(&lab, other_vip, SECOND_INTERFACE),
        log("lb2.log")
    );

    // A VIP deleted by hand comes back as fast on its own link as on the advert link.
    for (vip, interface) in [(advert_vip, HOST_INTERFACE), (other_vip, SECOND_INTERFACE)] {
        for _ in 0..DELETIONS {
            let took = restore_time(&lab, LB2, vip, interface);
            eprintln!("{vip} on {interface}: restored {took:?} after deletion");
            assert!(
                took <= RESTORE_BOUND,
                "{vip} deleted from {interface} came back after {took:?}, more than {RESTORE_BOUND:?}"
            );
        }
    }
}
