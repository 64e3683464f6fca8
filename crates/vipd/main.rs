//! vipd: VRRP failover and an L4 proxy in one daemon, one per load-balancer node.
//!
//! A map for a newcomer, in the order a request of `vipd run` travels:
//!
//! - `main.rs` (here): the command line; one front-end per subcommand in [`cli`].
//! - [`cli::run`]: reads and validates the configuration, starts the Linux host, the control
//!   server and the supervisor, and turns signals into reload, shutdown and state dumps.
//! - [`daemon::supervisor`]: one instance task per VRRP instance, the proxy engine, the trackers;
//!   reload by difference.
//! - [`daemon::instance`]: one VRRP instance: carries inputs into `vipd_vrrp::VirtualRouter`
//!   (the protocol, pure and tested on a virtual clock) and its outputs to [`daemon::host`]
//!   (sockets, VIPs, announcements through vipd-net).
//! - [`control`]: `/status`, `/metrics`, the dashboard and the admin API.
//!
//! The design behind it: docs/design/architecture.md.

#![forbid(unsafe_code)]

mod cli;
mod control;
mod daemon;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

/// The version and the source it was built from (build.rs): `0.1.0 (git 1a2b3c4d5e6f, 2026-12-05)`.
const VERSION: &str = env!("VIPD_BUILD_VERSION");

/// Keeps virtual IPs highly available with VRRP and serves them with a built-in L4 proxy.
#[derive(Parser)]
#[command(name = "vipd", version = VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand; each has a man page, vipd-NAME(8) (`vipd man`).
#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file: a summary and warnings (exit 0), or every error (exit 1).
    Check(cli::check::CheckArgs),
    /// Run the daemon: VRRP instances, the proxy, trackers and the control server.
    Run(cli::run::RunArgs),
    /// Reload the running daemon and wait for its verdict: exit 1 with the errors when the file
    /// was rejected or applied only in part (the unit's ExecReload).
    Reload(cli::reload::ReloadArgs),
    /// Print a running daemon's status: instances, trackers, frontends, servers.
    Status(cli::status::StatusArgs),
    /// Admin actions on a running daemon: drain/disable/enable servers, weights, maintenance,
    /// sessions (exit 0 done, 1 refused by the daemon, 2 daemon not reached or usage error).
    Ctl(cli::ctl::CtlArgs),
    /// Translate keepalived.conf (and haproxy.cfg) to vipd.yaml; lists what it could not translate.
    Import(cli::import::ImportArgs),
    /// Run a vipd pair, backends and a client in network namespaces and demonstrate failover (root).
    #[cfg(feature = "lab")]
    Lab(cli::lab::LabArgs),
    /// Not in this build: says so (cargo feature `lab`).
    #[cfg(not(feature = "lab"))]
    #[command(hide = true, disable_help_flag = true)]
    Lab(cli::without_lab::LabArgs),
    /// After the daemon died (SIGKILL, OOM, crash): send priority 0 and remove the VIPs it left.
    Release(cli::release::ReleaseArgs),
    /// Write the man pages, vipd(8) and one per subcommand, into a directory.
    Man(cli::manual::ManArgs),
    /// Print the completion script for a shell (bash, zsh or fish).
    Completions(cli::manual::CompletionsArgs),
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
        Command::Check(args) => cli::check::run(&args),
        Command::Run(args) => cli::run::run(&args),
        Command::Reload(args) => cli::reload::run(&args),
        Command::Status(args) => cli::status::run(&args),
        Command::Ctl(args) => Ok(cli::ctl::run(&args)),
        Command::Import(args) => cli::import::run(&args),
        #[cfg(feature = "lab")]
        Command::Lab(args) => cli::lab::run(&args),
        #[cfg(not(feature = "lab"))]
        Command::Lab(_) => Ok(cli::without_lab::run()),
        Command::Release(args) => cli::release::run(&args),
        Command::Man(args) => cli::manual::write_pages(&args, Cli::command()),
        Command::Completions(args) => cli::manual::print_completions(&args, Cli::command()),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("vipd: {error:#}");
        ExitCode::FAILURE
    })
}
