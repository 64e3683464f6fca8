//! The daemon's log: one line (or JSON object) per event on stderr, filtered by `--log-level` and
//! the `VIPD_LOG` directives (docs/operations.md, Logging).

use std::io::IsTerminal as _;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The environment variable with the log filter: `tracing_subscriber` `EnvFilter` directives,
/// such as `info,vipd::session=off`.
pub const FILTER_VARIABLE: &str = "VIPD_LOG";

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The least severe events logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// As an `EnvFilter` directive.
    fn directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

#[derive(Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Least severe events logged [default: info]. Overrides a level VIPD_LOG sets for
    /// everything; VIPD_LOG's per-target directives (vipd::session=off) still apply.
    #[arg(long, value_enum)]
    log_level: Option<LogLevel>,
}

impl LogArgs {
    /// Whether events are JSON objects: a plain line on stderr would then break the stream.
    pub fn is_json(&self) -> bool {
        matches!(self.log_format, LogFormat::Json)
    }
}

/// Installs the subscriber for the rest of the process.
pub fn init(args: &LogArgs) {
    let from_environment = std::env::var(FILTER_VARIABLE).ok();
    let (filter, rejected) = filter(args.log_level, from_environment.as_deref());
    // Colours only for a terminal: in the journal or a file, escape codes would split the text
    // that `journalctl -g` and log shippers match.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    if let Some(reason) = rejected {
        tracing::warn!("{FILTER_VARIABLE} ignored: {reason}");
    }
}

/// `VIPD_LOG`'s directives, with `level` in place of a level it sets for every target (its
/// per-target directives stay); `info` when neither says. An invalid `VIPD_LOG` is left out, and
/// why is returned: a typo must not silence the daemon nor stop it.
fn filter(level: Option<LogLevel>, from_environment: Option<&str>) -> (EnvFilter, Option<String>) {
    let mut directives = Vec::new();
    let mut rejected = None;
    if let Some(text) = from_environment.filter(|text| !text.trim().is_empty()) {
        match EnvFilter::builder().parse(text) {
            Ok(_) => directives.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|directive| !directive.is_empty())
                    .filter(|directive| level.is_none() || !is_bare_level(directive)),
            ),
            Err(error) => rejected = Some(format!("{text:?} is not a filter: {error}")),
        }
    }
    match level {
        Some(level) => directives.push(level.directive()),
        None if directives.is_empty() => directives.push(LogLevel::Info.directive()),
        None => {}
    }
    let filter = EnvFilter::builder()
        .parse(directives.join(","))
        .unwrap_or_else(|_| EnvFilter::new(LogLevel::Info.directive()));
    (filter, rejected)
}

/// A directive that names a level and no target (`info`, `off`): it applies to every target.
fn is_bare_level(directive: &str) -> bool {
    directive.parse::<LevelFilter>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_level(level: Option<LogLevel>, from_environment: Option<&str>) -> LevelFilter {
        let (filter, rejected) = filter(level, from_environment);
        assert_eq!(rejected, None);
        filter.max_level_hint().expect("a level")
    }

    #[test]
    fn info_unless_the_flag_or_the_variable_says_otherwise() {
        assert_eq!(max_level(None, None), LevelFilter::INFO);
        assert_eq!(max_level(None, Some(" ")), LevelFilter::INFO);
        assert_eq!(max_level(Some(LogLevel::Warn), None), LevelFilter::WARN);
        assert_eq!(max_level(None, Some("debug")), LevelFilter::DEBUG);
    }

    #[test]
    fn the_flag_overrides_the_variable_s_level_and_keeps_its_targets() {
        assert_eq!(
            max_level(Some(LogLevel::Error), Some("warn,vipd::session=off")),
            LevelFilter::ERROR
        );
        assert_eq!(
            max_level(Some(LogLevel::Debug), Some("info")),
            LevelFilter::DEBUG
        );
        let (combined, _) = filter(Some(LogLevel::Error), Some("warn,vipd::session=info"));
        let text = combined.to_string();
        assert!(text.contains("vipd::session=info"), "{text}");
        assert_eq!(combined.max_level_hint(), Some(LevelFilter::INFO));
    }

    #[test]
    fn an_invalid_variable_is_left_out_with_the_reason() {
        let (with_flag, rejected) = filter(Some(LogLevel::Warn), Some("vipd=loud"));
        assert!(rejected.is_some_and(|reason| reason.contains("vipd=loud")));
        assert_eq!(with_flag.max_level_hint(), Some(LevelFilter::WARN));
        let (without, rejected) = filter(None, Some("vipd=loud"));
        assert!(rejected.is_some());
        assert_eq!(without.max_level_hint(), Some(LevelFilter::INFO));
    }
}
