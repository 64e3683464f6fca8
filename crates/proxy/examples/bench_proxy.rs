//! Runs the proxy from the command line, for tests/bench/proxy.sh:
//!
//! ```text
//! bench_proxy --frontend NAME=ADDR --server NAME=ADDR [--server ...] [--balance round_robin|least_conn|source|random]
//!             [--pipe-memory BYTES]
//! ```
//!
//! `--pipe-memory 0` keeps every splice pipe at 64 KiB (the daemon's `pipe_memory: 0`), for
//! measuring what growing pipes bring.
//!
//! Every `--frontend` gets its own backend with the `--server`s that follow it. Runs until SIGINT
//! or SIGTERM, then shuts down with a 1 s grace period. Logs nothing unless `VIPD_LOG` is set:
//! then to stderr as the daemon does in text format, for measuring the session log's cost.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use vipd_proxy::{BackendConfig, Balance, FrontendConfig, Proxy, ProxyConfig, ServerConfig};

fn parse_pair(text: &str) -> Result<(String, SocketAddr), String> {
    let (name, address) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=ADDR, got {text}"))?;
    let address = address
        .parse()
        .map_err(|error| format!("{address}: {error}"))?;
    Ok((name.to_owned(), address))
}

fn parse_args() -> Result<ProxyConfig, String> {
    let mut config = ProxyConfig {
        max_connections: 200_000,
        ..ProxyConfig::default()
    };
    let mut balance = Balance::RoundRobin;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--frontend" => {
                let (name, address) = parse_pair(&value)?;
                let mut frontend = FrontendConfig::new(name.clone(), vec![address], name.clone());
                frontend.max_connections = 100_000;
                config.frontends.push(frontend);
                config.backends.push(BackendConfig::new(name, Vec::new()));
            }
            "--server" => {
                let (name, address) = parse_pair(&value)?;
                let backend = config
                    .backends
                    .last_mut()
                    .ok_or("--server before any --frontend")?;
                backend.servers.push(ServerConfig::new(name, address));
            }
            "--balance" => {
                balance = match value.as_str() {
                    "round_robin" => Balance::RoundRobin,
                    "least_conn" => Balance::LeastConn,
                    "source" => Balance::Source,
                    "random" => Balance::Random,
                    other => return Err(format!("unknown balance {other}")),
                };
            }
            "--pipe-memory" => {
                let bytes = value
                    .parse()
                    .map_err(|error| format!("--pipe-memory {value}: {error}"))?;
                config.pipe_memory = vipd_proxy::PipeMemory::Bytes(bytes);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    for backend in &mut config.backends {
        backend.balance = balance;
    }
    Ok(config)
}

/// With `VIPD_LOG` set, the daemon's text log on stderr (`vipd run`'s `init_logging`).
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Sessions hold two sockets (and two pipe fds per bulk direction): raise the soft fd limit to
/// the hard one, as HAProxy does from its maxconn.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bench_proxy: {error}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench_proxy: runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let proxy = match Proxy::start(config).await {
            Ok(proxy) => proxy,
            Err(error) => {
                eprintln!("bench_proxy: {error}");
                return ExitCode::FAILURE;
            }
        };
        for (name, addresses) in proxy.listening_addresses() {
            println!("{name} listening on {addresses:?}");
        }
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("bench_proxy: signals: {error}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        proxy.shutdown(Duration::from_secs(1)).await;
        ExitCode::SUCCESS
    })
}
