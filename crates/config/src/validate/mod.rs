//! Raw document → typed [`Config`], collecting every error and warning with its path.
//!
//! Each check records its problem and carries on with a stand-in value, so one run reports
//! everything that is wrong with a file. Only at the end do errors turn into `Err`.

mod addresses;
mod announce;
mod check_options;
mod detection_window;
mod proxy;
mod vrrp;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::defaults::{CHECK_FALL, CHECK_INTERVAL, CHECK_RISE, CHECK_TIMEOUT};
use crate::diagnostic::{Diagnostic, Errors, Warning};
use crate::location::LocationIndex;
use crate::model::{Command, Config, Control, PipeMemory, Script};
use crate::raw;

/// The longest name accepted for instances, frontends, backends, servers, scripts and the node;
/// names end up in metric labels, log fields and API paths.
const MAX_NAME_LEN: usize = 64;
/// A generous ceiling for connection limits that still catches a typo of three extra zeros.
const MAX_CONNECTIONS: i64 = 10_000_000;

/// Validates the raw document; `index` gives the positions for the messages.
pub fn validate(
    document: raw::Document,
    index: &LocationIndex,
) -> Result<(Config, Vec<Warning>), Errors> {
    let mut checker = Checker::new(index);
    let node = document.node.inspect(|node| checker.name(node, "node"));
    let control = checker.control(document.control);
    let shutdown_grace = checker.shutdown_grace(document.shutdown_grace.as_deref());
    let max_connections = checker.integer(
        document.max_connections,
        "max_connections",
        1..=MAX_CONNECTIONS,
        100_000u32,
    );
    let pipe_memory = checker.pipe_memory(document.pipe_memory.as_deref());
    let scripts = document
        .scripts
        .into_iter()
        .map(|(name, script)| {
            let path = format!("scripts.{name}");
            checker.name_at_key(&name, &path);
            let script = checker.script(script, &path);
            (name, script)
        })
        .collect();
    let backends = checker.backends(document.backends);
    let frontends = checker.frontends(document.frontends, &backends, &control);
    let mut config = Config {
        node,
        control,
        shutdown_grace,
        max_connections,
        pipe_memory,
        vrrp: Vec::new(),
        announce: None,
        scripts,
        frontends,
        backends,
    };
    config.vrrp = checker.vrrp_instances(document.vrrp, &config);
    config.announce = checker.announce(document.announce, &config);
    checker.nothing_to_do(&config);
    checker.unused_parts(&config);
    checker.finish(config)
}

fn parse_pipe_memory(text: &str) -> Option<PipeMemory> {
    if let Some(percent) = text.strip_suffix('%') {
        let percent: u8 = percent.trim().parse().ok()?;
        return (percent <= 50).then_some(PipeMemory::Percent(percent));
    }
    if text == "0" {
        return Some(PipeMemory::Bytes(0));
    }
    let units = [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, unit)| Some((text.strip_suffix(suffix)?, *unit)))?;
    let count: u64 = number.trim().parse().ok()?;
    count.checked_mul(unit).map(PipeMemory::Bytes)
}

pub(crate) struct Checker<'a> {
    index: &'a LocationIndex,
    errors: Vec<Diagnostic>,
    warnings: Vec<Warning>,
}

