//! The listener every connection comes through: at most `--max-connections`
//! open at once (more wait in the kernel's backlog until one closes), Nagle's
//! algorithm off, and a deadline for slow or idle clients.
//!
//! The deadline: a client must have sent a whole request within
//! [`DEFAULT_READ_TIMEOUT`] of its first byte, and start one within that time of
//! connecting or of the server's last write (so an idle keep-alive connection
//! closes too). A client that trickles its headers or body in (slowloris) is
//! cut there; more bytes do not buy more time. Once the server answers a WebSocket
//! upgrade (`101 Switching Protocols`) the connection is a socket, whose own
//! heartbeat timeout takes over, and the deadline no longer applies.

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

/// How long a client may take to send a request; longer than
/// [`super::security::HANDLER_TIMEOUT`] so that a slow handler answers before
/// its connection is cut.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(40);

/// A TCP listener that holds a permit per open connection.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    read_timeout: Duration,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max_connections: u32, read_timeout: Duration) -> CappedListener {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
            read_timeout,
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        // Waiting for a permit before accepting leaves further clients in the
        // backlog instead of taking memory and a file descriptor each.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let (tcp, peer) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            GuardedStream {
                deadline: Some(Box::pin(tokio::time::sleep(self.read_timeout))),
                tcp,
                read_timeout: self.read_timeout,
                awaiting_request: true,
                upgraded: false,
                _permit: permit,
            },
            peer,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: its permit, and the read deadline.
#[derive(Debug)]
pub struct GuardedStream {
    tcp: TcpStream,
    read_timeout: Duration,
    /// Dropped at the upgrade: a timer left armed would hold the finished
    /// HTTP task that last polled it (its waker) for as long as the deadline
    /// had to run, in every socket.
    deadline: Option<Pin<Box<Sleep>>>,
    /// True between the server's last write (or the accept) and the client's
    /// next byte: the first byte of a request restarts the deadline once.
    awaiting_request: bool,
    /// True once the server switched protocols (WebSocket): no deadline then.
    upgraded: bool,
    _permit: OwnedSemaphorePermit,
}

impl GuardedStream {
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn wrote(&mut self, first_bytes: &[u8]) {
        if self.upgraded {
            return;
        }
        if first_bytes.starts_with(b"HTTP/1.1 101 ") {
            self.upgraded = true;
            self.deadline = None;
        } else {
            self.restart_deadline();
            self.awaiting_request = true;
        }
    }

    fn restart_deadline(&mut self) {
        let next = Instant::now() + self.read_timeout;
        if let Some(deadline) = &mut self.deadline {
            deadline.as_mut().reset(next);
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let filled_before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if this.awaiting_request && !this.upgraded && buf.filled().len() > filled_before {
                    this.awaiting_request = false;
                    this.restart_deadline();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(deadline) = &mut this.deadline else {
                    return Poll::Pending;
                };
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client sent no complete request within {:?}",
                        this.read_timeout
                    ),
                )))
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.tcp).poll_write(cx, buf))?;
        this.wrote(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs))?;
        let first = bufs
            .iter()
            .find(|buf| !buf.is_empty())
            .map_or(&[][..], |b| &b[..]);
        this.wrote(&first[..first.len().min(written)]);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
