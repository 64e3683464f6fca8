//! `vipd import` on real-world-looking pairs: the translation of each sample under
//! tests/samples/ equals its expected.yaml, compared as parsed `Config` values (not text), and
//! names what it could not translate with the exact file:line.

use std::path::{Path, PathBuf};

use vipd_config::Config;
use vipd_import::{ImportError, import};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(name)
}

/// Imports a sample and checks it against its expected.yaml; returns the warnings as text.
fn import_sample(name: &str) -> Vec<String> {
    let directory = sample(name);
    let imported = import(
        &directory.join("keepalived.conf"),
        Some(&directory.join("haproxy.cfg")),
    )
    .unwrap_or_else(|error| panic!("{name}: {error}"));
    let expected_text =
        std::fs::read_to_string(directory.join("expected.yaml")).expect("expected.yaml");
    let (expected, _) = Config::from_yaml_str(&expected_text).expect("expected.yaml is valid");
    let (reloaded, _) = Config::from_yaml_str(&imported.yaml).expect("the output loads");
    assert_eq!(reloaded, imported.config);
    assert_eq!(
        imported.config, expected,
        "{name}: the translation differs from expected.yaml; it was:\n{}",
        imported.yaml
    );
    // Paths are as given: keep only what follows the sample directory.
    let prefix = format!("{}/", directory.display());
    imported
        .warnings
        .iter()
        .map(|warning| warning.to_string().replace(&prefix, ""))
        .collect()
}

#[test]
fn an_active_standby_apiserver_pair_translates() {
    let warnings = import_sample("apiserver-active-standby");
    for expected in [
        "keepalived.conf:48: vrrp_instance smtp_alert has no vipd equivalent: skipped",
        "haproxy.cfg:3: global daemon has no vipd equivalent: skipped",
        "haproxy.cfg:8: log: vipd logs to stderr / the journal: skipped",
    ] {
        assert!(
            warnings.iter().any(|warning| warning == expected),
            "missing `{expected}` in {warnings:#?}"
        );
    }
    // The HAProxy liveness script became frontend trackers: no warning about it.
    assert!(
        !warnings
            .iter()
            .any(|warning| warning.contains("chk_haproxy")),
        "{warnings:#?}"
    );
}

#[test]
fn an_active_active_ingress_pair_translates_through_includes() {
    let warnings = import_sample("ingress-active-active");
    assert!(
        warnings.iter().any(|warning| warning
            .starts_with("conf.d/10-vip-a.conf:16: notify: keepalived passes INSTANCE")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|warning| warning == "haproxy.cfg:3: global stats has no vipd equivalent: skipped"),
        "{warnings:#?}"
    );
}

#[test]
fn the_output_names_the_source_lines() {
    let directory = sample("apiserver-active-standby");
    let imported = import(
        &directory.join("keepalived.conf"),
        Some(&directory.join("haproxy.cfg")),
    )
    .expect("imports");
    assert!(
        imported.yaml.contains("keepalived.conf:23\n"),
        "{}",
        imported.yaml
    );
    assert!(
        imported
            .yaml
            .contains("haproxy.cfg:18\n  - name: apiserver")
    );
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let missing = sample("no-such-sample/keepalived.conf");
    let error = import(&missing, None).expect_err("missing file");
    assert!(matches!(error, ImportError::Read { .. }));
    assert!(
        error.to_string().contains("no-such-sample/keepalived.conf"),
        "{error}"
    );
}
