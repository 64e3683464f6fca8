//! vipd: VRRP failover and an L4 proxy in one daemon, one per load-balancer node.

use clap::Parser;

/// Keeps virtual IPs highly available with VRRP and serves them with a built-in L4 proxy.
#[derive(Parser)]
#[command(name = "vipd", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
