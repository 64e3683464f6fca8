//! Validated protocol values: a value of these types is always one the RFCs allow.

use std::fmt;
use std::time::Duration;

/// A value outside the range the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be in {min}..={max}, got {value}")]
pub struct OutOfRange {
    /// Which field was out of range (`"vrid"`, `"max advert interval"`, ...).
    pub field: &'static str,
    /// The rejected value.
    pub value: u64,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}

/// Virtual Router Identifier, 1..=255 (RFC 9568 section 5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrid(u8);

impl Vrid {
    /// The VRID as it goes on the wire.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Vrid {
    type Error = OutOfRange;
    fn try_from(value: u8) -> Result<Self, OutOfRange> {
        if value == 0 {
            return Err(OutOfRange {
                field: "vrid",
                value: 0,
                min: 1,
                max: 255,
            });
        }
        Ok(Self(value))
    }
}

impl fmt::Display for Vrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// VRRP priority (RFC 9568 section 5.2.4): 0 means "the master is releasing", 255 means "I own the
/// addresses", 1..=254 is an ordinary router. Every `u8` is a valid priority on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Sent by a master that stops being master, so backups take over after Skew_Time.
    pub const RELEASE: Self = Self(0);
    /// The address owner's priority.
    pub const OWNER: Self = Self(255);
    /// The default priority of a backup (RFC 9568 section 5.2.4).
    pub const DEFAULT_BACKUP: Self = Self(100);

    /// Any wire value is a priority.
    pub const fn new(value: u8) -> Self {
        Self(value)
    }

    /// The priority as it goes on the wire.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Priority 0: the sender is giving up mastership.
    pub const fn is_release(self) -> bool {
        self.0 == 0
    }

    /// Priority 255: the sender owns the virtual addresses.
    pub const fn is_owner(self) -> bool {
        self.0 == 255
    }
}

impl From<u8> for Priority {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A VRRPv3 advertisement interval in centiseconds, 1..=4095 (the 12-bit Max Adver Int field,
/// RFC 9568 section 5.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Centis(u16);

impl Centis {
    /// The largest interval the 12-bit field can carry (40.95 s).
    pub const MAX: Self = Self(4095);

    /// The interval as it goes on the wire.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The interval in microseconds, the unit all timer arithmetic uses.
    pub const fn as_micros(self) -> u64 {
        // Widening cast: u16 always fits in u64.
        self.0 as u64 * 10_000
    }

    /// The interval as a `Duration`.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.as_micros())
    }

    /// Converts a duration that is a whole number of centiseconds in 10 ms..=40.95 s.
    pub fn from_duration(interval: Duration) -> Result<Self, OutOfRange> {
        let micros = interval.as_micros();
        let out_of_range = || OutOfRange {
            field: "v3 advert interval (ms, in 10 ms steps)",
            value: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            min: 10,
            max: 40_950,
        };
        if !micros.is_multiple_of(10_000) {
            return Err(out_of_range());
        }
        let centis = u16::try_from(micros / 10_000).map_err(|_| out_of_range())?;
        Self::try_from(centis).map_err(|_| out_of_range())
    }
}

impl TryFrom<u16> for Centis {
    type Error = OutOfRange;
    fn try_from(value: u16) -> Result<Self, OutOfRange> {
        if value == 0 || value > Self::MAX.0 {
            return Err(OutOfRange {
                field: "max advert interval (centiseconds)",
                value: u64::from(value),
                min: 1,
                max: u64::from(Self::MAX.0),
            });
        }
        Ok(Self(value))
    }
}

impl fmt::Display for Centis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cs", self.0)
    }
}

/// The VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, intervals in whole seconds, optional simple-password authentication.
    V2,
    /// RFC 9568: IPv4 or IPv6, intervals in centiseconds, no authentication.
    V3,
}

impl Version {
    /// The value of the version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrid_zero_is_rejected_and_one_to_255_accepted() {
        assert!(Vrid::try_from(0).is_err());
        assert_eq!(Vrid::try_from(1).unwrap().get(), 1);
        assert_eq!(Vrid::try_from(255).unwrap().get(), 255);
    }

    #[test]
    fn centis_accepts_1_to_4095_only() {
        assert!(Centis::try_from(0).is_err());
        assert!(Centis::try_from(4096).is_err());
        assert_eq!(Centis::try_from(4095).unwrap(), Centis::MAX);
        assert_eq!(Centis::try_from(100).unwrap().as_micros(), 1_000_000);
    }

    #[test]
    fn centis_from_duration_needs_whole_centiseconds() {
        assert_eq!(
            Centis::from_duration(Duration::from_secs(1)).unwrap().get(),
            100
        );
        assert!(Centis::from_duration(Duration::from_millis(15)).is_err());
        assert!(Centis::from_duration(Duration::ZERO).is_err());
        assert!(Centis::from_duration(Duration::from_secs(41)).is_err());
        assert_eq!(
            Centis::from_duration(Duration::from_millis(40_950)).unwrap(),
            Centis::MAX
        );
    }

    #[test]
    fn priority_zero_is_release_and_255_is_owner() {
        assert!(Priority::new(0).is_release());
        assert!(Priority::new(255).is_owner());
        assert!(!Priority::new(100).is_owner());
    }
}
