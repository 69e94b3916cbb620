//! Seeking in a finished FLV file by its keyframe index: the `keyframes` object of
//! `onMetaData` (`{times: [seconds], filepositions: [byte offsets]}`, the convention of
//! FFmpeg's `-flvflags add_keyframe_index`, which flv.js and FFmpeg's demuxer read), and the
//! head of a new FLV stream that starts at one of those keyframes.
//!
//! The caller reads the file; this module only looks at the bytes it is handed. A stream
//! that starts at keyframe `k` is: [`seek_head`] (FLV header, an `onMetaData` describing the
//! new stream, the file's sequence headers) followed by the file's bytes from
//! `filepositions[k]` to its end, unchanged. Timestamps stay the file's, so a player that
//! asked for second 30 sees second 30.

use bytes::{BufMut, Bytes, BytesMut};
use onair_amf::Value;
use onair_media::{MediaKind, Timestamp};

use crate::{FlvError, FlvHeader, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, try_encode_tag};

/// Why a `keyframes` index cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// `onMetaData` has no `keyframes` object.
    #[error("onMetaData has no keyframes index")]
    Missing,
    /// `keyframes` is there but not two equally long arrays of numbers.
    #[error("the keyframes index is malformed: {0}")]
    Malformed(&'static str),
}

/// One entry of the keyframe index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyframe {
    /// Its presentation time, in seconds.
    pub time: f64,
    /// The byte offset of its tag header in the file.
    pub position: u64,
}

/// A tag's 11-byte header (FLV v10.1 §E.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    /// `TagType` (8 audio, 9 video, 18 script), with the filter and reserved bits cleared.
    pub tag_type: u8,
    /// `DataSize`: the body's length.
    pub data_size: u32,
    /// `Timestamp` with `TimestampExtended` as its high byte, in milliseconds.
    pub timestamp: u32,
}

impl TagHeader {
    /// Reads a tag header. Any 11 bytes are one; whether it makes sense is the caller's call.
    pub fn parse(b: &[u8; TAG_HEADER_LEN]) -> TagHeader {
        TagHeader {
            tag_type: b[0] & 0x1f,
            data_size: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[7], b[4], b[5], b[6]]),
        }
    }

    /// The media kind of the tag, if it is audio, video or script data.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::from_tag_type(self.tag_type)
    }

    /// Bytes the whole tag takes in the file: header, body and `PreviousTagSize`.
    pub fn total_len(&self) -> u64 {
        (TAG_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN) as u64 + u64::from(self.data_size)
    }
}

/// The keyframe index in `onMetaData`'s properties (as [`crate::StreamMetadata::properties`]
/// holds them). Entries must be in file order with times that never go back; the index is
/// refused otherwise, so a lookup can trust it.
pub fn keyframe_index(properties: &[(String, Value)]) -> Result<Vec<Keyframe>, IndexError> {
    let keyframes = lookup(properties, "keyframes").ok_or(IndexError::Missing)?;
    let inner = keyframes
        .properties()
        .ok_or(IndexError::Malformed("keyframes is not an object"))?;
    let numbers = |key: &'static str| -> Result<Vec<f64>, IndexError> {
        match lookup(inner, key) {
            Some(Value::StrictArray(items)) => items
                .iter()
                .map(|v| {
                    v.as_number().filter(|n| n.is_finite() && *n >= 0.0).ok_or(
                        IndexError::Malformed("an entry is not a non-negative number"),
                    )
                })
                .collect(),
            Some(_) => Err(IndexError::Malformed(
                "times or filepositions is not an array",
            )),
            None => Err(IndexError::Malformed("times or filepositions is missing")),
        }
    };
    let times = numbers("times")?;
    let positions = numbers("filepositions")?;
    if times.len() != positions.len() {
        return Err(IndexError::Malformed(
            "times and filepositions differ in length",
        ));
    }
    let index: Vec<Keyframe> = times
        .into_iter()
        .zip(positions)
        .map(|(time, position)| Keyframe {
            time,
            // Checked finite and non-negative above; offsets past 2^53 do not occur.
            position: position as u64,
        })
        .collect();
    if index
        .windows(2)
        .any(|w| w[1].time < w[0].time || w[1].position <= w[0].position)
    {
        return Err(IndexError::Malformed("entries are out of order"));
    }
    Ok(index)
}

