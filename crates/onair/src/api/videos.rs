//! The VOD catalogue: videos (finished replays now, uploads later), their comments, view
//! counts and thumbnails, the admin-kept categories, and a stable link to a channel's newest
//! replay.
//!
//! Permissions: a private video is listed and served only to its channel's owner and admins;
//! to anyone else every path answers 404 as if it did not exist (the video, its thumbnail,
//! its comments, its views, and its replay's JSON, danmaku, playlist and segments). An
//! unlisted video is served to anyone with its id and never listed.
//!
//! Views are counted by `POST /videos/{id}/views`, which a player calls once when playback
//! starts, rather than on playlist or segment fetches: those are made again by every reload,
//! seek and retry, by caches and by the owner checking their upload, and the same call will
//! count plays over FLV and RTMP too. The store counts one view per viewer (the account, or a
//! keyed hash of the client address when signed out) per video per hour.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_store::{
    NewVideoComment, Role, Video, VideoCategory, VideoComment, VideoSearch, VideoSort, VideoUpdate,
    Visibility,
};
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::extract::{ClientIp, Json, Path, Query};
use super::model::Page;
use super::problem::ApiError;
use super::session::{Admin, Caller};
use super::validate::{Checks, PageQuery, is_plain_text, path_slug};

/// Longest description, in characters.
const DESCRIPTION_MAX: usize = 5000;
/// Longest comment, in characters.
const COMMENT_MAX: usize = 2000;
/// Longest category name, in characters.
const CATEGORY_NAME_MAX: usize = 64;

/// Who may see a video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoVisibility {
    /// Listed and served to everyone.
    Public,
    /// Served to anyone with its id; never listed.
    Unlisted,
    /// Listed and served only to the channel's owner and admins.
    Private,
}

impl From<Visibility> for VideoVisibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => VideoVisibility::Public,
            Visibility::Unlisted => VideoVisibility::Unlisted,
            Visibility::Private => VideoVisibility::Private,
        }
    }
}

impl From<VideoVisibility> for Visibility {
    fn from(v: VideoVisibility) -> Self {
        match v {
            VideoVisibility::Public => Visibility::Public,
            VideoVisibility::Unlisted => Visibility::Unlisted,
            VideoVisibility::Private => Visibility::Private,
        }
    }
}

/// A video of the catalogue.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VideoInfo {
    /// Its id.
    pub id: i64,
    /// The channel's slug.
    pub channel: String,
    /// The replay it is (`/replays/{id}/index.m3u8`); null for an upload.
    pub replay_id: Option<i64>,
    /// The title.
    pub title: String,
    /// Free text; empty when none.
    pub description: String,
    /// The category's slug, if any.
    pub category: Option<String>,
    /// Tags, in the order given.
    pub tags: Vec<String>,
    /// Who may see it.
    pub visibility: VideoVisibility,
    /// Duration, in milliseconds.
    pub duration_ms: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Video codec (`h264`, `hevc`, …), when known.
    pub video_codec: Option<String>,
    /// Audio codec (`aac`, …), when known.
    pub audio_codec: Option<String>,
    /// Picture width, when known.
    pub width: Option<i64>,
    /// Picture height, when known.
    pub height: Option<i64>,
    /// The JPEG thumbnail's URL; null when there is none (no ffmpeg on the server, or it
    /// could not decode a frame).
    pub thumbnail: Option<String>,
    /// Views (once per viewer per hour).
    pub view_count: u64,
    /// When it entered the catalogue.
    pub created_at: DateTime<Utc>,
    /// The HLS playlist to play it (`/videos/{id}/index.m3u8`, a replay's or an upload's).
    /// Its FLV file, where it has one, is `/videos/{id}.flv` (`?start=` seconds to seek).
    pub playlist: Option<String>,
}

