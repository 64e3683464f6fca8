//! Health of a server: pure rise/fall state ([`HealthState`]) and the checks that feed it
//! ([`Checker`]: TCP connect, HTTP and HTTPS `GET`). The state knows no IO and no clock; the checker
//! knows no state. The backend's checker task joins them (see `backend.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::bearer_token::BearerToken;
use crate::check_tls::tls_connector;
use crate::config::{
    BackendConfig, HealthCheckConfig, HealthCheckKind, ProxyProtocol, ServerConfig,
};
use crate::proxy_protocol;

/// Rise/fall counting of one server, HAProxy style: `rise` consecutive successes bring a down
/// server up, `fall` consecutive failures bring an up server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    /// Consecutive results that contradict the current state.
    streak: u32,
}

impl HealthState {
    pub fn new(up: bool) -> Self {
        Self { up, streak: 0 }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether the server is between states (a contradicting streak has begun); checks run faster then.
    pub fn is_transitioning(&self) -> bool {
        self.streak > 0
    }

    /// Records a passed check; returns whether the server just came up.
    pub fn record_success(&mut self, rise: u32) -> bool {
        if self.up {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        if self.streak >= rise {
            self.up = true;
            self.streak = 0;
            return true;
        }
        false
    }

    /// Marks the server down at once (client traffic saw it fail); returns whether it was up.
    pub fn mark_down(&mut self) -> bool {
        let was_up = self.up;
        self.up = false;
        self.streak = 0;
        was_up
    }

    /// Records a failed check; returns whether the server just went down.
    pub fn record_failure(&mut self, fall: u32) -> bool {
        if !self.up {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        if self.streak >= fall {
            self.up = false;
            self.streak = 0;
            return true;
        }
        false
    }
}

/// Why one check failed; shown in stats as the last check result.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("I/O: {0}")]
    Io(std::io::Error),
    #[error("invalid HTTP response")]
    BadResponse,
    #[error("unexpected status {0}")]
    Status(u16),
}

/// Where one server's checks go: its traffic address unless `check_address` or `health.port`
/// say otherwise, with or without a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTarget {
    pub address: SocketAddr,
    pub proxy_header: ProxyProtocol,
}

impl CheckTarget {
    /// The target of `server`'s checks in `backend`. Without `health.send_proxy`, checks carry the
    /// backend's PROXY header when they go to the traffic address and port, as HAProxy's do "if no
    /// port nor addr directive is present" (its `check-send-proxy`).
    pub fn of(backend: &BackendConfig, server: &ServerConfig) -> Self {
        let health = backend.health.as_ref();
        let port = health.and_then(|health| health.port);
        let address = SocketAddr::new(
            server.check_address.unwrap_or(server.address.ip()),
            port.unwrap_or(server.address.port()),
        );
        let proxy_header = match health.and_then(|health| health.send_proxy) {
            Some(header) => header,
            None if port.is_none() && server.check_address.is_none() => backend.send_proxy,
            None => ProxyProtocol::None,
        };
        Self {
            address,
            proxy_header,
        }
    }
}

/// Runs one backend's checks; cheap to clone, shared by that backend's per-server tasks.
#[derive(Clone)]
pub struct Checker {
    config: Arc<HealthCheckConfig>,
    tls: Option<TlsConnector>,
    /// The name sent as SNI and verified: `sni`, else `host`; `None`: the server's IP.
    server_name: Option<ServerName<'static>>,
    bearer_token: Option<Arc<BearerToken>>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Checker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Largest response head we read; a status line is all we need.
const MAX_RESPONSE_HEAD: usize = 1024;

impl Checker {
    /// Prepares the checks of `backend`: reads the CA, client certificate and bearer token files
    /// that are configured, so that a bad one fails here with its name.
    pub fn new(backend: &str, config: &HealthCheckConfig) -> Result<Self, Error> {
        let tls = match &config.kind {
            HealthCheckKind::Https { tls_verify } => Some(tls_connector(
                backend,
                tls_verify,
                config.client_certificate.as_ref(),
            )?),
            HealthCheckKind::Tcp | HealthCheckKind::Http => None,
        };
        let server_name = config
            .sni
            .as_ref()
            .or(config.host.as_ref())
            .map(|name| ServerName::try_from(name.clone()))
            .transpose()
            .map_err(|error| Error::Tls {
                backend: backend.to_owned(),
                reason: format!("server name: {error}"),
            })?;
        let bearer_token = config
            .bearer_token_file
            .as_deref()
            .map(BearerToken::load)
            .transpose()
            .map_err(|reason| Error::HealthCheck {
                backend: backend.to_owned(),
                reason,
            })?;
        Ok(Self {
            config: Arc::new(config.clone()),
            tls,
            server_name,
            bearer_token: bearer_token.map(Arc::new),
        })
    }