/// The keyframe to start at for `seconds`: the last one at or before it, or the first when
/// `seconds` comes before every keyframe. `None` for an empty index.
pub fn keyframe_at(index: &[Keyframe], seconds: f64) -> Option<usize> {
    if index.is_empty() {
        return None;
    }
    // The index is sorted by time (checked by `keyframe_index`).
    Some(
        index
            .partition_point(|k| k.time <= seconds)
            .saturating_sub(1),
    )
}

/// A sequence header to repeat at the start of a seeked stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    /// Audio or video.
    pub kind: MediaKind,
    /// The tag body, as in the file.
    pub body: Bytes,
}

/// What [`seek_head`] needs of the file.
#[derive(Debug, Clone, Copy)]
pub struct SeekFrom<'a> {
    /// The file's header flags.
    pub header: FlvHeader,
    /// The file's `onMetaData` properties.
    pub properties: &'a [(String, Value)],
    /// Its keyframe index ([`keyframe_index`]).
    pub index: &'a [Keyframe],
    /// Its sequence headers, in file order.
    pub sequence_headers: &'a [SequenceHeader],
    /// Its length in bytes.
    pub file_len: u64,
}

/// The head of an FLV stream that starts at keyframe `k` of `file`: FLV header,
/// `PreviousTagSize0`, `onMetaData`, the sequence headers, each tag followed by its
/// `PreviousTagSize`. The file's bytes from `index[k].position` to its end come after it.
///
/// The new `onMetaData` keeps every property of the file's but two: `keyframes` lists the
/// keyframes from `k` on at their positions in the new stream (so a player can seek within
/// it as in the file), and `filesize` is the new stream's length. `duration` stays the file's
/// because timestamps do. The sequence headers carry `timestamp` (the keyframe's), so media
/// timestamps never go back; `onMetaData` keeps 0, the only time at which FFmpeg's demuxer
/// takes a script tag for metadata (at any other it becomes a data stream).
pub fn seek_head(file: SeekFrom<'_>, k: usize, timestamp: u32) -> Result<Bytes, SeekError> {
    let start = file.index.get(k).ok_or(SeekError::NoSuchKeyframe {
        k,
        len: file.index.len(),
    })?;
    if start.position >= file.file_len {
        return Err(SeekError::PositionPastEnd {
            position: start.position,
            file_len: file.file_len,
        });
    }
    let ts = Timestamp::from_millis(timestamp);
    let mut tail = BytesMut::new();
    for header in file.sequence_headers {
        tail.put(try_encode_tag(header.kind, ts, &header.body)?);
    }
    let header = file.header.encode();
    let rest = file.file_len - start.position;
    // AMF0 numbers are always 9 bytes, so the metadata's length does not depend on the
    // values in it: encode once with placeholders to learn it, then for real.
    let probe = metadata_body(file.properties, &file.index[k..], 0, 0);
    let head_len =
        (header.len() + TAG_HEADER_LEN + probe.len() + PREVIOUS_TAG_SIZE_LEN + tail.len()) as u64;
    let body = metadata_body(
        file.properties,
        &file.index[k..],
        head_len as i64 - start.position as i64,
        head_len + rest,
    );
    debug_assert_eq!(body.len(), probe.len());
    let mut out = BytesMut::with_capacity(head_len as usize);
    out.put(header);
    out.put(try_encode_tag(MediaKind::Script, Timestamp::ZERO, &body)?);
    out.put(tail);
    debug_assert_eq!(out.len() as u64, head_len);
    Ok(out.freeze())
}

