//! Where each field of the document sits in the file: a path → line/column index built from the
//! parser's event stream, so validation can name positions without carrying spans in the model.
//!
//! This module knows nothing of the YAML library: `yaml::index` feeds an [`IndexBuilder`] one
//! node at a time.

use std::collections::HashMap;

/// A position in the configuration file; both numbers start at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    /// The first character of the file: where errors about the whole document point.
    pub const START: Self = Self { line: 1, column: 1 };
    /// Past any position in any file.
    const END: Self = Self {
        line: u64::MAX,
        column: u64::MAX,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A mapping key; its path is the path of the value it introduces.
    Key,
    Mapping,
    Sequence,
    Scalar,
}

#[derive(Debug)]
struct Entry {
    path: String,
    kind: EntryKind,
    start: Position,
    end: Position,
}

/// Every node and key of the first document, by field path (`vrrp[0].vips[1].address`).
#[derive(Debug, Default)]
pub struct LocationIndex {
    entries: Vec<Entry>,
    /// Path → index of the entry of the path's value node (first occurrence).
    values: HashMap<String, usize>,
}

enum Frame {
    Sequence {
        path: String,
        entry: usize,
        next_item: usize,
    },
    Mapping {
        path: String,
        entry: usize,
        /// The key whose value comes next; `None` while a key is expected.
        pending_key: Option<String>,
    },
    /// A collection used as a mapping key: indexed under a placeholder, never looked up.
    ComplexKey { entry: usize, depth: usize },
}

/// Builds a [`LocationIndex`] from the nodes of one document, in document order.
#[derive(Default)]
pub struct IndexBuilder {
    index: LocationIndex,
    stack: Vec<Frame>,
    root_seen: bool,
}

impl IndexBuilder {
    pub fn finish(self) -> LocationIndex {
        self.index
    }

    /// Records one node (a scalar, an alias, or the start of a collection) at its place in the
    /// open collections; `scalar` is a scalar's text, which names the field when it is a key.
    pub fn node(&mut self, kind: EntryKind, start: Position, end: Position, scalar: Option<&str>) {
        let is_collection = matches!(kind, EntryKind::Mapping | EntryKind::Sequence);
        let path = match self.stack.last_mut() {
            None => {
                if self.root_seen {
                    return;
                }
                self.root_seen = true;
                String::new()
            }
            Some(Frame::ComplexKey { depth, .. }) => {
                if is_collection {
                    *depth += 1;
                }
                return;
            }
            Some(Frame::Sequence {
                path, next_item, ..
            }) => {
                let item = format!("{path}[{next_item}]");
                *next_item += 1;
                item
            }
            Some(Frame::Mapping {
                path, pending_key, ..
            }) => {
                if let Some(key) = pending_key.take() {
                    join(path, &key)
                } else {
                    let key = scalar.unwrap_or("?").to_owned();
                    let key_path = join(path, &key);
                    *pending_key = Some(key);
                    let entry = self.index.push(key_path, EntryKind::Key, start, end);
                    if is_collection {
                        self.stack.push(Frame::ComplexKey { entry, depth: 1 });
                    }
                    return;
                }
            }
        };
        // A collection reaches to its end event; until then (and for ever, when a syntax error
        // cuts the document short) it contains everything after its start.
        let end = if is_collection { Position::END } else { end };
        let entry = self.index.push(path.clone(), kind, start, end);
        self.index.values.entry(path.clone()).or_insert(entry);
        match kind {
            EntryKind::Mapping => self.stack.push(Frame::Mapping {
                path,
                entry,
                pending_key: None,
            }),
            EntryKind::Sequence => self.stack.push(Frame::Sequence {
                path,
                entry,
                next_item: 0,
            }),
            EntryKind::Scalar | EntryKind::Key => {}
        }
    }

