//! Dead servers on real sockets: a blackholed server (a listener whose accept queue is full, so
//! the kernel drops further SYNs) and a refusing one (a bound port nobody listens on). A failed
//! attempt sends the retry elsewhere, failures in a row mark the server down, a refusal on the
//! only server left backs off. See docs/design/proxy.md, Connect, retries and redispatch.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::test_servers::*;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use vipd_proxy::{
    Balance, Balancer, Candidate, HealthCheckConfig, HealthCheckKind, Proxy, ProxyConfig,
    ProxyProtocol,
};

/// A server that never answers a SYN: it listens with a backlog of 0 and never accepts, and
/// one connection fills its accept queue; Linux drops the SYNs after that.
struct Blackhole {
    address: SocketAddr,
    _listener: Socket,
    _filler: std::net::TcpStream,
}

impl Blackhole {
    fn start(address: &str) -> Self {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.bind(&addr(address).into()).unwrap();
        socket.listen(0).unwrap();
        let address = socket.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(address).unwrap();
        // The filler's handshake completed: the queue is full from now on.
        std::thread::sleep(Duration::from_millis(50));
        Self {
            address,
            _listener: socket,
            _filler: filler,
        }
    }
}

/// An address that refuses connections: bound, never listening, so SYNs get a reset.
fn refusing(address: &str) -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&addr(address).into()).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, address)
}

struct Named(&'static str);

impl Candidate for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn weight(&self) -> u32 {
        1
    }
    fn active(&self) -> u64 {
        0
    }
}

/// A loopback client address that `balance: source` sends to `names[wanted]`.
fn client_hashed_to(names: [&'static str; 2], wanted: usize) -> IpAddr {
    let servers = names.map(Named);
    let balancer = Balancer::new(Balance::Source, 2, 0);
    (10u8..250)
        .map(|last| IpAddr::from([127, 0, 0, last]))
        .find(|&client| balancer.pick(&servers, &[0, 1], client) == Some(wanted))
        .unwrap()
}

/// One echo through `front` from `client`; the time it took.
async fn timed_echo(front: SocketAddr, client: IpAddr) -> std::io::Result<Duration> {
    let started = Instant::now();
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(client, 0))?;
    let mut stream = socket.connect(front).await?;
    stream.write_all(b"hello").await?;
    stream.shutdown().await?;
    let mut echoed = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut echoed)).await??;
    if echoed != b"hello" {
        return Err(std::io::Error::other(format!("echoed {echoed:?}")));
    }
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_sends_the_retry_to_another_server_even_with_source_balancing() {
    let blackhole = Blackhole::start("127.0.0.2:0");
    let echo = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = single(&[("dead", blackhole.address), ("alive", echo.address)]);
    let connect = Duration::from_millis(500);
    let backend = &mut config.backends[0];
    backend.balance = Balance::Source;
    backend.timeout.connect = connect;
    backend.retries = 3;
    let proxy = Proxy::start(config).await.unwrap();
    let client = client_hashed_to(["dead", "alive"], 0);

    let took = timed_echo(frontend_address(&proxy, "front"), client)
        .await
        .unwrap();
    // One timed-out attempt, then the other server. Retrying the server that timed out would
    // take at least three connect timeouts before the last retry is sent elsewhere.
    assert!(
        took >= connect && took < connect * 2 + Duration::from_millis(400),
        "took {took:?} with timeout.connect {connect:?}"
    );
    let stats = proxy.stats();
    assert_eq!(server_stats(&stats, "back", "dead").connect_errors, 1);
    assert_eq!(stats.backends[0].redispatches, 1);
}

