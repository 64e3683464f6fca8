//! The optional VRRP virtual MAC (RFC 5798 §7.3): a macvlan interface on the parent NIC with
//! 00-00-5E-00-01-{VRID} (IPv4) or 00-00-5E-00-02-{VRID} (IPv6). Off by default: vipd uses the
//! NIC's own MAC and relies on gratuitous ARP, like keepalived without `use_vmac`.
//!
//! Every router of the VRID has the same macvlan with the same MAC, so the one rule that matters
//! is that only the master ever sends from it: two ports of a switch claiming one MAC move the
//! switch's forwarding entry back and forth. Hence:
//! - an IPv4 macvlan is up all the time, with IPv6 disabled before it comes up (no DAD, router
//!   solicitation or MLD report from the shared MAC), as keepalived does;
//! - an IPv6 macvlan is up only while its router is master, and has no address of its own: a
//!   backup's sends nothing at all, and one that steps down goes down before its VIPs are
//!   removed, so the kernel sends no MLD report for the groups it leaves ([`LinkAdmin`]);
//! - the macvlan answers ARP only for its own addresses (the VIPs, which only the master holds),
//!   and the parent neither answers for them nor names them in its own ARP requests
//!   (`arp_ignore`, `arp_filter`, `arp_announce`); IPv6 neighbour discovery answers per
//!   interface already;
//! - adverts are received on the parent (joining the group on the macvlan would send IGMP / MLD
//!   reports from the shared MAC) and sent from the macvlan, see [`VirtualMacTransport`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode};
use rtnetlink::{LinkMacVlan, LinkUnspec};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{info, warn};
use vipd_vrrp::wire::IP_PROTOCOL;

use crate::interface::Interface;
use crate::netlink::{NetlinkConnection, interface_index};
use crate::sysctl::InterfaceSetting;
use crate::vrrp_socket::{Family, VrrpSocket, VrrpSocketConfig, set_advert_send_options};
use crate::{NetError, ReceivedAdvert, TransportStats, VrrpTransport};

/// The virtual router MAC of `vrid` for `family` (RFC 5798 §7.3).
pub fn virtual_mac_address(vrid: u8, family: Family) -> [u8; 6] {
    let family_byte = match family {
        Family::Ipv4 => 0x01,
        Family::Ipv6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, family_byte, vrid]
}

/// Settings of every macvlan, written before it comes up (keepalived sets the same).
const MACVLAN_SETTINGS: [(Family, &str, i64); 4] = [
    // Answer ARP only for addresses on the macvlan (the VIPs, on the master), never for the
    // parent's address, which would teach the LAN the shared MAC for it.
    (Family::Ipv4, "arp_ignore", 1),
    // Traffic for the VIP arrives on the macvlan while the route back to the sender leaves
    // through the parent: strict reverse-path filtering would drop it.
    (Family::Ipv4, "rp_filter", 0),
    // Packets whose source is one of this host's addresses are still taken in on the macvlan.
    (Family::Ipv4, "accept_local", 1),
    // Removing one VIP must not take the other VIPs of its subnet with it.
    (Family::Ipv4, "promote_secondaries", 1),
];

/// An IPv4 macvlan has no IPv6 at all: a backup's would otherwise send DAD, RS and MLD from the
/// shared MAC.
const IPV4_MACVLAN_SETTINGS: [(Family, &str, i64); 1] = [(Family::Ipv6, "disable_ipv6", 1)];

/// An IPv6 macvlan is up only while its router is master (see [`LinkAdmin`]) and has no address
/// of its own: adverts leave with the parent's link-local address, and an address of its own
/// would be defended (DAD) and reported (MLD) from the shared MAC.
const IPV6_MACVLAN_SETTINGS: [(Family, &str, i64); 7] = [
    // IN6_ADDR_GEN_MODE_NONE: no link-local address when the link comes up.
    (Family::Ipv6, "addr_gen_mode", 1),
    (Family::Ipv6, "accept_dad", 0),
    (Family::Ipv6, "dad_transmits", 0),
    (Family::Ipv6, "accept_ra", 0),
    (Family::Ipv6, "router_solicitations", 0),
    // A forwarding interface joins the all-routers groups, and reports them.
    (Family::Ipv6, "forwarding", 0),
    // Last, once nothing above would make it talk.
    (Family::Ipv6, "disable_ipv6", 0),
];

