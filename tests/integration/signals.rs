//! Signals a running master may get (docs/operations.md, Signals): every catchable signal vipd
//! does not use leaves it master with its VIP, SIGUSR1 and SIGUSR2 write their dumps, and a
//! second SIGTERM during a long drain stops it at once, after the VIP was released.
//!
//! Not sent: SIGKILL and SIGSTOP (no process can catch them), SIGTERM, SIGINT and SIGHUP (they
//! stop or reload it), and SIGSEGV, SIGBUS, SIGILL and SIGFPE, which report a fault of the process
//! itself and stay fatal (a handler that returns would run the faulting instruction again).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::reload_control::log_of;
use crate::support::{
    Scratch, VIPD, holds, instance_state, start_vipd, status, wait_for_control, wait_until,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::{Lab, LabProcess};

const LB1: usize = 0;
const LB2: usize = 1;
const BACKEND: usize = 2;
const CLIENT: usize = 3;

/// Starts `vipd run -c config` in `host` with `env` added to its environment, logging to `log`.
pub(crate) fn start_vipd_in_env(
    lab: &Lab,
    host: usize,
    env: &[(&str, &Path)],
    config: &Path,
    log: &Path,
) -> LabProcess {
    let log_file = std::fs::File::create(log).expect("log file");
    let config = config.display().to_string();
    let mut command = lab
        .command_in(host, &[VIPD, "run", "-c", &config])
        .expect("host exists");
    command
        .env("VIPD_LOG", "info")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    lab.spawn_command(command).expect("vipd starts")
}

fn pid_of(vipd: &LabProcess) -> Pid {
    Pid::from_raw(i32::try_from(vipd.pid()).expect("pid fits"))
}

/// The state letter of `/proc/PID/stat`: `T` for a stopped process, `Z` for a dead one.
fn process_state(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn single_master_config(vip: IpAddr) -> String {
    format!(
        "node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 71
    priority: 150
    advert_interval: 100ms
    vips: [{vip}/24]
"
    )
}

#[test]
fn every_signal_vipd_does_not_use_leaves_the_master_in_place() {
    if !vipd_lab::e2e_enabled("every_signal_vipd_does_not_use_leaves_the_master_in_place") {
        return;
    }
    let lab = Lab::new(1).expect("lab");
    let scratch = Scratch::new("signals");
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let config = scratch.write("vipd.yaml", &single_master_config(vip));
    let log = scratch.path("vipd.log");
    let runtime_dir = scratch.path("run");
    let mut vipd = start_vipd_in_env(
        &lab,
        LB1,
        &[("RUNTIME_DIRECTORY", &runtime_dir)],
        &config,
        &log,
    );
    wait_for_control(&lab, LB1);
    assert!(
        wait_until(Duration::from_secs(10), || holds(&lab, LB1, vip)).is_some(),
        "never master:\n{}",
        log_of(&log)
    );

    let pid = pid_of(&vipd);
    let standard = [
        Signal::SIGQUIT,
        Signal::SIGTRAP,
        Signal::SIGABRT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
        Signal::SIGALRM,
        Signal::SIGSTKFLT,
        Signal::SIGCHLD,
        Signal::SIGCONT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGURG,
        Signal::SIGXCPU,
        Signal::SIGXFSZ,
        Signal::SIGVTALRM,
        Signal::SIGPROF,
        Signal::SIGWINCH,
        Signal::SIGIO,
        Signal::SIGPWR,
        Signal::SIGSYS,
    ];
    for signal in standard {
        kill(pid, signal).unwrap_or_else(|error| panic!("{signal}: {error}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Real-time signals by number (nix names only the standard ones): the first two the C
    // library hands out and the last two.
    let (first, last) = (nix::libc::SIGRTMIN(), nix::libc::SIGRTMAX());
    for number in [first, first + 1, last - 1, last] {
        let sent = std::process::Command::new("kill")
            .args([format!("-{number}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{number}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A stopped process is as bad as a dead one: its peer takes over all the same.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !vipd.has_exited(),
        "vipd died of a signal:\n{}",
        log_of(&log)
    );
    assert_eq!(
        process_state(pid).filter(|state| *state == 'T'),
        None,
        "vipd is stopped"
    );
    assert_eq!(
        instance_state(&lab, LB1, "api").as_deref(),
        Some("master"),
        "{}",
        log_of(&log)
    );
    assert!(holds(&lab, LB1, vip), "the VIP left");
    let logged = log_of(&log);
    for name in ["SIGALRM", "SIGQUIT", "SIGTSTP", "SIGRTMIN+"] {
        assert!(
            logged
                .lines()
                .any(|line| line.contains("signal ignored") && line.contains(name)),
            "no log line for {name}:\n{logged}"
        );
    }
    assert_dumps(&runtime_dir, &log);
    drop(vipd);
}

/// SIGUSR1 and SIGUSR2 left their dumps in `runtime_dir`, and the status is in the log too.
fn assert_dumps(runtime_dir: &Path, log: &Path) {
    // SIGUSR1: the status, as /status serves it, in the log and the runtime directory.
    let status_file = runtime_dir.join("vipd.status.json");
    let stats_file = runtime_dir.join("vipd.stats");
    assert!(
        wait_until(Duration::from_secs(5), || status_file.exists()
            && stats_file.exists())
        .is_some(),
        "no dumps in {}:\n{}",
        runtime_dir.display(),
        log_of(log)
    );
    let dumped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).expect("status file"))
            .expect("the status dump is JSON");
    assert_eq!(dumped["instances"][0]["state"], "master");
    assert_eq!(dumped["node"], "lb1");
    let logged = log_of(log);
    assert!(
        logged
            .lines()
            .any(|line| line.contains("SIGUSR1: status") && line.contains("\"instances\"")),
        "the status is not in the log:\n{logged}"
    );
    // SIGUSR2: the statistics, as /metrics serves them.
    let stats = std::fs::read_to_string(&stats_file).expect("stats file");
    assert!(
        stats.contains("vipd_vrrp_state{vrrp_instance=\"api\",state=\"master\"} 1"),
        "{stats}"
    );
    assert!(stats.ends_with("# EOF\n"), "{stats}");
}

/// lb1 and lb2 share VRID 73; lb1 (the master) drains for up to a minute, and proxies its own
/// address (which stays when the VIP moves) to an echo server.
fn drain_config(node: &str, priority: u8, vip: IpAddr, bind: IpAddr, backend: IpAddr) -> String {
    format!(
        "node: {node}
shutdown_grace: 60s
vrrp:
  - name: api
    interface: eth0
    vrid: 73
    priority: {priority}
    advert_interval: 100ms
    vips: [{vip}/24]
frontends:
  - name: echo
    bind: [\"{bind}:8000\"]
    backend: echo
backends:
  - name: echo
    servers:
      - {{ name: e1, address: \"{backend}:8080\" }}
"
    )
}

#[test]
fn a_second_sigterm_cuts_a_long_drain_short_after_the_release() {
    if !vipd_lab::e2e_enabled("a_second_sigterm_cuts_a_long_drain_short_after_the_release") {
        return;
    }
    let lab = Lab::new(4).expect("lab");
    let scratch = Scratch::new("second-sigterm");
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
    let lb1_address = IpAddr::V4(lab.host(LB1).ipv4);
    let lb2_address = IpAddr::V4(lab.host(LB2).ipv4);
    let _echo = lab
        .spawn(
            BACKEND,
            &["socat", "TCP-LISTEN:8080,reuseaddr,fork", "EXEC:cat"],
        )
        .expect("socat starts");
    let lb1_config = scratch.write(
        "lb1.yaml",
        &drain_config("lb1", 150, vip, lb1_address, backend),
    );
    let lb2_config = scratch.write(
        "lb2.yaml",
        &drain_config("lb2", 100, vip, lb2_address, backend),
    );
    let (lb1_log, lb2_log) = (scratch.path("lb1.log"), scratch.path("lb2.log"));
    let mut lb1 = start_vipd(&lab, LB1, &lb1_config, &lb1_log);
    let _lb2 = start_vipd(&lab, LB2, &lb2_config, &lb2_log);
    wait_for_control(&lab, LB1);
    wait_for_control(&lab, LB2);
    assert!(
        wait_until(Duration::from_secs(10), || holds(&lab, LB1, vip)
            && instance_state(&lab, LB2, "api").as_deref() == Some("backup"))
        .is_some(),
        "no lb1 master / lb2 backup:\n{}",
        log_of(&lb1_log)
    );

    // One session through lb1's own address, open for as long as the test holds it.
    let target = SocketAddr::new(lb1_address, 8000);
    let session = wait_until(Duration::from_secs(10), || {
        echo_session(&lab, target).is_ok()
    });
    assert!(
        session.is_some(),
        "the echo backend never answered through lb1"
    );
    let mut held = echo_session(&lab, target).expect("a session through lb1");

    let pid = pid_of(&lb1);
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    assert!(
        wait_until(Duration::from_secs(5), || log_of(&lb1_log)
            .contains("shutting down"))
        .is_some(),
        "lb1 did not start its shutdown:\n{}",
        log_of(&lb1_log)
    );
    assert!(
        wait_until(Duration::from_secs(5), || instance_state(&lab, LB2, "api")
            .as_deref()
            == Some("master"))
        .is_some(),
        "lb2 did not take over"
    );
    // The open session holds the drain: lb1 would wait for it up to shutdown_grace (60 s).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !lb1.has_exited(),
        "lb1 did not drain:\n{}",
        log_of(&lb1_log)
    );

    kill(pid, Signal::SIGTERM).expect("second SIGTERM");
    let exited = wait_until(Duration::from_secs(5), || lb1.has_exited());
    assert!(
        exited.is_some(),
        "a second SIGTERM did not cut the drain short:\n{}",
        log_of(&lb1_log)
    );
    assert!(
        log_of(&lb1_log).contains("cutting the drain short"),
        "{}",
        log_of(&lb1_log)
    );
    // Released on the way out: priority 0 (lb2 heard it) and the VIP gone from lb1.
    assert!(!holds(&lab, LB1, vip), "lb1 left the VIP behind");
    let lb2_status = status(&lab, LB2).expect("lb2 status");
    let heard = &lb2_status["instances"][0]["counters"]["priority_zero_received"];
    assert!(
        heard.as_u64() >= Some(1),
        "lb2 never heard priority 0: {heard}"
    );
    // The session was cut, not left hanging.
    let mut rest = Vec::new();
    held.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let ended = held.read_to_end(&mut rest);
    let still_open = matches!(&ended, Err(error) if matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert!(!still_open, "the session is still open: {ended:?}");
}

/// Connects from the client host to `target`, sends a line and reads it back: a session
/// established through the proxy to the echo server.
fn echo_session(lab: &Lab, target: SocketAddr) -> Result<TcpStream, String> {
    lab.in_host(CLIENT, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .map_err(|error| error.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|error| error.to_string())?;
        stream
            .write_all(b"ping\n")
            .map_err(|error| error.to_string())?;
        let mut echoed = [0_u8; 5];
        stream
            .read_exact(&mut echoed)
            .map_err(|error| error.to_string())?;
        if &echoed == b"ping\n" {
            Ok(stream)
        } else {
            Err(format!("echoed {echoed:?}"))
        }
    })
    .map_err(|error| error.to_string())?
}
