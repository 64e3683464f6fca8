//! The control server's connection handling over real sockets on 127.0.0.1: deadlines, room at
//! the cap, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use super::ConnectionLimits;
use crate::control::status::tests::sample_status;
use crate::control::tests::{FakeNode, request, start_with_limits};
use crate::control::{ActionError, Control, NodeStatus, ServerAction, bind};

/// Small limits so the tests see them act quickly.
const TIGHT: ConnectionLimits = ConnectionLimits {
    max_connections: 2,
    request_head_timeout: Duration::from_millis(300),
    request_body_timeout: Duration::from_millis(300),
    idle_timeout: Duration::from_secs(60),
    max_lifetime: Duration::from_secs(60),
    shutdown_grace: Duration::from_millis(200),
};

/// No deadline of these acts within a test.
const LENIENT: ConnectionLimits = ConnectionLimits {
    request_head_timeout: Duration::from_secs(60),
    request_body_timeout: Duration::from_secs(60),
    ..TIGHT
};

/// Upper bound for anything these tests wait on; far above the 300 ms deadlines.
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until the server closes `stream` (EOF or reset), reading whatever it sends; the time
/// it took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut sink = Vec::new();
    // EOF or a reset: either way closed.
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut sink))
        .await
        .expect("the server closes the connection");
    start.elapsed()
}

/// Sends `bytes` one at a time every `pause` until done or the server closes the connection;
/// whether it was closed first.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], pause: Duration) -> bool {
    // A write after the server closed fails once its RST is back: the next byte at the latest.
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        tokio::time::sleep(pause).await;
    }
    false
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_head_deadline() {
    let server = start_with_limits(None, TIGHT).await;
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    let waited = closed_after(&mut silent).await;
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
}

