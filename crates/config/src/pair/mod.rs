//! The two nodes of a pair are configured in two files, and the usual mistakes are between them:
//! a VRID with other VIPs, another password, interval or version on the other node; priorities
//! that trackers cannot move; unicast peers that do not point at each other. [`pair_findings`]
//! compares two valid configurations and reports each such mismatch with its place in both
//! files (`vipd check --peer`, `vipd import --peer`).
//!
//! Instances are matched by VRID: among the other file's instances with that VRID, the one of the
//! same address family, on the same interface name if there are several (the nodes' interfaces
//! may have different names); else the only one with that VRID, whose family is then compared.

mod priorities;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use crate::location::LocationIndex;
use crate::model::{Config, TrackTarget, Tracker, VrrpInstance, VrrpVersion};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pair does not work as configured: adverts dropped, both nodes master, VIPs that differ.
    Error,
    /// It works, but not as the files suggest (`vipd check --strict` makes it fatal).
    Warning,
    /// Something the two files cannot tell; never fatal.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One side of a finding: a field path and where it is in that node's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub path: String,
    pub line: u64,
    pub column: u64,
}

/// A mismatch between the two files, with its place in each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairFinding {
    pub severity: Severity,
    /// In the first file ([`pair_findings`]'s `this`).
    pub this: Place,
    /// In the second file.
    pub peer: Place,
    pub message: String,
}

/// One node's file: its name for messages (`lb1.yaml`), its configuration and its text.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub file: &'a str,
    pub config: &'a Config,
    pub text: &'a str,
}

/// Every mismatch between the files of the two nodes of a pair, in the first file's order.
pub fn pair_findings(this: Node<'_>, peer: Node<'_>) -> Vec<PairFinding> {
    let mut pair = Pair {
        this: Side::of(this),
        peer: Side::of(peer),
        findings: Vec::new(),
    };
    let matches = match_instances(&this.config.vrrp, &peer.config.vrrp);
    for (position, matched) in matches.iter().enumerate() {
        match matched {
            Some(other) => pair.instances(position, *other),
            None => pair.unmatched(position, true),
        }
    }
    for position in 0..peer.config.vrrp.len() {
        if !matches.contains(&Some(position)) {
            pair.unmatched(position, false);
        }
    }
    pair.findings
        .sort_by_key(|finding| (finding.this.line, finding.this.column, finding.severity));
    pair.findings
}

/// For each instance of `these`, the position of its counterpart among `others`.
fn match_instances(these: &[VrrpInstance], others: &[VrrpInstance]) -> Vec<Option<usize>> {
    let mut taken = vec![false; others.len()];
    these
        .iter()
        .map(|instance| {
            let candidates: Vec<usize> = (0..others.len())
                .filter(|&other| !taken[other] && others[other].vrid == instance.vrid)
                .collect();
            let closeness = |other: &VrrpInstance| {
                u8::from(other.is_ipv6() == instance.is_ipv6()) * 2
                    + u8::from(other.interface == instance.interface)
            };
            let best = candidates
                .iter()
                .copied()
                .max_by_key(|&other| (closeness(&others[other]), std::cmp::Reverse(other)))
                .filter(|&other| candidates.len() == 1 || closeness(&others[other]) >= 2)?;
            taken[best] = true;
            Some(best)
        })
        .collect()
}

/// One file's side: its name, configuration and location index.
struct Side<'a> {
    file: &'a str,
    config: &'a Config,
    index: LocationIndex,
}

impl<'a> Side<'a> {
    fn of(node: Node<'a>) -> Self {
        Self {
            file: node.file,
            config: node.config,
            index: crate::yaml::index(node.text),
        }
    }

    fn place(&self, path: &str) -> Place {
        let at = self.index.position(path);
        Place {
            path: path.to_owned(),
            line: at.line,
            column: at.column,
        }
    }
}

/// The two sides of one matched instance: positions in each file's `vrrp`.
#[derive(Clone, Copy)]
struct Matched<'a> {
    this: &'a VrrpInstance,
    peer: &'a VrrpInstance,
    this_path: &'a str,
    peer_path: &'a str,
}

