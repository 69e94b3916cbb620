//! Socket set-up for the RTMP and HTTP listeners, and the RTMP driver's batched writes.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod send_queue;
mod tracked;
pub use send_queue::{SocketFd, Unacknowledged};
pub use tracked::{Tracked, Traffic};

/// Slices per `writev`. Linux takes up to 1024, but a wake-up rarely has more than a few
/// frames ready; a fixed array on the stack avoids an allocation per write per viewer, and a
/// bigger backlog (a GOP at join) simply takes a few calls.
const MAX_IOV: usize = 64;

/// How many connections may wait to be accepted. When thousands of viewers join at once (a
/// stream starts, a link is shared) a short queue drops SYNs, and each drop costs the viewer a
/// one-second retransmit before its first frame. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener with a deep accept queue (see [`LISTEN_BACKLOG`]).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Most bytes a connection's kernel send queue holds that are not yet on the wire
/// (`TCP_NOTSENT_LOWAT`). Without it the kernel grows the send buffer up to
/// `net.ipv4.tcp_wmem` (4 MB here): tens of seconds of a stream for a viewer on a slow link,
/// out of the hub's sight, so the hub never moved that viewer forward (issue 16). With it a
/// write waits until the queue drains below this, the frames wait in the hub instead, and the
/// hub's lag check skips the viewer to the newest keyframe. It bounds only what is unsent,
/// not what is in flight, so a fast link's throughput is untouched: the kernel wakes the
/// writer while the bytes in flight still cover the round trip.
pub const NOTSENT_LOWAT: u32 = 8 * 1024;

/// Most payload bytes a viewer takes from the hub per write batch
/// ([`onair_hub::Subscriber::set_batch_bytes`]): with [`NOTSENT_LOWAT`] it keeps a slow
/// viewer's backlog in the hub, where it is counted, and costs a viewer at the live edge
/// nothing: a delivery takes frames until it holds this much, so the audio that rides with a
/// video frame still shares its write. A GOP at a join goes out in a few writes. What a
/// viewer holds outside the hub costs it that many bytes at its own link's rate in lag
/// (8 KiB: a quarter second at a tenth of a 2.6 Mbit/s stream).
pub const VIEWER_BATCH_BYTES: usize = 8 * 1024;

/// Applies the options every media connection gets.
///
/// `TCP_NODELAY` because we batch ourselves and Nagle would hold a frame back; a user
/// timeout so a peer that stops acknowledging (gone, or a zero window that never opens)
/// is dropped by the kernel even while no write of ours is waiting; [`NOTSENT_LOWAT`] so
/// the kernel does not hide a slow viewer's backlog.
pub fn configure(stream: &TcpStream, stall_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_tcp_notsent_lowat(NOTSENT_LOWAT);
    let _ = sock.set_tcp_user_timeout(Some(stall_timeout));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = sock.set_tcp_keepalive(&keepalive);
}

/// Writes every queued buffer, as few `writev` calls as the socket allows, and leaves the
/// queue empty; fails with `TimedOut` if the peer accepts nothing for `limit`. The buffers
/// are shared (`Bytes`), so nothing is copied per connection. The limit is on progress, not
/// on the whole queue: a viewer on a slow link that keeps taking data is not cut off just
/// because a big first batch (a GOP) takes long.
pub async fn write_all_queued_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &mut VecDeque<Bytes>,
    limit: Duration,
) -> io::Result<()> {
    while !queue.is_empty() {
        match tokio::time::timeout(limit, write_some(writer, queue)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("peer accepted no data for {limit:?}"),
                ));
            }
        }
    }
    writer.flush().await
}

/// One `writev` of as much of the queue as fits, then drops what was written.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    let written = {
        let (slices, n) = io_slices(queue);
        if n == 0 {
            queue.clear();
            return Ok(());
        }
        writer.write_vectored(&slices[..n]).await?
    };
    if written == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    advance(queue, written);
    Ok(())
}

/// The first [`MAX_IOV`] non-empty pieces of `queue` as slices for one `writev`, and how
/// many there are.
pub(crate) fn io_slices(queue: &VecDeque<Bytes>) -> ([IoSlice<'_>; MAX_IOV], usize) {
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    let mut n = 0;
    for b in queue.iter().filter(|b| !b.is_empty()).take(MAX_IOV) {
        slices[n] = IoSlice::new(b);
        n += 1;
    }
    (slices, n)
}

/// Drops `n` written bytes off the front of `queue` (and any empty pieces after them).
pub(crate) fn advance(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            queue.pop_front();
        } else {
            front.advance(n);
            return;
        }
    }
    while queue.front().is_some_and(|b| b.is_empty()) {
        queue.pop_front();
    }
}

/// A request body that did not arrive within `http.body_timeout` of its head: the connection
/// driver fails the body with it, and the API's extractors answer it with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// Bytes an HTTP connection has written to its socket so far, handed by the listener to every
/// request as an extension (it lives here so the FLV feeds need not import the HTTP driver).
/// HTTP-FLV compares it with what its body gave hyper: hyper takes up to 16 pieces of a body
/// ahead of the socket, which for a viewer on a slow link is seconds of media hidden from the
/// hub's lag check (issue 16).
#[derive(Debug, Clone, Default)]
pub struct BytesSent(Arc<Sent>);

#[derive(Debug)]
struct Sent {
    bytes: AtomicU64,
    /// The connection's TCP socket while it is open, else -1.
    fd: AtomicI32,
}

impl Default for Sent {
    fn default() -> Self {
        Sent {
            bytes: AtomicU64::new(0),
            fd: AtomicI32::new(-1),
        }
    }
}

impl BytesSent {
    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.bytes.load(Ordering::Acquire)
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.bytes.fetch_add(n as u64, Ordering::AcqRel);
    }

    /// The connection's socket, for its send queue ([`Unacknowledged`]); `None` once the
    /// connection's stream is gone.
    pub fn socket(&self) -> Option<SocketFd> {
        SocketFd::from_raw(self.0.fd.load(Ordering::Acquire))
    }

    /// Set by the connection that owns the stream, while it owns it.
    pub(crate) fn set_socket(&self, fd: Option<SocketFd>) {
        let raw = fd.map_or(-1, SocketFd::raw);
        self.0.fd.store(raw, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_buffers_arrive_in_order_and_whole() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let mut q: VecDeque<Bytes> = (0..200u8)
            .map(|i| Bytes::from(vec![i; usize::from(i) + 1]))
            .collect();
        q.push_back(Bytes::new());
        let expected: Vec<u8> = q.iter().flat_map(|b| b.iter().copied()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        write_all_queued_within(&mut a, &mut q, Duration::from_secs(10))
            .await
            .unwrap();
        drop(a);
        assert!(q.is_empty());
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut q: VecDeque<Bytes> = VecDeque::from([Bytes::from(vec![7u8; 64 * 20])]);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            while got < 64 * 20 {
                // Each read comes 40 ms after the last: the whole queue takes 800 ms, far over
                // the 100 ms limit, but no single wait is.
                tokio::time::sleep(Duration::from_millis(40)).await;
                got += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
            got
        });
        write_all_queued_within(&mut a, &mut q, Duration::from_millis(100))
            .await
            .expect("steady progress never times out");
        assert_eq!(reader.await.unwrap(), 64 * 20);
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_times_out() {
        let (mut a, _b) = tokio::io::duplex(16);
        let mut q: VecDeque<Bytes> = VecDeque::from([Bytes::from(vec![0u8; 1000])]);
        let err = write_all_queued_within(&mut a, &mut q, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
