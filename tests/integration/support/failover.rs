//! A two-node vipd pair in front of three backends, for failure scenarios: configuration per
//! protocol variant, the VRRP timer formulas the assertions are derived from, netlink watches of
//! the VIP, and a network rule that cuts one node off from the backends.
//! (Used by scenarios_failures.rs.)

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vipd_lab::{Lab, LabProcess};

use super::{
    Scratch, fetch, holds, instance_state, start_backend, start_vipd, status, wait_for_control,
    wait_until,
};

pub const LB1: usize = 0;
pub const LB2: usize = 1;
pub const CLIENT: usize = 2;
pub const BACKENDS: [usize; 3] = [3, 4, 5];
/// The instance name every node config uses.
pub const INSTANCE: &str = "api";
pub const LB1_PRIORITY: u8 = 150;
pub const LB2_PRIORITY: u8 = 100;
/// The frontend tracker's weight: 150 − 60 = 90 < 100, so a master that loses its backends hands
/// over; 100 − 60 = 40 < 90, so when both lose them the master stays.
pub const TRACK_WEIGHT: i16 = -60;
/// The health check's `fall`: consecutive failures before a server is down.
pub const HEALTH_FALL: u32 = 2;
const BACKEND_PORT: u16 = 8080;
const BACKEND_REPLY: &str = "hello-from-backend";
const CUT_OFF_TABLE: &str = "vipd_scenario_cut_off";

/// How adverts travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Multicast,
    /// To the other node's address only (`unicast.peers`).
    Unicast,
}

/// What differs between the scenarios' pairs.
#[derive(Clone, Debug)]
pub struct PairSettings {
    pub version: u8,
    pub advert_interval: Duration,
    /// Use the lab's IPv6 VIP instead of its IPv4 one (the backends stay IPv4).
    pub ipv6: bool,
    pub delivery: Delivery,
    /// v2 only.
    pub auth_password: Option<&'static str>,
    /// Track the frontend (weight [`TRACK_WEIGHT`]).
    pub track_frontend: bool,
    /// The backends' TCP health check interval (timeout 80 % of it, rise 1, fall 2).
    pub health_interval: Duration,
    /// Whether a new master sends its second announcement burst (`garp.delay`, default 5 s);
    /// without it, every later announcement is a re-announcement the test caused.
    pub garp_second_burst: bool,
}

impl Default for PairSettings {
    fn default() -> Self {
        Self {
            version: 3,
            advert_interval: Duration::from_millis(100),
            ipv6: false,
            delivery: Delivery::Multicast,
            auth_password: None,
            track_frontend: false,
            health_interval: Duration::from_millis(200),
            garp_second_burst: true,
        }
    }
}

impl PairSettings {
    pub fn vip(&self) -> IpAddr {
        if self.ipv6 {
            IpAddr::V6(Lab::vip_v6(0))
        } else {
            IpAddr::V4(Lab::vip_v4(0))
        }
    }

    /// The VIP's prefix length as configured.
    pub fn prefix_len(&self) -> u8 {
        if self.ipv6 { 64 } else { 24 }
    }

    fn health_timeout(&self) -> Duration {
        self.health_interval * 4 / 5
    }

    /// The longest a health checker takes to call a server down once it stops answering
    /// (`fall` = 2): the next check starts within one interval and times out; the second
    /// follows after the faster interval of a pending change (vipd-proxy's fastinter, a quarter
    /// of the interval but at least 50 ms) and times out too.
    pub fn health_detection(&self) -> Duration {
        let fastinter = (self.health_interval / 4).max(Duration::from_millis(50));
        self.health_interval + self.health_timeout() + fastinter + self.health_timeout()
    }

    /// RFC 9568 6.1: Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256; RFC 3768
    /// (v2) is the same in whole seconds.
    pub fn skew(&self, priority: u8) -> Duration {
        super::takeover_probe::skew_time(priority, self.advert_interval)
    }

