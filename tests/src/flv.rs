//! HTTP-FLV and WS-FLV playback through `onair_flv::FlvDemuxer`, and what the tests check
//! on the tags that arrive.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::BytesMut;
use futures_util::StreamExt;
use onair_flv::{FlvDemuxer, FlvHeader, FlvLimits};
use onair_media::MediaKind;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::http;

/// One FLV tag as a player sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// The tag timestamp in milliseconds.
    pub timestamp: u32,
    /// A coded video keyframe (never a sequence header: see `onair_flv::classify`).
    pub keyframe: bool,
    /// An AVC/HEVC decoder configuration or AAC AudioSpecificConfig.
    pub sequence_header: bool,
    /// Body length in bytes.
    pub size: usize,
    /// When the reader had it.
    pub received: Instant,
}

impl Tag {
    /// A coded audio or video frame, not a sequence header or script tag.
    pub fn is_media_frame(&self, kind: MediaKind) -> bool {
        self.kind == kind && !self.sequence_header
    }
}

/// Counts over a run of tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSummary {
    /// Coded video frames.
    pub video_frames: usize,
    /// Coded audio frames.
    pub audio_frames: usize,
    /// Video sequence headers.
    pub video_headers: usize,
    /// Audio sequence headers.
    pub audio_headers: usize,
    /// Script (metadata) tags.
    pub scripts: usize,
    /// Whether the first coded video frame is a keyframe; `None` without video.
    pub first_video_keyframe: Option<bool>,
}

impl TagSummary {
    /// Summarises `tags`.
    pub fn of(tags: &[Tag]) -> TagSummary {
        let mut s = TagSummary::default();
        for t in tags {
            match (t.kind, t.sequence_header) {
                (MediaKind::Video, true) => s.video_headers += 1,
                (MediaKind::Audio, true) => s.audio_headers += 1,
                (MediaKind::Video, false) => {
                    s.first_video_keyframe.get_or_insert(t.keyframe);
                    s.video_frames += 1;
                }
                (MediaKind::Audio, false) => s.audio_frames += 1,
                (MediaKind::Script, _) => s.scripts += 1,
            }
        }
        s
    }
}

/// The first place where a track's timestamp goes backwards: (index, previous, this).
/// Players need each track monotonic, not the two tracks together (flv.js #671).
pub fn first_step_back(tags: &[Tag], kind: MediaKind) -> Option<(usize, u32, u32)> {
    let mut last: Option<u32> = None;
    for (i, t) in tags.iter().enumerate().filter(|(_, t)| t.kind == kind) {
        if let Some(prev) = last
            && t.timestamp < prev
        {
            return Some((i, prev, t.timestamp));
        }
        last = Some(t.timestamp);
    }
    None
}

/// The largest gap between consecutive timestamps of coded frames of `kind`, in ms.
pub fn largest_gap(tags: &[Tag], kind: MediaKind) -> u32 {
    let ts: Vec<u32> = tags
        .iter()
        .filter(|t| t.is_media_frame(kind))
        .map(|t| t.timestamp)
        .collect();
    ts.windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug)]
enum Source {
    Http(http::Body),
    Ws(Box<Ws>),
}

/// A player of HTTP-FLV or WS-FLV: bytes in, demuxed tags out.
#[derive(Debug)]
pub struct FlvReader {
    source: Source,
    demuxer: FlvDemuxer,
    buf: BytesMut,
    ended: bool,
}

impl FlvReader {
    /// `GET url` (HTTP-FLV), failing unless the answer is 200. The response head is returned
    /// with the reader, its body handed over.
    pub async fn http(
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<(u16, Vec<(String, String)>, FlvReader)> {
        let response = http::request("GET", url, &[], timeout).await?;
        ensure!(
            response.status == 200,
            "GET {url}: status {}",
            response.status
        );
        let reader = FlvReader::new(Source::Http(response.body));
        Ok((response.status, response.headers, reader))
    }

    /// Opens WS-FLV at `url`.
    pub async fn ws(url: &str, timeout: Duration) -> anyhow::Result<FlvReader> {
        let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
            .await
            .with_context(|| format!("websocket {url} not open within {timeout:?}"))??;
        Ok(FlvReader::new(Source::Ws(Box::new(ws))))
    }

    fn new(source: Source) -> FlvReader {
        FlvReader {
            source,
            demuxer: FlvDemuxer::new(FlvLimits::default()),
            buf: BytesMut::new(),
            ended: false,
        }
    }

    /// The FLV header, once read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.demuxer.header()
    }

    /// The next tag; `None` when the server ends the stream. Waits as long as the server
    /// takes: use [`FlvReader::read_until`] for a bounded wait.
    pub async fn next_tag(&mut self) -> anyhow::Result<Option<Tag>> {
        loop {
            if let Some(tag) = self.demuxer.decode(&mut self.buf)? {
                let frame = tag.into_frame();
                return Ok(Some(Tag {
                    kind: frame.kind,
                    timestamp: frame.timestamp.as_millis(),
                    keyframe: frame.keyframe,
                    sequence_header: frame.sequence_header,
                    size: frame.data.len(),
                    received: Instant::now(),
                }));
            }
            if self.ended {
                ensure!(
                    self.buf.is_empty(),
                    "stream ended inside a tag ({} bytes left)",
                    self.buf.len()
                );
                return Ok(None);
            }
            match &mut self.source {
                Source::Http(body) => match body.next().await? {
                    Some(b) => self.buf.extend_from_slice(&b),
                    None => self.ended = true,
                },
                Source::Ws(ws) => match ws.next().await {
                    Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                    Some(Ok(Message::Close(_))) | None => self.ended = true,
                    Some(Ok(Message::Text(t))) => bail!("unexpected text message on WS-FLV: {t}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
            }
        }
    }

    /// Reads tags until `done(&tags)` holds, the stream ends, or `timeout` passes; returns
    /// what arrived and why it stopped.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Tag]) -> bool,
    ) -> Reading {
        let deadline = Instant::now() + timeout;
        let mut tags = Vec::new();
        let end = loop {
            if done(&tags) {
                break End::Done;
            }
            match tokio::time::timeout_at(deadline, self.next_tag()).await {
                Err(_) => break End::TimedOut,
                Ok(Ok(Some(tag))) => tags.push(tag),
                Ok(Ok(None)) => break End::Closed,
                Ok(Err(e)) => break End::Error(format!("{e:#}")),
            }
        };
        Reading { tags, end }
    }

    /// Reads for up to `timeout` until `media` of media time has arrived on the video track
    /// (or the audio track when there is no video), counted from the first coded frame.
    pub async fn read_media(&mut self, media: Duration, timeout: Duration) -> Reading {
        let span = u32::try_from(media.as_millis()).unwrap_or(u32::MAX);
        self.read_until(timeout, |tags| {
            let kind = if tags.iter().any(|t| t.kind == MediaKind::Video) {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            let first = tags.iter().find(|t| t.is_media_frame(kind));
            let last = tags.iter().rev().find(|t| t.is_media_frame(kind));
            match (first, last) {
                (Some(first), Some(last)) => last.timestamp.saturating_sub(first.timestamp) >= span,
                _ => false,
            }
        })
        .await
    }
}

/// What a [`FlvReader::read_until`] got.
#[derive(Debug)]
pub struct Reading {
    /// The tags, in arrival order.
    pub tags: Vec<Tag>,
    /// Why reading stopped.
    pub end: End,
}

/// Why a reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The condition held.
    Done,
    /// The server ended the stream.
    Closed,
    /// The timeout passed first.
    TimedOut,
    /// The stream broke (bad bytes, reset).
    Error(String),
}
