//! `vipd reload` against a running daemon (docs/operations.md, Reload): a good file is applied
//! and reported (exit 0); a file the daemon rejects leaves the running configuration and fails
//! with the errors (exit 1), and `/status` and `/metrics` say so; a file that does not parse is
//! refused before the daemon is signalled; a reload that moves the control server is found with
//! `--pid`. systemd's notifications (`NOTIFY_SOCKET`) frame each reload and the start and stop.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::reload_control::{hang_up, log_of};
use crate::signals::start_vipd_in_env;
use crate::support::{
    Scratch, VIPD, control_get, holds, status, text, wait_for_control, wait_until,
};
use vipd_lab::Lab;

const NODE: usize = 0;

/// Instance `api` at `priority`, and `extra` appended (more instances).
fn config(priority: u8, extra: &str) -> String {
    format!(
        "node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 72
    priority: {priority}
    advert_interval: 100ms
    vips: [{vip}/24]
{extra}",
        vip = Lab::vip_v4(0)
    )
}

/// A second instance on an interface the host does not have: valid to `vipd check`, refused by
/// the daemon when it prepares the reload (its socket cannot be opened).
const MISSING_INTERFACE: &str = "  - name: web
    interface: eth9
    vrid: 73
    priority: 100
    vips: [198.51.100.200/24]
";

fn vipd_reload(lab: &Lab, config: &Path) -> Output {
    vipd_reload_with(lab, config, &[])
}

/// `vipd reload -c config` with `options` added.
fn vipd_reload_with(lab: &Lab, config: &Path, options: &[&str]) -> Output {
    let config = config.display().to_string();
    let mut args = vec![VIPD, "reload", "-c", &config, "--timeout", "20"];
    args.extend(options);
    lab.command_in(NODE, &args)
        .expect("host exists")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("vipd reload runs")
}

fn last_reload(lab: &Lab) -> serde_json::Value {
    status(lab, NODE).expect("status")["last_reload"].clone()
}

