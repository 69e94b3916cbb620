//! Video tag headers: legacy `VideoTagHeader` (FLV v10.1 §E.4.3.1) and Enhanced RTMP
//! `ExVideoTagHeader` (E-RTMP v1/v2).

use onair_media::{FourCc, VideoCodec};

use crate::FlvError;
use crate::config::is_hevc_config;

/// `FrameType` (legacy `UB[4]`, Enhanced `UB[3]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoFrameType {
    /// 1: a key frame (for AVC, a seekable frame).
    Key,
    /// 2: an inter frame (for AVC, a non-seekable frame).
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: a generated key frame (reserved for server use).
    GeneratedKey,
    /// 5: a video info / command frame; the body carries a command, not video.
    Command,
    /// A value the spec reserves (0, 6, 7, and 8..=15 in legacy headers).
    Other(u8),
}

impl VideoFrameType {
    fn from_bits(bits: u8) -> Self {
        match bits {
            1 => VideoFrameType::Key,
            2 => VideoFrameType::Inter,
            3 => VideoFrameType::DisposableInter,
            4 => VideoFrameType::GeneratedKey,
            5 => VideoFrameType::Command,
            other => VideoFrameType::Other(other),
        }
    }
}

/// What a video tag carries: the `AVCPacketType` of a legacy AVC/HEVC tag or the
/// `VideoPacketType` of an Enhanced one.
///
/// [`parse_video_tag`] reports the packet type of the payload itself: the `ModEx` prefix is
/// stepped over and a `Multitrack` wrapper is reported through
/// [`VideoTagInfo::multitrack`], with `packet` set to the tracks' packet type, because that
/// is what decides whether the tag is a sequence header or coded video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoPacket {
    /// Decoder configuration (legacy AVCPacketType 0, E-RTMP SequenceStart 0).
    SequenceStart,
    /// Coded frames (legacy AVCPacketType 1, E-RTMP CodedFrames 1 or CodedFramesX 3; the
    /// latter has no composition time and reports 0). Legacy codecs without a packet type
    /// (H.263, VP6, …) also report this.
    CodedFrames {
        /// Composition time offset in milliseconds (PTS − DTS), SI24.
        composition_time: i32,
    },
    /// End of sequence (legacy AVCPacketType 2, E-RTMP SequenceEnd 2).
    SequenceEnd,
    /// E-RTMP Metadata (4): AMF-encoded `colorInfo` and the like.
    Metadata,
    /// E-RTMP MPEG2TSSequenceStart (5): an MPEG-2 TS descriptor (AV1).
    Mpeg2TsSequenceStart,
    /// E-RTMP Multitrack (6). Not returned by [`parse_video_tag`], which unwraps it; kept
    /// so every wire packet type has a name.
    Multitrack,
    /// E-RTMP ModEx (7). Not returned by [`parse_video_tag`], which steps over it; kept so
    /// every wire packet type has a name.
    ModEx,
    /// A command frame's `VideoCommand` (0 start, 1 end of client-side seeking); the tag
    /// carries no video.
    Command(u8),
    /// A packet type the spec reserves (legacy AVCPacketType > 2, E-RTMP 8..=15).
    Other(u8),
}

/// `AvMultitrackType` of an E-RTMP v2 Multitrack packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MultitrackType {
    /// 0: one track, with a track id.
    OneTrack,
    /// 1: several tracks of one codec, each with an id and a size.
    ManyTracks,
    /// 2: several tracks, each with its own FourCC, id and size.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    pub(crate) fn from_bits(bits: u8) -> Result<Self, FlvError> {
        match bits {
            0 => Ok(MultitrackType::OneTrack),
            1 => Ok(MultitrackType::ManyTracks),
            2 => Ok(MultitrackType::ManyTracksManyCodecs),
            multitrack_type => Err(FlvError::ReservedMultitrackType { multitrack_type }),
        }
    }
}

