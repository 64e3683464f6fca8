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
