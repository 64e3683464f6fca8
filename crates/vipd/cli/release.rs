//! `vipd release -c FILE`: after the daemon died without a shutdown (SIGKILL, the OOM killer, a
//! crash), send the priority-0 advert it could not send and remove the VIPs it left, so the
//! backup takes over after Skew_Time and no VIP stays with a dead node. The service manager runs
//! it once the process is gone (`ExecStopPost=` in deploy/systemd/vipd.service); after a clean
//! stop it finds nothing to do. The virtual MAC interfaces (macvlans) of the configuration go
//! too. Not for a running daemon: a master puts removed VIPs back.
//!
//! Prints one line per instance it released; exits 1 if a VIP could not be removed.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::ConfigFileArg;
use crate::daemon::host::LinuxHost;
use crate::daemon::release::{Released, release};

#[derive(Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    config: ConfigFileArg,
}

pub fn run(args: &ReleaseArgs) -> anyhow::Result<ExitCode> {
    let config = match vipd_config::load(&args.config.path) {
        Ok((config, _warnings)) => config,
        Err(error) => {
            eprintln!("vipd release: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let released = runtime.block_on(async {
        let host = LinuxHost::start()?;
        anyhow::Ok(release(&host, &config).await)
    })?;
    let mut status = ExitCode::SUCCESS;
    for done in &released {
        println!("{}", describe(done));
        for (vip, error) in &done.removal_failed {
            eprintln!(
                "vipd release: vrrp {}: removing {vip}: {error}",
                done.instance
            );
            status = ExitCode::FAILURE;
        }
        if let Some(error) = &done.virtual_mac_failed {
            eprintln!("vipd release: {error}");
            status = ExitCode::FAILURE;
        }
    }
    if released.is_empty() {
        println!(
            "nothing to release: no VIP or virtual MAC interface of this configuration is on the host"
        );
    }
    Ok(status)
}

fn describe(done: &Released) -> String {
    let vips: Vec<String> = done.vips.iter().map(ToString::to_string).collect();
    let advert = match &done.advert_failed {
        None => "priority 0 sent".to_owned(),
        Some(error) => format!("priority 0 not sent: {error}"),
    };
    let virtual_mac = match &done.virtual_mac {
        Some(interface) => format!(", virtual MAC interface {interface} removed"),
        None => String::new(),
    };
    if vips.is_empty() {
        return format!("vrrp {}: released no VIP{virtual_mac}", done.instance);
    }
    format!(
        "vrrp {}: released {} ({advert}){virtual_mac}",
        done.instance,
        vips.join(", ")
    )
}
