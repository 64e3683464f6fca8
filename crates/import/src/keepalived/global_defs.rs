//! `global_defs`: the node's name, and the defaults every instance and script inherits.

use super::syntax::Statement;
use super::values::{count, seconds, user_name};
use super::{Globals, unsupported};
use crate::draft::Draft;
use crate::{ImportWarning, vipd_name, warn};

/// The keywords each block translates; any other one has no vipd equivalent.
const GLOBAL_DEFS: &[&str] = &[
    "router_id",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_version",
    "script_user",
    "enable_script_security",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_refresh",
];

pub(super) fn global_defs(
    statement: &Statement,
    globals: &mut Globals,
    draft: &mut Draft,
    warnings: &mut Vec<ImportWarning>,
) {
    for directive in statement.children() {
        let args = directive.args();
        let first = args.first().map(String::as_str);
        match (directive.keyword(), first) {
            ("router_id", Some(id)) => {
                draft.node = Some(vipd_name(id, &directive.at, "router_id", warnings));
            }
            ("vrrp_mcast_group4", Some("224.0.0.18")) | ("vrrp_mcast_group6", Some("ff02::12")) => {
            }
            ("vrrp_mcast_group4" | "vrrp_mcast_group6", Some(group)) => warn(
                warnings,
                &directive.at,
                format!(
                    "{} {group}: vipd sends adverts to the RFC groups 224.0.0.18 and ff02::12 \
                     only (or unicast): skipped",
                    directive.keyword()
                ),
            ),
            ("vrrp_version", Some(version @ ("2" | "3"))) => {
                globals.version = Some((if version == "2" { 2 } else { 3 }, directive.at.clone()));
            }
            ("script_user", Some(user)) => {
                globals.script_user = user_name(user, &directive.at, warnings);
                if args.len() > 1 {
                    warn(
                        warnings,
                        &directive.at,
                        "script_user's group: vipd runs scripts with the user's own groups: \
                         skipped",
                    );
                }
                draft.header.push(format!(
                    "{}: script_user {user} is written as each script's `user`; notify hooks \
                     run as vipd's own user.",
                    directive.at
                ));
            }
            ("enable_script_security", _) => draft.header.push(format!(
                "{}: enable_script_security: vipd always refuses scripts a non-root user could \
                 replace (and `vipd check` warns about them).",
                directive.at
            )),
            ("vrrp_garp_master_repeat", Some(value)) => {
                globals.garp.repeat = count(value, &directive.at, warnings);
            }
            ("vrrp_garp_master_delay", Some(value)) => {
                globals.garp.delay = seconds(value, &directive.at, warnings);
            }
            ("vrrp_garp_master_refresh", Some(value)) => {
                globals.garp.refresh = seconds(value, &directive.at, warnings);
            }
            _ => unsupported(directive, "global_defs", GLOBAL_DEFS, warnings),
        }
    }
}
