//! The routing-daemon configurations deploy/ ships, checked by the real daemons.
//!
//! First the files themselves, filled in the way docs/bgp.md tells the operator (the `define`
//! lines of the BIRD files, the example values of the FRR file replaced word by word, optional
//! blocks enabled by removing their marker): BIRD 2 parses the node snippet and the router
//! example (`bird -p`), FRR 8.4's vtysh accepts the node configuration (`vtysh --dryrun`).
//!
//! Then FRR as the node speaker: zebra and bgpd with the shipped frr.conf in the node's
//! namespace beside vipd, a BIRD router with the shipped router example in the other. The router
//! learns the announced VIP, and only it (an address of the same range on the node's `lo` is not
//! exported, nor the uplink's subnet), reaches vipd's frontend through it, and loses the route
//! when vipd is SIGKILLed: the announce device dies with the process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Scratch, VIPD, fetch, start_backend, start_vipd, text, wait_until};
use nix::sys::signal::Signal;
use vipd_lab::{Lab, LabProcess};

const NODE_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/bird/vipd-node.conf");
const ROUTER_CONF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/bird/tor-router-example.conf"
);
const FRR_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/frr/frr.conf");

/// Lab host 0 (198.51.100.10): vipd, zebra and bgpd.
const NODE: usize = 0;
/// Lab host 1 (198.51.100.11): BIRD as the top-of-rack router.
const ROUTER: usize = 1;
const NODE_AS: &str = "64601";
/// The announce group of the node's vipd.yaml.
const GROUP: &str = "ingress";
const ROUTER_AS: &str = "64600";
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
/// On the node's `lo`, inside the router's VIP range: exported only if the node's filter leaks.
const NOT_ANNOUNCED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
/// Room for a loaded CI machine: the withdrawal itself takes milliseconds.
const WITHDRAWAL_LIMIT: Duration = Duration::from_secs(2);
const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";
const BIRD: &str = "/usr/sbin/bird";

/// `text` with every whole-word occurrence of `from` replaced by `to`: what
/// `sed 's/\<from\>/to/g'` does, so that replacing `198.51.100.1` leaves `198.51.100.10` alone.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let part_of_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(from) {
        let before = text[..at].chars().next_back();
        let after = text[at + from.len()..].chars().next();
        if before.is_some_and(part_of_word) || after.is_some_and(part_of_word) {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(to);
        copied = at + from.len();
    }
    out.push_str(&text[copied..]);
    out
}

/// `text` with the value of BIRD's `define NAME = VALUE;` replaced, comment kept.
fn set_define(text: &str, name: &str, value: &str) -> String {
    let prefix = format!("define {name} = ");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            Some(rest) => {
                found = true;
                let comment = rest.split_once(';').map_or("", |(_, comment)| comment);
                format!("{prefix}{value};{comment}")
            }
            None => line.to_owned(),
        })
        .collect();
    assert!(found, "no `define {name}` line");
    lines.join("\n") + "\n"
}

