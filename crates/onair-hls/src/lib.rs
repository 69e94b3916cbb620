//! HLS for OnAir without any I/O: an MPEG-TS muxer, a segmenter that cuts FLV frames into
//! transport-stream segments, and m3u8 playlist writers (and a parser for our own
//! playlists). It writes no files and reads no clock: the caller stores the bytes and passes
//! wall-clock times in.
//!
//! | what | follows |
//! | --- | --- |
//! | TS packets, PAT/PMT with CRC-32, PES with PTS/DTS, PCR, continuity counters, stuffing ([`ts`]) | ISO/IEC 13818-1 §2.4.3, §2.4.4, Annex A |
//! | stream types 0x1B (H.264), 0x24 (HEVC), 0x0F (AAC ADTS) ([`ts::StreamType`]) | ISO/IEC 13818-1 Table 2-34 |
//! | AVCC/HVCC length-prefixed samples → Annex-B, AUD, parameter sets ([`annexb`]) | ISO/IEC 14496-15 §5.3.3.1, §8.3.3.1; H.264 and H.265 Annex B |
//! | ADTS headers from the AudioSpecificConfig ([`adts`]) | ISO/IEC 13818-7 §6.2; ISO/IEC 14496-3 §1.6.2.1 |
//! | segments, EXTINF, TARGETDURATION, MEDIA-SEQUENCE, DISCONTINUITY(-SEQUENCE), PROGRAM-DATE-TIME, PLAYLIST-TYPE, ENDLIST ([`segmenter`], [`playlist`]) | RFC 8216 §3.2, §4.3, §6.2 |
//!
//! **Why our own muxer rather than the `mpeg2ts` crate:** HLS needs exact control over what
//! that crate leaves to its caller or hides behind `Write`: a PCR at least every 100 ms and
//! on every keyframe with `random_access_indicator`, continuity counters that carry across
//! segment boundaries, PAT/PMT at the exact byte where a segment starts, and zero-copy input
//! (a PES payload gathered from the publisher's `Bytes` slices, start codes and parameter
//! sets without first assembling an Annex-B buffer). What remains is a few hundred lines
//! with exact-byte tests.
//!
//! Feed frames, drain outputs, and keep the playlist beside the segment files:
//!
//! ```
//! use bytes::Bytes;
//! use onair_hls::playlist::{Playlist, PlaylistKind, SegmentEntry, UriPattern};
//! use onair_hls::segmenter::{Output, Segmenter, SegmenterConfig};
//! use onair_media::{Frame, MediaKind, Timestamp};
//!
//! let mut segmenter = Segmenter::new(SegmenterConfig::default()); // 2 s target
//! let mut playlist = Playlist::new(PlaylistKind::Live { window: 6 });
//! let names = UriPattern::new("seg-{sequence}.ts")?;
//!
//! // An AVC sequence header (SPS + PPS), then one keyframe a second for 5 s.
//! let config = Bytes::from_static(&[
//!     0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x28, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x64, 0x00,
//!     0x28, 0x01, 0x00, 0x04, 0x68, 0xEE, 0x3C, 0x80,
//! ]);
//! let keyframe = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]);
//! let mut frames = vec![Frame::new(MediaKind::Video, Timestamp::ZERO, config).with_sequence_header(true)];
//! for second in 0..=5 {
//!     let at = Timestamp::from_millis(second * 1000);
//!     frames.push(Frame::new(MediaKind::Video, at, keyframe.clone()).with_keyframe(true));
//! }
//!
//! let now_unix_ms = 1_795_296_255_123; // the caller's clock
//! let mut segment_bytes = Vec::new();
//! for frame in &frames {
//!     segmenter.handle_frame(now_unix_ms, frame)?;
//!     while let Some(output) = segmenter.poll_output() {
//!         match output {
//!             Output::SegmentStarted { .. } => segment_bytes.clear(), // open a temp file
//!             Output::Data(packets) => segment_bytes.extend_from_slice(&packets),
//!             Output::SegmentFinished(info) => {
//!                 assert_eq!(info.bytes as usize, segment_bytes.len()); // rename into place
//!                 playlist.push(SegmentEntry::from_segment(&info, &names))?;
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(playlist.segments().len(), 2); // [0, 2 s) and [2 s, 4 s); 4 s.. is still open
//! assert!(playlist.to_string().contains("#EXTINF:2.000,\nseg-1.ts\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod adts;
pub mod annexb;
// Under `test` too: the unit tests share its checkers, and must not rely on the dev-dependency
// through which Cargo.toml turns the feature on for the integration tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod playlist;
pub mod segmenter;
pub mod ts;

pub use playlist::{Playlist, PlaylistKind, SegmentEntry, UriPattern};
pub use segmenter::{
    FrameError, Output, SegmentInfo, Segmenter, SegmenterConfig, UnsupportedCodec,
};
