//! vipd: VRRP failover and an L4 proxy in one daemon, one per load-balancer node.

mod check;
mod control;
mod exec;
mod host;
mod import_cmd;
mod instance;
mod lab;
mod mapping;
mod notify;
mod priority;
mod run;
mod status_cmd;
mod supervisor;
mod tracker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Keeps virtual IPs highly available with VRRP and serves them with a built-in L4 proxy.
#[derive(Parser)]
#[command(name = "vipd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand; `run`, `status`, `import` and `lab` join `check` here.
#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file: a summary and warnings (exit 0), or every error (exit 1).
    Check(check::CheckArgs),
    /// Run the daemon: VRRP instances, the proxy, trackers and the control server.
    Run(run::RunArgs),
    /// Print a running daemon's status: instances, trackers, frontends, servers.
    Status(status_cmd::StatusArgs),
    /// Translate keepalived.conf (and haproxy.cfg) to vipd.yaml; lists what it could not translate.
    Import(import_cmd::ImportArgs),
    /// Run a vipd pair, backends and a client in network namespaces and demonstrate failover (root).
    Lab(lab::LabArgs),
}

/// The `-c FILE` option shared by the subcommands that read the configuration.
#[derive(Args)]
struct ConfigFileArg {
    /// The configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = vipd_config::DEFAULT_PATH)]
    path: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Status(args) => status_cmd::run(&args),
        Command::Import(args) => import_cmd::run(&args),
        Command::Lab(args) => lab::run(&args),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("vipd: {error:#}");
        ExitCode::FAILURE
    })
}
