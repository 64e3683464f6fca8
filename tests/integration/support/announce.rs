//! N vipd nodes announcing one VIP over BGP through the real BIRD: a [`RoutedLab`] (router with
//! ECMP, a BIRD speaker per node running deploy/bird/vipd-node.conf, a client), and on every node
//! a backend answering with the node's name and vipd with an `announce:` group (an IPv4 and an
//! IPv6 VIP) tracking the frontend. (Used by announce_bgp.rs.)

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use vipd_lab::http::Client;
use vipd_lab::{LabProcess, Place, RoutedLab, RoutedOptions};

use super::{CONTROL, Scratch, VIPD, wait_until};

/// Every node's backend, on 127.0.0.1 in the node's namespace.
pub const BACKEND_PORT: u16 = 8080;
/// The frontends' port, on the announced VIP (and on the LAN VIP in mixed mode).
pub const FRONTEND_PORT: u16 = 80;
/// The group every node config announces.
pub const GROUP: &str = "ingress";
/// Mixed mode's VRRP instance, on nodes 0 and 1.
pub const INSTANCE: &str = "api";
/// Scheduling on a loaded machine, BIRD noticing the address change, the UPDATE, the router's
/// kernel route and the `ip route` poll that sees it: on top of a bound from vipd's timers.
pub const PROPAGATION_MARGIN: Duration = Duration::from_millis(300);

/// What differs between the tests' clusters.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub nodes: usize,
    pub bfd: bool,
    /// The backends' TCP health check interval (rise 1, fall 1: one failed check marks the
    /// only server down, and the frontend tracker, weight 0, withdraws the group).
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// `announce.withdraw_delay`.
    pub withdraw_delay: Duration,
    /// Nodes 0 and 1 also run a VRRP instance (lb1 150, lb2 100) for [`RoutedLab::lan_vip_v4`]
    /// with a frontend on it: VRRP and announced VIPs in one file.
    pub mixed: bool,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            nodes: 3,
            bfd: false,
            health_interval: Duration::from_millis(200),
            health_timeout: Duration::from_millis(100),
            withdraw_delay: Duration::from_secs(1),
            mixed: false,
        }
    }
}

impl ClusterSettings {
    /// The longest from a backend failing (refusing connections) to the router dropping that
    /// node: the next health check comes within one interval (plus 5 % jitter) and fails at
    /// once on the refusal, or at the latest after its timeout; the failed check fails the
    /// frontend tracker, which withdraws the group within the same check period; then the
    /// propagation margin.
    pub fn withdrawal_bound(&self) -> Duration {
        self.health_interval * 105 / 100 + self.health_timeout + PROPAGATION_MARGIN
    }

