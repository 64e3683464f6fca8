//! `vipd import keepalived.conf [haproxy.cfg] [-o FILE] [--peer PEER_KEEPALIVED_CONF]`: migrate
//! a keepalived + HAProxy node.
//!
//! The translation lives in vipd-import (`vipd_import::import`); this prints it, or writes it
//! to `-o FILE` (never over an existing file without `--force`), and lists on stderr, one
//! `file:line: why` per line, every directive that was not translated. Exit 0: the output
//! passes `vipd check`. Exit 1: a source could not be read or parsed, a haproxy.cfg gave no
//! frontend, or the output would not pass `vipd check` (it is still printed or written, with
//! the errors, for the operator to fix).
//!
//! With `--peer`, the other node's keepalived.conf is translated too (with the same haproxy.cfg)
//! and the two translations are compared like `vipd check --peer` does; each mismatch names the
//! `vrrp_instance` lines of both keepalived files, and a pair error exits 1 (the output is still
//! written).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use vipd_config::{Node, Place, Severity};
use vipd_import::{ImportError, Imported, import};

#[derive(Args)]
pub struct ImportArgs {
    /// keepalived.conf to translate (its `include`s are followed).
    #[arg(value_name = "KEEPALIVED_CONF")]
    keepalived_conf: PathBuf,
    /// haproxy.cfg whose TCP frontends and backends become vipd's.
    #[arg(value_name = "HAPROXY_CFG")]
    haproxy_cfg: Option<PathBuf>,
    /// Write vipd.yaml here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
    /// The other node's keepalived.conf: translate it too and report every mismatch between the
    /// two nodes (VIPs, password, interval, version, priorities, unicast peers).
    #[arg(long, value_name = "PEER_KEEPALIVED_CONF")]
    peer: Option<PathBuf>,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    if let Some(output) = &args.output
        && !args.force
        && output.exists()
    {
        anyhow::bail!("{} exists; pass --force to overwrite it", output.display());
    }
    let imported = match import(&args.keepalived_conf, args.haproxy_cfg.as_deref()) {
        Ok(imported) => imported,
        Err(error) => return report_failure(error, args.output.as_deref()),
    };
    for warning in &imported.warnings {
        eprintln!("{warning}");
    }
    write_output(args.output.as_deref(), &imported.yaml)?;
    if let Some(output) = &args.output {
        let config = &imported.config;
        eprintln!(
            "wrote {}: {}, {}, {}, {}; {} (above)",
            output.display(),
            count(config.vrrp.len(), "vrrp instance", "vrrp instances"),
            count(config.frontends.len(), "frontend", "frontends"),
            count(config.backends.len(), "backend", "backends"),
            count(config.scripts.len(), "script", "scripts"),
            count(imported.warnings.len(), "warning", "warnings"),
        );
    }
    match &args.peer {
        Some(peer) => Ok(compare_with_peer(args, &imported, peer)),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Says why nothing usable came out; an output that fails `vipd check` is still written.
fn report_failure(error: ImportError, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    match error {
        ImportError::Invalid { yaml, errors } => {
            write_output(output, &yaml)?;
            eprintln!(
                "vipd import: the generated vipd.yaml does not pass `vipd check`; fix these:"
            );
            for error in &errors {
                eprintln!("{error}");
            }
        }
        ImportError::NothingImported {
            at,
            message,
            warnings,
        } => {
            for warning in &warnings {
                eprintln!("{warning}");
            }
            eprintln!("vipd import: {at}: {message}");
        }
        error => eprintln!("vipd import: {error}"),
    }
    Ok(ExitCode::FAILURE)
}

/// Translates the peer's keepalived.conf and prints every pair finding with the source lines of
/// both nodes; exit 1 for a pair error.
fn compare_with_peer(args: &ImportArgs, imported: &Imported, peer: &Path) -> ExitCode {
    let peer_imported = match import(peer, args.haproxy_cfg.as_deref()) {
        Ok(peer_imported) => peer_imported,
        Err(error) => {
            eprintln!("vipd import: --peer {}: {error}", peer.display());
            return ExitCode::FAILURE;
        }
    };
    let (this_file, peer_file) = (
        args.keepalived_conf.display().to_string(),
        peer.display().to_string(),
    );
    let findings = vipd_config::pair_findings(
        Node {
            file: &this_file,
            config: &imported.config,
            text: &imported.yaml,
        },
        Node {
            file: &peer_file,
            config: &peer_imported.config,
            text: &peer_imported.yaml,
        },
    );
    let source = |imported: &Imported, place: &Place, file: &str| {
        imported.source_of(&place.path).map_or_else(
            || format!("{file} (output line {})", place.line),
            ToString::to_string,
        )
    };
    for finding in &findings {
        eprintln!(
            "pair {}: {} / {}: {}",
            finding.severity,
            source(imported, &finding.this, &this_file),
            source(&peer_imported, &finding.peer, &peer_file),
            finding.message
        );
    }
    let errors = findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .count();
    if errors > 0 {
        eprintln!(
            "vipd import: {errors} pair {} between {this_file} and {peer_file}",
            if errors == 1 { "error" } else { "errors" }
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn write_output(output: Option<&Path>, yaml: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("cannot write {}", path.display()))
        }
        None => std::io::stdout()
            .write_all(yaml.as_bytes())
            .context("cannot write to stdout"),
    }
}

/// `1 frontend`, `2 frontends`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
