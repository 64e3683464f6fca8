//! The VRRP advertisement on the wire: v2 (RFC 3768 section 5.1) and v3 (RFC 9568 section 5.1).
//!
//! [`Packet`] is a checked view of the VRRP payload (the bytes after the IP header) whose field
//! accessors cannot panic once [`Packet::new_checked`] has accepted the buffer. [`Advertisement`] is
//! the meaning of a packet, with [`Advertisement::parse`], [`Advertisement::buffer_len`] and
//! [`Advertisement::emit`]. Both checksum forms need the IP source and destination, so parse and
//! emit take them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU8;

use crate::fields::{Centis, Priority, Version, Vrid};

/// IP protocol number of VRRP (assigned by IANA).
pub const IP_PROTOCOL: u8 = 112;
/// IPv4 multicast group adverts are sent to.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group adverts are sent to.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit of every advert (RFC 9568 5.1.1.3, 5.1.2.3); a multicast advert with any
/// other was forwarded by a router and is discarded (RFC 9568 7.1).
pub const TTL: u8 = 255;
/// The only VRRP packet type: ADVERTISEMENT.
pub const TYPE_ADVERTISEMENT: u8 = 1;

mod field {
    use std::ops::Range;
    pub const VERSION_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2 only.
    pub const AUTH_TYPE: usize = 4;
    /// v2 only: whole seconds.
    pub const ADVER_INT: usize = 5;
    /// v3 only: 4 reserved bits and 12 bits of centiseconds.
    pub const MAX_ADVER_INT: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
    /// v2 only: trailing authentication data.
    pub const AUTH_DATA_LEN: usize = 8;
}

/// Length of the fixed header shared by v2 and v3.
pub const HEADER_LEN: usize = field::ADDRESSES;

/// IPv4 or IPv6, as carried by the IP header around the advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 4-byte addresses.
    Ipv4,
    /// 16-byte addresses.
    Ipv6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// Bytes one address of this family takes in an advert.
    pub const fn address_len(self) -> usize {
        match self {
            Self::Ipv4 => 4,
            Self::Ipv6 => 16,
        }
    }
}

/// Which bytes a checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumForm {
    /// The VRRP message preceded by the IP pseudo-header: what keepalived and Wireshark compute for
    /// v3 over IPv4, and what every v3 implementation does over IPv6.
    #[default]
    WithPseudoHeader,
    /// The VRRP message alone: v2 (RFC 3768 section 5.3.8), and v3 over IPv4 as RFC 9568 section
    /// 5.2.8 words it.
    MessageOnly,
}

/// v2 authentication (RFC 3768 section 5.3.6). RFC 3768 removed IP Authentication Header (type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: the 8 auth data bytes are zero on send and ignored on receive.
    None,
    /// Type 1: a clear-text password of up to 8 bytes, zero padded.
    SimplePassword([u8; field::AUTH_DATA_LEN]),
}

impl Auth {
    /// A simple password; keepalived zero-pads it to 8 bytes, so longer passwords are refused.
    pub fn simple_password(password: &[u8]) -> Result<Self, PasswordTooLong> {
        let mut data = [0u8; field::AUTH_DATA_LEN];
        data.get_mut(..password.len())
            .ok_or(PasswordTooLong {
                len: password.len(),
            })?
            .copy_from_slice(password);
        Ok(Self::SimplePassword(data))
    }

    /// The auth type byte on the wire.
    pub const fn type_number(&self) -> u8 {
        match self {
            Self::None => 0,
            Self::SimplePassword(_) => 1,
        }
    }
}

/// A v2 simple password longer than the 8 bytes the field holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a VRRPv2 password holds at most 8 bytes, this one has {len}")]
pub struct PasswordTooLong {
    /// Length of the rejected password.
    pub len: usize,
}

/// What differs between the two versions of an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionFields {
    /// RFC 3768.
    V2 {
        /// Adver Int, whole seconds (never 0).
        advert_interval_secs: NonZeroU8,
        /// Authentication type and data.
        auth: Auth,
    },
    /// RFC 9568.
    V3 {
        /// Max Adver Int.
        max_advert_interval: Centis,
    },
}

