//! Audio tag headers: legacy `AudioTagHeader` (FLV v10.1 §E.4.2.1) and Enhanced RTMP
//! `ExAudioTagHeader` (E-RTMP v2).

use onair_media::{AudioCodec, FourCc};

use crate::FlvError;
use crate::config::parse_aac_config;
use crate::video::{MultitrackType, read_fourcc, read_u8, read_u24, skip_mod_ex};

/// What an audio tag carries.
///
/// As for video, [`parse_audio_tag`] steps over `ModEx` and reports a `Multitrack` wrapper
/// through [`AudioTagInfo::multitrack`], with `packet` set to the tracks' packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioPacket {
    /// Decoder configuration: legacy `AACPacketType` 0 (AudioSpecificConfig) or E-RTMP
    /// SequenceStart (0).
    SequenceStart,
    /// Coded audio: legacy `AACPacketType` 1 (raw AAC) or E-RTMP CodedFrames (1).
    CodedFrames,
    /// E-RTMP SequenceEnd (2).
    SequenceEnd,
    /// E-RTMP MultichannelConfig (4): channel order, count and mapping.
    MultichannelConfig,
    /// E-RTMP Multitrack (5). Not returned by [`parse_audio_tag`], which unwraps it.
    Multitrack,
    /// E-RTMP ModEx (7). Not returned by [`parse_audio_tag`], which steps over it.
    ModEx,
    /// A legacy non-AAC tag: the whole body after the first byte is coded audio.
    Raw,
}

/// What [`parse_audio_tag`] learned from an audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AudioTagInfo {
    /// The codec: legacy SoundFormat or E-RTMP FourCC (for Multitrack, the first track's).
    pub codec: AudioCodec,
    /// The payload's packet type.
    pub packet: AudioPacket,
    /// Sample rate in Hz when the tag says it: the legacy rate flags for non-AAC formats,
    /// the AudioSpecificConfig of an AAC sequence header, an `OpusHead` (always 48 kHz).
    /// `None` for AAC and E-RTMP coded frames, whose header flags carry no information.
    pub sample_rate: Option<u32>,
    /// Channel count when the tag says it (legacy SoundType, AAC config, `OpusHead`,
    /// MultichannelConfig).
    pub channels: Option<u8>,
    /// The tag uses the Enhanced RTMP header (SoundFormat 9, `ExHeader`).
    pub enhanced: bool,
    /// The E-RTMP v2 multitrack mode, if the tag is a Multitrack packet.
    pub multitrack: Option<MultitrackType>,
    /// Where the (first track's) codec payload starts in the body.
    pub payload_offset: usize,
}

/// Parses the legacy or Enhanced RTMP audio tag header at the start of `body`.
///
/// - Legacy: `SoundFormat` `UB[4]`, `SoundRate` `UB[2]`, `SoundSize` `UB[1]`, `SoundType` `UB[1]`;
///   AAC (10) adds `AACPacketType` (0 config, 1 raw).
/// - Enhanced: `SoundFormat` 9 means `ExHeader`; the low nibble is `AudioPacketType`,
///   then any `ModEx` prefixes, an optional Multitrack header, and the FourCC. Reserved
///   packet types are an error (the spec's "fail in a controlled manner"); unknown FourCCs
///   are [`AudioCodec::Other`].
pub fn parse_audio_tag(body: &[u8]) -> Result<AudioTagInfo, FlvError> {
    let first = read_u8(body, 0, "audio tag header")?;
    if first >> 4 == 9 {
        parse_enhanced(body, first)
    } else {
        parse_legacy(body, first)
    }
}

