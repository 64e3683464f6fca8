//! Byte vectors: keepalived's own adverts, one vector per rejection reason, and properties.

use super::*;
use proptest::prelude::*;

const KEEPALIVED_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
const GROUP_V4: IpAddr = IpAddr::V4(MULTICAST_V4);
const SOURCE_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11));
const GROUP_V6: IpAddr = IpAddr::V6(MULTICAST_V6);
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));

/// keepalived 2.2.7, v3, VRID 51, priority 150, 198.51.100.50, 10 cs, checksum with pseudo-header.
const KEEPALIVED_V3: [u8; 12] = [
    0x31, 0x33, 0x96, 0x01, 0x00, 0x0a, 0x03, 0x8d, 0xc6, 0x33, 0x64, 0x32,
];
/// keepalived 2.2.7, v2, VRID 51, priority 150, 198.51.100.50, 1 s, no auth.
const KEEPALIVED_V2: [u8; 20] = [
    0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x1e, 0x64, 0xc6, 0x33, 0x64, 0x32, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn vrid(value: u8) -> Vrid {
    Vrid::try_from(value).unwrap()
}

fn v3_advert(addresses: Vec<IpAddr>) -> Advertisement {
    Advertisement {
        vrid: vrid(51),
        priority: Priority::new(150),
        fields: VersionFields::V3 {
            max_advert_interval: Centis::try_from(10).unwrap(),
        },
        addresses,
    }
}

fn v2_advert(auth: Auth) -> Advertisement {
    Advertisement {
        vrid: vrid(51),
        priority: Priority::new(150),
        fields: VersionFields::V2 {
            advert_interval_secs: NonZeroU8::new(1).unwrap(),
            auth,
        },
        addresses: vec![VIP],
    }
}

/// Rewrites the checksum so that a vector fails only for the reason under test.
fn fix_checksum(bytes: &mut [u8], source: IpAddr, destination: IpAddr, form: ChecksumForm) {
    let sum = checksum_of(bytes, source, destination, form);
    bytes[6..8].copy_from_slice(&sum.to_be_bytes());
}

fn parse_v4(bytes: &[u8]) -> Result<Parsed, ParseError> {
    Advertisement::from_bytes(bytes, KEEPALIVED_SOURCE, GROUP_V4)
}

#[test]
fn keepalived_v3_vector_parses_to_its_fields_with_pseudo_header_checksum() {
    let parsed = parse_v4(&KEEPALIVED_V3).unwrap();
    assert_eq!(parsed.advertisement, v3_advert(vec![VIP]));
    assert_eq!(parsed.checksum, ChecksumForm::WithPseudoHeader);
}

#[test]
fn keepalived_v3_vector_emits_byte_for_byte() {
    let bytes = v3_advert(vec![VIP])
        .to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::WithPseudoHeader)
        .unwrap();
    assert_eq!(bytes, KEEPALIVED_V3);
}

#[test]
fn keepalived_v2_vector_parses_to_its_fields() {
    let parsed = parse_v4(&KEEPALIVED_V2).unwrap();
    assert_eq!(parsed.advertisement, v2_advert(Auth::None));
    assert_eq!(parsed.advertisement.interval_micros(), 1_000_000);
    assert_eq!(parsed.checksum, ChecksumForm::MessageOnly);
}

#[test]
fn keepalived_v2_vector_emits_byte_for_byte_whatever_form_is_asked() {
    for form in [ChecksumForm::WithPseudoHeader, ChecksumForm::MessageOnly] {
        let bytes = v2_advert(Auth::None)
            .to_bytes(KEEPALIVED_SOURCE, GROUP_V4, form)
            .unwrap();
        assert_eq!(bytes, KEEPALIVED_V2);
    }
}

#[test]
fn v3_ipv4_message_only_checksum_per_rfc9568_is_accepted_and_reported() {
    let bytes = v3_advert(vec![VIP])
        .to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::MessageOnly)
        .unwrap();
    assert_ne!(bytes, KEEPALIVED_V3);
    let parsed = parse_v4(&bytes).unwrap();
    assert_eq!(parsed.checksum, ChecksumForm::MessageOnly);
    assert_eq!(parsed.advertisement, v3_advert(vec![VIP]));
}

