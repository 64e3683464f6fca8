//! One test (or a few) per validation rule, on small inline documents.

use std::time::Duration;

use crate::{Config, Diagnostic, HealthKind, TrackTarget, VrrpVersion};

/// A small valid configuration; tests append to or edit it.
pub(super) const BASE: &str = "\
node: lb1
vrrp:
  - name: api
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.50/24]
frontends:
  - name: apiserver
    bind: [\"198.51.100.50:6443\"]
    backend: apiservers
backends:
  - name: apiservers
    health: { kind: https, path: /readyz }
    servers:
      - { name: m1, address: \"198.51.100.21:6443\" }
";

pub(super) fn valid(text: &str) -> (Config, Vec<Diagnostic>) {
    match Config::from_yaml_str(text) {
        Ok(found) => found,
        Err(errors) => panic!("expected a valid file, got:\n{errors}"),
    }
}

pub(super) fn errors(text: &str) -> Vec<Diagnostic> {
    match Config::from_yaml_str(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.0,
    }
}

/// Asserts that `text` fails with an error at `path` on `line` whose message contains `words`.
pub(super) fn assert_error(text: &str, path: &str, line: u64, words: &str) {
    let found = errors(text);
    assert!(
        found
            .iter()
            .any(|error| error.path == path && error.line == line && error.message.contains(words)),
        "no error at {path} line {line} containing {words:?}; got:\n{}",
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub(super) fn assert_warning(text: &str, path: &str, words: &str) {
    let (_, warnings) = valid(text);
    assert!(
        warnings
            .iter()
            .any(|warning| warning.path == path && warning.message.contains(words)),
        "no warning at {path} containing {words:?}; got {warnings:?}"
    );
}

/// BASE with the single instance's extra lines (indented to its fields) appended.
fn with_instance_fields(fields: &str) -> String {
    BASE.replace(
        "    vips: [198.51.100.50/24]\n",
        &format!("    vips: [198.51.100.50/24]\n{fields}"),
    )
}

#[test]
fn the_base_document_is_valid_with_defaults_resolved() {
    let (config, warnings) = valid(BASE);
    assert!(warnings.is_empty(), "{warnings:?}");
    let instance = &config.vrrp[0];
    assert_eq!(instance.version, VrrpVersion::V3);
    assert_eq!(instance.advert_interval, Duration::from_secs(1));
    assert_eq!(instance.advert_interval_centis(), 100);
    assert!(instance.preempt);
    assert_eq!(instance.garp.repeat, 5);
    assert_eq!(instance.vips[0].interface, "eth0");
    assert_eq!(config.control.listen.to_string(), "127.0.0.1:9650");
    let backend = &config.backends[0];
    assert_eq!(backend.retries, 3);
    assert_eq!(backend.health.interval, Duration::from_secs(2));
    assert_eq!(backend.health.timeout, Duration::from_secs(1));
    match &backend.health.kind {
        HealthKind::Https { http, .. } => {
            assert_eq!(http.path, "/readyz");
            assert_eq!(http.expect_status, vec![200]);
        }
        other => panic!("expected https, got {other:?}"),
    }
    assert_eq!(backend.servers[0].weight, 1);
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "\
vrrp:
  - name: a
    interface: eth0
    vrid: 300
    priority: 0
    advert_interval: 15ms
    vips: [198.51.100.50]
";
    let found = errors(text);
    let paths: Vec<&str> = found.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "vrrp[0].vrid",
            "vrrp[0].priority",
            "vrrp[0].advert_interval",
            "vrrp[0].vips[0]"
        ],
        "{found:?}"
    );
    assert_eq!(found[0].line, 4);
    assert_eq!(found[0].column, 11);
}

#[test]
fn missing_required_fields_point_at_their_mapping() {
    let text = "vrrp:\n  - name: a\n";
    assert_error(text, "vrrp[0].interface", 2, "missing required field");
    assert_error(text, "vrrp[0].vrid", 2, "missing required field");
    assert_error(text, "vrrp[0].vips", 2, "at least one VIP");
}

#[test]
fn duplicate_names_are_errors() {
    let text = format!(
        "{BASE}  - name: apiservers\n    servers: [{{ name: m1, address: \"198.51.100.22:6443\" }}]\n"
    );
    assert_error(
        &text,
        "backends[1].name",
        17,
        "duplicate backend name `apiservers` (first at line 13)",
    );
    let text = with_instance_fields(
        "  - name: api\n    interface: eth1\n    vrid: 52\n    vips: [198.51.100.51/24]\n",
    );
    assert_error(&text, "vrrp[1].name", 8, "duplicate vrrp instance name");
    let text = BASE.replace(
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n",
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n      - { name: m1, address: \"198.51.100.22:6443\" }\n",
    );
    assert_error(
        &text,
        "backends[0].servers[1].name",
        17,
        "duplicate server name",
    );
}

#[test]
fn names_are_restricted_to_label_safe_characters() {
    let text = BASE.replace("name: api\n", "name: \"api server\"\n");
    assert_error(&text, "vrrp[0].name", 3, "names use letters");
}

#[test]
fn a_vrid_repeats_only_across_interfaces_or_families() {
    let second = |interface: &str, vip: &str| {
        with_instance_fields(&format!(
            "  - name: other\n    interface: {interface}\n    vrid: 51\n    vips: [\"{vip}\"]\n"
        ))
    };
    assert_error(
        &second("eth0", "198.51.100.60/24"),
        "vrrp[1].vrid",
        10,
        "VRID 51 is already used on eth0",
    );
    valid(&second("eth1", "198.51.100.60/24"));
    // IPv4 and IPv6 have separate VRID spaces (RFC 5798 section 5.2.3).
    valid(&second("eth0", "2001:db8::60/64"));
}

#[test]
fn a_vip_is_in_one_instance_only() {
    let text = with_instance_fields(
        "  - name: other\n    interface: eth1\n    vrid: 52\n    vips: [198.51.100.50/32]\n",
    );
    assert_error(&text, "vrrp[1].vips[0]", 11, "already a VIP at line 7");
}

#[test]
fn version_2_carries_ipv4_only() {
    let text = BASE.replace(
        "    vips: [198.51.100.50/24]\n",
        "    version: 2\n    vips:\n      - 198.51.100.50/24\n      - { address: \"2001:db8::50/64\" }\n",
    );
    assert_error(
        &text,
        "vrrp[0].vips[1].address",
        10,
        "VRRP version 2 carries IPv4 only",
    );
}

#[test]
fn version_3_may_carry_both_families() {
    let text = BASE.replace(
        "vips: [198.51.100.50/24]",
        "vips: [198.51.100.50/24, \"2001:db8::50/64\"]",
    );
    let (config, _) = valid(&text);
    assert!(!config.vrrp[0].is_ipv6());
}

#[test]
fn interval_units_follow_the_version() {
    let v2 = |interval: &str| {
        with_instance_fields(&format!(
            "    version: 2\n    advert_interval: {interval}\n"
        ))
    };
    assert_error(&v2("1500ms"), "vrrp[0].advert_interval", 9, "whole seconds");
    assert_error(&v2("0s"), "vrrp[0].advert_interval", 9, "whole seconds");
    assert_eq!(
        valid(&v2("3s")).0.vrrp[0].advert_interval,
        Duration::from_secs(3)
    );
    let v3 = |interval: &str| with_instance_fields(&format!("    advert_interval: {interval}\n"));
    assert_error(&v3("15ms"), "vrrp[0].advert_interval", 8, "steps of 10ms");
    assert_error(&v3("5ms"), "vrrp[0].advert_interval", 8, "steps of 10ms");
    assert_error(&v3("41s"), "vrrp[0].advert_interval", 8, "10ms..=40.95s");
    assert_eq!(valid(&v3("10ms")).0.vrrp[0].advert_interval_centis(), 1);
    assert_eq!(
        valid(&v3("40950ms")).0.vrrp[0].advert_interval_centis(),
        4095
    );
}

#[test]
fn durations_need_units() {
    assert_error(
        &with_instance_fields("    preempt_delay: 5\n"),
        "vrrp[0].preempt_delay",
        8,
        "has no unit",
    );
    assert_error(
        &with_instance_fields("    preempt_delay: soon\n"),
        "vrrp[0].preempt_delay",
        8,
        "not a duration",
    );
    assert_eq!(
        valid(&with_instance_fields("    preempt_delay: 0\n"))
            .0
            .vrrp[0]
            .preempt_delay,
        Duration::ZERO
    );
}

#[test]
fn numbers_are_range_checked() {
    assert_error(
        &BASE.replace("vrid: 51", "vrid: 0"),
        "vrrp[0].vrid",
        5,
        "1..=255",
    );
    assert_error(
        &BASE.replace("priority: 150", "priority: 256"),
        "vrrp[0].priority",
        6,
        "1..=255",
    );
    assert_error(
        &with_instance_fields("    version: 4\n"),
        "vrrp[0].version",
        8,
        "2 or 3",
    );
    assert_error(
        &with_instance_fields("    garp: { repeat: 0 }\n"),
        "vrrp[0].garp.repeat",
        8,
        "1..=100",
    );
    assert_error(
        &with_instance_fields("    track: [{ interface: eth1, weight: -255 }]\n"),
        "vrrp[0].track[0].weight",
        8,
        "-254..=254",
    );
    let server = |extra: &str| {
        BASE.replace(
            "address: \"198.51.100.21:6443\" }",
            &format!("address: \"198.51.100.21:6443\", {extra} }}"),
        )
    };
    assert_error(
        &server("weight: 300"),
        "backends[0].servers[0].weight",
        16,
        "0..=256",
    );
    assert_error(
        &server("max_connections: 0"),
        "backends[0].servers[0].max_connections",
        16,
        "1..=",
    );
    assert_error(
        &BASE.replace(
            "health: { kind: https, path: /readyz }",
            "health: { rise: 0, fall: 0 }",
        ),
        "backends[0].health.fall",
        14,
        "1..=100",
    );
}

#[test]
fn ports_and_addresses_are_checked() {
    assert_error(
        &BASE.replace("198.51.100.50:6443", "198.51.100.50:0"),
        "frontends[0].bind[0]",
        10,
        "port 0",
    );
    assert_error(
        &BASE.replace("198.51.100.50:6443", "198.51.100.50:70000"),
        "frontends[0].bind[0]",
        10,
        "port 70000 is out of range 1..=65535",
    );
    assert_error(
        &BASE.replace("198.51.100.21:6443", "apiserver.local:6443"),
        "backends[0].servers[0].address",
        16,
        "got a host name `apiserver.local`: vipd does not resolve names",
    );
    assert_error(
        &BASE.replace("198.51.100.50/24", "198.51.100.50/33"),
        "vrrp[0].vips[0]",
        7,
        "prefix length 33 is longer than 32 for an IPv4 address",
    );
    assert_error(
        &BASE.replace("198.51.100.50/24", "198.51.100.50"),
        "vrrp[0].vips[0]",
        7,
        "needs its prefix length",
    );
    assert_error(
        &BASE.replace("198.51.100.50/24", "224.0.0.18/32"),
        "vrrp[0].vips[0]",
        7,
        "cannot be a virtual IP",
    );
}

#[test]
fn priority_255_takes_only_weight_0_trackers() {
    let text = BASE
        .replace("priority: 150", "priority: 255")
        .replace("    vips: [198.51.100.50/24]\n", "    vips: [198.51.100.50/24]\n    track:\n      - { interface: eth1 }\n      - { interface: eth2, weight: -10 }\n");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "vrrp[0].track[1].weight");
    assert_eq!(found[0].line, 10);
}

#[test]
fn trackers_point_at_something() {
    let text = with_instance_fields(
        "    track:\n      - { frontend: nowhere }\n      - { script: nothing, weight: -5 }\n",
    );
    assert_error(
        &text,
        "vrrp[0].track[0].frontend",
        9,
        "no frontend is named `nowhere`",
    );
    assert_error(
        &text,
        "vrrp[0].track[1].script",
        10,
        "no script is named `nothing`",
    );
}

#[test]
fn a_tracker_names_exactly_one_thing() {
    let text = with_instance_fields(
        "    track:\n      - { weight: -5 }\n      - { interface: eth1, file: /run/x }\n",
    );
    assert_error(&text, "vrrp[0].track[0]", 9, "this one has none");
    assert_error(
        &text,
        "vrrp[0].track[1]",
        10,
        "this one has interface and file",
    );
    let text = with_instance_fields("    track: [{ interface: eth1, min_up: 2 }]\n");
    assert_error(
        &text,
        "vrrp[0].track[0].min_up",
        8,
        "frontend trackers only",
    );
}

#[test]
fn tracker_kinds_are_typed() {
    let text = format!(
        "{}scripts:\n  chk:\n    command: [/usr/local/bin/chk, --quick]\n",
        with_instance_fields(
            "    track:\n      - { frontend: apiserver, min_up: 2, weight: -60 }\n      - { script: chk, weight: -20 }\n      - { file: /run/vipd/maintenance, weight: -100 }\n      - { interface: eth1 }\n"
        )
    );
    let text = text.replace(
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n",
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n      - { name: m2, address: \"198.51.100.22:6443\" }\n",
    );
    let (config, _) = valid(&text);
    let targets: Vec<&TrackTarget> = config.vrrp[0]
        .track
        .iter()
        .map(|tracker| &tracker.target)
        .collect();
    assert_eq!(
        targets[0],
        &TrackTarget::Frontend {
            name: "apiserver".into(),
            min_up: 2
        }
    );
    assert_eq!(targets[1], &TrackTarget::Script { name: "chk".into() });
    assert_eq!(config.vrrp[0].track[3].weight, 0);
    let script = &config.scripts["chk"];
    assert_eq!(script.command.program.to_str(), Some("/usr/local/bin/chk"));
    assert_eq!(script.command.args, ["--quick"]);
    assert_eq!((script.rise, script.fall), (2, 3));
}

#[test]
fn min_up_must_be_reachable() {
    let text =
        with_instance_fields("    track: [{ frontend: apiserver, min_up: 2, weight: -60 }]\n");
    assert_error(
        &text,
        "vrrp[0].track[0].min_up",
        8,
        "min_up 2 can never be met: backend `apiservers` has 1 server(s)",
    );
}

#[test]
fn warns_about_one_address_under_two_server_names() {
    let text = BASE.replace(
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n",
        "      - { name: m1, address: \"198.51.100.21:6443\" }\n      - { name: m2, address: \"198.51.100.21:6443\" }\n",
    );
    assert_warning(
        &text,
        "backends[0].servers[1].address",
        "is also server `m1`",
    );
}

#[test]
fn frontends_point_at_a_backend() {
    assert_error(
        &BASE.replace("backend: apiservers", "backend: nope"),
        "frontends[0].backend",
        11,
        "no backend is named `nope`",
    );
}

#[test]
fn auth_password_is_for_version_2() {
    let text = with_instance_fields("    auth_password: s3cret\n");
    assert_error(
        &text,
        "vrrp[0].auth_password",
        8,
        "version 3 has no authentication",
    );
    valid(&with_instance_fields(
        "    version: 2\n    auth_password: s3cret\n",
    ));
    assert_error(
        &with_instance_fields("    version: 2\n    auth_password: much-too-long\n"),
        "vrrp[0].auth_password",
        9,
        "1 to 8 bytes",
    );
}

#[test]
fn checksum_is_for_version_3() {
    assert_error(
        &with_instance_fields("    version: 2\n    checksum: message_only\n"),
        "vrrp[0].checksum",
        9,
        "version 3 only",
    );
}

#[test]
fn a_bind_port_is_used_once() {
    let text = BASE.replace(
        "    backend: apiservers\n",
        "    backend: apiservers\n  - name: again\n    bind: [\"0.0.0.0:6443\", \"198.51.100.51:6443\", \"127.0.0.1:9650\"]\n    backend: apiservers\n",
    );
    assert_error(
        &text,
        "frontends[1].bind[0]",
        13,
        "port 6443 is already bound by 198.51.100.50:6443",
    );
    assert_error(&text, "frontends[1].bind[2]", 13, "control.listen");
    // Two VIPs on one port (active-active) are fine.
    let text = BASE.replace(
        "bind: [\"198.51.100.50:6443\"]",
        "bind: [\"198.51.100.50:6443\", \"198.51.100.51:6443\"]",
    );
    valid(&text);
}

#[test]
fn unicast_peers_match_the_instance() {
    let text = with_instance_fields(
        "    unicast:\n      source: 198.51.100.11\n      peers: [198.51.100.12, \"2001:db8::12\", 198.51.100.11, 198.51.100.12]\n",
    );
    assert_error(
        &text,
        "vrrp[0].unicast.peers[1]",
        10,
        "is IPv6, but the instance advertises IPv4",
    );
    assert_error(&text, "vrrp[0].unicast.peers[2]", 10, "own source address");
    assert_error(&text, "vrrp[0].unicast.peers[3]", 10, "listed twice");
    assert_error(
        &with_instance_fields("    unicast: { peers: [] }\n"),
        "vrrp[0].unicast.peers",
        8,
        "at least one peer",
    );
}

#[test]
fn vip_maps_default_to_the_instance_interface_and_check_labels() {
    let text = BASE.replace(
        "    vips: [198.51.100.50/24]\n",
        "    vips:\n      - { address: 198.51.100.50/24, label: \"eth0:api\" }\n      - { address: 198.51.100.51/24, interface: eth1, label: \"eth0:x\" }\n",
    );
    assert_error(
        &text,
        "vrrp[0].vips[1].label",
        9,
        "starts with the interface name `eth1`",
    );
    let (config, _) = valid(&BASE.replace(
        "    vips: [198.51.100.50/24]\n",
        "    vips:\n      - { address: 198.51.100.50/24, label: \"eth0:api\" }\n",
    ));
    assert_eq!(config.vrrp[0].vips[0].interface, "eth0");
    assert_eq!(config.vrrp[0].vips[0].label.as_deref(), Some("eth0:api"));
}

#[test]
fn commands_are_absolute_argv_lists() {
    let text = with_instance_fields("    notify: { master: [on-master], backup: [] }\n");
    assert_error(&text, "vrrp[0].notify.master[0]", 8, "absolute path");
    assert_error(&text, "vrrp[0].notify.backup", 8, "at least the program");
}

#[test]
fn check_timeouts_fit_in_their_interval() {
    let text = format!(
        "{BASE}scripts:\n  chk:\n    command: [/bin/true]\n    interval: 1s\n    timeout: 2s\n"
    );
    assert_error(&text, "scripts.chk.timeout", 21, "longer than the interval");
    // Without a timeout, a short interval lowers the default timeout with it.
    let text = format!("{BASE}scripts:\n  chk:\n    command: [/bin/true]\n    interval: 500ms\n");
    assert_eq!(
        valid(&text).0.scripts["chk"].timeout,
        Duration::from_millis(500)
    );
}

#[test]
fn http_fields_need_an_http_check() {
    let text = BASE.replace(
        "health: { kind: https, path: /readyz }",
        "health: { path: /readyz, tls_verify: { ca_file: /etc/ca.crt } }",
    );
    assert_error(
        &text,
        "backends[0].health.path",
        14,
        "http and https checks only",
    );
    assert_error(
        &text,
        "backends[0].health.tls_verify",
        14,
        "https checks only",
    );
    let text = BASE.replace("path: /readyz", "path: readyz, expect_status: [200, 700]");
    assert_error(&text, "backends[0].health.path", 14, "must start with `/`");
    assert_error(
        &text,
        "backends[0].health.expect_status[1]",
        14,
        "100..=599",
    );
}

#[test]
fn tls_verify_takes_none_or_a_ca_file() {
    let text = BASE.replace(
        "path: /readyz",
        "path: /readyz, tls_verify: { ca_file: /etc/kubernetes/pki/ca.crt }",
    );
    match &valid(&text).0.backends[0].health.kind {
        HealthKind::Https { tls_verify, .. } => {
            assert_eq!(
                tls_verify,
                &crate::TlsVerify::CaFile("/etc/kubernetes/pki/ca.crt".into())
            );
        }
        other => panic!("expected https, got {other:?}"),
    }
    let found = errors(&BASE.replace("path: /readyz", "path: /readyz, tls_verify: always"));
    assert_eq!(found[0].path, "backends[0].health.tls_verify");
    assert!(found[0].message.contains("`none` or a map"), "{found:?}");
}

#[test]
fn warns_when_a_negative_weight_cannot_beat_the_peer() {
    let text = with_instance_fields(
        "    peer_priority: 100\n    track:\n      - { interface: eth1, weight: -20 }\n      - { interface: eth2, weight: -60 }\n",
    );
    let (_, warnings) = valid(&text);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].path, "vrrp[0].track[0].weight");
    assert_eq!(warnings[0].line, 10);
    assert!(
        warnings[0]
            .message
            .contains("lowers priority 150 to 130, not below peer_priority 100"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].message.contains("a weight of -51 or lower"),
        "{warnings:?}"
    );
    // Positive weights raise the priority the negative one must overcome.
    let text = with_instance_fields(
        "    peer_priority: 100\n    track:\n      - { interface: eth1, weight: 20 }\n      - { interface: eth2, weight: -60 }\n",
    );
    assert_warning(
        &text,
        "vrrp[0].track[1].weight",
        "lowers priority 170 to 110",
    );
    assert_warning(
        &with_instance_fields("    peer_priority: 150\n"),
        "vrrp[0].peer_priority",
        "equal to this node's priority 150",
    );
    // Without a known peer priority there is nothing to compare with.
    let (_, warnings) = valid(&with_instance_fields(
        "    track: [{ interface: eth1, weight: -1 }]\n",
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn warns_about_a_tcp_checked_apiserver_backend() {
    let text = BASE.replace("    health: { kind: https, path: /readyz }\n", "");
    assert_warning(
        &text,
        "backends[0].health.kind",
        "port 6443 with only a tcp check",
    );
    let (_, warnings) = valid(&text);
    assert_eq!(warnings[0].line, 13, "{warnings:?}");
}

#[test]
fn warns_about_a_plain_http_checked_apiserver_backend() {
    let text = BASE.replace("kind: https, path: /readyz", "kind: http, path: /readyz");
    assert_warning(
        &text,
        "backends[0].health.kind",
        "port 6443 with a plain http check: an apiserver answers HTTP on its TLS port with 400",
    );
    // The check's own port counts, not only the servers'.
    let text = BASE
        .replace(
            "kind: https, path: /readyz",
            "kind: http, path: /readyz, port: 6443",
        )
        .replace("198.51.100.21:6443", "198.51.100.21:443");
    assert_warning(&text, "backends[0].health.kind", "plain http check");
}

#[test]
fn an_empty_or_truncated_file_is_refused() {
    for text in [
        "",
        "# nothing yet\n",
        "node: lb1\n",
        "node: lb1\ncontrol: { listen: \"127.0.0.1:9650\" }\n",
    ] {
        let found = errors(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "");
        assert_eq!(found[0].line, 1);
        assert!(found[0].message.contains("release every VIP"), "{found:?}");
    }
    // A proxy alone, or VRRP alone, is something to do.
    let proxy_only = &BASE[BASE.find("frontends:").unwrap()..];
    valid(proxy_only);
    let vrrp_only = &BASE[..BASE.find("frontends:").unwrap()];
    valid(vrrp_only);
}

#[test]
fn a_control_server_reachable_from_other_hosts_needs_a_token() {
    let open = format!("{BASE}control: {{ listen: \"198.51.100.11:9650\" }}\n");
    assert_warning(&open, "control.listen", "no token_file is set");
    let wildcard = format!("{BASE}control: {{ listen: \"[::]:9650\" }}\n");
    assert_warning(&wildcard, "control.listen", "no token_file is set");
    let guarded = format!(
        "{BASE}control: {{ listen: \"198.51.100.11:9650\", token_file: /etc/vipd/token }}\n"
    );
    let (_, warnings) = valid(&guarded);
    assert!(warnings.is_empty(), "{warnings:?}");
    let loopback = format!("{BASE}control: {{ listen: \"[::1]:9650\" }}\n");
    let (_, warnings) = valid(&loopback);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn shutdown_grace_longer_than_the_stop_timeout_allows_is_explained() {
    assert_error(
        &format!("{BASE}shutdown_grace: 3m\n"),
        "shutdown_grace",
        17,
        "`3m` is longer than 2m, the longest drain: vipd exits at shutdown_grace + 10s (3m 10s here), and the shipped unit's TimeoutStopSec=135",
    );
    let (config, _) = valid(&format!("{BASE}shutdown_grace: 2m\n"));
    assert_eq!(config.shutdown_grace, Duration::from_secs(120));
}

#[test]
fn warns_about_unused_backends_and_scripts() {
    let text = format!(
        "{BASE}  - name: spare\n    servers: [{{ name: s1, address: \"198.51.100.30:80\" }}]\nscripts:\n  chk:\n    command: [/bin/true]\n"
    );
    assert_warning(&text, "backends[1].name", "not used by any frontend");
    assert_warning(&text, "scripts.chk", "not tracked by any vrrp instance");
}

#[test]
fn errors_come_in_file_order() {
    let text = "\
backends:
  - name: b
    servers: []
frontends:
  - name: f
    bind: []
    backend: b
vrrp:
  - name: a
";
    let found = errors(text);
    let lines: Vec<u64> = found.iter().map(|error| error.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    assert!(found.len() >= 4, "{found:?}");
}

#[test]
fn proxy_limits_have_defaults_and_ranges() {
    let (config, _) = valid(BASE);
    assert_eq!(config.max_connections, 100_000);
    assert_eq!(config.frontends[0].max_connections, None);
    assert_eq!(config.backends[0].max_queue, 1024);
    assert!(!config.backends[0].health.initially_up);
    assert_eq!(config.backends[0].timeout.connect, Duration::from_secs(3));
    assert_error(
        &format!("max_connections: 0\n{BASE}"),
        "max_connections",
        1,
        "1..=",
    );
}

#[test]
fn an_instance_splits_its_vips_by_advertised_family() {
    let text = BASE.replace(
        "vips: [198.51.100.50/24]",
        "vips: [\"2001:db8::50/64\", 198.51.100.50/24, \"2001:db8::51/64\"]",
    );
    let (config, _) = valid(&text);
    let instance = &config.vrrp[0];
    assert!(instance.is_ipv6());
    assert_eq!(instance.advertised_vips().count(), 2);
    let other: Vec<String> = instance
        .unadvertised_vips()
        .map(|vip| vip.address.to_string())
        .collect();
    assert_eq!(other, ["198.51.100.50/24"]);
}

#[test]
fn anchors_and_aliases_reuse_whole_values() {
    let text = BASE.replace(
        "    health: { kind: https, path: /readyz }\n",
        "    health: &readyz { kind: https, path: /readyz }\n",
    ) + "  - name: apiservers-b\n    health: *readyz\n    servers: [{ name: m9, address: \"198.51.100.29:6443\" }]\n";
    let (config, _) = valid(&text);
    assert_eq!(config.backends[0].health, config.backends[1].health);
}

#[test]
fn the_model_compares_instance_by_instance_for_reloads() {
    let (before, _) = valid(BASE);
    let (after, _) = valid(&BASE.replace("priority: 150", "priority: 140"));
    assert_ne!(before.vrrp[0], after.vrrp[0]);
    assert_eq!(before.frontends, after.frontends);
    assert_eq!(before.backends, after.backends);
}

#[test]
fn the_virtual_mac_is_off_by_default_and_named_like_keepalived() {
    let (config, _) = valid(BASE);
    assert_eq!(config.vrrp[0].virtual_mac, None);
    let (config, warnings) = valid(&with_instance_fields("    virtual_mac: true\n"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.vrrp[0]
            .virtual_mac
            .as_ref()
            .map(|vmac| vmac.interface.as_str()),
        Some("vrrp.51")
    );
    let (config, _) = valid(&with_instance_fields(
        "    virtual_mac: true\n    virtual_mac_interface: vmac-api\n",
    ));
    assert_eq!(
        config.vrrp[0]
            .virtual_mac
            .as_ref()
            .map(|vmac| vmac.interface.as_str()),
        Some("vmac-api")
    );
    let (config, _) = valid(&with_instance_fields("    virtual_mac: false\n"));
    assert_eq!(config.vrrp[0].virtual_mac, None);
}

#[test]
fn a_virtual_mac_interface_name_is_checked() {
    assert_error(
        &with_instance_fields(
            "    virtual_mac: true\n    virtual_mac_interface: vrrp-api-frontend\n",
        ),
        "vrrp[0].virtual_mac_interface",
        9,
        "1 to 15 characters",
    );
    assert_error(
        &with_instance_fields("    virtual_mac: true\n    virtual_mac_interface: eth0\n"),
        "vrrp[0].virtual_mac_interface",
        9,
        "the instance's own interface",
    );
    assert_error(
        &with_instance_fields("    virtual_mac_interface: vrrp.51\n"),
        "vrrp[0].virtual_mac_interface",
        8,
        "only with `virtual_mac: true`",
    );
}

#[test]
fn two_instances_never_share_a_virtual_mac_interface() {
    // Same VRID on two parents: both default to vrrp.51.
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "frontends:",
        "  - name: other\n    interface: eth1\n    vrid: 51\n    virtual_mac: true\n    vips: [198.51.100.60/24]\nfrontends:",
    );
    assert_error(
        &text,
        "vrrp[1].virtual_mac",
        12,
        "already the virtual MAC interface of instance `api` (line 8)",
    );
    // A macvlan named like another instance's interface.
    let text = with_instance_fields("    virtual_mac: true\n    virtual_mac_interface: eth1\n")
        .replace(
            "frontends:",
            "  - name: other\n    interface: eth1\n    vrid: 52\n    vips: [198.51.100.60/24]\nfrontends:",
        );
    assert_error(
        &text,
        "vrrp[0].virtual_mac_interface",
        9,
        "the interface of instance `other` (line 11)",
    );
}

#[test]
fn an_ipv4_virtual_mac_carries_ipv4_only() {
    // An IPv6 instance's macvlan has the 00-00-5E-00-02-{VRID} MAC and carries both families.
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "vips: [198.51.100.50/24]",
        "vips: [\"2001:db8::50/64\", 198.51.100.50/24]",
    );
    let (config, _) = valid(&text);
    assert!(
        config.vrrp[0]
            .vips
            .iter()
            .all(|vip| vip.interface == "vrrp.51")
    );
    // An unadvertised IPv6 VIP of a v3 instance may stay on another interface only.
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "vips: [198.51.100.50/24]",
        "vips: [198.51.100.50/24, \"2001:db8::50/64\"]",
    );
    assert_error(&text, "vrrp[0].vips[1]", 7, "carries IPv4 only");
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "vips: [198.51.100.50/24]",
        "vips: [198.51.100.50/24, { address: \"2001:db8::50/64\", interface: eth1 }]",
    );
    valid(&text);
}

#[test]
fn with_a_virtual_mac_vips_live_on_the_macvlan_unless_they_name_an_interface() {
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "vips: [198.51.100.50/24]",
        "vips: [198.51.100.50/24, { address: 198.51.100.51/24, interface: eth0 }, { address: 198.51.100.52/24, label: \"vrrp.51:api\" }]",
    );
    let (config, _) = valid(&text);
    let interfaces: Vec<&str> = config.vrrp[0]
        .vips
        .iter()
        .map(|vip| vip.interface.as_str())
        .collect();
    assert_eq!(interfaces, ["vrrp.51", "eth0", "vrrp.51"]);
    // The kernel wants a label to start with the name of the interface that holds the address.
    let text = with_instance_fields("    virtual_mac: true\n").replace(
        "vips: [198.51.100.50/24]",
        "vips: [{ address: 198.51.100.50/24, label: \"eth0:api\" }]",
    );
    assert_error(&text, "vrrp[0].vips[0].label", 7, "`vrrp.51`");
}

/// docs/operations.md, Tracking and weights: equally sick nodes keep the VIP where it is only if
/// the backup detects the failure within 2 × advert_interval (+ preempt_delay) of the master.
#[test]
fn warns_when_a_check_cannot_fail_on_both_nodes_within_the_window() {
    let script = |interval: &str, fall: u32| {
        format!(
            "{BASE}scripts:\n  chk:\n    command: [/bin/true]\n    interval: {interval}\n    fall: {fall}\n"
        )
    };
    let tracked = |fields: &str| {
        script("1s", 3).replace(
            "    vips: [198.51.100.50/24]\n",
            &format!("    vips: [198.51.100.50/24]\n    track: [{{ script: chk, weight: -60 }}]\n{fields}"),
        )
    };
    // 1 s × 3 + 1 s = 4 s against 2 × 1 s.
    assert_warning(
        &tracked(""),
        "vrrp[0].track[0]",
        "script `chk` detects a failure in up to 4s (interval × fall + timeout), longer than the 2s",
    );
    // A frontend tracker: its backend's health check (2 s × 3 + 1 s by default).
    assert_warning(
        &with_instance_fields("    track: [{ frontend: apiserver, weight: -60 }]\n"),
        "vrrp[0].track[0]",
        "frontend `apiserver` (backend `apiservers`'s health check) detects a failure in up to 7s",
    );
    let quiet = |text: &str| {
        let (_, warnings) = valid(text);
        assert!(
            !warnings
                .iter()
                .any(|warning| warning.message.contains("detects a failure")),
            "{warnings:?}"
        );
    };
    // Fits: 4 s within 2 × 2.5 s; or within 2 × 1 s + 3 s of preempt_delay.
    quiet(&tracked("    advert_interval: 2500ms\n"));
    quiet(&tracked("    preempt_delay: 3s\n"));
    // A backup that never preempts, weight 0 (Fault), and a weight that cannot move the VIP.
    quiet(&tracked("    preempt: false\n"));
    quiet(&tracked("").replace("weight: -60", "weight: 0"));
    quiet(&tracked("    peer_priority: 100\n").replace("weight: -60", "weight: -20"));
    // The backup's file of the same pair warns too: the preferred peer can drop below it.
    assert_warning(
        &tracked("    peer_priority: 150\n").replace("    priority: 150\n", "    priority: 100\n"),
        "vrrp[0].track[0]",
        "within which the peer must detect it too",
    );
    // Interfaces and files are not periodic checks.
    quiet(&with_instance_fields(
        "    track: [{ interface: eth1, weight: -60 }, { file: /run/m, weight: -60 }]\n",
    ));
}

#[test]
fn queue_timeout_follows_connect_and_error_limit_defaults_to_three() {
    let (config, _) = valid(BASE);
    assert_eq!(config.backends[0].timeout.queue, Duration::from_secs(3));
    assert_eq!(config.backends[0].health.error_limit, 3);
    let text = BASE.replace(
        "    health: { kind: https, path: /readyz }",
        "    timeout: { connect: 2s }\n    health: { kind: https, path: /readyz, error_limit: 0 }",
    );
    let (config, _) = valid(&text);
    assert_eq!(config.backends[0].timeout.queue, Duration::from_secs(2));
    assert_eq!(config.backends[0].health.error_limit, 0);
    let text = BASE.replace(
        "    health: { kind: https, path: /readyz }",
        "    timeout: { queue: 10s }\n    health: { kind: https, path: /readyz, error_limit: 5000 }",
    );
    let found = errors(&text);
    assert!(
        found
            .iter()
            .any(|error| error.path == "backends[0].health.error_limit"),
        "{found:?}"
    );
}

#[test]
fn slow_start_is_off_by_default_and_bounded() {
    let (config, _) = valid(BASE);
    assert_eq!(config.backends[0].slow_start, None);
    let with = |value: &str| {
        BASE.replace(
            "    health: { kind: https, path: /readyz }\n",
            &format!("    health: {{ kind: https, path: /readyz }}\n    slow_start: {value}\n"),
        )
    };
    let (config, _) = valid(&with("30s"));
    assert_eq!(config.backends[0].slow_start, Some(Duration::from_secs(30)));
    let (config, _) = valid(&with("0s"));
    assert_eq!(config.backends[0].slow_start, None, "0 turns it off");
    assert_error(&with("2h"), "backends[0].slow_start", 15, "out of range");
}
