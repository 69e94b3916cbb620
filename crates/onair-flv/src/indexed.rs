//! A seekable FLV file: `onMetaData` with a `keyframes` index first, then every media tag.
//!
//! The layout is the convention FFmpeg writes with `-flvflags add_keyframe_index` and that
//! FFmpeg's demuxer, flv.js and mpegts.js read to seek:
//!
//! ```text
//! FLV header, PreviousTagSize0                 the head: [`IndexedFlvWriter::head`]
//! script tag "onMetaData" { duration, width, height, videocodecid, audiocodecid, filesize,
//!     hasKeyframes, …, keyframes: { times: [s…], filepositions: [byte offset…] } }
//! media tags, in the order pushed, first timestamp 0   the body: what `push` returns
//! ```
//!
//! The body is written as it comes (the writer keeps only the index), so a long file costs
//! 16 bytes of memory per keyframe; the head, known only at the end, goes in front of it.
//! Each `filepositions` entry is the offset of the keyframe's tag header in the whole file,
//! which is why the head's own length must be known before it is written: every AMF0 number
//! is 9 bytes, so the head's length depends only on which properties it has and how many
//! keyframes, never on their values.

use bytes::Bytes;
use onair_amf::Value;
use onair_media::{AudioCodec, FourCc, Frame, MediaKind, Timestamp, VideoCodec};

use crate::{
    FlvError, FlvHeader, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, VideoPacket, classify,
    is_on_metadata, parse_audio_tag, parse_avc_config, parse_metadata, parse_video_tag,
    try_encode_tag,
};

/// Bytes of the FLV header plus `PreviousTagSize0`.
const HEADER_LEN: u64 = 13;

/// One entry of the `keyframes` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedKeyframe {
    /// The keyframe's tag timestamp in the file.
    pub timestamp: Timestamp,
    /// Where its tag header starts in the body (add the head's length for the file offset).
    pub body_offset: u64,
}

/// What goes around a tag body in the file (see [`IndexedFlvWriter::push_framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagFraming {
    /// The 11-byte tag header (type, size, timestamp, stream id 0).
    pub header: [u8; TAG_HEADER_LEN],
    /// The `PreviousTagSize` that follows the body.
    pub previous_tag_size: [u8; PREVIOUS_TAG_SIZE_LEN],
}

/// Builds an indexed FLV file: media tags in, body bytes out, and at the end the head that
/// goes before them. See the [module docs](self).
///
/// Timestamps are rebased so the first media tag is at 0. Script tags are not copied (the
/// head carries the one `onMetaData`), but a publisher's `onMetaData` supplies the picture
/// size when no AVC sequence header tells it.
#[derive(Debug, Clone, Default)]
pub struct IndexedFlvWriter {
    base: Option<Timestamp>,
    body_len: u64,
    keyframes: Vec<IndexedKeyframe>,
    video: Option<Track>,
    audio: Option<Track>,
    /// `videocodecid`: the legacy CodecID, or an Enhanced RTMP FourCC as a number.
    video_codec_id: Option<f64>,
    /// `audiocodecid`: the legacy SoundFormat, or an Enhanced RTMP FourCC as a number.
    audio_codec_id: Option<f64>,
    width: Option<f64>,
    height: Option<f64>,
    /// Size from a sequence header (or the caller), which a script tag must not override.
    size_known: bool,
}

/// Per-track timing, for the duration.
#[derive(Debug, Clone, Copy)]
struct Track {
    last: u32,
    /// The gap between the last two tags: the last frame is taken to last as long.
    last_delta: u32,
}

impl Track {
    fn note(track: &mut Option<Track>, ms: u32) {
        match track {
            Some(t) => {
                if ms > t.last {
                    t.last_delta = ms - t.last;
                    t.last = ms;
                }
            }
            None => {
                *track = Some(Track {
                    last: ms,
                    last_delta: 0,
                })
            }
        }
    }

    fn end(track: Option<Track>) -> u32 {
        track.map_or(0, |t| t.last.saturating_add(t.last_delta))
    }
}