/// `text` with the lines of optional block `marker` (`#bfd `, `!v6 `...) enabled.
fn enable(text: &str, marker: &str) -> String {
    text.lines()
        .map(|line| line.strip_prefix(marker).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The node snippet as the node of this lab fills it in.
fn node_bird_conf(node: Ipv4Addr, router: Ipv4Addr) -> String {
    let conf = set_define(&read(NODE_CONF), "NODE_ROUTER_ID", &node.to_string());
    let conf = set_define(&conf, "NODE_AS", NODE_AS);
    let conf = set_define(&conf, "TOR_AS", ROUTER_AS);
    set_define(&conf, "TOR_IPV4", &router.to_string())
}

/// The router example as the router of this lab fills it in: its own address and AS, the node's
/// AS, and this lab's node in place of the first example node.
fn router_bird_conf(router: Ipv4Addr, node: Ipv4Addr) -> String {
    let conf = set_define(&read(ROUTER_CONF), "ROUTER_ID", &router.to_string());
    let conf = set_define(&conf, "TOR_AS", ROUTER_AS);
    let conf = set_define(&conf, "NODE_AS", NODE_AS);
    replace_word(&conf, "198.51.100.21", &node.to_string())
}

/// frr.conf with the example values replaced, as its header and docs/bgp.md list them.
fn node_frr_conf(node: Ipv4Addr, router: Ipv4Addr) -> String {
    let mut conf = read(FRR_CONF);
    for (example, value) in [
        ("65001", NODE_AS),
        ("65000", ROUTER_AS),
        ("198.51.100.21", &node.to_string()),
        ("198.51.100.1", &router.to_string()),
        ("lb1", "node-under-test"),
    ] {
        assert!(conf.contains(example), "frr.conf has no {example}");
        conf = replace_word(&conf, example, value);
    }
    conf
}

/// Runs `program args`: Ok(combined output) when it succeeds, Err(combined output) when not.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    let said = text(&output.stdout) + &text(&output.stderr);
    if output.status.success() {
        Ok(said)
    } else {
        Err(format!("{program} {args:?}: {}\n{said}", output.status))
    }
}

/// What is missing for these tests, if anything: BIRD 2 and FRR (packages bird2 and frr).
fn missing_daemon() -> Option<&'static str> {
    if run(BIRD, &["--version"]).is_err() {
        return Some("BIRD 2 (Debian package bird2) is not installed");
    }
    if [ZEBRA, BGPD, VTYSH]
        .iter()
        .any(|path| !Path::new(path).exists())
    {
        return Some("FRR (Debian package frr) is not installed");
    }
    None
}

/// Whether `test` can run: root and namespaces (when `needs_lab`), BIRD and FRR.
fn can_run(test: &str, needs_lab: bool) -> bool {
    if needs_lab && !vipd_lab::e2e_enabled(test) {
        return false;
    }
    let Some(missing) = missing_daemon() else {
        return true;
    };
    assert!(
        std::env::var("VIPD_E2E").as_deref() != Ok("required"),
        "end-to-end test {test} cannot run ({missing}) and VIPD_E2E=required"
    );
    eprintln!("SKIPPED end-to-end test {test}: {missing}");
    false
}

fn bird_parses(scratch: &Scratch, name: &str, conf: &str) {
    let path = scratch.write(name, conf);
    if let Err(error) = run(BIRD, &["-p", "-c", &path.display().to_string()]) {
        panic!("BIRD rejects {name}: {error}\n{conf}");
    }
}

fn vtysh_accepts(scratch: &Scratch, name: &str, conf: &str) {
    let path = scratch.write(name, conf);
    if let Err(error) = run(VTYSH, &["--dryrun", "-f", &path.display().to_string()]) {
        panic!("vtysh rejects {name}: {error}\n{conf}");
    }
}

