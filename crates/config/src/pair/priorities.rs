//! Priorities across the pair: an election each file alone cannot judge. keepalived's weight
//! semantics (docs/design/vrrp.md, Tracking): a good tracker adds a positive weight, a failed
//! one subtracts a negative weight; a non-owner advertises 1..=254.

use super::{Matched, Pair, Severity};
use crate::model::VrrpInstance;

/// The highest priority `instance` advertises: every tracker good, positive weights added.
fn highest(instance: &VrrpInstance) -> i32 {
    let bonus: i32 = instance
        .track
        .iter()
        .map(|tracker| i32::from(tracker.weight.max(0)))
        .sum();
    (i32::from(instance.priority) + bonus).clamp(1, 254)
}

/// The lowest: every tracker failed, negative weights subtracted, positive ones not added.
fn lowest(instance: &VrrpInstance) -> i32 {
    let malus: i32 = instance
        .track
        .iter()
        .map(|tracker| i32::from(tracker.weight.min(0)))
        .sum();
    (i32::from(instance.priority) + malus).clamp(1, 254)
}

/// The preferred master's side and the backup's, with their files and paths.
struct Roles<'a> {
    master: &'a VrrpInstance,
    backup: &'a VrrpInstance,
    master_file: &'a str,
    backup_file: &'a str,
    master_path: &'a str,
    backup_path: &'a str,
    /// Whether the master is the first file's node.
    master_is_this: bool,
}

impl Pair<'_> {
    pub(super) fn priorities(&mut self, matched: Matched<'_>) {
        self.stated_peer_priority(matched, true);
        self.stated_peer_priority(matched, false);
        let (this, peer) = (matched.this, matched.peer);
        if this.is_address_owner() && peer.is_address_owner() {
            self.report(
                Severity::Error,
                &format!("{}.priority", matched.this_path),
                &format!("{}.priority", matched.peer_path),
                format!(
                    "VRID {}: priority 255 in both files: two address owners, each master of \
                     the VIPs",
                    this.vrid
                ),
            );
            return;
        }
        if this.priority == peer.priority {
            if this.preempt || peer.preempt {
                self.report(
                    Severity::Warning,
                    &format!("{}.priority", matched.this_path),
                    &format!("{}.priority", matched.peer_path),
                    format!(
                        "VRID {}: priority {} in both files: the node with the higher primary \
                         address wins, which neither file shows; give the preferred master a \
                         higher priority",
                        this.vrid, this.priority
                    ),
                );
            }
            return;
        }
        let master_is_this = this.priority > peer.priority;
        let roles = if master_is_this {
            Roles {
                master: this,
                backup: peer,
                master_file: self.this.file,
                backup_file: self.peer.file,
                master_path: matched.this_path,
                backup_path: matched.peer_path,
                master_is_this,
            }
        } else {
            Roles {
                master: peer,
                backup: this,
                master_file: self.peer.file,
                backup_file: self.this.file,
                master_path: matched.peer_path,
                backup_path: matched.this_path,
                master_is_this,
            }
        };
        self.trackers_move_the_vip(&roles);
    }

    /// A `peer_priority` that is not the other file's `priority` makes the single-file weight
    /// check compare with the wrong number.
    fn stated_peer_priority(&mut self, matched: Matched<'_>, in_this: bool) {
        let (stating, other, stating_file, other_file) = if in_this {
            (matched.this, matched.peer, self.this.file, self.peer.file)
        } else {
            (matched.peer, matched.this, self.peer.file, self.this.file)
        };
        let Some(stated) = stating.peer_priority else {
            return;
        };
        if stated == other.priority {
            return;
        }
        let message = format!(
            "VRID {}: peer_priority {stated} in {stating_file}, but the priority in {other_file} \
             is {}: the weight warnings of {stating_file} compare with the wrong number",
            stating.vrid, other.priority
        );
        let stating_at = format!(
            "{}.peer_priority",
            if in_this {
                matched.this_path
            } else {
                matched.peer_path
            }
        );
        let other_at = format!(
            "{}.priority",
            if in_this {
                matched.peer_path
            } else {
                matched.this_path
            }
        );
        if in_this {
            self.report(Severity::Warning, &stating_at, &other_at, message);
        } else {
            self.report(Severity::Warning, &other_at, &stating_at, message);
        }
    }

    /// Whether the preferred master's trackers can bring it below the healthy backup: all of
    /// them together, and each alone.
    fn trackers_move_the_vip(&mut self, roles: &Roles<'_>) {
        let master = roles.master;
        // An owner takes weight-0 trackers only: Fault moves the VIP, whatever the backup says.
        if master.is_address_owner() || master.track.iter().all(|tracker| tracker.weight == 0) {
            return;
        }
        let backup = highest(roles.backup);
        let all_failed = lowest(master);
        if all_failed >= backup {
            let message = format!(
                "VRID {}: with every tracker failed, the priority of {} is {all_failed}, not below \
                 {backup} of a healthy {}: its trackers can never move the VIP; negative weights \
                 summing to {} or lower would",
                master.vrid,
                roles.master_file,
                roles.backup_file,
                backup - i32::from(master.priority) - 1
            );
            self.report_roles(
                roles,
                &format!("{}.track", roles.master_path),
                &format!("{}.priority", roles.backup_path),
                message,
            );
            return;
        }
        // The single-file check already warns per tracker when peer_priority is right and the
        // backup adds nothing to it.
        if master.peer_priority == Some(roles.backup.priority)
            && backup == i32::from(roles.backup.priority)
        {
            return;
        }
        let top = highest(master);
        for (position, tracker) in master.track.iter().enumerate() {
            let lowered = (top - i32::from(tracker.weight).abs()).max(1);
            if tracker.weight == 0 || lowered < backup {
                continue;
            }
            let message = format!(
                "VRID {}: track[{position}] failing alone lowers the priority of {} from {top} to \
                 {lowered}, not below {backup} of a healthy {}: it does not move the VIP by \
                 itself (a weight of {} or lower would)",
                master.vrid,
                roles.master_file,
                roles.backup_file,
                backup - top - 1
            );
            self.report_roles(
                roles,
                &format!("{}.track[{position}].weight", roles.master_path),
                &format!("{}.priority", roles.backup_path),
                message,
            );
        }
    }

    /// A warning at the master's `master_at` and the backup's `backup_at`, in file order.
    fn report_roles(
        &mut self,
        roles: &Roles<'_>,
        master_at: &str,
        backup_at: &str,
        message: String,
    ) {
        if roles.master_is_this {
            self.report(Severity::Warning, master_at, backup_at, message);
        } else {
            self.report(Severity::Warning, backup_at, master_at, message);
        }
    }
}
