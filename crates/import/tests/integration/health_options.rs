//! HAProxy's check options of real clusters: `port`, `addr`, `check-send-proxy`, `check-sni`,
//! `crt`, `http-check send hdr` and the global `spread-checks`.

use vipd_config::{ClientCertificate, HealthKind, ProxyProtocol};

use crate::directives::{assert_warned, proxy};

#[test]
fn check_port_address_proxy_header_headers_sni_crt_and_spread_are_mapped() {
    let imported = proxy(
        "global\n  spread-checks 4\n\
         frontend ingress\n  bind 198.51.100.50:443\n  default_backend ingress\n\
         backend ingress\n  option httpchk\n  \
         http-check send meth GET uri /healthz hdr Host ingress.example hdr X-Probe vipd\n  \
         server n1 198.51.100.21:443 check port 10254 addr 198.51.100.31 send-proxy-v2 check-send-proxy\n\
         listen api\n  bind 198.51.100.50:6443\n  option httpchk GET /readyz\n  \
         server m1 198.51.100.21:6443 check check-ssl verify none check-sni apiserver.test crt /etc/haproxy/client.pem\n",
    );
    let ingress = &imported.config.backends[0];
    let options = &ingress.health.options;
    assert_eq!(options.port, Some(10254), "{}", imported.yaml);
    assert_eq!(options.send_proxy, Some(ProxyProtocol::V2));
    assert_eq!(options.headers, [("X-Probe".into(), "vipd".into())]);
    assert_eq!(options.jitter_percent, 4);
    let HealthKind::Http(http) = &ingress.health.kind else {
        panic!("{:?}", ingress.health.kind)
    };
    assert_eq!(http.host.as_deref(), Some("ingress.example"));
    assert_eq!(
        ingress.servers[0].check_address,
        Some("198.51.100.31".parse().unwrap())
    );
    let api = &imported.config.backends[1].health.options;
    assert_eq!(api.sni.as_deref(), Some("apiserver.test"));
    assert_eq!(
        api.client_certificate,
        Some(ClientCertificate {
            certificate_file: "/etc/haproxy/client.pem".into(),
            key_file: None,
        })
    );
    assert_eq!(api.jitter_percent, 4);
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
}

#[test]
fn check_options_vipd_cannot_apply_are_named() {
    let imported = proxy(
        "global\n  spread-checks 80\n\
         listen web\n  bind 198.51.100.50:80\n  option httpchk\n  \
         http-check send hdr Connection keep-alive\n  \
         server w 198.51.100.31:80 check check-sni web.example crt client.pem addr web.local slowstart 30s\n",
    );
    assert_eq!(imported.config.backends[0].health.options.jitter_percent, 5);
    assert_eq!(
        imported.config.backends[0].slow_start,
        Some(std::time::Duration::from_secs(30)),
        "slowstart is mapped"
    );
    for expected in [
        "haproxy.cfg:8: spread-checks `80` is not 0..=50: skipped",
        "haproxy.cfg:12: check header Connection: vipd sets it itself: skipped",
        "haproxy.cfg:13: server addr is not an IP address (vipd does not resolve names): skipped",
        "haproxy.cfg:9: backend web: check-sni applies to vipd's https checks only (check-ssl with option httpchk): skipped",
        "haproxy.cfg:9: backend web: crt applies to vipd's https checks only (check-ssl with option httpchk): skipped",
    ] {
        assert_warned(&imported, expected);
    }
}

#[test]
fn per_server_slowstart_becomes_the_backends_longest_with_a_note() {
    let imported = proxy(
        "frontend web\n  bind 198.51.100.50:80\n  default_backend pool\nbackend pool\n  \
         server a 198.51.100.21:80 check slowstart 10s\n  \
         server b 198.51.100.22:80 check slowstart 1m\n  \
         server c 198.51.100.23:80 check\n",
    );
    assert_eq!(
        imported.config.backends[0].slow_start,
        Some(std::time::Duration::from_secs(60))
    );
    assert!(
        imported.yaml.contains("slow_start: 1m"),
        "{}",
        imported.yaml
    );
    assert!(
        imported
            .yaml
            .contains("longest of HAProxy's per-server slowstart")
    );
    assert!(
        !imported
            .warnings
            .iter()
            .any(|warning| warning.message.contains("slowstart")),
        "{:?}",
        imported.warnings
    );
}