/// What [`parse_video_tag`] learned from a video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VideoTagInfo {
    /// The codec: legacy CodecID or E-RTMP FourCC (for a Multitrack tag, the first track's).
    /// An E-RTMP command frame names no codec and reports `Other(FourCc([0; 4]))`.
    pub codec: VideoCodec,
    /// The frame type.
    pub frame_type: VideoFrameType,
    /// The payload's packet type.
    pub packet: VideoPacket,
    /// The tag uses the Enhanced RTMP header (bit 0x80 of the first byte).
    pub enhanced: bool,
    /// The E-RTMP v2 multitrack mode, if the tag is a Multitrack packet.
    pub multitrack: Option<MultitrackType>,
    /// Where the (first track's) codec payload starts in the body: the NAL units, OBUs or
    /// configuration record after every header field.
    pub payload_offset: usize,
}

/// Parses the legacy or Enhanced RTMP video tag header at the start of `body`.
///
/// - Legacy: `FrameType` `UB[4]` + `CodecID` `UB[4]`; for AVC (7) and the non-standard HEVC id
///   12 used by Chinese CDNs, `AVCPacketType` + SI24 `CompositionTime` follow.
/// - Enhanced (bit 0x80): `FrameType` `UB[3]`, `VideoPacketType` `UB[4]`, any `ModEx`
///   prefixes, then either a `VideoCommand` byte (command frames), a Multitrack header, or the
///   FourCC. `CodedFrames` for `avc1`/`hvc1` carry an SI24 composition time;
///   `CodedFramesX` does not. Unknown FourCCs are [`VideoCodec::Other`], never an error.
/// - Old OBS sent HEVC with CodecID 7 (protocol notes §4.7): a CodecID-7 sequence header
///   whose record is an `HEVCDecoderConfigurationRecord` is reported as
///   [`VideoCodec::Hevc`]. Coded frames cannot be told apart on their own, so a caller
///   should remember the codec of the stream's sequence header.
pub fn parse_video_tag(body: &[u8]) -> Result<VideoTagInfo, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated {
        what: "video tag header",
        needed: 1,
        available: 0,
    })?;
    if first & 0x80 != 0 {
        parse_enhanced(body, first)
    } else {
        parse_legacy(body, first)
    }
}

fn parse_legacy(body: &[u8], first: u8) -> Result<VideoTagInfo, FlvError> {
    let frame_type = VideoFrameType::from_bits(first >> 4);
    let codec_id = first & 0x0F;
    let mut codec = match codec_id {
        2 => VideoCodec::SorensonH263,
        3 | 6 => VideoCodec::ScreenVideo,
        4 | 5 => VideoCodec::Vp6,
        7 => VideoCodec::H264,
        12 => VideoCodec::Hevc,
        other => VideoCodec::Legacy(other),
    };
    let mut info = VideoTagInfo {
        codec,
        frame_type,
        packet: VideoPacket::CodedFrames {
            composition_time: 0,
        },
        enhanced: false,
        multitrack: None,
        payload_offset: 1,
    };
    if frame_type == VideoFrameType::Command {
        // FLV v10.1 §E.4.3.1: "If FrameType = 5, instead of a video payload, the message
        // stream contains a UI8" command.
        let command = read_u8(body, 1, "legacy video command")?;
        info.packet = VideoPacket::Command(command);
        info.payload_offset = 2;
        return Ok(info);
    }
    if matches!(codec_id, 7 | 12) {
        let packet_type = read_u8(body, 1, "AVCPacketType")?;
        let composition_time = read_si24(body, 2, "AVC CompositionTime")?;
        info.payload_offset = 5;
        info.packet = match packet_type {
            0 => VideoPacket::SequenceStart,
            1 => VideoPacket::CodedFrames { composition_time },
            2 => VideoPacket::SequenceEnd,
            other => VideoPacket::Other(other),
        };
        if codec_id == 7 && packet_type == 0 && is_hevc_config(&body[5..]) {
            codec = VideoCodec::Hevc;
        }
        info.codec = codec;
    }
    Ok(info)
}

