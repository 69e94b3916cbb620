//! HLS over HTTP: `/live/{channel}/index.m3u8` (the live window) and its segments,
//! `/replays/{id}/index.m3u8` (EVENT while recording, VOD once finished) and its segments,
//! and the `/videos/{id}/…` routes of `videos.rs`, which share the file serving here.
//!
//! Names are checked strictly before anything touches the disk: a channel name, a numeric
//! replay id, and a file that is `index.m3u8` or a numbered segment; the path served is built
//! from those parsed values, never from the request's text. Files are streamed with
//! single-range support (`206`, `416`); playlists are `no-cache` while they can change;
//! live segments are immutable (their URLs are never reused), a replay's are kept an hour
//! because its video may turn private.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use onair_store::RecordingState;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::warn;

use super::Hls;
use super::catalogue::Access;
use super::files::{self, ServedFile};
use crate::channel::is_valid_name;
use crate::problem::{ApiError, ProblemKind};

pub(super) const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
pub(super) const SEGMENT_TYPE: &str = "video/mp2t";
/// A playlist that can still change: players poll it, caches must revalidate.
const CHANGING: &str = "no-cache";
/// A finished replay's playlist changes only if the replay is deleted.
pub(super) const FINISHED: &str = "public, max-age=3600";
/// Segment URLs are unique forever (a live's segments are named after its start time, a
/// replay's by its id), so a cache may keep them.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A private video's files: only the browser that asked may keep them, and must revalidate.
pub(super) const PRIVATE: &str = "private, no-cache";
/// Body chunks when streaming a file.
const CHUNK: usize = 64 * 1024;

/// The HLS routes over `hls`; the caller adds CORS.
pub fn router(hls: Arc<Hls>) -> Router {
    // `{file}` rather than another name: matchit wants one parameter name per position, and
    // `/live/{file}` (HTTP-FLV) shares the first one.
    Router::new()
        .route("/live/{file}/{name}", get(live))
        .route("/replays/{id}/{name}", get(replay))
        // `{file}` again: `/videos/{file}` is both `{id}.flv` and the web app's video page.
        .route("/videos/{file}", get(super::videos::flv_or_page))
        .route("/videos/{file}/{name}", get(super::videos::hls))
        .with_state(hls)
}

async fn live(
    State(hls): State<Arc<Hls>>,
    UrlPath((channel, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_valid_name(&channel) {
        return problem(ProblemKind::InvalidRequest, "invalid channel name");
    }
    let Some(dir) = hls.live_dir(&channel) else {
        return problem(ProblemKind::NotFound, "channel is not live");
    };
    let Some(file) = parse_live_name(&dir, &name) else {
        return problem(ProblemKind::NotFound, "no such file");
    };
    let (content_type, cache) = match file {
        ServedFile::Playlist => (PLAYLIST_TYPE, CHANGING),
        ServedFile::Segment(_) => (SEGMENT_TYPE, IMMUTABLE),
    };
    serve_file(
        &dir.join(file.file_name(true)),
        content_type,
        cache,
        &headers,
        "no such file",
    )
    .await
}

/// A live's names: `index.m3u8`, or `{live}-{n}.ts` where `{live}` is the current live's
/// directory name (see [`files::live_segment_prefix`]): a segment URL of an earlier live is a 404,
/// never another live's segment.
fn parse_live_name(dir: &Path, name: &str) -> Option<ServedFile> {
    if name == files::REPLAY_PLAYLIST {
        return Some(ServedFile::Playlist);
    }
    let prefix = files::live_segment_prefix(dir)?;
    let rest = name.strip_prefix(prefix.as_str())?.strip_prefix('-')?;
    match ServedFile::parse(rest)? {
        ServedFile::Segment(n) => Some(ServedFile::Segment(n)),
        ServedFile::Playlist => None,
    }
}

async fn replay(
    State(hls): State<Arc<Hls>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return problem(ProblemKind::NotFound, "no such replay");
    };
    let Some(file) = ServedFile::parse(&name) else {
        return problem(ProblemKind::NotFound, "no such file");
    };
    let rec = match hls.store().recording_by_id(id).await {
        Ok(Some(rec)) if rec.state != RecordingState::Failed => rec,
        Ok(_) => return problem(ProblemKind::NotFound, "no such replay"),
        Err(e) => {
            warn!(error = %e, "cannot read a recording");
            return problem(ProblemKind::Unavailable, "database unavailable");
        }
    };
    // A private video's files go only to its owner and admins; to anyone else it does not
    // exist, so a stranger cannot even learn its id is taken.
    let private = match hls.private_replay_allowed(id, &headers).await {
        Ok(Access::Open) => false,
        Ok(Access::Allowed) => true,
        Ok(Access::Refused) => return problem(ProblemKind::NotFound, "no such replay"),
        Err(e) => {
            warn!(error = %e, "cannot check who may watch a replay");
            return problem(ProblemKind::Unavailable, "database unavailable");
        }
    };
    let Some(dir) = files::resolve(hls.root(), &rec.path) else {
        warn!(
            recording = id,
            "recording path is not a plain relative path"
        );
        return problem(ProblemKind::NotFound, "no such replay");
    };
    let (content_type, cache) = match (file, rec.state) {
        (ServedFile::Playlist, RecordingState::Recording) => (PLAYLIST_TYPE, CHANGING),
        (ServedFile::Playlist, _) => (PLAYLIST_TYPE, FINISHED),
        // Not immutable, though the URL is never reused: the owner may make the video
        // private at any time, and a shared cache must stop serving it within the hour the
        // playlist and thumbnail are kept too, not a year later.
        (ServedFile::Segment(_), _) => (SEGMENT_TYPE, FINISHED),
    };
    // A shared cache must not hand a private replay to the next person asking.
    let cache = if private { PRIVATE } else { cache };
    serve_file(
        &dir.join(file.file_name(false)),
        content_type,
        cache,
        &headers,
        "no such file",
    )
    .await
}

/// A replay id: 1–19 ASCII digits, positive.
pub(super) fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&id| id > 0)
}

