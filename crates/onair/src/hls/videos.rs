//! Videos by their video id, whatever made them (a replay or an upload):
//! `/videos/{id}/index.m3u8` and its `{n}.ts`, and `/videos/{id}.flv`, the directory's
//! `media.flv` (FFmpeg-style `keyframes` index in its `onMetaData`).
//!
//! The FLV file is served as a file, with single ranges and validators, because that is
//! how FFmpeg and flv.js seek in it: they read the index, then ask for the bytes from a
//! keyframe's position. `?start=SECONDS` is for players that seek by time instead: a new
//! FLV stream made of a head ([`onair_flv::seek::seek_head`]: header, `onMetaData`, the
//! sequence headers) and the file from the keyframe at or before that time to its end,
//! streamed a chunk at a time. Its `onMetaData` keeps a `keyframes` index valid in the new
//! stream (only the numbers change, never the length, so it costs nothing to keep), so a
//! player that reads it can still find keyframes; timestamps are the file's.
//!
//! A private video is answered 404 on every path, as a missing one is, unless the bearer
//! token is its owner's or an admin's; those answers are `private, no-cache`.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use onair_flv::seek::{self, IndexError, Keyframe, SequenceHeader, TagHeader};
use onair_flv::{FlvError, FlvHeader, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN, classify};
use onair_media::MediaKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, BufReader};
use tracing::warn;

use super::Hls;
use super::catalogue::Access;
use super::files::ServedFile;
use super::http::{
    FINISHED, PLAYLIST_TYPE, PRIVATE, SEGMENT_TYPE, file_body, parse_id, problem, serve_file,
};
use crate::problem::{ApiError, ProblemKind};
use crate::vod::media_flv::MEDIA_FLV;

const FLV_TYPE: &str = "video/x-flv";
/// A video without `media.flv` (a replay recorded before there was one).
const HLS_ONLY: &str =
    "this video has no FLV file: it plays over HLS only, at /videos/{id}/index.m3u8";
/// The largest `onMetaData` read. Its keyframe index costs 18 bytes per keyframe: a
/// ten-hour video with a keyframe a second is 650 KB.
const MAX_METADATA: u32 = 4 << 20;
/// The largest sequence header kept (an avcC with many parameter sets is a few KB).
const MAX_SEQUENCE_HEADER: u32 = 1 << 20;
/// Tags looked at after `onMetaData` before the first coded frame; a file that has more
/// sequence headers or script tags than this is not one we wrote.
const MAX_TAGS_BEFORE_MEDIA: usize = 32;
/// Enough of a tag body to tell a keyframe or sequence header from anything else (the
/// longest header is E-RTMP's multitrack one).
const CLASSIFY_PREFIX: u32 = 64;

