//! Interoperation with keepalived on the same LAN, at the socket layer: keepalived's v2 and v3
//! adverts reach our socket and parse with the vrrp codec, and keepalived accepts ours (a
//! keepalived backup stays backup while we advertise a higher priority).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU8;
use std::time::Duration;

use vipd_lab::keepalived::Keepalived;
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

fn multicast(family: Family) -> VrrpSocketConfig {
    VrrpSocketConfig {
        interface: "eth0".into(),
        family,
        mode: Mode::Multicast,
    }
}

/// keepalived in `host` with three instances on eth0: VRID 51 speaking v2, VRID 52 speaking v3
/// (both IPv4) and VRID 53 speaking v3 over IPv6. Its files go to the temp dir, named after the
/// lab, and are removed when it is dropped.
fn start_keepalived(lab: &Lab, host: usize, priority: u8) -> Keepalived {
    let instance = |name: &str, vrid: u8, version: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n  \
             virtual_router_id {vrid}\n  version {version}\n  priority {priority}\n  \
             advert_int 1\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
        )
    };
    let config = format!(
        "global_defs {{\n  router_id vipd_lab\n}}\n{}{}",
        instance("V2", 51, 2, "198.51.100.151"),
        instance("V3", 52, 3, "198.51.100.152"),
    ) + &instance("V6", 53, 3, "2001:db8::1:53").replace("/24", "/64");
    let name = format!("{}-keepalived", lab.name());
    Keepalived::start(lab, host, &std::env::temp_dir(), &name, &config).unwrap()
}

#[test]
fn keepalived_adverts_arrive_and_parse_with_the_codec() {
    if !e2e_enabled("keepalived_adverts_arrive_and_parse_with_the_codec") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = lab
        .spawn_in_host(1, move || {
            runtime().block_on(async move {
                let v4 = VrrpSocket::open(multicast(Family::Ipv4)).unwrap();
                let v6 = VrrpSocket::open(multicast(Family::Ipv6)).unwrap();
                ready_tx.send(()).unwrap();
                // keepalived becomes master after its own master-down interval (~3.4 s) and then
                // advertises every second; collect the first parsed advert of each VRID.
                let mut seen = BTreeMap::new();
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while seen.len() < 3 {
                        let received = tokio::select! {
                            received = v4.recv() => received.unwrap(),
                            received = v6.recv() => received.unwrap(),
                        };
                        let parsed = Advertisement::from_bytes(
                            &received.payload,
                            received.source,
                            received.destination,
                        )
                        .unwrap();
                        seen.entry(parsed.advertisement.vrid.get()).or_insert((
                            parsed,
                            received.source,
                            received.ttl,
                        ));
                    }
                })
                .await;
                seen
            })
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let keepalived = start_keepalived(&lab, 0, 150);
    let seen = receiver.join().unwrap().unwrap();
    let log = keepalived.log();
    let source = IpAddr::V4(lab.host(0).ipv4);

    let (v2, v2_source, v2_ttl) = seen
        .get(&51)
        .unwrap_or_else(|| panic!("no v2 advert:\n{log}"));
    assert_eq!(v2.advertisement.priority, Priority::new(150));
    assert_eq!(
        v2.advertisement.fields,
        VersionFields::V2 {
            advert_interval_secs: NonZeroU8::new(1).unwrap(),
            auth: Auth::None,
        }
    );
    assert_eq!(
        v2.advertisement.addresses,
        vec!["198.51.100.151".parse::<IpAddr>().unwrap()]
    );
    assert_eq!((*v2_source, *v2_ttl), (source, 255));

    let (v3, v3_source, _) = seen
        .get(&52)
        .unwrap_or_else(|| panic!("no v3 advert:\n{log}"));
    assert_eq!(
        v3.advertisement.fields,
        VersionFields::V3 {
            max_advert_interval: Centis::try_from(100).unwrap(),
        }
    );
    // keepalived's v3-over-IPv4 checksum includes the pseudo-header.
    assert_eq!(v3.checksum, ChecksumForm::WithPseudoHeader);
    assert_eq!(*v3_source, source);

    let (v6, v6_source, v6_ttl) = seen
        .get(&53)
        .unwrap_or_else(|| panic!("no IPv6 advert:\n{log}"));
    assert_eq!(
        v6.advertisement.addresses,
        vec!["2001:db8::1:53".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        (*v6_source, *v6_ttl),
        (IpAddr::V6(lab.host(0).link_local), 255)
    );
}

#[test]
fn keepalived_stays_backup_while_we_advertise_a_higher_priority() {
    if !e2e_enabled("keepalived_stays_backup_while_we_advertise_a_higher_priority") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sender = lab
        .spawn_in_host(1, move || {
            runtime().block_on(async move {
                let socket = VrrpSocket::open(multicast(Family::Ipv4)).unwrap();
                let socket6 = VrrpSocket::open(multicast(Family::Ipv6)).unwrap();
                let advert = |socket: &VrrpSocket, vrid: u8, fields: VersionFields, vip: &str| {
                    let group = if socket.config().family == Family::Ipv4 {
                        IpAddr::V4(MULTICAST_V4)
                    } else {
                        IpAddr::V6(MULTICAST_V6)
                    };
                    Advertisement {
                        vrid: Vrid::try_from(vrid).unwrap(),
                        priority: Priority::new(200),
                        fields,
                        addresses: vec![vip.parse().unwrap()],
                    }
                    .to_bytes(
                        socket.source_address(),
                        group,
                        ChecksumForm::WithPseudoHeader,
                    )
                    .unwrap()
                };
                let v2 = advert(
                    &socket,
                    51,
                    VersionFields::V2 {
                        advert_interval_secs: NonZeroU8::new(1).unwrap(),
                        auth: Auth::None,
                    },
                    "198.51.100.151",
                );
                let v3 = advert(
                    &socket,
                    52,
                    VersionFields::V3 {
                        max_advert_interval: Centis::try_from(100).unwrap(),
                    },
                    "198.51.100.152",
                );
                let v6 = advert(
                    &socket6,
                    53,
                    VersionFields::V3 {
                        max_advert_interval: Centis::try_from(100).unwrap(),
                    },
                    "2001:db8::1:53",
                );
                ready_tx.send(()).unwrap();
                // Bounded: 7 s of adverts, two per interval, well past keepalived's 3.4 s
                // master-down interval.
                for _ in 0..14 {
                    socket.send(&v2).await.unwrap();
                    socket.send(&v3).await.unwrap();
                    socket6.send(&v6).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let keepalived = start_keepalived(&lab, 0, 150);
    sender.join().unwrap().unwrap();
    let log = keepalived.log();
    let addresses = lab
        .run(0, &["ip", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    drop(keepalived);

    assert!(log.contains("(V2) Entering BACKUP STATE"), "{log}");
    assert!(log.contains("(V3) Entering BACKUP STATE"), "{log}");
    assert!(log.contains("(V6) Entering BACKUP STATE"), "{log}");
    assert!(
        !log.contains("Entering MASTER STATE"),
        "keepalived rejected our adverts and took over:\n{log}"
    );
    assert!(!log.to_lowercase().contains("checksum"), "{log}");
    assert!(!addresses.contains("198.51.100.15"), "{addresses}");
    assert!(!addresses.contains("2001:db8::1:53"), "{addresses}");
}
