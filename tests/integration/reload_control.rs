//! SIGHUP and the control server: a changed `control.listen` moves it, a changed token file
//! guards `/api/v1` with the new token at once, and a listen address that cannot be bound leaves
//! the running server as it was. No restart, no VIP touched. And (`in_place`) a changed
//! instance on a running master: what leaves the election alone moves nothing.

use std::path::Path;
use std::time::Duration;

use crate::support::{Scratch, http_request, start_vipd, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vipd_lab::http::Client;
use vipd_lab::{Lab, LabProcess};

const NODE: usize = 0;

fn config(listen: &str, token_file: &Path) -> String {
    format!(
        "node: lb1
control:
  listen: \"{listen}\"
  token_file: {token}
vrrp:
  - name: api
    interface: eth0
    vrid: 61
    priority: 150
    advert_interval: 100ms
    vips: [{vip}/24]
",
        token = token_file.display(),
        vip = Lab::vip_v4(0),
    )
}

/// The status code of an admin action at `listen` with `token`, or the connect error. The
/// server named does not exist: 404 means the token was accepted, 401 that it was not.
fn action_status(lab: &Lab, listen: &str, token: &str) -> Result<u16, String> {
    let client = Client::new().bearer(token);
    let path = "/api/v1/servers/none/none/drain";
    http_request(lab, NODE, client, "POST", listen, path).map(|response| response.status)
}

pub(crate) fn hang_up(vipd: &LabProcess) {
    kill(
        Pid::from_raw(i32::try_from(vipd.pid()).expect("pid fits")),
        Signal::SIGHUP,
    )
    .expect("SIGHUP");
}

pub(crate) fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn sighup_moves_the_control_server_and_changes_its_token() {
    if !vipd_lab::e2e_enabled("sighup_moves_the_control_server_and_changes_its_token") {
        return;
    }
    let lab = Lab::new(1).expect("lab");
    let scratch = Scratch::new("reload-control");
    let first_token = scratch.write("first.token", "alpha\n");
    let second_token = scratch.write("second.token", "beta\n");
    let config_path = scratch.write("vipd.yaml", &config("127.0.0.1:9650", &first_token));
    let log = scratch.0.join("vipd.log");
    let vipd = start_vipd(&lab, NODE, &config_path, &log);
    let answers = |listen: &str, token: &str, code: u16| {
        wait_until(Duration::from_secs(10), || {
            action_status(&lab, listen, token) == Ok(code)
        })
        .is_some()
    };
    assert!(
        answers("127.0.0.1:9650", "alpha", 404),
        "the first token is not accepted on 9650: {:?}\n{}",
        action_status(&lab, "127.0.0.1:9650", "alpha"),
        log_of(&log)
    );
    assert_eq!(action_status(&lab, "127.0.0.1:9650", "beta"), Ok(401));

    // A new address and a new token file: the server moves, the old port closes.
    std::fs::write(&config_path, config("127.0.0.1:9651", &second_token)).expect("rewrite");
    hang_up(&vipd);
    assert!(
        answers("127.0.0.1:9651", "beta", 404),
        "SIGHUP did not move the control server to 9651 with the new token: {:?}\n{}",
        action_status(&lab, "127.0.0.1:9651", "beta"),
        log_of(&log)
    );
    assert_eq!(action_status(&lab, "127.0.0.1:9651", "alpha"), Ok(401));
    assert!(
        action_status(&lab, "127.0.0.1:9650", "beta").is_err(),
        "the old control port still answers"
    );

    // The same address, the token file's content changed: the new token only.
    std::fs::write(&second_token, "gamma\n").expect("rewrite the token");
    hang_up(&vipd);
    assert!(
        answers("127.0.0.1:9651", "gamma", 404),
        "SIGHUP did not pick up the changed token: {:?}\n{}",
        action_status(&lab, "127.0.0.1:9651", "gamma"),
        log_of(&log)
    );
    assert_eq!(action_status(&lab, "127.0.0.1:9651", "beta"), Ok(401));

    // An address this host does not have: logged, and the running server stays.
    std::fs::write(&config_path, config("203.0.113.77:9652", &second_token)).expect("rewrite");
    hang_up(&vipd);
    assert!(
        wait_until(Duration::from_secs(10), || log_of(&log)
            .contains("control server stays at"))
        .is_some(),
        "no error logged for an unbindable control.listen:\n{}",
        log_of(&log)
    );
    assert_eq!(action_status(&lab, "127.0.0.1:9651", "gamma"), Ok(404));
    drop(vipd);
}

mod in_place {
    //! SIGHUP with a changed instance on a running master: a VIP added, a notify hook and a
    //! tracker weight changed apply in place (docs/design/vrrp.md, Reload). Both nodes keep
    //! their state, the held VIP never leaves, a client looping through it is never refused,
    //! and the new VIP answers.

    use std::fmt::Write as _;
    use std::net::{IpAddr, SocketAddr};
    use std::path::Path;
    use std::time::Duration;

    use crate::support::takeover_probe::retrying_client;
    use crate::support::{
        Scratch, fetch, holds, instance_state, start_backend, start_vipd, status, wait_for_control,
        wait_until,
    };
    use vipd_lab::{AddressWatch, Lab};

    use super::{hang_up, log_of};

    const LB1: usize = 0;
    const LB2: usize = 1;
    const CLIENT: usize = 2;
    const BACKEND: usize = 3;
    const ANSWER: &str = "reload-in-place-backend";

    /// A node's file: instance `api` (VRID 62, 100 ms adverts) with `vips`, a file tracker of
    /// `weight`, a `notify.master` hook, and one frontend per VIP onto the backend.
    fn config(
        node: &str,
        priority: u8,
        vips: &[IpAddr],
        weight: i16,
        hook: &str,
        tracked: &Path,
        backend: IpAddr,
    ) -> String {
        let list: Vec<String> = vips.iter().map(|vip| format!("{vip}/24")).collect();
        let mut text = format!(
            "node: {node}
shutdown_grace: 1s
vrrp:
  - name: api
    interface: eth0
    vrid: 62
    priority: {priority}
    advert_interval: 100ms
    vips: [{}]
    track: [{{ file: {}, weight: {weight} }}]
    notify: {{ master: [{hook}] }}
frontends:
",
            list.join(", "),
            tracked.display()
        );
        for (index, vip) in vips.iter().enumerate() {
            let _ = writeln!(
                text,
                "  - {{ name: web{index}, bind: [\"{vip}:80\"], backend: web }}"
            );
        }
        let _ = write!(
            text,
            "backends:
  - name: web
    health: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}
    servers:
      - {{ name: b1, address: \"{backend}:8080\" }}
"
        );
        text
    }

    fn counter(lab: &Lab, host: usize, name: &str) -> serde_json::Value {
        status(lab, host).expect("status")["instances"][0]["counters"][name].clone()
    }

    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "one reload told in order: pair, client, SIGHUP, what every side saw"
    )]
    fn a_reload_that_adds_a_vip_and_changes_a_hook_and_a_weight_moves_nothing() {
        if !vipd_lab::e2e_enabled(
            "a_reload_that_adds_a_vip_and_changes_a_hook_and_a_weight_moves_nothing",
        ) {
            return;
        }
        let lab = Lab::new(4).expect("lab");
        let scratch = Scratch::new("reload-in-place");
        let _backend = start_backend(&lab, BACKEND, 8080, ANSWER);
        let backend = IpAddr::V4(lab.host(BACKEND).ipv4);
        let vip = IpAddr::V4(Lab::vip_v4(2));
        let new_vip = IpAddr::V4(Lab::vip_v4(3));
        let tracked = scratch.path("tracked");
        let lb1_path = scratch.write(
            "lb1.yaml",
            &config("lb1", 150, &[vip], -60, "/bin/true", &tracked, backend),
        );
        let lb2_path = scratch.write(
            "lb2.yaml",
            &config("lb2", 100, &[vip], -60, "/bin/true", &tracked, backend),
        );
        let (lb1_log, lb2_log) = (scratch.path("lb1.log"), scratch.path("lb2.log"));
        let logs = || {
            format!(
                "\n--- lb1 ---\n{}\n--- lb2 ---\n{}",
                log_of(&lb1_log),
                log_of(&lb2_log)
            )
        };
        let lb1 = start_vipd(&lab, LB1, &lb1_path, &lb1_log);
        assert!(
            wait_until(Duration::from_secs(10), || holds(&lab, LB1, vip)).is_some(),
            "lb1 alone never took the VIP{}",
            logs()
        );
        let _lb2 = start_vipd(&lab, LB2, &lb2_path, &lb2_log);
        wait_for_control(&lab, LB1);
        wait_for_control(&lab, LB2);
        let serves = |address: IpAddr| {
            fetch(&lab, CLIENT, SocketAddr::new(address, 80))
                .is_ok_and(|text| text.contains(ANSWER))
        };
        assert!(
            wait_until(Duration::from_secs(10), || serves(vip)
                && instance_state(&lab, LB2, "api").as_deref() == Some("backup"))
            .is_some(),
            "the pair never settled: {:?}{}",
            status(&lab, LB2),
            logs()
        );

        // The client: back-to-back requests through the VIP for 3 s; a failed attempt is
        // recorded (`retried`) even when a retry then succeeds.
        let client = retrying_client(
            &lab,
            CLIENT,
            SocketAddr::new(vip, 80),
            ANSWER,
            Duration::from_secs(3),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        let left = AddressWatch::removed(vip, Duration::from_secs(3))
            .start(&lab, LB1)
            .expect("address watch");
        std::thread::sleep(Duration::from_millis(500));
        std::fs::write(
            &lb1_path,
            config(
                "lb1",
                150,
                &[vip, new_vip],
                -70,
                "/bin/echo",
                &tracked,
                backend,
            ),
        )
        .expect("rewrite lb1's file");
        hang_up(&lb1);
        let new_vip_answers = wait_until(Duration::from_secs(5), || serves(new_vip));
        let record = client
            .join()
            .expect("client thread")
            .expect("in client host");
        let vip_left = left.wait().expect("address watch");
        eprintln!(
            "reload in place: {} requests answered, {} failed attempts, {} failed requests, \
             longest gap {:?}; the new VIP answered after {new_vip_answers:?}",
            record.answered,
            record.retried.len(),
            record.errors.len(),
            record.longest_gap
        );
        assert!(
            new_vip_answers.is_some(),
            "the new VIP never answered{}",
            logs()
        );
        assert!(record.answered > 0, "the client was never answered");
        assert!(
            record.errors.is_empty() && record.retried.is_empty(),
            "requests failed during the reload: {:?} / {:?}{}",
            record.retried,
            record.errors,
            logs()
        );
        assert_eq!(vip_left, None, "the held VIP left lb1{}", logs());
        assert_eq!(instance_state(&lab, LB1, "api").as_deref(), Some("master"));
        assert_eq!(instance_state(&lab, LB2, "api").as_deref(), Some("backup"));
        assert_eq!(counter(&lab, LB1, "became_master"), 1, "{}", logs());
        assert_eq!(counter(&lab, LB1, "priority_zero_sent"), 0, "{}", logs());
        assert_eq!(counter(&lab, LB2, "became_master"), 0, "{}", logs());
        let lb1_status = status(&lab, LB1).expect("status");
        assert_eq!(
            lb1_status["instances"][0]["trackers"][0]["weight"], -70,
            "{lb1_status}"
        );
        assert!(
            log_of(&lb1_log).contains("changed in place"),
            "no in-place reload logged{}",
            logs()
        );
    }
}