    pub fn config(&self) -> &HealthCheckConfig {
        &self.config
    }

    /// One check of `target`, bounded by the configured timeout: a check that hangs fails at
    /// `timeout`.
    pub async fn check(&self, target: CheckTarget) -> Result<(), CheckFailure> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.check_unbounded(target)).await {
            Ok(result) => result,
            Err(_) => Err(CheckFailure::Timeout(timeout)),
        }
    }

    async fn check_unbounded(&self, target: CheckTarget) -> Result<(), CheckFailure> {
        let mut stream = TcpStream::connect(target.address)
            .await
            .map_err(CheckFailure::Connect)?;
        // The PROXY header comes first, before any TLS (proxy-protocol.txt section 2).
        let header = match target.proxy_header {
            ProxyProtocol::None => Vec::new(),
            ProxyProtocol::V1 => proxy_protocol::V1_LOCAL.to_vec(),
            ProxyProtocol::V2 => proxy_protocol::encode_v2_local(),
        };
        stream.write_all(&header).await.map_err(CheckFailure::Io)?;
        match &self.config.kind {
            HealthCheckKind::Tcp => Ok(()),
            HealthCheckKind::Http => self.http_get(stream, target.address).await,
            HealthCheckKind::Https { .. } => {
                let Some(connector) = &self.tls else {
                    return Err(CheckFailure::Tls(std::io::Error::other("no TLS connector")));
                };
                let server_name = self
                    .server_name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(target.address.ip().into()));
                let tls = connector
                    .connect(server_name, stream)
                    .await
                    .map_err(CheckFailure::Tls)?;
                self.http_get(tls, target.address).await
            }
        }
    }

    /// `GET path` with `Host`, the configured headers and the bearer token.
    fn request(&self, address: SocketAddr) -> String {
        use std::fmt::Write as _;
        let config = &self.config;
        let host = config.host.clone().unwrap_or_else(|| address.to_string());
        let mut request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", config.path);
        let has = |wanted: &str| {
            config
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
        };
        if !has("user-agent") {
            request.push_str("User-Agent: vipd-health-check\r\n");
        }
        for (name, value) in &config.headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        if let Some(token) = &self.bearer_token {
            let _ = write!(request, "Authorization: {}\r\n", token.header_value());
        }
        request.push_str("Connection: close\r\n\r\n");
        request
    }

    async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        address: SocketAddr,
    ) -> Result<(), CheckFailure> {
        stream
            .write_all(self.request(address).as_bytes())
            .await
            .map_err(CheckFailure::Io)?;
        let mut head = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        // Read until the status line is complete; the rest of the response does not matter.
        let status = loop {
            if let Some(status) = parse_status_line(&head)? {
                break status;
            }
            let read = stream.read(&mut chunk).await.map_err(CheckFailure::Io)?;
            if read == 0 || head.len() >= MAX_RESPONSE_HEAD {
                return Err(CheckFailure::BadResponse);
            }
            head.extend_from_slice(&chunk[..read]);
        };
        let expected = if self.config.expect_status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.config.expect_status.contains(&status)
        };
        if expected {
            Ok(())
        } else {
            Err(CheckFailure::Status(status))
        }
    }
}

