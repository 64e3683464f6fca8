//! The health options of real clusters in vipd.yaml.

use crate::validate::tests::{BASE, assert_error, assert_warning, errors, valid};
use crate::{ClientCertificate, ProxyProtocol};

fn with_health(fields: &str) -> String {
    BASE.replace("health: { kind: https, path: /readyz }", fields)
}

#[test]
fn every_option_reaches_the_model() {
    let text = with_health(
        "health:\n      kind: https\n      port: 10254\n      send_proxy: v2\n      \
         headers: { X-Probe: vipd }\n      bearer_token_file: /run/token\n      \
         client_certificate: /etc/pki/client.pem\n      client_key: /etc/pki/client.key\n      \
         sni: apiserver.test\n      jitter_percent: 10",
    )
    .replace(
        "address: \"198.51.100.21:6443\" }",
        "address: \"198.51.100.21:6443\", check_address: 198.51.100.31 }",
    );
    let (config, warnings) = valid(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let options = &config.backends[0].health.options;
    assert_eq!(options.port, Some(10254));
    assert_eq!(options.send_proxy, Some(ProxyProtocol::V2));
    assert_eq!(options.headers, vec![("X-Probe".into(), "vipd".into())]);
    assert_eq!(options.bearer_token_file, Some("/run/token".into()));
    assert_eq!(
        options.client_certificate,
        Some(ClientCertificate {
            certificate_file: "/etc/pki/client.pem".into(),
            key_file: Some("/etc/pki/client.key".into()),
        })
    );
    assert_eq!(options.sni.as_deref(), Some("apiserver.test"));
    assert_eq!(options.jitter_percent, 10);
    assert_eq!(
        config.backends[0].servers[0].check_address,
        Some("198.51.100.31".parse().unwrap())
    );
    let (config, _) = valid(BASE);
    assert_eq!(config.backends[0].health.options.jitter_percent, 5);
}

#[test]
fn options_are_checked_against_the_kind_and_their_ranges() {
    let text = with_health(
        "health: { kind: tcp, headers: { A: b }, sni: x, client_key: /k, port: 0, jitter_percent: 60 }",
    );
    let found = errors(&text);
    for (path, words) in [
        ("headers", "http and https checks only"),
        ("sni", "https checks only"),
        ("client_key", "needs client_certificate"),
        ("port", "1..=65535"),
        ("jitter_percent", "0..=50"),
    ] {
        assert!(
            found
                .iter()
                .any(|error| error.path == format!("backends[0].health.{path}")
                    && error.message.contains(words)),
            "{path}: {found:?}"
        );
    }
    assert_error(
        &with_health("health: { kind: https, client_certificate: client.pem }"),
        "backends[0].health.client_certificate",
        14,
        "absolute path",
    );
    assert_error(
        &BASE.replace(
            "address: \"198.51.100.21:6443\" }",
            "address: \"198.51.100.21:6443\", check_address: \"0.0.0.0\" }",
        ),
        "backends[0].servers[0].check_address",
        16,
        "cannot be connected to",
    );
}

#[test]
fn headers_cannot_break_the_request_or_repeat_vipd_s_own() {
    for (header, words) in [
        ("Host: a", "with `host`"),
        ("Connection: keep-alive", "vipd sets Connection itself"),
        ("\"Bad Name\": x", "header name"),
        ("X-A: \"a\\r\\nX-B: b\"", "CR, LF or NUL"),
    ] {
        let text = with_health(&format!(
            "health: {{ kind: http, headers: {{ {header} }} }}"
        ));
        let found = errors(&text);
        assert!(
            found.iter().any(|error| error.message.contains(words)),
            "{header}: {found:?}"
        );
    }
    let text = with_health(
        "health: { kind: https, bearer_token_file: /run/t, headers: { Authorization: x } }",
    );
    assert!(
        errors(&text)[0]
            .message
            .contains("already sets Authorization")
    );
    assert_warning(
        &with_health("health: { kind: http, bearer_token_file: /run/t }"),
        "backends[0].health.bearer_token_file",
        "in clear",
    );
}
