//! Gratuitous ARP and unsolicited NA on the wire, read back by tshark on the peer; the optional
//! virtual MAC interface.

use std::net::IpAddr;

use vipd_lab::{Lab, e2e_enabled};
use vipd_net::{Announce, Family, PacketAnnouncer, VirtualMac, virtual_mac_address};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn garp_and_unsolicited_na_arrive_on_the_peer_with_the_right_fields() {
    if !e2e_enabled("garp_and_unsolicited_na_arrive_on_the_peer_with_the_right_fields") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let mac = mac_text(lab.host(0).mac);
    let capture = lab
        .capture(1, &["arp", "or", "(icmp6", "and", "ip6[40]", "==", "136)"])
        .unwrap();
    let v4: IpAddr = "198.51.100.100".parse().unwrap();
    let v6: IpAddr = "2001:db8::100".parse().unwrap();
    lab.in_host(0, move || {
        let announcer = PacketAnnouncer::open("eth0").unwrap();
        announcer.announce(v4).unwrap();
        announcer.announce(v6).unwrap();
    })
    .unwrap();
    let file = capture.finish();

    let arp = file
        .tshark(&[
            "-Y",
            "arp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "eth.dst",
            "-e",
            "eth.src",
            "-e",
            "arp.opcode",
            "-e",
            "arp.src.hw_mac",
            "-e",
            "arp.src.proto_ipv4",
            "-e",
            "arp.dst.proto_ipv4",
            "-e",
            "arp.isgratuitous",
        ])
        .unwrap();
    let expected_arp = format!("ff:ff:ff:ff:ff:ff|{mac}|1|{mac}|{v4}|{v4}|1");
    assert_eq!(
        arp.trim(),
        expected_arp,
        "gratuitous ARP as tshark reads it"
    );

    let na = file
        .tshark(&[
            "-Y",
            "icmpv6.type == 136",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "eth.dst",
            "-e",
            "eth.src",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "ipv6.hlim",
            "-e",
            "icmpv6.nd.na.flag.r",
            "-e",
            "icmpv6.nd.na.flag.s",
            "-e",
            "icmpv6.nd.na.flag.o",
            "-e",
            "icmpv6.nd.na.target_address",
            "-e",
            "icmpv6.opt.linkaddr",
            "-e",
            "icmpv6.checksum.status",
        ])
        .unwrap();
    // tshark 4.0 prints flags as 0/1 and the checksum status as 1 ("Good").
    let expected_na = format!("33:33:00:00:00:01|{mac}|{v6}|ff02::1|255|1|0|1|{v6}|{mac}|1");
    assert_eq!(na.trim(), expected_na, "unsolicited NA as tshark reads it");
}

#[test]
fn the_virtual_mac_interface_carries_the_vrrp_mac() {
    if !e2e_enabled("the_virtual_mac_interface_carries_the_vrrp_mac") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let (reported, after_adopt) = lab
        .in_host(0, || {
            runtime().block_on(async {
                let vmac = VirtualMac::create("eth0", "vrrp.7", 7, Family::Ipv4)
                    .await
                    .unwrap();
                let reported = vmac.current_mac().await.unwrap();
                // Creating again adopts the existing interface instead of failing.
                let again = VirtualMac::create("eth0", "vrrp.7", 7, Family::Ipv4)
                    .await
                    .unwrap();
                let after_adopt = again.current_mac().await.unwrap();
                (reported, after_adopt)
            })
        })
        .unwrap();
    let expected = virtual_mac_address(7, Family::Ipv4);
    assert_eq!(expected, [0x00, 0x00, 0x5e, 0x00, 0x01, 0x07]);
    assert_eq!(reported.as_deref(), Some(&expected[..]));
    assert_eq!(after_adopt.as_deref(), Some(&expected[..]));
    let link = lab.run(0, &["ip", "-d", "link", "show", "vrrp.7"]).unwrap();
    assert!(link.contains("00:00:5e:00:01:07"), "{link}");
    assert!(link.contains("macvlan mode vepa"), "{link}");
    assert!(link.contains("state UP") || link.contains(",UP"), "{link}");

    lab.in_host(0, || {
        runtime().block_on(async {
            let vmac = VirtualMac::create("eth0", "vrrp.7", 7, Family::Ipv4)
                .await
                .unwrap();
            vmac.remove().await.unwrap();
        });
    })
    .unwrap();
    assert!(lab.run(0, &["ip", "link", "show", "vrrp.7"]).is_err());
}
