//! Writes a [`Draft`] as vipd.yaml: block style for entries, flow style for short lists, a
//! comment naming the source line above each translated block.

use std::fmt::Write as _;
use std::time::Duration;

use super::draft::{
    Backend, Draft, Frontend, Health, Instance, Script, TlsVerify, TrackTarget, Tracker, Vip,
};

pub fn render(draft: &Draft) -> String {
    let mut out = String::new();
    for line in &draft.header {
        comment(&mut out, "", line);
    }
    if let Some(node) = &draft.node {
        let _ = writeln!(out, "node: {}", scalar(node));
    }
    if let Some(max) = draft.max_connections {
        let _ = writeln!(out, "max_connections: {max}");
    }
    if !draft.instances.is_empty() {
        out.push_str("\nvrrp:\n");
        for instance in &draft.instances {
            render_instance(&mut out, instance);
        }
    }
    if !draft.scripts.is_empty() {
        out.push_str("\nscripts:\n");
        for script in &draft.scripts {
            render_script(&mut out, script);
        }
    }
    if !draft.frontends.is_empty() {
        out.push_str("\nfrontends:\n");
        for frontend in &draft.frontends {
            render_frontend(&mut out, frontend);
        }
    }
    if !draft.backends.is_empty() {
        out.push_str("\nbackends:\n");
        for backend in &draft.backends {
            render_backend(&mut out, backend);
        }
    }
    out
}

fn render_instance(out: &mut String, instance: &Instance) {
    comment(out, "  ", &format!("from {}", instance.from));
    for note in &instance.notes {
        comment(out, "  ", note);
    }
    let _ = writeln!(out, "  - name: {}", scalar(&instance.name));
    let field = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "    {key}: {value}");
    };
    field(out, "interface", &scalar(&instance.interface));
    field(out, "vrid", &instance.vrid.to_string());
    field(out, "priority", &instance.priority.to_string());
    field(out, "version", &instance.version.to_string());
    if let Some(interval) = instance.advert_interval {
        field(out, "advert_interval", &duration(interval));
    }
    if let Some(preempt) = instance.preempt {
        field(out, "preempt", &preempt.to_string());
    }
    if let Some(delay) = instance.preempt_delay {
        field(out, "preempt_delay", &duration(delay));
    }
    if let Some(password) = &instance.auth_password {
        field(out, "auth_password", &quoted(password));
    }
    if !instance.unicast_peers.is_empty() {
        out.push_str("    unicast:\n");
        if let Some(source) = instance.unicast_source {
            let _ = writeln!(out, "      source: {}", quoted(&source.to_string()));
        }
        let peers: Vec<String> = instance
            .unicast_peers
            .iter()
            .map(|peer| quoted(&peer.to_string()))
            .collect();
        let _ = writeln!(out, "      peers: [{}]", peers.join(", "));
    }
    if instance.virtual_mac {
        field(out, "virtual_mac", "true");
        if let Some(name) = &instance.virtual_mac_interface {
            field(out, "virtual_mac_interface", &scalar(name));
        }
    }
    out.push_str("    vips:\n");
    for vip in &instance.vips {
        let _ = writeln!(out, "      - {}", render_vip(vip));
    }
    if !instance.track.is_empty() {
        out.push_str("    track:\n");
        for tracker in &instance.track {
            let _ = writeln!(out, "      - {}", render_tracker(tracker));
        }
    }
    if !instance.notify.is_empty() {
        out.push_str("    notify:\n");
        let hooks = [
            ("master", &instance.notify.master),
            ("backup", &instance.notify.backup),
            ("fault", &instance.notify.fault),
            ("state", &instance.notify.state),
        ];
        for (key, command) in hooks {
            if let Some(command) = command {
                let _ = writeln!(out, "      {key}: {}", flow_list(command));
            }
        }
    }
    if !instance.garp.is_empty() {
        let mut parts = Vec::new();
        if let Some(repeat) = instance.garp.repeat {
            parts.push(format!("repeat: {repeat}"));
        }
        if let Some(delay) = instance.garp.delay {
            parts.push(format!("delay: {}", duration(delay)));
        }
        if let Some(refresh) = instance.garp.refresh {
            parts.push(format!("refresh: {}", duration(refresh)));
        }
        field(out, "garp", &format!("{{ {} }}", parts.join(", ")));
    }
}

