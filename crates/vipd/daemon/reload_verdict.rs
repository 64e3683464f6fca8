//! What came of each configuration load, kept for `/status`, `/metrics`, `vipd reload` and
//! systemd's `STATUS=`: sequence 0 is the start-up load, and every SIGHUP adds one whatever its
//! verdict (docs/operations.md, Reload). Without it a rejected file was a log line only, and
//! `systemctl reload` said nothing.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use vipd_config::{Config, LoadError, Warning};

use crate::control::status::LastReload;

/// What came of one load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The whole file is in force; `digest` is the file's.
    Applied { digest: String },
    /// The file is in force, but not all of it: `errors` say what is missing.
    Partial { digest: String, errors: Vec<String> },
    /// Nothing changed: the previous file stays in force.
    Rejected { errors: Vec<String> },
}

impl Verdict {
    /// The same verdict with one more thing the file asked for that did not happen: an applied
    /// file becomes a partial one; a rejected one stays rejected.
    #[must_use]
    pub fn with_problem(self, problem: String) -> Self {
        match self {
            Self::Applied { digest } => Self::Partial {
                digest,
                errors: vec![problem],
            },
            Self::Partial { digest, mut errors } => {
                errors.push(problem);
                Self::Partial { digest, errors }
            }
            rejected @ Self::Rejected { .. } => rejected,
        }
    }
}

/// The last load, and when the last one that applied the whole file was.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    pub last: LastReload,
    pub last_success_at_unix_seconds: f64,
}

impl ReloadRecord {
    /// The start-up load, at `at` (seconds since the Unix epoch): applied, since a file that
    /// does not start leaves no daemon to report on.
    pub fn started(digest: String, at: f64) -> Self {
        Self {
            last: LastReload {
                sequence: 0,
                at_unix_seconds: at,
                ok: true,
                partial: false,
                errors: Vec::new(),
                config_digest: digest,
            },
            last_success_at_unix_seconds: at,
        }
    }

    /// Records the verdict of the next load, known at `at`.
    pub fn record(&mut self, verdict: Verdict, at: f64) {
        let sequence = self.last.sequence.saturating_add(1);
        let (ok, partial, errors, digest) = match verdict {
            Verdict::Applied { digest } => (true, false, Vec::new(), digest),
            Verdict::Partial { digest, errors } => (false, true, errors, digest),
            Verdict::Rejected { errors } => (false, false, errors, self.last.config_digest.clone()),
        };
        if ok {
            self.last_success_at_unix_seconds = at;
        }
        self.last = LastReload {
            sequence,
            at_unix_seconds: at,
            ok,
            partial,
            errors,
            config_digest: digest,
        };
    }

    /// One line for systemd's `STATUS=` (what `systemctl status vipd` shows).
    pub fn summary(&self) -> String {
        let last = &self.last;
        let count = last.errors.len();
        let what = if last.ok {
            "configuration loaded"
        } else if last.partial {
            "configuration applied in part"
        } else {
            "reload rejected, the previous configuration runs"
        };
        let mut line = format!("{what} (load {})", last.sequence);
        if count > 0 {
            let _ = write!(
                line,
                ": {count} {}, see vipd status or the log",
                if count == 1 { "error" } else { "errors" }
            );
        }
        line
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// `sha256:<hex>` of a configuration text, as `sha256sum FILE` prints it.
pub fn digest(text: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hash.as_ref()
        .iter()
        .fold(String::from("sha256:"), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Reads and validates the file at `path` like `vipd_config::load`, with the digest of the text
/// that was validated (not of a file that changed in between).
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>, String), LoadError> {
    let text = vipd_config::read_text(path)?;
    let (config, warnings) = Config::from_yaml_str(&text).map_err(|errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    })?;
    Ok((config, warnings, digest(&text)))
}

/// A load error as the `errors` of a verdict: one line per problem of an invalid file (`field
/// (line L, column C): message`), else the one error.
pub fn error_lines(error: &LoadError) -> Vec<String> {
    match error {
        LoadError::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: f64 = 1000.0;

    fn applied(digest: &str) -> Verdict {
        Verdict::Applied {
            digest: digest.to_owned(),
        }
    }

    #[test]
    fn the_start_up_load_is_sequence_zero_and_a_success() {
        let record = ReloadRecord::started("sha256:aa".to_owned(), STARTED);
        assert_eq!(record.last.sequence, 0);
        assert!(record.last.ok && !record.last.partial);
        assert!(record.last.errors.is_empty());
        assert_eq!(
            record.last_success_at_unix_seconds.to_bits(),
            STARTED.to_bits()
        );
        assert_eq!(record.summary(), "configuration loaded (load 0)");
    }

    #[test]
    fn a_rejected_reload_keeps_the_digest_and_the_success_time_of_the_file_in_force() {
        let mut record = ReloadRecord::started("sha256:aa".to_owned(), STARTED);
        record.record(applied("sha256:bb"), 1001.0);
        record.record(
            Verdict::Rejected {
                errors: vec!["vrrp[0].vrid (line 5, column 11): must be 1..255".to_owned()],
            },
            1002.0,
        );
        let last = &record.last;
        assert_eq!(last.sequence, 2);
        assert!(!last.ok && !last.partial);
        assert_eq!(last.config_digest, "sha256:bb");
        assert_eq!(last.errors.len(), 1);
        assert_eq!(last.at_unix_seconds.to_bits(), 1002.0_f64.to_bits());
        assert_eq!(
            record.last_success_at_unix_seconds.to_bits(),
            1001.0_f64.to_bits()
        );
        assert_eq!(
            record.summary(),
            "reload rejected, the previous configuration runs (load 2): 1 error, see vipd status or the log"
        );
    }

    #[test]
    fn a_partial_reload_puts_the_new_file_in_force_but_is_no_success() {
        let mut record = ReloadRecord::started("sha256:aa".to_owned(), STARTED);
        let verdict = applied("sha256:cc")
            .with_problem("vrrp api: eth9: no such interface".to_owned())
            .with_problem("control server stays at 127.0.0.1:9650".to_owned());
        record.record(verdict, 1003.0);
        assert!(!record.last.ok && record.last.partial);
        assert_eq!(record.last.config_digest, "sha256:cc");
        assert_eq!(record.last.errors.len(), 2);
        assert_eq!(
            record.last_success_at_unix_seconds.to_bits(),
            STARTED.to_bits()
        );
    }

    #[test]
    fn a_problem_does_not_turn_a_rejection_into_anything_else() {
        let rejected = Verdict::Rejected {
            errors: vec!["bad".to_owned()],
        };
        assert_eq!(rejected.clone().with_problem("more".to_owned()), rejected);
    }

    #[test]
    fn the_digest_is_what_sha256sum_prints() {
        // printf 'node: lb1\n' | sha256sum
        assert_eq!(
            digest("node: lb1\n"),
            "sha256:b2f2baca44e09405cba1b51af8eb69f183010374f5fe8580f4c03b5b54b5306f"
        );
    }
}
