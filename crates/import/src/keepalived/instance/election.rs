//! Who becomes master: `virtual_router_id`, `priority`, `state`, `preempt` / `nopreempt` and
//! `preempt_delay`.

use std::time::Duration;

use super::Directives;
use crate::keepalived::values::seconds;
use crate::{ImportWarning, Location, warn};

/// `virtual_router_id N`, 1..=255; `None` (with a warning) otherwise.
pub(super) fn virtual_router_id(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<u8> {
    match value.parse::<u8>() {
        Ok(id) if id >= 1 => Some(id),
        _ => {
            warn(
                warnings,
                at,
                format!("virtual_router_id `{value}` is not 1..=255"),
            );
            None
        }
    }
}

/// `priority N`, 1..=255; `None` (with a warning) otherwise.
pub(super) fn priority(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<u8> {
    match value.parse::<u8>() {
        Ok(value) if value >= 1 => Some(value),
        _ => {
            warn(
                warnings,
                at,
                format!("priority `{value}` is not 1..=255: vipd's default 100 is used"),
            );
            None
        }
    }
}

/// `state MASTER|BACKUP`: only keepalived's initial state, noted above the instance.
pub(super) fn state(block: &mut Directives, state: &str, at: &Location) {
    block.state_master = Some((state.eq_ignore_ascii_case("MASTER"), at.clone()));
    block.notes.push(format!(
        "{at}: state {state}: only keepalived's initial state; vipd elects by \
         priority from the start."
    ));
}

/// `preempt_delay SECONDS`, at most vipd's 1h.
pub(super) fn preempt_delay(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Duration> {
    seconds(value, at, warnings).map(|delay| delay.min(Duration::from_secs(3600)))
}

/// keepalived ignores `nopreempt` unless the state is BACKUP; vipd does not.
pub(super) fn warn_nopreempt_master(
    preempt: Option<bool>,
    state_master: Option<&(bool, Location)>,
    warnings: &mut Vec<ImportWarning>,
) {
    if let (Some(false), Some((true, at))) = (preempt, state_master) {
        warn(
            warnings,
            at,
            "nopreempt with state MASTER: keepalived ignores nopreempt unless the state is BACKUP; vipd applies `preempt: false` anyway",
        );
    }
}
