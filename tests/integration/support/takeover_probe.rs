//! Measuring a failover from the outside: the protocol's timers, and when a client first connects
//! through the VIP again. When an address appears on (or leaves) a host is `vipd_lab::AddressWatch`.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vipd_lab::{Lab, LabError};

/// VRRPv3 Skew_Time (RFC 9568 6.1): (256 − priority) × interval / 256.
pub fn skew_time(priority: u8, interval: Duration) -> Duration {
    interval * (256 - u32::from(priority)) / 256
}

/// VRRPv3 Master_Down_Interval (RFC 9568 6.1): 3 × interval + Skew_Time.
pub fn master_down_interval(priority: u8, interval: Duration) -> Duration {
    interval * 3 + skew_time(priority, interval)
}

/// A client in a lab host that, once told to go, connects to `target` again and again (short
/// connect timeouts, as a client retrying would) and reports the first connect that succeeded
/// whose server then answered with text containing `expect`.
pub struct ConnectProbe {
    go: mpsc::Sender<()>,
    handle: JoinHandle<Result<Option<Instant>, LabError>>,
}

/// One connect attempt's limit: the probe's resolution when SYNs go nowhere.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(20);

impl ConnectProbe {
    pub fn new(
        lab: &Lab,
        host: usize,
        target: SocketAddr,
        expect: &'static str,
        timeout: Duration,
    ) -> Self {
        let (go, started) = mpsc::channel::<()>();
        let handle = lab
            .spawn_in_host(host, move || {
                started.recv().ok()?;
                let deadline = Instant::now() + timeout;
                while Instant::now() < deadline {
                    let Ok(mut stream) = TcpStream::connect_timeout(&target, PROBE_CONNECT_TIMEOUT)
                    else {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let connected = Instant::now();
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut text = String::new();
                    if stream.read_to_string(&mut text).is_ok() && text.contains(expect) {
                        return Some(connected);
                    }
                }
                None
            })
            .expect("probe thread");
        Self { go, handle }
    }

    /// Starts connecting.
    pub fn go(&self) {
        self.go.send(()).expect("probe thread waits");
    }

    /// When the first good connect succeeded, or `None` if none did in time.
    pub fn wait(self) -> Option<Instant> {
        self.handle
            .join()
            .expect("probe thread")
            .expect("in lab host")
    }
}

/// What a retrying client saw over a period of back-to-back requests.
#[derive(Debug, Default)]
pub struct ClientRecord {
    /// Requests answered by a backend.
    pub answered: u32,
    /// Requests that needed more than one attempt, with what went wrong the first time.
    pub retried: Vec<String>,
    /// Requests that failed every attempt within the retry budget: errors the client sees.
    pub errors: Vec<String>,
    /// The longest time between two answered requests.
    pub longest_gap: Duration,
}

/// One request: connect, then read the whole answer.
fn request(target: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// Runs requests to `target` from `host` for `duration`, back to back, as a client with a retry
/// policy does: an attempt that fails (no connect or no answer within `attempt_timeout`, a refused
/// or reset connection, a wrong answer) is retried until `retry_for` has passed since the
/// request began; only then is it an error. A connection caught in flight at the moment the VIP
/// moves is lost with any VRRP pair; retrying is what makes that invisible.
pub fn retrying_client(
    lab: &Lab,
    host: usize,
    target: SocketAddr,
    expect: &'static str,
    duration: Duration,
    attempt_timeout: Duration,
    retry_for: Duration,
) -> JoinHandle<Result<ClientRecord, LabError>> {
    lab.spawn_in_host(host, move || {
        let mut record = ClientRecord::default();
        let end = Instant::now() + duration;
        let mut last_answer = Instant::now();
        while Instant::now() < end {
            let started = Instant::now();
            let mut first_failure = None;
            loop {
                let failure = match request(target, attempt_timeout) {
                    Ok(text) if text.contains(expect) => {
                        record.answered += 1;
                        record.longest_gap = record.longest_gap.max(last_answer.elapsed());
                        last_answer = Instant::now();
                        break;
                    }
                    Ok(text) => format!("unexpected answer {text:?}"),
                    Err(error) => error.to_string(),
                };
                if started.elapsed() >= retry_for {
                    record.errors.push(failure);
                    break;
                }
                first_failure.get_or_insert(failure);
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(failure) = first_failure {
                record.retried.push(failure);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        record
    })
    .expect("client thread")
}
