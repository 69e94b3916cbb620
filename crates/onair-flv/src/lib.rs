//! FLV muxing and demuxing, plus the codec headers inside FLV tag bodies (legacy and
//! Enhanced RTMP), without any I/O.
//!
//! | what | follows |
//! | --- | --- |
//! | file header, tag header, `PreviousTagSize` ([`FlvHeader`], [`encode_tag`], [`FlvDemuxer`]) | Adobe FLV/F4V v10.1 §E.2–§E.4.1 |
//! | legacy `VideoTagHeader` / `AudioTagHeader` ([`parse_video_tag`], [`parse_audio_tag`]) | FLV v10.1 §E.4.2.1, §E.4.3.1 |
//! | `ExVideoTagHeader` / `ExAudioTagHeader`: FourCC, packet types, ModEx, Multitrack | Enhanced RTMP v1 (2023) and v2 (veovera `enhanced-rtmp-v2.md`) |
//! | `AVCDecoderConfigurationRecord` ([`parse_avc_config`]), HEVC record detection ([`is_hevc_config`]) | ISO/IEC 14496-15 §5.3.3.1, §8.3.3.1 |
//! | SPS width/height ([`AvcConfig::width`]) | ITU-T H.264 §7.3.2.1.1, §7.4.2.1.1 (frame cropping) |
//! | `AudioSpecificConfig` ([`parse_aac_config`]) | ISO/IEC 14496-3 §1.6.2.1 |
//! | `onMetaData` ([`parse_metadata`], [`is_on_metadata`], [`strip_set_data_frame`]) | FLV v10.1 §E.5, AMF0 |
//! | seekable files: `keyframes { times, filepositions }` in `onMetaData` ([`IndexedFlvWriter`]) | FFmpeg's `add_keyframe_index` convention, as its demuxer, flv.js and mpegts.js read it |
//! | seeking a file by its `keyframes` index ([`seek`]) | FFmpeg's `add_keyframe_index` convention |
//!
//! An FLV tag body is byte for byte the payload of an RTMP audio (8), video (9) or data (18)
//! message, so the same parsers serve RTMP ingest, HTTP-FLV output and FLV files.
//!
//! Encoding a tag is one exact-size allocation that every HTTP-FLV viewer then shares;
//! demuxing hands out [`bytes::Bytes`] slices of the read buffer, never copies:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use onair_flv::{FlvDemuxer, FlvHeader, classify, encode_tag};
//! use onair_media::{MediaKind, Timestamp};
//!
//! // A legacy AVC keyframe: FrameType 1 | CodecID 7, AVCPacketType 1, CompositionTime 0, NALUs.
//! let body = [0x17, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88];
//! let mut stream = BytesMut::new();
//! stream.extend_from_slice(&FlvHeader { has_audio: false, has_video: true }.encode());
//! stream.extend_from_slice(&encode_tag(MediaKind::Video, Timestamp::from_millis(40), &body));
//!
//! // Feed the bytes in any split; `Ok(None)` means "read more".
//! let mut demuxer = FlvDemuxer::default();
//! let mut input = BytesMut::new();
//! let mut tags = Vec::new();
//! for piece in stream.chunks(5) {
//!     input.extend_from_slice(piece);
//!     while let Some(tag) = demuxer.decode(&mut input)? {
//!         tags.push(tag);
//!     }
//! }
//! assert_eq!(demuxer.header().map(|h| h.has_video), Some(true));
//! assert_eq!(tags.len(), 1);
//! assert_eq!(tags[0].timestamp, Timestamp::from_millis(40));
//! assert_eq!(&tags[0].body[..], &body[..]);
//!
//! let class = classify(MediaKind::Video, &tags[0].body);
//! assert!(class.keyframe && !class.sequence_header);
//! # Ok::<(), onair_flv::FlvError>(())
//! ```
#![deny(missing_docs)]

pub mod audio;
mod classify;
pub mod config;
mod error;
// Under `test` too: the unit tests share its checkers, and must not rely on the dev-dependency
// through which Cargo.toml turns the feature on for the integration tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod indexed;
pub mod metadata;
pub mod seek;
pub mod tag;
pub mod video;

pub use audio::{AudioPacket, AudioTagInfo, parse_audio_tag};
pub use classify::{FrameClass, classify, frame_from_tag};
pub use config::{AacConfig, AvcConfig, is_hevc_config, parse_aac_config, parse_avc_config};
pub use error::FlvError;
pub use header::{FLV_HEADER_LEN, FlvHeader};
pub use indexed::{IndexedFlvWriter, IndexedKeyframe, TagFraming};
pub use metadata::{StreamMetadata, is_on_metadata, parse_metadata, strip_set_data_frame};
pub use tag::{
    FlvDemuxer, FlvLimits, FlvTag, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, encode_frame, encode_tag,
    try_encode_tag,
};
pub use video::{MultitrackType, VideoFrameType, VideoPacket, VideoTagInfo, parse_video_tag};
