//! Backpressure through the real daemon: one session carries 1 GiB each way at the
//! same time to peers that read at 20 MiB/s, and vipd holds no more than its socket buffers and
//! one pipe per direction. The bytes arrive intact (SHA-256 on both ends), the client's FIN
//! passes through while the download still runs, and the server's FIN follows its last byte.
//!
//! What a slow reader may make vipd hold (crates/proxy/src/forward.rs): a buffered direction
//! copies at most 16 KiB a read into user space, and a splicing one holds what its pipe holds, at
//! most `pipes::MAX_CAPACITY` (1 MiB), in kernel memory. So, sampled every 100 ms:
//! - vipd's resident memory grows by at most [`RSS_GROWTH_LIMIT`] over the whole transfer;
//! - per direction, bytes the writer handed to its socket minus bytes the reader read (what the
//!   path holds) stay within the socket buffers on the path, as `ss` reports them, plus
//!   [`PIPE_CAPACITY`] plus [`SLACK`]: this one also sees bytes a proxy would hoard in kernel
//!   memory (pipes), which VmRSS does not;
//! - vipd's pipes grow by at most [`GROWN_PIPES_LIMIT`] (`vipd_proxy_pipe_grown_bytes`).
//!
//! A proxy that reads on without waiting for its destination breaks a bound at the first
//! sample, and the test cuts the transfer there (docs/benchmarks.md, Backpressure). The test
//! takes about 52 s but little CPU (its readers mostly sleep), so it runs beside the others.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ring::digest::{Context, Digest, SHA256};
use vipd_lab::{Lab, LabError, LabProcess};

use crate::support::{
    Scratch, control_get, start_backend, start_vipd, status, wait_for_control, wait_until,
};

/// vipd's host.
const NODE: usize = 0;
/// The client's and the backend server's host.
const PEERS: usize = 1;
const FRONTEND_PORT: u16 = 80;
const SERVER_PORT: u16 = 8080;
/// Health checks go to their own port, so that the server's listener sees only the session.
const CHECK_PORT: u16 = 8081;

/// Bytes each way.
const TOTAL: u64 = 1 << 30;
/// The stream is sent in blocks of one pseudo-random megabyte, each starting with its number.
const BLOCK: usize = 1 << 20;
const BLOCKS: u64 = TOTAL / BLOCK as u64;
/// Blocks the server sends only after the upload ended: a second at the read rate.
const HELD_BACK: u64 = 20;
const HELD_BACK_FROM: u64 = BLOCKS - HELD_BACK;
/// Both readers: at most this many bytes a second, at most [`READ_CHUNK`] a read.
const READ_RATE: u64 = 20 << 20;
const READ_CHUNK: usize = 64 << 10;
/// How far a reader that waited for data may read ahead of the rate: 2 MiB.
const READ_BURST: Duration = Duration::from_millis(100);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// 51 s at the read rate; more means a stall.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(150);

/// vipd's own memory per session is a 16 KiB copy per direction (plus the thread's 16 KiB
/// scratch buffer, in use since the session's first read): 48 KiB. Payload in pipes and socket
/// buffers is kernel memory, outside VmRSS. 4 MiB leaves room for the allocator's granularity
/// and the odd timer or log line (0.2–0.3 MiB measured), and is a 256th of the 1 GiB a proxy
/// without backpressure may end up holding.
const RSS_GROWTH_LIMIT: u64 = 4 << 20;
/// crates/proxy/src/pipes.rs, `MAX_CAPACITY`: the most a direction's pipe grows to.
const PIPE_CAPACITY: u64 = 1 << 20;
/// What the buffers do not count: each of the four sockets may take one segment (64 KiB with
/// GSO) past its buffer; a reader counts a read after the kernel handed it over (one
/// [`READ_CHUNK`]); the buffered path's 16 KiB copy. 352 KiB, rounded up.
const SLACK: u64 = 512 << 10;
/// What vipd's pipes may hold beyond their base 64 KiB (`vipd_proxy_pipe_grown_bytes`): the
/// session's two directions, each grown at most to [`PIPE_CAPACITY`].
const GROWN_PIPES_LIMIT: u64 = 2 * (PIPE_CAPACITY - (64 << 10));

