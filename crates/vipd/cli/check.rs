//! `vipd check -c FILE`: validate a configuration before it is installed or reloaded.
//!
//! A valid file prints one summary line and its warnings on stdout and exits 0; an invalid one
//! prints every error on stderr, one `path (line L, column C): message` per line, and exits 1.
//! Besides the file itself (vipd-config's validation), the files it names must be readable and
//! the programs it runs writable by root only (`vipd_config::check_file`, which a reload can call
//! for the same verdict). With `--strict`, warnings are fatal too (exit 1).
//!
//! With `--peer PEER_FILE`, the other node's file is checked as well and the two are compared
//! (`vipd_config::pair_findings`): each mismatch is printed with its place in both files, and a
//! pair error (a VRID whose VIPs, password, interval or version differ, unicast peers that miss
//! each other) exits 1. With `--against RUNNING`, it also says what a reload from RUNNING to FILE
//! would do to each VRRP instance: keep it, change it in place, or restart it and why
//! (docs/operations.md, Reload).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use vipd_config::{Checked, Config, Errors, LoadError, Node, PairFinding, Severity, Warning};

use crate::ConfigFileArg;
use crate::daemon::reload::{ReloadEffect, reload_effect};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// The configuration the daemon runs now: also print what reloading FILE over it does to
    /// each VRRP instance (kept, changed in place, or restarted and why).
    #[arg(long, value_name = "RUNNING")]
    against: Option<PathBuf>,
    /// The other node's configuration: check it too and compare the pair (each VRID's VIPs,
    /// password, interval, version and family; priorities and trackers; unicast peers).
    #[arg(long, value_name = "PEER_FILE")]
    peer: Option<PathBuf>,
    /// Warnings are fatal: exit 1 if there is any.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config.path;
    let Some(checked) = checked_or_report(path)? else {
        return Ok(ExitCode::FAILURE);
    };
    println!("ok: {}", summary(&checked.config));
    print_warnings(&checked.warnings);
    let mut warnings = checked.warnings.len();
    // Host-dependent, not the file's: the limit of the shell or unit `check` runs in.
    if let Some(warning) = crate::daemon::fd_limit::hard_limit()
        .and_then(|hard| crate::daemon::fd_limit::shortfall(&checked.config, hard))
    {
        println!("warning: {warning}");
        warnings += 1;
    }
    let mut pair_errors = 0;
    if let Some(peer_path) = &args.peer {
        let Some(peer) = checked_or_report(peer_path)? else {
            return Ok(ExitCode::FAILURE);
        };
        println!("peer ok: {}", summary(&peer.config));
        for warning in &peer.warnings {
            println!("warning: {}: {warning}", peer_path.display());
        }
        warnings += peer.warnings.len();
        let findings = compare(path, &checked, peer_path, &peer);
        for finding in &findings {
            println!("{}", pair_line(path, peer_path, finding));
        }
        pair_errors = count(&findings, Severity::Error);
        warnings += count(&findings, Severity::Warning);
    }
    if let Some(running) = &args.against {
        let (running, _) = vipd_config::load(running).map_err(|error| one_line(&error))?;
        for line in reload_plan(&running, &checked.config) {
            println!("reload: {line}");
        }
    }
    Ok(verdict(pair_errors, warnings, args.strict))
}

/// The file's check, or `None` after printing its errors on stderr. An unreadable file is the
/// command's error (one line: `vipd: cannot read FILE: reason`).
fn checked_or_report(path: &Path) -> anyhow::Result<Option<Checked>> {
    match vipd_config::check_file(path) {
        Ok(checked) => Ok(Some(checked)),
        Err(LoadError::Invalid { errors, .. }) => {
            print_errors(path, &errors);
            Ok(None)
        }
        Err(error) => Err(one_line(&error)),
    }
}

/// The error as its own message only: `LoadError::Read` already names its cause, which
/// anyhow's chain would print a second time.
fn one_line(error: &LoadError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

fn print_errors(path: &Path, errors: &Errors) {
    let count = errors.len();
    eprintln!(
        "{}: {count} {}",
        path.display(),
        plural(count, "error", "errors")
    );
    for error in errors {
        eprintln!("{error}");
    }
}

fn compare(path: &Path, this: &Checked, peer_path: &Path, peer: &Checked) -> Vec<PairFinding> {
    let (this_file, peer_file) = (path.display().to_string(), peer_path.display().to_string());
    vipd_config::pair_findings(
        Node {
            file: &this_file,
            config: &this.config,
            text: &this.text,
        },
        Node {
            file: &peer_file,
            config: &peer.config,
            text: &peer.text,
        },
    )
}

/// `pair error: lb1.yaml:11 (vrrp[0].vips) / lb2.yaml:11 (vrrp[0].vips): VRID 51: ...`.
fn pair_line(path: &Path, peer_path: &Path, finding: &PairFinding) -> String {
    format!(
        "pair {}: {}:{} ({}) / {}:{} ({}): {}",
        finding.severity,
        path.display(),
        finding.this.line,
        place_path(&finding.this.path),
        peer_path.display(),
        finding.peer.line,
        place_path(&finding.peer.path),
        finding.message
    )
}

fn place_path(path: &str) -> &str {
    if path.is_empty() { "(document)" } else { path }
}

fn count(findings: &[PairFinding], severity: Severity) -> usize {
    findings
        .iter()
        .filter(|finding| finding.severity == severity)
        .count()
}

/// Exit 1 for pair errors, and for warnings with `--strict`; the reason on stderr.
fn verdict(pair_errors: usize, warnings: usize, strict: bool) -> ExitCode {
    if pair_errors > 0 {
        eprintln!(
            "vipd check: {pair_errors} {} between the two files",
            plural(pair_errors, "pair error", "pair errors")
        );
        return ExitCode::FAILURE;
    }
    if strict && warnings > 0 {
        eprintln!(
            "vipd check: {warnings} {}, fatal with --strict",
            plural(warnings, "warning", "warnings")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_warnings(warnings: &[Warning]) {
    for warning in warnings {
        println!("warning: {warning}");
    }
}

/// One line per VRRP instance of either file: what a reload from `running` to `new` does to it.
fn reload_plan(running: &Config, new: &Config) -> Vec<String> {
    let removed = running
        .vrrp
        .iter()
        .filter(|instance| new.instance(&instance.name).is_none())
        .map(|instance| {
            format!(
                "vrrp {}: removed (a master releases its VIPs)",
                instance.name
            )
        });
    let kept = new.vrrp.iter().map(|instance| {
        let effect = running.instance(&instance.name).map_or_else(
            || "new".to_owned(),
            |old| match reload_effect(old, instance) {
                ReloadEffect::Unchanged => "unchanged".to_owned(),
                effect => effect.to_string(),
            },
        );
        format!("vrrp {}: {effect}", instance.name)
    });
    removed.chain(kept).collect()
}

/// `node lb1, 2 vrrp instances, 3 frontends, 2 backends, 1 script`, with `1 announce group`
/// before the frontends when the file has `announce`.
fn summary(config: &Config) -> String {
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", plural(n, one, many));
    let announced = config.announce.as_ref().map_or(String::new(), |announce| {
        let groups = announce.groups.len();
        format!(", {}", count(groups, "announce group", "announce groups"))
    });
    format!(
        "node {}, {}{announced}, {}, {}, {}",
        config.node_name(),
        count(config.vrrp.len(), "vrrp instance", "vrrp instances"),
        count(config.frontends.len(), "frontend", "frontends"),
        count(config.backends.len(), "backend", "backends"),
        count(config.scripts.len(), "script", "scripts"),
    )
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
