//! SIGHUP and the control server: a changed `control.listen` moves it, a changed token file
//! guards `/api/v1` with the new token at once, and a listen address that cannot be bound leaves
//! the running server as it was. No restart, no VIP touched.

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

fn hang_up(vipd: &LabProcess) {
    kill(
        Pid::from_raw(i32::try_from(vipd.pid()).expect("pid fits")),
        Signal::SIGHUP,
    )
    .expect("SIGHUP");
}

fn log_of(path: &Path) -> String {
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
