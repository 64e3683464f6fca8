//! `GET /metrics`: the status snapshot in the OpenMetrics text format (prometheus-client).
//!
//! The counters live in the router tasks and the proxy, so the metrics layer keeps no state: each
//! scrape hands one [`NodeStatus`] to a prometheus-client [`Collector`], which writes every family
//! in status order (configuration order), so two scrapes list series the same way. Names are
//! documented in docs/metrics.md with their HAProxy and keepalived counterparts; a test keeps the
//! two in step.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::status::{
    AnnounceStatus, BackendStatus, FrontendStatus, Health, InstanceStatus, NodeStatus,
    ProcessStatus, ProxySummary, ServerAdmin, ServerStatus, SessionTimes, TimeHistogram,
    TrackerState, VrrpState,
};

/// What Prometheus is told the body is: the format prometheus-client writes (ends in `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// One metric of a table: name, help text, and how to read its value from a status entry.
type Column<T> = (&'static str, &'static str, fn(&T) -> u64);

/// One histogram of a backend's times: name, help text, and which of the times it is.
type TimeColumn = (
    &'static str,
    &'static str,
    fn(&SessionTimes) -> &TimeHistogram,
);

/// A histogram series: labels, `(le, count)` buckets, and the histogram (for sum and count).
type HistogramSeries<'a> = (Labels, Vec<(f64, u64)>, &'a TimeHistogram);

/// A sample's value: a count, or seconds (fractional).
#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    Seconds(f64),
}

/// The OpenMetrics text for `status`.
pub fn render(status: NodeStatus) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(status)));
    let mut text = String::new();
    encode(&mut text, &registry)
        .expect("formatting into a String cannot fail and every label value is escaped");
    text
}

#[derive(Debug)]
struct Snapshot(NodeStatus);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let status = &self.0;
        node_metrics(&mut encoder, status)?;
        process_metrics(&mut encoder, &status.process)?;
        reload_metrics(&mut encoder, status)?;
        proxy_metrics(&mut encoder, status)?;
        vrrp_metrics(&mut encoder, &status.instances)?;
        announce_metrics(&mut encoder, &status.announce)?;
        frontend_metrics(&mut encoder, &status.frontends)?;
        backend_metrics(&mut encoder, &status.backends)?;
        server_metrics(&mut encoder, &status.backends)
    }
}

/// Writes one family; counters get `_total` appended by the encoder. A family without series
/// is left out; one series without labels is written without braces.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels, Value)>,
) -> fmt::Result {
    let series: Vec<(Labels, Value)> = series.into_iter().collect();
    if series.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    if let [(labels, value)] = series.as_slice()
        && labels.is_empty()
    {
        return write_value(metric_type, *value, metric);
    }
    for (labels, value) in &series {
        write_value(metric_type, *value, metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one histogram family. A histogram whose buckets do not match
/// [`vipd_proxy::TIME_BUCKET_BOUNDS`] (a status from another version) is left out rather than
/// written with wrong bounds.
fn histogram_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, &'a TimeHistogram)>,
) -> fmt::Result {
    let series: Vec<HistogramSeries> = series
        .into_iter()
        .filter_map(|(labels, histogram)| {
            let buckets = histogram_buckets(histogram)?;
            Some((labels, buckets, histogram))
        })
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, buckets, histogram) in &series {
        metric.encode_family(labels)?.encode_histogram::<Labels>(
            histogram.sum_seconds,
            histogram.count,
            buckets,
            None,
        )?;
    }
    Ok(())
}

/// `(le in seconds, count)` per bucket, not cumulative (the encoder adds them up), ending
/// with `+Inf`.
fn histogram_buckets(histogram: &TimeHistogram) -> Option<Vec<(f64, u64)>> {
    let bounds = vipd_proxy::TIME_BUCKET_BOUNDS;
    if histogram.bucket_counts.len() != bounds.len() + 1 {
        return None;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "the bounds are at most 3.6e9 microseconds, exact in f64"
    )]
    let upper_bounds = bounds
        .iter()
        .map(|&micros| micros as f64 / 1e6)
        .chain([f64::INFINITY]);
    Some(
        upper_bounds
            .zip(histogram.bucket_counts.iter().copied())
            .collect(),
    )
}