struct Pair<'a> {
    this: Side<'a>,
    peer: Side<'a>,
    findings: Vec<PairFinding>,
}

impl Pair<'_> {
    fn report(
        &mut self,
        severity: Severity,
        this_path: &str,
        peer_path: &str,
        message: impl Into<String>,
    ) {
        self.findings.push(PairFinding {
            severity,
            this: self.this.place(this_path),
            peer: self.peer.place(peer_path),
            message: message.into(),
        });
    }

    /// An instance of one file that has no counterpart in the other.
    fn unmatched(&mut self, position: usize, in_this: bool) {
        let (side, other) = if in_this {
            (&self.this, &self.peer)
        } else {
            (&self.peer, &self.this)
        };
        let instance = &side.config.vrrp[position];
        let message = format!(
            "{} has VRID {} ({}) on {}, `{}`, and {} has no instance with it: that VIP fails \
             over to nobody",
            side.file,
            instance.vrid,
            family(instance),
            instance.interface,
            instance.name,
            other.file
        );
        let path = format!("vrrp[{position}].vrid");
        if in_this {
            self.report(Severity::Warning, &path, "vrrp", message);
        } else {
            self.report(Severity::Warning, "vrrp", &path, message);
        }
    }

    fn instances(&mut self, this_position: usize, peer_position: usize) {
        let (this_config, peer_config) = (self.this.config, self.peer.config);
        let this_path = format!("vrrp[{this_position}]");
        let peer_path = format!("vrrp[{peer_position}]");
        let matched = Matched {
            this: &this_config.vrrp[this_position],
            peer: &peer_config.vrrp[peer_position],
            this_path: &this_path,
            peer_path: &peer_path,
        };
        if matched.this.is_ipv6() != matched.peer.is_ipv6() {
            let message = format!(
                "VRID {}: {} advertises {}, {} {}: the nodes never see each other's adverts and \
                 both hold the VIPs",
                matched.this.vrid,
                self.this.file,
                family(matched.this),
                self.peer.file,
                family(matched.peer)
            );
            self.report(
                Severity::Error,
                &vip_path(&this_path),
                &vip_path(&peer_path),
                message,
            );
            return;
        }
        self.protocol(matched);
        self.vips(matched);
        self.unicast(matched);
        self.priorities(matched);
        self.trackers(matched);
    }

    /// Version, password and interval: what each node checks in the other's adverts.
    fn protocol(&mut self, matched: Matched<'_>) {
        let Matched {
            this,
            peer,
            this_path,
            peer_path,
        } = matched;
        let (this_file, peer_file) = (self.this.file, self.peer.file);
        let both = |field: &str| {
            (
                format!("{this_path}.{field}"),
                format!("{peer_path}.{field}"),
            )
        };
        if this.version != peer.version {
            let (this_at, peer_at) = both("version");
            self.report(
                Severity::Error,
                &this_at,
                &peer_at,
                format!(
                    "VRID {}: version {} in {this_file}, {} in {peer_file}: each node drops the \
                     other's adverts and both hold the VIPs",
                    this.vrid,
                    version(this.version),
                    version(peer.version)
                ),
            );
            return;
        }
        if this.auth_password != peer.auth_password {
            let (this_at, peer_at) = both("auth_password");
            let which = match (&this.auth_password, &peer.auth_password) {
                (Some(_), None) => format!("set in {this_file} only"),
                (None, Some(_)) => format!("set in {peer_file} only"),
                _ => "not the same in both files".to_owned(),
            };
            self.report(
                Severity::Error,
                &this_at,
                &peer_at,
                format!(
                    "VRID {}: auth_password is {which}: each node drops the other's adverts and \
                     both hold the VIPs",
                    this.vrid
                ),
            );
        }
        if this.advert_interval != peer.advert_interval {
            let (this_at, peer_at) = both("advert_interval");
            let (severity, effect) = match this.version {
                // RFC 3768 section 7.1: an advert with another interval is discarded.
                VrrpVersion::V2 => (
                    Severity::Error,
                    "VRRPv2 drops adverts with another interval, so both nodes hold the VIPs",
                ),
                // RFC 9568 section 6.4.2: a backup adopts the master's interval.
                VrrpVersion::V3 => (
                    Severity::Warning,
                    "a v3 backup follows the master's interval, so the takeover time depends on \
                     which node is master",
                ),
            };
            self.report(
                severity,
                &this_at,
                &peer_at,
                format!(
                    "VRID {}: advert_interval {:?} in {this_file}, {:?} in {peer_file}: {effect}",
                    this.vrid, this.advert_interval, peer.advert_interval
                ),
            );
        }
    }

    /// The same addresses on both nodes: a takeover moves what the master held.
    fn vips(&mut self, matched: Matched<'_>) {
        let this: BTreeSet<String> = matched
            .this
            .vips
            .iter()
            .map(|vip| vip.address.to_string())
            .collect();
        let peer: BTreeSet<String> = matched
            .peer
            .vips
            .iter()
            .map(|vip| vip.address.to_string())
            .collect();
        if this == peer {
            return;
        }
        let differences = one_sided(&this, &peer, (self.this.file, self.peer.file));
        self.report(
            Severity::Error,
            &format!("{}.vips", matched.this_path),
            &format!("{}.vips", matched.peer_path),
            format!(
                "VRID {}: the VIPs differ ({}): a takeover moves other addresses than the master \
                 held, and keepalived peers log every advert as a mismatch",
                matched.this.vrid,
                differences.join("; ")
            ),
        );
    }

    /// Unicast on both or neither, and each node's peers naming the other's address.
    fn unicast(&mut self, matched: Matched<'_>) {
        let Matched {
            this,
            peer,
            this_path,
            peer_path,
        } = matched;
        let (this_file, peer_file) = (self.this.file, self.peer.file);
        let (this_unicast, peer_unicast) = match (&this.unicast, &peer.unicast) {
            (None, None) => return,
            (Some(this_unicast), Some(peer_unicast)) => (this_unicast, peer_unicast),
            (this_unicast, _) => {
                let (unicast_file, multicast_file) = if this_unicast.is_some() {
                    (this_file, peer_file)
                } else {
                    (peer_file, this_file)
                };
                self.report(
                    Severity::Error,
                    &unicast_or_instance(this, this_path),
                    &unicast_or_instance(peer, peer_path),
                    format!(
                        "VRID {}: unicast in {unicast_file}, multicast in {multicast_file}: the \
                         unicast node accepts adverts from its listed peers only and sends to \
                         them only",
                        this.vrid
                    ),
                );
                return;
            }
        };
        let both_peers = (
            format!("{this_path}.unicast.peers"),
            format!("{peer_path}.unicast.peers"),
        );
        if let ([only_this], [only_peer]) = (&this_unicast.peers[..], &peer_unicast.peers[..])
            && only_this == only_peer
        {
            self.report(
                Severity::Error,
                &both_peers.0,
                &both_peers.1,
                format!(
                    "VRID {}: both files name {only_this} as the one unicast peer: one of the \
                     nodes names itself instead of the other",
                    this.vrid
                ),
            );
            return;
        }
        self.peers_name_the_source(this.vrid, true, matched);
        self.peers_name_the_source(this.vrid, false, matched);
    }

    /// Whether one node's `unicast.peers` include the other's `unicast.source`; a note when the
    /// other file does not say its address (it comes from the interface at run time).
    fn peers_name_the_source(&mut self, vrid: u8, this_lists: bool, matched: Matched<'_>) {
        let (lister, lister_file, lister_path, named, named_file, named_path) = if this_lists {
            (
                matched.this,
                self.this.file,
                matched.this_path,
                matched.peer,
                self.peer.file,
                matched.peer_path,
            )
        } else {
            (
                matched.peer,
                self.peer.file,
                matched.peer_path,
                matched.this,
                self.this.file,
                matched.this_path,
            )
        };
        let (Some(lister_unicast), Some(named_unicast)) = (&lister.unicast, &named.unicast) else {
            return;
        };
        let peers = format!("{lister_path}.unicast.peers");
        let listed = addresses(&lister_unicast.peers);
        let (severity, named_at, message) = match named_unicast.source {
            Some(source) if lister_unicast.peers.contains(&source) => return,
            Some(source) => (
                Severity::Error,
                format!("{named_path}.unicast.source"),
                format!(
                    "VRID {vrid}: the unicast peers of {lister_file} ({listed}) do not include \
                     {named_file}'s unicast.source {source}: {lister_file} drops its adverts and \
                     sends its own elsewhere, so both hold the VIPs"
                ),
            ),
            None => (
                Severity::Note,
                format!("{named_path}.unicast"),
                format!(
                    "VRID {vrid}: {named_file} sets no unicast.source (it sends from {}'s \
                     primary address), so whether the unicast peers of {lister_file} \
                     ({listed}) include it cannot be checked from the files",
                    named.interface
                ),
            ),
        };
        if this_lists {
            self.report(severity, &peers, &named_at, message);
        } else {
            self.report(severity, &named_at, &peers, message);
        }
    }

    /// The design assumes both nodes track the same things with the same weights
    /// (docs/operations.md, Tracking and weights): equally sick nodes then keep their order.
    fn trackers(&mut self, matched: Matched<'_>) {
        let describe = |trackers: &[Tracker], config: &Config| -> BTreeSet<String> {
            trackers
                .iter()
                .map(|tracker| tracker_label(tracker, config))
                .collect()
        };
        let this = describe(&matched.this.track, self.this.config);
        let peer = describe(&matched.peer.track, self.peer.config);
        if this == peer {
            return;
        }
        let differences = one_sided(&this, &peer, (self.this.file, self.peer.file));
        self.report(
            Severity::Warning,
            &format!("{}.track", matched.this_path),
            &format!("{}.track", matched.peer_path),
            format!(
                "VRID {}: the trackers differ ({}): when both nodes lose the same thing, only \
                 one lowers its priority and the VIP may move to the node that is just as sick",
                matched.this.vrid,
                differences.join("; ")
            ),
        );
    }
}