fn parse_legacy(body: &[u8], first: u8) -> Result<AudioTagInfo, FlvError> {
    let format = first >> 4;
    let flag_rate = [5512, 11025, 22050, 44100][usize::from((first >> 2) & 0x03)];
    let flag_channels = if first & 0x01 == 1 { 2 } else { 1 };
    let codec = match format {
        0 | 3 => AudioCodec::Pcm,
        1 => AudioCodec::Adpcm,
        2 | 14 => AudioCodec::Mp3,
        4..=6 => AudioCodec::Nellymoser,
        7 => AudioCodec::G711A,
        8 => AudioCodec::G711U,
        10 => AudioCodec::Aac,
        11 => AudioCodec::Speex,
        other => AudioCodec::Legacy(other),
    };
    let mut info = AudioTagInfo {
        codec,
        packet: AudioPacket::Raw,
        sample_rate: Some(flag_rate),
        channels: Some(flag_channels),
        enhanced: false,
        multitrack: None,
        payload_offset: 1,
    };
    match format {
        10 => {
            // FLV v10.1 §E.4.2.1: for AAC the rate/type flags are always 44 kHz stereo and
            // decoders use the AudioSpecificConfig instead.
            info.payload_offset = 2;
            info.sample_rate = None;
            info.channels = None;
            match read_u8(body, 1, "AACPacketType")? {
                0 => {
                    info.packet = AudioPacket::SequenceStart;
                    if let Ok(config) = parse_aac_config(&body[2..]) {
                        info.sample_rate = Some(config.sample_rate);
                        info.channels = Some(config.channels);
                    }
                }
                1 => info.packet = AudioPacket::CodedFrames,
                packet_type => return Err(FlvError::UnknownAacPacketType { packet_type }),
            }
        }
        // Formats whose names fix the rate, whatever the flags say.
        4 | 11 => info.sample_rate = Some(16000),
        5 | 7 | 8 | 14 => info.sample_rate = Some(8000),
        _ => {}
    }
    if matches!(format, 4 | 5) {
        info.channels = Some(1);
    }
    Ok(info)
}

fn parse_enhanced(body: &[u8], first: u8) -> Result<AudioTagInfo, FlvError> {
    let mut packet_type = first & 0x0F;
    let mut pos = 1;
    while packet_type == 7 {
        pos = skip_mod_ex(body, pos, "audio ModEx")?;
        packet_type = read_u8(body, pos, "audio ModEx packet type")? & 0x0F;
        pos += 1;
    }
    let mut multitrack = None;
    let fourcc;
    if packet_type == 5 {
        let byte = read_u8(body, pos, "audio multitrack type")?;
        pos += 1;
        let kind = MultitrackType::from_bits(byte >> 4)?;
        packet_type = byte & 0x0F;
        if packet_type == 5 {
            return Err(FlvError::NestedMultitrack);
        }
        // The FourCC sits in the header for one-codec modes and at the start of the first
        // track for ManyTracksManyCodecs: the same position either way.
        fourcc = read_fourcc(body, pos, "audio FourCC")?;
        pos += 4;
        read_u8(body, pos, "audio track id")?;
        pos += 1;
        if kind != MultitrackType::OneTrack {
            read_u24(body, pos, "audio track size")?;
            pos += 3;
        }
        multitrack = Some(kind);
    } else {
        fourcc = read_fourcc(body, pos, "audio FourCC")?;
        pos += 4;
    }
    let packet = match packet_type {
        0 => AudioPacket::SequenceStart,
        1 => AudioPacket::CodedFrames,
        2 => AudioPacket::SequenceEnd,
        4 => AudioPacket::MultichannelConfig,
        7 => AudioPacket::ModEx,
        packet_type => return Err(FlvError::ReservedAudioPacketType { packet_type }),
    };
    let codec = audio_codec_of(fourcc);
    let mut info = AudioTagInfo {
        codec,
        packet,
        sample_rate: None,
        channels: None,
        enhanced: true,
        multitrack,
        payload_offset: pos,
    };
    let payload = &body[pos..];
    match (packet, codec) {
        (AudioPacket::SequenceStart, AudioCodec::Aac) => {
            if let Ok(config) = parse_aac_config(payload) {
                info.sample_rate = Some(config.sample_rate);
                info.channels = Some(config.channels);
            }
        }
        // RFC 7845 §5.1 `OpusHead`: magic, version, channel count, …; Opus always decodes
        // at 48 kHz whatever "input sample rate" says.
        (AudioPacket::SequenceStart, AudioCodec::Opus) if payload.starts_with(b"OpusHead") => {
            info.sample_rate = Some(48000);
            info.channels = payload.get(9).copied();
        }
        (AudioPacket::MultichannelConfig, _) => {
            // audioChannelOrder UI8, channelCount UI8.
            info.channels = payload.get(1).copied();
        }
        _ => {}
    }
    Ok(info)
}

