//! How much of what a viewer was sent its peer has not acknowledged yet, in media time.
//!
//! The hub's lag check sees only what a viewer has not taken from the ring. What it has
//! taken but not received sits in the socket's send queue, unsent or in flight: at a tenth
//! of a stream's rate, the 8 KiB unsent bound plus a receive window of 16 KiB is most of a
//! second. [`Unacknowledged`] keeps the last pieces written with their media timestamps and,
//! from the kernel's count of bytes not yet acknowledged (`TIOCOUTQ`, which Linux answers for
//! TCP with `write_seq - snd_una`), tells how far back in media time that reaches (issue 16).
//! The count is relative to the newest bytes, so it never drifts with framing the writer
//! adds (chunked encoding, WebSocket headers): only the last pieces' sizes matter.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// How often, in media time, the kernel is asked: a viewer at the live edge writes a frame
/// or two per wake-up, and asking on every write would cost an extra system call each.
const ASK_EVERY_MS: u32 = 100;
/// Most pieces remembered. At a 30 fps stream with audio this is over three seconds of
/// writes, more than a send queue bounded by `TCP_NOTSENT_LOWAT` and a receive window holds.
const MAX_PIECES: usize = 256;

/// Linux's TIOCOUTQ (SIOCOUTQ for sockets): 0x5411 on x86 and ARM; MIPS, PowerPC and
/// SPARC number it in their own ioctl space.
const TIOCOUTQ: rustix::ioctl::Opcode = if cfg!(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
)) {
    0x7473
} else {
    0x5411
};

/// Bytes in a TCP socket's send queue that its peer has not acknowledged, sent or not;
/// `None` if the kernel does not answer (not a TCP socket, or closed).
#[allow(unsafe_code)]
pub fn unacknowledged_bytes(fd: BorrowedFd<'_>) -> Option<usize> {
    // SAFETY: for TIOCOUTQ the kernel writes one `c_int` through the pointer it is given,
    // which is exactly what `Getter::<_, c_int>` passes and reads back.
    let n = unsafe {
        rustix::ioctl::ioctl(
            fd,
            rustix::ioctl::Getter::<TIOCOUTQ, std::ffi::c_int>::new(),
        )
    }
    .ok()?;
    usize::try_from(n).ok()
}

/// The socket a viewer's bytes go out on, kept as a raw descriptor because the stream itself
/// lives in a writer (hyper's connection, a TLS stream) that cannot lend it. Made only by
/// the code that owns the stream, and asked only while that stream is open: a viewer's
/// feed runs inside its connection's task.
#[derive(Debug, Clone, Copy)]
pub struct SocketFd(RawFd);

impl SocketFd {
    /// The descriptor of `socket`, which the caller keeps open while this is used.
    pub fn of(socket: &impl AsRawFd) -> SocketFd {
        SocketFd(socket.as_raw_fd())
    }

    pub(super) fn raw(self) -> RawFd {
        self.0
    }

    pub(super) fn from_raw(fd: RawFd) -> Option<SocketFd> {
        (fd >= 0).then_some(SocketFd(fd))
    }

    #[allow(unsafe_code)]
    fn unacknowledged(self) -> Option<usize> {
        // SAFETY: the stream that owns the descriptor is open for this call (see the type's
        // doc). Were it not, the worst is an answer about another socket, never memory
        // misuse: TIOCOUTQ only reads a counter.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        unacknowledged_bytes(fd)
    }
}

/// The pieces a viewer was last written, and how much media its peer has not received.
#[derive(Debug, Default)]
pub struct Unacknowledged {
    /// (bytes on the wire, media timestamp in ms), oldest first.
    pieces: VecDeque<(usize, u32)>,
    /// The media timestamp the kernel was last asked at.
    asked_at: Option<u32>,
    /// The answer then.
    media: Duration,
    /// The subscriber's skip count when the pieces were last reset.
    skips: u64,
}

