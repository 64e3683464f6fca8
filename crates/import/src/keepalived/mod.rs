//! keepalived.conf (2.2.x syntax): the statement tree ([`syntax`], with [`include`]), then the
//! translation, one module per directive family: [`global_defs`], [`script`] (`vrrp_script`),
//! [`track`] (`vrrp_track_file` and the `track_*` blocks) and [`instance`] (`vrrp_instance`).
//!
//! The order matters: global_defs set defaults, scripts and track files are known before the
//! instances that track them, and a script is kept only once the instances show how it is used.

mod global_defs;
mod haproxy_script;
mod include;
mod instance;
mod script;
mod syntax;
#[cfg(test)]
mod tests;
mod track;
mod values;

use std::collections::BTreeMap;

pub use syntax::{Statement, parse};

use crate::draft::{Draft, Garp, Script};
use crate::{ImportWarning, Location, unique_name, warn};

/// keepalived's defaults that global_defs can change for every instance.
struct Globals {
    version: Option<(u8, Location)>,
    script_user: Option<String>,
    garp: Garp,
}

/// Everything a `vrrp_script` says, kept until the instances show how it is tracked.
struct ScriptSource {
    script: Script,
    /// The `weight` a `track_script` inherits.
    weight: i16,
    /// `killall -0 haproxy` and friends: HAProxy's liveness, replaced by frontend trackers.
    haproxy: Option<haproxy_script::HaproxyCheck>,
    tracked: bool,
    /// A HAProxy check that became frontend trackers somewhere (not only skipped).
    replaced: bool,
}

/// The `vrrp_track_file`s by name: the file and the weight a `track_file` inherits.
type TrackFiles = BTreeMap<String, (String, i16)>;

/// The `vrrp_script`s by their keepalived name.
type Scripts = BTreeMap<String, ScriptSource>;

/// What every `vrrp_instance` reads from the rest of the file.
struct Context<'a> {
    globals: &'a Globals,
    track_files: &'a TrackFiles,
}

pub fn translate(statements: &[Statement], draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    let mut globals = Globals {
        version: None,
        script_user: None,
        garp: Garp::default(),
    };
    for statement in statements.iter().filter(|s| s.keyword() == "global_defs") {
        global_defs::global_defs(statement, &mut globals, draft, warnings);
    }
    let (mut scripts, track_files) = definitions(statements, &globals, warnings);
    let context = Context {
        globals: &globals,
        track_files: &track_files,
    };
    for statement in statements {
        match statement.keyword() {
            "vrrp_instance" => {
                if let Some(mut instance) =
                    instance::vrrp_instance(statement, &context, &mut scripts, draft, warnings)
                    && instance::fits_beside(&mut instance, &draft.instances, warnings)
                {
                    draft.instances.push(instance);
                }
            }
            "vrrp_sync_group" => warn(
                warnings,
                &statement.at,
                "vrrp_sync_group is not supported by vipd (each instance fails over on its own; \
                 give the instances the same trackers to keep them together): skipped",
            ),
            _ => {}
        }
    }
    keep_scripts(scripts, draft, warnings);
}

/// The top-level blocks the instances refer to (`vrrp_script`, `vrrp_track_file`); a warning for
/// every other top-level keyword vipd has no equivalent for.
fn definitions(
    statements: &[Statement],
    globals: &Globals,
    warnings: &mut Vec<ImportWarning>,
) -> (Scripts, TrackFiles) {
    let mut scripts = Scripts::new();
    let mut track_files = TrackFiles::new();
    for statement in statements {
        match statement.keyword() {
            "global_defs" | "vrrp_instance" | "vrrp_sync_group" => {}
            "vrrp_script" => {
                if let Some((name, mut source)) = script::vrrp_script(statement, globals, warnings)
                {
                    let taken: Vec<&str> = scripts
                        .iter()
                        .filter(|(other, _)| **other != name)
                        .map(|(_, other)| other.script.name.as_str())
                        .collect();
                    source.script.name = unique_name(source.script.name, &taken);
                    scripts.insert(name, source);
                }
            }
            "vrrp_track_file" => {
                if let Some((name, file)) = track::vrrp_track_file(statement, warnings) {
                    track_files.insert(name, file);
                }
            }
            "virtual_server" | "virtual_server_group" => warn(
                warnings,
                &statement.at,
                format!(
                    "lvs {} is not supported by vipd (an L4 proxy replaces IPVS): skipped",
                    statement.keyword()
                ),
            ),
            other => warn(
                warnings,
                &statement.at,
                format!("`{other}` has no vipd equivalent: skipped"),
            ),
        }
    }
    (scripts, track_files)
}

