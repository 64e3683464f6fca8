//! `announce`: groups, their VIPs and devices, against the rest of the file.

use std::time::Duration;

use super::tests::{BASE, errors, valid};
use crate::{Diagnostic, TrackTarget};

fn with_announce(section: &str) -> String {
    format!("{BASE}announce:\n{section}")
}

fn messages(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|diagnostic| format!("{}: {}", diagnostic.path, diagnostic.message))
        .collect()
}

#[test]
fn a_group_gets_the_defaults_and_host_addresses() {
    let (config, warnings) = valid(&with_announce(
        "  groups:
    - name: ingress
      vips: [203.0.113.100, 2001:db8::100/128]
      track:
        - frontend: apiserver
",
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
    let announce = config.announce.expect("announce");
    assert_eq!(announce.device, "vipd-announce");
    assert_eq!(announce.local_device, "vipd-local");
    assert_eq!(announce.withdraw_delay, Duration::from_secs(3));
    let group = &announce.groups[0];
    assert_eq!(group.priority, 100);
    assert_eq!(group.withdraw_below, None);
    assert_eq!(
        group.vips,
        vec![
            "203.0.113.100".parse::<std::net::IpAddr>().unwrap(),
            "2001:db8::100".parse().unwrap()
        ]
    );
    assert!(matches!(
        &group.track[0].target,
        TrackTarget::Frontend { name, min_up: 1 } if name == "apiserver"
    ));
}

#[test]
fn a_vip_is_one_address_announced_once_and_never_also_elected() {
    let found = messages(&errors(&with_announce(
        "  groups:
    - name: a
      vips: [203.0.113.0/24, 198.51.100.50, not-an-address]
    - name: b
      vips: [203.0.113.100, 203.0.113.100]
",
    )));
    let expected = [
        "announce.groups[0].vips[0]: `203.0.113.0/24`: an announced VIP is one address (/32)",
        "announce.groups[0].vips[1]: 198.51.100.50 is also a VIP of vrrp instance `api`",
        "announce.groups[0].vips[2]: `not-an-address` is not an IP address",
        "announce.groups[1].vips[1]: 203.0.113.100 is already announced by group `b`",
    ];
    for message in expected {
        assert!(
            found.iter().any(|line| line.starts_with(message)),
            "{message}\nnot in {found:#?}"
        );
    }
}

#[test]
fn the_devices_are_vipds_own() {
    let found = messages(&errors(&with_announce(
        "  device: eth0
  local_device: eth0
  groups:
    - name: a
      vips: [203.0.113.100]
",
    )));
    assert!(
        found
            .iter()
            .any(|line| line.starts_with("announce.local_device: `eth0` is also announce.device")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|line| line.starts_with("announce.device: `eth0` is used by vrrp[0]")),
        "{found:#?}"
    );
}

#[test]
fn a_group_needs_vips_and_announce_needs_a_group() {
    let found = messages(&errors(&with_announce("  groups: []\n")));
    assert_eq!(
        found,
        ["announce.groups: announce needs at least one group"]
    );
    let found = messages(&errors(&with_announce(
        "  groups:
    - name: a
",
    )));
    assert_eq!(
        found,
        ["announce.groups[0].vips: a group needs at least one VIP"]
    );
}

#[test]
fn the_stop_fits_the_units_timeout() {
    let found = messages(&errors(&format!(
        "shutdown_grace: 100s\n{}",
        with_announce(
            "  withdraw_delay: 30s
  groups:
    - name: a
      vips: [203.0.113.100]
"
        )
    )));
    assert!(
        found[0].starts_with("announce.withdraw_delay: withdraw_delay + shutdown_grace is 2m 10s"),
        "{found:#?}"
    );
}

#[test]
fn weights_without_a_threshold_are_a_warning() {
    let (_, warnings) = valid(&with_announce(
        "  groups:
    - name: a
      vips: [203.0.113.100]
      track:
        - frontend: apiserver
          weight: -20
",
    ));
    assert_eq!(
        messages(&warnings),
        [
            "announce.groups[0].track: weighted trackers cannot withdraw this group without `withdraw_below`; only weight-0 trackers do"
        ]
    );
}

#[test]
fn an_announce_group_alone_is_something_to_do_and_tracks_scripts() {
    let (config, warnings) = valid(
        "scripts:
  chk: { command: [/bin/true] }
announce:
  groups:
    - name: a
      vips: [203.0.113.100]
      track: [{ script: chk }]
",
    );
    assert!(config.vrrp.is_empty());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_group_is_not_named_like_an_instance() {
    let found = messages(&errors(&with_announce(
        "  groups:
    - name: api
      vips: [203.0.113.100]
",
    )));
    assert_eq!(
        found,
        [
            "announce.groups[0].name: `api` is also a vrrp instance's name; maintenance addresses both by name"
        ]
    );
}
