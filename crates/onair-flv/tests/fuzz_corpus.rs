//! The committed seed corpus (`fuzz/corpus/flv_demux`) through the fuzz harness, so it runs
//! in every `cargo test`, with or without the nightly toolchain cargo-fuzz needs; and the
//! seeds generated here, which must be in that corpus as generated. After changing a
//! generator: `ONAIR_WRITE_CORPUS=1 cargo test -p onair-flv --test fuzz_corpus`.

use bytes::BytesMut;
use onair_amf::{Value, encode_all};
use onair_flv::fuzzing::flv_demux;
use onair_flv::{FlvDemuxer, FlvHeader, FlvTag, encode_tag, parse_audio_tag, parse_video_tag};
use onair_media::{MediaKind, Timestamp};

#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;
use seed_corpus::{check_seeds, run_corpus};

#[test]
fn flv_demux_corpus_keeps_the_invariants() {
    run_corpus("flv_demux", flv_demux);
}

#[test]
fn flv_demux_corpus_holds_the_generated_seeds() {
    check_seeds("flv_demux", seeds(), flv_demux);
}

/// `data[0]` bit 0 clear: the harness writes the FLV header itself, with the audio and video
/// flags from bits 1 and 2.
const HEADER_AV: u8 = 0b110;
const OWN_HEADER: u8 = 1;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // (name, control byte, tags, tags the demuxer yields)
    let seeds = [
        ("h264-aac-live.bin", HEADER_AV, h264_aac_live(), 25),
        ("own-header-hevc-opus.bin", OWN_HEADER, hevc_opus(), 8),
        (
            "multitrack-and-modex.bin",
            HEADER_AV,
            multitrack_and_modex(),
            6,
        ),
        ("legacy-codecs.bin", HEADER_AV, legacy_codecs(), 11),
        // Video flag only, as a stream without audio announces itself.
        (
            "timestamps-skips-and-bad-back-pointers.bin",
            0b100,
            timestamps_and_skips(),
            5,
        ),
    ];
    let mut out = Vec::new();
    for (name, control, tags, count) in seeds {
        let mut stream = Vec::new();
        if control == OWN_HEADER {
            stream.extend_from_slice(
                &FlvHeader {
                    has_audio: true,
                    has_video: true,
                }
                .encode(),
            );
        } else {
            stream.extend_from_slice(
                &FlvHeader {
                    has_audio: control & 2 != 0,
                    has_video: control & 4 != 0,
                }
                .encode(),
            );
        }
        stream.extend_from_slice(&tags);
        // A seed is only worth its bytes if its tags reach the body parsers.
        let demuxed = demux(&stream);
        assert_eq!(demuxed.len(), count, "{name}");
        for tag in &demuxed {
            let parsed = match tag.kind {
                MediaKind::Video => parse_video_tag(&tag.body).map(drop),
                MediaKind::Audio => parse_audio_tag(&tag.body).map(drop),
                MediaKind::Script => Ok(()),
            };
            assert_eq!(parsed, Ok(()), "{name}: {tag:?}");
        }
        let mut data = vec![control];
        data.extend_from_slice(if control == OWN_HEADER {
            &stream
        } else {
            &tags
        });
        out.push((name, data));
    }
    // Cut inside a tag: the demuxer waits for more, the harness checks what came before.
    let mut cut = vec![HEADER_AV];
    let live = h264_aac_live();
    cut.extend_from_slice(&live[..live.len() / 2]);
    out.push(("cut-mid-tag.bin", cut));
    out
}

fn demux(stream: &[u8]) -> Vec<FlvTag> {
    let mut demuxer = FlvDemuxer::default();
    let mut buf = BytesMut::from(stream);
    let mut tags = Vec::new();
    while let Some(tag) = demuxer.decode(&mut buf).expect("the seed demuxes") {
        tags.push(tag);
    }
    assert!(buf.is_empty(), "the seed ends on a tag boundary");
    tags
}

fn tag(out: &mut Vec<u8>, kind: MediaKind, ms: u32, body: &[u8]) {
    out.extend_from_slice(&encode_tag(kind, Timestamp::from_millis(ms), body));
}

/// Length-prefixed NAL units of `len` bytes each, starting with the given header bytes.
fn nalus(units: &[(&[u8], usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(header, len) in units {
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(header);
        out.extend((header.len()..len).map(|i| (i * 29 % 251) as u8));
    }
    out
}

fn metadata() -> Vec<u8> {
    encode_all(&[
        "@setDataFrame".into(),
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("duration".into(), 0.0.into()),
            ("width".into(), 1280.0.into()),
            ("height".into(), 720.0.into()),
            ("framerate".into(), 30.0.into()),
            ("videocodecid".into(), 7.0.into()),
            ("audiocodecid".into(), 10.0.into()),
            ("audiosamplerate".into(), 44100.0.into()),
            ("stereo".into(), true.into()),
        ]),
    ])
    .to_vec()
}

