//! `vipd run`: the daemon. Loads the configuration, starts the supervisor and the control server,
//! and answers signals: SIGHUP reloads by difference and records the verdict, SIGTERM / SIGINT
//! shut down gracefully (a second one cuts the drain short), SIGUSR1 / SIGUSR2 dump the status
//! and the statistics, and every other signal that would end or stop the process is logged and
//! ignored (docs/operations.md, Signals). systemd hears when vipd is ready, reloading and
//! stopping (`Type=notify`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ConfigFileArg;
use crate::cli::logging;
use crate::control::{self, Control as _};
use crate::daemon::dumps;
use crate::daemon::host::LinuxHost;
use crate::daemon::reload_verdict::{self, ReloadRecord, Verdict, unix_now};
use crate::daemon::signals::{DaemonSignal, Signals};
use crate::daemon::supervisor::{NodeControl, ReloadError, Supervisor};
use crate::daemon::systemd_notify::SystemdNotify;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigFileArg,
    #[command(flatten)]
    log: logging::LogArgs,
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    // Before any thread exists: capabilities are per thread, and children inherit the forking
    // thread's ambient set.
    let ambient_cleared = crate::daemon::ambient_capabilities::clear();
    logging::init(&args.log);
    if let Err(error) = ambient_cleared {
        warn!(%error, "cannot clear the ambient capabilities: scripts and hooks may inherit them");
    }
    let (config, digest) = match reload_verdict::load(&args.config.path) {
        Ok((config, warnings, digest)) => {
            for warning in warnings {
                warn!(%warning, "configuration warning");
            }
            (config, digest)
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
    runtime.block_on(serve(args.config.path.clone(), config, digest))
}

async fn serve(path: PathBuf, config: vipd_config::Config, digest: String) -> Result<ExitCode> {
    // First of all: from here on, no signal vipd does not use can end it, even during start-up.
    let mut signals = Signals::install().context("installing the signal handlers")?;
    let systemd = Arc::new(SystemdNotify::from_environment());
    let runtime_dir = dumps::runtime_dir();
    let started = Instant::now();
    let node = config.node_name();
    let wanted = WantedControl::of(&config)?;
    let host = LinuxHost::start()?;
    let admin_state = crate::daemon::admin_state::AdminStateStore::from_environment();
    let mut supervisor = Supervisor::start_with_admin_state(host, config, admin_state).await?;
    let reloads = watch::Sender::new(ReloadRecord::started(digest, unix_now()));
    let mut control = RunningControl::start(
        wanted,
        &supervisor,
        node.clone(),
        started,
        reloads.subscribe(),
    )?;
    // The status that SIGUSR1 and SIGUSR2 dump, whether the control server runs or not.
    let dumped = supervisor.control_handle(node.clone(), started, reloads.subscribe());
    info!(%node, config = %path.display(), control = %control.address, "vipd running");
    systemd.ready(&reloads.borrow().summary());
    // systemd arms the watchdog once start-up is complete (READY=1).
    if let Some(period) = SystemdNotify::watchdog_period_from_environment() {
        tokio::spawn(crate::daemon::watchdog::keep_alive(
            supervisor.heartbeats(),
            Arc::clone(&systemd),
            period,
        ));
    }
    loop {
        match signals.recv().await {
            DaemonSignal::Reload => {
                systemd.reloading();
                control = reload(&mut supervisor, control, &path, started, &reloads).await;
                systemd.ready(&reloads.borrow().summary());
            }
            DaemonSignal::Stop => break,
            other => answer(other, &dumped, &runtime_dir),
        }
    }
    systemd.stopping();
    stop(supervisor, &mut signals, &dumped, &runtime_dir).await;
    control.stop().await;
    info!("vipd stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM / SIGINT: every VIP released, then the drain, all within the hard limit. A second
/// SIGTERM or SIGINT cuts the drain short; the release still completes, so a master that exits
/// sends its priority-0 advert. Dumps are still answered: a long drain is worth a look.
async fn stop(
    supervisor: Supervisor<LinuxHost>,
    signals: &mut Signals,
    dumped: &NodeControl,
    runtime_dir: &Path,
) {
    info!(
        "shutting down: releasing VIPs, draining the proxy (a second SIGTERM cuts the drain short)"
    );
    let hard_limit = vipd_config::defaults::shutdown_hard_limit(supervisor.shutdown_grace());
    let cut = CancellationToken::new();
    let stopping = supervisor.shutdown_unless_cut(cut.clone().cancelled_owned());
    let deadline = tokio::time::sleep(hard_limit);
    tokio::pin!(stopping, deadline);
    loop {
        tokio::select! {
            () = &mut stopping => return,
            () = &mut deadline => {
                warn!("shutdown did not finish in {hard_limit:?}; exiting anyway");
                return;
            }
            signal = signals.recv() => match signal {
                DaemonSignal::Stop => {
                    if !cut.is_cancelled() {
                        info!("second stop signal: cutting the drain short");
                        cut.cancel();
                    }
                }
                DaemonSignal::Reload => info!("SIGHUP ignored: vipd is shutting down"),
                other => answer(other, dumped, runtime_dir),
            },
        }
    }
}

/// The signals that change nothing: the dumps, and those vipd has no use for.
fn answer(signal: DaemonSignal, dumped: &NodeControl, runtime_dir: &Path) {
    match signal {
        DaemonSignal::DumpStatus => dumps::dump_status(&dumped.status(), runtime_dir),
        DaemonSignal::DumpStats => dumps::dump_stats(dumped.status(), runtime_dir),
        DaemonSignal::Unused(signal) => {
            warn!(%signal, "signal ignored: vipd does not use it (SIGUSR1 dumps the status, SIGUSR2 the statistics)");
        }
        DaemonSignal::Reload | DaemonSignal::Stop => {}
    }
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
    /// What each configuration load came to, for `/status` of this server and the next.
    reloads: watch::Receiver<ReloadRecord>,
}

impl RunningControl {
    fn start(
        wanted: WantedControl,
        supervisor: &Supervisor<LinuxHost>,
        node: String,
        started: Instant,
        reloads: watch::Receiver<ReloadRecord>,
    ) -> Result<Self> {
        let handle = Arc::new(supervisor.control_handle(node, started, reloads.clone()));
        let server = control::bind(wanted.listen, wanted.token.clone(), handle)?;
        let address = server.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone().cancelled_owned()));
        Ok(Self {
            wanted,
            address,
            stop,
            task,
            reloads,
        })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// After a reload: a changed `control.listen` or token file takes effect without a restart.
    /// A new address is bound before the old one is let go, so a bad address keeps the running
    /// server; the same address with a new token needs the old listener closed first. Returns
    /// the server as it now runs, and what of the file it could not follow.
    async fn follow(
        self,
        config: &vipd_config::Config,
        supervisor: &Supervisor<LinuxHost>,
        started: Instant,
    ) -> (Self, Option<String>) {
        let wanted = match WantedControl::of(config) {
            Ok(wanted) => wanted,
            Err(error) => {
                let problem = format!("control server unchanged: {error:#}");
                error!("{problem}");
                return (self, Some(problem));
            }
        };
        if wanted == self.wanted {
            return (self, None);
        }
        let node = config.node_name();
        let reloads = self.reloads.clone();
        if wanted.listen == self.wanted.listen {
            let (previous, address) = (self.wanted.clone(), self.address);
            self.stop().await;
            match Self::start(wanted, supervisor, node.clone(), started, reloads.clone()) {
                Ok(restarted) => {
                    info!(address = %restarted.address, "control server token changed");
                    (restarted, None)
                }
                Err(error) => {
                    let problem = format!(
                        "control server with the new token failed, keeping the old one: {error:#}"
                    );
                    error!("{problem}");
                    match Self::start(previous, supervisor, node, started, reloads.clone()) {
                        Ok(restored) => (restored, Some(problem)),
                        Err(error) => {
                            error!("control server is down until the next reload: {error:#}");
                            (Self::stopped(address, reloads), Some(problem))
                        }
                    }
                }
            }
        } else {
            match Self::start(wanted, supervisor, node, started, reloads) {
                Ok(moved) => {
                    info!(from = %self.address, to = %moved.address, "control server moved");
                    self.stop().await;
                    (moved, None)
                }
                Err(error) => {
                    let problem = format!("control server stays at {}: {error:#}", self.address);
                    error!("{problem}");
                    (self, Some(problem))
                }
            }
        }
    }

    /// A placeholder for a server that could not be bound again: it wants an address no
    /// configuration names, so the next reload binds whatever the file says.
    fn stopped(address: SocketAddr, reloads: watch::Receiver<ReloadRecord>) -> Self {
        Self {
            wanted: WantedControl {
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                token: None,
            },
            address,
            stop: CancellationToken::new(),
            task: tokio::spawn(async { Ok(()) }),
            reloads,
        }
    }
}

/// SIGHUP: the file applied by difference and the control server following it, then the verdict
/// recorded for `/status`, `/metrics` and `vipd reload` (docs/operations.md, Reload). Returns
/// the control server as it now runs.
async fn reload(
    supervisor: &mut Supervisor<LinuxHost>,
    control: RunningControl,
    path: &Path,
    started: Instant,
    reloads: &watch::Sender<ReloadRecord>,
) -> RunningControl {
    info!(config = %path.display(), "reloading");
    let (verdict, control) = match apply(supervisor, path).await {
        (verdict, Some(config)) => {
            let (control, problem) = control.follow(&config, supervisor, started).await;
            match problem {
                Some(problem) => (verdict.with_problem(problem), control),
                None => (verdict, control),
            }
        }
        (verdict, None) => (verdict, control),
    };
    match &verdict {
        Verdict::Applied { .. } => info!("reload done"),
        Verdict::Partial { errors, .. } => error!(
            errors = %errors.join("; "),
            "reload applied in part: the file is in force, but not all of it"
        ),
        Verdict::Rejected { .. } => {}
    }
    reloads.send_modify(|record| record.record(verdict, unix_now()));
    control
}

/// Reads, validates and applies the file: the verdict so far, and the configuration in force
/// when the file was applied (in whole or in part). An invalid file is rejected with every error
/// logged, and the running configuration stays as it is.
async fn apply(
    supervisor: &mut Supervisor<LinuxHost>,
    path: &Path,
) -> (Verdict, Option<vipd_config::Config>) {
    let (config, warnings, digest) = match reload_verdict::load(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            error!("reload rejected, keeping the running configuration: {error}");
            let errors = reload_verdict::error_lines(&error);
            return (Verdict::Rejected { errors }, None);
        }
    };
    for warning in warnings {
        warn!(%warning, "configuration warning");
    }
    // Before the proxy admits more sessions: a reload may raise max_connections.
    let (fd_limit, fd_warning) = crate::daemon::fd_limit::raise(&config);
    if let Some(warning) = fd_warning {
        warn!(fd_limit, "{warning}");
    }
    match supervisor.reload(config.clone()).await {
        Ok(()) => (Verdict::Applied { digest }, Some(config)),
        Err(ReloadError::Rejected(error)) => {
            error!("reload failed: {error:#}");
            let errors = vec![format!("{error:#}")];
            (Verdict::Rejected { errors }, None)
        }
        Err(ReloadError::Partial(errors)) => (Verdict::Partial { digest, errors }, Some(config)),
    }
}

/// The bearer token for `/api/v1`: the file's content without surrounding whitespace (so
/// `echo secret > token` works); an empty token is refused rather than matching `Bearer `.
fn read_token(config: &vipd_config::Config) -> Result<Option<String>> {
    let Some(path) = &config.control.token_file else {
        return Ok(None);
    };
    read_token_file(path).map(Some)
}

/// The token in `path`, as the daemon reads it (`vipd ctl` reads it the same way).
pub(crate) fn read_token_file(path: &std::path::Path) -> Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("control.token_file {}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        !token.is_empty(),
        "control.token_file {} is empty",
        path.display()
    );
    Ok(token)
}
