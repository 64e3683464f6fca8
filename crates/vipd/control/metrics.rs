//! `GET /metrics`: the status snapshot in the OpenMetrics text format (prometheus-client).
//!
//! Every scrape builds a fresh registry from one [`NodeStatus`]: the counters live in the router
//! tasks and the proxy, so the metrics layer keeps no state of its own and cannot drift from
//! `/status`. Names are documented in docs/metrics.md, with their HAProxy and keepalived
//! counterparts; a test keeps the two in step.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::status::{
    BackendStatus, FrontendStatus, Health, InstanceStatus, NodeStatus, ServerAdmin, ServerStatus,
    TrackerState, VrrpState,
};

/// What Prometheus is told the body is: the format prometheus-client writes (ends in `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// One metric of a table: name, help text, and how to read its value from a status entry.
type Column<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Registers metric families on a registry that lives for one scrape.
struct Exposition {
    registry: Registry,
}

impl Exposition {
    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge<u64, AtomicU64>> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    fn seconds(&mut self, name: &str, help: &str) -> Family<Labels, Gauge<f64, AtomicU64>> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A counter; the encoder appends `_total` to `name`.
    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter<u64, AtomicU64>> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A counter of seconds; the encoder appends `_total` to `name`.
    fn seconds_counter(
        &mut self,
        name: &str,
        help: &str,
    ) -> Family<Labels, Counter<f64, AtomicU64>> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }
}

/// The OpenMetrics text for `status`.
pub fn render(status: &NodeStatus) -> String {
    let mut exposition = Exposition {
        registry: Registry::default(),
    };
    node_metrics(&mut exposition, status);
    vrrp_metrics(&mut exposition, &status.instances);
    frontend_metrics(&mut exposition, &status.frontends);
    backend_metrics(&mut exposition, &status.backends);
    server_metrics(&mut exposition, &status.backends);
    let mut text = String::new();
    encode(&mut text, &exposition.registry)
        .expect("formatting into a String cannot fail and every label value is escaped");
    text
}

fn node_metrics(exposition: &mut Exposition, status: &NodeStatus) {
    exposition
        .gauge(
            "vipd_build_info",
            "Always 1; the labels name this node and the vipd version.",
        )
        .get_or_create(&vec![
            ("node", status.node.clone()),
            ("version", status.version.clone()),
        ])
        .set(1);
    let uptime = Gauge::<u64, AtomicU64>::default();
    uptime.set(status.uptime_seconds);
    exposition.registry.register(
        "vipd_uptime_seconds",
        "Seconds since the daemon started.",
        uptime,
    );
}

fn vrrp_metrics(exposition: &mut Exposition, instances: &[InstanceStatus]) {
    let state = exposition.gauge(
        "vipd_vrrp_state",
        "1 for the state the instance is in, 0 for the others (initialize, backup, master, fault).",
    );
    let maintenance = exposition.gauge(
        "vipd_vrrp_maintenance",
        "1 while an operator holds the instance in maintenance.",
    );
    let configured = exposition.gauge(
        "vipd_vrrp_configured_priority",
        "Priority from the configuration.",
    );
    let effective = exposition.gauge(
        "vipd_vrrp_effective_priority",
        "Priority advertised now: configured priority adjusted by the trackers.",
    );
    let vips = exposition.gauge(
        "vipd_vrrp_vips",
        "Number of virtual addresses configured on the instance.",
    );
    let master_priority = exposition.gauge(
        "vipd_vrrp_master_priority",
        "Priority of the last master heard (absent when none was heard).",
    );
    let tracker_up = exposition.gauge(
        "vipd_vrrp_tracker_up",
        "1 when the tracker does not lower the priority (file trackers: 1 unless down).",
    );
    let counters: [Column<InstanceStatus>; 8] = [
        ("vipd_vrrp_adverts_sent", "Advertisements sent.", |i| {
            i.counters.adverts_sent
        }),
        (
            "vipd_vrrp_adverts_received",
            "Valid advertisements received.",
            |i| i.counters.adverts_received,
        ),
        (
            "vipd_vrrp_adverts_dropped",
            "Advertisements dropped as invalid.",
            |i| i.counters.adverts_dropped,
        ),
        ("vipd_vrrp_became_master", "Transitions to master.", |i| {
            i.counters.became_master
        }),
        (
            "vipd_vrrp_two_masters_seen",
            "Advertisements from another master received while master.",
            |i| i.counters.two_masters_seen,
        ),
        (
            "vipd_vrrp_priority_zero_sent",
            "Priority-0 advertisements sent (releases).",
            |i| i.counters.priority_zero_sent,
        ),
        (
            "vipd_vrrp_priority_zero_received",
            "Priority-0 advertisements received (the master released).",
            |i| i.counters.priority_zero_received,
        ),
        (
            "vipd_vrrp_vips_restored",
            "Virtual addresses removed by someone else while master and put back.",
            |i| i.counters.vips_restored,
        ),
    ];
    for instance in instances {
        let labels = vec![("instance", instance.name.clone())];
        for candidate in VrrpState::ALL {
            let mut with_state = labels.clone();
            with_state.push(("state", candidate.as_str().to_owned()));
            state
                .get_or_create(&with_state)
                .set(u64::from(candidate == instance.state));
        }
        maintenance
            .get_or_create(&labels)
            .set(u64::from(instance.maintenance));
        configured
            .get_or_create(&labels)
            .set(u64::from(instance.configured_priority));
        effective
            .get_or_create(&labels)
            .set(u64::from(instance.effective_priority));
        vips.get_or_create(&labels)
            .set(u64::try_from(instance.vips.len()).unwrap_or(u64::MAX));
        if let Some(master) = &instance.master {
            master_priority
                .get_or_create(&labels)
                .set(u64::from(master.priority));
        }
        for tracker in &instance.trackers {
            let tracker_labels = vec![
                ("instance", instance.name.clone()),
                ("kind", tracker.kind.as_str().to_owned()),
                ("target", tracker.target.clone()),
            ];
            let up = tracker.state != TrackerState::Down;
            tracker_up.get_or_create(&tracker_labels).set(u64::from(up));
        }
    }
    for (name, help, value) in counters {
        let family = exposition.counter(name, help);
        for instance in instances {
            family
                .get_or_create(&vec![("instance", instance.name.clone())])
                .inc_by(value(instance));
        }
    }
}