/// avcC: version 1, High profile level 3.1, 4-byte lengths, one SPS (1280x720) and one PPS.
const AVC_CONFIG: &[u8] = &[
    0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9, 0x40, 0x50,
    0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xEB, 0xE3, 0xCB,
];

/// hvcC: version 1, Main profile, 4-byte lengths, one each of VPS, SPS and PPS.
const HEVC_CONFIG: &[u8] = &[
    0x01, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5D, 0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0x00,
    0x00, 0x0F, 0x03, 0xA0, 0x00, 0x01, 0x00, 0x04, 0x40, 0x01, 0x0C, 0x01, 0xA1, 0x00, 0x01, 0x00,
    0x04, 0x42, 0x01, 0x01, 0x01, 0xA2, 0x00, 0x01, 0x00, 0x03, 0x44, 0x01, 0xC1,
];

/// What OBS writes: metadata, sequence headers, a keyframe, then audio and inter frames with
/// composition times, and an end of sequence.
fn h264_aac_live() -> Vec<u8> {
    let mut out = Vec::new();
    tag(&mut out, MediaKind::Script, 0, &metadata());
    let mut config = vec![0x17, 0x00, 0, 0, 0];
    config.extend_from_slice(AVC_CONFIG);
    tag(&mut out, MediaKind::Video, 0, &config);
    tag(&mut out, MediaKind::Audio, 0, &[0xAF, 0x00, 0x12, 0x10]);
    let mut key = vec![0x17, 0x01, 0, 0, 0x42];
    key.extend(nalus(&[
        (&[0x09, 0xF0], 2),
        (&[0x06, 0x05], 20),
        (&[0x65, 0x88], 400),
    ]));
    tag(&mut out, MediaKind::Video, 0, &key);
    for i in 1..=10u32 {
        let mut audio = vec![0xAF, 0x01];
        audio.extend((0..30).map(|b: u8| b ^ i as u8));
        tag(&mut out, MediaKind::Audio, i * 23, &audio);
        let mut inter = vec![0x27, 0x01, 0, 0, if i % 3 == 0 { 0 } else { 0x21 }];
        inter.extend(nalus(&[(&[0x41, 0x9A], 60 + i as usize)]));
        tag(&mut out, MediaKind::Video, i * 33, &inter);
    }
    tag(&mut out, MediaKind::Video, 363, &[0x17, 0x02, 0, 0, 0]);
    out
}

/// Enhanced RTMP: HEVC as SequenceStart, CodedFrames (with composition time), CodedFramesX,
/// Metadata and SequenceEnd; Opus as SequenceStart and CodedFrames.
fn hevc_opus() -> Vec<u8> {
    let mut out = Vec::new();
    let mut config = vec![0x90];
    config.extend_from_slice(b"hvc1");
    config.extend_from_slice(HEVC_CONFIG);
    tag(&mut out, MediaKind::Video, 0, &config);
    let mut opus_head = vec![0x90];
    opus_head.extend_from_slice(b"Opus");
    opus_head.extend_from_slice(b"OpusHead\x01\x02\x38\x01\x80\xBB\x00\x00\x00\x00");
    tag(&mut out, MediaKind::Audio, 0, &opus_head);
    let mut key = vec![0x91];
    key.extend_from_slice(b"hvc1");
    key.extend_from_slice(&[0, 0, 0x42]);
    key.extend(nalus(&[(&[0x26, 0x01], 300)]));
    tag(&mut out, MediaKind::Video, 0, &key);
    let mut opus = vec![0x91];
    opus.extend_from_slice(b"Opus");
    opus.extend_from_slice(&[0xFC, 0xFF, 0xFE]);
    tag(&mut out, MediaKind::Audio, 20, &opus);
    let mut inter = vec![0xA3];
    inter.extend_from_slice(b"hvc1");
    inter.extend(nalus(&[(&[0x02, 0x01], 80)]));
    tag(&mut out, MediaKind::Video, 33, &inter);
    // VideoPacketType Metadata: an AMF colorInfo object.
    let mut meta = vec![0x94];
    meta.extend_from_slice(b"hvc1");
    meta.extend_from_slice(&encode_all(&[
        "colorInfo".into(),
        Value::object([(
            "colorConfig",
            Value::object([("bitDepth", 10.0.into()), ("colorPrimaries", 9.0.into())]),
        )]),
    ]));
    tag(&mut out, MediaKind::Video, 33, &meta);
    tag(&mut out, MediaKind::Audio, 40, &opus);
    let mut end = vec![0x92];
    end.extend_from_slice(b"hvc1");
    tag(&mut out, MediaKind::Video, 66, &end);
    out
}