fn parse_enhanced(body: &[u8], first: u8) -> Result<VideoTagInfo, FlvError> {
    let frame_type = VideoFrameType::from_bits((first >> 4) & 0x07);
    let mut packet_type = first & 0x0F;
    let mut pos = 1;
    // E-RTMP v2: "while (videoPacketType == VideoPacketType.ModEx)" – a size-prefixed
    // modifier (e.g. TimestampOffsetNano) then a byte of modExType | next packet type.
    while packet_type == 7 {
        pos = skip_mod_ex(body, pos, "video ModEx")?;
        packet_type = read_u8(body, pos, "video ModEx packet type")? & 0x0F;
        pos += 1;
    }
    let mut info = VideoTagInfo {
        codec: VideoCodec::Other(FourCc([0; 4])),
        frame_type,
        packet: packet_of(packet_type),
        enhanced: true,
        multitrack: None,
        payload_offset: pos,
    };
    // E-RTMP v2: a command frame (unless the packet is Metadata, where frame type is
    // ignored) carries only `videoCommand = UI8` and no FourCC.
    if frame_type == VideoFrameType::Command && packet_type != 4 {
        let command = read_u8(body, pos, "video command")?;
        info.packet = VideoPacket::Command(command);
        info.payload_offset = pos + 1;
        return Ok(info);
    }
    let fourcc;
    if packet_type == 6 {
        let byte = read_u8(body, pos, "video multitrack type")?;
        pos += 1;
        let multitrack = MultitrackType::from_bits(byte >> 4)?;
        packet_type = byte & 0x0F;
        if packet_type == 6 {
            return Err(FlvError::NestedMultitrack);
        }
        if packet_type == 7 {
            // The v2 grammar reads ModEx only before Multitrack; a ModEx nibble here has no
            // defined layout, so report it rather than guess.
            info.packet = VideoPacket::ModEx;
        } else {
            info.packet = packet_of(packet_type);
        }
        info.multitrack = Some(multitrack);
        // The FourCC sits in the header for one-codec modes and at the start of the first
        // track for ManyTracksManyCodecs: the same position either way. The track then has
        // trackId UI8 and, unless OneTrack, sizeOfVideoTrack UI24.
        fourcc = read_fourcc(body, pos, "video FourCC")?;
        pos += 4;
        read_u8(body, pos, "video track id")?;
        pos += 1;
        if multitrack != MultitrackType::OneTrack {
            read_u24(body, pos, "video track size")?;
            pos += 3;
        }
    } else {
        fourcc = read_fourcc(body, pos, "video FourCC")?;
        pos += 4;
    }
    info.codec = video_codec_of(fourcc);
    if packet_type == 1 && matches!(&fourcc.0, b"avc1" | b"hvc1") {
        let composition_time = read_si24(body, pos, "video CompositionTime")?;
        pos += 3;
        info.packet = VideoPacket::CodedFrames { composition_time };
    }
    info.payload_offset = pos;
    Ok(info)
}

fn packet_of(packet_type: u8) -> VideoPacket {
    match packet_type {
        0 => VideoPacket::SequenceStart,
        // CodedFramesX (3): "CompositionTime Offset is implied to equal zero".
        1 | 3 => VideoPacket::CodedFrames {
            composition_time: 0,
        },
        2 => VideoPacket::SequenceEnd,
        4 => VideoPacket::Metadata,
        5 => VideoPacket::Mpeg2TsSequenceStart,
        6 => VideoPacket::Multitrack,
        7 => VideoPacket::ModEx,
        other => VideoPacket::Other(other),
    }
}

