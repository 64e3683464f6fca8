//! The window in which "nothing moves when no node is better" holds (docs/operations.md,
//! Tracking and weights; the reasoning in docs/design/vrrp.md, Tracking).
//!
//! When the master's tracker fails first, it advertises its lowered priority; a preempting
//! backup discards those adverts (RFC 9568 6.4.2) and its Master_Down_Timer, last restarted by
//! the master's last advert at the old priority, runs out 3 × advert_interval + Skew_Time after
//! it. Only an advert the backup accepts stops that, and it accepts the lowered master's only
//! once its own tracker has failed too. The master's last advert before the timer runs out is
//! sent at least 2 × advert_interval after its priority dropped (3 × when the drop came within
//! Skew_Time of an advert), so the backup's check must fail within 2 × advert_interval
//! (+ `preempt_delay`, during which it still accepts the lower master) of the master's.
//! Otherwise the VIP moves to the backup and, once the backup's check fails too, back.

use std::time::Duration;

use super::Checker;
use crate::model::{Config, TrackTarget, Tracker, VrrpInstance};

impl Checker<'_> {
    /// Warns about each tracker whose detection time (interval × fall + timeout of its script or
    /// of its frontend's backend health check) is longer than the window: two nodes detecting
    /// one failure can be that far apart.
    pub(super) fn detection_outside_window(
        &mut self,
        instance: &VrrpInstance,
        path: &str,
        config: &Config,
    ) {
        // A backup that does not preempt never takes over from a live master; an owner
        // takes weight-0 trackers only (Fault moves the VIP whatever the peer does).
        if !instance.preempt || instance.is_address_owner() {
            return;
        }
        let window = 2 * instance.advert_interval + instance.preempt_delay;
        for (position, tracker) in instance.track.iter().enumerate() {
            if tracker.weight == 0 || !can_move_the_vip(instance, tracker) {
                continue;
            }
            let Some((what, detection)) = detection_time(&tracker.target, config) else {
                continue;
            };
            if detection > window {
                self.warn(
                    &format!("{path}.track[{position}]"),
                    format!(
                        "{what} detects a failure in up to {detection:?} (interval × fall + \
                         timeout), longer than the {window:?} (2 × advert_interval + \
                         preempt_delay) within which the peer must detect it too: when both \
                         nodes lose this check, the VIP may move to the peer and back instead \
                         of staying; shorten the check or lengthen advert_interval"
                    ),
                );
            }
        }
    }
}

/// Whether `tracker` failing on the preferred node of the pair can bring it below the other
/// (when the file says the peer's priority). Both nodes are assumed to track the same things
/// with the same weights, as docs/operations.md advises.
fn can_move_the_vip(instance: &VrrpInstance, tracker: &Tracker) -> bool {
    let Some(peer) = instance.peer_priority else {
        return true;
    };
    // With every tracker good a node advertises its highest priority (docs/design/vrrp.md,
    // Tracking); a failure takes |weight| off it (a positive weight is not added any more).
    let bonus: i32 = instance
        .track
        .iter()
        .map(|tracker| i32::from(tracker.weight.max(0)))
        .sum();
    let highest = |priority: u8| (i32::from(priority) + bonus).clamp(1, 254);
    let (preferred, other) = if instance.priority >= peer {
        (instance.priority, peer)
    } else {
        (peer, instance.priority)
    };
    highest(preferred) - i32::from(tracker.weight).abs() < highest(other)
}

/// What detects failures for `target`, and how long it takes at most; `None` for trackers that
/// see a change at once (interfaces) or only when an operator writes it (files).
fn detection_time(target: &TrackTarget, config: &Config) -> Option<(String, Duration)> {
    let of = |interval: Duration, fall: u32, timeout: Duration| interval * fall + timeout;
    match target {
        TrackTarget::Script { name } => {
            let script = config.scripts.get(name)?;
            Some((
                format!("script `{name}`"),
                of(script.interval, script.fall, script.timeout),
            ))
        }
        TrackTarget::Frontend { name, .. } => {
            let backend = config.backend(&config.frontend(name)?.backend)?;
            let health = &backend.health;
            Some((
                format!(
                    "frontend `{name}` (backend `{}`'s health check)",
                    backend.name
                ),
                of(health.interval, health.fall, health.timeout),
            ))
        }
        TrackTarget::Interface { .. } | TrackTarget::File { .. } => None,
    }
}