/// `/videos/{file}`: `{id}.flv`, or else the web app's page (`/videos/12` is the video page).
pub(super) async fn flv_or_page(
    State(hls): State<Arc<Hls>>,
    UrlPath(file): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(id) = file.strip_suffix(".flv") else {
        return onair_web::page(method, uri, headers).await;
    };
    let Some(id) = parse_id(id) else {
        return problem(ProblemKind::NotFound, "no such video");
    };
    let (dir, private) = match find(&hls, id, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let cache = if private { PRIVATE } else { FINISHED };
    let path = dir.join(MEDIA_FLV);
    match start_param(uri.query()) {
        Ok(None) => serve_file(&path, FLV_TYPE, cache, &headers, HLS_ONLY).await,
        Ok(Some(seconds)) => serve_from(&path, seconds, cache).await,
        Err(BadStart) => {
            let mut response = ApiError::invalid_field(
                "start",
                "must be a time in seconds from the start of the video, such as 30 or 12.5",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

/// `/videos/{id}/index.m3u8` and `/videos/{id}/{n}.ts`.
pub(super) async fn hls(
    State(hls): State<Arc<Hls>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return problem(ProblemKind::NotFound, "no such video");
    };
    let Some(file) = ServedFile::parse(&name) else {
        return problem(ProblemKind::NotFound, "no such file");
    };
    let (dir, private) = match find(&hls, id, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let content_type = match file {
        ServedFile::Playlist => PLAYLIST_TYPE,
        ServedFile::Segment(_) => SEGMENT_TYPE,
    };
    // A video is finished media, but not immutable: it may turn private (or be deleted)
    // at any time, so shared caches keep it an hour, as a replay's files.
    let cache = if private { PRIVATE } else { FINISHED };
    serve_file(
        &dir.join(file.file_name(false)),
        content_type,
        cache,
        &headers,
        "no such file",
    )
    .await
}

/// Video `id`'s directory, and whether it is private (and the caller may have it), or the
/// answer to give instead.
async fn find(hls: &Hls, id: i64, headers: &HeaderMap) -> Result<(PathBuf, bool), Response> {
    let video = match hls.store().video_by_id(id).await {
        Ok(Some(video)) => video,
        Ok(None) => return Err(problem(ProblemKind::NotFound, "no such video")),
        Err(e) => {
            warn!(error = %e, "cannot read a video");
            return Err(problem(ProblemKind::Unavailable, "database unavailable"));
        }
    };
    // The same 404 as a missing video: a stranger cannot learn that the id is taken.
    let private = match hls.video_access(&video, headers).await {
        Ok(Access::Open) => false,
        Ok(Access::Allowed) => true,
        Ok(Access::Refused) => return Err(problem(ProblemKind::NotFound, "no such video")),
        Err(e) => {
            warn!(error = %e, "cannot check who may watch a video");
            return Err(problem(ProblemKind::Unavailable, "database unavailable"));
        }
    };
    let Some(dir) = hls.resolve(&video.path) else {
        warn!(video = id, "video path is not a plain relative path");
        return Err(problem(ProblemKind::NotFound, "no such video"));
    };
    Ok((dir, private))
}

/// `start` from the query, if there: seconds as digits with an optional fraction (`30`,
/// `12.5`). Other parameters are ignored (cache busters).
fn start_param(query: Option<&str>) -> Result<Option<f64>, BadStart> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| match pair.split_once('=') {
            Some(("start", value)) => Some(value),
            None if pair == "start" => Some(""),
            _ => None,
        })
    else {
        return Ok(None);
    };
    parse_seconds(value).map(Some).ok_or(BadStart)
}

/// `start` is there but not seconds.
#[derive(Debug, PartialEq, Eq)]
struct BadStart;

/// 1–9 digits, optionally `.` and 1–6 more. Rejects what `f64::from_str` would also take
/// (`inf`, `1e3`, `-0`, `+1`), so only one spelling of a time is accepted.
fn parse_seconds(text: &str) -> Option<f64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |t: &str, max: usize| {
        !t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(whole, 9) || fraction.is_some_and(|f| !digits(f, 6)) {
        return None;
    }
    text.parse().ok()
}

/// `?start=seconds`: the generated stream, or the problem that says why not.
async fn serve_from(path: &Path, seconds: f64, cache: &'static str) -> Response {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return problem(ProblemKind::NotFound, HLS_ONLY);
        }
        Err(e) => {
            warn!(error = %e, "cannot open a video's FLV file");
            return problem(ProblemKind::Internal, "cannot read the video's FLV file");
        }
    };
    let plan = match plan_seek(&mut file, seconds).await {
        Ok(plan) => plan,
        Err(HeadError::NoIndex(e)) => {
            return problem(
                ProblemKind::Unprocessable,
                &format!("cannot seek by time: {e}; seek with a Range request instead"),
            );
        }
        Err(HeadError::PastEnd { duration }) => {
            return problem(
                ProblemKind::RangeNotSatisfiable,
                &format!("start is past the end of the video, which is {duration:.3} s long"),
            );
        }
        Err(e) => {
            warn!(error = %e, "cannot seek in a video's FLV file");
            return problem(ProblemKind::Internal, "cannot read the video's FLV file");
        }
    };
    if let Err(e) = file.seek(SeekFrom::Start(plan.position)).await {
        warn!(error = %e, "cannot seek a video's FLV file");
        return problem(ProblemKind::Internal, "cannot read the video's FLV file");
    }
    let length = plan.head.len() as u64 + plan.rest;
    let body = futures_util::stream::once(std::future::ready(Ok(plan.head)))
        .chain(file_body(file, plan.rest));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, FLV_TYPE)
        .header(header::CACHE_CONTROL, cache)
        // A generated stream: ranges are for the file itself.
        .header(header::ACCEPT_RANGES, "none")
        .header(header::CONTENT_LENGTH, length)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| problem(ProblemKind::Internal, "cannot build the response"))
}

