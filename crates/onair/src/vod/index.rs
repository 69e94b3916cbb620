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
        if pos + total - PREVIOUS_TAG_SIZE > len {
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
