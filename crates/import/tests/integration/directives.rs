//! `vipd import`, directive family by directive family: what each keepalived / HAProxy
//! directive becomes, and the exact warning for what has no equivalent.

use std::path::Path;
use std::time::Duration;

use vipd_config::{
    Balance, HealthKind, OnServerDown, ProxyProtocol, TlsVerify, TrackTarget, VrrpInstance,
    VrrpVersion,
};
use vipd_import::{ImportError, Imported, import_texts};

const KEEPALIVED: &str = "keepalived.conf";
const HAPROXY: &str = "haproxy.cfg";

fn translate(keepalived: &str, haproxy: Option<&str>) -> Imported {
    import_texts(
        Path::new(KEEPALIVED),
        keepalived,
        haproxy.map(|text| (Path::new(HAPROXY), text)),
    )
    .unwrap_or_else(|error| panic!("{error}"))
}

fn warnings(imported: &Imported) -> Vec<String> {
    imported.warnings.iter().map(ToString::to_string).collect()
}

pub(crate) fn assert_warned(imported: &Imported, expected: &str) {
    let warnings = warnings(imported);
    assert!(
        warnings.iter().any(|warning| warning == expected),
        "missing `{expected}` in {warnings:#?}"
    );
}

fn assert_warned_starting(imported: &Imported, expected: &str) {
    let warnings = warnings(imported);
    assert!(
        warnings.iter().any(|warning| warning.starts_with(expected)),
        "no warning starts with `{expected}` in {warnings:#?}"
    );
}

/// A minimal instance with `body` added inside it (lines 2.. of the file).
fn in_instance(body: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n{body}\n    interface eth0\n    virtual_router_id 51\n    \
         virtual_ipaddress {{\n        198.51.100.50/24\n    }}\n}}\n"
    )
}

fn only_instance(imported: &Imported) -> &VrrpInstance {
    assert_eq!(imported.config.vrrp.len(), 1, "{}", imported.yaml);
    &imported.config.vrrp[0]
}

// ---- keepalived syntax ----

