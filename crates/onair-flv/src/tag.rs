//! FLV tags (FLV v10.1 §E.3–§E.4.1): one-allocation encoding and a sans-IO demuxer.

use bytes::{Buf, Bytes, BytesMut};
use onair_media::{Frame, MediaKind, Timestamp};

use crate::{FlvError, FlvHeader};

/// Length of a tag header: type, 24-bit size, 24-bit timestamp, extended timestamp byte and
/// 24-bit stream id.
pub const TAG_HEADER_LEN: usize = 11;

/// Length of the `PreviousTagSize` field after every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// The largest body a tag can declare (`DataSize` is 24 bits).
const MAX_DATA_SIZE: usize = 0xFF_FFFF;

/// One tag as ONE contiguous, exactly sized allocation: the 11-byte header, the body and
/// the 4-byte `PreviousTagSize`.
///
/// This is what HTTP-FLV and WS-FLV viewers share: encode once per frame, then clone the
/// [`Bytes`] (a reference count) for each viewer. The timestamp's low 24 bits go into
/// `Timestamp` and the high 8 bits into `TimestampExtended`, so streams older than
/// 4 h 39 min (0xFFFFFF ms) keep exact time (protocol notes #1).
///
/// # Panics
///
/// If `body` is longer than 16 777 215 bytes, which FLV's 24-bit `DataSize` cannot
/// express. Bodies that come from RTMP messages (24-bit lengths) or from [`FlvDemuxer`]
/// always fit; use [`try_encode_tag`] for bodies of other origin.
pub fn encode_tag(kind: MediaKind, timestamp: Timestamp, body: &[u8]) -> Bytes {
    match try_encode_tag(kind, timestamp, body) {
        Ok(tag) => tag,
        Err(err) => panic!("encode_tag: {err}"),
    }
}

/// [`encode_tag`] for bodies whose size is not already bounded by RTMP or FLV framing.
pub fn try_encode_tag(
    kind: MediaKind,
    timestamp: Timestamp,
    body: &[u8],
) -> Result<Bytes, FlvError> {
    if body.len() > MAX_DATA_SIZE {
        return Err(FlvError::BodyTooLarge { len: body.len() });
    }
    let size = body.len() as u32;
    let ts = timestamp.as_millis();
    let mut out = Vec::with_capacity(TAG_HEADER_LEN + body.len() + PREVIOUS_TAG_SIZE_LEN);
    out.push(kind.tag_type());
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.push((ts >> 24) as u8);
    // StreamID: "Always 0" (FLV v10.1 §E.4.1).
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(TAG_HEADER_LEN as u32 + size).to_be_bytes());
    debug_assert_eq!(out.len(), out.capacity());
    Ok(Bytes::from(out))
}

/// [`encode_tag`] for a hub [`Frame`].
///
/// # Panics
///
/// As [`encode_tag`], if the frame's data exceeds 16 777 215 bytes.
pub fn encode_frame(frame: &Frame) -> Bytes {
    encode_tag(frame.kind, frame.timestamp, &frame.data)
}

/// One demuxed tag. The body is a slice of the buffer handed to [`FlvDemuxer::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// `Timestamp` | `TimestampExtended << 24`.
    pub timestamp: Timestamp,
    /// The tag body, shared with the input buffer.
    pub body: Bytes,
}

impl FlvTag {
    /// The tag as a hub [`Frame`], classified with [`frame_from_tag`](crate::frame_from_tag).
    pub fn into_frame(self) -> Frame {
        crate::frame_from_tag(self.kind, self.timestamp, self.body)
    }
}

/// Bounds for [`FlvDemuxer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvLimits {
    /// The largest tag body the demuxer buffers and returns; larger tags are an error.
    /// Default 16 MiB, i.e. anything the 24-bit `DataSize` can declare.
    pub max_tag_size: u32,
}

