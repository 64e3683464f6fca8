use super::include::wildcard_match;
use super::script::command_words;

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
