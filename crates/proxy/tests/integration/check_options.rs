//! Health-check options of real clusters against real servers on 127.0.0.0/8: a check port and
//! address apart from the traffic's, a PROXY header on checks, an apiserver-like TLS server that
//! wants a client certificate and a bearer token (and answers 401 without), SNI apart from Host,
//! and checks of many servers spread over the interval at start and at reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vipd_proxy::proxy_protocol::{self, ProxyHeader};
use vipd_proxy::{
    ClientCertificate, HealthCheckConfig, HealthCheckKind, Proxy, ProxyProtocol, ServerConfig,
    TlsVerify,
};

use crate::test_servers::*;

fn fast_check(kind: HealthCheckKind) -> HealthCheckConfig {
    let mut health = HealthCheckConfig::new(kind);
    health.interval = Duration::from_millis(200);
    health.timeout = Duration::from_millis(500);
    health.fall = 2;
    health
}

fn is_up(proxy: &Proxy, server: &str) -> bool {
    server_stats(&proxy.stats(), "back", server).up
}

fn last_check(proxy: &Proxy, server: &str) -> String {
    server_stats(&proxy.stats(), "back", server)
        .last_check
        .clone()
        .unwrap_or_default()
}

/// A file in the temporary directory, removed when dropped; its name is unique in the process
/// (the tests run side by side).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "vipd-check-options-{}-{unique}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    /// Replaced as kubelet replaces a projected token: a new file renamed over the old one.
    fn replace(&self, content: &[u8]) {
        let fresh = self.0.with_extension("new");
        std::fs::write(&fresh, content).unwrap();
        std::fs::rename(&fresh, &self.0).unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_go_to_the_check_port_and_address() {
    // Traffic goes to an echo server, which fails an http check; /healthz lives elsewhere.
    let traffic = EchoServer::start(addr("127.0.0.2:0")).await;
    let healthz_same_ip = HttpServer::start(addr("127.0.0.2:0"), 200, None).await;
    let other_ip = addr(&format!("127.0.0.3:{}", healthz_same_ip.address.port()));
    let healthz_other_ip = HttpServer::start(other_ip, 200, None).await;
    let mut config = single(&[("port", traffic.address), ("addr", traffic.address)]);
    config.backends[0].servers[1].check_address = Some(other_ip.ip());
    let mut health = fast_check(HealthCheckKind::Http);
    health.port = Some(healthz_same_ip.address.port());
    config.backends[0].health = Some(health);
    let proxy = Proxy::start(config).await.unwrap();
    eventually("both servers up by their /healthz", || {
        is_up(&proxy, "port") && is_up(&proxy, "addr")
    })
    .await;
    healthz_other_ip.set_status(500);
    eventually("the server checked on 127.0.0.3 down", || {
        !is_up(&proxy, "addr")
    })
    .await;
    assert!(is_up(&proxy, "port"), "{}", last_check(&proxy, "port"));
    let front = frontend_address(&proxy, "front");
    assert_eq!(echo_once(front, b"traffic").await.unwrap(), b"traffic");
}

/// An HTTP server behind `accept-proxy`: a connection without a PROXY header is closed unanswered;
/// with one, the request gets 200. Records the headers it received.
struct ProxyExpectingServer {
    address: SocketAddr,
    headers: Arc<Mutex<Vec<ProxyHeader>>>,
    stop: CancellationToken,
}

impl ProxyExpectingServer {
    async fn start() -> Self {
        let listener = TcpListener::bind(addr("127.0.0.2:0")).await.unwrap();
        let address = listener.local_addr().unwrap();
        let headers = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (task_headers, task_stop) = (Arc::clone(&headers), stop.clone());
        tokio::spawn(async move {
            loop {
                let mut stream = tokio::select! {
                    () = task_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => continue },
                };
                let headers = Arc::clone(&task_headers);
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    let header = loop {
                        match proxy_protocol::parse(&received) {
                            Ok(Some((header, _))) => break header,
                            Ok(None) if read_more(&mut stream, &mut received).await => {}
                            _ => return,
                        }
                    };
                    headers.lock().unwrap().push(header);
                    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
                        if !read_more(&mut stream, &mut received).await {
                            return;
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        Self {
            address,
            headers,
            stop,
        }
    }
}

impl Drop for ProxyExpectingServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Appends what one read brings; false at EOF or error.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, into: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            into.extend_from_slice(&chunk[..read]);
            into.len() < 16 * 1024
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_send_a_proxy_header_to_servers_that_expect_one() {
    // Explicit `send_proxy: v1` on the check of a backend that sends none.
    let v1_server = ProxyExpectingServer::start().await;
    let mut config = single(&[("v1", v1_server.address)]);
    let mut health = fast_check(HealthCheckKind::Http);
    health.send_proxy = Some(ProxyProtocol::V1);
    config.backends[0].health = Some(health);
    let v1 = Proxy::start(config).await.unwrap();
    // Unset: the backend's send_proxy v2 applies to checks of the traffic port, as in HAProxy.
    let v2_server = ProxyExpectingServer::start().await;
    let mut config = single(&[("v2", v2_server.address)]);
    config.backends[0].send_proxy = ProxyProtocol::V2;
    config.backends[0].health = Some(fast_check(HealthCheckKind::Http));
    let v2 = Proxy::start(config).await.unwrap();
    eventually("both servers up", || is_up(&v1, "v1") && is_up(&v2, "v2")).await;
    for server in [&v1_server, &v2_server] {
        let headers = server.headers.lock().unwrap();
        assert!(!headers.is_empty());
        assert!(
            headers.iter().all(|header| *header == ProxyHeader::Local),
            "checks speak for themselves (v1 UNKNOWN, v2 LOCAL): {headers:?}"
        );
    }
}

/// A test CA, and files of a server certificate for `apiserver.test` and a client certificate.
struct Pki {
    ca: TempFile,
    server: Arc<rustls::ServerConfig>,
    client_chain: TempFile,
    client_key: TempFile,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca: &rcgen::Certificate = issuer.as_ref();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (certificate, key)
    };
    let (server_certificate, server_key) = leaf("apiserver.test");
    let (client_certificate, client_key) = leaf("vipd-health-check");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            vec![server_certificate.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca: TempFile::new("ca.pem", ca.pem().as_bytes()),
        server: Arc::new(server),
        client_chain: TempFile::new("client.pem", client_certificate.pem().as_bytes()),
        client_key: TempFile::new("client.key", client_key.serialize_pem().as_bytes()),
    }
}

/// The SNI and the request head of the last check an [`ApiServer`] answered.
type LastRequest = Arc<Mutex<Option<(Option<String>, String)>>>;

/// An apiserver with anonymous auth off: TLS with a required client certificate, 200 on a request
/// that carries `Authorization: Bearer <token>`, 401 otherwise. Records SNI and the request head.
struct ApiServer {
    address: SocketAddr,
    token: Arc<Mutex<String>>,
    seen: LastRequest,
    stop: CancellationToken,
}

impl ApiServer {
    async fn start(tls: Arc<rustls::ServerConfig>, token: &str) -> Self {
        let listener = TcpListener::bind(addr("127.0.0.2:0")).await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let token = Arc::new(Mutex::new(token.to_owned()));
        let seen = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let (task_token, task_seen, task_stop) =
            (Arc::clone(&token), Arc::clone(&seen), stop.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = task_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => continue },
                };
                let (acceptor, token, seen) = (
                    acceptor.clone(),
                    Arc::clone(&task_token),
                    Arc::clone(&task_seen),
                );
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let mut head = Vec::new();
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        if !read_more(&mut tls, &mut head).await {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let wanted = format!("\r\nAuthorization: Bearer {}\r\n", token.lock().unwrap());
                    let status = if head.contains(&wanted) { 200 } else { 401 };
                    *seen.lock().unwrap() = Some((sni, head));
                    respond(&mut tls, status).await;
                });
            }
        });
        Self {
            address,
            token,
            seen,
            stop,
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: u16) {
    let response = format!("HTTP/1.1 {status} S\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn apiserver_check(pki: &Pki, token: &TempFile) -> HealthCheckConfig {
    let mut health = fast_check(HealthCheckKind::Https {
        tls_verify: TlsVerify::CaFile(pki.ca.0.clone()),
    });
    health.path = "/readyz".into();
    health.host = Some("api.example".into());
    health.sni = Some("apiserver.test".into());
    health.headers = vec![("X-Probe".into(), "vipd".into())];
    health.bearer_token_file = Some(token.0.clone());
    health.client_certificate = Some(ClientCertificate {
        certificate_file: pki.client_chain.0.clone(),
        key_file: Some(pki.client_key.0.clone()),
    });
    health
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_wanting_mtls_and_a_rotated_bearer_token_is_checked() {
    let pki = pki();
    let server = ApiServer::start(Arc::clone(&pki.server), "first-token").await;
    let token = TempFile::new("token", b"first-token\n");
    let mut config = single(&[("api", server.address)]);
    config.backends[0].health = Some(apiserver_check(&pki, &token));
    let proxy = Proxy::start(config).await.unwrap();
    eventually("up with client certificate and token", || {
        is_up(&proxy, "api")
    })
    .await;
    let (sni, head) = server.seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        sni.as_deref(),
        Some("apiserver.test"),
        "SNI apart from Host"
    );
    assert!(head.starts_with("GET /readyz HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nHost: api.example\r\n"), "{head}");
    assert!(head.contains("\r\nX-Probe: vipd\r\n"), "{head}");

    // The token rotates on the server; the checks follow once the file is replaced.
    *server.token.lock().unwrap() = "second-token".into();
    eventually("down on 401", || !is_up(&proxy, "api")).await;
    assert!(last_check(&proxy, "api").contains("401"));
    token.replace(b"second-token\n");
    eventually("up with the new token", || is_up(&proxy, "api")).await;

    // A file gone bad keeps the last good token: the servers are not at fault.
    token.replace(b"not a token\r\nX-Injected: 1\n");
    let successes = server_stats(&proxy.stats(), "back", "api").check_successes;
    eventually("checks keep passing", || {
        server_stats(&proxy.stats(), "back", "api").check_successes > successes + 3
    })
    .await;
    assert!(is_up(&proxy, "api"));
    let (_, head) = server.seen.lock().unwrap().clone().unwrap();
    assert!(!head.contains("X-Injected"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_or_token_the_apiserver_check_fails() {
    let pki = pki();
    let server = ApiServer::start(Arc::clone(&pki.server), "the-token").await;
    let token = TempFile::new("token-b", b"the-token");
    let mut no_certificate = single(&[("api", server.address)]);
    let mut health = apiserver_check(&pki, &token);
    health.client_certificate = None;
    no_certificate.backends[0].health = Some(health);
    let mut no_token = single(&[("api", server.address)]);
    let mut health = apiserver_check(&pki, &token);
    health.bearer_token_file = None;
    no_token.backends[0].health = Some(health);
    let no_certificate = Proxy::start(no_certificate).await.unwrap();
    let no_token = Proxy::start(no_token).await.unwrap();
    eventually("a few checks of each", || {
        server_stats(&no_certificate.stats(), "back", "api").check_failures >= 2
            && server_stats(&no_token.stats(), "back", "api").check_failures >= 2
    })
    .await;
    assert!(!is_up(&no_certificate, "api") && !is_up(&no_token, "api"));
    assert!(last_check(&no_token, "api").contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_check_files_fail_the_start_with_their_name() {
    let pki = pki();
    let cases: [(&str, &[u8]); 3] = [
        ("token-empty", b"\n"),
        ("token-two-words", b"Bearer abc\n"),
        ("token-crlf", b"abc\r\nX-Injected: 1"),
    ];
    for (name, content) in cases {
        let token = TempFile::new(name, content);
        let mut config = single(&[("api", addr("127.0.0.2:1"))]);
        config.backends[0].health = Some(apiserver_check(&pki, &token));
        let error = Proxy::start(config).await.err().unwrap().to_string();
        assert!(
            error.contains(name) && error.contains("bearer token"),
            "{error}"
        );
    }
    let token = TempFile::new("token-c", b"abc");
    let mut health = apiserver_check(&pki, &token);
    health.client_certificate = Some(ClientCertificate {
        certificate_file: pki.client_chain.0.clone(),
        key_file: None, // the key is not in the certificate file
    });
    let mut config = single(&[("api", addr("127.0.0.2:1"))]);
    config.backends[0].health = Some(health);
    let error = Proxy::start(config).await.err().unwrap().to_string();
    assert!(error.contains("client key"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_naming_a_missing_token_file_is_refused_and_checks_go_on() {
    let server = HttpServer::start(addr("127.0.0.2:0"), 200, None).await;
    let token = TempFile::new("token-reload", b"abc");
    let mut config = single(&[("s", server.address)]);
    let mut health = fast_check(HealthCheckKind::Http);
    health.bearer_token_file = Some(token.0.clone());
    config.backends[0].health = Some(health);
    let proxy = Proxy::start(config.clone()).await.unwrap();
    eventually("up", || is_up(&proxy, "s")).await;
    let missing = token.0.with_extension("missing");
    config.backends[0]
        .health
        .as_mut()
        .unwrap()
        .bearer_token_file = Some(missing.clone());
    let error = proxy.apply(config).await.unwrap_err().to_string();
    assert!(error.contains(&missing.display().to_string()), "{error}");
    let requests = server.requests.load(Ordering::Relaxed);
    eventually("the old checks go on", || {
        server.requests.load(Ordering::Relaxed) > requests + 2
    })
    .await;
    assert!(is_up(&proxy, "s"));
}

/// First check of each of 32 servers, then of each after a reload, measured by a listener that
/// records when each check connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_of_many_servers_spread_over_the_interval_at_start_and_reload() {
    const SERVERS: usize = 32;
    let interval = Duration::from_secs(1);
    let listener = TcpListener::bind(addr("127.0.0.2:0")).await.unwrap();
    let address = listener.local_addr().unwrap();
    let connects = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let task_connects = Arc::clone(&connects);
    let accepting = tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            task_connects.lock().unwrap().push(Instant::now());
        }
    });
    let mut config = single(&[]);
    config.backends[0].servers = (0..SERVERS)
        .map(|index| ServerConfig::new(format!("s{index}"), address))
        .collect();
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = interval;
    health.initially_up = true;
    config.backends[0].health = Some(health);
    let spread_of_next_checks = |since: Instant| {
        let connects = Arc::clone(&connects);
        async move {
            eventually("a check of each server", || {
                connects
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|at| **at >= since)
                    .count()
                    >= SERVERS
            })
            .await;
            let times: Vec<Instant> = connects
                .lock()
                .unwrap()
                .iter()
                .copied()
                .filter(|at| *at >= since)
                .take(SERVERS)
                .collect();
            times[SERVERS - 1].duration_since(times[0])
        }
    };
    let started = Instant::now();
    let proxy = Proxy::start(config.clone()).await.unwrap();
    let at_start = spread_of_next_checks(started).await;
    let reloaded = Instant::now();
    proxy.apply(config).await.unwrap();
    let after_reload = spread_of_next_checks(reloaded).await;
    accepting.abort();
    // 32 uniform draws over 1 s span about 0.94 s; checks in lockstep span milliseconds.
    for (when, spread) in [("start", at_start), ("reload", after_reload)] {
        assert!(
            spread > interval * 2 / 5,
            "the first checks after {when} span only {spread:?}"
        );
    }
}
