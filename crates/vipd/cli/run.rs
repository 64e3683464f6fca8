//! `vipd run`: the daemon. Loads the configuration, starts the supervisor and the control server,
//! and handles signals: SIGHUP reloads by difference, SIGTERM / SIGINT shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ConfigFileArg;
use crate::cli::logging;
use crate::control;
use crate::daemon::host::LinuxHost;
use crate::daemon::supervisor::Supervisor;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    #[command(flatten)]
    log: logging::LogArgs,
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    logging::init(&args.log);
    let config = match vipd_config::load(&args.config.path) {
        Ok((config, warnings)) => {
            for warning in warnings {
                warn!(%warning, "configuration warning");
            }
            config
        }
        Err(error) => {
            // Once, on stderr: as the log's JSON event for collectors, else as one plain line.
            if args.log.is_json() {
                error!("{error}");
            } else {
                eprintln!("vipd: {error}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    // Before the proxy opens its first socket.
    let (fd_limit, fd_warning) = crate::daemon::fd_limit::raise(&config);
    if let Some(warning) = fd_warning {
        warn!(fd_limit, "{warning}");
    } else {
        info!(fd_limit, "fd limit holds max_connections");
    }
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
    let wanted = WantedControl::of(&config)?;
    let host = LinuxHost::start()?;
    let supervisor = Supervisor::start(host, config).await?;
    let mut control = RunningControl::start(wanted, &supervisor, node.clone(), started).await?;
    info!(%node, config = %path.display(), control = %control.address, "vipd running");

    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut supervisor = supervisor;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some(config) = reload(&mut supervisor, &path).await {
                    control = control.follow(&config, &supervisor, started).await;
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("shutting down: releasing VIPs, draining the proxy");
    let hard_limit = vipd_config::defaults::shutdown_hard_limit(supervisor.shutdown_grace());
    if tokio::time::timeout(hard_limit, supervisor.shutdown())
        .await
        .is_err()
    {
        warn!("shutdown did not finish in {hard_limit:?}; exiting anyway");
    }
    control.stop().await;
    info!("vipd stopped");
    Ok(ExitCode::SUCCESS)
}

/// What the control server should be: where it listens and which token guards `/api/v1`.
#[derive(Clone, PartialEq, Eq)]
struct WantedControl {
    listen: SocketAddr,
    token: Option<String>,
}

impl WantedControl {
    fn of(config: &vipd_config::Config) -> Result<Self> {
        Ok(Self {
            listen: config.control.listen,
            token: read_token(config)?,
        })
    }
}

/// The control server as it runs, so that a reload can move it or change its token.
struct RunningControl {
    wanted: WantedControl,
    address: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), control::ControlError>>,
}

impl RunningControl {
    async fn start(
        wanted: WantedControl,
        supervisor: &Supervisor<LinuxHost>,
        node: String,
        started: Instant,
    ) -> Result<Self> {
        let handle = Arc::new(supervisor.control_handle(node, started));
        let server = control::bind(wanted.listen, wanted.token.clone(), handle).await?;
        let address = server.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone().cancelled_owned()));
        Ok(Self {
            wanted,
            address,
            stop,
            task,
        })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// After a reload: a changed `control.listen` or token file takes effect without a restart.
    /// A new address is bound before the old one is let go, so a bad address keeps the running
    /// server; the same address with a new token needs the old listener closed first.
    async fn follow(
        self,
        config: &vipd_config::Config,
        supervisor: &Supervisor<LinuxHost>,
        started: Instant,
    ) -> Self {
        let wanted = match WantedControl::of(config) {
            Ok(wanted) => wanted,
            Err(error) => {
                error!("control server unchanged: {error:#}");
                return self;
            }
        };
        if wanted == self.wanted {
            return self;
        }
        let node = config.node_name();
        if wanted.listen == self.wanted.listen {
            let (previous, address) = (self.wanted.clone(), self.address);
            self.stop().await;
            match Self::start(wanted, supervisor, node.clone(), started).await {
                Ok(restarted) => {
                    info!(address = %restarted.address, "control server token changed");
                    restarted
                }
                Err(error) => {
                    error!(
                        "control server with the new token failed, keeping the old one: {error:#}"
                    );
                    match Self::start(previous, supervisor, node, started).await {
                        Ok(restored) => restored,
                        Err(error) => {
                            error!("control server is down until the next reload: {error:#}");
                            Self::stopped(address)
                        }
                    }
                }
            }
        } else {
            match Self::start(wanted, supervisor, node, started).await {
                Ok(moved) => {
                    info!(from = %self.address, to = %moved.address, "control server moved");
                    self.stop().await;
                    moved
                }
                Err(error) => {
                    error!("control server stays at {}: {error:#}", self.address);
                    self
                }
            }
        }
    }

    /// A placeholder for a server that could not be bound again: it wants an address no
    /// configuration names, so the next reload binds whatever the file says.
    fn stopped(address: SocketAddr) -> Self {
        Self {
            wanted: WantedControl {
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                token: None,
            },
            address,
            stop: CancellationToken::new(),
            task: tokio::spawn(async { Ok(()) }),
        }
    }
}

/// SIGHUP: an invalid file is rejected with every error logged, and the running configuration
/// stays as it is. Returns the configuration that was applied.
async fn reload(
    supervisor: &mut Supervisor<LinuxHost>,
    path: &std::path::Path,
) -> Option<vipd_config::Config> {
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
            return None;
        }
    };
    // Before the proxy admits more sessions: a reload may raise max_connections.
    let (fd_limit, fd_warning) = crate::daemon::fd_limit::raise(&config);
    if let Some(warning) = fd_warning {
        warn!(fd_limit, "{warning}");
    }
    match supervisor.reload(config.clone()).await {
        Ok(()) => {
            info!("reload done");
            Some(config)
        }
        Err(error) => {
            error!("reload failed: {error:#}");
            None
        }
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
