//! Errors and warnings about a configuration file: each names a field path and a position.

use std::fmt;
use std::path::PathBuf;

use crate::location::Position;

/// One finding about the file: `vrrp[0].vrid (line 5, column 11): must be 1..255, got 300`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The field path, like `vrrp[0].vips[1].address` or `scripts.chk_custom.interval`; empty
    /// for the document as a whole.
    pub path: String,
    /// 1-based line of the field's value (of its nearest present ancestor when it is missing).
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(path: impl Into<String>, at: Position, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(
            f,
            "{path} (line {}, column {}): {}",
            self.line, self.column, self.message
        )
    }
}

/// A valid file's finding that deserves attention but does not stop vipd (`vipd check` exits 0).
pub type Warning = Diagnostic;

/// Every error found in a file, in file order; never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Diagnostic>);

impl Errors {
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (number, error) in self.0.iter().enumerate() {
            if number > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The reason of an I/O error as people read it: `No such file or directory`, without the
/// standard library's ` (os error 2)`.
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_owned(),
        _ => text,
    }
}

/// Why [`crate::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {}", path.display(), io_reason(source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is larger than {limit} bytes, the limit for a configuration file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is not valid UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{} is invalid ({} errors):\n{errors}", path.display(), errors.len())]
    Invalid { path: PathBuf, errors: Errors },
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_read_error_is_one_plain_line() {
        let error = crate::load("/nonexistent/vipd/vipd.yaml").expect_err("missing");
        assert_eq!(
            error.to_string(),
            "cannot read /nonexistent/vipd/vipd.yaml: No such file or directory"
        );
    }
}
