//! Forwarding through the proxy on 127.0.0.0/8: byte exactness, half-close both ways, idle and
//! tunnel timeouts, refusal when no server is up, and balancing over real connections.

use std::sync::Arc;
use std::time::Duration;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vipd_proxy::{Balance, HealthCheckConfig, HealthCheckKind, Proxy, Timeouts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_echo_is_byte_exact_and_counted() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Proxy::start(single(&[("e1", echo.address)])).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let echoed = tokio::time::timeout(PATIENCE, echo_once(front, &payload))
        .await
        .unwrap()
        .unwrap();
    assert!(echoed == payload, "echo differs");
    // Counters are flushed when the session ends, just after the client saw the last byte.
    let total = payload.len() as u64;
    eventually("bytes counted both ways", || {
        let stats = proxy.stats();
        let server = server_stats(&stats, "back", "e1");
        server.bytes_in == total && server.bytes_out == total
    })
    .await;
    let stats = proxy.stats();
    assert_eq!(stats.frontends[0].sessions_total, 1);
    assert_eq!(stats.frontends[0].bytes_in, total);
    assert_eq!(stats.backends[0].bytes_out, total);
    assert!(
        stats.frontends[0].bytes_spliced > 0,
        "bulk traffic goes through splice(2)"
    );
}

/// Each session handed to the backend adds its queue, connect and whole-session times to the
/// backend's histograms once, when it ends (docs/metrics.md, Backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_add_their_times_to_the_backend_histograms() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Proxy::start(single(&[("e1", echo.address)])).await.unwrap();
    let front = frontend_address(&proxy, "front");
    for _ in 0..3 {
        let echoed = tokio::time::timeout(PATIENCE, echo_once(front, b"ping"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, b"ping");
    }
    eventually("three sessions timed", || {
        proxy.stats().backends[0].times.total.count() == 3
    })
    .await;
    let times = proxy.stats().backends[0].times.clone();
    assert_eq!(times.queue.count(), 3, "every session asked for a server");
    assert_eq!(times.connect.count(), 3, "and connected to one");
    assert!(
        times.total.sum >= times.connect.sum + times.queue.sum,
        "a session lasts at least its queueing and connecting: {times:?}"
    );
    assert!(times.total.sum > Duration::ZERO);
}

/// The client's first bytes reach a server whose handshake does not finish within connect(2)
/// (here its accept queue is full, so the first SYN is dropped and retransmitted a second later):
/// the proxy cannot send them with the connection and sends them once connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_bytes_wait_for_a_server_that_connects_late() {
    use socket2::{Domain, Socket, Type};
    let address = addr("127.0.0.2:0");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&address.into()).unwrap();
    // Backlog 0: the queue holds one connection, and the SYNs after it are dropped.
    socket.listen(0).unwrap();
    socket.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(socket.into()).unwrap();
    let server_address = listener.local_addr().unwrap();
    let _queued = TcpStream::connect(server_address).await.unwrap();

    let proxy = Proxy::start(single(&[("late", server_address)]))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    client.write_all(b"first bytes").await.unwrap();
    client.shutdown().await.unwrap();
    // Let the proxy try (its SYN is dropped), then make room in the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_first, _) = listener.accept().await.unwrap();
    let (mut from_proxy, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, from_proxy.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, b"first bytes");
    let stats = proxy.stats();
    assert_eq!(server_stats(&stats, "back", "late").connect_errors, 0);
}

/// The proxy sends the client's first bytes with the handshake's last ACK by delaying its ACKs
/// (TCP_QUICKACK off). A server that answers in two small writes without TCP_NODELAY holds the
/// second until its first is acknowledged (Nagle's algorithm), so delayed ACKs left on would
/// stall every such answer for the delayed-ACK timeout, 40 ms at least.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_two_small_writes_is_not_held_by_a_delayed_ack() {
    const EXCHANGES: usize = 10;
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Nagle on, as a server that never set TCP_NODELAY.
                stream.set_nodelay(false).unwrap();
                let mut received = Vec::new();
                while !received.ends_with(b"request") {
                    let mut chunk = [0u8; 256];
                    let read = stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "closed before the request");
                    received.extend_from_slice(&chunk[..read]);
                }
                stream.write_all(b"head").await.unwrap();
                stream.write_all(b"tail").await.unwrap();
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
            });
        }
    });
    // With a PROXY header there are always first bytes to send with the connection, whether or
    // not the request came before the proxy connected.
    let mut config = single(&[("nagle", server_address)]);
    config.backends[0].send_proxy = vipd_proxy::ProxyProtocol::V1;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut slow = Vec::new();
    for _ in 0..EXCHANGES {
        let mut client = TcpStream::connect(front).await.unwrap();
        client.write_all(b"request").await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = [0u8; 8];
        tokio::time::timeout(PATIENCE, client.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&answer, b"headtail");
        let took = started.elapsed();
        if took >= Duration::from_millis(40) {
            slow.push(took);
        }
    }
    // Held by a delayed ACK, every exchange would take 40 ms or more; allow a loaded machine a
    // few slow ones.
    assert!(
        slow.len() <= 2,
        "{} of {EXCHANGES} answers took 40 ms or more: {slow:?}",
        slow.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_from_the_client_keeps_the_reply_path_open() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        // The client's FIN arrived; our direction is still open.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"reply after your FIN").await.unwrap();
        stream.shutdown().await.unwrap();
        request
    });
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, b"reply after your FIN");
    assert_eq!(server.await.unwrap(), b"request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_from_the_server_keeps_the_request_path_open() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"greeting").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut late = Vec::new();
        stream.read_to_end(&mut late).await.unwrap();
        late
    });
    let proxy = Proxy::start(single(&[("s", server_address)]))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    let mut greeting = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(greeting, b"greeting", "the server's FIN reaches the client");
    client
        .write_all(b"data after the server's FIN")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let late = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late, b"data after the server's FIN");
}