impl Unacknowledged {
    /// Called with the subscriber's [`skipped`](onair_hub::Subscriber::skipped) count before
    /// the pieces of a delivery are recorded. After a skip, what the socket still holds is
    /// from before the jump and cannot be taken back; counting the jump itself as unreceived
    /// media would make the viewer look further behind after every skip and skip it again
    /// until it is dropped. So only pieces from after the newest skip count.
    pub fn skipped(&mut self, total: u64) {
        if total != self.skips {
            self.skips = total;
            self.pieces.clear();
            self.asked_at = None;
            self.media = Duration::ZERO;
        }
    }

    /// A piece of `len` bytes carrying media stamped `timestamp_ms` went into the socket (or
    /// into a writer in front of it).
    pub fn wrote(&mut self, len: usize, timestamp_ms: u32) {
        if self.pieces.len() == MAX_PIECES {
            self.pieces.pop_front();
        }
        self.pieces.push_back((len, timestamp_ms));
    }

    /// Media not yet acknowledged, asking the kernel at most once per [`ASK_EVERY_MS`] of
    /// media; `not_written` is what a writer in front of the socket still holds.
    pub fn media(&mut self, socket: SocketFd, not_written: usize) -> Duration {
        let Some(&(_, newest)) = self.pieces.back() else {
            return Duration::ZERO;
        };
        if self
            .asked_at
            .is_some_and(|at| newest.wrapping_sub(at) < ASK_EVERY_MS)
        {
            return self.media;
        }
        self.asked_at = Some(newest);
        let Some(queued) = socket.unacknowledged() else {
            return self.media;
        };
        self.media = self.media_for(queued + not_written);
        self.media
    }

    /// How far back from the newest piece `bytes` of the newest pieces reach, in media time;
    /// the pieces older than that are acknowledged and forgotten.
    fn media_for(&mut self, bytes: usize) -> Duration {
        let Some(&(_, newest)) = self.pieces.back() else {
            return Duration::ZERO;
        };
        let mut covered = 0usize;
        let mut oldest = newest;
        let mut keep = 0;
        for &(len, ts) in self.pieces.iter().rev() {
            if covered >= bytes {
                break;
            }
            covered += len;
            oldest = ts;
            keep += 1;
        }
        let drop = self.pieces.len() - keep.max(1);
        self.pieces.drain(..drop);
        Duration::from_millis(u64::from(newest.wrapping_sub(oldest).min(u32::MAX / 2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn what_is_not_acknowledged_reaches_back_over_the_newest_pieces() {
        let mut u = Unacknowledged::default();
        for i in 0..10u32 {
            u.wrote(1000, i * 40);
        }
        assert_eq!(
            u.media_for(2500),
            Duration::from_millis(80),
            "three pieces: 280..360"
        );
        assert_eq!(u.pieces.len(), 3, "older pieces are forgotten");
        assert_eq!(u.media_for(1_000_000), Duration::from_millis(80));
        assert_eq!(u.media_for(0), Duration::ZERO, "all acknowledged");
        assert_eq!(u.pieces.len(), 1, "the newest is kept as the reference");
    }

    #[test]
    fn a_skip_forgets_what_went_before_it() {
        let mut u = Unacknowledged::default();
        for i in 0..10u32 {
            u.wrote(1000, i * 40);
        }
        u.skipped(1);
        // The viewer jumped to a keyframe at 5 s; the socket still holds 9000 bytes of the
        // stretch before it, which says nothing about how far behind the new frames are.
        u.wrote(1000, 5000);
        u.wrote(1000, 5040);
        assert_eq!(u.media_for(11_000), Duration::from_millis(40));
        u.skipped(1);
        assert_eq!(u.pieces.len(), 2, "the same count changes nothing");
    }

    #[test]
    fn the_kernel_counts_what_a_reader_has_not_taken() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        // The reader reads nothing: once its receive buffer is full, what is written stays
        // in the sender's queue, unacknowledged.
        tx.set_nonblocking(true).unwrap();
        let mut written = 0;
        loop {
            match tx.write(&[7u8; 64 * 1024]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let queued = unacknowledged_bytes(tx.as_fd()).expect("a TCP socket answers");
        assert!(
            queued > 0 && queued <= written,
            "{queued} of {written} bytes"
        );
        drop(rx);
    }
}
