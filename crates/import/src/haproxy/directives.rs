//! One line of a proxy section (`defaults`, `frontend`, `backend`, `listen`), handed to its
//! family: mode and routing, balance, timeouts, options and checks, servers.

use super::bind::bind;
use super::check::{http_check_expect, http_check_send, httpchk};
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
