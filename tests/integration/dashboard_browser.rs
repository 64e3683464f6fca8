//! The dashboard in a real browser: Debian's headless Chromium, in the client's namespace, keeps
//! the page of a running vipd pair open while the test changes the world under it, and the DOM
//! and screenshots are checked for the states an operator must tell apart: master on one node,
//! backup on the other, fault (a tracked interface down), a server down (its process killed),
//! an admin action through the page with the token, and the daemon gone (the page still open,
//! showing the STALE banner over the last data). Screenshots stay in the test's scratch
//! directory while it runs (kept with `VIPD_KEEP_SCREENSHOTS=DIR`).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use vipd_lab::{Lab, LabProcess};

use crate::support::browser::{Browser, HEIGHT, Page, WIDTH, chromium_installed, png_size};
use crate::support::{Scratch, holds, instance_state, start_vipd, wait_for_control, wait_until};

const LB1: usize = 0;
const LB2: usize = 1;
const BACKEND: usize = 2;
const CLIENT: usize = 3;
const TOKEN: &str = "dashboard-test-token";
/// The STALE banner's background, #b3261e.
const BANNER_RED: [u8; 3] = [0xb3, 0x26, 0x1e];
const WAIT: Duration = Duration::from_secs(10);

/// A node of the pair; the control server listens on every address, so that the browser in the
/// client's namespace reaches it at the node's own address.
fn node_config(node: &str, priority: u8, token: &Path, backend: IpAddr, vip: IpAddr) -> String {
    format!(
        "node: {node}
control:
  listen: \"0.0.0.0:9650\"
  token_file: {token}
vrrp:
  - name: api
    interface: eth0
    vrid: 62
    priority: {priority}
    advert_interval: 100ms
    vips: [{vip}/24]
    track:
      - {{ interface: probe0 }}
frontends:
  - name: web
    bind: [\"{vip}:80\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
      - {{ name: b2, address: \"{backend}:8081\" }}
",
        token = token.display()
    )
}

/// The value of `attribute` of the row of `selector`, as a JavaScript test.
fn row_has(selector: &str, attribute: &str, value: &str) -> String {
    format!(
        "(() => {{ const row = document.querySelector('{selector}'); return !!row && row.getAttribute('{attribute}') === '{value}'; }})()"
    )
}

/// A screenshot of the viewport in the scratch directory, checked for its size; pixel (8, 8) is
/// the STALE banner's red exactly when `stale`.
fn screenshot(page: &mut Page, scratch: &Scratch, name: &str, stale: bool) {
    let path = scratch.path(&format!("{name}.png"));
    let png = page.screenshot(&path);
    assert_eq!(png_size(&png), Some((WIDTH, HEIGHT)), "{name}.png");
    let pixel = page.pixel(&png, 8, 8);
    assert_eq!(
        pixel[..3] == BANNER_RED,
        stale,
        "{name}.png: pixel (8, 8) is {pixel:?}; the banner must show exactly when stale"
    );
    if let Some(keep) = std::env::var_os("VIPD_KEEP_SCREENSHOTS") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&path, Path::new(&keep).join(format!("{name}.png")));
    }
}

fn start_backends(lab: &Lab) -> [LabProcess; 2] {
    [8080, 8081].map(|port| {
        let listen = format!("TCP-LISTEN:{port},reuseaddr,fork");
        lab.spawn(BACKEND, &["socat", &listen, "SYSTEM:echo hello"])
            .expect("socat starts")
    })
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one page kept open through the states an operator must tell apart, in order"
)]
fn the_dashboard_shows_master_backup_fault_server_down_admin_actions_and_a_daemon_gone() {
    if !vipd_lab::e2e_enabled(
        "the_dashboard_shows_master_backup_fault_server_down_admin_actions_and_a_daemon_gone",
    ) {
        return;
    }
    assert!(
        chromium_installed(),
        "Debian's chromium is needed (tests/run installs it)"
    );
    let started = Instant::now();
    let lab = Lab::new(4).expect("lab");
    let scratch = Scratch::new("dashboard-browser");
    let vip = IpAddr::V4(Lab::vip_v4(7));
    let [lb1_ip, lb2_ip, backend] = [LB1, LB2, BACKEND].map(|host| IpAddr::V4(lab.host(host).ipv4));
    // The tracked link: a veth pair of its own in each node (no dummy module on every kernel).
    for host in [LB1, LB2] {
        for command in [
            &[
                "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1",
            ][..],
            &["ip", "link", "set", "probe1", "up"],
            &["ip", "link", "set", "probe0", "up"],
        ] {
            lab.run(host, command).expect("tracked link");
        }
    }
    let [_b1, mut b2] = start_backends(&lab);
    let token = scratch.write("token", TOKEN);
    let configs = [(LB1, "lb1", 150), (LB2, "lb2", 100)].map(|(host, name, priority)| {
        let file = scratch.write(
            &format!("{name}.yaml"),
            &node_config(name, priority, &token, backend, vip),
        );
        start_vipd(&lab, host, &file, &scratch.path(&format!("{name}.log")))
    });
    let [mut lb1, _lb2] = configs;
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);
    assert!(
        wait_until(WAIT, || holds(&lab, LB1, vip)
            && instance_state(&lab, LB2, "api").as_deref() == Some("backup"))
        .is_some(),
        "no lb1 master / lb2 backup"
    );

    let lb1_page = format!("http://{lb1_ip}:9650/");
    let lb2_page = format!("http://{lb2_ip}:9650/");
    let mut browser = Browser::start(&lab, CLIENT, &lb1_page, &scratch.path("chromium"));
    let page = &mut browser.page;

    // Master, with both servers up and usable.
    page.wait_for(
        "lb1 as master",
        &row_has("tr[data-instance=\"api\"]", "data-state", "master"),
        WAIT,
    );
    page.wait_for(
        "both servers usable",
        &row_has("tr[data-backend=\"web\"]", "data-servers-usable", "2"),
        WAIT,
    );
    page.wait_for(
        "the last reload (unknown or known)",
        "document.getElementById('last-reload').textContent.startsWith('last reload')",
        WAIT,
    );
    screenshot(page, &scratch, "master", false);

    // Backup on the other node, then fault when its tracked interface goes down.
    page.navigate(&lb2_page);
    page.wait_for(
        "lb2 as backup",
        &row_has("tr[data-instance=\"api\"]", "data-state", "backup"),
        WAIT,
    );
    page.wait_for("lb1 as the master lb2 sees", &format!("document.querySelector('tr[data-instance=\"api\"] [data-field=\"master\"]').textContent.startsWith('{lb1_ip}')"), WAIT);
    screenshot(page, &scratch, "backup", false);
    lab.run(LB2, &["ip", "link", "set", "probe0", "down"])
        .expect("link down");
    page.wait_for(
        "lb2 in fault",
        &row_has("tr[data-instance=\"api\"]", "data-state", "fault"),
        WAIT,
    );
    screenshot(page, &scratch, "fault", false);
    lab.run(LB2, &["ip", "link", "set", "probe0", "up"])
        .expect("link up");

    // A server down: its process killed.
    page.navigate(&lb1_page);
    b2.stop();
    page.wait_for(
        "b2 down",
        &row_has("tr[data-server=\"b2\"]", "data-health", "down"),
        WAIT,
    );
    page.wait_for(
        "one server up",
        &row_has("tr[data-backend=\"web\"]", "data-servers-up", "1"),
        WAIT,
    );
    screenshot(page, &scratch, "server-down", false);

    admin_actions_need_the_token(page);

    // The daemon gone while the page is open: the last data stays, under the STALE banner.
    lb1.stop();
    page.wait_for(
        "the STALE banner",
        "document.body.dataset.stale === 'true' && !document.getElementById('stale').hidden",
        WAIT,
    );
    let banner = page.evaluate("document.getElementById('stale').textContent");
    assert!(
        banner.as_str().is_some_and(
            |text| text.starts_with("STALE") && text.contains("the data below is from")
        ),
        "{banner}"
    );
    assert_eq!(
        page.evaluate(&row_has(
            "tr[data-instance=\"api\"]",
            "data-state",
            "master"
        )),
        true,
        "the last data stays visible"
    );
    screenshot(page, &scratch, "daemon-gone", true);
    drop(browser);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Without the token the page's drain is refused (401, said on the page); with it, b1 drains and
/// is enabled again.
fn admin_actions_need_the_token(page: &mut Page) {
    let click = |action: &str| {
        format!(
            "document.querySelector('tr[data-server=\"b1\"] button[data-action=\"{action}\"]').click()"
        )
    };
    page.evaluate(&click("drain"));
    page.wait_for("the refusal", "document.getElementById('action-result').dataset.outcome === 'error' && document.getElementById('action-result').textContent.includes('token')", WAIT);
    page.evaluate(&format!(
        "document.getElementById('token').value = '{TOKEN}'; document.getElementById('token-save').click()"
    ));
    page.wait_for(
        "the token set",
        "document.getElementById('token-state').dataset.token === 'set'",
        WAIT,
    );
    page.evaluate(&click("drain"));
    page.wait_for(
        "b1 drained",
        &row_has("tr[data-server=\"b1\"]", "data-admin", "drain"),
        WAIT,
    );
    page.evaluate(&click("enable"));
    page.wait_for(
        "b1 ready again",
        &row_has("tr[data-server=\"b1\"]", "data-admin", "ready"),
        WAIT,
    );
}
