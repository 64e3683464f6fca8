//! `vipd import`: the binary on the sample pairs (its output passes `vipd check -c`), on an
//! existing output file, on a missing file and on garbage (exit 1 with the reason, no panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Scratch, text, vipd};

fn sample(name: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/import/tests/samples")
        .join(name)
        .join(file)
}

fn run(command: &mut Command) -> Output {
    command.output().expect("vipd runs")
}

fn assert_no_panic(output: &Output) {
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}

#[test]
fn the_samples_import_into_files_vipd_check_accepts() {
    let scratch = Scratch::new("import-samples");
    for name in ["apiserver-active-standby", "ingress-active-active"] {
        let output_file = scratch.path(&format!("{name}.yaml"));
        let imported = run(vipd()
            .arg("import")
            .arg(sample(name, "keepalived.conf"))
            .arg(sample(name, "haproxy.cfg"))
            .arg("-o")
            .arg(&output_file));
        let stderr = text(&imported.stderr);
        assert!(imported.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("keepalived.conf:") || stderr.contains(".conf:"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("wrote {}", output_file.display())),
            "{stderr}"
        );

        let checked = run(vipd().args(["check", "-c"]).arg(&output_file));
        assert!(
            checked.status.success(),
            "{name}: vipd check refused the import:\n{}{}",
            text(&checked.stdout),
            text(&checked.stderr)
        );
        assert!(
            text(&checked.stdout).starts_with("ok: "),
            "{}",
            text(&checked.stdout)
        );
    }
}

#[test]
fn without_output_the_yaml_goes_to_stdout_and_the_warnings_to_stderr() {
    let name = "apiserver-active-standby";
    let output = run(vipd()
        .arg("import")
        .arg(sample(name, "keepalived.conf"))
        .arg(sample(name, "haproxy.cfg")));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\nvrrp:\n") && stdout.contains("\nbackends:\n"),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.lines().any(|line| line.ends_with(
            "keepalived.conf:48: vrrp_instance smtp_alert has no vipd equivalent: skipped"
        )),
        "{stderr}"
    );
}

#[test]
fn an_existing_output_file_is_kept_unless_forced() {
    let scratch = Scratch::new("import-force");
    let output_file = scratch.path("vipd.yaml");
    std::fs::write(&output_file, "# mine\n").expect("write");
    let keepalived = sample("apiserver-active-standby", "keepalived.conf");
    let refused = run(vipd()
        .arg("import")
        .arg(&keepalived)
        .arg("-o")
        .arg(&output_file));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output_file).expect("read"),
        "# mine\n"
    );

    let forced = run(vipd()
        .arg("import")
        .arg(&keepalived)
        .arg("-o")
        .arg(&output_file)
        .arg("--force"));
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(
        std::fs::read_to_string(&output_file)
            .expect("read")
            .contains("vrrp:")
    );
}

#[test]
fn an_unreadable_file_exits_1_naming_it() {
    let missing = "/nonexistent/vipd-import/keepalived.conf";
    let output = run(vipd().args(["import", missing]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(missing),
        "{}",
        text(&output.stderr)
    );
    assert_no_panic(&output);

    let keepalived = sample("apiserver-active-standby", "keepalived.conf");
    let output = run(vipd()
        .arg("import")
        .arg(keepalived)
        .arg("/nonexistent/haproxy.cfg"));
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("/nonexistent/haproxy.cfg"));
}

#[test]
fn garbage_exits_1_with_a_position_and_no_panic() {
    let scratch = Scratch::new("import-garbage");
    let binary = scratch.path("keepalived.conf");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap_or(0))
        .collect();
    std::fs::write(&binary, &bytes).expect("write");
    let output = run(vipd().arg("import").arg(&binary));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!("{}:", binary.display())),
        "{}",
        text(&output.stderr)
    );
    assert_no_panic(&output);

    let prose = scratch.path("notes.txt");
    std::fs::write(&prose, "remember to migrate the LB pair\n").expect("write");
    let output = run(vipd().arg("import").arg(&prose));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("notes.txt:1: `remember`: no global_defs"),
        "{}",
        text(&output.stderr)
    );
    assert_no_panic(&output);

    let unbalanced = scratch.path("unbalanced.conf");
    std::fs::write(&unbalanced, "vrrp_instance A {\n  interface eth0\n  }\n}\n").expect("write");
    let output = run(vipd().arg("import").arg(&unbalanced));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("unbalanced.conf:4: `}` closes no block"),
        "{}",
        text(&output.stderr)
    );
    assert_no_panic(&output);
}