fn config(node: SocketAddr, server: SocketAddr) -> String {
    format!(
        "node: lb1
frontends:
  - {{ name: bulk, bind: [\"{node}\"], backend: bulk }}
backends:
  - name: bulk
    health: {{ kind: tcp, port: {CHECK_PORT}, interval: 200ms, rise: 1 }}
    servers:
      - {{ name: b1, address: \"{server}\" }}
"
    )
}

/// One direction's progress, shared by its writer, its reader and the sampler.
#[derive(Default)]
struct Flow {
    /// Bytes the writer's socket took.
    written: AtomicU64,
    /// Bytes the reader read.
    read: AtomicU64,
}

impl Flow {
    /// Bytes between the writer and the reader. `written` first: a write counted after this
    /// load is not in it, so the value errs low, never high, by what moves meanwhile.
    fn in_flight(&self) -> u64 {
        let written = self.written.load(Ordering::Relaxed);
        written.saturating_sub(self.read.load(Ordering::Relaxed))
    }
}

/// What a reader got: bytes until end of stream, and their digest.
#[derive(Debug)]
struct Received {
    bytes: u64,
    digest: Digest,
    /// When end of stream came.
    ended: Instant,
}

/// One pseudo-random megabyte from `seed` (xorshift64): not zeros, and different per direction.
fn block_of(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut block = Vec::with_capacity(BLOCK);
    while block.len() < BLOCK {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block
}

/// Writes block `index` of the stream whole, counting and hashing what the socket takes.
fn write_block(
    mut stream: &TcpStream,
    block: &mut [u8],
    index: u64,
    flow: &Flow,
    hash: &mut Context,
) -> io::Result<()> {
    // The block's number: a block lost, repeated or swapped changes the digest even though
    // every block is the same megabyte otherwise.
    block[..8].copy_from_slice(&index.to_le_bytes());
    let mut rest = &block[..];
    while !rest.is_empty() {
        let written = stream.write(rest)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        hash.update(&rest[..written]);
        flow.written.fetch_add(written as u64, Ordering::Relaxed);
        rest = &rest[written..];
    }
    Ok(())
}

/// Sends the stream of `seed`, [`TOTAL`] bytes, as fast as the socket takes them; calls `wait`
/// before block `wait_before` (past the last block: never). Returns the digest of what was sent.
fn send(
    stream: &TcpStream,
    seed: u64,
    flow: &Flow,
    (wait_before, wait): (u64, impl FnOnce()),
) -> io::Result<Digest> {
    let mut block = block_of(seed);
    let mut hash = Context::new(&SHA256);
    let mut wait = Some(wait);
    for index in 0..BLOCKS {
        if index == wait_before
            && let Some(wait) = wait.take()
        {
            wait();
        }
        write_block(stream, &mut block, index, flow, &mut hash)?;
    }
    Ok(hash.finish())
}

/// Reads until end of stream at [`READ_RATE`], hashing what it reads. A token bucket: a reader
/// that waited for data may catch up by at most [`READ_BURST`], so that data arriving after a
/// pause is read at the rate too.
fn receive(mut stream: &TcpStream, flow: &Flow) -> io::Result<Received> {
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut hash = Context::new(&SHA256);
    let mut bytes = 0u64;
    let mut due = Instant::now();
    loop {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let read = stream.read(&mut buffer)?;
        let nanos = read as u64 * 1_000_000_000 / READ_RATE;
        let earliest = Instant::now().checked_sub(READ_BURST).unwrap_or(due);
        due = due.max(earliest) + Duration::from_nanos(nanos);
        if read == 0 {
            return Ok(Received {
                bytes,
                digest: hash.finish(),
                ended: Instant::now(),
            });
        }
        hash.update(&buffer[..read]);
        bytes += read as u64;
        flow.read.fetch_add(read as u64, Ordering::Relaxed);
    }
}

/// A stream nobody waits on forever: a stuck transfer fails instead of hanging the test.
fn bounded(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))
}

/// Upload and download of one session, each with its [`Flow`].
#[derive(Default)]
struct Flows {
    upload: Flow,
    download: Flow,
    /// Set by the test to start the transfer, once it has its baseline.
    go: AtomicBool,
    /// The download's bytes read when the upload's end of stream reached the server.
    download_read_at_upload_end: AtomicU64,
}

impl Flows {
    /// Waits for [`Flows::go`]; an error if it does not come (the test failed before).
    fn wait_for_go(&self) -> io::Result<()> {
        let waited = wait_until(Duration::from_secs(30), || self.go.load(Ordering::Relaxed));
        waited
            .map(drop)
            .ok_or_else(|| io::ErrorKind::TimedOut.into())
    }
}

/// What one end saw: the digest of what it sent and what it received.
type EndResult = io::Result<(Digest, Received)>;

/// The backend server: accepts the session, tells the test the socket and vipd's address, then
/// reads the upload and sends the download at once. The download's last [`HELD_BACK`] blocks
/// and its FIN wait for the client's FIN (the upload's end): the upload finishes while the
/// download still runs, for about a second, through a half-closed session.
fn serve(
    listener: &TcpListener,
    flows: &Flows,
    accepted: &mpsc::Sender<(TcpStream, SocketAddr)>,
) -> EndResult {
    let (stream, vipd_side) = listener.accept()?;
    bounded(&stream)?;
    accepted
        .send((stream.try_clone()?, vipd_side))
        .map_err(io::Error::other)?;
    flows.wait_for_go()?;
    let (upload_done, upload_ended) = mpsc::channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let received = receive(&stream, &flows.upload);
            let download_read = flows.download.read.load(Ordering::Relaxed);
            flows
                .download_read_at_upload_end
                .store(download_read, Ordering::Relaxed);
            let _ = upload_done.send(());
            received
        });
        let wait_for_upload = || {
            let _ = upload_ended.recv();
        };
        let sent = send(
            &stream,
            2,
            &flows.download,
            (HELD_BACK_FROM, wait_for_upload),
        )
        .and_then(|digest| stream.shutdown(Shutdown::Write).map(|()| digest));
        let received = reader.join().expect("server reader")?;
        Ok((sent?, received))
    })
}

