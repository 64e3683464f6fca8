//! deploy/systemd/vipd.service proven outside systemd (PID 1 here is not systemd): vipd runs as
//! the unit would run it and the tests check that everything it must do still works.
//!
//! - **The sandbox**: two nodes run as the unit's `User=` with exactly its ambient, inheritable
//!   and bounding capabilities and no new privileges (setpriv), its `UMask=`, and a seccomp
//!   filter built from its `SystemCallFilter=`, `SystemCallErrorNumber=`,
//!   `RestrictAddressFamilies=`, `MemoryDenyWriteExecute=`, `RestrictNamespaces=`,
//!   `RestrictRealtime=`, `RestrictSUIDSGID=` and `LockPersonality=` (support/unit_sandbox.py,
//!   which reads the unit file: the two cannot drift; `--action kill` there finds a call
//!   missing from the set). Under it: a virtual MAC instance (macvlan,
//!   /proc/sys writes), VRRP failover (raw sockets, AF_PACKET announcements, rtnetlink),
//!   proxied traffic (splice), timerfd timers, a reload, a clean stop, a SIGKILL and the
//!   unit's `ExecStopPost=vipd release` under the same sandbox. A track script shows that
//!   vipd's children get no capabilities. ProtectSystem=strict is approached by a mount
//!   namespace whose root is read-only but for the runtime and state directories. Not applied:
//!   the other mount restrictions (PrivateTmp=, ProtectHome=, PrivateDevices=, ...) and
//!   namespaces (ProtectHostname=, PrivateIPC=): vipd opens no file they would hide.
//! - **The watchdog**: vipd started with `NOTIFY_SOCKET` and `WATCHDOG_USEC`, the test acting
//!   as systemd: READY=1, then WATCHDOG=1 at the expected period; a stopped process sends none,
//!   gets the unit's `WatchdogSignal=` after the period, and `vipd release` hands the VIP to the
//!   backup.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::{Lab, LabProcess};

use crate::support::takeover_probe::skew_time;
use crate::support::{
    Scratch, VIPD, fetch, holds, instance_state, start_vipd, status, text, wait_for_control,
    wait_until,
};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/vipd.service");
const SANDBOX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/support/unit_sandbox.py"
);
const LB1: usize = 0;
const LB2: usize = 1;
const BACKEND: usize = 2;
const CLIENT: usize = 3;
const MACVLAN: &str = "vrrp.51";
const ANSWER: &str = "hello-from-inside-the-sandbox";
/// What the backend sends after [`ANSWER`]: enough to be spliced.
const BULK_BYTES: usize = 1 << 20;
const ADVERT_INTERVAL: Duration = Duration::from_millis(200);
const LB2_PRIORITY: u8 = 100;
/// Scheduling margin on a loaded 2-core machine (as in crash_restart.rs).
const MARGIN: Duration = Duration::from_millis(100);

/// The values of `key` in the unit's [Service] section, in order.
fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(UNIT).expect("the unit file");
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

fn unit_value(key: &str) -> String {
    unit_values(key)
        .pop()
        .unwrap_or_else(|| panic!("the unit sets {key}="))
}

/// `CAP_NET_ADMIN CAP_NET_RAW` as setpriv's `-all,+net_admin,+net_raw`.
fn setpriv_caps(unit_caps: &str) -> String {
    let mut caps = String::from("-all");
    for cap in unit_caps.split_whitespace() {
        caps.push_str(",+");
        caps.push_str(&cap.trim_start_matches("CAP_").to_lowercase());
    }
    caps
}

/// The unit's user, created for the tests when the system has none, and removed when the last
/// test that holds it is done with it.
struct ServiceUser {
    name: String,
    uid: u32,
    gid: u32,
}

/// Who holds the unit's user: the sandbox tests run in parallel, and the one that created the
/// user may finish first, while the other's daemons still run as it (userdel would refuse, and
/// the user would be left on the machine, where tests/package/deb.sh takes it for one that was
/// there before).
struct ServiceUserHolders {
    count: usize,
    /// This process created the user: the last holder removes it.
    created: bool,
}

static SERVICE_USER: Mutex<ServiceUserHolders> = Mutex::new(ServiceUserHolders {
    count: 0,
    created: false,
});

