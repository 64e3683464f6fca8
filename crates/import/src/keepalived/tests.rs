use super::include::wildcard_match;
use super::script::{command_words, is_haproxy_liveness};

#[test]
fn globs_match_like_glob3() {
    assert!(wildcard_match("*.conf", "10-vip.conf"));
    assert!(!wildcard_match("*.conf", "10-vip.conf.bak"));
    assert!(wildcard_match("vip?.conf", "vip1.conf"));
    assert!(wildcard_match("[0-9]*", "20-b"));
    assert!(!wildcard_match("[!0-9]*", "20-b"));
    assert!(wildcard_match("*", ""));
    assert!(
        !wildcard_match("[", "["),
        "an unclosed class matches nothing"
    );
}

#[test]
fn commands_split_like_keepalived() {
    let one = |text: &str| command_words(&[text.to_owned()]);
    assert_eq!(one("/bin/check --a 'b c'"), ["/bin/check", "--a", "b c"]);
    assert_eq!(one("  /bin/x  "), ["/bin/x"]);
    let several = command_words(&["/bin/x".to_owned(), "-q".to_owned()]);
    assert_eq!(several, ["/bin/x", "-q"]);
}

#[test]
fn haproxy_liveness_scripts_are_recognised() {
    let words = |text: &str| command_words(&[text.to_owned()]);
    assert!(is_haproxy_liveness(&words("killall -0 haproxy")));
    assert!(is_haproxy_liveness(&words("/usr/bin/pgrep haproxy")));
    assert!(is_haproxy_liveness(&words(
        "systemctl is-active haproxy.service"
    )));
    assert!(!is_haproxy_liveness(&words(
        "/etc/keepalived/check_apiserver.sh"
    )));
    assert!(!is_haproxy_liveness(&words("killall -0 nginx")));
}
