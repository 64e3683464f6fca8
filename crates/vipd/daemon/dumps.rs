//! SIGUSR1 and SIGUSR2, where keepalived users expect a state dump: the status (as `GET /status`)
//! goes to the log on one line and to `vipd.status.json`, the statistics (as `GET /metrics`) to
//! `vipd.stats`, both in the runtime directory. For a node whose control server is out of reach,
//! or for a bug report.

use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::control::NodeStatus;

/// Where the dumps go when systemd does not say (`RuntimeDirectory=vipd` sets
/// `$RUNTIME_DIRECTORY` to this very path).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/vipd";
pub const STATUS_FILE: &str = "vipd.status.json";
pub const STATS_FILE: &str = "vipd.stats";

/// `$RUNTIME_DIRECTORY` (its first entry: systemd joins several with `:`), else /run/vipd.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            let first = dirs.to_string_lossy().split(':').next()?.to_owned();
            (!first.is_empty()).then(|| PathBuf::from(first))
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR))
}

/// SIGUSR1: the status to the log and to `dir/vipd.status.json`. A failure is logged; a dump is
/// never worth more than the daemon.
pub fn dump_status(status: &NodeStatus, dir: &Path) {
    let line = match serde_json::to_string(status) {
        Ok(line) => line,
        Err(error) => {
            warn!(%error, "SIGUSR1: cannot serialise the status");
            return;
        }
    };
    info!(status = %line, "SIGUSR1: status");
    match write_atomically(dir, STATUS_FILE, line.as_bytes()) {
        Ok(path) => info!(path = %path.display(), "SIGUSR1: status written"),
        Err(error) => warn!(dir = %dir.display(), %error, "SIGUSR1: cannot write the status file"),
    }
}

/// SIGUSR2: the statistics, as `/metrics` serves them, to `dir/vipd.stats`.
pub fn dump_stats(status: NodeStatus, dir: &Path) {
    let text = crate::control::metrics::render(status);
    match write_atomically(dir, STATS_FILE, text.as_bytes()) {
        Ok(path) => info!(path = %path.display(), "SIGUSR2: statistics written"),
        Err(error) => {
            warn!(dir = %dir.display(), %error, "SIGUSR2: cannot write the statistics file");
        }
    }
}

/// Writes `dir/name` whole or not at all: a reader sees the previous dump or this one, never
/// half of one. Creates `dir` when it is missing (vipd run by hand, outside its unit).
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let written =
        std::fs::write(&temporary, contents).and_then(|()| std::fs::rename(&temporary, &target));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map(|()| target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::status::tests::sample_status;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vipd-dumps-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_dumps_are_the_status_json_and_the_metrics_text() {
        // A directory that does not exist yet: the dump makes it.
        let dir = scratch("both").join("run");
        dump_status(&sample_status(), &dir);
        dump_stats(sample_status(), &dir);
        let status: NodeStatus =
            serde_json::from_slice(&std::fs::read(dir.join(STATUS_FILE)).expect("status file"))
                .expect("the status JSON");
        assert_eq!(status, sample_status());
        let stats = std::fs::read_to_string(dir.join(STATS_FILE)).expect("stats file");
        assert!(stats.contains("vipd_vrrp_state{"), "{stats}");
        assert!(stats.ends_with("# EOF\n"));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error_not_a_panic() {
        let file = scratch("blocked");
        std::fs::write(&file, "not a directory").expect("write");
        assert!(write_atomically(&file.join("run"), STATUS_FILE, b"{}").is_err());
        let _ = std::fs::remove_file(&file);
    }
}