fn frontend_metrics(exposition: &mut Exposition, frontends: &[FrontendStatus]) {
    let gauges: [Column<FrontendStatus>; 2] = [
        (
            "vipd_frontend_sessions_current",
            "Sessions open now.",
            |f| f.sessions_current,
        ),
        (
            "vipd_frontend_sessions_limit",
            "Configured maximum of concurrent sessions.",
            |f| f.max_connections,
        ),
    ];
    let counters: [Column<FrontendStatus>; 6] = [
        ("vipd_frontend_sessions", "Sessions accepted.", |f| {
            f.sessions_total
        }),
        (
            "vipd_frontend_bytes_in",
            "Bytes from clients to servers.",
            |f| f.bytes_in,
        ),
        (
            "vipd_frontend_bytes_out",
            "Bytes from servers to clients.",
            |f| f.bytes_out,
        ),
        (
            "vipd_frontend_bytes_spliced",
            "Of bytes in and out, those moved by splice(2) without entering user space.",
            |f| f.bytes_spliced,
        ),
        (
            "vipd_frontend_proxy_header_errors",
            "Connections closed for a missing, malformed or late PROXY header.",
            |f| f.proxy_header_errors,
        ),
        ("vipd_frontend_accept_errors", "accept(2) failures.", |f| {
            f.accept_errors
        }),
    ];
    for (name, help, value) in gauges {
        let family = exposition.gauge(name, help);
        for frontend in frontends {
            family
                .get_or_create(&vec![("frontend", frontend.name.clone())])
                .set(value(frontend));
        }
    }
    for (name, help, value) in counters {
        let family = exposition.counter(name, help);
        for frontend in frontends {
            family
                .get_or_create(&vec![("frontend", frontend.name.clone())])
                .inc_by(value(frontend));
        }
    }
}