/// The codec for an E-RTMP video FourCC; unknown ones pass through as `Other`.
pub(crate) fn video_codec_of(fourcc: FourCc) -> VideoCodec {
    match &fourcc.0 {
        b"avc1" => VideoCodec::H264,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        b"vp08" => VideoCodec::Vp8,
        b"vvc1" => VideoCodec::Vvc,
        _ => VideoCodec::Other(fourcc),
    }
}

/// Steps over one ModEx blob starting at its size byte: `modExDataSize = UI8 + 1`, and if
/// that is 256, `UI16 + 1` (E-RTMP v2). Returns the position of the byte after the data.
pub(crate) fn skip_mod_ex(body: &[u8], pos: usize, what: &'static str) -> Result<usize, FlvError> {
    let mut size = usize::from(read_u8(body, pos, what)?) + 1;
    let mut pos = pos + 1;
    if size == 256 {
        let hi = read_u8(body, pos, what)?;
        let lo = read_u8(body, pos + 1, what)?;
        size = usize::from(u16::from_be_bytes([hi, lo])) + 1;
        pos += 2;
    }
    let end = pos + size;
    if body.len() < end {
        return Err(FlvError::Truncated {
            what,
            needed: end,
            available: body.len(),
        });
    }
    Ok(end)
}

pub(crate) fn read_u8(body: &[u8], pos: usize, what: &'static str) -> Result<u8, FlvError> {
    body.get(pos).copied().ok_or(FlvError::Truncated {
        what,
        needed: pos + 1,
        available: body.len(),
    })
}

pub(crate) fn read_fourcc(body: &[u8], pos: usize, what: &'static str) -> Result<FourCc, FlvError> {
    body.get(pos..pos + 4)
        .and_then(|b| b.try_into().ok())
        .map(FourCc)
        .ok_or(FlvError::Truncated {
            what,
            needed: pos + 4,
            available: body.len(),
        })
}

pub(crate) fn read_u24(body: &[u8], pos: usize, what: &'static str) -> Result<u32, FlvError> {
    match body.get(pos..pos + 3) {
        Some(&[a, b, c]) => Ok(u32::from_be_bytes([0, a, b, c])),
        _ => Err(FlvError::Truncated {
            what,
            needed: pos + 3,
            available: body.len(),
        }),
    }
}

