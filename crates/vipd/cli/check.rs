//! `vipd check -c FILE`: validate a configuration without touching the system.
//!
//! A valid file prints one summary line and its warnings on stdout and exits 0; an invalid one
//! prints every error on stderr, one `path (line L, column C): message` per line, and exits 1.
//! With `--against RUNNING`, it also says what a reload from RUNNING to FILE would do to each
//! VRRP instance: keep it, change it in place, or restart it and why (docs/operations.md, Reload).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use vipd_config::{Config, Warning};

use crate::ConfigFileArg;
use crate::daemon::reload::{ReloadEffect, reload_effect};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// The configuration the daemon runs now: also print what reloading FILE over it does to
    /// each VRRP instance (kept, changed in place, or restarted and why).
    #[arg(long, value_name = "RUNNING")]
    against: Option<std::path::PathBuf>,
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
            // Host-dependent, not the file's: the limit of the shell or unit `check` runs in.
            if let Some(warning) = crate::daemon::fd_limit::hard_limit()
                .and_then(|hard| crate::daemon::fd_limit::shortfall(&config, hard))
            {
                println!("warning: {warning}");
            }
            if let Some(running) = &args.against {
                let (running, _) = vipd_config::load(running).context("vipd check --against")?;
                for line in reload_plan(&running, &config) {
                    println!("reload: {line}");
                }
            }
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
