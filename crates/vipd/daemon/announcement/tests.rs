//! The group task against in-memory addresses, on tokio's paused clock.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vipd_config::AnnounceGroup;
use vipd_net::{AddressManager as _, MemoryAddresses, Vip};

use super::{GroupHandle, GroupParts, RECHECK_EVERY, spawn};
use crate::control::TrackerKind;
use crate::daemon::priority::Verdict;
use crate::daemon::tracker::{Reading, TrackerInfo};
use crate::daemon::watchdog::Heartbeats;

const DEVICE: &str = "vipd-announce";

fn vip() -> IpAddr {
    "203.0.113.100".parse().expect("address")
}

fn group(withdraw_below: Option<u8>) -> AnnounceGroup {
    AnnounceGroup {
        name: "ingress".to_owned(),
        vips: vec![vip(), "2001:db8::100".parse().expect("address")],
        priority: 100,
        withdraw_below,
        track: Vec::new(),
    }
}

/// A group with one tracker of `weight`, its reading's sender, and the addresses it acts on.
fn start(
    weight: i16,
    withdraw_below: Option<u8>,
) -> (GroupHandle, watch::Sender<Reading>, Arc<MemoryAddresses>) {
    let (reading_tx, reading) = watch::channel(Reading {
        verdict: Verdict::Up,
        detail: None,
        unchecked: false,
    });
    let addresses = Arc::new(MemoryAddresses::new());
    let info = TrackerInfo {
        kind: TrackerKind::Script,
        target: "chk".to_owned(),
        weight,
    };
    let handle = spawn(GroupParts {
        group: group(withdraw_below),
        device: DEVICE.to_owned(),
        trackers: vec![(info, reading)],
        addresses: Arc::clone(&addresses),
        heartbeat: Heartbeats::default().register("ingress"),
        maintenance: Arc::new(watch::Sender::new(false)),
    });
    (handle, reading_tx, addresses)
}

fn on_device(addresses: &MemoryAddresses) -> Vec<IpAddr> {
    addresses
        .snapshot()
        .into_iter()
        .filter(|(interface, _, _)| interface == DEVICE)
        .map(|(_, address, _)| address)
        .collect()
}

fn set(reading: &watch::Sender<Reading>, verdict: Verdict) {
    reading.send_replace(Reading {
        verdict,
        detail: None,
        unchecked: false,
    });
}

/// Lets the task run what is ready, without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_weight_0_tracker_withdraws_at_once_and_its_recovery_announces() {
    let (handle, reading, addresses) = start(0, None);
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2, "announced at start");
    assert!(handle.status.borrow().announced);
    set(&reading, Verdict::Down);
    settle().await;
    assert!(
        on_device(&addresses).is_empty(),
        "withdrawn without waiting for a recheck"
    );
    let status = handle.status.borrow().clone();
    assert!(!status.announced);
    assert_eq!(status.effective_priority, None);
    assert_eq!(
        status.withdrawn_because.as_deref(),
        Some("a weight-0 tracker fails")
    );
    set(&reading, Verdict::Up);
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2);
    assert_eq!(
        handle.status.borrow().changes,
        3,
        "announce, withdraw, announce"
    );
}

#[tokio::test(start_paused = true)]
async fn a_weighted_tracker_withdraws_only_below_the_threshold() {
    let (handle, reading, addresses) = start(-20, Some(90));
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2);
    set(&reading, Verdict::Down);
    settle().await;
    assert!(on_device(&addresses).is_empty(), "100 - 20 = 80 < 90");
    assert_eq!(handle.status.borrow().effective_priority, Some(80));

    let (handle, reading, addresses) = start(-5, Some(90));
    set(&reading, Verdict::Down);
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2, "100 - 5 = 95 >= 90");
    assert!(handle.status.borrow().announced);
}

#[tokio::test(start_paused = true)]
async fn without_a_threshold_weighted_trackers_never_withdraw() {
    let (handle, reading, addresses) = start(-50, None);
    set(&reading, Verdict::Down);
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2);
    assert_eq!(handle.status.borrow().effective_priority, Some(50));
}

#[tokio::test(start_paused = true)]
async fn withdraw_takes_the_vips_off_and_hand_over_leaves_them() {
    let (handle, _reading, addresses) = start(0, None);
    settle().await;
    handle.hand_over().await;
    assert_eq!(
        on_device(&addresses).len(),
        2,
        "a reload's new task takes over"
    );

    let (handle, _reading, addresses) = start(0, None);
    settle().await;
    handle.withdraw().await;
    assert!(on_device(&addresses).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_vip_deleted_by_hand_comes_back_within_one_recheck() {
    let (_handle, _reading, addresses) = start(0, None);
    settle().await;
    addresses
        .remove(&Vip::new(DEVICE, vip(), 32))
        .await
        .expect("removed");
    assert_eq!(on_device(&addresses).len(), 1);
    tokio::time::sleep(RECHECK_EVERY + Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn maintenance_withdraws_whatever_the_trackers_say_until_lifted() {
    let (handle, _reading, addresses) = start(0, None);
    settle().await;
    handle.maintenance.send_replace(true);
    settle().await;
    assert!(on_device(&addresses).is_empty());
    assert_eq!(
        handle.status.borrow().withdrawn_because.as_deref(),
        Some("maintenance (admin API)")
    );
    handle.maintenance.send_replace(false);
    settle().await;
    assert_eq!(on_device(&addresses).len(), 2);
}