/// The scripts the instances track go to `scripts`; HAProxy liveness checks are replaced by
/// frontend trackers and dropped.
fn keep_scripts(scripts: Scripts, draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    for (_, source) in scripts {
        if let Some(check) = &source.haproxy {
            if source.replaced {
                replaced_haproxy_script(&source.script, check, warnings);
            } else if !source.tracked {
                warn(
                    warnings,
                    &source.script.from,
                    format!(
                        "vrrp_script {} follows HAProxy, which vipd replaces, and no instance \
                         tracks it: skipped",
                        source.script.name
                    ),
                );
            }
            continue;
        }
        if !source.tracked {
            warn(
                warnings,
                &source.script.from,
                format!(
                    "vrrp_script {} is tracked by no instance: kept in `scripts` unused",
                    source.script.name
                ),
            );
        }
        draft.scripts.push(source.script);
    }
}

/// What the operator must know of a HAProxy script file that frontend trackers replaced: what
/// it did that vipd does not, or that it was recognised by its name alone. An inline
/// `killall -0 haproxy` needs no word: the trackers' comments say what they replace.
fn replaced_haproxy_script(
    script: &Script,
    check: &haproxy_script::HaproxyCheck,
    warnings: &mut Vec<ImportWarning>,
) {
    let name = &script.name;
    let message = match check {
        haproxy_script::HaproxyCheck::Inline => return,
        haproxy_script::HaproxyCheck::File {
            file,
            restarts_haproxy,
            stops_keepalived,
        } => {
            let also: Vec<&str> = [
                (*restarts_haproxy, "restarts HAProxy"),
                (*stops_keepalived, "stops keepalived"),
            ]
            .into_iter()
            .filter_map(|(does, what)| does.then_some(what))
            .collect();
            let extra = if also.is_empty() {
                String::new()
            } else {
                format!(
                    "; it also {} when HAProxy is down, which vipd leaves to systemd \
                     (Restart=on-failure restarts vipd, the proxy included)",
                    also.join(" and ")
                )
            };
            format!(
                "vrrp_script {name} ({file}) only checks that HAProxy runs{extra}: vipd's \
                 frontend trackers replace it, not carried over"
            )
        }
        haproxy_script::HaproxyCheck::ByName { file, reason } => format!(
            "vrrp_script {name} ({file}) is taken by its name for a check that HAProxy runs \
             (the file cannot be read here: {reason}): vipd's frontend trackers replace it, not \
             carried over; if it checks more, add it back as a script tracker"
        ),
    };
    warn(warnings, &script.from, message);
}

/// The warning for a directive not translated: a keyword vipd has no equivalent for, or a
/// known keyword whose value is missing or not one vipd accepts.
fn unsupported(
    directive: &Statement,
    block: &str,
    translated: &[&str],
    warnings: &mut Vec<ImportWarning>,
) {
    let keyword = directive.keyword();
    let message = if !translated.contains(&keyword) {
        format!("{block} {keyword} has no vipd equivalent: skipped")
    } else if directive.args().is_empty() {
        format!("{block} {keyword} without a value: skipped")
    } else {
        format!(
            "{block} {keyword} `{}`: not a value vipd accepts: skipped",
            directive.args().join(" ").escape_debug()
        )
    };
    warn(warnings, &directive.at, message);
}
