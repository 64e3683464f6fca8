//! VRRP sockets on real kernels: adverts between lab hosts in multicast and unicast mode, IPv4
//! and IPv6, and the drops the socket layer owes (TTL, unknown peers).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vipd_lab::{Lab, LabError, e2e_enabled};
use vipd_net::{
    Family, Interface, Mode, ReceivedAdvert, TransportStats, VrrpSocket, VrrpSocketConfig,
    VrrpTransport,
};
use vipd_vrrp::wire::{MULTICAST_V4, MULTICAST_V6};

/// How long a receiver waits for an advert before the test fails.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// A plausible VRRPv3 message (content does not matter to the socket layer; 16 bytes so the
/// IPv6 checksum offset 6 lies inside it).
const PAYLOAD: [u8; 16] = [
    0x31, 7, 100, 1, 0, 100, 0, 0, 198, 51, 100, 100, 0xaa, 0xbb, 0xcc, 0xdd,
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn config(family: Family, mode: Mode) -> VrrpSocketConfig {
    VrrpSocketConfig {
        interface: "eth0".into(),
        family,
        mode,
    }
}

struct Received {
    advert: Option<ReceivedAdvert>,
    /// The sources of the datagrams handed over flagged as not from a configured peer, before
    /// `advert`.
    unknown_peers: Vec<IpAddr>,
    stats: TransportStats,
    interface_index: u32,
}

/// Opens a socket in `host` and returns once it is open; the thread yields the first accepted
/// advert (or `None` after the timeout), the unknown peers seen before it, and the socket's
/// counters.
fn receive_one(
    lab: &Lab,
    host: usize,
    config: VrrpSocketConfig,
) -> JoinHandle<Result<Received, LabError>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = lab
        .spawn_in_host(host, move || {
            runtime().block_on(async move {
                let socket = VrrpSocket::open(config).expect("open the receiving socket");
                ready_tx.send(()).expect("the test waits for readiness");
                let mut unknown_peers = Vec::new();
                let deadline = tokio::time::Instant::now() + RECEIVE_TIMEOUT;
                let advert = loop {
                    let Ok(received) = tokio::time::timeout_at(deadline, socket.recv()).await
                    else {
                        break None;
                    };
                    let received = received.expect("receive");
                    if !received.from_unknown_peer {
                        break Some(received);
                    }
                    unknown_peers.push(received.source);
                };
                Received {
                    advert,
                    unknown_peers,
                    stats: socket.stats(),
                    interface_index: socket.interface_index(),
                }
            })
        })
        .expect("enter the receiving host");
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the receiver opened its socket");
    handle
}

fn send_from(lab: &Lab, host: usize, config: VrrpSocketConfig) -> IpAddr {
    lab.in_host(host, move || {
        runtime().block_on(async move {
            let socket = VrrpSocket::open(config).expect("open the sending socket");
            socket.send(&PAYLOAD).await.expect("send");
            socket.source_address()
        })
    })
    .expect("enter the sending host")
}