/// The client: connects through vipd, tells the test its socket, then sends the upload and
/// reads the download at once; half-closes once the upload is sent.
fn client(front: SocketAddr, flows: &Flows, connected: &mpsc::Sender<TcpStream>) -> EndResult {
    let stream = TcpStream::connect_timeout(&front, Duration::from_secs(5))?;
    bounded(&stream)?;
    connected
        .send(stream.try_clone()?)
        .map_err(io::Error::other)?;
    flows.wait_for_go()?;
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| receive(&stream, &flows.download));
        let sent = send(&stream, 1, &flows.upload, (BLOCKS, || {}))
            .and_then(|digest| stream.shutdown(Shutdown::Write).map(|()| digest));
        let received = reader.join().expect("client reader")?;
        Ok((sent?, received))
    })
}

/// A socket's buffer sizes as `ss -m` reports them (`skmem` rb and tb).
#[derive(Debug, Default, Clone, Copy)]
struct Buffers {
    receive: u64,
    send: u64,
}

/// The buffers of every established TCP socket of a host, by local and peer address.
fn socket_buffers(lab: &Lab, host: usize) -> HashMap<(SocketAddr, SocketAddr), Buffers> {
    let out = lab
        .run(host, &["ss", "-tmnH", "state", "established"])
        .unwrap_or_default();
    let mut sockets = HashMap::new();
    let mut addresses = None;
    for line in out.lines() {
        if line.starts_with(char::is_whitespace) {
            if let (Some(key), Some(buffers)) = (addresses.take(), skmem(line)) {
                sockets.insert(key, buffers);
            }
        } else {
            // "Recv-Q Send-Q Local Peer", the state column left out by the filter.
            let mut words = line.split_whitespace().filter_map(|word| word.parse().ok());
            addresses = words.next().zip(words.next());
        }
    }
    sockets
}

/// rb and tb of an `skmem:(r0,rb131072,t0,tb87040,...)` line.
fn skmem(line: &str) -> Option<Buffers> {
    let fields = line.split("skmem:(").nth(1)?.split(')').next()?;
    let field = |name: &str| {
        fields
            .split(',')
            .find_map(|field| field.strip_prefix(name)?.parse().ok())
    };
    Some(Buffers {
        receive: field("rb")?,
        send: field("tb")?,
    })
}

