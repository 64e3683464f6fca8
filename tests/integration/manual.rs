//! What a package ships from the binary itself, checked with the tools that read it: every page
//! `vipd man` writes renders with groff without a warning, every completion script is valid in its
//! shell, and `vipd --version` names the commit it was built from. groff-base, zsh and fish are
//! in tests/run's packages.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Scratch, text, vipd};

fn installed(program: &str) -> bool {
    ["/usr/bin", "/bin"]
        .iter()
        .any(|directory| Path::new(directory).join(program).exists())
}

fn write_pages(directory: &Path) -> Vec<PathBuf> {
    let output = vipd()
        .arg("man")
        .arg(directory)
        .output()
        .expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
    text(&output.stdout).lines().map(PathBuf::from).collect()
}

#[test]
fn every_man_page_renders_without_a_warning() {
    assert!(
        installed("groff"),
        "groff is needed (Debian package groff-base; tests/run installs it)"
    );
    let scratch = Scratch::new("man-pages");
    // A directory that does not exist yet: `vipd man` creates it.
    let directory = scratch.path("share/man/man8");
    let pages = write_pages(&directory);
    let names: Vec<String> = pages
        .iter()
        .map(|page| page.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["vipd.8", "vipd-run.8", "vipd-check.8", "vipd-release.8"] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    for page in &pages {
        assert!(page.starts_with(&directory), "{}", page.display());
        let output = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff runs");
        assert!(output.status.success(), "{}: {output:?}", page.display());
        assert!(
            output.stderr.is_empty(),
            "{} renders with warnings:\n{}",
            page.display(),
            text(&output.stderr)
        );
    }
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8"])
        .arg(directory.join("vipd.8"))
        .output()
        .expect("groff runs");
    let rendered = without_overstrike(&text(&rendered.stdout));
    for section in ["FILES", "SIGNALS", "EXIT STATUS", "SEE ALSO"] {
        assert!(rendered.contains(section), "{section}:\n{rendered}");
    }
}

/// grotty's bold and underline (`F\bF`, `_\bx`) as plain text: each character before a backspace
/// is struck over by the one after it.
fn without_overstrike(rendered: &str) -> String {
    let mut plain = String::new();
    for character in rendered.chars() {
        if character == '\u{8}' {
            plain.pop();
        } else {
            plain.push(character);
        }
    }
    plain
}

#[test]
fn every_completion_script_is_valid_in_its_shell() {
    let scratch = Scratch::new("completions");
    for (shell, check) in [
        ("bash", ["bash", "-n"]),
        ("zsh", ["zsh", "-n"]),
        ("fish", ["fish", "--no-execute"]),
    ] {
        assert!(
            installed(check[0]),
            "{} is needed (tests/run installs it)",
            check[0]
        );
        let output = vipd()
            .args(["completions", shell])
            .output()
            .expect("vipd runs");
        assert!(output.status.success(), "{output:?}");
        let script = text(&output.stdout);
        assert!(script.contains("vipd"), "{shell}: {script}");
        assert!(
            script.contains("release"),
            "{shell}: subcommands are completed"
        );
        let file = scratch.write(&format!("vipd.{shell}"), &script);
        let checked = Command::new(check[0])
            .arg(check[1])
            .arg(&file)
            .output()
            .expect("the shell runs");
        assert!(
            checked.status.success() && checked.stderr.is_empty(),
            "{shell} rejects the script: {checked:?}"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = vipd()
        .args(["completions", "tcsh"])
        .output()
        .expect("vipd runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = text(&output.stderr);
    assert!(
        error.contains("'tcsh'") && error.contains("bash, zsh, fish"),
        "{error}"
    );
}

/// The revision is HEAD's, from git, unless the build was told otherwise.
#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let output = vipd().arg("--version").output().expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
    let version = text(&output.stdout);
    let prefix = format!("vipd {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&prefix), "{version}");
    let expected = match option_env!("VIPD_SOURCE_REVISION") {
        Some(revision) if !revision.trim().is_empty() => revision.trim().to_owned(),
        _ => {
            let head = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("git runs: the tests are built from a checkout");
            assert!(head.status.success(), "{head:?}");
            format!("git {}", text(&head.stdout).trim())
        }
    };
    assert!(
        version.contains(&expected),
        "{version} does not name {expected}"
    );
}

/// A production build may leave the lab out (cargo feature `lab`): the subcommand is not listed,
/// and asked for it says why rather than "unrecognized subcommand".
#[cfg(not(feature = "lab"))]
#[test]
fn a_build_without_the_lab_says_so() {
    let help = vipd().arg("--help").output().expect("vipd runs");
    assert!(!text(&help.stdout).contains("  lab "), "{help:?}");
    let output = vipd()
        .args(["lab", "--mode", "active-active"])
        .output()
        .expect("vipd runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("built without the lab"),
        "{output:?}"
    );
}