#[test]
fn multicast_adverts_arrive_with_ttl_255_and_the_right_source() {
    if !e2e_enabled("multicast_adverts_arrive_with_ttl_255_and_the_right_source") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for family in [Family::Ipv4, Family::Ipv6] {
        let receiver = receive_one(&lab, 1, config(family, Mode::Multicast));
        let before_sending = Instant::now();
        let source = send_from(&lab, 0, config(family, Mode::Multicast));
        let received = receiver.join().unwrap().unwrap();
        let after_receiving = Instant::now();
        let advert = received.advert.expect("an advert arrived");
        // The kernel's arrival stamp, mapped onto the monotonic clock through the wall clock:
        // allow for the rounding of that mapping, nothing more.
        let arrived = advert.received_at.expect("an arrival stamp");
        let rounding = Duration::from_millis(2);
        assert!(
            arrived + rounding >= before_sending && arrived <= after_receiving,
            "{family:?}: arrival {arrived:?} outside [{before_sending:?}, {after_receiving:?}]"
        );
        let (expected_source, group) = match family {
            Family::Ipv4 => (IpAddr::V4(lab.host(0).ipv4), IpAddr::V4(MULTICAST_V4)),
            Family::Ipv6 => (IpAddr::V6(lab.host(0).link_local), IpAddr::V6(MULTICAST_V6)),
        };
        assert_eq!(source, expected_source, "{family:?}: source_address()");
        assert_eq!(advert.source, expected_source, "{family:?}");
        assert_eq!(advert.destination, group, "{family:?}");
        assert_eq!(advert.ttl, 255, "{family:?}");
        assert_eq!(advert.interface, received.interface_index, "{family:?}");
        if family == Family::Ipv4 {
            assert_eq!(advert.payload, PAYLOAD.to_vec());
        } else {
            // The kernel wrote the checksum (IPV6_CHECKSUM); everything else is ours.
            assert_eq!(advert.payload[..6], PAYLOAD[..6]);
            assert_eq!(advert.payload[8..], PAYLOAD[8..]);
            assert_ne!(advert.payload[6..8], PAYLOAD[6..8]);
        }
        assert_eq!(received.stats.received, 1);
    }
}

#[test]
fn multicast_adverts_do_not_loop_back_to_the_sender() {
    if !e2e_enabled("multicast_adverts_do_not_loop_back_to_the_sender") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    for family in [Family::Ipv4, Family::Ipv6] {
        let looped = lab
            .in_host(0, move || {
                runtime().block_on(async move {
                    let socket = VrrpSocket::open(config(family, Mode::Multicast)).unwrap();
                    socket.send(&PAYLOAD).await.unwrap();
                    tokio::time::timeout(Duration::from_millis(300), socket.recv())
                        .await
                        .is_ok()
                })
            })
            .unwrap();
        assert!(!looped, "{family:?}: our own advert came back");
    }
}

/// The IPv6 VRRP checksum over the pseudo-header (RFC 5798 §5.2.8), for the hand-made sender
/// below: a receiver with IPV6_CHECKSUM drops anything with a wrong one before we see it.
fn ipv6_vrrp_checksum(source: Ipv6Addr, destination: Ipv6Addr, payload: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&source.octets());
    data.extend_from_slice(&destination.octets());
    data.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 112]);
    data.extend_from_slice(payload);
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

/// Sends one VRRP datagram from `host` with a chosen TTL / hop limit, bypassing vipd-net.
fn send_raw(lab: &Lab, host: usize, destination: IpAddr, ttl: u32) {
    let link_local = lab.host(host).link_local;
    lab.in_host(host, move || {
        let index = Interface::lookup("eth0").unwrap().index;
        let domain = if destination.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        let mut payload = PAYLOAD;
        let address = match destination {
            IpAddr::V4(v4) => {
                socket.set_ttl_v4(ttl).unwrap();
                socket.set_multicast_ttl_v4(ttl).unwrap();
                SocketAddr::new(IpAddr::V4(v4), 0)
            }
            IpAddr::V6(v6) => {
                socket.set_unicast_hops_v6(ttl).unwrap();
                socket.set_multicast_hops_v6(ttl).unwrap();
                socket.set_multicast_if_v6(index).unwrap();
                // Only multicast here, so the kernel sources from the link-local address.
                assert!(v6.is_multicast());
                payload[6..8].copy_from_slice(&[0, 0]);
                let checksum = ipv6_vrrp_checksum(link_local, v6, &payload);
                payload[6..8].copy_from_slice(&checksum.to_be_bytes());
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, index))
            }
        };
        socket.send_to(&payload, &SockAddr::from(address)).unwrap();
    })
    .unwrap();
}

