//! `vrrp_script`s that only follow HAProxy, which vipd replaces: `killall -0 haproxy` and its
//! cousins written inline, and the script file of the common articles (`check_haproxy.sh`:
//! `pidof haproxy` or `ps -C haproxy | wc -l`, then `systemctl restart haproxy` and, when it stays
//! down, `systemctl stop keepalived`). Their trackers become frontend trackers: vipd follows its
//! own frontends' backends, and systemd restarts vipd itself (`Restart=on-failure`).
//!
//! A script file is read (when the importer can) and recognised only when every command in it
//! is one of those; any other command (a `curl` to the apiserver, say) keeps it a script.

use std::io::Read as _;
use std::path::Path;

/// Larger than any such script; a bigger file is something else.
const MAX_SCRIPT: u64 = 64 * 1024;

/// How a HAProxy liveness check was recognised, and what it did besides checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HaproxyCheck {
    /// The command itself: `killall -0 haproxy`, `pidof haproxy`, `sh -c '...'`.
    Inline,
    /// A script file whose every command follows HAProxy.
    File {
        file: String,
        restarts_haproxy: bool,
        stops_keepalived: bool,
    },
    /// A script file named like one (`check_haproxy.sh`) that could not be read.
    ByName { file: String, reason: String },
}

/// What `words` (a vrrp_script's argv) does, when it only follows HAProxy.
pub(super) fn recognize(words: &[String]) -> Option<HaproxyCheck> {
    let program = words.first()?;
    let name = base_name(program);
    if matches!(name, "sh" | "bash" | "dash")
        && words.get(1).is_some_and(|flag| flag == "-c")
        && let Some(body) = words.get(2)
    {
        return body_follows_haproxy(body).map(|_| HaproxyCheck::Inline);
    }
    if is_check(&words.iter().map(String::as_str).collect::<Vec<_>>()) {
        return Some(HaproxyCheck::Inline);
    }
    if !program.starts_with('/') || words.len() > 1 {
        return None;
    }
    match read_script(Path::new(program)) {
        Ok(body) => body_follows_haproxy(&body).map(|actions| HaproxyCheck::File {
            file: program.clone(),
            restarts_haproxy: actions.restarts_haproxy,
            stops_keepalived: actions.stops_keepalived,
        }),
        Err(reason)
            if name.contains("haproxy") && (name.contains("check") || name.contains("chk")) =>
        {
            Some(HaproxyCheck::ByName {
                file: program.clone(),
                reason,
            })
        }
        Err(_) => None,
    }
}

fn read_script(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SCRIPT + 1).read_to_end(&mut bytes))
        .map_err(|error| {
            // `No such file or directory`, without the ` (os error 2)` people need not read.
            let text = error.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_owned()
        })?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_SCRIPT {
        return Err("too large for a liveness script".to_owned());
    }
    String::from_utf8(bytes).map_err(|_| "not text".to_owned())
}

/// What a script body does besides checking HAProxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Actions {
    pub restarts_haproxy: bool,
    pub stops_keepalived: bool,
}

/// `Some` when every command of the shell `body` checks HAProxy, restarts it, stops keepalived
/// or is plumbing (`sleep`, `exit`, `echo`, `wc`, tests of a variable), and one checks HAProxy.
pub(super) fn body_follows_haproxy(body: &str) -> Option<Actions> {
    let mut actions = Actions::default();
    let mut checks = false;
    for line in body.lines() {
        let code = line.trim_start();
        if code.starts_with('#') {
            continue;
        }
        let code = code.split(" #").next().unwrap_or_default();
        for command in simple_commands(code) {
            let words: Vec<&str> = command.iter().map(String::as_str).collect();
            match classify(&words)? {
                Command::Plumbing => {}
                Command::Check => checks = true,
                Command::RestartHaproxy => actions.restarts_haproxy = true,
                Command::StopKeepalived => actions.stops_keepalived = true,
            }
        }
    }
    checks.then_some(actions)
}

enum Command {
    Plumbing,
    Check,
    RestartHaproxy,
    StopKeepalived,
}

/// The simple commands of one line: split at `;`, `&&`, `||`, `|`, backquotes and `$( )`, with
/// quotes removed and leading shell syntax (`if`, `!`, `[`, assignments, operands) dropped.
fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut separated = line.to_owned();
    for separator in ["$(", "&&", "||", ";", "|", "`", "(", ")", "&"] {
        separated = separated.replace(separator, "\n");
    }
    separated
        .lines()
        .map(|command| {
            command
                .split_whitespace()
                .map(|word| word.trim_matches(['"', '\'']).to_owned())
                .skip_while(|word| is_shell_syntax(word))
                .collect::<Vec<String>>()
        })
        .filter(|command| !command.is_empty())
        .collect()
}

