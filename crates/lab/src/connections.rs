//! A client that opens one connection after another to a target, from a lab namespace, and
//! records each: when it started, how long it took, what it got. For counting which node served
//! and how many connections failed while something changed (a withdrawal, a drain, a kill).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::LabError;
use crate::routed::{Place, RoutedLab};

/// What a [`ConnectionLoop`] does; every loop is bounded in count and in time.
#[derive(Debug, Clone)]
pub struct ConnectionPlan {
    pub target: SocketAddr,
    /// From the start of one connection to the start of the next (the next starts at once when
    /// one took longer).
    pub interval: Duration,
    /// At most this many connections.
    pub max_connections: usize,
    /// No connection starts after this much time.
    pub max_duration: Duration,
    /// Bound on connecting and on reading the reply, each.
    pub timeout: Duration,
}

impl ConnectionPlan {
    /// `count` connections to `target` back to back, 2 s timeouts, at most a minute.
    pub fn back_to_back(target: SocketAddr, count: usize) -> Self {
        Self {
            target,
            interval: Duration::ZERO,
            max_connections: count,
            max_duration: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        }
    }

    /// A new connection every `interval` until stopped, at most `max_duration`.
    pub fn every(target: SocketAddr, interval: Duration, max_duration: Duration) -> Self {
        Self {
            target,
            interval,
            max_connections: usize::MAX,
            max_duration,
            timeout: Duration::from_secs(2),
        }
    }
}

/// One connection: connect, read until the server closes, the reply's first line is the answer.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it started.
    pub started: Instant,
    /// From the start to the end of the reply (or the error).
    pub took: Duration,
    /// The reply's first line (the backend's name in a [`RoutedLab`]), or what went wrong. A
    /// connection that closed without a reply failed.
    pub outcome: Result<String, String>,
}

impl Attempt {
    /// When it ended.
    pub fn ended(&self) -> Instant {
        self.started + self.took
    }

    /// Whether the connection was in flight at any time between `from` and `to`.
    pub fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.started <= to && self.ended() >= from
    }
}

/// Every connection of a loop, in order.
#[derive(Debug, Clone, Default)]
pub struct ConnectionReport {
    pub attempts: Vec<Attempt>,
}

impl ConnectionReport {
    pub fn attempted(&self) -> usize {
        self.attempts.len()
    }

    pub fn failures(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(|attempt| attempt.outcome.is_err())
    }

    pub fn failed(&self) -> usize {
        self.failures().count()
    }

    /// The longest connection (a dropped SYN shows as about a second).
    pub fn longest(&self) -> Duration {
        self.attempts
            .iter()
            .map(|attempt| attempt.took)
            .max()
            .unwrap_or_default()
    }

    /// How many connections each answer got (each node, in a [`RoutedLab`]).
    pub fn answers(&self) -> BTreeMap<String, usize> {
        let mut answers = BTreeMap::new();
        for attempt in &self.attempts {
            if let Ok(answer) = &attempt.outcome {
                *answers.entry(answer.clone()).or_insert(0) += 1;
            }
        }
        answers
    }

    /// The connections that started at or after `instant`.
    pub fn since(&self, instant: Instant) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(move |attempt| attempt.started >= instant)
    }
}

impl std::fmt::Display for ConnectionReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "attempted {}, failed {}, longest {:?}, answers {:?}",
            self.attempted(),
            self.failed(),
            self.longest(),
            self.answers()
        )?;
        for failure in self.failures().take(5) {
            if let Err(error) = &failure.outcome {
                write!(formatter, "; failure after {:?}: {error}", failure.took)?;
            }
        }
        Ok(())
    }
}

/// A running loop of connections on a thread in a lab namespace; [`ConnectionLoop::stop`] or
/// [`ConnectionLoop::finish`] returns its report.
#[derive(Debug)]
pub struct ConnectionLoop {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<ConnectionReport, LabError>>,
}

impl ConnectionLoop {
    /// Starts `plan` from `place` (usually [`Place::Client`]) of `lab`.
    pub fn start(lab: &RoutedLab, place: Place, plan: ConnectionPlan) -> Result<Self, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = lab.spawn_in_namespace(place, move || run(&plan, &flag))?;
        Ok(Self { stop, thread })
    }

    /// Runs `plan` from `place` to its end (count or time) and returns the report.
    pub fn run(
        lab: &RoutedLab,
        place: Place,
        plan: ConnectionPlan,
    ) -> Result<ConnectionReport, LabError> {
        Self::start(lab, place, plan)?.finish()
    }

    /// Asks the loop to start no further connection; returns once the current one is done.
    pub fn stop(self) -> Result<ConnectionReport, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    /// Waits for the loop to reach its count or time bound.
    pub fn finish(self) -> Result<ConnectionReport, LabError> {
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn run(plan: &ConnectionPlan, stop: &AtomicBool) -> ConnectionReport {
    let begin = Instant::now();
    let mut report = ConnectionReport::default();
    while report.attempts.len() < plan.max_connections
        && begin.elapsed() < plan.max_duration
        && !stop.load(Ordering::Relaxed)
    {
        let started = Instant::now();
        let outcome = connect_once(plan.target, plan.timeout);
        report.attempts.push(Attempt {
            started,
            took: started.elapsed(),
            outcome,
        });
        if let Some(rest) = plan.interval.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    report
}

fn connect_once(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|error| error.to_string())?;
    let mut reply = Vec::new();
    let read = stream.read_to_end(&mut reply);
    // A reset after the reply (the close raced the client's last ACK) still served the client.
    let answer = String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .map(str::to_owned)
        .filter(|line| !line.is_empty());
    match (answer, read) {
        (Some(answer), _) => Ok(answer),
        (None, Ok(_)) => Err("closed without a reply".into()),
        (None, Err(error)) => Err(format!("read: {error}")),
    }
}
