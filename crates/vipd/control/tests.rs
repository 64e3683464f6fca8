//! The control server over real sockets on 127.0.0.1, with a fake node behind [`Control`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::status::tests::sample_status;
use super::{
    ActionError, ConnectionLimits, Control, ControlError, NodeStatus, ServerAction, SessionList,
    SessionStatus, bind,
};

/// A node with backend `apiservers` (servers cp1..cp3) and instances `api` and `stopping` (whose
/// task is gone); it records every action it accepts.
#[derive(Default)]
pub struct FakeNode {
    pub actions: Mutex<Vec<String>>,
}

impl Control for FakeNode {
    fn status(&self) -> NodeStatus {
        sample_status()
    }

    async fn server_action(
        &self,
        backend: &str,
        server: &str,
        action: ServerAction,
    ) -> Result<(), ActionError> {
        if backend != "apiservers" {
            return Err(ActionError::UnknownBackend {
                backend: backend.to_owned(),
            });
        }
        if !["cp1", "cp2", "cp3"].contains(&server) {
            return Err(ActionError::UnknownServer {
                backend: backend.to_owned(),
                server: server.to_owned(),
            });
        }
        self.actions
            .lock()
            .unwrap()
            .push(format!("{backend}/{server} {action:?}"));
        Ok(())
    }

    async fn maintenance(&self, instance: &str, enabled: bool) -> Result<(), ActionError> {
        match instance {
            "api" => {
                self.actions
                    .lock()
                    .unwrap()
                    .push(format!("{instance} maintenance {enabled}"));
                Ok(())
            }
            "stopping" => Err(ActionError::Unavailable(
                "instance stopping is shutting down".to_owned(),
            )),
            _ => Err(ActionError::UnknownInstance {
                instance: instance.to_owned(),
            }),
        }
    }

    fn sessions(
        &self,
        backend: &str,
        server: Option<&str>,
    ) -> Result<Vec<SessionStatus>, ActionError> {
        fake_server(backend, server.unwrap_or("cp1"))?;
        Ok(if server.is_none_or(|server| server == "cp1") {
            vec![fake_session()]
        } else {
            Vec::new()
        })
    }

    fn kill_sessions(
        &self,
        backend: &str,
        server: &str,
        filter: vipd_proxy::SessionFilter,
    ) -> Result<usize, ActionError> {
        fake_server(backend, server)?;
        self.actions
            .lock()
            .unwrap()
            .push(format!("{backend}/{server} kill {filter:?}"));
        Ok(usize::from(server == "cp1"))
    }
}

/// The fake node's one session, on cp1.
pub fn fake_session() -> SessionStatus {
    SessionStatus {
        id: 17,
        backend: "apiservers".to_owned(),
        server: "cp1".to_owned(),
        frontend: "apiserver".to_owned(),
        client: "198.51.100.7:40000".to_owned(),
        age_seconds: 2.5,
        bytes_in: 100,
        bytes_out: 2000,
    }
}

fn fake_server(backend: &str, server: &str) -> Result<(), ActionError> {
    if backend != "apiservers" {
        return Err(ActionError::UnknownBackend {
            backend: backend.to_owned(),
        });
    }
    if !["cp1", "cp2", "cp3"].contains(&server) {
        return Err(ActionError::UnknownServer {
            backend: backend.to_owned(),
            server: server.to_owned(),
        });
    }
    Ok(())
}

/// A running server on an ephemeral loopback port; stops when dropped.
pub struct TestServer {
    pub address: SocketAddr,
    pub node: Arc<FakeNode>,
    _stop: oneshot::Sender<()>,
}

pub async fn start(token: Option<&str>) -> TestServer {
    start_with_limits(token, ConnectionLimits::default()).await
}

pub async fn start_with_limits(token: Option<&str>, limits: ConnectionLimits) -> TestServer {
    let node = Arc::new(FakeNode::default());
    let server = bind(
        "127.0.0.1:0".parse().unwrap(),
        token.map(str::to_owned),
        Arc::clone(&node),
    )
    .unwrap()
    .with_limits(limits);
    let address = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TestServer {
        address,
        node,
        _stop: stop,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection; the server answers with a fixed-length body.
pub async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413, 401) before reading the whole body and close; that is fine.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response to {method} {path}"));
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this test client reads fixed-length bodies only"
    );
    Reply {
        status,
        headers,
        body: response[end + 4..].to_vec(),
    }
}