/// Settings of the parent while a virtual MAC uses it.
const PARENT_SETTINGS: [(&str, i64); 3] = [
    // Do not answer ARP for the VIPs, which live on the macvlan (keepalived sets it too).
    ("arp_ignore", 1),
    // Answer ARP for the parent's own address only where the reply would leave (keepalived).
    ("arp_filter", 1),
    // Replies from a VIP leave through the parent (its route to the subnet comes first), and
    // the ARP request for their next hop would name the VIP as sender with the parent's MAC:
    // every host that hears it would bind the VIP to the parent's MAC. Name the parent's own
    // address instead.
    ("arp_announce", 2),
];

/// Parents whose ARP settings a virtual MAC of this process changed, by network namespace and
/// name: how many virtual MACs use each, and the values from before the first, which are put
/// back when the last one is removed.
static CHANGED_PARENTS: Mutex<BTreeMap<(u64, String), ParentSettings>> =
    Mutex::new(BTreeMap::new());

struct ParentSettings {
    users: usize,
    before: Vec<(InterfaceSetting, i64)>,
}

/// The network namespace of the calling thread, to keep parents of two namespaces apart.
fn namespace_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |meta| meta.ino())
}

fn hold_parent(parent: &str) -> Result<(), NetError> {
    let key = (namespace_id(), parent.to_owned());
    let mut parents = CHANGED_PARENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(held) = parents.get_mut(&key) {
        held.users += 1;
        return Ok(());
    }
    let mut before = Vec::new();
    for (name, wanted) in PARENT_SETTINGS {
        let setting = InterfaceSetting::ipv4(parent, name);
        let value = setting.read()?;
        if value != wanted {
            setting.write(wanted)?;
            before.push((setting, value));
        }
    }
    parents.insert(key, ParentSettings { users: 1, before });
    Ok(())
}

fn release_parent(parent: &str) -> Result<(), NetError> {
    let key = (namespace_id(), parent.to_owned());
    let mut parents = CHANGED_PARENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(held) = parents.get_mut(&key) else {
        return Ok(());
    };
    held.users -= 1;
    if held.users > 0 {
        return Ok(());
    }
    let before = parents
        .remove(&key)
        .map(|held| held.before)
        .unwrap_or_default();
    for (setting, value) in before {
        setting.write(value)?;
    }
    Ok(())
}

/// A macvlan interface carrying the virtual MAC; removed with [`VirtualMac::remove`].
#[derive(Debug)]
pub struct VirtualMac {
    connection: NetlinkConnection,
    name: String,
    index: u32,
    parent: String,
    mac: [u8; 6],
    family: Family,
    holds_parent: bool,
    /// How many times [`VirtualMac::recreate`] put the interface back.
    recreated: u64,
}