/// Why a received VRRP payload was rejected. One variant per reason, so each can be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 8-byte fixed header.
    #[error("VRRP packet of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Version nibble other than 2 or 3.
    #[error("unsupported VRRP version {version}")]
    UnknownVersion {
        /// The version nibble.
        version: u8,
    },
    /// Type nibble other than 1 (ADVERTISEMENT).
    #[error("unknown VRRP packet type {packet_type}")]
    UnknownType {
        /// The type nibble.
        packet_type: u8,
    },
    /// The length does not match what the address count implies.
    #[error("VRRP packet with {count} addresses must be {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Count IPvX Addr.
        count: u8,
        /// Length implied by version, family and count.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Neither checksum form verifies.
    #[error(
        "bad VRRP checksum {found:#06x} (expected {expected:#06x}{})",
        match expected_message_only { Some(sum) => format!(" or message-only {sum:#06x}"), None => String::new() }
    )]
    Checksum {
        /// The checksum field as received.
        found: u16,
        /// The checksum the sender should have put there (the pseudo-header form where one applies).
        expected: u16,
        /// For v3 over IPv4, the message-only form that would also have been accepted.
        expected_message_only: Option<u16>,
    },
    /// VRID 0, which no virtual router has.
    #[error("VRRP packet with VRID 0")]
    ZeroVrid,
    /// Advert interval 0 (v2 Adver Int or v3 Max Adver Int).
    #[error("VRRP advert interval 0")]
    ZeroInterval,
    /// A v2 auth type other than 0 (none) or 1 (simple password).
    #[error("unsupported VRRPv2 auth type {auth_type}")]
    UnsupportedAuthType {
        /// The auth type byte.
        auth_type: u8,
    },
    /// v2 over IPv6, or IP source and destination of different families.
    #[error(
        "VRRP {version} packet from {source_address} to {destination}: address family not allowed"
    )]
    AddressFamily {
        /// The version nibble.
        version: u8,
        /// IP source.
        source_address: IpAddr,
        /// IP destination.
        destination: IpAddr,
    },
}

/// Why an advertisement could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// More than the 255 addresses the count byte holds.
    #[error("an advertisement carries at most 255 addresses, got {count}")]
    TooManyAddresses {
        /// Number of addresses given.
        count: usize,
    },
    /// An address, or the IP destination, not of the IP source's family, or v2 over IPv6.
    #[error("address {address} does not fit a VRRP {version} packet sent from {source_address}")]
    AddressFamily {
        /// The offending address.
        address: IpAddr,
        /// The IP source.
        source_address: IpAddr,
        /// Protocol version.
        version: Version,
    },
    /// The output buffer is too small.
    #[error("buffer of {len} bytes, the advertisement needs {needed}")]
    BufferTooSmall {
        /// Buffer length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// A VRRP packet over a byte buffer whose length and version have been checked, so that no field
/// accessor can panic.
///
/// ```text
/// v3 (RFC 9568 section 5.1)
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       IPvX Address(es)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// v2 (RFC 3768 section 5.1)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Auth Type   |   Adver Int   |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address(es)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (8 bytes)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    version: Version,
    family: AddressFamily,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that `buffer` is a whole VRRP v2 or v3 packet for an IP header of `family`: a known
    /// version, v2 only over IPv4, and a length matching the address count exactly.
    pub fn new_checked(buffer: T, family: AddressFamily) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        let len = bytes.len();
        let (Some(&version_type), Some(&count)) =
            (bytes.get(field::VERSION_TYPE), bytes.get(field::COUNT))
        else {
            return Err(ParseError::Truncated { len });
        };
        if len < HEADER_LEN {
            return Err(ParseError::Truncated { len });
        }
        let version = match version_type >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            version => return Err(ParseError::UnknownVersion { version }),
        };
        let expected = expected_len(version, family, count);
        if len != expected {
            return Err(ParseError::LengthMismatch {
                count,
                expected,
                actual: len,
            });
        }
        Ok(Self {
            buffer,
            version,
            family,
        })
    }

    fn byte(&self, offset: usize) -> u8 {
        self.buffer.as_ref()[offset]
    }

    fn u16_at(&self, offset: usize) -> u16 {
        let bytes = self.buffer.as_ref();
        u16::from_be_bytes([bytes[offset], bytes[offset + 1]])
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Family of the IP header the packet came in.
    pub fn family(&self) -> AddressFamily {
        self.family
    }

    /// The type nibble (1 for an advertisement).
    pub fn packet_type(&self) -> u8 {
        self.byte(field::VERSION_TYPE) & 0x0f
    }

    /// The raw VRID byte.
    pub fn vrid(&self) -> u8 {
        self.byte(field::VRID)
    }

    /// The priority.
    pub fn priority(&self) -> Priority {
        Priority::new(self.byte(field::PRIORITY))
    }

    /// Count IPvX Addr.
    pub fn address_count(&self) -> u8 {
        self.byte(field::COUNT)
    }

    /// v2: Auth Type; v3: `None`.
    pub fn auth_type(&self) -> Option<u8> {
        (self.version == Version::V2).then(|| self.byte(field::AUTH_TYPE))
    }

    /// v2 Adver Int in seconds, or v3 Max Adver Int in centiseconds (reserved bits masked off).
    pub fn raw_interval(&self) -> u16 {
        match self.version {
            Version::V2 => u16::from(self.byte(field::ADVER_INT)),
            Version::V3 => self.u16_at(field::MAX_ADVER_INT.start) & 0x0fff,
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM.start)
    }

    /// The addresses, in packet order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let start = field::ADDRESSES;
        let end = start + usize::from(self.address_count()) * self.family.address_len();
        let family = self.family;
        self.buffer.as_ref()[start..end]
            .chunks_exact(family.address_len())
            .map(move |chunk| match family {
                AddressFamily::Ipv4 => {
                    IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(chunk).unwrap_or([0; 4])))
                }
                AddressFamily::Ipv6 => IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(chunk).unwrap_or([0; 16]),
                )),
            })
    }

    /// v2: the 8 bytes of authentication data; v3: `None`.
    pub fn auth_data(&self) -> Option<[u8; field::AUTH_DATA_LEN]> {
        if self.version != Version::V2 {
            return None;
        }
        let bytes = self.buffer.as_ref();
        let start = bytes.len() - field::AUTH_DATA_LEN;
        <[u8; field::AUTH_DATA_LEN]>::try_from(&bytes[start..]).ok()
    }

    /// The whole VRRP message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn expected_len(version: Version, family: AddressFamily, count: u8) -> usize {
    let trailer = match version {
        Version::V2 => field::AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + usize::from(count) * family.address_len() + trailer
}