fn read_si24(body: &[u8], pos: usize, what: &'static str) -> Result<i32, FlvError> {
    // Sign-extend by placing the 24 bits at the top of an i32 and shifting back.
    Ok(((read_u24(body, pos, what)? << 8) as i32) >> 8)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn parse(hex_body: &str) -> VideoTagInfo {
        parse_video_tag(&hex::decode(hex_body.replace(' ', "")).unwrap()).unwrap()
    }

    /// A minimal HEVCDecoderConfigurationRecord: 22 fixed bytes, 1 array of VPS-less SPS.
    pub(crate) const HVCC: &str = "01 01 60000000 900000000000 5d f000 fc fd f8 f8 0000 0f \
                                   01 a1 0001 0004 42010101";

    #[test]
    fn legacy_avc_keyframe_inter_frame_and_sequence_header() {
        let key = parse("17 01 000050 00000002 6588");
        assert_eq!(key.codec, VideoCodec::H264);
        assert_eq!(key.frame_type, VideoFrameType::Key);
        assert_eq!(
            key.packet,
            VideoPacket::CodedFrames {
                composition_time: 80
            }
        );
        assert_eq!(key.payload_offset, 5);
        assert!(!key.enhanced);

        let inter = parse("27 01 ffffd8 00000002 4188");
        assert_eq!(inter.frame_type, VideoFrameType::Inter);
        assert_eq!(
            inter.packet,
            VideoPacket::CodedFrames {
                composition_time: -40
            }
        );

        let seq = parse("17 00 000000 0164001fffe1 0004 6764001f 01 0002 68ee");
        assert_eq!(seq.codec, VideoCodec::H264);
        assert_eq!(seq.packet, VideoPacket::SequenceStart);

        let eos = parse("17 02 000000");
        assert_eq!(eos.packet, VideoPacket::SequenceEnd);
    }

    #[test]
    fn legacy_hevc_codec_id_12_and_old_obs_codec_id_7() {
        let cn_cdn = parse(&format!("1c 00 000000 {HVCC}"));
        assert_eq!(cn_cdn.codec, VideoCodec::Hevc);
        assert_eq!(cn_cdn.packet, VideoPacket::SequenceStart);

        let old_obs = parse(&format!("17 00 000000 {HVCC}"));
        assert_eq!(old_obs.codec, VideoCodec::Hevc, "hvcC behind CodecID 7");
        assert_eq!(old_obs.packet, VideoPacket::SequenceStart);
    }

    #[test]
    fn legacy_other_codecs_and_commands() {
        let vp6 = parse("24 aabb");
        assert_eq!(vp6.codec, VideoCodec::Vp6);
        assert_eq!(vp6.frame_type, VideoFrameType::Inter);
        assert_eq!(
            vp6.packet,
            VideoPacket::CodedFrames {
                composition_time: 0
            }
        );
        assert_eq!(vp6.payload_offset, 1);
        assert_eq!(parse("12 00").codec, VideoCodec::SorensonH263);
        assert_eq!(parse("1f 00").codec, VideoCodec::Legacy(15));

        let command = parse("57 01");
        assert_eq!(command.frame_type, VideoFrameType::Command);
        assert_eq!(command.packet, VideoPacket::Command(1));
    }

    #[test]
    fn enhanced_hvc1_sequence_start_coded_frames_and_coded_frames_x() {
        // 0x90 = ex | key(1) | SequenceStart(0)
        let seq = parse(&format!("90 68766331 {HVCC}"));
        assert!(seq.enhanced);
        assert_eq!(seq.codec, VideoCodec::Hevc);
        assert_eq!(seq.frame_type, VideoFrameType::Key);
        assert_eq!(seq.packet, VideoPacket::SequenceStart);
        assert_eq!(seq.payload_offset, 5);

        // 0x91 = key CodedFrames with SI24 composition time.
        let coded = parse("91 68766331 000021 00000003 260101");
        assert_eq!(
            coded.packet,
            VideoPacket::CodedFrames {
                composition_time: 33
            }
        );
        assert_eq!(coded.payload_offset, 8);

        // 0xa3 = inter CodedFramesX: no composition time.
        let x = parse("a3 68766331 00000003 020101");
        assert_eq!(x.frame_type, VideoFrameType::Inter);
        assert_eq!(
            x.packet,
            VideoPacket::CodedFrames {
                composition_time: 0
            }
        );
        assert_eq!(x.payload_offset, 5);

        let end = parse("92 68766331");
        assert_eq!(end.packet, VideoPacket::SequenceEnd);
    }

    #[test]
    fn enhanced_av01_vp09_and_unknown_fourcc() {
        let av1 = parse("90 61763031 81000c00");
        assert_eq!(av1.codec, VideoCodec::Av1);
        assert_eq!(av1.packet, VideoPacket::SequenceStart);
        // av01 CodedFrames carry no composition time.
        let frame = parse("a1 61763031 12000a0b");
        assert_eq!(
            frame.packet,
            VideoPacket::CodedFrames {
                composition_time: 0
            }
        );
        assert_eq!(frame.payload_offset, 5);
        assert_eq!(parse("94 61763031 02").packet, VideoPacket::Metadata);
        assert_eq!(
            parse("95 61763031").packet,
            VideoPacket::Mpeg2TsSequenceStart
        );
        assert_eq!(parse("91 76703039 00").codec, VideoCodec::Vp9);
        assert_eq!(parse("91 76766331 00").codec, VideoCodec::Vvc);
        let unknown = parse("91 78797a31 00");
        assert_eq!(unknown.codec, VideoCodec::Other(FourCc(*b"xyz1")));
        assert_eq!(parse("9c 61763031").packet, VideoPacket::Other(12));
    }

    #[test]
    fn enhanced_multitrack_reports_the_first_track() {
        // 0x96 = key Multitrack; 0x00 = OneTrack | SequenceStart; FourCC; trackId 0.
        let one = parse(&format!("96 00 68766331 00 {HVCC}"));
        assert_eq!(one.codec, VideoCodec::Hevc);
        assert_eq!(one.multitrack, Some(MultitrackType::OneTrack));
        assert_eq!(one.packet, VideoPacket::SequenceStart);
        assert_eq!(one.payload_offset, 7);

        // ManyTracks | CodedFrames, avc1: trackId, size, then SI24 composition time.
        let many = parse("96 11 61766331 00 000008 00000a 00000001 65");
        assert_eq!(many.codec, VideoCodec::H264);
        assert_eq!(many.multitrack, Some(MultitrackType::ManyTracks));
        assert_eq!(
            many.packet,
            VideoPacket::CodedFrames {
                composition_time: 10
            }
        );
        assert_eq!(many.payload_offset, 13);

        // ManyTracksManyCodecs | CodedFramesX: the FourCC sits in the track.
        let mixed = parse("a6 23 61763031 01 000002 1200");
        assert_eq!(mixed.codec, VideoCodec::Av1);
        assert_eq!(mixed.frame_type, VideoFrameType::Inter);
        assert_eq!(mixed.multitrack, Some(MultitrackType::ManyTracksManyCodecs));
        assert_eq!(mixed.payload_offset, 10);

        let nested = parse_video_tag(&hex::decode("960668766331").unwrap());
        assert!(matches!(nested, Err(FlvError::NestedMultitrack)));
        let reserved = parse_video_tag(&hex::decode("963068766331").unwrap());
        assert!(matches!(
            reserved,
            Err(FlvError::ReservedMultitrackType { multitrack_type: 3 })
        ));
    }

    #[test]
    fn enhanced_mod_ex_and_command_frames() {
        // ModEx: size-1 = 2 (3 bytes nano offset), then modExType 0 | CodedFrames.
        let modex = parse("97 02 0003e8 01 68766331 000000 aa");
        assert_eq!(modex.codec, VideoCodec::Hevc);
        assert_eq!(
            modex.packet,
            VideoPacket::CodedFrames {
                composition_time: 0
            }
        );
        assert_eq!(modex.payload_offset, 13);
        // The 16-bit size escape: 0xff then UI16 + 1 = 300 bytes of data.
        let mut long = hex::decode("97 ff 012b".replace(' ', "")).unwrap();
        long.extend(std::iter::repeat_n(0u8, 300));
        long.extend_from_slice(&hex::decode("0061763031").unwrap());
        let info = parse_video_tag(&long).unwrap();
        assert_eq!(info.packet, VideoPacket::SequenceStart);
        assert_eq!(info.codec, VideoCodec::Av1);

        // Command frame (0xd0 = ex | Command(5) | SequenceStart): UI8 command, no FourCC.
        let command = parse("d1 00");
        assert_eq!(command.frame_type, VideoFrameType::Command);
        assert_eq!(command.packet, VideoPacket::Command(0));
        // …but a Metadata packet ignores the frame type and has a FourCC.
        assert_eq!(parse("d4 68766331 02").codec, VideoCodec::Hevc);
    }

    #[test]
    fn truncated_headers_are_errors_with_sizes() {
        for bad in [
            "",
            "17",
            "17 01 0000",
            "91 6876",
            "96",
            "96 00 687663",
            "97 05 00",
            "d1",
        ] {
            let bytes = hex::decode(bad.replace(' ', "")).unwrap();
            let err = parse_video_tag(&bytes).unwrap_err();
            assert!(matches!(err, FlvError::Truncated { .. }), "{bad}: {err}");
        }
    }
}
