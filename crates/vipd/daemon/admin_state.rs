//! What operators set through the admin API (drained and disabled servers, weight overrides,
//! instances in maintenance), kept across a daemon restart.
//!
//! An operator drains a server to work on it, or puts a node in maintenance, and expects that to
//! hold until undone: a daemon that crashes and is restarted by systemd must not send traffic to
//! the server being worked on, nor take the VIPs back. HAProxy loses this runtime state unless
//! `server-state-file` is configured; vipd keeps it in `admin-state.json` of the state directory,
//! systemd's `$STATE_DIRECTORY` (`StateDirectory=vipd` in deploy/systemd/vipd.service, so
//! `/var/lib/vipd`). Without that variable (a daemon started by hand, the tests, `vipd lab`) the
//! state is kept in memory only: it still survives a reload, not a restart.
//!
//! The file is written whole to a temporary file that is then renamed over it, after every
//! accepted action. It is outside input when read at start: a corrupt file is logged and ignored,
//! entries for servers or instances the configuration no longer has are logged and dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::control::ServerAction;

/// The file's name in the state directory.
pub const FILE_NAME: &str = "admin-state.json";

/// What is kept: only what differs from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminState {
    /// Per backend, per server.
    #[serde(default)]
    pub servers: BTreeMap<String, BTreeMap<String, ServerOverride>>,
    /// Instances in maintenance.
    #[serde(default)]
    pub maintenance: BTreeSet<String>,
}

/// A server's admin state and weight as an operator set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOverride {
    /// Drained or disabled; absent when in service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<OutOfService>,
    /// The weight set through the API; absent when the configured weight applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfService {
    Drain,
    Disable,
}

impl AdminState {
    /// Records an accepted server action.
    pub fn record_server(&mut self, backend: &str, server: &str, action: ServerAction) {
        let servers = self.servers.entry(backend.to_owned()).or_default();
        let entry = servers.entry(server.to_owned()).or_default();
        match action {
            ServerAction::Drain => entry.admin = Some(OutOfService::Drain),
            ServerAction::Disable => entry.admin = Some(OutOfService::Disable),
            ServerAction::Enable => entry.admin = None,
            ServerAction::SetWeight(weight) => entry.weight = Some(weight),
            ServerAction::ResetWeight => entry.weight = None,
        }
        if *entry == ServerOverride::default() {
            servers.remove(server);
        }
        if servers.is_empty() {
            self.servers.remove(backend);
        }
    }

    /// Records an accepted maintenance command.
    pub fn record_maintenance(&mut self, instance: &str, on: bool) {
        if on {
            self.maintenance.insert(instance.to_owned());
        } else {
            self.maintenance.remove(instance);
        }
    }

    /// Drops what the configuration no longer has (`server_exists` and `instance_exists` say),
    /// logging each: a server or instance added again later starts afresh, as the proxy and the
    /// routers do.
    pub fn retain(
        &mut self,
        server_exists: impl Fn(&str, &str) -> bool,
        instance_exists: impl Fn(&str) -> bool,
    ) {
        for (backend, servers) in &mut self.servers {
            servers.retain(|server, _| {
                let keep = server_exists(backend, server);
                if !keep {
                    info!(backend = %backend, server = %server, "admin state of a server the configuration no longer has: dropped");
                }
                keep
            });
        }
        self.servers.retain(|_, servers| !servers.is_empty());
        self.maintenance.retain(|instance| {
            let keep = instance_exists(instance);
            if !keep {
                info!(instance = %instance, "maintenance of an instance the configuration no longer has: dropped");
            }
            keep
        });
    }
}

/// The admin state of the running daemon and where it is kept.
pub struct AdminStateStore {
    /// None: in memory only.
    path: Option<PathBuf>,
    state: Mutex<AdminState>,
    /// Held from a change to the end of its write, so that files are written in the order of
    /// the changes.
    writing: tokio::sync::Mutex<()>,
}