/// A parsed advertisement, with the checksum form it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The advertisement.
    pub advertisement: Advertisement,
    /// Which checksum form verified.
    pub checksum: ChecksumForm,
}

/// The meaning of a VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    /// Virtual Router Identifier.
    pub vrid: Vrid,
    /// The sender's priority (0 = releasing mastership).
    pub priority: Priority,
    /// Interval and authentication, which depend on the version.
    pub fields: VersionFields,
    /// The virtual addresses, all of the IP header's family. May be empty.
    pub addresses: Vec<IpAddr>,
}

impl Advertisement {
    /// The protocol version.
    pub fn version(&self) -> Version {
        match self.fields {
            VersionFields::V2 { .. } => Version::V2,
            VersionFields::V3 { .. } => Version::V3,
        }
    }

    /// The advertisement interval in microseconds (v2 seconds or v3 centiseconds).
    pub fn interval_micros(&self) -> u64 {
        match self.fields {
            VersionFields::V2 {
                advert_interval_secs,
                ..
            } => u64::from(advert_interval_secs.get()) * 1_000_000,
            VersionFields::V3 {
                max_advert_interval,
            } => max_advert_interval.as_micros(),
        }
    }

    /// Parses a VRRP payload that arrived from IP `source` to IP `destination`.
    pub fn from_bytes(
        bytes: &[u8],
        source: IpAddr,
        destination: IpAddr,
    ) -> Result<Parsed, ParseError> {
        let packet = Packet::new_checked(bytes, AddressFamily::of(source))?;
        Self::parse(&packet, source, destination)
    }

