//! TCP keepalive of the proxy across a real LAN: a server that vanishes without FIN or RST (its
//! cable pulled) is found out by keepalive probes, and the client, whose session could otherwise
//! wait for `timeout.tunnel`, gets a reset.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vipd_lab::Lab;
use vipd_proxy::{BackendConfig, FrontendConfig, Proxy, ProxyConfig, ServerConfig, TcpKeepalive};

const PROXY: usize = 0;
const SERVER: usize = 1;
const CLIENT: usize = 2;

fn address(lab: &Lab, host: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(lab.host(host).ipv4), 8080)
}

fn proxy_config(lab: &Lab) -> ProxyConfig {
    let server = ServerConfig::new("s", address(lab, SERVER));
    let mut backend = BackendConfig::new("b", vec![server]);
    // Probes at once and fast: the first one a second after keepalive is on, then 2 × 1 s.
    backend.tcp_keepalive = Some(TcpKeepalive {
        idle: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        count: 2,
        user_timeout: None,
    });
    ProxyConfig {
        frontends: vec![FrontendConfig::new("f", vec![address(lab, PROXY)], "b")],
        backends: vec![backend],
        ..ProxyConfig::default()
    }
}

#[test]
fn a_server_that_vanished_is_found_by_keepalive_and_the_client_reset() {
    if !vipd_lab::e2e_enabled(
        "proxy_keepalive::a_server_that_vanished_is_found_by_keepalive_and_the_client_reset",
    ) {
        return;
    }
    let lab = Lab::new(3).expect("lab");
    let (release, released) = mpsc::channel::<()>();
    let (proxy_up, proxy_ready) = mpsc::channel();
    let config = proxy_config(&lab);
    let proxy = lab
        .spawn_in_host(PROXY, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let proxy = Proxy::start(config).await.expect("proxy starts");
                proxy_up.send(()).expect("test waits");
                let _ = tokio::task::spawn_blocking(move || {
                    released.recv_timeout(Duration::from_secs(60))
                })
                .await;
                proxy.shutdown(Duration::ZERO).await;
            });
        })
        .expect("proxy host");
    proxy_ready
        .recv_timeout(Duration::from_secs(20))
        .expect("proxy up");

    let (got_hello, hello_seen) = mpsc::channel();
    let (server_release, server_released) = mpsc::channel::<()>();
    let server_address = address(&lab, SERVER);
    let _server = lab
        .spawn_in_host(SERVER, move || {
            let listener = TcpListener::bind(server_address).expect("server binds");
            let (mut stream, _) = listener.accept().expect("the proxy connects");
            let mut hello = [0u8; 5];
            stream.read_exact(&mut hello).expect("hello");
            got_hello.send(()).expect("test waits");
            // Holds the connection, silent, until the test ends: no FIN, no RST.
            let _ = server_released.recv_timeout(Duration::from_secs(60));
        })
        .expect("server host");

    let front = address(&lab, PROXY);
    let (client_sent, client_ready) = mpsc::channel();
    let client = lab
        .spawn_in_host(CLIENT, move || {
            let mut stream = TcpStream::connect_timeout(&front, Duration::from_secs(5))
                .expect("client connects");
            stream.write_all(b"hello").expect("client sends");
            client_sent.send(()).expect("test waits");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("read timeout");
            let started = Instant::now();
            let mut byte = [0u8; 1];
            (
                stream.read(&mut byte).map_err(|error| error.kind()),
                started.elapsed(),
            )
        })
        .expect("client host");
    client_ready
        .recv_timeout(Duration::from_secs(20))
        .expect("client sent");
    hello_seen
        .recv_timeout(Duration::from_secs(20))
        .expect("server got hello");

    lab.cut_link(SERVER).expect("cable pulled");
    let (read, after) = client
        .join()
        .expect("client thread")
        .expect("client namespace");
    // Keepalive on the server socket after 1 s, first probe 1 s later, 2 more 1 s apart: about
    // 4 s. Without keepalive the session would wait for `tunnel` (1 h) and the read time out.
    assert_eq!(read, Err(ErrorKind::ConnectionReset), "after {after:?}");
    assert!(after < Duration::from_secs(25), "{after:?}");

    let _ = server_release.send(());
    let _ = release.send(());
    let _ = proxy.join();
}
