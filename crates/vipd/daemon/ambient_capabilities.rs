//! The ambient capability set, cleared at start so that the programs vipd runs (check scripts,
//! notify hooks) do not inherit the unit's capabilities.
//!
//! systemd's `AmbientCapabilities=` is how an unprivileged `vipd` gets CAP_NET_ADMIN, CAP_NET_RAW
//! and CAP_NET_BIND_SERVICE; but the ambient set is also passed on by `execve`, so every script
//! an operator configured would run with them too (a tracking script able to delete routes).
//! Clearing it keeps vipd's own permitted and effective sets, which are all the daemon needs;
//! a child then starts with none (its user is not root, and NoNewPrivileges forbids file
//! capabilities).
//!
//! Capabilities are per thread: this must run on the main thread before any other thread exists,
//! since threads inherit the set of the thread that creates them and children that of the
//! thread that forks them.

use caps::CapSet;

/// Clears the calling thread's ambient capability set; `Err` says why it could not (a kernel
/// before 4.3 has no ambient set, and nothing to pass on either).
pub fn clear() -> Result<(), String> {
    match caps::read(None, CapSet::Ambient) {
        Ok(set) if set.is_empty() => return Ok(()),
        Ok(_) => {}
        Err(error) => return Err(error.to_string()),
    }
    caps::clear(None, CapSet::Ambient).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_without_ambient_capabilities_stays_without() {
        // The test threads have no ambient set (nothing in the test environment grants one);
        // clearing it again must succeed and change nothing. That a script under the unit runs
        // with none is tests/integration/sandbox.rs's to show.
        let before = caps::read(None, CapSet::Ambient).expect("readable");
        if before.is_empty() {
            assert_eq!(clear(), Ok(()));
            assert!(
                caps::read(None, CapSet::Ambient)
                    .expect("readable")
                    .is_empty()
            );
        }
    }
}
