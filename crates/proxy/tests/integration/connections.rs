//! The ends of a session on 127.0.0.0/8: resets passed on as resets, the `fin` timeout counted
//! from the FIN, TCP keepalive on both sockets.

use std::io::ErrorKind;
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
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 7];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(b"first half of the resp").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        reset(stream);
    });
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    client.write_all(b"request").await.unwrap();
    let (received, ended) = read_until_end(&mut client).await;
    assert!(b"first half of the resp".starts_with(&received));
    let error = ended.expect_err("a truncated response must not end like a complete one");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_reaches_the_server_as_a_reset() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_until_end(&mut stream).await
    });
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
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
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stream.write_all(b"answer").await.unwrap();
    });
    let mut config = single(&[("s", server_address)]);
    config.backends[0].timeout = Timeouts {
        fin: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    };
    let proxy = Proxy::start(config).await.unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    client.write_all(b"question").await.unwrap();
    // Quiet for most of `fin` before the FIN: from the last byte, the answer comes after `fin`.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.shutdown().await.unwrap();
    let (received, ended) = read_until_end(&mut client).await;
    ended.unwrap();
    assert_eq!(received, b"answer");
}