/// The value of the unlabelled metric `name`.
fn metric(lab: &Lab, name: &str) -> Option<f64> {
    let text = control_get(lab, NODE, "/metrics").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// `sha256:<hex>` of `path` as sha256sum prints it.
fn sha256sum(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    let hex = text(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    format!("sha256:{hex}")
}

/// The next notification vipd sent to systemd's socket.
fn notification(systemd: &UnixDatagram) -> String {
    let mut buffer = [0_u8; 1024];
    let length = systemd
        .recv(&mut buffer)
        .expect("a notification within 10 s");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one daemon through its reloads, told in order: good, rejected, unparsable, SIGHUP, moved"
)]
fn vipd_reload_reports_the_verdict_and_status_and_metrics_keep_it() {
    if !vipd_lab::e2e_enabled("vipd_reload_reports_the_verdict_and_status_and_metrics_keep_it") {
        return;
    }
    let lab = Lab::new(1).expect("lab");
    let scratch = Scratch::new("reload-command");
    let vip = std::net::IpAddr::V4(Lab::vip_v4(0));
    let path = scratch.write("vipd.yaml", &config(150, ""));
    let log = scratch.path("vipd.log");
    let socket = scratch.path("notify.sock");
    let systemd = UnixDatagram::bind(&socket).expect("bind the notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let vipd = start_vipd_in_env(&lab, NODE, &[("NOTIFY_SOCKET", &socket)], &path, &log);
    let ready = notification(&systemd);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    wait_for_control(&lab, NODE);
    assert!(
        wait_until(Duration::from_secs(10), || holds(&lab, NODE, vip)).is_some(),
        "never master:\n{}",
        log_of(&log)
    );
    let start = last_reload(&lab);
    assert_eq!(start["sequence"], 0);
    assert_eq!(start["ok"], true);
    assert_eq!(start["config_digest"], sha256sum(&path).as_str());

    // A good file: applied, exit 0, and systemd heard RELOADING=1 then READY=1.
    std::fs::write(&path, config(160, "")).expect("rewrite");
    let good = vipd_reload(&lab, &path);
    assert!(
        good.status.success(),
        "{}{}\n{}",
        text(&good.stdout),
        text(&good.stderr),
        log_of(&log)
    );
    assert!(
        text(&good.stdout).contains("reload done: load 1"),
        "{}",
        text(&good.stdout)
    );
    assert!(notification(&systemd).starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(notification(&systemd).starts_with("READY=1\n"));
    let applied = last_reload(&lab);
    assert_eq!(applied["ok"], true);
    assert_eq!(applied["config_digest"], sha256sum(&path).as_str());
    let node = status(&lab, NODE).expect("status");
    assert_eq!(node["instances"][0]["configured_priority"], 160);
    assert_eq!(
        metric(&lab, "vipd_config_last_reload_successful"),
        Some(1.0)
    );
    let applied_at = applied["at_unix_seconds"].as_f64().expect("a time");
    let success_at = metric(&lab, "vipd_config_last_reload_success_timestamp_seconds")
        .expect("the success timestamp");
    assert!(
        (success_at - applied_at).abs() < 0.001,
        "{success_at} vs {applied_at}"
    );

    // A file the daemon refuses: exit 1 with the error, the running configuration stays.
    std::fs::write(&path, config(170, MISSING_INTERFACE)).expect("rewrite");
    let rejected = vipd_reload(&lab, &path);
    let stderr = text(&rejected.stderr);
    assert_eq!(
        rejected.status.code(),
        Some(1),
        "{stderr}\n{}",
        log_of(&log)
    );
    assert!(stderr.contains("rejected (load 2)"), "{stderr}");
    assert!(stderr.contains("vrrp web"), "{stderr}");
    let _ = notification(&systemd);
    let _ = notification(&systemd);
    let refused = last_reload(&lab);
    assert_eq!(refused["sequence"], 2);
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["partial"], false);
    assert!(!refused["errors"].as_array().expect("errors").is_empty());
    assert_eq!(
        refused["config_digest"], applied["config_digest"],
        "the old file is in force"
    );
    let node = status(&lab, NODE).expect("status");
    assert_eq!(node["instances"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["instances"][0]["configured_priority"], 160);
    assert_eq!(node["instances"][0]["state"], "master");
    assert!(holds(&lab, NODE, vip));
    assert_eq!(
        metric(&lab, "vipd_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        metric(&lab, "vipd_config_last_reload_success_timestamp_seconds"),
        Some(success_at),
        "the last success is still the good file's"
    );

    // A file that parses but names a token file that is not there: refused before the signal
    // as `vipd check` refuses it (the daemon could apply it only in part).
    std::fs::write(
        &path,
        config(160, "control:\n  token_file: /nonexistent/vipd-token\n"),
    )
    .expect("rewrite");
    let missing_token = vipd_reload(&lab, &path);
    assert_eq!(missing_token.status.code(), Some(1));
    let said = text(&missing_token.stderr);
    assert!(
        said.contains("not reloading") && said.contains("/nonexistent/vipd-token"),
        "{said}"
    );
    assert_eq!(last_reload(&lab)["sequence"], 2, "the daemon was signalled");

    // A file that does not parse: refused before the daemon hears of it.
    std::fs::write(&path, "node: lb1\nvrrp: [\n").expect("rewrite");
    let unparsable = vipd_reload(&lab, &path);
    assert_eq!(unparsable.status.code(), Some(1));
    assert!(
        text(&unparsable.stderr).contains("not reloading"),
        "{}",
        text(&unparsable.stderr)
    );
    assert_eq!(last_reload(&lab)["sequence"], 2, "the daemon was signalled");

    // The same file by plain SIGHUP: the daemon's own verdict, with the parse error.
    hang_up(&vipd);
    assert!(
        wait_until(Duration::from_secs(10), || last_reload(&lab)["sequence"]
            == 3)
        .is_some(),
        "no verdict for the SIGHUP:\n{}",
        log_of(&log)
    );
    let by_signal = last_reload(&lab);
    assert_eq!(by_signal["ok"], false);
    assert!(
        by_signal["errors"][0]
            .as_str()
            .is_some_and(|error| error.contains("line")),
        "{by_signal}"
    );
    let _ = notification(&systemd);
    let _ = notification(&systemd);

    // A reload that moves the control server: the file's control.listen does not answer yet,
    // so the daemon cannot be found there; --pid (systemd's $MAINPID) names it, and the verdict
    // comes from the new address.
    let moved = scratch.write(
        "vipd.yaml",
        &config(160, "control:\n  listen: \"127.0.0.1:9651\"\n"),
    );
    let unfound = vipd_reload(&lab, &moved);
    assert_eq!(unfound.status.code(), Some(1));
    assert!(
        text(&unfound.stderr).contains("--pid names the daemon"),
        "{}",
        text(&unfound.stderr)
    );
    assert_eq!(
        last_reload(&lab)["sequence"],
        3,
        "signalled without a verdict to wait for"
    );
    let pid = vipd.pid().to_string();
    let found = vipd_reload_with(&lab, &moved, &["--pid", &pid]);
    assert!(
        found.status.success(),
        "{}{}\n{}",
        text(&found.stdout),
        text(&found.stderr),
        log_of(&log)
    );
    assert!(
        text(&found.stdout).contains("reload done: load 4"),
        "{}",
        text(&found.stdout)
    );
    let _ = notification(&systemd);
    let _ = notification(&systemd);

    drop(vipd);
    let stopping = notification(&systemd);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
}
