//! The files a configuration names and the daemon reads when it starts or reloads: the control
//! server's token, and the health checks' bearer tokens, CA files, client certificates and keys.
//! One that is missing, unreadable or empty fails that start or reload; `vipd check` says so
//! first, with the field's line. Like [`crate::script_permission_warnings`], this reads files
//! other than the configuration, so it is a call of its own.

use std::io::Read;
use std::path::Path;

use crate::diagnostic::{Diagnostic, io_reason};
use crate::model::{Config, HealthKind, TlsVerify};

/// Larger than any token, certificate or key; bounds what a check reads.
const READ_LIMIT: u64 = 1024 * 1024;

/// An error for every named file the daemon could not read (missing, unreadable, a directory,
/// empty). `text` is the configuration file `config` came from: it gives each error its line.
pub fn referenced_file_errors(config: &Config, text: &str) -> Vec<Diagnostic> {
    let index = crate::yaml::index(text);
    let mut errors: Vec<Diagnostic> = referenced_files(config)
        .into_iter()
        .filter_map(|(path, file, what)| {
            let problem = unreadable(file)?;
            let at = index.position(&path);
            Some(Diagnostic::new(
                path,
                at,
                format!("{what} {}: {problem}", file.display()),
            ))
        })
        .collect();
    errors.sort_by_key(|error| (error.line, error.column));
    errors
}

/// `(field path, file, what it is)` for every file the configuration names.
fn referenced_files(config: &Config) -> Vec<(String, &Path, &'static str)> {
    let mut files = Vec::new();
    if let Some(token) = &config.control.token_file {
        files.push((
            "control.token_file".to_owned(),
            token.as_path(),
            "token file",
        ));
    }
    for (position, backend) in config.backends.iter().enumerate() {
        let health = format!("backends[{position}].health");
        let options = &backend.health.options;
        if let Some(token) = &options.bearer_token_file {
            files.push((
                format!("{health}.bearer_token_file"),
                token.as_path(),
                "bearer token file",
            ));
        }
        if let HealthKind::Https {
            tls_verify: TlsVerify::CaFile(ca_file),
            ..
        } = &backend.health.kind
        {
            files.push((
                format!("{health}.tls_verify.ca_file"),
                ca_file.as_path(),
                "CA file",
            ));
        }
        if let Some(client) = &options.client_certificate {
            files.push((
                format!("{health}.client_certificate"),
                client.certificate_file.as_path(),
                "client certificate",
            ));
            if let Some(key) = &client.key_file {
                files.push((format!("{health}.client_key"), key.as_path(), "client key"));
            }
        }
    }
    files
}

/// Why the daemon could not use `file`, or `None` when it can read something from it.
fn unreadable(file: &Path) -> Option<String> {
    let mut content = Vec::new();
    let read = std::fs::File::open(file)
        .and_then(|opened| opened.take(READ_LIMIT).read_to_end(&mut content));
    match read {
        Err(error) => Some(format!("cannot be read: {}", io_reason(&error))),
        Ok(_) if content.trim_ascii().is_empty() => Some("is empty".to_owned()),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> std::path::PathBuf {
        let directory =
            std::env::temp_dir().join(format!("vipd-config-files-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        directory
    }

    fn errors_of(text: &str) -> Vec<Diagnostic> {
        let (config, _) = Config::from_yaml_str(text).unwrap_or_else(|errors| panic!("{errors}"));
        referenced_file_errors(&config, text)
    }

    #[test]
    fn missing_empty_and_unreadable_files_are_errors_at_their_field() {
        let directory = scratch("missing");
        let token = directory.join("token");
        std::fs::write(&token, "secret\n").unwrap();
        let empty = directory.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let text = format!(
            "\
control: {{ listen: \"127.0.0.1:9650\", token_file: {token} }}
frontends:
  - {{ name: api, bind: [\"198.51.100.50:6443\"], backend: api }}
backends:
  - name: api
    health:
      kind: https
      tls_verify: {{ ca_file: {missing} }}
      bearer_token_file: {empty}
      client_certificate: {dir}
    servers: [{{ name: m1, address: \"198.51.100.21:6443\" }}]
",
            token = token.display(),
            missing = directory.join("ca.pem").display(),
            empty = empty.display(),
            dir = directory.display(),
        );
        let found = errors_of(&text);
        std::fs::remove_dir_all(&directory).unwrap();
        let found: Vec<(&str, u64, &str)> = found
            .iter()
            .map(|error| (error.path.as_str(), error.line, error.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, "backends[0].health.tls_verify.ca_file");
        assert_eq!(found[0].1, 8);
        assert!(
            found[0].2.starts_with("CA file ")
                && found[0]
                    .2
                    .ends_with("ca.pem: cannot be read: No such file or directory"),
            "{found:?}"
        );
        assert_eq!(found[1].0, "backends[0].health.bearer_token_file");
        assert_eq!(found[1].1, 9);
        assert!(found[1].2.ends_with("/empty: is empty"), "{found:?}");
        assert_eq!(found[2].0, "backends[0].health.client_certificate");
        assert!(found[2].2.contains("Is a directory"), "{found:?}");
    }

    #[test]
    fn a_missing_control_token_is_an_error() {
        let text = "\
control: { token_file: /nonexistent/vipd/token }
vrrp:
  - { name: a, interface: eth0, vrid: 1, vips: [198.51.100.50/24] }
";
        let found = errors_of(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "control.token_file");
        assert_eq!(found[0].line, 1);
        assert!(
            found[0]
                .message
                .starts_with("token file /nonexistent/vipd/token: cannot be read: "),
            "{found:?}"
        );
    }
}
