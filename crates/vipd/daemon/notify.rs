//! Notify hooks: programs an operator runs on state changes (`notify.master`, `backup`, `fault`,
//! `state`). The router task only queues them; one task per instance runs them in order, each
//! killed at `notify.timeout`, so a slow hook never delays an advertisement and two hooks of one
//! instance never race.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::daemon::exec;

/// Hooks queued beyond this many (a flapping instance with slow hooks) are dropped and logged:
/// only the latest state matters, and memory stays bounded.
const QUEUE_DEPTH: usize = 32;

/// The state names hooks see, as keepalived passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    Master,
    Backup,
    Fault,
}

impl HookState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "MASTER",
            Self::Backup => "BACKUP",
            Self::Fault => "FAULT",
        }
    }
}

/// The queue of one instance's hooks.
#[derive(Clone, Debug)]
pub struct Notifier {
    instance: String,
    hooks: vipd_config::Notify,
    queue: mpsc::Sender<Job>,
}

/// One hook to run: the program, the arguments appended to it, and its timeout.
type Job = (vipd_config::Command, Vec<String>, Duration);

impl Notifier {
    /// Starts the instance's hook runner; it ends when every `Notifier` clone is dropped.
    pub fn spawn(instance: String, hooks: vipd_config::Notify) -> Self {
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let task_instance = instance.clone();
        tokio::spawn(async move {
            while let Some((command, extra, timeout)) = jobs.recv().await {
                let mut args = command.args.clone();
                args.extend(extra);
                // Hooks run as vipd's own user: they typically act on the host (restart a
                // service, update a route) with the privileges the operator gave vipd.
                let ran = exec::run(&command.program, &args, None, timeout).await;
                if ran.succeeded() {
                    debug!(instance = %task_instance, program = %command.program.display(), "notify hook done");
                } else {
                    warn!(instance = %task_instance, program = %command.program.display(), outcome = %ran, "notify hook failed");
                }
            }
        });
        Self {
            instance,
            hooks,
            queue,
        }
    }

    /// A reload changed the hooks: state changes from now on run the new ones, after any still
    /// queued (one runner, so hooks of one instance never race across a reload either).
    pub fn replace_hooks(&mut self, hooks: vipd_config::Notify) {
        self.hooks = hooks;
    }

    /// Queues the hooks for entering `state` with `priority`: the state's own hook, then `state`
    /// with instance, state and priority appended.
    pub fn state_changed(&self, state: HookState, priority: u8) {
        let own = match state {
            HookState::Master => &self.hooks.master,
            HookState::Backup => &self.hooks.backup,
            HookState::Fault => &self.hooks.fault,
        };
        if let Some(command) = own {
            self.enqueue(command.clone(), Vec::new());
        }
        if let Some(command) = &self.hooks.state {
            let extra = vec![
                self.instance.clone(),
                state.as_str().to_owned(),
                priority.to_string(),
            ];
            self.enqueue(command.clone(), extra);
        }
    }

    fn enqueue(&self, command: vipd_config::Command, extra: Vec<String>) {
        if let Err(error) = self.queue.try_send((command, extra, self.hooks.timeout)) {
            warn!(instance = %self.instance, %error, "notify hook dropped: queue full or runner gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Hooks run in order per instance; `state` gets instance, state, priority appended.
    #[tokio::test]
    async fn hooks_run_in_order_with_instance_state_and_priority_appended() {
        let log = std::env::temp_dir().join(format!("vipd-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let append = |tag: &str| vipd_config::Command {
            program: PathBuf::from("/bin/sh"),
            // `sh -c SCRIPT NAME ARGS...`: the appended arguments become $1, $2, ...
            args: vec![
                "-c".into(),
                format!("sleep 0.05; echo {tag} \"$@\" >> {}", log.display()),
                "hook".into(),
            ],
        };
        let hooks = vipd_config::Notify {
            master: Some(append("master")),
            backup: Some(append("backup")),
            fault: None,
            state: Some(append("state")),
            timeout: Duration::from_secs(5),
        };
        let notifier = Notifier::spawn("api".into(), hooks);
        notifier.state_changed(HookState::Master, 150);
        notifier.state_changed(HookState::Backup, 90);
        notifier.state_changed(HookState::Fault, 90);
        let expected =
            "master\nstate api MASTER 150\nbackup\nstate api BACKUP 90\nstate api FAULT 90\n";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text == expected {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hooks ran as {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::remove_file(&log).unwrap();
    }

    /// A reload's new hooks (docs/design/vrrp.md, Reload) run from the next state change on,
    /// with their own timeout: here 100 ms kills a hook that would sleep for 10 s.
    #[tokio::test]
    async fn replaced_hooks_run_from_the_next_state_change_with_their_timeout() {
        let log = std::env::temp_dir().join(format!("vipd-notify-replace-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let hook = |script: String, timeout: Duration| vipd_config::Notify {
            master: Some(vipd_config::Command {
                program: PathBuf::from("/bin/sh"),
                args: vec!["-c".into(), script],
            }),
            timeout,
            ..vipd_config::Notify::default()
        };
        let mut notifier = Notifier::spawn(
            "api".into(),
            hook(
                format!("echo old >> {}", log.display()),
                Duration::from_secs(5),
            ),
        );
        notifier.replace_hooks(hook(
            format!("echo new >> {0}; sleep 10; echo late >> {0}", log.display()),
            Duration::from_millis(100),
        ));
        let started = tokio::time::Instant::now();
        notifier.state_changed(HookState::Master, 150);
        notifier.state_changed(HookState::Master, 150);
        let deadline = started + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text == "new\nnew\n" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hooks ran as {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the second hook waited for the first to sleep"
        );
        std::fs::remove_file(&log).unwrap();
    }
}
