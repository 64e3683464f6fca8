//! The options of `server` and `default-server` lines.

use super::section::ServerOptions;
use super::values::{connections, haproxy_time};
use crate::{ImportWarning, Location, warn};

pub(super) fn server_options(
    options: &mut ServerOptions,
    words: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let keyword = word.as_str();
        if set_flag(options, keyword) {
            continue;
        }
        let mut value = || words.next().map(String::as_str);
        match keyword {
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
            "rise" | "fall" => rise_or_fall(options, keyword, value(), at, warnings),
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
            "observe" | "error-limit" | "on-error" => {
                passive_check_option(options, keyword, value(), at, warnings);
            }
            "port" => match value().map(str::parse::<u16>) {
                Some(Ok(port)) if port > 0 => options.check_port = Some(port),
                _ => warn(warnings, at, "server port is not 1..=65535: skipped"),
            },
            "addr" => match value().map(str::parse) {
                Some(Ok(address)) => options.check_addr = Some(address),
                _ => warn(
                    warnings,
                    at,
                    "server addr is not an IP address (vipd does not resolve names): skipped",
                ),
            },
            "slowstart" => {
                options.slowstart = value().and_then(|value| haproxy_time(value, at, warnings));
            }
            "check-sni" => options.check_sni = value().map(str::to_owned),
            "crt" => options.crt = value().map(str::to_owned),
            "sni" | "id" | "cookie" | "on-marked-up" | "resolvers" | "resolve-prefer"
            | "init-addr" | "minconn" | "source" | "proto" | "alpn" | "check-alpn"
            | "pool-max-conn" | "ciphers" | "agent-port" | "agent-inter" | "agent-send"
            | "verifyhost" | "track" | "redir" | "namespace" | "ssl-min-ver" | "ssl-max-ver"
            | "pool-purge-delay" | "max-reuse" | "tfo" | "check-proto" | "ws" | "log-proto" => {
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

/// `observe`, `error-limit`, `on-error`: client traffic feeding a server's health
/// (`health.error_limit`).
fn passive_check_option(
    options: &mut ServerOptions,
    keyword: &str,
    value: Option<&str>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    match keyword {
        "observe" => match value {
            Some("layer4") => options.observe_layer4 = true,
            other => warn(
                warnings,
                at,
                format!(
                    "observe {}: vipd observes connection errors only (layer4): skipped",
                    other.unwrap_or("")
                ),
            ),
        },
        "error-limit" => match value.map(str::parse::<u32>) {
            Some(Ok(limit)) if (1..=1000).contains(&limit) => {
                options.error_limit = Some(limit);
            }
            _ => warn(warnings, at, "error-limit is not 1..=1000: skipped"),
        },
        "on-error" => options.on_error = value.map(str::to_owned),
        _ => {}
    }
}

/// The options without a value; whether `keyword` was one.
fn set_flag(options: &mut ServerOptions, keyword: &str) -> bool {
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
        "check-send-proxy" => options.check_send_proxy = true,
        "no-check-ssl" => options.no_check_ssl = true,
        "ssl" => options.ssl = true,
        "no-ssl" => options.ssl = false,
        _ => return false,
    }
    true
}

/// `rise N` / `fall N`, 1..=100; a bad value keeps the inherited one.
fn rise_or_fall(
    options: &mut ServerOptions,
    keyword: &str,
    value: Option<&str>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    let count = value
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
