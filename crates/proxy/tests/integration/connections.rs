//! The ends of a session on 127.0.0.0/8: resets passed on as resets, the `fin` timeout counted
//! from the FIN, TCP keepalive on both sockets.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vipd_proxy::{Proxy, Timeouts};

/// Closes `stream` with a reset (SO_LINGER 0).
fn reset(stream: TcpStream) {
    let stream = stream.into_std().unwrap();
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// A server on 127.0.0.2 that hands its first connection to `handle`.
async fn serve_one<F, Fut>(handle: F) -> (SocketAddr, tokio::task::JoinHandle<Fut::Output>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        handle(stream).await
    });
    (address, server)
}

/// A client of the proxy's frontend `front`.
async fn client_of(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(frontend_address(proxy, "front"))
        .await
        .unwrap()
}

/// Reads until end of stream or an error; what was read, and how it ended.
async fn read_until_end(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut received = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the stream ends");
    (received, ended.map(drop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reset_mid_response_reaches_the_client_as_a_reset() {
    let (server_address, _server) = serve_one(|mut stream| async move {
        let mut request = [0u8; 7];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(b"first half of the resp").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        reset(stream);
    })
    .await;
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = client_of(&proxy).await;
    client.write_all(b"request").await.unwrap();
    let (received, ended) = read_until_end(&mut client).await;
    assert!(b"first half of the resp".starts_with(&received));
    let error = ended.expect_err("a truncated response must not end like a complete one");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_reaches_the_server_as_a_reset() {
    let (server_address, server) =
        serve_one(|mut stream| async move { read_until_end(&mut stream).await }).await;
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = client_of(&proxy).await;
    client.write_all(b"half an upload").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    reset(client);
    let (received, ended) = server.await.unwrap();
    assert!(b"half an upload".starts_with(&received));
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

/// The `fin` timeout runs from the FIN: a client that was quiet for a while before its FIN still
/// gets an answer sent within `fin` of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fin_timeout_counts_from_the_fin() {
    let (server_address, _server) = serve_one(|mut stream| async move {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stream.write_all(b"answer").await.unwrap();
    })
    .await;
    let mut config = single(&[("s", server_address)]);
    config.backends[0].timeout = Timeouts {
        fin: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    };
    let proxy = Proxy::start(config).await.unwrap();
    let mut client = client_of(&proxy).await;
    client.write_all(b"question").await.unwrap();
    // Quiet for most of `fin` before the FIN: from the last byte, the answer comes after `fin`.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.shutdown().await.unwrap();
    let (received, ended) = read_until_end(&mut client).await;
    ended.unwrap();
    assert_eq!(received, b"answer");
}

/// The established socket from `local` to `peer`, as `ss` shows it with its timers: kernel state
/// that vipd's code does not report itself.
fn socket_line(local: SocketAddr, peer: SocketAddr) -> String {
    let filter = format!("( sport = :{} and dport = :{} )", local.port(), peer.port());
    let output = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", &filter])
        .output()
        .expect("ss (iproute2) runs");
    // Without a state column: Recv-Q Send-Q Local Peer [timer].
    let (local, peer) = (local.to_string(), peer.to_string());
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.get(2) == Some(&local.as_str()) && columns.get(3) == Some(&peer.as_str())
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{local} → {peer}: {lines:?}");
    lines[0].clone()
}

/// Both of a session's sockets carry a keepalive timer: a peer that vanished without FIN or RST
/// is found out by probes, the session then fails and frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sockets_of_a_session_keep_alive() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let front = frontend_address(&proxy, "front");
    let mut client = TcpStream::connect(front).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let (mut server, proxy_end) = listener.accept().await.unwrap();
    let mut hello = [0u8; 5];
    server.read_exact(&mut hello).await.unwrap();
    // The server's answer starts forwarding at once (else the proxy waits up to
    // `timeout.connect` for the server's first sign: session.rs, first_sign).
    server.write_all(b"hi").await.unwrap();
    let mut hi = [0u8; 2];
    client.read_exact(&mut hi).await.unwrap();
    // The server socket gets keepalive once forwarding has lasted a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client_side = socket_line(front, client.local_addr().unwrap());
    assert!(client_side.contains("timer:(keepalive"), "{client_side}");
    let server_side = socket_line(proxy_end, server_address);
    assert!(server_side.contains("timer:(keepalive"), "{server_side}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_header_timeout_is_configurable() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].accept_proxy = true;
    config.frontends[0].proxy_header_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config).await.unwrap();
    let mut silent = client_of(&proxy).await;
    // Well under the 5 s default, well over 300 ms.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut byte))
        .await
        .expect("closed after the configured PROXY header timeout");
    assert!(matches!(read, Ok(0) | Err(_)));
    assert_eq!(proxy.stats().frontends[0].proxy_header_errors, 1);
}
