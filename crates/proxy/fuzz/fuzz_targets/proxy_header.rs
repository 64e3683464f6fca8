//! The PROXY header parser on arbitrary client bytes: it must never panic, never claim a header
//! longer than its input or than MAX_HEADER_LEN, and a parsed PROXY address must survive being
//! re-emitted and parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd_proxy::proxy_protocol::{self, MAX_HEADER_LEN, ProxyHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, length))) = proxy_protocol::parse(data) else {
        return;
    };
    assert!(length <= data.len() && length <= MAX_HEADER_LEN);
    if let ProxyHeader::Proxied {
        source,
        destination,
    } = header
    {
        for emitted in [
            proxy_protocol::encode_v1(source, destination),
            proxy_protocol::encode_v2(source, destination),
        ] {
            let reparsed = proxy_protocol::parse(&emitted).expect("own header parses");
            assert!(
                matches!(reparsed, Some((ProxyHeader::Proxied { .. }, n)) if n == emitted.len())
            );
        }
    }
});
