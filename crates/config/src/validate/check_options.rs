//! `backends[].health` options of real clusters (check port, PROXY header, headers, bearer token,
//! client certificate, SNI, jitter) and `servers[].check_address`.

use std::net::IpAddr;

use super::Checker;
use crate::defaults::CHECK_JITTER_PERCENT;
use crate::model::{CheckOptions, ClientCertificate, ProxyProtocol};
use crate::raw;

/// Headers vipd writes itself: setting them would send two, or break the request's framing.
const OWN_HEADERS: [&str; 4] = ["host", "connection", "content-length", "transfer-encoding"];

impl Checker<'_> {
    pub(super) fn check_options(
        &mut self,
        raw: &mut raw::Health,
        kind: raw::HealthKind,
        path: &str,
    ) -> CheckOptions {
        self.only_for_kinds(raw, kind, path);
        let bearer_token_file = raw.bearer_token_file.take().map(|file| {
            let at = format!("{path}.bearer_token_file");
            if kind == raw::HealthKind::Http {
                self.warn(
                    &at,
                    "an http check sends the token in clear: use kind: https",
                );
            }
            self.absolute_path(&file, &at)
        });
        let headers = self.headers(
            raw.headers.take().unwrap_or_default(),
            bearer_token_file.is_some(),
            path,
        );
        CheckOptions {
            port: raw
                .port
                .map(|port| self.integer(Some(port), &format!("{path}.port"), 1..=65_535, 1u16)),
            send_proxy: raw.send_proxy.map(|send_proxy| match send_proxy {
                raw::SendProxy::None => ProxyProtocol::None,
                raw::SendProxy::V1 => ProxyProtocol::V1,
                raw::SendProxy::V2 => ProxyProtocol::V2,
            }),
            headers,
            bearer_token_file,
            client_certificate: self.client_certificate(raw, path),
            sni: raw.sni.take().inspect(|sni| {
                if !is_host_name(sni) {
                    self.error(&format!("{path}.sni"), "must be a host name");
                }
            }),
            jitter_percent: self.integer(
                raw.jitter_percent,
                &format!("{path}.jitter_percent"),
                0..=50,
                CHECK_JITTER_PERCENT,
            ),
        }
    }

    /// Headers and the token go into an HTTP request; the TLS options need TLS.
    fn only_for_kinds(&mut self, raw: &raw::Health, kind: raw::HealthKind, path: &str) {
        let http_fields = [
            ("headers", raw.headers.is_some()),
            ("bearer_token_file", raw.bearer_token_file.is_some()),
        ];
        let https_fields = [
            ("client_certificate", raw.client_certificate.is_some()),
            ("client_key", raw.client_key.is_some()),
            ("sni", raw.sni.is_some()),
        ];
        for (field, set) in http_fields {
            if set && kind == raw::HealthKind::Tcp {
                self.error(
                    &format!("{path}.{field}"),
                    format!("{field} applies to http and https checks only"),
                );
            }
        }
        for (field, set) in https_fields {
            if set && kind != raw::HealthKind::Https {
                self.error(
                    &format!("{path}.{field}"),
                    format!("{field} applies to https checks only"),
                );
            }
        }
    }

    fn headers(
        &mut self,
        headers: std::collections::BTreeMap<String, String>,
        has_bearer_token: bool,
        path: &str,
    ) -> Vec<(String, String)> {
        for (name, value) in &headers {
            let at = format!("{path}.headers.{name}");
            let lower = name.to_ascii_lowercase();
            if !is_token(name) {
                self.error(&at, "a header name is letters, digits and !#$%&'*+-.^_`|~");
            } else if lower == "host" {
                self.error(&at, "set the Host header with `host`");
            } else if OWN_HEADERS.contains(&lower.as_str()) {
                self.error(&at, format!("vipd sets {name} itself"));
            } else if lower == "authorization" && has_bearer_token {
                self.error(&at, "bearer_token_file already sets Authorization");
            }
            if value.contains(['\r', '\n', '\0']) {
                self.error(&at, "a header value cannot hold CR, LF or NUL");
            }
        }
        headers.into_iter().collect()
    }

    fn client_certificate(
        &mut self,
        raw: &mut raw::Health,
        path: &str,
    ) -> Option<ClientCertificate> {
        let key_file = raw.client_key.take().map(|file| {
            let at = format!("{path}.client_key");
            if raw.client_certificate.is_none() {
                self.error(&at, "client_key needs client_certificate");
            }
            self.absolute_path(&file, &at)
        });
        raw.client_certificate.take().map(|file| ClientCertificate {
            certificate_file: self.absolute_path(&file, &format!("{path}.client_certificate")),
            key_file,
        })
    }

    /// `servers[].check_address`: an IP address the server's checks connect to.
    pub(super) fn check_address(&mut self, raw: Option<String>, path: &str) -> Option<IpAddr> {
        let address: IpAddr = self.address(super::addresses::ip_address(&raw?), path)?;
        if address.is_unspecified() {
            self.error(path, format!("{address} cannot be connected to"));
        }
        Some(address)
    }
}

/// RFC 9110 section 5.6.2: `token = 1*tchar`.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// What `host` accepts too: no spaces, controls or `/`.
pub(super) fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
}

#[cfg(test)]
#[path = "check_options_tests.rs"]
mod tests;
