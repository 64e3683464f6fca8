//! Why received adverts were dropped, one counter per reason, for status and metrics
//! (docs/metrics.md, "VRRP instances"; docs/design/vrrp.md, "Receiving").
//!
//! Three layers drop: the transport (IP framing, TTL, unknown unicast peer), the codec (length,
//! version, checksum, ...) and the router (version, family, v2 interval and authentication).
//! An operator alerting on drops wants to know which, so each reason is its own counter, and the
//! list of reasons is fixed ([`REASONS`]) so every series exists from the start, at zero.
//!
//! Adverts of another VRID are not drops: on a shared LAN every other virtual router's adverts
//! reach this socket, all day long. They are counted apart ([`InstanceCounters::adverts_other_vrid`])
//! so that `adverts_dropped` stays quiet unless something is wrong.

use std::collections::BTreeMap;

use vipd_net::TransportStats;
use vipd_vrrp::{DropCounts, ParseError};

use crate::control::InstanceCounters;

/// Multicast advert with TTL / hop limit other than 255 (RFC 9568 7.1).
pub const TTL: &str = "ttl";
/// Unicast advert from an address that is not a configured peer.
pub const UNKNOWN_PEER: &str = "unknown_peer";
/// IP framing unusable, or a datagram longer than any advert (transport).
pub const IP_FRAMING: &str = "ip_framing";
/// Shorter than the fixed VRRP header.
pub const TRUNCATED: &str = "truncated";
/// Length other than the address count implies (RFC 9568 7.1): a cut or padded packet, or an
/// oversized count.
pub const LENGTH: &str = "length";
/// Neither checksum form verifies (RFC 9568 7.1).
pub const CHECKSUM: &str = "checksum";
/// A version that is not 2 or 3, or not the instance's (RFC 9568 7.1).
pub const VERSION: &str = "version";
/// IP source or addresses of the other family, or v2 over IPv6.
pub const FAMILY: &str = "family";
/// v2 Adver Int other than ours (RFC 3768 7.1).
pub const INTERVAL: &str = "interval";
/// v2 authentication other than ours (RFC 3768 7.1).
pub const AUTH: &str = "auth";
/// Anything else the codec refuses: an unknown type, VRID 0, interval 0, an unknown v2 auth type.
pub const MALFORMED: &str = "malformed";

/// Every reason, in the order status and metrics list them.
pub const REASONS: [&str; 11] = [
    TTL,
    UNKNOWN_PEER,
    IP_FRAMING,
    TRUNCATED,
    LENGTH,
    CHECKSUM,
    VERSION,
    FAMILY,
    INTERVAL,
    AUTH,
    MALFORMED,
];

/// The reason the codec's `error` is counted under.
pub fn parse_reason(error: &ParseError) -> &'static str {
    match error {
        ParseError::Truncated { .. } => TRUNCATED,
        ParseError::LengthMismatch { .. } => LENGTH,
        ParseError::Checksum { .. } => CHECKSUM,
        ParseError::UnknownVersion { .. } => VERSION,
        ParseError::AddressFamily { .. } => FAMILY,
        ParseError::UnknownType { .. }
        | ParseError::ZeroVrid
        | ParseError::ZeroInterval
        | ParseError::UnsupportedAuthType { .. } => MALFORMED,
    }
}

/// The drops the instance task counts itself (the codec's), by reason.
#[derive(Debug, Default)]
pub struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    /// Counts one drop for `reason`.
    pub fn count(&mut self, reason: &'static str) {
        let counter = self.0.entry(reason).or_default();
        *counter = counter.saturating_add(1);
    }

    /// Every layer's drops together: the per-reason map (every reason of [`REASONS`] present),
    /// the total over it, and the adverts of other VRIDs.
    pub fn fill(
        &self,
        router: &DropCounts,
        transport: &TransportStats,
        into: &mut InstanceCounters,
    ) {
        let mut by_reason: BTreeMap<String, u64> = REASONS
            .iter()
            .map(|reason| ((*reason).to_owned(), 0))
            .collect();
        let layers = [
            (TTL, transport.dropped_ttl),
            (UNKNOWN_PEER, transport.dropped_unknown_peer),
            (IP_FRAMING, transport.dropped_malformed),
            (VERSION, router.wrong_version),
            (FAMILY, router.wrong_family),
            (INTERVAL, router.interval_mismatch),
            (AUTH, router.auth_mismatch),
        ];
        let own = self.0.iter().map(|(reason, count)| (*reason, *count));
        for (reason, count) in layers.into_iter().chain(own) {
            let counter = by_reason.entry(reason.to_owned()).or_default();
            *counter = counter.saturating_add(count);
        }
        into.adverts_dropped = by_reason
            .values()
            .fold(0, |total: u64, count| total.saturating_add(*count));
        into.adverts_dropped_by_reason = by_reason;
        into.adverts_other_vrid = router.wrong_vrid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_lands_under_its_reason_and_other_vrids_apart() {
        let mut tally = Tally::default();
        tally.count(CHECKSUM);
        tally.count(CHECKSUM);
        tally.count(parse_reason(&ParseError::UnknownVersion { version: 4 }));
        let router = DropCounts {
            wrong_vrid: 7,
            wrong_version: 1,
            auth_mismatch: 2,
            own_advert: 9,
            ..DropCounts::default()
        };
        let transport = TransportStats {
            dropped_ttl: 3,
            ..TransportStats::default()
        };
        let mut counters = InstanceCounters::default();
        tally.fill(&router, &transport, &mut counters);
        let reason = |name: &str| counters.adverts_dropped_by_reason[name];
        assert_eq!(reason(CHECKSUM), 2);
        assert_eq!(reason(VERSION), 2, "codec and router versions together");
        assert_eq!(reason(TTL), 3);
        assert_eq!(reason(AUTH), 2);
        assert_eq!(reason(LENGTH), 0, "every reason is listed, at zero too");
        assert_eq!(counters.adverts_dropped_by_reason.len(), REASONS.len());
        // Our own looped adverts are neither drops nor other routers' adverts.
        assert_eq!(counters.adverts_dropped, 2 + 2 + 3 + 2);
        assert_eq!(counters.adverts_other_vrid, 7);
    }
}