fn with_passive_health(config: &mut ProxyConfig, error_limit: u32) {
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    // Checks that cannot decide within the test: only client traffic marks servers down.
    health.interval = Duration::from_secs(60);
    health.fall = 100;
    health.rise = 1;
    health.initially_up = true;
    health.error_limit = error_limit;
    config.backends[0].health = Some(health);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_in_a_row_mark_a_server_down_at_once() {
    let (_refusing, dead) = refusing("127.0.0.2:0");
    let echo = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = single(&[("dead", dead), ("alive", echo.address)]);
    with_passive_health(&mut config, 3);
    let proxy = Proxy::start(config).await.unwrap();
    let mut health = proxy.health();
    let front = frontend_address(&proxy, "front");

    for _ in 0..40 {
        timed_echo(front, addr("127.0.0.1:0").ip()).await.unwrap();
    }
    let stats = proxy.stats();
    let dead_stats = server_stats(&stats, "back", "dead");
    assert!(!dead_stats.up, "marked down by client traffic");
    assert_eq!(
        dead_stats.connect_errors, 3,
        "no attempt on it after the third failure"
    );
    assert!(
        dead_stats.check_failures <= 2,
        "checks only at start and right after the mark-down: {}",
        dead_stats.check_failures
    );
    // The change is published like a failed check's, for the frontend trackers.
    let published = tokio::time::timeout(
        PATIENCE,
        health.wait_for(|report| report.frontends["front"].servers_usable == 1),
    )
    .await;
    assert!(published.is_ok_and(|seen| seen.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_only_server_is_retried_after_a_back_off() {
    let (_refusing, dead) = refusing("127.0.0.2:0");
    let mut config = single(&[("dead", dead)]);
    let connect = Duration::from_millis(300);
    config.backends[0].timeout.connect = connect;
    config.backends[0].retries = 2;
    with_passive_health(&mut config, 0);
    let proxy = Proxy::start(config).await.unwrap();

    let started = Instant::now();
    let failed = timed_echo(frontend_address(&proxy, "front"), addr("127.0.0.1:0").ip()).await;
    let took = started.elapsed();
    assert!(failed.is_err(), "nothing serves");
    // Two retries on the server that refused, each after a turn-around of
    // min(1 s, timeout.connect).
    assert!(took >= connect * 2, "gave up after {took:?}");
    assert_eq!(
        server_stats(&proxy.stats(), "back", "dead").connect_errors,
        3
    );
}

/// A server that accepts, leaves what it is sent unread, and closes after a moment: Linux
/// answers with a reset, as for the connections in the accept queue of a killed server.
async fn resetting_server(address: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(stream);
            });
        }
    });
    address
}

/// A proxy whose frontend expects a PROXY header and whose backend sends one, with a resetting
/// server and an echo server; and a client address that `source` hashes to the resetting one.
async fn resetting_and_alive() -> (Proxy, EchoServer, IpAddr) {
    let resetting = resetting_server("127.0.0.2:0").await;
    let echo = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = single(&[("resetting", resetting), ("alive", echo.address)]);
    config.backends[0].balance = Balance::Source;
    config.backends[0].send_proxy = ProxyProtocol::V1;
    config.frontends[0].accept_proxy = true;
    let proxy = Proxy::start(config).await.unwrap();
    (proxy, echo, client_hashed_to(["resetting", "alive"], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_any_client_payload_sends_the_session_elsewhere() {
    let (proxy, _echo, client) = resetting_and_alive().await;
    let mut stream = tokio::net::TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    // Only the PROXY header at first: the server is sent nothing of the client's, and its reset
    // (the PROXY header left unread) is a failed attempt, retried on the other server.
    let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\n");
    stream.write_all(header.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    stream.write_all(b"hello").await.unwrap();
    // The echo server returns the proxy's PROXY header, then the payload.
    let mut echoed = Vec::new();
    let mut chunk = [0u8; 256];
    while !echoed.ends_with(b"hello") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&echoed)
        );
        echoed.extend_from_slice(&chunk[..read]);
    }
    let stats = proxy.stats();
    assert_eq!(server_stats(&stats, "back", "resetting").connect_errors, 1);
    assert_eq!(server_stats(&stats, "back", "alive").sessions_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_clients_payload_reaches_the_client_not_another_server() {
    let (proxy, _echo, client) = resetting_and_alive().await;
    let mut stream = tokio::net::TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    // The payload comes with the header: the server may have acted on part of it.
    let request = format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\nhello");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        ended.is_err() || rest.is_empty(),
        "no answer from another server: {ended:?} {rest:?}"
    );
    let stats = proxy.stats();
    assert_eq!(
        server_stats(&stats, "back", "alive").sessions_total,
        0,
        "the request never reached a second server"
    );
}
