//! `unicast_src_ip` and `unicast_peer`: adverts sent to peers instead of the multicast group.

use std::net::IpAddr;

use crate::keepalived::syntax::Statement;
use crate::{ImportWarning, Location, warn};

/// `unicast_src_ip ADDR`; `None` (with a warning) when it is not an address.
pub(super) fn source(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<IpAddr> {
    let address = value.parse::<IpAddr>().ok();
    if address.is_none() {
        warn(
            warnings,
            at,
            format!("unicast_src_ip `{value}` is not an address: skipped"),
        );
    }
    address
}

pub(super) fn unicast_peer(
    directive: &Statement,
    peers: &mut Vec<IpAddr>,
    warnings: &mut Vec<ImportWarning>,
) {
    let mut words = directive.block_words().peekable();
    while let Some((at, word)) = words.next() {
        if let Ok(address) = word.parse::<IpAddr>() {
            if address.is_unspecified() || address.is_multicast() {
                warn(
                    warnings,
                    at,
                    format!("unicast_peer {address} cannot be a peer: skipped"),
                );
            } else {
                peers.push(address);
            }
        } else if matches!(word.as_str(), "min_ttl" | "max_ttl") {
            words.next();
            warn(
                warnings,
                at,
                format!("unicast_peer {word}: vipd checks the TTL as RFC 5798 says (255): skipped"),
            );
        } else {
            warn(
                warnings,
                at,
                format!("unicast_peer `{word}` is not an address: skipped"),
            );
        }
    }
}

/// vipd's unicast adverts are of the VIPs' family: peers (and a source) of the other family
/// are dropped, and an instance left without peers is multicast.
pub(super) fn keep_family(
    peers: &mut Vec<IpAddr>,
    source: &mut Option<IpAddr>,
    ipv6: bool,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    if peers.is_empty() {
        return;
    }
    let unicast_source = *source;
    peers.retain(|peer| peer.is_ipv6() == ipv6 && Some(*peer) != unicast_source);
    peers.dedup();
    if source.is_some_and(|source| source.is_ipv6() != ipv6) {
        warn(
            warnings,
            at,
            "unicast_src_ip is not of the VIPs' family: skipped (vipd uses the interface's address)",
        );
        *source = None;
    }
    if peers.is_empty() {
        warn(
            warnings,
            at,
            "no unicast_peer of the VIPs' family: the instance is written as multicast",
        );
    }
}
