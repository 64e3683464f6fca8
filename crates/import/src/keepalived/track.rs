//! Trackers: `vrrp_track_file` definitions, and an instance's `track_script`, `track_interface`
//! and `track_file` blocks. A `track_script` on a HAProxy liveness check becomes trackers of the
//! frontends vipd itself serves on the instance's VIPs.

use super::syntax::Statement;
use super::{Context, Scripts, unsupported};
use crate::draft::{Draft, TrackTarget, Tracker, Vip};
use crate::{ImportWarning, Location, is_interface_name, warn};

pub(super) fn vrrp_track_file(
    statement: &Statement,
    warnings: &mut Vec<ImportWarning>,
) -> Option<(String, (String, i16))> {
    let Some(name) = statement.args().first() else {
        warn(
            warnings,
            &statement.at,
            "vrrp_track_file without a name: skipped",
        );
        return None;
    };
    let mut file = None;
    let mut weight = 1;
    for directive in statement.children() {
        match (directive.keyword(), directive.args().first()) {
            ("file", Some(path)) if path.starts_with('/') => file = Some(path.clone()),
            ("weight", Some(value)) => {
                weight = tracker_weight(value, &directive.at, warnings).unwrap_or(1);
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        &directive.at,
                        "weight's `reverse`: vipd has no reversed trackers: skipped",
                    );
                }
            }
            _ => unsupported(directive, "vrrp_track_file", &["file", "weight"], warnings),
        }
    }
    let Some(file) = file else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_track_file {name} has no absolute `file`: skipped"),
        );
        return None;
    };
    Some((name.clone(), (file, weight)))
}

/// A `track_interface` / `track_file` line: `NAME [weight N]`.
fn name_and_weight(
    line: &Statement,
    default_weight: i16,
    warnings: &mut Vec<ImportWarning>,
) -> (Option<String>, i16) {
    let name = line.words.first().cloned();
    let mut weight = default_weight;
    let mut words = line.args().iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("weight", Some(value)) => {
                weight = tracker_weight(value, &line.at, warnings).unwrap_or(default_weight);
            }
            (other, _) => warn(
                warnings,
                &line.at,
                format!(
                    "`{other}` after {}: not supported by vipd: skipped",
                    line.keyword()
                ),
            ),
        }
    }
    (name, weight)
}

fn track_script(
    directive: &Statement,
    scripts: &mut Scripts,
    track: &mut Vec<Tracker>,
    draft: &Draft,
    vips: &[Vip],
    warnings: &mut Vec<ImportWarning>,
) {
    for line in directive.children() {
        let (name, weight) = name_and_weight(line, i16::MIN, warnings);
        let Some(name) = name else { continue };
        let Some(source) = scripts.get_mut(&name) else {
            warn(
                warnings,
                &line.at,
                format!("track_script {name}: no usable vrrp_script of that name: skipped"),
            );
            continue;
        };
        source.tracked = true;
        let weight = if weight == i16::MIN {
            source.weight
        } else {
            weight
        };
        if source.haproxy.is_none() {
            track.push(Tracker {
                target: TrackTarget::Script(source.script.name.clone()),
                weight,
                note: None,
            });
            continue;
        }
        // The proxy is vipd itself: what matters is whether its frontends reach their backends.
        let frontends: Vec<&str> = draft
            .frontends
            .iter()
            .filter(|frontend| {
                frontend.bind.iter().any(|bind| {
                    bind.ip().is_unspecified()
                        || vips.iter().any(|vip| vip.address.addr() == bind.ip())
                })
            })
            .map(|frontend| frontend.name.as_str())
            .collect();
        if frontends.is_empty() {
            warn(
                warnings,
                &line.at,
                format!(
                    "track_script {name} follows HAProxy, which vipd replaces, and no imported frontend serves this instance's VIPs (pass haproxy.cfg to import them): skipped; track the proxy with `track: [{{ frontend: NAME, weight: {weight} }}]`"
                ),
            );
            continue;
        }
        source.replaced = true;
        for frontend in frontends {
            track.push(Tracker {
                target: TrackTarget::Frontend(frontend.to_owned()),
                weight,
                note: Some(format!(
                    "was track_script {name} ({}): vipd tracks its own frontends' backends",
                    line.at
                )),
            });
        }
    }
}

/// keepalived's weights are -253..=253; vipd takes -254..=254.
pub(super) fn tracker_weight(
    value: &str,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<i16> {
    match value.parse::<i16>() {
        Ok(weight) if (-254..=254).contains(&weight) => Some(weight),
        _ => {
            warn(
                warnings,
                at,
                format!("weight `{value}` is not in -254..=254: skipped"),
            );
            None
        }
    }
}

/// A `track_interface` block: one interface per line, `NAME [weight N]`.
pub(super) fn track_interface(
    directive: &Statement,
    track: &mut Vec<Tracker>,
    warnings: &mut Vec<ImportWarning>,
) {
    for child in directive.children() {
        let (name, weight) = name_and_weight(child, 0, warnings);
        if let Some(name) = name.filter(|name| is_interface_name(name)) {
            track.push(Tracker {
                target: TrackTarget::Interface(name),
                weight,
                note: None,
            });
        }
    }
}

/// A `track_file` block: names of `vrrp_track_file`s, each `NAME [weight N]`.
pub(super) fn track_file(
    directive: &Statement,
    context: &Context,
    track: &mut Vec<Tracker>,
    warnings: &mut Vec<ImportWarning>,
) {
    for child in directive.children() {
        let (name, weight) = name_and_weight(child, i16::MIN, warnings);
        let Some(name) = name else { continue };
        match context.track_files.get(&name) {
            Some((path, file_weight)) => track.push(Tracker {
                target: TrackTarget::File(path.clone()),
                weight: if weight == i16::MIN {
                    *file_weight
                } else {
                    weight
                },
                note: None,
            }),
            None => warn(
                warnings,
                &child.at,
                format!("track_file {name}: no vrrp_track_file of that name: skipped"),
            ),
        }
    }
}

/// The `track_script` blocks, resolved once the VIPs are known (a HAProxy check maps to the
/// frontends on them); each `(block, position)` lands at its position among `track`.
pub(super) fn resolve_track_scripts(
    track_scripts: Vec<(&Statement, usize)>,
    track: &mut Vec<Tracker>,
    scripts: &mut Scripts,
    draft: &Draft,
    vips: &[Vip],
    warnings: &mut Vec<ImportWarning>,
) {
    // Back to front, so that each lands where it was written among the other trackers.
    for (directive, position) in track_scripts.into_iter().rev() {
        let mut resolved = Vec::new();
        track_script(directive, scripts, &mut resolved, draft, vips, warnings);
        track.splice(position..position, resolved);
    }
}

/// vipd's address owner (priority 255) cannot lose priority: its trackers' weights become 0.
pub(super) fn owner_weights(
    priority: u8,
    track: &mut [Tracker],
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    if priority == 255 && track.iter().any(|tracker: &Tracker| tracker.weight != 0) {
        warn(
            warnings,
            at,
            "priority 255 (address owner) takes only weight-0 trackers in vipd: the weights are written as 0",
        );
        for tracker in track {
            tracker.weight = 0;
        }
    }
}
