//! A configuration file is outside input: whatever the text, parsing returns errors with
//! positions inside the file, and never panics. Mutations of the real examples reach deep into
//! validation; random text exercises the parser.

use proptest::prelude::*;
use vipd_config::Config;

const EXAMPLES: [&str; 2] = [
    include_str!("../../../../deploy/examples/active-standby-lb1.yaml"),
    include_str!("../../../../deploy/examples/active-active-lb2.yaml"),
];

/// Pieces that make YAML structurally interesting when spliced in anywhere.
const FRAGMENTS: [&str; 16] = [
    ":", "- ", "[", "]", "{", "}", "\n", "  ", "&a ", "*a", "<<: ", "\"", "0", "-300", "::", "\t",
];

/// Runs `text` through the parser and checks the invariants of the result.
fn check_text(text: &str) {
    // YAML breaks lines at \n, \r and \r\n; counting both characters bounds the line numbers.
    let breaks = text.chars().filter(|c| matches!(c, '\n' | '\r')).count();
    let lines = u64::try_from(breaks).expect("a test text fits u64") + 1;
    match Config::from_yaml_str(text) {
        Ok((_, warnings)) => {
            for warning in warnings {
                assert!(warning.line >= 1 && warning.line <= lines, "{warning}");
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in &errors {
                assert!(error.line >= 1 && error.line <= lines, "{error} in\n{text}");
                assert!(error.column >= 1, "{error}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_examples_never_panic(
        example in 0..EXAMPLES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..FRAGMENTS.len(), 0usize..12), 1..6),
    ) {
        let mut text: Vec<char> = EXAMPLES[example].chars().collect();
        for (at, fragment, delete) in edits {
            let at = at.index(text.len());
            let end = (at + delete).min(text.len());
            text.splice(at..end, FRAGMENTS[fragment].chars());
        }
        check_text(&text.into_iter().collect::<String>());
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check_text(&text);
    }
}

#[test]
fn deep_nesting_is_refused_not_fatal() {
    let deep = format!("node: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Config::from_yaml_str(&deep).is_err());
    let deep_maps = format!("node: {}{}", "{a: ".repeat(5_000), "}".repeat(5_000));
    assert!(Config::from_yaml_str(&deep_maps).is_err());
}