#[test]
fn multicast_adverts_with_ttl_64_are_dropped_and_counted() {
    if !e2e_enabled("multicast_adverts_with_ttl_64_are_dropped_and_counted") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for (family, group) in [
        (Family::Ipv4, IpAddr::V4(MULTICAST_V4)),
        (Family::Ipv6, IpAddr::V6(MULTICAST_V6)),
    ] {
        let receiver = receive_one(&lab, 1, config(family, Mode::Multicast));
        send_raw(&lab, 0, group, 64);
        // A correct advert after the bad one: the receiver returns on it, with the drop counted.
        send_from(&lab, 0, config(family, Mode::Multicast));
        let received = receiver.join().unwrap().unwrap();
        let advert = received.advert.expect("the TTL 255 advert arrived");
        assert_eq!(advert.ttl, 255, "{family:?}");
        assert_eq!(
            received.stats.dropped_ttl, 1,
            "{family:?}: {:?}",
            received.stats
        );
        assert_eq!(received.stats.received, 1, "{family:?}");
    }
}

#[test]
fn unicast_adverts_arrive_from_peers_and_non_peers_are_dropped() {
    if !e2e_enabled("unicast_adverts_arrive_from_peers_and_non_peers_are_dropped") {
        return;
    }
    let lab = Lab::new(3).unwrap();
    let (a, b) = (lab.host(0).clone(), lab.host(1).clone());
    for family in [Family::Ipv4, Family::Ipv6] {
        let address = |host: &vipd_lab::Host| -> IpAddr {
            match family {
                Family::Ipv4 => host.ipv4.into(),
                Family::Ipv6 => host.ipv6.into(),
            }
        };
        let unicast = |peers: Vec<IpAddr>| Mode::Unicast {
            peers,
            source: None,
        };
        let receiver = receive_one(&lab, 1, config(family, unicast(vec![address(&a)])));
        // C is not B's peer: counted as dropped, handed over flagged. Then A, a peer, gets
        // through.
        send_from(&lab, 2, config(family, unicast(vec![address(&b)])));
        let source = send_from(&lab, 0, config(family, unicast(vec![address(&b)])));
        let received = receiver.join().unwrap().unwrap();
        let advert = received.advert.expect("the peer's advert arrived");
        assert_eq!(advert.source, address(&a), "{family:?}");
        assert_eq!(source, address(&a), "{family:?}: kernel-chosen source");
        assert_eq!(advert.destination, address(&b), "{family:?}");
        assert_eq!(advert.ttl, 255, "{family:?}");
        assert_eq!(received.stats.dropped_unknown_peer, 1, "{family:?}");
        assert_eq!(
            received.unknown_peers,
            vec![address(lab.host(2))],
            "{family:?}"
        );
        assert_eq!(received.stats.received, 1, "{family:?}");
    }
}