/// The session's four sockets, by the addresses each side sees.
#[derive(Debug, Clone, Copy)]
struct Session {
    /// The client's own address; vipd's frontend socket has it as peer.
    client: SocketAddr,
    front: SocketAddr,
    /// vipd's address towards the server; the server's socket has it as peer.
    vipd_out: SocketAddr,
    server: SocketAddr,
}

/// The largest buffers each of the session's sockets had so far: what a direction may hold.
#[derive(Debug, Default)]
struct PathBuffers {
    client: Buffers,
    vipd_front: Buffers,
    vipd_back: Buffers,
    server: Buffers,
}

impl PathBuffers {
    /// Takes in what `ss` shows now; false if a socket was missing.
    fn widen(&mut self, lab: &Lab, session: &Session) -> bool {
        let (node, peers) = (socket_buffers(lab, NODE), socket_buffers(lab, PEERS));
        let seen = [
            (
                &mut self.client,
                peers.get(&(session.client, session.front)),
            ),
            (
                &mut self.vipd_front,
                node.get(&(session.front, session.client)),
            ),
            (
                &mut self.vipd_back,
                node.get(&(session.vipd_out, session.server)),
            ),
            (
                &mut self.server,
                peers.get(&(session.server, session.vipd_out)),
            ),
        ];
        let mut all = true;
        for (largest, now) in seen {
            let Some(now) = now else {
                all = false;
                continue;
            };
            largest.receive = largest.receive.max(now.receive);
            largest.send = largest.send.max(now.send);
        }
        all
    }

    /// Client → server: the client's send buffer, vipd's receive buffer on the client side and
    /// send buffer on the server side, the server's receive buffer.
    fn upload_bound(&self) -> u64 {
        self.client.send
            + self.vipd_front.receive
            + self.vipd_back.send
            + self.server.receive
            + PIPE_CAPACITY
            + SLACK
    }

    fn download_bound(&self) -> u64 {
        self.server.send
            + self.vipd_back.receive
            + self.vipd_front.send
            + self.client.receive
            + PIPE_CAPACITY
            + SLACK
    }
}

/// Resident memory of process `pid` in bytes (VmRSS).
fn resident(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `vipd_proxy_pipe_grown_bytes` from vipd's `/metrics`.
fn pipes_grown(lab: &Lab) -> Option<u64> {
    let metrics = control_get(lab, NODE, "/metrics").ok()?;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("vipd_proxy_pipe_grown_bytes "))?
        .trim()
        .parse()
        .ok()
}

/// What a sample looks at.
struct Probe<'a> {
    lab: &'a Lab,
    vipd: u32,
    /// vipd's VmRSS before the transfer.
    baseline: u64,
    flows: &'a Flows,
    session: Session,
}

/// The largest values the samples saw, and the first sample that broke a bound.
#[derive(Debug, Default)]
struct Observed {
    samples: usize,
    rss_growth: u64,
    upload_in_flight: u64,
    download_in_flight: u64,
    /// None while `/metrics` never answered.
    pipes_grown: Option<u64>,
    violation: Option<String>,
}

impl Observed {
    /// One sample: vipd's memory and what each direction holds; then the buffers that bound it,
    /// read after: buffers only grow, so those seen later bound what was in flight before.
    fn sample(&mut self, probe: &Probe, buffers: &mut PathBuffers) {
        self.samples += 1;
        let rss = resident(probe.vipd).unwrap_or(0);
        let growth = rss.saturating_sub(probe.baseline);
        let upload = probe.flows.upload.in_flight();
        let download = probe.flows.download.in_flight();
        let grown = pipes_grown(probe.lab);
        buffers.widen(probe.lab, &probe.session);
        self.rss_growth = self.rss_growth.max(growth);
        self.upload_in_flight = self.upload_in_flight.max(upload);
        self.download_in_flight = self.download_in_flight.max(download);
        self.pipes_grown = self.pipes_grown.max(grown);
        let (upload_bound, download_bound) = (buffers.upload_bound(), buffers.download_bound());
        let violation = if growth > RSS_GROWTH_LIMIT {
            format!("vipd's VmRSS grew by {growth} bytes (limit {RSS_GROWTH_LIMIT})")
        } else if upload > upload_bound {
            format!("upload holds {upload} bytes, bound {upload_bound}")
        } else if download > download_bound {
            format!("download holds {download} bytes, bound {download_bound}")
        } else if grown.is_some_and(|grown| grown > GROWN_PIPES_LIMIT) {
            format!("vipd's pipes grew by {grown:?} bytes (limit {GROWN_PIPES_LIMIT})")
        } else {
            return;
        };
        self.violation.get_or_insert(violation);
    }
}

