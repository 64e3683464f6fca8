//! The announce devices on a real kernel: a TUN device exists, up and without an IPv6
//! link-local address, exactly as long as its value lives; a second holder of the name is
//! refused.

use std::net::IpAddr;

use vipd_lab::{Lab, e2e_enabled};
use vipd_net::{AddressManager as _, LinkAdmin, NetlinkAddresses, TunDevice, Vip};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

#[test]
fn a_tun_device_and_its_addresses_live_exactly_as_long_as_its_holder() {
    if !e2e_enabled("a_tun_device_and_its_addresses_live_exactly_as_long_as_its_holder") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let vip: IpAddr = "203.0.113.100".parse().unwrap();
    let (while_held, second, after) = lab
        .in_host(0, move || {
            runtime().block_on(async move {
                let links = LinkAdmin::open().unwrap();
                let device = TunDevice::open("vipd-announce", &links).await.unwrap();
                let addresses = NetlinkAddresses::new().unwrap();
                addresses
                    .add(&Vip::new(device.name(), vip, 32))
                    .await
                    .unwrap();
                let while_held = ip(&["-o", "addr", "show", "dev", "vipd-announce"]);
                let second = TunDevice::open("vipd-announce", &links).await;
                drop(device);
                let after = ip(&["-o", "link", "show", "dev", "vipd-announce"]);
                (while_held, second.is_err(), after)
            })
        })
        .unwrap();
    assert!(while_held.contains("203.0.113.100/32"), "{while_held}");
    assert!(
        !while_held.contains("fe80::"),
        "no link-local address: {while_held}"
    );
    assert!(second, "a second holder of the name is refused");
    assert!(after.is_empty(), "the device outlived its holder: {after}");
}

/// `ip ARGS` in the calling thread's namespace; its stdout, empty when it fails.
fn ip(args: &[&str]) -> String {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_persistent_device_of_the_name_is_taken_over_and_dies_with_its_holder() {
    if !e2e_enabled("a_persistent_device_of_the_name_is_taken_over_and_dies_with_its_holder") {
        return;
    }
    let lab = Lab::new(1).unwrap();
    lab.run(
        0,
        &["ip", "tuntap", "add", "dev", "vipd-announce", "mode", "tun"],
    )
    .unwrap();
    let after = lab
        .in_host(0, move || {
            runtime().block_on(async move {
                let links = LinkAdmin::open().unwrap();
                let device = TunDevice::open("vipd-announce", &links).await.unwrap();
                drop(device);
                ip(&["-o", "link", "show", "dev", "vipd-announce"])
            })
        })
        .unwrap();
    assert!(
        after.is_empty(),
        "a persistent device outlived vipd: {after}"
    );
}
