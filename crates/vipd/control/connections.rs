//! Bounds on the control server's connections: how many at once, and how long one may sit idle.
//!
//! The control server shares the process's file descriptors with the proxy. Without a cap, anyone
//! who can reach `control.listen` could hold thousands of idle connections open and make the
//! proxy's accept(2) fail with EMFILE; without an idle timeout, a few silent or byte-a-minute
//! clients could hold every slot and lock the operator out. (hyper's own header timeout needs a
//! timer that `axum::serve` does not install.)

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How many connections the control server holds and how long an idle one lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed (also between
    /// keep-alive requests; the dashboard polls every 2 s).
    pub idle_timeout: Duration,
    /// A connection is closed this long after it was accepted, whatever it does, so a client
    /// trickling one byte per idle timeout cannot keep a slot forever. Browsers reconnect.
    pub max_lifetime: Duration,
    /// After the shutdown signal, how long requests in flight may take before the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// A listener that takes a connection slot before it accepts, so at the cap clients wait in the
/// kernel's backlog instead of costing a file descriptor each.
pub struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
    max_lifetime: Duration,
}

impl BoundedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle_timeout: limits.idle_timeout,
            max_lifetime: limits.max_lifetime,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore lives as long as the listener and is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let guarded = GuardedStream {
                        stream,
                        idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
                        idle_timeout: self.idle_timeout,
                        end_of_life: Box::pin(tokio::time::sleep(self.max_lifetime)),
                        _slot: permit,
                    };
                    return (guarded, peer);
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning; the slot stays ours.
                    tracing::warn!(%error, "control server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that holds its slot until dropped and fails with `TimedOut` once idle too long
/// or too old.
pub struct GuardedStream {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    end_of_life: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn made_progress(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Called when the stream would block: an error once the idle or the lifetime deadline has
    /// passed (the sleeps register the waker, so a silent peer is noticed without traffic).
    fn poll_idle(&mut self, context: &mut Context<'_>) -> Poll<io::Error> {
        if self.end_of_life.as_mut().poll(context).is_ready() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "control connection open for too long",
            ));
        }
        ready!(self.idle.as_mut().poll(context));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "control connection idle for too long",
        ))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        match Pin::new(&mut this.stream).poll_read(context, buffer) {
            Poll::Ready(result) => {
                if buffer.filled().len() > before {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(context, data) {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(context, buffers) {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    this.made_progress();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
