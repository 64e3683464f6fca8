//! PROXY protocol on real connections: the bytes sent to servers, headers received from clients,
//! and garbage that must close only its own connection.

use std::net::SocketAddr;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use vipd_proxy::{Proxy, ProxyProtocol};

/// A server that records everything its one connection sends, until EOF.
async fn recording_server() -> (SocketAddr, oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();
        let _ = sender.send(received);
    });
    (address, receiver)
}

async fn received_by_server(
    send_proxy: ProxyProtocol,
    accept_proxy: bool,
    client_sends: &[u8],
) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let (server, received) = recording_server().await;
    let mut config = single(&[("s", server)]);
    config.backends[0].send_proxy = send_proxy;
    config.frontends[0].accept_proxy = accept_proxy;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut client = TcpStream::connect(front).await.unwrap();
    let client_address = client.local_addr().unwrap();
    client.write_all(client_sends).await.unwrap();
    client.shutdown().await.unwrap();
    let bytes = tokio::time::timeout(PATIENCE, received)
        .await
        .unwrap()
        .unwrap();
    (bytes, client_address, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_v1_is_byte_correct() {
    let (bytes, client, front) = received_by_server(ProxyProtocol::V1, false, b"hello").await;
    let expected = format!(
        "PROXY TCP4 {} {} {} {}\r\nhello",
        client.ip(),
        front.ip(),
        client.port(),
        front.port()
    );
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

/// The v2 header of proxy-protocol.txt section 2.2, written out by hand for TCP over IPv4.
fn v2_tcp4(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("IPv4 only")
    };
    let mut bytes = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A".to_vec();
    bytes.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
    bytes.extend_from_slice(&source.ip().octets());
    bytes.extend_from_slice(&destination.ip().octets());
    bytes.extend_from_slice(&source.port().to_be_bytes());
    bytes.extend_from_slice(&destination.port().to_be_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_v2_is_byte_correct() {
    let (bytes, client, front) = received_by_server(ProxyProtocol::V2, false, b"hello").await;
    let mut expected = v2_tcp4(client, front);
    expected.extend_from_slice(b"hello");
    assert_eq!(bytes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_v1_header_is_honoured_and_relayed_as_v2() {
    let (bytes, _, _) = received_by_server(
        ProxyProtocol::V2,
        true,
        b"PROXY TCP4 198.51.100.7 203.0.113.5 4242 443\r\npayload",
    )
    .await;
    let mut expected = v2_tcp4(addr("198.51.100.7:4242"), addr("203.0.113.5:443"));
    expected.extend_from_slice(b"payload");
    assert_eq!(bytes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_v2_header_is_honoured_and_relayed_as_v1() {
    let mut sent = v2_tcp4(addr("198.51.100.9:5000"), addr("203.0.113.5:80"));
    sent.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (bytes, _, _) = received_by_server(ProxyProtocol::V1, true, &sent).await;
    assert_eq!(
        bytes,
        b"PROXY TCP4 198.51.100.9 203.0.113.5 5000 80\r\nGET / HTTP/1.1\r\n\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_header_closes_only_its_own_connection() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].accept_proxy = true;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut good = TcpStream::connect(front).await.unwrap();
    good.write_all(b"PROXY TCP4 198.51.100.7 203.0.113.5 4242 443\r\nfirst")
        .await
        .unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(PATIENCE, good.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"first");

    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PROXY TCP4 999.1.1.1 1.1.1.1 1 1\r\n",
        &[
            0x0d, 0x0a, 0x0d, 0x0a, 0, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x99, 0, 0, 0,
        ],
    ] {
        let mut bad = TcpStream::connect(front).await.unwrap();
        bad.write_all(garbage).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(PATIENCE, bad.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(closed.is_err() || rest.is_empty(), "closed without a byte");
    }

    good.write_all(b"again").await.unwrap();
    tokio::time::timeout(PATIENCE, good.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"again");
    assert_eq!(proxy.stats().frontends[0].proxy_header_errors, 3);
    assert_eq!(
        server_stats(&proxy.stats(), "back", "e").sessions_total,
        1,
        "garbage never reached a server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_v1_over_ipv6_is_byte_correct() {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let (sender, received) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let _ = sender.send(bytes);
    });
    let mut config = single(&[("s", server)]);
    config.frontends[0].bind = vec![addr("[::1]:0")];
    config.backends[0].send_proxy = ProxyProtocol::V1;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    assert!(front.is_ipv6());
    let mut client = TcpStream::connect(front).await.unwrap();
    let client_address = client.local_addr().unwrap();
    client.write_all(b"six").await.unwrap();
    client.shutdown().await.unwrap();
    let bytes = tokio::time::timeout(PATIENCE, received)
        .await
        .unwrap()
        .unwrap();
    let expected = format!(
        "PROXY TCP6 ::1 ::1 {} {}\r\nsix",
        client_address.port(),
        front.port()
    );
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}
