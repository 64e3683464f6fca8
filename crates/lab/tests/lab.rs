//! The lab itself: hosts reach each other, cuts and blocks bite, namespaces go away on drop, and
//! the address watch sees what `ip addr` does.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vipd_lab::{AddressWatch, Change, Lab, e2e_enabled};

/// Whether `to` answers from host `from`: a TCP SYN to a closed port comes back as a reset
/// ("refused") when the path works, and times out when it does not. No ping binary needed.
fn reachable(lab: &Lab, from: usize, to: IpAddr) -> bool {
    lab.in_host(from, move || {
        let target = SocketAddr::new(to, 9);
        match TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
            Ok(_) => true,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        }
    })
    .expect("enter the host's namespace")
}

fn namespace_exists(name: &str) -> bool {
    std::path::Path::new("/var/run/netns").join(name).exists()
}

#[test]
fn hosts_reach_each_other_and_the_lab_cleans_up() {
    if !e2e_enabled("hosts_reach_each_other_and_the_lab_cleans_up") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let names: Vec<String> = lab.hosts().iter().map(|host| host.netns.clone()).collect();
    let b = lab.host(1).clone();
    assert!(reachable(&lab, 0, b.ipv4.into()));
    assert!(reachable(&lab, 0, b.ipv6.into()));

    lab.cut_link(1).unwrap();
    assert!(!reachable(&lab, 0, b.ipv4.into()));
    let link = lab.run(1, &["ip", "link", "show", "eth0"]).unwrap();
    assert!(link.contains("NO-CARRIER"), "{link}");
    lab.restore_link(1).unwrap();
    assert!(reachable(&lab, 0, b.ipv4.into()));

    // TCP is IP protocol 6: blocked from host 0 at host 1, then lifted.
    lab.block(1, 0, 6).unwrap();
    assert!(!reachable(&lab, 0, b.ipv4.into()));
    assert!(!reachable(&lab, 0, b.ipv6.into()));
    lab.unblock(1, 0, 6).unwrap();
    assert!(reachable(&lab, 0, b.ipv4.into()));

    lab.set_loss(1, 100).unwrap();
    assert!(!reachable(&lab, 0, b.ipv4.into()));
    lab.clear_loss(1).unwrap();
    assert!(reachable(&lab, 0, b.ipv4.into()));

    let netns_of_thread = lab
        .in_host(1, || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
    assert_ne!(
        netns_of_thread,
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    );

    let sleeper = lab.spawn(0, &["sleep", "30"]).unwrap();
    let pid = sleeper.pid();
    drop(sleeper);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    drop(lab);
    for name in names {
        assert!(!namespace_exists(&name), "{name} left behind");
    }
}

#[test]
fn a_panicking_test_still_tears_the_lab_down() {
    if !e2e_enabled("a_panicking_test_still_tears_the_lab_down") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let lab = Lab::new(1).unwrap();
        tx.send(lab.host(0).netns.clone()).unwrap();
        panic!("test failure inside a lab");
    });
    assert!(outcome.is_err());
    let name = rx.recv().unwrap();
    assert!(!namespace_exists(&name), "{name} left behind after a panic");
}

#[test]
fn capture_sees_frames_between_hosts() {
    if !e2e_enabled("capture_sees_frames_between_hosts") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let capture = lab.capture(1, &["tcp", "port", "9"]).unwrap();
    assert!(reachable(&lab, 0, lab.host(1).ipv4.into()));
    let file = capture.finish();
    let out = file
        .tshark(&[
            "-Y",
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
            "-T",
            "fields",
            "-e",
            "ip.src",
        ])
        .unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim(), lab.host(0).ipv4.to_string());
}

/// Datagrams the partial-loss test sends.
const SENT: usize = 200;