/// Whether the proxy closed `stream` (EOF or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected data"),
        Err(_) => false,
    }
}

fn with_timeouts(server: std::net::SocketAddr, timeouts: Timeouts) -> vipd_proxy::ProxyConfig {
    let mut config = single(&[("e1", server)]);
    config.backends[0].timeout = timeouts;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_silent_session_and_spares_a_tunnel() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let timeouts = Timeouts {
        // Long enough for the tunnel's first echo on a loaded machine.
        idle: Duration::from_secs(3),
        tunnel: Duration::from_secs(120),
        ..Timeouts::default()
    };
    let proxy = Proxy::start(with_timeouts(echo.address, timeouts))
        .await
        .unwrap();
    let front = frontend_address(&proxy, "front");
    let mut silent = TcpStream::connect(front).await.unwrap();
    let mut tunnel = TcpStream::connect(front).await.unwrap();
    ping(&mut tunnel).await;
    assert!(
        closed_within(&mut silent, PATIENCE).await,
        "the silent session hits the idle timeout"
    );
    // Well past `idle`: the tunnel, which carried data both ways, is still served.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ping(&mut tunnel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_timeout_closes_a_quiet_stream_and_spares_a_fresh_session() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let timeouts = Timeouts {
        idle: Duration::from_secs(120),
        tunnel: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let proxy = Proxy::start(with_timeouts(echo.address, timeouts))
        .await
        .unwrap();
    let front = frontend_address(&proxy, "front");
    let mut fresh = TcpStream::connect(front).await.unwrap();
    let mut stream = TcpStream::connect(front).await.unwrap();
    ping(&mut stream).await;
    assert!(
        closed_within(&mut stream, PATIENCE).await,
        "the quiet tunnel hits the tunnel timeout"
    );
    assert!(
        !closed_within(&mut fresh, Duration::from_secs(2)).await,
        "still under `idle`"
    );
    ping(&mut fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_timeout_bounds_a_half_closed_session() {
    // The server never closes its side after the client's FIN: `fin` ends the session.
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        tokio::time::sleep(Duration::from_secs(300)).await;
    });
    let timeouts = Timeouts {
        fin: Some(Duration::from_secs(1)),
        ..Timeouts::default()
    };
    let proxy = Proxy::start(with_timeouts(server_address, timeouts))
        .await
        .unwrap();
    let mut client = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    client.write_all(b"bye").await.unwrap();
    client.shutdown().await.unwrap();
    assert!(closed_within(&mut client, PATIENCE).await);
}

/// A port on 127.0.0.2 where nothing listens.
async fn dead_port() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_refusing_closes_clients_promptly() {
    let mut config = single(&[("d1", dead_port().await), ("d2", dead_port().await)]);
    // A hang would show: the connect timeout is longer than the test's patience.
    config.backends[0].timeout.connect = Duration::from_secs(60);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    for _ in 0..5 {
        let mut client = TcpStream::connect(front).await.unwrap();
        assert!(closed_within(&mut client, PATIENCE).await);
    }
    let stats = proxy.stats();
    assert_eq!(
        stats.backends[0].connect_errors,
        5 * 4,
        "first try + 3 retries each"
    );
    assert_eq!(stats.backends[0].retries, 5 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_down_by_health_refuses_at_once() {
    let mut config = single(&[("d1", dead_port().await), ("d2", dead_port().await)]);
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = Duration::from_millis(200);
    config.backends[0].health = Some(health);
    config.backends[0].timeout.connect = Duration::from_secs(60);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut client = TcpStream::connect(front).await.unwrap();
    assert!(closed_within(&mut client, PATIENCE).await);
    let stats = proxy.stats();
    assert_eq!(stats.backends[0].refused, 1);
    assert_eq!(
        stats.backends[0].connect_errors, 0,
        "no server was even tried"
    );
    assert_eq!(proxy.health().borrow().frontends["front"].servers_usable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_respects_weights_over_10000_real_connections() {
    let servers = [
        EchoServer::start(addr("127.0.0.2:0")).await,
        EchoServer::start(addr("127.0.0.3:0")).await,
        EchoServer::start(addr("127.0.0.4:0")).await,
    ];
    let mut config = single(&[
        ("a", servers[0].address),
        ("b", servers[1].address),
        ("c", servers[2].address),
    ]);
    config.backends[0].balance = Balance::RoundRobin;
    for (server, weight) in config.backends[0].servers.iter_mut().zip([1, 2, 3]) {
        server.weight = weight;
    }
    let proxy = Arc::new(Proxy::start(config).await.unwrap());
    let front = frontend_address(&proxy, "front");
    let mut tasks = tokio::task::JoinSet::new();
    // 16 clients × 625 connections.
    for _ in 0..16 {
        tasks.spawn(async move {
            for _ in 0..625 {
                assert_eq!(echo_once(front, b"x").await.unwrap(), b"x");
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .unwrap();
    let stats = proxy.stats();
    let counts: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|name| server_stats(&stats, "back", name).sessions_total)
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 10_000);
    for (count, expected) in counts
        .iter()
        .zip([10_000.0 / 6.0, 20_000.0 / 6.0, 30_000.0 / 6.0])
    {
        #[allow(clippy::cast_precision_loss)]
        let count = *count as f64;
        assert!(
            (count - expected).abs() <= expected * 0.05,
            "counts {counts:?}"
        );
    }
}
