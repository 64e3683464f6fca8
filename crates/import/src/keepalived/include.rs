//! keepalived's `include GLOB`: the matching files are read and spliced in place, in sorted
//! order, with the limits that keep a file including itself from recursing forever.

use std::path::{Path, PathBuf};

use super::syntax::{Token, tokenize};
use crate::{ImportError, Location, read_source};

/// keepalived refuses deeper `include` chains; so does the importer (a file including itself
/// must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Files read through `include` in all: a glob matching thousands of files is a mistake.
const MAX_INCLUDED_FILES: usize = 256;

/// Splices in the files `pattern` matches, relative to the including file's directory, sorted.
pub(super) fn include(
    including: &Path,
    pattern: &str,
    at: &Location,
    depth: usize,
    included: &mut usize,
    tokens: &mut Vec<Token>,
) -> Result<(), ImportError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ImportError::Syntax {
            at: at.clone(),
            message: format!(
                "include nested more than {MAX_INCLUDE_DEPTH} deep (a file including itself?)"
            ),
        });
    }
    let pattern_path = Path::new(pattern);
    let pattern_path = if pattern_path.is_absolute() {
        pattern_path.to_owned()
    } else {
        including
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(pattern_path)
    };
    // keepalived uses glob(3) and ignores a pattern that matches nothing (with a log line).
    for file in glob(&pattern_path) {
        *included += 1;
        if *included > MAX_INCLUDED_FILES {
            return Err(ImportError::Syntax {
                at: at.clone(),
                message: format!("more than {MAX_INCLUDED_FILES} files included"),
            });
        }
        let text = read_source(&file)?;
        tokenize(&file, &text, depth + 1, included, tokens)?;
    }
    Ok(())
}

/// The regular files matching `pattern`, whose components may hold `*`, `?` and `[...]`.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        let is_pattern = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &candidates {
            if !is_pattern {
                next.push(base.join(component));
                continue;
            }
            let directory = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(directory) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') && wildcard_match(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| base.join(name)));
        }
        candidates = next;
    }
    candidates.retain(|path| path.is_file());
    candidates
}

/// glob(3) matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
pub(super) fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic iterative matching with one backtrack point for the last `*`: linear in practice.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class_match(&pattern[p..], name[n]),
            Some(&c) if c == name[n] => Some(1),
            _ => None,
        };
        match step {
            Some(length) => {
                p += length;
                n += 1;
            }
            None => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `c` matches the `[...]` class at the start of `pattern`: `Some(class length)` or None.
fn class_match(pattern: &[char], c: char) -> Option<usize> {
    let end = pattern.iter().skip(2).position(|&x| x == ']')? + 2;
    let body = &pattern[1..end];
    let (negated, body) = match body.first() {
        Some('!' | '^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut matched = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            matched |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            matched |= body[i] == c;
            i += 1;
        }
    }
    (matched != negated).then_some(end + 1)
}
