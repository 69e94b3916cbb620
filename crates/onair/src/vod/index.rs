//! A video's `media.flv` as blocks: one scan of the tag headers finds the sequence headers,
//! the metadata and where each GOP starts; a block (a GOP, split past [`BLOCK_TARGET`]) is
//! later read with one positional read and cut into frames that share that read's memory.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use onair_media::MediaKind;
use onair_rtmp::chunk::encode_standalone;
use onair_rtmp::session::media_raw_message;

/// The file every video directory holds for RTMP VOD.
pub const MEDIA_FILE: &str = "media.flv";

/// A block grows past a GOP boundary never, and is cut mid-GOP once it holds this much, so
/// one read stays small even for a stream with rare keyframes.
pub const BLOCK_TARGET: u32 = 1024 * 1024;

/// FLV tag header (11 bytes) and the PreviousTagSize that follows each body (4).
const TAG_HEADER: u64 = 11;
const PREVIOUS_TAG_SIZE: u64 = 4;
/// Enough of a body to classify it (legacy and E-RTMP video headers, AAC packet type).
const CLASSIFY_PREFIX: usize = 16;
/// A sequence header or metadata tag bigger than this is not one we keep in the index.
const MAX_HEADER_TAG: u32 = 1024 * 1024;

/// Why a `media.flv` cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be read.
    #[error("cannot read {MEDIA_FILE}: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with an FLV header.
    #[error("{MEDIA_FILE} is not an FLV file (no FLV header)")]
    NotFlv,
    /// The header is there but no audio or video tag follows.
    #[error("{MEDIA_FILE} holds no audio or video")]
    Empty,
    /// A block read found something else than the tags the scan saw (the file changed).
    #[error("{MEDIA_FILE} changed under us: no FLV tag at byte {offset}")]
    Changed {
        /// Where the tag was expected.
        offset: u64,
    },
}

/// One tag of the file, ready to send to players.
#[derive(Debug)]
pub struct VodFrame {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// The tag's timestamp (ms), as in the file.
    pub timestamp: u32,
    /// A video frame a decoder can start on.
    pub keyframe: bool,
    /// A decoder configuration.
    pub sequence_header: bool,
    /// The tag body: a slice of the block's one read.
    pub data: Bytes,
    /// This frame as RTMP chunks for every player on the shared stream id and chunk size.
    chunks: OnceLock<Bytes>,
}

impl VodFrame {
    fn new(kind: MediaKind, timestamp: u32, data: Bytes) -> Self {
        let class = onair_flv::classify(kind, &data);
        VodFrame {
            kind,
            timestamp,
            keyframe: class.keyframe,
            sequence_header: class.sequence_header,
            data,
            chunks: OnceLock::new(),
        }
    }

    /// The frame as fmt-0/fmt-3 chunks on message stream `stream`, cut at `chunk_size`,
    /// encoded by the first player that asks and shared by all. Every caller passes the same
    /// server-wide pair; a player that differs encodes its own.
    pub fn shared_chunks(&self, stream: u32, chunk_size: u32) -> Bytes {
        self.chunks
            .get_or_init(|| {
                let raw = media_raw_message(self.kind, self.timestamp, stream, self.data.clone());
                encode_standalone(&raw, chunk_size)
            })
            .clone()
    }
}

/// Where one block lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Byte offset of its first tag header.
    pub offset: u64,
    /// Bytes of its tags, PreviousTagSizes included.
    pub len: u32,
    /// Timestamp of its first tag.
    pub start_ms: u32,
    /// Whether it starts on a video keyframe (a place to seek to).
    pub keyframe: bool,
}

/// What one scan of a `media.flv` learnt.
#[derive(Debug)]
pub struct VodIndex {
    /// The `onMetaData` body, sent to each player before media.
    pub metadata: Option<VodFrame>,
    /// The sequence headers before the first media tag (the last of each kind).
    pub headers: Vec<VodFrame>,
    /// The media, in file order.
    pub blocks: Vec<BlockInfo>,
    /// The last tag's timestamp.
    pub last_ms: u32,
}