fn service_user_holders() -> std::sync::MutexGuard<'static, ServiceUserHolders> {
    SERVICE_USER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ServiceUser {
    fn ensure() -> Self {
        let name = unit_value("User");
        let mut holders = service_user_holders();
        if nix::unistd::User::from_name(&name).ok().flatten().is_none() {
            let status = std::process::Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    &name,
                ])
                .status()
                .expect("useradd runs");
            assert!(status.success(), "useradd {name}: {status}");
            holders.created = true;
        }
        holders.count += 1;
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .expect("the service user exists");
        Self {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// A directory of `scratch` owned by the user, as systemd makes `RuntimeDirectory=`.
    fn directory(&self, scratch: &Scratch, name: &str) -> PathBuf {
        let path = scratch.path(name);
        std::fs::create_dir_all(&path).expect("directory");
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        path
    }
}

impl Drop for ServiceUser {
    fn drop(&mut self) {
        // Held while removing: a test that starts meanwhile waits and then creates it afresh.
        let mut holders = service_user_holders();
        holders.count -= 1;
        if holders.count > 0 || !holders.created {
            return;
        }
        holders.created = false;
        // A script the daemon ran may still be exiting: userdel refuses a user with processes.
        for _ in 0..20 {
            let removed = std::process::Command::new("userdel")
                .arg(&self.name)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if removed {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove the user {} the test created", self.name);
    }
}

/// What goes before a vipd command to run it as the unit would: setpriv (user, capabilities, no
/// new privileges), then the sandbox script (UMask, system call filter), `without` the calls
/// named, and `caps` instead of the unit's when given.
fn sandboxed(user: &ServiceUser, caps: Option<&str>, without: &[&str]) -> Vec<String> {
    let ambient = setpriv_caps(caps.unwrap_or(&unit_value("AmbientCapabilities")));
    let bounding = setpriv_caps(caps.unwrap_or(&unit_value("CapabilityBoundingSet")));
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    let mut prefix: Vec<String> = [
        "setpriv",
        &format!("--reuid={}", user.uid),
        &format!("--regid={}", user.gid),
        "--init-groups",
        "--inh-caps",
        &ambient,
        "--ambient-caps",
        &ambient,
        "--bounding-set",
        &bounding,
        "--no-new-privs",
        "--",
        "/usr/bin/python3",
        SANDBOX,
    ]
    .map(str::to_owned)
    .to_vec();
    for call in without {
        prefix.extend(["--without".to_owned(), (*call).to_owned()]);
    }
    prefix.extend([UNIT.to_owned(), "--".to_owned()]);
    prefix
}

fn node_config(node: &str, priority: u8, backend: IpAddr, runtime: &Path) -> String {
    let vip = Lab::vip_v4(0);
    let caps = runtime.join("script-caps");
    format!(
        "node: {node}
shutdown_grace: 1s
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: {priority}
    advert_interval: {interval}ms
    virtual_mac: true
    vips: [\"{vip}/24\"]
    track:
      - {{ script: caps, weight: -10 }}
scripts:
  caps:
    command: [/bin/sh, -c, \"grep -E '^Cap(Eff|Amb)' /proc/self/status > {caps}\"]
    interval: 1s
    fall: 1
    rise: 1
frontends:
  - name: web
    bind: [\"{vip}:80\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
",
        interval = ADVERT_INTERVAL.as_millis(),
        caps = caps.display(),
    )
}

/// A lab of two sandboxed vipd nodes (each with its runtime and state directories), a backend
/// and a client.
struct SandboxedPair {
    caps: Option<String>,
    without: Vec<&'static str>,
    nodes: [Option<LabProcess>; 2],
    _backend: LabProcess,
    scratch: Scratch,
    // Dropped after the processes: the namespaces outlive the processes in them.
    lab: Lab,
    // Dropped last: userdel refuses a user that still runs processes.
    user: ServiceUser,
}

impl SandboxedPair {
    fn new(test: &str, caps: Option<&str>, without: &[&'static str]) -> Self {
        let lab = Lab::new(4).expect("lab");
        let scratch = Scratch::new(test);
        let user = ServiceUser::ensure();
        let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
        for (node, priority) in [("lb1", 150), ("lb2", LB2_PRIORITY)] {
            let runtime = user.directory(&scratch, &format!("{node}-run"));
            user.directory(&scratch, &format!("{node}-state"));
            scratch.write(
                &format!("{node}.yaml"),
                &node_config(node, priority, backend, &runtime),
            );
        }
        // The answer, then bulk: a session's direction splices once a read fills the proxy's
        // copy buffer (vipd-proxy forward.rs).
        let bulk = format!("SYSTEM:echo {ANSWER}; head -c {BULK_BYTES} /dev/zero");
        let backend_process = lab
            .spawn(BACKEND, &["socat", "TCP-LISTEN:8080,reuseaddr,fork", &bulk])
            .expect("socat starts");
        Self {
            _backend: backend_process,
            user,
            caps: caps.map(str::to_owned),
            without: without.to_vec(),
            nodes: [None, None],
            scratch,
            lab,
        }
    }

    fn name(host: usize) -> &'static str {
        ["lb1", "lb2"][host]
    }

    fn config(&self, host: usize) -> String {
        let name = Self::name(host);
        self.scratch
            .path(&format!("{name}.yaml"))
            .display()
            .to_string()
    }

    fn log(&self, host: usize) -> String {
        let name = Self::name(host);
        std::fs::read_to_string(self.scratch.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// `vipd ARGS` in `host`, sandboxed as the unit runs its commands, with the unit's
    /// `RuntimeDirectory=` and `StateDirectory=`, logging to (appending to) `lbN.log`.
    fn command(&self, host: usize, args: &[&str]) -> std::process::Command {
        let name = Self::name(host);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.scratch.path(&format!("{name}.log")))
            .expect("log file");
        let run = self
            .scratch
            .path(&format!("{name}-run"))
            .display()
            .to_string();
        let state = self
            .scratch
            .path(&format!("{name}-state"))
            .display()
            .to_string();
        // ProtectSystem=strict, as far as a mount namespace of its own shows it: the root file
        // system read-only, the runtime and state directories writable (/proc, /sys and /dev
        // are mounts of their own and stay as they are).
        let mut argv: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$1\" && mount --bind \"$2\" \"$2\" \
             && mount -o remount,bind,ro / && shift 2 && exec \"$@\"",
            "sh",
            &run,
            &state,
        ]
        .map(str::to_owned)
        .to_vec();
        argv.extend(sandboxed(&self.user, self.caps.as_deref(), &self.without));
        argv.push(VIPD.to_owned());
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut command = self.lab.command_in(host, &argv).expect("host exists");
        command
            .env("VIPD_LOG", "info")
            .env(
                "RUNTIME_DIRECTORY",
                self.scratch.path(&format!("{name}-run")),
            )
            .env(
                "STATE_DIRECTORY",
                self.scratch.path(&format!("{name}-state")),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        command
    }

    fn start(&mut self, host: usize) {
        let config = self.config(host);
        let command = self.command(host, &["run", "-c", &config]);
        self.nodes[host] = Some(self.lab.spawn_command(command).expect("vipd starts"));
    }

    /// `vipd release`, as the unit's `ExecStopPost=` runs it: sandboxed too.
    fn release(&self, host: usize) -> String {
        let config = self.config(host);
        let output = self
            .command(host, &["release", "-c", &config])
            .stdout(std::process::Stdio::piped())
            .output()
            .expect("vipd release runs");
        assert!(output.status.success(), "vipd release: {}", self.log(host));
        text(&output.stdout)
    }

    fn has_macvlan(&self, host: usize) -> bool {
        self.lab
            .run(host, &["ip", "link", "show", MACVLAN])
            .is_ok_and(|out| out.contains(MACVLAN))
    }

    /// Waits until `master` holds the VIP and the other node is backup without it.
    fn settled(&self, master: usize, within: Duration) -> bool {
        let backup = 1 - master;
        wait_until(within, || {
            holds(&self.lab, master, IpAddr::V4(Lab::vip_v4(0)))
                && !holds(&self.lab, backup, IpAddr::V4(Lab::vip_v4(0)))
                && (self.nodes[backup].is_none()
                    || instance_state(&self.lab, backup, "api").as_deref() == Some("backup"))
        })
        .is_some()
    }

    fn logs(&self) -> String {
        format!("--- lb1:\n{}\n--- lb2:\n{}", self.log(LB1), self.log(LB2))
    }

    fn assert_proxies(&self, context: &str) {
        let target = SocketAddr::new(IpAddr::V4(Lab::vip_v4(0)), 80);
        let answered = wait_until(Duration::from_secs(5), || {
            fetch(&self.lab, CLIENT, target).is_ok_and(|text| text.contains(ANSWER))
        });
        assert!(
            answered.is_some(),
            "{context}: no answer through the VIP: {:?}\n{}",
            fetch(&self.lab, CLIENT, target),
            self.logs()
        );
    }
}

/// The pair started, lb1 master with the VIP, lb2 backup, traffic through lb1's proxy.
fn start_pair(pair: &mut SandboxedPair) {
    pair.start(LB1);
    wait_for_control(&pair.lab, LB1);
    pair.start(LB2);
    wait_for_control(&pair.lab, LB2);
    assert!(
        pair.settled(LB1, Duration::from_secs(10)),
        "lb1 master, lb2 backup never came:\n{}",
        pair.logs()
    );
    pair.assert_proxies("lb1 master");
    let spliced = status(&pair.lab, LB1).expect("status")["frontends"][0]["bytes_spliced"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        spliced >= BULK_BYTES as u64 / 2,
        "{spliced} bytes spliced of {BULK_BYTES}:\n{}",
        pair.logs()
    );
}

/// The daemon in `host` runs as the unit's user, with its capabilities and no more, no new
/// privileges and a seccomp filter: the sandbox is in force, not only asked for.
fn assert_sandboxed(pair: &SandboxedPair, host: usize) {
    let pid = pair.nodes[host].as_ref().expect("running").pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), pair.user.uid.to_string(), "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
    assert_eq!(field("CapEff:"), "0000000000003400", "{status}");
    assert_eq!(field("CapBnd:"), "0000000000003400", "{status}");
    // Cleared by vipd at start: its children inherit none.
    assert_eq!(field("CapAmb:"), "0000000000000000", "{status}");
    let umask = field("Umask:");
    assert_eq!(umask, unit_value("UMask"), "{status}");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root_options = mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(4) == Some(&"/")).then(|| fields.get(5).copied().unwrap_or_default())
    });
    assert!(
        root_options.is_some_and(|options| options.split(',').any(|option| option == "ro")),
        "the root is not read-only: {root_options:?}"
    );
}

/// SIGUSR1's dump lands in the runtime directory (writable under the read-only root), readable
/// by vipd's user only (UMask=0077).
fn assert_dump_is_private(pair: &SandboxedPair, host: usize) {
    use std::os::unix::fs::PermissionsExt as _;
    let pid = pair.nodes[host].as_ref().expect("running").pid();
    let pid = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    kill(pid, Signal::SIGUSR1).expect("SIGUSR1");
    let dump = pair
        .scratch
        .path(&format!("{}-run", SandboxedPair::name(host)))
        .join("vipd.status.json");
    assert!(
        wait_until(Duration::from_secs(5), || dump.exists()).is_some(),
        "no status dump:\n{}",
        pair.logs()
    );
    let mode = std::fs::metadata(&dump).expect("dump").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", dump.display());
}

/// A child of the sandboxed daemon (the track script) has no capability at all.
fn assert_script_has_no_capabilities(pair: &SandboxedPair) {
    let written = pair.scratch.path("lb1-run").join("script-caps");
    let caps = wait_until(Duration::from_secs(5), || written.exists())
        .and_then(|_| std::fs::read_to_string(&written).ok())
        .unwrap_or_default();
    for line in ["CapEff:", "CapAmb:"] {
        let value = caps
            .lines()
            .find_map(|found| found.strip_prefix(line))
            .map(str::trim);
        assert_eq!(
            value,
            Some("0000000000000000"),
            "the track script ran with capabilities:\n{caps}"
        );
    }
}

/// Calls the filter refused, capabilities missing, families refused: the daemon may log such
/// an error and go on, which the steps above would not all notice.
fn assert_nothing_refused(pair: &SandboxedPair) {
    for refusal in [
        "Operation not permitted",
        "os error 1)",
        "Address family not supported",
    ] {
        let logs = pair.logs();
        assert!(!logs.contains(refusal), "{refusal} in a log:\n{logs}");
    }
}

/// What the sandbox needs besides the lab's prerequisites, if something is missing.
fn missing_sandbox_tool() -> Option<&'static str> {
    let works = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !works("/usr/bin/python3", &["-c", "import seccomp"]) {
        return Some("python3-seccomp is not installed");
    }
    if !works("systemd-analyze", &["syscall-filter", "@default"]) {
        return Some("systemd-analyze (Debian package systemd) is not installed");
    }
    None
}

/// The sandbox tests share the unit's user and run in parallel: the one that created it must not
/// remove it while another still runs daemons as it, and the last one done removes it.
#[test]
fn the_service_user_outlives_the_test_that_created_it() {
    if !vipd_lab::e2e_enabled("the_service_user_outlives_the_test_that_created_it") {
        return;
    }
    let exists = |name: &str| nix::unistd::User::from_name(name).ok().flatten().is_some();
    let name = unit_value("User");
    let existed_before = exists(&name);
    let first = ServiceUser::ensure();
    let second = ServiceUser::ensure();
    drop(first);
    assert!(
        exists(&name),
        "the user {name} was removed while a test still holds it"
    );
    drop(second);
    let holders = service_user_holders();
    if holders.count == 0 && !existed_before {
        assert!(!exists(&name), "the user {name} the tests created was left");
    }
}

#[test]
fn under_the_units_sandbox_vipd_fails_over_proxies_reloads_stops_and_is_released() {
    let test = "under_the_units_sandbox_vipd_fails_over_proxies_reloads_stops_and_is_released";
    if !vipd_lab::e2e_enabled(test) {
        return;
    }
    if let Some(missing) = missing_sandbox_tool() {
        assert!(
            std::env::var("VIPD_E2E").as_deref() != Ok("required"),
            "end-to-end test {test} cannot run ({missing}) and VIPD_E2E=required"
        );
        eprintln!("SKIPPED end-to-end test {test}: {missing}");
        return;
    }
    let mut pair = SandboxedPair::new("unit-sandbox", None, &[]);
    start_pair(&mut pair);
    assert_sandboxed(&pair, LB1);
    assert_sandboxed(&pair, LB2);
    assert!(pair.has_macvlan(LB1) && pair.has_macvlan(LB2));
    assert_script_has_no_capabilities(&pair);
    assert_dump_is_private(&pair, LB1);

    // Reload (SIGHUP through `vipd reload`, as the unit's ExecReload=).
    let config = pair.config(LB1);
    let reloaded = pair
        .lab
        .run(LB1, &[VIPD, "reload", "-c", &config])
        .unwrap_or_else(|error| panic!("vipd reload: {error}\n{}", pair.logs()));
    assert!(!reloaded.contains("rejected"), "{reloaded}");

    // A clean stop: lb2 takes over, lb1 removed its macvlan and exits 0.
    let stopped = pair.nodes[LB1].take().expect("lb1 runs").stop();
    assert!(
        stopped.is_some_and(|status| status.success()),
        "lb1 stopped with {stopped:?}:\n{}",
        pair.logs()
    );
    assert!(pair.settled(LB2, Duration::from_secs(5)), "{}", pair.logs());
    assert!(!pair.has_macvlan(LB1), "a clean stop left the macvlan");
    pair.assert_proxies("lb2 master");

    // Started again it preempts; killed outright, the release hands over at once.
    pair.start(LB1);
    assert!(
        pair.settled(LB1, Duration::from_secs(10)),
        "{}",
        pair.logs()
    );
    // Someone else's macvlan on the same parent: the release must leave it.
    let other = "vrrp.52";
    pair.lab
        .run(
            LB1,
            &[
                "ip", "link", "add", other, "link", "eth0", "type", "macvlan", "mode", "vepa",
            ],
        )
        .expect("another macvlan");
    pair.nodes[LB1]
        .take()
        .expect("lb1 runs")
        .stop_with(Signal::SIGKILL);
    let released_at = Instant::now();
    let released = pair.release(LB1);
    assert!(released.contains("released"), "{released}");
    let bound = ADVERT_INTERVAL + skew_time(LB2_PRIORITY, ADVERT_INTERVAL) + MARGIN;
    assert!(
        pair.settled(LB2, bound),
        "lb2 did not hold the VIP alone within {bound:?} of the release ({:?}):\n{}",
        released_at.elapsed(),
        pair.logs()
    );
    assert!(
        !pair.has_macvlan(LB1),
        "the release left the macvlan: {released}"
    );
    assert!(
        pair.lab
            .run(LB1, &["ip", "link", "show", other])
            .is_ok_and(|out| out.contains(other)),
        "the release removed a macvlan that is not the configuration's"
    );
    pair.assert_proxies("lb2 master after the release");

    let stopped = pair.nodes[LB2].take().expect("lb2 runs").stop();
    assert!(
        stopped.is_some_and(|status| status.success()),
        "{}",
        pair.logs()
    );
    assert_nothing_refused(&pair);
}

/// The test acting as systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(scratch: &Scratch) -> Self {
        let path = scratch.path("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("notify socket");
        Self { socket, path }
    }