#[test]
fn partial_loss_drops_some_but_not_all_frames() {
    if !e2e_enabled("partial_loss_drops_some_but_not_all_frames") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    // A lost ARP request would stall every datagram for a second: resolve statically.
    let mac = lab.host(1).mac.map(|byte| format!("{byte:02x}")).join(":");
    let ip = lab.host(1).ipv4.to_string();
    lab.run(
        0,
        &[
            "ip",
            "neigh",
            "replace",
            &ip,
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )
    .unwrap();
    lab.set_loss(1, 50).unwrap();
    let rules = lab.run(1, &["nft", "list", "ruleset"]).unwrap();
    assert!(rules.contains("numgen random mod 100 < 50"), "{rules}");

    let target = SocketAddr::new(lab.host(1).ipv4.into(), 5000);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = lab
        .spawn_in_host(1, move || {
            let socket = std::net::UdpSocket::bind("0.0.0.0:5000").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut received = 0;
            let mut buffer = [0u8; 16];
            while socket.recv(&mut buffer).is_ok() {
                received += 1;
            }
            received
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    lab.in_host(0, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..SENT {
            socket.send_to(b"x", target).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    })
    .unwrap();
    let received = receiver.join().unwrap().unwrap();
    eprintln!("50 % loss: {received} of {SENT} datagrams arrived");
    // Binomial(200, 0.5): mean 100, sd 7; these bounds are 8 sd away.
    assert!(
        (40..=160).contains(&received),
        "{received} of {SENT} arrived"
    );
    lab.clear_loss(1).unwrap();
}

#[test]
fn address_watch_sees_a_vip_come_and_go_and_times_out_otherwise() {
    if !e2e_enabled("address_watch_sees_a_vip_come_and_go_and_times_out_otherwise") {
        return;
    }
    let lab = Lab::new(1).expect("lab");
    let bound = Duration::from_secs(5);
    for (vip, prefix) in [
        (IpAddr::V4(Lab::vip_v4(0)), 24),
        (IpAddr::V6(Lab::vip_v6(0)), 64),
    ] {
        let cidr = format!("{vip}/{prefix}");
        let added = AddressWatch::added(vip, bound)
            .start(&lab, 0)
            .expect("watch");
        let changes = AddressWatch::changes(vip, 2, bound)
            .start(&lab, 0)
            .expect("watch");
        let before = Instant::now();
        lab.run(0, &["ip", "addr", "add", &cidr, "dev", "eth0", "nodad"])
            .expect("ip addr add");
        let at = added.wait().expect("watch").expect("the addition was seen");
        assert!(at >= before, "{vip}");
        let removed = AddressWatch::removed(vip, bound)
            .start(&lab, 0)
            .expect("watch");
        lab.run(0, &["ip", "addr", "del", &cidr, "dev", "eth0"])
            .expect("ip addr del");
        assert!(removed.wait().expect("watch").is_some(), "{vip}");
        let seen = changes.seen().expect("watch");
        let kinds: Vec<Change> = seen.changes.iter().map(|(change, _)| *change).collect();
        assert_eq!(kinds, [Change::Added, Change::Removed], "{vip}");
        assert!(seen.first(Change::Added).is_some() && seen.satisfied);
    }
    // Nothing happens: the watch ends at its timeout, or at once when cancelled.
    let quiet = AddressWatch::added(IpAddr::V4(Lab::vip_v4(1)), Duration::from_millis(200))
        .start(&lab, 0)
        .expect("watch");
    assert_eq!(quiet.wait().expect("watch"), None);
    let cancel = Arc::new(AtomicBool::new(false));
    let cancelled = AddressWatch::added(IpAddr::V4(Lab::vip_v4(1)), Duration::from_secs(60))
        .cancelled_by(Arc::clone(&cancel))
        .start(&lab, 0)
        .expect("watch");
    let started = Instant::now();
    cancel.store(true, Ordering::SeqCst);
    assert_eq!(cancelled.wait().expect("watch"), None);
    assert!(started.elapsed() < Duration::from_secs(5));
}
