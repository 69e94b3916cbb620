//! A served connection's TCP socket with its owner's bookkeeping: what hyper reads and
//! writes, and after an upgrade what a chat socket shares with its room.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the socket tells whoever accounts for the connection (the HTTP listener's slot),
/// which lives exactly as long as the socket.
pub trait Traffic: Send + Sync + std::fmt::Debug {
    /// Bytes came in.
    fn arrived(&self);
    /// `n` bytes went out.
    fn sent(&self, n: usize);
    /// The descriptor is about to close and may be reused: nobody may ask it any more.
    fn closing(&self);
}

/// The socket as hyper (and, after an upgrade, a WebSocket) sees it: reads and writes are
/// told to its [`Traffic`], which goes with it.
#[derive(Debug)]
pub struct Tracked {
    tcp: TcpStream,
    traffic: Box<dyn Traffic>,
}

impl Tracked {
    /// `tcp`, accounted to `traffic`.
    pub fn new(tcp: TcpStream, traffic: Box<dyn Traffic>) -> Tracked {
        Tracked { tcp, traffic }
    }

    /// The socket, for a writer that shares it by reference (a chat room's, see
    /// `chat::Direct`); it must count what it reads and writes itself.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Counts bytes read from [`Tracked::tcp`] by a reader of its own.
    pub fn read_some(&self) {
        self.traffic.arrived();
    }

    /// Counts bytes written to [`Tracked::tcp`] by a writer of its own.
    pub fn wrote(&self, n: usize) {
        self.traffic.sent(n);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.traffic.closing();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.traffic.arrived();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.traffic.sent(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.traffic.sent(n);
        }
        polled
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
