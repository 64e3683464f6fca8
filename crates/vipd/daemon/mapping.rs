//! From the YAML model (vipd-config) to the engines' own types: the VRRP router's configuration
//! and the proxy's. Field for field; every value was validated by vipd-config already, so the
//! only errors here are what validation cannot know (the interface's address at run time).

use std::net::IpAddr;

use anyhow::{Context, Result};
use vipd_config::{Config, VrrpInstance};
use vipd_vrrp::{Auth, ChecksumForm, GarpSchedule, Priority, RouterConfig, Version, Vrid};

/// The router configuration of `instance`, whose adverts leave from `primary_address`.
pub fn router_config(instance: &VrrpInstance, primary_address: IpAddr) -> Result<RouterConfig> {
    let vrid =
        Vrid::try_from(instance.vrid).with_context(|| format!("vrrp {}: vrid", instance.name))?;
    let auth = match &instance.auth_password {
        Some(password) => Auth::simple_password(password.as_bytes())
            .with_context(|| format!("vrrp {}: auth_password", instance.name))?,
        None => Auth::None,
    };
    Ok(RouterConfig {
        vrid,
        version: match instance.version {
            vipd_config::VrrpVersion::V2 => Version::V2,
            vipd_config::VrrpVersion::V3 => Version::V3,
        },
        priority: Priority::new(instance.priority),
        advert_interval: instance.advert_interval,
        preempt: instance.preempt,
        preempt_delay: instance.preempt_delay,
        primary_address,
        // Adverts carry the VIPs of the advertised family only (docs/configuration.md allows a v3 instance
        // to hold both families; the router's address list is one family by RFC 9568 5.2.9).
        vips: instance
            .advertised_vips()
            .map(|vip| vip.address.addr())
            .collect(),
        auth,
        garp: GarpSchedule {
            repeat: instance.garp.repeat,
            delay: Some(instance.garp.delay),
            refresh: instance.garp.refresh,
        },
    })
}

/// The checksum form of v3 adverts over IPv4.
pub fn checksum_form(instance: &VrrpInstance) -> ChecksumForm {
    match instance.checksum {
        vipd_config::V3Checksum::WithPseudoHeader => ChecksumForm::WithPseudoHeader,
        vipd_config::V3Checksum::MessageOnly => ChecksumForm::MessageOnly,
    }
}

/// The interface an instance's VIPs live on unless they name another, and its announcements
/// (GARP / NA) leave from: the macvlan with a virtual MAC, so that the LAN learns the virtual MAC
/// for them; else the instance's interface.
pub fn vip_interface(instance: &VrrpInstance) -> &str {
    instance
        .virtual_mac
        .as_ref()
        .map_or(instance.interface.as_str(), |virtual_mac| {
            virtual_mac.interface.as_str()
        })
}

/// The VIPs of `instance` as the address manager takes them.
pub fn vips(instance: &VrrpInstance) -> Vec<vipd_net::Vip> {
    instance
        .vips
        .iter()
        .map(|vip| vipd_net::Vip {
            interface: vip.interface.clone(),
            address: vip.address.addr(),
            prefix_len: vip.address.prefix_len(),
            label: vip.label.clone(),
            route_metric: None,
        })
        .collect()
}

fn tcp_keepalive(keepalive: vipd_config::TcpKeepalive) -> vipd_proxy::TcpKeepalive {
    vipd_proxy::TcpKeepalive {
        idle: keepalive.idle,
        interval: keepalive.interval,
        count: keepalive.count,
        user_timeout: keepalive.user_timeout,
    }
}

/// The proxy's configuration: every frontend and backend of the file.
// Starting from the proxy's defaults keeps its settings that vipd.yaml does not expose yet.
#[allow(clippy::field_reassign_with_default)]
pub fn proxy_config(config: &Config) -> vipd_proxy::ProxyConfig {
    use vipd_proxy as proxy;
    let frontends = config
        .frontends
        .iter()
        .map(|frontend| proxy::FrontendConfig {
            name: frontend.name.clone(),
            bind: frontend.bind.clone(),
            backend: frontend.backend.clone(),
            accept_proxy: frontend.accept_proxy,
            max_connections: widen(
                frontend
                    .max_connections
                    .unwrap_or(vipd_config::defaults::FRONTEND_MAX_CONNECTIONS),
            ),
            tcp_keepalive: frontend.tcp_keepalive.map(tcp_keepalive),
            proxy_header_timeout: frontend.proxy_header_timeout,
        })
        .collect();
    let backends = config.backends.iter().map(backend_config).collect();
    let mut mapped = proxy::ProxyConfig::default();
    mapped.frontends = frontends;
    mapped.backends = backends;
    mapped.max_connections = widen(config.max_connections);
    mapped.pipe_memory = match config.pipe_memory {
        vipd_config::PipeMemory::Percent(percent) => proxy::PipeMemory::ShareOfRam(percent),
        vipd_config::PipeMemory::Bytes(bytes) => proxy::PipeMemory::Bytes(bytes),
    };
    mapped
}

