//! The daemon end to end: two `vipd run` processes on a lab bridge elect the configured master, which
//! holds the VIP and serves a backend through the proxy on it; SIGTERM on the master moves the VIP
//! within Skew_Time + 100 ms; SIGHUP with an unchanged file changes nothing. The backup runs as
//! `nobody` with only the three capabilities of deploy/systemd/vipd.service, so the takeover also
//! proves that they are enough (raw sockets, VIPs, GARP, a listener on port 80).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::support::takeover_probe::skew_time;
use crate::support::{
    Scratch, fetch, holds, instance_state, start_backend, start_vipd, start_vipd_unprivileged,
    status, wait_for_control, wait_until,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::AddressWatch;
use vipd_lab::Lab;

const LB1: usize = 0;
const LB2: usize = 1;
const BACKEND: usize = 2;
const CLIENT: usize = 3;

fn node_config(node: &str, priority: u8, backend: IpAddr, vip: IpAddr) -> String {
    format!(
        "node: {node}
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: {priority}
    advert_interval: 100ms
    vips: [{vip}/24]
frontends:
  - name: web
    bind: [\"{vip}:80\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
"
    )
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one pair through its whole life, told in order: election, traffic, SIGTERM, reload"
)]
fn a_vipd_pair_elects_serves_hands_over_on_sigterm_and_reloads_without_flapping() {
    if !vipd_lab::e2e_enabled(
        "a_vipd_pair_elects_serves_hands_over_on_sigterm_and_reloads_without_flapping",
    ) {
        return;
    }
    let lab = Lab::new(4).expect("lab");
    let scratch = Scratch::new("daemon-pair");
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
    let _backend = start_backend(&lab, BACKEND, 8080, "hello-from-backend");
    let lb1_config = scratch.write("lb1.yaml", &node_config("lb1", 150, backend, vip));
    let lb2_config = scratch.write("lb2.yaml", &node_config("lb2", 100, backend, vip));
    let mut lb1 = start_vipd(&lab, LB1, &lb1_config, &scratch.0.join("lb1.log"));
    let lb2 = start_vipd_unprivileged(&lab, LB2, &lb2_config, &scratch.0.join("lb2.log"));
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);

    // Election: the configured master holds the VIP and serves through the proxy on it.
    let elected = wait_until(Duration::from_secs(10), || holds(&lab, LB1, vip));
    assert!(
        elected.is_some(),
        "lb1 never took the VIP; log:\n{}",
        std::fs::read_to_string(scratch.0.join("lb1.log")).unwrap_or_default()
    );
    assert!(
        wait_until(Duration::from_secs(5), || instance_state(&lab, LB2, "api")
            .as_deref()
            == Some("backup"))
        .is_some(),
        "lb2 is not backup: {:?}",
        status(&lab, LB2)
    );
    assert!(!holds(&lab, LB2, vip), "the backup must not hold the VIP");
    let target = SocketAddr::new(vip, 80);
    let served = wait_until(Duration::from_secs(10), || {
        fetch(&lab, CLIENT, target).is_ok_and(|text| text.contains("hello-from-backend"))
    });
    assert!(
        served.is_some(),
        "the client never reached the backend through the VIP: {:?}",
        fetch(&lab, CLIENT, target)
    );

    // SIGHUP with the same file: no state change, no VIP flap, listeners keep serving.
    let became_master = |host| {
        status(&lab, host)
            .ok()
            .map(|status| status["instances"][0]["counters"]["became_master"].clone())
    };
    let before = (became_master(LB1), became_master(LB2));
    let removal = AddressWatch::removed(vip, Duration::from_secs(3))
        .start(&lab, LB1)
        .expect("address watch");
    for process in [&lb1, &lb2] {
        kill(
            Pid::from_raw(i32::try_from(process.pid()).expect("pid")),
            Signal::SIGHUP,
        )
        .expect("SIGHUP");
    }
    for _ in 0..10 {
        assert!(
            fetch(&lab, CLIENT, target).is_ok_and(|text| text.contains("hello-from-backend")),
            "a connection failed during reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed = removal.wait().expect("address watch");
    assert_eq!(
        removed, None,
        "SIGHUP with an unchanged file removed the VIP"
    );
    assert_eq!(
        (became_master(LB1), became_master(LB2)),
        before,
        "SIGHUP changed a state"
    );
    assert_eq!(instance_state(&lab, LB1, "api").as_deref(), Some("master"));

    // SIGTERM on the master: priority 0, so the backup takes over after its Skew_Time:
    // v3, 100 ms, priority 100: (256 - 100) × 100 ms / 256 = 60.9 ms.
    let takeover = AddressWatch::added(vip, Duration::from_secs(5))
        .start(&lab, LB2)
        .expect("address watch");
    let signalled = Instant::now();
    let exit = lb1.stop();
    let taken = takeover
        .wait()
        .expect("address watch")
        .expect("lb2 took the VIP within 5 s");
    let elapsed = taken.duration_since(signalled);
    let bound = skew_time(100, Duration::from_millis(100)) + Duration::from_millis(100);
    assert!(
        elapsed <= bound,
        "takeover took {elapsed:?}, more than Skew_Time + 100 ms = {bound:?}"
    );
    assert!(
        exit.is_some_and(|status| status.success()),
        "vipd did not exit 0 on SIGTERM: {exit:?}"
    );
    assert!(!holds(&lab, LB1, vip), "lb1 kept the VIP after SIGTERM");
    assert!(
        wait_until(Duration::from_secs(5), || fetch(&lab, CLIENT, target)
            .is_ok_and(|text| text.contains("hello-from-backend")))
        .is_some(),
        "the client cannot reach the backend through lb2"
    );
    eprintln!("SIGTERM takeover: {elapsed:?} (bound {bound:?})");
    drop(lb2);
}