#[test]
fn v3_ipv6_checksum_always_includes_the_pseudo_header() {
    let vip6: IpAddr = "2001:db8::50".parse().unwrap();
    let advert = v3_advert(vec![vip6]);
    let bytes = advert
        .to_bytes(SOURCE_V6, GROUP_V6, ChecksumForm::MessageOnly)
        .unwrap();
    assert_eq!(bytes.len(), 8 + 16);
    let parsed = Advertisement::from_bytes(&bytes, SOURCE_V6, GROUP_V6).unwrap();
    assert_eq!(parsed.checksum, ChecksumForm::WithPseudoHeader);
    assert_eq!(parsed.advertisement, advert);

    let mut message_only = bytes.clone();
    fix_checksum(
        &mut message_only,
        SOURCE_V6,
        GROUP_V6,
        ChecksumForm::MessageOnly,
    );
    assert!(matches!(
        Advertisement::from_bytes(&message_only, SOURCE_V6, GROUP_V6),
        Err(ParseError::Checksum {
            expected_message_only: None,
            ..
        })
    ));
}

#[test]
fn v2_simple_password_round_trips_in_the_auth_data() {
    let advert = v2_advert(Auth::simple_password(b"s3cret").unwrap());
    let bytes = advert
        .to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::MessageOnly)
        .unwrap();
    assert_eq!(bytes[4], 1, "auth type 1");
    assert_eq!(&bytes[12..], b"s3cret\0\0");
    assert_eq!(parse_v4(&bytes).unwrap().advertisement, advert);
}

#[test]
fn v2_password_longer_than_8_bytes_is_refused() {
    assert_eq!(
        Auth::simple_password(b"123456789"),
        Err(PasswordTooLong { len: 9 })
    );
}

#[test]
fn v3_reserved_bits_are_ignored_on_receive() {
    let mut bytes = KEEPALIVED_V3;
    bytes[4] |= 0xf0;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::WithPseudoHeader,
    );
    assert_eq!(
        parse_v4(&bytes).unwrap().advertisement,
        v3_advert(vec![VIP])
    );
}

#[test]
fn zero_addresses_are_accepted_as_keepalived_may_send_them() {
    let advert = v3_advert(vec![]);
    let bytes = advert
        .to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::WithPseudoHeader)
        .unwrap();
    assert_eq!(parse_v4(&bytes).unwrap().advertisement, advert);
}

#[test]
fn rejects_truncated_header() {
    assert_eq!(
        parse_v4(&KEEPALIVED_V3[..7]),
        Err(ParseError::Truncated { len: 7 })
    );
    assert_eq!(parse_v4(&[]), Err(ParseError::Truncated { len: 0 }));
}

#[test]
fn rejects_unknown_version() {
    let mut bytes = KEEPALIVED_V3;
    bytes[0] = 0x41;
    assert_eq!(
        parse_v4(&bytes),
        Err(ParseError::UnknownVersion { version: 4 })
    );
}

#[test]
fn rejects_unknown_type() {
    let mut bytes = KEEPALIVED_V3;
    bytes[0] = 0x32;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::WithPseudoHeader,
    );
    assert_eq!(
        parse_v4(&bytes),
        Err(ParseError::UnknownType { packet_type: 2 })
    );
}

#[test]
fn rejects_length_that_does_not_match_the_address_count() {
    let mut bytes = KEEPALIVED_V3;
    bytes[3] = 2;
    assert_eq!(
        parse_v4(&bytes),
        Err(ParseError::LengthMismatch {
            count: 2,
            expected: 16,
            actual: 12
        })
    );
    let mut padded = KEEPALIVED_V2.to_vec();
    padded.push(0);
    assert_eq!(
        parse_v4(&padded),
        Err(ParseError::LengthMismatch {
            count: 1,
            expected: 20,
            actual: 21
        })
    );
}

#[test]
fn rejects_bad_checksum_naming_both_accepted_forms() {
    let mut bytes = KEEPALIVED_V3;
    bytes[7] ^= 1;
    let Err(ParseError::Checksum {
        found,
        expected,
        expected_message_only,
    }) = parse_v4(&bytes)
    else {
        panic!("checksum accepted");
    };
    assert_eq!(found, 0x038c);
    assert_eq!(expected, 0x038d);
    assert!(expected_message_only.is_some());
}

/// The first advert, over VRID and priority, whose checksum comes out as 0x0000 when sent from
/// `source` to `destination` in `form`: 0xffff is the same sum in one's complement.
fn advert_with_zero_checksum(
    template: &Advertisement,
    source: IpAddr,
    destination: IpAddr,
    form: ChecksumForm,
) -> Vec<u8> {
    (1..=255u8)
        .flat_map(|vrid_value| (1..=254u8).map(move |priority| (vrid_value, priority)))
        .map(|(vrid_value, priority)| {
            let advert = Advertisement {
                vrid: vrid(vrid_value),
                priority: Priority::new(priority),
                ..template.clone()
            };
            advert.to_bytes(source, destination, form).unwrap()
        })
        .find(|bytes| bytes[6..8] == [0, 0])
        .expect("some VRID and priority sum to zero")
}

