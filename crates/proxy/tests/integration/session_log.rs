//! The session log on real connections: the line of a normal session, of a refusal, of a server
//! reset, of timeouts on either side and of cut sessions, and the rate limit on refusal lines. Lines are captured
//! by a tracing layer installed once for the whole test binary; each test names its frontend, and
//! reads only the lines of that frontend.

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use vipd_proxy::{
    HealthCheckConfig, HealthCheckKind, OnServerDown, Proxy, ProxyConfig, REFUSAL_LOG_PERIOD,
    SESSION_LOG_TARGET, Timeouts,
};

type Line = BTreeMap<String, String>;

static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());

/// Keeps every event of the session log's target, as field name → text.
struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != SESSION_LOG_TARGET {
            return;
        }
        let mut line = Fields(Line::new());
        event.record(&mut line);
        LINES.lock().unwrap().push(line.0);
    }
}

struct Fields(Line);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn lines_of(frontend: &str) -> Vec<Line> {
    let lines = LINES.lock().unwrap();
    let of_frontend = lines.iter().filter(|line| line["frontend"] == frontend);
    of_frontend.cloned().collect()
}

/// Waits until `frontend` has logged `count` lines, and returns them.
async fn logged(frontend: &str, count: usize) -> Vec<Line> {
    eventually(&format!("{count} session lines of {frontend}"), || {
        lines_of(frontend).len() >= count
    })
    .await;
    lines_of(frontend)
}

/// [`single`] with its frontend renamed, so that its lines are told from other tests' lines.
async fn proxy_named(frontend: &str, mut config: ProxyConfig) -> (Proxy, std::net::SocketAddr) {
    capture();
    frontend.clone_into(&mut config.frontends[0].name);
    let proxy = Proxy::start(config).await.unwrap();
    let address = frontend_address(&proxy, frontend);
    (proxy, address)
}

fn number(line: &Line, field: &str) -> i64 {
    line[field].parse().unwrap()
}

