//! `option tcpka` / `clitcpka` / `srvtcpka` and their timings (`clitcpka-idle`, `-intvl`,
//! `-cnt`, and the `srvtcpka-` ones) as vipd's `tcp_keepalive` of frontends and backends.
//!
//! vipd keeps TCP keepalive on both sides by default (docs/configuration.md, tcp_keepalive), so
//! the options themselves change nothing; `no option ...` turns it off, and the timings are
//! written out (HAProxy without them used the kernel's `net.ipv4.tcp_keepalive_*`, typically a
//! first probe after 2 h, where vipd's default is 60 s).

use super::section::Section;
use super::values::haproxy_time;
use crate::draft::TcpKeepalive;
use crate::{ImportWarning, Location, warn};

/// Keepalive settings of one side as read.
#[derive(Clone, Debug, Default)]
pub(super) struct KeepaliveSide {
    /// `option` (true) or `no option` (false).
    pub(super) enabled: Option<bool>,
    pub(super) timing: TcpKeepalive,
}

/// `[no] option tcpka|clitcpka|srvtcpka`.
pub(super) fn keepalive_option(section: &mut Section, option: &str, enabled: bool) {
    let (client, server) = (option != "srvtcpka", option != "clitcpka");
    if client {
        section.client_keepalive.enabled = Some(enabled);
    }
    if server {
        section.server_keepalive.enabled = Some(enabled);
    }
}

/// `clitcpka-idle|intvl|cnt` and `srvtcpka-...`; false if `keyword` is none of them.
pub(super) fn keepalive_timing(
    section: &mut Section,
    keyword: &str,
    value: Option<&str>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> bool {
    let Some((side, setting)) = keyword.split_once("tcpka-") else {
        return false;
    };
    let side = match side {
        "cli" => &mut section.client_keepalive,
        "srv" => &mut section.server_keepalive,
        _ => return false,
    };
    let Some(value) = value else {
        warn(warnings, at, format!("{keyword} has no value: skipped"));
        return true;
    };
    // HAProxy reads these in seconds by default, not milliseconds.
    let seconds = |warnings: &mut Vec<ImportWarning>| {
        let with_unit = if value.chars().all(|c| c.is_ascii_digit()) {
            format!("{value}s")
        } else {
            value.to_owned()
        };
        haproxy_time(&with_unit, at, warnings)
    };
    match setting {
        "idle" => side.timing.idle = seconds(warnings),
        "intvl" => side.timing.interval = seconds(warnings),
        "cnt" => match value.parse::<u32>() {
            Ok(count) if (1..=127).contains(&count) => side.timing.count = Some(count),
            _ => warn(
                warnings,
                at,
                format!("{keyword} `{value}` is not 1..=127: skipped"),
            ),
        },
        _ => return false,
    }
    true
}

/// What to write for one side: `None` where vipd's default (on, its own timings) says it all.
pub(super) fn draft_keepalive(
    side: &KeepaliveSide,
    notes: &mut Vec<String>,
) -> Option<TcpKeepalive> {
    if side.enabled == Some(false) {
        return Some(TcpKeepalive {
            enabled: false,
            ..TcpKeepalive::default()
        });
    }
    if side.enabled == Some(true) && side.timing == TcpKeepalive::default() {
        notes.push(
            "tcp_keepalive: HAProxy probed with the kernel's net.ipv4.tcp_keepalive_* settings; \
             vipd's defaults are idle 60s, interval 10s, count 6."
                .to_owned(),
        );
    }
    let timing = TcpKeepalive {
        enabled: true,
        ..side.timing.clone()
    };
    (timing != TcpKeepalive::default_enabled()).then_some(timing)
}
