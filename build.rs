//! Names the source a vipd binary was built from, for `vipd --version`, `/status` and the
//! `vipd_build_info` metric: `0.1.0 (git 1a2b3c4d5e6f, 2026-12-05)`, `-dirty` after the revision
//! when the sources that go into the binary differ from that commit.
//!
//! The revision comes from, in order: `VIPD_SOURCE_REVISION` (a build from a tarball, such as a
//! Debian package built from a clean tree, with `SOURCE_DATE_EPOCH` for the date, as
//! reproducible-builds tools set it); `git` when the source is a git checkout; else `unknown`. A
//! missing git, or a tree that is not a checkout, never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files at the top whose content goes into the binary; [`build_inputs`] adds the sources.
const TOP_LEVEL_INPUTS: [&str; 3] = ["Cargo.toml", "Cargo.lock", "build.rs"];

fn main() {
    println!("cargo:rerun-if-env-changed=VIPD_SOURCE_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Also without git: a build that found no checkout (git missing, say) asks again at the next
    // change of the sources rather than staying `unknown`.
    for input in build_inputs() {
        println!("cargo:rerun-if-changed={input}");
    }
    let source = overridden_source().or_else(git_source).unwrap_or(Source {
        revision: "unknown".to_owned(),
        date: None,
    });
    let version = env!("CARGO_PKG_VERSION");
    let line = match &source.date {
        Some(date) => format!("{version} (git {}, {date})", source.revision),
        None if source.revision == "unknown" => format!("{version} (revision unknown)"),
        None => format!("{version} (git {})", source.revision),
    };
    println!("cargo:rustc-env=VIPD_BUILD_REVISION={}", source.revision);
    println!("cargo:rustc-env=VIPD_BUILD_VERSION={line}");
    // The man pages' date: the commit's, so that a page changes only with the source.
    println!(
        "cargo:rustc-env=VIPD_BUILD_DATE={}",
        source.date.unwrap_or_default()
    );
}

/// Where the binary was built from.
struct Source {
    /// An abbreviated commit id, with `-dirty` when the build inputs differ from it.
    revision: String,
    /// The commit's date, `YYYY-MM-DD`.
    date: Option<String>,
}

fn overridden_source() -> Option<Source> {
    let revision = std::env::var("VIPD_SOURCE_REVISION").ok()?;
    let revision = revision.trim();
    if revision.is_empty() {
        return None;
    }
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|epoch| epoch.trim().parse::<i64>().ok())
        .map(date_of_epoch);
    Some(Source {
        revision: revision.to_owned(),
        date,
    })
}

fn git_source() -> Option<Source> {
    // A tarball unpacked inside some other repository is not a checkout of vipd.
    let top_level = std::fs::canonicalize(git(&["rev-parse", "--show-toplevel"])?).ok()?;
    if top_level != std::fs::canonicalize(std::env::var_os("CARGO_MANIFEST_DIR")?).ok()? {
        return None;
    }
    watch_git_files();
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let date = git(&["log", "-1", "--format=%cs", "HEAD"]);
    // --no-optional-locks: a plain `git status` may rewrite the index, whose change would then
    // make every following build run this script again.
    let inputs = build_inputs();
    // A new file not yet added counts: it may be a module the build compiles.
    let mut status = vec!["--no-optional-locks", "status", "--porcelain", "--"];
    status.extend(inputs.iter().map(String::as_str));
    let dirty = git(&status).is_some_and(|changes| !changes.is_empty());
    let revision = if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    };
    Some(Source { revision, date })
}

/// Runs this script again when HEAD moves (a commit, a checkout). In a worktree `.git` is a file and HEAD lives in the worktree's own git directory while the
/// branches live in the common one, so both are asked of git rather than guessed.
fn watch_git_files() {
    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from),
        git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from),
    ) else {
        return;
    };
    let common_dir = if common_dir.is_absolute() {
        common_dir
    } else {
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(common_dir)
    };
    watch(&git_dir.join("HEAD"));
    watch(&common_dir.join("packed-refs"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        // A branch packed into packed-refs gets a loose file again at its next commit: watching
        // the directory sees the file appear.
        let loose = common_dir.join(&branch);
        match loose.parent() {
            Some(directory) if !loose.exists() => watch(directory),
            _ => watch(&loose),
        }
    }
}

/// The paths whose content goes into the binary, relative to the package: a change to any of them
/// makes the tree dirty. Not the crates' tests and fuzz directories, which fuzzing writes to.
fn build_inputs() -> Vec<String> {
    let mut inputs: Vec<String> = TOP_LEVEL_INPUTS
        .iter()
        .map(|&path| path.to_owned())
        .collect();
    inputs.push("crates/vipd".to_owned());
    let crates = std::fs::read_dir("crates").into_iter().flatten().flatten();
    for library in crates.map(|entry| entry.path()) {
        if library.join("src").is_dir() {
            inputs.push(library.join("src").display().to_string());
            inputs.push(library.join("Cargo.toml").display().to_string());
        }
    }
    inputs.sort();
    inputs
}

/// Cargo reruns the script at every build for a watched path that does not exist.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Runs git in the package's directory; its trimmed output when it succeeded.
fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(arguments)
        .current_dir(std::env::var_os("CARGO_MANIFEST_DIR")?)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

/// `YYYY-MM-DD` of a Unix time, in UTC (Howard Hinnant's days-to-civil algorithm).
fn date_of_epoch(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
