//! Uploading a video: the tus 1.0.0 resumable upload protocol (core, creation, expiration,
//! termination; <https://tus.io/protocols/resumable-upload>) under `/api/v1/uploads`, plus
//! `GET /api/v1/uploads/{id}`, the upload's state as JSON for our clients.
//!
//! tus rather than Range-based PUTs because real clients speak it (tus-js-client, Uppy) and
//! it says exactly how a client learns where to resume (`HEAD` → `Upload-Offset`). The work
//! (files, limits, the import) is `vod::uploads`; this is its HTTP.
//!
//! Who: a streamer into a channel of their own, or an admin into any. Another account's
//! upload is 404, as if it did not exist. Every answer, errors too, carries
//! `Tus-Resumable: 1.0.0`; every request but `OPTIONS` and the JSON `GET` must send it (412
//! otherwise, with `Tus-Version`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use onair_store::{Role, Upload, UploadState};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::extract::Path;
use super::problem::{ApiError, Problem, ProblemKind};
use super::session::Streamer;
use super::validate::Checks;
use super::videos::VideoVisibility;
use crate::vod::uploads::{UploadError, UploadMeta};

/// The one protocol version served.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions served, as `Tus-Extension` lists them.
pub const TUS_EXTENSIONS: &str = "creation,expiration,termination";
/// The media type of a PATCH body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");

/// Longest `Upload-Metadata` header: a title, a file name and a slug, base64, fit in far less.
const METADATA_MAX: usize = 4096;
/// Longest file name kept, in characters.
const FILENAME_MAX: usize = 255;

/// An upload as our clients see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UploadStatus {
    /// Its id, as in `/api/v1/uploads/{id}`.
    pub id: i64,
    /// `uploading` (bytes still arriving), `processing` (imported now), `ready` (see
    /// `video_id`) or `failed` (see `problem`).
    #[schema(value_type = String, example = "uploading")]
    pub state: UploadState,
    /// Bytes received and kept: where the next PATCH starts.
    pub offset: u64,
    /// The file's size.
    pub length: u64,
    /// The channel the video goes to.
    pub channel: String,
    /// The video's title.
    pub title: String,
    /// The file name the client gave.
    pub filename: String,
    /// The video's visibility.
    pub visibility: VideoVisibility,
    /// When `ready`: the video, as in `/api/v1/videos/{id}`.
    pub video_id: Option<i64>,
    /// When `failed`: why, as a problem (`unprocessable`, naming e.g. the codec found).
    pub problem: Option<Problem>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is removed unless it changes (`Upload-Expires`).
    pub expires_at: DateTime<Utc>,
}

impl From<Upload> for UploadStatus {
    fn from(u: Upload) -> Self {
        let problem = match (u.state, &u.error) {
            (UploadState::Failed, Some(error)) => Some(ApiError::unprocessable(error).problem()),
            (UploadState::Failed, None) => {
                Some(ApiError::unprocessable("the import failed").problem())
            }
            _ => None,
        };
        UploadStatus {
            id: u.id,
            state: u.state,
            offset: u.received_bytes,
            length: u.length_bytes,
            channel: u.channel_slug,
            title: u.title,
            filename: u.filename,
            visibility: u.visibility.into(),
            video_id: u.video_id,
            problem,
            created_at: u.created_at,
            expires_at: u.expires_at,
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::NotFound(id) => ApiError::not_found(format!("no upload {id}")),
            e @ (UploadError::TooLarge { .. } | UploadError::PastLength { .. }) => {
                ApiError::new(ProblemKind::PayloadTooLarge, e.to_string())
            }
            e @ (UploadError::TooManyUnfinished { .. }
            | UploadError::OffsetMismatch { .. }
            | UploadError::Busy(_)
            | UploadError::Complete { .. }) => ApiError::conflict(e.to_string()),
            UploadError::BodyBroken { kept, cause } => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*cause);
                while let Some(e) = source {
                    if e.is::<crate::net::BodyTimedOut>() {
                        return ApiError::new(
                            ProblemKind::RequestTimeout,
                            format!(
                                "the request body did not arrive in time; {kept} bytes are kept: resume from Upload-Offset {kept}"
                            ),
                        );
                    }
                    source = e.source();
                }
                ApiError::invalid_field(
                    "body",
                    format!(
                        "broke off ({cause}); {kept} bytes are kept: resume from Upload-Offset {kept}"
                    ),
                )
            }
            UploadError::Store(e) => e.into(),
            UploadError::Io(e) => ApiError::internal(format!("upload file: {e}")),
        }
    }
}

/// A tus answer: whatever it is, it says `Tus-Resumable`, and a 412 lists the versions.
pub struct Tus(Result<Response, ApiError>);

