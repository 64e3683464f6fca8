//! Reloads that keep server state, limits that a reload lowers exactly, all-or-nothing reloads
//! (with a bind moving to the wildcard of its port), and slow start.

use std::net::SocketAddr;
use std::time::Duration;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vipd_proxy::{AdminState, Balance, HealthCheckConfig, HealthCheckKind, Proxy, ProxyConfig};

/// A session through the proxy that has reached its server (one echo came back).
async fn open_session(front: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    stream
}

/// Checks every 60 s: after the first check, a state can only come from what was kept.
fn slow_checks(rise: u32) -> HealthCheckConfig {
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = Duration::from_secs(60);
    health.rise = rise;
    health
}

fn free_port(on: &str) -> u16 {
    std::net::TcpListener::bind(format!("{on}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changing_limit_backup_weight_and_balance_keeps_every_server_state() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = single(&[("a", a.address), ("b", b.address)]);
    config.backends[0].health = Some(slow_checks(1));
    let proxy = Proxy::start(config.clone()).await.unwrap();
    let front = frontend_address(&proxy, "front");
    eventually("both up", || proxy.stats().backends[0].servers_up == 2).await;
    proxy.disable_server("back", "b").unwrap();
    proxy.set_server_weight("back", "a", 7).unwrap();
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(open_session(front).await);
    }
    let transitions = server_stats(&proxy.stats(), "back", "a").transitions;

    // Rise 2 from here on: a rebuilt server would be down until a second check, a minute away.
    config.backends[0].health = Some(slow_checks(2));
    config.backends[0].balance = Balance::LeastConn;
    config.backends[0].servers[0].max_connections = Some(2);
    config.backends[0].servers[0].weight = 3;
    config.backends[0].servers[1].backup = true;
    proxy.apply(config).await.unwrap();

    let stats = proxy.stats();
    let (server_a, server_b) = (
        server_stats(&stats, "back", "a"),
        server_stats(&stats, "back", "b"),
    );
    assert!(server_a.up, "health kept");
    assert_eq!(server_a.transitions, transitions, "no flip");
    assert_eq!(server_a.sessions_current, 4, "the session count is kept");
    assert_eq!(
        server_a.max_connections,
        Some(2),
        "the limit changed in place"
    );
    assert_eq!(server_a.weight, 7, "the admin weight still overrides");
    assert!(server_a.weight_overridden);
    assert_eq!(server_b.admin, AdminState::Maintenance, "admin state kept");
    assert!(server_b.backup, "backup changed in place");
    assert_eq!(proxy.health().borrow().frontends["front"].servers_usable, 1);

    // The kept count holds the new limit: 4 open on a server limited to 2, so a new client
    // waits in the queue until two have ended.
    let mut waiting = TcpStream::connect(front).await.unwrap();
    waiting.write_all(b"queued").await.unwrap();
    let mut echoed = [0u8; 6];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read_exact(&mut echoed));
    assert!(early.await.is_err(), "served above the server's limit");
    sessions.truncate(1);
    tokio::time::timeout(PATIENCE, waiting.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"queued");

    proxy.reset_server_weight("back", "a").unwrap();
    let stats = proxy.stats();
    assert_eq!(
        server_stats(&stats, "back", "a").weight,
        3,
        "configured again"
    );
    assert!(!server_stats(&stats, "back", "a").weight_overridden);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_frontend_and_global_limits_under_load_applies_exactly() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].max_connections = 10;
    config.max_connections = 12;
    let proxy = Proxy::start(config.clone()).await.unwrap();
    let front = frontend_address(&proxy, "front");
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(open_session(front).await);
    }
    // Lowered twice while 8 are open, then raised part way: a semaphore that can only withdraw
    // free permits ends up allowing more than configured.
    for max in [3, 9, 3] {
        config.frontends[0].max_connections = max;
        config.max_connections = max + 1;
        proxy.apply(config.clone()).await.unwrap();
    }
    let stats = proxy.stats();
    assert_eq!(stats.frontends[0].max_connections, 3);
    assert_eq!(
        stats.frontends[0].max_connections_in_force, 8,
        "8 still open"
    );
    assert_eq!(stats.max_connections, 4);
    assert_eq!(stats.max_connections_in_force, 8);

    sessions.clear();
    eventually("sessions ended", || proxy.stats().sessions_current == 0).await;
    let stats = proxy.stats();
    assert_eq!(stats.frontends[0].max_connections_in_force, 3);
    assert_eq!(stats.max_connections_in_force, 4);
    // Six clients: three are served, the others wait in the backlog.
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut client = TcpStream::connect(front).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        clients.push(client);
    }
    eventually("three served", || proxy.stats().sessions_current == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.stats().sessions_current, 3, "the limit in force is 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_moves_from_an_address_to_the_wildcard_of_its_port_in_one_reload() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let port = free_port("0.0.0.0");
    let specific = SocketAddr::new("127.0.0.8".parse().unwrap(), port);
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].bind = vec![specific];
    let proxy = Proxy::start(config.clone()).await.unwrap();
    assert_eq!(echo_once(specific, b"before").await.unwrap(), b"before");

    let wildcard = SocketAddr::new("0.0.0.0".parse().unwrap(), port);
    config.frontends[0].bind = vec![wildcard];
    proxy.apply(config.clone()).await.unwrap();
    assert_eq!(proxy.listening_addresses()["front"], vec![wildcard]);
    assert_eq!(echo_once(specific, b"after").await.unwrap(), b"after");
    let other = SocketAddr::new("127.0.0.9".parse().unwrap(), port);
    assert_eq!(echo_once(other, b"any").await.unwrap(), b"any");

    // And back.
    config.frontends[0].bind = vec![specific];
    proxy.apply(config).await.unwrap();
    assert_eq!(proxy.listening_addresses()["front"], vec![specific]);
    assert_eq!(echo_once(specific, b"back").await.unwrap(), b"back");
    assert!(
        echo_once(other, b"gone").await.is_err(),
        "the wildcard closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_to_bind_changes_nothing() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e", echo.address)]);
    config.frontends[0].max_connections = 10;
    let proxy = Proxy::start(config.clone()).await.unwrap();
    let before = proxy.stats();
    let taken = std::net::TcpListener::bind("127.0.0.10:0").unwrap();

    let mut broken: ProxyConfig = config.clone();
    broken.frontends[0].max_connections = 2;
    broken.backends[0].servers[0].max_connections = Some(1);
    broken.backends[0].servers[0].weight = 5;
    broken.frontends.push(vipd_proxy::FrontendConfig::new(
        "taken",
        vec![taken.local_addr().unwrap()],
        "back",
    ));
    assert!(proxy.apply(broken).await.is_err());

    let after = proxy.stats();
    assert_eq!(after.frontends.len(), 1);
    assert_eq!(
        after.frontends[0].max_connections, 10,
        "frontend limit kept"
    );
    let (server_before, server_after) = (
        server_stats(&before, "back", "e"),
        server_stats(&after, "back", "e"),
    );
    assert_eq!(server_after.max_connections, None, "server limit kept");
    assert_eq!(server_after.weight, server_before.weight, "weight kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_back_from_maintenance_ramps_up_instead_of_taking_every_new_client() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let config = least_conn_with_slow_start(&a, &b);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    proxy.disable_server("back", "b").unwrap();
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(open_session(front).await);
    }
    proxy.enable_server("back", "b").unwrap();
    ten_new_sessions_mostly_avoid_b(&proxy, front, &mut sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_back_from_failed_checks_ramps_up_but_not_at_start() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let b = EchoServer::start(addr("127.0.0.3:0")).await;
    let mut config = least_conn_with_slow_start(&a, &b);
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = Duration::from_millis(100);
    health.timeout = Duration::from_millis(100);
    (health.rise, health.fall) = (1, 1);
    config.backends[0].health = Some(health);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    eventually("both up", || proxy.stats().backends[0].servers_up == 2).await;
    assert!(
        !server_stats(&proxy.stats(), "back", "b").slow_starting,
        "no slow start when the proxy starts"
    );

    let b_address = b.address;
    b.stop();
    drop(b);
    eventually("b down", || !server_stats(&proxy.stats(), "back", "b").up).await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(open_session(front).await);
    }
    let _b = EchoServer::start(b_address).await;
    eventually("b up again", || {
        server_stats(&proxy.stats(), "back", "b").up
    })
    .await;
    ten_new_sessions_mostly_avoid_b(&proxy, front, &mut sessions).await;
}

