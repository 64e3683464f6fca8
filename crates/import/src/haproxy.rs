//! haproxy.cfg (2.x): a line tokenizer, the sections, and their translation to frontends and
//! backends.
//!
//! A line is words separated by spaces; `#` starts a comment, `"..."` and `'...'` quote, and a
//! backslash escapes the next character. A section keyword (`defaults`, `frontend`, `backend`,
//! `listen`, `global`) starts a section that runs to the next one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::draft::{Backend, Draft, Frontend, Health, Server, Timeouts, TlsVerify};
use super::words::{self, Syntax};
use super::{ImportError, ImportWarning, Location, unique_name, vipd_name, warn};

/// The longest timeout vipd accepts (7 days).
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// HAProxy's words: `"..."` and `'...'` quote, a backslash escapes the next character (not
/// inside `'...'`), and `#` ends the line anywhere outside quotes.
const HAPROXY: Syntax = Syntax {
    quotes: &['"', '\''],
    comments: &['#'],
    comment_inside_word: true,
    braces: false,
    backslash_escapes: true,
};

/// Splits one line into words; `Err` for an unterminated quote.
fn words(line: &str) -> Result<Vec<String>, String> {
    words::split(line, &HAPROXY)
        .map(words::words_only)
        .map_err(|_| "unterminated quoted string".to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

/// Server options, as on a `server` line or inherited from `default-server`.
#[derive(Clone, Debug, Default)]
struct ServerOptions {
    weight: Option<u32>,
    backup: bool,
    check: bool,
    inter: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    maxconn: Option<u32>,
    maxqueue: Option<u32>,
    send_proxy: Option<&'static str>,
    disabled: bool,
    /// Checks over TLS: `check-ssl`, or `ssl` without `no-check-ssl`.
    check_ssl: bool,
    ssl: bool,
    no_check_ssl: bool,
    verify_none: bool,
    ca_file: Option<String>,
    shutdown_sessions: bool,
}

#[derive(Clone, Debug)]
struct ServerLine {
    at: Location,
    name: String,
    address: String,
    options: ServerOptions,
}

/// The settings of a section, with what it inherited from the `defaults` before it.
#[derive(Clone, Debug)]
struct Section {
    kind: Kind,
    name: String,
    at: Location,
    http_mode: Option<Location>,
    binds: Vec<(SocketAddr, Location)>,
    accept_proxy: bool,
    maxconn: Option<u32>,
    backend: Option<(String, Location)>,
    balance: Option<&'static str>,
    timeout_connect: Option<Duration>,
    timeout_client: Option<Duration>,
    timeout_server: Option<Duration>,
    timeout_tunnel: Option<Duration>,
    timeout_client_fin: Option<Duration>,
    timeout_server_fin: Option<Duration>,
    timeout_check: Option<Duration>,
    retries: Option<u32>,
    http_check: Option<HttpCheck>,
    /// `http-check connect ssl`: the checks use TLS whatever the server lines say.
    check_connect_ssl: bool,
    expect_status: Option<Vec<u16>>,
    default_server: ServerOptions,
    servers: Vec<ServerLine>,
}

#[derive(Clone, Debug, Default)]
struct HttpCheck {
    path: Option<String>,
    host: Option<String>,
}

impl Section {
    fn new(kind: Kind, name: String, at: Location) -> Self {
        Self {
            kind,
            name,
            at,
            http_mode: None,
            binds: Vec::new(),
            accept_proxy: false,
            maxconn: None,
            backend: None,
            balance: None,
            timeout_connect: None,
            timeout_client: None,
            timeout_server: None,
            timeout_tunnel: None,
            timeout_client_fin: None,
            timeout_server_fin: None,
            timeout_check: None,
            retries: None,
            http_check: None,
            check_connect_ssl: false,
            expect_status: None,
            default_server: ServerOptions::default(),
            servers: Vec::new(),
        }
    }

    /// A new proxy section starting from the current `defaults` (HAProxy copies them in).
    fn inherit(defaults: &Section, kind: Kind, name: String, at: Location) -> Self {
        let mut section = defaults.clone();
        section.kind = kind;
        section.name = name;
        section.at = at;
        section.binds.clear();
        section.backend = None;
        section.servers.clear();
        section
    }

    fn is_frontend(&self) -> bool {
        matches!(self.kind, Kind::Frontend | Kind::Listen)
    }

    fn is_backend(&self) -> bool {
        matches!(self.kind, Kind::Backend | Kind::Listen)
    }
}

pub fn translate(
    path: &Path,
    text: &str,
    draft: &mut Draft,
    warnings: &mut Vec<ImportWarning>,
) -> Result<(), ImportError> {
    let file: Arc<str> = path.display().to_string().into();
    let mut defaults = Section::new(
        Kind::Defaults,
        String::new(),
        Location {
            file: Arc::clone(&file),
            line: 1,
        },
    );
    let mut sections: Vec<Section> = Vec::new();
    // The section lines go to: `None` before any section or inside one vipd ignores whole.
    let mut current: Option<Section> = None;
    let mut in_global = false;
    let mut skipping = false;
    let mut first_line: Option<Location> = None;
    let mut sections_seen = 0usize;
    for (index, line) in text.lines().enumerate() {
        let at = Location {
            file: Arc::clone(&file),
            line: index + 1,
        };
        let words = words(line).map_err(|message| ImportError::Syntax {
            at: at.clone(),
            message,
        })?;
        let Some(keyword) = words.first() else {
            continue;
        };
        first_line.get_or_insert_with(|| at.clone());
        let section_kind = match keyword.as_str() {
            "global" => Some(None),
            "defaults" => Some(Some(Kind::Defaults)),
            "frontend" => Some(Some(Kind::Frontend)),
            "backend" => Some(Some(Kind::Backend)),
            "listen" => Some(Some(Kind::Listen)),
            "userlist" | "peers" | "resolvers" | "mailers" | "program" | "http-errors"
            | "cache" | "ring" | "log-forward" | "traces" | "crt-store" => {
                finish(&mut current, &mut defaults, &mut sections);
                sections_seen += 1;
                in_global = false;
                skipping = true;
                warn(
                    warnings,
                    &at,
                    format!("`{keyword}` section has no vipd equivalent: skipped whole"),
                );
                continue;
            }
            _ => None,
        };
        if let Some(kind) = section_kind {
            sections_seen += 1;
            finish(&mut current, &mut defaults, &mut sections);
            skipping = false;
            in_global = kind.is_none();
            if let Some(kind) = kind {
                let name = words.get(1).cloned().unwrap_or_default();
                if kind == Kind::Defaults {
                    if words.len() > 2 {
                        warn(
                            warnings,
                            &at,
                            "named defaults with `from`: vipd reads them as plain defaults",
                        );
                    }
                    current = Some(Section::inherit(&defaults, kind, name, at.clone()));
                } else if name.is_empty() {
                    return Err(ImportError::Syntax {
                        at,
                        message: format!("`{keyword}` needs a name"),
                    });
                } else {
                    let mut section = Section::inherit(&defaults, kind, name, at.clone());
                    if kind == Kind::Listen && words.len() > 2 {
                        // `listen NAME ADDR:PORT` is the old form of `bind` (`words[1..]`
                        // reads as `bind ADDR:PORT`).
                        bind(&mut section, &words[1..], &at, warnings);
                    } else if words.len() > 2 {
                        warn(
                            warnings,
                            &at,
                            format!("`{}` after the section name: skipped", words[2..].join(" ")),
                        );
                    }
                    current = Some(section);
                }
            }
            continue;
        }
        if skipping {
            continue;
        }
        if in_global {
            global(&words, &at, draft, warnings);
            continue;
        }
        let Some(section) = current.as_mut() else {
            warn(warnings, &at, "a line outside any section: skipped");
            continue;
        };
        directive(section, &words, &at, warnings);
    }
    finish(&mut current, &mut defaults, &mut sections);
    // A keepalived.conf (or anything else) passed as haproxy.cfg is refused, not read as nothing.
    if let Some(at) = first_line
        && sections_seen == 0
    {
        return Err(ImportError::Syntax {
            at,
            message: "no global, defaults, frontend, backend or listen section: is this a \
                      haproxy.cfg?"
                .to_owned(),
        });
    }
    build(&sections, draft, warnings);
    Ok(())
}

/// Closes the current section: `defaults` become the new defaults, proxies are kept.
fn finish(current: &mut Option<Section>, defaults: &mut Section, sections: &mut Vec<Section>) {
    match current.take() {
        Some(section) if section.kind == Kind::Defaults => *defaults = section,
        Some(section) => sections.push(section),
        None => {}
    }
}

fn global(words: &[String], at: &Location, draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    match (words[0].as_str(), words.get(1)) {
        ("maxconn", Some(value)) => draft.max_connections = connections(value, at, warnings),
        ("nbthread", _) => draft.header.push(format!(
            "{at}: nbthread: vipd runs one proxy thread per core by itself."
        )),
        (keyword, _) => warn(
            warnings,
            at,
            format!("global {keyword} has no vipd equivalent: skipped"),
        ),
    }
}

fn directive(
    section: &mut Section,
    words: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let keyword = words[0].as_str();
    let arg = |index: usize| words.get(index).map(String::as_str);
    match (keyword, arg(1)) {
        ("mode", Some("tcp")) => section.http_mode = None,
        ("mode", Some("http")) => section.http_mode = Some(at.clone()),
        ("bind", Some(_)) if section.kind != Kind::Backend => bind(section, words, at, warnings),
        ("maxconn", Some(value)) if section.kind != Kind::Backend => {
            section.maxconn = connections(value, at, warnings);
        }
        ("default_backend", Some(name)) => section.backend = Some((name.to_owned(), at.clone())),
        ("use_backend", Some(name)) if words.len() == 2 => {
            if section.backend.is_none() {
                section.backend = Some((name.to_owned(), at.clone()));
            } else {
                warn(
                    warnings,
                    at,
                    "a second backend for one frontend: vipd sends a frontend to one backend: skipped",
                );
            }
        }
        ("use_backend", _) => warn(
            warnings,
            at,
            "use_backend with a condition: vipd has no ACL routing (one backend per frontend): skipped",
        ),
        ("balance", Some(algorithm)) => {
            section.balance = match algorithm {
                "roundrobin" => Some("round_robin"),
                "static-rr" => {
                    warn(
                        warnings,
                        at,
                        "balance static-rr: written as round_robin (weights apply at once, as with static-rr)",
                    );
                    Some("round_robin")
                }
                "leastconn" => Some("least_conn"),
                "source" => Some("source"),
                algorithm if algorithm == "random" || algorithm.starts_with("random(") => {
                    Some("random")
                }
                other => {
                    warn(
                        warnings,
                        at,
                        format!(
                            "balance {other} needs HTTP or is not in vipd (round_robin, least_conn, source, random): vipd's round_robin is used"
                        ),
                    );
                    None
                }
            };
        }
        ("timeout", Some(which)) => timeout(section, which, arg(2), at, warnings),
        ("retries", Some(value)) => match value.parse::<u32>() {
            Ok(retries) if retries <= 100 => section.retries = Some(retries),
            _ => warn(
                warnings,
                at,
                format!("retries `{value}` is not 0..=100: skipped"),
            ),
        },
        ("option", Some(option)) => self_option(section, option, &words[2..], at, warnings),
        ("no", Some("option")) => warn(
            warnings,
            at,
            format!(
                "`{}`: vipd's behaviour has no switch for it: skipped",
                words.join(" ")
            ),
        ),
        ("http-check", Some("expect")) => http_check_expect(section, &words[2..], at, warnings),
        ("http-check", Some("connect")) => {
            for option in &words[2..] {
                match option.as_str() {
                    "ssl" => section.check_connect_ssl = true,
                    other => warn(
                        warnings,
                        at,
                        format!(
                            "http-check connect {other}: vipd checks the server's own address and port: skipped"
                        ),
                    ),
                }
            }
        }
        ("http-check", Some("send")) => http_check_send(section, &words[2..], at, warnings),
        ("server", Some(name)) if section.is_backend() => {
            let Some(address) = arg(2) else {
                warn(
                    warnings,
                    at,
                    format!("server {name} has no address: skipped"),
                );
                return;
            };
            let mut options = section.default_server.clone();
            server_options(&mut options, &words[3..], at, warnings);
            section.servers.push(ServerLine {
                at: at.clone(),
                name: name.to_owned(),
                address: address.to_owned(),
                options,
            });
        }
        ("default-server", Some(_)) => {
            let mut options = section.default_server.clone();
            server_options(&mut options, &words[1..], at, warnings);
            section.default_server = options;
        }
        (
            "acl"
            | "tcp-request"
            | "tcp-response"
            | "http-request"
            | "http-response"
            | "stick-table"
            | "stick"
            | "http-after-response"
            | "redirect"
            | "filter"
            | "capture",
            _,
        ) => warn(
            warnings,
            at,
            format!(
                "{keyword}: vipd is an L4 proxy without ACLs, stick tables or request rules: skipped"
            ),
        ),
        ("log", _) => warn(
            warnings,
            at,
            "log: vipd logs to stderr / the journal: skipped",
        ),
        ("stats", _) => warn(
            warnings,
            at,
            "stats: use `vipd status`, GET /status, GET /metrics or the dashboard instead: skipped",
        ),
        (keyword, _) => warn(
            warnings,
            at,
            format!("`{keyword}` has no vipd equivalent: skipped"),
        ),
    }
}

/// `option ...` lines.
fn self_option(
    section: &mut Section,
    option: &str,
    args: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    match option {
        // What vipd always does: the last retry goes to another server; splice(2) once a
        // direction carries bulk traffic; the first bytes ride on the handshake's last ACK.
        "redispatch" | "splice-auto" | "splice-request" | "splice-response"
        | "tcp-smart-connect" => {}
        "httpchk" => section.http_check = Some(httpchk(args, at, warnings)),
        "tcp-check" => section.http_check = None,
        "tcplog" | "dontlognull" | "tcpka" | "clitcpka" | "srvtcpka" => {
            warn(
                warnings,
                at,
                format!(
                    "option {option}: no vipd equivalent needed (vipd logs and keeps TCP keepalive on its own): skipped"
                ),
            );
        }
        "ssl-hello-chk" => warn(
            warnings,
            at,
            "option ssl-hello-chk: vipd checks TLS with `kind: https` (a full handshake and a GET): skipped, checks are TCP connects",
        ),
        other => warn(
            warnings,
            at,
            format!("option {other} has no vipd equivalent: skipped"),
        ),
    }
}

/// `option httpchk [<method>] [<uri>] [<version>]`; an old-style version may carry headers
/// (`HTTP/1.1\r\nHost:\ example`).
fn httpchk(args: &[String], at: &Location, warnings: &mut Vec<ImportWarning>) -> HttpCheck {
    let mut check = HttpCheck::default();
    let (method, uri, version) = match args {
        [] => (None, None, None),
        [uri] => (None, Some(uri), None),
        [method, uri] => (Some(method), Some(uri), None),
        [method, uri, version, ..] => (Some(method), Some(uri), Some(version)),
    };
    if let Some(method) = method
        && method != "GET"
    {
        warn(
            warnings,
            at,
            format!("httpchk method {method}: vipd's checks always GET: written as GET"),
        );
    }
    if let Some(uri) = uri {
        if is_request_path(uri) {
            check.path = Some(uri.clone());
        } else {
            warn(
                warnings,
                at,
                format!("httpchk uri `{uri}` does not start with `/`: vipd's default `/` is used"),
            );
        }
    }
    if let Some(version) = version {
        for header in version.split("\r\n").skip(1) {
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("host")
            {
                check.host = host_name(value.trim(), at, warnings);
            } else if !header.trim().is_empty() {
                warn(
                    warnings,
                    at,
                    format!(
                        "httpchk header `{}`: vipd sends only Host: skipped",
                        header.trim()
                    ),
                );
            }
        }
    }
    check
}

/// What vipd accepts as a check's path: it goes into the request line as it is.
fn is_request_path(uri: &str) -> bool {
    uri.starts_with('/') && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A Host header / SNI value vipd accepts, else a warning.
fn host_name(host: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<String> {
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        warn(
            warnings,
            at,
            format!("Host `{}` is not a host name: skipped", host.escape_debug()),
        );
        return None;
    }
    Some(host.to_owned())
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]...` (HAProxy 2.2+).
fn http_check_send(
    section: &mut Section,
    args: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let check = section.http_check.get_or_insert_with(HttpCheck::default);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("uri", Some(uri)) if is_request_path(uri) => check.path = Some(uri.clone()),
            ("hdr", Some(name)) if name.eq_ignore_ascii_case("host") => {
                check.host = words.next().and_then(|host| host_name(host, at, warnings));
            }
            ("meth", Some(method)) if method == "GET" => {}
            ("ver", Some(_)) => {}
            (word, value) => {
                let value = value.map_or(String::new(), |value| format!(" {value}"));
                warn(
                    warnings,
                    at,
                    format!(
                        "http-check send {word}{value}: vipd sends `GET path` with an optional Host: skipped"
                    ),
                );
            }
        }
    }
}

/// `http-check expect [!] status <codes>`: codes, lists and ranges (`200,204`, `200-299`).
fn http_check_expect(
    section: &mut Section,
    args: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let [kind, codes] = args else {
        warn(
            warnings,
            at,
            format!(
                "http-check expect {}: vipd checks the status code only: skipped",
                args.join(" ")
            ),
        );
        return;
    };
    if kind != "status" {
        warn(
            warnings,
            at,
            format!("http-check expect {kind}: vipd checks the status code only: skipped"),
        );
        return;
    }
    let mut statuses = Vec::new();
    for part in codes.split(',') {
        let range = match part.split_once('-') {
            Some((low, high)) => low.parse::<u16>().ok().zip(high.parse::<u16>().ok()),
            None => part.parse::<u16>().ok().map(|code| (code, code)),
        };
        match range {
            Some((low, high)) if (100..=599).contains(&low) && (low..=599).contains(&high) => {
                statuses.extend(low..=high);
            }
            _ => {
                warn(
                    warnings,
                    at,
                    format!(
                        "http-check expect status `{codes}` is not a list of codes 100..=599: skipped"
                    ),
                );
                return;
            }
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    section.expect_status = Some(statuses);
}

fn timeout(
    section: &mut Section,
    which: &str,
    value: Option<&str>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let Some(value) = value else {
        warn(
            warnings,
            at,
            format!("timeout {which} has no value: skipped"),
        );
        return;
    };
    let slot = match which {
        "connect" => &mut section.timeout_connect,
        "client" => &mut section.timeout_client,
        "server" => &mut section.timeout_server,
        "tunnel" => &mut section.timeout_tunnel,
        "client-fin" => &mut section.timeout_client_fin,
        "server-fin" => &mut section.timeout_server_fin,
        "check" => &mut section.timeout_check,
        "queue" => {
            warn(
                warnings,
                at,
                "timeout queue: vipd bounds the wait in a full backend's queue by `timeout.connect`: skipped",
            );
            return;
        }
        "http-request" | "http-keep-alive" => {
            warn(
                warnings,
                at,
                format!("timeout {which}: HTTP only, vipd is an L4 proxy: skipped"),
            );
            return;
        }
        other => {
            warn(
                warnings,
                at,
                format!("timeout {other} has no vipd equivalent: skipped"),
            );
            return;
        }
    };
    *slot = haproxy_time(value, at, warnings);
}

/// HAProxy times: a number with an optional unit (`us`, `ms`, `s`, `m`, `h`, `d`); milliseconds
/// when there is none. Clamped to vipd's 1ms..=7d.
fn haproxy_time(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<Duration> {
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let micros_per_unit: u64 = match unit {
        "us" => 1,
        "" | "ms" => 1000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => 0,
    };
    let Some(micros) = number
        .parse::<u64>()
        .ok()
        .filter(|_| micros_per_unit > 0)
        .map(|number| number.saturating_mul(micros_per_unit))
    else {
        warn(
            warnings,
            at,
            format!("`{value}` is not a HAProxy time (like 5000, 5s or 1m): skipped"),
        );
        return None;
    };
    let duration = Duration::from_micros(micros);
    if duration > MAX_TIMEOUT {
        warn(
            warnings,
            at,
            format!("{value} is over vipd's 7d: written as 7d"),
        );
        return Some(MAX_TIMEOUT);
    }
    // vipd counts whole milliseconds.
    Some(Duration::from_millis(micros.div_ceil(1000).max(1)))
}

fn connections(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(count) if (1..=10_000_000).contains(&count) => Some(count),
        _ => {
            warn(
                warnings,
                at,
                format!("maxconn `{value}` is not 1..=10000000: skipped"),
            );
            None
        }
    }
}

/// `bind ADDR:PORT[,ADDR:PORT...] [options]`.
fn bind(section: &mut Section, words: &[String], at: &Location, warnings: &mut Vec<ImportWarning>) {
    for address in words[1].split(',') {
        match socket_address(address, None) {
            Ok(address) => section.binds.push((address, at.clone())),
            Err(problem) => warn(
                warnings,
                at,
                format!("bind `{address}`: {problem}: skipped"),
            ),
        }
    }
    let mut options = words[2..].iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "accept-proxy" => section.accept_proxy = true,
            "ssl" => warn(
                warnings,
                at,
                "bind ... ssl: vipd does not terminate TLS; clients' TLS goes to the servers as it is (they need the certificate): skipped",
            ),
            "crt" | "ca-file" | "alpn" | "ciphers" | "ssl-min-ver" | "interface" | "name"
            | "process" | "mss" | "backlog" | "maxconn" | "namespace" => {
                let value = options.next().map_or("", String::as_str);
                warn(
                    warnings,
                    at,
                    format!("bind option {option} {value}: no vipd equivalent: skipped"),
                );
            }
            other => warn(
                warnings,
                at,
                format!("bind option {other}: no vipd equivalent: skipped"),
            ),
        }
    }
}

/// `198.51.100.50:6443`, `:443` / `*:443` (every address), `[2001:db8::1]:443`, `ipv6@::1:443`.
/// Without a port, `default_port` is used when given.
fn socket_address(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    let text = text
        .strip_prefix("ipv4@")
        .or_else(|| text.strip_prefix("ipv6@"))
        .unwrap_or(text);
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        // HAProxy reads an IPv6 address without brackets as address:port when it can; an
        // address that parses whole has no port.
        return default_port
            .map(|port| SocketAddr::new(address, port))
            .ok_or_else(|| "no port".to_owned());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("not an IP address (vipd does not resolve host names)".to_owned());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port `{port}` is not a single port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        host => host.parse::<IpAddr>().map_err(|_| {
            format!("`{host}` is not an IP address (vipd does not resolve host names)")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

fn server_options(
    options: &mut ServerOptions,
    words: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let keyword = word.as_str();
        let mut value = || words.next().map(String::as_str);
        match keyword {
            "check" => options.check = true,
            "no-check" => options.check = false,
            "backup" => options.backup = true,
            "send-proxy" => options.send_proxy = Some("v1"),
            "send-proxy-v2" | "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
                options.send_proxy = Some("v2");
            }
            "no-send-proxy" | "no-send-proxy-v2" => options.send_proxy = Some("none"),
            "disabled" => options.disabled = true,
            "enabled" => options.disabled = false,
            "check-ssl" => options.check_ssl = true,
            "no-check-ssl" => options.no_check_ssl = true,
            "ssl" => options.ssl = true,
            "no-ssl" => options.ssl = false,
            "weight" => match value().map(str::parse::<u32>) {
                Some(Ok(weight)) if weight <= 256 => options.weight = Some(weight),
                _ => warn(warnings, at, "server weight is not 0..=256: skipped"),
            },
            "inter" => options.inter = value().and_then(|value| haproxy_time(value, at, warnings)),
            "fastinter" | "downinter" => {
                let _ = value();
                warn(
                    warnings,
                    at,
                    format!("server {keyword}: vipd checks at one interval (`inter`): skipped"),
                );
            }
            "rise" | "fall" => {
                let count = value()
                    .and_then(|value| value.parse::<u32>().ok())
                    .filter(|count| (1..=100).contains(count));
                if count.is_none() {
                    warn(
                        warnings,
                        at,
                        format!("server {keyword} is not 1..=100: skipped"),
                    );
                }
                if keyword == "rise" {
                    options.rise = count.or(options.rise);
                } else {
                    options.fall = count.or(options.fall);
                }
            }
            "maxconn" => {
                options.maxconn = value().and_then(|value| connections(value, at, warnings));
            }
            "maxqueue" => options.maxqueue = value().and_then(|value| value.parse().ok()),
            "verify" => match value() {
                Some("none") => options.verify_none = true,
                Some("required") => options.verify_none = false,
                other => warn(
                    warnings,
                    at,
                    format!("server verify {}: skipped", other.unwrap_or("")),
                ),
            },
            "ca-file" => options.ca_file = value().map(str::to_owned),
            "on-marked-down" => match value() {
                Some("shutdown-sessions") => options.shutdown_sessions = true,
                other => warn(
                    warnings,
                    at,
                    format!(
                        "on-marked-down {}: vipd can only shut the sessions down: skipped",
                        other.unwrap_or("")
                    ),
                ),
            },
            "check-sni" | "sni" | "port" | "addr" | "id" | "cookie" | "slowstart"
            | "on-marked-up" | "on-error" | "error-limit" | "resolvers" | "resolve-prefer"
            | "init-addr" | "minconn" | "source" | "proto" | "alpn" | "check-alpn" | "observe"
            | "pool-max-conn" | "crt" | "ciphers" | "agent-port" | "agent-inter" | "agent-send"
            | "verifyhost" | "track" | "redir" | "namespace" | "ssl-min-ver" | "ssl-max-ver"
            | "pool-purge-delay" | "max-reuse" | "tfo" | "check-proto" | "check-send-proxy"
            | "ws" | "log-proto" => {
                let value = value().unwrap_or("");
                warn(
                    warnings,
                    at,
                    format!("server option {keyword} {value}: no vipd equivalent: skipped"),
                );
            }
            other => warn(
                warnings,
                at,
                format!("server option {other}: no vipd equivalent: skipped"),
            ),
        }
    }
}

/// Turns the sections into vipd frontends and backends, wiring names and shared settings.
fn build(sections: &[Section], draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    // Backends first: a frontend pointing at a backend that could not be imported is dropped.
    for section in sections.iter().filter(|section| section.is_backend()) {
        let taken: Vec<&str> = draft.backends.iter().map(|b| b.name.as_str()).collect();
        if let Some(backend) = backend(section, sections, &taken, warnings) {
            draft.backends.push(backend);
        }
    }
    for section in sections.iter().filter(|section| section.is_frontend()) {
        let name = vipd_name(&section.name, &section.at, "frontend", warnings);
        let taken: Vec<&str> = draft.frontends.iter().map(|f| f.name.as_str()).collect();
        let name = unique_name(name, &taken);
        let target = if section.kind == Kind::Listen {
            Some((section.name.clone(), section.at.clone()))
        } else {
            section.backend.clone()
        };
        let Some((target, target_at)) = target else {
            warn(
                warnings,
                &section.at,
                format!(
                    "frontend {} has no default_backend (or unconditional use_backend): skipped",
                    section.name
                ),
            );
            continue;
        };
        let Some(backend) = sections
            .iter()
            .position(|other| other.is_backend() && other.name == target)
            .and_then(|index| {
                let source = &sections[index];
                draft
                    .backends
                    .iter()
                    .find(|backend| backend.from == source.at)
            })
        else {
            warn(
                warnings,
                &target_at,
                format!(
                    "backend {target} was not imported (see above) or does not exist: frontend {} skipped",
                    section.name
                ),
            );
            continue;
        };
        let mut binds: Vec<SocketAddr> = Vec::new();
        for (address, at) in &section.binds {
            let clashes = draft
                .frontends
                .iter()
                .flat_map(|f| &f.bind)
                .chain(&binds)
                .any(|other| {
                    other.port() == address.port()
                        && (other.ip() == address.ip()
                            || other.ip().is_unspecified()
                            || address.ip().is_unspecified())
                });
            // The control server's default address (control.listen) is vipd's own.
            let control = SocketAddr::from(([127, 0, 0, 1], 9650));
            if address.port() == control.port()
                && (address.ip() == control.ip() || address.ip().is_unspecified())
            {
                warn(
                    warnings,
                    at,
                    format!("bind {address}: vipd's control server listens on {control}: skipped"),
                );
            } else if clashes {
                warn(
                    warnings,
                    at,
                    format!(
                        "bind {address}: the port is already bound by an imported frontend (vipd binds a port once): skipped"
                    ),
                );
            } else {
                binds.push(*address);
            }
        }
        if binds.is_empty() {
            warn(
                warnings,
                &section.at,
                format!("frontend {} has no usable bind: skipped", section.name),
            );
            continue;
        }
        let mut notes = Vec::new();
        if let Some(mode_at) = &section.http_mode {
            warn(
                warnings,
                &section.at,
                format!(
                    "{} {} is in mode http ({mode_at}): vipd is L4 only; translated as TCP pass-through (no HTTP routing, header rules or TLS termination)",
                    kind_word(section.kind),
                    section.name
                ),
            );
            notes.push(format!(
                "mode http in HAProxy ({mode_at}): passed through as TCP."
            ));
        }
        let backend_name = backend.name.clone();
        draft.frontends.push(Frontend {
            from: section.at.clone(),
            notes,
            name,
            bind: binds,
            backend: backend_name,
            accept_proxy: section.accept_proxy,
            max_connections: section.maxconn,
        });
    }
    let used: Vec<String> = draft.frontends.iter().map(|f| f.backend.clone()).collect();
    for backend in &draft.backends {
        if !used.contains(&backend.name) {
            warn(
                warnings,
                &backend.from,
                format!(
                    "backend {} is used by no imported frontend: kept unused",
                    backend.name
                ),
            );
        }
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Defaults => "defaults",
        Kind::Frontend => "frontend",
        Kind::Backend => "backend",
        Kind::Listen => "listen",
    }
}

fn backend(
    section: &Section,
    sections: &[Section],
    taken: &[&str],
    warnings: &mut Vec<ImportWarning>,
) -> Option<Backend> {
    let name = vipd_name(&section.name, &section.at, "backend", warnings);
    let name = unique_name(name, taken);
    let mut notes = Vec::new();
    let frontends: Vec<&Section> = sections
        .iter()
        .filter(|other| {
            other.is_frontend()
                && (if other.kind == Kind::Listen {
                    other.name == section.name && section.kind == Kind::Listen
                } else {
                    other
                        .backend
                        .as_ref()
                        .is_some_and(|(name, _)| *name == section.name)
                })
        })
        .collect();
    if section.kind == Kind::Backend
        && let Some(mode_at) = &section.http_mode
    {
        warn(
            warnings,
            &section.at,
            format!(
                "backend {} is in mode http ({mode_at}): vipd is L4 only; translated as TCP pass-through",
                section.name
            ),
        );
    }
    // A server without a port takes the port the client connected to: the frontends' one port.
    let mut frontend_ports: Vec<u16> = frontends
        .iter()
        .flat_map(|f| f.binds.iter().map(|(address, _)| address.port()))
        .collect();
    frontend_ports.sort_unstable();
    frontend_ports.dedup();
    let default_port = match frontend_ports.as_slice() {
        [port] => Some(*port),
        _ => None,
    };
    let mut servers: Vec<Server> = Vec::new();
    let mut checked: Vec<&ServerLine> = Vec::new();
    let mut queues: Vec<Option<u32>> = Vec::new();
    for line in &section.servers {
        let address = match socket_address(&line.address, default_port) {
            Ok(address) => address,
            Err(problem) => {
                warn(
                    warnings,
                    &line.at,
                    format!(
                        "server {} `{}`: {problem}: skipped",
                        line.name, line.address
                    ),
                );
                continue;
            }
        };
        if address.port() == 0 || address.ip().is_unspecified() {
            warn(
                warnings,
                &line.at,
                format!(
                    "server {}: {address} cannot be connected to: skipped",
                    line.name
                ),
            );
            continue;
        }
        let name = vipd_name(&line.name, &line.at, "server", warnings);
        let taken: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        let name = unique_name(name, &taken);
        let mut weight = line.options.weight;
        let mut note = None;
        if line.options.disabled {
            weight = Some(0);
            note = Some("disabled in HAProxy: weight 0 drains it".to_owned());
            warn(
                warnings,
                &line.at,
                format!(
                    "server {} disabled: written with weight 0 (vipd still checks it)",
                    line.name
                ),
            );
        }
        if line.options.ssl {
            warn(
                warnings,
                &line.at,
                format!(
                    "server {} ssl: vipd does not originate TLS to servers (L4 pass-through); its health check uses TLS",
                    line.name
                ),
            );
        }
        if line.options.check {
            checked.push(line);
        }
        queues.push(line.options.maxqueue.filter(|queue| *queue > 0));
        servers.push(Server {
            name,
            address,
            weight,
            backup: line.options.backup,
            max_connections: line.options.maxconn,
            note,
        });
    }
    if servers.is_empty() {
        warn(
            warnings,
            &section.at,
            format!("backend {} has no usable server: skipped", section.name),
        );
        return None;
    }
    let first_checked = checked.first().map(|line| &line.options);
    for line in checked.iter().skip(1) {
        let (a, b) = (&line.options, first_checked.unwrap_or(&line.options));
        if a.inter != b.inter
            || a.rise != b.rise
            || a.fall != b.fall
            || is_tls_check(a) != is_tls_check(b)
            || a.ca_file != b.ca_file
        {
            warn(
                warnings,
                &line.at,
                format!(
                    "server {}: check settings differ from the first checked server's; vipd has one health check per backend: the first one's are used",
                    line.name
                ),
            );
        }
    }
    let send_proxy = collect_one(
        section,
        |options| options.send_proxy.filter(|value| *value != "none"),
        "send-proxy",
        warnings,
    );
    let shutdown_sessions = section
        .servers
        .iter()
        .any(|line| line.options.shutdown_sessions);
    let max_queue = queues
        .into_iter()
        .collect::<Option<Vec<u32>>>()
        .map(|queues| queues.iter().sum::<u32>().min(1_000_000));
    if max_queue.is_some() {
        notes.push(
            "max_queue: the sum of HAProxy's per-server maxqueue (vipd queues per backend)."
                .to_owned(),
        );
    }
    let health = health(section, first_checked, &mut notes, warnings);
    let timeout = timeouts(section, &frontends, &mut notes);
    Some(Backend {
        from: section.at.clone(),
        notes,
        name,
        balance: section.balance,
        send_proxy,
        retries: section.retries,
        shutdown_sessions,
        timeout,
        health,
        max_queue,
        servers,
    })
}

fn is_tls_check(options: &ServerOptions) -> bool {
    !options.no_check_ssl && (options.check_ssl || options.ssl)
}

/// A per-server setting vipd has per backend: the first server's, with a warning if they differ.
fn collect_one(
    section: &Section,
    value: impl Fn(&ServerOptions) -> Option<&'static str>,
    what: &str,
    warnings: &mut Vec<ImportWarning>,
) -> Option<&'static str> {
    let first = section
        .servers
        .first()
        .and_then(|line| value(&line.options));
    if let Some(line) = section
        .servers
        .iter()
        .find(|line| value(&line.options) != first)
    {
        warn(
            warnings,
            &line.at,
            format!(
                "server {}: {what} differs from the backend's first server; vipd sets it per backend: the first server's is used",
                line.name
            ),
        );
    }
    first
}

fn health(
    section: &Section,
    checked: Option<&ServerOptions>,
    notes: &mut Vec<String>,
    warnings: &mut Vec<ImportWarning>,
) -> Health {
    let Some(options) = checked else {
        notes.push(
            "no server had `check` in HAProxy: vipd checks them (TCP connect), starting up."
                .to_owned(),
        );
        return Health {
            initially_up: true,
            ..Health::default()
        };
    };
    let mut health = Health {
        interval: options.inter,
        rise: options.rise,
        fall: options.fall,
        ..Health::default()
    };
    let tls = is_tls_check(options) || section.check_connect_ssl;
    match (&section.http_check, tls) {
        (None, false) => {}
        (None, true) => {
            warn(
                warnings,
                &section.at,
                format!(
                    "backend {}: TLS checks without `option httpchk`: vipd's https check also sends a GET, so the check is written as a TCP connect; consider `kind: https` with `path: /readyz` for apiservers",
                    section.name
                ),
            );
        }
        (Some(check), tls) => {
            health.kind = Some(if tls { "https" } else { "http" });
            health.path.clone_from(&check.path);
            health.host.clone_from(&check.host);
            match &section.expect_status {
                Some(statuses) => health.expect_status = Some(statuses.clone()),
                None => notes.push("HAProxy's httpchk accepted any 2xx or 3xx status; vipd expects 200 unless `expect_status` says more.".to_owned()),
            }
            if tls {
                health.tls_verify = Some(match (&options.ca_file, options.verify_none) {
                    (Some(ca_file), false) => TlsVerify::CaFile(ca_file.clone()),
                    _ => TlsVerify::None,
                });
            }
        }
    }
    if let Some(timeout) = section.timeout_check {
        let interval = health.interval.unwrap_or(Duration::from_secs(2));
        health.timeout = Some(timeout.min(interval));
    }
    if health
        .interval
        .is_some_and(|interval| interval > Duration::from_secs(3600))
    {
        health.interval = Some(Duration::from_secs(3600));
    }
    if health
        .interval
        .is_some_and(|interval| interval < Duration::from_millis(10))
    {
        health.interval = Some(Duration::from_millis(10));
    }
    if let (Some(interval), Some(timeout)) = (health.interval, health.timeout) {
        health.timeout = Some(timeout.min(interval));
    } else if let (Some(interval), None) = (health.interval, health.timeout)
        && interval < Duration::from_secs(1)
    {
        health.timeout = Some(interval);
    }
    health
}

/// HAProxy's per-side timeouts to vipd's per-session ones. A session closes when either side
/// is idle for its timeout, so `idle` is the smaller of client and server; without `timeout
/// tunnel` HAProxy keeps applying them to established TCP sessions, so `tunnel` is the same.
fn timeouts(section: &Section, frontends: &[&Section], notes: &mut Vec<String>) -> Timeouts {
    let client = frontends
        .iter()
        .filter_map(|f| f.timeout_client)
        .min()
        .or(section.timeout_client);
    let client_fin = frontends
        .iter()
        .filter_map(|f| f.timeout_client_fin)
        .min()
        .or(section.timeout_client_fin);
    let idle = [client, section.timeout_server].into_iter().flatten().min();
    let tunnel = section.timeout_tunnel.or_else(|| {
        idle.inspect(|_| notes.push("tunnel: HAProxy had no `timeout tunnel`, so client/server timeouts applied to established sessions too.".to_owned()))
    });
    Timeouts {
        connect: section.timeout_connect,
        idle,
        tunnel,
        fin: [client_fin, section.timeout_server_fin]
            .into_iter()
            .flatten()
            .min(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Location {
        Location {
            file: "haproxy.cfg".into(),
            line: 1,
        }
    }

    #[test]
    fn words_follow_haproxy_quoting_and_comments() {
        let words =
            words(r#"option httpchk GET /readyz "HTTP/1.1\r\nHost: a" 'x # y' b\ c # note"#);
        assert_eq!(
            words.expect("parses"),
            [
                "option",
                "httpchk",
                "GET",
                "/readyz",
                "HTTP/1.1\r\nHost: a",
                "x # y",
                "b c"
            ]
        );
        assert!(super::words("bind \"198.51.100.50:80").is_err());
    }

    #[test]
    fn a_check_method_other_than_get_is_named_in_a_warning() {
        let mut warnings = Vec::new();
        let check = httpchk(&["HEAD".into(), "/healthz".into()], &at(), &mut warnings);
        assert_eq!(check.path.as_deref(), Some("/healthz"));
        assert_eq!(warnings.len(), 1);
        let mut warnings = Vec::new();
        httpchk(&["GET".into(), "/healthz".into()], &at(), &mut warnings);
        assert!(warnings.is_empty());
    }

    #[test]
    fn times_default_to_milliseconds_and_fit_vipd() {
        let mut warnings = Vec::new();
        let time = |text| haproxy_time(text, &at(), &mut Vec::new());
        assert_eq!(time("5000"), Some(Duration::from_secs(5)));
        assert_eq!(time("2s"), Some(Duration::from_secs(2)));
        assert_eq!(time("1m"), Some(Duration::from_secs(60)));
        assert_eq!(time("500us"), Some(Duration::from_millis(1)));
        assert_eq!(time("30d"), Some(MAX_TIMEOUT));
        assert_eq!(haproxy_time("5 s", &at(), &mut warnings), None);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn addresses_with_and_without_ports() {
        let parse = |text| socket_address(text, None).map(|address| address.to_string());
        assert_eq!(parse(":443").as_deref(), Ok("0.0.0.0:443"));
        assert_eq!(parse("*:80").as_deref(), Ok("0.0.0.0:80"));
        assert_eq!(
            parse("[2001:db8::1]:443").as_deref(),
            Ok("[2001:db8::1]:443")
        );
        assert_eq!(
            parse("ipv4@198.51.100.1:80").as_deref(),
            Ok("198.51.100.1:80")
        );
        assert!(parse("198.51.100.1").is_err());
        assert!(parse("198.51.100.1:8000-8010").is_err());
        assert!(parse("apiserver.local:6443").is_err());
        assert_eq!(
            socket_address("198.51.100.1", Some(6443))
                .map(|a| a.to_string())
                .as_deref(),
            Ok("198.51.100.1:6443")
        );
    }
}