impl VirtualMac {
    /// Creates (or adopts, when a macvlan with this name exists on `parent`, e.g. left by a
    /// killed run) the macvlan `name` on `parent` in VEPA mode, configures it and its parent
    /// as the module doc says, sets the virtual MAC and brings it up (IPv4). Put the VIPs on
    /// `name`, send adverts and announcements from it. Needs CAP_NET_ADMIN and a writable
    /// `/proc/sys`.
    ///
    /// An IPv6 macvlan is left down (see the module doc). An interface `name` that is not a
    /// macvlan is never touched.
    pub async fn create(
        parent: &str,
        name: &str,
        vrid: u8,
        family: Family,
    ) -> Result<Self, NetError> {
        let connection = NetlinkConnection::open()?;
        let parent_index = interface_index(parent)?;
        let mac = virtual_mac_address(vrid, family);
        let created = match interface_index(name) {
            Err(_) => {
                add_macvlan(&connection, parent, parent_index, name, mac).await?;
                true
            }
            Ok(index) => match macvlan_parent(&connection, index, name).await? {
                Some(found) if found == parent_index => {
                    info!(
                        interface = name,
                        parent, "adopting an existing virtual MAC interface"
                    );
                    false
                }
                Some(_) => {
                    // A macvlan of ours from an earlier configuration on another parent.
                    warn!(
                        interface = name,
                        parent, "virtual MAC interface is on another parent; recreating it"
                    );
                    delete_link(&connection, index, name).await?;
                    add_macvlan(&connection, parent, parent_index, name, mac).await?;
                    true
                }
                None => {
                    return Err(NetError::Invalid {
                        what: "virtual MAC interface",
                        detail: format!(
                            "{name} exists and is not a macvlan; vipd does not take over an \
                             interface it did not create"
                        ),
                    });
                }
            },
        };
        let mut virtual_mac = Self {
            connection,
            name: name.to_owned(),
            index: interface_index(name)?,
            parent: parent.to_owned(),
            mac,
            family,
            holds_parent: false,
            recreated: 0,
        };
        // The parent's settings first, before the macvlan comes up with the VIPs' MAC.
        let configured = match hold_parent(parent) {
            Ok(()) => {
                virtual_mac.holds_parent = true;
                virtual_mac.configure().await
            }
            Err(error) => Err(error),
        };
        match configured {
            Ok(()) => Ok(virtual_mac),
            Err(error) => {
                if created {
                    // Do not leave a half-configured interface with the shared MAC behind.
                    let _ = virtual_mac.remove().await;
                }
                Err(error)
            }
        }
    }

    /// Puts the interface back after someone deleted it (`ip link del`), with the same parent,
    /// MAC, mode and settings; adopts it instead when it is back already. The parent's ARP
    /// settings are still held. Up (IPv4) or down (IPv6) as after [`VirtualMac::create`]: the
    /// instance's link watch and VIP reconciliation do the rest.
    pub async fn recreate(&mut self) -> Result<(), NetError> {
        let parent_index = interface_index(&self.parent)?;
        let adoptable = match interface_index(&self.name) {
            Ok(index) => {
                macvlan_parent(&self.connection, index, &self.name).await? == Some(parent_index)
            }
            Err(_) => false,
        };
        if !adoptable {
            add_macvlan(
                &self.connection,
                &self.parent,
                parent_index,
                &self.name,
                self.mac,
            )
            .await?;
        }
        self.index = interface_index(&self.name)?;
        self.configure().await?;
        self.recreated += 1;
        Ok(())
    }

    /// How many times [`VirtualMac::recreate`] put the interface back.
    pub fn recreated(&self) -> u64 {
        self.recreated
    }

    /// Writes the macvlan's settings, its MAC and its admin state (the parent's are
    /// [`hold_parent`]'s).
    async fn configure(&self) -> Result<(), NetError> {
        let (mac, family) = (self.mac, self.family);
        let by_family: &[(Family, &str, i64)] = match family {
            Family::Ipv4 => &IPV4_MACVLAN_SETTINGS,
            Family::Ipv6 => &IPV6_MACVLAN_SETTINGS,
        };
        for &(setting_family, name, value) in by_family.iter().chain(&MACVLAN_SETTINGS) {
            let setting = match setting_family {
                Family::Ipv4 => InterfaceSetting::ipv4(&self.name, name),
                Family::Ipv6 => InterfaceSetting::ipv6(&self.name, name),
            };
            setting.write(value)?;
        }
        // The kernel applies the larger of `all` and the interface's rp_filter.
        if InterfaceSetting::ipv4("all", "rp_filter")
            .read()
            .is_ok_and(|value| value == 1)
        {
            warn!(
                interface = %self.name,
                "net.ipv4.conf.all.rp_filter is 1 (strict), which overrides the virtual MAC \
                 interface's 0: traffic to its VIPs may be dropped; set it to 2 (loose) or 0"
            );
        }
        // An adopted interface may have another MAC, or be up or down: set both.
        let message = LinkUnspec::new_with_index(self.index).address(mac.to_vec());
        let message = match family {
            Family::Ipv4 => message.up(),
            // Down until the router is master; an adopted one may still hold a killed run's
            // VIPs, which going down removes without an MLD report.
            Family::Ipv6 => message.down(),
        };
        self.connection
            .handle()
            .link()
            .set(message.build())
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                action: "set link",
                subject: format!("macvlan {} on {}", self.name, self.parent),
                source,
            })
    }

    /// The macvlan interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The macvlan interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MAC address the kernel reports for the interface now.
    pub async fn current_mac(&self) -> Result<Option<Vec<u8>>, NetError> {
        let link = get_link(&self.connection, self.index, &self.name).await?;
        Ok(link.and_then(|link| {
            link.attributes
                .into_iter()
                .find_map(|attribute| match attribute {
                    LinkAttribute::Address(mac) => Some(mac),
                    _ => None,
                })
        }))
    }

    /// Deletes the interface (and with it the VIPs on it), and puts the parent's ARP settings
    /// back when no other virtual MAC of this process uses it.
    pub async fn remove(self) -> Result<(), NetError> {
        let deleted = delete_link(&self.connection, self.index, &self.name).await;
        if self.holds_parent {
            release_parent(&self.parent)?;
        }
        deleted
    }
}

