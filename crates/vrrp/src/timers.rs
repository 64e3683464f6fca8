//! The timer formulas of RFC 3768 section 6.1 and RFC 9568 section 6.1, in integer microseconds as
//! keepalived computes them, so that results are exact and the same on every machine.
//!
//! The versions differ in Skew_Time: v2's is `(256 - Priority) / 256` seconds whatever the advert
//! interval, v3's scales with the master's interval. keepalived computes the same
//! (`VRRP_TIMER_SKEW_CALC`). Divisions truncate to the microsecond, as keepalived's do.

use crate::fields::{Priority, Version};

/// Microseconds in one second.
pub const MICROS_PER_SECOND: u64 = 1_000_000;

/// Skew_Time in microseconds: v3 `((256 - Priority) * Master_Adver_Interval) / 256`
/// (RFC 9568 6.1), v2 `(256 - Priority) / 256` seconds (RFC 3768 6.1).
///
/// v3 100 cs at priority 100: 609 375 µs. v2 at priority 150: 414 062 µs.
pub const fn skew_micros(version: Version, priority: Priority, master_interval_micros: u64) -> u64 {
    let scale = match version {
        Version::V2 => MICROS_PER_SECOND,
        Version::V3 => master_interval_micros,
    };
    (256 - priority.get() as u64) * scale / 256
}

/// `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`, in microseconds.
///
/// v3 100 cs at priority 100: 3 609 375 µs.
pub const fn master_down_micros(
    version: Version,
    priority: Priority,
    master_interval_micros: u64,
) -> u64 {
    3 * master_interval_micros + skew_micros(version, priority, master_interval_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_SECOND: u64 = MICROS_PER_SECOND;

    #[test]
    fn v3_skew_and_master_down_at_100cs_priority_100_rfc9568_6_1() {
        let priority = Priority::new(100);
        assert_eq!(skew_micros(Version::V3, priority, ONE_SECOND), 609_375);
        assert_eq!(
            master_down_micros(Version::V3, priority, ONE_SECOND),
            3_609_375
        );
    }

    #[test]
    fn v3_skew_scales_with_the_learned_interval_rfc9568_6_1() {
        // 10 cs: skew 6.09 cs, truncated to the microsecond.
        let priority = Priority::new(100);
        assert_eq!(skew_micros(Version::V3, priority, 100_000), 60_937);
        assert_eq!(master_down_micros(Version::V3, priority, 100_000), 360_937);
        assert_eq!(
            master_down_micros(Version::V3, priority, 3 * ONE_SECOND),
            10_828_125
        );
    }

    #[test]
    fn v2_skew_is_256_minus_priority_over_256_seconds_whatever_the_interval_rfc3768_6_1() {
        assert_eq!(
            skew_micros(Version::V2, Priority::new(150), ONE_SECOND),
            414_062
        );
        assert_eq!(
            master_down_micros(Version::V2, Priority::new(150), ONE_SECOND),
            3_414_062
        );
        assert_eq!(
            master_down_micros(Version::V2, Priority::new(100), 3 * ONE_SECOND),
            9_609_375
        );
    }

    #[test]
    fn skew_of_the_owner_is_smallest_and_of_priority_1_largest() {
        assert_eq!(skew_micros(Version::V3, Priority::OWNER, ONE_SECOND), 3_906);
        assert_eq!(
            skew_micros(Version::V3, Priority::new(1), ONE_SECOND),
            996_093
        );
    }
}