    fn config(&self, lab: &RoutedLab, node: usize) -> String {
        let (vip, vip_v6) = (RoutedLab::vip_v4(0), RoutedLab::vip_v6(0));
        let millis = |duration: Duration| duration.as_millis();
        let mut text = format!(
            "node: {name}
announce:
  withdraw_delay: {withdraw}ms
  groups:
    - name: {GROUP}
      vips: [\"{vip}\", \"{vip_v6}\"]
      track:
        - frontend: web
          min_up: 1
",
            name = lab.node(node).name,
            withdraw = millis(self.withdraw_delay),
        );
        let mut frontends = format!(
            "frontends:
  - name: web
    bind: [\"{vip}:{FRONTEND_PORT}\", \"[{vip_v6}]:{FRONTEND_PORT}\"]
    backend: web
"
        );
        if self.mixed && node < 2 {
            let priority = if node == 0 { 150 } else { 100 };
            let lan_vip = RoutedLab::lan_vip_v4(0);
            let _ = write!(
                text,
                "vrrp:
  - name: {INSTANCE}
    interface: eth0
    vrid: 51
    priority: {priority}
    advert_interval: 100ms
    vips: [\"{lan_vip}/24\"]
"
            );
            let _ = write!(
                frontends,
                "  - name: api
    bind: [\"{lan_vip}:{FRONTEND_PORT}\"]
    backend: web
"
            );
        }
        let _ = write!(
            text,
            "{frontends}backends:
  - name: web
    health: {{ kind: tcp, interval: {interval}ms, timeout: {timeout}ms, rise: 1, fall: 1 }}
    servers:
      - {{ name: local, address: \"127.0.0.1:{BACKEND_PORT}\" }}
",
            interval = millis(self.health_interval),
            timeout = millis(self.health_timeout),
        );
        text
    }
}

/// The routed lab with vipd and a backend on every node, every node announced. Everything is
/// torn down on drop (the lab last: the namespaces outlive the processes in them).
pub struct Cluster {
    pub settings: ClusterSettings,
    /// The announced VIP, [`RoutedLab::vip_v4`] 0; the group also announces
    /// [`RoutedLab::vip_v6`] 0, with a frontend on it too.
    pub vip: IpAddr,
    /// `None` once a test stopped that node's vipd.
    pub vipds: Vec<Option<LabProcess>>,
    /// `None` once a test stopped that node's backend.
    pub backends: Vec<Option<LabProcess>>,
    pub scratch: Scratch,
    pub lab: RoutedLab,
}

impl Cluster {
    /// Builds the lab and starts every node; returns once the router has every node as a next
    /// hop for the VIP.
    ///
    /// # Panics
    /// When the lab cannot be built or the nodes are not all announced within 20 s.
    pub fn start(test: &str, settings: ClusterSettings) -> Self {
        let lab = RoutedLab::with_options(RoutedOptions {
            nodes: settings.nodes,
            bfd: settings.bfd,
            node_speakers: true,
        })
        .expect("routed lab with BIRD");
        let scratch = Scratch::new(test);
        let mut cluster = Self {
            vip: IpAddr::V4(RoutedLab::vip_v4(0)),
            vipds: Vec::new(),
            backends: Vec::new(),
            scratch,
            lab,
            settings,
        };
        for node in 0..cluster.settings.nodes {
            let backend = cluster
                .lab
                .start_backend(node, BACKEND_PORT)
                .expect("backend starts");
            cluster.backends.push(Some(backend));
            let name = cluster.lab.node(node).name.clone();
            let text = cluster.settings.config(&cluster.lab, node);
            let config = cluster.scratch.write(&format!("{name}.yaml"), &text);
            let log = cluster.scratch.path(&format!("{name}.log"));
            cluster
                .vipds
                .push(Some(start_vipd(&cluster.lab, node, &config, &log)));
        }
        let nodes = cluster.settings.nodes;
        if let Err(error) =
            cluster
                .lab
                .wait_for_next_hop_count(cluster.vip, nodes, Duration::from_secs(20))
        {
            panic!("not every node announced: {error}\n{}", cluster.logs());
        }
        cluster
    }

    /// The frontend on the announced VIP.
    pub fn target(&self) -> SocketAddr {
        SocketAddr::new(self.vip, FRONTEND_PORT)
    }

    /// The router's next hop for `node`.
    pub fn next_hop(&self, node: usize) -> IpAddr {
        self.lab.next_hop_of(node, self.vip).expect("node exists")
    }

    /// Every vipd log and the router's BIRD log, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for node in self.lab.nodes() {
            let log = self.scratch.path(&format!("{}.log", node.name));
            let _ = writeln!(
                text,
                "--- {} vipd log:\n{}",
                node.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(log) = self.lab.bird_log(Place::Router) {
            let _ = writeln!(
                text,
                "--- router BIRD log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        text
    }

    /// Whether `node` has a listener on the VIP's frontend port.
    pub fn listening(&self, node: usize) -> bool {
        let source = self.target().to_string();
        self.lab
            .run(Place::Node(node), &["ss", "-Htln", "src", &source])
            .is_ok_and(|out| !out.trim().is_empty())
    }

    /// The `/status` JSON of `node`'s vipd.
    pub fn status(&self, node: usize) -> Result<serde_json::Value, String> {
        let body = self
            .lab
            .in_namespace(Place::Node(node), || {
                Client::new().timeout(Duration::from_secs(2)).send_blocking(
                    "GET",
                    CONTROL,
                    "/status",
                    &[],
                )
            })
            .map_err(|error| error.to_string())?
            .map_err(|error| error.to_string())?
            .success()
            .map_err(|error| error.to_string())?;
        serde_json::from_slice(&body).map_err(|error| error.to_string())
    }

    /// The state of the mixed-mode VRRP instance on `node` ("master", "backup", ...).
    pub fn instance_state(&self, node: usize) -> Option<String> {
        let status = self.status(node).ok()?;
        status["instances"]
            .as_array()?
            .iter()
            .find(|entry| entry["name"] == INSTANCE)
            .and_then(|entry| entry["state"].as_str().map(str::to_owned))
    }

    /// Waits until `node` holds `address` (on any interface), at most `timeout`.
    pub fn wait_until_held(&self, node: usize, address: IpAddr, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.lab.holds(Place::Node(node), address).unwrap_or(false)
        })
        .is_some()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL, not SIGTERM: a planned stop waits withdraw_delay, node after node.
        for vipd in self.vipds.iter_mut().filter_map(Option::as_mut) {
            vipd.stop_with(Signal::SIGKILL);
        }
    }
}

/// Starts `vipd run -c config` as root in `node`, logging to `log`.
pub fn start_vipd(lab: &RoutedLab, node: usize, config: &Path, log: &Path) -> LabProcess {
    let log_file = std::fs::File::create(log).expect("log file");
    let config = config.display().to_string();
    let mut command = lab
        .command_in(Place::Node(node), &[VIPD, "run", "-c", &config])
        .expect("node exists");
    command
        .env("VIPD_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    lab.spawn_command(command).expect("vipd starts")
}
