//! One frame in a channel's ring, with its shared per-format encodings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use onair_media::Frame;

/// An output format whose bytes for a frame are the same for every subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A whole FLV tag (header, body, PreviousTagSize) for HTTP-FLV and WS-FLV.
    FlvTag = 0,
    /// The frame as a complete chunked RTMP message, fmt-0 headers, server chunk size.
    RtmpChunks = 1,
}

const ENCODINGS: usize = 2;

/// Set in [`Entry::charged`] once the entry has left its channel's ring.
const RETIRED: usize = 1 << (usize::BITS - 1);

/// A frame as the hub holds it: shared by every subscriber through an `Arc`.
#[derive(Debug)]
pub struct Entry {
    frame: Frame,
    /// Media bytes the channel carried before this frame, to measure how far behind a reader is.
    offset: u64,
    slots: [OnceLock<Bytes>; ENCODINGS],
    /// The channel's count of bytes in the filled slots of the entries in its ring, so its
    /// memory budget covers the encodings as well as the frames.
    slot_bytes: Arc<AtomicUsize>,
    /// The bytes this entry has added to `slot_bytes`, with [`RETIRED`] set once the entry
    /// has left the ring (a subscriber may still fill a slot after that).
    charged: AtomicUsize,
}

impl Entry {
    pub(crate) fn new(frame: Frame, offset: u64, slot_bytes: Arc<AtomicUsize>) -> Self {
        Entry {
            frame,
            offset,
            slots: Default::default(),
            slot_bytes,
            charged: AtomicUsize::new(0),
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The frame, on the channel's (rebased) timeline.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The frame in `encoding`. The first caller runs `encode`; everyone after shares its
    /// bytes, so a frame is encoded once per format however many subscribers read it.
    pub fn encoded(&self, encoding: Encoding, encode: impl FnOnce(&Frame) -> Bytes) -> Bytes {
        let mut filled = 0;
        let bytes = self.slots[encoding as usize]
            .get_or_init(|| {
                let bytes = encode(&self.frame);
                filled = bytes.len();
                bytes
            })
            .clone();
        if filled > 0 {
            self.charge(filled);
        }
        bytes
    }

    /// Counts `len` freshly encoded bytes against the channel, unless the entry has already
    /// left the ring. The channel's count is raised first and lowered again if so, so a
    /// racing [`Entry::retire`] can make it briefly too high (trimming a little early) but
    /// never too low, and never below zero.
    fn charge(&self, len: usize) {
        self.slot_bytes.fetch_add(len, Ordering::AcqRel);
        if self.charged.fetch_add(len, Ordering::AcqRel) & RETIRED != 0 {
            self.slot_bytes.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Marks the entry as out of the ring and takes its encodings off the channel's count.
    pub(crate) fn retire(&self) {
        let charged = self.charged.fetch_or(RETIRED, Ordering::AcqRel) & !RETIRED;
        self.slot_bytes.fetch_sub(charged, Ordering::AcqRel);
    }

    /// Media bytes: the frame's payload.
    pub(crate) fn size(&self) -> usize {
        self.frame.data.len()
    }

    /// Bytes this entry holds now: the payload and every filled slot.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.size()
            + self
                .slots
                .iter()
                .filter_map(|s| s.get().map(Bytes::len))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_media::{MediaKind, Timestamp};
    use std::cell::Cell;

    fn entry() -> Entry {
        Entry::new(
            Frame::new(
                MediaKind::Audio,
                Timestamp::ZERO,
                Bytes::from_static(b"\xaf\x01x"),
            ),
            0,
            Arc::default(),
        )
    }

    #[test]
    fn each_encoding_is_made_once_and_shared() {
        let entry = entry();
        let calls = Cell::new(0);
        let encode = |f: &Frame| {
            calls.set(calls.get() + 1);
            Bytes::copy_from_slice(&f.data)
        };
        let a = entry.encoded(Encoding::FlvTag, encode);
        let b = entry.encoded(Encoding::FlvTag, encode);
        assert_eq!(calls.get(), 1);
        assert_eq!(a.as_ptr(), b.as_ptr());
        entry.encoded(Encoding::RtmpChunks, encode);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn encodings_count_against_the_channel_until_the_entry_leaves_the_ring() {
        let entry = entry();
        let count = entry.slot_bytes.clone();
        entry.encoded(Encoding::FlvTag, |_| Bytes::from(vec![0; 18]));
        entry.encoded(Encoding::FlvTag, |_| unreachable!("filled once"));
        assert_eq!(count.load(Ordering::Acquire), 18);
        entry.retire();
        assert_eq!(count.load(Ordering::Acquire), 0);
        // A viewer still holding the entry may encode it after it left the ring: that is
        // the viewer's memory, not the ring's.
        entry.encoded(Encoding::RtmpChunks, |_| Bytes::from(vec![0; 30]));
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert_eq!(entry.held_bytes(), 3 + 18 + 30);
    }
}