fn backend_metrics(exposition: &mut Exposition, backends: &[BackendStatus]) {
    let gauges: [Column<BackendStatus>; 5] = [
        (
            "vipd_backend_up",
            "1 when at least one server takes new sessions.",
            |b| u64::from(b.servers_usable > 0),
        ),
        (
            "vipd_backend_servers_up",
            "Servers whose health check passes.",
            |b| b.servers_up,
        ),
        (
            "vipd_backend_servers_usable",
            "Servers that take new sessions now.",
            |b| b.servers_usable,
        ),
        ("vipd_backend_sessions_current", "Sessions open now.", |b| {
            b.sessions_current
        }),
        (
            "vipd_backend_queue_current",
            "Sessions waiting for a server.",
            |b| b.queue_current,
        ),
    ];
    let counters: [Column<BackendStatus>; 7] = [
        (
            "vipd_backend_sessions",
            "Sessions handed to the backend.",
            |b| b.sessions_total,
        ),
        (
            "vipd_backend_bytes_in",
            "Bytes from clients to servers.",
            |b| b.bytes_in,
        ),
        (
            "vipd_backend_bytes_out",
            "Bytes from servers to clients.",
            |b| b.bytes_out,
        ),
        (
            "vipd_backend_connect_errors",
            "Failed connection attempts to servers.",
            |b| b.connect_errors,
        ),
        (
            "vipd_backend_retries",
            "Connection attempts retried.",
            |b| b.retries,
        ),
        (
            "vipd_backend_redispatches",
            "Sessions moved to another server after failures.",
            |b| b.redispatches,
        ),
        (
            "vipd_backend_refused",
            "Sessions closed without a server: none usable, queue full or queue timeout.",
            |b| b.refused,
        ),
    ];
    for (name, help, value) in gauges {
        let family = exposition.gauge(name, help);
        for backend in backends {
            family
                .get_or_create(&vec![("backend", backend.name.clone())])
                .set(value(backend));
        }
    }
    for (name, help, value) in counters {
        let family = exposition.counter(name, help);
        for backend in backends {
            family
                .get_or_create(&vec![("backend", backend.name.clone())])
                .inc_by(value(backend));
        }
    }
}

fn server_metrics(exposition: &mut Exposition, backends: &[BackendStatus]) {
    let servers = || {
        backends.iter().flat_map(|backend| {
            backend.servers.iter().map(move |server| {
                (
                    vec![
                        ("backend", backend.name.clone()),
                        ("server", server.name.clone()),
                    ],
                    server,
                )
            })
        })
    };
    let gauges: [Column<ServerStatus>; 4] = [
        ("vipd_server_up", "1 when the health check passes.", |s| {
            u64::from(s.health == Health::Up)
        }),
        (
            "vipd_server_weight",
            "Effective weight (0 while draining or in maintenance).",
            |s| u64::from(s.weight),
        ),
        ("vipd_server_sessions_current", "Sessions open now.", |s| {
            s.sessions_current
        }),
        (
            "vipd_server_backup",
            "1 for a backup server (used only when no primary is).",
            |s| u64::from(s.backup),
        ),
    ];
    let counters: [Column<ServerStatus>; 8] = [
        (
            "vipd_server_sessions",
            "Sessions sent to the server.",
            |s| s.sessions_total,
        ),
        (
            "vipd_server_bytes_in",
            "Bytes from clients to the server.",
            |s| s.bytes_in,
        ),
        (
            "vipd_server_bytes_out",
            "Bytes from the server to clients.",
            |s| s.bytes_out,
        ),
        (
            "vipd_server_connect_errors",
            "Failed connection attempts.",
            |s| s.connect_errors,
        ),
        ("vipd_server_retries", "Connection attempts retried.", |s| {
            s.retries
        }),
        (
            "vipd_server_check_successes",
            "Health checks passed.",
            |s| s.check_successes,
        ),
        ("vipd_server_check_failures", "Health checks failed.", |s| {
            s.check_failures
        }),
        ("vipd_server_check_up_down", "Up/down transitions.", |s| {
            s.transitions
        }),
    ];
    for (name, help, value) in gauges {
        let family = exposition.gauge(name, help);
        for (labels, server) in servers() {
            family.get_or_create(&labels).set(value(server));
        }
    }
    for (name, help, value) in counters {
        let family = exposition.counter(name, help);
        for (labels, server) in servers() {
            family.get_or_create(&labels).inc_by(value(server));
        }
    }
    let admin = exposition.gauge(
        "vipd_server_admin_state",
        "1 for the administrative state the server is in, 0 for the others (ready, drain, maintenance).",
    );
    let limit = exposition.gauge(
        "vipd_server_sessions_limit",
        "Configured maximum of concurrent sessions (absent when unlimited).",
    );
    let time_in_state = exposition.seconds(
        "vipd_server_check_last_change_seconds",
        "Seconds since the last up/down transition (or since the server was configured).",
    );
    let downtime =
        exposition.seconds_counter("vipd_server_downtime_seconds", "Total seconds spent down.");
    for (labels, server) in servers() {
        for candidate in ServerAdmin::ALL {
            let mut with_state = labels.clone();
            with_state.push(("state", candidate.as_str().to_owned()));
            admin
                .get_or_create(&with_state)
                .set(u64::from(candidate == server.admin));
        }
        if let Some(max) = server.max_connections {
            limit.get_or_create(&labels).set(max);
        }
        time_in_state
            .get_or_create(&labels)
            .set(server.time_in_state_seconds);
        downtime
            .get_or_create(&labels)
            .inc_by(server.downtime_seconds);
    }
}
