//! The routed lab itself, without vipd: BIRD peers the router with every node (with BFD), the
//! client reaches the nodes through the router, a node's speaker announces nothing while no VIP
//! is on vipd's device, and everything goes away on drop. vipd announcing through it is tested
//! in the vipd package's tests/integration/announce_bgp.rs.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use vipd_lab::{Place, RouteWatch, RoutedLab, RoutedOptions, e2e_enabled};

/// Whether `to` answers from `from`: a SYN to a closed port comes back as a reset when the path
/// works, and times out when it does not.
fn reachable(lab: &RoutedLab, from: Place, to: IpAddr) -> bool {
    lab.in_namespace(from, move || {
        match TcpStream::connect_timeout(&SocketAddr::new(to, 9), Duration::from_millis(500)) {
            Ok(_) => true,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        }
    })
    .expect("enter the namespace")
}

fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_routed_lab_peers_every_node_over_bgp_and_bfd_and_tears_down() {
    if !e2e_enabled("the_routed_lab_peers_every_node_over_bgp_and_bfd_and_tears_down") {
        return;
    }
    let mut lab = RoutedLab::with_options(RoutedOptions {
        bfd: true,
        ..RoutedOptions::default()
    })
    .unwrap();
    let namespaces: Vec<String> = [Place::Router, Place::Client, Place::Node(0)]
        .iter()
        .map(|place| lab.netns(*place).unwrap().to_owned())
        .collect();
    let files = lab.file("");
    assert_eq!(lab.established_sessions().unwrap(), 6);
    assert!(
        wait_for(Duration::from_secs(5), || {
            let sessions = lab
                .birdc(Place::Router, &["show", "bfd", "sessions"])
                .unwrap();
            sessions.matches(" Up ").count() == 6
        }),
        "{}",
        lab.birdc(Place::Router, &["show", "bfd", "sessions"])
            .unwrap()
    );

    let node = lab.node(2).clone();
    assert!(reachable(&lab, Place::Client, node.ipv4.into()));
    assert!(reachable(&lab, Place::Client, node.ipv6.into()));
    // Nothing is on any node's vipd-announce device: nothing is announced, not even the uplink.
    assert!(
        lab.router_next_hops(RoutedLab::vip_v4(0).into())
            .unwrap()
            .is_empty()
    );
    let learned = lab
        .birdc(Place::Router, &["show", "route", "protocol", "lb1"])
        .unwrap();
    assert!(!learned.contains("198.51.100"), "{learned}");

    let backend = lab.start_backend(1, 8080).unwrap();
    let answer = lab
        .in_namespace(Place::Node(1), || {
            let mut reply = String::new();
            TcpStream::connect("127.0.0.1:8080")
                .and_then(|mut stream| stream.read_to_string(&mut reply))
                .map(|_| reply)
        })
        .unwrap()
        .unwrap();
    assert_eq!(answer, "lb2\n");
    drop(backend);

    // The route watch sees each change of the VIP's route with the next hops after it (routes
    // set by hand here; vipd's announcements are the integration tests').
    let vip = IpAddr::from(RoutedLab::vip_v4(0));
    let watch = RouteWatch::start(&lab, Place::Router, vip, Duration::from_secs(10)).unwrap();
    let (first, second) = (lab.node(0).ipv4.to_string(), lab.node(1).ipv4.to_string());
    let vip_text = vip.to_string();
    for change in [
        vec!["route", "add", &vip_text, "via", &first],
        vec![
            "route", "replace", &vip_text, "nexthop", "via", &first, "nexthop", "via", &second,
        ],
        vec!["route", "del", &vip_text],
    ] {
        let mut args = vec!["ip"];
        args.extend(change);
        lab.run(Place::Router, &args).unwrap();
        // The watch reads the route after each notification: give it time to, between changes.
        std::thread::sleep(Duration::from_millis(100));
    }
    let changes = watch.stop().unwrap();
    let hops: Vec<Vec<String>> = changes
        .iter()
        .map(|change| change.next_hops.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(hops.first(), Some(&vec![first.clone()]), "{changes:?}");
    assert_eq!(hops.last(), Some(&Vec::new()), "{changes:?}");
    assert!(
        hops.contains(&vec![first.clone(), second.clone()]),
        "{changes:?}"
    );

    // A node's BIRD stopped cleanly tells the router at once; started again, it peers again.
    lab.stop_speaker(2, Signal::SIGTERM).unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        lab.established_sessions().unwrap() == 4
    }));
    lab.start_speaker(2).unwrap();
    lab.wait_for_sessions(Duration::from_secs(10)).unwrap();

    drop(lab);
    for name in namespaces {
        let path = std::path::Path::new("/var/run/netns").join(&name);
        assert!(!path.exists(), "{name} left behind");
    }
    assert!(!files.exists(), "{} left behind", files.display());
}