    /// Validates a checked packet: addresses family, checksum, type, interval, auth type.
    /// v3 over IPv4 accepts either checksum form and reports which one verified.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        source: IpAddr,
        destination: IpAddr,
    ) -> Result<Parsed, ParseError> {
        let family = AddressFamily::of(source);
        let version = packet.version();
        if family != AddressFamily::of(destination)
            || family != packet.family()
            || (version == Version::V2 && family == AddressFamily::Ipv6)
        {
            return Err(ParseError::AddressFamily {
                version: version.number(),
                source_address: source,
                destination,
            });
        }
        let checksum = verify_checksum(packet, source, destination)?;
        if packet.packet_type() != TYPE_ADVERTISEMENT {
            return Err(ParseError::UnknownType {
                packet_type: packet.packet_type(),
            });
        }
        let vrid = Vrid::try_from(packet.vrid()).map_err(|_| ParseError::ZeroVrid)?;
        let fields = match version {
            Version::V2 => {
                let advert_interval_secs = u8::try_from(packet.raw_interval())
                    .ok()
                    .and_then(NonZeroU8::new)
                    .ok_or(ParseError::ZeroInterval)?;
                let auth = match (packet.auth_type(), packet.auth_data()) {
                    (Some(0), _) => Auth::None,
                    (Some(1), Some(data)) => Auth::SimplePassword(data),
                    (auth_type, _) => {
                        return Err(ParseError::UnsupportedAuthType {
                            auth_type: auth_type.unwrap_or(0),
                        });
                    }
                };
                VersionFields::V2 {
                    advert_interval_secs,
                    auth,
                }
            }
            Version::V3 => VersionFields::V3 {
                max_advert_interval: Centis::try_from(packet.raw_interval())
                    .map_err(|_| ParseError::ZeroInterval)?,
            },
        };
        Ok(Parsed {
            advertisement: Self {
                vrid,
                priority: packet.priority(),
                fields,
                addresses: packet.addresses().collect(),
            },
            checksum,
        })
    }

    /// Bytes [`emit`](Self::emit) writes when sent over `family`.
    pub fn buffer_len(&self, family: AddressFamily) -> usize {
        let trailer = match self.version() {
            Version::V2 => field::AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + self.addresses.len() * family.address_len() + trailer
    }

    /// Writes the advertisement for an IP packet from `source` to `destination` into the start of
    /// `buffer` and returns the bytes written. `checksum` chooses the form for v3 over IPv4 only:
    /// v2 always sums the message alone and IPv6 always includes the pseudo-header.
    pub fn emit(
        &self,
        buffer: &mut [u8],
        source: IpAddr,
        destination: IpAddr,
        checksum: ChecksumForm,
    ) -> Result<usize, EmitError> {
        let family = AddressFamily::of(source);
        let version = self.version();
        let count =
            u8::try_from(self.addresses.len()).map_err(|_| EmitError::TooManyAddresses {
                count: self.addresses.len(),
            })?;
        let family_error = |address| EmitError::AddressFamily {
            address,
            source_address: source,
            version,
        };
        if version == Version::V2 && family == AddressFamily::Ipv6 {
            return Err(family_error(source));
        }
        if let Some(&address) = std::iter::once(&destination)
            .chain(&self.addresses)
            .find(|address| AddressFamily::of(**address) != family)
        {
            return Err(family_error(address));
        }
        let len = self.buffer_len(family);
        let available = buffer.len();
        let out = buffer.get_mut(..len).ok_or(EmitError::BufferTooSmall {
            len: available,
            needed: len,
        })?;
        out.fill(0);
        out[field::VERSION_TYPE] = (version.number() << 4) | TYPE_ADVERTISEMENT;
        out[field::VRID] = self.vrid.get();
        out[field::PRIORITY] = self.priority.get();
        out[field::COUNT] = count;
        match self.fields {
            VersionFields::V2 {
                advert_interval_secs,
                auth,
            } => {
                out[field::AUTH_TYPE] = auth.type_number();
                out[field::ADVER_INT] = advert_interval_secs.get();
                if let Auth::SimplePassword(data) = auth {
                    out[len - field::AUTH_DATA_LEN..].copy_from_slice(&data);
                }
            }
            VersionFields::V3 {
                max_advert_interval,
            } => {
                out[field::MAX_ADVER_INT].copy_from_slice(&max_advert_interval.get().to_be_bytes());
            }
        }
        let mut offset = field::ADDRESSES;
        for address in &self.addresses {
            let octets: &[u8] = match address {
                IpAddr::V4(v4) => &v4.octets(),
                IpAddr::V6(v6) => &v6.octets(),
            };
            out[offset..offset + octets.len()].copy_from_slice(octets);
            offset += octets.len();
        }
        let form = effective_form(version, family, checksum);
        let sum = checksum_of(out, source, destination, form);
        out[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        Ok(len)
    }

    /// [`emit`](Self::emit) into a new vector.
    pub fn to_bytes(
        &self,
        source: IpAddr,
        destination: IpAddr,
        checksum: ChecksumForm,
    ) -> Result<Vec<u8>, EmitError> {
        let mut buffer = vec![0; self.buffer_len(AddressFamily::of(source))];
        let len = self.emit(&mut buffer, source, destination, checksum)?;
        buffer.truncate(len);
        Ok(buffer)
    }
}

/// The checksum form the protocol dictates, `requested` only where there is a choice.
fn effective_form(
    version: Version,
    family: AddressFamily,
    requested: ChecksumForm,
) -> ChecksumForm {
    match (version, family) {
        // RFC 3768 section 5.3.8: the VRRP message only.
        (Version::V2, _) => ChecksumForm::MessageOnly,
        // RFC 9568 section 5.2.8: IPv6 always includes the pseudo-header.
        (Version::V3, AddressFamily::Ipv6) => ChecksumForm::WithPseudoHeader,
        (Version::V3, AddressFamily::Ipv4) => requested,
    }
}

fn verify_checksum<T: AsRef<[u8]>>(
    packet: &Packet<T>,
    source: IpAddr,
    destination: IpAddr,
) -> Result<ChecksumForm, ParseError> {
    let bytes = packet.as_bytes();
    let found = packet.checksum();
    // The checksum the sender should have computed in each form.
    let expected_for = |form| checksum_of(bytes, source, destination, form);
    match (packet.version(), packet.family()) {
        (Version::V2, _) => {
            let expected = expected_for(ChecksumForm::MessageOnly);
            same_checksum(found, expected)
                .then_some(ChecksumForm::MessageOnly)
                .ok_or(ParseError::Checksum {
                    found,
                    expected,
                    expected_message_only: None,
                })
        }
        (Version::V3, AddressFamily::Ipv6) => {
            let expected = expected_for(ChecksumForm::WithPseudoHeader);
            same_checksum(found, expected)
                .then_some(ChecksumForm::WithPseudoHeader)
                .ok_or(ParseError::Checksum {
                    found,
                    expected,
                    expected_message_only: None,
                })
        }
        (Version::V3, AddressFamily::Ipv4) => {
            let with_pseudo = expected_for(ChecksumForm::WithPseudoHeader);
            let message_only = expected_for(ChecksumForm::MessageOnly);
            if same_checksum(found, with_pseudo) {
                Ok(ChecksumForm::WithPseudoHeader)
            } else if same_checksum(found, message_only) {
                Ok(ChecksumForm::MessageOnly)
            } else {
                Err(ParseError::Checksum {
                    found,
                    expected: with_pseudo,
                    expected_message_only: Some(message_only),
                })
            }
        }
    }
}

/// Whether a received checksum field holds `expected`. One's complement arithmetic has two
/// zeros (RFC 1071 section 1): a sender that computes the sum with its checksum field included
/// may put 0xffff where [`checksum_of`] gives 0x0000, and both verify.
fn same_checksum(found: u16, expected: u16) -> bool {
    const ZEROS: [u16; 2] = [0x0000, 0xffff];
    found == expected || (ZEROS.contains(&found) && ZEROS.contains(&expected))
}

/// The checksum to put in the field of `message` (whose checksum field is ignored).
fn checksum_of(message: &[u8], source: IpAddr, destination: IpAddr, form: ChecksumForm) -> u16 {
    !fold(
        sum_with_zeroed_checksum(message) + pseudo_header(message.len(), source, destination, form),
    )
}

/// One's-complement sum of the message as 16-bit words, reading the checksum field as zero.
fn sum_with_zeroed_checksum(message: &[u8]) -> u64 {
    message
        .chunks(2)
        .enumerate()
        .filter(|(index, _)| index * 2 != field::CHECKSUM.start)
        .map(|(_, word)| match word {
            [high, low] => u64::from(u16::from_be_bytes([*high, *low])),
            [high] => u64::from(*high) << 8,
            _ => 0,
        })
        .sum()
}

/// Sum of the IPv4 (RFC 791) or IPv6 (RFC 8200 section 8.1) pseudo-header, or 0 for `MessageOnly`.
fn pseudo_header(len: usize, source: IpAddr, destination: IpAddr, form: ChecksumForm) -> u64 {
    if form == ChecksumForm::MessageOnly {
        return 0;
    }
    let words = |address: IpAddr| -> u64 {
        let octets = match address {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        octets
            .chunks_exact(2)
            .map(|word| u64::from(u16::from_be_bytes([word[0], word[1]])))
            .sum()
    };
    // Lengths here are at most 8 + 255 * 16 + 8 bytes, so the cast cannot truncate; saturate anyway.
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    words(source) + words(destination) + u64::from(IP_PROTOCOL) + (len >> 16) + (len & 0xffff)
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests;
