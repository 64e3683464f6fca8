//! One test per kind of mismatch, on a small pair that agrees until a test edits one side.

use super::{Node, PairFinding, Severity, pair_findings};
use crate::Config;

/// lb1, the preferred master; lb2 is the same with the edits below.
const LB1: &str = "\
node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: 150
    version: 2
    auth_password: secret
    advert_interval: 1s
    unicast: { source: 198.51.100.11, peers: [198.51.100.12] }
    vips: [198.51.100.50/24]
    track:
      - { frontend: api, weight: -60 }
frontends:
  - { name: api, bind: [\"198.51.100.50:6443\"], backend: api }
backends:
  - name: api
    health: { kind: https, path: /readyz }
    servers: [{ name: m1, address: \"198.51.100.21:6443\" }]
";

fn lb2() -> String {
    LB1.replace("node: lb1", "node: lb2")
        .replace("priority: 150", "priority: 100")
        .replace(
            "source: 198.51.100.11, peers: [198.51.100.12]",
            "source: 198.51.100.12, peers: [198.51.100.11]",
        )
}

fn findings(lb1: &str, lb2: &str) -> Vec<PairFinding> {
    let load = |text: &str| match Config::from_yaml_str(text) {
        Ok((config, _)) => config,
        Err(errors) => panic!("invalid test file:\n{errors}\n{text}"),
    };
    // Each file is named after its node, whichever comes first.
    let name = |text: &str| {
        if text.contains("node: lb1") {
            "lb1.yaml"
        } else {
            "lb2.yaml"
        }
    };
    let (first, second) = (load(lb1), load(lb2));
    pair_findings(
        Node {
            file: name(lb1),
            config: &first,
            text: lb1,
        },
        Node {
            file: name(lb2),
            config: &second,
            text: lb2,
        },
    )
}

/// The one finding of the pair, which must contain `words`; returns it.
fn only_finding(lb1: &str, lb2: &str, words: &str) -> PairFinding {
    let found = findings(lb1, lb2);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains(words), "{found:#?}");
    found.into_iter().next().unwrap()
}

#[test]
fn a_consistent_pair_has_nothing_to_report() {
    assert_eq!(findings(LB1, &lb2()), []);
    // The interfaces may have other names on the other node.
    assert_eq!(findings(LB1, &lb2().replace("eth0", "ens3")), []);
}

#[test]
fn different_vips_for_one_vrid_are_an_error_with_both_lines() {
    let peer = lb2().replace("[198.51.100.50/24]", "[198.51.100.50/24, 198.51.100.51/24]");
    let found = only_finding(LB1, &peer, "198.51.100.51/24 only in lb2.yaml");
    assert_eq!(found.severity, Severity::Error);
    assert_eq!(
        (found.this.path.as_str(), found.this.line),
        ("vrrp[0].vips", 11)
    );
    assert_eq!(
        (found.peer.path.as_str(), found.peer.line),
        ("vrrp[0].vips", 11)
    );
    let peer = lb2().replace("198.51.100.50/24]", "198.51.100.50/25]");
    only_finding(
        LB1,
        &peer,
        "198.51.100.50/24 only in lb1.yaml; 198.51.100.50/25 only in lb2.yaml",
    );
}

#[test]
fn a_different_password_is_an_error_that_does_not_print_it() {
    let found = only_finding(
        LB1,
        &lb2().replace("auth_password: secret", "auth_password: secreT"),
        "auth_password is not the same in both files",
    );
    assert_eq!(found.severity, Severity::Error);
    assert!(!found.message.contains("secret"), "{found:?}");
    assert_eq!(found.this.line, 8);
    let found = only_finding(
        LB1,
        &lb2().replace("    auth_password: secret\n", ""),
        "auth_password is set in lb1.yaml only",
    );
    // The missing field points at its instance.
    assert_eq!(
        (found.peer.path.as_str(), found.peer.line),
        ("vrrp[0].auth_password", 3)
    );
}

#[test]
fn a_different_interval_is_an_error_in_v2_and_a_warning_in_v3() {
    let found = only_finding(
        LB1,
        &lb2().replace("advert_interval: 1s", "advert_interval: 2s"),
        "advert_interval 1s in lb1.yaml, 2s in lb2.yaml: VRRPv2 drops adverts",
    );
    assert_eq!(found.severity, Severity::Error);
    let v3 = |text: &str| {
        text.replace("version: 2", "version: 3")
            .replace("    auth_password: secret\n", "")
    };
    let found = only_finding(
        &v3(LB1),
        &v3(&lb2()).replace("advert_interval: 1s", "advert_interval: 500ms"),
        "a v3 backup follows the master's interval",
    );
    assert_eq!(found.severity, Severity::Warning);
}

#[test]
fn a_different_version_is_an_error() {
    let peer = lb2()
        .replace("version: 2", "version: 3")
        .replace("    auth_password: secret\n", "");
    let found = only_finding(LB1, &peer, "version 2 in lb1.yaml, 3 in lb2.yaml");
    assert_eq!(found.severity, Severity::Error);
    assert_eq!(found.this.path, "vrrp[0].version");
}

#[test]
fn a_different_address_family_is_an_error() {
    let v3 = |text: &str| {
        text.replace("version: 2", "version: 3")
            .replace("    auth_password: secret\n", "")
            .replace(
                "    unicast: { source: 198.51.100.11, peers: [198.51.100.12] }\n",
                "",
            )
            .replace(
                "    unicast: { source: 198.51.100.12, peers: [198.51.100.11] }\n",
                "",
            )
    };
    let peer = v3(&lb2()).replace("[198.51.100.50/24]", "[\"2001:db8::50/64\"]");
    let found = only_finding(&v3(LB1), &peer, "lb1.yaml advertises IPv4, lb2.yaml IPv6");
    assert_eq!(found.severity, Severity::Error);
}

#[test]
fn unicast_peers_must_point_at_each_other() {
    let peer = lb2().replace("peers: [198.51.100.11]", "peers: [198.51.100.13]");
    let found = only_finding(
        LB1,
        &peer,
        "the unicast peers of lb2.yaml (198.51.100.13) do not include lb1.yaml's unicast.source 198.51.100.11",
    );
    assert_eq!(found.severity, Severity::Error);
    assert_eq!(found.this.path, "vrrp[0].unicast.source");
    assert_eq!(found.peer.path, "vrrp[0].unicast.peers");
    assert_eq!((found.this.line, found.peer.line), (10, 10));
}

#[test]
fn without_a_source_the_peers_cannot_be_checked_and_a_note_says_so() {
    let peer = lb2().replace("source: 198.51.100.12, ", "");
    let found = only_finding(LB1, &peer, "lb2.yaml sets no unicast.source");
    assert_eq!(found.severity, Severity::Note);
    // Two nodes naming the same single peer: one of them names itself.
    let first = LB1.replace(
        "source: 198.51.100.11, peers: [198.51.100.12]",
        "peers: [198.51.100.12]",
    );
    let peer = lb2().replace(
        "source: 198.51.100.12, peers: [198.51.100.11]",
        "peers: [198.51.100.12]",
    );
    let found = only_finding(
        &first,
        &peer,
        "both files name 198.51.100.12 as the one unicast peer",
    );
    assert_eq!(found.severity, Severity::Error);
}

#[test]
fn unicast_on_one_side_only_is_an_error() {
    let peer = lb2().replace(
        "    unicast: { source: 198.51.100.12, peers: [198.51.100.11] }\n",
        "",
    );
    let found = only_finding(LB1, &peer, "unicast in lb1.yaml, multicast in lb2.yaml");
    assert_eq!(found.severity, Severity::Error);
}

#[test]
fn trackers_that_cannot_bring_the_master_below_the_backup_are_warned_about_with_numbers() {
    // 150 - 40 = 110, not below 100: the VIP never moves.
    let first = LB1.replace("weight: -60", "weight: -40");
    let peer = lb2().replace("weight: -60", "weight: -40");
    let found = only_finding(
        &first,
        &peer,
        "with every tracker failed, the priority of lb1.yaml is 110, not below 100 of a healthy \
         lb2.yaml: its trackers can never move the VIP; negative weights summing to -51 or lower would",
    );
    assert_eq!(found.severity, Severity::Warning);
    assert_eq!(found.this.path, "vrrp[0].track");
    assert_eq!(found.peer.path, "vrrp[0].priority");
    // The backup first in the command line: the places follow the files.
    let found = only_finding(&peer, &first, "the priority of lb1.yaml is 110");
    assert_eq!(found.this.path, "vrrp[0].priority");
    assert_eq!(found.peer.path, "vrrp[0].track");
}

#[test]
fn a_tracker_that_cannot_move_the_vip_alone_is_named() {
    let two = |text: &str| {
        text.replace(
            "      - { frontend: api, weight: -60 }\n",
            "      - { frontend: api, weight: -30 }\n      - { interface: eth1, weight: -30 }\n",
        )
    };
    let found = findings(&two(LB1), &two(&lb2()));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].this.path, "vrrp[0].track[0].weight");
    assert!(
        found[0]
            .message
            .contains("track[0] failing alone lowers the priority of lb1.yaml from 150 to 120, not below 100 of a healthy lb2.yaml")
            && found[0].message.contains("a weight of -51 or lower would"),
        "{found:#?}"
    );
    assert_eq!(found[1].this.path, "vrrp[0].track[1].weight");
}

#[test]
fn equal_priorities_two_owners_and_a_wrong_peer_priority() {
    let found = only_finding(
        LB1,
        &lb2().replace("priority: 100", "priority: 150"),
        "priority 150 in both files: the node with the higher primary address wins",
    );
    assert_eq!(found.severity, Severity::Warning);
    let no_preempt =
        |text: &str| text.replace("    vrid: 51\n", "    vrid: 51\n    preempt: false\n");
    assert_eq!(
        findings(
            &no_preempt(LB1),
            &no_preempt(&lb2().replace("priority: 100", "priority: 150"))
        ),
        []
    );
    let owner = |text: &str| {
        text.replace("priority: 150", "priority: 255")
            .replace("priority: 100", "priority: 255")
            .replace("weight: -60", "weight: 0")
    };
    let found = only_finding(&owner(LB1), &owner(&lb2()), "priority 255 in both files");
    assert_eq!(found.severity, Severity::Error);
    let first = LB1.replace("priority: 150\n", "priority: 150\n    peer_priority: 90\n");
    let found = only_finding(
        &first,
        &lb2(),
        "peer_priority 90 in lb1.yaml, but the priority in lb2.yaml is 100",
    );
    assert_eq!(found.this.path, "vrrp[0].peer_priority");
    assert_eq!(found.peer.path, "vrrp[0].priority");
}

#[test]
fn instances_without_a_counterpart_and_different_trackers() {
    let peer = lb2().replace("vrid: 51", "vrid: 52");
    let found = findings(LB1, &peer);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().any(|finding| finding.message.starts_with(
            "lb1.yaml has VRID 51 (IPv4) on eth0, `api`, and lb2.yaml has no instance"
        )),
        "{found:#?}"
    );
    assert!(
        found.iter().any(
            |finding| finding.message.starts_with("lb2.yaml has VRID 52")
                && finding.peer.path == "vrrp[0].vrid"
        ),
        "{found:#?}"
    );
    let peer = lb2().replace(
        "      - { frontend: api, weight: -60 }\n",
        "      - { frontend: api, weight: -60 }\n      - { interface: eth0, weight: 0 }\n",
    );
    let found = only_finding(
        LB1,
        &peer,
        "the trackers differ (interface eth0 (weight 0) only in lb2.yaml)",
    );
    assert_eq!(found.severity, Severity::Warning);
}

#[test]
fn every_mismatch_of_an_instance_is_reported_at_once() {
    let peer = lb2()
        .replace("auth_password: secret", "auth_password: other")
        .replace("advert_interval: 1s", "advert_interval: 3s")
        .replace("[198.51.100.50/24]", "[198.51.100.60/24]")
        .replace("peers: [198.51.100.11]", "peers: [198.51.100.13]");
    let found = findings(LB1, &peer);
    let lines: Vec<u64> = found.iter().map(|finding| finding.this.line).collect();
    assert_eq!(lines, [8, 9, 10, 11], "{found:#?}");
}
