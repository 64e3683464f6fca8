//! Effective priority from tracker results, with keepalived's weight semantics (docs/design/vrrp.md, Tracking).
//!
//! | weight | tracker OK                 | tracker failed            |
//! |--------|----------------------------|---------------------------|
//! | 0      | may leave Fault            | Fault                     |
//! | > 0    | priority + weight          | nothing added             |
//! | < 0    | nothing subtracted         | priority − abs(weight)    |
//!
//! File trackers contribute `value × weight` (weight 0: a non-zero value is a fault). The sum is
//! clamped to 1..=254 for non-owners; an address owner (255) keeps 255 and only weight-0 trackers
//! (validation refuses others) can put it in Fault.

/// A tracker's verdict after its own rise/fall hysteresis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The tracked thing works.
    Up,
    /// The tracked thing fails.
    Down,
    /// A file tracker's integer.
    Value(i64),
}

/// What one tracker does to its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contribution {
    /// Hold the instance in Fault.
    Fault,
    /// Add this much to the configured priority (may be negative).
    Delta(i64),
}

impl Contribution {
    /// The contribution of a tracker with `weight` whose verdict is `verdict`.
    pub fn of(weight: i16, verdict: Verdict) -> Self {
        let weight = i64::from(weight);
        match verdict {
            Verdict::Down if weight == 0 => Self::Fault,
            Verdict::Up if weight > 0 => Self::Delta(weight),
            Verdict::Down if weight < 0 => Self::Delta(weight),
            Verdict::Up | Verdict::Down => Self::Delta(0),
            // keepalived track_file: with weight 0 any non-zero value is a failure.
            Verdict::Value(value) if weight == 0 => {
                if value == 0 {
                    Self::Delta(0)
                } else {
                    Self::Fault
                }
            }
            Verdict::Value(value) => Self::Delta(value.saturating_mul(weight)),
        }
    }
}

/// The priority an instance should advertise, or Fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    /// At least one weight-0 tracker fails.
    Fault,
    /// Advertise this priority.
    Priority(u8),
}

/// Combines the configured priority with every tracker's contribution.
pub fn effective(
    configured: u8,
    contributions: impl IntoIterator<Item = Contribution>,
) -> Effective {
    // Tracker values come from outside (a file anyone with write access fills): summed in i128,
    // which no count of i64 deltas can overflow, so the order of the trackers cannot change the
    // result (an i64 saturating sum could: MAX + MAX + MIN would give -1), and the final sum
    // saturates into 1..=254.
    let mut delta: i128 = 0;
    for contribution in contributions {
        match contribution {
            Contribution::Fault => return Effective::Fault,
            Contribution::Delta(change) => delta = delta.saturating_add(i128::from(change)),
        }
    }
    if configured == 255 {
        // RFC 9568 section 6.1: the address owner always advertises 255.
        return Effective::Priority(255);
    }
    let clamped = i128::from(configured).saturating_add(delta).clamp(1, 254);
    Effective::Priority(u8::try_from(clamped).unwrap_or(254))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_zero_failure_is_fault_and_success_changes_nothing() {
        assert_eq!(Contribution::of(0, Verdict::Down), Contribution::Fault);
        assert_eq!(Contribution::of(0, Verdict::Up), Contribution::Delta(0));
    }

    #[test]
    fn positive_weight_adds_only_while_ok() {
        assert_eq!(Contribution::of(20, Verdict::Up), Contribution::Delta(20));
        assert_eq!(Contribution::of(20, Verdict::Down), Contribution::Delta(0));
    }

    #[test]
    fn negative_weight_subtracts_only_while_failed() {
        assert_eq!(Contribution::of(-60, Verdict::Up), Contribution::Delta(0));
        assert_eq!(
            Contribution::of(-60, Verdict::Down),
            Contribution::Delta(-60)
        );
    }

    #[test]
    fn file_value_is_multiplied_by_weight_and_nonzero_is_fault_at_weight_zero() {
        assert_eq!(
            Contribution::of(-10, Verdict::Value(3)),
            Contribution::Delta(-30)
        );
        assert_eq!(
            Contribution::of(0, Verdict::Value(0)),
            Contribution::Delta(0)
        );
        assert_eq!(Contribution::of(0, Verdict::Value(-1)), Contribution::Fault);
    }

    #[test]
    fn effective_priority_sums_and_clamps_to_1_through_254() {
        use Contribution::Delta;
        assert_eq!(
            effective(150, [Delta(-60), Delta(20)]),
            Effective::Priority(110)
        );
        assert_eq!(effective(100, [Delta(-200)]), Effective::Priority(1));
        assert_eq!(effective(200, [Delta(100)]), Effective::Priority(254));
        assert_eq!(effective(100, []), Effective::Priority(100));
    }

    #[test]
    fn any_fault_wins_over_deltas() {
        use Contribution::{Delta, Fault};
        assert_eq!(effective(150, [Delta(50), Fault]), Effective::Fault);
    }

    #[test]
    fn huge_file_values_saturate_instead_of_overflowing() {
        use Contribution::Delta;
        let huge = Contribution::of(10, Verdict::Value(i64::MAX));
        assert_eq!(huge, Delta(i64::MAX));
        assert_eq!(effective(100, [huge]), Effective::Priority(254));
        assert_eq!(effective(100, [Delta(i64::MIN)]), Effective::Priority(1));
        // Order does not matter: the sum is exact before it is clamped.
        assert_eq!(
            effective(100, [Delta(i64::MAX), Delta(i64::MAX), Delta(i64::MIN)]),
            Effective::Priority(254)
        );
    }

    proptest::proptest! {
        /// Any weight, any file value, any number of trackers: never a panic, always the
        /// configured priority plus the exact sum, clamped to 1..=254 (255 for the owner).
        #[test]
        fn every_input_gives_a_priority_in_range(
            configured in 1u8..=255,
            trackers in proptest::collection::vec(
                (proptest::num::i16::ANY, proptest::num::i64::ANY),
                0..8,
            ),
        ) {
            let contributions: Vec<Contribution> = trackers
                .iter()
                .map(|&(weight, value)| Contribution::of(weight, Verdict::Value(value)))
                .collect();
            let faulted = contributions.contains(&Contribution::Fault);
            let exact: i128 = contributions
                .iter()
                .map(|contribution| match contribution {
                    Contribution::Delta(change) => i128::from(*change),
                    Contribution::Fault => 0,
                })
                .sum();
            let expected = if faulted {
                Effective::Fault
            } else if configured == 255 {
                Effective::Priority(255)
            } else {
                let clamped = (i128::from(configured) + exact).clamp(1, 254);
                Effective::Priority(u8::try_from(clamped).expect("clamped to 1..=254"))
            };
            proptest::prop_assert_eq!(effective(configured, contributions), expected);
        }
    }

    #[test]
    fn address_owner_keeps_255_unless_faulted() {
        use Contribution::{Delta, Fault};
        assert_eq!(effective(255, [Delta(-50)]), Effective::Priority(255));
        assert_eq!(effective(255, [Fault]), Effective::Fault);
    }
}