#[test]
fn a_zero_checksum_is_accepted_in_both_its_forms() {
    let cases = [
        (
            v2_advert(Auth::None),
            KEEPALIVED_SOURCE,
            GROUP_V4,
            ChecksumForm::MessageOnly,
        ),
        (
            v3_advert(vec![VIP]),
            KEEPALIVED_SOURCE,
            GROUP_V4,
            ChecksumForm::WithPseudoHeader,
        ),
        (
            v3_advert(vec![VIP]),
            KEEPALIVED_SOURCE,
            GROUP_V4,
            ChecksumForm::MessageOnly,
        ),
        (
            v3_advert(vec![IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 1, 0,
            ))]),
            SOURCE_V6,
            GROUP_V6,
            ChecksumForm::WithPseudoHeader,
        ),
    ];
    for (template, source, destination, form) in cases {
        let mut bytes = advert_with_zero_checksum(&template, source, destination, form);
        let as_sent = Advertisement::from_bytes(&bytes, source, destination).unwrap();
        bytes[6..8].copy_from_slice(&[0xff, 0xff]);
        let negative_zero = Advertisement::from_bytes(&bytes, source, destination)
            .unwrap_or_else(|error| panic!("{form:?} from {source}: 0xffff refused: {error}"));
        assert_eq!(negative_zero, as_sent, "{form:?} from {source}");
    }
}

#[test]
fn rejects_v2_checksum_computed_with_pseudo_header() {
    let mut bytes = KEEPALIVED_V2;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::WithPseudoHeader,
    );
    assert!(matches!(parse_v4(&bytes), Err(ParseError::Checksum { .. })));
}

#[test]
fn rejects_zero_interval_v3() {
    let mut bytes = KEEPALIVED_V3;
    bytes[5] = 0;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::WithPseudoHeader,
    );
    assert_eq!(parse_v4(&bytes), Err(ParseError::ZeroInterval));
}

#[test]
fn rejects_zero_interval_v2() {
    let mut bytes = KEEPALIVED_V2;
    bytes[5] = 0;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::MessageOnly,
    );
    assert_eq!(parse_v4(&bytes), Err(ParseError::ZeroInterval));
}

#[test]
fn rejects_zero_vrid() {
    let mut bytes = KEEPALIVED_V3;
    bytes[1] = 0;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::WithPseudoHeader,
    );
    assert_eq!(parse_v4(&bytes), Err(ParseError::ZeroVrid));
}

#[test]
fn rejects_v2_auth_type_ip_ah_removed_by_rfc3768() {
    let mut bytes = KEEPALIVED_V2;
    bytes[4] = 2;
    fix_checksum(
        &mut bytes,
        KEEPALIVED_SOURCE,
        GROUP_V4,
        ChecksumForm::MessageOnly,
    );
    assert_eq!(
        parse_v4(&bytes),
        Err(ParseError::UnsupportedAuthType { auth_type: 2 })
    );
}

#[test]
fn rejects_v2_over_ipv6() {
    let mut bytes = KEEPALIVED_V2.to_vec();
    // Make the length right for one IPv6 address so only the family is wrong.
    bytes.splice(8..12, [0u8; 16]);
    assert!(matches!(
        Advertisement::from_bytes(&bytes, SOURCE_V6, GROUP_V6),
        Err(ParseError::AddressFamily { version: 2, .. })
    ));
}

#[test]
fn rejects_source_and_destination_of_different_families() {
    assert!(matches!(
        Advertisement::from_bytes(&KEEPALIVED_V3, KEEPALIVED_SOURCE, GROUP_V6),
        Err(ParseError::AddressFamily { version: 3, .. })
    ));
}

#[test]
fn emit_refuses_more_than_255_addresses() {
    let advert = v3_advert(vec![VIP; 256]);
    assert_eq!(
        advert.to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::WithPseudoHeader),
        Err(EmitError::TooManyAddresses { count: 256 })
    );
}