fn write_value(
    metric_type: MetricType,
    value: Value,
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
) -> fmt::Result {
    match (metric_type, value) {
        (MetricType::Counter, Value::Count(count)) => ConstCounter::new(count).encode(encoder),
        (MetricType::Counter, Value::Seconds(seconds)) => {
            ConstCounter::new(seconds).encode(encoder)
        }
        (_, Value::Count(count)) => ConstGauge::new(count).encode(encoder),
        (_, Value::Seconds(seconds)) => ConstGauge::new(seconds).encode(encoder),
    }
}

/// Writes each column of `table` as a family over `items`.
fn table<T>(
    encoder: &mut DescriptorEncoder,
    metric_type: MetricType,
    table: &[Column<T>],
    items: &[T],
    labels: impl Fn(&T) -> Labels,
) -> fmt::Result {
    for (name, help, read) in table {
        let series = items
            .iter()
            .map(|item| (labels(item), Value::Count(read(item))));
        family(encoder, name, help, metric_type, series)?;
    }
    Ok(())
}

fn node_metrics(encoder: &mut DescriptorEncoder, status: &NodeStatus) -> fmt::Result {
    let info = vec![
        ("node", status.node.clone()),
        ("version", status.version.clone()),
        ("revision", status.revision.clone()),
    ];
    family(
        encoder,
        "vipd_build_info",
        "Always 1; the labels name this node, the vipd version and the source revision.",
        MetricType::Gauge,
        [(info, Value::Count(1))],
    )?;
    family(
        encoder,
        "vipd_uptime_seconds",
        "Seconds since the daemon started.",
        MetricType::Gauge,
        [(Labels::new(), Value::Count(status.uptime_seconds))],
    )
}

/// Prometheus's standard process metrics, under their standard names (client libraries of other
/// languages export the same), so that existing dashboards and alerts apply.
fn process_metrics(encoder: &mut DescriptorEncoder, process: &ProcessStatus) -> fmt::Result {
    let gauges = [
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors (the soft RLIMIT_NOFILE).",
            process.max_fds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_memory_bytes,
        ),
    ];
    for (name, help, value) in gauges {
        let series = value.map(|value| (Labels::new(), Value::Count(value)));
        family(encoder, name, help, MetricType::Gauge, series)?;
    }
    family(
        encoder,
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        MetricType::Counter,
        process
            .cpu_seconds
            .map(|seconds| (Labels::new(), Value::Seconds(seconds))),
    )?;
    family(
        encoder,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge,
        [(
            Labels::new(),
            Value::Seconds(process.start_time_unix_seconds),
        )],
    )
}

/// Prometheus' own names for its configuration reloads, so that alerts written for Prometheus
/// and Alertmanager (`..._config_last_reload_successful == 0`) work unchanged.
fn reload_metrics(encoder: &mut DescriptorEncoder, status: &NodeStatus) -> fmt::Result {
    let Some(last) = &status.last_reload else {
        return Ok(());
    };
    family(
        encoder,
        "vipd_config_last_reload_successful",
        "1 when the last configuration load applied the whole file, 0 when it was rejected or applied in part.",
        MetricType::Gauge,
        [(Labels::new(), Value::Count(u64::from(last.ok)))],
    )?;
    family(
        encoder,
        "vipd_config_last_reload_success_timestamp_seconds",
        "When the configuration was last loaded in full (start-up counts), seconds since the Unix epoch.",
        MetricType::Gauge,
        [(
            Labels::new(),
            Value::Seconds(status.last_successful_reload_at_unix_seconds),
        )],
    )
}

