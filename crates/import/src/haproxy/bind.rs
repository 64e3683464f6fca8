//! `bind` lines (and `listen NAME ADDR:PORT`): the addresses a frontend listens on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::section::Section;
use crate::{ImportWarning, Location, warn};

/// `bind ADDR:PORT[,ADDR:PORT...] [options]`.
pub(super) fn bind(
    section: &mut Section,
    words: &[String],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
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
pub(super) fn socket_address(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
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
