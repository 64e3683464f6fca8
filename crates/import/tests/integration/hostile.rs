//! keepalived.conf and haproxy.cfg are outside input: whatever the bytes, `vipd import` returns
//! a translation that loads, or an error with a position inside the file, and never panics.
//! Random text exercises the tokenizers; truncated and spliced real samples reach deep into the
//! translation.

use std::path::Path;

use proptest::prelude::*;
use vipd_config::Config;
use vipd_import::{ImportError, import, import_texts};

const KEEPALIVED_SAMPLES: [&str; 2] = [
    include_str!("../samples/apiserver-active-standby/keepalived.conf"),
    include_str!("../samples/ingress-active-active/conf.d/10-vip-a.conf"),
];
const HAPROXY_SAMPLES: [&str; 2] = [
    include_str!("../samples/apiserver-active-standby/haproxy.cfg"),
    include_str!("../samples/ingress-active-active/haproxy.cfg"),
];

/// Pieces that make both grammars structurally interesting when spliced in anywhere.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "\n",
    "\"",
    "'",
    "\\",
    "#",
    "!",
    " ",
    "include *\n",
    "backend b\n",
    "listen l :1\n",
    "server s 198.51.100.1:80 check\n",
    "0",
    "-1",
    "::",
    "255",
    "\u{0}",
    "vrrp_instance V {\ninterface eth0\nvirtual_router_id 51\nvirtual_ipaddress {\n198.51.100.50/24\n}\n",
    "use_vmac\n",
    "2001:db8::1/64\n",
    "version 2\n",
    "track_script {\nchk_haproxy\n}\n",
    "frontend f\nbind :9650\ndefault_backend b\n",
];

fn check(keepalived: &str, haproxy: Option<&str>) {
    // The file name has no directory: an `include` in random text resolves against the test's
    // working directory, which holds no matching configuration to speak of.
    let result = import_texts(
        Path::new("keepalived.conf"),
        keepalived,
        haproxy.map(|text| (Path::new("haproxy.cfg"), text)),
    );
    let lines = |text: &str| text.lines().count().max(1);
    match result {
        Ok(imported) => {
            let (config, _) = Config::from_yaml_str(&imported.yaml).expect("a translation loads");
            assert_eq!(config, imported.config);
            for warning in &imported.warnings {
                assert!(warning.at.line >= 1, "{warning}");
            }
        }
        Err(ImportError::Syntax { at, message }) => {
            assert!(!message.is_empty());
            let limit = if &*at.file == "haproxy.cfg" {
                lines(haproxy.unwrap_or_default())
            } else if &*at.file == "keepalived.conf" {
                lines(keepalived)
            } else {
                usize::MAX
            };
            assert!(at.line >= 1 && at.line <= limit, "{at}: {message}");
        }
        Err(ImportError::NothingImported { at, message, .. }) => {
            let text = if &*at.file == "haproxy.cfg" {
                haproxy.unwrap_or_default()
            } else {
                keepalived
            };
            assert!(at.line >= 1 && at.line <= lines(text), "{at}: {message}");
        }
        Err(ImportError::Invalid { yaml, errors }) => {
            panic!("the importer wrote a file vipd refuses:\n{errors}\n{yaml}")
        }
        Err(ImportError::Read { .. }) => {}
    }
}

/// `text` cut at a character boundary near `at`.
fn truncated(text: &str, at: usize) -> &str {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

fn spliced(text: &str, edits: &[(usize, usize)]) -> String {
    let mut text = text.to_owned();
    for &(position, fragment) in edits {
        let mut at = position % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, FRAGMENTS[fragment % FRAGMENTS.len()]);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(keepalived in "\\PC{0,400}", haproxy in "\\PC{0,400}") {
        check(&keepalived, Some(&haproxy));
    }

    #[test]
    fn random_structured_text_never_panics(
        keepalived in proptest::collection::vec(0..FRAGMENTS.len(), 0..80),
        haproxy in proptest::collection::vec(0..FRAGMENTS.len(), 0..80),
    ) {
        let join = |pieces: &[usize]| pieces.iter().map(|&i| FRAGMENTS[i]).collect::<String>();
        check(&join(&keepalived), Some(&join(&haproxy)));
    }

    #[test]
    fn truncated_samples_never_panic(sample in 0..2usize, at in any::<usize>(), other in any::<usize>()) {
        check(truncated(KEEPALIVED_SAMPLES[sample], at), Some(HAPROXY_SAMPLES[sample]));
        check(KEEPALIVED_SAMPLES[sample], Some(truncated(HAPROXY_SAMPLES[sample], other)));
    }

    #[test]
    fn spliced_samples_never_panic(
        sample in 0..2usize,
        edits in proptest::collection::vec((any::<usize>(), any::<usize>()), 1..6),
    ) {
        check(&spliced(KEEPALIVED_SAMPLES[sample], &edits), Some(HAPROXY_SAMPLES[sample]));
        check(KEEPALIVED_SAMPLES[sample], Some(&spliced(HAPROXY_SAMPLES[sample], &edits)));
    }

    #[test]
    fn arbitrary_bytes_from_a_file_are_an_error_or_a_translation(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let path = std::env::temp_dir().join(format!("vipd-import-bytes-{}.conf", std::process::id()));
        std::fs::write(&path, &bytes).expect("write the temp file");
        let result = import(&path, Some(&path));
        std::fs::remove_file(&path).expect("remove the temp file");
        if let Err(ImportError::Invalid { yaml, errors }) = result {
            panic!("the importer wrote a file vipd refuses:\n{errors}\n{yaml}");
        }
    }
}
