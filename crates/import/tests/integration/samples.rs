//! `vipd import` on real-world-looking pairs: the translation of each sample under
//! tests/samples/ equals its expected.yaml, compared as parsed `Config` values (not text), and
//! names what it could not translate with the exact file:line.

use std::path::{Path, PathBuf};

use vipd_config::{Config, TrackTarget};
use vipd_import::{ImportError, Imported, import, import_texts};

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

/// The pair the keepalived + HAProxy articles set up: `check_haproxy.sh` restarting HAProxy and
/// stopping keepalived, a weight of -2 against priorities 250 and 200, and a TCP check of the
/// apiservers. `script_at` is where its keepalived.conf says the script is.
fn import_article_node(node: &str, script_at: &Path) -> Imported {
    let directory = sample("article-pair");
    let keepalived = directory.join(format!("{node}-keepalived.conf"));
    let text = std::fs::read_to_string(&keepalived)
        .expect("the sample")
        .replace(
            "/etc/keepalived/check_haproxy.sh",
            &script_at.display().to_string(),
        );
    let haproxy = directory.join("haproxy.cfg");
    let haproxy_text = std::fs::read_to_string(&haproxy).expect("the sample");
    import_texts(&keepalived, &text, Some((&haproxy, &haproxy_text)))
        .unwrap_or_else(|error| panic!("{node}: {error}"))
}

fn relative(imported: &Imported) -> Vec<String> {
    let prefix = format!("{}/", sample("article-pair").display());
    imported
        .warnings
        .iter()
        .map(|warning| warning.to_string().replace(&prefix, ""))
        .collect()
}

#[test]
fn the_articles_check_haproxy_script_is_replaced_by_frontend_trackers() {
    let script = sample("article-pair").join("check_haproxy.sh");
    let imported = import_article_node("lb1", &script);
    assert!(imported.config.scripts.is_empty(), "{}", imported.yaml);
    let instance = &imported.config.vrrp[0];
    assert_eq!(instance.track.len(), 1, "{}", imported.yaml);
    assert_eq!(
        instance.track[0].target,
        TrackTarget::Frontend {
            name: "kube-apiserver".to_owned(),
            min_up: 1
        }
    );
    assert_eq!(instance.track[0].weight, -2);
    let warnings = relative(&imported);
    // The sample directory is cut from the paths, the script's included.
    let expected = "lb1-keepalived.conf:8: vrrp_script check_haproxy (check_haproxy.sh) only \
                    checks that HAProxy runs; it also restarts HAProxy and stops keepalived when \
                    HAProxy is down, which vipd leaves to systemd (Restart=on-failure restarts \
                    vipd, the proxy included): vipd's frontend trackers replace it, not carried \
                    over"
        .to_owned();
    assert!(
        warnings.contains(&expected),
        "no {expected:?} in {warnings:#?}"
    );
    assert!(
        warnings.iter().any(|warning| warning.starts_with(
            "haproxy.cfg:25: backend kube-apiserver: port 6443 with a TCP connect check"
        ) && warning.contains("HTTPS `/readyz`")),
        "{warnings:#?}"
    );
}

#[test]
fn a_check_haproxy_script_that_cannot_be_read_is_taken_by_its_name() {
    let imported =
        import_article_node("lb1", Path::new("/nonexistent/keepalived/check_haproxy.sh"));
    assert!(imported.config.scripts.is_empty(), "{}", imported.yaml);
    let warnings = relative(&imported);
    assert!(
        warnings.iter().any(|warning| warning.starts_with(
            "lb1-keepalived.conf:8: vrrp_script check_haproxy (/nonexistent/keepalived/check_haproxy.sh) is taken by its name"
        )),
        "{warnings:#?}"
    );
}

#[test]
fn the_article_pair_is_compared_with_its_keepalived_lines() {
    let script = sample("article-pair").join("check_haproxy.sh");
    let (lb1, lb2) = (
        import_article_node("lb1", &script),
        import_article_node("lb2", &script),
    );
    let findings = vipd_config::pair_findings(
        vipd_config::Node {
            file: "lb1-keepalived.conf",
            config: &lb1.config,
            text: &lb1.yaml,
        },
        vipd_config::Node {
            file: "lb2-keepalived.conf",
            config: &lb2.config,
            text: &lb2.yaml,
        },
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(finding.severity, vipd_config::Severity::Warning);
    assert!(
        finding.message.contains(
            "with every tracker failed, the priority of lb1-keepalived.conf is 248, not below 200"
        ),
        "{finding:?}"
    );
    let at = |imported: &Imported, path: &str| {
        imported
            .source_of(path)
            .map(|location| location.line)
            .expect("a vrrp field")
    };
    assert_eq!(at(&lb1, &finding.this.path), 16);
    assert_eq!(at(&lb2, &finding.peer.path), 16);
}

#[test]
fn a_haproxy_cfg_that_gives_no_frontend_is_an_error() {
    let directory = sample("article-pair");
    let keepalived = directory.join("lb1-keepalived.conf");
    let keepalived_text = std::fs::read_to_string(&keepalived).expect("the sample");
    let haproxy = directory.join("haproxy.cfg");
    // As a web page's copy can come out: every line break lost.
    let mangled = std::fs::read_to_string(&haproxy)
        .expect("the sample")
        .replace('\n', " ");
    let error = import_texts(&keepalived, &keepalived_text, Some((&haproxy, &mangled)))
        .expect_err("no frontend");
    match error {
        ImportError::NothingImported { at, message, .. } => {
            assert_eq!(at.line, 1);
            assert!(
                message.starts_with("no frontend or listen section"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    let backends_only = "backend web\n  server a 198.51.100.31:80 check\n";
    assert!(matches!(
        import_texts(
            &keepalived,
            &keepalived_text,
            Some((&haproxy, backends_only))
        ),
        Err(ImportError::NothingImported { .. })
    ));
    let skipped = "frontend web\n  bind 198.51.100.50:80\n  default_backend nowhere\n";
    match import_texts(&keepalived, &keepalived_text, Some((&haproxy, skipped))) {
        Err(ImportError::NothingImported {
            message, warnings, ..
        }) => {
            assert!(
                message.starts_with("none of its 1 frontend and listen sections"),
                "{message}"
            );
            assert!(!warnings.is_empty());
        }
        other => panic!("{other:?}"),
    }
}
