//! The sessions forwarding to one server, for the admin API to list and kill them (HAProxy's
//! `show sess` and `shutdown session`).
//!
//! A session registers once it has its server and leaves when forwarding ends; queued and
//! connecting sessions are not listed (they have no server yet). Each session thread writes its
//! own shard, so registering contends with no other thread; only a listing or a kill walks them
//! all. Killing cancels the session's own token, the one a server going down or a reload's
//! `hard_stop_after` cancels through its parent (`Server::cut_sessions`): forwarding ends at once
//! and both sockets close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::frontend::FrontendShared;

/// Shards per server; a session uses the one of its thread (modulo this).
const SHARDS: usize = 8;

/// One session forwarding to a server.
#[derive(Debug)]
pub struct LiveSession {
    id: u64,
    /// The real client: the TCP peer, or the source of its PROXY header.
    client: SocketAddr,
    frontend: Arc<FrontendShared>,
    started: Instant,
    /// Client → server bytes so far (forwarding adds them in batches).
    pub bytes_in: AtomicU64,
    /// Server → client bytes so far.
    pub bytes_out: AtomicU64,
    cut: CancellationToken,
    killed: AtomicBool,
}

impl LiveSession {
    /// Whether an admin killed it (the session log then says `killed`).
    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Client → server and server → client bytes so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.cut.cancel();
    }

    fn info(&self, backend: &str, server: &str) -> SessionInfo {
        let (bytes_in, bytes_out) = self.bytes();
        SessionInfo {
            id: self.id,
            backend: backend.to_owned(),
            server: server.to_owned(),
            frontend: self.frontend.name.clone(),
            client: self.client,
            age: self.started.elapsed(),
            bytes_in,
            bytes_out,
        }
    }
}

/// A session as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Unique among the server's live sessions.
    pub id: u64,
    pub backend: String,
    pub server: String,
    pub frontend: String,
    /// The real client: the TCP peer, or the source of its PROXY header.
    pub client: SocketAddr,
    pub age: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Which of a server's sessions to kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFilter {
    All,
    /// Every session of this client address, whatever its port.
    ClientIp(IpAddr),
    /// The session of this client address and port.
    Client(SocketAddr),
    Id(u64),
}

impl SessionFilter {
    fn matches(self, session: &LiveSession) -> bool {
        match self {
            Self::All => true,
            Self::ClientIp(ip) => session.client.ip() == ip,
            Self::Client(address) => session.client == address,
            Self::Id(id) => session.id == id,
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    next_id: u64,
    sessions: HashMap<u64, Arc<LiveSession>>,
}

/// The live sessions of one server.
#[derive(Debug, Default)]
pub struct LiveSessions {
    shards: [Mutex<Shard>; SHARDS],
}

impl LiveSessions {
    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.shards[index % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session that runs on session thread `thread` and ends when `cut` is
    /// cancelled; it stays listed until the returned guard drops.
    pub fn register(
        &self,
        thread: usize,
        client: SocketAddr,
        frontend: Arc<FrontendShared>,
        cut: CancellationToken,
    ) -> Registered<'_> {
        let shard_index = thread % SHARDS;
        let mut shard = self.shard(shard_index);
        // Ids of different shards never meet: the shard is the remainder.
        let id = shard.next_id * SHARDS as u64 + shard_index as u64;
        shard.next_id += 1;
        let session = Arc::new(LiveSession {
            id,
            client,
            frontend,
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            cut,
            killed: AtomicBool::new(false),
        });
        shard.sessions.insert(id, Arc::clone(&session));
        Registered {
            sessions: self,
            shard: shard_index,
            session,
        }
    }

    /// Every live session, oldest first.
    pub fn list(&self, backend: &str, server: &str) -> Vec<SessionInfo> {
        let mut listed: Vec<SessionInfo> = (0..SHARDS)
            .flat_map(|index| {
                self.shard(index)
                    .sessions
                    .values()
                    .map(|session| session.info(backend, server))
                    .collect::<Vec<_>>()
            })
            .collect();
        listed.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
        listed
    }

    /// Kills the sessions `filter` picks; returns how many.
    pub fn kill(&self, filter: SessionFilter) -> usize {
        let mut killed = 0;
        for index in 0..SHARDS {
            for session in self.shard(index).sessions.values() {
                if filter.matches(session) {
                    session.kill();
                    killed += 1;
                }
            }
        }
        killed
    }
}

/// A registered session; leaves the list when dropped.
pub struct Registered<'a> {
    sessions: &'a LiveSessions,
    shard: usize,
    pub session: Arc<LiveSession>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.sessions
            .shard(self.shard)
            .sessions
            .remove(&self.session.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::FrontendSettings;

    fn frontend() -> Arc<FrontendShared> {
        Arc::new(FrontendShared::new(
            "web",
            FrontendSettings {
                backend: "web".to_owned(),
                accept_proxy: false,
                tcp_keepalive: None,
                proxy_header_timeout: Duration::from_secs(1),
            },
            100,
        ))
    }

    #[test]
    fn sessions_are_listed_while_registered_and_killed_by_filter() {
        let sessions = LiveSessions::default();
        let parent = CancellationToken::new();
        let client_a: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let client_b: SocketAddr = "198.51.100.8:40001".parse().unwrap();
        let a = sessions.register(0, client_a, frontend(), parent.child_token());
        let b = sessions.register(1, client_b, frontend(), parent.child_token());
        let c = sessions.register(9, client_b, frontend(), parent.child_token());
        let listed = sessions.list("web", "b1");
        assert_eq!(listed.len(), 3);
        let mut ids: Vec<u64> = listed.iter().map(|info| info.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "ids are unique across shards");
        assert_eq!(listed[0].frontend, "web");
        assert_eq!(listed[0].server, "b1");

        assert_eq!(sessions.kill(SessionFilter::ClientIp(client_b.ip())), 2);
        assert!(!a.session.cut.is_cancelled() && !a.session.was_killed());
        assert!(b.session.cut.is_cancelled() && b.session.was_killed());
        assert!(c.session.cut.is_cancelled());
        assert!(!parent.is_cancelled(), "only the picked sessions are cut");

        assert_eq!(sessions.kill(SessionFilter::Id(a.session.id)), 1);
        assert_eq!(sessions.kill(SessionFilter::Client(client_a)), 1);
        drop((a, b));
        assert_eq!(sessions.list("web", "b1").len(), 1);
        drop(c);
        assert!(sessions.list("web", "b1").is_empty());
        assert_eq!(sessions.kill(SessionFilter::All), 0);
    }
}
