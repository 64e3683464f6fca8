//! A section of haproxy.cfg (`defaults`, `frontend`, `backend`, `listen`) as read, with what
//! it inherited from the `defaults` before it; and the options of its `server` lines.

use std::net::SocketAddr;
use std::time::Duration;

use super::keepalive::KeepaliveSide;
use crate::Location;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

/// Server options, as on a `server` line or inherited from `default-server`.
#[derive(Clone, Debug, Default)]
pub(super) struct ServerOptions {
    pub(super) weight: Option<u32>,
    pub(super) backup: bool,
    pub(super) check: bool,
    pub(super) inter: Option<Duration>,
    pub(super) rise: Option<u32>,
    pub(super) fall: Option<u32>,
    pub(super) maxconn: Option<u32>,
    pub(super) maxqueue: Option<u32>,
    /// `slowstart TIME`: vipd ramps per backend (`slow_start`).
    pub(super) slowstart: Option<std::time::Duration>,
    pub(super) send_proxy: Option<&'static str>,
    pub(super) disabled: bool,
    /// Checks over TLS: `check-ssl`, or `ssl` without `no-check-ssl`.
    pub(super) check_ssl: bool,
    pub(super) ssl: bool,
    pub(super) no_check_ssl: bool,
    pub(super) verify_none: bool,
    pub(super) ca_file: Option<String>,
    pub(super) shutdown_sessions: bool,
    /// `observe layer4`: connection errors of client traffic feed the server's health.
    pub(super) observe_layer4: bool,
    /// `error-limit N`: consecutive errors before `on-error` applies (HAProxy's default 10).
    pub(super) error_limit: Option<u32>,
    /// `on-error ACTION` (HAProxy's default `fastinter`).
    pub(super) on_error: Option<String>,
    /// `port`, `addr`, `check-send-proxy`, `check-sni`, `crt`: where and how checks go.
    pub(super) check_port: Option<u16>,
    pub(super) check_addr: Option<std::net::IpAddr>,
    pub(super) check_send_proxy: bool,
    pub(super) check_sni: Option<String>,
    pub(super) crt: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct ServerLine {
    pub(super) at: Location,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) options: ServerOptions,
}

/// The settings of a section, with what it inherited from the `defaults` before it.
#[derive(Clone, Debug)]
pub(super) struct Section {
    pub(super) kind: Kind,
    pub(super) name: String,
    pub(super) at: Location,
    pub(super) http_mode: Option<Location>,
    pub(super) binds: Vec<(SocketAddr, Location)>,
    pub(super) accept_proxy: bool,
    pub(super) maxconn: Option<u32>,
    pub(super) backend: Option<(String, Location)>,
    pub(super) balance: Option<&'static str>,
    pub(super) timeout_connect: Option<Duration>,
    pub(super) timeout_client: Option<Duration>,
    pub(super) timeout_server: Option<Duration>,
    pub(super) timeout_tunnel: Option<Duration>,
    pub(super) timeout_client_fin: Option<Duration>,
    pub(super) timeout_server_fin: Option<Duration>,
    pub(super) timeout_check: Option<Duration>,
    pub(super) timeout_queue: Option<Duration>,
    pub(super) retries: Option<u32>,
    pub(super) http_check: Option<HttpCheck>,
    /// `http-check connect ssl`: the checks use TLS whatever the server lines say.
    pub(super) check_connect_ssl: bool,
    pub(super) expect_status: Option<Vec<u16>>,
    pub(super) default_server: ServerOptions,
    pub(super) servers: Vec<ServerLine>,
    pub(super) client_keepalive: KeepaliveSide,
    pub(super) server_keepalive: KeepaliveSide,
}

#[derive(Clone, Debug, Default)]
pub(super) struct HttpCheck {
    pub(super) path: Option<String>,
    pub(super) host: Option<String>,
    /// Headers other than Host, in order.
    pub(super) headers: Vec<(String, String)>,
}

impl Section {
    pub(super) fn new(kind: Kind, name: String, at: Location) -> Self {
        Self {
            kind,
            name,
            at,
            http_mode: None,
            binds: Vec::new(),
            accept_proxy: false,
            maxconn: None,
            backend: None,
            balance: None,
            timeout_connect: None,
            timeout_client: None,
            timeout_server: None,
            timeout_tunnel: None,
            timeout_client_fin: None,
            timeout_server_fin: None,
            timeout_check: None,
            timeout_queue: None,
            retries: None,
            http_check: None,
            check_connect_ssl: false,
            expect_status: None,
            default_server: ServerOptions::default(),
            servers: Vec::new(),
            client_keepalive: KeepaliveSide::default(),
            server_keepalive: KeepaliveSide::default(),
        }
    }

    /// A new proxy section starting from the current `defaults` (HAProxy copies them in).
    pub(super) fn inherit(defaults: &Section, kind: Kind, name: String, at: Location) -> Self {
        let mut section = defaults.clone();
        section.kind = kind;
        section.name = name;
        section.at = at;
        section.binds.clear();
        section.backend = None;
        section.servers.clear();
        section
    }

    pub(super) fn is_frontend(&self) -> bool {
        matches!(self.kind, Kind::Frontend | Kind::Listen)
    }

    pub(super) fn is_backend(&self) -> bool {
        matches!(self.kind, Kind::Backend | Kind::Listen)
    }
}

pub(super) fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Defaults => "defaults",
        Kind::Frontend => "frontend",
        Kind::Backend => "backend",
        Kind::Listen => "listen",
    }
}
