//! `vipd run`: the daemon. Loads the configuration, starts the supervisor and the control server,
//! and handles signals: SIGHUP reloads by difference, SIGTERM / SIGINT shut down gracefully.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ConfigFileArg;
use crate::control;
use crate::host::LinuxHost;
use crate::supervisor::Supervisor;

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A drain that outlives this after SIGTERM is abandoned: the VIPs were released already.
const SHUTDOWN_HARD_LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    init_logging(args.log_format);
    let config = match vipd_config::load(&args.config.path) {
        Ok((config, warnings)) => {
            for warning in warnings {
                warn!(%warning, "configuration warning");
            }
            config
        }
        Err(error) => {
            error!("{error}");
            eprintln!("vipd: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vipd")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args.config.path.clone(), config))
}

async fn serve(path: PathBuf, config: vipd_config::Config) -> Result<ExitCode> {
    let started = Instant::now();
    let node = config.node_name();
    let control_listen = config.control.listen;
    let token = read_token(&config)?;
    let host = LinuxHost::start()?;
    let supervisor = Supervisor::start(host, config).await?;
    let handle = supervisor.control_handle(node.clone(), started);
    let server = control::bind(control_listen, token, Arc::new(handle)).await?;
    info!(%node, config = %path.display(), control = %server.local_addr(), "vipd running");
    let stop_control = CancellationToken::new();
    let control_task = tokio::spawn(server.run(stop_control.clone().cancelled_owned()));

    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut supervisor = supervisor;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&mut supervisor, &path).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("shutting down: releasing VIPs, draining the proxy");
    if tokio::time::timeout(SHUTDOWN_HARD_LIMIT, supervisor.shutdown())
        .await
        .is_err()
    {
        warn!("shutdown did not finish in {SHUTDOWN_HARD_LIMIT:?}; exiting anyway");
    }
    stop_control.cancel();
    let _ = control_task.await;
    info!("vipd stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: an invalid file is rejected with every error logged, and the running configuration
/// stays as it is.
async fn reload(supervisor: &mut Supervisor<LinuxHost>, path: &std::path::Path) {
    info!(config = %path.display(), "reloading");
    let config = match vipd_config::load(path) {
        Ok((config, warnings)) => {
            for warning in warnings {
                warn!(%warning, "configuration warning");
            }
            config
        }
        Err(error) => {
            error!("reload rejected, keeping the running configuration: {error}");
            return;
        }
    };
    match supervisor.reload(config).await {
        Ok(()) => info!("reload done"),
        Err(error) => error!("reload failed: {error:#}"),
    }
}

/// The bearer token for `/api/v1`: the file's content without surrounding whitespace (so
/// `echo secret > token` works); an empty token is refused rather than matching `Bearer `.
fn read_token(config: &vipd_config::Config) -> Result<Option<String>> {
    let Some(path) = &config.control.token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("control.token_file {}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        !token.is_empty(),
        "control.token_file {} is empty",
        path.display()
    );
    Ok(Some(token))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
