//! `/api/v1/me/*`: a streamer's own channels, their keys, live status and past sessions.
//!
//! A channel that is not the caller's answers 404, exactly as one that does not exist: a
//! streamer cannot learn which slugs others hold, or touch their channels. Admins too see only
//! their own channels here; everyone's are under `/admin`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tracing::info;

use super::extract::{Json, Path, Query};
use super::model::{
    Channel, ChannelUpdate, IssuedStreamKey, LiveNow, LiveSession, LiveStatus, NewChannel,
    NewStreamKey, Page, StreamKey,
};
use super::problem::ApiError;
use super::session::Streamer;
use super::validate::{Checks, KEY_TTL_MAX, KEY_TTL_MIN, PageQuery, path_slug};
use super::{ApiState, created, no_store};

/// The caller's channels, oldest first.
#[utoipa::path(
    get,
    path = "/me/channels",
    tag = "streamer",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's channels", body = Page<Channel>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn list_channels(
    State(state): State<ApiState>,
    streamer: Streamer,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Channel>>, ApiError> {
    let page = query.page()?;
    let (channels, total) = state
        .store()
        .list_channels(Some(streamer.user().id), page)
        .await?;
    let items = channels
        .into_iter()
        .map(|c| {
            let live = state.is_live(&c.slug);
            Channel::new(c, live)
        })
        .collect();
    Ok(Json(Page::new(items, total, page)))
}

/// Creates a channel owned by the caller.
#[utoipa::path(
    post,
    path = "/me/channels",
    tag = "streamer",
    security(("bearer" = [])),
    request_body = NewChannel,
    responses(
        (status = 201, description = "Created", body = Channel, headers(("Location" = String, description = "The channel's URL"))),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 409, response = super::problem::Conflict),
    )
)]
pub async fn create_channel(
    State(state): State<ApiState>,
    streamer: Streamer,
    Json(body): Json<NewChannel>,
) -> Result<Response, ApiError> {
    Checks::new()
        .slug("slug", &body.slug)
        .title("title", &body.title)
        .category("category", &body.category)
        .tags("tags", &body.tags)
        .finish()?;
    let channel = state
        .store()
        .create_channel(onair_store::NewChannel {
            slug: body.slug,
            title: body.title.trim().to_owned(),
            owner_id: streamer.user().id,
            category: body.category.trim().to_owned(),
            tags: trim_tags(body.tags),
        })
        .await?;
    state
        .audit(
            streamer.user().id,
            "channel.create",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "title": channel.title }),
        )
        .await;
    info!(
        channel = channel.slug,
        user = streamer.user().username,
        "channel created"
    );
    let location = format!("/api/v1/me/channels/{}", channel.slug);
    let live = state.is_live(&channel.slug);
    Ok(created(location, Channel::new(channel, live)))
}

/// One of the caller's channels.
#[utoipa::path(
    get,
    path = "/me/channels/{slug}",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 200, description = "The channel", body = Channel),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn channel(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let live = state.is_live(&channel.slug);
    Ok(Json(Channel::new(channel, live)))
}

/// Changes a channel's title, category or tags.
#[utoipa::path(
    patch,
    path = "/me/channels/{slug}",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = ChannelUpdate,
    responses(
        (status = 200, description = "The channel as it now is", body = Channel),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, response = super::problem::Unprocessable),
    )
)]
pub async fn update_channel(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
    Json(body): Json<ChannelUpdate>,
) -> Result<Json<Channel>, ApiError> {
    let mut checks = Checks::new();
    if let Some(title) = &body.title {
        checks.title("title", title);
    }
    if let Some(category) = &body.category {
        checks.category("category", category);
    }
    if let Some(tags) = &body.tags {
        checks.tags("tags", tags);
    }
    checks.finish()?;
    if body.title.is_none() && body.category.is_none() && body.tags.is_none() {
        return Err(ApiError::unprocessable(
            "nothing to change: give title, category or tags",
        ));
    }
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let update = onair_store::ChannelUpdate {
        title: body.title.map(|t| t.trim().to_owned()),
        category: body.category.map(|c| c.trim().to_owned()),
        tags: body.tags.map(trim_tags),
    };
    let detail = serde_json::json!({
        "title": update.title, "category": update.category, "tags": update.tags,
    });
    let channel = state.store().update_channel(channel.id, update).await?;
    state
        .audit(
            streamer.user().id,
            "channel.update",
            format!("channel:{}", channel.slug),
            detail,
        )
        .await;
    let live = state.is_live(&channel.slug);
    Ok(Json(Channel::new(channel, live)))
}

/// Deletes a channel with its keys; a live stream on it ends now.
#[utoipa::path(
    delete,
    path = "/me/channels/{slug}",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete_channel(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let channel = owned_channel(&state, &streamer, &slug).await?;
    // Keys go with the channel: revoke them first so a live publish with one is refused by
    // every node's revocation check, not only kicked here.
    for key in state.store().list_stream_keys(channel.id).await? {
        if !key.is_revoked() {
            state.platform().revoke_stream_key(&key.jti).await?;
        }
    }
    let kicked = state.kick_channel(&channel.slug);
    // The rows of its replays go with the channel (ON DELETE CASCADE); their files must go
    // too, or nothing would ever find them again (retention walks rows).
    let mut replays = Vec::new();
    loop {
        let page = onair_store::Page::new(replays.len() as u32, 100);
        let (rows, total) = state.store().list_recordings(channel.id, page).await?;
        let done = rows.is_empty() || replays.len() + rows.len() >= total as usize;
        replays.extend(rows);
        if done {
            break;
        }
    }
    state.store().delete_channel(channel.id).await?;
    for replay in &replays {
        state.ctx.hls.remove_files(replay).await;
    }
    state
        .audit(
            streamer.user().id,
            "channel.delete",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "was_live": kicked, "replays_deleted": replays.len() }),
        )
        .await;
    info!(channel = channel.slug, kicked, "channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The channel's stream keys, revoked ones included, oldest first. The keys themselves are
/// never shown again after they are issued: only their ids and labels.
#[utoipa::path(
    get,
    path = "/me/channels/{slug}/keys",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of the keys", body = Page<StreamKey>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn list_keys(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<StreamKey>>, ApiError> {
    let page = query.page()?;
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let (keys, total) = state.store().stream_keys_page(channel.id, page).await?;
    Ok(Json(Page::new(
        keys.into_iter().map(StreamKey::from).collect(),
        total,
        page,
    )))
}