impl From<Video> for VideoInfo {
    fn from(v: Video) -> Self {
        VideoInfo {
            thumbnail: v
                .thumbnail
                .as_ref()
                .map(|_| format!("/api/v1/videos/{}/thumbnail.jpg", v.id)),
            playlist: Some(format!("/videos/{}/index.m3u8", v.id)),
            id: v.id,
            channel: v.channel_slug,
            replay_id: v.recording_id,
            title: v.title,
            description: v.description,
            category: v.category,
            tags: v.tags,
            visibility: v.visibility.into(),
            duration_ms: v.duration_ms,
            size_bytes: v.size_bytes,
            video_codec: v.video_codec,
            audio_codec: v.audio_codec,
            width: v.width,
            height: v.height,
            view_count: v.view_count,
            created_at: v.created_at,
        }
    }
}

/// The order of a listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Newest,
    /// Most viewed first.
    Views,
}

/// What `GET /videos` keeps.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VideoQuery {
    /// Text in the title, description or a tag (ignoring case).
    pub q: Option<String>,
    /// A category's slug.
    pub category: Option<String>,
    /// A tag (whole, ignoring case).
    pub tag: Option<String>,
    /// A channel's slug.
    pub channel: Option<String>,
    /// `newest` (default) or `views`.
    #[param(inline)]
    pub sort: Option<SortOrder>,
    /// Items to skip (0 to 1000000; default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Items to return (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The editable details of a video; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoPatch {
    /// A new title (1 to 140 characters).
    pub title: Option<String>,
    /// A new description (at most 5000 characters; line breaks allowed).
    pub description: Option<String>,
    /// A category's slug, or `""` for none.
    pub category: Option<String>,
    /// New tags (at most 10), replacing the old ones.
    pub tags: Option<Vec<String>>,
    /// Who may see it.
    pub visibility: Option<VideoVisibility>,
}

/// A comment on a video.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Comment {
    /// Its id.
    pub id: i64,
    /// The video.
    pub video_id: i64,
    /// The writer's id.
    pub user_id: i64,
    /// The writer's name.
    pub username: String,
    /// The top-level comment it answers; null for a top-level comment.
    pub parent_id: Option<i64>,
    /// The text.
    pub text: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Replies (top-level comments only).
    pub reply_count: u64,
}

impl From<VideoComment> for Comment {
    fn from(c: VideoComment) -> Self {
        Comment {
            id: c.id,
            video_id: c.video_id,
            user_id: c.user_id,
            username: c.username,
            parent_id: c.parent_id,
            text: c.text,
            created_at: c.created_at,
            edited_at: c.edited_at,
            reply_count: c.reply_count,
        }
    }
}

/// Which comments `GET /videos/{id}/comments` lists.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommentQuery {
    /// The replies of this top-level comment; absent: the top-level comments.
    pub parent: Option<i64>,
    /// Items to skip (0 to 1000000; default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Items to return (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A new comment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// 1 to 2000 characters; line breaks allowed.
    pub text: String,
    /// A top-level comment of the same video to answer.
    pub parent_id: Option<i64>,
}

/// A comment's new text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentEdit {
    /// 1 to 2000 characters.
    pub text: String,
}

/// Whether a view counted.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct ViewCounted {
    /// False when this viewer was counted for this video within the hour.
    pub counted: bool,
    /// The video's views now.
    pub view_count: u64,
}

/// A category of the catalogue.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Category {
    /// Its id.
    pub id: i64,
    /// The name in filters (`?category=`).
    pub slug: String,
    /// The name shown.
    pub name: String,
}

impl From<VideoCategory> for Category {
    fn from(c: VideoCategory) -> Self {
        Category {
            id: c.id,
            slug: c.slug,
            name: c.name,
        }
    }
}

/// A new category, or changes to one (absent fields keep their value).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    /// 2 to 64 characters of a-z, 0-9, '_' and '-'.
    pub slug: Option<String>,
    /// 1 to 64 characters.
    pub name: Option<String>,
}