#[test]
fn the_shipped_bird_and_frr_configurations_are_accepted_as_shipped_and_filled_in() {
    let test = "the_shipped_bird_and_frr_configurations_are_accepted_as_shipped_and_filled_in";
    if !can_run(test, false) {
        return;
    }
    let scratch = Scratch::new("routing-confs");
    let (node, router) = (
        Ipv4Addr::new(198, 51, 100, 5),
        Ipv4Addr::new(198, 51, 100, 254),
    );

    let node_conf = node_bird_conf(node, router);
    for example in ["198.51.100.21", "198.51.100.1;", "65001", "65000"] {
        assert!(!node_conf.contains(example), "{example} left:\n{node_conf}");
    }
    bird_parses(&scratch, "node-as-shipped.conf", &read(NODE_CONF));
    bird_parses(&scratch, "node.conf", &node_conf);
    let everything = enable(&enable(&node_conf, "#bfd "), "#v6 ");
    assert!(everything.contains("bfd on;") && everything.contains("protocol bgp tor_v6"));
    bird_parses(&scratch, "node-bfd-v6.conf", &everything);

    let router_conf = router_bird_conf(router, node);
    bird_parses(&scratch, "router-as-shipped.conf", &read(ROUTER_CONF));
    bird_parses(&scratch, "router.conf", &router_conf);
    bird_parses(
        &scratch,
        "router-bfd-v6.conf",
        &enable(&enable(&router_conf, "#bfd "), "#v6 "),
    );

    let frr_conf = node_frr_conf(node, router);
    vtysh_accepts(&scratch, "frr-as-shipped.conf", &read(FRR_CONF));
    vtysh_accepts(&scratch, "frr.conf", &frr_conf);
    let everything = enable(&enable(&frr_conf, "!bfd "), "!v6 ");
    assert!(everything.contains("bfd profile vipd") && everything.contains("ipv6 unicast"));
    vtysh_accepts(&scratch, "frr-bfd-v6.conf", &everything);
    // vtysh --dryrun does reject what no daemon knows (or this test would prove nothing).
    let broken = frr_conf.replace("match interface", "match interfaces");
    let path = scratch.write("frr-broken.conf", &broken);
    assert!(run(VTYSH, &["--dryrun", "-f", &path.display().to_string()]).is_err());
}

#[test]
fn replace_word_leaves_longer_words_alone() {
    let conf = "neighbor 198.51.100.1 remote-as 65000\n bgp router-id 198.51.100.10\n";
    assert_eq!(
        replace_word(conf, "198.51.100.1", "198.51.100.254"),
        "neighbor 198.51.100.254 remote-as 65000\n bgp router-id 198.51.100.10\n"
    );
    assert_eq!(replace_word("65000", "65000", "1"), "1");
}

/// zebra and bgpd of one node: run directory, sockets and logs of their own under `dir`, so they
/// touch nothing of a system FRR; stopped (by PID) on drop.
struct Frr {
    dir: PathBuf,
    // Field order: bgpd stops before zebra.
    _bgpd: LabProcess,
    _zebra: LabProcess,
}

impl Frr {
    /// Starts zebra, then bgpd with `conf` (the integrated file: bgpd takes its part), in `host`.
    fn start(lab: &Lab, host: usize, dir: PathBuf, conf: &Path) -> Self {
        std::fs::create_dir_all(&dir).expect("FRR directory");
        // The daemons drop to the frr user (the package's) and create their sockets here.
        run("chown", &["frr:frr", &dir.display().to_string()]).expect("chown to frr");
        let zebra_conf = dir.join("zebra.conf");
        std::fs::write(&zebra_conf, "").expect("zebra.conf");
        let zserv = dir.join("zserv.api");
        let zebra = Self::daemon(lab, host, &dir, ZEBRA, "zebra", &zebra_conf);
        assert!(
            wait_until(Duration::from_secs(10), || zserv.exists()).is_some(),
            "zebra did not open {}: {}",
            zserv.display(),
            std::fs::read_to_string(dir.join("zebra.log")).unwrap_or_default()
        );
        let bgpd = Self::daemon(lab, host, &dir, BGPD, "bgpd", conf);
        Self {
            dir,
            _bgpd: bgpd,
            _zebra: zebra,
        }
    }

    fn daemon(
        lab: &Lab,
        host: usize,
        dir: &Path,
        program: &str,
        name: &str,
        conf: &Path,
    ) -> LabProcess {
        let path = |file: &str| dir.join(file).display().to_string();
        let args = [
            program,
            "-f",
            &conf.display().to_string(),
            "-i",
            &path(&format!("{name}.pid")),
            "-z",
            &path("zserv.api"),
            "--vty_socket",
            &dir.display().to_string(),
            // No vty TCP port: vtysh reaches the daemons through --vty_socket.
            "-P",
            "0",
            "--log",
            &format!("file:{}", path(&format!("{name}.log"))),
        ];
        let mut command = lab.command_in(host, &args).expect("host exists");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        lab.spawn_command(command).expect("FRR daemon starts")
    }