fn render_vip(vip: &Vip) -> String {
    if vip.interface.is_none() && vip.label.is_none() {
        return vip.address.to_string();
    }
    let mut parts = vec![format!("address: {}", quoted(&vip.address.to_string()))];
    if let Some(interface) = &vip.interface {
        parts.push(format!("interface: {}", scalar(interface)));
    }
    if let Some(label) = &vip.label {
        parts.push(format!("label: {}", quoted(label)));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn render_tracker(tracker: &Tracker) -> String {
    let target = match &tracker.target {
        TrackTarget::Frontend(name) => format!("frontend: {}", scalar(name)),
        TrackTarget::Script(name) => format!("script: {}", scalar(name)),
        TrackTarget::Interface(name) => format!("interface: {}", scalar(name)),
        TrackTarget::File(path) => format!("file: {}", scalar(path)),
    };
    let entry = format!("{{ {target}, weight: {} }}", tracker.weight);
    match &tracker.note {
        Some(note) => format!("{entry}  # {}", one_line(note)),
        None => entry,
    }
}

fn render_script(out: &mut String, script: &Script) {
    comment(out, "  ", &format!("from {}", script.from));
    for note in &script.notes {
        comment(out, "  ", note);
    }
    let _ = writeln!(out, "  {}:", scalar(&script.name));
    let _ = writeln!(out, "    command: {}", flow_list(&script.command));
    if let Some(interval) = script.interval {
        let _ = writeln!(out, "    interval: {}", duration(interval));
    }
    if let Some(timeout) = script.timeout {
        let _ = writeln!(out, "    timeout: {}", duration(timeout));
    }
    if let Some(rise) = script.rise {
        let _ = writeln!(out, "    rise: {rise}");
    }
    if let Some(fall) = script.fall {
        let _ = writeln!(out, "    fall: {fall}");
    }
    if let Some(user) = &script.user {
        let _ = writeln!(out, "    user: {}", scalar(user));
    }
}

fn render_frontend(out: &mut String, frontend: &Frontend) {
    comment(out, "  ", &format!("from {}", frontend.from));
    for note in &frontend.notes {
        comment(out, "  ", note);
    }
    let _ = writeln!(out, "  - name: {}", scalar(&frontend.name));
    let binds: Vec<String> = frontend.bind.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "    bind: {}", flow_list(&binds));
    let _ = writeln!(out, "    backend: {}", scalar(&frontend.backend));
    if frontend.accept_proxy {
        out.push_str("    accept_proxy: true\n");
    }
    if let Some(max) = frontend.max_connections {
        let _ = writeln!(out, "    max_connections: {max}");
    }
    render_tcp_keepalive(out, frontend.tcp_keepalive.as_ref());
}

fn render_tcp_keepalive(out: &mut String, keepalive: Option<&crate::draft::TcpKeepalive>) {
    let Some(keepalive) = keepalive else { return };
    let mut fields = Vec::new();
    if !keepalive.enabled {
        fields.push("enabled: false".to_owned());
    }
    if let Some(idle) = keepalive.idle {
        fields.push(format!("idle: {}", duration(idle)));
    }
    if let Some(interval) = keepalive.interval {
        fields.push(format!("interval: {}", duration(interval)));
    }
    if let Some(count) = keepalive.count {
        fields.push(format!("count: {count}"));
    }
    let _ = writeln!(out, "    tcp_keepalive: {{ {} }}", fields.join(", "));
}

fn render_backend(out: &mut String, backend: &Backend) {
    comment(out, "  ", &format!("from {}", backend.from));
    for note in &backend.notes {
        comment(out, "  ", note);
    }
    let _ = writeln!(out, "  - name: {}", scalar(&backend.name));
    if let Some(balance) = backend.balance {
        let _ = writeln!(out, "    balance: {balance}");
    }
    if let Some(send_proxy) = backend.send_proxy {
        let _ = writeln!(out, "    send_proxy: {send_proxy}");
    }
    if let Some(retries) = backend.retries {
        let _ = writeln!(out, "    retries: {retries}");
    }
    if backend.shutdown_sessions {
        out.push_str("    on_server_down: shutdown_sessions\n");
    }
    let timeouts = [
        ("connect", backend.timeout.connect),
        ("idle", backend.timeout.idle),
        ("tunnel", backend.timeout.tunnel),
        ("fin", backend.timeout.fin),
        ("queue", backend.timeout.queue),
    ];
    let timeouts: Vec<String> = timeouts
        .iter()
        .filter_map(|(key, value)| value.map(|value| format!("{key}: {}", duration(value))))
        .collect();
    if !timeouts.is_empty() {
        let _ = writeln!(out, "    timeout: {{ {} }}", timeouts.join(", "));
    }
    render_health(out, &backend.health);
    if let Some(max_queue) = backend.max_queue {
        let _ = writeln!(out, "    max_queue: {max_queue}");
    }
    render_tcp_keepalive(out, backend.tcp_keepalive.as_ref());
    if let Some(slow_start) = backend.slow_start {
        let _ = writeln!(out, "    slow_start: {}", duration(slow_start));
    }
    out.push_str("    servers:\n");
    for server in &backend.servers {
        let mut parts = vec![
            format!("name: {}", scalar(&server.name)),
            format!("address: {}", quoted(&server.address.to_string())),
        ];
        if let Some(weight) = server.weight {
            parts.push(format!("weight: {weight}"));
        }
        if server.backup {
            parts.push("backup: true".to_owned());
        }
        if let Some(max) = server.max_connections {
            parts.push(format!("max_connections: {max}"));
        }
        if let Some(address) = server.check_address {
            parts.push(format!("check_address: {}", quoted(&address.to_string())));
        }
        let _ = write!(out, "      - {{ {} }}", parts.join(", "));
        if let Some(note) = &server.note {
            let _ = write!(out, "  # {}", one_line(note));
        }
        out.push('\n');
    }
}

fn render_health(out: &mut String, health: &Health) {
    if *health == Health::default() {
        return;
    }
    out.push_str("    health:\n");
    let field = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "      {key}: {value}");
    };
    if let Some(kind) = health.kind {
        field(out, "kind", kind);
    }
    if let Some(path) = &health.path {
        field(out, "path", &quoted(path));
    }
    if let Some(statuses) = &health.expect_status {
        let statuses: Vec<String> = statuses.iter().map(ToString::to_string).collect();
        field(out, "expect_status", &format!("[{}]", statuses.join(", ")));
    }
    if let Some(host) = &health.host {
        field(out, "host", &scalar(host));
    }
    match &health.tls_verify {
        Some(TlsVerify::None) => field(out, "tls_verify", "none"),
        Some(TlsVerify::CaFile(ca_file)) => field(
            out,
            "tls_verify",
            &format!("{{ ca_file: {} }}", scalar(ca_file)),
        ),
        None => {}
    }
    if let Some(interval) = health.interval {
        field(out, "interval", &duration(interval));
    }
    if let Some(timeout) = health.timeout {
        field(out, "timeout", &duration(timeout));
    }
    if let Some(rise) = health.rise {
        field(out, "rise", &rise.to_string());
    }
    if let Some(fall) = health.fall {
        field(out, "fall", &fall.to_string());
    }
    if health.initially_up {
        field(out, "initially_up", "true");
    }
    if let Some(error_limit) = health.error_limit {
        field(out, "error_limit", &error_limit.to_string());
    }
    render_check_options(out, health);
}

