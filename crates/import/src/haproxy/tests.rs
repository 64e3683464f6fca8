use std::time::Duration;

use super::bind::socket_address;
use super::check::httpchk;
use super::values::{MAX_TIMEOUT, haproxy_time};
use super::words;
use crate::Location;

fn at() -> Location {
    Location {
        file: "haproxy.cfg".into(),
        line: 1,
    }
}

#[test]
fn words_follow_haproxy_quoting_and_comments() {
    let words = words(r#"option httpchk GET /readyz "HTTP/1.1\r\nHost: a" 'x # y' b\ c # note"#);
    assert_eq!(
        words.expect("parses"),
        [
            "option",
            "httpchk",
            "GET",
            "/readyz",
            "HTTP/1.1\r\nHost: a",
            "x # y",
            "b c"
        ]
    );
    assert!(super::words("bind \"198.51.100.50:80").is_err());
}

#[test]
fn a_check_method_other_than_get_is_named_in_a_warning() {
    let mut warnings = Vec::new();
    let check = httpchk(&["HEAD".into(), "/healthz".into()], &at(), &mut warnings);
    assert_eq!(check.path.as_deref(), Some("/healthz"));
    assert_eq!(warnings.len(), 1);
    let mut warnings = Vec::new();
    httpchk(&["GET".into(), "/healthz".into()], &at(), &mut warnings);
    assert!(warnings.is_empty());
}

#[test]
fn times_default_to_milliseconds_and_fit_vipd() {
    let mut warnings = Vec::new();
    let time = |text| haproxy_time(text, &at(), &mut Vec::new());
    assert_eq!(time("5000"), Some(Duration::from_secs(5)));
    assert_eq!(time("2s"), Some(Duration::from_secs(2)));
    assert_eq!(time("1m"), Some(Duration::from_secs(60)));
    assert_eq!(time("500us"), Some(Duration::from_millis(1)));
    assert_eq!(time("30d"), Some(MAX_TIMEOUT));
    assert_eq!(haproxy_time("5 s", &at(), &mut warnings), None);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn addresses_with_and_without_ports() {
    let parse = |text| socket_address(text, None).map(|address| address.to_string());
    assert_eq!(parse(":443").as_deref(), Ok("0.0.0.0:443"));
    assert_eq!(parse("*:80").as_deref(), Ok("0.0.0.0:80"));
    assert_eq!(
        parse("[2001:db8::1]:443").as_deref(),
        Ok("[2001:db8::1]:443")
    );
    assert_eq!(
        parse("ipv4@198.51.100.1:80").as_deref(),
        Ok("198.51.100.1:80")
    );
    assert!(parse("198.51.100.1").is_err());
    assert!(parse("198.51.100.1:8000-8010").is_err());
    assert!(parse("apiserver.local:6443").is_err());
    assert_eq!(
        socket_address("198.51.100.1", Some(6443))
            .map(|a| a.to_string())
            .as_deref(),
        Ok("198.51.100.1:6443")
    );
}