/// The caller of a request that may come from anyone.
async fn viewer(state: &ApiState, headers: &HeaderMap) -> Result<Option<(i64, bool)>, ApiError> {
    Ok(state
        .platform()
        .caller(headers)
        .await?
        .map(|s| (s.user.id, s.user.role == Role::Admin)))
}

fn check_id(field: &str, id: i64) -> Result<(), ApiError> {
    Checks::new()
        .check(id > 0, field, "must be a positive integer")
        .finish()
}

/// The video `id` if `viewer` may see it; 404 otherwise, for a private video as for none.
async fn visible_video(
    state: &ApiState,
    id: i64,
    viewer: Option<(i64, bool)>,
) -> Result<Video, ApiError> {
    check_id("id", id)?;
    match state.store().video_by_id(id).await? {
        Some(video) if video.visible_to(viewer) => Ok(video),
        _ => Err(ApiError::not_found(format!("no video {id}"))),
    }
}

/// The video `id` if the caller may change it (its channel's owner or an admin).
async fn owned_video(state: &ApiState, id: i64, caller: &Caller) -> Result<Video, ApiError> {
    let user = caller.user();
    let admin = user.role == Role::Admin;
    let video = visible_video(state, id, Some((user.id, admin))).await?;
    if video.owner_id != user.id && !admin {
        return Err(ApiError::forbidden(
            "only the channel's owner and admins may change a video",
        ));
    }
    Ok(video)
}

/// Refuses a private replay to whoever may not see it, as if it did not exist: for the
/// replay's JSON and danmaku.
pub(super) async fn check_replay_access(
    state: &ApiState,
    recording_id: i64,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if state
        .ctx
        .hls
        .may_watch_replay(recording_id, headers)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no replay {recording_id}")))
    }
}

fn multiline_text(checks: &mut Checks, field: &str, text: &str, min: usize, max: usize) {
    let chars = text.chars().count();
    // Line breaks are the one control character long text may hold.
    let plain = text
        .split('\n')
        .all(|line| is_plain_text(line.trim_end_matches('\r')));
    checks
        .check(
            (min..=max).contains(&chars) && (min == 0 || !text.trim().is_empty()),
            field,
            if min == 0 {
                format!("must be at most {max} characters")
            } else {
                format!("must be {min} to {max} characters, not only spaces")
            },
        )
        .check(
            plain,
            field,
            "must not contain control (other than line breaks) or bidirectional formatting characters",
        );
}

/// The catalogue, newest or most viewed first. Unlisted videos are never listed; private
/// ones only to their owner and admins.
#[utoipa::path(
    get,
    path = "/videos",
    tag = "videos",
    params(VideoQuery),
    responses(
        (status = 200, description = "A page of videos", body = Page<VideoInfo>),
        (status = 400, response = super::problem::BadRequest),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<VideoQuery>,
) -> Result<Json<Page<VideoInfo>>, ApiError> {
    let mut checks = Checks::new();
    if let Some(q) = &query.q {
        checks.query("q", q);
    }
    if let Some(tag) = &query.tag {
        checks.tag("tag", tag);
    }
    if let Some(category) = &query.category {
        checks.slug("category", category);
    }
    if let Some(channel) = &query.channel {
        checks.slug("channel", channel);
    }
    let page = PageQuery {
        offset: query.offset,
        limit: query.limit,
    }
    .page_with(checks)?;
    let channel_id = match &query.channel {
        Some(slug) => match state.store().channel_by_slug(slug).await? {
            Some(channel) => Some(channel.id),
            None => return Ok(Json(Page::new(Vec::new(), 0, page))),
        },
        None => None,
    };
    let viewer = viewer(&state, &headers).await?;
    let search = VideoSearch {
        text: query.q.filter(|q| !q.trim().is_empty()),
        category: query.category,
        tag: query.tag,
        channel_id,
        viewer: viewer.map(|(id, _)| id),
        admin: viewer.is_some_and(|(_, admin)| admin),
        sort: match query.sort.unwrap_or_default() {
            SortOrder::Newest => VideoSort::Newest,
            SortOrder::Views => VideoSort::Views,
        },
    };
    let (rows, total) = state.store().search_videos(&search, page).await?;
    Ok(Json(Page::new(
        rows.into_iter().map(VideoInfo::from).collect(),
        total,
        page,
    )))
}