/// Deletes the macvlan `name` on `parent` that a killed vipd left behind (`vipd release`), with
/// the VIPs on it; an interface of that name that is not a macvlan of `parent` is never touched.
/// Whether one was deleted. The parent's ARP settings stay as vipd set them: what they were
/// before died with the process.
pub async fn remove_left_behind(parent: &str, name: &str) -> Result<bool, NetError> {
    let Ok(index) = interface_index(name) else {
        return Ok(false);
    };
    let parent_index = interface_index(parent)?;
    let connection = NetlinkConnection::open()?;
    if macvlan_parent(&connection, index, name).await? != Some(parent_index) {
        return Ok(false);
    }
    delete_link(&connection, index, name).await?;
    Ok(true)
}

/// Brings links up and down by name. An IPv6 virtual MAC interface is up only while its router
/// is master: the transport brings it up to send an advert, the owner of the VIPs takes it down
/// before removing them. Going down is what keeps the node that steps down silent: the kernel
/// removes the VIPs without the MLD report that removing them by hand would send from the
/// shared MAC, on the port the new master is on.
#[derive(Debug)]
pub struct LinkAdmin {
    connection: NetlinkConnection,
}

impl LinkAdmin {
    pub fn open() -> Result<Self, NetError> {
        Ok(Self {
            connection: NetlinkConnection::open()?,
        })
    }

    /// Sets `interface` administratively up or down (idempotent).
    pub async fn set_up(&self, interface: &str, up: bool) -> Result<(), NetError> {
        let index = interface_index(interface)?;
        let message = LinkUnspec::new_with_index(index);
        let message = if up { message.up() } else { message.down() };
        self.connection
            .handle()
            .link()
            .set(message.build())
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                action: if up { "set link up" } else { "set link down" },
                subject: interface.to_owned(),
                source,
            })
    }
}

/// Creates the macvlan DOWN: it comes up only after its settings are in place.
async fn add_macvlan(
    connection: &NetlinkConnection,
    parent: &str,
    parent_index: u32,
    name: &str,
    mac: [u8; 6],
) -> Result<(), NetError> {
    // VEPA, not private mode: in private mode the kernel hands a multicast frame whose source
    // MAC is the macvlan's own to that macvlan alone (a "reflected" frame), so the parent would
    // never see the peers' adverts, which all come from the shared MAC; receiving them on the
    // macvlan instead would mean joining the group there, and a backup sending IGMP reports
    // from the shared MAC. VEPA passes such frames on to the parent and, like private mode,
    // sends everything to the wire, never straight to another macvlan of the parent.
    let message = LinkMacVlan::new(name, parent_index, MacVlanMode::Vepa)
        .address(mac.to_vec())
        .build();
    connection
        .handle()
        .link()
        .add(message)
        .execute()
        .await
        .map_err(|source| NetError::Netlink {
            action: "create link",
            subject: format!("macvlan {name} on {parent}"),
            source,
        })
}

async fn delete_link(
    connection: &NetlinkConnection,
    index: u32,
    name: &str,
) -> Result<(), NetError> {
    connection
        .handle()
        .link()
        .del(index)
        .execute()
        .await
        .map_err(|source| NetError::Netlink {
            action: "delete link",
            subject: name.to_owned(),
            source,
        })
}

