//! One line of a proxy section (`defaults`, `frontend`, `backend`, `listen`), handed to its
//! family: mode and routing, balance, timeouts, options and checks, servers.

use super::bind::bind;
use super::check::{http_check_expect, http_check_send, httpchk};
use super::keepalive::{keepalive_option, keepalive_timing};
use super::section::{Kind, Section, ServerLine};
use super::server::server_options;
use super::timeout::timeout;
use super::values::connections;
use crate::{ImportWarning, Location, warn};

pub(super) fn directive(
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
        ("use_backend", Some(name)) if words.len() == 2 => use_backend(section, name, at, warnings),
        ("use_backend", _) => warn(
            warnings,
            at,
            "use_backend with a condition: vipd has no ACL routing (one backend per frontend): skipped",
        ),
        ("balance", Some(algorithm)) => section.balance = balance(algorithm, at, warnings),
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
        ("no", Some("option")) if matches!(arg(2), Some("tcpka" | "clitcpka" | "srvtcpka")) => {
            keepalive_option(section, arg(2).unwrap_or_default(), false);
        }
        (keyword, value) if keepalive_timing(section, keyword, value, at, warnings) => {}
        ("no", Some("option")) => warn(
            warnings,
            at,
            format!(
                "`{}`: vipd's behaviour has no switch for it: skipped",
                words.join(" ")
            ),
        ),
        ("http-check", Some("expect")) => http_check_expect(section, &words[2..], at, warnings),
        ("http-check", Some("connect")) => http_check_connect(section, &words[2..], at, warnings),
        ("http-check", Some("send")) => http_check_send(section, &words[2..], at, warnings),
        ("server", Some(name)) if section.is_backend() => {
            server(section, name, words, at, warnings);
        }
        ("default-server", Some(_)) => {
            let mut options = section.default_server.clone();
            server_options(&mut options, &words[1..], at, warnings);
            section.default_server = options;
        }
        (keyword, _) => without_equivalent(keyword, at, warnings),
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
        // What vipd always does: every retry goes to another server while one is left; splice(2) once a
        // direction carries bulk traffic; the first bytes ride on the handshake's last ACK.
        "redispatch" | "splice-auto" | "splice-request" | "splice-response"
        | "tcp-smart-connect" => {}
        "httpchk" => section.http_check = Some(httpchk(args, at, warnings)),
        "tcp-check" => section.http_check = None,
        "tcplog" | "httplog" | "dontlognull" => log_option(option, at, warnings),
        "tcpka" | "clitcpka" | "srvtcpka" => keepalive_option(section, option, true),
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

/// Where vipd's session log stands in for HAProxy's logging (docs/operations.md, Session log).
const SESSION_LOG: &str = "vipd logs every session end on target `vipd::session` to stderr / the journal, with tcplog's fields as key=value (JSON with `--log-format json`)";

/// `option tcplog|httplog|dontlognull`: the session log is vipd's tcplog, on unless the log
/// filter turns it off. Said even for `tcplog`, because the line's format is not HAProxy's.
fn log_option(option: &str, at: &Location, warnings: &mut Vec<ImportWarning>) {
    let message = match option {
        "tcplog" => {
            format!("option tcplog: {SESSION_LOG}; parsers of HAProxy's format need adapting")
        }
        // HAProxy itself falls back to tcplog for an httplog in TCP mode, and vipd is TCP only.
        "httplog" => format!(
            "option httplog: vipd is L4 and logs as with tcplog (as HAProxy does in TCP mode): {SESSION_LOG}"
        ),
        _ => format!(
            "option {option}: {SESSION_LOG}, sessions without data too (bytes_in=0 bytes_out=0): skipped"
        ),
    };
    warn(warnings, at, message);
}

/// `balance ALGORITHM`: vipd's name for it, or `None` (its default) for one it does not have.
fn balance(
    algorithm: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<&'static str> {
    match algorithm {
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
        algorithm if algorithm == "random" || algorithm.starts_with("random(") => Some("random"),
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
    }
}

/// `use_backend NAME` without a condition: the frontend's one backend.
fn use_backend(
    section: &mut Section,
    name: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
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

/// `http-check connect [ssl] ...`.
fn http_check_connect(
    section: &mut Section,
    options: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    for option in options {
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

/// `server NAME ADDRESS [options]`, starting from the section's `default-server` options.
fn server(
    section: &mut Section,
    name: &str,
    words: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let arg = |index: usize| words.get(index).map(String::as_str);
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

/// The directives vipd has no equivalent for, some with a word on what to use instead.
fn without_equivalent(keyword: &str, at: &Location, warnings: &mut Vec<ImportWarning>) {
    match keyword {
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
        | "capture" => warn(
            warnings,
            at,
            format!(
                "{keyword}: vipd is an L4 proxy without ACLs, stick tables or request rules: skipped"
            ),
        ),
        "log" => warn(
            warnings,
            at,
            "log: vipd logs to stderr / the journal: skipped",
        ),
        "log-format" | "log-format-sd" | "error-log-format" => warn(
            warnings,
            at,
            format!("{keyword}: {SESSION_LOG}, in a fixed format: skipped"),
        ),
        "stats" => warn(
            warnings,
            at,
            "stats: use `vipd status`, GET /status, GET /metrics or the dashboard instead: skipped",
        ),
        _ => warn(
            warnings,
            at,
            format!("`{keyword}` has no vipd equivalent: skipped"),
        ),
    }
}
