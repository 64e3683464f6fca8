//! The vipd.yaml configuration contract: model, defaults and validation.
//!
//! [`Config::from_yaml_str`] turns text into a typed [`Config`] with every default resolved, plus
//! the [`Warning`]s a valid file may deserve; or into [`Errors`], every problem in the file, each
//! naming its field path and line and column (`vrrp[0].vrid (line 7, column 11): ...`).
//! [`load`] does the same for a file. Neither performs any IO beyond reading that file; the
//! checks that look at other files, [`referenced_file_errors`] and
//! [`script_permission_warnings`], are separate calls, made together by [`check_file`] (what
//! `vipd check` runs). [`pair_findings`] compares the files of the two nodes of a pair.
//!
//! The field names are a contract: added, never renamed (docs/design/configuration.md);
//! docs/configuration.md is the operator's reference.

#![forbid(unsafe_code)]

pub mod defaults;
mod diagnostic;
mod location;
mod model;
mod other_formats;
mod pair;
mod raw;
mod referenced_files;
mod script_permissions;
mod validate;
mod yaml;

use std::io::Read;
use std::path::Path;

pub use diagnostic::{Diagnostic, Errors, LoadError, Warning};
pub use model::{
    Announce, AnnounceGroup, Backend, Balance, CheckOptions, ClientCertificate, Command, Config,
    Control, Frontend, Garp, HealthCheck, HealthKind, HttpCheck, Notify, OnServerDown, PipeMemory,
    ProxyProtocol, Script, Server, TcpKeepalive, Timeouts, TlsVerify, TrackTarget, Tracker,
    Unicast, V3Checksum, Vip, VirtualMac, VrrpInstance, VrrpVersion,
};
pub use pair::{Node, PairFinding, Place, Severity, pair_findings};
pub use referenced_files::referenced_file_errors;
pub use script_permissions::{non_root_writer, script_permission_warnings};
// The validator's own checks, for vipd-import to adapt names rather than copy the rules.
pub use validate::{is_interface_name, name_problem};

/// Where vipd looks for its configuration when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/vipd/vipd.yaml";

/// The largest configuration file accepted; real ones are a few kilobytes.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

impl Config {
    /// Parses and validates a vipd.yaml text.
    ///
    /// # Errors
    /// Every problem found: a YAML or type error stops parsing (one error); past that point,
    /// every semantic problem of the file is reported.
    pub fn from_yaml_str(text: &str) -> Result<(Config, Vec<Warning>), Errors> {
        let (document, index) = yaml::parse(text).map_err(|error| {
            // A keepalived.conf or haproxy.cfg in vipd.yaml's place: say so, not where its
            // first brace broke the YAML.
            Errors(vec![other_formats::recognize(text).unwrap_or(error)])
        })?;
        validate::validate(document, &index)
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<(Config, Vec<Warning>), LoadError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    Config::from_yaml_str(&text).map_err(|errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    })
}

/// A file that passed every check of `vipd check`: the configuration, its text (for positions)
/// and its warnings, in file order.
#[derive(Debug)]
pub struct Checked {
    pub config: Config,
    pub text: String,
    pub warnings: Vec<Warning>,
}

/// Everything `vipd check` verifies about the file at `path`, for it and for any command that
/// must give the same verdict (a reload): [`load`]'s validation, plus the files the
/// configuration names, which must be readable ([`referenced_file_errors`], errors), and the
/// programs it runs ([`script_permission_warnings`], warnings). Unlike [`load`], this reads
/// files other than `path`.
pub fn check_file(path: impl AsRef<Path>) -> Result<Checked, LoadError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let invalid = |errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    };
    let (config, mut warnings) = Config::from_yaml_str(&text).map_err(invalid)?;
    let errors = referenced_file_errors(&config, &text);
    if !errors.is_empty() {
        return Err(invalid(Errors(errors)));
    }
    warnings.extend(script_permission_warnings(&config, &text));
    warnings.sort_by_key(|warning| (warning.line, warning.column));
    Ok(Checked {
        config,
        text,
        warnings,
    })
}

/// Reads the configuration file at `path` as text, refusing files over [`MAX_FILE_SIZE`].
pub fn read_text(path: impl AsRef<Path>) -> Result<String, LoadError> {
    let path = path.as_ref();
    read_bounded_text(path).map_err(|failure| match failure {
        ReadFailure::Io(source) => LoadError::Read {
            path: path.to_owned(),
            source,
        },
        ReadFailure::TooLarge => LoadError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_SIZE,
        },
        ReadFailure::NotUtf8 { .. } => LoadError::NotUtf8 {
            path: path.to_owned(),
        },
    })
}

/// Why a file could not be read as text; each reader (configuration, importer) words it.
#[derive(Debug)]
pub enum ReadFailure {
    Io(std::io::Error),
    TooLarge,
    /// Not UTF-8; `line` is where the first invalid byte is (1-based).
    NotUtf8 {
        line: usize,
    },
}

/// Reads `path` as UTF-8 text of at most [`MAX_FILE_SIZE`] bytes.
pub fn read_bounded_text(path: &Path) -> Result<String, ReadFailure> {
    let file = std::fs::File::open(path).map_err(ReadFailure::Io)?;
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "at the limit" from "over it" without trusting the
    // file's reported size (it could be a pipe or grow while we read).
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_SIZE {
        return Err(ReadFailure::TooLarge);
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        ReadFailure::NotUtf8 {
            line: valid.split(|&byte| byte == b'\n').count(),
        }
    })
}
