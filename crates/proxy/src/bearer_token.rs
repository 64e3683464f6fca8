//! `health.bearer_token_file`: the token of `Authorization: Bearer` (RFC 6750 section 2.1) that
//! hardened apiservers (anonymous auth off) want on `/readyz`.
//!
//! Tokens rotate without a reload (a Kubernetes projected token is swapped in about hourly), so
//! each check looks at the file's identity (device, inode, size, modification time) and reads it
//! again when that changed. At start and reload a missing or malformed file is an error; later,
//! the last good token stays in use and the problem is logged once, because a local file going
//! bad says nothing about the servers' health. The token itself is never logged.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Larger files are not tokens (a projected service-account token is about 1 KiB).
const MAX_TOKEN_FILE: u64 = 64 * 1024;

#[derive(Debug)]
pub(crate) struct BearerToken {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    identity: FileIdentity,
    /// `Bearer <token>`.
    header_value: String,
    /// The problem last logged, so that it is logged once.
    problem: Option<String>,
}

/// What changes when the file is rewritten or swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified_nanos: i128,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_nanos: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

impl BearerToken {
    /// Reads the token now; the error names the file and what is wrong with it.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let (identity, header_value) = read_token(path)?;
        Ok(Self {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                identity,
                header_value,
                problem: None,
            }),
        })
    }

    /// `Bearer <token>` for the next check, read again if the file changed.
    pub(crate) fn header_value(&self) -> String {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = std::fs::metadata(&self.path)
            .map_err(|error| format!("cannot read {}: {error}", self.path.display()))
            .map(|metadata| FileIdentity::of(&metadata) != loaded.identity);
        let reread = match changed {
            Ok(false) => Ok(None),
            Ok(true) => read_token(&self.path).map(Some),
            Err(problem) => Err(problem),
        };
        match reread {
            Ok(None) => {}
            Ok(Some((identity, header_value))) => {
                if loaded.problem.take().is_some() {
                    tracing::info!(file = %self.path.display(), "bearer token file readable again");
                }
                loaded.identity = identity;
                loaded.header_value = header_value;
            }
            Err(problem) => {
                if loaded.problem.as_ref() != Some(&problem) {
                    tracing::warn!(%problem, "health checks keep the last good bearer token");
                    loaded.problem = Some(problem);
                }
            }
        }
        loaded.header_value.clone()
    }
}

/// The file's identity and `Bearer <token>`, from one open file so that both describe the same
/// content.
fn read_token(path: &Path) -> Result<(FileIdentity, String), String> {
    let named = |problem: String| format!("bearer token file {}: {problem}", path.display());
    let file = std::fs::File::open(path).map_err(|error| named(error.to_string()))?;
    let metadata = file.metadata().map_err(|error| named(error.to_string()))?;
    let mut content = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut content)
        .map_err(|error| named(error.to_string()))?;
    if content.len() as u64 > MAX_TOKEN_FILE {
        return Err(named(format!("larger than {MAX_TOKEN_FILE} bytes")));
    }
    let token = parse_token(&content).map_err(named)?;
    Ok((FileIdentity::of(&metadata), format!("Bearer {token}")))
}

/// The file's content without surrounding whitespace (a trailing newline is usual), which must be
/// a `b64token` (RFC 6750 section 2.1): it goes into the request as it is.
fn parse_token(content: &[u8]) -> Result<&str, String> {
    let token = content.trim_ascii();
    if token.is_empty() {
        return Err("empty".to_owned());
    }
    let body_end = token
        .iter()
        .rposition(|&byte| byte != b'=')
        .map_or(0, |last| last + 1);
    if body_end == 0 {
        return Err("only `=`".to_owned());
    }
    let bad = token[..body_end]
        .iter()
        .position(|&byte| !(byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)));
    if let Some(position) = bad {
        return Err(format!(
            "byte {} of the token cannot be in a bearer token (RFC 6750 section 2.1: letters, \
             digits, -._~+/ and trailing =)",
            position + 1
        ));
    }
    std::str::from_utf8(token).map_err(|_| "not text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_checked() {
        assert_eq!(
            parse_token(b"abc.DEF-1_~+/==\n").unwrap(),
            "abc.DEF-1_~+/=="
        );
        assert!(parse_token(b" \n").unwrap_err().contains("empty"));
        assert!(parse_token(b"Bearer abc").unwrap_err().contains("byte 7"));
        assert!(parse_token(b"abc\r\nX-Evil: 1").is_err());
        assert!(parse_token(b"a=b").is_err(), "= only at the end");
        assert!(parse_token(b"==").is_err());
        assert!(parse_token("t\u{e9}".as_bytes()).is_err());
    }
}
