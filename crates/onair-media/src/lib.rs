//! The vocabulary every OnAir crate shares: a media [`Frame`], its [`MediaKind`], a
//! [`Timestamp`], and the codec names.
//!
//! | concept | follows |
//! | --- | --- |
//! | frame payload | the FLV tag body (FLV v10.1 §E.4), which is byte for byte the RTMP audio/video/data message payload |
//! | codec ids | FLV v10.1 `CodecID`/`SoundFormat`, Enhanced RTMP v2 FourCC |
//!
//! A frame is created once by the ingest and then shared, never copied, by every viewer:
//!
//! ```
//! use bytes::Bytes;
//! use onair_media::{Frame, MediaKind, Timestamp};
//!
//! let frame = Frame::new(MediaKind::Video, Timestamp::from_millis(40), Bytes::from_static(&[0x17, 1, 0, 0, 0]))
//!     .with_keyframe(true);
//! let shared = frame.clone(); // a reference count, not a copy
//! assert_eq!(shared.data.as_ptr(), frame.data.as_ptr());
//! ```
#![deny(missing_docs)]

use std::fmt;

use bytes::Bytes;

/// What a frame carries. The discriminants are the FLV tag types, which equal the RTMP
/// message type ids for audio (8), video (9) and AMF0 data (18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An audio tag body.
    Audio = 8,
    /// A video tag body.
    Video = 9,
    /// A script-data (AMF0) tag body, e.g. `onMetaData`.
    Script = 18,
}

impl MediaKind {
    /// The FLV tag type, which is also the RTMP message type id.
    pub fn tag_type(self) -> u8 {
        self as u8
    }

    /// The kind for an FLV tag type / RTMP message type id.
    pub fn from_tag_type(tag_type: u8) -> Option<Self> {
        match tag_type {
            8 => Some(Self::Audio),
            9 => Some(Self::Video),
            18 => Some(Self::Script),
            _ => None,
        }
    }
}

/// A media timestamp in milliseconds, as RTMP and FLV carry it (32 bits, wrapping after
/// about 49.7 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u32);

impl Timestamp {
    /// Zero.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp of `ms` milliseconds.
    pub const fn from_millis(ms: u32) -> Self {
        Timestamp(ms)
    }

    /// The value in milliseconds.
    pub const fn as_millis(self) -> u32 {
        self.0
    }

    /// `self + ms`, wrapping at 2^32 like the wire format does.
    pub const fn wrapping_add(self, ms: u32) -> Self {
        Timestamp(self.0.wrapping_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, read as serial numbers (RFC 1982 style), so a
    /// step across the 32-bit wrap is a small positive number and a step back is negative.
    pub const fn since(self, earlier: Timestamp) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// One media message: an audio, video or script tag body with its decode timestamp.
///
/// `data` is the FLV tag body exactly as the publisher sent it (legacy or Enhanced RTMP
/// header included), so every output format can pass it through untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// Decode timestamp.
    pub timestamp: Timestamp,
    /// A video frame a decoder can start on (FLV frame type 1, or an E-RTMP key frame).
    pub keyframe: bool,
    /// A decoder configuration (AVC/HEVC record, AAC AudioSpecificConfig, E-RTMP
    /// SequenceStart) rather than coded media; viewers need the latest one before any frame.
    pub sequence_header: bool,
    /// The tag body, shared by reference.
    pub data: Bytes,
}

impl Frame {
    /// A frame that is neither a keyframe nor a sequence header.
    pub fn new(kind: MediaKind, timestamp: Timestamp, data: Bytes) -> Self {
        Frame {
            kind,
            timestamp,
            keyframe: false,
            sequence_header: false,
            data,
        }
    }

    /// Marks the frame as a keyframe.
    pub fn with_keyframe(mut self, keyframe: bool) -> Self {
        self.keyframe = keyframe;
        self
    }

    /// Marks the frame as a sequence header.
    pub fn with_sequence_header(mut self, sequence_header: bool) -> Self {
        self.sequence_header = sequence_header;
        self
    }

    /// The same frame at another timestamp; the payload is shared, not copied.
    pub fn at(&self, timestamp: Timestamp) -> Self {
        Frame {
            timestamp,
            ..self.clone()
        }
    }
}

/// A four-character code as Enhanced RTMP uses them (`hvc1`, `av01`, `Opus`, …).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// The code as a big-endian integer, the way it sits on the wire.
    pub fn as_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// A video codec, from the legacy FLV CodecID or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC (CodecID 7, `avc1`).
    H264,
    /// H.265 / HEVC (`hvc1`, or the non-standard CodecID 12).
    Hevc,
    /// AV1 (`av01`).
    Av1,
    /// VP9 (`vp09`).
    Vp9,
    /// VP8 (`vp08`).
    Vp8,
    /// H.266 / VVC (`vvc1`).
    Vvc,
    /// Sorenson H.263 (CodecID 2).
    SorensonH263,
    /// Screen video (CodecID 3 or 6).
    ScreenVideo,
    /// On2 VP6 (CodecID 4 or 5).
    Vp6,
    /// A legacy CodecID we do not name.
    Legacy(u8),
    /// An Enhanced RTMP FourCC we do not name; passed through untouched.
    Other(FourCc),
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodec::H264 => f.write_str("h264"),
            VideoCodec::Hevc => f.write_str("hevc"),
            VideoCodec::Av1 => f.write_str("av1"),
            VideoCodec::Vp9 => f.write_str("vp9"),
            VideoCodec::Vp8 => f.write_str("vp8"),
            VideoCodec::Vvc => f.write_str("vvc"),
            VideoCodec::SorensonH263 => f.write_str("h263"),
            VideoCodec::ScreenVideo => f.write_str("screen"),
            VideoCodec::Vp6 => f.write_str("vp6"),
            VideoCodec::Legacy(id) => write!(f, "codec-id-{id}"),
            VideoCodec::Other(cc) => write!(f, "{cc}"),
        }
    }
}

