//! Timing a failover from outside the daemons: when the backup's kernel gains the VIP
//! (`vipd_lab::AddressWatch` in its namespace), when a client's TCP connect through the VIP first succeeds
//! (a fresh connect every 0.5 ms from the client's namespace), and a trigger that fires right after
//! the master's advert reaches the backup, so every run fails the master at the same phase of its
//! advert cycle and implementations are compared at equal footing.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vipd_lab::{Lab, LabError};

use vipd_net::{DeadlineTimer, Family, Mode, VrrpSocket, VrrpSocketConfig, VrrpTransport};

/// A thread's result: `None` when what it waited for did not happen in time.
pub type Watch = JoinHandle<Result<Option<Instant>, LabError>>;

/// How often the client starts a new connect, and how long one may take. The grid is the
/// resolution of the client-side measurement: at 2 ms it hid sub-millisecond differences
/// between implementations and tied the result to the phase of the first attempt.
const CONNECT_EVERY: Duration = Duration::from_micros(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// From `host`, once `go` fires: a new TCP connect to `target` every 0.5 ms (each bounded by
/// 200 ms) until one succeeds; reports when. Short attempts matter: a SYN lost to a dead master
/// would otherwise wait out TCP's 1 s retransmission timer.
pub fn connect_when_told(
    lab: &Lab,
    host: usize,
    target: SocketAddr,
    go: mpsc::Receiver<()>,
    timeout: Duration,
) -> Watch {
    lab.spawn_in_host(host, move || {
        go.recv_timeout(Duration::from_secs(30)).ok()?;
        runtime().block_on(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut attempts = tokio::task::JoinSet::new();
            // tokio's interval ticks in whole milliseconds; a timerfd keeps the 0.5 ms grid.
            let mut tick = DeadlineTimer::new().expect("timerfd");
            let mut next_attempt = Instant::now();
            loop {
                tokio::select! {
                    ticked = tick.sleep_until(next_attempt) => {
                        ticked.expect("timerfd");
                        // Behind after a stall: no burst of catch-up attempts.
                        next_attempt = (next_attempt + CONNECT_EVERY).max(Instant::now());
                        if tokio::time::Instant::now() > deadline {
                            return None;
                        }
                        attempts.spawn(tokio::time::timeout(
                            CONNECT_TIMEOUT,
                            tokio::net::TcpStream::connect(target),
                        ));
                    }
                    Some(attempt) = attempts.join_next() => {
                        if matches!(attempt, Ok(Ok(Ok(_)))) {
                            return Some(Instant::now());
                        }
                    }
                }
            }
        })
    })
    .expect("client thread")
}

/// Fires `then` right after an IPv4 multicast advert from `source` reaches `host`.
pub fn after_advert_from(
    lab: &Lab,
    host: usize,
    source: IpAddr,
    timeout: Duration,
    then: mpsc::Sender<()>,
) -> Watch {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = lab
        .spawn_in_host(host, move || {
            runtime().block_on(async move {
                let socket = VrrpSocket::open(VrrpSocketConfig {
                    interface: vipd_lab::HOST_INTERFACE.into(),
                    family: Family::Ipv4,
                    mode: Mode::Multicast,
                })
                .expect("VRRP socket");
                let _ = ready_tx.send(());
                let seen = async {
                    loop {
                        if let Ok(advert) = socket.recv().await
                            && advert.source == source
                        {
                            let at = Instant::now();
                            let _ = then.send(());
                            return at;
                        }
                    }
                };
                tokio::time::timeout(timeout, seen).await.ok()
            })
        })
        .expect("advert thread");
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("VRRP socket open");
    handle
}

/// Joins a watch thread: the instant it saw its event, if any.
pub fn seen(watch: Watch) -> Option<Instant> {
    watch.join().ok()?.ok()?
}
