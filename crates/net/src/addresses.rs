//! Virtual IP addresses: the [`AddressManager`] seam and its rtnetlink implementation.

use std::future::Future;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::NetError;
use crate::netlink::NetlinkConnection;
use crate::netlink_request::SyncRequests;

/// `EEXIST`: adding an address that is there already.
const EEXIST: i32 = 17;
/// `EADDRNOTAVAIL`: deleting an address that is not there.
const EADDRNOTAVAIL: i32 = 99;

/// One virtual IP on one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vip {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// IPv4 only: the address label (`ip addr ... label eth0:vip`); the kernel requires it to
    /// start with the interface name. Ignored for IPv6, which has no labels.
    pub label: Option<String>,
    /// The metric of the address's routes (`ip addr ... metric N`, IFA_RT_PRIORITY); `None`:
    /// the kernel's default.
    pub route_metric: Option<u32>,
}

impl Vip {
    /// A VIP without label.
    pub fn new(interface: &str, address: IpAddr, prefix_len: u8) -> Self {
        Self {
            interface: interface.to_owned(),
            address,
            prefix_len,
            label: None,
            route_metric: None,
        }
    }

    /// Checks what the kernel would reject with a less helpful error.
    pub fn validate(&self) -> Result<(), NetError> {
        let max = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix_len > max {
            return Err(NetError::Invalid {
                what: "prefix length",
                detail: format!("/{} for {}", self.prefix_len, self.address),
            });
        }
        if let Some(label) = &self.label
            && self.address.is_ipv4()
            && (!label.starts_with(&self.interface) || label.len() > 15)
        {
            return Err(NetError::Invalid {
                what: "address label",
                detail: format!(
                    "{label:?} must start with {} and be at most 15 bytes",
                    self.interface
                ),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} on {}",
            self.address, self.prefix_len, self.interface
        )
    }
}

/// Whether a call changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The host changed (an address was added or removed).
    Applied,
    /// The host was already in the wanted state (idempotent success).
    AlreadyInPlace,
}

/// What [`AddressManager::reconcile`] had to fix: anything here is drift (someone else added or
/// removed an address), worth a counter and a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub added: Vec<Vip>,
    pub removed: Vec<Vip>,
}

/// Adds and removes VIPs. Both calls are idempotent: adding a present VIP or removing an absent
/// one is success ([`Change::AlreadyInPlace`]).
pub trait AddressManager: Send + Sync {
    fn add(&self, vip: &Vip) -> impl Future<Output = Result<Change, NetError>> + Send;
    fn remove(&self, vip: &Vip) -> impl Future<Output = Result<Change, NetError>> + Send;
    fn contains(&self, vip: &Vip) -> impl Future<Output = Result<bool, NetError>> + Send;

