//! The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt): parse the header a client's
//! upstream load balancer puts in front of the stream, and emit one in front of what we send to a
//! server. The parser never panics on any input and never reads past the header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature (proxy-protocol.txt section 2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// Section 2.1: "the maximum line length is 107 bytes including the CRLF".
pub const V1_MAX_LEN: usize = 107;
const V2_FIXED_LEN: usize = 16;
/// Largest header we accept. v2 allows 64 KiB of TLVs; we accept what HAProxy's default buffers do
/// with room to spare, and refuse more so a client cannot make us buffer without bound.
pub const MAX_HEADER_LEN: usize = 4096;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// v2 `LOCAL` or v1 `UNKNOWN`: the sender speaks for itself (health checks); use the
    /// connection's own addresses.
    Local,
    /// The original client (`source`) and the address it connected to (`destination`).
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
}

/// Why a header was refused. The connection that sent it is closed and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    NotProxyProtocol,
    #[error("PROXY v1 line longer than 107 bytes or without CRLF")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {reason}")]
    V1Malformed { reason: &'static str },
    #[error("PROXY v2 version {version} is not 2")]
    V2Version { version: u8 },
    #[error("PROXY v2 command {command} is neither LOCAL nor PROXY")]
    V2Command { command: u8 },
    #[error("PROXY v2 address block of {length} bytes is too short for family {family:#04x}")]
    V2ShortAddresses { family: u8, length: usize },
    #[error("PROXY v2 header of {length} bytes exceeds the {MAX_HEADER_LEN}-byte limit")]
    TooLong { length: usize },
}

/// Parses a PROXY header at the start of `input`.
///
/// Returns `Ok(None)` when `input` is a valid prefix of a header but more bytes are needed, and
/// `Ok(Some((header, length)))` when complete; the stream's payload starts at `input[length..]`.
pub fn parse(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    if starts_like(input, &V2_SIGNATURE) {
        return parse_v2(input);
    }
    if starts_like(input, V1_PREFIX) {
        return parse_v1(input);
    }
    Err(ProxyHeaderError::NotProxyProtocol)
}

/// Whether `input` and `prefix` agree on their common length (input may be shorter than prefix).
fn starts_like(input: &[u8], prefix: &[u8]) -> bool {
    let common = input.len().min(prefix.len());
    input[..common] == prefix[..common]
}

