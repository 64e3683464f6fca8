//! VIPs through rtnetlink on real kernels, checked with `ip addr`; the address monitor.

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vipd_lab::{Lab, e2e_enabled};
use vipd_net::{AddressEvent, AddressManager, AddressMonitor, Change, NetlinkAddresses, Vip};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn vip_v4() -> Vip {
    Vip {
        label: Some("eth0:vip".into()),
        ..Vip::new("eth0", "198.51.100.100".parse().unwrap(), 24)
    }
}

fn vip_v6() -> Vip {
    Vip::new("eth0", "2001:db8::100".parse().unwrap(), 64)
}

/// Runs one address-manager call in `host` on a fresh manager.
fn apply(lab: &Lab, host: usize, vip: &Vip, add: bool) -> Change {
    let vip = vip.clone();
    lab.in_host(host, move || {
        runtime().block_on(async move {
            let manager = NetlinkAddresses::new().unwrap();
            if add {
                manager.add(&vip).await.unwrap()
            } else {
                manager.remove(&vip).await.unwrap()
            }
        })
    })
    .unwrap()
}

/// Asks the manager in `host` whether `vip` is present.
fn contains(lab: &Lab, host: usize, vip: &Vip) -> bool {
    let vip = vip.clone();
    lab.in_host(host, move || {
        runtime().block_on(async move { NetlinkAddresses::new().unwrap().contains(&vip).await })
    })
    .unwrap()
    .unwrap()
}

