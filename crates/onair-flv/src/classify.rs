//! What the ingest needs to know about a tag for the hub: keyframe, sequence header, codec.

use bytes::Bytes;
use onair_media::{AudioCodec, Frame, MediaKind, Timestamp, VideoCodec};

use crate::{AudioPacket, VideoFrameType, VideoPacket, parse_audio_tag, parse_video_tag};

/// The classification of one tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameClass {
    /// A coded video frame a decoder can start on: `FrameType` 1 (key frame) on a packet
    /// that carries coded pictures — legacy AVC/HEVC `AVCPacketType` 1, E-RTMP CodedFrames or
    /// CodedFramesX, or a legacy codec without a packet type. Never true together with
    /// [`FrameClass::sequence_header`].
    pub keyframe: bool,
    /// A decoder configuration: AVC/HEVC `AVCPacketType` 0, AAC `AACPacketType` 0, or an
    /// E-RTMP audio/video SequenceStart (including inside a Multitrack packet).
    pub sequence_header: bool,
    /// The video codec, for video tags whose header parses.
    pub video: Option<VideoCodec>,
    /// The audio codec, for audio tags whose header parses.
    pub audio: Option<AudioCodec>,
}

/// Classifies a tag body. Never fails: a body whose header does not parse (or a script
/// tag) is a plain frame — not a keyframe, not a sequence header, no codec — and is still
/// passed through to viewers.
///
/// Only a key-frame tag with coded pictures is a keyframe. Sequence headers, end-of-sequence,
/// E-RTMP Metadata and command frames are also sent with frame type 1, but a viewer cannot
/// start decoding on them, and the hub takes every keyframe as a place to start a viewer.
pub fn classify(kind: MediaKind, body: &[u8]) -> FrameClass {
    match kind {
        MediaKind::Video => match parse_video_tag(body) {
            Ok(info) => FrameClass {
                keyframe: info.frame_type == VideoFrameType::Key
                    && matches!(info.packet, VideoPacket::CodedFrames { .. }),
                sequence_header: info.packet == VideoPacket::SequenceStart,
                video: Some(info.codec),
                audio: None,
            },
            Err(_) => FrameClass::default(),
        },
        MediaKind::Audio => match parse_audio_tag(body) {
            Ok(info) => FrameClass {
                keyframe: false,
                sequence_header: info.packet == AudioPacket::SequenceStart,
                video: None,
                audio: Some(info.codec),
            },
            Err(_) => FrameClass::default(),
        },
        MediaKind::Script => FrameClass::default(),
    }
}

