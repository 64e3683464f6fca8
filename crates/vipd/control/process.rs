//! The daemon process as the kernel accounts for it, read at each `/status` or `/metrics`
//! request: open fds from `/proc/self/fd`, resident memory from `/proc/self/status`, the fd limit
//! and CPU time from getrlimit(2) and getrusage(2).
//!
//! Read directly rather than through a crate (procfs): four small reads, and nix's safe wrappers
//! give the rest without clock-tick or page-size conversions (getrusage counts microseconds,
//! `VmRSS` kilobytes), so no `sysconf` is needed either.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage};

use super::status::ProcessStatus;

/// This process now; `started` is when the daemon started.
pub fn read(started: SystemTime) -> ProcessStatus {
    ProcessStatus {
        open_fds: open_fds(Path::new("/proc/self/fd")),
        max_fds: getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft),
        resident_memory_bytes: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| resident_bytes(&status)),
        cpu_seconds: cpu_seconds(),
        start_time_unix_seconds: started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64()),
    }
}

/// Entries of the fd directory, less the one that reading it opens.
fn open_fds(directory: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(directory).ok()?.count();
    u64::try_from(entries.saturating_sub(1)).ok()
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kilobytes: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kilobytes.checked_mul(1024)
}

fn cpu_seconds() -> Option<f64> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let seconds = |time: nix::sys::time::TimeVal| {
        std::time::Duration::new(
            u64::try_from(time.tv_sec()).unwrap_or(0),
            u32::try_from(time.tv_usec()).unwrap_or(0) * 1000,
        )
    };
    Some((seconds(usage.user_time()) + seconds(usage.system_time())).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_vmrss_in_kilobytes() {
        let status = "Name:\tvipd\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n";
        assert_eq!(resident_bytes(status), Some(12_345 * 1024));
        assert_eq!(
            resident_bytes("Name:\tkthreadd\n"),
            None,
            "kernel threads have none"
        );
        assert_eq!(resident_bytes("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn this_process_is_read() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let started = SystemTime::now();
        let process = read(started);
        let open = process.open_fds.expect("/proc/self/fd is readable");
        assert!(open >= 1, "the file above at least: {open}");
        assert!(process.max_fds.unwrap() >= open);
        assert!(process.resident_memory_bytes.unwrap() > 1024 * 1024);
        assert!(process.cpu_seconds.unwrap() > 0.0);
        let since_epoch = started.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((process.start_time_unix_seconds - since_epoch).abs() < 1e-3);
        drop(file);
    }
}
