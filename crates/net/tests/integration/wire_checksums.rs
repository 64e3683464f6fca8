//! Our adverts, as they leave a real socket, checked by an independent dissector: Wireshark's
//! VRRP dissector (tshark) must report "checksum Good" for v2, v3 over IPv4 and v3 over IPv6.

use std::net::IpAddr;
use std::num::NonZeroU8;

use vipd_lab::{Lab, e2e_enabled};
use vipd_net::{Family, Mode, VrrpSocket, VrrpSocketConfig, VrrpTransport};
use vipd_vrrp::wire::{MULTICAST_V4, MULTICAST_V6};
use vipd_vrrp::{Advertisement, Auth, Centis, ChecksumForm, Priority, VersionFields, Vrid};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn advert(fields: VersionFields, vip: IpAddr) -> Advertisement {
    Advertisement {
        vrid: Vrid::try_from(7).unwrap(),
        priority: Priority::new(150),
        fields,
        addresses: vec![vip],
    }
}

/// Sends `advert` from host `host` on a multicast socket, checksummed by the vrrp codec.
fn send_advert(lab: &Lab, host: usize, family: Family, advert: Advertisement) {
    lab.in_host(host, move || {
        runtime().block_on(async move {
            let socket = VrrpSocket::open(VrrpSocketConfig {
                interface: "eth0".into(),
                family,
                mode: Mode::Multicast,
            })
            .unwrap();
            let group = match family {
                Family::Ipv4 => IpAddr::V4(MULTICAST_V4),
                Family::Ipv6 => IpAddr::V6(MULTICAST_V6),
            };
            let bytes = advert
                .to_bytes(
                    socket.source_address(),
                    group,
                    ChecksumForm::WithPseudoHeader,
                )
                .unwrap();
            socket.send(&bytes).await.unwrap();
        });
    })
    .unwrap();
}

#[test]
fn tshark_reports_checksum_good_for_our_v2_and_v3_adverts() {
    if !e2e_enabled("tshark_reports_checksum_good_for_our_v2_and_v3_adverts") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let capture = lab
        .capture(1, &["ip", "proto", "112", "or", "ip6", "proto", "112"])
        .unwrap();
    let v2 = VersionFields::V2 {
        advert_interval_secs: NonZeroU8::new(1).unwrap(),
        auth: Auth::None,
    };
    let v3 = VersionFields::V3 {
        max_advert_interval: Centis::try_from(100).unwrap(),
    };
    let vip4: IpAddr = "198.51.100.100".parse().unwrap();
    let vip6: IpAddr = "2001:db8::100".parse().unwrap();
    send_advert(&lab, 0, Family::Ipv4, advert(v2, vip4));
    send_advert(&lab, 0, Family::Ipv4, advert(v3, vip4));
    send_advert(&lab, 0, Family::Ipv6, advert(v3, vip6));
    let file = capture.finish();

    let fields = file
        .tshark(&[
            "-Y",
            "vrrp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "vrrp.version",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "vrrp.prio",
            "-e",
            "vrrp.checksum.status",
        ])
        .unwrap();
    // checksum.status 1 is Wireshark's PROTO_CHECKSUM_E_GOOD.
    assert_eq!(
        fields.lines().collect::<Vec<_>>(),
        vec!["2|7|150|1", "3|7|150|1", "3|7|150|1"],
        "tshark fields"
    );
    let verbose = file.tshark(&["-Y", "vrrp", "-V"]).unwrap();
    let good = verbose.matches("[Checksum Status: Good]").count();
    assert_eq!(good, 3, "tshark -V:\n{verbose}");
}

#[test]
fn received_adverts_parse_with_the_codec_using_the_reported_addresses() {
    if !e2e_enabled("received_adverts_parse_with_the_codec_using_the_reported_addresses") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let v3 = VersionFields::V3 {
        max_advert_interval: Centis::try_from(100).unwrap(),
    };
    for (family, vip) in [
        (Family::Ipv4, "198.51.100.100".parse().unwrap()),
        (Family::Ipv6, "2001:db8::100".parse().unwrap()),
    ] {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let receiver = lab
            .spawn_in_host(1, move || {
                runtime().block_on(async move {
                    let socket = VrrpSocket::open(VrrpSocketConfig {
                        interface: "eth0".into(),
                        family,
                        mode: Mode::Multicast,
                    })
                    .unwrap();
                    ready_tx.send(()).unwrap();
                    tokio::time::timeout(std::time::Duration::from_secs(3), socket.recv())
                        .await
                        .unwrap()
                        .unwrap()
                })
            })
            .unwrap();
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let sent = advert(v3, vip);
        send_advert(&lab, 0, family, sent.clone());
        let received = receiver.join().unwrap().unwrap();
        let parsed =
            Advertisement::from_bytes(&received.payload, received.source, received.destination)
                .unwrap();
        assert_eq!(parsed.advertisement, sent, "{family:?}");
        assert_eq!(
            parsed.checksum,
            ChecksumForm::WithPseudoHeader,
            "{family:?}"
        );
    }
}

#[test]
fn unicast_v3_adverts_built_per_destination_verify_at_every_peer() {
    if !e2e_enabled("unicast_v3_adverts_built_per_destination_verify_at_every_peer") {
        return;
    }
    // The v3 IPv4 checksum covers the IP destination: each peer needs its own bytes.
    let lab = Lab::new(3).unwrap();
    let sender: IpAddr = lab.host(0).ipv4.into();
    let peers: Vec<IpAddr> = vec![lab.host(1).ipv4.into(), lab.host(2).ipv4.into()];
    let receivers: Vec<_> = (1..=2)
        .map(|host| {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let handle = lab
                .spawn_in_host(host, move || {
                    runtime().block_on(async move {
                        let socket = VrrpSocket::open(VrrpSocketConfig {
                            interface: "eth0".into(),
                            family: Family::Ipv4,
                            mode: Mode::Unicast {
                                peers: vec![sender],
                                source: None,
                            },
                        })
                        .unwrap();
                        ready_tx.send(()).unwrap();
                        tokio::time::timeout(std::time::Duration::from_secs(3), socket.recv())
                            .await
                            .unwrap()
                            .unwrap()
                    })
                })
                .unwrap();
            ready_rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            handle
        })
        .collect();
    let sent = advert(
        VersionFields::V3 {
            max_advert_interval: Centis::try_from(100).unwrap(),
        },
        "198.51.100.100".parse().unwrap(),
    );
    lab.in_host(0, {
        let sent = sent.clone();
        move || {
            runtime().block_on(async move {
                let socket = VrrpSocket::open(VrrpSocketConfig {
                    interface: "eth0".into(),
                    family: Family::Ipv4,
                    mode: Mode::Unicast {
                        peers,
                        source: None,
                    },
                })
                .unwrap();
                for destination in socket.destinations() {
                    let bytes = sent
                        .to_bytes(
                            socket.source_address(),
                            destination,
                            ChecksumForm::WithPseudoHeader,
                        )
                        .unwrap();
                    socket.send_to(&bytes, destination).await.unwrap();
                }
            });
        }
    })
    .unwrap();
    for receiver in receivers {
        let received = receiver.join().unwrap().unwrap();
        let parsed =
            Advertisement::from_bytes(&received.payload, received.source, received.destination)
                .unwrap();
        assert_eq!(parsed.advertisement, sent);
        assert_eq!(parsed.checksum, ChecksumForm::WithPseudoHeader);
    }
}