/// One video (an unlisted one too; a private one only for its owner and admins).
#[utoipa::path(
    get,
    path = "/videos/{id}",
    tag = "videos",
    params(("id" = i64, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The video", body = VideoInfo),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<VideoInfo>, ApiError> {
    let viewer = viewer(&state, &headers).await?;
    Ok(Json(visible_video(&state, id, viewer).await?.into()))
}

/// Changes a video's title, description, category, tags or visibility: the channel's owner
/// or an admin.
#[utoipa::path(
    patch,
    path = "/videos/{id}",
    tag = "videos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The video's id")),
    request_body = VideoPatch,
    responses(
        (status = 200, description = "The video as it now is", body = VideoInfo),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, response = super::problem::Unprocessable),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<VideoPatch>,
) -> Result<Json<VideoInfo>, ApiError> {
    let mut checks = Checks::new();
    if let Some(title) = &body.title {
        checks.title("title", title);
    }
    if let Some(description) = &body.description {
        multiline_text(&mut checks, "description", description, 0, DESCRIPTION_MAX);
    }
    if let Some(category) = body.category.as_deref().filter(|c| !c.is_empty()) {
        checks.slug("category", category);
    }
    if let Some(tags) = &body.tags {
        checks.tags("tags", tags);
    }
    checks.finish()?;
    let video = owned_video(&state, id, &caller).await?;
    let category_id = match body.category.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(slug) => match state.store().video_category_by_slug(slug).await? {
            Some(category) => Some(Some(category.id)),
            None => return Err(ApiError::unprocessable(format!("no category {slug:?}"))),
        },
    };
    let updated = state
        .store()
        .update_video(
            video.id,
            VideoUpdate {
                title: body.title,
                description: body.description,
                category_id,
                tags: body.tags,
                visibility: body.visibility.map(Visibility::from),
            },
        )
        .await?;
    Ok(Json(updated.into()))
}

