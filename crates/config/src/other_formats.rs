//! Files that are not vipd.yaml but are often given in its place: keepalived.conf and
//! haproxy.cfg. When such a file fails to parse as YAML, the operator is told what it is and how
//! to translate it, instead of a YAML syntax error about a brace.

use crate::diagnostic::Diagnostic;
use crate::location::Position;

/// Block keywords of keepalived.conf that open with `{`.
const KEEPALIVED_BLOCKS: [&str; 8] = [
    "global_defs",
    "vrrp_instance",
    "vrrp_script",
    "vrrp_sync_group",
    "vrrp_track_file",
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
];

/// An error naming the other format and its translation, when `text` looks like one.
pub(crate) fn recognize(text: &str) -> Option<Diagnostic> {
    for (number, line) in text.lines().enumerate() {
        let line_number = u64::try_from(number + 1).unwrap_or(u64::MAX);
        let at = Position {
            line: line_number,
            column: 1,
        };
        let shown = line.trim().escape_debug().to_string();
        if is_keepalived_block(line) {
            return Some(Diagnostic::new(
                "",
                at,
                format!(
                    "this looks like keepalived.conf (`{shown}` at line {line_number}), not \
                     vipd.yaml: translate it with `vipd import KEEPALIVED_CONF [HAPROXY_CFG] -o \
                     vipd.yaml`"
                ),
            ));
        }
        if is_haproxy_section(line) {
            return Some(Diagnostic::new(
                "",
                at,
                format!(
                    "this looks like haproxy.cfg (`{shown}` at line {line_number}), not \
                     vipd.yaml: translate it with keepalived.conf, `vipd import KEEPALIVED_CONF \
                     HAPROXY_CFG -o vipd.yaml`"
                ),
            ));
        }
    }
    None
}

/// `vrrp_instance VI_1 {`, `global_defs {`: a keepalived block keyword, a brace on the line.
fn is_keepalived_block(line: &str) -> bool {
    let code = line.split(['#', '!']).next().unwrap_or_default();
    let mut words = code.split_whitespace();
    words
        .next()
        .is_some_and(|keyword| KEEPALIVED_BLOCKS.contains(&keyword))
        && code.contains('{')
}

/// `frontend apiserver`, `backend web`, `listen stats`, `global`, `defaults`: unindented, a
/// section keyword and at most a name (`listen` may add an address), no YAML colon.
fn is_haproxy_section(line: &str) -> bool {
    if line.starts_with(char::is_whitespace) || line.contains(": ") || line.ends_with(':') {
        return false;
    }
    let code = line.split('#').next().unwrap_or_default();
    let words: Vec<&str> = code.split_whitespace().collect();
    match words.as_slice() {
        ["global" | "defaults"] => true,
        ["defaults" | "frontend" | "backend", _name] => true,
        ["listen", _name, ..] => words.len() <= 3,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_conf_is_recognized() {
        let text = "! Configuration File for keepalived\n\nglobal_defs {\n   router_id lb1\n}\n";
        let found = recognize(text).expect("keepalived");
        assert_eq!(found.line, 3);
        assert!(
            found
                .message
                .starts_with("this looks like keepalived.conf (`global_defs {` at line 3)"),
            "{found}"
        );
        assert!(found.message.contains("vipd import"), "{found}");
        let found = recognize("vrrp_instance VI_1 {\n  state MASTER\n}\n").expect("keepalived");
        assert_eq!(found.line, 1);
    }

    #[test]
    fn haproxy_cfg_is_recognized() {
        let text = "global\n    log /dev/log local0\n\nfrontend apiserver\n    bind *:6443\n";
        let found = recognize(text).expect("haproxy");
        assert_eq!(found.line, 1);
        assert!(
            found
                .message
                .starts_with("this looks like haproxy.cfg (`global` at line 1)"),
            "{found}"
        );
        let found = recognize("# lb\nlisten stats 0.0.0.0:8404\n  mode http\n").expect("haproxy");
        assert_eq!(found.line, 2);
    }

    #[test]
    fn yaml_is_not_mistaken_for_either() {
        for text in [
            "frontends:\n  - name: a\n",
            "global: x\n",
            "vrrp:\n  - { name: global_defs }\n",
        ] {
            assert_eq!(recognize(text), None, "{text}");
        }
    }
}
