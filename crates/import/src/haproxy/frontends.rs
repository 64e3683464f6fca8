//! vipd frontends from the `frontend` and `listen` sections, wired to the imported backends.

use std::net::SocketAddr;

use super::backends::backend;
use super::keepalive::draft_keepalive;
use super::section::{Kind, Section, kind_word};
use crate::draft::{Draft, Frontend};
use crate::{ImportWarning, unique_name, vipd_name, warn};

/// Turns the sections into vipd frontends and backends, wiring names and shared settings.
pub(super) fn build(sections: &[Section], draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    // Backends first: a frontend pointing at a backend that could not be imported is dropped.
    for section in sections.iter().filter(|section| section.is_backend()) {
        let taken: Vec<&str> = draft.backends.iter().map(|b| b.name.as_str()).collect();
        if let Some(backend) = backend(section, sections, &taken, warnings) {
            draft.backends.push(backend);
        }
    }
    for section in sections.iter().filter(|section| section.is_frontend()) {
        let name = vipd_name(&section.name, &section.at, "frontend", warnings);
        let taken: Vec<&str> = draft.frontends.iter().map(|f| f.name.as_str()).collect();
        let name = unique_name(name, &taken);
        let target = if section.kind == Kind::Listen {
            Some((section.name.clone(), section.at.clone()))
        } else {
            section.backend.clone()
        };
        let Some((target, target_at)) = target else {
            warn(
                warnings,
                &section.at,
                format!(
                    "frontend {} has no default_backend (or unconditional use_backend): skipped",
                    section.name
                ),
            );
            continue;
        };
        let Some(backend) = sections
            .iter()
            .position(|other| other.is_backend() && other.name == target)
            .and_then(|index| {
                let source = &sections[index];
                draft
                    .backends
                    .iter()
                    .find(|backend| backend.from == source.at)
            })
        else {
            warn(
                warnings,
                &target_at,
                format!(
                    "backend {target} was not imported (see above) or does not exist: frontend {} skipped",
                    section.name
                ),
            );
            continue;
        };
        let binds = usable_binds(section, draft, warnings);
        if binds.is_empty() {
            warn(
                warnings,
                &section.at,
                format!("frontend {} has no usable bind: skipped", section.name),
            );
            continue;
        }
        let mut notes = Vec::new();
        if let Some(mode_at) = &section.http_mode {
            warn(
                warnings,
                &section.at,
                format!(
                    "{} {} is in mode http ({mode_at}): vipd is L4 only; translated as TCP pass-through (no HTTP routing, header rules or TLS termination)",
                    kind_word(section.kind),
                    section.name
                ),
            );
            notes.push(format!(
                "mode http in HAProxy ({mode_at}): passed through as TCP."
            ));
        }
        let backend_name = backend.name.clone();
        let tcp_keepalive = draft_keepalive(&section.client_keepalive, &mut notes);
        draft.frontends.push(Frontend {
            from: section.at.clone(),
            notes,
            name,
            bind: binds,
            backend: backend_name,
            accept_proxy: section.accept_proxy,
            max_connections: section.maxconn,
            tcp_keepalive,
        });
    }
    warn_unused_backends(draft, warnings);
}

/// The section's binds vipd can listen on: not the control server's address, and no port
/// bound twice (vipd binds a port once).
fn usable_binds(
    section: &Section,
    draft: &Draft,
    warnings: &mut Vec<ImportWarning>,
) -> Vec<SocketAddr> {
    let mut binds: Vec<SocketAddr> = Vec::new();
    for (address, at) in &section.binds {
        let clashes = draft
            .frontends
            .iter()
            .flat_map(|f| &f.bind)
            .chain(&binds)
            .any(|other| {
                other.port() == address.port()
                    && (other.ip() == address.ip()
                        || other.ip().is_unspecified()
                        || address.ip().is_unspecified())
            });
        // The control server's default address (control.listen) is vipd's own.
        let control = vipd_config::defaults::CONTROL_LISTEN;
        if address.port() == control.port()
            && (address.ip() == control.ip() || address.ip().is_unspecified())
        {
            warn(
                warnings,
                at,
                format!("bind {address}: vipd's control server listens on {control}: skipped"),
            );
        } else if clashes {
            warn(
                warnings,
                at,
                format!(
                    "bind {address}: the port is already bound by an imported frontend (vipd binds a port once): skipped"
                ),
            );
        } else {
            binds.push(*address);
        }
    }
    binds
}

/// A backend no imported frontend sends to is kept, with a warning.
fn warn_unused_backends(draft: &Draft, warnings: &mut Vec<ImportWarning>) {
    let used: Vec<String> = draft.frontends.iter().map(|f| f.backend.clone()).collect();
    for backend in &draft.backends {
        if !used.contains(&backend.name) {
            warn(
                warnings,
                &backend.from,
                format!(
                    "backend {} is used by no imported frontend: kept unused",
                    backend.name
                ),
            );
        }
    }
}