impl AdminStateStore {
    /// In memory only: survives reloads, not restarts.
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self {
            path: None,
            state: Mutex::new(AdminState::default()),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// Kept in `$STATE_DIRECTORY` (the first, if systemd passed several), in memory without it.
    pub fn from_environment() -> Arc<Self> {
        let directory = std::env::var_os("STATE_DIRECTORY")
            .and_then(|value| std::env::split_paths(&value).next())
            .filter(|path| !path.as_os_str().is_empty());
        let Some(directory) = directory else {
            info!(
                "admin state (drained servers, weights, maintenance) is kept in memory only: STATE_DIRECTORY is not set"
            );
            return Self::in_memory();
        };
        Self::in_file(directory.join(FILE_NAME))
    }

    /// Kept in `path`; what it holds now is read (a missing file is an empty state).
    pub fn in_file(path: PathBuf) -> Arc<Self> {
        let state = read(&path);
        Arc::new(Self {
            path: Some(path),
            state: Mutex::new(state),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, AdminState> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the state now.
    pub fn snapshot(&self) -> AdminState {
        self.lock().clone()
    }

    /// Whether `instance` is in maintenance.
    pub fn in_maintenance(&self, instance: &str) -> bool {
        self.lock().maintenance.contains(instance)
    }

    /// Changes the state with `change` and writes it to the file, if any and if it changed. A
    /// write that fails is logged: the action itself has been done.
    pub async fn update(&self, change: impl FnOnce(&mut AdminState)) {
        let _writing = self.writing.lock().await;
        let state = {
            let mut state = self.lock();
            let before = state.clone();
            change(&mut state);
            if *state == before {
                return;
            }
            state.clone()
        };
        let Some(path) = self.path.clone() else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || write(&path, &state))
            .await
            .map_err(|error| anyhow::anyhow!("{error}"));
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) | Err(error) => {
                warn!(
                    error = format!("{error:#}"),
                    "cannot save the admin state; it will not survive a restart"
                );
            }
        }
    }
}

/// The state in `path`; empty when there is none or it cannot be used (logged).
fn read(path: &Path) -> AdminState {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return AdminState::default();
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the admin state; starting without it");
            return AdminState::default();
        }
    };
    match serde_json::from_slice(&text) {
        Ok(state) => {
            info!(path = %path.display(), "admin state restored");
            state
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "the admin state file is not valid; ignoring it");
            AdminState::default()
        }
    }
}

/// Writes `state` to a temporary file beside `path`, flushes it and renames it over `path`, so a
/// crash leaves the old file or the new one, never half of one.
fn write(path: &Path, state: &AdminState) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut text = serde_json::to_vec_pretty(state).context("encoding the admin state")?;
    text.push(b'\n');
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vipd-admin-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn actions_are_recorded_and_undone_to_nothing() {
        let mut state = AdminState::default();
        state.record_server("web", "b1", ServerAction::Drain);
        state.record_server("web", "b1", ServerAction::SetWeight(7));
        state.record_server("web", "b2", ServerAction::Disable);
        state.record_maintenance("api", true);
        assert_eq!(
            state.servers["web"]["b1"],
            ServerOverride {
                admin: Some(OutOfService::Drain),
                weight: Some(7)
            }
        );
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            json,
            r#"{"servers":{"web":{"b1":{"admin":"drain","weight":7},"b2":{"admin":"disable"}}},"maintenance":["api"]}"#
        );
        state.record_server("web", "b1", ServerAction::Enable);
        state.record_server("web", "b1", ServerAction::ResetWeight);
        state.record_server("web", "b2", ServerAction::Enable);
        state.record_maintenance("api", false);
        assert_eq!(state, AdminState::default());
    }

    #[tokio::test]
    async fn the_file_survives_a_restart_and_a_corrupt_one_is_ignored() {
        let dir = scratch("restart");
        let path = dir.join(FILE_NAME);
        let store = AdminStateStore::in_file(path.clone());
        store
            .update(|state| state.record_server("web", "b1", ServerAction::Drain))
            .await;
        store
            .update(|state| state.record_maintenance("api", true))
            .await;
        let restarted = AdminStateStore::in_file(path.clone());
        assert_eq!(restarted.snapshot(), store.snapshot());
        assert!(restarted.in_maintenance("api"));

        restarted
            .update(|state| state.retain(|backend, _| backend == "other", |_| true))
            .await;
        let kept = AdminStateStore::in_file(path.clone()).snapshot();
        assert!(
            kept.servers.is_empty(),
            "servers gone from the configuration are dropped"
        );
        assert!(kept.maintenance.contains("api"));

        for corrupt in [
            &b"{not json"[..],
            b"{\"servers\": 5}",
            b"{\"surprise\": 1}",
            b"",
        ] {
            std::fs::write(&path, corrupt).unwrap();
            assert_eq!(
                AdminStateStore::in_file(path.clone()).snapshot(),
                AdminState::default()
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
