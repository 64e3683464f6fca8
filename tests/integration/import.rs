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