/// Reads until the proxy closes the connection (EOF or reset).
async fn until_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_with_fin_is_logged_with_server_times_and_bytes() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let (_proxy, front) = proxy_named("log-closed", single(&[("e1", echo.address)])).await;
    let mut client = TcpStream::connect(front).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    client.read_exact(&mut echoed).await.unwrap();
    client.write_all(b"!!").await.unwrap();
    client.shutdown().await.unwrap();
    until_closed(&mut client).await;

    let lines = logged("log-closed", 1).await;
    let line = &lines[0];
    assert_eq!(line["message"], "session end");
    assert_eq!(line["client"], client.local_addr().unwrap().to_string());
    assert_eq!(line["via"], "-");
    assert_eq!(line["backend"], "back");
    assert_eq!(line["server"], "e1");
    assert_eq!(line["termination"], "closed");
    assert_eq!(line["state"], "--");
    assert_eq!(number(line, "bytes_in"), 7);
    assert_eq!(number(line, "bytes_out"), 7);
    assert_eq!(number(line, "retries"), 0);
    let (queue, connect, total) = (
        number(line, "queue_ms"),
        number(line, "connect_ms"),
        number(line, "total_ms"),
    );
    assert!(
        queue >= 0 && connect >= 0 && total >= queue + connect,
        "{line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_named_by_a_proxy_header_is_the_one_logged() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e1", echo.address)]);
    config.frontends[0].accept_proxy = true;
    let (_proxy, front) = proxy_named("log-proxied", config).await;
    let mut client = TcpStream::connect(front).await.unwrap();
    client
        .write_all(b"PROXY TCP4 198.51.100.7 203.0.113.5 4242 443\r\nhi")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    until_closed(&mut client).await;

    let line = &logged("log-proxied", 1).await[0];
    assert_eq!(line["client"], "198.51.100.7:4242");
    assert_eq!(line["via"], client.local_addr().unwrap().to_string());
    assert_eq!(number(line, "bytes_in"), 2, "the header is not payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_a_usable_server_is_logged_as_refused() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let (proxy, front) = proxy_named("log-no-server", single(&[("e1", echo.address)])).await;
    proxy.disable_server("back", "e1").unwrap();
    let mut client = TcpStream::connect(front).await.unwrap();
    until_closed(&mut client).await;

    let line = &logged("log-no-server", 1).await[0];
    assert_eq!(line["message"], "session refused");
    assert_eq!(line["client"], client.local_addr().unwrap().to_string());
    assert_eq!(line["termination"], "no_server");
    assert_eq!(line["state"], "SC");
    assert_eq!(line["server"], "-");
    assert_eq!(number(line, "connect_ms"), -1, "no connection was tried");
    assert_eq!(number(line, "suppressed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_every_attempt_is_logged_with_its_retries() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let (_proxy, front) = proxy_named("log-refused", single(&[("d1", dead)])).await;
    let mut client = TcpStream::connect(front).await.unwrap();
    until_closed(&mut client).await;

    let line = &logged("log-refused", 1).await[0];
    assert_eq!(line["termination"], "connect_refused");
    assert_eq!(line["state"], "SC");
    assert_eq!(line["server"], "d1");
    assert_eq!(number(line, "retries"), 3, "the default retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reset_is_logged_as_the_servers() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 7];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(b"partial").await.unwrap();
        // Linger 0: the close sends RST.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let (_proxy, front) = proxy_named("log-server-reset", single(&[("r1", server_address)])).await;
    let mut client = TcpStream::connect(front).await.unwrap();
    client.write_all(b"request").await.unwrap();
    until_closed(&mut client).await;

    let line = &logged("log-server-reset", 1).await[0];
    assert_eq!(line["termination"], "server_reset", "{line:?}");
    assert_eq!(line["state"], "SD");
    assert_eq!(number(line, "bytes_in"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_and_a_silent_server_are_told_apart() {
    // The server reads and never answers.
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    let mut config = single(&[("mute", server_address)]);
    config.backends[0].timeout = Timeouts {
        idle: Duration::from_millis(500),
        ..Timeouts::default()
    };
    let (_proxy, front) = proxy_named("log-timeouts", config).await;
    let mut silent = TcpStream::connect(front).await.unwrap();
    let mut asking = TcpStream::connect(front).await.unwrap();
    asking.write_all(b"anyone?").await.unwrap();
    until_closed(&mut silent).await;
    until_closed(&mut asking).await;

    let lines = logged("log-timeouts", 2).await;
    let of = |client: &TcpStream| {
        let address = client.local_addr().unwrap().to_string();
        lines.iter().find(|line| line["client"] == address).unwrap()
    };
    let silent = of(&silent);
    assert_eq!(silent["termination"], "client_timeout", "{silent:?}");
    assert_eq!(silent["state"], "cD");
    assert_eq!(silent["detail"], "idle timeout");
    let asking = of(&asking);
    assert_eq!(asking["termination"], "server_timeout", "{asking:?}");
    assert_eq!(asking["state"], "sD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_clients_fin_a_server_that_never_closes_is_the_silent_one() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let server_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        tokio::time::sleep(Duration::from_secs(300)).await;
    });
    let mut config = single(&[("open", server_address)]);
    config.backends[0].timeout = Timeouts {
        fin: Some(Duration::from_millis(500)),
        ..Timeouts::default()
    };
    let (_proxy, front) = proxy_named("log-fin", config).await;
    let mut client = TcpStream::connect(front).await.unwrap();
    client.write_all(b"bye").await.unwrap();
    client.shutdown().await.unwrap();
    until_closed(&mut client).await;

    let line = &logged("log-fin", 1).await[0];
    assert_eq!(line["termination"], "server_timeout", "{line:?}");
    assert_eq!(line["state"], "sD");
    assert_eq!(line["detail"], "fin timeout");
}

/// Opens a session through `front` to an echo server and checks that it is forwarding.
async fn open_session(front: std::net::SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(front).await.unwrap();
    ping(&mut client).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cut_by_the_drain_deadline_are_logged_as_shutdown() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let (proxy, front) = proxy_named("log-shutdown", single(&[("e1", echo.address)])).await;
    let mut client = open_session(front).await;
    proxy.shutdown(Duration::from_millis(100)).await;
    until_closed(&mut client).await;

    let line = &logged("log-shutdown", 1).await[0];
    assert_eq!(line["termination"], "shutdown", "{line:?}");
    assert_eq!(line["state"], "KD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cut_because_their_server_went_down_say_so() {
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let mut config = single(&[("e1", echo.address)]);
    let mut health = HealthCheckConfig::new(HealthCheckKind::Tcp);
    health.interval = Duration::from_millis(100);
    health.fall = 1;
    health.initially_up = true;
    config.backends[0].health = Some(health);
    config.backends[0].on_server_down = OnServerDown::ShutdownSessions;
    let (_proxy, front) = proxy_named("log-server-down", config).await;
    let mut client = open_session(front).await;
    // No more listener: the next check fails, and the server's sessions are cut.
    echo.stop();
    until_closed(&mut client).await;

    let line = &logged("log-server-down", 1).await[0];
    assert_eq!(line["termination"], "server_down", "{line:?}");
    assert_eq!(line["state"], "DD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_lines_are_rate_limited_and_count_what_they_left_out() {
    const REFUSALS: i64 = 20;
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let (proxy, front) = proxy_named("log-flood", single(&[("e1", echo.address)])).await;
    proxy.disable_server("back", "e1").unwrap();
    let started = std::time::Instant::now();
    for _ in 0..REFUSALS {
        let mut client = TcpStream::connect(front).await.unwrap();
        until_closed(&mut client).await;
    }
    // One more after a full period: its line is due, and counts the ones left out.
    tokio::time::sleep(REFUSAL_LOG_PERIOD + Duration::from_millis(100)).await;
    let mut last = TcpStream::connect(front).await.unwrap();
    until_closed(&mut last).await;
    let elapsed = started.elapsed();

    let lines = logged("log-flood", 2).await;
    let periods = usize::try_from(elapsed.as_millis() / REFUSAL_LOG_PERIOD.as_millis()).unwrap();
    assert!(
        lines.len() <= periods + 1,
        "{} lines in {elapsed:?}",
        lines.len()
    );
    let left_out: i64 = lines.iter().map(|line| number(line, "suppressed")).sum();
    assert_eq!(
        i64::try_from(lines.len()).unwrap() + left_out,
        REFUSALS + 1,
        "each refusal is either logged or counted: {lines:?}"
    );
    assert_eq!(number(&lines[0], "suppressed"), 0);
    assert_eq!(
        lines.last().unwrap()["client"],
        last.local_addr().unwrap().to_string()
    );
}
