//! Whether the programs a configuration runs could be replaced by someone other than root.
//!
//! vipd runs scripts and notify hooks while holding network capabilities; a program (or a
//! directory above it) that a non-root user can write is a way to run code as vipd. This is the
//! one check that reads metadata of files other than the configuration, so it is kept out of
//! the pure validation: `vipd check` calls it, and the daemon refuses such a program with
//! [`non_root_writer`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Warning};
use crate::model::{Command, Config};

const WORLD_WRITABLE: u32 = 0o002;
const GROUP_WRITABLE: u32 = 0o020;
/// The sticky bit: in such a directory only a file's owner may rename or delete it.
const STICKY: u32 = 0o1000;

/// A warning for every script and notify hook whose program a non-root user could replace.
///
/// `text` is the configuration file the `config` came from; it is used only to give each
/// warning its line and column.
pub fn script_permission_warnings(config: &Config, text: &str) -> Vec<Warning> {
    let index = crate::yaml::index(text);
    let mut commands: Vec<(String, &Command)> = config
        .scripts
        .iter()
        .map(|(name, script)| (format!("scripts.{name}.command[0]"), &script.command))
        .collect();
    for (position, instance) in config.vrrp.iter().enumerate() {
        let hooks = [
            ("master", &instance.notify.master),
            ("backup", &instance.notify.backup),
            ("fault", &instance.notify.fault),
            ("state", &instance.notify.state),
        ];
        for (hook, command) in hooks {
            if let Some(command) = command {
                commands.push((format!("vrrp[{position}].notify.{hook}[0]"), command));
            }
        }
    }
    commands
        .into_iter()
        .filter_map(|(path, command)| {
            let reason = non_root_writer(&command.program)?;
            let at = index.position(&path);
            Some(Diagnostic::new(path, at, reason))
        })
        .collect()
}

/// Why `program` could be replaced by a user other than root, or `None` when only root can:
/// the file and every directory above it (as written and after resolving symlinks) must be
/// owned by root and writable by no one else.
pub fn non_root_writer(program: &Path) -> Option<String> {
    let mut chain: Vec<PathBuf> = program.ancestors().map(Path::to_path_buf).collect();
    match std::fs::canonicalize(program) {
        Ok(resolved) => chain.extend(resolved.ancestors().map(Path::to_path_buf)),
        Err(error) => return Some(format!("{} cannot be checked: {error}", program.display())),
    }
    chain
        .iter()
        .filter(|path| !path.as_os_str().is_empty())
        .find_map(|path| match std::fs::metadata(path) {
            Ok(metadata) => writer_problem(&metadata).map(|problem| {
                if path == program {
                    format!("{} {problem}", program.display())
                } else {
                    format!(
                        "{} {problem}, so {} can be replaced",
                        path.display(),
                        program.display()
                    )
                }
            }),
            Err(error) => Some(format!("{} cannot be checked: {error}", path.display())),
        })
}

fn writer_problem(metadata: &std::fs::Metadata) -> Option<String> {
    let mode = metadata.mode();
    if metadata.uid() != 0 {
        return Some(format!("is owned by uid {}, not root", metadata.uid()));
    }
    if mode & WORLD_WRITABLE != 0 && !(metadata.is_dir() && mode & STICKY != 0) {
        return Some("is writable by every user".to_owned());
    }
    if mode & GROUP_WRITABLE != 0 && metadata.gid() != 0 {
        return Some(format!("is writable by group gid {}", metadata.gid()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_only_writable_by_root() {
        // /bin/sh exists and belongs to root on any system these tests run on.
        assert_eq!(non_root_writer(Path::new("/bin/sh")), None);
    }

    #[test]
    fn a_missing_program_is_reported() {
        let reason = non_root_writer(Path::new("/nonexistent/vipd-check")).expect("missing");
        assert!(reason.contains("cannot be checked"), "{reason}");
    }

    #[test]
    fn a_world_writable_program_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let directory =
            std::env::temp_dir().join(format!("vipd-config-perm-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let program = directory.join("check");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o777)).unwrap();
        let reason = non_root_writer(&program);
        std::fs::remove_dir_all(&directory).unwrap();
        // As root the file is root's but writable by everyone; as a user it is not root's.
        let reason = reason.expect("insecure");
        assert!(
            reason.contains("writable by every user") || reason.contains("not root"),
            "{reason}"
        );
    }

    #[test]
    fn warnings_name_the_command_path_and_line() {
        let text = "\
scripts:
  chk:
    command: [/nonexistent/vipd-check]
vrrp:
  - name: a
    interface: eth0
    vrid: 1
    vips: [198.51.100.50/24]
    track: [{ script: chk, weight: -10 }]
    notify: { master: [/bin/sh, -c, true] }
";
        let (config, _) = Config::from_yaml_str(text).unwrap();
        let warnings = script_permission_warnings(&config, text);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path, "scripts.chk.command[0]");
        assert_eq!((warnings[0].line, warnings[0].column), (3, 15));
    }
}