/// The session's ends, running in the peers' host.
struct Ends {
    client: JoinHandle<Result<EndResult, LabError>>,
    server: JoinHandle<Result<EndResult, LabError>>,
    /// Clones of the client's and the server's socket, to cut a transfer that broke a bound.
    sockets: [TcpStream; 2],
    session: Session,
}

/// Starts the server and the client in the peers' host; returns once the session is connected
/// through vipd (the transfer waits for `flows.go`).
fn connect(lab: &Lab, flows: &Arc<Flows>, session_front: SocketAddr) -> Ends {
    let server_address = SocketAddr::new(lab.host(PEERS).ipv4.into(), SERVER_PORT);
    let listener = lab
        .in_host(PEERS, move || TcpListener::bind(server_address))
        .expect("peers' host")
        .expect("the server listens");
    let (accepted, session_accepted) = mpsc::channel();
    let server_flows = Arc::clone(flows);
    let server = lab
        .spawn_in_host(PEERS, move || serve(&listener, &server_flows, &accepted))
        .expect("peers' host");
    let (connected, client_connected) = mpsc::channel();
    let client_flows = Arc::clone(flows);
    let client = lab
        .spawn_in_host(PEERS, move || {
            client(session_front, &client_flows, &connected)
        })
        .expect("peers' host");
    let client_socket: TcpStream = client_connected
        .recv_timeout(Duration::from_secs(10))
        .expect("the client connects to vipd");
    let (server_socket, vipd_out): (TcpStream, SocketAddr) = session_accepted
        .recv_timeout(Duration::from_secs(10))
        .expect("vipd connects to the server");
    let session = Session {
        client: client_socket.local_addr().expect("client address"),
        front: session_front,
        vipd_out,
        server: server_address,
    };
    Ends {
        client,
        server,
        sockets: [client_socket, server_socket],
        session,
    }
}

