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
    use caps::Capability;

    use super::*;

    #[test]
    fn an_ambient_capability_is_cleared_and_the_permitted_ones_stay() {
        // On a thread of its own: capabilities are per thread, the other tests keep theirs.
        // That a script under the unit runs with none is tests/integration/systemd_unit.rs's to
        // show.
        std::thread::spawn(|| {
            let permitted = caps::read(None, CapSet::Permitted).expect("readable");
            if !permitted.contains(&Capability::CAP_NET_RAW) {
                eprintln!("skipped: needs CAP_NET_RAW (root) to raise an ambient capability");
                return;
            }
            // What systemd's AmbientCapabilities= does before exec.
            caps::raise(None, CapSet::Inheritable, Capability::CAP_NET_RAW).expect("inheritable");
            caps::raise(None, CapSet::Ambient, Capability::CAP_NET_RAW).expect("ambient");

            assert_eq!(clear(), Ok(()));

            assert!(
                caps::read(None, CapSet::Ambient)
                    .expect("readable")
                    .is_empty()
            );
            assert_eq!(
                caps::read(None, CapSet::Permitted).expect("readable"),
                permitted
            );
        })
        .join()
        .expect("the test thread");
    }
}
