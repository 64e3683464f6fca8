//! `frontends` and `backends`: listeners, server pools and their health checks.

use std::net::SocketAddr;
use std::time::Duration;

use super::check_options::is_host_name;
use super::{Checker, MAX_CONNECTIONS};
use crate::defaults::{
    BACKEND_MAX_QUEUE, BACKEND_RETRIES, CHECK_FALL, CHECK_RISE, HEALTH_ERROR_LIMIT,
    HEALTH_EXPECT_STATUS, HEALTH_PATH,
};
use crate::model::{
    Backend, Balance, Control, Frontend, HealthCheck, HealthKind, HttpCheck, OnServerDown,
    ProxyProtocol, Server, Timeouts, TlsVerify,
};
use crate::raw;

/// The Kubernetes apiserver port: a backend on it deserves an HTTPS `/readyz` check.
const APISERVER_PORT: u16 = 6443;

impl Checker<'_> {
    pub(super) fn frontends(
        &mut self,
        frontends: Vec<raw::Frontend>,
        backends: &[Backend],
        control: &Control,
    ) -> Vec<Frontend> {
        let typed: Vec<Frontend> = frontends
            .into_iter()
            .enumerate()
            .map(|(position, frontend)| {
                self.frontend(frontend, backends, &format!("frontends[{position}]"))
            })
            .collect();
        self.unique_names(
            "frontend",
            typed.iter().enumerate().map(|(position, frontend)| {
                (
                    format!("frontends[{position}].name"),
                    frontend.name.as_str(),
                )
            }),
        );
        self.repeated_binds(&typed, control);
        typed
    }

    fn frontend(&mut self, raw: raw::Frontend, backends: &[Backend], path: &str) -> Frontend {
        let name = self.required_name(raw.name, &format!("{path}.name"));
        if raw.bind.is_empty() {
            self.error(
                &format!("{path}.bind"),
                "a frontend needs at least one bind address",
            );
        }
        let bind = raw
            .bind
            .iter()
            .enumerate()
            .filter_map(|(position, text)| {
                self.socket_addr(text, &format!("{path}.bind[{position}]"))
            })
            .collect();
        let backend_path = format!("{path}.backend");
        let backend = self
            .required(raw.backend, &backend_path)
            .unwrap_or_default();
        if !backend.is_empty() && !backends.iter().any(|candidate| candidate.name == backend) {
            self.error(&backend_path, format!("no backend is named `{backend}`"));
        }
        Frontend {
            name,
            bind,
            backend,
            accept_proxy: raw.accept_proxy.unwrap_or(false),
            max_connections: raw.max_connections.map(|limit| {
                self.integer(
                    Some(limit),
                    &format!("{path}.max_connections"),
                    1..=MAX_CONNECTIONS,
                    1u32,
                )
            }),
            tcp_keepalive: self.tcp_keepalive(raw.tcp_keepalive, &format!("{path}.tcp_keepalive")),
            proxy_header_timeout: self.proxy_header_timeout(
                raw.proxy_header_timeout.as_deref(),
                &format!("{path}.proxy_header_timeout"),
            ),
        }
    }

    /// A port used twice: the same address, or a wildcard address (which on Linux takes the
    /// port for every address of both families unless IPV6_V6ONLY is set) and any other.
    fn repeated_binds(&mut self, frontends: &[Frontend], control: &Control) {
        let mut seen: Vec<(SocketAddr, String)> =
            vec![(control.listen, "control.listen".to_owned())];
        for (position, frontend) in frontends.iter().enumerate() {
            for (bind_position, address) in frontend.bind.iter().enumerate() {
                let path = format!("frontends[{position}].bind[{bind_position}]");
                let clash = seen.iter().find(|(other, _)| {
                    other.port() == address.port()
                        && (other.ip() == address.ip()
                            || other.ip().is_unspecified()
                            || address.ip().is_unspecified())
                });
                if let Some((other, other_path)) = clash {
                    let line = self.line_of(other_path);
                    self.error(
                        &path,
                        format!(
                            "port {} is already bound by {other} ({other_path}, line {line})",
                            address.port()
                        ),
                    );
                } else {
                    seen.push((*address, path));
                }
            }
        }
    }

    pub(super) fn backends(&mut self, backends: Vec<raw::Backend>) -> Vec<Backend> {
        let typed: Vec<Backend> = backends
            .into_iter()
            .enumerate()
            .map(|(position, backend)| self.backend(backend, &format!("backends[{position}]")))
            .collect();
        self.unique_names(
            "backend",
            typed.iter().enumerate().map(|(position, backend)| {
                (format!("backends[{position}].name"), backend.name.as_str())
            }),
        );
        typed
    }

    fn backend(&mut self, raw: raw::Backend, path: &str) -> Backend {
        let name = self.required_name(raw.name, &format!("{path}.name"));
        if raw.servers.is_empty() {
            self.error(
                &format!("{path}.servers"),
                "a backend needs at least one server",
            );
        }
        let servers: Vec<Server> = raw
            .servers
            .into_iter()
            .enumerate()
            .map(|(position, server)| self.server(server, &format!("{path}.servers[{position}]")))
            .collect();
        self.repeated_server_addresses(&servers, path);
        self.unique_names(
            "server",
            servers.iter().enumerate().map(|(position, server)| {
                (
                    format!("{path}.servers[{position}].name"),
                    server.name.as_str(),
                )
            }),
        );
        let health = self.health(raw.health.unwrap_or_default(), &format!("{path}.health"));
        self.apiserver_check(&name, &servers, &health, path);
        Backend {
            name,
            balance: match raw.balance {
                None | Some(raw::Balance::RoundRobin) => Balance::RoundRobin,
                Some(raw::Balance::LeastConn) => Balance::LeastConn,
                Some(raw::Balance::Source) => Balance::Source,
                Some(raw::Balance::Random) => Balance::Random,
            },
            send_proxy: match raw.send_proxy {
                None | Some(raw::SendProxy::None) => ProxyProtocol::None,
                Some(raw::SendProxy::V1) => ProxyProtocol::V1,
                Some(raw::SendProxy::V2) => ProxyProtocol::V2,
            },
            retries: self.integer(
                raw.retries,
                &format!("{path}.retries"),
                0..=100,
                BACKEND_RETRIES,
            ),
            on_server_down: match raw.on_server_down {
                None | Some(raw::OnServerDown::KeepSessions) => OnServerDown::KeepSessions,
                Some(raw::OnServerDown::ShutdownSessions) => OnServerDown::ShutdownSessions,
            },
            timeout: self.timeouts(&raw.timeout.unwrap_or_default(), &format!("{path}.timeout")),
            health,
            max_queue: self.integer(
                raw.max_queue,
                &format!("{path}.max_queue"),
                0..=1_000_000,
                BACKEND_MAX_QUEUE,
            ),
            servers,
            tcp_keepalive: self.tcp_keepalive(raw.tcp_keepalive, &format!("{path}.tcp_keepalive")),
            slow_start: raw
                .slow_start
                .as_deref()
                .map(|text| {
                    self.duration(
                        Some(text),
                        &format!("{path}.slow_start"),
                        Duration::ZERO,
                        Duration::ZERO..=Duration::from_secs(3600),
                    )
                })
                .filter(|duration| !duration.is_zero()),
        }
    }

    /// An apiserver (port 6443) speaks HTTPS only: a tcp check keeps a server that is not ready
    /// in rotation, and a plain http check is answered with 400 by every server, ready or not.
    fn apiserver_check(
        &mut self,
        name: &str,
        servers: &[Server],
        health: &HealthCheck,
        path: &str,
    ) {
        let checked_port = |server: &Server| health.options.port.unwrap_or(server.address.port());
        if !servers
            .iter()
            .any(|server| checked_port(server) == APISERVER_PORT)
        {
            return;
        }
        let problem = match health.kind {
            HealthKind::Tcp => {
                "only a tcp check: an apiserver that accepts connections but is not \
                                ready stays in rotation"
            }
            HealthKind::Http(_) => {
                "a plain http check: an apiserver answers HTTP on its TLS port \
                                    with 400, so every server is marked down"
            }
            HealthKind::Https { .. } => return,
        };
        self.warn(
            &format!("{path}.health.kind"),
            format!(
                "backend `{name}` checks port {APISERVER_PORT} with {problem}; use kind: https, \
                 path: /readyz"
            ),
        );
    }

    /// One address under two names is usually a copy-paste slip; it doubles that server's share.
    fn repeated_server_addresses(&mut self, servers: &[Server], path: &str) {
        for (position, server) in servers.iter().enumerate() {
            let earlier = servers[..position]
                .iter()
                .find(|other| other.address == server.address && server.address.port() != 0);
            if let Some(other) = earlier {
                self.warn(
                    &format!("{path}.servers[{position}].address"),
                    format!(
                        "{} is also server `{}`: it gets both servers' share",
                        server.address, other.name
                    ),
                );
            }
        }
    }

    fn server(&mut self, raw: raw::Server, path: &str) -> Server {
        let name = self.required_name(raw.name, &format!("{path}.name"));
        let address_path = format!("{path}.address");
        let address = self
            .required(raw.address, &address_path)
            .and_then(|text| self.socket_addr(&text, &address_path))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        if address.ip().is_unspecified() && address.port() != 0 {
            self.error(
                &address_path,
                format!("{} cannot be connected to", address.ip()),
            );
        }
        Server {
            name,
            address,
            weight: self.integer(raw.weight, &format!("{path}.weight"), 0..=256, 1u32),
            backup: raw.backup.unwrap_or(false),
            max_connections: raw.max_connections.map(|limit| {
                self.integer(
                    Some(limit),
                    &format!("{path}.max_connections"),
                    1..=MAX_CONNECTIONS,
                    1u32,
                )
            }),
            check_address: self.check_address(raw.check_address, &format!("{path}.check_address")),
        }
    }

    fn timeouts(&mut self, raw: &raw::Timeouts, path: &str) -> Timeouts {
        let defaults = Timeouts::default();
        let range = Duration::from_millis(1)..=Duration::from_secs(7 * 86_400);
        let connect = self.duration(
            raw.connect.as_deref(),
            &format!("{path}.connect"),
            defaults.connect,
            range.clone(),
        );
        Timeouts {
            connect,
            idle: self.duration(
                raw.idle.as_deref(),
                &format!("{path}.idle"),
                defaults.idle,
                range.clone(),
            ),
            tunnel: self.duration(
                raw.tunnel.as_deref(),
                &format!("{path}.tunnel"),
                defaults.tunnel,
                range.clone(),
            ),
            fin: raw.fin.as_deref().map(|fin| {
                self.duration(
                    Some(fin),
                    &format!("{path}.fin"),
                    Duration::ZERO,
                    range.clone(),
                )
            }),
            queue: self.duration(
                raw.queue.as_deref(),
                &format!("{path}.queue"),
                connect,
                range,
            ),
        }
    }

    fn health(&mut self, mut raw: raw::Health, path: &str) -> HealthCheck {
        let kind = raw.kind.unwrap_or(raw::HealthKind::Tcp);
        let options = self.check_options(&mut raw, kind, path);
        let http = self.http_fields(&raw, kind, path);
        let tls_verify = match (raw.tls_verify, kind) {
            (None | Some(raw::TlsVerify::None), _) => TlsVerify::None,
            (Some(_), raw::HealthKind::Tcp | raw::HealthKind::Http) => {
                self.error(
                    &format!("{path}.tls_verify"),
                    "tls_verify applies to https checks only",
                );
                TlsVerify::None
            }
            (Some(raw::TlsVerify::CaFile(file)), raw::HealthKind::Https) => {
                let at = format!("{path}.tls_verify.ca_file");
                match self.required(file, &at) {
                    Some(file) => TlsVerify::CaFile(self.absolute_path(&file, &at)),
                    None => TlsVerify::None,
                }
            }
        };
        let (interval, timeout) =
            self.interval_and_timeout(raw.interval.as_deref(), raw.timeout.as_deref(), path);
        HealthCheck {
            kind: match kind {
                raw::HealthKind::Tcp => HealthKind::Tcp,
                raw::HealthKind::Http => HealthKind::Http(http),
                raw::HealthKind::Https => HealthKind::Https { http, tls_verify },
            },
            interval,
            timeout,
            rise: self.integer(raw.rise, &format!("{path}.rise"), 1..=100, CHECK_RISE),
            fall: self.integer(raw.fall, &format!("{path}.fall"), 1..=100, CHECK_FALL),
            initially_up: raw.initially_up.unwrap_or(false),
            error_limit: self.integer(
                raw.error_limit,
                &format!("{path}.error_limit"),
                0..=1000,
                HEALTH_ERROR_LIMIT,
            ),
            options,
        }
    }

    /// `path`, `expect_status` and `host`, which only an http or https check has.
    fn http_fields(&mut self, raw: &raw::Health, kind: raw::HealthKind, path: &str) -> HttpCheck {
        if kind == raw::HealthKind::Tcp {
            for (field, set) in [
                ("path", raw.path.is_some()),
                ("expect_status", raw.expect_status.is_some()),
                ("host", raw.host.is_some()),
            ] {
                if set {
                    self.error(
                        &format!("{path}.{field}"),
                        format!("{field} applies to http and https checks only"),
                    );
                }
            }
        }
        let request_path = raw.path.clone().unwrap_or_else(|| HEALTH_PATH.to_owned());
        if !request_path.starts_with('/')
            || request_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.error(
                &format!("{path}.path"),
                "must start with `/` and contain no spaces",
            );
        }
        let expect_status = match &raw.expect_status {
            None => vec![HEALTH_EXPECT_STATUS],
            Some(codes) if codes.is_empty() => {
                self.error(
                    &format!("{path}.expect_status"),
                    "list at least one status code",
                );
                vec![HEALTH_EXPECT_STATUS]
            }
            Some(codes) => codes
                .iter()
                .enumerate()
                .map(|(position, code)| {
                    self.integer(
                        Some(*code),
                        &format!("{path}.expect_status[{position}]"),
                        100..=599,
                        200u16,
                    )
                })
                .collect(),
        };
        if let Some(host) = &raw.host
            && !is_host_name(host)
        {
            self.error(&format!("{path}.host"), "must be a host name");
        }
        HttpCheck {
            path: request_path,
            expect_status,
            host: raw.host.clone(),
        }
    }
}
