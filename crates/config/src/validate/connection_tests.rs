//! The proxy's connection settings: half-close, TCP keepalive, drain and resource bounds.

use std::time::Duration;

use crate::Config;

const BASE: &str = "\
frontends:
  - name: api
    bind: [\"198.51.100.50:6443\"]
    backend: apis
backends:
  - name: apis
    servers:
      - { name: m1, address: \"198.51.100.21:6443\" }
";

fn valid(text: &str) -> Config {
    match Config::from_yaml_str(text) {
        Ok((config, _)) => config,
        Err(errors) => panic!("expected a valid file, got:\n{errors}"),
    }
}

#[test]
fn fin_is_unset_unless_given_as_in_haproxy() {
    assert_eq!(valid(BASE).backends[0].timeout.fin, None);
    let text = BASE.replace(
        "  - name: apis\n",
        "  - name: apis\n    timeout: { fin: 30s }\n",
    );
    assert_eq!(
        valid(&text).backends[0].timeout.fin,
        Some(Duration::from_secs(30))
    );
}

#[test]
fn tcp_keepalive_is_on_by_default_and_can_be_tuned_or_turned_off() {
    let config = valid(BASE);
    let defaults = crate::TcpKeepalive::default();
    assert_eq!(config.frontends[0].tcp_keepalive, Some(defaults));
    assert_eq!(config.backends[0].tcp_keepalive, Some(defaults));
    assert_eq!(defaults.idle, Duration::from_secs(60));
    let text = BASE
        .replace(
            "    backend: apis\n",
            "    backend: apis\n    tcp_keepalive: { enabled: false }\n",
        )
        .replace(
            "  - name: apis\n",
            "  - name: apis\n    tcp_keepalive: { idle: 30s, interval: 5s, count: 3, user_timeout: 45s }\n",
        );
    let config = valid(&text);
    assert_eq!(config.frontends[0].tcp_keepalive, None);
    assert_eq!(
        config.backends[0].tcp_keepalive,
        Some(crate::TcpKeepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
            user_timeout: Some(Duration::from_secs(45)),
        })
    );
}

#[test]
fn keepalive_values_the_kernel_cannot_take_are_errors() {
    let text = BASE.replace(
        "  - name: apis\n",
        "  - name: apis\n    tcp_keepalive: { idle: 500ms, count: 0 }\n",
    );
    let errors = Config::from_yaml_str(&text).unwrap_err().0;
    let paths: Vec<&str> = errors.iter().map(|error| error.path.as_str()).collect();
    assert!(
        paths.contains(&"backends[0].tcp_keepalive.idle"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"backends[0].tcp_keepalive.count"),
        "{paths:?}"
    );
}

#[test]
fn the_proxy_header_timeout_defaults_to_5s() {
    assert_eq!(
        valid(BASE).frontends[0].proxy_header_timeout,
        Duration::from_secs(5)
    );
    let text = BASE.replace(
        "    backend: apis\n",
        "    backend: apis\n    proxy_header_timeout: 300ms\n",
    );
    assert_eq!(
        valid(&text).frontends[0].proxy_header_timeout,
        Duration::from_millis(300)
    );
}

#[test]
fn shutdown_grace_is_bounded_by_what_the_unit_waits_for() {
    let limit = crate::defaults::SHUTDOWN_GRACE_MAX;
    let at_limit = format!("shutdown_grace: {}s\n{BASE}", limit.as_secs());
    assert_eq!(valid(&at_limit).shutdown_grace, limit);
    let beyond = format!("shutdown_grace: {}s\n{BASE}", limit.as_secs() + 1);
    let errors = Config::from_yaml_str(&beyond).unwrap_err().0;
    assert_eq!(errors[0].path, "shutdown_grace", "{errors:?}");
}

#[test]
fn pipe_memory_is_a_share_of_ram_or_a_size() {
    use crate::PipeMemory;
    assert_eq!(valid(BASE).pipe_memory, PipeMemory::Percent(2));
    for (text, expected) in [
        ("5%", PipeMemory::Percent(5)),
        ("0", PipeMemory::Bytes(0)),
        ("512KiB", PipeMemory::Bytes(512 << 10)),
        ("256MiB", PipeMemory::Bytes(256 << 20)),
        ("1GiB", PipeMemory::Bytes(1 << 30)),
    ] {
        let config = valid(&format!("pipe_memory: {text}\n{BASE}"));
        assert_eq!(config.pipe_memory, expected, "{text}");
    }
    for wrong in ["60%", "256MB", "lots", "-1GiB", "1.5GiB"] {
        let errors = Config::from_yaml_str(&format!("pipe_memory: {wrong}\n{BASE}"))
            .unwrap_err()
            .0;
        assert_eq!(errors[0].path, "pipe_memory", "{wrong}: {errors:?}");
        assert!(errors[0].message.contains("share of RAM"), "{errors:?}");
    }
}
