//! `vipd release`: what a daemon that died without a shutdown (SIGKILL, the OOM killer, a crash)
//! could not do, done for it by the service manager once the process is gone
//! (docs/design/vrrp.md, "Restart after a crash"; docs/operations.md, "Crash and restart").
//!
//! For each instance whose VIPs the host still holds (so this node was its master), it sends one
//! priority-0 advert, so the backup takes over after Skew_Time (RFC 9568 6.4.2) as after a clean
//! stop, and removes the VIPs, so the dead master no longer answers for them beside the new one.
//! An instance whose VIPs are not on the host (a backup, or a clean stop) is sent nothing: a
//! priority-0 advert from a node that is not master would only make the backups count down.
//!
//! The macvlan of a `virtual_mac` instance is deleted too, master or backup, after the advert
//! (which leaves from it): it carries the VRRP virtual MAC, which must not stay on a node no
//! vipd runs on. Only a macvlan of the configured name on the instance's interface is.

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use vipd_config::{Config, VrrpInstance};
use vipd_net::{AddressManager as _, VrrpTransport as _};
use vipd_vrrp::{Priority, VirtualRouter};

use super::host::Host;
use super::instance;
use super::mapping;

/// What was done for one instance.
#[derive(Debug)]
pub struct Released {
    pub instance: String,
    /// The VIPs found on the host, all removed unless `removal_failed` says otherwise.
    pub vips: Vec<IpAddr>,
    /// Why the priority-0 advert could not be sent, if it could not (the VIPs are removed anyway).
    pub advert_failed: Option<String>,
    /// The VIPs that could not be removed, with why.
    pub removal_failed: Vec<(IpAddr, String)>,
    /// The virtual MAC interface deleted, if one was left.
    pub virtual_mac: Option<String>,
    /// Why the virtual MAC interface could not be deleted, if it could not.
    pub virtual_mac_failed: Option<String>,
}

/// Releases every instance of `config` whose VIPs or virtual MAC interface `host` holds; the
/// instances it had nothing to do for are not listed.
pub async fn release<H: Host>(host: &H, config: &Config) -> Vec<Released> {
    let mut released = Vec::new();
    for instance in &config.vrrp {
        if let Some(done) = release_instance(host, instance).await {
            released.push(done);
        }
    }
    released
}

async fn release_instance<H: Host>(host: &H, instance: &VrrpInstance) -> Option<Released> {
    let addresses = host.addresses();
    let mut held = Vec::new();
    for vip in mapping::vips(instance) {
        // Unreadable counts as held: removing an absent address is harmless.
        if addresses.contains(&vip).await.unwrap_or(true) {
            held.push(vip);
        }
    }
    let mut advert_failed = None;
    let mut removal_failed = Vec::new();
    if !held.is_empty() {
        // The advert first: the backup's Skew_Time starts at once, while the removals run.
        advert_failed = send_release(host, instance)
            .await
            .err()
            .map(|error| format!("{error:#}"));
        for vip in &held {
            if let Err(error) = addresses.remove(vip).await {
                removal_failed.push((vip.address, error.to_string()));
            }
        }
    }
    let (virtual_mac, virtual_mac_failed) = match &instance.virtual_mac {
        None => (None, None),
        Some(virtual_mac) => match host.remove_left_virtual_mac(instance, virtual_mac).await {
            Ok(removed) => (removed.then(|| virtual_mac.interface.clone()), None),
            Err(error) => (None, Some(format!("{error:#}"))),
        },
    };
    if held.is_empty() && virtual_mac.is_none() && virtual_mac_failed.is_none() {
        return None;
    }
    Some(Released {
        instance: instance.name.clone(),
        vips: held.iter().map(|vip| vip.address).collect(),
        advert_failed,
        removal_failed,
        virtual_mac,
        virtual_mac_failed,
    })
}

/// One priority-0 advert to the group or to every unicast peer, as the daemon's shutdown sends.
async fn send_release<H: Host>(host: &H, instance: &VrrpInstance) -> Result<()> {
    let transport = host.transport(instance)?;
    let source = transport.source_address();
    let router = VirtualRouter::new(mapping::router_config(instance, source)?)
        .with_context(|| format!("vrrp {}", instance.name))?;
    let advert = router.advertisement(Priority::RELEASE);
    let failures =
        instance::send_advertisement(&transport, &advert, mapping::checksum_form(instance))
            .await
            .with_context(|| format!("vrrp {}: building the advert", instance.name))?;
    if let Some((destination, error)) = failures.into_iter().next() {
        return Err(error).with_context(|| format!("sending to {destination}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use vipd_net::{MemoryLan, Vip, VrrpTransport as _};
    use vipd_vrrp::Advertisement;

    use super::*;
    use crate::daemon::host::MemoryHost;

    const NODE: &str = "198.51.100.11";
    const VIP: &str = "198.51.100.50";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn config() -> Config {
        let yaml = format!(
            "vrrp:\n  - {{ name: api, interface: eth0, vrid: 51, priority: 150, vips: [{VIP}/24] }}\n"
        );
        Config::from_yaml_str(&yaml).expect("valid").0
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_masters_vips_are_removed_after_a_priority_zero_advert() {
        let lan = MemoryLan::new();
        let observer = lan.join(ip("198.51.100.99"));
        let host = MemoryHost::new(&lan, ip(NODE));
        let addresses = Arc::clone(&host.addresses);
        let vip = Vip::new("eth0", ip(VIP), 24);
        addresses.add(&vip).await.expect("in memory");

        let released = release(&host, &config()).await;

        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!(released[0].vips, [ip(VIP)]);
        assert!(released[0].advert_failed.is_none(), "{released:?}");
        assert!(!addresses.contains(&vip).await.expect("in memory"));
        let received = tokio::time::timeout(Duration::from_secs(1), observer.recv())
            .await
            .expect("an advert")
            .expect("open LAN");
        let advert =
            Advertisement::from_bytes(&received.payload, received.source, received.destination)
                .expect("valid advert")
                .advertisement;
        assert_eq!(
            (received.source, advert.priority),
            (ip(NODE), Priority::RELEASE)
        );
        assert_eq!(advert.addresses, [ip(VIP)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_virtual_mac_interface_a_killed_daemon_left_is_removed_and_no_other() {
        let lan = MemoryLan::new();
        let host = MemoryHost::new(&lan, ip(NODE));
        host.virtual_macs
            .lock()
            .expect("not poisoned")
            .extend(["vrrp.51".to_owned(), "vrrp.52".to_owned()]);
        let yaml = format!(
            "vrrp:\n  - {{ name: api, interface: eth0, vrid: 51, priority: 150, vips: [{VIP}/24], virtual_mac: true }}\n"
        );
        let config = Config::from_yaml_str(&yaml).expect("valid").0;

        let released = release(&host, &config).await;

        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!(released[0].virtual_mac.as_deref(), Some("vrrp.51"));
        assert!(released[0].vips.is_empty(), "a backup's: {released:?}");
        assert_eq!(
            *host.virtual_macs.lock().expect("not poisoned"),
            ["vrrp.52"]
        );
        // Run again (a clean stop's ExecStopPost): nothing left to do.
        assert!(release(&host, &config).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_without_the_vips_sends_nothing() {
        let lan = MemoryLan::new();
        let observer = lan.join(ip("198.51.100.99"));
        let host = MemoryHost::new(&lan, ip(NODE));
        assert!(release(&host, &config()).await.is_empty());
        let heard = tokio::time::timeout(Duration::from_secs(5), observer.recv()).await;
        assert!(
            heard.is_err(),
            "a backup's release must stay silent: {heard:?}"
        );
    }
}