/// An error as the one problem+json shape, never cached: the same URL may work a moment
/// later (a live starting, a replay finishing).
pub(super) fn problem(kind: ProblemKind, detail: &str) -> Response {
    let mut response = ApiError::new(kind, detail).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges, other units or bad syntax: the
/// whole file, which RFC 9110 §14.2 allows a server to send instead.
fn wanted(range: Option<&HeaderValue>, len: u64) -> Wanted {
    let Some(spec) = range
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    match (number(first), number(last), first.is_empty()) {
        // `-n`: the last n bytes.
        (None, Some(n), true) => {
            if n == 0 || len == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(len.saturating_sub(n), len - 1)
            }
        }
        (Some(a), None, false) if last.is_empty() => {
            if a >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(a, len - 1)
            }
        }
        (Some(a), Some(b), _) if a <= b => {
            if a >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(a, b.min(len - 1))
            }
        }
        _ => Wanted::Whole,
    }
}

/// Streams the file at `path` with single-range support and validators (`ETag` from its
/// length and modification time, `Last-Modified`): `If-None-Match` answers 304, and a
/// `Range` under an `If-Range` that no longer matches gets the whole file, so a player
/// resuming a replaced file never splices two versions. `missing` is the 404's detail.
pub(super) async fn serve_file(
    path: &Path,
    content_type: &'static str,
    cache: &'static str,
    headers: &HeaderMap,
    missing: &str,
) -> Response {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return problem(ProblemKind::NotFound, missing);
        }
        Err(e) => {
            warn!(error = %e, "cannot open a media file");
            return problem(ProblemKind::Internal, "cannot read the file");
        }
    };
    let meta = match file.metadata().await {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "cannot stat a media file");
            return problem(ProblemKind::Internal, "cannot read the file");
        }
    };
    let len = meta.len();
    let validators = Validators::of(&meta);
    if validators.matches(headers.get(header::IF_NONE_MATCH)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        validators.insert(h);
        return response;
    }
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(h) = builder.headers_mut() {
        validators.insert(h);
    }
    let range = headers
        .get(header::RANGE)
        .filter(|_| validators.if_range_holds(headers.get(header::IF_RANGE)));
    let (builder, start, count) = match wanted(range, len) {
        Wanted::Whole => (builder.status(StatusCode::OK), 0, len),
        Wanted::Part(a, b) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}")),
            a,
            b - a + 1,
        ),
        Wanted::Unsatisfiable => {
            let mut response = problem(
                ProblemKind::RangeNotSatisfiable,
                &format!("the file has {len} bytes"),
            );
            if let Ok(range) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, range);
            }
            return response;
        }
    };
    if start > 0
        && let Err(e) = file.seek(SeekFrom::Start(start)).await
    {
        warn!(error = %e, "cannot seek a media file");
        return problem(ProblemKind::Internal, "cannot read the file");
    }
    builder
        .header(header::CONTENT_LENGTH, count)
        .body(Body::from_stream(file_body(file, count)))
        .unwrap_or_else(|_| problem(ProblemKind::Internal, "cannot build the response"))
}