/// Deletes a video and its files (for a replay, the replay too): the channel's owner or an
/// admin.
#[utoipa::path(
    delete,
    path = "/videos/{id}",
    tag = "videos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The video's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let video = owned_video(&state, id, &caller).await?;
    // A replay's recording row owns the files; deleting it takes the video row with it.
    let removed = match video.recording_id {
        Some(recording_id) => state.store().delete_recording(recording_id).await?,
        None => None,
    };
    match removed {
        Some(rec) => state.ctx.hls.remove_files(&rec).await,
        None => {
            if let Some(gone) = state.store().delete_video(id).await? {
                state.ctx.hls.remove_video_files(&gone.path).await;
            }
        }
    }
    state
        .audit(
            caller.user().id,
            "video.delete",
            format!("video:{id}"),
            serde_json::json!({ "channel": video.channel_slug, "path": video.path }),
        )
        .await;
    info!(video = id, channel = video.channel_slug, "video deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The video's thumbnail, a JPEG decoded from a keyframe when the replay was finished; 404
/// "no thumbnail" when there is none (the server had no ffmpeg, or it failed).
#[utoipa::path(
    get,
    path = "/videos/{id}/thumbnail.jpg",
    tag = "videos",
    params(("id" = i64, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The JPEG", content_type = "image/jpeg"),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn thumbnail(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let viewer = viewer(&state, &headers).await?;
    let video = visible_video(&state, id, viewer).await?;
    let no_thumbnail = || ApiError::not_found(format!("video {id} has no thumbnail"));
    let relative = video.thumbnail.as_deref().ok_or_else(no_thumbnail)?;
    let path = state.ctx.hls.resolve(relative).ok_or_else(no_thumbnail)?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| no_thumbnail())?;
    let cache = if video.visibility == Visibility::Private {
        "private, no-cache"
    } else {
        "public, max-age=3600"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// The viewer key of a signed-out client: a hash of its address under a key drawn at start,
/// so the store never holds an address and keys cannot be turned back into one.
fn address_key(ip: ClientIp) -> String {
    static KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);
    format!("a:{:016x}", KEY.hash_one(ip.0))
}

/// Counts a view: a player calls this once when playback starts. One view per viewer (the
/// account, or the client address when signed out) per video per hour.
#[utoipa::path(
    post,
    path = "/videos/{id}/views",
    tag = "videos",
    params(("id" = i64, Path, description = "The video's id")),
    responses(
        (status = 200, description = "Whether it counted, and the views now", body = ViewCounted),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn view(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ip: ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<ViewCounted>, ApiError> {
    let viewer = viewer(&state, &headers).await?;
    let video = visible_video(&state, id, viewer).await?;
    let key = match viewer {
        Some((user, _)) => format!("u:{user}"),
        None => address_key(ip),
    };
    let counted = state
        .store()
        .record_video_view(video.id, &key, Utc::now())
        .await?;
    Ok(Json(ViewCounted {
        counted,
        view_count: video.view_count + u64::from(counted),
    }))
}

/// A video's top-level comments, or one comment's replies (`?parent=`), oldest first.
#[utoipa::path(
    get,
    path = "/videos/{id}/comments",
    tag = "videos",
    params(("id" = i64, Path, description = "The video's id"), CommentQuery),
    responses(
        (status = 200, description = "A page of comments", body = Page<Comment>),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn comments(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(query): Query<CommentQuery>,
) -> Result<Json<Page<Comment>>, ApiError> {
    let mut checks = Checks::new();
    checks.check(
        query.parent.is_none_or(|p| p > 0),
        "parent",
        "must be a positive integer",
    );
    let page = PageQuery {
        offset: query.offset,
        limit: query.limit,
    }
    .page_with(checks)?;
    let viewer = viewer(&state, &headers).await?;
    let video = visible_video(&state, id, viewer).await?;
    let (rows, total) = state
        .store()
        .list_video_comments(video.id, query.parent, page)
        .await?;
    Ok(Json(Page::new(
        rows.into_iter().map(Comment::from).collect(),
        total,
        page,
    )))
}

/// Comments on a video, or answers a top-level comment (`parent_id`; threads are one level
/// deep). The chat's rules apply: a platform or channel ban or a mute in the video's channel
/// refuses (403), and the chat's messages-per-window limit counts comments (429).
#[utoipa::path(
    post,
    path = "/videos/{id}/comments",
    tag = "videos",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The video's id")),
    request_body = NewComment,
    responses(
        (status = 201, description = "The comment", body = Comment),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, response = super::problem::Unprocessable),
        (status = 429, response = super::problem::TooManyRequests),
    )
)]
pub async fn create_comment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<NewComment>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let mut checks = Checks::new();
    multiline_text(&mut checks, "text", &body.text, 1, COMMENT_MAX);
    checks.check(
        body.parent_id.is_none_or(|p| p > 0),
        "parent_id",
        "must be a positive integer",
    );
    checks.finish()?;
    let user = caller.user();
    let video = visible_video(&state, id, Some((user.id, user.role == Role::Admin))).await?;
    let restriction = state
        .store()
        .chat_restriction(
            video.channel_id,
            user.id,
            Some(caller.0.claims.jti.as_str()),
            Utc::now(),
        )
        .await?;
    if restriction.banned || restriction.channel_banned {
        return Err(ApiError::forbidden(
            "you are banned from this channel's chat and comments",
        ));
    }
    if let Some(until) = restriction.muted_until {
        return Err(ApiError::forbidden(format!(
            "you are muted in this channel until {}",
            until.to_rfc3339()
        )));
    }
    if restriction.signed_out {
        return Err(ApiError::invalid_token());
    }
    // The chat's own per-account window, so chat lines and comments share one budget.
    if let Err(wait) = state.ctx.chat.hit_user_rate(user.id, Instant::now()) {
        return Err(ApiError::too_frequent(
            wait,
            "too many comments and chat messages; wait before sending more",
        ));
    }
    let comment = state
        .store()
        .create_video_comment(NewVideoComment {
            video_id: video.id,
            user_id: user.id,
            parent_id: body.parent_id,
            text: body.text,
        })
        .await
        .map_err(|e| match e {
            onair_store::StoreError::NotFound { .. } if body.parent_id.is_some() => {
                ApiError::unprocessable(
                    "parent_id must be a top-level comment of this video (threads are one level deep)",
                )
            }
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(comment.into())))
}

/// The comment `comment_id` of video `id`, if the video is visible to the caller.
async fn comment_of(
    state: &ApiState,
    caller: &Caller,
    id: i64,
    comment_id: i64,
) -> Result<(Video, VideoComment), ApiError> {
    check_id("comment_id", comment_id)?;
    let user = caller.user();
    let video = visible_video(state, id, Some((user.id, user.role == Role::Admin))).await?;
    match state.store().video_comment_by_id(comment_id).await? {
        Some(c) if c.video_id == video.id && c.deleted_at.is_none() => Ok((video, c)),
        _ => Err(ApiError::not_found(format!("no comment {comment_id}"))),
    }
}

/// Edits one's own comment.
#[utoipa::path(
    patch,
    path = "/videos/{id}/comments/{comment_id}",
    tag = "videos",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The video's id"),
        ("comment_id" = i64, Path, description = "The comment's id"),
    ),
    request_body = CommentEdit,
    responses(
        (status = 200, description = "The comment", body = Comment),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn edit_comment(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, comment_id)): Path<(i64, i64)>,
    Json(body): Json<CommentEdit>,
) -> Result<Json<Comment>, ApiError> {
    let mut checks = Checks::new();
    multiline_text(&mut checks, "text", &body.text, 1, COMMENT_MAX);
    checks.finish()?;
    let (_, comment) = comment_of(&state, &caller, id, comment_id).await?;
    if comment.user_id != caller.user().id {
        return Err(ApiError::forbidden("only its writer may edit a comment"));
    }
    state
        .store()
        .edit_video_comment(comment_id, &body.text)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::not_found(format!("no comment {comment_id}")))
}

