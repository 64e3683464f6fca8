//! The one place that knows the YAML library (serde-saphyr and its parser): text in, raw
//! document and location index out, or one error with its path and position.

use std::borrow::Cow;

use serde_saphyr::granit_parser::{Event, Marker, Parser};
use serde_saphyr::{DuplicateKeyPolicy, MergeKeyPolicy, MessageFormatter};

use crate::diagnostic::Diagnostic;
use crate::location::{EntryKind, IndexBuilder, LocationIndex, Position, join};
use crate::raw::Document;

/// Parses `text` as one YAML document into the raw model.
///
/// Strict on purpose: only `true`/`false` are booleans (YAML 1.1's `yes`/`on`/`no` are what
/// turns a country code or a password into a boolean), duplicate keys are errors (the second
/// one silently winning hides mistakes), and merge keys (`<<`) are refused so that every field
/// a reader sees in the file is where it takes effect.
pub fn parse(text: &str) -> Result<(Document, LocationIndex), Diagnostic> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::Error,
        with_snippet: false,
    };
    // An empty file (or one holding only comments) is an empty document, not a syntax error;
    // validation refuses it with a message that says why (`nothing_to_do`).
    let parsed = if text
        .trim()
        .lines()
        .all(|line| line.trim_start().starts_with('#') || line.trim().is_empty())
    {
        Ok(Document::default())
    } else {
        serde_saphyr::from_str_with_options::<Document>(text, options)
    };
    let index = index(text);
    match parsed {
        Ok(document) => Ok((document, index)),
        Err(error) => Err(diagnose(&error, &index)),
    }
}

/// Indexes where every field of `text`'s first document sits. A syntax error ends the index
/// early: the deserializer reports that error, and everything before it is still indexed.
pub fn index(text: &str) -> LocationIndex {
    let mut builder = IndexBuilder::default();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let (start, end) = (position(span.start), position(span.end));
        match event {
            Event::DocumentEnd => break,
            Event::Scalar(value, ..) => builder.node(EntryKind::Scalar, start, end, Some(&value)),
            Event::Alias(_) => builder.node(EntryKind::Scalar, start, end, None),
            Event::MappingStart(..) => builder.node(EntryKind::Mapping, start, end, None),
            Event::SequenceStart(..) => builder.node(EntryKind::Sequence, start, end, None),
            Event::MappingEnd | Event::SequenceEnd => builder.close(end),
            _ => {}
        }
    }
    builder.finish()
}

fn position(marker: Marker) -> Position {
    // The parser counts lines from 1 and columns from 0; users count both from 1.
    Position {
        line: u64::try_from(marker.line()).unwrap_or(u64::MAX),
        column: u64::try_from(marker.col())
            .unwrap_or(u64::MAX)
            .saturating_add(1),
    }
}

/// Turns the deserializer's error into a diagnostic that names the field path.
fn diagnose(error: &serde_saphyr::Error, index: &LocationIndex) -> Diagnostic {
    let error = error.without_snippet();
    let at = error
        .location()
        .map_or(Position::START, |location| Position {
            line: location.line(),
            column: location.column(),
        });
    let message = plain_message(error);
    let path = match error {
        serde_saphyr::Error::SerdeMissingField { field, .. } => {
            join(index.mapping_at(at).unwrap_or_default(), field)
        }
        serde_saphyr::Error::SerdeUnknownField { .. }
        | serde_saphyr::Error::DuplicateMappingKey { .. } => index
            .key_at(at)
            .or_else(|| index.path_at(at))
            .unwrap_or_default()
            .to_owned(),
        _ => index.path_at(at).unwrap_or_default().to_owned(),
    };
    Diagnostic::new(path, at, message)
}