    fn logs(&self) -> String {
        ["zebra.log", "bgpd.log"]
            .map(|name| {
                let log = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                format!("--- {name}\n{log}")
            })
            .join("\n")
    }
}

/// BIRD in `host` with `conf`, its control socket `{name}.ctl` in `dir`; stopped (by PID) on
/// drop.
fn start_bird(lab: &Lab, host: usize, dir: &Path, name: &str, conf: &Path) -> LabProcess {
    let socket = dir.join(format!("{name}.ctl")).display().to_string();
    let pid = dir.join(format!("{name}.pid")).display().to_string();
    let conf = conf.display().to_string();
    let mut command = lab
        .command_in(host, &[BIRD, "-f", "-c", &conf, "-s", &socket, "-P", &pid])
        .expect("host exists");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn_command(command).expect("bird starts")
}

/// The routing daemon on the node, with its shipped configuration filled in for the lab.
enum NodeSpeaker {
    Frr(Frr),
    Bird {
        _process: LabProcess,
        socket: PathBuf,
    },
}

impl NodeSpeaker {
    fn start_frr(lab: &Lab, scratch: &Scratch, node: Ipv4Addr, router: Ipv4Addr) -> Self {
        let conf = scratch.write("frr.conf", &node_frr_conf(node, router));
        Self::Frr(Frr::start(lab, NODE, scratch.path("frr"), &conf))
    }

    fn start_bird(lab: &Lab, scratch: &Scratch, node: Ipv4Addr, router: Ipv4Addr) -> Self {
        let conf = scratch.write("node.conf", &node_bird_conf(node, router));
        Self::Bird {
            _process: start_bird(lab, NODE, &scratch.0, "node", &conf),
            socket: scratch.path("node.ctl"),
        }
    }

    /// What the daemon says about its sessions and routes, for a failed assertion.
    fn diagnosis(&self) -> String {
        match self {
            Self::Frr(frr) => frr.logs(),
            Self::Bird { socket, .. } => {
                let socket = socket.display().to_string();
                let show = |what: &[&str]| {
                    let mut args = vec!["-s", socket.as_str()];
                    args.extend(what);
                    run("birdc", &args).unwrap_or_else(|error| error)
                };
                show(&["show", "protocols", "all", "tor"]) + &show(&["show", "route", "all"])
            }
        }
    }
}