/// Section 2.1: `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`.
fn parse_v1(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let window = &input[..input.len().min(V1_MAX_LEN)];
    let Some(cr) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if input.len() >= V1_MAX_LEN {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    let length = cr + 2;
    let line = std::str::from_utf8(&input[V1_PREFIX.len()..cr]).map_err(|_| {
        ProxyHeaderError::V1Malformed {
            reason: "not ASCII",
        }
    })?;
    let mut fields = line.split(' ');
    let protocol = fields.next().unwrap_or_default();
    if protocol == "UNKNOWN" {
        // "the receiver must ignore anything presented before the CRLF is found".
        return Ok(Some((ProxyHeader::Local, length)));
    }
    let malformed = |reason| ProxyHeaderError::V1Malformed { reason };
    let (source_ip, destination_ip) = match protocol {
        "TCP4" => (
            IpAddr::V4(parse_v1_field(fields.next()).ok_or(malformed("bad IPv4 source"))?),
            IpAddr::V4(parse_v1_field(fields.next()).ok_or(malformed("bad IPv4 destination"))?),
        ),
        "TCP6" => (
            IpAddr::V6(parse_v1_field(fields.next()).ok_or(malformed("bad IPv6 source"))?),
            IpAddr::V6(parse_v1_field(fields.next()).ok_or(malformed("bad IPv6 destination"))?),
        ),
        _ => return Err(malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let source_port = parse_v1_port(fields.next()).ok_or(malformed("bad source port"))?;
    let destination_port = parse_v1_port(fields.next()).ok_or(malformed("bad destination port"))?;
    if fields.next().is_some() {
        return Err(malformed("extra fields"));
    }
    Ok(Some((
        ProxyHeader::Proxied {
            source: SocketAddr::new(source_ip, source_port),
            destination: SocketAddr::new(destination_ip, destination_port),
        },
        length,
    )))
}

fn parse_v1_field<T: std::str::FromStr>(field: Option<&str>) -> Option<T> {
    field.and_then(|text| text.parse().ok())
}

fn parse_v1_port(field: Option<&str>) -> Option<u16> {
    // Digits only: Rust's integer parser would also take a leading '+'.
    let text = field?;
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Section 2.2: 12-byte signature, version/command, family/protocol, 16-bit length, addresses, TLVs.
fn parse_v2(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    if input.len() < V2_FIXED_LEN {
        return Ok(None);
    }
    let version = input[12] >> 4;
    let command = input[12] & 0x0f;
    let family = input[13];
    let address_len = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let length = V2_FIXED_LEN + address_len;
    if version != 2 {
        return Err(ProxyHeaderError::V2Version { version });
    }
    if length > MAX_HEADER_LEN {
        return Err(ProxyHeaderError::TooLong { length });
    }
    if input.len() < length {
        return Ok(None);
    }
    let addresses = &input[V2_FIXED_LEN..length];
    match command {
        // LOCAL: "the receiver must accept this connection as valid and must use the real connection
        // endpoints and discard the protocol block including the family".
        0x0 => Ok(Some((ProxyHeader::Local, length))),
        0x1 => {
            let header = match family {
                // TCP over IPv4 (0x11) and over IPv6 (0x21). TLVs after the addresses are skipped.
                0x11 => {
                    let block: &[u8; 12] = addresses
                        .get(..12)
                        .and_then(|slice| slice.try_into().ok())
                        .ok_or(ProxyHeaderError::V2ShortAddresses {
                            family,
                            length: address_len,
                        })?;
                    let source = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
                    let destination = Ipv4Addr::new(block[4], block[5], block[6], block[7]);
                    ProxyHeader::Proxied {
                        source: SocketAddr::new(
                            source.into(),
                            u16::from_be_bytes([block[8], block[9]]),
                        ),
                        destination: SocketAddr::new(
                            destination.into(),
                            u16::from_be_bytes([block[10], block[11]]),
                        ),
                    }
                }
                0x21 => {
                    let block: &[u8; 36] = addresses
                        .get(..36)
                        .and_then(|slice| slice.try_into().ok())
                        .ok_or(ProxyHeaderError::V2ShortAddresses {
                            family,
                            length: address_len,
                        })?;
                    let mut source = [0u8; 16];
                    let mut destination = [0u8; 16];
                    source.copy_from_slice(&block[..16]);
                    destination.copy_from_slice(&block[16..32]);
                    ProxyHeader::Proxied {
                        source: SocketAddr::new(
                            Ipv6Addr::from(source).into(),
                            u16::from_be_bytes([block[32], block[33]]),
                        ),
                        destination: SocketAddr::new(
                            Ipv6Addr::from(destination).into(),
                            u16::from_be_bytes([block[34], block[35]]),
                        ),
                    }
                }
                // UNSPEC, UDP and UNIX: "the receiver should ignore address information"; the
                // connection is still valid, treat it like LOCAL.
                _ => ProxyHeader::Local,
            };
            Ok(Some((header, length)))
        }
        _ => Err(ProxyHeaderError::V2Command { command }),
    }
}

/// Brings both addresses to one family: an IPv4 address next to an IPv6 one becomes v4-mapped.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let to_v6 = |address: SocketAddr| match address.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), address.port()),
        IpAddr::V6(_) => address,
    };
    if source.is_ipv4() == destination.is_ipv4() {
        (source, destination)
    } else {
        (to_v6(source), to_v6(destination))
    }
}

/// Emits a v1 line for a TCP connection from `source` to `destination` (section 2.1).
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let protocol = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {protocol} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// The v1 line of a connection the sender makes for itself, as a health check (section 2.1:
/// `UNKNOWN`, "the receiver must ignore anything presented before the CRLF").
pub const V1_LOCAL: &[u8] = b"PROXY UNKNOWN\r\n";

/// The v2 header of a connection the sender makes for itself (section 2.2: command `LOCAL`, "e.g.
/// health checks"), family `AF_UNSPEC` and no address block.
pub fn encode_v2_local() -> Vec<u8> {
    let mut header = Vec::with_capacity(V2_FIXED_LEN);
    header.extend_from_slice(&V2_SIGNATURE);
    header.push(0x20); // version 2, command LOCAL
    header.push(0x00); // AF_UNSPEC, UNSPEC
    header.extend_from_slice(&0u16.to_be_bytes());
    header
}

/// Emits a v2 `PROXY` header without TLVs for a TCP connection (section 2.2).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let mut header = Vec::with_capacity(V2_FIXED_LEN + 36);
    header.extend_from_slice(&V2_SIGNATURE);
    header.push(0x21); // version 2, command PROXY
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(0x11); // AF_INET, STREAM
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
        (source, destination) => {
            let v6 = |address: SocketAddr| match address.ip() {
                IpAddr::V6(ip) => ip.octets(),
                IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            };
            header.push(0x21); // AF_INET6, STREAM
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&v6(source));
            header.extend_from_slice(&v6(destination));
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_round_trip_and_bytes() {
        let bytes = encode_v1(addr("198.51.100.7:56324"), addr("203.0.113.5:443"));
        assert_eq!(bytes, b"PROXY TCP4 198.51.100.7 203.0.113.5 56324 443\r\n");
        let mut stream = bytes.clone();
        stream.extend_from_slice(b"GET /");
        let (header, length) = parse(&stream).unwrap().unwrap();
        assert_eq!(length, bytes.len());
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("198.51.100.7:56324"),
                destination: addr("203.0.113.5:443")
            }
        );
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n";
        let (header, length) = parse(line).unwrap().unwrap();
        assert_eq!(length, line.len());
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("[2001:db8::1]:1000"),
                destination: addr("[2001:db8::2]:80")
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN whatever\r\nrest").unwrap(),
            Some((ProxyHeader::Local, 24))
        );
    }

    #[test]
    fn local_headers_of_health_checks_parse_as_local() {
        assert_eq!(
            parse(V1_LOCAL).unwrap(),
            Some((ProxyHeader::Local, V1_LOCAL.len()))
        );
        let v2 = encode_v2_local();
        assert_eq!(parse(&v2).unwrap(), Some((ProxyHeader::Local, 16)));
    }

    #[test]
    fn v1_incomplete_then_rejections() {
        assert_eq!(parse(b"PRO").unwrap(), None);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(
            parse(&[b'P', b'R', b'O', b'X', b'Y', b' '].repeat(20)),
            Err(ProxyHeaderError::V1TooLong)
        );
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert!(matches!(
            parse(b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n"),
            Err(ProxyHeaderError::V1Malformed { .. })
        ));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ProxyHeaderError::NotProxyProtocol)
        );
    }

    #[test]
    fn v2_tcp4_bytes() {
        let bytes = encode_v2(addr("198.51.100.7:56324"), addr("203.0.113.5:443"));
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 203, 0, 113, 5, 0xdc, 0x04, 0x01, 0xbb,
        ]);
        assert_eq!(bytes, expected);
        let (header, length) = parse(&bytes).unwrap().unwrap();
        assert_eq!(length, 28);
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("198.51.100.7:56324"),
                destination: addr("203.0.113.5:443")
            }
        );
    }

    #[test]
    fn v2_tcp6_with_tlv_local_and_mixed_family() {
        let mut bytes = encode_v2(addr("[2001:db8::7]:1"), addr("[2001:db8::5]:2"));
        assert_eq!(bytes.len(), 52);
        // Append a 3-byte NOOP TLV (type 0x04) and grow the length field to cover it.
        bytes.extend_from_slice(&[0x04, 0x00, 0x00]);
        bytes[15] = 39;
        bytes.extend_from_slice(b"payload");
        let (header, length) = parse(&bytes).unwrap().unwrap();
        assert_eq!(length, 55);
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("[2001:db8::7]:1"),
                destination: addr("[2001:db8::5]:2")
            }
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap(), Some((ProxyHeader::Local, 16)));
        let mixed = encode_v2(addr("198.51.100.7:1"), addr("[2001:db8::5]:2"));
        let (header, _) = parse(&mixed).unwrap().unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("[::ffff:198.51.100.7]:1"),
                destination: addr("[2001:db8::5]:2")
            }
        );
    }

    #[test]
    fn v2_incomplete_and_rejections() {
        let bytes = encode_v2(addr("198.51.100.7:1"), addr("203.0.113.5:2"));
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut bad_version = bytes.clone();
        bad_version[12] = 0x11;
        assert_eq!(
            parse(&bad_version),
            Err(ProxyHeaderError::V2Version { version: 1 })
        );
        let mut bad_command = bytes.clone();
        bad_command[12] = 0x2f;
        assert_eq!(
            parse(&bad_command),
            Err(ProxyHeaderError::V2Command { command: 0xf })
        );
        let mut short = bytes.clone();
        short[15] = 4;
        assert!(matches!(
            parse(&short),
            Err(ProxyHeaderError::V2ShortAddresses { .. })
        ));
        let mut huge = bytes;
        huge[14] = 0xff;
        assert!(matches!(
            parse(&huge),
            Err(ProxyHeaderError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics_nor_overreads(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, length))) = parse(&input) {
                prop_assert!(length <= input.len());
            }
        }

        #[test]
        fn parse_never_panics_after_a_signature(tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut input = V2_SIGNATURE.to_vec();
            input.extend_from_slice(&tail);
            if let Ok(Some((_, length))) = parse(&input) {
                prop_assert!(length <= input.len());
            }
        }

        #[test]
        fn encode_then_parse_is_identity(
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), c in any::<[u8; 16]>(),
            p in any::<u16>(), q in any::<u16>(), v2 in any::<bool>(), six in any::<bool>(),
        ) {
            let source = SocketAddr::new(Ipv4Addr::from(a).into(), p);
            let destination = if six {
                SocketAddr::new(Ipv6Addr::from(c).into(), q)
            } else {
                SocketAddr::new(Ipv4Addr::from(b).into(), q)
            };
            let bytes = if v2 { encode_v2(source, destination) } else { encode_v1(source, destination) };
            let (header, length) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(length, bytes.len());
            let (source, destination) = same_family(source, destination);
            prop_assert_eq!(header, ProxyHeader::Proxied { source, destination });
        }
    }
}
