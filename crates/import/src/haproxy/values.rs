//! HAProxy's values: times with their units, and connection counts, checked against vipd's
//! ranges.

use std::time::Duration;

use crate::{ImportWarning, Location, warn};

/// The longest timeout vipd accepts (7 days).
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// HAProxy times: a number with an optional unit (`us`, `ms`, `s`, `m`, `h`, `d`); milliseconds
/// when there is none. Clamped to vipd's 1ms..=7d.
pub(super) fn haproxy_time(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Duration> {
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

pub(super) fn connections(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<u32> {
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
