//! `vipd check -c FILE`: validate a configuration without touching the system.
//!
//! A valid file prints one summary line and its warnings on stdout and exits 0; an invalid one
//! prints every error on stderr, one `path (line L, column C): message` per line, and exits 1.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use vipd_config::{Config, Warning};

use crate::ConfigFileArg;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigFileArg,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config.path;
    let text = vipd_config::read_text(path).context("vipd check")?;
    match Config::from_yaml_str(&text) {
        Ok((config, mut warnings)) => {
            warnings.extend(vipd_config::script_permission_warnings(&config, &text));
            warnings.sort_by_key(|warning| (warning.line, warning.column));
            println!("ok: {}", summary(&config));
            print_warnings(&warnings);
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let count = errors.len();
            eprintln!(
                "{}: {count} {}",
                path.display(),
                plural(count, "error", "errors")
            );
            for error in &errors {
                eprintln!("{error}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_warnings(warnings: &[Warning]) {
    for warning in warnings {
        println!("warning: {warning}");
    }
}

/// `node lb1, 2 vrrp instances, 3 frontends, 2 backends, 1 script`.
fn summary(config: &Config) -> String {
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", plural(n, one, many));
    format!(
        "node {}, {}, {}, {}, {}",
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