/// `frontend apiserver (-60)`: what a tracker follows and its weight, comparable across files
/// (a script by its command, since the two files may name it differently).
/// What each file has that the other lacks: `"a, b only in FILE"`, one entry per file that has any.
fn one_sided(
    this: &BTreeSet<String>,
    peer: &BTreeSet<String>,
    (this_file, peer_file): (&str, &str),
) -> Vec<String> {
    let only = |set: &BTreeSet<String>, other: &BTreeSet<String>, file: &str| {
        let items: Vec<&str> = set.difference(other).map(String::as_str).collect();
        (!items.is_empty()).then(|| format!("{} only in {file}", items.join(", ")))
    };
    [only(this, peer, this_file), only(peer, this, peer_file)]
        .into_iter()
        .flatten()
        .collect()
}

fn tracker_label(tracker: &Tracker, config: &Config) -> String {
    let target = match &tracker.target {
        TrackTarget::Frontend { name, min_up } if *min_up > 1 => {
            format!("frontend {name} (min_up {min_up})")
        }
        TrackTarget::Frontend { name, .. } => format!("frontend {name}"),
        TrackTarget::Script { name } => config.scripts.get(name).map_or_else(
            || format!("script {name}"),
            |script| {
                let mut words = vec![script.command.program.display().to_string()];
                words.extend(script.command.args.iter().cloned());
                format!("script `{}`", words.join(" "))
            },
        ),
        TrackTarget::Interface { name } => format!("interface {name}"),
        TrackTarget::File { path } => format!("file {}", path.display()),
    };
    format!("{target} (weight {})", tracker.weight)
}

fn family(instance: &VrrpInstance) -> &'static str {
    if instance.is_ipv6() { "IPv6" } else { "IPv4" }
}

fn version(version: VrrpVersion) -> u8 {
    match version {
        VrrpVersion::V2 => 2,
        VrrpVersion::V3 => 3,
    }
}

fn vip_path(instance_path: &str) -> String {
    format!("{instance_path}.vips[0]")
}

fn unicast_or_instance(instance: &VrrpInstance, path: &str) -> String {
    if instance.unicast.is_some() {
        format!("{path}.unicast")
    } else {
        format!("{path}.vrid")
    }
}

fn addresses(list: &[IpAddr]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
