//! The budget of grown pipes, through real connections: a stream grows its pipes within the
//! budget and gives the growth back once quiet; with the budget spent, streams stay small and
//! byte-exact instead of failing. Alone in its test binary (not a module of tests/integration)
//! because the budget belongs to the whole process.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "integration/test_servers/mod.rs"]
mod test_servers;

use std::net::SocketAddr;
use std::time::Duration;

use test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vipd_proxy::{PipeMemory, Proxy, ProxyStats};

/// Sends `bytes` of a counting pattern through an echo server while reading the echo, checks it,
/// and returns the largest pipe growth seen while the bytes moved.
async fn echo_stream(proxy: &Proxy, front: SocketAddr, bytes: usize) -> u64 {
    let pattern: Vec<u8> = (0..1u32 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let stream = TcpStream::connect(front).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let send = async {
        for _ in 0..bytes / pattern.len() {
            writer.write_all(&pattern).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    };
    let mut most_grown = 0;
    let receive = async {
        let mut block = vec![0u8; pattern.len()];
        for index in 0..bytes / pattern.len() {
            reader.read_exact(&mut block).await.unwrap();
            assert!(block == pattern, "block {index} differs");
            most_grown = most_grown.max(proxy.stats().pipes.grown_bytes);
        }
        assert_eq!(
            reader.read(&mut block).await.unwrap(),
            0,
            "EOF after the echo"
        );
    };
    tokio::time::timeout(PATIENCE, async { tokio::join!(send, receive) })
        .await
        .unwrap();
    most_grown
}

fn pipes(proxy: &Proxy) -> vipd_proxy::PipeStats {
    let ProxyStats { pipes, .. } = proxy.stats();
    pipes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_grow_within_the_budget_and_stay_small_without_one() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;

    // A budget of 1 MiB, less than the session's two directions would take (2 × 960 KiB): they
    // grow within it, one of them is refused, and the growth goes back when the session ends.
    let mut config = single(&[("e1", echo.address)]);
    config.pipe_memory = PipeMemory::Bytes(1 << 20);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    assert_eq!(pipes(&proxy).budget_bytes, 1 << 20);
    let most_grown = echo_stream(&proxy, front, 256 << 20).await;
    let after = pipes(&proxy);
    println!("budget 1 MiB: grown at most {most_grown} bytes, then {after:?}");
    assert!(most_grown > 0, "a 256 MiB echo grew no pipe");
    assert!(
        most_grown <= 1 << 20,
        "grown {most_grown} beyond the budget"
    );
    assert!(
        after.growth_refused > 0,
        "the spent budget refused nothing: {after:?}"
    );
    eventually("the growth given back once the session ended", || {
        pipes(&proxy).grown_bytes == 0
    })
    .await;
    drop(proxy);

    // No budget: the same stream, byte-exact, with pipes of 64 KiB; refusals counted.
    let mut config = single(&[("e1", echo.address)]);
    config.pipe_memory = PipeMemory::Bytes(0);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let refused_before = pipes(&proxy).growth_refused;
    let most_grown = echo_stream(&proxy, front, 256 << 20).await;
    let after = pipes(&proxy);
    println!("budget 0: grown at most {most_grown} bytes, then {after:?}");
    assert_eq!(most_grown, 0);
    // Each direction asks once and streams on at 64 KiB: not a refusal per chunk.
    assert_eq!(
        after.growth_refused - refused_before,
        2,
        "each direction's refusal counted once: {after:?}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}