/// Issues a stream key. The answer is the only time the key is shown, with the RTMP URL to
/// put beside it in OBS.
#[utoipa::path(
    post,
    path = "/me/channels/{slug}/keys",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = NewStreamKey,
    responses(
        (status = 201, description = "Issued; `stream_key` is shown only now", body = IssuedStreamKey),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn issue_key(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
    Json(body): Json<NewStreamKey>,
) -> Result<Response, ApiError> {
    let mut checks = Checks::new();
    checks.label("label", &body.label);
    if let Some(ttl) = body.ttl_seconds {
        checks.check(
            (KEY_TTL_MIN..=KEY_TTL_MAX).contains(&ttl),
            "ttl_seconds",
            format!("must be {KEY_TTL_MIN} to {KEY_TTL_MAX}"),
        );
    }
    checks.finish()?;
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    let issued = state
        .issue_key(&channel, body.label.trim(), ttl, streamer.user().id)
        .await?;
    let location = format!(
        "/api/v1/me/channels/{}/keys/{}",
        channel.slug, issued.key.jti
    );
    Ok(no_store(created(location, issued)))
}

/// Revokes a key. A live publish using it ends now. A key that is already revoked (by an
/// earlier revoke or a rotation) answers 409 and changes nothing.
#[utoipa::path(
    delete,
    path = "/me/channels/{slug}/keys/{jti}",
    tag = "streamer",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The channel's slug"),
        ("jti" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, description = "The key is already revoked", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_key(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path((slug, jti)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let key = channel_key(&state, &channel, &jti).await?;
    state.revoke_key(&key, streamer.user().id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a key: issues a new one with the same label and revokes the old (a live publish
/// with the old key ends now). Answers the new key, shown only now.
#[utoipa::path(
    post,
    path = "/me/channels/{slug}/keys/{jti}/rotate",
    tag = "streamer",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The channel's slug"),
        ("jti" = String, Path, description = "The id of the key to replace"),
    ),
    responses(
        (status = 201, description = "The new key; `stream_key` is shown only now", body = IssuedStreamKey),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, description = "The key is already revoked", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_key(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path((slug, jti)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let old = channel_key(&state, &channel, &jti).await?;
    if old.is_revoked() {
        return Err(ApiError::conflict(format!(
            "key {jti} is revoked; issue a new key instead"
        )));
    }
    let actor = streamer.user().id;
    // The new key exists before the old one stops: a streamer rotating while live never has
    // a moment with no working key.
    let issued = state.issue_key_quietly(&channel, &old.label, None).await?;
    state.revoke_key_quietly(&old).await?;
    state
        .audit(
            actor,
            "key.rotate",
            format!("key:{}", old.jti),
            serde_json::json!({ "channel": channel.slug, "new_jti": issued.key.jti }),
        )
        .await;
    let location = format!(
        "/api/v1/me/channels/{}/keys/{}",
        channel.slug, issued.key.jti
    );
    Ok(no_store(created(location, issued)))
}

/// Whether the channel is live now, with its figures.
#[utoipa::path(
    get,
    path = "/me/channels/{slug}/live",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 200, description = "Live or not", body = LiveStatus),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn live(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
) -> Result<Json<LiveStatus>, ApiError> {
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let stream = state
        .live_now()
        .into_iter()
        .find(|l| l.channel == channel.slug)
        .map(LiveNow::from);
    Ok(Json(LiveStatus {
        live: stream.is_some(),
        stream,
    }))
}

/// The channel's publishes, newest first.
#[utoipa::path(
    get,
    path = "/me/channels/{slug}/sessions",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = Page<LiveSession>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn sessions(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<LiveSession>>, ApiError> {
    let page = query.page()?;
    let channel = owned_channel(&state, &streamer, &slug).await?;
    let (sessions, total) = state.store().list_live_sessions(channel.id, page).await?;
    Ok(Json(Page::new(
        sessions.into_iter().map(LiveSession::from).collect(),
        total,
        page,
    )))
}

/// The caller's channel `slug`; 404 when it does not exist or is someone else's.
async fn owned_channel(
    state: &ApiState,
    streamer: &Streamer,
    slug: &str,
) -> Result<onair_store::Channel, ApiError> {
    path_slug(slug)?;
    match state.store().channel_by_slug(slug).await? {
        Some(c) if c.owner_id == streamer.user().id => Ok(c),
        _ => Err(ApiError::not_found(format!("you have no channel {slug:?}"))),
    }
}

/// The key `jti` of `channel`; 404 when it does not exist or belongs to another channel.
pub(super) async fn channel_key(
    state: &ApiState,
    channel: &onair_store::Channel,
    jti: &str,
) -> Result<onair_store::StreamKey, ApiError> {
    match state.store().stream_key_by_jti(jti).await? {
        Some(k) if k.channel_id == channel.id => Ok(k),
        _ => Err(ApiError::not_found(format!(
            "channel {:?} has no key {jti:?}",
            channel.slug
        ))),
    }
}

fn trim_tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter().map(|t| t.trim().to_owned()).collect()
}