impl Default for FlvLimits {
    fn default() -> Self {
        FlvLimits {
            max_tag_size: 16 * 1024 * 1024,
        }
    }
}

/// A sans-IO FLV reader for files and streams (`onair publish FILE.flv`, tests).
///
/// Feed it bytes with [`decode`](Self::decode) in any split; it consumes the header
/// first, then returns one tag per call.
///
/// - **Unknown tag types** — anything whose type byte is not exactly 8, 9 or 18, which
///   includes tags with the `Filter` (encryption) bit set — are skipped and counted in
///   [`skipped_tags`](Self::skipped_tags). Their bytes are discarded as they arrive, so
///   they cost no buffering and are not subject to `max_tag_size`.
/// - **`StreamID`** ("always 0") is not checked.
/// - **`PreviousTagSize`** is read but never fails the stream: muxers disagree on it (some
///   write the body size without the 11-byte header, live muxers sometimes write 0), and
///   `DataSize` alone delimits the tag. Values other than `11 + DataSize` are counted in
///   [`previous_tag_size_mismatches`](Self::previous_tag_size_mismatches).
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    limits: FlvLimits,
    header: Option<FlvHeader>,
    /// Bytes of a skipped tag (and its `PreviousTagSize`) still to discard.
    skip: usize,
    skipped_tags: u64,
    previous_tag_size_mismatches: u64,
}