    /// Puts the host in the wanted state: every `present` VIP added, every `absent` one removed.
    /// Tries all of them and returns the first error after trying the rest.
    fn reconcile(
        &self,
        present: &[Vip],
        absent: &[Vip],
    ) -> impl Future<Output = Result<Reconciled, NetError>> + Send {
        async move {
            let mut report = Reconciled::default();
            let mut first_error = None;
            for vip in present {
                match self.add(vip).await {
                    Ok(Change::Applied) => report.added.push(vip.clone()),
                    Ok(Change::AlreadyInPlace) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            for vip in absent {
                match self.remove(vip).await {
                    Ok(Change::Applied) => report.removed.push(vip.clone()),
                    Ok(Change::AlreadyInPlace) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            first_error.map_or(Ok(report), Err)
        }
    }
}

/// The kernel's address table through rtnetlink: additions and removals answered in the
/// caller's thread (see `netlink_request` for why), lookups through the rtnetlink connection.
#[derive(Debug)]
pub struct NetlinkAddresses {
    connection: NetlinkConnection,
    requests: SyncRequests,
    /// A netlink socket runs one dump at a time and refuses a second with EBUSY; every instance
    /// asks at start (and every host check) at once, so the dumps take turns.
    dumps: tokio::sync::Mutex<()>,
}

impl NetlinkAddresses {
    /// Opens a netlink connection in the calling thread's network namespace. Needs a tokio
    /// runtime (the connection runs as a task, stopped when this value is dropped).
    pub fn new() -> Result<Self, NetError> {
        Ok(Self {
            connection: NetlinkConnection::open()?,
            requests: SyncRequests::open()?,
            dumps: tokio::sync::Mutex::new(()),
        })
    }

    fn handle(&self) -> Handle {
        self.connection.handle()
    }

    fn message(vip: &Vip) -> Result<AddressMessage, NetError> {
        vip.validate()?;
        let index = crate::netlink::interface_index(&vip.interface)?;
        let mut message = match vip.address {
            IpAddr::V4(v4) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(v4, vip.prefix_len)
                .build(),
            IpAddr::V6(v6) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(v6, vip.prefix_len)
                .build(),
        };
        match (&vip.address, &vip.label) {
            (IpAddr::V4(_), Some(label)) => {
                message
                    .attributes
                    .push(AddressAttribute::Label(label.clone()));
            }
            // A VIP must be usable the moment we are master: DAD would hold it tentative (and
            // could fail it against the old master still answering) — keepalived does the same.
            (IpAddr::V6(_), _) => {
                message
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            (IpAddr::V4(_), None) => {}
        }
        if let Some(metric) = vip.route_metric {
            message
                .attributes
                .push(AddressAttribute::RoutePriority(metric));
        }
        Ok(message)
    }
}

fn errno_of(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}

impl AddressManager for NetlinkAddresses {
    async fn add(&self, vip: &Vip) -> Result<Change, NetError> {
        let message = RouteNetlinkMessage::NewAddress(Self::message(vip)?);
        let subject = || vip.to_string();
        match self
            .requests
            .request(message, NLM_F_CREATE | NLM_F_EXCL, "add address", &subject)
        {
            Ok(()) => Ok(Change::Applied),
            Err(NetError::Netlink { source, .. }) if errno_of(&source) == Some(EEXIST) => {
                Ok(Change::AlreadyInPlace)
            }
            Err(error) => Err(error),
        }
    }

    async fn remove(&self, vip: &Vip) -> Result<Change, NetError> {
        let message = RouteNetlinkMessage::DelAddress(Self::message(vip)?);
        let subject = || vip.to_string();
        match self
            .requests
            .request(message, 0, "remove address", &subject)
        {
            Ok(()) => Ok(Change::Applied),
            Err(NetError::Netlink { source, .. }) if errno_of(&source) == Some(EADDRNOTAVAIL) => {
                Ok(Change::AlreadyInPlace)
            }
            Err(error) => Err(error),
        }
    }

    async fn contains(&self, vip: &Vip) -> Result<bool, NetError> {
        let index = crate::netlink::interface_index(&vip.interface)?;
        let _one_dump_at_a_time = self.dumps.lock().await;
        let mut addresses = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(vip.address)
            .set_prefix_length_filter(vip.prefix_len)
            .execute();
        // Read the dump to its end, so that the kernel has finished it when the lock is released.
        let mut found = false;
        loop {
            match addresses.try_next().await {
                Ok(Some(_)) => found = true,
                Ok(None) => return Ok(found),
                Err(source) => {
                    return Err(NetError::Netlink {
                        action: "list addresses",
                        subject: vip.to_string(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_what_the_kernel_would_refuse() {
        let mut vip = Vip::new("eth0", "198.51.100.100".parse().unwrap(), 24);
        assert!(vip.validate().is_ok());
        vip.prefix_len = 33;
        assert!(vip.validate().is_err());
        vip.prefix_len = 24;
        vip.label = Some("eth0:vip".into());
        assert!(vip.validate().is_ok());
        vip.label = Some("vip".into());
        assert!(
            vip.validate().is_err(),
            "label must start with the interface name"
        );
        vip.label = Some("eth0:a-very-long-label".into());
        assert!(vip.validate().is_err(), "labels are at most 15 bytes");
        let v6 = Vip::new("eth0", "2001:db8::1".parse().unwrap(), 128);
        assert!(v6.validate().is_ok());
        assert!(
            Vip {
                prefix_len: 129,
                ..v6
            }
            .validate()
            .is_err()
        );
    }
}
