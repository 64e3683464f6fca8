//! A network-namespace lab: bridges, hosts and links for end-to-end tests and `vipd lab`.
//!
//! End-to-end tests call [`e2e_enabled`] first. `VIPD_E2E` decides what happens when the lab
//! cannot run here (not root, or `ip` missing):
//! - `required`: the test fails; CI runs this way, so a skipped end-to-end test is a red build;
//! - anything else: the test returns early, says so on stderr, and records its name in the file
//!   named by `VIPD_SKIP_LOG` so that `tests/run` can list every skip at the end.

use std::io::Write;
use std::path::Path;

/// Returns whether the end-to-end test `test` can run here; see the crate doc for `VIPD_E2E`.
///
/// # Panics
/// When the test cannot run and `VIPD_E2E=required`.
pub fn e2e_enabled(test: &str) -> bool {
    let Some(reason) = missing_prerequisite() else {
        return true;
    };
    assert!(
        std::env::var("VIPD_E2E").as_deref() != Ok("required"),
        "end-to-end test {test} cannot run ({reason}) and VIPD_E2E=required"
    );
    eprintln!("SKIPPED end-to-end test {test}: {reason}");
    if let Ok(log) = std::env::var("VIPD_SKIP_LOG") {
        // Best effort: the skip is already on stderr.
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
    false
}

fn missing_prerequisite() -> Option<String> {
    if !running_as_root() {
        return Some("needs root for network namespaces".into());
    }
    let has_ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|path| Path::new(path).exists());
    if !has_ip {
        return Some("iproute2 (`ip`) is not installed".into());
    }
    None
}

fn running_as_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs": the effective uid is the second field.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