/// An audio codec, from the legacy FLV SoundFormat or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// AAC (SoundFormat 10, `mp4a`).
    Aac,
    /// MP3 (SoundFormat 2 or 14, `.mp3`).
    Mp3,
    /// Opus (`Opus`).
    Opus,
    /// FLAC (`fLaC`).
    Flac,
    /// AC-3 (`ac-3`).
    Ac3,
    /// E-AC-3 (`ec-3`).
    Eac3,
    /// G.711 A-law (SoundFormat 7).
    G711A,
    /// G.711 µ-law (SoundFormat 8).
    G711U,
    /// Speex (SoundFormat 11).
    Speex,
    /// Nellymoser (SoundFormat 4, 5 or 6).
    Nellymoser,
    /// Linear PCM (SoundFormat 0 or 3).
    Pcm,
    /// ADPCM (SoundFormat 1).
    Adpcm,
    /// A legacy SoundFormat we do not name.
    Legacy(u8),
    /// An Enhanced RTMP FourCC we do not name; passed through untouched.
    Other(FourCc),
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioCodec::Aac => f.write_str("aac"),
            AudioCodec::Mp3 => f.write_str("mp3"),
            AudioCodec::Opus => f.write_str("opus"),
            AudioCodec::Flac => f.write_str("flac"),
            AudioCodec::Ac3 => f.write_str("ac3"),
            AudioCodec::Eac3 => f.write_str("eac3"),
            AudioCodec::G711A => f.write_str("pcm_alaw"),
            AudioCodec::G711U => f.write_str("pcm_mulaw"),
            AudioCodec::Speex => f.write_str("speex"),
            AudioCodec::Nellymoser => f.write_str("nellymoser"),
            AudioCodec::Pcm => f.write_str("pcm"),
            AudioCodec::Adpcm => f.write_str("adpcm"),
            AudioCodec::Legacy(id) => write!(f, "sound-format-{id}"),
            AudioCodec::Other(cc) => write!(f, "{cc}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_since_reads_across_the_wrap() {
        let before = Timestamp::from_millis(u32::MAX - 5);
        let after = before.wrapping_add(10);
        assert_eq!(after.as_millis(), 4);
        assert_eq!(after.since(before), 10);
        assert_eq!(before.since(after), -10);
    }

    #[test]
    fn kind_round_trips_through_tag_type() {
        for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Script] {
            assert_eq!(MediaKind::from_tag_type(kind.tag_type()), Some(kind));
        }
        assert_eq!(MediaKind::from_tag_type(20), None);
    }

    #[test]
    fn fourcc_displays_printable_and_escapes_the_rest() {
        assert_eq!(FourCc(*b"hvc1").to_string(), "hvc1");
        assert_eq!(FourCc([b'a', 0, b'c', b'd']).to_string(), "a\\x00cd");
    }
}