#[test]
fn blocks_open_on_the_same_or_the_next_line_and_comments_are_skipped() {
    let text = "# comment\n! also a comment\nvrrp_instance VI_1\n{\n  interface eth0 # trailing\n  \
                virtual_router_id 51 ! trailing\n  virtual_ipaddress { 198.51.100.50/24 }\n}\n";
    let imported = translate(text, None);
    let instance = only_instance(&imported);
    assert_eq!(instance.interface, "eth0");
    assert_eq!(instance.vrid, 51);
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let cases = [
        (
            "vrrp_instance A {\n  interface eth0\n",
            "keepalived.conf:1: this `{` is never closed",
        ),
        (
            "global_defs {\n}\n}\n",
            "keepalived.conf:3: `}` closes no block",
        ),
        (
            "vrrp_script x {\n  script \"/bin/true\n}\n",
            "keepalived.conf:2: unterminated quoted string",
        ),
        (
            "{\n}\n",
            "keepalived.conf:1: `{` opens a block without a keyword before it",
        ),
    ];
    for (text, expected) in cases {
        let error = import_texts(Path::new(KEEPALIVED), text, None).expect_err(text);
        assert!(matches!(error, ImportError::Syntax { .. }), "{error}");
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn includes_follow_globs_relative_to_the_including_file_with_bounded_depth() {
    let directory = std::env::temp_dir().join(format!("vipd-import-{}", std::process::id()));
    let conf_d = directory.join("conf.d");
    std::fs::create_dir_all(&conf_d).expect("temp dir");
    std::fs::write(conf_d.join("b.conf"), in_instance("")).expect("write");
    std::fs::write(conf_d.join("a.conf"), "global_defs {\n  router_id lb9\n}\n").expect("write");
    std::fs::write(conf_d.join("skip.txt"), "garbage {").expect("write");
    let main = directory.join("keepalived.conf");
    let imported = import_texts(&main, "include conf.d/*.conf\n", None).expect("imports");
    assert_eq!(imported.config.node.as_deref(), Some("lb9"));
    assert_eq!(imported.config.vrrp.len(), 1);

    std::fs::write(directory.join("loop.conf"), "include loop.conf\n").expect("write");
    let error = import_texts(&main, "include loop.conf\n", None).expect_err("self include");
    assert!(
        error
            .to_string()
            .ends_with("loop.conf:1: include nested more than 8 deep (a file including itself?)"),
        "{error}"
    );
    std::fs::remove_dir_all(&directory).expect("clean up");
}

// ---- global_defs ----

#[test]
fn global_defs_router_id_version_and_script_user() {
    let text = format!(
        "global_defs {{\n  router_id lb1\n  vrrp_version 3\n  script_user vrrp\n  \
         vrrp_mcast_group4 224.0.0.19\n  notification_email {{ ops@example.org }}\n}}\nvrrp_script chk {{\n  \
         script /usr/local/bin/chk\n}}\n{}",
        in_instance("    track_script {\n        chk\n    }")
    );
    let imported = translate(&text, None);
    assert_eq!(imported.config.node.as_deref(), Some("lb1"));
    assert_eq!(only_instance(&imported).version, VrrpVersion::V3);
    assert_eq!(imported.config.scripts["chk"].user.as_deref(), Some("vrrp"));
    assert_warned_starting(
        &imported,
        "keepalived.conf:5: vrrp_mcast_group4 224.0.0.19: vipd sends",
    );
    assert_warned(
        &imported,
        "keepalived.conf:6: global_defs notification_email has no vipd equivalent: skipped",
    );
}

// ---- vrrp_script ----

#[test]
fn vrrp_script_fields_and_keepalived_defaults() {
    let text = format!(
        "vrrp_script full {{\n  script \"/usr/local/bin/check --quick 'two words'\"\n  interval 2\n  \
         timeout 1\n  weight -20\n  rise 2\n  fall 3\n  user nobody\n}}\nvrrp_script bare {{\n  \
         script /usr/local/bin/bare\n  timeout 5\n}}\n{}",
        in_instance("    track_script {\n        full\n        bare weight -5\n    }")
    );
    let imported = translate(&text, None);
    let full = &imported.config.scripts["full"];
    assert_eq!(full.command.program, Path::new("/usr/local/bin/check"));
    assert_eq!(full.command.args, ["--quick", "two words"]);
    assert_eq!(
        (full.interval, full.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!(
        (full.rise, full.fall, full.user.as_deref()),
        (2, 3, Some("nobody"))
    );
    // keepalived's defaults (interval 1s, rise 1, fall 1) are written out: vipd's differ.
    let bare = &imported.config.scripts["bare"];
    assert_eq!(
        (bare.interval, bare.rise, bare.fall),
        (Duration::from_secs(1), 1, 1)
    );
    assert_eq!(bare.timeout, Duration::from_secs(1));
    assert_warned(
        &imported,
        "keepalived.conf:10: vrrp_script bare: timeout longer than interval; vipd needs it no longer: timeout set to the interval",
    );
    let track = &only_instance(&imported).track;
    assert_eq!(
        track[0].target,
        TrackTarget::Script {
            name: "full".into()
        }
    );
    assert_eq!(track[0].weight, -20);
    assert_eq!(
        track[1].weight, -5,
        "track_script's weight overrides the script's"
    );
}

#[test]
fn a_haproxy_liveness_script_becomes_frontend_trackers() {
    let keepalived = format!(
        "vrrp_script chk_haproxy {{\n  script \"killall -0 haproxy\"\n  weight -60\n}}\n{}",
        in_instance("    track_script {\n        chk_haproxy\n    }")
    );
    let haproxy = "frontend api\n  bind 198.51.100.50:6443\n  default_backend api\n\
                   frontend other\n  bind 198.51.100.99:80\n  default_backend api\n\
                   backend api\n  server a 198.51.100.21:6443 check\n";
    let imported = translate(&keepalived, Some(haproxy));
    let track = &only_instance(&imported).track;
    assert_eq!(
        track.len(),
        1,
        "only the frontend on this instance's VIP: {track:?}"
    );
    assert_eq!(
        track[0].target,
        TrackTarget::Frontend {
            name: "api".into(),
            min_up: 1
        }
    );
    assert_eq!(track[0].weight, -60);
    assert!(imported.config.scripts.is_empty());

    let without_haproxy = translate(&keepalived, None);
    assert!(only_instance(&without_haproxy).track.is_empty());
    assert_warned_starting(
        &without_haproxy,
        "keepalived.conf:7: track_script chk_haproxy follows HAProxy, which vipd replaces",
    );
}

// ---- vrrp_instance ----

#[test]
fn version_2_is_written_when_keepalived_used_its_default() {
    let imported = translate(&in_instance("    advert_int 1"), None);
    let instance = only_instance(&imported);
    assert_eq!(instance.version, VrrpVersion::V2);
    assert!(imported.yaml.contains("    version: 2\n"));
    // An IPv6 instance is v3, as keepalived makes it.
    let ipv6 = "vrrp_instance V6 {\n  interface eth0\n  virtual_router_id 7\n  \
                virtual_ipaddress {\n    2001:db8::50/64\n  }\n}\n";
    assert_eq!(
        only_instance(&translate(ipv6, None)).version,
        VrrpVersion::V3
    );
}

#[test]
fn election_settings() {
    let imported = translate(
        &in_instance(
            "    state BACKUP\n    priority 90\n    advert_int 2\n    nopreempt\n    preempt_delay 30",
        ),
        None,
    );
    let instance = only_instance(&imported);
    assert_eq!(instance.priority, 90);
    assert_eq!(instance.advert_interval, Duration::from_secs(2));
    assert!(!instance.preempt);
    assert_eq!(instance.preempt_delay, Duration::from_secs(30));
    assert!(
        imported
            .yaml
            .contains("state BACKUP: only keepalived's initial state")
    );

    let master = translate(&in_instance("    state MASTER\n    nopreempt"), None);
    assert_warned_starting(&master, "keepalived.conf:2: nopreempt with state MASTER");
}

#[test]
fn unicast_and_password_authentication() {
    let imported = translate(
        &in_instance(
            "    unicast_src_ip 198.51.100.11\n    unicast_peer {\n        198.51.100.12\n        \
             198.51.100.13 min_ttl 250\n    }\n    authentication {\n        auth_type PASS\n        \
             auth_pass longer-than-8\n    }",
        ),
        None,
    );
    let instance = only_instance(&imported);
    let unicast = instance.unicast.as_ref().expect("unicast");
    assert_eq!(
        unicast.source,
        Some("198.51.100.11".parse().expect("address"))
    );
    assert_eq!(unicast.peers.len(), 2);
    assert_eq!(instance.auth_password.as_deref(), Some("longer-t"));
    assert_warned_starting(
        &imported,
        "keepalived.conf:5: unicast_peer min_ttl: vipd checks the TTL",
    );
    assert_warned_starting(
        &imported,
        "keepalived.conf:7: auth_pass is longer than 8 bytes",
    );
}

#[test]
fn ah_authentication_is_refused_loudly() {
    let imported = translate(
        &in_instance("    authentication {\n        auth_type AH\n        auth_pass secret\n    }"),
        None,
    );
    assert_eq!(only_instance(&imported).auth_password, None);
    assert_warned_starting(
        &imported,
        "keepalived.conf:3: AUTH TYPE AH IS NOT SUPPORTED by vipd",
    );
}

#[test]
fn virtual_addresses_with_prefix_dev_label_and_excluded() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  version 3\n  \
                virtual_ipaddress {\n    198.51.100.50/24 dev eth1 label eth1:vip\n    \
                198.51.100.51\n    198.51.100.52/24 brd 198.51.100.255 scope global\n    \
                198.51.100.53/24 nodad\n  }\n  virtual_ipaddress_excluded {\n    \
                2001:db8::50/64 dev eth1\n  }\n}\n";
    let imported = translate(text, None);
    let vips = &only_instance(&imported).vips;
    assert_eq!(vips[0].address.to_string(), "198.51.100.50/24");
    assert_eq!(vips[0].interface, "eth1");
    assert_eq!(vips[0].label.as_deref(), Some("eth1:vip"));
    assert_eq!(
        vips[1].address.to_string(),
        "198.51.100.51/32",
        "keepalived's default prefix"
    );
    assert_eq!(vips[4].address.to_string(), "2001:db8::50/64");
    assert_warned(
        &imported,
        "keepalived.conf:9: virtual_ipaddress option `nodad` has no vipd equivalent: skipped",
    );
    // A v2 instance cannot carry the IPv6 excluded address.
    let v2 = translate(&text.replace("  version 3\n", ""), None);
    assert_eq!(only_instance(&v2).vips.len(), 4);
    assert_warned_starting(
        &v2,
        "keepalived.conf:11: virtual_ipaddress_excluded 2001:db8::50/64: a VRRP v2 instance",
    );
}

#[test]
fn interface_and_file_trackers() {
    let text = format!(
        "vrrp_track_file maint {{\n  file /run/maint\n  weight -10\n}}\n{}",
        in_instance(
            "    track_interface {\n        eth0\n        eth1 weight -30\n    }\n    track_file {\n        \
             maint\n        maint weight -100\n        nothing\n    }"
        )
    );
    let imported = translate(&text, None);
    let track = &only_instance(&imported).track;
    assert_eq!(
        track[0].target,
        TrackTarget::Interface {
            name: "eth0".into()
        }
    );
    assert_eq!(track[0].weight, 0);
    assert_eq!(track[1].weight, -30);
    assert_eq!(
        track[2].target,
        TrackTarget::File {
            path: "/run/maint".into()
        }
    );
    assert_eq!(track[2].weight, -10);
    assert_eq!(track[3].weight, -100);
    assert_warned(
        &imported,
        "keepalived.conf:13: track_file nothing: no vrrp_track_file of that name: skipped",
    );
}

#[test]
fn notify_hooks_garp_and_virtual_mac() {
    let imported = translate(
        &in_instance(
            "    notify_master \"/usr/local/bin/vip up\"\n    notify_backup /usr/local/bin/vip down\n    \
             notify_fault /usr/local/bin/fault\n    notify /usr/local/bin/state\n    notify_stop /usr/local/bin/stop\n    \
             garp_master_delay 10\n    garp_master_repeat 3\n    garp_master_refresh 60\n    \
             use_vmac vrrp51\n    vmac_xmit_base",
        ),
        None,
    );
    let instance = only_instance(&imported);
    let master = instance.notify.master.as_ref().expect("master hook");
    assert_eq!(
        (master.program.to_str(), master.args.as_slice()),
        (Some("/usr/local/bin/vip"), &["up".to_owned()][..])
    );
    assert_eq!(
        instance.notify.backup.as_ref().expect("backup").args,
        ["down"]
    );
    assert!(instance.notify.fault.is_some() && instance.notify.state.is_some());
    assert_eq!(instance.garp.repeat, 3);
    assert_eq!(instance.garp.delay, Duration::from_secs(10));
    assert_eq!(instance.garp.refresh, Some(Duration::from_secs(60)));
    assert_eq!(
        instance.virtual_mac.as_ref().expect("vmac").interface,
        "vrrp51"
    );
    assert_warned_starting(
        &imported,
        "keepalived.conf:6: notify_stop: vipd has no stop hook",
    );
    assert_warned_starting(
        &imported,
        "keepalived.conf:11: vmac_xmit_base: vipd always sends adverts from the macvlan",
    );
}

#[test]
fn unsupported_top_level_blocks_are_named() {
    let text = format!(
        "{}vrrp_sync_group G {{\n  group {{\n    VI_1\n  }}\n}}\nvirtual_server 198.51.100.50 443 {{\n  \
         real_server 198.51.100.21 443 {{\n  }}\n}}\n",
        in_instance("")
    );
    let imported = translate(&text, None);
    assert_warned_starting(
        &imported,
        "keepalived.conf:9: vrrp_sync_group is not supported by vipd",
    );
    assert_warned(
        &imported,
        "keepalived.conf:14: lvs virtual_server is not supported by vipd (an L4 proxy replaces IPVS): skipped",
    );
}

#[test]
fn an_instance_vipd_cannot_have_is_skipped_with_its_reason() {
    // Nothing else is left: the import fails, and its warnings say why.
    let error = import_texts(
        Path::new(KEEPALIVED),
        "vrrp_instance X {\n  interface eth0\n  virtual_ipaddress {\n    198.51.100.50/24\n  }\n}\n",
        None,
    )
    .expect_err("nothing to serve");
    let ImportError::NothingImported { warnings, .. } = error else {
        panic!("{error}")
    };
    assert!(
        warnings.iter().any(|warning| warning.to_string()
            == "keepalived.conf:1: vrrp_instance X has no valid `virtual_router_id`: skipped"),
        "{warnings:#?}"
    );
}

// ---- haproxy.cfg ----

const PROXY_BASE: &str = "defaults\n  mode tcp\n  timeout connect 5000\n  timeout client 30s\n  \
                          timeout server 1m\n  retries 2\n";

pub(crate) fn proxy(haproxy: &str) -> Imported {
    translate(&in_instance(""), Some(&format!("{PROXY_BASE}{haproxy}")))
}

#[test]
fn frontends_bind_maxconn_accept_proxy_and_backends() {
    let imported = proxy(
        "frontend web\n  bind 198.51.100.50:80,198.51.100.50:8080 accept-proxy\n  bind :443\n  \
         maxconn 1000\n  default_backend pool\nbackend pool\n  balance random(2)\n  \
         server a 198.51.100.21:80 check weight 10 maxconn 50 maxqueue 10\n  \
         server b 198.51.100.22:80 check backup disabled maxqueue 5\n  server c www.example.org:80 check\n",
    );
    let frontend = &imported.config.frontends[0];
    assert_eq!(frontend.bind.len(), 3);
    assert_eq!(frontend.bind[2].to_string(), "0.0.0.0:443");
    assert!(frontend.accept_proxy);
    assert_eq!(frontend.max_connections, Some(1000));
    let backend = &imported.config.backends[0];
    assert_eq!(backend.balance, Balance::Random);
    assert_eq!(backend.retries, 2);
    assert_eq!(backend.max_queue, 15);
    assert_eq!(
        backend.timeout.connect,
        Duration::from_secs(5),
        "HAProxy's unit is ms"
    );
    assert_eq!(backend.timeout.idle, Duration::from_secs(30));
    assert_eq!(backend.servers.len(), 2);
    assert_eq!(
        (
            backend.servers[0].weight,
            backend.servers[0].max_connections
        ),
        (10, Some(50))
    );
    assert!(backend.servers[1].backup);
    assert_eq!(backend.servers[1].weight, 0, "disabled drains");
    assert_warned_starting(
        &imported,
        "haproxy.cfg:16: server c `www.example.org:80`: `www.example.org` is not an IP address",
    );
}

#[test]
fn http_checks_with_host_status_and_tls() {
    let imported = proxy(
        "listen api\n  bind 198.51.100.50:6443\n  option httpchk GET /readyz HTTP/1.1\\r\\nHost:\\ kubernetes\n  \
         http-check expect status 200-204\n  server m1 198.51.100.21:6443 check check-ssl verify required ca-file /etc/k8s/ca.crt inter 5s rise 3 fall 2\n\
         listen web\n  bind 198.51.100.50:80\n  option httpchk\n  http-check send meth GET uri /healthz hdr Host web.example\n  \
         server w 198.51.100.31:80 check\n",
    );
    let api = &imported.config.backends[0];
    let HealthKind::Https { http, tls_verify } = &api.health.kind else {
        panic!("{:?}", api.health.kind)
    };
    assert_eq!(http.path, "/readyz");
    assert_eq!(http.host.as_deref(), Some("kubernetes"));
    assert_eq!(http.expect_status, [200, 201, 202, 203, 204]);
    assert_eq!(*tls_verify, TlsVerify::CaFile("/etc/k8s/ca.crt".into()));
    assert_eq!(
        (api.health.interval, api.health.rise, api.health.fall),
        (Duration::from_secs(5), 3, 2)
    );
    let web = &imported.config.backends[1];
    let HealthKind::Http(http) = &web.health.kind else {
        panic!("{:?}", web.health.kind)
    };
    assert_eq!(
        (http.path.as_str(), http.host.as_deref()),
        ("/healthz", Some("web.example"))
    );
    assert_eq!(imported.config.frontends[0].backend, "api");
}

#[test]
fn unchecked_servers_start_up_with_a_tcp_check_and_send_proxy_is_per_backend() {
    let imported = proxy(
        "frontend f\n  bind 198.51.100.50:80\n  default_backend b\nbackend b\n  \
         server a 198.51.100.21:80 send-proxy on-marked-down shutdown-sessions\n  server b 198.51.100.22:80 send-proxy-v2\n",
    );
    let backend = &imported.config.backends[0];
    assert_eq!(backend.health.kind, HealthKind::Tcp);
    assert!(backend.health.initially_up);
    assert_eq!(backend.send_proxy, ProxyProtocol::V1);
    assert_eq!(backend.on_server_down, OnServerDown::ShutdownSessions);
    assert_warned_starting(&imported, "haproxy.cfg:12: server b: send-proxy differs");
}

#[test]
fn http_mode_acls_and_conditional_routing_are_named() {
    let imported = proxy(
        "frontend web\n  mode http\n  bind 198.51.100.50:80\n  acl is_api path_beg /api\n  \
         use_backend api if is_api\n  http-request set-header X-Forwarded-Proto http\n  \
         default_backend web\nbackend web\n  server w 198.51.100.31:80 check\nbackend api\n  \
         stick-table type ip size 1m\n  server a 198.51.100.32:80 check\n",
    );
    assert_eq!(imported.config.frontends[0].backend, "web");
    assert_warned(
        &imported,
        "haproxy.cfg:7: frontend web is in mode http (haproxy.cfg:8): vipd is L4 only; translated as TCP pass-through (no HTTP routing, header rules or TLS termination)",
    );
    assert_warned(
        &imported,
        "haproxy.cfg:10: acl: vipd is an L4 proxy without ACLs, stick tables or request rules: skipped",
    );
    assert_warned(
        &imported,
        "haproxy.cfg:11: use_backend with a condition: vipd has no ACL routing (one backend per frontend): skipped",
    );
    assert_warned(
        &imported,
        "haproxy.cfg:17: stick-table: vipd is an L4 proxy without ACLs, stick tables or request rules: skipped",
    );
    assert_warned(
        &imported,
        "haproxy.cfg:16: backend api is used by no imported frontend: kept unused",
    );
}

#[test]
fn logging_options_say_where_the_session_log_goes() {
    let imported = proxy(
        "  option tcplog\n  option dontlognull\n  option httplog\n  log-format %ci\n\
         frontend f\n  bind 198.51.100.50:80\n  default_backend b\nbackend b\n  \
         server s 198.51.100.31:80\n",
    );
    let session_log = "vipd logs every session end on target `vipd::session` to stderr / the \
                       journal, with tcplog's fields as key=value (JSON with `--log-format json`)";
    assert_warned(
        &imported,
        &format!(
            "haproxy.cfg:7: option tcplog: {session_log}; parsers of HAProxy's format need adapting"
        ),
    );
    assert_warned(
        &imported,
        &format!(
            "haproxy.cfg:8: option dontlognull: {session_log}, sessions without data too (bytes_in=0 bytes_out=0): skipped"
        ),
    );
    assert_warned_starting(
        &imported,
        "haproxy.cfg:9: option httplog: vipd is L4 and logs as with tcplog",
    );
    assert_warned(
        &imported,
        &format!("haproxy.cfg:10: log-format: {session_log}, in a fixed format: skipped"),
    );
}

#[test]
fn haproxy_syntax_errors_name_the_line() {
    let error = import_texts(
        Path::new(KEEPALIVED),
        &in_instance(""),
        Some((
            Path::new(HAPROXY),
            "frontend f\n  bind \"198.51.100.50:80\n",
        )),
    )
    .expect_err("unterminated quote");
    assert_eq!(
        error.to_string(),
        "haproxy.cfg:2: unterminated quoted string"
    );
}

#[test]
fn instances_that_cannot_share_one_file_are_named() {
    let second = "vrrp_instance B {\n  interface eth0\n  virtual_router_id 51\n  \
                  virtual_ipaddress {\n    198.51.100.60/24\n  }\n}\n\
                  vrrp_instance C {\n  interface eth0\n  virtual_router_id 52\n  \
                  virtual_ipaddress {\n    198.51.100.50/24\n    198.51.100.61/24\n  }\n}\n";
    let imported = translate(&format!("{}{second}", in_instance("")), None);
    let names: Vec<&str> = imported
        .config
        .vrrp
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["VI_1", "C"]);
    assert_eq!(imported.config.vrrp[1].vips.len(), 1);
    assert_warned(
        &imported,
        "keepalived.conf:9: vrrp_instance B: virtual_router_id 51 on eth0 is already instance VI_1's: skipped",
    );
    assert_warned_starting(
        &imported,
        "keepalived.conf:16: 198.51.100.50/24 is already a VIP of another instance",
    );
}

#[test]
fn a_file_of_the_wrong_kind_is_refused() {
    let error = import_texts(Path::new(KEEPALIVED), "frontend api\n  bind :6443\n", None)
        .expect_err("haproxy.cfg as keepalived.conf");
    assert!(
        error
            .to_string()
            .starts_with("keepalived.conf:1: `frontend`: no global_defs"),
        "{error}"
    );
    let error = import_texts(
        Path::new(KEEPALIVED),
        &in_instance(""),
        Some((Path::new(HAPROXY), "# haproxy\nvrrp_instance VI_1 {\n}\n")),
    )
    .expect_err("keepalived.conf as haproxy.cfg");
    assert!(
        error
            .to_string()
            .starts_with("haproxy.cfg:2: no global, defaults"),
        "{error}"
    );
    // Empty files give nothing to serve, which vipd refuses: an error, not an empty output.
    for haproxy in [None, Some((Path::new(HAPROXY), ""))] {
        let error = import_texts(Path::new(KEEPALIVED), "# nothing yet\n", haproxy)
            .expect_err("nothing to serve");
        assert!(
            matches!(error, ImportError::NothingImported { .. }),
            "{error}"
        );
    }
}

#[test]
fn a_haproxy_script_file_without_frontends_to_replace_it_is_not_said_to_be_replaced() {
    let text = format!(
        "vrrp_script chk {{\n  script \"/nonexistent/keepalived/check_haproxy.sh\"\n}}\n{}",
        in_instance("    track_script {\n        chk\n    }")
    );
    let imported = translate(&text, None);
    let warnings = warnings(&imported);
    assert!(
        warnings
            .iter()
            .any(|warning| warning
                .starts_with("keepalived.conf:6: track_script chk follows HAProxy")),
        "{warnings:#?}"
    );
    assert!(
        !warnings
            .iter()
            .any(|warning| warning.contains("replace it")),
        "{warnings:#?}"
    );
}

#[test]
fn an_untracked_haproxy_check_is_named_too() {
    let text = format!(
        "vrrp_script chk_haproxy {{\n  script \"pidof haproxy\"\n}}\n{}",
        in_instance("")
    );
    let imported = translate(&text, None);
    assert_warned(
        &imported,
        "keepalived.conf:1: vrrp_script chk_haproxy follows HAProxy, which vipd replaces, and no instance tracks it: skipped",
    );
}

#[test]
fn kubeadm_style_checks_over_http_check_connect_ssl() {
    // The kubeadm HA guide's haproxy.cfg: mode http in defaults, tcp in the sections, and TLS
    // checks from `http-check connect ssl` rather than `check-ssl`.
    let imported = proxy(
        "defaults\n  mode http\n  timeout check 10s\nfrontend apiserver\n  bind *:6443\n  mode tcp\n  \
         default_backend apiserverbackend\nbackend apiserverbackend\n  option httpchk\n  \
         http-check connect ssl\n  http-check send meth GET uri /healthz\n  http-check expect status 200\n  \
         mode tcp\n  balance roundrobin\n  server cp1 198.51.100.21:6443 check verify none\n",
    );
    let backend = &imported.config.backends[0];
    let HealthKind::Https { http, tls_verify } = &backend.health.kind else {
        panic!("{:?}", backend.health.kind)
    };
    assert_eq!(http.path, "/healthz");
    assert_eq!(*tls_verify, TlsVerify::None);
    assert_eq!(
        backend.health.timeout,
        Duration::from_secs(2),
        "no longer than the interval"
    );
    assert!(
        !warnings(&imported)
            .iter()
            .any(|warning| warning.contains("mode http")),
        "the sections are tcp: {:#?}",
        imported.warnings
    );
}

#[test]
fn a_relative_program_is_skipped_with_what_to_write() {
    let text = format!(
        "vrrp_script chk {{\n  script \"check.sh --fast\"\n}}\n{}",
        in_instance("    notify_master \"vip-up\"\n    track_script {\n        chk\n    }")
    );
    let imported = translate(&text, None);
    assert!(imported.config.scripts.is_empty());
    let instance = only_instance(&imported);
    assert!(instance.track.is_empty() && instance.notify.master.is_none());
    assert_warned(
        &imported,
        "keepalived.conf:2: `check.sh` is not an absolute path (keepalived searched PATH; vipd runs exactly the path written): skipped; write it as `[/full/path/to/check.sh, ...]`",
    );
    assert_warned(
        &imported,
        "keepalived.conf:7: track_script chk: no usable vrrp_script of that name: skipped",
    );
    assert_warned_starting(
        &imported,
        "keepalived.conf:5: `vip-up` is not an absolute path",
    );
}

#[test]
fn observe_layer4_error_limit_and_timeout_queue_are_mapped() {
    let imported = proxy(
        "frontend web\n  bind 198.51.100.50:80\n  default_backend pool\nbackend pool\n  \
         timeout queue 7s\n  \
         server a 198.51.100.21:80 check observe layer4 error-limit 5 on-error mark-down\n  \
         server b 198.51.100.22:80 check observe layer4 error-limit 5 on-error mark-down\n",
    );
    let backend = &imported.config.backends[0];
    assert_eq!(backend.health.error_limit, 5);
    assert_eq!(backend.timeout.queue, Duration::from_secs(7));
    assert!(
        !warnings(&imported)
            .iter()
            .any(|warning| warning.contains("observe") || warning.contains("queue")),
        "{:#?}",
        warnings(&imported)
    );

    let imported = proxy(
        "frontend web\n  bind 198.51.100.50:80\n  default_backend pool\nbackend pool\n  \
         server a 198.51.100.21:80 check observe layer4\n",
    );
    assert_eq!(imported.config.backends[0].health.error_limit, 10);
    assert!(
        warnings(&imported)
            .iter()
            .any(|warning| warning.contains("on-error fastinter")),
        "{:#?}",
        warnings(&imported)
    );
    let imported = proxy(
        "frontend web\n  bind 198.51.100.50:80\n  default_backend pool\nbackend pool\n  \
         server a 198.51.100.21:80 check\n",
    );
    assert_eq!(imported.config.backends[0].health.error_limit, 3);
}

#[test]
fn tcp_keepalive_options_and_timings_map_to_each_side() {
    let haproxy = "\
frontend api
    bind 198.51.100.50:6443
    option clitcpka
    clitcpka-idle 300
    clitcpka-intvl 30s
    default_backend apis
backend apis
    no option srvtcpka
    server m1 198.51.100.21:6443 check
";
    let imported = translate(&in_instance(""), Some(haproxy));
    let frontend = &imported.config.frontends[0];
    let keepalive = frontend.tcp_keepalive.expect("client keepalive on");
    assert_eq!(keepalive.idle, std::time::Duration::from_secs(300));
    assert_eq!(keepalive.interval, std::time::Duration::from_secs(30));
    assert_eq!(keepalive.count, 6, "vipd's default where HAProxy gave none");
    assert_eq!(
        imported.config.backends[0].tcp_keepalive, None,
        "{}",
        imported.yaml
    );
    assert!(
        !warnings(&imported)
            .iter()
            .any(|warning| warning.contains("tcpka")),
        "{:?}",
        warnings(&imported)
    );
}