/// Deletes a comment: its writer, the channel's owner or an admin.
#[utoipa::path(
    delete,
    path = "/videos/{id}/comments/{comment_id}",
    tag = "videos",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "The video's id"),
        ("comment_id" = i64, Path, description = "The comment's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 401, response = super::problem::Unauthorized),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete_comment(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, comment_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let (video, comment) = comment_of(&state, &caller, id, comment_id).await?;
    let user = caller.user();
    let may = comment.user_id == user.id || video.owner_id == user.id || user.role == Role::Admin;
    if !may {
        return Err(ApiError::forbidden(
            "only its writer, the channel's owner and admins may delete a comment",
        ));
    }
    state
        .store()
        .delete_video_comment(comment_id, user.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no comment {comment_id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The catalogue's categories, by name.
#[utoipa::path(
    get,
    path = "/video-categories",
    tag = "videos",
    responses((status = 200, description = "Every category", body = Vec<Category>))
)]
pub async fn categories(State(state): State<ApiState>) -> Result<Json<Vec<Category>>, ApiError> {
    let rows = state.store().video_categories().await?;
    Ok(Json(rows.into_iter().map(Category::from).collect()))
}

fn check_category(body: &CategoryBody, creating: bool) -> Result<(), ApiError> {
    let mut checks = Checks::new();
    match &body.slug {
        Some(slug) => {
            checks.slug("slug", slug);
        }
        None if creating => {
            checks.check(false, "slug", "is required");
        }
        None => {}
    }
    match &body.name {
        Some(name) => {
            let chars = name.chars().count();
            checks
                .check(
                    (1..=CATEGORY_NAME_MAX).contains(&chars) && !name.trim().is_empty(),
                    "name",
                    "must be 1 to 64 characters, not only spaces",
                )
                .check(
                    is_plain_text(name),
                    "name",
                    "must not contain control or bidirectional formatting characters",
                );
        }
        None if creating => {
            checks.check(false, "name", "is required");
        }
        None => {}
    }
    checks.finish()
}

/// Adds a category (admins).
#[utoipa::path(
    post,
    path = "/admin/video-categories",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CategoryBody,
    responses(
        (status = 201, description = "The category", body = Category),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 409, response = super::problem::Conflict),
    )
)]
pub async fn create_category(
    State(state): State<ApiState>,
    admin: Admin,
    Json(body): Json<CategoryBody>,
) -> Result<(StatusCode, Json<Category>), ApiError> {
    check_category(&body, true)?;
    let (Some(slug), Some(name)) = (&body.slug, &body.name) else {
        return Err(ApiError::invalid_field("slug", "is required"));
    };
    let category = state.store().create_video_category(slug, name).await?;
    state
        .audit(
            admin.user().id,
            "video_category.create",
            format!("video_category:{}", category.id),
            serde_json::json!({ "slug": slug, "name": name }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(category.into())))
}

