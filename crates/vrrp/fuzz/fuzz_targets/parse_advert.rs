//! Feeds arbitrary bytes to the advertisement parser with every pairing of address families.
//! The parser must return Ok or a ParseError, never panic; whatever parses must emit back to
//! bytes that parse to the same advertisement.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vipd_vrrp::Advertisement;

const SOURCE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
const GROUP_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const SOURCE_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11));
const GROUP_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));

fuzz_target!(|data: &[u8]| {
    for (source, destination) in [
        (SOURCE_V4, GROUP_V4),
        (SOURCE_V6, GROUP_V6),
        (SOURCE_V4, GROUP_V6),
    ] {
        let Ok(parsed) = Advertisement::from_bytes(data, source, destination) else {
            continue;
        };
        let bytes = parsed
            .advertisement
            .to_bytes(source, destination, parsed.checksum)
            .expect("a parsed advertisement can be emitted for the same addresses");
        let again =
            Advertisement::from_bytes(&bytes, source, destination).expect("emitted bytes parse");
        assert_eq!(again.advertisement, parsed.advertisement);
    }
});
