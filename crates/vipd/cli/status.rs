//! `vipd status [--control ADDR] [--json] [-c FILE]`: reads `GET /status` from a running daemon
//! and prints it as tables (or the raw JSON).
//!
//! The control address is `--control`, else `control.listen` of the configuration file (`-c`, or
//! the default path when it exists), else 127.0.0.1:9650. A wildcard listen address is reached on
//! loopback. The request goes through the HTTP client vipd's tools share (`vipd_lab::http`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use vipd_lab::http::{Client, HttpError};

use crate::control::{AnnounceStatus, InstanceStatus, NodeStatus, TrackerState};

/// Where the daemon listens when nothing says otherwise.
const DEFAULT_CONTROL: SocketAddr = vipd_config::defaults::CONTROL_LISTEN;
/// Connect, send and receive must all finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct StatusArgs {
    /// The control server's address, `HOST:PORT` (default: control.listen of the configuration).
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Print the raw JSON of `GET /status` instead of tables.
    #[arg(long)]
    json: bool,
    /// The configuration file to read control.listen from.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// A `--control` value as the HTTP client wants it: `HOST:PORT`, also when given as a URL.
pub fn control_option(address: &str) -> String {
    address
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let address = match &args.control {
        Some(address) => control_option(address),
        None => control_address_from_config(args.config.as_deref()).to_string(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("vipd status: cannot start the async runtime")?;
    let body = runtime
        .block_on(http_get(&address, "/status"))
        .with_context(|| format!("vipd status: GET http://{address}/status"))?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let status: NodeStatus = serde_json::from_slice(&body).with_context(|| {
        format!("vipd status: http://{address}/status is not vipd's status JSON")
    })?;
    print!("{}", render_tables(&status));
    Ok(ExitCode::SUCCESS)
}

/// `control.listen` of the given file (or of the default file when it exists), reached on
/// loopback when it is a wildcard; the built-in default when there is no usable file.
fn control_address_from_config(path: Option<&Path>) -> SocketAddr {
    control_from_config(path, "vipd status").address
}

/// Where a client of the control server finds it, and the token file that guards `/api/v1`.
pub struct ControlSettings {
    pub address: SocketAddr,
    pub token_file: Option<PathBuf>,
}

/// The control settings of the given file (or of the default file when it exists): its
/// `control.listen`, reached on loopback when it is a wildcard, and its `control.token_file`;
/// the built-in default address and no token when there is no usable file. `command` names the
/// caller in the message about an unusable file.
pub fn control_from_config(path: Option<&Path>, command: &str) -> ControlSettings {
    let fallback = ControlSettings {
        address: DEFAULT_CONTROL,
        token_file: None,
    };
    let default_path = Path::new(vipd_config::DEFAULT_PATH);
    let (path, explicit) = match path {
        Some(path) => (path, true),
        None if default_path.exists() => (default_path, false),
        None => return fallback,
    };
    match vipd_config::load(path) {
        Ok((config, _warnings)) => ControlSettings {
            address: reachable(config.control.listen),
            token_file: config.control.token_file,
        },
        Err(error) => {
            // The default file is often readable by root only: say nothing unless asked for it.
            if explicit {
                eprintln!("{command}: {error:#}; using {DEFAULT_CONTROL}");
            }
            fallback
        }
    }
}

/// A listen address one can connect to: the unspecified address becomes loopback.
pub(crate) fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    }
}

/// One `GET` over a fresh connection; the body of a 200 answer, an error with the body otherwise.
pub(crate) async fn http_get(address: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    // The client's default body limit (16 MiB) is far above a status of a few hundred servers.
    let client = Client::new()
        .header("Accept", "application/json")
        .timeout(REQUEST_TIMEOUT);
    match client.get(address, path).await {
        Ok(response) => Ok(response.success()?),
        Err(HttpError::Connect { address, source }) => {
            Err(source).with_context(|| format!("cannot connect to {address} (is vipd running?)"))
        }
        Err(error) => Err(error.into()),
    }
}

