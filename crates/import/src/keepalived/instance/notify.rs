//! `notify_master`, `notify_backup`, `notify_fault`, `notify` and `notify_stop`: the hooks run
//! on state changes.

use crate::draft::Notify;
use crate::keepalived::script::{absolute_command, command_words};
use crate::{ImportWarning, Location, warn};

/// A `notify*` line with its command; a command vipd cannot run as written is skipped.
pub(super) fn hook(
    keyword: &str,
    args: &[String],
    at: &Location,
    notify: &mut Notify,
    warnings: &mut Vec<ImportWarning>,
) {
    let Some(command) = absolute_command(command_words(args), at, warnings) else {
        return;
    };
    match keyword {
        "notify_master" => notify.master = Some(command),
        "notify_backup" => notify.backup = Some(command),
        "notify_fault" => notify.fault = Some(command),
        _ => {
            warn(
                warnings,
                at,
                "notify: keepalived passes INSTANCE, the name, the state and the \
                 priority; vipd's `state` hook gets the name, the state and the \
                 priority (no INSTANCE word): check the script's argument positions",
            );
            notify.state = Some(command);
        }
    }
}

pub(super) fn notify_stop(at: &Location, warnings: &mut Vec<ImportWarning>) {
    warn(
        warnings,
        at,
        "notify_stop: vipd has no stop hook (at shutdown it hands over with priority 0 \
         and runs notify `backup`... only if the state changes): skipped",
    );
}