    /// RFC 9568 6.1: Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down(&self, priority: u8) -> Duration {
        super::takeover_probe::master_down_interval(priority, self.advert_interval)
    }

    fn config(&self, lab: &Lab, node: usize, priority: u8) -> String {
        let vip = self.vip();
        let advert_interval = if self.version == 2 {
            format!("{}s", self.advert_interval.as_secs())
        } else {
            format!("{}ms", self.advert_interval.as_millis())
        };
        let mut instance = format!(
            "  - name: {INSTANCE}
    interface: eth0
    vrid: 51
    version: {version}
    priority: {priority}
    advert_interval: {advert_interval}
    vips: [\"{vip}/{prefix}\"]
",
            version = self.version,
            prefix = self.prefix_len(),
        );
        if let Some(password) = self.auth_password {
            writeln!(instance, "    auth_password: {password}").expect("a String takes any text");
        }
        if !self.garp_second_burst {
            instance.push_str("    garp: { delay: 0s }\n");
        }
        if self.delivery == Delivery::Unicast {
            let (own, peer) = (lab.host(node), lab.host(1 - node));
            let (source, peer) = if self.ipv6 {
                (IpAddr::V6(own.ipv6), IpAddr::V6(peer.ipv6))
            } else {
                (IpAddr::V4(own.ipv4), IpAddr::V4(peer.ipv4))
            };
            writeln!(
                instance,
                "    unicast: {{ source: \"{source}\", peers: [\"{peer}\"] }}"
            )
            .expect("a String takes any text");
        }
        if self.track_frontend {
            writeln!(
                instance,
                "    track: [{{ frontend: web, weight: {TRACK_WEIGHT} }}]"
            )
            .expect("a String takes any text");
        }
        let mut servers = String::new();
        for (number, &host) in BACKENDS.iter().enumerate() {
            writeln!(
                servers,
                "      - {{ name: b{number}, address: \"{}:{BACKEND_PORT}\" }}",
                lab.host(host).ipv4
            )
            .expect("a String takes any text");
        }
        format!(
            "node: lb{number}
vrrp:
{instance}frontends:
  - name: web
    bind: [\"{bind}\"]
    backend: web
backends:
  - name: web
    health: {{ kind: tcp, interval: {health}ms, timeout: {timeout}ms, rise: 1, fall: {HEALTH_FALL} }}
    servers:
{servers}",
            number = node + 1,
            bind = SocketAddr::new(vip, 80),
            health = self.health_interval.as_millis(),
            timeout = self.health_timeout().as_millis(),
        )
    }
}

/// Two vipd nodes (lb1 priority 150, lb2 priority 100), a client and three backends, elected
/// and serving. Everything is torn down on drop.
pub struct Pair {
    pub settings: PairSettings,
    pub vip: IpAddr,
    /// `None` once a test stopped that node.
    pub nodes: [Option<LabProcess>; 2],
    pub backends: Vec<LabProcess>,
    pub scratch: Scratch,
    // Dropped last: the namespaces outlive the processes in them.
    pub lab: Lab,
}

impl Pair {
    /// Builds the lab, starts both nodes and waits until lb1 is master with the VIP, lb2 is
    /// backup, every tracker is up and the client reaches a backend through the VIP.
    pub fn start(test: &str, settings: PairSettings) -> Self {
        let lab = Lab::new(6).expect("lab");
        let scratch = Scratch::new(test);
        let backends = BACKENDS
            .iter()
            .map(|&host| start_backend(&lab, host, BACKEND_PORT, BACKEND_REPLY))
            .collect();
        let mut nodes = [None, None];
        for (node, priority) in [(LB1, LB1_PRIORITY), (LB2, LB2_PRIORITY)] {
            let config = scratch.write(
                &format!("lb{}.yaml", node + 1),
                &settings.config(&lab, node, priority),
            );
            nodes[node] = Some(start_vipd(
                &lab,
                node,
                &config,
                &Self::log_path(&scratch, node),
            ));
        }
        let pair = Self {
            vip: settings.vip(),
            settings,
            nodes,
            backends,
            scratch,
            lab,
        };
        wait_for_control(&pair.lab, LB1);
        wait_for_control(&pair.lab, LB2);
        let settled = wait_until(Duration::from_secs(15), || {
            pair.state(LB1).as_deref() == Some("master")
                && pair.state(LB2).as_deref() == Some("backup")
                && holds(&pair.lab, LB1, pair.vip)
                && pair.trackers_up(LB1)
                && pair.trackers_up(LB2)
        });
        assert!(
            settled.is_some(),
            "the pair never settled (lb1 master with the VIP, lb2 backup, trackers up): \
             {:?} / {:?}\n{}",
            status(&pair.lab, LB1),
            status(&pair.lab, LB2),
            pair.logs()
        );
        assert!(!holds(&pair.lab, LB2, pair.vip), "the backup holds the VIP");
        pair.assert_serves("after the election");
        pair
    }

    fn log_path(scratch: &Scratch, node: usize) -> std::path::PathBuf {
        scratch.0.join(format!("lb{}.log", node + 1))
    }

    /// The state of the instance on `node` ("master", "backup", "fault", ...).
    pub fn state(&self, node: usize) -> Option<String> {
        instance_state(&self.lab, node, INSTANCE)
    }

    /// Fails the test unless the instance on `node` reports `state` within 2 s: the daemon
    /// changes the VIPs first and publishes the new state right after.
    pub fn assert_state(&self, node: usize, state: &str) {
        assert!(
            wait_until(Duration::from_secs(2), || self.state(node).as_deref()
                == Some(state))
            .is_some(),
            "lb{} is {:?}, not {state}\n{}",
            node + 1,
            self.state(node),
            self.logs()
        );
    }

    /// Counter `name` of the instance on `node`, e.g. `became_master`.
    pub fn counter(&self, node: usize, name: &str) -> Option<u64> {
        let status = status(&self.lab, node).ok()?;
        status["instances"][0]["counters"][name].as_u64()
    }

    /// Whether every tracker of the instance on `node` is up (vacuously without trackers).
    pub fn trackers_up(&self, node: usize) -> bool {
        status(&self.lab, node).is_ok_and(|status| {
            status["instances"][0]["trackers"]
                .as_array()
                .is_some_and(|trackers| trackers.iter().all(|t| t["state"] == "up"))
        })
    }

    /// Whether every tracker of the instance on `node` is down.
    pub fn trackers_down(&self, node: usize) -> bool {
        status(&self.lab, node).is_ok_and(|status| {
            status["instances"][0]["trackers"]
                .as_array()
                .is_some_and(|trackers| trackers.iter().all(|t| t["state"] == "down"))
        })
    }

    /// Whether `node` holds the VIP.
    pub fn holds(&self, node: usize) -> bool {
        holds(&self.lab, node, self.vip)
    }

    /// Fails the test unless the client reaches a backend through the VIP within 5 s.
    pub fn assert_serves(&self, when: &str) {
        let target = SocketAddr::new(self.vip, 80);
        let served = wait_until(Duration::from_secs(5), || {
            fetch(&self.lab, CLIENT, target).is_ok_and(|text| text.contains(BACKEND_REPLY))
        });
        assert!(
            served.is_some(),
            "{when}: the client cannot reach a backend through the VIP: {:?}\n{}",
            fetch(&self.lab, CLIENT, target),
            self.logs()
        );
    }

    /// Both nodes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for node in [LB1, LB2] {
            let log = std::fs::read_to_string(Self::log_path(&self.scratch, node));
            writeln!(logs, "--- lb{} log:\n{}", node + 1, log.unwrap_or_default())
                .expect("a String takes any text");
        }
        logs
    }

    /// Drops every packet `node` sends to the backends (an nftables output rule in its
    /// namespace), so its health checks fail while the other node's pass. Returns when the
    /// command that added the dropping rule had finished: the rule is in force by then.
    pub fn cut_off_backends(&self, node: usize) -> Instant {
        let backends: Vec<String> = BACKENDS
            .iter()
            .map(|&host| self.lab.host(host).ipv4.to_string())
            .collect();
        for command in [
            format!("add table inet {CUT_OFF_TABLE}"),
            format!(
                "add chain inet {CUT_OFF_TABLE} output {{ type filter hook output priority 0 ; }}"
            ),
        ] {
            self.lab.run(node, &["nft", &command]).expect("nft chain");
        }
        let rule = format!(
            "add rule inet {CUT_OFF_TABLE} output ip daddr {{ {} }} drop",
            backends.join(", ")
        );
        self.lab.run(node, &["nft", &rule]).expect("nft rule");
        Instant::now()
    }
}