/// `count` bytes of `file` from where it stands, [`CHUNK`] at a time: memory per response
/// is one chunk, whatever the file's size.
pub(super) fn file_body(
    file: tokio::fs::File,
    count: u64,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = BytesMut::zeroed(want);
        match file.read(&mut buf).await {
            // The file got shorter than its length said (deleted meanwhile): end the body;
            // the client sees a short response.
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf.freeze()), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

/// A file's `ETag` and `Last-Modified`. Files are replaced by rename, never rewritten in
/// place, so length and modification time change whenever the bytes do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    etag: String,
    last_modified: Option<String>,
}

impl Validators {
    pub(super) fn of(meta: &std::fs::Metadata) -> Validators {
        let modified = meta.modified().ok();
        let nanos = modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Validators {
            etag: format!("\"{:x}-{nanos:x}\"", meta.len()),
            last_modified: modified.map(|m| {
                chrono::DateTime::<chrono::Utc>::from(m)
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string()
            }),
        }
    }

    fn insert(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if let Some(v) = self
            .last_modified
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            h.insert(header::LAST_MODIFIED, v);
        }
    }

    /// `If-None-Match` names this version (or is `*`).
    fn matches(&self, if_none_match: Option<&HeaderValue>) -> bool {
        if_none_match
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == "*" || t == self.etag)
            })
    }

    /// A `Range` may be honoured: no `If-Range`, or one naming this version by its strong
    /// `ETag` or exact `Last-Modified` (RFC 9110 §13.1.5).
    fn if_range_holds(&self, if_range: Option<&HeaderValue>) -> bool {
        let Some(v) = if_range.and_then(|v| v.to_str().ok()) else {
            return if_range.is_none();
        };
        let v = v.trim();
        v == self.etag || self.last_modified.as_deref() == Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Option<HeaderValue> {
        Some(HeaderValue::from_str(v).unwrap())
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(range("bytes=0-9").as_ref(), 100), Wanted::Part(0, 9));
        assert_eq!(
            wanted(range("bytes=90-").as_ref(), 100),
            Wanted::Part(90, 99)
        );
        assert_eq!(
            wanted(range("bytes=-10").as_ref(), 100),
            Wanted::Part(90, 99)
        );
        assert_eq!(
            wanted(range("bytes=-500").as_ref(), 100),
            Wanted::Part(0, 99)
        );
        assert_eq!(
            wanted(range("bytes=50-500").as_ref(), 100),
            Wanted::Part(50, 99)
        );
        assert_eq!(
            wanted(range("bytes=100-").as_ref(), 100),
            Wanted::Unsatisfiable
        );
        assert_eq!(
            wanted(range("bytes=200-300").as_ref(), 100),
            Wanted::Unsatisfiable
        );
        assert_eq!(
            wanted(range("bytes=-0").as_ref(), 100),
            Wanted::Unsatisfiable
        );
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=x-1",
            "bytes=--1",
        ] {
            assert_eq!(
                wanted(range(ignored).as_ref(), 100),
                Wanted::Whole,
                "{ignored}"
            );
        }
    }

    #[test]
    fn ids_and_live_names_are_strict() {
        assert_eq!(parse_id("42"), Some(42));
        for bad in ["0", "-1", "1e3", "", "12345678901234567890", "..", "1%2F"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
        let dir = Path::new("/r/demo/20261121T212415123Z");
        assert_eq!(
            parse_live_name(dir, "index.m3u8"),
            Some(ServedFile::Playlist)
        );
        assert_eq!(
            parse_live_name(dir, "20261121T212415123Z-7.ts"),
            Some(ServedFile::Segment(7))
        );
        for bad in [
            "7.ts",
            "20261121T212415000Z-7.ts",
            "20261121T212415123Z-index.m3u8",
            "20261121T212415123Z-../7.ts",
            "live.m3u8",
        ] {
            assert_eq!(parse_live_name(dir, bad), None, "{bad:?}");
        }
    }
}
