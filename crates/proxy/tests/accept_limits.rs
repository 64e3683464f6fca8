//! Accept under fd exhaustion (EMFILE): the listener backs off instead of spinning, and recovers.
//! Alone in its test binary (not a module of tests/integration) because it lowers the process's fd
//! limit, which would starve the tests running beside it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "integration/test_servers/mod.rs"]
mod test_servers;

use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use test_servers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vipd_proxy::Proxy;

/// Restores the fd limit when the test ends, also on failure.
struct FdLimitGuard {
    soft: u64,
    hard: u64,
}

impl Drop for FdLimitGuard {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, self.soft, self.hard);
    }
}

/// The tests lower the fd limit of the whole process: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Lowers the fd limit and takes every free fd but `spare`; the guard restores the limit, and
/// dropping the files frees them.
fn exhaust_fds_but(spare: usize) -> (FdLimitGuard, Vec<std::fs::File>) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let restore = FdLimitGuard { soft, hard };
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 64, hard).unwrap();
    let mut filler = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        filler.push(file);
        assert!(filler.len() < 10_000, "fd limit not effective");
    }
    filler.truncate(filler.len() - spare);
    (restore, filler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emfile_on_accept_backs_off_and_recovers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Proxy::start(single(&[("e", echo.address)])).await.unwrap();
    let front = frontend_address(&proxy, "front");
    assert_eq!(echo_once(front, b"warm").await.unwrap(), b"warm");

    // Every free fd taken but one, for the client's socket.
    let (_restore, filler) = exhaust_fds_but(1);
    let mut client = TcpStream::connect(front).await.unwrap();
    client.write_all(b"after the drought").await.unwrap();

    eventually("accept failed with EMFILE", || {
        proxy.stats().frontends[0].accept_errors >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let errors = proxy.stats().frontends[0].accept_errors;
    // Back-off is 10 ms doubling to 1 s: a handful of retries, where a spinning loop makes
    // hundreds of thousands.
    assert!(errors <= 20, "{errors} accept errors: the loop spins");

    drop(filler);
    client.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, b"after the drought");
}

/// A connect that fails for want of an fd here is not the server's fault: no connect error is
/// counted against it and no retry is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emfile_on_connect_does_not_count_against_the_server() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let echo = EchoServer::start(addr("127.0.0.2:0")).await;
    let proxy = Proxy::start(single(&[("e", echo.address)])).await.unwrap();
    let front = frontend_address(&proxy, "front");
    assert_eq!(echo_once(front, b"warm").await.unwrap(), b"warm");

    // Two fds: the client's socket and the proxy's accepted one; none for the server socket.
    let (_restore, filler) = exhaust_fds_but(2);
    let mut client = TcpStream::connect(front).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, client.read(&mut byte))
        .await
        .expect("the client is closed");
    assert!(matches!(read, Ok(0) | Err(_)));
    drop(filler);
    let stats = proxy.stats();
    let server = server_stats(&stats, "back", "e");
    assert_eq!(server.connect_errors, 0, "the server is not to blame");
    assert_eq!(
        stats.backends[0].retries, 0,
        "no retry spent on a local shortage"
    );
}