/// Columns padded to their widest cell, two spaces apart.
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|title| (*title).to_owned()).collect()],
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self, out: &mut String) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// The tables `vipd status` prints: instances, trackers, frontends, servers.
pub fn render_tables(status: &NodeStatus) -> String {
    let mut out = format!(
        "node {}, vipd {}, up {}",
        status.node,
        status.version,
        duration_text(u64_seconds(status.uptime_seconds))
    );
    // A daemon that predates the proxy totals sends none (zero limit): leave them out.
    if status.proxy.max_connections > 0 {
        let _ = write!(
            out,
            ", proxy sessions {} of {}",
            status.proxy.sessions_current, status.proxy.max_connections
        );
    }
    out.push_str("\n\n");
    if status.instances.is_empty() && status.announce.is_empty() {
        out.push_str("no vrrp instances\n");
    } else if !status.instances.is_empty() {
        instance_table(&status.instances).render(&mut out);
        out.push_str(&drop_lines(&status.instances));
        out.push_str(&mismatch_lines(&status.instances));
        let trackers = tracker_table(&status.instances);
        if trackers.rows.len() > 1 {
            out.push('\n');
            trackers.render(&mut out);
        }
    }
    if !status.announce.is_empty() {
        if !status.instances.is_empty() {
            out.push('\n');
        }
        announce_table(&status.announce).render(&mut out);
    }
    if !status.frontends.is_empty() {
        out.push('\n');
        let mut frontends = TextTable::new(&[
            "FRONTEND",
            "BIND",
            "BACKEND",
            "SESSIONS",
            "TOTAL",
            "BYTES IN",
            "BYTES OUT",
        ]);
        for frontend in &status.frontends {
            frontends.push(vec![
                frontend.name.clone(),
                frontend.bind.join(","),
                frontend.backend.clone(),
                frontend.sessions_current.to_string(),
                frontend.sessions_total.to_string(),
                frontend.bytes_in.to_string(),
                frontend.bytes_out.to_string(),
            ]);
        }
        frontends.render(&mut out);
    }
    if !status.backends.is_empty() {
        out.push('\n');
        let mut servers = TextTable::new(&[
            "BACKEND",
            "SERVER",
            "ADDRESS",
            "HEALTH",
            "ADMIN",
            "WEIGHT",
            "SESSIONS",
            "TOTAL",
            "IN STATE",
            "LAST CHECK",
        ]);
        for backend in &status.backends {
            for server in &backend.servers {
                let name = if server.backup {
                    format!("{} (backup)", server.name)
                } else {
                    server.name.clone()
                };
                servers.push(vec![
                    backend.name.clone(),
                    name,
                    server.address.clone(),
                    server.health.as_str().to_owned(),
                    server.admin.as_str().to_owned(),
                    server.weight.to_string(),
                    server.sessions_current.to_string(),
                    server.sessions_total.to_string(),
                    duration_text(server.time_in_state_seconds),
                    server.last_check.clone().unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            if backend.servers.is_empty() {
                servers.push(vec![backend.name.clone(), "(no servers)".to_owned()]);
            }
        }
        servers.render(&mut out);
    }
    out
}

fn instance_table(instances: &[InstanceStatus]) -> TextTable {
    let mut table = TextTable::new(&[
        "INSTANCE",
        "INTERFACE",
        "VRID",
        "STATE",
        "PRIO CONF/EFF",
        "VIPS",
        "MASTER SEEN",
    ]);
    for instance in instances {
        let state = if instance.maintenance {
            format!("{} (maintenance)", instance.state)
        } else {
            instance.state.to_string()
        };
        let master = instance.master.as_ref().map_or_else(
            || "-".to_owned(),
            |master| {
                format!(
                    "{} prio {}, {} ago",
                    master.address,
                    master.priority,
                    duration_text(master.seen_seconds_ago)
                )
            },
        );
        table.push(vec![
            instance.name.clone(),
            instance.interface.clone(),
            format!("{} v{}", instance.vrid, instance.version),
            state,
            format!(
                "{}/{}",
                instance.configured_priority, instance.effective_priority
            ),
            instance.vips.join(","),
            master,
        ]);
    }
    table
}

/// One line per instance that dropped adverts or heard other VRIDs: the reasons that are not
/// zero, so an operator sees at once what a non-zero `adverts_dropped` is made of.
fn drop_lines(instances: &[InstanceStatus]) -> String {
    let mut out = String::new();
    for instance in instances {
        let counters = &instance.counters;
        if counters.adverts_dropped == 0 && counters.adverts_other_vrid == 0 {
            continue;
        }
        let reasons: Vec<String> = counters
            .adverts_dropped_by_reason
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(reason, count)| format!("{reason} {count}"))
            .collect();
        let _ = writeln!(
            out,
            "{}: adverts dropped {} ({}), other VRIDs heard {}",
            instance.name,
            counters.adverts_dropped,
            if reasons.is_empty() {
                "-".to_owned()
            } else {
                reasons.join(", ")
            },
            counters.adverts_other_vrid
        );
    }
    out
}

/// One line per instance that accepted adverts from a node configured differently (other VIPs or,
/// in v3, another interval): the pair works, but the operator should align the configurations.
fn mismatch_lines(instances: &[InstanceStatus]) -> String {
    let mut out = String::new();
    for instance in instances {
        let counters = &instance.counters;
        if counters.address_list_mismatch == 0 && counters.interval_mismatch == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{}: adverts from a node configured differently: address list {}, interval {}",
            instance.name, counters.address_list_mismatch, counters.interval_mismatch
        );
    }
    out
}

/// One row per announce group: announced or why not, and its failing trackers.
fn announce_table(groups: &[AnnounceStatus]) -> TextTable {
    let mut table = TextTable::new(&["ANNOUNCE", "STATE", "PRIORITY", "VIPS", "SINCE", "WHY"]);
    let now = crate::daemon::reload_verdict::unix_now();
    for group in groups {
        let failing: Vec<String> = group
            .trackers
            .iter()
            .filter(|tracker| tracker.state != TrackerState::Up)
            .map(|tracker| {
                format!(
                    "{} {} {}",
                    tracker.kind.as_str(),
                    tracker.target,
                    tracker.state
                )
            })
            .collect();
        table.push(vec![
            group.name.clone(),
            if group.announced {
                "announced"
            } else {
                "withdrawn"
            }
            .to_owned(),
            group
                .effective_priority
                .map_or_else(|| "fault".to_owned(), |priority| priority.to_string()),
            group.vips.join(" "),
            duration_text(now - group.since_unix_seconds),
            group
                .withdrawn_because
                .iter()
                .cloned()
                .chain(failing)
                .collect::<Vec<_>>()
                .join("; "),
        ]);
    }
    table
}

fn tracker_table(instances: &[InstanceStatus]) -> TextTable {
    let mut table = TextTable::new(&["INSTANCE", "TRACKER", "TARGET", "WEIGHT", "STATE", "DETAIL"]);
    for instance in instances {
        for tracker in &instance.trackers {
            table.push(vec![
                instance.name.clone(),
                tracker.kind.as_str().to_owned(),
                tracker.target.clone(),
                tracker.weight.to_string(),
                tracker.state.to_string(),
                tracker.detail.clone().unwrap_or_default(),
            ]);
        }
    }
    table
}

#[expect(clippy::cast_precision_loss, reason = "uptime far below 2^52 seconds")]
fn u64_seconds(seconds: u64) -> f64 {
    seconds as f64
}

/// `0.4s`, `12s`, `3m05s`, `2h03m`, `4d02h`: short and exact enough for a glance.
pub fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "finite, non-negative, rounded"
    )]
    let whole = seconds.round() as u64;
    match whole {
        0..60 => format!("{whole}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..86_400 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86_400, whole % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::status::tests::sample_status;

    #[test]
    fn tables_for_a_sample_status() {
        let mut status = sample_status();
        // SINCE is shown relative to now.
        status.announce[0].since_unix_seconds = crate::daemon::reload_verdict::unix_now() - 75.0;
        let text = render_tables(&status);
        let expected = format!(
            "node lb1, vipd {}, up 1h02m, proxy sessions 4 of 10000\n{}",
            env!("CARGO_PKG_VERSION"),
            "
INSTANCE  INTERFACE  VRID   STATE   PRIO CONF/EFF  VIPS              MASTER SEEN
api       eth0       51 v3  backup  150/90         198.51.100.50/24  198.51.100.12 prio 100, 0.4s ago
api: adverts dropped 2 (checksum 2), other VRIDs heard 40
api: adverts from a node configured differently: address list 3, interval 5

INSTANCE  TRACKER   TARGET                 WEIGHT  STATE    DETAIL
api       frontend  apiserver              -60     down     1 of 3 usable, min_up 2
api       file      /run/vipd/maintenance  -100    value 0

ANNOUNCE  STATE      PRIORITY  VIPS           SINCE  WHY
ingress   announced  100       203.0.113.100  1m15s

FRONTEND   BIND                BACKEND     SESSIONS  TOTAL  BYTES IN  BYTES OUT
apiserver  198.51.100.50:6443  apiservers  4         80     2000      128000

BACKEND     SERVER  ADDRESS             HEALTH  ADMIN  WEIGHT  SESSIONS  TOTAL  IN STATE  LAST CHECK
apiservers  cp1     198.51.100.21:6443  up      ready  100     2         40     13s       ok
apiservers  cp2     198.51.100.21:6443  up      drain  0       2         40     13s       ok
apiservers  cp3     198.51.100.21:6443  down    ready  100     2         40     13s       connection refused
"
        );
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn an_announce_group_says_whether_it_is_announced_and_why_not() {
        let mut status = NodeStatus::new("lb1", 60);
        let since = crate::daemon::reload_verdict::unix_now() - 75.0;
        status.announce = vec![crate::control::AnnounceStatus {
            name: "ingress".to_owned(),
            announced: false,
            device: "vipd-announce".to_owned(),
            configured_priority: 100,
            effective_priority: None,
            withdraw_below: None,
            vips: vec!["203.0.113.100".to_owned(), "2001:db8::100".to_owned()],
            trackers: vec![crate::control::TrackerStatus {
                kind: crate::control::TrackerKind::Frontend,
                target: "web".to_owned(),
                weight: 0,
                state: TrackerState::Down,
                detail: None,
            }],
            withdrawn_because: Some("a weight-0 tracker fails".to_owned()),
            changes: 2,
            since_unix_seconds: since,
        }];
        let text = render_tables(&status);
        let expected = "
ANNOUNCE  STATE      PRIORITY  VIPS                         SINCE  WHY
ingress   withdrawn  fault     203.0.113.100 2001:db8::100  1m15s  a weight-0 tracker fails; frontend web down
";
        assert!(text.ends_with(expected), "got:\n{text}");
    }

    #[tokio::test]
    async fn reads_a_running_control_server() {
        let server = crate::control::tests::start(Some("token")).await;
        let address = server.address.to_string();
        let body = http_get(&address, "/status").await.unwrap();
        let status: NodeStatus = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, sample_status());
        let missing = http_get(&address, "/nowhere")
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("404"), "{missing}");
        drop(server);
    }

    #[tokio::test]
    async fn a_closed_port_says_so() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = unused.local_addr().unwrap().to_string();
        drop(unused);
        let error = http_get(&address, "/status").await.unwrap_err();
        assert!(
            format!("{error:#}").contains("is vipd running?"),
            "{error:#}"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_text(0.44), "0.4s");
        assert_eq!(duration_text(12.5), "13s");
        assert_eq!(duration_text(185.0), "3m05s");
        assert_eq!(duration_text(7380.0), "2h03m");
        assert_eq!(duration_text(360_000.0), "4d04h");
        assert_eq!(duration_text(f64::NAN), "-");
    }

    #[test]
    fn wildcard_listen_is_reached_on_loopback() {
        assert_eq!(reachable("0.0.0.0:9650".parse().unwrap()), DEFAULT_CONTROL);
        assert_eq!(
            reachable("[::]:9650".parse().unwrap()),
            "[::1]:9650".parse().unwrap()
        );
        let specific: SocketAddr = "198.51.100.11:9650".parse().unwrap();
        assert_eq!(reachable(specific), specific);
    }

    /// A stand-in server answering one connection with `answer`, whatever the request.
    async fn answer_once(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer).await;
        });
        address
    }

    #[tokio::test]
    async fn responses_plain_chunked_and_errors() {
        let plain = answer_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
        assert_eq!(http_get(&plain, "/status").await.unwrap(), b"{}");
        let chunked = answer_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n").await;
        assert_eq!(http_get(&chunked, "/status").await.unwrap(), b"{\"a\":1}");
        let error =
            answer_once(b"HTTP/1.1 404 Not Found\r\n\r\n{\"error\":\"no such path\"}").await;
        let message = http_get(&error, "/status").await.unwrap_err().to_string();
        assert!(
            message.contains("404") && message.contains("no such path"),
            "{message}"
        );
        for broken in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab",
        ] {
            let address = answer_once(broken).await;
            assert!(http_get(&address, "/status").await.is_err());
        }
    }
}