/// The codec for an E-RTMP audio FourCC; unknown ones pass through as `Other`.
pub(crate) fn audio_codec_of(fourcc: FourCc) -> AudioCodec {
    match &fourcc.0 {
        b"mp4a" => AudioCodec::Aac,
        b"Opus" => AudioCodec::Opus,
        b"fLaC" => AudioCodec::Flac,
        b"ac-3" => AudioCodec::Ac3,
        b"ec-3" => AudioCodec::Eac3,
        b".mp3" => AudioCodec::Mp3,
        _ => AudioCodec::Other(fourcc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(hex_body: &str) -> AudioTagInfo {
        parse_audio_tag(&hex::decode(hex_body.replace(' ', "")).unwrap()).unwrap()
    }

    #[test]
    fn legacy_aac_sequence_header_and_raw_frame() {
        // 0xaf = AAC | 44 kHz | 16 bit | stereo; packet 0; ASC LC 48 kHz stereo.
        let seq = parse("af 00 1190");
        assert_eq!(seq.codec, AudioCodec::Aac);
        assert_eq!(seq.packet, AudioPacket::SequenceStart);
        assert_eq!((seq.sample_rate, seq.channels), (Some(48000), Some(2)));
        assert_eq!(seq.payload_offset, 2);
        assert!(!seq.enhanced);

        let raw = parse("af 01 2110 0460");
        assert_eq!(raw.packet, AudioPacket::CodedFrames);
        assert_eq!((raw.sample_rate, raw.channels), (None, None));
        assert_eq!(raw.payload_offset, 2);

        assert!(matches!(
            parse_audio_tag(&[0xaf, 0x02]),
            Err(FlvError::UnknownAacPacketType { packet_type: 2 })
        ));
        assert!(matches!(
            parse_audio_tag(&[0xaf]),
            Err(FlvError::Truncated { .. })
        ));
    }

    #[test]
    fn legacy_formats_and_flags() {
        // MP3, 44 kHz, 16 bit, stereo.
        let mp3 = parse("2f fffb");
        assert_eq!(mp3.codec, AudioCodec::Mp3);
        assert_eq!(mp3.packet, AudioPacket::Raw);
        assert_eq!((mp3.sample_rate, mp3.channels), (Some(44100), Some(2)));
        // PCM 11 kHz 8 bit mono.
        assert_eq!(parse("04 00").sample_rate, Some(11025));
        // G.711 µ-law: 8 kHz whatever the flags say.
        let mulaw = parse("82 00");
        assert_eq!(
            (mulaw.codec, mulaw.sample_rate, mulaw.channels),
            (AudioCodec::G711U, Some(8000), Some(1))
        );
        assert_eq!(parse("b2 00").sample_rate, Some(16000));
        assert_eq!(parse("d2").codec, AudioCodec::Legacy(13));
    }

    #[test]
    fn enhanced_opus_aac_flac() {
        // 0x90 = ExHeader | SequenceStart, "Opus", OpusHead v1, 2 channels.
        let opus = parse("90 4f707573 4f707573486561640102380180bb000000");
        assert!(opus.enhanced);
        assert_eq!(opus.codec, AudioCodec::Opus);
        assert_eq!(opus.packet, AudioPacket::SequenceStart);
        assert_eq!((opus.sample_rate, opus.channels), (Some(48000), Some(2)));
        assert_eq!(opus.payload_offset, 5);

        let frame = parse("91 4f707573 fc ff fe");
        assert_eq!(frame.packet, AudioPacket::CodedFrames);
        assert_eq!(frame.sample_rate, None);

        let aac = parse("90 6d703461 1210");
        assert_eq!(aac.codec, AudioCodec::Aac);
        assert_eq!((aac.sample_rate, aac.channels), (Some(44100), Some(2)));

        assert_eq!(parse("91 664c6143 00").codec, AudioCodec::Flac);
        assert_eq!(parse("91 61632d33").codec, AudioCodec::Ac3);
        assert_eq!(parse("91 65632d33").codec, AudioCodec::Eac3);
        assert_eq!(parse("91 2e6d7033").codec, AudioCodec::Mp3);
        assert_eq!(parse("92 4f707573").packet, AudioPacket::SequenceEnd);
        assert_eq!(
            parse("91 7a7a7a7a").codec,
            AudioCodec::Other(FourCc(*b"zzzz"))
        );

        // MultichannelConfig: order Native (1), 6 channels, mask.
        let multichannel = parse("94 4f707573 01 06 0000003f");
        assert_eq!(multichannel.packet, AudioPacket::MultichannelConfig);
        assert_eq!(multichannel.channels, Some(6));
    }

    #[test]
    fn enhanced_multitrack_and_mod_ex() {
        // Multitrack: OneTrack | CodedFrames, "Opus", trackId 0.
        let one = parse("95 01 4f707573 00 fcff");
        assert_eq!(one.codec, AudioCodec::Opus);
        assert_eq!(one.packet, AudioPacket::CodedFrames);
        assert_eq!(one.multitrack, Some(MultitrackType::OneTrack));
        assert_eq!(one.payload_offset, 7);

        // ManyTracksManyCodecs | SequenceStart: FourCC in the track, id, size.
        let many = parse("95 20 6d703461 01 000002 1210");
        assert_eq!(many.codec, AudioCodec::Aac);
        assert_eq!(many.multitrack, Some(MultitrackType::ManyTracksManyCodecs));
        assert_eq!(many.payload_offset, 10);
        assert_eq!(many.sample_rate, Some(44100));

        // ModEx (nano offset, 3 bytes) then CodedFrames.
        let modex = parse("97 02 0001f4 01 4f707573 fc");
        assert_eq!(modex.packet, AudioPacket::CodedFrames);
        assert_eq!(modex.payload_offset, 10);

        assert!(matches!(
            parse_audio_tag(&hex::decode("9505").unwrap()),
            Err(FlvError::NestedMultitrack)
        ));
    }

    #[test]
    fn reserved_values_fail_in_a_controlled_manner() {
        for (bytes, expected) in [
            ("93 4f707573", 3u8),
            ("96 4f707573", 6),
            ("9f 4f707573", 15),
        ] {
            let err = parse_audio_tag(&hex::decode(bytes.replace(' ', "")).unwrap()).unwrap_err();
            assert!(
                matches!(err, FlvError::ReservedAudioPacketType { packet_type } if packet_type == expected),
                "{bytes}: {err}"
            );
        }
        assert!(matches!(
            parse_audio_tag(&hex::decode("95 31 4f707573".replace(' ', "")).unwrap()),
            Err(FlvError::ReservedMultitrackType { multitrack_type: 3 })
        ));
        for truncated in ["", "90 4f70", "95", "95 11 4f707573 00 0000", "97 04 00"] {
            let err =
                parse_audio_tag(&hex::decode(truncated.replace(' ', "")).unwrap()).unwrap_err();
            assert!(
                matches!(err, FlvError::Truncated { .. }),
                "{truncated}: {err}"
            );
        }
    }
}
