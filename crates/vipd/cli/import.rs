//! `vipd import keepalived.conf [haproxy.cfg] [-o FILE]`: migrate a keepalived + HAProxy node.
//!
//! The translation lives in vipd-import (`vipd_import::import`); this prints it, or writes it
//! to `-o FILE` (never over an existing file without `--force`), and lists on stderr, one
//! `file:line: why` per line, every directive that was not translated. Exit 0: the output
//! passes `vipd check`. Exit 1: a source could not be read or parsed, or the output would not
//! pass `vipd check` (it is still printed or written, with the errors, for the operator to fix).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use vipd_import::{ImportError, import};

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
}

pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    if let Some(output) = &args.output
        && !args.force
        && output.exists()
    {
        anyhow::bail!(
            "vipd import: {} exists; pass --force to overwrite it",
            output.display()
        );
    }
    match import(&args.keepalived_conf, args.haproxy_cfg.as_deref()) {
        Ok(imported) => {
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
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Invalid { yaml, errors }) => {
            write_output(args.output.as_deref(), &yaml)?;
            eprintln!(
                "vipd import: the generated vipd.yaml does not pass `vipd check`; fix these:"
            );
            for error in &errors {
                eprintln!("{error}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("vipd import: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn write_output(output: Option<&Path>, yaml: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, yaml)
            .with_context(|| format!("vipd import: write {}", path.display())),
        None => std::io::stdout()
            .write_all(yaml.as_bytes())
            .context("vipd import: write to stdout"),
    }
}

/// `1 frontend`, `2 frontends`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
