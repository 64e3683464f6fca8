//! Real servers the integration tests start on 127.0.0.0/8: TCP echo, HTTP and HTTPS (self-signed
//! certificate made at test time), plus a proxy config builder. Every server stops when dropped.
#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vipd_proxy::{BackendConfig, FrontendConfig, ProxyConfig, ServerConfig};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// An echo server: echoes until EOF, then closes its side. Stopping it closes the listener (new
/// connections are refused) but lets connections in progress finish.
pub struct EchoServer {
    pub address: SocketAddr,
    pub accepted: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl EchoServer {
    pub async fn start(address: SocketAddr) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let accepted = Arc::new(AtomicU64::new(0));
        let (task_stop, task_accepted) = (stop.clone(), Arc::clone(&accepted));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = task_stop.cancelled() => break,
                    accepted = listener.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => continue },
                };
                task_accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(echo(stream));
            }
            // Serve what the kernel already accepted before closing, as a process that stops
            // listening would drain its queue; only the close itself may still reset a late one.
            let listener = listener.into_std().unwrap();
            while let Ok((stream, _)) = listener.accept() {
                task_accepted.fetch_add(1, Ordering::Relaxed);
                stream.set_nonblocking(true).unwrap();
                tokio::spawn(echo(TcpStream::from_std(stream).unwrap()));
            }
        });
        Self {
            address,
            accepted,
            stop,
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn echo(mut stream: TcpStream) {
    let (mut reader, mut writer) = stream.split();
    let _ = tokio::io::copy(&mut reader, &mut writer).await;
    let _ = writer.shutdown().await;
}

/// Sends `payload` through a fresh connection to `to`, half-closes, and reads the echo to EOF.
pub async fn echo_once(to: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(to).await?;
    stream.write_all(payload).await?;
    stream.shutdown().await?;
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await?;
    Ok(echoed)
}

/// A one-request HTTP(S) server answering `GET` with the status in `status`; status 0 means hang
/// (never answer).
pub struct HttpServer {
    pub address: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub requests: Arc<AtomicU64>,
    stop: CancellationToken,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as (certificate PEM, server config).
pub fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    (certified.cert.pem(), Arc::new(config))
}

impl HttpServer {
    pub async fn start(
        address: SocketAddr,
        status: u16,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let status = Arc::new(AtomicU16::new(status));
        let requests = Arc::new(AtomicU64::new(0));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let (task_stop, task_status, task_requests) =
            (stop.clone(), Arc::clone(&status), Arc::clone(&requests));
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = tokio::select! {
                    () = task_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(pair) => pair, Err(_) => continue },
                };
                let (status, requests, acceptor) = (
                    Arc::clone(&task_status),
                    Arc::clone(&task_requests),
                    acceptor.clone(),
                );
                connections.spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                answer(tls, &status, &requests).await;
                            }
                        }
                        None => answer(stream, &status, &requests).await,
                    }
                });
            }
        });
        Self {
            address,
            status,
            requests,
            stop,
        }
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    status: &AtomicU16,
    requests: &AtomicU64,
) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    requests.fetch_add(1, Ordering::Relaxed);
    let status = status.load(Ordering::Relaxed);
    if status == 0 {
        // Hang: hold the connection without answering, bounded so the task ends eventually.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let response =
        format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Sends `ping` on a session to an echo server and waits for it to come back.
pub async fn ping(stream: &mut TcpStream) {
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping");
}

/// One frontend `front` on 127.0.0.1 (ephemeral port) to one backend `back` with `servers`.
pub fn single(servers: &[(&str, SocketAddr)]) -> ProxyConfig {
    let servers = servers
        .iter()
        .map(|(name, address)| ServerConfig::new(*name, *address))
        .collect();
    ProxyConfig {
        frontends: vec![FrontendConfig::new(
            "front",
            vec![addr("127.0.0.1:0")],
            "back",
        )],
        backends: vec![BackendConfig::new("back", servers)],
        ..ProxyConfig::default()
    }
}

/// The address the proxy's frontend `name` listens on.
pub fn frontend_address(proxy: &vipd_proxy::Proxy, name: &str) -> SocketAddr {
    proxy.listening_addresses()[name][0]
}

/// Polls `condition` every 20 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn server_stats<'a>(
    stats: &'a vipd_proxy::ProxyStats,
    backend: &str,
    server: &str,
) -> &'a vipd_proxy::ServerStats {
    let backend = stats
        .backends
        .iter()
        .find(|candidate| candidate.name == backend)
        .unwrap();
    backend
        .servers
        .iter()
        .find(|candidate| candidate.name == server)
        .unwrap()
}
