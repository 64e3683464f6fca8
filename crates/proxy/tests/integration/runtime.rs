//! Runtime control on real connections: reload by difference and admin actions under load, graceful
//! shutdown, connection limits and queueing, and `source` agreement between two proxies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vipd_proxy::{AdminState, Balance, FrontendConfig, Proxy, ServerConfig};

async fn ping(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    stream.write_all(message).await?;
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut echoed)).await??;
    assert_eq!(echoed, message);
    Ok(())
}

/// Load for the duration of a test: `long` sessions pinging in a loop and a loop of short
/// connections. Counts failures; everything is bounded in count.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    successes: Arc<AtomicU64>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    async fn start(front: std::net::SocketAddr, long: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (failures, successes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..long {
            let mut session = TcpStream::connect(front).await.unwrap();
            let (stop, failures, successes) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&successes),
            );
            tasks.spawn(async move {
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if ping(&mut session, b"long-lived").await.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    successes.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        for _ in 0..4 {
            let (stop, failures, successes) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&successes),
            );
            tasks.spawn(async move {
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match echo_once(front, b"short").await {
                        Ok(echoed) if echoed == b"short" => {
                            successes.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        Self {
            stop,
            failures,
            successes,
            tasks,
        }
    }

    async fn progress(&self, more: u64) {
        let from = self.successes.load(Ordering::Relaxed);
        eventually("load makes progress", || {
            self.successes.load(Ordering::Relaxed) >= from + more
        })
        .await;
    }

    async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(result) = self.tasks.join_next().await {
                result.unwrap();
            }
        })
        .await
        .unwrap();
        self.failures.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_keeps_listeners_sessions_and_server_state() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let first = single(&[("a", a.address)]);
    let proxy = Proxy::start(first.clone()).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let load = Load::start(front, 16).await;
    load.progress(200).await;

    // Add server b, a second frontend, change limits and the balancer.
    let mut second = first.clone();
    second.backends[0]
        .servers
        .push(ServerConfig::new("b", b.address));
    second.backends[0].balance = Balance::LeastConn;
    second.frontends[0].max_connections = 5_000;
    second.frontends.push(FrontendConfig::new(
        "other",
        vec![addr("127.0.0.5:0")],
        "back",
    ));
    proxy.set_server_weight("back", "a", 3).unwrap();
    proxy.apply(second.clone()).await.unwrap();
    assert_eq!(
        frontend_address(&proxy, "front"),
        front,
        "unchanged listener kept its socket"
    );
    assert_eq!(
        echo_once(frontend_address(&proxy, "other"), b"o")
            .await
            .unwrap(),
        b"o"
    );
    load.progress(200).await;
    let stats = proxy.stats();
    assert_eq!(
        server_stats(&stats, "back", "a").weight,
        3,
        "admin weight survives the reload"
    );
    assert!(
        server_stats(&stats, "back", "b").sessions_total > 0,
        "new sessions use the new backend"
    );

    // Drain a under load: new sessions avoid it, its established ones continue.
    proxy.drain_server("back", "a").unwrap();
    // A pick that read the weight just before the drain may still count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a_total = server_stats(&proxy.stats(), "back", "a").sessions_total;
    load.progress(200).await;
    assert_eq!(
        server_stats(&proxy.stats(), "back", "a").sessions_total,
        a_total
    );

    // Remove a: its established sessions continue, new ones go to b.
    let mut third = second.clone();
    third.backends[0].servers.remove(0);
    third.frontends.pop();
    proxy.apply(third).await.unwrap();
    load.progress(200).await;
    let failures = load.finish().await;
    assert_eq!(failures, 0);
    assert_eq!(
        proxy.listening_addresses().len(),
        1,
        "removed frontend stopped listening"
    );

    // A bad reload changes nothing.
    let mut broken = second;
    broken.frontends[0].backend = "missing".into();
    assert!(proxy.apply(broken).await.is_err());
    assert_eq!(echo_once(front, b"still").await.unwrap(), b"still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_disable_enable_and_weight_move_new_sessions_only() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let proxy = Proxy::start(single(&[("a", a.address), ("b", b.address)]))
        .await
        .unwrap();
    let front = frontend_address(&proxy, "front");
    let mut established = Vec::new();
    for _ in 0..4 {
        let mut session = TcpStream::connect(front).await.unwrap();
        ping(&mut session, b"hi").await.unwrap();
        established.push(session);
    }
    assert_eq!(
        server_stats(&proxy.stats(), "back", "a").sessions_current,
        2
    );

    proxy.drain_server("back", "a").unwrap();
    assert_eq!(proxy.health().borrow().frontends["front"].servers_usable, 1);
    for _ in 0..10 {
        echo_once(front, b"x").await.unwrap();
    }
    let stats = proxy.stats();
    assert_eq!(
        server_stats(&stats, "back", "a").sessions_total,
        2,
        "no new session on a drained server"
    );
    assert_eq!(server_stats(&stats, "back", "a").admin, AdminState::Drain);
    for session in &mut established {
        ping(session, b"still here").await.unwrap();
    }

    proxy.enable_server("back", "a").unwrap();
    proxy.disable_server("back", "b").unwrap();
    for _ in 0..10 {
        echo_once(front, b"x").await.unwrap();
    }
    assert_eq!(server_stats(&proxy.stats(), "back", "a").sessions_total, 12);
    proxy.enable_server("back", "b").unwrap();
    proxy.set_server_weight("back", "a", 0).unwrap();
    echo_once(front, b"x").await.unwrap();
    assert_eq!(
        server_stats(&proxy.stats(), "back", "b").sessions_total,
        2 + 10 + 1
    );

    assert!(matches!(
        proxy.drain_server("back", "nope"),
        Err(vipd_proxy::Error::UnknownServer { .. })
    ));
    assert!(matches!(
        proxy.drain_server("nope", "a"),
        Err(vipd_proxy::Error::UnknownBackend { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_sessions_run_until_the_deadline_then_cuts() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Arc::new(Proxy::start(single(&[("e", echo.address)])).await.unwrap());
    let front = frontend_address(&proxy, "front");
    let mut session = TcpStream::connect(front).await.unwrap();
    ping(&mut session, b"before").await.unwrap();
    let stopping = {
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move { proxy.shutdown(Duration::from_secs(3)).await })
    };
    eventually("listeners closed", || {
        proxy.listening_addresses().is_empty()
    })
    .await;
    assert!(
        TcpStream::connect(front).await.is_err(),
        "no new connections"
    );
    ping(&mut session, b"during the grace period")
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    let cut = tokio::time::timeout(PATIENCE, session.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(cut.is_err() || rest.is_empty(), "cut at the deadline");
    assert!(
        proxy.apply(single(&[("e", echo.address)])).await.is_err(),
        "no reload after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_ends_a_long_drain_at_once_and_cuts_the_sessions() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Arc::new(Proxy::start(single(&[("e", echo.address)])).await.unwrap());
    let mut session = TcpStream::connect(frontend_address(&proxy, "front"))
        .await
        .unwrap();
    ping(&mut session, b"before").await.unwrap();
    let cut = tokio_util::sync::CancellationToken::new();
    let stopping = {
        let (proxy, cut) = (Arc::clone(&proxy), cut.clone());
        // Ten minutes of grace: only the cut can end this drain within the test's patience.
        tokio::spawn(async move {
            proxy
                .shutdown_unless_cut(Duration::from_secs(600), cut.cancelled_owned())
                .await;
        })
    };
    eventually("listeners closed", || {
        proxy.listening_addresses().is_empty()
    })
    .await;
    ping(&mut session, b"during the drain").await.unwrap();
    cut.cancel();
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("the cut ended the drain")
        .unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, session.read_to_end(&mut rest))
        .await
        .expect("the session was cut");
    assert!(ended.is_err() || rest.is_empty(), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_as_soon_as_sessions_are_done() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Proxy::start(single(&[("e", echo.address)])).await.unwrap();
    echo_once(frontend_address(&proxy, "front"), b"x")
        .await
        .unwrap();
    // A 10-minute grace period with no session left must not wait.
    tokio::time::timeout(PATIENCE, proxy.shutdown(Duration::from_secs(600)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_balancing_agrees_between_two_independent_proxies() {
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
    config.backends[0].balance = Balance::Source;
    config.frontends[0].accept_proxy = true;
    let first = Proxy::start(config.clone()).await.unwrap();
    let second = Proxy::start(config).await.unwrap();
    // Which server each proxy picks for a client, seen through its session counters.
    let served_by = |proxy: &Proxy, before: &[u64]| -> usize {
        let stats = proxy.stats();
        (0..3)
            .find(|&index| stats.backends[0].servers[index].sessions_total > before[index])
            .unwrap()
    };
    let totals = |proxy: &Proxy| -> Vec<u64> {
        proxy.stats().backends[0]
            .servers
            .iter()
            .map(|server| server.sessions_total)
            .collect()
    };
    let mut spread = [0u32; 3];
    for host in 1..=30 {
        let header = format!("PROXY TCP4 198.51.100.{host} 203.0.113.5 40000 443\r\nx");
        let mut picks = Vec::new();
        for proxy in [&first, &second] {
            for _ in 0..2 {
                let before = totals(proxy);
                let echoed = echo_once(frontend_address(proxy, "front"), header.as_bytes())
                    .await
                    .unwrap();
                assert_eq!(echoed, b"x");
                picks.push(served_by(proxy, &before));
            }
        }
        assert!(
            picks.iter().all(|&pick| pick == picks[0]),
            "client {host}: {picks:?}"
        );
        spread[picks[0]] += 1;
    }
    assert!(
        spread.iter().all(|&count| count > 0),
        "all servers used: {spread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_queues_sessions_and_a_full_queue_refuses() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("one", echo.address)]);
    config.backends[0].servers[0].max_connections = Some(1);
    config.backends[0].max_queue = 1;
    config.backends[0].timeout.connect = Duration::from_secs(30);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut holder = TcpStream::connect(front).await.unwrap();
    ping(&mut holder, b"mine").await.unwrap();
    let queued = tokio::spawn(echo_once(front, b"queued"));
    eventually("second session queued", || {
        proxy.stats().backends[0].queue_current == 1
    })
    .await;
    let mut refused = TcpStream::connect(front).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, refused.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        closed.is_err() || rest.is_empty(),
        "third session refused: queue full"
    );
    drop(holder);
    let echoed = tokio::time::timeout(PATIENCE, queued)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, b"queued");
    assert_eq!(proxy.stats().backends[0].refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_max_connections_holds_clients_in_the_backlog() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].max_connections = 1;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut first = TcpStream::connect(front).await.unwrap();
    ping(&mut first, b"first").await.unwrap();
    let mut waiting = TcpStream::connect(front).await.unwrap();
    waiting.write_all(b"wait").await.unwrap();
    let mut echoed = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.read_exact(&mut echoed))
            .await
            .is_err(),
        "not served while the limit is reached"
    );
    drop(first);
    tokio::time::timeout(PATIENCE, waiting.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_stop_after_cuts_sessions_of_removed_servers_only() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let config = single(&[("a", a.address), ("b", b.address)]);
    let proxy = Proxy::start(config.clone()).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut on_a = TcpStream::connect(front).await.unwrap();
    ping(&mut on_a, b"a").await.unwrap();
    let mut on_b = TcpStream::connect(front).await.unwrap();
    ping(&mut on_b, b"b").await.unwrap();
    assert_eq!(
        server_stats(&proxy.stats(), "back", "a").sessions_current,
        1
    );
    let mut without_a = config;
    without_a.backends[0].servers.remove(0);
    without_a.hard_stop_after = Some(Duration::from_millis(300));
    proxy.apply(without_a).await.unwrap();
    let mut rest = Vec::new();
    let cut = tokio::time::timeout(PATIENCE, on_a.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        cut.is_err() || rest.is_empty(),
        "the removed server's session is cut"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ping(&mut on_b, b"b lives").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_health_and_admin_state_of_servers_that_stay() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = single(&[("a", a.address), ("b", b.address)]);
    let mut health = vipd_proxy::HealthCheckConfig::new(vipd_proxy::HealthCheckKind::Tcp);
    // Slow checks: after the reload, "up" can only come from the kept state, not from new checks.
    health.interval = Duration::from_secs(60);
    health.rise = 1;
    config.backends[0].health = Some(health);
    let proxy = Proxy::start(config.clone()).await.unwrap();
    eventually("both up", || proxy.stats().backends[0].servers_up == 2).await;
    proxy.drain_server("back", "b").unwrap();
    let mut reloaded = config;
    reloaded.backends[0].retries = 5;
    reloaded.backends[0].health.as_mut().unwrap().rise = 3;
    proxy.apply(reloaded).await.unwrap();
    let stats = proxy.stats();
    assert!(server_stats(&stats, "back", "a").up, "health kept");
    assert_eq!(
        server_stats(&stats, "back", "b").admin,
        AdminState::Drain,
        "admin state kept"
    );
    assert_eq!(proxy.health().borrow().frontends["front"].servers_usable, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_can_move_to_another_frontend_in_one_reload() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    // A fixed port, so that the move is visible as the same address.
    let port = std::net::TcpListener::bind("127.0.0.6:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let moving = std::net::SocketAddr::new("127.0.0.6".parse().unwrap(), port);
    config
        .frontends
        .push(FrontendConfig::new("x", vec![moving], "back"));
    let proxy = Proxy::start(config.clone()).await.unwrap();
    assert_eq!(echo_once(moving, b"via x").await.unwrap(), b"via x");
    config.frontends[1].name = "y".into();
    proxy.apply(config).await.unwrap();
    let listening = proxy.listening_addresses();
    assert_eq!(listening.get("y"), Some(&vec![moving]));
    assert!(!listening.contains_key("x"));
    assert_eq!(echo_once(moving, b"via y").await.unwrap(), b"via y");
    assert_eq!(
        proxy
            .stats()
            .frontends
            .iter()
            .find(|f| f.name == "y")
            .unwrap()
            .sessions_total,
        1
    );
}