/// Servers `a` and `b` under `least_conn` with a 30 s `slow_start`.
fn least_conn_with_slow_start(a: &EchoServer, b: &EchoServer) -> ProxyConfig {
    let mut config = single(&[("a", a.address), ("b", b.address)]);
    config.backends[0].balance = Balance::LeastConn;
    config.backends[0].slow_start = Some(Duration::from_secs(30));
    config
}

/// With 20 sessions on `a` and none on `b`, which just came back: without slow start
/// least_conn gives `b` all ten new sessions; at the start of a 30 s ramp `b`'s weight is 1/16
/// of `a`'s, so `a`'s 20 sessions weigh like `b`'s 1.25.
async fn ten_new_sessions_mostly_avoid_b(
    proxy: &Proxy,
    front: SocketAddr,
    sessions: &mut Vec<TcpStream>,
) {
    assert!(server_stats(&proxy.stats(), "back", "b").slow_starting);
    for _ in 0..10 {
        sessions.push(open_session(front).await);
    }
    let on_b = server_stats(&proxy.stats(), "back", "b").sessions_current;
    assert!(
        on_b <= 3,
        "{on_b} of 10 new sessions went to the server coming back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_the_checks_brings_a_down_server_up() {
    let a = EchoServer::start(addr("127.0.0.2:0")).await;
    let silent = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let nobody = silent.local_addr().unwrap();
    drop(silent);
    let mut config = single(&[("a", a.address), ("gone", nobody)]);
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = Duration::from_millis(100);
    health.rise = 1;
    config.backends[0].health = Some(health);
    let proxy = Proxy::start(config.clone()).await.unwrap();
    eventually("a up", || server_stats(&proxy.stats(), "back", "a").up).await;
    assert!(!server_stats(&proxy.stats(), "back", "gone").up);

    config.backends[0].health = None;
    proxy.apply(config).await.unwrap();
    assert!(
        server_stats(&proxy.stats(), "back", "gone").up,
        "without checks every server counts as up"
    );
    assert_eq!(proxy.health().borrow().frontends["front"].servers_usable, 2);
}