    /// The next message, or `None` when none comes within `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("timeout");
        let mut buffer = [0_u8; 1024];
        let length = self.socket.recv(&mut buffer).ok()?;
        Some(text(&buffer[..length]))
    }

    /// When keep-alives arrived during `span`, other messages skipped.
    fn keep_alives(&self, span: Duration) -> Vec<Instant> {
        let end = Instant::now() + span;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(message) if message == "WATCHDOG=1" => seen.push(Instant::now()),
                Some(_) => {}
                None => break,
            }
        }
        seen
    }
}

#[test]
fn a_stopped_daemon_stops_its_watchdog_keep_alives_and_is_killed_and_released() {
    if !vipd_lab::e2e_enabled(
        "a_stopped_daemon_stops_its_watchdog_keep_alives_and_is_killed_and_released",
    ) {
        return;
    }
    // Shorter than the unit's, for a quick test; the arithmetic is the same (watchdog.rs).
    let watchdog = Duration::from_secs(2);
    let signal = Signal::from_str(&unit_value("WatchdogSignal")).expect("a signal name");
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("unit-watchdog");
    let notify = NotifySocket::bind(&scratch);
    let vip = IpAddr::V4(Lab::vip_v4(0));
    let config = |node: &str, priority: u8| {
        scratch.write(
            &format!("{node}.yaml"),
            &format!(
                "node: {node}\nvrrp:\n  - {{ name: api, interface: eth0, vrid: 51, priority: {priority}, advert_interval: {}ms, vips: [\"{vip}/24\"] }}\n",
                ADVERT_INTERVAL.as_millis()
            ),
        )
    };
    let (lb1_config, lb2_config) = (config("lb1", 150), config("lb2", LB2_PRIORITY));
    let mut command = lab
        .command_in(LB1, &[VIPD, "run", "-c", &lb1_config.display().to_string()])
        .expect("host exists");
    command
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(scratch.path("lb1.log")).expect("log"));
    let mut lb1 = lab.spawn_command(command).expect("vipd starts");
    let ready = notify.next(Duration::from_secs(10)).unwrap_or_default();
    assert!(ready.starts_with("READY=1"), "first message: {ready:?}");
    let _lb2 = start_vipd(&lab, LB2, &lb2_config, &scratch.path("lb2.log"));
    let two_holders_free = || holds(&lab, LB1, vip) && !holds(&lab, LB2, vip);
    assert!(wait_until(Duration::from_secs(10), two_holders_free).is_some());

    // Every quarter of the period; systemd only needs one per period.
    let alive = notify.keep_alives(watchdog * 2);
    let gaps: Vec<Duration> = alive.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert!(
        alive.len() >= 6,
        "keep-alives in {:?}: {alive:?}",
        watchdog * 2
    );
    assert!(
        gaps.iter().all(|gap| *gap <= watchdog / 2),
        "gaps between keep-alives: {gaps:?}"
    );

    // Hung: no keep-alive for a whole period, so systemd would kill it now.
    let pid = Pid::from_raw(i32::try_from(lb1.pid()).expect("a pid"));
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let after_stop = notify.keep_alives(watchdog);
    assert!(
        after_stop.is_empty(),
        "keep-alives from a stopped process: {after_stop:?}"
    );
    lb1.stop_with(signal);
    let released_at = Instant::now();
    let released = lab
        .run(
            LB1,
            &[VIPD, "release", "-c", &lb1_config.display().to_string()],
        )
        .expect("vipd release");
    assert!(released.contains("released"), "{released}");
    let bound = ADVERT_INTERVAL + skew_time(LB2_PRIORITY, ADVERT_INTERVAL) + MARGIN;
    let one_holder = wait_until(bound, || holds(&lab, LB2, vip) && !holds(&lab, LB1, vip));
    assert!(
        one_holder.is_some(),
        "lb2 did not hold the VIP alone within {bound:?} of the release ({:?})",
        released_at.elapsed()
    );
}
