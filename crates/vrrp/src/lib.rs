//! VRRP v2 (RFC 3768) and v3 (RFC 9568) as a pure protocol library: no tokio, no sockets, no clock, no filesystem.