impl IntoResponse for Tus {
    fn into_response(self) -> Response {
        let mut response = match self.0 {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
        if response.status() == StatusCode::PRECONDITION_FAILED {
            response
                .headers_mut()
                .insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
        }
        response
    }
}

/// 412 unless the request speaks our tus version.
fn check_resumable(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(&TUS_RESUMABLE) {
        Some(v) if v.as_bytes() == TUS_VERSION.as_bytes() => Ok(()),
        Some(v) => Err(ApiError::new(
            ProblemKind::PreconditionFailed,
            format!(
                "Tus-Resumable {:?} is not served; this server speaks tus {TUS_VERSION}",
                String::from_utf8_lossy(v.as_bytes())
            ),
        )),
        None => Err(ApiError::new(
            ProblemKind::PreconditionFailed,
            format!("send Tus-Resumable: {TUS_VERSION} (tus resumable uploads)"),
        )),
    }
}

/// A header holding a non-negative integer, as tus writes them: digits only.
fn number_header(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_field(
            canonical(name),
            "must be a non-negative integer",
        ));
    }
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid_field(canonical(name), "is larger than any upload can be"))
}

/// A tus header's name as the spec spells it, for error messages.
fn canonical(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The pairs of `Upload-Metadata` (`key base64,key base64,key`), values decoded. Unknown
/// keys are kept for the caller to ignore: clients add their own (`filetype`, `name`).
fn parse_metadata(header: &str) -> Result<Vec<(String, String)>, String> {
    if header.len() > METADATA_MAX {
        return Err(format!("is longer than {METADATA_MAX} bytes"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in header.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (key, value) = match item.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (item, ""),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("has a key that is not printable ASCII: {key:?}"));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("names {key:?} twice"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| format!("{key}: the value is not base64"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("{key}: the value is not UTF-8"))?;
        pairs.push((key.to_owned(), text));
    }
    Ok(pairs)
}

fn metadata_field(key: &str) -> String {
    format!("Upload-Metadata.{key}")
}

/// The channel, title, file name and visibility a creation asks for.
fn upload_meta(headers: &HeaderMap) -> Result<(String, UploadMeta), ApiError> {
    let raw = headers
        .get(&UPLOAD_METADATA)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .unwrap_or("");
    let pairs = parse_metadata(raw).map_err(|m| ApiError::invalid_field("Upload-Metadata", m))?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
    };
    let channel = get("channel").unwrap_or_default();
    let title = get("title").unwrap_or_default();
    let filename = get("filename").unwrap_or_default();
    let visibility = get("visibility");
    let parsed = visibility
        .as_deref()
        .map(onair_store::Visibility::parse)
        .unwrap_or(Some(onair_store::Visibility::Public));
    Checks::new()
        .slug(&metadata_field("channel"), &channel)
        .title(&metadata_field("title"), &title)
        .check(
            filename.chars().count() <= FILENAME_MAX
                && super::validate::is_plain_text(&filename),
            &metadata_field("filename"),
            "must be at most 255 characters, with no control or bidirectional formatting characters",
        )
        .check(
            parsed.is_some(),
            &metadata_field("visibility"),
            "must be public, unlisted or private",
        )
        .finish()?;
    Ok((
        channel,
        UploadMeta {
            title,
            filename,
            visibility: parsed.unwrap_or_default(),
        },
    ))
}

fn http_date(at: DateTime<Utc>) -> HeaderValue {
    // RFC 9110 §5.6.7 IMF-fixdate, which `Upload-Expires` uses.
    HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

fn viewer(streamer: &Streamer) -> (i64, bool) {
    let user = streamer.user();
    (user.id, user.role == Role::Admin)
}

fn check_id(id: i64) -> Result<(), ApiError> {
    Checks::new()
        .check(id > 0, "id", "must be a positive integer")
        .finish()
}

/// What this server's tus offers (no token needed).
#[utoipa::path(
    options,
    path = "/uploads",
    tag = "uploads",
    responses(
        (status = 204, description = "The tus versions, extensions and largest upload",
            headers(
                ("Tus-Resumable" = String, description = "1.0.0"),
                ("Tus-Version" = String, description = "1.0.0"),
                ("Tus-Extension" = String, description = "creation,expiration,termination"),
                ("Tus-Max-Size" = u64, description = "vod.max_upload_bytes"),
            )),
    )
)]
pub async fn options(State(state): State<ApiState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    discovery_headers(response.headers_mut(), state.ctx.uploads.max_upload_bytes());
    response
}

/// What `OPTIONS` tells: the version, the extensions and the largest upload.
pub(super) fn discovery_headers(headers: &mut HeaderMap, max_upload_bytes: u64) {
    headers.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    headers.insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
    headers.insert(TUS_EXTENSION, HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert(TUS_MAX_SIZE, HeaderValue::from(max_upload_bytes));
}

/// Starts an upload (tus creation). `Upload-Metadata` holds base64 `channel` (a slug of
/// yours; any for an admin), `title`, and optionally `filename` and `visibility`
/// (`public`, `unlisted`, `private`; default public). The answer's `Location` is where to
/// PATCH the bytes.
#[utoipa::path(
    post,
    path = "/uploads",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = u64, Header, description = "The file's size in bytes, at most Tus-Max-Size"),
        ("Upload-Metadata" = String, Header, description = "`channel <base64>,title <base64>[,filename <base64>][,visibility <base64>]`"),
    ),
    responses(
        (status = 201, description = "Created; PATCH the bytes to `Location`", body = UploadStatus,
            headers(
                ("Location" = String, description = "/api/v1/uploads/{id}"),
                ("Upload-Expires" = String, description = "When it is removed unless bytes arrive"),
            )),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, description = "No such channel of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Too many unfinished uploads (vod.max_unfinished_uploads)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`; `Tus-Version` lists what is served", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`Upload-Length` is past vod.max_upload_bytes", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    streamer: Result<Streamer, ApiError>,
    headers: HeaderMap,
) -> Tus {
    Tus(create_inner(&state, streamer, &headers).await)
}