/// What a `?start=` response sends: `head`, then the `rest` bytes of the file from
/// `position`.
struct SeekPlan {
    head: bytes::Bytes,
    position: u64,
    rest: u64,
}

/// Why a file cannot be seeked by time.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error("reading the file: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Flv(#[from] FlvError),
    #[error("the first tag is not onMetaData")]
    NoMetadata,
    #[error("onMetaData of {0} bytes is larger than {MAX_METADATA}")]
    MetadataTooLarge(u32),
    #[error("a sequence header of {0} bytes is larger than {MAX_SEQUENCE_HEADER}")]
    SequenceHeaderTooLarge(u32),
    #[error("more than {MAX_TAGS_BEFORE_MEDIA} tags before the first coded frame")]
    TooManyTags,
    #[error("{0}")]
    NoIndex(IndexError),
    #[error("past the end")]
    PastEnd { duration: f64 },
    #[error("the keyframe index points at {0}, which is not a video keyframe")]
    IndexMismatch(u64),
    #[error("{0}")]
    Seek(#[from] seek::SeekError),
}

/// Reads the file's head (header, `onMetaData`, sequence headers: a few KB, bounded by the
/// constants above) and works out where a stream for `seconds` starts.
async fn plan_seek(file: &mut tokio::fs::File, seconds: f64) -> Result<SeekPlan, HeadError> {
    let file_len = file.metadata().await?.len();
    let head = read_head(&mut BufReader::new(&mut *file)).await?;
    let index = seek::keyframe_index(&head.metadata.properties).map_err(HeadError::NoIndex)?;
    let duration = head
        .metadata
        .duration
        .filter(|d| d.is_finite() && *d > 0.0)
        .or(index.last().map(|k| k.time))
        .unwrap_or(0.0);
    if seconds > duration {
        return Err(HeadError::PastEnd { duration });
    }
    let k = seek::keyframe_at(&index, seconds)
        .ok_or(HeadError::NoIndex(IndexError::Malformed("it is empty")))?;
    let Keyframe { position, .. } = index[k];
    let timestamp = keyframe_timestamp(file, position, file_len).await?;
    let bytes = seek::seek_head(
        seek::SeekFrom {
            header: head.header,
            properties: &head.metadata.properties,
            index: &index,
            sequence_headers: &head.sequence_headers,
            file_len,
        },
        k,
        timestamp,
    )?;
    Ok(SeekPlan {
        head: bytes,
        position,
        rest: file_len - position,
    })
}

struct FileHead {
    header: FlvHeader,
    metadata: onair_flv::StreamMetadata,
    sequence_headers: Vec<SequenceHeader>,
}