impl VodIndex {
    /// The block to play from for a position: the last keyframe block starting at or
    /// before `position_ms`, else the first block.
    pub fn block_for(&self, position_ms: u32) -> usize {
        self.blocks
            .iter()
            .rposition(|b| b.keyframe && b.start_ms <= position_ms)
            .unwrap_or(0)
    }
}

struct TagHead {
    kind: Option<MediaKind>,
    size: u32,
    timestamp: u32,
}

fn parse_head(h: &[u8; 11]) -> TagHead {
    let kind = match h[0] & 0x1F {
        8 => Some(MediaKind::Audio),
        9 => Some(MediaKind::Video),
        18 => Some(MediaKind::Script),
        _ => None,
    };
    let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
    // FLV: 24 low bits, then the upper 8 (TimestampExtended).
    let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
    TagHead {
        kind,
        size,
        timestamp,
    }
}

/// Scans `path`: reads each tag header and a few bytes of each body, skips the rest. A
/// truncated last tag (a file still being written) ends the scan there.
pub fn scan(path: &Path) -> Result<(File, VodIndex), IndexError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(64 * 1024, &file);
    let mut header = [0u8; 9];
    reader.read_exact(&mut header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => IndexError::NotFlv,
        _ => IndexError::Io(e),
    })?;
    if &header[..3] != b"FLV" {
        return Err(IndexError::NotFlv);
    }
    let data_offset = u64::from(u32::from_be_bytes([
        header[5], header[6], header[7], header[8],
    ]));
    let mut pos = data_offset + PREVIOUS_TAG_SIZE;
    reader.seek(SeekFrom::Start(pos))?;
    let mut index = VodIndex {
        metadata: None,
        headers: Vec::new(),
        blocks: Vec::new(),
        last_ms: 0,
    };
    let mut head = [0u8; 11];
    let mut prefix = [0u8; CLASSIFY_PREFIX];
    while pos + TAG_HEADER <= len {
        reader.read_exact(&mut head)?;
        let tag = parse_head(&head);
        let total = TAG_HEADER + u64::from(tag.size) + PREVIOUS_TAG_SIZE;
        if pos + total > len {
            break;
        }
        let mut consumed = 0u64;
        if let Some(kind) = tag.kind {
            let in_prelude = index.blocks.is_empty();
            let n = (tag.size as usize).min(CLASSIFY_PREFIX);
            reader.read_exact(&mut prefix[..n])?;
            consumed = n as u64;
            let class = onair_flv::classify(kind, &prefix[..n]);
            let keep = in_prelude
                && tag.size <= MAX_HEADER_TAG
                && (class.sequence_header
                    || (kind == MediaKind::Script && index.metadata.is_none()));
            if keep {
                let mut body = vec![0u8; tag.size as usize];
                body[..n].copy_from_slice(&prefix[..n]);
                reader.read_exact(&mut body[n..])?;
                consumed = u64::from(tag.size);
                let frame = VodFrame::new(kind, tag.timestamp, Bytes::from(body));
                if kind == MediaKind::Script {
                    if onair_flv::is_on_metadata(&frame.data) {
                        index.metadata = Some(frame);
                    }
                } else {
                    index.headers.retain(|h| h.kind != kind);
                    index.headers.push(frame);
                }
            } else if kind != MediaKind::Script || !in_prelude {
                let starts = match index.blocks.last() {
                    None => true,
                    Some(b) => {
                        (kind == MediaKind::Video && class.keyframe) || b.len >= BLOCK_TARGET
                    }
                };
                if starts {
                    index.blocks.push(BlockInfo {
                        offset: pos,
                        len: 0,
                        start_ms: tag.timestamp,
                        keyframe: kind == MediaKind::Video && class.keyframe,
                    });
                }
                if let Some(block) = index.blocks.last_mut() {
                    block.len = block.len.saturating_add(total as u32);
                }
                index.last_ms = index.last_ms.max(tag.timestamp);
            }
        } else if let Some(block) = index.blocks.last_mut() {
            // An unknown tag type inside the media: carried in the block, skipped when cut.
            block.len = block.len.saturating_add(total as u32);
        }
        let rest = total - TAG_HEADER - consumed;
        reader.seek_relative(rest as i64)?;
        pos += total;
    }
    if index.blocks.is_empty() {
        return Err(IndexError::Empty);
    }
    drop(reader);
    Ok((file, index))
}

