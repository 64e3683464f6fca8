//! `vrrp_script`: a check command, its timing and weight; and the argv rules that `notify`
//! hooks share (split like keepalived, absolute program path).

use std::time::Duration;

use super::syntax::Statement;
use super::track::tracker_weight;
use super::values::{count, seconds, user_name};
use super::{Globals, ScriptSource, haproxy_script, unsupported};
use crate::draft::Script;
use crate::words::{self, Syntax};
use crate::{ImportWarning, Location, vipd_name, warn};

const VRRP_SCRIPT: &[&str] = &[
    "script", "interval", "timeout", "rise", "fall", "weight", "user",
];

/// How keepalived splits a `script` / `notify` string into an argv: '...' and "..." keep
/// spaces; nothing else is special, and an unterminated quote runs to the end.
const COMMAND: Syntax = Syntax {
    quotes: &['\'', '"'],
    comments: &[],
    comment_inside_word: false,
    braces: false,
    backslash_escapes: false,
};

pub(super) fn vrrp_script(
    statement: &Statement,
    globals: &Globals,
    warnings: &mut Vec<ImportWarning>,
) -> Option<(String, ScriptSource)> {
    let Some(source_name) = statement.args().first() else {
        warn(
            warnings,
            &statement.at,
            "vrrp_script without a name: skipped",
        );
        return None;
    };
    let name = vipd_name(source_name, &statement.at, "vrrp_script", warnings);
    let mut script = Script {
        from: statement.at.clone(),
        notes: Vec::new(),
        name,
        command: Vec::new(),
        // keepalived's defaults, written out because vipd's differ (2s, rise 2, fall 3).
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        rise: Some(1),
        fall: Some(1),
        user: globals.script_user.clone(),
    };
    let mut weight = 0;
    let mut command_at = None;
    let mut words = Vec::new();
    for directive in statement.children() {
        let at = &directive.at;
        let value = directive.args().first();
        match (directive.keyword(), value) {
            ("script", Some(_)) => {
                words = command_words(directive.args());
                command_at = Some(at.clone());
            }
            ("interval", Some(value)) => script.interval = seconds(value, at, warnings),
            ("timeout", Some(value)) => script.timeout = seconds(value, at, warnings),
            ("rise", Some(value)) => script.rise = count(value, at, warnings),
            ("fall", Some(value)) => script.fall = count(value, at, warnings),
            ("weight", Some(value)) => {
                weight = tracker_weight(value, at, warnings).unwrap_or(0);
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        at,
                        "weight's `reverse`: vipd has no reversed trackers: skipped",
                    );
                }
            }
            ("user", Some(user)) => {
                script.user = user_name(user, at, warnings).or(script.user.take());
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        at,
                        "user's group: vipd runs scripts with the user's own groups: skipped",
                    );
                }
            }
            _ => unsupported(directive, "vrrp_script", VRRP_SCRIPT, warnings),
        }
    }
    let Some(command_at) = command_at else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_script {source_name} has no `script`: skipped"),
        );
        return None;
    };
    let haproxy = haproxy_script::recognize(&words);
    if haproxy.is_none() {
        script.command = absolute_command(words, &command_at, warnings)?;
    }
    fit_timings(&mut script, source_name, &statement.at, warnings);
    Some((
        source_name.clone(),
        ScriptSource {
            script,
            weight,
            haproxy,
            tracked: false,
            replaced: false,
        },
    ))
}

/// The interval and timeout as vipd takes them: a timeout no longer than the interval, an
/// interval of 10ms..=1h.
fn fit_timings(
    script: &mut Script,
    source_name: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    if let (Some(interval), Some(timeout)) = (script.interval, script.timeout)
        && timeout > interval
    {
        warn(
            warnings,
            at,
            format!(
                "vrrp_script {source_name}: timeout longer than interval; vipd needs it no \
                 longer: timeout set to the interval"
            ),
        );
        script.timeout = Some(interval);
    }
    if script
        .interval
        .is_some_and(|interval| interval > Duration::from_secs(3600))
    {
        warn(
            warnings,
            at,
            "vrrp_script interval over vipd's 1h: set to 1h",
        );
        script.interval = Some(Duration::from_secs(3600));
        script.timeout = script
            .timeout
            .map(|timeout| timeout.min(Duration::from_secs(3600)));
    }
    if script.interval.is_some_and(|interval| interval.is_zero()) {
        script.interval = None;
    }
    // vipd's smallest interval; a zero timeout means nothing in either program.
    script.interval = script
        .interval
        .map(|interval| interval.max(Duration::from_millis(10)));
    script.timeout = script.timeout.filter(|timeout| !timeout.is_zero());
}

/// An argv from keepalived's `script` / `notify_*` arguments: one quoted string is split at
/// spaces (with '...' keeping spaces, as keepalived's own splitting does); several words are
/// already the argv.
pub(super) fn command_words(args: &[String]) -> Vec<String> {
    if args.len() != 1 {
        return args.to_vec();
    }
    let tokens = words::split(&args[0], &COMMAND).unwrap_or_else(|unterminated| unterminated.0);
    words::words_only(tokens)
}

/// vipd runs commands without a shell and needs an absolute program path; keepalived searches
/// PATH. The importer does not guess where a relative program lives on the node (it may run
/// elsewhere, and vipd-config reads nothing but the files it is given): such a command is skipped
/// with a warning that says what to write.
pub(super) fn absolute_command(
    words: Vec<String>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Vec<String>> {
    let program = words.first()?;
    if program.starts_with('/') {
        return Some(words);
    }
    warn(
        warnings,
        at,
        format!(
            "`{program}` is not an absolute path (keepalived searched PATH; vipd runs exactly \
             the path written): skipped; write it as `[/full/path/to/{program}, ...]`"
        ),
    );
    None
}