/// One `backends:` entry.
fn backend_config(backend: &vipd_config::Backend) -> vipd_proxy::BackendConfig {
    use vipd_proxy as proxy;
    let check = health_check(&backend.health);
    let mut mapped = proxy::BackendConfig::new(
        backend.name.clone(),
        backend
            .servers
            .iter()
            .map(|server| proxy::ServerConfig {
                name: server.name.clone(),
                address: server.address,
                weight: server.weight,
                backup: server.backup,
                max_connections: server.max_connections.map(widen),
                check_address: server.check_address,
            })
            .collect(),
    );
    mapped.balance = match backend.balance {
        vipd_config::Balance::RoundRobin => proxy::Balance::RoundRobin,
        vipd_config::Balance::LeastConn => proxy::Balance::LeastConn,
        vipd_config::Balance::Source => proxy::Balance::Source,
        vipd_config::Balance::Random => proxy::Balance::Random,
    };
    mapped.send_proxy = match backend.send_proxy {
        vipd_config::ProxyProtocol::None => proxy::ProxyProtocol::None,
        vipd_config::ProxyProtocol::V1 => proxy::ProxyProtocol::V1,
        vipd_config::ProxyProtocol::V2 => proxy::ProxyProtocol::V2,
    };
    mapped.retries = backend.retries;
    mapped.on_server_down = match backend.on_server_down {
        vipd_config::OnServerDown::KeepSessions => proxy::OnServerDown::KeepSessions,
        vipd_config::OnServerDown::ShutdownSessions => proxy::OnServerDown::ShutdownSessions,
    };
    mapped.timeout = proxy::Timeouts {
        connect: backend.timeout.connect,
        idle: backend.timeout.idle,
        tunnel: backend.timeout.tunnel,
        fin: backend.timeout.fin,
        queue: Some(backend.timeout.queue),
    };
    mapped.health = Some(check);
    mapped.max_queue = widen(backend.max_queue);
    mapped.tcp_keepalive = backend.tcp_keepalive.map(tcp_keepalive);
    mapped.slow_start = backend.slow_start;
    mapped
}

/// `health` of a backend.
fn health_check(health: &vipd_config::HealthCheck) -> vipd_proxy::HealthCheckConfig {
    use vipd_proxy as proxy;
    let (kind, http) = match &health.kind {
        vipd_config::HealthKind::Tcp => (proxy::HealthCheckKind::Tcp, None),
        vipd_config::HealthKind::Http(http) => (proxy::HealthCheckKind::Http, Some(http)),
        vipd_config::HealthKind::Https { http, tls_verify } => (
            proxy::HealthCheckKind::Https {
                tls_verify: match tls_verify {
                    vipd_config::TlsVerify::None => proxy::TlsVerify::None,
                    vipd_config::TlsVerify::CaFile(path) => proxy::TlsVerify::CaFile(path.clone()),
                },
            },
            Some(http),
        ),
    };
    let mut check = proxy::HealthCheckConfig::new(kind);
    if let Some(http) = http {
        check.path.clone_from(&http.path);
        check.expect_status.clone_from(&http.expect_status);
        check.host.clone_from(&http.host);
    }
    check.interval = health.interval;
    check.timeout = health.timeout;
    check.rise = health.rise;
    check.fall = health.fall;
    check.initially_up = health.initially_up;
    check.error_limit = health.error_limit;
    map_check_options(&health.options, &mut check);
    check
}

/// `health` options of real clusters (docs/design/proxy.md, Checks of real clusters).
fn map_check_options(
    options: &vipd_config::CheckOptions,
    check: &mut vipd_proxy::HealthCheckConfig,
) {
    check.port = options.port;
    check.send_proxy = options.send_proxy.map(proxy_protocol);
    check.headers.clone_from(&options.headers);
    check
        .bearer_token_file
        .clone_from(&options.bearer_token_file);
    check.client_certificate =
        options
            .client_certificate
            .as_ref()
            .map(|client| vipd_proxy::ClientCertificate {
                certificate_file: client.certificate_file.clone(),
                key_file: client.key_file.clone(),
            });
    check.sni.clone_from(&options.sni);
    check.jitter_percent = options.jitter_percent;
}

fn proxy_protocol(protocol: vipd_config::ProxyProtocol) -> vipd_proxy::ProxyProtocol {
    match protocol {
        vipd_config::ProxyProtocol::None => vipd_proxy::ProxyProtocol::None,
        vipd_config::ProxyProtocol::V1 => vipd_proxy::ProxyProtocol::V1,
        vipd_config::ProxyProtocol::V2 => vipd_proxy::ProxyProtocol::V2,
    }
}

fn widen(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_options_of_real_clusters_reach_the_proxy() {
        let text = "\
node: lb1
frontends:
  - { name: ingress, bind: [\"198.51.100.50:443\"], backend: ingress }
backends:
  - name: ingress
    send_proxy: v2
    health:
      kind: https
      port: 10254
      send_proxy: v1
      headers: { X-Probe: vipd }
      bearer_token_file: /run/token
      client_certificate: /etc/pki/client.pem
      sni: ingress.test
      jitter_percent: 20
    servers:
      - { name: n1, address: \"198.51.100.21:443\", check_address: 198.51.100.31 }
";
        let (config, _) = Config::from_yaml_str(text).unwrap();
        let mapped = proxy_config(&config);
        let backend = &mapped.backends[0];
        let check = backend.health.as_ref().unwrap();
        assert_eq!(check.port, Some(10254));
        assert_eq!(check.send_proxy, Some(vipd_proxy::ProxyProtocol::V1));
        assert_eq!(check.headers, vec![("X-Probe".into(), "vipd".into())]);
        assert_eq!(check.bearer_token_file, Some("/run/token".into()));
        assert_eq!(
            check.client_certificate,
            Some(vipd_proxy::ClientCertificate {
                certificate_file: "/etc/pki/client.pem".into(),
                key_file: None,
            })
        );
        assert_eq!(check.sni.as_deref(), Some("ingress.test"));
        assert_eq!(check.jitter_percent, 20);
        assert_eq!(
            backend.servers[0].check_address,
            Some("198.51.100.31".parse().unwrap())
        );
    }
}
