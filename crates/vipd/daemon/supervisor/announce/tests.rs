//! Announce groups in the supervisor, on the in-memory host: beside a VRRP instance in one file,
//! through reloads, and at a stop (withdrawn first, local until the end).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vipd_config::Config;
use vipd_net::{MemoryAddresses, MemoryLan};

use super::super::Supervisor;
use super::super::tests::config;
use crate::control::VrrpState;
use crate::daemon::host::MemoryHost;

/// A VRRP instance and announce groups (`groups` is YAML list items), one file.
fn mixed(groups: &str) -> Config {
    config(&format!(
        "vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: 150
    advert_interval: 100ms
    vips: [198.51.100.50/24]
announce:
  withdraw_delay: 2s
  groups:
{groups}"
    ))
}

fn on(addresses: &MemoryAddresses, device: &str) -> Vec<IpAddr> {
    addresses
        .snapshot()
        .into_iter()
        .filter(|(interface, _, _)| interface == device)
        .map(|(_, address, _)| address)
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

async fn start(config: Config) -> (Supervisor<MemoryHost>, Arc<MemoryAddresses>) {
    let lan = MemoryLan::new();
    let host = MemoryHost::new(&lan, ip("198.51.100.11"));
    let addresses = Arc::clone(&host.addresses);
    let supervisor = Supervisor::start(host, config).await.expect("starts");
    // The group tasks run their first pass.
    tokio::time::sleep(Duration::from_millis(10)).await;
    (supervisor, addresses)
}

fn file_tracked(name: &str, vip: &str, file: &Path) -> String {
    format!(
        "    - name: {name}
      vips: [{vip}]
      track: [{{ file: {} }}]
",
        file.display()
    )
}

#[tokio::test(start_paused = true)]
async fn a_vrrp_instance_and_announce_groups_run_side_by_side() {
    let (supervisor, addresses) = start(mixed(
        "    - name: ingress
      vips: [203.0.113.100, 2001:db8::100]
",
    ))
    .await;
    assert_eq!(
        on(&addresses, "vipd-announce"),
        [ip("203.0.113.100"), ip("2001:db8::100")]
    );
    assert_eq!(
        on(&addresses, "vipd-local"),
        [ip("203.0.113.100"), ip("2001:db8::100")]
    );
    let mut status = supervisor.registry.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let master = status
                .borrow_and_update()
                .iter()
                .any(|entry| entry.status.borrow().state == VrrpState::Master);
            if master {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the VRRP instance becomes master alone on its LAN");
    let announced = supervisor.announce_registry.borrow().clone();
    assert_eq!(announced.len(), 1);
    assert!(announced[0].status.borrow().announced);
}

#[tokio::test(start_paused = true)]
async fn a_stop_withdraws_first_and_serves_for_the_withdraw_delay() {
    let (supervisor, addresses) = start(mixed(
        "    - name: ingress
      vips: [203.0.113.100]
",
    ))
    .await;
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn(supervisor.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        on(&addresses, "vipd-announce").is_empty(),
        "withdrawn at once"
    );
    assert_eq!(
        on(&addresses, "vipd-local"),
        [ip("203.0.113.100")],
        "still local while the routers converge"
    );
    assert!(!stopping.is_finished(), "waiting for the withdraw delay");
    stopping.await.expect("stops");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "stopped after {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_unchanged_groups_restarts_changed_ones_and_withdraws_removed_ones() {
    let dir = std::env::temp_dir().join(format!("vipd-announce-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let (health_a, health_b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&health_a, "0\n").expect("write");
    std::fs::write(&health_b, "0\n").expect("write");
    let kept = file_tracked("kept", "203.0.113.100", &health_a);
    let changed = file_tracked("changed", "203.0.113.101", &health_a);
    let removed = file_tracked("removed", "203.0.113.102", &health_a);
    let (mut supervisor, addresses) = start(mixed(&format!("{kept}{changed}{removed}"))).await;
    assert_eq!(on(&addresses, "vipd-announce").len(), 3);
    let kept_status = supervisor.announce.groups["kept"].status.clone();

    let changed_now = file_tracked("changed", "203.0.113.101", &health_b);
    supervisor
        .reload(mixed(&format!("{kept}{changed_now}")))
        .await
        .expect("reloads");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        on(&addresses, "vipd-announce"),
        [ip("203.0.113.100"), ip("203.0.113.101")],
        "the removed group is withdrawn, the others stay announced"
    );
    assert_eq!(
        on(&addresses, "vipd-local"),
        [ip("203.0.113.100"), ip("203.0.113.101")]
    );
    assert!(
        kept_status.has_changed().is_ok(),
        "the unchanged group's task still runs"
    );
    std::fs::write(&health_b, "1\n").expect("write");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        on(&addresses, "vipd-announce"),
        [ip("203.0.113.100")],
        "the changed group follows its new tracker"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn maintenance_through_the_admin_api_withdraws_a_group_and_is_kept() {
    use crate::control::Control as _;
    use crate::daemon::reload_verdict::ReloadRecord;

    let (mut supervisor, addresses) = start(mixed(
        "    - name: ingress
      vips: [203.0.113.100]
",
    ))
    .await;
    let control = supervisor.control_handle(
        "lb1".into(),
        std::time::Instant::now(),
        tokio::sync::watch::channel(ReloadRecord::started("sha256:00".into(), 0.0)).1,
    );
    control
        .maintenance("ingress", true)
        .await
        .expect("a group takes maintenance");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(on(&addresses, "vipd-announce").is_empty());
    let status = control.status();
    assert_eq!(
        status.announce[0].withdrawn_because.as_deref(),
        Some("maintenance (admin API)")
    );
    // A reload that changes the group starts a new task: it is still held.
    supervisor
        .reload(mixed(
            "    - name: ingress
      vips: [203.0.113.100, 203.0.113.101]
",
        ))
        .await
        .expect("reloads");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(on(&addresses, "vipd-announce").is_empty());
    control.maintenance("ingress", false).await.expect("lifted");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(on(&addresses, "vipd-announce").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_vip_dropped_from_a_group_by_a_reload_is_withdrawn() {
    let (mut supervisor, addresses) = start(mixed(
        "    - name: ingress
      vips: [203.0.113.100, 203.0.113.101]
",
    ))
    .await;
    assert_eq!(on(&addresses, "vipd-announce").len(), 2);
    supervisor
        .reload(mixed(
            "    - name: ingress
      vips: [203.0.113.100]
",
        ))
        .await
        .expect("reloads");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on(&addresses, "vipd-local"), [ip("203.0.113.100")]);
    assert_eq!(
        on(&addresses, "vipd-announce"),
        [ip("203.0.113.100")],
        "the dropped VIP is no longer announced"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renamed_group_is_never_withdrawn() {
    let (mut supervisor, addresses) = start(mixed(
        "    - name: ingress
      vips: [203.0.113.100]
",
    ))
    .await;
    supervisor
        .reload(mixed(
            "    - name: web
      vips: [203.0.113.100]
",
        ))
        .await
        .expect("reloads");
    assert_eq!(
        on(&addresses, "vipd-announce"),
        [ip("203.0.113.100")],
        "right after the reload"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(on(&addresses, "vipd-announce"), [ip("203.0.113.100")]);
}

/// How many VIPs the announce device holds, sampled every 100 ms for 1.5 s.
async fn announced_every_100ms_for_1500ms(addresses: &MemoryAddresses) -> Vec<usize> {
    let mut seen = Vec::new();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen.push(on(addresses, "vipd-announce").len());
    }
    seen
}

fn scripted(command: &str) -> Config {
    config(&format!(
        "scripts:
  chk: {{ command: {command}, interval: 1s }}
announce:
  groups:
    - name: ingress
      vips: [203.0.113.100]
      track: [{{ script: chk }}]
"
    ))
}

/// A script that has not run yet is no reason to announce: at start the group waits for it,
/// and after a reload that restarts it the group keeps what the device had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_has_not_run_yet_announces_nothing() {
    let (mut supervisor, addresses) = start(scripted("[/bin/sh, -c, 'sleep 1; exit 1']")).await;
    let seen = announced_every_100ms_for_1500ms(&addresses).await;
    assert!(
        seen.iter().all(|held| *held == 0),
        "announced before its failing script ran: {seen:?}"
    );
    supervisor
        .reload(scripted("[/bin/sh, -c, 'sleep 1; exit 1; true']"))
        .await
        .expect("reloads");
    let seen = announced_every_100ms_for_1500ms(&addresses).await;
    assert!(
        seen.iter().all(|held| *held == 0),
        "announced while a restarted failing script ran: {seen:?}"
    );
}