/// method, path, headers, body, expected status
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);

const TOKEN: &str = "s3cret-token";
const AUTH: (&str, &str) = ("Authorization", "Bearer s3cret-token");

#[tokio::test]
async fn reads_need_no_token() {
    let server = start(Some(TOKEN)).await;

    let status = request(server.address, "GET", "/status", &[], b"").await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert!(status.headers["content-type"].starts_with("application/json"));
    let parsed: NodeStatus = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(parsed, sample_status());

    let metrics = request(server.address, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].starts_with("application/openmetrics-text"));

    let page = request(server.address, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    let html = page.text();
    assert!(
        html.contains("fetch(\"status\""),
        "the dashboard polls /status"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the dashboard loads no external assets"
    );
}

#[tokio::test]
async fn actions_need_the_bearer_token() {
    let server = start(Some(TOKEN)).await;
    let drain = "/api/v1/servers/apiservers/cp1/drain";

    let missing = request(server.address, "POST", drain, &[], b"").await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    assert!(missing.json()["error"].is_string());

    for wrong in [
        "Bearer s3cret-tokeN",
        "Bearer s3cret-token2",
        "Bearer ",
        "Basic czNjcmV0LXRva2Vu",
        "s3cret-token",
    ] {
        let reply = request(
            server.address,
            "POST",
            drain,
            &[("Authorization", wrong)],
            b"",
        )
        .await;
        assert_eq!(reply.status, 401, "{wrong}");
    }
    assert!(server.node.actions.lock().unwrap().is_empty());

    let accepted = request(server.address, "POST", drain, &[AUTH], b"").await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_eq!(accepted.json()["action"], "drain");
    let lowercase_scheme = request(
        server.address,
        "POST",
        "/api/v1/servers/apiservers/cp1/enable",
        &[("authorization", "bearer s3cret-token")],
        b"",
    )
    .await;
    assert_eq!(lowercase_scheme.status, 200);
    assert_eq!(
        *server.node.actions.lock().unwrap(),
        ["apiservers/cp1 Drain", "apiservers/cp1 Enable"]
    );
}

