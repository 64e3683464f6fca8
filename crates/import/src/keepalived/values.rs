//! keepalived's values: seconds (possibly fractional), counts and user names, each checked
//! against what vipd accepts, with a warning naming the line otherwise.

use std::time::Duration;

use crate::{ImportWarning, Location, warn};

/// A user name vipd accepts (it checks no more than this; the node's passwd decides).
pub(super) fn user_name(
    user: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<String> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        warn(
            warnings,
            at,
            format!("user `{}` is not a user name: skipped", user.escape_debug()),
        );
        return None;
    }
    Some(user.to_owned())
}

/// keepalived's times are seconds, possibly fractional (`advert_int 0.5`).
pub(super) fn seconds(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Duration> {
    let parsed = value
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && (0.0..=31_536_000.0).contains(seconds));
    let Some(seconds) = parsed else {
        warn(
            warnings,
            at,
            format!("`{value}` is not a number of seconds: skipped"),
        );
        return None;
    };
    // At most a year in milliseconds, not negative: well inside u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let millis = (seconds * 1000.0).round() as u64;
    Some(Duration::from_millis(millis))
}

pub(super) fn count(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(count) if (1..=100).contains(&count) => Some(count),
        _ => {
            warn(
                warnings,
                at,
                format!("`{value}` is not a count in 1..=100 (vipd's range): skipped"),
            );
            None
        }
    }
}
