//! What an operator greps for in vipd's log is there, in plain text: state
//! changes in keepalived's words, no colour escapes when stderr is not a terminal, and a failing
//! check script's own words in its tracker's detail.

use std::time::Duration;

use vipd_lab::Lab;

use crate::support::{Scratch, start_vipd, status, text, vipd, wait_for_control, wait_until};

const NODE: usize = 0;
const ESCAPE: u8 = 0x1b;

#[test]
fn a_log_to_a_pipe_has_no_colour_escapes() {
    let scratch = Scratch::new("log-no-ansi");
    let missing = scratch.path("missing.yaml");
    // An invalid filter is logged as a warning through the log formatter (where colours would
    // come from), then the missing file is reported and vipd exits.
    let output = vipd()
        .env("VIPD_LOG", "vipd=notalevel")
        .args(["run", "--log-level", "info", "-c"])
        .arg(&missing)
        .output()
        .expect("vipd runs");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("WARN")
            && stderr.contains("VIPD_LOG ignored")
            && stderr.contains("missing.yaml"),
        "the warning and the error are on stderr: {stderr}"
    );
    assert!(!output.stderr.contains(&ESCAPE), "{stderr:?}");
}

fn config() -> String {
    format!(
        "node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 72
    priority: 150
    advert_interval: 100ms
    vips: [{vip}/24]
    track:
      - {{ script: db, weight: -20 }}
scripts:
  db:
    command: [/bin/sh, -c, \"echo 'db: connection refused' >&2; exit 2\"]
    interval: 1s
    fall: 1
",
        vip = Lab::vip_v4(0),
    )
}

#[test]
fn state_changes_read_as_keepalived_s_and_a_failing_script_says_why() {
    if !vipd_lab::e2e_enabled("state_changes_read_as_keepalived_s_and_a_failing_script_says_why") {
        return;
    }
    let lab = Lab::new(1).expect("lab");
    let scratch = Scratch::new("operator-logs");
    let config = scratch.write("vipd.yaml", &config());
    let log = scratch.path("vipd.log");
    let vipd = start_vipd(&lab, NODE, &config, &log);
    wait_for_control(&lab, NODE);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read_log()
            .contains("(api) entering MASTER state"))
        .is_some(),
        "no state change line in keepalived's words:\n{}",
        read_log()
    );
    let detail = || {
        status(&lab, NODE).ok().and_then(|status| {
            status["instances"][0]["trackers"][0]["detail"]
                .as_str()
                .map(str::to_owned)
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || detail().is_some()).is_some(),
        "the failing script's tracker has no detail"
    );
    assert_eq!(
        detail().as_deref(),
        Some("exit status: 2, stderr: db: connection refused")
    );
    drop(vipd);
    let bytes = std::fs::read(&log).expect("log");
    assert!(
        !bytes.contains(&ESCAPE),
        "colour escapes in a log written to a file:\n{}",
        text(&bytes)
    );
    assert!(
        text(&bytes).contains("check script changed state"),
        "{}",
        text(&bytes)
    );
}
