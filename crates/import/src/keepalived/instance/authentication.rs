//! `authentication`: the PASS password vipd writes as `auth_password` (VRRP v2 only).

use crate::keepalived::syntax::Statement;
use crate::{ImportWarning, Location, warn};

/// `authentication { auth_type PASS auth_pass SECRET }`. AH (RFC 2338's IPsec header) was
/// dropped from VRRP by RFC 3768 section 5.3.6 and vipd does not speak it.
pub(super) fn authentication(
    directive: &Statement,
    warnings: &mut Vec<ImportWarning>,
) -> Option<String> {
    let mut kind = None;
    let mut password = None;
    for child in directive.children() {
        match (child.keyword(), child.args().first()) {
            ("auth_type", Some(value)) => {
                kind = Some((value.to_ascii_uppercase(), child.at.clone()));
            }
            ("auth_pass", Some(value)) => password = Some(value.clone()),
            (keyword, _) => warn(
                warnings,
                &child.at,
                format!("authentication {keyword}: not understood: skipped"),
            ),
        }
    }
    match kind {
        Some((kind, at)) if kind == "AH" => {
            warn(
                warnings,
                &at,
                "AUTH TYPE AH IS NOT SUPPORTED by vipd (RFC 3768 removed it): the instance is written WITHOUT authentication, and a keepalived peer still using AH will not accept vipd's adverts (both nodes become master). Remove AH from the keepalived node first",
            );
            None
        }
        Some((kind, _)) if kind == "PASS" => {
            let mut password = password?;
            if password.len() > 8 {
                // keepalived sends the first 8 bytes (RFC 3768 section 5.3.10's field size).
                let mut end = 8;
                while !password.is_char_boundary(end) {
                    end -= 1;
                }
                password.truncate(end);
                warn(
                    warnings,
                    &directive.at,
                    format!(
                        "auth_pass is longer than 8 bytes: keepalived sends only the first 8, written as `{password}`"
                    ),
                );
            }
            Some(password).filter(|password| !password.is_empty())
        }
        Some((kind, at)) => {
            warn(
                warnings,
                &at,
                format!("auth_type {kind} is not PASS: skipped"),
            );
            None
        }
        None => None,
    }
}

/// VRRP v3 has no authentication field: a password read for a v3 instance is dropped.
pub(super) fn drop_for_v3(
    password: &mut Option<String>,
    version: u8,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) {
    if version == 3 && password.take().is_some() {
        warn(
            warnings,
            at,
            "authentication: VRRP v3 has none (keepalived ignores it too): skipped",
        );
    }
}