#[test]
fn emit_refuses_addresses_of_another_family_and_v2_over_ipv6() {
    let vip6: IpAddr = "2001:db8::50".parse().unwrap();
    assert!(matches!(
        v3_advert(vec![vip6]).to_bytes(KEEPALIVED_SOURCE, GROUP_V4, ChecksumForm::WithPseudoHeader),
        Err(EmitError::AddressFamily { .. })
    ));
    let mut v2 = v2_advert(Auth::None);
    v2.addresses = vec![vip6];
    assert!(matches!(
        v2.to_bytes(SOURCE_V6, GROUP_V6, ChecksumForm::MessageOnly),
        Err(EmitError::AddressFamily {
            version: Version::V2,
            ..
        })
    ));
}

#[test]
fn emit_refuses_a_short_buffer() {
    let mut buffer = [0u8; 11];
    assert_eq!(
        v3_advert(vec![VIP]).emit(
            &mut buffer,
            KEEPALIVED_SOURCE,
            GROUP_V4,
            ChecksumForm::WithPseudoHeader
        ),
        Err(EmitError::BufferTooSmall {
            len: 11,
            needed: 12
        })
    );
}

fn any_ipv4() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 4]>().prop_map(|octets| IpAddr::V4(Ipv4Addr::from(octets)))
}

fn any_ipv6() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 16]>().prop_map(|octets| IpAddr::V6(Ipv6Addr::from(octets)))
}

fn any_auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        any::<[u8; 8]>().prop_map(Auth::SimplePassword)
    ]
}

/// An advertisement with the IP source and destination it is sent between.
fn any_sent_advert() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr, ChecksumForm)> {
    let header = (1u8..=255, any::<u8>());
    let form = prop_oneof![
        Just(ChecksumForm::WithPseudoHeader),
        Just(ChecksumForm::MessageOnly)
    ];
    let v2 = (
        header.clone(),
        1u8..=255,
        any_auth(),
        prop::collection::vec(any_ipv4(), 0..20),
        any_ipv4(),
        any_ipv4(),
    )
        .prop_map(
            |((vrid, priority), secs, auth, addresses, source, destination)| {
                let advert = Advertisement {
                    vrid: Vrid::try_from(vrid).unwrap(),
                    priority: Priority::new(priority),
                    fields: VersionFields::V2 {
                        advert_interval_secs: NonZeroU8::new(secs).unwrap(),
                        auth,
                    },
                    addresses,
                };
                (advert, source, destination, ChecksumForm::MessageOnly)
            },
        );
    let v3 = (
        header,
        1u16..=4095,
        prop_oneof![
            (
                prop::collection::vec(any_ipv4(), 0..20),
                any_ipv4(),
                any_ipv4()
            ),
            (
                prop::collection::vec(any_ipv6(), 0..20),
                any_ipv6(),
                any_ipv6()
            ),
        ],
        form,
    )
        .prop_map(
            |((vrid, priority), centis, (addresses, source, destination), form)| {
                let advert = Advertisement {
                    vrid: Vrid::try_from(vrid).unwrap(),
                    priority: Priority::new(priority),
                    fields: VersionFields::V3 {
                        max_advert_interval: Centis::try_from(centis).unwrap(),
                    },
                    addresses,
                };
                let form = if source.is_ipv6() {
                    ChecksumForm::WithPseudoHeader
                } else {
                    form
                };
                (advert, source, destination, form)
            },
        );
    prop_oneof![v2, v3]
}

proptest! {
    #[test]
    fn parse_of_emit_is_identity_and_reports_the_checksum_form(
        (advert, source, destination, form) in any_sent_advert()
    ) {
        let bytes = advert.to_bytes(source, destination, form).unwrap();
        prop_assert_eq!(bytes.len(), advert.buffer_len(AddressFamily::of(source)));
        let parsed = Advertisement::from_bytes(&bytes, source, destination).unwrap();
        prop_assert_eq!(parsed.advertisement, advert);
        // A pseudo-header sum of 0 mod 0xffff would make both forms verify; pseudo-header wins then.
        if parsed.checksum != form {
            prop_assert_eq!(parsed.checksum, ChecksumForm::WithPseudoHeader);
            prop_assert_eq!(
                checksum_of(&bytes, source, destination, ChecksumForm::WithPseudoHeader),
                checksum_of(&bytes, source, destination, ChecksumForm::MessageOnly)
            );
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        source in prop_oneof![any_ipv4(), any_ipv6()],
        destination in prop_oneof![any_ipv4(), any_ipv6()],
    ) {
        let _ = Advertisement::from_bytes(&bytes, source, destination);
    }

    #[test]
    fn parse_never_panics_on_mutated_valid_adverts(
        (advert, source, destination, form) in any_sent_advert(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = advert.to_bytes(source, destination, form).unwrap();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        let _ = Advertisement::from_bytes(&bytes, source, destination);
    }
}