/// The `ip -o addr` lines of eth0 that carry `vip`.
fn ip_addr_lines(lab: &Lab, host: usize, vip: &Vip) -> Vec<String> {
    let needle = format!(" {}/{} ", vip.address, vip.prefix_len);
    lab.run(host, &["ip", "-o", "addr", "show", "dev", "eth0"])
        .unwrap()
        .lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn vips_are_added_and_removed_idempotently() {
    if !e2e_enabled("vips_are_added_and_removed_idempotently") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    for vip in [vip_v4(), vip_v6()] {
        assert!(ip_addr_lines(&lab, 0, &vip).is_empty());

        assert_eq!(apply(&lab, 0, &vip, true), Change::Applied, "{vip}");
        let lines = ip_addr_lines(&lab, 0, &vip);
        assert_eq!(lines.len(), 1, "{vip}: {lines:?}");
        if vip.address.is_ipv4() {
            assert!(lines[0].contains("eth0:vip"), "label: {lines:?}");
        } else {
            // No DAD: usable at once, never tentative.
            assert!(lines[0].contains("nodad"), "{lines:?}");
            assert!(!lines[0].contains("tentative"), "{lines:?}");
        }

        assert!(contains(&lab, 0, &vip), "{vip}");
        assert_eq!(apply(&lab, 0, &vip, true), Change::AlreadyInPlace, "{vip}");
        assert_eq!(ip_addr_lines(&lab, 0, &vip).len(), 1, "{vip}: added twice");

        assert_eq!(apply(&lab, 0, &vip, false), Change::Applied, "{vip}");
        assert!(ip_addr_lines(&lab, 0, &vip).is_empty(), "{vip}");
        assert!(!contains(&lab, 0, &vip), "{vip}");
        assert_eq!(apply(&lab, 0, &vip, false), Change::AlreadyInPlace, "{vip}");
        assert!(
            ip_addr_lines(&lab, 0, &vip).is_empty(),
            "{vip}: removed twice"
        );
    }
    // The host's own addresses were never touched.
    let own = lab
        .run(0, &["ip", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        own.contains("198.51.100.10/24") && own.contains("2001:db8::a/64"),
        "{own}"
    );
}

#[test]
fn reconcile_restores_the_wanted_state_and_reports_the_drift() {
    if !e2e_enabled("reconcile_restores_the_wanted_state_and_reports_the_drift") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let (wanted, stray) = (vip_v6(), vip_v4());
    apply(&lab, 0, &stray, true);
    let report = lab
        .in_host(0, {
            let (wanted, stray) = (wanted.clone(), stray.clone());
            move || {
                runtime().block_on(async move {
                    let manager = NetlinkAddresses::new().unwrap();
                    let first = manager
                        .reconcile(std::slice::from_ref(&wanted), std::slice::from_ref(&stray))
                        .await
                        .unwrap();
                    let second = manager
                        .reconcile(std::slice::from_ref(&wanted), std::slice::from_ref(&stray))
                        .await
                        .unwrap();
                    (first, second)
                })
            }
        })
        .unwrap();
    assert_eq!(report.0.added, vec![wanted.clone()]);
    assert_eq!(report.0.removed, vec![stray.clone()]);
    assert_eq!(
        report.1,
        vipd_net::Reconciled::default(),
        "nothing left to fix"
    );
    assert_eq!(ip_addr_lines(&lab, 0, &wanted).len(), 1);
    assert!(ip_addr_lines(&lab, 0, &stray).is_empty());
}

#[test]
fn adding_to_a_missing_interface_is_a_clear_error() {
    if !e2e_enabled("adding_to_a_missing_interface_is_a_clear_error") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let message = lab
        .in_host(0, || {
            runtime().block_on(async {
                let manager = NetlinkAddresses::new().unwrap();
                let vip = Vip::new("nosuch0", "198.51.100.100".parse().unwrap(), 24);
                manager.add(&vip).await.unwrap_err().to_string()
            })
        })
        .unwrap();
    assert!(message.contains("nosuch0"), "{message}");
}

/// The bound: a VIP deleted from outside is reported within 100 ms of `ip addr del`
/// returning, so the owner can put it back.
const MONITOR_BOUND: Duration = Duration::from_millis(100);

#[test]
fn a_vip_removed_from_outside_is_reported_within_100_ms_and_put_back() {
    if !e2e_enabled("a_vip_removed_from_outside_is_reported_within_100_ms_and_put_back") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    for vip in [vip_v4(), vip_v6()] {
        let (ready_tx, ready_rx) = mpsc::channel();
        let owner = lab
            .spawn_in_host(0, {
                let vip = vip.clone();
                move || {
                    runtime().block_on(async move {
                        let manager = NetlinkAddresses::new().unwrap();
                        manager.add(&vip).await.unwrap();
                        let mut monitor = AddressMonitor::start().unwrap();
                        ready_tx.send(()).unwrap();
                        let removed = tokio::time::timeout(Duration::from_secs(3), async {
                            while let Some(event) = monitor.next().await {
                                if let AddressEvent::Removed {
                                    address,
                                    prefix_len,
                                    ..
                                } = event
                                    && address == vip.address
                                    && prefix_len == vip.prefix_len
                                {
                                    return Some(Instant::now());
                                }
                            }
                            None
                        })
                        .await
                        .ok()
                        .flatten();
                        let put_back = manager.add(&vip).await.unwrap();
                        (removed, put_back)
                    })
                }
            })
            .unwrap();
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let cidr = format!("{}/{}", vip.address, vip.prefix_len);
        lab.run(0, &["ip", "addr", "del", &cidr, "dev", "eth0"])
            .unwrap();
        let deleted_at = Instant::now();
        let (removed_at, put_back) = owner.join().unwrap().unwrap();
        let removed_at = removed_at.expect("the monitor reported the removal");
        let delay = removed_at.saturating_duration_since(deleted_at);
        // Usually the event is in before `ip` has even exited: the kernel notifies on delete.
        let early = deleted_at.saturating_duration_since(removed_at);
        eprintln!(
            "{vip}: removal reported {delay:?} after / {early:?} before `ip addr del` returned"
        );
        assert!(delay <= MONITOR_BOUND, "{vip}: reported after {delay:?}");
        assert_eq!(put_back, Change::Applied, "{vip}");
        assert_eq!(ip_addr_lines(&lab, 0, &vip).len(), 1, "{vip} is back");
    }
}

#[test]
fn the_address_monitor_reports_additions() {
    if !e2e_enabled("the_address_monitor_reports_additions") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let watcher = lab
        .spawn_in_host(0, move || {
            runtime().block_on(async move {
                let mut monitor = AddressMonitor::start().unwrap();
                ready_tx.send(()).unwrap();
                tokio::time::timeout(Duration::from_secs(3), monitor.next())
                    .await
                    .ok()
                    .flatten()
            })
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    lab.run(0, &["ip", "addr", "add", "203.0.113.5/32", "dev", "eth0"])
        .unwrap();
    let event = watcher.join().unwrap().unwrap().expect("an event");
    let index: u32 = lab
        .run(0, &["cat", "/sys/class/net/eth0/ifindex"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        event,
        AddressEvent::Added {
            interface_index: index,
            address: IpAddr::V4("203.0.113.5".parse().unwrap()),
            prefix_len: 32,
        }
    );
}

/// Every instance asks one shared manager at start whether its VIPs are on the host, at once. A
/// netlink socket runs one dump at a time and refuses a second with EBUSY: an active-active node
/// restarted after a crash read "no" for a VIP it held and removed it instead of keeping it.
#[test]
fn concurrent_presence_checks_on_one_manager_all_answer() {
    if !e2e_enabled("concurrent_presence_checks_on_one_manager_all_answer") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let vip = vip_v4();
    assert_eq!(apply(&lab, 0, &vip, true), Change::Applied);
    let answers = lab
        .in_host(0, move || {
            runtime().block_on(async move {
                let manager = NetlinkAddresses::new().unwrap();
                let checks = (0..16).map(|_| manager.contains(&vip));
                futures::future::join_all(checks).await
            })
        })
        .unwrap();
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|answer| answer.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 16 failed: {failed:?}",
        failed.len()
    );
    assert!(answers.iter().all(|answer| matches!(answer, Ok(true))));
}