async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<FileHead, HeadError> {
    let mut start = vec![0u8; 13];
    r.read_exact(&mut start).await?;
    let (header, consumed) = loop {
        match FlvHeader::parse(&start)? {
            Some(parsed) => break parsed,
            // A `DataOffset` past 9 (bounded by the parser): read up to it.
            None => {
                let more = u32::from_be_bytes([start[5], start[6], start[7], start[8]]) as usize
                    + PREVIOUS_TAG_SIZE_LEN;
                if more <= start.len() {
                    return Err(FlvError::Truncated {
                        what: "FLV header",
                        needed: more + 1,
                        available: start.len(),
                    }
                    .into());
                }
                let have = start.len();
                start.resize(more, 0);
                r.read_exact(&mut start[have..]).await?;
            }
        }
    };
    debug_assert_eq!(consumed, start.len());
    let meta = read_tag_header(r).await?;
    if meta.kind() != Some(MediaKind::Script) {
        return Err(HeadError::NoMetadata);
    }
    if meta.data_size > MAX_METADATA {
        return Err(HeadError::MetadataTooLarge(meta.data_size));
    }
    let body = read_body(r, meta.data_size).await?;
    if !onair_flv::is_on_metadata(&body) {
        return Err(HeadError::NoMetadata);
    }
    let metadata = onair_flv::parse_metadata(&body)?;
    skip(r, PREVIOUS_TAG_SIZE_LEN as u64).await?;
    let mut sequence_headers = Vec::new();
    for _ in 0..MAX_TAGS_BEFORE_MEDIA {
        let tag = match read_tag_header(r).await {
            Ok(tag) => tag,
            // A file of nothing but headers: nothing more to find.
            Err(HeadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(FileHead {
                    header,
                    metadata,
                    sequence_headers,
                });
            }
            Err(e) => return Err(e),
        };
        let Some(kind @ (MediaKind::Audio | MediaKind::Video)) = tag.kind() else {
            skip(r, u64::from(tag.data_size) + PREVIOUS_TAG_SIZE_LEN as u64).await?;
            continue;
        };
        let prefix = read_body(r, tag.data_size.min(CLASSIFY_PREFIX)).await?;
        if !classify(kind, &prefix).sequence_header {
            return Ok(FileHead {
                header,
                metadata,
                sequence_headers,
            });
        }
        if tag.data_size > MAX_SEQUENCE_HEADER {
            return Err(HeadError::SequenceHeaderTooLarge(tag.data_size));
        }
        let mut body = prefix;
        let rest = read_body(r, tag.data_size - body.len() as u32).await?;
        body.extend_from_slice(&rest);
        sequence_headers.push(SequenceHeader {
            kind,
            body: body.into(),
        });
        skip(r, PREVIOUS_TAG_SIZE_LEN as u64).await?;
    }
    Err(HeadError::TooManyTags)
}

/// The timestamp of the tag at `position`, which the index says is a video keyframe; an
/// index that points anywhere else is refused rather than trusted.
async fn keyframe_timestamp(
    file: &mut tokio::fs::File,
    position: u64,
    file_len: u64,
) -> Result<u32, HeadError> {
    if position + TAG_HEADER_LEN as u64 > file_len {
        return Err(HeadError::IndexMismatch(position));
    }
    file.seek(SeekFrom::Start(position)).await?;
    let tag = read_tag_header(file).await?;
    if tag.kind() != Some(MediaKind::Video) {
        return Err(HeadError::IndexMismatch(position));
    }
    let prefix = read_body(file, tag.data_size.min(CLASSIFY_PREFIX)).await?;
    if !classify(MediaKind::Video, &prefix).keyframe {
        return Err(HeadError::IndexMismatch(position));
    }
    Ok(tag.timestamp)
}

async fn read_tag_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<TagHeader, HeadError> {
    let mut bytes = [0u8; TAG_HEADER_LEN];
    r.read_exact(&mut bytes).await?;
    Ok(TagHeader::parse(&bytes))
}

async fn read_body<R: AsyncRead + Unpin>(r: &mut R, len: u32) -> Result<Vec<u8>, HeadError> {
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

async fn skip<R: AsyncRead + Unpin>(r: &mut R, n: u64) -> Result<(), HeadError> {
    let copied = tokio::io::copy(&mut r.take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_seconds_spelled_one_way() {
        assert_eq!(parse_seconds("30"), Some(30.0));
        assert_eq!(parse_seconds("12.5"), Some(12.5));
        assert_eq!(parse_seconds("0"), Some(0.0));
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "inf",
            "NaN",
            "1.",
            ".5",
            "1.2.3",
            "1234567890",
            "0x10",
            "1.1234567",
            " 1",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        assert!(matches!(start_param(None), Ok(None)));
        assert!(matches!(start_param(Some("t=1")), Ok(None)));
        assert!(matches!(start_param(Some("t=1&start=2")), Ok(Some(2.0))));
        assert_eq!(start_param(Some("start=abc")), Err(BadStart));
        assert_eq!(start_param(Some("start")), Err(BadStart));
    }
}