impl IndexedFlvWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the picture size for `onMetaData` (for codecs whose sequence header we do not
    /// parse, such as HEVC). An AVC sequence header pushed later overrides it.
    pub fn set_dimensions(&mut self, width: u32, height: u32) {
        self.width = Some(f64::from(width));
        self.height = Some(f64::from(height));
        self.size_known = true;
    }

    /// Notes a tag and returns it encoded (header, body, `PreviousTagSize`) with its rebased
    /// timestamp: the bytes to append to the body. `Ok(None)` for script tags, which are not
    /// written.
    pub fn push(
        &mut self,
        kind: MediaKind,
        timestamp: Timestamp,
        body: &[u8],
    ) -> Result<Option<Bytes>, FlvError> {
        let Some(timestamp) = self.note(kind, timestamp, body)? else {
            return Ok(None);
        };
        try_encode_tag(kind, timestamp, body).map(Some)
    }

    /// [`push`](Self::push) without copying the body: the tag header and `PreviousTagSize`
    /// to write around it. A recorder writes `header`, the frame's own bytes, then
    /// `previous_tag_size`.
    pub fn push_framing(
        &mut self,
        kind: MediaKind,
        timestamp: Timestamp,
        body: &[u8],
    ) -> Result<Option<TagFraming>, FlvError> {
        let Some(timestamp) = self.note(kind, timestamp, body)? else {
            return Ok(None);
        };
        let size = body.len() as u32;
        let ts = timestamp.as_millis();
        let mut header = [0u8; TAG_HEADER_LEN];
        header[0] = kind.tag_type();
        header[1..4].copy_from_slice(&size.to_be_bytes()[1..]);
        header[4..7].copy_from_slice(&ts.to_be_bytes()[1..]);
        header[7] = (ts >> 24) as u8;
        Ok(Some(TagFraming {
            header,
            previous_tag_size: (TAG_HEADER_LEN as u32 + size).to_be_bytes(),
        }))
    }

    /// [`push`](Self::push) for a hub [`Frame`].
    pub fn push_frame(&mut self, frame: &Frame) -> Result<Option<Bytes>, FlvError> {
        self.push(frame.kind, frame.timestamp, &frame.data)
    }

    /// Notes a tag that is already in the body (as written by [`push`](Self::push), read back
    /// after a crash) without encoding it again. Returns the timestamp it has in the file, or
    /// `None` for a script tag, which takes no room in the body.
    pub fn note(
        &mut self,
        kind: MediaKind,
        timestamp: Timestamp,
        body: &[u8],
    ) -> Result<Option<Timestamp>, FlvError> {
        if kind == MediaKind::Script {
            self.note_script(body);
            return Ok(None);
        }
        let len = body.len();
        if len > 0xFF_FFFF {
            return Err(FlvError::BodyTooLarge { len });
        }
        let base = *self.base.get_or_insert(timestamp);
        // A tag a little older than the first one (audio ahead of video) is clamped to 0
        // rather than wrapped to the far end of the timeline.
        let ms = u32::try_from(timestamp.since(base)).unwrap_or(0);
        let rebased = Timestamp::from_millis(ms);
        let class = classify(kind, body);
        match kind {
            MediaKind::Video => {
                Track::note(&mut self.video, ms);
                if class.keyframe {
                    self.keyframes.push(IndexedKeyframe {
                        timestamp: rebased,
                        body_offset: self.body_len,
                    });
                }
                if class.sequence_header {
                    self.note_video_config(body);
                }
                if self.video_codec_id.is_none()
                    && let Ok(info) = parse_video_tag(body)
                {
                    self.video_codec_id = Some(if info.enhanced {
                        f64::from(video_fourcc(info.codec).as_u32())
                    } else {
                        f64::from(body[0] & 0x0F)
                    });
                }
            }
            MediaKind::Audio => {
                Track::note(&mut self.audio, ms);
                if self.audio_codec_id.is_none()
                    && let Ok(info) = parse_audio_tag(body)
                {
                    self.audio_codec_id = Some(if info.enhanced {
                        f64::from(audio_fourcc(info.codec).as_u32())
                    } else {
                        f64::from(body[0] >> 4)
                    });
                }
            }
            MediaKind::Script => unreachable!("handled above"),
        }
        self.body_len += (TAG_HEADER_LEN + len + PREVIOUS_TAG_SIZE_LEN) as u64;
        Ok(Some(rebased))
    }

    fn note_script(&mut self, body: &[u8]) {
        if self.size_known || !is_on_metadata(body) {
            return;
        }
        if let Ok(meta) = parse_metadata(body) {
            self.width = meta.width.or(self.width);
            self.height = meta.height.or(self.height);
        }
    }

    fn note_video_config(&mut self, body: &[u8]) {
        let Ok(info) = parse_video_tag(body) else {
            return;
        };
        if info.packet != VideoPacket::SequenceStart {
            return;
        }
        let record = &body[info.payload_offset.min(body.len())..];
        if let Ok(config) = parse_avc_config(record)
            && let (Some(w), Some(h)) = (config.width, config.height)
        {
            self.width = Some(f64::from(w));
            self.height = Some(f64::from(h));
            self.size_known = true;
        }
    }

    /// Bytes of body written so far (what every `push` returned, summed).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The keyframes so far, in body order.
    pub fn keyframes(&self) -> &[IndexedKeyframe] {
        &self.keyframes
    }

    /// Whether any media tag was pushed.
    pub fn is_empty(&self) -> bool {
        self.base.is_none()
    }

    /// The media's duration: the end of the later track's last tag, each tag lasting as long
    /// as the gap before it.
    pub fn duration_ms(&self) -> u32 {
        Track::end(self.video).max(Track::end(self.audio))
    }

    /// The head of the file: FLV header, `PreviousTagSize0` and the `onMetaData` tag with
    /// every `filepositions` entry already counted from the start of the file. Write it,
    /// then the body.
    pub fn head(&self) -> Bytes {
        // Every number is a fixed-size AMF0 double, so the head's length with placeholder
        // positions is its length with the real ones.
        match self.head_with(0) {
            Ok(provisional) => {
                let head_len = provisional.len() as u64;
                let head = self.head_with(head_len).unwrap_or(provisional);
                debug_assert_eq!(head.len() as u64, head_len);
                head
            }
            // A script body over 16 MiB needs about a million keyframes (three weeks of
            // video at one per two seconds): such a file is written without an index.
            Err(_) => IndexedFlvWriter {
                keyframes: Vec::new(),
                ..self.clone()
            }
            .head(),
        }
    }

    fn head_with(&self, head_len: u64) -> Result<Bytes, FlvError> {
        let header = FlvHeader {
            has_audio: self.audio.is_some(),
            has_video: self.video.is_some(),
        };
        let mut props: Vec<(String, Value)> = Vec::with_capacity(16);
        let mut number = |key: &str, n: f64| props.push((key.to_owned(), Value::Number(n)));
        number("duration", f64::from(self.duration_ms()) / 1000.0);
        if let (Some(w), Some(h)) = (self.width, self.height) {
            number("width", w);
            number("height", h);
        }
        if let Some(id) = self.video_codec_id {
            number("videocodecid", id);
        }
        if let Some(id) = self.audio_codec_id {
            number("audiocodecid", id);
        }
        number("filesize", (head_len + self.body_len) as f64);
        let flag = |key: &str, b: bool| (key.to_owned(), Value::Boolean(b));
        props.push(flag("hasVideo", self.video.is_some()));
        props.push(flag("hasAudio", self.audio.is_some()));
        props.push(flag("hasMetadata", true));
        props.push(flag("hasKeyframes", !self.keyframes.is_empty()));
        props.push(flag("canSeekToEnd", true));
        // FFmpeg's reader takes only `times` and `filepositions` in this object, in either
        // order; any other key makes it ignore the index.
        let times = self
            .keyframes
            .iter()
            .map(|k| Value::Number(f64::from(k.timestamp.as_millis()) / 1000.0))
            .collect();
        let positions = self
            .keyframes
            .iter()
            .map(|k| Value::Number((head_len + k.body_offset) as f64))
            .collect();
        props.push((
            "keyframes".to_owned(),
            Value::Object(vec![
                ("times".to_owned(), Value::StrictArray(times)),
                ("filepositions".to_owned(), Value::StrictArray(positions)),
            ]),
        ));
        let script = onair_amf::encode_all(&[
            Value::String("onMetaData".to_owned()),
            Value::EcmaArray(props),
        ]);
        let mut out = Vec::with_capacity(
            HEADER_LEN as usize + TAG_HEADER_LEN + script.len() + PREVIOUS_TAG_SIZE_LEN,
        );
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&try_encode_tag(
            MediaKind::Script,
            Timestamp::ZERO,
            &script,
        )?);
        Ok(Bytes::from(out))
    }
}

