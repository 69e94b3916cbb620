//! One frame in a channel's ring, with its shared per-format encodings.

use std::sync::OnceLock;

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

/// A frame as the hub holds it: shared by every subscriber through an `Arc`.
#[derive(Debug)]
pub struct Entry {
    frame: Frame,
    /// Media bytes the channel carried before this frame, to measure how far behind a reader is.
    offset: u64,
    slots: [OnceLock<Bytes>; ENCODINGS],
}

impl Entry {
    pub(crate) fn new(frame: Frame, offset: u64) -> Self {
        Entry {
            frame,
            offset,
            slots: Default::default(),
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
        self.slots[encoding as usize]
            .get_or_init(|| encode(&self.frame))
            .clone()
    }

    pub(crate) fn size(&self) -> usize {
        self.frame.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_media::{MediaKind, Timestamp};
    use std::cell::Cell;

    #[test]
    fn each_encoding_is_made_once_and_shared() {
        let entry = Entry::new(
            Frame::new(
                MediaKind::Audio,
                Timestamp::ZERO,
                Bytes::from_static(b"\xaf\x01x"),
            ),
            0,
        );
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
}
