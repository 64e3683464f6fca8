//! Shared pieces of the end-to-end tests of the `vipd` binary: a lab of load-balancer nodes, a
//! backend and a client; configuration files; waiting for VIPs; talking to the control server.
#![allow(dead_code)] // each test file uses a different part

pub mod announce;
pub mod browser;
pub mod ecmp;
pub mod failover;
pub mod failover_timing;
pub mod keepalived;
pub mod takeover_probe;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vipd_lab::http::{Client, Response};
use vipd_lab::{Lab, LabProcess};

/// The vipd binary cargo built for these tests.
pub const VIPD: &str = env!("CARGO_BIN_EXE_vipd");

/// `vipd` as a user runs it, outside any lab.
pub fn vipd() -> std::process::Command {
    std::process::Command::new(VIPD)
}

/// A child's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch directory for one test's files, removed on drop.
pub struct Scratch(pub PathBuf);

/// Numbers the scratch directories of this process: all tests share one process, and two of
/// them may pass the same name.
static NEXT_SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl Scratch {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vipd-e2e-{}x{}-{test}",
            std::process::id(),
            NEXT_SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    /// Where a file `name` of the scratch directory goes.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `vipd run -c config` in `host` as root, logging to `log`.
pub fn start_vipd(lab: &Lab, host: usize, config: &Path, log: &Path) -> LabProcess {
    start_vipd_with(lab, host, &[], &[], config, log)
}

/// Starts `vipd run --log-format json -c config` in `host` as root, logging to `log`.
pub fn start_vipd_logging_json(lab: &Lab, host: usize, config: &Path, log: &Path) -> LabProcess {
    start_vipd_with(lab, host, &[], &["--log-format", "json"], config, log)
}

/// Starts `vipd run -c config` in `host` as root with `STATE_DIRECTORY=state` (where systemd's
/// `StateDirectory=` points it), so that the admin state survives a restart; logs to `log`
/// (appended to, so that a restarted daemon's lines follow the first one's).
pub fn start_vipd_keeping_state(
    lab: &Lab,
    host: usize,
    config: &Path,
    log: &Path,
    state: &Path,
) -> LabProcess {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let config = config.display().to_string();
    let mut command = lab
        .command_in(host, &[VIPD, "run", "-c", &config])
        .expect("host exists");
    command
        .env("VIPD_LOG", "info")
        .env("STATE_DIRECTORY", state)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    lab.spawn_command(command).expect("vipd starts")
}

/// The capabilities deploy/systemd/vipd.service grants, and nothing else.
pub const SERVICE_CAPS: &str = "-all,+net_admin,+net_raw,+net_bind_service";

/// Starts vipd as the unprivileged user `nobody` with exactly the systemd unit's ambient
/// capabilities (setpriv from util-linux does what systemd's AmbientCapabilities= does).
pub fn start_vipd_unprivileged(lab: &Lab, host: usize, config: &Path, log: &Path) -> LabProcess {
    let prefix = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps",
        SERVICE_CAPS,
        "--ambient-caps",
        SERVICE_CAPS,
        "--bounding-set",
        SERVICE_CAPS,
        "--",
    ];
    start_vipd_with(lab, host, &prefix, &[], config, log)
}

