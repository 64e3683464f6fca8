//! The link monitor on real kernels: cable cut / restored, admin down / up, interface removed.

use std::sync::mpsc;
use std::time::Duration;

use vipd_lab::{Lab, e2e_enabled};
use vipd_net::{LinkEvent, LinkMonitor, LinkState};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// The next event about `name`, skipping other interfaces.
fn next_for(events: &mpsc::Receiver<LinkEvent>, name: &str) -> LinkEvent {
    loop {
        let event = events
            .recv_timeout(Duration::from_secs(3))
            .unwrap_or_else(|_| panic!("no link event for {name} within 3 s"));
        if event.name.as_deref() == Some(name) {
            return event;
        }
    }
}

#[test]
fn link_down_up_and_removal_are_reported() {
    if !e2e_enabled("link_down_up_and_removal_are_reported") {
        return;
    }
    let lab = Lab::new(2).unwrap();
    let (events_tx, events) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let watcher = lab
        .spawn_in_host(0, move || {
            runtime().block_on(async move {
                let mut monitor = LinkMonitor::start().unwrap();
                ready_tx.send(()).unwrap();
                let forward = async {
                    while let Some(event) = monitor.next().await {
                        if events_tx.send(event).is_err() {
                            break;
                        }
                    }
                };
                // Bounded: the test stops it, or it gives up after 20 s.
                tokio::select! {
                    () = forward => {}
                    _ = stop_rx => {}
                    () = tokio::time::sleep(Duration::from_secs(20)) => {}
                }
            });
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();

    // A pulled cable: the host's eth0 stays admin up but loses carrier.
    lab.cut_link(0).unwrap();
    assert_eq!(next_for(&events, "eth0").state, LinkState::Down);
    lab.restore_link(0).unwrap();
    assert_eq!(next_for(&events, "eth0").state, LinkState::Up);

    // An administrator taking the interface down and up.
    lab.run(0, &["ip", "link", "set", "eth0", "down"]).unwrap();
    assert_eq!(next_for(&events, "eth0").state, LinkState::Down);
    lab.run(0, &["ip", "link", "set", "eth0", "up"]).unwrap();
    assert_eq!(next_for(&events, "eth0").state, LinkState::Up);

    // An interface that goes away (a veth pair: this kernel has no dummy module).
    lab.run(
        0,
        &[
            "ip",
            "link",
            "add",
            "vipdtest0",
            "type",
            "veth",
            "peer",
            "name",
            "vipdtest1",
        ],
    )
    .unwrap();
    assert_eq!(
        next_for(&events, "vipdtest0").state,
        LinkState::Down,
        "created down"
    );
    lab.run(0, &["ip", "link", "set", "vipdtest1", "up"])
        .unwrap();
    lab.run(0, &["ip", "link", "set", "vipdtest0", "up"])
        .unwrap();
    assert_eq!(next_for(&events, "vipdtest0").state, LinkState::Up);
    lab.run(0, &["ip", "link", "del", "vipdtest0"]).unwrap();
    // The kernel closes the device (a Down notification) before it deletes it.
    assert_eq!(next_for(&events, "vipdtest0").state, LinkState::Down);
    assert_eq!(next_for(&events, "vipdtest0").state, LinkState::Removed);

    let _ = stop_tx.send(());
    watcher.join().unwrap().unwrap();
}
