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

/// An example of deploy/examples/ as it would be installed: its `control.token_file`
/// (/etc/vipd/token) replaced by a token file that exists.
fn installed_example(scratch: &Scratch, name: &str) -> PathBuf {
    let token = scratch.write("token", "s3cret\n");
    let text = std::fs::read_to_string(repository_file(&format!("deploy/examples/{name}")))
        .expect("the example")
        .replace("/etc/vipd/token", &token.display().to_string());
    scratch.write(name, &text)
}

#[test]
fn a_valid_file_prints_a_summary_and_exits_0() {
    let scratch = Scratch::new("check-valid");
    let output = check(&installed_example(&scratch, "active-standby-lb1.yaml"));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        file_output(&output.stdout),
        "ok: node lb1, 1 vrrp instance, 3 frontends, 3 backends, 0 scripts\n"
    );
    assert!(output.stderr.is_empty(), "{output:?}");

    let output = check(&installed_example(&scratch, "active-active-lb2.yaml"));
    assert!(output.status.success(), "{output:?}");
    assert!(text(&output.stdout).starts_with("ok: node lb2, 2 vrrp instances,"));
}

/// The token the daemon would fail to read at start is an error of `check`, with its line.
#[test]
fn a_missing_token_file_is_an_error() {
    let output = check(&repository_file("deploy/examples/active-standby-lb1.yaml"));
    if std::path::Path::new("/etc/vipd/token").exists() {
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.lines().any(|line| line
            == "control.token_file (line 10, column 15): token file /etc/vipd/token: cannot be read: No such file or directory"),
        "{stderr}"
    );
}

/// An empty file would release every VIP on reload; keepalived.conf in its place is named as such.
#[test]
fn empty_files_and_other_programs_files_are_refused_with_a_reason() {
    let scratch = Scratch::new("check-refused");
    let output = check(&scratch.write("vipd.yaml", "# to be written\n"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "(document) (line 1, column 1): no vrrp instance, no announce group and no frontend"
        ),
        "{stderr}"
    );
    let keepalived = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/import/tests/samples/apiserver-active-standby/keepalived.conf");
    let output = check(&keepalived);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "(document) (line 2, column 1): this looks like keepalived.conf (`global_defs {` at line 2), not vipd.yaml: translate it with `vipd import"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

/// `--strict`: the same warnings, and exit 1 because of them.
#[test]
fn strict_makes_warnings_fatal() {
    let scratch = Scratch::new("check-strict");
    let config = scratch.write(
        "vipd.yaml",
        "\
control: { listen: \"198.51.100.11:9650\" }
max_connections: 1000
vrrp:
  - { name: api, interface: eth0, vrid: 51, vips: [198.51.100.50/24] }
",
    );
    let output = check(&config);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text(&output.stdout).contains("warning: control.listen (line 1, column 20): 198.51.100.11:9650 is reachable from other hosts and no token_file is set"),
        "{output:?}"
    );
    let output = vipd()
        .args(["check", "--strict", "-c"])
        .arg(&config)
        .output()
        .expect("vipd runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stdout).contains("warning: control.listen"),
        "{output:?}"
    );
    assert_eq!(
        text(&output.stderr),
        "vipd check: 1 warning, fatal with --strict\n"
    );
    let clean = scratch.write(
        "clean.yaml",
        "max_connections: 1000\nvrrp:\n  - { name: api, interface: eth0, vrid: 51, vips: [198.51.100.50/24] }\n",
    );
    let output = vipd()
        .args(["check", "--strict", "-c"])
        .arg(&clean)
        .output()
        .expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
}

/// `--peer`: the twin examples agree; a twin with other VIPs and another interval does not, and
/// each mismatch names both files' lines.
#[test]
fn the_two_files_of_a_pair_are_compared() {
    let scratch = Scratch::new("check-peer");
    let lb1 = installed_example(&scratch, "active-standby-lb1.yaml");
    let lb2 = installed_example(&scratch, "active-standby-lb2.yaml");
    let check_pair = |first: &Path, second: &Path| {
        vipd()
            .args(["check", "-c"])
            .arg(first)
            .arg("--peer")
            .arg(second)
            .output()
            .expect("vipd runs")
    };
    let output = check_pair(&lb1, &lb2);
    assert!(output.status.success(), "{output:?}");
    let stdout = file_output(&output.stdout);
    assert_eq!(
        stdout,
        "ok: node lb1, 1 vrrp instance, 3 frontends, 3 backends, 0 scripts\n\
         peer ok: node lb2, 1 vrrp instance, 3 frontends, 3 backends, 0 scripts\n",
    );

    let output = check_pair(
        &installed_example(&scratch, "active-active-lb2.yaml"),
        &installed_example(&scratch, "active-active-lb1.yaml"),
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        !text(&output.stdout).contains("pair "),
        "{}",
        text(&output.stdout)
    );

    let text_of = std::fs::read_to_string(&lb2).expect("read");
    let broken = scratch.write(
        "lb2-broken.yaml",
        &text_of
            .replace(
                "      - 198.51.100.50/24\n",
                "      - 198.51.100.50/24\n      - 198.51.100.51/24\n",
            )
            .replace("advert_interval: 1s", "advert_interval: 2s"),
    );
    let output = check_pair(&lb1, &broken);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = file_output(&output.stdout);
    let (first, second) = (lb1.display(), broken.display());
    for expected in [
        format!(
            "pair warning: {first}:18 (vrrp[0].advert_interval) / {second}:18 (vrrp[0].advert_interval): VRID 51: advert_interval 1s in {first}, 2s in {second}"
        ),
        format!(
            "pair error: {first}:20 (vrrp[0].vips) / {second}:20 (vrrp[0].vips): VRID 51: the VIPs differ (198.51.100.51/24 only in {second})"
        ),
    ] {
        assert!(
            stdout.lines().any(|line| line.starts_with(&expected)),
            "no line starting {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(
        text(&output.stderr),
        "vipd check: 1 pair error between the two files\n"
    );
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

/// One line, one prefix: not `vipd: vipd check: ...: reason: reason (os error 2)`.
#[test]
fn an_unreadable_file_exits_1_with_the_reason_once() {
    let output = check(Path::new("/nonexistent/vipd.yaml"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        "vipd: cannot read /nonexistent/vipd.yaml: No such file or directory\n"
    );
    let output = vipd()
        .args(["run", "-c", "/nonexistent/vipd.yaml"])
        .output()
        .expect("vipd runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        "vipd: cannot read /nonexistent/vipd.yaml: No such file or directory\n"
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
    let scratch = Scratch::new("check-fd-limit");
    let file = installed_example(&scratch, "active-standby-lb1.yaml");
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