async fn get_link(
    connection: &NetlinkConnection,
    index: u32,
    name: &str,
) -> Result<Option<LinkMessage>, NetError> {
    let mut links = connection
        .handle()
        .link()
        .get()
        .match_index(index)
        .execute();
    links.try_next().await.map_err(|source| NetError::Netlink {
        action: "get link",
        subject: name.to_owned(),
        source,
    })
}

/// The parent index of the macvlan at `index`, or `None` when it is not a macvlan.
async fn macvlan_parent(
    connection: &NetlinkConnection,
    index: u32,
    name: &str,
) -> Result<Option<u32>, NetError> {
    let Some(link) = get_link(connection, index, name).await? else {
        return Ok(None);
    };
    let is_macvlan = link.attributes.iter().any(|attribute| {
        matches!(attribute, LinkAttribute::LinkInfo(infos)
            if infos.iter().any(|info| matches!(info, LinkInfo::Kind(InfoKind::MacVlan))))
    });
    if !is_macvlan {
        return Ok(None);
    }
    Ok(link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Link(parent) => Some(*parent),
            _ => None,
        }))
}

/// BPF `ret #0`: accept no packet.
const BPF_DROP_ALL: u16 = 0x06;

/// The VRRP transport of an instance with a virtual MAC. Adverts are received on the parent, as
/// without a virtual MAC: a socket joined on the macvlan would send IGMP / MLD reports from the
/// shared MAC, also on a backup. They are sent from the macvlan, so that their source MAC is the
/// virtual MAC (RFC 5798 §7.3) and switches learn it on the master's port, with the parent's
/// address as the IP source (its primary IPv4 address, RFC 5798 §5.1.1.1, or its link-local
/// address, §5.1.2.1), the address peers compare on a tie. An IPv6 macvlan is brought up before
/// a send when it is down (see [`LinkAdmin`]).
#[derive(Debug)]
pub struct VirtualMacTransport {
    receive: VrrpSocket,
    family: Family,
    interface: String,
    /// Replaced when a send fails and the macvlan has another index than the one it is bound
    /// to: the kernel refuses to send through a socket bound to a deleted interface (`ip link
    /// del`, until [`VirtualMac::recreate`]).
    send: Mutex<Arc<SendSocket>>,
    /// IPv6 only: brings the macvlan up to send.
    link: Option<LinkAdmin>,
    sent: AtomicU64,
}

/// A send-only raw socket bound to one incarnation of the macvlan.
#[derive(Debug)]
struct SendSocket {
    /// A filter drops everything that would be queued for it.
    socket: UdpSocket,
    /// The macvlan's index when the socket was opened.
    index: u32,
}

impl VirtualMacTransport {
    /// Opens the receive socket on `parent.interface` and the send socket on the macvlan
    /// `virtual_mac_interface`. Needs CAP_NET_RAW (and CAP_NET_ADMIN for IPv6, whose macvlan it
    /// brings up) and a tokio runtime.
    pub fn open(parent: VrrpSocketConfig, virtual_mac_interface: &str) -> Result<Self, NetError> {
        Self::open_with_vips(parent, virtual_mac_interface, Vec::new())
    }

    /// [`VirtualMacTransport::open`] for an instance whose VIPs are `vips`, none of which is ever
    /// the adverts' source (see [`VrrpSocket::open_with_vips`]).
    pub fn open_with_vips(
        parent: VrrpSocketConfig,
        virtual_mac_interface: &str,
        vips: Vec<IpAddr>,
    ) -> Result<Self, NetError> {
        let family = parent.family;
        let receive = VrrpSocket::open_with_vips(parent, vips)?;
        let send = open_send_socket(family, virtual_mac_interface, receive.source_address())?;
        let link = match family {
            Family::Ipv4 => None,
            Family::Ipv6 => Some(LinkAdmin::open()?),
        };
        Ok(Self {
            receive,
            family,
            interface: virtual_mac_interface.to_owned(),
            send: Mutex::new(Arc::new(send)),
            link,
            sent: AtomicU64::new(0),
        })
    }