async fn create_inner(
    state: &ApiState,
    streamer: Result<Streamer, ApiError>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let streamer = streamer?;
    check_resumable(headers)?;
    if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
        return Err(ApiError::invalid_field(
            "Upload-Defer-Length",
            "is not supported: send Upload-Length",
        ));
    }
    let length = number_header(headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| ApiError::invalid_field("Upload-Length", "is required"))?;
    let (slug, meta) = upload_meta(headers)?;
    Checks::new()
        .check(length > 0, "Upload-Length", "must be at least 1")
        .finish()?;
    let (user, admin) = viewer(&streamer);
    let channel = match state.store().channel_by_slug(&slug).await? {
        Some(c) if admin || c.owner_id == user => c,
        _ => return Err(ApiError::not_found(format!("you have no channel {slug:?}"))),
    };
    let upload = state
        .ctx
        .uploads
        .create(user, channel.id, meta, length)
        .await?;
    let expires = http_date(upload.expires_at);
    let mut response = super::created(
        format!("/api/v1/uploads/{}", upload.id),
        UploadStatus::from(upload),
    );
    response.headers_mut().insert(UPLOAD_EXPIRES, expires);
    Ok(response)
}

/// Where an upload is (tus HEAD): `Upload-Offset` is where the next PATCH starts.
#[utoipa::path(
    head,
    path = "/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
    ),
    responses(
        (status = 200, description = "The offset and length; no body",
            headers(
                ("Upload-Offset" = u64, description = "Bytes received and kept"),
                ("Upload-Length" = u64, description = "The file's size"),
                ("Upload-Expires" = String, description = "When it is removed unless bytes arrive"),
                ("Cache-Control" = String, description = "no-store"),
            )),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn head(
    State(state): State<ApiState>,
    streamer: Result<Streamer, ApiError>,
    id: Result<Path<i64>, ApiError>,
    headers: HeaderMap,
) -> Tus {
    Tus(async {
        let streamer = streamer?;
        let Path(id) = id?;
        check_id(id)?;
        check_resumable(&headers)?;
        let upload = state.ctx.uploads.get(id, viewer(&streamer)).await?;
        let mut response = StatusCode::OK.into_response();
        let h = response.headers_mut();
        h.insert(UPLOAD_OFFSET, HeaderValue::from(upload.received_bytes));
        h.insert(UPLOAD_LENGTH, HeaderValue::from(upload.length_bytes));
        h.insert(UPLOAD_EXPIRES, http_date(upload.expires_at));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await)
}

/// Appends bytes (tus PATCH) at `Upload-Offset`, which must be the upload's offset. The body
/// is written to disk as it arrives; if the connection breaks, what arrived is kept (ask
/// HEAD, then PATCH from there). The last byte starts the import: follow it with `GET`.
#[utoipa::path(
    patch,
    path = "/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes start: the upload's offset"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "The next bytes of the file"),
    responses(
        (status = 204, description = "Appended",
            headers(
                ("Upload-Offset" = u64, description = "The new offset"),
                ("Upload-Expires" = String, description = "When it is removed unless more bytes arrive"),
            )),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, description = "`Upload-Offset` is not the upload's offset, another PATCH is running, or the upload is complete", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is longer than what the upload has left; nothing of it is kept", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/offset+octet-stream`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn append(
    State(state): State<ApiState>,
    streamer: Result<Streamer, ApiError>,
    id: Result<Path<i64>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Tus {
    Tus(append_inner(&state, streamer, id, &headers, body).await)
}

async fn append_inner(
    state: &ApiState,
    streamer: Result<Streamer, ApiError>,
    id: Result<Path<i64>, ApiError>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let streamer = streamer?;
    let Path(id) = id?;
    check_id(id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
    {
        return Err(ApiError::new(
            ProblemKind::UnsupportedMediaType,
            format!("send the bytes as Content-Type: {OFFSET_OCTET_STREAM}"),
        ));
    }
    check_resumable(headers)?;
    let offset = number_header(headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::invalid_field("Upload-Offset", "is required"))?;
    let declared = number_header(headers, &header::CONTENT_LENGTH)?;
    let uploads = &state.ctx.uploads;
    let upload = uploads.get(id, viewer(&streamer)).await?;
    let upload = uploads
        .append(&upload, offset, declared, body.into_data_stream())
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(upload.received_bytes));
    h.insert(UPLOAD_EXPIRES, http_date(upload.expires_at));
    Ok(response)
}

/// Ends an upload and removes what it received (tus termination). A video it became stays.
#[utoipa::path(
    delete,
    path = "/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    streamer: Result<Streamer, ApiError>,
    id: Result<Path<i64>, ApiError>,
    headers: HeaderMap,
) -> Tus {
    Tus(async {
        let streamer = streamer?;
        let Path(id) = id?;
        check_id(id)?;
        check_resumable(&headers)?;
        let upload = state.ctx.uploads.get(id, viewer(&streamer)).await?;
        state.ctx.uploads.terminate(&upload).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await)
}

/// An upload's state as JSON: how much has arrived, and once the last byte is in, whether
/// it became a video (`video_id`) or why not (`problem`).
#[utoipa::path(
    get,
    path = "/uploads/{id}",
    tag = "uploads",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The upload's id")),
    responses(
        (status = 200, description = "The upload", body = UploadStatus),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn status(
    State(state): State<ApiState>,
    streamer: Result<Streamer, ApiError>,
    id: Result<Path<i64>, ApiError>,
) -> Tus {
    Tus(async {
        let streamer = streamer?;
        let Path(id) = id?;
        check_id(id)?;
        let upload = state.ctx.uploads.get(id, viewer(&streamer)).await?;
        Ok(super::no_store(axum::Json(UploadStatus::from(upload))))
    }
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn metadata_pairs_are_decoded_and_bad_ones_named() {
        let header = format!(
            "channel {},title {}, filename {},is_confidential",
            b64("alice"),
            b64("My trip, day 1"),
            b64("trip.mp4")
        );
        assert_eq!(
            parse_metadata(&header).unwrap(),
            [
                ("channel".to_owned(), "alice".to_owned()),
                ("title".to_owned(), "My trip, day 1".to_owned()),
                ("filename".to_owned(), "trip.mp4".to_owned()),
                ("is_confidential".to_owned(), String::new()),
            ]
        );
        assert!(parse_metadata("title !!!").unwrap_err().contains("base64"));
        let twice = format!("title {},title {}", b64("a"), b64("b"));
        assert!(parse_metadata(&twice).unwrap_err().contains("twice"));
        assert!(parse_metadata(&"x".repeat(METADATA_MAX + 1)).is_err());
        let not_utf8 = format!(
            "title {}",
            base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])
        );
        assert!(parse_metadata(&not_utf8).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn numbers_are_digits_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(number_header(&headers, &UPLOAD_OFFSET).unwrap(), None);
        headers.insert(UPLOAD_OFFSET, HeaderValue::from_static("1024"));
        assert_eq!(number_header(&headers, &UPLOAD_OFFSET).unwrap(), Some(1024));
        for bad in ["-1", "+5", "1e3", "0x10", "", "99999999999999999999999"] {
            headers.insert(UPLOAD_OFFSET, HeaderValue::from_static(bad));
            let e = number_header(&headers, &UPLOAD_OFFSET).unwrap_err();
            assert_eq!(e.kind(), ProblemKind::InvalidRequest, "{bad}");
            assert_eq!(e.problem().errors[0].field, "Upload-Offset");
        }
    }

    #[test]
    fn expiry_dates_are_imf_fixdates() {
        let at = DateTime::from_timestamp(1_795_296_255, 0).unwrap();
        assert_eq!(http_date(at), "Sat, 21 Nov 2026 21:24:15 GMT");
    }
}