/// Samples every [`SAMPLE_EVERY`] until both ends are done; on the first broken bound, or past
/// [`TRANSFER_DEADLINE`], cuts the session so that the test fails at once.
fn watch(lab: &Lab, vipd: u32, flows: &Flows, ends: &Ends, buffers: &mut PathBuffers) -> Observed {
    let probe = Probe {
        lab,
        vipd,
        baseline: resident(vipd).expect("vipd's VmRSS"),
        flows,
        session: ends.session,
    };
    let mut observed = Observed::default();
    let started = Instant::now();
    flows.go.store(true, Ordering::Relaxed);
    let mut next = started;
    while !(ends.client.is_finished() && ends.server.is_finished()) {
        next += SAMPLE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        observed.sample(&probe, buffers);
        if started.elapsed() > TRANSFER_DEADLINE {
            observed
                .violation
                .get_or_insert(format!("not done after {TRANSFER_DEADLINE:?}"));
        }
        if observed.violation.is_some() {
            for socket in &ends.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
    eprintln!(
        "bulk backpressure: the transfer ran for {:?}; vipd's VmRSS before: {} bytes; {} samples",
        started.elapsed(),
        probe.baseline,
        observed.samples,
    );
    observed
}

fn hex(digest: &Digest) -> String {
    let mut text = String::new();
    for byte in digest.as_ref() {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Checks one direction: every byte arrived, in order, then end of stream.
fn check_direction(name: &str, sent: &Digest, received: &Received) {
    eprintln!(
        "bulk backpressure: {name}: {} bytes received of {TOTAL}, sha256 sent {} received {}",
        received.bytes,
        hex(sent),
        hex(&received.digest)
    );
    assert_eq!(
        received.bytes, TOTAL,
        "{name}: end of stream at the wrong place"
    );
    assert_eq!(
        hex(sent),
        hex(&received.digest),
        "{name}: the bytes changed on the way"
    );
}

/// vipd in the node's host with a server in the peers' host, up and checked; its log's path.
/// The health checks' target (socat) and vipd stop on drop.
fn start_node(lab: &Lab, scratch: &Scratch) -> ([LabProcess; 2], PathBuf) {
    let front = SocketAddr::new(lab.host(NODE).ipv4.into(), FRONTEND_PORT);
    let server = SocketAddr::new(lab.host(PEERS).ipv4.into(), SERVER_PORT);
    let checked = start_backend(lab, PEERS, CHECK_PORT, "up");
    let config_path = scratch.write("vipd.yaml", &config(front, server));
    let log = scratch.path("vipd.log");
    let vipd = start_vipd(lab, NODE, &config_path, &log);
    wait_for_control(lab, NODE);
    let server_up =
        || status(lab, NODE).is_ok_and(|status| status["backends"][0]["servers_up"] == 1);
    assert!(
        wait_until(Duration::from_secs(10), server_up).is_some(),
        "the server never came up:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    ([vipd, checked], log)
}

/// vipd's own account of the session: both ways [`TOTAL`] bytes, closed by both FINs.
fn check_session_log(log: &Path) {
    let line = || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .find(|line| line.contains("session end"))
            .map(str::to_owned)
    };
    let logged = wait_until(Duration::from_secs(5), || line().is_some());
    let line = line().unwrap_or_default();
    eprintln!("bulk backpressure: vipd logged: {line}");
    assert!(logged.is_some(), "no session end line");
    for field in [
        format!(" bytes_in={TOTAL} "),
        format!(" bytes_out={TOTAL} "),
        " termination=closed ".to_owned(),
    ] {
        assert!(line.contains(&field), "no `{field}`: {line}");
    }
}

#[test]
fn a_gigabyte_each_way_to_slow_readers_holds_vipd_to_its_buffers_and_arrives_intact() {
    if !vipd_lab::e2e_enabled(
        "bulk_backpressure::a_gigabyte_each_way_to_slow_readers_holds_vipd_to_its_buffers_and_arrives_intact",
    ) {
        return;
    }
    let lab = Lab::new(2).expect("lab");
    let scratch = Scratch::new("bulk-backpressure");
    let ([vipd, _checked], log) = start_node(&lab, &scratch);
    let flows = Arc::new(Flows::default());
    let front = SocketAddr::new(lab.host(NODE).ipv4.into(), FRONTEND_PORT);
    let ends = connect(&lab, &flows, front);
    let mut buffers = PathBuffers::default();
    assert!(
        wait_until(Duration::from_secs(5), || buffers
            .widen(&lab, &ends.session))
        .is_some(),
        "ss does not show the session's four sockets {:?}: {buffers:?}",
        ends.session
    );
    let observed = watch(&lab, vipd.pid(), &flows, &ends, &mut buffers);
    let client = ends
        .client
        .join()
        .expect("client thread")
        .expect("peers' host");
    let server = ends
        .server
        .join()
        .expect("server thread")
        .expect("peers' host");
    eprintln!(
        "bulk backpressure: largest VmRSS growth {} bytes (limit {RSS_GROWTH_LIMIT}); most in \
         flight: upload {} bytes (bound {}), download {} bytes (bound {}); pipes grown by at \
         most {:?} bytes (limit {GROWN_PIPES_LIMIT}); socket buffers {buffers:?}",
        observed.rss_growth,
        observed.upload_in_flight,
        buffers.upload_bound(),
        observed.download_in_flight,
        buffers.download_bound(),
        observed.pipes_grown,
    );
    if let Some(violation) = observed.violation {
        panic!("{violation}; client: {client:?}, server: {server:?}");
    }
    assert!(observed.pipes_grown.is_some(), "/metrics never answered");
    let (upload_sent, download_received) = client.expect("the client's transfer");
    let (download_sent, upload_received) = server.expect("the server's transfer");
    check_direction("upload", &upload_sent, &upload_received);
    check_direction("download", &download_sent, &download_received);
    // Half-close: the client's FIN reached the server, and the download went on after it.
    let after_fin = TOTAL - flows.download_read_at_upload_end.load(Ordering::Relaxed);
    let lasted = download_received
        .ended
        .checked_duration_since(upload_received.ended);
    eprintln!(
        "bulk backpressure: after the upload's FIN the client read {after_fin} bytes more of the \
         download, for {lasted:?}"
    );
    assert!(
        after_fin >= HELD_BACK * BLOCK as u64,
        "the download did not go on after the upload's FIN"
    );
    check_session_log(&log);
}
