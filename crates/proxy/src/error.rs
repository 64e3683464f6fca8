//! Errors of the proxy's public API.

use std::net::SocketAddr;

/// What [`crate::Proxy`] can refuse; every variant names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid proxy configuration at {path}: {reason}")]
    InvalidConfig { path: String, reason: String },
    #[error("frontend {frontend}: cannot listen on {address}: {source}")]
    Bind {
        frontend: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("backend {backend}: health check TLS setup: {reason}")]
    Tls { backend: String, reason: String },
    #[error("no backend named {backend}")]
    UnknownBackend { backend: String },
    #[error("backend {backend} has no server named {server}")]
    UnknownServer { backend: String, server: String },
    #[error("the proxy is shut down")]
    ShutDown,
    #[error("cannot start the session threads: {source}")]
    Threads { source: std::io::Error },
    #[error("backend {backend}: health check: {reason}")]
    HealthCheck { backend: String, reason: String },
}
