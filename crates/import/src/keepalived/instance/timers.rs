//! `advert_int` and the gratuitous ARP / unsolicited NA timers (`garp_master_*`), fitted to
//! what the instance's VRRP version and vipd accept.

use std::time::Duration;

use crate::draft::Garp;
use crate::emit::duration;
use crate::{ImportWarning, Location, warn};

/// VRRP v2 counts the advert interval in whole seconds (1..=255), v3 in centiseconds
/// (1..=4095).
pub(super) fn fit_advert_interval(
    interval: Option<Duration>,
    version: u8,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Duration> {
    let interval = interval?;
    if version == 2 {
        let whole = interval.as_secs().clamp(1, 255);
        if interval != Duration::from_secs(whole) {
            warn(
                warnings,
                at,
                format!(
                    "advert_int {}: VRRP v2 counts whole seconds: {whole}s written",
                    duration(interval)
                ),
            );
        }
        Some(Duration::from_secs(whole))
    } else {
        let centis = (interval.as_millis() / 10).clamp(1, 4095);
        Some(Duration::from_millis(
            u64::try_from(centis).unwrap_or(100) * 10,
        ))
    }
}

/// vipd's ranges: delay up to 1h, refresh up to a day, 1..=100 repeats.
pub(super) fn clamp_garp(garp: &mut Garp) {
    if garp
        .delay
        .is_some_and(|delay| delay > Duration::from_secs(3600))
    {
        garp.delay = Some(Duration::from_secs(3600));
    }
    if garp
        .refresh
        .is_some_and(|refresh| refresh > Duration::from_secs(86400))
    {
        garp.refresh = Some(Duration::from_secs(86400));
    }
    garp.repeat = garp.repeat.map(|repeat| repeat.clamp(1, 100));
}