fn proxy_metrics(encoder: &mut DescriptorEncoder, status: &NodeStatus) -> fmt::Result {
    family(
        encoder,
        "vipd_proxy_sessions_current",
        "Proxy sessions open now, all frontends together.",
        MetricType::Gauge,
        [(Labels::new(), Value::Count(status.proxy.sessions_current))],
    )?;
    family(
        encoder,
        "vipd_proxy_sessions_limit",
        "The proxy's global maximum of concurrent sessions.",
        MetricType::Gauge,
        [(Labels::new(), Value::Count(status.proxy.max_connections))],
    )?;
    family(
        encoder,
        "vipd_proxy_sessions_limit_in_force",
        "The global limit in force: above the configured one after a reload lowered it while more sessions were open.",
        MetricType::Gauge,
        [(
            Labels::new(),
            Value::Count(status.proxy.max_connections_in_force),
        )],
    )?;
    pipe_metrics(encoder, &status.proxy)
}

fn pipe_metrics(encoder: &mut DescriptorEncoder, proxy: &ProxySummary) -> fmt::Result {
    let families = [
        (
            "vipd_proxy_pipes",
            "Pipes open for splicing: pooled, or held by a streaming direction.",
            MetricType::Gauge,
            proxy.pipes,
        ),
        (
            "vipd_proxy_pipe_grown_bytes",
            "Capacity beyond 64 KiB that streaming sessions' grown pipes hold now.",
            MetricType::Gauge,
            proxy.pipe_grown_bytes,
        ),
        (
            "vipd_proxy_pipe_budget_bytes",
            "The budget in force for grown pipes: pipe_memory, within the kernel's per-user pipe limit.",
            MetricType::Gauge,
            proxy.pipe_budget_bytes,
        ),
        (
            "vipd_proxy_pipe_growth_refused",
            "Streams whose pipe could not grow (the budget was spent or the kernel refused); each goes on at its size.",
            MetricType::Counter,
            proxy.pipe_growth_refused,
        ),
    ];
    for (name, help, kind, value) in families {
        family(
            encoder,
            name,
            help,
            kind,
            [(Labels::new(), Value::Count(value))],
        )?;
    }
    Ok(())
}

const INSTANCE_GAUGES: [Column<InstanceStatus>; 4] = [
    (
        "vipd_vrrp_maintenance",
        "1 while an operator holds the instance in maintenance.",
        |i| u64::from(i.maintenance),
    ),
    (
        "vipd_vrrp_configured_priority",
        "Priority from the configuration.",
        |i| u64::from(i.configured_priority),
    ),
    (
        "vipd_vrrp_effective_priority",
        "Priority advertised now: configured priority adjusted by the trackers.",
        |i| u64::from(i.effective_priority),
    ),
    (
        "vipd_vrrp_vips",
        "Number of virtual addresses configured on the instance.",
        |i| u64::try_from(i.vips.len()).unwrap_or(u64::MAX),
    ),
];