/// The library's message without its "at line X, column Y" suffix (we print our own), with
/// control characters escaped: the message may quote the file.
fn plain_message(error: &serde_saphyr::Error) -> String {
    let message: Cow<'_, str> = match error {
        // The library says "invalid i64": say what the field wants instead.
        serde_saphyr::Error::InvalidScalar { ty, .. } => Cow::Owned(format!(
            "expected {}",
            match *ty {
                "bool" => "true or false",
                "i64" | "u64" | "i32" | "u32" | "u16" | "u8" => "a whole number",
                other => other,
            }
        )),
        serde_saphyr::Error::Unexpected { expected, .. } => Cow::Owned(format!(
            "expected {}",
            match *expected {
                "mapping start" => "a map (`key: value` lines or `{ key: value }`)",
                "sequence start" => "a list (`- item` lines or `[item, item]`)",
                "string scalar" => "a string",
                other => other,
            }
        )),
        serde_saphyr::Error::MultipleDocuments { .. } => {
            Cow::Borrowed("a second YAML document (`---`): vipd.yaml is a single document")
        }
        _ => serde_saphyr::DefaultMessageFormatter.format_message(error),
    };
    message
        .chars()
        .flat_map(|character| {
            let escaped: Vec<char> = if character.is_control() {
                character.escape_debug().collect()
            } else {
                vec![character]
            };
            escaped
        })
        .collect::<String>()
        .replace(
            ", set DuplicateKeyPolicy in Options if acceptable",
            "; each key may appear once",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> Diagnostic {
        parse(text).expect_err("the text is invalid")
    }

    #[test]
    fn unknown_field_names_its_path_and_line() {
        let found = error("vrrp:\n  - name: a\n    bogus: 3\n");
        assert_eq!(found.path, "vrrp[0].bogus");
        assert_eq!((found.line, found.column), (3, 5));
        assert!(found.message.contains("unknown field `bogus`"), "{found}");
    }

    #[test]
    fn type_errors_name_the_value() {
        let found = error("vrrp:\n  - vrid: abc\n");
        assert_eq!(found.path, "vrrp[0].vrid");
        assert_eq!((found.line, found.column), (2, 11));
        assert_eq!(found.message, "expected a whole number");
    }

    #[test]
    fn booleans_are_strict() {
        let found = error("frontends:\n  - name: a\n    accept_proxy: yes\n");
        assert_eq!(found.path, "frontends[0].accept_proxy");
        assert_eq!(found.line, 3);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let found = error("node: a\nnode: b\n");
        assert_eq!(found.path, "node");
        assert_eq!(found.line, 2);
        assert!(
            found.message.contains("each key may appear once"),
            "{found}"
        );
    }

    #[test]
    fn merge_keys_are_refused() {
        let found = error("scripts:\n  a: &base { interval: 2s }\n  b:\n    <<: *base\n");
        assert_eq!(found.line, 4);
    }

    #[test]
    fn unknown_words_in_choices_list_the_allowed_ones() {
        let found = error("backends:\n  - name: a\n    balance: fastest\n");
        assert_eq!(found.path, "backends[0].balance");
        assert!(found.message.contains("least_conn"), "{found}");
    }

    #[test]
    fn vip_forms_have_clear_errors() {
        let found = error("vrrp:\n  - vips: [[1]]\n");
        assert_eq!(found.path, "vrrp[0].vips[0]");
        assert!(
            found.message.contains("a VIP with its prefix length"),
            "{found}"
        );
        let found = error("vrrp:\n  - vips: [{ adress: 198.51.100.1/24 }]\n");
        assert_eq!(found.path, "vrrp[0].vips[0].adress");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let found = error("vrrp: [\n");
        assert_eq!(found.line, 1);
    }

    #[test]
    fn shape_errors_say_what_the_field_wants() {
        let found = error("vrrp:\n  - vips: 198.51.100.50/24\n");
        assert_eq!(found.path, "vrrp[0].vips");
        assert!(found.message.starts_with("expected a list"), "{found}");
        let found = error("scripts: []\n");
        assert!(found.message.starts_with("expected a map"), "{found}");
        let found = error("node: [a]\n");
        assert_eq!(found.message, "expected a string");
        let found = error("node: a\n---\nnode: b\n");
        assert_eq!(found.line, 3);
        assert!(found.message.contains("single document"), "{found}");
    }

    #[test]
    fn empty_files_are_empty_documents() {
        assert!(parse("").is_ok());
        assert!(parse("# nothing yet\n").is_ok());
    }
}
