//! Raw VRRP packets from a lab host: whatever bytes a test crafts (hostile input, forged adverts),
//! with the TTL it chooses, one at a time or as a flood at a bounded rate for a bounded time.
//!
//! The kernel writes the IPv4 header (source: the host's address; protocol 112); the payload is
//! sent as given, so a test can send what no VRRP implementation would.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::{Lab, LabError};

/// IANA protocol number of VRRP.
const VRRP: i32 = 112;
/// How often a flood tops its count up to where its rate says it should be.
const FLOOD_TICK: Duration = Duration::from_millis(1);

/// A raw VRRP socket opened in one lab host.
#[derive(Debug)]
pub struct Injector {
    socket: Socket,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flooded {
    /// Packets the kernel took.
    pub sent: u64,
    /// Packets it refused (a full queue: `ENOBUFS`), not sent.
    pub refused: u64,
    /// From the first send to the last.
    pub elapsed: Duration,
}

impl Flooded {
    /// The rate reached, in packets per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            // Counts far below 2^52 are exact in f64.
            #[expect(clippy::cast_precision_loss, reason = "packet counts are small")]
            let sent = self.sent as f64;
            sent / seconds
        } else {
            0.0
        }
    }
}

impl Injector {
    /// Opens a raw VRRP socket in host `host`, sending with `ttl` to unicast and multicast
    /// destinations alike, and multicast out of the host's LAN interface.
    pub fn open(lab: &Lab, host: usize, ttl: u8) -> Result<Self, LabError> {
        let address = lab.host(host).ipv4;
        let socket = lab
            .in_host(host, move || -> io::Result<Socket> {
                let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(VRRP)))?;
                socket.set_ttl_v4(u32::from(ttl))?;
                socket.set_multicast_ttl_v4(u32::from(ttl))?;
                socket.set_multicast_if_v4(&address)?;
                socket.set_multicast_loop_v4(false)?;
                Ok(socket)
            })?
            .map_err(|source| LabError::Os {
                action: format!("raw VRRP socket in host {host}"),
                source,
            })?;
        Ok(Self { socket })
    }

    /// Sends one packet with `payload` as its VRRP message to `destination`.
    pub fn send(&self, payload: &[u8], destination: Ipv4Addr) -> io::Result<()> {
        let target = SockAddr::from(SocketAddrV4::new(destination, 0));
        self.socket.send_to(payload, &target).map(|_| ())
    }

    /// Sends `payloads` round-robin to `destination` at `rate` packets per second for
    /// `duration`: at most `rate × duration` packets, and it never runs longer than `duration`
    /// (plus one tick). Refused sends are counted, not retried.
    pub fn flood(
        &self,
        payloads: &[Vec<u8>],
        destination: Ipv4Addr,
        rate: u32,
        duration: Duration,
    ) -> Flooded {
        let total = u64::from(rate) * duration.as_millis().try_into().unwrap_or(u64::MAX) / 1000;
        let (mut sent, mut refused, mut next) = (0_u64, 0_u64, 0_usize);
        let started = Instant::now();
        while sent + refused < total && !payloads.is_empty() {
            let elapsed = started.elapsed();
            if elapsed >= duration {
                break;
            }
            let due = u64::from(rate) * u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
                / 1_000_000;
            while sent + refused < due.min(total) {
                match self.send(&payloads[next % payloads.len()], destination) {
                    Ok(()) => sent += 1,
                    Err(_) => refused += 1,
                }
                next += 1;
            }
            std::thread::sleep(FLOOD_TICK);
        }
        Flooded {
            sent,
            refused,
            elapsed: started.elapsed(),
        }
    }
}