/// E-RTMP v2: one-track and many-track Multitrack tags, video and audio, and a ModEx prefix.
fn multitrack_and_modex() -> Vec<u8> {
    let mut out = Vec::new();
    // Video Multitrack, OneTrack, SequenceStart: FourCC, track id, the config.
    let mut one = vec![0x96, 0x00];
    one.extend_from_slice(b"av01");
    one.push(0);
    one.extend_from_slice(&[0x81, 0x08, 0x0C, 0x00]);
    tag(&mut out, MediaKind::Video, 0, &one);
    // ManyTracks, CodedFramesX: per track an id and a UI24 size.
    let mut many = vec![0x96, 0x13];
    many.extend_from_slice(b"vp09");
    for track in 0..2u8 {
        many.push(track);
        many.extend_from_slice(&[0, 0, 6]);
        many.extend_from_slice(&[0x82, 0x49, 0x83, 0x42, 0x00, track]);
    }
    tag(&mut out, MediaKind::Video, 0, &many);
    // ManyTracksManyCodecs: each track names its codec.
    let mut codecs = vec![0x96, 0x21];
    for (track, fourcc) in [(0u8, b"avc1"), (1, b"hvc1")] {
        codecs.extend_from_slice(fourcc);
        codecs.push(track);
        codecs.extend_from_slice(&[0, 0, 3, 0, 0, 0]);
    }
    tag(&mut out, MediaKind::Video, 33, &codecs);
    // ModEx: a 3-byte TimestampOffsetNano, then CodedFrames of avc1 with composition time.
    let mut modex = vec![0x97, 0x02, 0x00, 0x01, 0xF4, 0x01];
    modex.extend_from_slice(b"avc1");
    modex.extend_from_slice(&[0, 0, 0x21]);
    modex.extend(nalus(&[(&[0x41], 20)]));
    tag(&mut out, MediaKind::Video, 66, &modex);
    // Audio Multitrack, ManyTracks of Opus, CodedFrames.
    let mut audio = vec![0x95, 0x11];
    audio.extend_from_slice(b"Opus");
    for track in 0..2u8 {
        audio.push(track);
        audio.extend_from_slice(&[0, 0, 2, 0xFC, track]);
    }
    tag(&mut out, MediaKind::Audio, 20, &audio);
    // Audio MultichannelConfig: channel order 0 (unspecified), 6 channels.
    let mut channels = vec![0x94];
    channels.extend_from_slice(b"ac-3");
    channels.extend_from_slice(&[0, 6]);
    tag(&mut out, MediaKind::Audio, 20, &channels);
    out
}

/// Codecs with no packet type byte, a video command frame, and several legacy audio formats.
fn legacy_codecs() -> Vec<u8> {
    let mut out = Vec::new();
    let bodies: [(MediaKind, &[u8]); 11] = [
        (MediaKind::Video, &[0x12, 0x00, 0x00, 0x84, 0x00]), // Sorenson H.263 key
        (MediaKind::Video, &[0x24, 0x00, 0x11, 0x22]),       // VP6 inter, adjustment byte
        (MediaKind::Video, &[0x13, 0x0F, 0xF0]),             // screen video
        (MediaKind::Video, &[0x50, 0x01]),                   // command frame: seek end
        (MediaKind::Video, &[0x1D, 0x00]),                   // an unknown legacy codec id
        (MediaKind::Audio, &[0x2F, 0xFF, 0xFB, 0x90, 0x00]), // MP3 44 kHz stereo
        (MediaKind::Audio, &[0x3E, 0x00, 0x01, 0x00, 0x01]), // PCM little-endian
        (MediaKind::Audio, &[0xB6, 0x1E, 0x9D]),             // Speex
        (MediaKind::Audio, &[0x72, 0xD5, 0xD5]),             // G.711 A-law
        (MediaKind::Audio, &[0xE2, 0xFF, 0xF3]),             // MP3 8 kHz
        (MediaKind::Audio, &[0xAF, 0x00, 0x11, 0x90]),       // AAC, 48 kHz from the ASC
    ];
    for (i, (kind, body)) in bodies.into_iter().enumerate() {
        tag(&mut out, kind, i as u32 * 40, body);
    }
    out
}

/// Timestamps at the 24-bit boundary and the u32 end, an unknown tag type the demuxer skips,
/// and back pointers that do not match (which the demuxer counts, not refuses).
fn timestamps_and_skips() -> Vec<u8> {
    let mut out = Vec::new();
    let key = [0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
    let inter = [0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A];
    tag(&mut out, MediaKind::Video, 0xFF_FFFF, &key);
    tag(&mut out, MediaKind::Video, 0x0100_0000, &inter);
    // Tag type 15: not audio, video or script.
    out.extend_from_slice(&[0x0F, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 14]);
    let mut wrong = encode_tag(
        MediaKind::Video,
        Timestamp::from_millis(0x0100_0021),
        &inter,
    )
    .to_vec();
    let n = wrong.len();
    wrong[n - 4..].copy_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&wrong);
    tag(&mut out, MediaKind::Video, u32::MAX, &inter);
    tag(&mut out, MediaKind::Script, 0, &[]);
    out
}