/// A hub [`Frame`] for a tag body, with `keyframe` and `sequence_header` from
/// [`classify`]. The body is moved in, not copied.
pub fn frame_from_tag(kind: MediaKind, timestamp: Timestamp, body: Bytes) -> Frame {
    let class = classify(kind, &body);
    Frame::new(kind, timestamp, body)
        .with_keyframe(class.keyframe)
        .with_sequence_header(class.sequence_header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_media::FourCc;

    /// kind, body hex, keyframe, sequence header, video codec, audio codec.
    type Row = (
        MediaKind,
        String,
        bool,
        bool,
        Option<VideoCodec>,
        Option<AudioCodec>,
    );

    /// `keyframe` means "coded pictures a decoder can start on": the hub starts viewers there.
    /// Frame-type-1 tags that carry no pictures (sequence headers, end of sequence, E-RTMP
    /// Metadata, command frames) are not keyframes; sequence headers are marked as such
    /// instead and cached apart.
    #[test]
    fn classification_table() {
        let hvcc = crate::video::tests::HVCC.replace(' ', "");
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // legacy AVC: seq header, key NALU, inter NALU, end of sequence (frame type 1, no picture)
            (MediaKind::Video, "1700000000 0164001fffe1".into(), false, true, Some(VideoCodec::H264), None),
            (MediaKind::Video, "1701000000 00000165".into(), true, false, Some(VideoCodec::H264), None),
            (MediaKind::Video, "2701000000 00000141".into(), false, false, Some(VideoCodec::H264), None),
            (MediaKind::Video, "1702000000".into(), false, false, Some(VideoCodec::H264), None),
            // legacy HEVC id 12, and old OBS HEVC behind id 7
            (MediaKind::Video, format!("1c00000000{hvcc}"), false, true, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, format!("1700000000{hvcc}"), false, true, Some(VideoCodec::Hevc), None),
            // legacy command frame: no video
            (MediaKind::Video, "5700".into(), false, false, Some(VideoCodec::H264), None),
            // legacy VP6 inter, H.263 key
            (MediaKind::Video, "24 00".into(), false, false, Some(VideoCodec::Vp6), None),
            (MediaKind::Video, "12 00".into(), true, false, Some(VideoCodec::SorensonH263), None),
            // E-RTMP hvc1 SequenceStart, key CodedFrames, inter CodedFramesX, av01, unknown FourCC
            (MediaKind::Video, format!("9068766331{hvcc}"), false, true, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "9168766331 000000 00".into(), true, false, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "a368766331 00".into(), false, false, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "9061763031 81".into(), false, true, Some(VideoCodec::Av1), None),
            (MediaKind::Video, "b161763031 00".into(), false, false, Some(VideoCodec::Av1), None),
            (MediaKind::Video, "9178797a31".into(), true, false, Some(VideoCodec::Other(FourCc(*b"xyz1"))), None),
            // E-RTMP multitrack SequenceStart, key Metadata and SequenceEnd (no picture), command
            (MediaKind::Video, format!("960068766331 00{hvcc}"), false, true, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "9468766331 02".into(), false, false, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "9268766331".into(), false, false, Some(VideoCodec::Hevc), None),
            (MediaKind::Video, "d101".into(), false, false, Some(VideoCodec::Other(FourCc([0; 4]))), None),
            // broken video: plain frame
            (MediaKind::Video, "".into(), false, false, None, None),
            (MediaKind::Video, "9168".into(), false, false, None, None),
            (MediaKind::Video, "960668766331".into(), false, false, None, None),
            // audio: AAC config / raw, MP3, Opus SequenceStart / frames, reserved packet type
            (MediaKind::Audio, "af00 1210".into(), false, true, None, Some(AudioCodec::Aac)),
            (MediaKind::Audio, "af01 21".into(), false, false, None, Some(AudioCodec::Aac)),
            (MediaKind::Audio, "2f ff".into(), false, false, None, Some(AudioCodec::Mp3)),
            (MediaKind::Audio, "904f707573 4f707573".into(), false, true, None, Some(AudioCodec::Opus)),
            (MediaKind::Audio, "914f707573 fc".into(), false, false, None, Some(AudioCodec::Opus)),
            (MediaKind::Audio, "950 0 4f707573 00 1210".into(), false, true, None, Some(AudioCodec::Opus)),
            (MediaKind::Audio, "934f707573".into(), false, false, None, None),
            (MediaKind::Audio, "".into(), false, false, None, None),
            // script data is never a keyframe or sequence header
            (MediaKind::Script, "02000a6f6e4d65746144617461".into(), false, false, None, None),
        ];
        for (kind, body, keyframe, sequence_header, video, audio) in table {
            let bytes = hex::decode(body.replace(' ', "")).unwrap();
            let class = classify(kind, &bytes);
            assert_eq!(
                class,
                FrameClass {
                    keyframe,
                    sequence_header,
                    video,
                    audio
                },
                "{kind:?} {body}"
            );
            let frame = frame_from_tag(kind, Timestamp::from_millis(7), Bytes::from(bytes.clone()));
            assert_eq!(
                (frame.keyframe, frame.sequence_header),
                (keyframe, sequence_header)
            );
            assert_eq!(&frame.data[..], &bytes[..]);
        }
    }

    #[test]
    fn frame_from_tag_keeps_the_buffer() {
        let body = Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        let frame = frame_from_tag(MediaKind::Video, Timestamp::from_millis(40), body.clone());
        assert_eq!(frame.data.as_ptr(), body.as_ptr());
        assert_eq!(frame.timestamp, Timestamp::from_millis(40));
        assert!(frame.keyframe && !frame.sequence_header);
    }
}