impl FlvDemuxer {
    /// A demuxer expecting an FLV header first.
    pub fn new(limits: FlvLimits) -> Self {
        FlvDemuxer {
            limits,
            ..Self::default()
        }
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Tags skipped because of an unknown tag type.
    pub fn skipped_tags(&self) -> u64 {
        self.skipped_tags
    }

    /// Tags whose `PreviousTagSize` was not `11 + DataSize`.
    pub fn previous_tag_size_mismatches(&self) -> u64 {
        self.previous_tag_size_mismatches
    }

    /// Consumes bytes from the front of `buf` and returns the next tag.
    ///
    /// `Ok(None)` means "need more bytes": what was consumed stays consumed, the rest stays
    /// in `buf`. The returned body is a zero-copy slice of `buf`'s allocation. An `Err` is
    /// final for this stream.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        if self.header.is_none() {
            match FlvHeader::parse(buf)? {
                Some((header, consumed)) => {
                    buf.advance(consumed);
                    self.header = Some(header);
                }
                None => return Ok(None),
            }
        }
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            if buf.len() < TAG_HEADER_LEN {
                return Ok(None);
            }
            let tag_type = buf[0];
            let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]);
            let timestamp = u32::from_be_bytes([buf[7], buf[4], buf[5], buf[6]]);
            let total = TAG_HEADER_LEN + size as usize + PREVIOUS_TAG_SIZE_LEN;
            let Some(kind) = MediaKind::from_tag_type(tag_type) else {
                self.skipped_tags += 1;
                self.skip = total;
                continue;
            };
            if size > self.limits.max_tag_size {
                return Err(FlvError::TagTooLarge {
                    size,
                    max: self.limits.max_tag_size,
                });
            }
            if buf.len() < total {
                // Reserve once so a large tag arriving in small reads is not regrown
                // repeatedly.
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            let tag = buf.split_to(total).freeze();
            let end = TAG_HEADER_LEN + size as usize;
            // `tag` is exactly `total` = `end` + 4 bytes long, checked above.
            let previous = u32::from_be_bytes([tag[end], tag[end + 1], tag[end + 2], tag[end + 3]]);
            if previous != TAG_HEADER_LEN as u32 + size {
                self.previous_tag_size_mismatches += 1;
            }
            return Ok(Some(FlvTag {
                kind,
                timestamp: Timestamp::from_millis(timestamp),
                body: tag.slice(TAG_HEADER_LEN..end),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream_of(tags: &[(MediaKind, u32, Vec<u8>)], header: FlvHeader) -> Vec<u8> {
        let mut out = header.encode().to_vec();
        for (kind, ts, body) in tags {
            out.extend_from_slice(&encode_tag(*kind, Timestamp::from_millis(*ts), body));
        }
        out
    }

    fn demux_in_pieces(data: &[u8], cuts: &[usize]) -> (FlvDemuxer, Vec<FlvTag>) {
        let mut demuxer = FlvDemuxer::default();
        let mut buf = BytesMut::new();
        let mut tags = Vec::new();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(data.len());
        for cut in cuts {
            buf.extend_from_slice(&data[start..cut]);
            start = cut;
            while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
                tags.push(tag);
            }
        }
        assert!(buf.is_empty());
        (demuxer, tags)
    }

    #[test]
    fn tag_layout_matches_the_spec_table() {
        let tag = encode_tag(
            MediaKind::Audio,
            Timestamp::from_millis(0x1234_5678),
            &[0xAF, 0x01, 0x21],
        );
        // type 8, size 3, ts low 24 = 345678, extended = 12, stream id 0, body, PTS = 14.
        assert_eq!(
            hex::encode(&tag),
            "08000003345678120000 00af01210000000e".replace(' ', "")
        );
        assert_eq!(tag.len(), TAG_HEADER_LEN + 3 + PREVIOUS_TAG_SIZE_LEN);
    }

    #[test]
    fn encode_is_one_exact_allocation() {
        let body = vec![7u8; 1000];
        let tag = encode_tag(MediaKind::Video, Timestamp::ZERO, &body);
        // Converting the Vec into Bytes kept it in place: the capacity was exact, so no
        // shrinking reallocation (and no second copy of the body) happened.
        let vec: Vec<u8> = tag.into();
        assert_eq!(vec.len(), vec.capacity());
    }

    #[test]
    fn oversized_bodies_are_refused_by_try_encode_tag() {
        let body = vec![0u8; MAX_DATA_SIZE + 1];
        let err = try_encode_tag(MediaKind::Video, Timestamp::ZERO, &body).unwrap_err();
        assert!(matches!(err, FlvError::BodyTooLarge { len } if len == MAX_DATA_SIZE + 1));
        let max = vec![0u8; MAX_DATA_SIZE];
        assert!(try_encode_tag(MediaKind::Video, Timestamp::ZERO, &max).is_ok());
    }

    #[test]
    fn bodies_are_slices_of_the_input_buffer() {
        let data = stream_of(
            &[(MediaKind::Video, 0, vec![1, 2, 3, 4])],
            FlvHeader::default(),
        );
        let mut buf = BytesMut::from(&data[..]);
        let base = buf.as_ptr() as usize;
        let tag = FlvDemuxer::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(tag.body.as_ptr() as usize, base + 13 + TAG_HEADER_LEN);
    }

    #[test]
    fn unknown_tag_types_are_skipped_even_when_huge() {
        let mut data = FlvHeader::default().encode().to_vec();
        // Type 0x28 = Filter bit | audio (encrypted), 0x0F = unknown; both skipped.
        for tag_type in [0x28u8, 0x0F] {
            let mut tag = encode_tag(MediaKind::Audio, Timestamp::ZERO, &[9; 20]).to_vec();
            tag[0] = tag_type;
            data.extend_from_slice(&tag);
        }
        // An unknown tag declaring the maximum size: never buffered, just discarded.
        data.extend_from_slice(&[0x0F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0]);
        data.extend(std::iter::repeat_n(0u8, MAX_DATA_SIZE + 4));
        data.extend_from_slice(&encode_tag(
            MediaKind::Script,
            Timestamp::from_millis(5),
            &[2, 0, 0],
        ));
        let mut demuxer = FlvDemuxer::new(FlvLimits { max_tag_size: 100 });
        let mut buf = BytesMut::new();
        let mut tags = Vec::new();
        for piece in data.chunks(64 * 1024) {
            buf.extend_from_slice(piece);
            while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
                tags.push(tag);
            }
            assert!(buf.len() < 64 * 1024 + TAG_HEADER_LEN);
        }
        assert_eq!(demuxer.skipped_tags(), 3);
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].kind, MediaKind::Script);
    }

    #[test]
    fn tags_over_the_limit_fail_before_buffering() {
        let data = stream_of(&[(MediaKind::Video, 0, vec![0; 101])], FlvHeader::default());
        let mut buf = BytesMut::from(&data[..13 + TAG_HEADER_LEN]);
        let err = FlvDemuxer::new(FlvLimits { max_tag_size: 100 })
            .decode(&mut buf)
            .unwrap_err();
        assert!(matches!(
            err,
            FlvError::TagTooLarge {
                size: 101,
                max: 100
            }
        ));
    }

    #[test]
    fn previous_tag_size_is_lenient() {
        let mut data = stream_of(
            &[
                (MediaKind::Video, 0, vec![1, 2]),
                (MediaKind::Audio, 1, vec![3]),
            ],
            FlvHeader::default(),
        );
        // First tag's PreviousTagSize written without the header (a known muxer bug).
        let pts = 13 + TAG_HEADER_LEN + 2;
        data[pts..pts + 4].copy_from_slice(&2u32.to_be_bytes());
        let (demuxer, tags) = demux_in_pieces(&data, &[]);
        assert_eq!(tags.len(), 2);
        assert_eq!(demuxer.previous_tag_size_mismatches(), 1);
    }

    #[test]
    fn not_an_flv_stream_is_an_error() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1"[..]);
        assert!(matches!(
            FlvDemuxer::default().decode(&mut buf),
            Err(FlvError::BadSignature { .. })
        ));
    }

    /// Regression (found by the fuzzing proptest): the error once listed every signature
    /// byte available, so a split stream reported fewer bytes than a whole one.
    #[test]
    fn bad_signature_error_does_not_depend_on_the_split() {
        let mut whole = BytesMut::from(&b"\x00\x00\x00"[..]);
        let mut first = BytesMut::from(&b"\x00"[..]);
        let expected = FlvError::BadSignature { found: vec![0] };
        assert_eq!(
            FlvDemuxer::default().decode(&mut whole),
            Err(expected.clone())
        );
        assert_eq!(FlvDemuxer::default().decode(&mut first), Err(expected));
        let mut late = BytesMut::from(&b"FLX"[..]);
        let err = FlvDemuxer::default().decode(&mut late).unwrap_err();
        assert_eq!(
            err,
            FlvError::BadSignature {
                found: b"FLX".to_vec()
            }
        );
    }

    fn arb_kind() -> impl Strategy<Value = MediaKind> {
        prop_oneof![
            Just(MediaKind::Audio),
            Just(MediaKind::Video),
            Just(MediaKind::Script)
        ]
    }

    fn arb_timestamp() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            0xFF_FFF0u32..0x0100_0010,
            Just(u32::MAX),
            0u32..100
        ]
    }

    proptest! {
        #[test]
        fn encode_then_demux_is_identity_for_any_split(
            tags in proptest::collection::vec(
                (arb_kind(), arb_timestamp(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..12,
            ),
            has_audio in any::<bool>(),
            has_video in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let header = FlvHeader { has_audio, has_video };
            let data = stream_of(&tags, header);
            let (demuxer, decoded) = demux_in_pieces(&data, &cuts);
            prop_assert_eq!(demuxer.header(), Some(header));
            prop_assert_eq!(demuxer.previous_tag_size_mismatches(), 0);
            prop_assert_eq!(decoded.len(), tags.len());
            for (tag, (kind, ts, body)) in decoded.iter().zip(&tags) {
                prop_assert_eq!(tag.kind, *kind);
                prop_assert_eq!(tag.timestamp.as_millis(), *ts);
                prop_assert_eq!(&tag.body[..], &body[..]);
            }
        }
    }
}
