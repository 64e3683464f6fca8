//! `vipd status` as a user runs it: the binary against a stand-in control server on 127.0.0.1
//! that serves the `GET /status` example of docs/metrics.md (so the documented JSON is also
//! checked to be what `vipd status` reads). The server itself is tested in crates/vipd/control.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Output;
use std::thread::JoinHandle;

use crate::support::{Scratch, text, vipd};

/// The JSON example under `## GET /status` in docs/metrics.md.
fn documented_status() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .expect("docs/metrics.md is readable");
    let section = doc
        .split("## `GET /status`")
        .nth(1)
        .expect("docs/metrics.md has a GET /status section");
    let start = section.find("```json\n").expect("with a json example") + "```json\n".len();
    let end = start + section[start..].find("```").expect("closed");
    section[start..end].to_owned()
}

/// Answers `count` requests with `status` and `body`, one connection each, then stops.
struct StandIn {
    address: SocketAddr,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl StandIn {
    fn serve(count: usize, status: &'static str, body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback is available");
        let address = listener.local_addr().expect("bound");
        let thread = std::thread::spawn(move || {
            let mut request_lines = Vec::new();
            for _ in 0..count {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                let mut reader = BufReader::new(stream);
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                request_lines.push(first.trim_end().to_owned());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            request_lines
        });
        Self {
            address,
            thread: Some(thread),
        }
    }

    /// The request lines it saw.
    fn requests(mut self) -> Vec<String> {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("stand-in server thread")
    }
}

fn vipd_status(args: &[&str]) -> Output {
    vipd().arg("status").args(args).output().expect("vipd runs")
}

#[test]
fn status_prints_tables_from_the_control_server() {
    let server = StandIn::serve(1, "200 OK", documented_status());
    let output = vipd_status(&["--control", &server.address.to_string()]);
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    for expected in [
        "node lb1, vipd 0.1.0, up 1h02m, proxy sessions 4 of 10000\n",
        "INSTANCE  INTERFACE  VRID   STATE   PRIO CONF/EFF  VIPS              MASTER SEEN",
        "api       eth0       51 v3  backup  150/90         198.51.100.50/24  198.51.100.12 prio 100, 0.4s ago",
        "api       frontend  apiserver  -60     down   1 of 3 usable, min_up 2",
        "apiservers  cp1     198.51.100.21:6443  up      ready  100     2         40     13s       ok",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(server.requests(), ["GET /status HTTP/1.1"]);
}

#[test]
fn status_json_prints_the_body_as_served() {
    let body = documented_status();
    let server = StandIn::serve(1, "200 OK", body.clone());
    let output = vipd_status(&[
        "--json",
        "--control",
        &format!("http://{}/", server.address),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout).trim_end(), body.trim_end());
    drop(server.requests());
}

#[test]
fn status_reads_control_listen_from_the_config_file() {
    let server = StandIn::serve(1, "200 OK", documented_status());
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/active-standby-lb1.yaml"),
    )
    .expect("example config is readable");
    let config = example.replace(
        "listen: 127.0.0.1:9650",
        &format!("listen: {}", server.address),
    );
    assert_ne!(config, example, "the example sets control.listen");
    let scratch = Scratch::new("status-config");
    let file = scratch.write("vipd.yaml", &config);
    let output = vipd()
        .args(["status", "-c"])
        .arg(&file)
        .output()
        .expect("vipd runs");
    assert!(output.status.success(), "{output:?}");
    assert!(text(&output.stdout).starts_with("node lb1,"), "{output:?}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn status_reports_an_unreachable_daemon_and_exits_1() {
    let unused = TcpListener::bind("127.0.0.1:0").expect("loopback is available");
    let address = unused.local_addr().expect("bound").to_string();
    drop(unused);
    let output = vipd_status(&["--control", &address]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&address) && stderr.contains("is vipd running?"),
        "{stderr}"
    );
}

#[test]
fn status_reports_an_error_answer_and_exits_1() {
    let server = StandIn::serve(
        1,
        "503 Service Unavailable",
        r#"{"error":"starting"}"#.to_owned(),
    );
    let output = vipd_status(&["--control", &server.address.to_string()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("503") && stderr.contains("starting"),
        "{stderr}"
    );
    drop(server.requests());
}

#[test]
fn status_rejects_a_body_that_is_not_vipd_status() {
    let server = StandIn::serve(1, "200 OK", r#"{"hello":"world"}"#.to_owned());
    let output = vipd_status(&["--control", &server.address.to_string()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("is not vipd's status JSON"),
        "{output:?}"
    );
    drop(server.requests());
}