/// Why [`seek_head`] cannot make a head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeekError {
    /// `k` is not an index entry.
    #[error("keyframe {k} of an index of {len}")]
    NoSuchKeyframe {
        /// The entry asked for.
        k: usize,
        /// Entries in the index.
        len: usize,
    },
    /// The index points past the file.
    #[error("keyframe position {position} is past the end of a {file_len}-byte file")]
    PositionPastEnd {
        /// The entry's position.
        position: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A tag would not fit FLV's 24-bit size.
    #[error(transparent)]
    Tag(#[from] FlvError),
}

/// `"onMetaData", {…}` with `keyframes` from `index` (positions moved by `shift`) and
/// `filesize` = `filesize`.
fn metadata_body(
    properties: &[(String, Value)],
    index: &[Keyframe],
    shift: i64,
    filesize: u64,
) -> Vec<u8> {
    let keyframes = Value::Object(vec![
        (
            "filepositions".to_owned(),
            Value::StrictArray(
                index
                    .iter()
                    .map(|k| Value::Number((k.position as i64 + shift) as f64))
                    .collect(),
            ),
        ),
        (
            "times".to_owned(),
            Value::StrictArray(index.iter().map(|k| Value::Number(k.time)).collect()),
        ),
    ]);
    let mut props: Vec<(String, Value)> = properties
        .iter()
        .filter(|(k, _)| k != "keyframes" && k != "filesize")
        .cloned()
        .collect();
    props.push(("filesize".to_owned(), Value::Number(filesize as f64)));
    props.push(("keyframes".to_owned(), keyframes));
    onair_amf::encode_all(&[
        Value::String("onMetaData".to_owned()),
        Value::EcmaArray(props),
    ])
    .to_vec()
}

fn lookup<'a>(properties: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::{FlvDemuxer, encode_tag, parse_metadata};

    fn index_value(times: &[f64], positions: &[f64]) -> Vec<(String, Value)> {
        let arr = |v: &[f64]| Value::StrictArray(v.iter().map(|n| Value::Number(*n)).collect());
        vec![
            ("duration".to_owned(), Value::Number(6.0)),
            ("filesize".to_owned(), Value::Number(1.0)),
            (
                "keyframes".to_owned(),
                Value::Object(vec![
                    ("filepositions".to_owned(), arr(positions)),
                    ("times".to_owned(), arr(times)),
                ]),
            ),
        ]
    }

    #[test]
    fn the_index_is_read_and_checked() {
        let props = index_value(&[0.0, 2.0, 4.0], &[100.0, 200.0, 300.0]);
        let index = keyframe_index(&props).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(
            index[1],
            Keyframe {
                time: 2.0,
                position: 200
            }
        );
        assert_eq!(keyframe_index(&[]), Err(IndexError::Missing));
        for (times, positions) in [
            (&[0.0, 2.0][..], &[100.0][..]),
            (&[2.0, 0.0][..], &[100.0, 200.0][..]),
            (&[0.0, 2.0][..], &[200.0, 100.0][..]),
            (&[0.0, -1.0][..], &[100.0, 200.0][..]),
        ] {
            assert!(
                matches!(
                    keyframe_index(&index_value(times, positions)),
                    Err(IndexError::Malformed(_))
                ),
                "{times:?} {positions:?}"
            );
        }
    }

    #[test]
    fn the_keyframe_at_or_before_is_chosen() {
        let index: Vec<Keyframe> = [0.0, 2.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, &time)| Keyframe {
                time,
                position: 100 * (i as u64 + 1),
            })
            .collect();
        assert_eq!(keyframe_at(&index, 0.0), Some(0));
        assert_eq!(keyframe_at(&index, 1.99), Some(0));
        assert_eq!(keyframe_at(&index, 2.0), Some(1));
        assert_eq!(keyframe_at(&index, 3.5), Some(1));
        assert_eq!(keyframe_at(&index, 100.0), Some(2));
        assert_eq!(keyframe_at(&index[1..], 0.5), Some(0));
        assert_eq!(keyframe_at(&[], 1.0), None);
    }

    /// A small file: metadata with an index, two sequence headers, then a keyframe and an
    /// audio frame every 2 s. Returns the file and its index.
    fn file() -> (Vec<u8>, Vec<Keyframe>) {
        let video_seq = vec![0x17, 0x00, 0, 0, 0, 1, 2, 3];
        let audio_seq = vec![0xaf, 0x00, 0x12, 0x10];
        let mut media = Vec::new();
        for i in 0..3u32 {
            media.push((
                MediaKind::Video,
                i * 2000,
                vec![0x17, 0x01, 0, 0, 0, 9, i as u8],
            ));
            media.push((MediaKind::Audio, i * 2000 + 10, vec![0xaf, 0x01, i as u8]));
        }
        // The metadata's length does not depend on the numbers in it.
        let build = |positions: &[f64]| {
            let props = index_value(&[0.0, 2.0, 4.0], positions);
            let meta = onair_amf::encode_all(&[
                Value::String("onMetaData".to_owned()),
                Value::EcmaArray(props),
            ]);
            let mut out = FlvHeader {
                has_audio: true,
                has_video: true,
            }
            .encode()
            .to_vec();
            out.extend_from_slice(&encode_tag(MediaKind::Script, Timestamp::ZERO, &meta));
            out.extend_from_slice(&encode_tag(MediaKind::Video, Timestamp::ZERO, &video_seq));
            out.extend_from_slice(&encode_tag(MediaKind::Audio, Timestamp::ZERO, &audio_seq));
            let mut positions = Vec::new();
            for (kind, ts, body) in &media {
                if *kind == MediaKind::Video {
                    positions.push(out.len() as f64);
                }
                out.extend_from_slice(&encode_tag(*kind, Timestamp::from_millis(*ts), body));
            }
            (out, positions)
        };
        let (_, positions) = build(&[0.0, 0.0, 0.0]);
        let (out, again) = build(&positions);
        assert_eq!(positions, again);
        let index = keyframe_index(&index_value(&[0.0, 2.0, 4.0], &positions)).unwrap();
        (out, index)
    }

    fn demux(data: &[u8]) -> Vec<crate::FlvTag> {
        let mut demuxer = FlvDemuxer::default();
        let mut buf = BytesMut::from(data);
        let mut tags = Vec::new();
        while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
            tags.push(tag);
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        tags
    }

    #[test]
    fn a_seeked_stream_is_a_valid_flv_whose_index_points_at_its_keyframes() {
        let (data, index) = file();
        let tags = demux(&data);
        let properties = parse_metadata(&tags[0].body).unwrap().properties;
        let sequence_headers = [
            SequenceHeader {
                kind: MediaKind::Video,
                body: tags[1].body.clone(),
            },
            SequenceHeader {
                kind: MediaKind::Audio,
                body: tags[2].body.clone(),
            },
        ];
        let file = SeekFrom {
            header: FlvHeader {
                has_audio: true,
                has_video: true,
            },
            properties: &properties,
            index: &index,
            sequence_headers: &sequence_headers,
            file_len: data.len() as u64,
        };
        let k = keyframe_at(&index, 3.0).unwrap();
        assert_eq!(k, 1);
        let head = seek_head(file, k, 2000).unwrap();
        let mut stream = head.to_vec();
        stream.extend_from_slice(&data[index[k].position as usize..]);
        let out = demux(&stream);
        // Metadata, two sequence headers, then the file's media from the keyframe at 2 s.
        assert_eq!(out.len(), 3 + 4);
        assert_eq!(out[0].timestamp.as_millis(), 0);
        assert!(out[1..3].iter().all(|t| t.timestamp.as_millis() == 2000));
        assert_eq!(out[1].body, tags[1].body);
        assert_eq!(out[2].body, tags[2].body);
        assert_eq!(out[3].timestamp.as_millis(), 2000);
        assert_eq!(out[3].body, tags[5].body);
        let meta = parse_metadata(&out[0].body).unwrap();
        assert_eq!(meta.duration, Some(6.0));
        let filesize = meta
            .properties
            .iter()
            .find(|(k, _)| k == "filesize")
            .and_then(|(_, v)| v.as_number());
        assert_eq!(filesize, Some(stream.len() as f64));
        let new_index = keyframe_index(&meta.properties).unwrap();
        assert_eq!(new_index.len(), 2);
        assert_eq!(new_index[0].time, 2.0);
        for kf in &new_index {
            let at = &stream[kf.position as usize..];
            let header = TagHeader::parse(at[..TAG_HEADER_LEN].try_into().unwrap());
            assert_eq!(header.kind(), Some(MediaKind::Video));
            assert_eq!(header.timestamp as f64, kf.time * 1000.0);
            assert_eq!(at[TAG_HEADER_LEN], 0x17, "a keyframe");
        }
        assert!(matches!(
            seek_head(file, 3, 0),
            Err(SeekError::NoSuchKeyframe { k: 3, len: 3 })
        ));
    }

    #[test]
    fn tag_headers_read_extended_timestamps() {
        let tag = encode_tag(
            MediaKind::Video,
            Timestamp::from_millis(0x0123_4567),
            &[1, 2],
        );
        let header = TagHeader::parse(tag[..TAG_HEADER_LEN].try_into().unwrap());
        assert_eq!(
            header,
            TagHeader {
                tag_type: 9,
                data_size: 2,
                timestamp: 0x0123_4567
            }
        );
        assert_eq!(header.total_len(), tag.len() as u64);
    }
}
