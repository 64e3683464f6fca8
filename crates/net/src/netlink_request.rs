//! Netlink requests answered in the calling thread: one `sendmsg`, one `recv` of the kernel's
//! acknowledgement, no task in between.
//!
//! Adding a VIP is the slowest step of a takeover. Through rtnetlink's connection task it took
//! 130-450 us here (a hop to that task, its send, the ack's trip back through the reactor and a
//! hop back), of which the kernel's own work is 30-60 us. The kernel processes a `NETLINK_ROUTE`
//! request inside the `sendmsg` call and queues the acknowledgement before returning, so reading
//! it at once does not wait; this is how keepalived talks to the kernel too. Dumps (which stream
//! many replies) stay on the rtnetlink connection.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::NetError;

/// An acknowledgement that has not come in this long will not come: the request is reported as
/// failed rather than holding the caller (a runtime worker) any longer.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Large enough for an acknowledgement carrying the request back (NLM_F_ACK without
/// NETLINK_CAP_ACK echoes the request) or an extended error.
const RECEIVE_BUFFER: usize = 16 * 1024;

/// A `NETLINK_ROUTE` socket for one request at a time.
#[derive(Debug)]
pub(crate) struct SyncRequests {
    socket: Mutex<RequestSocket>,
}

#[derive(Debug)]
struct RequestSocket {
    socket: Socket,
    sequence: u32,
}

impl SyncRequests {
    /// Opens the socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NetError> {
        let fail = |source: io::Error| NetError::NetlinkSocket { source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        let timeout = TimeVal::new(i64::try_from(ACK_TIMEOUT.as_secs()).unwrap_or(1), 0);
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)
            .map_err(|errno| fail(errno.into()))?;
        Ok(Self {
            socket: Mutex::new(RequestSocket {
                socket,
                sequence: 0,
            }),
        })
    }

    /// Sends `message` with `flags` (NLM_F_REQUEST and NLM_F_ACK are added) and waits for the
    /// kernel's answer: `Ok` for an acknowledgement, the kernel's error otherwise.
    pub(crate) fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        action: &'static str,
        subject: &dyn Fn() -> String,
    ) -> Result<(), NetError> {
        let io_error = |source: io::Error| NetError::Socket {
            action,
            interface: subject(),
            source,
        };
        // A poisoned lock only means another request panicked mid-way; the socket is still fine.
        let mut guard = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.sequence = guard.sequence.wrapping_add(1);
        let sequence = guard.sequence;

        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        guard.socket.send(&bytes, 0).map_err(io_error)?;

        loop {
            let mut reply = Vec::with_capacity(RECEIVE_BUFFER);
            guard.socket.recv(&mut reply, 0).map_err(io_error)?;
            if let Some(answer) = answer_to(sequence, &reply) {
                return answer.map_err(|error| NetError::Netlink {
                    action,
                    subject: subject(),
                    source: rtnetlink::Error::NetlinkError(error),
                });
            }
            // Anything else is the late answer to an earlier request that timed out: skip it.
        }
    }
}

/// The acknowledgement (`Ok`) or error for request `sequence` among the messages of one
/// datagram; `None` when the datagram holds no answer to it.
fn answer_to(
    sequence: u32,
    datagram: &[u8],
) -> Option<Result<(), rtnetlink::packet_core::ErrorMessage>> {
    let mut rest = datagram;
    while rest.len() >= 16 {
        let length = usize::try_from(u32::from_ne_bytes(rest[..4].try_into().ok()?)).ok()?;
        if length < 16 || length > rest.len() {
            return None;
        }
        let (message, next) = rest.split_at(length);
        if let Ok(parsed) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(message)
            && parsed.header.sequence_number == sequence
            && let NetlinkPayload::Error(error) = parsed.payload
        {
            return Some(if error.code.is_none() {
                Ok(())
            } else {
                Err(error)
            });
        }
        // Messages are aligned to 4 bytes.
        rest = next
            .get(length.next_multiple_of(4) - length..)
            .unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncated_datagrams_hold_no_answer() {
        assert!(answer_to(1, &[]).is_none());
        assert!(answer_to(1, &[0xff; 15]).is_none());
        // A length field larger than the datagram.
        let mut claims_too_much = vec![0u8; 20];
        claims_too_much[..4].copy_from_slice(&200u32.to_ne_bytes());
        assert!(answer_to(1, &claims_too_much).is_none());
        // A length field below the header size.
        let mut too_short = vec![0u8; 20];
        too_short[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(answer_to(1, &too_short).is_none());
    }
}
