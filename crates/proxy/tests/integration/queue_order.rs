//! The backend queue under overload: first come, first served, its own `timeout.queue`, and the
//! p99 wait in the stats. See docs/design/proxy.md, Queue.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vipd_proxy::Proxy;

/// A server that reads one line (a client's number), records it, holds the session for `hold`
/// and answers `ok`. The proxy lets one session at a time through, so the record is the order
/// of service.
async fn recording_server(hold: Duration) -> (std::net::SocketAddr, Arc<Mutex<Vec<usize>>>) {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                    line.push(byte[0]);
                }
                if let Ok(number) = String::from_utf8_lossy(&line).parse() {
                    record.lock().unwrap().push(number);
                }
                tokio::time::sleep(hold).await;
                let _ = stream.write_all(b"ok").await;
            });
        }
    });
    (address, served)
}

async fn numbered_client(front: std::net::SocketAddr, number: usize) -> bool {
    let Ok(mut stream) = TcpStream::connect(front).await else {
        return false;
    };
    if stream
        .write_all(format!("{number}\n").as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    matches!(
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await,
        Ok(Ok(_)) if answer == b"ok"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_overload_the_queue_serves_in_arrival_order() {
    const CLIENTS: usize = 24;
    let hold = Duration::from_millis(40);
    let (server, served) = recording_server(hold).await;
    let mut config = single(&[("only", server)]);
    config.backends[0].servers[0].max_connections = Some(1);
    config.backends[0].timeout.connect = Duration::from_secs(30);
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");

    // Clients arrive every 10 ms, four times faster than the server serves them: the queue
    // grows, and every freed slot has newcomers competing with the queue for it.
    let mut clients = tokio::task::JoinSet::new();
    for number in 0..CLIENTS {
        clients.spawn(numbered_client(front, number));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while let Some(finished) = clients.join_next().await {
        assert!(finished.unwrap(), "every client is served");
    }
    let order = served.lock().unwrap().clone();
    assert_eq!(order, (0..CLIENTS).collect::<Vec<_>>(), "order of service");
    let backend = &proxy.stats().backends[0];
    assert_eq!(backend.queue_current, 0);
    assert!(backend.queued_total >= CLIENTS as u64 - 2);
    // The last client waits for most of the others: (CLIENTS - 1) × hold - its arrival delay.
    let p99 = backend.queue_wait_p99.unwrap();
    println!(
        "{CLIENTS} clients, one slot held {hold:?} each: {} queued, p99 queue wait {p99:?}",
        backend.queued_total
    );
    assert!(p99 >= hold * 8, "p99 queue wait {p99:?}");
}

/// A proxy to one server that takes one session at a time (`timeout.connect` 20 s), whose slot
/// a first client holds for 30 s.
async fn one_slot_taken(queue_timeout: Option<Duration>) -> (Proxy, std::net::SocketAddr) {
    let (server, _served) = recording_server(Duration::from_secs(30)).await;
    let mut config = single(&[("only", server)]);
    config.backends[0].servers[0].max_connections = Some(1);
    config.backends[0].timeout.connect = Duration::from_secs(20);
    config.backends[0].timeout.queue = queue_timeout;
    let proxy = Proxy::start(config).await.unwrap();
    let front = frontend_address(&proxy, "front");
    tokio::spawn(numbered_client(front, 0));
    eventually("the first session holds the slot", || {
        proxy.stats().backends[0].sessions_current == 1
    })
    .await;
    (proxy, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_wait_has_its_own_timeout() {
    let queue_timeout = Duration::from_millis(300);
    let (proxy, front) = one_slot_taken(Some(queue_timeout)).await;
    let started = Instant::now();
    assert!(!numbered_client(front, 1).await, "refused after the wait");
    let waited = started.elapsed();
    assert!(
        waited >= queue_timeout && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    assert_eq!(proxy.stats().backends[0].refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_sessions_are_refused_at_once_when_no_server_is_left() {
    let (proxy, front) = one_slot_taken(None).await;
    let queued: Vec<_> = (1..4)
        .map(|number| tokio::spawn(numbered_client(front, number)))
        .collect();
    eventually("three sessions queued", || {
        proxy.stats().backends[0].queue_current == 3
    })
    .await;
    let started = Instant::now();
    proxy.disable_server("back", "only").unwrap();
    for client in queued {
        assert!(!client.await.unwrap(), "refused: no server left");
    }
    assert!(!numbered_client(front, 4).await, "a newcomer too");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not at the queue timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.stats().backends[0].refused, 4);
}
