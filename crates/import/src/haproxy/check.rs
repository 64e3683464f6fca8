//! Health checks: `option httpchk`, `http-check send|expect`, and the one health check per
//! backend vipd builds from them and the servers' `check` options.

use std::time::Duration;

use super::section::{HttpCheck, Section, ServerOptions};
use crate::draft::{Health, TlsVerify};
use crate::{ImportWarning, Location, warn};

/// `option httpchk [<method>] [<uri>] [<version>]`; an old-style version may carry headers
/// (`HTTP/1.1\r\nHost:\ example`).
pub(super) fn httpchk(
    args: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> HttpCheck {
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
            if let Some((name, value)) = header.split_once(':') {
                add_header(&mut check, name.trim(), value.trim(), at, warnings);
            } else if !header.trim().is_empty() {
                warn(
                    warnings,
                    at,
                    format!("httpchk header `{}` has no `:`: skipped", header.trim()),
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

/// One request header of a check: Host becomes `host`; others go to `headers` unless vipd
/// writes them itself or they would not survive as one header line.
fn add_header(
    check: &mut HttpCheck,
    name: &str,
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        check.host = host_name(value, at, warnings);
    } else if matches!(
        lower.as_str(),
        "connection" | "content-length" | "transfer-encoding"
    ) {
        warn(
            warnings,
            at,
            format!("check header {name}: vipd sets it itself: skipped"),
        );
    } else if name.is_empty()
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
        || value.contains(['\r', '\n', '\0'])
    {
        warn(
            warnings,
            at,
            format!(
                "check header `{}`: not a header vipd can send: skipped",
                name.escape_debug()
            ),
        );
    } else {
        check.headers.push((name.to_owned(), value.to_owned()));
    }
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]...` (HAProxy 2.2+).
pub(super) fn http_check_send(
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
            ("hdr", Some(name)) => {
                let value = words.next().map_or("", String::as_str);
                add_header(check, name, value, at, warnings);
            }
            ("meth", Some(method)) if method == "GET" => {}
            ("ver", Some(_)) => {}
            (word, value) => {
                let value = value.map_or(String::new(), |value| format!(" {value}"));
                warn(
                    warnings,
                    at,
                    format!(
                        "http-check send {word}{value}: vipd sends `GET path` with headers: skipped"
                    ),
                );
            }
        }
    }
}

/// `http-check expect [!] status <codes>`: codes, lists and ranges (`200,204`, `200-299`).
pub(super) fn http_check_expect(
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

pub(super) fn health(
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
        error_limit: error_limit(section, options, notes, warnings),
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
            health.headers.clone_from(&check.headers);
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
    check_target(section, options, &mut health, warnings);
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

/// `observe layer4` with `error-limit` and `on-error` as vipd's `error_limit`: consecutive
/// connection failures of client traffic that mark the server down. Without `observe`, vipd's
/// default (3) applies: HAProxy left such a server in rotation until its checks failed.
fn error_limit(
    section: &Section,
    options: &ServerOptions,
    notes: &mut Vec<String>,
    warnings: &mut Vec<ImportWarning>,
) -> Option<u32> {
    if !options.observe_layer4 {
        notes.push("error_limit: HAProxy did not observe client traffic; vipd marks a server down after 3 failed connection attempts in a row (health.error_limit: 0 turns it off).".to_owned());
        return None;
    }
    // HAProxy's default error-limit.
    let limit = options.error_limit.unwrap_or(10);
    match options.on_error.as_deref() {
        Some("mark-down") => {}
        other => warn(
            warnings,
            &section.at,
            format!(
                "backend {}: on-error {}: vipd marks the server down after error-limit errors (as `on-error mark-down`); written as error_limit {limit}",
                section.name,
                other.unwrap_or("fastinter (HAProxy's default)")
            ),
        ),
    }
    Some(limit)
}

/// `port`, `check-send-proxy`, `check-sni` and `crt` of the first checked server (`addr` is per
/// server: backends.rs).
fn check_target(
    section: &Section,
    options: &ServerOptions,
    health: &mut Health,
    warnings: &mut Vec<ImportWarning>,
) {
    health.port = options.check_port;
    if options.check_send_proxy {
        // HAProxy sends the server's PROXY version, v1 when the server sends none.
        health.send_proxy = Some(match options.send_proxy {
            Some("v2") => "v2",
            _ => "v1",
        });
    }
    let tls_only = [
        ("check-sni", options.check_sni.is_some()),
        ("crt", options.crt.is_some()),
    ];
    for (option, set) in tls_only {
        if set && health.kind != Some("https") {
            warn(
                warnings,
                &section.at,
                format!(
                    "backend {}: {option} applies to vipd's https checks only (check-ssl with option httpchk): skipped",
                    section.name
                ),
            );
        }
    }
    if health.kind != Some("https") {
        return;
    }
    health.sni.clone_from(&options.check_sni);
    match &options.crt {
        Some(crt) if crt.starts_with('/') => health.client_certificate = Some(crt.clone()),
        Some(crt) => warn(
            warnings,
            &section.at,
            format!(
                "backend {}: crt `{crt}` is relative (crt-base): vipd needs an absolute path: skipped",
                section.name
            ),
        ),
        None => {}
    }
}

pub(super) fn is_tls_check(options: &ServerOptions) -> bool {
    !options.no_check_ssl && (options.check_ssl || options.ssl)
}