/// `HTTP/1.x NNN ...\r\n` (RFC 9112 section 4): `Ok(None)` until the line is complete.
fn parse_status_line(head: &[u8]) -> Result<Option<u16>, CheckFailure> {
    let Some(end) = head.windows(2).position(|pair| pair == b"\r\n") else {
        return Ok(None);
    };
    let line = &head[..end];
    let rest = line
        .strip_prefix(b"HTTP/1.")
        .ok_or(CheckFailure::BadResponse)?;
    match rest {
        [minor, b' ', d1, d2, d3, ..] if minor.is_ascii_digit() => {
            let digits = [*d1, *d2, *d3];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(CheckFailure::BadResponse);
            }
            Ok(Some(digits.iter().fold(0u16, |acc, digit| {
                acc * 10 + u16::from(digit - b'0')
            })))
        }
        _ => Err(CheckFailure::BadResponse),
    }
}

/// Longest wait before the first check of a server that is not up: it is wanted in service soon.
const MAX_FIRST_CHECK_WAIT_WHILE_DOWN: Duration = Duration::from_secs(1);

/// Wait before the first check after a start or reload, at random so that the checks of many
/// servers, and all those a reload restarts, do not fire at the same instant: within the interval
/// for a server that is up, within the short interval (at most 1 s) for one that is not, so that a
/// starting node's servers come up soon.
pub(crate) fn first_check_delay(
    interval: Duration,
    up: bool,
    random: &mut fastrand::Rng,
) -> Duration {
    let window = if up {
        interval
    } else {
        (interval / 4).min(MAX_FIRST_CHECK_WAIT_WHILE_DOWN)
    };
    window.mul_f64(random.f64())
}

/// `interval` moved at random by up to `percent` % either way (HAProxy's `spread-checks`).
pub(crate) fn jittered(interval: Duration, percent: u8, random: &mut fastrand::Rng) -> Duration {
    let spread = f64::from(percent) / 100.0 * (2.0 * random.f64() - 1.0);
    interval.mul_f64(1.0 + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_brings_up_only_after_consecutive_successes() {
        let mut state = HealthState::new(false);
        assert!(!state.record_success(2));
        assert!(state.is_transitioning());
        assert!(!state.record_failure(3), "already down: no flip");
        assert!(!state.record_success(2), "streak restarted");
        assert!(state.record_success(2));
        assert!(state.is_up());
        assert!(!state.record_success(2), "no second flip");
    }

    #[test]
    fn fall_brings_down_after_consecutive_failures() {
        let mut state = HealthState::new(true);
        assert!(!state.record_failure(3));
        assert!(!state.record_failure(3));
        assert!(!state.record_success(2), "a success resets the fall streak");
        assert!(!state.record_failure(3));
        assert!(!state.record_failure(3));
        assert!(state.record_failure(3));
        assert!(!state.is_up());
        let mut once = HealthState::new(true);
        assert!(once.record_failure(1));
    }

    #[test]
    fn marked_down_needs_rise_successes_to_come_back() {
        let mut state = HealthState::new(true);
        assert!(!state.record_failure(3));
        assert!(state.mark_down());
        assert!(!state.is_up() && !state.is_transitioning());
        assert!(!state.mark_down(), "already down");
        assert!(!state.record_success(2));
        assert!(state.record_success(2));
    }

    #[test]
    fn jitter_stays_within_its_percent_and_varies() {
        let mut random = fastrand::Rng::with_seed(7);
        let interval = Duration::from_secs(2);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| jittered(interval, 10, &mut random))
            .collect();
        let (shortest, longest) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*shortest >= Duration::from_millis(1800), "{shortest:?}");
        assert!(*longest <= Duration::from_millis(2200), "{longest:?}");
        assert!(
            longest.saturating_sub(*shortest) > Duration::from_millis(300),
            "the waits vary: {shortest:?}..{longest:?}"
        );
        assert_eq!(jittered(interval, 0, &mut random), interval);
        assert!(first_check_delay(interval, true, &mut random) < interval);
        let long = Duration::from_secs(60);
        assert!(first_check_delay(long, false, &mut random) < Duration::from_secs(1));
    }

    #[test]
    fn status_line_parsing() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK\r\n").unwrap(),
            Some(200)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 x\r\nfoo").unwrap(),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 20").unwrap(), None);
        assert!(parse_status_line(b"SSH-2.0\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 2x0 OK\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 200").unwrap().is_none());
    }
}