/// Words that are syntax or operands rather than a program: keywords, tests, variables.
fn is_shell_syntax(word: &str) -> bool {
    matches!(
        word,
        "if" | "then"
            | "else"
            | "elif"
            | "fi"
            | "while"
            | "until"
            | "do"
            | "done"
            | "!"
            | "["
            | "[["
            | "]"
            | "]]"
            | "="
            | "=="
            | "!="
            | "{"
            | "}"
            | "test"
    ) || word.starts_with('$')
        || word.starts_with('-')
        || word.starts_with('>')
        || word.starts_with("2>")
        || word.parse::<i64>().is_ok()
        || word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn classify(words: &[&str]) -> Option<Command> {
    let program = base_name(words.first()?);
    let mentions = |name: &str| words[1..].iter().any(|word| service_name(word) == name);
    if is_check(words) {
        return Some(Command::Check);
    }
    match program {
        "sleep" | "exit" | "return" | "echo" | "printf" | "logger" | "wc" | "true" | "false"
        | "grep" | "ps" => Some(Command::Plumbing),
        "systemctl" | "service" | "killall" | "pkill" if mentions("keepalived") => {
            Some(Command::StopKeepalived)
        }
        "systemctl" | "service" if mentions("haproxy") => Some(Command::RestartHaproxy),
        // `/usr/sbin/haproxy -f ...`, `/etc/init.d/haproxy restart`: starting it directly.
        "haproxy" => Some(Command::RestartHaproxy),
        _ => None,
    }
}

/// `killall -0 haproxy`, `pidof haproxy`, `pgrep haproxy`, `ps -C haproxy`, `systemctl
/// is-active haproxy`, `service haproxy status`, `grep haproxy` (after `ps`).
fn is_check(words: &[&str]) -> bool {
    let Some(program) = words.first().map(|program| base_name(program)) else {
        return false;
    };
    let mentions_haproxy = words[1..]
        .iter()
        .any(|word| service_name(word) == "haproxy");
    mentions_haproxy
        && match program {
            "killall" => words.contains(&"-0"),
            "pidof" | "pgrep" | "ps" | "grep" => true,
            "systemctl" => words.contains(&"is-active") || words.contains(&"status"),
            "service" => words.contains(&"status"),
            _ => false,
        }
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// `haproxy.service` → `haproxy`.
fn service_name(word: &str) -> &str {
    word.strip_suffix(".service").unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn inline_checks_are_recognised() {
        for command in [
            "killall -0 haproxy",
            "/usr/bin/pgrep haproxy",
            "pidof haproxy",
            "systemctl is-active haproxy.service",
            "/usr/bin/killall -0 haproxy",
        ] {
            assert_eq!(
                recognize(&words(command)),
                Some(HaproxyCheck::Inline),
                "{command}"
            );
        }
        let shell = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "pidof haproxy || exit 1".to_owned(),
        ];
        assert_eq!(recognize(&shell), Some(HaproxyCheck::Inline));
        for command in [
            "killall -0 nginx",
            "killall haproxy",
            "/etc/keepalived/check_apiserver.sh",
        ] {
            assert_eq!(recognize(&words(command)), None, "{command}");
        }
    }

    /// The script of the common keepalived + HAProxy articles.
    const ARTICLE: &str = include_str!("../../tests/samples/article-pair/check_haproxy.sh");

    #[test]
    fn the_article_script_restarts_haproxy_and_stops_keepalived() {
        assert_eq!(
            body_follows_haproxy(ARTICLE),
            Some(Actions {
                restarts_haproxy: true,
                stops_keepalived: true,
            })
        );
        let pidof = "#!/bin/sh\nif ! pidof haproxy > /dev/null; then\n  exit 1\nfi\nexit 0\n";
        assert_eq!(body_follows_haproxy(pidof), Some(Actions::default()));
        let counter = "#!/bin/bash\ncounter=$(ps -C haproxy --no-heading|wc -l)\nif [ \"${counter}\" = \"0\" ]; then\n    /usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg\nfi\n";
        assert_eq!(
            body_follows_haproxy(counter),
            Some(Actions {
                restarts_haproxy: true,
                stops_keepalived: false,
            })
        );
    }

    #[test]
    fn a_script_that_does_more_is_not_replaced() {
        // kubeadm's check_apiserver.sh asks the apiserver itself.
        let apiserver = "#!/bin/sh\ncurl -sfk --max-time 2 https://localhost:6443/healthz -o /dev/null || exit 1\n";
        assert_eq!(body_follows_haproxy(apiserver), None);
        let both = format!("{ARTICLE}curl -sf http://127.0.0.1:8404/ || exit 1\n");
        assert_eq!(body_follows_haproxy(&both), None);
        // Plumbing alone checks nothing.
        assert_eq!(body_follows_haproxy("#!/bin/sh\nexit 0\n"), None);
    }

    #[test]
    fn a_script_file_is_read_or_recognised_by_its_name() {
        let directory =
            std::env::temp_dir().join(format!("vipd-import-haproxy-script-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let script = directory.join("check_haproxy.sh");
        std::fs::write(&script, ARTICLE).unwrap();
        let found = recognize(&[script.display().to_string()]);
        let missing = recognize(&["/nonexistent/keepalived/check_haproxy.sh".to_owned()]);
        let other = recognize(&["/nonexistent/keepalived/check_web.sh".to_owned()]);
        std::fs::remove_dir_all(&directory).unwrap();
        assert_eq!(
            found,
            Some(HaproxyCheck::File {
                file: script.display().to_string(),
                restarts_haproxy: true,
                stops_keepalived: true,
            })
        );
        assert!(
            matches!(missing, Some(HaproxyCheck::ByName { ref reason, .. }) if reason.contains("No such file")),
            "{missing:?}"
        );
        assert_eq!(other, None);
    }
}