/// The options of real clusters (docs/design/proxy.md, Checks of real clusters).
fn render_check_options(out: &mut String, health: &Health) {
    let field = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "      {key}: {value}");
    };
    if let Some(port) = health.port {
        field(out, "port", &port.to_string());
    }
    if let Some(send_proxy) = health.send_proxy {
        field(out, "send_proxy", send_proxy);
    }
    if !health.headers.is_empty() {
        let headers: Vec<String> = health
            .headers
            .iter()
            .map(|(name, value)| format!("{}: {}", scalar(name), quoted(value)))
            .collect();
        field(out, "headers", &format!("{{ {} }}", headers.join(", ")));
    }
    if let Some(certificate) = &health.client_certificate {
        field(out, "client_certificate", &scalar(certificate));
    }
    if let Some(sni) = &health.sni {
        field(out, "sni", &scalar(sni));
    }
    if let Some(percent) = health.jitter_percent {
        field(out, "jitter_percent", &percent.to_string());
    }
}

/// `# text`, one comment line per line of `text`.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}# {}", one_line(line));
    }
}

/// Control characters would end or corrupt a comment line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `[a, "b c"]`.
fn flow_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|item| scalar(item)).collect();
    format!("[{}]", items.join(", "))
}

/// A string as a YAML scalar: plain when that cannot be read as anything but this string.
pub fn scalar(text: &str) -> String {
    let plain_safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+'))
        && !text.starts_with(['-', '.', '+'])
        && text.parse::<f64>().is_err()
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
        );
    if plain_safe {
        text.to_owned()
    } else {
        quoted(text)
    }
}

/// A double-quoted YAML scalar; escapes keep it on one line and exactly `text`.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration the way an operator writes it: `2s`, `500ms`, `5m`, `1h`.
pub fn duration(value: Duration) -> String {
    let millis = value.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}