    /// The socket the last send used.
    fn send_socket(&self) -> Arc<SendSocket> {
        Arc::clone(
            &self
                .send
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// After a failed send: a new socket when the macvlan was deleted and created again since
    /// `failed` was opened (the kernel then refuses to send through the old one), else `None`.
    /// Looked up only on failure, so a healthy advert costs no interface lookup.
    fn reopened_send_socket(
        &self,
        failed: &SendSocket,
    ) -> Result<Option<Arc<SendSocket>>, NetError> {
        let index = interface_index(&self.interface)?;
        if index == failed.index {
            return Ok(None);
        }
        let mut send = self
            .send
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if send.index != index {
            info!(interface = %self.interface, "the virtual MAC interface was recreated; reopening its send socket");
            *send = Arc::new(open_send_socket(
                self.family,
                &self.interface,
                self.receive.source_address(),
            )?);
        }
        Ok(Some(Arc::clone(&send)))
    }

    async fn send_through(
        &self,
        send: &SendSocket,
        payload: &[u8],
        destination: IpAddr,
    ) -> std::io::Result<usize> {
        let target = match destination {
            IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, 0)),
            // Link-local and multicast destinations need the interface as scope.
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, send.index)),
        };
        send.socket.send_to(payload, target).await
    }
}

/// Opens the send-only socket on the macvlan `interface`, with `source` (the parent's address)
/// as the adverts' IP source.
fn open_send_socket(
    family: Family,
    interface: &str,
    source: IpAddr,
) -> Result<SendSocket, NetError> {
    let index = interface_index(interface)?;
    let fail = |action: &'static str| {
        move |source: std::io::Error| NetError::Socket {
            action,
            interface: interface.to_owned(),
            source,
        }
    };
    let domain = match family {
        Family::Ipv4 => Domain::IPV4,
        Family::Ipv6 => Domain::IPV6,
    };
    let socket = Socket::new(
        domain,
        Type::RAW,
        Some(Protocol::from(i32::from(IP_PROTOCOL))),
    )
    .map_err(fail("open raw socket"))?;
    socket
        .attach_filter(&[SockFilter::new(BPF_DROP_ALL, 0, 0, 0)])
        .map_err(fail("attach a drop-all filter"))?;
    socket
        .set_nonblocking(true)
        .map_err(fail("set non-blocking"))?;
    // Bound to the macvlan, multicast included: the kernel takes the bound device as the
    // output interface.
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(fail("bind to device"))?;
    set_advert_send_options(&socket, family, index)
        .map_err(|(action, source)| fail(action)(source))?;
    match (family, source) {
        (Family::Ipv4, _) => {
            // Without it the kernel would pick the macvlan's own address: a VIP on the
            // master.
            socket
                .bind(&SockAddr::from(SocketAddr::new(source, 0)))
                .map_err(fail("bind to the parent's address"))?;
        }
        (Family::Ipv6, IpAddr::V6(link_local)) => {
            // The parent's link-local address is not on the macvlan (which has none, see
            // IPV6_MACVLAN_SETTINGS): binding to it needs freebind.
            socket
                .set_freebind_v6(true)
                .map_err(fail("enable IPV6_FREEBIND"))?;
            socket
                .bind(&SockAddr::from(SocketAddrV6::new(link_local, 0, 0, index)))
                .map_err(fail("bind to the parent's link-local address"))?;
        }
        (Family::Ipv6, IpAddr::V4(_)) => {
            return Err(NetError::Invalid {
                what: "virtual MAC transport",
                detail: format!("an IPv6 transport with the IPv4 source {source}"),
            });
        }
    }
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(fail("register with tokio"))?;
    Ok(SendSocket { socket, index })
}