const INSTANCE_COUNTERS: [Column<InstanceStatus>; 13] = [
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
        "Advertisements dropped as invalid, every reason together (other VRIDs are not drops).",
        |i| i.counters.adverts_dropped,
    ),
    (
        "vipd_vrrp_adverts_other_vrid",
        "Advertisements of other virtual routers (another VRID) on the same LAN.",
        |i| i.counters.adverts_other_vrid,
    ),
    ("vipd_vrrp_became_master", "Transitions to master.", |i| {
        i.counters.became_master
    }),
    (
        "vipd_vrrp_two_masters_seen",
        "Split brains seen as master: another master that did not take over knowingly.",
        |i| i.counters.two_masters_seen,
    ),
    (
        "vipd_vrrp_adverts_from_unknown_peers",
        "Unicast advertisements for our VRID from an address that is not a configured peer.",
        |i| i.counters.adverts_from_unknown_peers,
    ),
    (
        "vipd_vrrp_unknown_peer_masters_seen",
        "Advertisements for our VRID from a master that is not a configured peer, received while master.",
        |i| i.counters.unknown_peer_masters_seen,
    ),
    (
        "vipd_vrrp_address_list_mismatch",
        "Accepted advertisements whose address list differs from this instance's VIPs.",
        |i| i.counters.address_list_mismatch,
    ),
    (
        "vipd_vrrp_interval_mismatch",
        "Accepted VRRPv3 advertisements whose interval differs from this instance's.",
        |i| i.counters.interval_mismatch,
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

/// One series per group, labelled `announce_group` (docs/metrics.md, Announce groups).
fn announce_metrics(encoder: &mut DescriptorEncoder, groups: &[AnnounceStatus]) -> fmt::Result {
    let labels = |group: &AnnounceStatus| vec![("announce_group", group.name.clone())];
    family(
        encoder,
        "vipd_announce_announced",
        "1 while the group's VIPs are on the announce device (the routing daemon announces them), 0 while withdrawn.",
        MetricType::Gauge,
        groups
            .iter()
            .map(|group| (labels(group), Value::Count(u64::from(group.announced)))),
    )?;
    family(
        encoder,
        "vipd_announce_effective_priority",
        "The group's priority after its weighted trackers (absent while a weight-0 tracker fails).",
        MetricType::Gauge,
        groups.iter().filter_map(|group| {
            let priority = group.effective_priority?;
            Some((labels(group), Value::Count(u64::from(priority))))
        }),
    )?;
    family(
        encoder,
        "vipd_announce_changes",
        "Announcements and withdrawals of the group since it started.",
        MetricType::Counter,
        groups
            .iter()
            .map(|group| (labels(group), Value::Count(group.changes))),
    )?;
    family(
        encoder,
        "vipd_announce_since_seconds",
        "When the group was last announced or withdrawn (or started), seconds since the Unix epoch.",
        MetricType::Gauge,
        groups
            .iter()
            .map(|group| (labels(group), Value::Seconds(group.since_unix_seconds))),
    )
}

/// The instance's label. Not `instance`: Prometheus gives every series of a target the labels
/// `instance` and `job`, and renames an exported label of either name (`exported_instance`), so
/// queries by it would group by node instead.
fn instance_labels(instance: &InstanceStatus) -> Labels {
    vec![("vrrp_instance", instance.name.clone())]
}

fn vrrp_metrics(encoder: &mut DescriptorEncoder, instances: &[InstanceStatus]) -> fmt::Result {
    let states = instances.iter().flat_map(|instance| {
        VrrpState::ALL.into_iter().map(|candidate| {
            let mut labels = instance_labels(instance);
            labels.push(("state", candidate.as_str().to_owned()));
            (labels, Value::Count(u64::from(candidate == instance.state)))
        })
    });
    family(
        encoder,
        "vipd_vrrp_state",
        "1 for the state the instance is in, 0 for the others (initialize, backup, master, fault).",
        MetricType::Gauge,
        states,
    )?;
    table(
        encoder,
        MetricType::Gauge,
        &INSTANCE_GAUGES,
        instances,
        instance_labels,
    )?;
    let masters = instances.iter().filter_map(|instance| {
        let master = instance.master.as_ref()?;
        Some((
            instance_labels(instance),
            Value::Count(u64::from(master.priority)),
        ))
    });
    family(
        encoder,
        "vipd_vrrp_master_priority",
        "Priority of the last master heard (absent when none was heard).",
        MetricType::Gauge,
        masters,
    )?;
    vrrp_whereabouts(encoder, instances)?;
    let trackers = instances.iter().flat_map(|instance| {
        instance.trackers.iter().map(|tracker| {
            let mut labels = instance_labels(instance);
            labels.extend([
                ("kind", tracker.kind.as_str().to_owned()),
                ("target", tracker.target.clone()),
            ]);
            let up = tracker.state != TrackerState::Down;
            (labels, Value::Count(u64::from(up)))
        })
    });
    family(
        encoder,
        "vipd_vrrp_tracker_up",
        "1 when the tracker does not lower the priority (file trackers: 1 unless down).",
        MetricType::Gauge,
        trackers,
    )?;
    table(
        encoder,
        MetricType::Counter,
        &INSTANCE_COUNTERS,
        instances,
        instance_labels,
    )?;
    let drops = instances.iter().flat_map(|instance| {
        let drops = &instance.counters.adverts_dropped_by_reason;
        drops.iter().map(|(reason, count)| {
            let mut labels = instance_labels(instance);
            labels.push(("reason", reason.clone()));
            (labels, Value::Count(*count))
        })
    });
    family(
        encoder,
        "vipd_vrrp_adverts_dropped_by_reason",
        "Advertisements dropped as invalid, by reason (ttl, checksum, length, version, ...).",
        MetricType::Counter,
        drops,
    )
}

/// Since when each instance is in its state, who the master is as a backup sees it, and which
/// VIPs the node holds: what an operator asks first in a failover, and what the shipped alert
/// "VIP not on the node that says master" needs (deploy/prometheus/vipd-alerts.yaml).
fn vrrp_whereabouts(encoder: &mut DescriptorEncoder, instances: &[InstanceStatus]) -> fmt::Result {
    family(
        encoder,
        "vipd_vrrp_state_since_timestamp_seconds",
        "When the instance entered its state, in seconds since the Unix epoch.",
        MetricType::Gauge,
        instances.iter().map(|instance| {
            (
                instance_labels(instance),
                Value::Seconds(instance.state_since_unix_seconds),
            )
        }),
    )?;
    // A master's `master` is the one it heard before it took over: only a backup's is news.
    let masters = instances.iter().filter_map(|instance| {
        let master = instance.master.as_ref()?;
        (instance.state == VrrpState::Backup).then(|| {
            let mut labels = instance_labels(instance);
            labels.push(("address", master.address.to_string()));
            (labels, Value::Count(1))
        })
    });
    family(
        encoder,
        "vipd_vrrp_master_info",
        "Always 1, on a backup that hears a master; the label address is the master's.",
        MetricType::Gauge,
        masters,
    )?;
    let vips = instances.iter().flat_map(|instance| {
        instance.vips.iter().map(|vip| {
            let mut labels = instance_labels(instance);
            labels.push(("vip", vip.clone()));
            let held = instance.vips_held.contains(vip);
            (labels, Value::Count(u64::from(held)))
        })
    });
    family(
        encoder,
        "vipd_vrrp_vip_present",
        "1 when the virtual address is on this node's interface, as last added, removed or checked.",
        MetricType::Gauge,
        vips,
    )
}

const FRONTEND_GAUGES: [Column<FrontendStatus>; 3] = [
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
    (
        "vipd_frontend_sessions_limit_in_force",
        "Limit in force: above the configured one after a reload lowered it while more sessions were open.",
        |f| f.max_connections_in_force,
    ),
];

const FRONTEND_COUNTERS: [Column<FrontendStatus>; 6] = [
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

fn frontend_metrics(encoder: &mut DescriptorEncoder, frontends: &[FrontendStatus]) -> fmt::Result {
    let labels = |frontend: &FrontendStatus| vec![("frontend", frontend.name.clone())];
    table(
        encoder,
        MetricType::Gauge,
        &FRONTEND_GAUGES,
        frontends,
        labels,
    )?;
    table(
        encoder,
        MetricType::Counter,
        &FRONTEND_COUNTERS,
        frontends,
        labels,
    )
}

const BACKEND_GAUGES: [Column<BackendStatus>; 5] = [
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

const BACKEND_COUNTERS: [Column<BackendStatus>; 8] = [
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
    (
        "vipd_backend_queued",
        "Sessions that waited in the queue: served, timed out or refused.",
        |b| b.queued_total,
    ),
];

fn backend_metrics(encoder: &mut DescriptorEncoder, backends: &[BackendStatus]) -> fmt::Result {
    let labels = |backend: &BackendStatus| vec![("backend", backend.name.clone())];
    table(
        encoder,
        MetricType::Gauge,
        &BACKEND_GAUGES,
        backends,
        labels,
    )?;
    table(
        encoder,
        MetricType::Counter,
        &BACKEND_COUNTERS,
        backends,
        labels,
    )?;
    let times: [TimeColumn; 3] = [
        (
            "vipd_backend_queue_time_seconds",
            "Time sessions waited for a server slot, over every attempt (near 0 when one was free).",
            |times| &times.queue,
        ),
        (
            "vipd_backend_connect_time_seconds",
            "Time sessions spent connecting to servers, over every attempt.",
            |times| &times.connect,
        ),
        (
            "vipd_backend_session_time_seconds",
            "Time from accept to close of the sessions handed to the backend.",
            |times| &times.session,
        ),
    ];
    for (name, help, read) in times {
        let series = backends
            .iter()
            .map(|backend| (labels(backend), read(&backend.times)));
        histogram_family(encoder, name, help, series)?;
    }
    family(
        encoder,
        "vipd_backend_queue_wait_p99_seconds",
        "99th percentile of queue waits since start, rounded up to a power of two milliseconds.",
        MetricType::Gauge,
        backends.iter().map(|backend| {
            (
                labels(backend),
                Value::Seconds(backend.queue_wait_p99_seconds),
            )
        }),
    )
}

const SERVER_GAUGES: [Column<ServerStatus>; 4] = [
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

const SERVER_COUNTERS: [Column<ServerStatus>; 8] = [
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

fn server_metrics(encoder: &mut DescriptorEncoder, backends: &[BackendStatus]) -> fmt::Result {
    let servers = || {
        backends.iter().flat_map(|backend| {
            backend.servers.iter().map(move |server| {
                let labels = vec![
                    ("backend", backend.name.clone()),
                    ("server", server.name.clone()),
                ];
                (labels, server)
            })
        })
    };
    for (tables, metric_type) in [
        (&SERVER_GAUGES[..], MetricType::Gauge),
        (&SERVER_COUNTERS[..], MetricType::Counter),
    ] {
        for (name, help, read) in tables {
            let series = servers().map(|(labels, server)| (labels, Value::Count(read(server))));
            family(encoder, name, help, metric_type, series)?;
        }
    }
    let admin = servers().flat_map(|(labels, server)| {
        ServerAdmin::ALL.into_iter().map(move |candidate| {
            let mut labels = labels.clone();
            labels.push(("state", candidate.as_str().to_owned()));
            (labels, Value::Count(u64::from(candidate == server.admin)))
        })
    });
    family(
        encoder,
        "vipd_server_admin_state",
        "1 for the administrative state the server is in, 0 for the others (ready, drain, maintenance).",
        MetricType::Gauge,
        admin,
    )?;
    let limits = servers().filter_map(|(labels, server)| {
        server
            .max_connections
            .map(|limit| (labels, Value::Count(limit)))
    });
    family(
        encoder,
        "vipd_server_sessions_limit",
        "Configured maximum of concurrent sessions (absent when unlimited).",
        MetricType::Gauge,
        limits,
    )?;
    let in_force = servers().filter_map(|(labels, server)| {
        server
            .max_connections_in_force
            .map(|limit| (labels, Value::Count(limit)))
    });
    family(
        encoder,
        "vipd_server_sessions_limit_in_force",
        "Maximum of concurrent sessions in force: below the configured one during slow start (absent when unlimited).",
        MetricType::Gauge,
        in_force,
    )?;
    family(
        encoder,
        "vipd_server_check_last_change_seconds",
        "Seconds since the last up/down transition (or since the server was configured).",
        MetricType::Gauge,
        servers().map(|(labels, server)| (labels, Value::Seconds(server.time_in_state_seconds))),
    )?;
    family(
        encoder,
        "vipd_server_downtime_seconds",
        "Total seconds spent down.",
        MetricType::Counter,
        servers().map(|(labels, server)| (labels, Value::Seconds(server.downtime_seconds))),
    )
}