/// A reload changing the peers (`set_unicast_peers`) on an open socket: adverts go to the new
/// list and only its members' are accepted; a multicast socket refuses, and so does a peer of
/// the other family.
#[test]
fn unicast_peers_changed_on_an_open_socket_take_effect_at_once() {
    if !e2e_enabled("unicast_peers_changed_on_an_open_socket_take_effect_at_once") {
        return;
    }
    let lab = Lab::new(3).unwrap();
    let (a, c) = (IpAddr::V4(lab.host(0).ipv4), IpAddr::V4(lab.host(2).ipv4));
    let b = IpAddr::V4(lab.host(1).ipv4);
    let unicast = |peers: Vec<IpAddr>| {
        config(
            Family::Ipv4,
            Mode::Unicast {
                peers,
                source: None,
            },
        )
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = lab
        .spawn_in_host(1, move || {
            runtime().block_on(async move {
                // Opened with C as its peer, then told A instead.
                let mut socket = VrrpSocket::open(unicast(vec![c])).expect("open");
                socket.set_unicast_peers(vec![a]).expect("new peers");
                let refused = socket
                    .set_unicast_peers(vec!["2001:db8::1".parse().unwrap()])
                    .is_err();
                let destinations = socket.destinations();
                ready_tx.send(()).expect("the test waits");
                // C's advert comes up too, marked as from an unknown peer (for the instance to
                // count); A's is the one from a peer.
                let from_a_peer = async {
                    loop {
                        let received = socket.recv().await.expect("receive");
                        if !received.from_unknown_peer {
                            return received;
                        }
                    }
                };
                let advert = tokio::time::timeout(RECEIVE_TIMEOUT, from_a_peer)
                    .await
                    .ok();
                (advert, socket.stats(), destinations, refused)
            })
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    send_from(&lab, 2, unicast(vec![b]));
    send_from(&lab, 0, unicast(vec![b]));
    let (advert, stats, destinations, refused) = receiver.join().unwrap().unwrap();
    assert_eq!(destinations, [a]);
    assert!(refused, "a peer of the other family is refused");
    assert_eq!(advert.expect("A's advert arrived").source, a);
    assert_eq!(stats.dropped_unknown_peer, 1, "C is no peer any more");

    let multicast_refuses = lab
        .in_host(1, move || {
            runtime().block_on(async {
                let mut socket =
                    VrrpSocket::open(config(Family::Ipv4, Mode::Multicast)).expect("open");
                socket.set_unicast_peers(vec![a]).is_err()
            })
        })
        .unwrap();
    assert!(multicast_refuses);
}

#[test]
fn unicast_mode_accepts_a_peer_advert_with_a_lower_ttl() {
    if !e2e_enabled("unicast_mode_accepts_a_peer_advert_with_a_lower_ttl") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let (a, b) = (lab.host(0).clone(), lab.host(1).clone());
    let receiver = receive_one(
        &lab,
        1,
        config(
            Family::Ipv4,
            Mode::Unicast {
                peers: vec![a.ipv4.into()],
                source: None,
            },
        ),
    );
    send_raw(&lab, 0, b.ipv4.into(), 64);
    let received = receiver.join().unwrap().unwrap();
    let advert = received.advert.expect("a routed peer advert is accepted");
    assert_eq!(advert.ttl, 64);
    assert_eq!(received.stats.dropped_ttl, 0);
}

#[test]
fn a_unicast_source_that_is_not_ours_is_refused() {
    if !e2e_enabled("a_unicast_source_that_is_not_ours_is_refused") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let error = lab
        .in_host(0, || {
            runtime().block_on(async {
                VrrpSocket::open(config(
                    Family::Ipv4,
                    Mode::Unicast {
                        peers: vec!["198.51.100.99".parse().unwrap()],
                        source: Some("203.0.113.1".parse().unwrap()),
                    },
                ))
                .map(drop)
                .unwrap_err()
                .to_string()
            })
        })
        .unwrap();
    assert!(error.contains("bind"), "{error}");
}

#[test]
fn an_open_socket_keeps_receiving_after_its_link_flaps() {
    if !e2e_enabled("an_open_socket_keeps_receiving_after_its_link_flaps") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for family in [Family::Ipv4, Family::Ipv6] {
        for admin in [false, true] {
            let receiver = receive_one(&lab, 1, config(family, Mode::Multicast));
            if admin {
                lab.run(1, &["ip", "link", "set", "eth0", "down"]).unwrap();
                lab.run(1, &["ip", "link", "set", "eth0", "up"]).unwrap();
                // Back up administratively; wait for the cable side as restore_link does.
                lab.cut_link(1).unwrap();
            } else {
                lab.cut_link(1).unwrap();
            }
            lab.restore_link(1).unwrap();
            send_from(&lab, 0, config(family, Mode::Multicast));
            let received = receiver.join().unwrap().unwrap();
            assert!(
                received.advert.is_some(),
                "{family:?}, admin flap {admin}: nothing received after the link came back"
            );
        }
    }
}

#[test]
fn a_socket_follows_its_interface_when_it_is_created_again() {
    if !e2e_enabled("a_socket_follows_its_interface_when_it_is_created_again") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for family in [Family::Ipv4, Family::Ipv6] {
        let (opened_tx, opened_rx) = mpsc::channel();
        let (recreated_tx, recreated_rx) = mpsc::channel::<()>();
        let (reopened_tx, reopened_rx) = mpsc::channel();
        let receiver = lab
            .spawn_in_host(1, move || {
                runtime().block_on(async move {
                    let mut socket = VrrpSocket::open(config(family, Mode::Multicast)).unwrap();
                    let first_index = socket.interface_index();
                    assert_eq!(socket.reopen_if_moved().unwrap(), None, "nothing moved yet");
                    opened_tx.send(()).unwrap();
                    recreated_rx.recv().unwrap();
                    let moved = socket.reopen_if_moved().unwrap();
                    reopened_tx.send(()).unwrap();
                    let advert = tokio::time::timeout(RECEIVE_TIMEOUT, socket.recv())
                        .await
                        .ok()
                        .map(|received| received.unwrap());
                    (first_index, moved, socket.interface_index(), advert)
                })
            })
            .unwrap();
        opened_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        lab.recreate_interface(1).unwrap();
        recreated_tx.send(()).unwrap();
        reopened_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        send_from(&lab, 0, config(family, Mode::Multicast));
        let (first_index, moved, index, advert) = receiver.join().unwrap().unwrap();
        assert_eq!(moved, Some((first_index, index)), "{family:?}");
        assert_ne!(
            first_index, index,
            "{family:?}: the new interface has a new index"
        );
        let advert = advert.unwrap_or_else(|| panic!("{family:?}: nothing received"));
        assert_eq!(advert.interface, index, "{family:?}");
    }
}

#[test]
fn an_oversized_datagram_is_dropped_as_malformed() {
    if !e2e_enabled("an_oversized_datagram_is_dropped_as_malformed") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let receiver = receive_one(&lab, 1, config(Family::Ipv4, Mode::Multicast));
    // 10 000 bytes: fragmented on the wire, reassembled by the receiver's kernel, larger than
    // the socket's receive buffer, so it arrives truncated.
    lab.in_host(0, || {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.bind_device(Some(b"eth0")).unwrap();
        socket.set_multicast_ttl_v4(255).unwrap();
        let target = SockAddr::from(SocketAddr::new(IpAddr::V4(MULTICAST_V4), 0));
        socket.send_to(&[0x31; 10_000], &target).unwrap();
    })
    .unwrap();
    send_from(&lab, 0, config(Family::Ipv4, Mode::Multicast));
    let received = receiver.join().unwrap().unwrap();
    assert_eq!(received.advert.unwrap().payload, PAYLOAD.to_vec());
    assert_eq!(received.stats.dropped_malformed, 1, "{:?}", received.stats);
}

#[test]
fn a_pinned_unicast_source_is_what_the_peer_sees() {
    if !e2e_enabled("a_pinned_unicast_source_is_what_the_peer_sees") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    // keepalived's unicast_src_ip: a second address of the host, not the kernel's first choice.
    lab.run(0, &["ip", "addr", "add", "198.51.100.60/24", "dev", "eth0"])
        .unwrap();
    let pinned: IpAddr = "198.51.100.60".parse().unwrap();
    let b: IpAddr = lab.host(1).ipv4.into();
    let receiver = receive_one(
        &lab,
        1,
        config(
            Family::Ipv4,
            Mode::Unicast {
                peers: vec![pinned],
                source: None,
            },
        ),
    );
    let source = send_from(
        &lab,
        0,
        config(
            Family::Ipv4,
            Mode::Unicast {
                peers: vec![b],
                source: Some(pinned),
            },
        ),
    );
    assert_eq!(source, pinned);
    let advert = receiver.join().unwrap().unwrap().advert.expect("an advert");
    assert_eq!(advert.source, pinned);
}

#[test]
fn adverts_never_leave_from_a_vip_promoted_to_primary() {
    if !e2e_enabled("adverts_never_leave_from_a_vip_promoted_to_primary") {
        return;
    }
    // The node's own address goes away while it holds a VIP on the same subnet: the kernel
    // promotes the VIP to primary (promote_secondaries, as systemd sets it) and would pick it as
    // the source of every multicast advert.
    let lab = Lab::new(2).unwrap();
    let own = lab.host(0).ipv4;
    let vip: IpAddr = "198.51.100.100".parse().unwrap();
    let renumbered: IpAddr = "198.51.100.30".parse().unwrap();
    for command in [
        "sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1",
        "ip addr add 198.51.100.100/24 dev eth0",
        "ip addr add 198.51.100.30/24 dev eth0",
        &format!("ip addr del {own}/24 dev eth0"),
    ] {
        lab.run(0, &command.split(' ').collect::<Vec<_>>()).unwrap();
    }
    let first = lab
        .run(0, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        first
            .lines()
            .next()
            .is_some_and(|line| line.contains(" 198.51.100.100/24 ")),
        "the VIP is not primary:\n{first}"
    );
    let receiver = receive_one(&lab, 1, config(Family::Ipv4, Mode::Multicast));
    let source = lab
        .in_host(0, move || {
            runtime().block_on(async move {
                let socket =
                    VrrpSocket::open_with_vips(config(Family::Ipv4, Mode::Multicast), vec![vip])
                        .expect("open the sending socket");
                socket.send(&PAYLOAD).await.expect("send");
                socket.source_address()
            })
        })
        .unwrap();
    let received = receiver.join().unwrap().unwrap();
    let advert = received.advert.expect("the advert arrived");
    assert_eq!(source, renumbered, "source_address()");
    assert_eq!(advert.source, renumbered, "the source on the wire");
}

#[test]
fn unicast_adverts_to_peers_on_two_subnets_leave_from_one_source() {
    if !e2e_enabled("unicast_adverts_to_peers_on_two_subnets_leave_from_one_source") {
        return;
    }
    // The sender has an address on each peer's subnet: the kernel would pick a different
    // source per peer, while the advert (its v3 checksum, the peer's tie-break) was built for
    // the one source_address() names.
    let lab = Lab::new(3).unwrap();
    lab.run(0, &["ip", "addr", "add", "203.0.113.10/24", "dev", "eth0"])
        .unwrap();
    lab.run(2, &["ip", "addr", "add", "203.0.113.12/24", "dev", "eth0"])
        .unwrap();
    let sender: IpAddr = lab.host(0).ipv4.into();
    let peers: Vec<IpAddr> = vec![lab.host(1).ipv4.into(), "203.0.113.12".parse().unwrap()];
    let unicast_from_sender = || Mode::Unicast {
        peers: vec![sender],
        source: None,
    };
    let receivers = [
        receive_one(&lab, 1, config(Family::Ipv4, unicast_from_sender())),
        receive_one(&lab, 2, config(Family::Ipv4, unicast_from_sender())),
    ];
    let source = send_from(
        &lab,
        0,
        config(
            Family::Ipv4,
            Mode::Unicast {
                peers: peers.clone(),
                source: None,
            },
        ),
    );
    assert_eq!(source, sender, "the kernel's choice for the first peer");
    for (receiver, peer) in receivers.into_iter().zip(peers) {
        let received = receiver.join().unwrap().unwrap();
        assert_eq!(received.unknown_peers, Vec::<IpAddr>::new(), "at {peer}");
        let advert = received.advert.expect("the advert arrived");
        assert_eq!(advert.source, sender, "at {peer}");
        assert_eq!(advert.destination, peer);
    }
}