impl VrrpTransport for VirtualMacTransport {
    async fn send(&self, payload: &[u8]) -> Result<(), NetError> {
        let mut first_error = None;
        for destination in self.destinations() {
            if let Err(error) = self.send_to(payload, destination).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn recv(&self) -> Result<ReceivedAdvert, NetError> {
        self.receive.recv().await
    }

    /// The receiving socket, on the parent. The sending one follows the macvlan by itself.
    fn reopen_if_moved(&mut self) -> Result<Option<(u32, u32)>, NetError> {
        self.receive.reopen_if_moved()
    }

    fn interface_index(&self) -> Option<u32> {
        Some(self.receive.interface_index())
    }

    /// The receiving socket's list, which [`VrrpTransport::destinations`] reads too.
    fn set_unicast_peers(&mut self, peers: Vec<IpAddr>) -> Result<(), NetError> {
        self.receive.set_unicast_peers(peers)
    }

    /// The parent's address: the send socket is bound to it, so it is opened again on the new
    /// one.
    fn follow_source_address(&mut self) -> Result<Option<(IpAddr, IpAddr)>, NetError> {
        let changed = self.receive.follow_source_address()?;
        if let Some((_, source)) = changed {
            let reopened = open_send_socket(self.family, &self.interface, source)?;
            *self
                .send
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(reopened);
        }
        Ok(changed)
    }

    fn source_address(&self) -> IpAddr {
        self.receive.source_address()
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            sent: self.sent.load(Ordering::Relaxed),
            ..self.receive.stats()
        }
    }

    fn destinations(&self) -> Vec<IpAddr> {
        self.receive.destinations()
    }

    async fn send_to(&self, payload: &[u8], destination: IpAddr) -> Result<(), NetError> {
        if let Some(link) = &self.link {
            // Only a master sends: the first advert of a new master finds the link down.
            let up = Interface::lookup(&self.interface).is_ok_and(|interface| interface.is_up);
            if !up {
                link.set_up(&self.interface, true).await?;
            }
        }
        let send = self.send_socket();
        let mut sent = self.send_through(&send, payload, destination).await;
        if sent.is_err()
            && let Some(reopened) = self.reopened_send_socket(&send)?
        {
            sent = self.send_through(&reopened, payload, destination).await;
        }
        sent.map_err(|source| NetError::Send {
            destination,
            interface: self.interface.clone(),
            source,
        })?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vipd_lab::{Lab, e2e_enabled};

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    }

    fn parent_setting(name: &'static str) -> i64 {
        InterfaceSetting::ipv4("eth0", name)
            .read()
            .expect("eth0 has the setting")
    }

    #[test]
    fn the_parent_keeps_its_arp_settings_until_its_last_virtual_mac_goes() {
        if !e2e_enabled("the_parent_keeps_its_arp_settings_until_its_last_virtual_mac_goes") {
            return;
        }
        let lab = Lab::new(1).expect("lab");
        // Whatever this machine's defaults, start from values the virtual MAC must change.
        lab.run(
            0,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.conf.eth0.arp_ignore=0",
                "net.ipv4.conf.eth0.arp_filter=0",
                "net.ipv4.conf.eth0.arp_announce=0",
            ],
        )
        .expect("sysctl");
        let readings = lab
            .in_host(0, || {
                runtime().block_on(async {
                    let read = || PARENT_SETTINGS.map(|(name, _)| parent_setting(name));
                    let before = read();
                    let first = VirtualMac::create("eth0", "vrrp.7", 7, Family::Ipv4)
                        .await
                        .expect("first");
                    let second = VirtualMac::create("eth0", "vrrp.8", 8, Family::Ipv4)
                        .await
                        .expect("second");
                    let with_both = read();
                    first.remove().await.expect("remove first");
                    let with_one = read();
                    second.remove().await.expect("remove second");
                    (before, with_both, with_one, read())
                })
            })
            .expect("runs in the host");
        let (before, with_both, with_one, after) = readings;
        let wanted = PARENT_SETTINGS.map(|(_, value)| value);
        assert_eq!(before, [0, 0, 0]);
        assert_eq!(with_both, wanted);
        assert_eq!(with_one, wanted, "vrrp.8 still needs them");
        assert_eq!(after, before, "put back with the last one");
    }