/// The routes BIRD put into `host`'s kernel table, one line each.
fn bird_routes(lab: &Lab, host: usize) -> Vec<String> {
    lab.run(host, &["ip", "-4", "route", "show", "proto", "bird"])
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn node_vipd_config() -> String {
    format!(
        "node: node-under-test
announce:
  groups:
    - name: {GROUP}
      vips: [{VIP}]
frontends:
  - name: web
    bind: [\"{VIP}:80\"]
    backend: web
backends:
  - name: web
    servers:
      - {{ name: b1, address: \"127.0.0.1:8080\" }}
"
    )
}

#[test]
fn frr_with_the_shipped_configuration_announces_exactly_vipds_vip_until_vipd_is_killed() {
    let test =
        "frr_with_the_shipped_configuration_announces_exactly_vipds_vip_until_vipd_is_killed";
    announces_exactly_vipds_vip_until_vipd_is_killed(test, NodeSpeaker::start_frr);
}

#[test]
fn bird_with_the_shipped_snippet_announces_exactly_vipds_vip_until_vipd_is_killed() {
    let test = "bird_with_the_shipped_snippet_announces_exactly_vipds_vip_until_vipd_is_killed";
    announces_exactly_vipds_vip_until_vipd_is_killed(test, NodeSpeaker::start_bird);
}

/// A BIRD router (the shipped example) and, on the node, vipd beside `start_speaker`'s routing
/// daemon: the router learns the VIP and nothing else the node has, reaches vipd's frontend
/// through it, loses it and learns it again when the group is put in maintenance and taken out,
/// and loses it when vipd is SIGKILLed.
fn announces_exactly_vipds_vip_until_vipd_is_killed(
    test: &str,
    start_speaker: fn(&Lab, &Scratch, Ipv4Addr, Ipv4Addr) -> NodeSpeaker,
) {
    if !can_run(test, true) {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("announce-speaker");
    let (node, router) = (lab.host(NODE).ipv4, lab.host(ROUTER).ipv4);
    let on_lo = format!("{NOT_ANNOUNCED}/32");
    lab.run(NODE, &["ip", "addr", "add", &on_lo, "dev", "lo"])
        .expect("address on lo");

    let router_conf = scratch.write("router.conf", &router_bird_conf(router, node));
    let _router = start_bird(&lab, ROUTER, &scratch.0, "router", &router_conf);
    let speaker = start_speaker(&lab, &scratch, node, router);
    let _backend = start_backend(&lab, NODE, 8080, "served-by-node");
    let config = scratch.write("vipd.yaml", &node_vipd_config());
    let mut vipd = start_vipd(&lab, NODE, &config, &scratch.path("vipd.log"));
    let diagnose = |what: &str| {
        format!(
            "{what}\nrouter's table: {:?}\n{}\n--- vipd.log\n{}",
            bird_routes(&lab, ROUTER),
            speaker.diagnosis(),
            std::fs::read_to_string(scratch.path("vipd.log")).unwrap_or_default()
        )
    };

    let via_node = format!("{VIP} via {node} ");
    let routed_to_node = || {
        bird_routes(&lab, ROUTER)
            .iter()
            .any(|route| route.starts_with(&via_node))
    };
    let learned = wait_until(Duration::from_secs(30), routed_to_node);
    assert!(
        learned.is_some(),
        "{}",
        diagnose("the router never learned the VIP")
    );
    // Anything else the node could export went in the same first updates; give stragglers time.
    std::thread::sleep(Duration::from_secs(1));
    let routes = bird_routes(&lab, ROUTER);
    assert_eq!(
        routes.len(),
        1,
        "{}",
        diagnose("the router learned more than the VIP")
    );
    let target = SocketAddr::new(IpAddr::V4(VIP), 80);
    let reply = fetch(&lab, ROUTER, target).unwrap_or_else(|error| panic!("{}", diagnose(&error)));
    assert_eq!(reply.trim(), "served-by-node");

    // Withdrawn by decision and announced again: the address leaves vipd-announce while it
    // stays on vipd-local, then comes back (what a routing daemon that picks one interface's
    // route per prefix can get wrong).
    let maintenance = |state: &str| {
        let config = config.display().to_string();
        lab.run(
            NODE,
            &[VIPD, "ctl", "-c", &config, "maintenance", state, GROUP],
        )
        .unwrap_or_else(|error| panic!("vipd ctl maintenance {state}: {error}"))
    };
    maintenance("on");
    let withdrawn = wait_until(WITHDRAWAL_LIMIT, || !routed_to_node());
    assert!(
        withdrawn.is_some(),
        "{}",
        diagnose("maintenance did not withdraw the VIP")
    );
    maintenance("off");
    let announced = wait_until(WITHDRAWAL_LIMIT, routed_to_node);
    assert!(
        announced.is_some(),
        "{}",
        diagnose("the VIP was not announced again")
    );

    vipd.stop_with(Signal::SIGKILL);
    let Some(withdrawn) = wait_until(WITHDRAWAL_LIMIT, || !routed_to_node()) else {
        panic!(
            "{}",
            diagnose("the VIP stayed on the router after vipd was killed")
        );
    };
    eprintln!(
        "{test}: the router lost the VIP {} ms after vipd's SIGKILL",
        withdrawn.as_millis()
    );
}
