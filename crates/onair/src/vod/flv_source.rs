//! An uploaded FLV file as frames: our own demuxer, read in chunks, timestamps from 0.

use std::fs::File;
use std::io::Read as _;

use bytes::BytesMut;
use onair_flv::{FlvDemuxer, FlvLimits, classify};
use onair_media::{AudioCodec, Frame, MediaKind, Timestamp, VideoCodec};

use super::import::ImportError;

const READ_CHUNK: usize = 1 << 16;

/// The tags of one FLV file, in file order.
pub(super) struct FlvSource {
    file: File,
    demuxer: FlvDemuxer,
    buf: BytesMut,
    eof: bool,
    base: Option<Timestamp>,
    /// Bytes consumed so far, for errors.
    offset: u64,
    pub video_codec: Option<VideoCodec>,
    pub audio_codec: Option<AudioCodec>,
}

impl FlvSource {
    pub(super) fn open(file: File, max_frame_bytes: u32) -> FlvSource {
        FlvSource {
            file,
            demuxer: FlvDemuxer::new(FlvLimits {
                max_tag_size: max_frame_bytes,
            }),
            buf: BytesMut::with_capacity(READ_CHUNK),
            eof: false,
            base: None,
            offset: 0,
            video_codec: None,
            audio_codec: None,
        }
    }

    /// The next tag as a frame (script tags included: they carry the picture size), or
    /// `None` at the end of the file.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, ImportError> {
        loop {
            let before = self.buf.len();
            let decoded = self.demuxer.decode(&mut self.buf);
            self.offset += (before - self.buf.len()) as u64;
            match decoded {
                Ok(Some(tag)) => {
                    if tag.kind != MediaKind::Script {
                        self.check_codec(tag.kind, &tag.body)?;
                    }
                    let base = *self.base.get_or_insert(tag.timestamp);
                    let ms = u32::try_from(tag.timestamp.since(base)).unwrap_or(0);
                    return Ok(Some(onair_flv::frame_from_tag(
                        tag.kind,
                        Timestamp::from_millis(ms),
                        tag.body,
                    )));
                }
                Ok(None) if self.eof => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    return Err(ImportError::Truncated {
                        detail: format!(
                            "the FLV ends inside a tag: {} bytes after byte {}",
                            self.buf.len(),
                            self.offset
                        ),
                    });
                }
                Ok(None) => {
                    let mut chunk = [0u8; READ_CHUNK];
                    let n = self.file.read(&mut chunk)?;
                    if n == 0 {
                        self.eof = true;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) => {
                    return Err(ImportError::Corrupt {
                        detail: format!("FLV at byte {}: {e}", self.offset),
                    });
                }
            }
        }
    }

    fn check_codec(&mut self, kind: MediaKind, body: &[u8]) -> Result<(), ImportError> {
        let class = classify(kind, body);
        match (kind, class.video, class.audio) {
            (MediaKind::Video, Some(codec), _) => {
                if !matches!(codec, VideoCodec::H264 | VideoCodec::Hevc) {
                    return Err(ImportError::UnsupportedCodec {
                        found: format!("video codec {}", codec_name(&codec.to_string())),
                    });
                }
                self.video_codec.get_or_insert(codec);
            }
            (MediaKind::Audio, _, Some(codec)) => {
                if codec != AudioCodec::Aac {
                    return Err(ImportError::UnsupportedCodec {
                        found: format!("audio codec {}", codec_name(&codec.to_string())),
                    });
                }
                self.audio_codec.get_or_insert(codec);
            }
            _ => {
                return Err(ImportError::Corrupt {
                    detail: format!(
                        "FLV at byte {}: a {kind:?} tag whose header does not parse",
                        self.offset
                    ),
                });
            }
        }
        Ok(())
    }
}

fn codec_name(short: &str) -> String {
    match short {
        "h263" => "Sorenson H.263".to_owned(),
        "vp6" => "On2 VP6".to_owned(),
        "screen" => "Screen Video".to_owned(),
        other => other.to_uppercase(),
    }
}
