//! Health of a server: pure rise/fall state ([`HealthState`]) and the checks that feed it
//! ([`Checker`]: TCP connect, HTTP and HTTPS `GET`). The state knows no IO and no clock; the checker
//! knows no state. The backend's checker task joins them (see `backend.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::config::{HealthCheckConfig, HealthCheckKind, TlsVerify};

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

/// Runs one backend's checks; cheap to clone, shared by that backend's per-server tasks.
#[derive(Clone)]
pub struct Checker {
    config: Arc<HealthCheckConfig>,
    tls: Option<TlsConnector>,
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
    /// Prepares the checks of `backend`, loading a CA file if configured.
    pub fn new(backend: &str, config: &HealthCheckConfig) -> Result<Self, Error> {
        let tls = match &config.kind {
            HealthCheckKind::Https { tls_verify } => Some(tls_connector(backend, tls_verify)?),
            HealthCheckKind::Tcp | HealthCheckKind::Http => None,
        };
        Ok(Self {
            config: Arc::new(config.clone()),
            tls,
        })
    }

    pub fn config(&self) -> &HealthCheckConfig {
        &self.config
    }

    /// One check of the server at `address`, bounded by the configured timeout: a check that hangs
    /// fails at `timeout`.
    pub async fn check(&self, address: SocketAddr) -> Result<(), CheckFailure> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.check_unbounded(address)).await {
            Ok(result) => result,
            Err(_) => Err(CheckFailure::Timeout(timeout)),
        }
    }

    async fn check_unbounded(&self, address: SocketAddr) -> Result<(), CheckFailure> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(CheckFailure::Connect)?;
        match &self.config.kind {
            HealthCheckKind::Tcp => Ok(()),
            HealthCheckKind::Http => self.http_get(stream, address).await,
            HealthCheckKind::Https { .. } => {
                let Some(connector) = &self.tls else {
                    return Err(CheckFailure::Tls(std::io::Error::other("no TLS connector")));
                };
                let server_name = match &self.config.host {
                    Some(host) => ServerName::try_from(host.clone())
                        .map_err(|error| CheckFailure::Tls(std::io::Error::other(error)))?,
                    None => ServerName::IpAddress(address.ip().into()),
                };
                let tls = connector
                    .connect(server_name, stream)
                    .await
                    .map_err(CheckFailure::Tls)?;
                self.http_get(tls, address).await
            }
        }
    }

    async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        address: SocketAddr,
    ) -> Result<(), CheckFailure> {
        let host = self
            .config
            .host
            .clone()
            .unwrap_or_else(|| address.to_string());
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vipd-health-check\r\nConnection: close\r\n\r\n",
            self.config.path
        );
        stream
            .write_all(request.as_bytes())
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

fn tls_connector(backend: &str, verify: &TlsVerify) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls {
            backend: backend.to_owned(),
            reason: error.to_string(),
        })?;
    let config = match verify {
        TlsVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth(),
        TlsVerify::CaFile(path) => {
            let tls_error = |reason: String| Error::Tls {
                backend: backend.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|error| {
                tls_error(format!("cannot read CA file {}: {error}", path.display()))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate
                    .map_err(|error| tls_error(format!("CA file {}: {error}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|error| tls_error(format!("CA file {}: {error}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(tls_error(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `tls_verify: none`: any certificate chain and name is accepted, but the handshake signatures are
/// still verified so the session is a real TLS session with whoever holds the key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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
