//! `vipd check`: exit codes and output of the binary on valid, warned-about and broken files.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Scratch, text, vipd};

fn check(file: &Path) -> Output {
    vipd()
        .args(["check", "-c"])
        .arg(file)
        .output()
        .expect("vipd runs")
}

/// stdout without the fd-limit warning, which depends on the host (its hard RLIMIT_NOFILE), not
/// on the file.
fn file_output(stdout: &[u8]) -> String {
    text(stdout)
        .lines()
        .filter(|line| !line.contains("RLIMIT_NOFILE"))
        .flat_map(|line| [line, "\n"])
        .collect()
}

fn repository_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn a_valid_file_prints_a_summary_and_exits_0() {
    let output = check(&repository_file("deploy/examples/active-standby-lb1.yaml"));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        file_output(&output.stdout),
        "ok: node lb1, 1 vrrp instance, 3 frontends, 3 backends, 0 scripts\n"
    );
    assert!(output.stderr.is_empty(), "{output:?}");

    let output = check(&repository_file("deploy/examples/active-active-lb2.yaml"));
    assert!(output.status.success(), "{output:?}");
    assert!(text(&output.stdout).starts_with("ok: node lb2, 2 vrrp instances,"));
}

#[test]
fn an_invalid_file_prints_every_error_and_exits_1() {
    let output = check(&repository_file(
        "crates/config/tests/fixtures/many-errors.yaml",
    ));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].ends_with("many-errors.yaml: 6 errors"), "{stderr}");
    for expected in [
        "node (line 6, column 7): ",
        "vrrp[0].name (line 10, column 5): missing required field",
        "vrrp[0].vrid (line 11, column 11): must be in 1..=255, got 0",
        "vrrp[0].priority (line 12, column 15): must be in 1..=255, got 300",
        "vrrp[0].vips[0] (line 14, column 9): ",
        "vrrp[0].track[0] (line 16, column 9): ",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "no line starting {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), 7, "{stderr}");
}

#[test]
fn warnings_follow_the_summary_and_keep_exit_0() {
    let scratch = Scratch::new("check-warnings");
    // A program anyone may write: as root it is root's but mode 777, as a user it is not root's.
    let program = scratch.write("chk", "#!/bin/sh\nexit 0\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let config = scratch.write(
        "vipd.yaml",
        &format!(
            "\
node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: 150
    peer_priority: 100
    vips: [198.51.100.50/24]
    track:
      - {{ script: chk, weight: -20 }}
scripts:
  chk:
    command: [{}]
frontends:
  - name: apiserver
    bind: [\"198.51.100.50:6443\"]
    backend: apiservers
backends:
  - name: apiservers
    servers: [{{ name: m1, address: \"198.51.100.21:6443\" }}]
",
            program.display()
        ),
    );
    let output = check(&config);
    assert!(output.status.success(), "{output:?}");
    let stdout = file_output(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "ok: node lb1, 1 vrrp instance, 1 frontend, 1 backend, 1 script"
    );
    assert!(
        lines[1].starts_with("warning: vrrp[0].track[0].weight (line 10, column "),
        "{stdout}"
    );
    assert!(lines[1].contains("not below peer_priority 100"), "{stdout}");
    assert!(
        lines[2].starts_with("warning: scripts.chk.command[0] (line 13, column "),
        "{stdout}"
    );
    assert!(
        lines[2].contains("writable by every user") || lines[2].contains("not root"),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("warning: backends[0].health.kind (line 19, column "),
        "{stdout}"
    );
    assert!(lines[3].contains("only a tcp check"), "{stdout}");
    assert_eq!(lines.len(), 4, "{stdout}");
}

#[test]
fn an_unreadable_file_exits_1_with_the_reason() {
    let output = check(Path::new("/nonexistent/vipd.yaml"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/vipd.yaml"),
        "{stderr}"
    );
}

#[test]
fn check_reads_etc_vipd_by_default() {
    if Path::new("/etc/vipd/vipd.yaml").exists() {
        return;
    }
    let output = vipd().arg("check").output().expect("vipd runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("/etc/vipd/vipd.yaml"),
        "{output:?}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_lists_check() {
    let output = vipd().output().expect("vipd runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = vipd().arg("--help").output().expect("vipd runs");
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("check"), "{output:?}");
}

/// A check slower than the window in which the peer must fail too (docs/operations.md,
/// Tracking and weights): a warning on stdout, exit 0.
#[test]
fn a_check_slower_than_two_advert_intervals_is_warned_about() {
    let scratch = Scratch::new("check-window");
    let config = scratch.write(
        "vipd.yaml",
        "\
node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: 150
    advert_interval: 100ms
    vips: [198.51.100.50/24]
    track: [{ frontend: web, weight: -60 }]
frontends:
  - { name: web, bind: [\"198.51.100.50:80\"], backend: web }
backends:
  - name: web
    health: { kind: tcp, interval: 200ms, timeout: 100ms, fall: 2 }
    servers: [{ name: b1, address: \"198.51.100.21:80\" }]
",
    );
    let output = check(&config);
    assert!(output.status.success(), "{output:?}");
    let stdout = file_output(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with("warning: vrrp[0].track[0] (line 9, column "),
        "{stdout}"
    );
    assert!(
        lines[1].contains("detects a failure in up to 500ms")
            && lines[1].contains("longer than the 200ms"),
        "{stdout}"
    );
}

/// `--against RUNNING`: what a reload does to each instance, and why an instance restarts.
#[test]
fn against_the_running_file_it_says_what_a_reload_keeps_changes_and_restarts() {
    let scratch = Scratch::new("check-against");
    let file = |api_vips: &str, web_vrid: u8, old: bool| {
        let extra = if old {
            "  - { name: old, interface: eth0, vrid: 53, vips: [198.51.100.70/24] }\n"
        } else {
            ""
        };
        format!(
            "\
node: lb1
vrrp:
  - {{ name: api, interface: eth0, vrid: 51, vips: [{api_vips}] }}
  - {{ name: web, interface: eth0, vrid: {web_vrid}, vips: [198.51.100.60/24] }}
  - {{ name: same, interface: eth0, vrid: 54, vips: [198.51.100.80/24] }}
{extra}"
        )
    };
    let running = scratch.write("running.yaml", &file("198.51.100.50/24", 52, true));
    let new = scratch.write(
        "new.yaml",
        &file("198.51.100.50/24, 198.51.100.51/24", 55, false),
    );
    let output = vipd()
        .args(["check", "-c"])
        .arg(&new)
        .arg("--against")
        .arg(&running)
        .output()
        .expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = file_output(&output.stdout);
    for expected in [
        "reload: vrrp old: removed (a master releases its VIPs)\n",
        "reload: vrrp api: changed in place (vips)\n",
        "reload: vrrp web: restarts, a master hands over to its peer first (vrid 52 → 55: another virtual router)\n",
        "reload: vrrp same: unchanged\n",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}

/// `vipd check` runs where `vipd run` will (ExecStartPre in the unit): it says when that fd limit
/// cannot hold the connection limits.
#[test]
fn a_fd_limit_too_low_for_max_connections_is_a_warning() {
    let file = repository_file("deploy/examples/active-standby-lb1.yaml");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec {} check -c {}",
            crate::support::VIPD,
            file.display()
        ))
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("warning: the fd limit (RLIMIT_NOFILE) is 256: too low for"),
        "{stdout}"
    );
}