/// The article pair (crates/import/tests/samples/article-pair) copied to `scratch`, its
/// keepalived files pointing at the copied check_haproxy.sh; lb2 edited by `edit_lb2`.
fn article_pair(scratch: &Scratch, edit_lb2: impl Fn(String) -> String) -> [PathBuf; 3] {
    let script = scratch.write(
        "check_haproxy.sh",
        &std::fs::read_to_string(sample("article-pair", "check_haproxy.sh")).expect("sample"),
    );
    let node = |name: &str| {
        std::fs::read_to_string(sample("article-pair", &format!("{name}-keepalived.conf")))
            .expect("sample")
            .replace(
                "/etc/keepalived/check_haproxy.sh",
                &script.display().to_string(),
            )
    };
    let haproxy = std::fs::read_to_string(sample("article-pair", "haproxy.cfg")).expect("sample");
    [
        scratch.write("lb1.conf", &node("lb1")),
        scratch.write("lb2.conf", &edit_lb2(node("lb2"))),
        scratch.write("haproxy.cfg", &haproxy),
    ]
}

/// `--peer`: both nodes' keepalived.conf translated and compared; each mismatch names the
/// `vrrp_instance` line of both files, and a pair error exits 1 with the output still written.
#[test]
fn a_pair_is_imported_and_compared_with_both_keepalived_lines() {
    let scratch = Scratch::new("import-peer");
    let [lb1, lb2, haproxy] = article_pair(&scratch, |text| {
        text.replace("auth_pass k8sVIP51", "auth_pass k8sVIP52")
    });
    let output_file = scratch.path("lb1.yaml");
    let output = run(vipd()
        .arg("import")
        .arg(&lb1)
        .arg(&haproxy)
        .arg("--peer")
        .arg(&lb2)
        .arg("-o")
        .arg(&output_file));
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let (first, second) = (lb1.display(), lb2.display());
    for expected in [
        format!(
            "pair error: {first}:16 / {second}:16: VRID 51: auth_password is not the same in both files"
        ),
        format!(
            "pair warning: {first}:16 / {second}:16: VRID 51: with every tracker failed, the priority of {first} is 248, not below 200 of a healthy {second}"
        ),
        format!("vipd import: 1 pair error between {first} and {second}"),
        format!("{first}:8: vrrp_script check_haproxy ("),
    ] {
        assert!(
            stderr.lines().any(|line| line.starts_with(&expected)),
            "no line starting {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(
            "only checks that HAProxy runs; it also restarts HAProxy and stops keepalived"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("backend kube-apiserver: port 6443 with a TCP connect check"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&output_file).expect("the output is written");
    assert!(!written.contains("scripts:"), "{written}");
    assert!(
        written.contains("{ frontend: kube-apiserver, weight: -2 }"),
        "{written}"
    );

    // Agreeing keepalived files: the weight warning only, exit 0.
    let agreeing = Scratch::new("import-peer-agreeing");
    let [lb1, lb2, haproxy] = article_pair(&agreeing, |text| text);
    let output = run(vipd()
        .arg("import")
        .arg(&lb1)
        .arg(&haproxy)
        .arg("--peer")
        .arg(&lb2));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr)
            .lines()
            .filter(|line| line.starts_with("pair "))
            .count(),
        1,
        "{}",
        text(&output.stderr)
    );
}

/// A haproxy.cfg copied off a web page with its line breaks lost used to give an empty proxy
/// and exit 0.
#[test]
fn a_haproxy_cfg_without_a_frontend_exits_1() {
    let scratch = Scratch::new("import-no-frontend");
    let [lb1, _, haproxy] = article_pair(&scratch, |text| text);
    let mangled = std::fs::read_to_string(&haproxy)
        .expect("read")
        .replace('\n', " ");
    std::fs::write(&haproxy, mangled).expect("write");
    let output = run(vipd().arg("import").arg(&lb1).arg(&haproxy));
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.lines().any(|line| line
            == format!(
                "vipd import: {}:1: no frontend or listen section: vipd would import nothing to serve",
                haproxy.display()
            )),
        "{stderr}"
    );
}