/// Renames a category (admins).
#[utoipa::path(
    patch,
    path = "/admin/video-categories/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The category's id")),
    request_body = CategoryBody,
    responses(
        (status = 200, description = "The category", body = Category),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, response = super::problem::Conflict),
    )
)]
pub async fn update_category(
    State(state): State<ApiState>,
    admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<CategoryBody>,
) -> Result<Json<Category>, ApiError> {
    check_id("id", id)?;
    check_category(&body, false)?;
    let category = state
        .store()
        .update_video_category(id, body.slug.as_deref(), body.name.as_deref())
        .await?;
    state
        .audit(
            admin.user().id,
            "video_category.update",
            format!("video_category:{id}"),
            serde_json::json!({ "slug": category.slug, "name": category.name }),
        )
        .await;
    Ok(Json(category.into()))
}

/// Deletes a category; its videos are left with none (admins).
#[utoipa::path(
    delete,
    path = "/admin/video-categories/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The category's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete_category(
    State(state): State<ApiState>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    check_id("id", id)?;
    if !state.store().delete_video_category(id).await? {
        return Err(ApiError::not_found(format!("no category {id}")));
    }
    state
        .audit(
            admin.user().id,
            "video_category.delete",
            format!("video_category:{id}"),
            serde_json::json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A stable link to a channel's newest public replay (unlisted and private ones are
/// skipped, as in every listing): a redirect (302) to its
/// `/replays/{id}/index.m3u8`, so a link posted after a live keeps working. Players follow
/// it and resolve the segments against the replay's URL.
#[utoipa::path(
    get,
    path = "/channels/{slug}/replays/latest/index.m3u8",
    tag = "public",
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 302, description = "To the newest replay's playlist"),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn latest_replay(
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    path_slug(&slug)?;
    let Some(channel) = state.store().channel_by_slug(&slug).await? else {
        return Err(ApiError::not_found(format!("no channel {slug:?}")));
    };
    let Some(recording_id) = state
        .store()
        .latest_public_replay(channel.id)
        .await?
        .and_then(|v| v.recording_id)
    else {
        return Err(ApiError::not_found(format!(
            "channel {slug:?} has no replay"
        )));
    };
    let location = HeaderValue::from_str(&format!("/replays/{recording_id}/index.m3u8"))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // The target changes with the next live.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
    )
        .into_response())
}