#[tokio::test]
async fn sessions_are_listed_and_killed_with_the_token_only() {
    let server = start(Some(TOKEN)).await;
    let listing = "/api/v1/servers/apiservers/cp1/sessions";
    let kill = "/api/v1/servers/apiservers/cp1/sessions/kill";
    let open = request(server.address, "GET", listing, &[], b"").await;
    assert_eq!(open.status, 401, "client addresses are not for everyone");
    let refused = request(server.address, "POST", kill, &[], br#"{"all": true}"#).await;
    assert_eq!(refused.status, 401);

    let listed = request(server.address, "GET", listing, &[AUTH], b"").await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let parsed: SessionList = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(parsed.sessions, [fake_session()]);
    let whole_backend = request(
        server.address,
        "GET",
        "/api/v1/backends/apiservers/sessions",
        &[AUTH],
        b"",
    )
    .await;
    assert_eq!(whole_backend.status, 200);
    assert_eq!(whole_backend.json()["sessions"][0]["id"], 17);
    let unknown = request(
        server.address,
        "GET",
        "/api/v1/servers/apiservers/cp9/sessions",
        &[AUTH],
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404);

    let killed = request(server.address, "POST", kill, &[AUTH], br#"{"all": true}"#).await;
    assert_eq!(killed.status, 200, "{}", killed.text());
    assert_eq!(
        killed.json(),
        serde_json::json!({"backend": "apiservers", "server": "cp1", "killed": 1})
    );
    let by_client = request(
        server.address,
        "POST",
        kill,
        &[AUTH],
        br#"{"client": "198.51.100.7"}"#,
    )
    .await;
    assert_eq!(by_client.status, 200, "{}", by_client.text());
    for bad in [
        &b""[..],
        b"{}",
        br#"{"client": "nowhere"}"#,
        br#"{"all": true, "id": 3}"#,
    ] {
        let reply = request(server.address, "POST", kill, &[AUTH], bad).await;
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(bad));
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(
        *server.node.actions.lock().unwrap(),
        [
            "apiservers/cp1 kill All",
            "apiservers/cp1 kill ClientIp(198.51.100.7)"
        ]
    );
}

#[tokio::test]
async fn without_a_token_actions_are_open_to_local_tools() {
    let server = start(None).await;
    let reply = request(
        server.address,
        "PUT",
        "/api/v1/servers/apiservers/cp2/weight",
        &[("Content-Type", "application/json")],
        br#"{"weight": 256}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["weight"], 256);
    let reply = request(
        server.address,
        "POST",
        "/api/v1/instances/api/maintenance",
        &[],
        br#"{"enabled": true}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["maintenance"], true);
    let reply = request(
        server.address,
        "POST",
        "/api/v1/servers/apiservers/cp3/disable",
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200);
    let reply = request(
        server.address,
        "DELETE",
        "/api/v1/servers/apiservers/cp2/weight",
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["action"], "reset_weight");
    assert_eq!(
        *server.node.actions.lock().unwrap(),
        [
            "apiservers/cp2 SetWeight(256)",
            "api maintenance true",
            "apiservers/cp3 Disable",
            "apiservers/cp2 ResetWeight"
        ]
    );
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one list of hostile requests, each with the answer it must get"
)]
async fn bad_requests_get_4xx_and_the_server_keeps_serving() {
    let server = start(Some(TOKEN)).await;
    let huge = vec![b' '; 64 * 1024];
    let weight = "/api/v1/servers/apiservers/cp1/weight";
    let maintenance = "/api/v1/instances/api/maintenance";
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/servers/nope/cp1/drain",
            vec![AUTH],
            b"",
            404,
        ),
        (
            "POST",
            "/api/v1/servers/apiservers/cp9/drain",
            vec![AUTH],
            b"",
            404,
        ),
        (
            "POST",
            "/api/v1/servers/apiservers/cp1/explode",
            vec![AUTH],
            b"",
            404,
        ),
        (
            "POST",
            "/api/v1/instances/nope/maintenance",
            vec![AUTH],
            br#"{"enabled":true}"#,
            404,
        ),
        (
            "POST",
            "/api/v1/instances/stopping/maintenance",
            vec![AUTH],
            br#"{"enabled":true}"#,
            503,
        ),
        ("GET", "/nowhere", vec![], b"", 404),
        ("POST", weight, vec![AUTH], b"{\"weight\": ", 400),
        ("POST", weight, vec![AUTH], b"", 400),
        ("POST", weight, vec![AUTH], br#"{"weight": "heavy"}"#, 400),
        ("POST", weight, vec![AUTH], br#"{"weight": -1}"#, 400),
        ("POST", weight, vec![AUTH], br#"{"weight": 300}"#, 400),
        (
            "POST",
            weight,
            vec![AUTH],
            br#"{"weight": 99999999999999999999}"#,
            400,
        ),
        (
            "POST",
            weight,
            vec![AUTH],
            br#"{"weight": 1, "extra": 2}"#,
            400,
        ),
        ("POST", weight, vec![AUTH], b"\xff\xfe", 400),
        (
            "POST",
            maintenance,
            vec![AUTH],
            br#"{"enabled": "yes"}"#,
            400,
        ),
        ("POST", maintenance, vec![AUTH], b"[]", 400),
        ("POST", weight, vec![AUTH], &huge, 413),
        (
            "GET",
            "/api/v1/servers/apiservers/cp1/drain",
            vec![AUTH],
            b"",
            405,
        ),
        ("PATCH", weight, vec![AUTH], b"", 405),
        ("POST", "/status", vec![], b"", 405),
        ("PUT", "/metrics", vec![], b"", 405),
        (
            "POST",
            "/api/v1/servers/apiservers/cp1/drain",
            vec![AUTH, ("Origin", "http://evil.example")],
            b"",
            403,
        ),
        (
            "POST",
            "/api/v1/servers/apiservers/cp1/drain",
            vec![AUTH, ("Sec-Fetch-Site", "cross-site")],
            b"",
            403,
        ),
        (
            "POST",
            "/api/v1/servers/apiservers/cp1/drain",
            vec![("Authorization", "Bearer \u{e9}")],
            b"",
            401,
        ),
    ];
    for (method, path, headers, body, expected) in &cases {
        let reply = request(server.address, method, path, headers, body).await;
        assert_eq!(
            reply.status,
            *expected,
            "{method} {path} {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(40)]),
            reply.text()
        );
        assert!(
            reply.json()["error"].is_string(),
            "{method} {path}: error body {}",
            reply.text()
        );
    }
    assert!(
        server.node.actions.lock().unwrap().is_empty(),
        "no bad request reached the node"
    );
    let after = request(server.address, "GET", "/status", &[], b"").await;
    assert_eq!(
        after.status,
        200,
        "the server still serves after {} bad requests",
        cases.len()
    );
    let accepted = request(server.address, "POST", weight, &[AUTH], br#"{"weight": 0}"#).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_stop_the_server() {
    let server = start(None).await;
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"\r\n\r\n",
        b"GET /status",
    ] {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    }
    let after = request(server.address, "GET", "/status", &[], b"").await;
    assert_eq!(after.status, 200);
}

#[tokio::test]
async fn an_empty_token_is_refused_at_start() {
    let result = bind(
        "127.0.0.1:0".parse().unwrap(),
        Some(String::new()),
        Arc::new(FakeNode::default()),
    );
    assert!(matches!(result, Err(ControlError::EmptyToken)));
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_address() {
    let first = start(None).await;
    let Err(error) = bind(first.address, None, Arc::new(FakeNode::default())) else {
        panic!("binding a taken port succeeded");
    };
    assert!(
        error.to_string().contains(&first.address.to_string()),
        "{error}"
    );
}

/// While the server is full and not accepting, the kernel's accept queue holds the newcomers; a
/// full queue drops SYNs and a client then waits a 1 s retransmission timeout. 300 connections
/// to a server that never accepts must all complete their handshake at once.
#[tokio::test]
async fn the_accept_queue_holds_300_waiting_connections() {
    let server = bind(
        "127.0.0.1:0".parse().expect("address"),
        None,
        Arc::new(FakeNode::default()),
    )
    .expect("bind");
    let address = server.local_addr();
    // The kernel caps the backlog at net.core.somaxconn (4096 since Linux 5.4, 128 before).
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096);
    let waiting = somaxconn.min(300);
    let connects = (0..waiting).map(|_| {
        tokio::time::timeout(
            std::time::Duration::from_millis(500),
            TcpStream::connect(address),
        )
    });
    let results = futures::future::join_all(connects).await;
    let completed = results
        .iter()
        .filter(|result| matches!(result, Ok(Ok(_))))
        .count();
    assert_eq!(
        completed, waiting,
        "handshakes completed while not accepting"
    );
    drop(server);
}

/// One sample line of the text exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the OpenMetrics text format as far as vipd uses it: `# HELP`, `# TYPE`,
/// samples with quoted label values, and `# EOF` as the last line.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.chars().enumerate().all(|(index, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (index > 0 && c.is_ascii_digit())
            })
    };
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the exposition ends with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "info", "histogram"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        assert!(valid_name(name), "{line}");
        let mut parsed = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").unwrap();
            let end = after.find('"').unwrap();
            parsed.insert(key.to_owned(), after[..end].to_owned());
            rest = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value,
        });
    }
    (types, samples)
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` samples are its.
fn family_of<'a>(sample: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    ["_bucket", "_sum", "_count"]
        .into_iter()
        .find_map(|suffix| {
            let family = sample.strip_suffix(suffix)?;
            (types.get(family)?.as_str() == "histogram").then_some(family)
        })
        .unwrap_or(sample)
}

/// The names of the samples, a histogram's under its family's name.
fn sample_families<'a>(
    samples: &'a [Sample],
    types: &BTreeMap<String, String>,
) -> std::collections::BTreeSet<&'a str> {
    samples
        .iter()
        .map(|sample| family_of(&sample.name, types))
        .collect()
}

/// Every `vipd_...` and `process_...` name in backticks in docs/metrics.md.
fn documented_names() -> Vec<String> {
    let doc = include_str!("../../../docs/metrics.md");
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.starts_with("vipd_") || quoted.starts_with("process_"))
        .map(|quoted| {
            quoted
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
#[expect(
    clippy::float_cmp,
    reason = "the values are small integers and halves, exact in f64"
)]
fn metrics_parse_and_match_the_documentation() {
    let text = super::metrics::render(sample_status());
    let (types, samples) = parse_exposition(&text);
    let sample_names = sample_families(&samples, &types);
    let documented = documented_names();
    for name in &documented {
        assert!(
            sample_names.contains(name.as_str()),
            "docs/metrics.md names {name}, /metrics does not have it"
        );
    }
    for name in &sample_names {
        assert!(
            documented.iter().any(|documented| documented == name),
            "/metrics has {name}, docs/metrics.md does not document it"
        );
    }
    for (family, kind) in &types {
        if kind == "counter" {
            assert!(
                sample_names.contains(format!("{family}_total").as_str()),
                "counter {family} is exposed as {family}_total"
            );
        }
    }

    let find = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|sample| {
                sample.name == name
                    && labels.iter().all(|(key, value)| {
                        sample.labels.get(*key).map(String::as_str) == Some(*value)
                    })
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
            .value
    };
    assert_eq!(
        find(
            "vipd_server_up",
            &[("backend", "apiservers"), ("server", "cp3")]
        ),
        0.0
    );
    assert_eq!(
        find(
            "vipd_server_up",
            &[("backend", "apiservers"), ("server", "cp1")]
        ),
        1.0
    );
    assert_eq!(
        find(
            "vipd_server_admin_state",
            &[("server", "cp2"), ("state", "drain")]
        ),
        1.0
    );
    assert_eq!(
        find(
            "vipd_vrrp_state",
            &[("vrrp_instance", "api"), ("state", "backup")]
        ),
        1.0
    );
    assert_eq!(
        find(
            "vipd_vrrp_state",
            &[("vrrp_instance", "api"), ("state", "master")]
        ),
        0.0
    );
    assert_eq!(
        find("vipd_vrrp_effective_priority", &[("vrrp_instance", "api")]),
        90.0
    );
    assert_eq!(
        find(
            "vipd_vrrp_two_masters_seen_total",
            &[("vrrp_instance", "api")]
        ),
        1.0
    );
    assert_eq!(
        find("vipd_frontend_bytes_in_total", &[("frontend", "apiserver")]),
        2000.0
    );
    assert_eq!(
        find(
            "vipd_server_check_last_change_seconds",
            &[("server", "cp1")]
        ),
        12.5
    );
    assert_eq!(
        find("vipd_server_downtime_seconds_total", &[("server", "cp1")]),
        5.0
    );
    let build_labels = [("node", "lb1"), ("revision", env!("VIPD_BUILD_REVISION"))];
    assert_eq!(find("vipd_build_info", &build_labels), 1.0);
}

#[test]
#[expect(
    clippy::float_cmp,
    reason = "the values are small integers, exact in f64"
)]
fn metrics_count_dropped_adverts_by_reason_and_other_vrids_apart() {
    let text = super::metrics::render(sample_status());
    let (_, samples) = parse_exposition(&text);
    let value = |name: &str, reason: Option<&str>| {
        samples
            .iter()
            .find(|sample| {
                sample.name == name
                    && sample.labels.get("vrrp_instance").map(String::as_str) == Some("api")
                    && sample.labels.get("reason").map(String::as_str) == reason
            })
            .unwrap_or_else(|| panic!("no {name} {reason:?}"))
            .value
    };
    let by_reason = "vipd_vrrp_adverts_dropped_by_reason_total";
    assert_eq!(value(by_reason, Some("checksum")), 2.0);
    assert_eq!(value(by_reason, Some("ttl")), 0.0);
    assert_eq!(value("vipd_vrrp_adverts_dropped_total", None), 2.0);
    assert_eq!(value("vipd_vrrp_adverts_other_vrid_total", None), 40.0);
    assert_eq!(value("vipd_vrrp_address_list_mismatch_total", None), 3.0);
    assert_eq!(value("vipd_vrrp_interval_mismatch_total", None), 5.0);
}

/// Prometheus gives every series it scrapes the labels `instance` (the target) and `job`; a label
/// of either name from vipd would be renamed `exported_instance` / `exported_job`, and a query by
/// it would group by node instead (the alert once documented, which fired on every healthy backup).
#[test]
fn no_series_has_a_label_that_prometheus_overwrites() {
    let text = super::metrics::render(sample_status());
    let (types, samples) = parse_exposition(&text);
    assert!(types.len() >= 70, "the sample node has every family");
    for sample in &samples {
        for reserved in ["instance", "job"] {
            assert!(
                !sample.labels.contains_key(reserved),
                "{} has a label {reserved}: {:?}",
                sample.name,
                sample.labels
            );
        }
    }
}

/// The alert rules use only metrics vipd exports (docs/metrics.md checks the names against
/// /metrics above), so that a renamed metric cannot silence an alert.
#[test]
fn the_shipped_alert_rules_use_documented_metrics() {
    let rules = include_str!("../../../deploy/prometheus/vipd-alerts.yaml");
    let documented = documented_names();
    let mut used = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("vipd_") || word.starts_with("process_") {
            used += 1;
            assert!(
                documented.iter().any(|name| name == word),
                "the alert rules use {word}, which docs/metrics.md does not document"
            );
        }
    }
    assert!(used >= 8, "the rules were read: {used} metric names");
}

#[test]
fn metrics_say_who_is_master_since_when_and_which_vips_are_here() {
    let mut status = sample_status();
    let backup = super::metrics::render(status.clone());
    for line in [
        r#"vipd_vrrp_master_info{vrrp_instance="api",address="198.51.100.12"} 1"#,
        r#"vipd_vrrp_vip_present{vrrp_instance="api",vip="198.51.100.50/24"} 0"#,
        r#"vipd_vrrp_state_since_timestamp_seconds{vrrp_instance="api"} 1796000000.25"#,
    ] {
        assert!(
            backup.contains(&format!("\n{line}\n")),
            "{line} in\n{backup}"
        );
    }
    let instance = &mut status.instances[0];
    instance.state = super::VrrpState::Master;
    instance.vips_held.clone_from(&instance.vips);
    let master = super::metrics::render(status);
    assert!(
        !master.contains("vipd_vrrp_master_info{"),
        "a master's last master heard is history, not news"
    );
    assert!(
        master.contains(
            "\nvipd_vrrp_vip_present{vrrp_instance=\"api\",vip=\"198.51.100.50/24\"} 1\n"
        )
    );
}

#[test]
fn process_metrics_have_the_standard_names() {
    let mut status = sample_status();
    let text = super::metrics::render(status.clone());
    for line in [
        "process_open_fds 120",
        "process_max_fds 1024",
        "process_resident_memory_bytes 25165824",
        "process_cpu_seconds_total 12.5",
        "process_start_time_seconds 1795996277.0",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "{line} in\n{text}");
    }
    status.process.open_fds = None;
    let text = super::metrics::render(status);
    assert!(
        !text.contains("process_open_fds"),
        "a reading the kernel refused is left out, not 0"
    );
}

#[test]
fn backend_times_are_histograms_in_seconds() {
    let text = super::metrics::render(sample_status());
    let connect = "vipd_backend_connect_time_seconds";
    for line in [
        format!("# TYPE {connect} histogram"),
        format!(r#"{connect}_sum{{backend="apiservers"}} 0.024"#),
        format!(r#"{connect}_count{{backend="apiservers"}} 80"#),
        format!(r#"{connect}_bucket{{le="0.0005",backend="apiservers"}} 0"#),
        format!(r#"{connect}_bucket{{le="0.001",backend="apiservers"}} 80"#),
        format!(r#"{connect}_bucket{{le="3600.0",backend="apiservers"}} 80"#),
        format!(r#"{connect}_bucket{{le="+Inf",backend="apiservers"}} 80"#),
        r#"vipd_backend_queue_time_seconds_bucket{le="0.0001",backend="apiservers"} 80"#.to_owned(),
        r#"vipd_backend_session_time_seconds_bucket{le="0.5",backend="apiservers"} 0"#.to_owned(),
        r#"vipd_backend_session_time_seconds_bucket{le="1.0",backend="apiservers"} 80"#.to_owned(),
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "{line} in\n{text}");
    }
}

#[test]
fn metrics_of_an_empty_node_still_parse() {
    let text = super::metrics::render(NodeStatus::new("lb1", 0));
    let (_, samples) = parse_exposition(&text);
    assert!(
        samples
            .iter()
            .any(|sample| sample.name == "vipd_uptime_seconds")
    );
}

#[test]
fn the_last_reload_is_in_the_metrics_under_prometheus_names() {
    let mut status = sample_status();
    let (types, samples) = parse_exposition(&super::metrics::render(status.clone()));
    let value = |samples: &[Sample], name: &str| {
        samples
            .iter()
            .find(|sample| sample.name == name)
            .map(|sample| sample.value)
    };
    assert_eq!(types["vipd_config_last_reload_successful"], "gauge");
    assert_eq!(
        value(&samples, "vipd_config_last_reload_successful"),
        Some(0.0),
        "the sample's last reload was rejected"
    );
    assert_eq!(
        value(
            &samples,
            "vipd_config_last_reload_success_timestamp_seconds"
        ),
        Some(1_764_925_000.25)
    );
    if let Some(last) = status.last_reload.as_mut() {
        last.ok = true;
    }
    let (_, samples) = parse_exposition(&super::metrics::render(status));
    assert_eq!(
        value(&samples, "vipd_config_last_reload_successful"),
        Some(1.0)
    );
}

#[test]
fn label_values_are_escaped() {
    let mut status = sample_status();
    status.backends[0].name = "we\"ird\\name\nx".to_owned();
    let text = super::metrics::render(status);
    assert!(text.contains(r#"backend="we\"ird\\name\nx""#), "{text}");
}

#[test]
fn metrics_list_series_in_configuration_order() {
    let text = super::metrics::render(sample_status());
    assert_eq!(text, super::metrics::render(sample_status()));
    let up_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("vipd_server_up{"))
        .collect();
    assert_eq!(
        up_lines,
        [
            r#"vipd_server_up{backend="apiservers",server="cp1"} 1"#,
            r#"vipd_server_up{backend="apiservers",server="cp2"} 1"#,
            r#"vipd_server_up{backend="apiservers",server="cp3"} 0"#,
        ]
    );
    assert!(text.contains("\nvipd_uptime_seconds 3723\n"), "{text}");
}

/// xorshift64*: a fixed-seed generator, so a failure names a reproducible case.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        let index = usize::try_from(self.next() % items.len() as u64).unwrap();
        items[index]
    }
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "the request generator and its checks read best together"
)]
async fn random_requests_never_get_a_server_error() {
    let server = start(Some(TOKEN)).await;
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    let segments = [
        "api",
        "v1",
        "servers",
        "instances",
        "apiservers",
        "cp1",
        "api",
        "drain",
        "enable",
        "disable",
        "weight",
        "maintenance",
        "status",
        "metrics",
        "",
        "..",
        "%00",
        "%ff",
        "%2F",
        "caf%C3%A9",
        "x%20y",
        "-",
        "~",
    ];
    let long_name = "n".repeat(3000);
    let deep_json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge = vec![b'7'; 5000];
    let bodies: [&[u8]; 10] = [
        b"",
        b"{}",
        br#"{"weight": 12}"#,
        br#"{"enabled": false}"#,
        br#"{"weight": 1e3}"#,
        br#"{"weight": null, "enabled": null}"#,
        b"\x00\x01\x02\xff",
        deep_json.as_bytes(),
        b"{\"weight\": 1",
        &huge,
    ];
    let auths = [
        "Bearer s3cret-token",
        "Bearer s3cret-token",
        "Bearer s3cret-token ",
        "Bearer nope",
        "",
    ];
    let admin_paths = [
        "/api/v1/servers/apiservers/cp1/drain",
        "/api/v1/servers/apiservers/cp2/enable",
        "/api/v1/servers/apiservers/cp3/disable",
        "/api/v1/servers/apiservers/cp1/weight",
        "/api/v1/servers/apiservers/cp1/weight",
        "/api/v1/servers/nope/cp1/weight",
        "/api/v1/servers/apiservers/nope/drain",
        "/api/v1/instances/api/maintenance",
        "/api/v1/instances/api/maintenance",
        "/api/v1/instances/nope/maintenance",
    ];
    let mut shuffle = Shuffle(0x5eed_1234_abcd_0001);
    for case in 0..300 {
        let method = shuffle.pick(&methods);
        let depth = 1 + shuffle.next() % 6;
        let mut path = String::new();
        for _ in 0..depth {
            path.push('/');
            if shuffle.next().is_multiple_of(40) {
                path.push_str(&long_name);
            } else {
                path.push_str(shuffle.pick(&segments));
            }
        }
        if shuffle.next().is_multiple_of(2) {
            // Steer half of the cases into the admin routes, with known and unknown names.
            path = shuffle.pick(&admin_paths).to_owned();
        }
        let body = bodies[usize::try_from(shuffle.next() % bodies.len() as u64).unwrap()];
        let auth = shuffle.pick(&auths);
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            Vec::new()
        } else {
            vec![("Authorization", auth)]
        };
        let reply = request(server.address, method, &path, &headers, body).await;
        assert!(
            (200..500).contains(&reply.status),
            "case {case}: {method} {path} -> {}: {}",
            reply.status,
            reply.text()
        );
        if reply.status >= 400 {
            assert!(
                reply.json()["error"].is_string(),
                "case {case}: {method} {path} -> {}: {}",
                reply.status,
                reply.text()
            );
        }
    }
    let after = request(server.address, "GET", "/status", &[], b"").await;
    assert_eq!(after.status, 200);
}