/// How long `later` came after `earlier` (zero if it did not).
pub fn since(earlier: Instant, later: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

const DELIVERED_TABLE: &str = "vipd_scenario_delivered";
/// The netfilter log group that copies delivered adverts to tcpdump.
const DELIVERED_GROUP: u16 = 7;

/// Records when the VRRP adverts that survived every drop on the way in (the lab's loss is an
/// ingress rule) reached a host's IP layer: an nftables input rule copies them to an NFLOG
/// group that tcpdump reads. A capture on `eth0` cannot tell this, since it sees frames before
/// the ingress hook drops them. `queue-threshold 1` hands each packet over at once: the
/// packets carry no kernel timestamp here, so tcpdump stamps them when it reads them, and the
/// kernel's default batching would bunch them a second at a time.
pub struct DeliveredAdverts {
    tcpdump: LabProcess,
    path: std::path::PathBuf,
}

impl DeliveredAdverts {
    pub fn start(pair: &Pair, host: usize) -> Self {
        Self::start_in(&pair.lab, &pair.scratch.0, host)
    }

    /// Records in `host` of `lab`, the capture file in `dir`.
    pub fn start_in(lab: &Lab, dir: &std::path::Path, host: usize) -> Self {
        for command in [
            format!("add table inet {DELIVERED_TABLE}"),
            format!(
                "add chain inet {DELIVERED_TABLE} input {{ type filter hook input priority 0 ; }}"
            ),
            format!(
                "add rule inet {DELIVERED_TABLE} input meta l4proto 112 log group {DELIVERED_GROUP} queue-threshold 1"
            ),
        ] {
            lab.run(host, &["nft", &command]).expect("nft rule");
        }
        let path = dir.join(format!("delivered-lb{}.pcap", host + 1));
        let path_text = path.display().to_string();
        let interface = format!("nflog:{DELIVERED_GROUP}");
        let mut command = lab
            .command_in(
                host,
                &["tcpdump", "-i", &interface, "-n", "-U", "-w", &path_text],
            )
            .expect("host exists");
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut tcpdump = lab.spawn_command(command).expect("tcpdump starts");
        let stderr = tcpdump
            .child_mut()
            .and_then(|child| child.stderr.take())
            .expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut ready = Some(ready_tx);
            // Keep draining after "listening on" so tcpdump never blocks on a full pipe.
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("tcpdump listens on the NFLOG group");
        Self { tcpdump, path }
    }

    /// Stops recording and returns the longest gap between two delivered adverts.
    pub fn longest_gap(mut self) -> Duration {
        std::thread::sleep(Duration::from_millis(300));
        self.tcpdump.stop_with(nix::sys::signal::Signal::SIGINT);
        let output = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&self.path)
            .args(["-T", "fields", "-e", "frame.time_epoch"])
            .output()
            .expect("tshark runs");
        let times: Vec<f64> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next()?.parse().ok())
            .collect();
        let longest = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .fold(0.0_f64, f64::max);
        Duration::from_secs_f64(longest.max(0.0))
    }
}
