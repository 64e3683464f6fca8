//! The control server on `control.listen`: `GET /status` (JSON), `GET /metrics` (OpenMetrics
//! text), `GET /` (dashboard) and the admin actions under `/api/v1/`.
//!
//! The supervisor implements [`Control`] and calls [`bind`] (so a taken port fails start-up),
//! then [`ControlServer::run`]. Everything here sees the daemon only through that trait, so the
//! tests drive the real router with a fake node and no root.
//!
//! Every request is outside input: bad paths, methods, bodies and tokens get a 4xx with a JSON
//! `{"error": "..."}` body and the server keeps serving.

mod api;
mod connections;
mod dashboard;
pub mod metrics;
pub mod process;
pub mod sessions;
pub mod status;
#[cfg(test)]
pub(crate) mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

pub use connections::ConnectionLimits;
pub use sessions::{SessionList, SessionStatus};

pub use status::{
    AnnounceStatus, InstanceCounters, InstanceStatus, MasterSeen, NodeStatus, TrackerKind,
    TrackerState, TrackerStatus, VrrpState,
};

/// Largest request body accepted; the admin bodies are a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 4096;

/// The node as the control server sees it; the supervisor implements this.
pub trait Control: Send + Sync + 'static {
    /// A consistent snapshot for `/status`, `/metrics` and the dashboard. Called once per request,
    /// so it should be cheap (read what the tasks publish; never wait on them).
    fn status(&self) -> NodeStatus;

    /// Drain, enable, disable or reweight one server of a backend.
    fn server_action(
        &self,
        backend: &str,
        server: &str,
        action: ServerAction,
    ) -> impl Future<Output = Result<(), ActionError>> + Send;

    /// Puts an instance in maintenance (priority-0 release, stays backup) or takes it out.
    fn maintenance(
        &self,
        instance: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), ActionError>> + Send;

    /// The sessions forwarding to `server` of `backend`, or to any server of it.
    fn sessions(
        &self,
        backend: &str,
        server: Option<&str>,
    ) -> Result<Vec<SessionStatus>, ActionError>;

    /// Cuts the sessions of one server that `filter` picks; how many.
    fn kill_sessions(
        &self,
        backend: &str,
        server: &str,
        filter: vipd_proxy::SessionFilter,
    ) -> Result<usize, ActionError>;
}

/// An admin action on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// No new sessions; established sessions continue.
    Drain,
    /// Back into service after a drain or disable.
    Enable,
    /// Out of service (maintenance); established sessions continue.
    Disable,
    /// Overrides the configured weight, 0..=[`MAX_WEIGHT`].
    SetWeight(u32),
    /// Drops the override: the configured weight applies again (overrides survive reloads).
    ResetWeight,
}

/// Highest weight the admin API accepts (HAProxy's limit).
pub const MAX_WEIGHT: u32 = 256;

/// Why an admin action was refused; the API answers 404 for unknown names, 400 for invalid
/// requests and 503 when the node cannot act now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no backend named {backend:?}")]
    UnknownBackend { backend: String },
    #[error("backend {backend:?} has no server named {server:?}")]
    UnknownServer { backend: String, server: String },
    #[error("no vrrp instance named {instance:?}")]
    UnknownInstance { instance: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<vipd_proxy::Error> for ActionError {
    fn from(error: vipd_proxy::Error) -> Self {
        match error {
            vipd_proxy::Error::UnknownBackend { backend } => Self::UnknownBackend { backend },
            vipd_proxy::Error::UnknownServer { backend, server } => {
                Self::UnknownServer { backend, server }
            }
            other @ vipd_proxy::Error::ShutDown => Self::Unavailable(other.to_string()),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// Why the control server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control server: cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("control server: the bearer token is empty")]
    EmptyToken,
}

/// A bound control server, not yet serving: binding first lets the supervisor fail at start-up
/// on a taken port, and lets tests bind port 0 and learn the address.
pub struct ControlServer {
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
    limits: ConnectionLimits,
}

/// Binds `listen` and builds the routes. `token`: when set, `/api/v1` needs
/// `Authorization: Bearer <token>`.
pub fn bind<C: Control>(
    listen: SocketAddr,
    token: Option<String>,
    control: Arc<C>,
) -> Result<ControlServer, ControlError> {
    if token.as_deref().is_some_and(str::is_empty) {
        return Err(ControlError::EmptyToken);
    }
    let bind_error = |source| ControlError::Bind {
        address: listen,
        source,
    };
    let listener = listen_with_backlog(listen).map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    Ok(ControlServer {
        listener,
        address,
        router: api::router(token, control),
        limits: ConnectionLimits::default(),
    })
}

/// Binds `listen` with an accept queue of [`connections::ACCEPT_BACKLOG`] (tokio's `bind` asks
/// for 128).
fn listen_with_backlog(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's `bind` does: a restarted daemon rebinds while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(connections::ACCEPT_BACKLOG)
}

impl ControlServer {
    /// The address actually bound (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Replaces the default connection limits (tests use small ones to see them act).
    #[cfg(test)]
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// [`ConnectionLimits::shutdown_grace`]: a client trickling bytes must not hold up the
    /// daemon's exit.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ControlError> {
        tracing::info!(address = %self.address, "control server listening");
        let address = self.address;
        let grace = self.limits.shutdown_grace;
        if !connections::serve(self.listener, self.router, self.limits, shutdown).await {
            tracing::warn!(%address, ?grace, "control server: connections still open after the grace period; closing");
        }
        Ok(())
    }
}
