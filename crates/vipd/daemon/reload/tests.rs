//! One test per field of a `vrrp` entry: in place or restart (docs/design/vrrp.md, Reload).

use vipd_config::Config;

use super::*;

const BASE: &str = "
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.50/24]
";

/// Instance `api`: `BASE` with `extra` YAML lines (indented by four spaces) appended, or
/// replacing the base line of the same key.
fn instance(extra: &str) -> VrrpInstance {
    let keys: Vec<&str> = extra
        .lines()
        .filter_map(|line| line.trim().split(':').next())
        .filter(|key| !key.is_empty())
        .collect();
    let base: String = BASE
        .lines()
        .filter(|line| {
            let key = line.trim().split(':').next().unwrap_or_default();
            !keys.contains(&key)
        })
        .fold(String::new(), |text, line| text + line + "\n");
    let yaml =
        format!("scripts:\n  chk: {{ command: [/bin/true] }}\nvrrp:\n  - name: api{base}{extra}\n");
    match Config::from_yaml_str(&yaml) {
        Ok((config, _)) => config.vrrp.into_iter().next().expect("one instance"),
        Err(errors) => panic!("{errors}\n{yaml}"),
    }
}

fn effect(old: &str, new: &str) -> ReloadEffect {
    reload_effect(&instance(old), &instance(new))
}

fn assert_in_place(old: &str, new: &str, field: &'static str) {
    assert_eq!(
        effect(old, new),
        ReloadEffect::InPlace(vec![field]),
        "{old:?} → {new:?}"
    );
}

fn assert_restart(old: &str, new: &str, words: &str) {
    match effect(old, new) {
        ReloadEffect::Restart(reasons) => assert!(
            reasons.iter().any(|reason| reason.contains(words)),
            "{reasons:?} does not say {words:?}"
        ),
        other => panic!("{old:?} → {new:?}: {other:?}, expected a restart"),
    }
}

#[test]
fn the_same_entry_is_unchanged() {
    assert_eq!(effect("", ""), ReloadEffect::Unchanged);
}

#[test]
fn what_redefines_the_virtual_router_restarts_it() {
    assert_restart("", "    interface: eth1\n", "interface eth0 → eth1");
    assert_restart("", "    vrid: 52\n", "vrid 51 → 52");
    assert_restart("", "    version: 2\n", "version 3 → 2");
    assert_restart(
        "",
        "    vips: [2001:db8::50/64]\n",
        "the first VIP's family changed",
    );
    assert_restart(
        "    version: 2\n",
        "    version: 2\n    auth_password: secret\n",
        "auth_password",
    );
    assert_restart("", "    virtual_mac: true\n", "virtual_mac");
    assert_restart(
        "",
        "    unicast: { peers: [198.51.100.12] }\n",
        "multicast → unicast",
    );
    assert_restart(
        "    unicast: { peers: [198.51.100.12] }\n",
        "",
        "unicast → multicast",
    );
    assert_restart(
        "    unicast: { peers: [198.51.100.12] }\n",
        "    unicast: { source: 198.51.100.11, peers: [198.51.100.12] }\n",
        "unicast.source the interface's → 198.51.100.11",
    );
    assert_restart("", "    priority: 255\n", "address owner");
    assert_restart(
        "",
        "    vips: [198.51.100.50/24, { address: 203.0.113.50/24, interface: eth1 }]\n",
        "the interfaces the VIPs live on changed",
    );
}

#[test]
fn what_leaves_the_election_alone_applies_in_place() {
    assert_in_place("", "    priority: 120\n", "priority");
    assert_in_place("", "    advert_interval: 100ms\n", "advert_interval");
    assert_in_place("", "    preempt: false\n", "preempt");
    assert_in_place("", "    preempt_delay: 30s\n", "preempt_delay");
    assert_in_place("", "    checksum: message_only\n", "checksum");
    assert_in_place("", "    peer_priority: 100\n", "peer_priority");
    assert_in_place(
        "",
        "    vips: [198.51.100.50/24, 198.51.100.51/24]\n",
        "vips",
    );
    assert_in_place(
        "    vips: [198.51.100.50/24, 198.51.100.51/24]\n",
        "",
        "vips",
    );
    assert_in_place("", "    track: [{ script: chk, weight: -60 }]\n", "track");
    assert_in_place(
        "    track: [{ script: chk, weight: -60 }]\n",
        "    track: [{ script: chk, weight: -70 }]\n",
        "track",
    );
    assert_in_place("", "    notify: { master: [/bin/true] }\n", "notify");
    assert_in_place("", "    garp: { repeat: 3 }\n", "garp");
    assert_in_place(
        "    unicast: { peers: [198.51.100.12] }\n",
        "    unicast: { peers: [198.51.100.12, 198.51.100.13] }\n",
        "unicast.peers",
    );
    assert_in_place(
        "    unicast: { source: 198.51.100.11, peers: [198.51.100.12, 198.51.100.13] }\n",
        "    unicast: { source: 198.51.100.11, peers: [198.51.100.13] }\n",
        "unicast.peers",
    );
}

#[test]
fn several_changes_are_all_named_and_one_redefinition_restarts() {
    assert_eq!(
        effect(
            "",
            "    priority: 120\n    vips: [198.51.100.50/24, 198.51.100.51/24]\n    garp: { repeat: 3 }\n"
        ),
        ReloadEffect::InPlace(vec!["priority", "vips", "garp"])
    );
    assert!(matches!(
        effect("", "    priority: 120\n    vrid: 52\n"),
        ReloadEffect::Restart(reasons) if reasons.len() == 1
    ));
}

#[test]
fn the_log_line_says_what_and_why() {
    assert_eq!(
        effect("", "    vrid: 52\n").to_string(),
        "restarts, a master hands over to its peer first (vrid 51 → 52: another virtual router)"
    );
    assert_eq!(
        effect("", "    priority: 120\n").to_string(),
        "changed in place (priority)"
    );
}