/// Reads `block` with one positional read and cuts it into frames sharing that memory.
/// Script tags inside the media (cue points) are dropped: players got `onMetaData` first.
pub fn read_block(file: &File, block: &BlockInfo) -> Result<Vec<VodFrame>, IndexError> {
    let mut buf = vec![0u8; block.len as usize];
    file.read_exact_at(&mut buf, block.offset)?;
    let bytes = Bytes::from(buf);
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at + TAG_HEADER as usize <= bytes.len() {
        let mut head = [0u8; 11];
        head.copy_from_slice(&bytes[at..at + TAG_HEADER as usize]);
        let tag = parse_head(&head);
        let body_start = at + TAG_HEADER as usize;
        let body_end = body_start + tag.size as usize;
        if body_end + PREVIOUS_TAG_SIZE as usize > bytes.len() {
            return Err(IndexError::Changed {
                offset: block.offset + at as u64,
            });
        }
        if at == 0 && (tag.kind.is_none() || tag.timestamp != block.start_ms) {
            return Err(IndexError::Changed {
                offset: block.offset,
            });
        }
        if let Some(kind @ (MediaKind::Audio | MediaKind::Video)) = tag.kind {
            frames.push(VodFrame::new(
                kind,
                tag.timestamp,
                bytes.slice(body_start..body_end),
            ));
        }
        at = body_end + PREVIOUS_TAG_SIZE as usize;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_media::Timestamp;

    fn tag(kind: MediaKind, ts: u32, body: &[u8]) -> Bytes {
        onair_flv::encode_tag(kind, Timestamp::from_millis(ts), body)
    }

    fn metadata() -> Vec<u8> {
        onair_amf::encode_all(&[
            "onMetaData".into(),
            onair_amf::Value::EcmaArray(vec![("duration".to_owned(), 4.0.into())]),
        ])
        .to_vec()
    }

    /// Header, metadata, both sequence headers, then 4 s of 10 fps video with a keyframe
    /// every second and audio every 50 ms (frames padded to `frame_len`).
    fn file(frame_len: usize) -> Vec<u8> {
        let mut out = onair_flv::FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode()
        .to_vec();
        out.extend_from_slice(&tag(MediaKind::Script, 0, &metadata()));
        out.extend_from_slice(&tag(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 0x64]));
        out.extend_from_slice(&tag(MediaKind::Audio, 0, &[0xAF, 0, 0x12, 0x10]));
        for ms in (0..4000).step_by(50) {
            if ms % 100 == 0 {
                let key = ms % 1000 == 0;
                let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
                body.resize(frame_len, 0xAB);
                out.extend_from_slice(&tag(MediaKind::Video, ms, &body));
            }
            out.extend_from_slice(&tag(MediaKind::Audio, ms, &[0xAF, 1, 0x21, 0x10]));
        }
        out
    }

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onair-vod-index-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(MEDIA_FILE);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_scan_finds_headers_metadata_and_a_block_per_gop() {
        let path = write("gops", &file(100));
        let (file, index) = scan(&path).unwrap();
        assert!(index.metadata.is_some());
        let kinds: Vec<_> = index.headers.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [MediaKind::Video, MediaKind::Audio]);
        assert!(index.headers.iter().all(|h| h.sequence_header));
        let starts: Vec<_> = index
            .blocks
            .iter()
            .map(|b| (b.start_ms, b.keyframe))
            .collect();
        assert_eq!(
            starts,
            [(0, true), (1000, true), (2000, true), (3000, true)]
        );
        assert_eq!(index.last_ms, 3950);
        assert_eq!(index.block_for(0), 0);
        assert_eq!(index.block_for(2999), 2);
        assert_eq!(index.block_for(1999), 1);
        assert_eq!(index.block_for(3000), 3);
        assert_eq!(index.block_for(60_000), 3);

        let frames = read_block(&file, &index.blocks[1]).unwrap();
        // 10 pictures and 20 audio frames per second.
        assert_eq!(frames.len(), 30);
        assert!(frames[0].keyframe && frames[0].timestamp == 1000);
        let keys: Vec<_> = frames
            .iter()
            .filter(|f| f.keyframe)
            .map(|f| (f.kind, f.timestamp))
            .collect();
        assert_eq!(keys, [(MediaKind::Video, 1000)]);
        assert_eq!(frames.last().unwrap().timestamp, 1950);
        assert!(frames.iter().all(|f| !f.sequence_header));
        // One read: every body is a slice of the same buffer.
        let base = frames[0].data.as_ptr() as usize;
        assert!(frames.iter().all(|f| {
            let at = f.data.as_ptr() as usize;
            at >= base && at < base + index.blocks[1].len as usize
        }));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_long_gop_is_cut_into_blocks_that_are_not_seek_points() {
        // 300 KiB pictures: a one-second GOP is ~3 MiB.
        let path = write("long", &file(300 * 1024));
        let (file, index) = scan(&path).unwrap();
        assert!(index.blocks.len() > 4, "{}", index.blocks.len());
        assert!(
            index
                .blocks
                .iter()
                .all(|b| b.len <= BLOCK_TARGET + 400 * 1024)
        );
        assert_eq!(index.blocks.iter().filter(|b| b.keyframe).count(), 4);
        assert_eq!(index.blocks[index.block_for(1500)].start_ms, 1000);
        let total: usize = (0..index.blocks.len())
            .map(|n| read_block(&file, &index.blocks[n]).unwrap().len())
            .sum();
        assert_eq!(total, 40 + 80);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn bad_files_are_refused_and_a_cut_last_tag_is_ignored() {
        let not_flv = write("notflv", b"#EXTM3U\n");
        assert!(matches!(scan(&not_flv), Err(IndexError::NotFlv)));
        let header_only = write("empty", &onair_flv::FlvHeader::default().encode());
        assert!(matches!(scan(&header_only), Err(IndexError::Empty)));
        let whole = file(100);
        let cut = write("cut", &whole[..whole.len() - 3]);
        let (_, index) = scan(&cut).unwrap();
        assert_eq!(
            index.last_ms, 3900,
            "the cut audio tag at 3950 is not indexed"
        );

        // The file changes after the scan: the read says so instead of sending garbage.
        let changed = write("changed", &whole);
        let (file, index) = scan(&changed).unwrap();
        drop(file);
        std::fs::write(&changed, vec![0u8; whole.len()]).unwrap();
        let reopened = File::open(&changed).unwrap();
        assert!(matches!(
            read_block(&reopened, &index.blocks[2]),
            Err(IndexError::Changed { .. })
        ));
        for p in [not_flv, header_only, cut, changed] {
            let _ = std::fs::remove_dir_all(p.parent().unwrap());
        }
    }

    #[test]
    fn a_frame_is_chunked_once_for_all_players() {
        let frame = VodFrame::new(
            MediaKind::Video,
            40,
            Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]),
        );
        let a = frame.shared_chunks(1, 4096);
        let b = frame.shared_chunks(1, 4096);
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same buffer, not a copy");
    }
}