impl<'a> Checker<'a> {
    fn new(index: &'a LocationIndex) -> Self {
        Self {
            index,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn finish(mut self, config: Config) -> Result<(Config, Vec<Warning>), Errors> {
        sort_by_position(&mut self.warnings);
        if self.errors.is_empty() {
            Ok((config, self.warnings))
        } else {
            sort_by_position(&mut self.errors);
            Err(Errors(self.errors))
        }
    }

    /// An error about the value of `path` (or where it would be, when it is missing).
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let at = self.index.position(path);
        self.errors.push(Diagnostic::new(path, at, message));
    }

    /// An error about the field itself (a duplicate name): points at its key.
    fn error_at_key(&mut self, path: &str, message: impl Into<String>) {
        let at = self.index.key_position(path);
        self.errors.push(Diagnostic::new(path, at, message));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let at = self.index.position(path);
        self.warnings.push(Diagnostic::new(path, at, message));
    }

    /// The line of `path`, for messages like "first defined at line 4".
    fn line_of(&self, path: &str) -> u64 {
        self.index.position(path).line
    }

    fn required<T>(&mut self, value: Option<T>, path: &str) -> Option<T> {
        if value.is_none() {
            self.error(path, "missing required field");
        }
        value
    }

    /// A required name: instance, frontend, backend, server.
    fn required_name(&mut self, value: Option<String>, path: &str) -> String {
        match self.required(value, path) {
            Some(name) => {
                self.name(&name, path);
                name
            }
            None => String::new(),
        }
    }

    fn name(&mut self, name: &str, path: &str) {
        if let Some(problem) = name_problem(name) {
            self.error(path, problem);
        }
    }

    fn name_at_key(&mut self, name: &str, path: &str) {
        if let Some(problem) = name_problem(name) {
            self.error_at_key(path, problem);
        }
    }

    /// Reports every name that appears a second time in `names` (`(path, name)` pairs).
    fn unique_names<'n>(&mut self, what: &str, names: impl IntoIterator<Item = (String, &'n str)>) {
        let mut seen: Vec<(&str, String)> = Vec::new();
        for (path, name) in names {
            if name.is_empty() {
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
                let line = self.line_of(first);
                self.error(
                    &path,
                    format!("duplicate {what} name `{name}` (first at line {line})"),
                );
            } else {
                seen.push((name, path));
            }
        }
    }

    /// An integer field within `range`, or `default` when absent (also used as the stand-in).
    fn integer<T>(
        &mut self,
        value: Option<i64>,
        path: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T
    where
        T: TryFrom<i64> + Copy,
    {
        let Some(value) = value else { return default };
        if !range.contains(&value) {
            self.error(
                path,
                format!(
                    "must be in {}..={}, got {value}",
                    range.start(),
                    range.end()
                ),
            );
            return default;
        }
        T::try_from(value).unwrap_or(default)
    }

    /// A duration with its unit (`100ms`, `2s`, `5m`), or `default` when absent.
    fn duration(
        &mut self,
        value: Option<&str>,
        path: &str,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Ok(duration) if range.contains(&duration) => duration,
            Ok(_) => {
                self.error(
                    path,
                    format!(
                        "`{text}` is out of range {}..={}",
                        humantime::format_duration(*range.start()),
                        humantime::format_duration(*range.end())
                    ),
                );
                default
            }
            Err(problem) => {
                self.error(path, problem);
                default
            }
        }
    }

    /// A value of an address field, or its problem recorded at `path`.
    fn address<T>(&mut self, parsed: Result<T, String>, path: &str) -> Option<T> {
        parsed.map_err(|problem| self.error(path, problem)).ok()
    }

    /// `ADDRESS:PORT` with a non-zero port (`[2001:db8::1]:443` for IPv6).
    fn socket_addr(&mut self, text: &str, path: &str) -> Option<SocketAddr> {
        let address = self.address(addresses::socket_address(text), path)?;
        if address.port() == 0 {
            self.error(path, "port 0 is not a port vipd can use");
            return None;
        }
        Some(address)
    }

    fn absolute_path(&mut self, text: &str, path: &str) -> PathBuf {
        if !text.starts_with('/') {
            self.error(path, format!("`{text}` must be an absolute path"));
        }
        PathBuf::from(text)
    }

    /// An argv: a non-empty list whose first element is an absolute path (no shell, no $PATH
    /// lookup: what runs is exactly what the file says).
    fn command(&mut self, argv: Vec<String>, path: &str) -> Option<Command> {
        let mut argv = argv.into_iter();
        let Some(program) = argv.next() else {
            self.error(
                path,
                "a command needs at least the program: [/path/to/program, args...]",
            );
            return None;
        };
        let program = self.absolute_path(&program, &format!("{path}[0]"));
        Some(Command {
            program,
            args: argv.collect(),
        })
    }

    fn control(&mut self, control: Option<raw::Control>) -> Control {
        let mut typed = Control::default();
        let Some(control) = control else { return typed };
        if let Some(listen) = control.listen
            && let Some(address) = self.socket_addr(&listen, "control.listen")
        {
            typed.listen = address;
        }
        typed.token_file = control
            .token_file
            .map(|file| self.absolute_path(&file, "control.token_file"));
        if !typed.listen.ip().is_loopback() && typed.token_file.is_none() {
            // A warning, not an error: a management network behind a firewall is a choice an
            // operator may make, and refusing it would stop a running pair at its next start.
            self.warn(
                "control.listen",
                format!(
                    "{} is reachable from other hosts and no token_file is set: anyone who can \
                     reach it can put this node in maintenance or change weights through \
                     /api/v1; set control.token_file, or listen on 127.0.0.1",
                    typed.listen
                ),
            );
        }
        typed
    }

    /// `pipe_memory`: `N%` of RAM (0..=50) or a size with a binary unit (`512KiB`, `256MiB`,
    /// `1GiB`); `0` turns growth off.
    fn pipe_memory(&mut self, value: Option<&str>) -> PipeMemory {
        let default = PipeMemory::Percent(crate::defaults::PIPE_MEMORY_PERCENT);
        let Some(text) = value else { return default };
        let parsed = parse_pipe_memory(text.trim());
        if parsed.is_none() {
            self.error(
                "pipe_memory",
                format!(
                    "`{text}` is neither a share of RAM (`2%`, at most `50%`) nor a size (`0`, \
                     `512KiB`, `256MiB`, `1GiB`)"
                ),
            );
        }
        parsed.unwrap_or(default)
    }

    /// `shutdown_grace`, bounded so that vipd's own stop limit fits in the unit's stop timeout.
    fn shutdown_grace(&mut self, value: Option<&str>) -> Duration {
        use crate::defaults::{SHUTDOWN_GRACE, SHUTDOWN_GRACE_MAX, shutdown_hard_limit};
        let Some(text) = value else {
            return SHUTDOWN_GRACE;
        };
        match parse_duration(text) {
            Ok(grace) if grace <= SHUTDOWN_GRACE_MAX => grace,
            Ok(grace) => {
                self.error(
                    "shutdown_grace",
                    format!(
                        "`{text}` is longer than {}, the longest drain: vipd exits at \
                         shutdown_grace + {} ({} here), and the shipped unit's \
                         TimeoutStopSec={} kills it after that",
                        humantime::format_duration(SHUTDOWN_GRACE_MAX),
                        humantime::format_duration(crate::defaults::SHUTDOWN_AFTER_DRAIN),
                        humantime::format_duration(shutdown_hard_limit(grace)),
                        crate::defaults::UNIT_TIMEOUT_STOP.as_secs()
                    ),
                );
                SHUTDOWN_GRACE
            }
            Err(problem) => {
                self.error("shutdown_grace", problem);
                SHUTDOWN_GRACE
            }
        }
    }

    /// A file without VRRP instances and frontends gives the daemon nothing to do: it is an
    /// empty, truncated or wrong file, and a reload with it would release every VIP.
    fn nothing_to_do(&mut self, config: &Config) {
        if config.vrrp.is_empty() && config.frontends.is_empty() && config.announce.is_none() {
            self.error(
                "",
                "no vrrp instance, no announce group and no frontend: an empty or truncated file is refused, since \
                 vipd would serve nothing and a reload with it would release every VIP",
            );
        }
    }

    fn script(&mut self, script: raw::Script, path: &str) -> Script {
        let command = self
            .required(script.command, &format!("{path}.command"))
            .and_then(|argv| self.command(argv, &format!("{path}.command")));
        let (interval, timeout) =
            self.interval_and_timeout(script.interval.as_deref(), script.timeout.as_deref(), path);
        let rise = self.integer(script.rise, &format!("{path}.rise"), 1..=100, CHECK_RISE);
        let fall = self.integer(script.fall, &format!("{path}.fall"), 1..=100, CHECK_FALL);
        if let Some(user) = &script.user
            && (user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            self.error(&format!("{path}.user"), "must be a user name");
        }
        Script {
            command: command.unwrap_or_else(|| Command {
                program: PathBuf::new(),
                args: Vec::new(),
            }),
            interval,
            timeout,
            rise,
            fall,
            user: script.user,
        }
    }

    /// A periodic check's `interval` (default 2s) and `timeout` (default the smaller of 1s and
    /// the interval), where a check must end before the next one starts.
    fn interval_and_timeout(
        &mut self,
        interval: Option<&str>,
        timeout: Option<&str>,
        path: &str,
    ) -> (Duration, Duration) {
        let interval = self.duration(
            interval,
            &format!("{path}.interval"),
            CHECK_INTERVAL,
            Duration::from_millis(10)..=Duration::from_secs(3600),
        );
        let timeout_path = format!("{path}.timeout");
        let timeout = self.duration(
            timeout,
            &timeout_path,
            CHECK_TIMEOUT.min(interval),
            Duration::from_millis(1)..=Duration::from_secs(3600),
        );
        if timeout > interval {
            self.error(
                &timeout_path,
                format!(
                    "timeout {} is longer than the interval {}: checks would overlap",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
        }
        (interval, timeout)
    }

    /// Warnings for parts that nothing uses: usually a typo in a reference.
    fn unused_parts(&mut self, config: &Config) {
        for (position, backend) in config.backends.iter().enumerate() {
            if !config
                .frontends
                .iter()
                .any(|frontend| frontend.backend == backend.name)
            {
                self.warn(
                    &format!("backends[{position}].name"),
                    format!("backend `{}` is not used by any frontend", backend.name),
                );
            }
        }
        for name in config.scripts.keys() {
            let announced = config.announce.iter().flat_map(|announce| &announce.groups);
            let tracked = config.vrrp.iter().flat_map(|instance| &instance.track).chain(announced.flat_map(|group| &group.track)).any(|tracker| {
                matches!(&tracker.target, crate::model::TrackTarget::Script { name: tracked } if tracked == name)
            });
            if !tracked {
                self.warn(
                    &format!("scripts.{name}"),
                    format!(
                        "script `{name}` is not tracked by any vrrp instance or announce group"
                    ),
                );
            }
        }
    }
}

fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
}

/// Why `name` cannot name an instance, frontend, backend, server, script or node.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Some(format!(
            "`{}` contains {bad:?}; names use letters, digits, `_`, `-` and `.`",
            name.escape_debug()
        ));
    }
    None
}

/// Parses a duration that must carry its unit: `2` alone is refused (seconds? milliseconds?).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        // Zero is zero in any unit.
        return Ok(Duration::ZERO);
    }
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "`{text}` has no unit; write it like `{trimmed}s` or `{trimmed}ms`"
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|problem| format!("`{text}` is not a duration like 100ms, 2s or 5m: {problem}"))
}

/// Whether `name` can be a Linux network interface name (the kernel's `dev_valid_name`).
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod announce_tests;
#[cfg(test)]
mod connection_tests;
mod connections;
#[cfg(test)]
mod tests;
