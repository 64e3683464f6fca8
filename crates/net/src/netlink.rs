//! The rtnetlink connection shared by the address manager, the monitors and the virtual MAC.

use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use rtnetlink::{Handle, MulticastGroup};
use tokio::task::JoinHandle;

use crate::NetError;

pub(crate) type Notifications =
    UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// A netlink socket whose protocol task runs on the current tokio runtime until dropped.
#[derive(Debug)]
pub(crate) struct NetlinkConnection {
    handle: Handle,
    task: JoinHandle<()>,
}

impl NetlinkConnection {
    pub(crate) fn open() -> Result<Self, NetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetError::NetlinkSocket { source })?;
        Ok(Self {
            handle,
            task: tokio::spawn(connection),
        })
    }

    /// A connection subscribed to `groups`; the notifications arrive on the returned receiver.
    pub(crate) fn subscribe(groups: &[MulticastGroup]) -> Result<(Self, Notifications), NetError> {
        let (connection, handle, notifications) = rtnetlink::new_multicast_connection(groups)
            .map_err(|source| NetError::NetlinkSocket { source })?;
        Ok((
            Self {
                handle,
                task: tokio::spawn(connection),
            },
            notifications,
        ))
    }

    pub(crate) fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for NetlinkConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn interface_index(name: &str) -> Result<u32, NetError> {
    nix::net::if_::if_nametoindex(name).map_err(|_| NetError::NoSuchInterface {
        interface: name.to_owned(),
    })
}
