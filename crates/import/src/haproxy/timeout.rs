//! `timeout` lines, and HAProxy's per-side timeouts mapped to vipd's per-session ones.

use super::section::Section;
use super::values::haproxy_time;
use crate::draft::Timeouts;
use crate::{ImportWarning, Location, warn};

pub(super) fn timeout(
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
        "queue" => &mut section.timeout_queue,
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

/// HAProxy's per-side timeouts to vipd's per-session ones. A session closes when either side
/// is idle for its timeout, so `idle` is the smaller of client and server; without `timeout
/// tunnel` HAProxy keeps applying them to established TCP sessions, so `tunnel` is the same.
pub(super) fn timeouts(
    section: &Section,
    frontends: &[&Section],
    notes: &mut Vec<String>,
) -> Timeouts {
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
        queue: section.timeout_queue,
        connect: section.timeout_connect,
        idle,
        tunnel,
        fin: [client_fin, section.timeout_server_fin]
            .into_iter()
            .flatten()
            .min(),
    }
}