    /// Records the end of the innermost open collection.
    pub fn close(&mut self, end: Position) {
        match self.stack.last_mut() {
            Some(Frame::ComplexKey { entry, depth }) => {
                *depth -= 1;
                if *depth == 0 {
                    self.index.entries[*entry].end = end;
                    self.stack.pop();
                }
            }
            Some(Frame::Sequence { entry, .. } | Frame::Mapping { entry, .. }) => {
                self.index.entries[*entry].end = end;
                self.stack.pop();
            }
            None => {}
        }
    }
}

impl LocationIndex {
    fn push(&mut self, path: String, kind: EntryKind, start: Position, end: Position) -> usize {
        self.entries.push(Entry {
            path,
            kind,
            start,
            end,
        });
        self.entries.len() - 1
    }

    /// Where the value of `path` starts; for a path that is not in the file (a missing field),
    /// where its nearest present ancestor starts.
    pub fn position(&self, path: &str) -> Position {
        let mut current = path;
        loop {
            if let Some(&entry) = self.values.get(current) {
                return self.entries[entry].start;
            }
            match parent(current) {
                Some(up) => current = up,
                None => return Position::START,
            }
        }
    }

    /// Where the key of `path` starts (for errors about the field itself, like a duplicate
    /// name); falls back to [`Self::position`].
    pub fn key_position(&self, path: &str) -> Position {
        self.entries
            .iter()
            .find(|entry| entry.kind == EntryKind::Key && entry.path == path)
            .map_or_else(|| self.position(path), |entry| entry.start)
    }

    /// The path of the key that starts exactly at `at`, if any.
    pub fn key_at(&self, at: Position) -> Option<&str> {
        self.entries
            .iter()
            .find(|entry| entry.kind == EntryKind::Key && entry.start == at)
            .map(|entry| entry.path.as_str())
    }

    /// The path of the innermost mapping containing `at` (where a missing field belongs).
    pub fn mapping_at(&self, at: Position) -> Option<&str> {
        self.innermost(at, |kind| kind == EntryKind::Mapping)
    }

    /// The path of the innermost node or key containing `at`.
    pub fn path_at(&self, at: Position) -> Option<&str> {
        self.innermost(at, |_| true)
    }

    fn innermost(&self, at: Position, wanted: impl Fn(EntryKind) -> bool) -> Option<&str> {
        self.entries
            .iter()
            // Later entries are nested deeper (or are keys inside), so the last match is innermost.
            .rfind(|entry| {
                wanted(entry.kind) && entry.start <= at && (at < entry.end || at == entry.start)
            })
            .map(|entry| entry.path.as_str())
    }
}

/// `parent.key`, or `key` at the top level.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → `` (the root), `` → none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
node: lb1
vrrp:
  - name: api
    vips:
      - 198.51.100.50/24
      - { address: \"2001:db8::50/64\", label: x }
scripts:
  chk:
    command: [/bin/true]
";

    fn at(line: u64, column: u64) -> Position {
        Position { line, column }
    }

    #[test]
    fn values_are_indexed_by_path() {
        let index = crate::yaml::index(TEXT);
        assert_eq!(index.position("node"), at(1, 7));
        assert_eq!(index.position("vrrp[0].name"), at(3, 11));
        assert_eq!(index.position("vrrp[0].vips[0]"), at(5, 9));
        assert_eq!(index.position("vrrp[0].vips[1].address"), at(6, 20));
        assert_eq!(index.position("scripts.chk.command[0]"), at(9, 15));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let index = crate::yaml::index(TEXT);
        assert_eq!(index.position("vrrp[0].vrid"), index.position("vrrp[0]"));
        assert_eq!(index.position("nothing.here"), Position::START);
    }

    #[test]
    fn keys_and_containers_are_found_by_position() {
        let index = crate::yaml::index(TEXT);
        assert_eq!(index.key_at(at(3, 5)), Some("vrrp[0].name"));
        assert_eq!(index.key_position("vrrp[0].name"), at(3, 5));
        assert_eq!(index.mapping_at(at(3, 5)), Some("vrrp[0]"));
        assert_eq!(index.path_at(at(6, 25)), Some("vrrp[0].vips[1].address"));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