/// The FourCC Enhanced RTMP names a video codec by, as `videocodecid` carries it.
fn video_fourcc(codec: VideoCodec) -> FourCc {
    FourCc(match codec {
        VideoCodec::H264 => *b"avc1",
        VideoCodec::Hevc => *b"hvc1",
        VideoCodec::Av1 => *b"av01",
        VideoCodec::Vp9 => *b"vp09",
        VideoCodec::Vp8 => *b"vp08",
        VideoCodec::Vvc => *b"vvc1",
        VideoCodec::Other(cc) => return cc,
        _ => [0; 4],
    })
}

/// The FourCC Enhanced RTMP names an audio codec by, as `audiocodecid` carries it.
fn audio_fourcc(codec: AudioCodec) -> FourCc {
    FourCc(match codec {
        AudioCodec::Aac => *b"mp4a",
        AudioCodec::Opus => *b"Opus",
        AudioCodec::Flac => *b"fLaC",
        AudioCodec::Mp3 => *b".mp3",
        AudioCodec::Ac3 => *b"ac-3",
        AudioCodec::Eac3 => *b"ec-3",
        AudioCodec::Other(cc) => return cc,
        _ => [0; 4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlvDemuxer, encode_tag};
    use bytes::BytesMut;
    use proptest::prelude::*;

    const AVC_HEADER: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68,
        0xee,
    ];
    const AAC_HEADER: &[u8] = &[0xAF, 0, 0x12, 0x10];

    #[derive(Debug, Clone)]
    enum Step {
        Key(u32, Vec<u8>),
        Inter(u32, Vec<u8>),
        Audio(u32, Vec<u8>),
    }

    fn step() -> impl Strategy<Value = Step> {
        let data = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            (0u32..3000, data.clone()).prop_map(|(d, b)| Step::Key(d, b)),
            (0u32..100, data.clone()).prop_map(|(d, b)| Step::Inter(d, b)),
            (0u32..50, data).prop_map(|(d, b)| Step::Audio(d, b)),
        ]
    }

    /// (kind, timestamp, body) of every media tag, in order.
    fn tags_of(start: u32, steps: &[Step], audio: bool) -> Vec<(MediaKind, u32, Vec<u8>)> {
        let mut tags = vec![(MediaKind::Video, start, AVC_HEADER.to_vec())];
        if audio {
            tags.push((MediaKind::Audio, start, AAC_HEADER.to_vec()));
        }
        let mut t = start;
        // A stream starts on a keyframe.
        tags.push((MediaKind::Video, t, vec![0x17, 1, 0, 0, 0, 0x65]));
        for s in steps {
            let (kind, delta, head, data) = match s {
                Step::Key(d, b) => (MediaKind::Video, *d, vec![0x17, 1, 0, 0, 0], b),
                Step::Inter(d, b) => (MediaKind::Video, *d, vec![0x27, 1, 0, 0, 0], b),
                Step::Audio(d, b) if audio => (MediaKind::Audio, *d, vec![0xAF, 1], b),
                Step::Audio(..) => continue,
            };
            t += delta;
            let mut body = head;
            body.extend_from_slice(data);
            tags.push((kind, t, body));
        }
        tags
    }

    /// The tags of a whole file by the offset of their header: (offset, kind, ms, body).
    fn walk(file: &[u8]) -> Vec<(u64, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 13;
        while pos < file.len() {
            let size =
                u32::from_be_bytes([0, file[pos + 1], file[pos + 2], file[pos + 3]]) as usize;
            let ts =
                u32::from_be_bytes([file[pos + 7], file[pos + 4], file[pos + 5], file[pos + 6]]);
            let body = file[pos + 11..pos + 11 + size].to_vec();
            let previous = &file[pos + 11 + size..pos + 15 + size];
            assert_eq!(
                u32::from_be_bytes(previous.try_into().unwrap()),
                11 + size as u32
            );
            out.push((pos as u64, file[pos], ts, body));
            pos += 15 + size;
        }
        assert_eq!(pos, file.len());
        out
    }

    fn write(tags: &[(MediaKind, u32, Vec<u8>)]) -> (IndexedFlvWriter, Vec<u8>) {
        let mut writer = IndexedFlvWriter::new();
        let mut body = Vec::new();
        for (kind, ts, b) in tags {
            let tag = writer
                .push(*kind, Timestamp::from_millis(*ts), b)
                .unwrap()
                .expect("media tags are written");
            body.extend_from_slice(&tag);
        }
        assert_eq!(writer.body_len(), body.len() as u64);
        let mut file = writer.head().to_vec();
        file.extend_from_slice(&body);
        (writer, file)
    }

    fn keyframes_of(meta: &crate::StreamMetadata) -> (Vec<f64>, Vec<f64>) {
        let keyframes = meta
            .properties
            .iter()
            .find(|(k, _)| k == "keyframes")
            .map(|(_, v)| v.clone())
            .expect("a keyframes object");
        let array = |name: &str| -> Vec<f64> {
            match keyframes.get(name) {
                Some(Value::StrictArray(items)) => {
                    items.iter().map(|v| v.as_number().unwrap()).collect()
                }
                other => panic!("{name}: {other:?}"),
            }
        };
        (array("times"), array("filepositions"))
    }

    proptest! {
        #[test]
        fn every_fileposition_is_a_keyframe_tag_at_its_time(
            start in 0u32..100_000,
            steps in proptest::collection::vec(step(), 0..80),
            audio in any::<bool>(),
        ) {
            let tags = tags_of(start, &steps, audio);
            let (writer, file) = write(&tags);

            // Our demuxer reads it back: the metadata first, then every tag as pushed, rebased.
            let mut demuxer = FlvDemuxer::default();
            let mut buf = BytesMut::from(&file[..]);
            let mut read = Vec::new();
            while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
                read.push(tag);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(demuxer.previous_tag_size_mismatches(), 0);
            prop_assert_eq!(demuxer.header().map(|h| h.has_audio), Some(audio));
            prop_assert_eq!(read[0].kind, MediaKind::Script);
            prop_assert_eq!(read.len(), tags.len() + 1);
            for (got, (kind, ts, body)) in read[1..].iter().zip(&tags) {
                prop_assert_eq!(got.kind, *kind);
                prop_assert_eq!(got.timestamp.as_millis(), ts - start);
                prop_assert_eq!(&got.body[..], &body[..]);
            }
            prop_assert_eq!(read[1].timestamp, Timestamp::ZERO);

            let meta = parse_metadata(&read[0].body).unwrap();
            let filesize = meta.properties.iter().find(|(k, _)| k == "filesize").unwrap();
            prop_assert_eq!(filesize.1.as_number(), Some(file.len() as f64));
            prop_assert_eq!(meta.duration, Some(f64::from(writer.duration_ms()) / 1000.0));
            let last = tags.iter().map(|t| t.1).max().unwrap() - start;
            prop_assert!(writer.duration_ms() >= last);

            let (times, positions) = keyframes_of(&meta);
            let expected: Vec<u32> = tags
                .iter()
                .filter(|(kind, _, body)| *kind == MediaKind::Video && body[0] == 0x17 && body[1] == 1)
                .map(|t| t.1 - start)
                .collect();
            prop_assert_eq!(times.len(), expected.len());
            prop_assert_eq!(positions.len(), expected.len());
            let by_offset: std::collections::HashMap<u64, (u8, u32, Vec<u8>)> = walk(&file)
                .into_iter()
                .map(|(pos, kind, ts, body)| (pos, (kind, ts, body)))
                .collect();
            for ((time, pos), want) in times.iter().zip(&positions).zip(&expected) {
                let (kind, ts, body) = by_offset.get(&(*pos as u64)).expect("a tag starts there");
                prop_assert_eq!(*kind, 9);
                prop_assert!(classify(MediaKind::Video, body).keyframe);
                prop_assert_eq!(*ts, *want);
                prop_assert_eq!((time * 1000.0).round() as u32, *want);
            }
        }
    }

    #[test]
    fn framing_around_the_body_is_the_encoded_tag() {
        let body = [0x27, 1, 0, 0, 0, 9, 9, 9];
        let mut a = IndexedFlvWriter::new();
        let mut b = IndexedFlvWriter::new();
        for ts in [100_000, 0x0100_0000 + 100_000] {
            let tag = a
                .push(MediaKind::Video, Timestamp::from_millis(ts), &body)
                .unwrap()
                .unwrap();
            let framing = b
                .push_framing(MediaKind::Video, Timestamp::from_millis(ts), &body)
                .unwrap()
                .unwrap();
            let mut joined = framing.header.to_vec();
            joined.extend_from_slice(&body);
            joined.extend_from_slice(&framing.previous_tag_size);
            assert_eq!(&tag[..], &joined[..]);
        }
        assert_eq!(a.body_len(), b.body_len());
    }

    #[test]
    fn the_head_length_depends_on_the_keyframe_count_only() {
        let short = tags_of(0, &[Step::Key(10, vec![])], true);
        let long = tags_of(0, &[Step::Key(2_000_000, vec![0; 5000])], true);
        let (a, _) = write(&short);
        let (b, _) = write(&long);
        assert_eq!(a.head().len(), b.head().len());
        assert_ne!(a.head(), b.head());
    }

    #[test]
    fn script_tags_are_not_copied_but_give_the_picture_size() {
        let mut writer = IndexedFlvWriter::new();
        let meta = onair_amf::encode_all(&[
            Value::String("@setDataFrame".into()),
            Value::String("onMetaData".into()),
            Value::EcmaArray(vec![
                ("width".into(), Value::Number(1280.0)),
                ("height".into(), Value::Number(720.0)),
            ]),
        ]);
        assert_eq!(
            writer
                .push(MediaKind::Script, Timestamp::ZERO, &meta)
                .unwrap(),
            None
        );
        assert!(writer.is_empty());
        // HEVC in Enhanced RTMP: SequenceStart, then a CodedFramesX keyframe.
        let hevc = [0x90, b'h', b'v', b'c', b'1', 1, 2, 3];
        writer
            .push(MediaKind::Video, Timestamp::from_millis(500), &hevc)
            .unwrap();
        let key = [0x93, b'h', b'v', b'c', b'1', 0x26, 1];
        let tag = writer
            .push(MediaKind::Video, Timestamp::from_millis(540), &key)
            .unwrap()
            .unwrap();
        assert_eq!(
            tag,
            encode_tag(MediaKind::Video, Timestamp::from_millis(40), &key)
        );
        let head = writer.head();
        let mut buf = BytesMut::from(&head[..]);
        let script = FlvDemuxer::default().decode(&mut buf).unwrap().unwrap();
        let meta = parse_metadata(&script.body).unwrap();
        assert_eq!((meta.width, meta.height), (Some(1280.0), Some(720.0)));
        assert_eq!(meta.video_codec, Some(VideoCodec::Hevc));
        assert_eq!(meta.audio_codec, None);
        let (times, positions) = keyframes_of(&meta);
        assert_eq!(times, [0.04]);
        assert_eq!(positions, [(head.len() + 11 + hevc.len() + 4) as f64]);
    }

    #[test]
    fn an_avc_sequence_header_gives_the_size_and_codec_ids_are_legacy() {
        let tags = tags_of(7, &[Step::Audio(20, vec![1, 2])], true);
        let (writer, file) = write(&tags);
        let mut buf = BytesMut::from(&file[..]);
        let script = FlvDemuxer::default().decode(&mut buf).unwrap().unwrap();
        let meta = parse_metadata(&script.body).unwrap();
        assert_eq!(meta.video_codec, Some(VideoCodec::H264));
        assert_eq!(meta.audio_codec, Some(AudioCodec::Aac));
        let id = |key: &str| {
            meta.properties
                .iter()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .as_number()
        };
        assert_eq!(
            (id("videocodecid"), id("audiocodecid")),
            (Some(7.0), Some(10.0))
        );
        let flag = |key: &str| {
            meta.properties
                .iter()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .as_bool()
        };
        assert_eq!(flag("hasKeyframes"), Some(true));
        // Audio lasts 20 ms past its last tag at 20 ms.
        assert_eq!(writer.duration_ms(), 40);
    }
}