/// `prefix` goes before the vipd command, `run_options` after `vipd run`.
fn start_vipd_with(
    lab: &Lab,
    host: usize,
    prefix: &[&str],
    run_options: &[&str],
    config: &Path,
    log: &Path,
) -> LabProcess {
    let log_file = std::fs::File::create(log).expect("log file");
    let config = config.display().to_string();
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend([VIPD, "run"]);
    args.extend(run_options);
    args.extend(["-c", &config]);
    let mut command = lab.command_in(host, &args).expect("host exists");
    command
        .env("VIPD_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    lab.spawn_command(command).expect("vipd starts")
}

/// Starts `vipd run` as root in hosts 0 (lb1) and 1 (lb2) from the configuration texts
/// `configs` (one instance named `api`), logging to `lb1.log` and `lb2.log` in `scratch`, and
/// returns once lb1 holds `vip` and lb2 is backup.
pub fn start_master_and_backup(
    lab: &Lab,
    scratch: &Scratch,
    configs: [&str; 2],
    vip: IpAddr,
) -> [LabProcess; 2] {
    let [lb1, lb2] = [0, 1].map(|host| {
        let name = format!("lb{}", host + 1);
        let config = scratch.write(&format!("{name}.yaml"), configs[host]);
        start_vipd(lab, host, &config, &scratch.path(&format!("{name}.log")))
    });
    assert!(
        wait_until(Duration::from_secs(10), || holds(lab, 0, vip)
            && instance_state(lab, 1, "api").as_deref() == Some("backup"))
        .is_some(),
        "no lb1 master / lb2 backup; lb1 log:\n{}",
        std::fs::read_to_string(scratch.path("lb1.log")).unwrap_or_default()
    );
    [lb1, lb2]
}

/// A TCP server in `host` on `port` that answers every connection with `reply` and closes.
pub fn start_backend(lab: &Lab, host: usize, port: u16, reply: &str) -> LabProcess {
    let listen = format!("TCP-LISTEN:{port},reuseaddr,fork");
    let answer = format!("SYSTEM:echo {reply}");
    lab.spawn(host, &["socat", &listen, &answer])
        .expect("socat starts")
}

/// Whether `address` is configured on `host`'s interfaces.
pub fn holds(lab: &Lab, host: usize, address: IpAddr) -> bool {
    let family = if address.is_ipv4() { "-4" } else { "-6" };
    let address = address.to_string();
    lab.run(host, &["ip", "-o", family, "addr", "show"])
        .is_ok_and(|out| {
            out.split_whitespace()
                .any(|word| word.split('/').next() == Some(address.as_str()))
        })
}

/// Polls until `condition` holds or `timeout` passes; returns how long it took.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Connects from `host` to `target`, reads until the server closes, returns the text.
pub fn fetch(lab: &Lab, host: usize, target: SocketAddr) -> Result<String, String> {
    lab.in_host(host, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .map_err(|error| error.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|error| error.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|error| error.to_string())?;
        Ok(text)
    })
    .map_err(|error| error.to_string())?
}

/// The link-layer address `host` has in its neighbour table for `address`, if any.
pub fn neighbour_mac(lab: &Lab, host: usize, address: IpAddr) -> Option<String> {
    let table = lab
        .run(host, &["ip", "neigh", "show", &address.to_string()])
        .ok()?;
    let mut words = table.split_whitespace();
    words.find(|word| *word == "lladdr")?;
    words.next().map(str::to_owned)
}

/// A MAC as `ip neigh` prints it: lower-case hex pairs joined by colons.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

/// The control server's default address, inside each lab host's namespace.
pub const CONTROL: &str = "127.0.0.1:9650";

/// `GET path` on the control server of the vipd in `host`: the body of a 200 answer.
pub fn control_get(lab: &Lab, host: usize, path: &str) -> Result<String, String> {
    let response = http_request(lab, host, Client::new(), "GET", CONTROL, path)?;
    let body = response.success().map_err(|error| error.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends `method path` to `address` from inside `host` with the settings of `client` (a token,
/// say), bounded by 2 s; the answer whatever its status.
pub fn http_request(
    lab: &Lab,
    host: usize,
    client: Client,
    method: &str,
    address: &str,
    path: &str,
) -> Result<Response, String> {
    let (method, address, path) = (method.to_owned(), address.to_owned(), path.to_owned());
    lab.in_host(host, move || {
        client
            .timeout(Duration::from_secs(2))
            .send_blocking(&method, &address, &path, &[])
    })
    .map_err(|error| error.to_string())?
    .map_err(|error| error.to_string())
}

/// The `/status` JSON of the vipd in `host`.
pub fn status(lab: &Lab, host: usize) -> Result<serde_json::Value, String> {
    let body = control_get(lab, host, "/status")?;
    serde_json::from_str(&body).map_err(|error| format!("{error}: {body}"))
}

/// The state of instance `instance` on `host` ("master", "backup", ...), if the daemon answers.
pub fn instance_state(lab: &Lab, host: usize, instance: &str) -> Option<String> {
    let status = status(lab, host).ok()?;
    status["instances"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == instance)
        .and_then(|entry| entry["state"].as_str().map(str::to_owned))
}

/// Waits for the control server of `host` to answer.
pub fn wait_for_control(lab: &Lab, host: usize) {
    assert!(
        wait_until(Duration::from_secs(20), || status(lab, host).is_ok()).is_some(),
        "vipd in host {host} never answered on its control port"
    );
}