#[tokio::test]
async fn a_trickled_head_is_closed_at_the_head_deadline() {
    let server = start_with_limits(None, TIGHT).await;
    let mut slow = TcpStream::connect(server.address).await.unwrap();
    // One byte per 50 ms keeps the 60 s idle timeout away forever; the head deadline does not
    // move with each byte.
    let head = [b"GET /status HTTP/1.1\r\nX-Slow: ".as_slice(), &[b'a'; 200]].concat();
    let start = Instant::now();
    assert!(
        trickle(&mut slow, &head, Duration::from_millis(50)).await,
        "the server closed the trickling connection while it was still sending"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_trickled_body_is_refused_at_the_body_deadline() {
    let server = start_with_limits(None, TIGHT).await;
    let mut slow = TcpStream::connect(server.address).await.unwrap();
    slow.write_all(
        b"POST /api/v1/instances/api/maintenance HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let closed = trickle(&mut slow, &[b' '; 199], Duration::from_millis(50)).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed || answer.starts_with("HTTP/1.1 400"),
        "the body deadline did not act: {answer}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(server.node.actions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn at_the_cap_the_connection_waiting_longest_makes_room() {
    let server = start_with_limits(None, LENIENT).await;
    let mut oldest = TcpStream::connect(server.address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut younger = TcpStream::connect(server.address).await.unwrap();
    younger.write_all(b"GET /st").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Both slots are held for 60 s; the newcomer is served at once all the same.
    let reply = tokio::time::timeout(
        Duration::from_secs(1),
        request(server.address, "GET", "/status", &[], b""),
    )
    .await
    .expect("served without waiting for the holders' deadlines");
    assert_eq!(reply.status, 200);
    closed_after(&mut oldest).await;
    // The younger one still has its slot: the rest of its request is answered.
    younger
        .write_all(b"atus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    younger.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// A node whose maintenance action waits until released, to hold a request in its handler.
#[derive(Default)]
struct SlowNode {
    entered: Notify,
    release: Notify,
}

impl Control for SlowNode {
    fn status(&self) -> NodeStatus {
        sample_status()
    }

    async fn server_action(&self, _: &str, _: &str, _: ServerAction) -> Result<(), ActionError> {
        Ok(())
    }

    async fn maintenance(&self, _: &str, _: bool) -> Result<(), ActionError> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(())
    }

    fn sessions(
        &self,
        _: &str,
        _: Option<&str>,
    ) -> Result<Vec<crate::control::SessionStatus>, ActionError> {
        Ok(Vec::new())
    }

    fn kill_sessions(
        &self,
        _: &str,
        _: &str,
        _: vipd_proxy::SessionFilter,
    ) -> Result<usize, ActionError> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_connection_being_answered_is_not_closed_to_make_room() {
    let node = Arc::new(SlowNode::default());
    let server = bind("127.0.0.1:0".parse().unwrap(), None, Arc::clone(&node))
        .unwrap()
        .with_limits(ConnectionLimits {
            max_connections: 1,
            ..LENIENT
        });
    let address = server.local_addr();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let body = br#"{"enabled": true}"#;
    let path = "/api/v1/instances/api/maintenance";
    let busy = tokio::spawn(request(address, "POST", path, &[], body));
    tokio::time::timeout(PATIENCE, node.entered.notified())
        .await
        .expect("the action started");
    let waiting = tokio::spawn(request(address, "GET", "/status", &[], b""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the only slot is answering");
    assert!(!busy.is_finished(), "the answer in progress was cut");
    node.release.notify_one();
    let answered = tokio::time::timeout(PATIENCE, busy).await.unwrap().unwrap();
    assert_eq!(answered.status, 200);
    let served = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("served once the answer is done")
        .unwrap();
    assert_eq!(served.status, 200);
}

/// Keeps one client connected to `address` until `stop`: it connects, sends its head one byte
/// per `pause` (never, with `None`), and connects again whenever the server closes it.
async fn slow_client(address: SocketAddr, pause: Option<Duration>, stop: Arc<AtomicBool>) {
    let head = [
        b"GET /status HTTP/1.1\r\nX-Slow: ".as_slice(),
        &[b'a'; 4000],
    ]
    .concat();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if let Some(pause) = pause {
            let _ = trickle(&mut stream, &head, pause).await;
        } else {
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    }
}

/// 64 silent clients used to lock `/status` out for 30 s, and byte-a-second ones for
/// up to 5 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slow_clients_do_not_lock_out_status_or_the_admin_api() {
    let server = start_with_limits(None, ConnectionLimits::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for index in 0..200 {
        let pause = (index % 2 == 0).then_some(Duration::from_secs(1));
        clients.push(tokio::spawn(slow_client(
            server.address,
            pause,
            Arc::clone(&stop),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut longest = Duration::ZERO;
    for round in 0..10 {
        let start = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(1),
            request(server.address, "GET", "/status", &[], b""),
        )
        .await
        .unwrap_or_else(|_| panic!("/status not answered within 1 s (round {round})"));
        assert_eq!(reply.status, 200);
        longest = longest.max(start.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = br#"{"enabled": true}"#;
    let action = tokio::time::timeout(
        Duration::from_secs(1),
        request(
            server.address,
            "POST",
            "/api/v1/instances/api/maintenance",
            &[],
            body,
        ),
    )
    .await
    .expect("the admin API answers within 1 s");
    assert_eq!(action.status, 200);
    println!("200 slow clients: the longest /status took {longest:?}");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.abort();
    }
}

#[tokio::test]
async fn a_busy_client_is_closed_at_the_end_of_its_lifetime() {
    let server = start_with_limits(
        None,
        ConnectionLimits {
            max_lifetime: Duration::from_millis(600),
            ..LENIENT
        },
    )
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let start = Instant::now();
    // Keep-alive requests, one after the other, each well within every deadline.
    let mut closed = false;
    while start.elapsed() < PATIENCE {
        if stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(closed && start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stuck_client() {
    let node = Arc::new(FakeNode::default());
    let server = bind("127.0.0.1:0".parse().unwrap(), None, node)
        .unwrap()
        .with_limits(LENIENT);
    let address = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // Half a request: hyper waits for the rest, which never comes.
    let mut stuck = TcpStream::connect(address).await.unwrap();
    stuck.write_all(b"GET /status HTTP/1.1\r\n").await.unwrap();
    let reply = request(address, "GET", "/status", &[], b"").await;
    assert_eq!(
        reply.status, 200,
        "the server is up and has accepted the stuck client"
    );
    stop.send(()).unwrap();
    let result = tokio::time::timeout(PATIENCE, running)
        .await
        .expect("run() returns after the grace period despite the stuck client");
    assert!(result.unwrap().is_ok());
    drop(stuck);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start_with_limits(None, ConnectionLimits::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0_u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0_u8; length];
        stream.read_exact(&mut body).await.unwrap();
        let _: NodeStatus = serde_json::from_slice(&body).unwrap();
    }
}