    #[test]
    fn a_deleted_virtual_mac_is_recreated_with_its_settings() {
        if !e2e_enabled("a_deleted_virtual_mac_is_recreated_with_its_settings") {
            return;
        }
        let lab = Lab::new(1).expect("lab");
        let (index_before, index_after, mac, arp_ignore, recreated, parent_held, link, details) =
            lab.in_host(0, || {
                runtime().block_on(async {
                    let mut virtual_mac = VirtualMac::create("eth0", "vrrp.7", 7, Family::Ipv4)
                        .await
                        .expect("create");
                    let index_before = virtual_mac.index();
                    let deleted = std::process::Command::new("ip")
                        .args(["link", "del", "vrrp.7"])
                        .status()
                        .expect("ip runs");
                    assert!(deleted.success());
                    virtual_mac.recreate().await.expect("recreate");
                    let state = (
                        index_before,
                        virtual_mac.index(),
                        virtual_mac.current_mac().await.expect("mac"),
                        InterfaceSetting::ipv4("vrrp.7", "arp_ignore")
                            .read()
                            .expect("setting"),
                        virtual_mac.recreated(),
                        parent_setting("arp_announce"),
                        Interface::lookup("vrrp.7").expect("back"),
                        std::process::Command::new("ip")
                            .args(["-d", "link", "show", "vrrp.7"])
                            .output()
                            .expect("ip runs"),
                    );
                    virtual_mac.remove().await.expect("remove");
                    state
                })
            })
            .expect("runs in the host");
        assert_ne!(
            index_before, index_after,
            "a new interface, with a new index"
        );
        assert_eq!(mac, Some(virtual_mac_address(7, Family::Ipv4).to_vec()));
        assert_eq!(arp_ignore, 1);
        assert_eq!(recreated, 1);
        assert_eq!(parent_held, 2, "the parent's settings are still held");
        assert!(link.is_up, "an IPv4 virtual MAC is up");
        let details = String::from_utf8_lossy(&details.stdout);
        assert!(details.contains("macvlan mode vepa"), "{details}");
        assert!(
            lab.run(0, &["ip", "link", "show", "vrrp.7"]).is_err(),
            "removed"
        );
    }

    #[test]
    fn an_interface_that_is_not_a_macvlan_is_never_taken_over() {
        if !e2e_enabled("an_interface_that_is_not_a_macvlan_is_never_taken_over") {
            return;
        }
        let lab = Lab::new(1).expect("lab");
        lab.run(
            0,
            &[
                "ip", "link", "add", "vrrp.9", "type", "veth", "peer", "name", "other9",
            ],
        )
        .expect("a veth named like a virtual MAC interface");
        let refused = lab
            .in_host(0, || {
                runtime().block_on(async {
                    VirtualMac::create("eth0", "vrrp.9", 9, Family::Ipv4)
                        .await
                        .map(|_| ())
                })
            })
            .expect("runs in the host");
        assert!(
            matches!(&refused, Err(NetError::Invalid { detail, .. }) if detail.contains("not a macvlan")),
            "{refused:?}"
        );
        let link = lab
            .run(0, &["ip", "-d", "link", "show", "vrrp.9"])
            .expect("still there");
        assert!(link.contains("veth"), "{link}");
    }

    /// `vipd release`: only a macvlan of the given name on the given parent goes.
    #[test]
    fn a_left_macvlan_is_removed_and_nothing_else() {
        if !e2e_enabled("a_left_macvlan_is_removed_and_nothing_else") {
            return;
        }
        let lab = Lab::new(1).expect("lab");
        for command in [
            "ip link add vrrp.7 link eth0 type macvlan mode vepa",
            "ip link add vrrp.8 type veth peer name other8",
            "ip link add vrrp.6 link other8 type macvlan mode vepa",
        ] {
            let args: Vec<&str> = command.split(' ').collect();
            lab.run(0, &args).expect(command);
        }
        let removed = lab
            .in_host(0, || {
                runtime().block_on(async {
                    let mut removed = Vec::new();
                    for name in ["vrrp.7", "vrrp.8", "vrrp.6", "vrrp.5"] {
                        removed.push(remove_left_behind("eth0", name).await.expect(name));
                    }
                    removed
                })
            })
            .expect("runs in the host");
        // vrrp.8 is not a macvlan, vrrp.6 is on another parent, vrrp.5 does not exist.
        assert_eq!(removed, [true, false, false, false]);
        let links = lab.run(0, &["ip", "-o", "link", "show"]).expect("links");
        assert!(!links.contains("vrrp.7"), "{links}");
        assert!(
            links.contains("vrrp.8") && links.contains("vrrp.6"),
            "{links}"
        );
    }
}
