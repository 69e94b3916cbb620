//! `/api/v1/admin/*`: users, channels, keys, live streams, the audit log. Admins only; every
//! write is recorded in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use tracing::info;

use super::extract::{Json, Path, Query};
use super::model::{
    AuditEntry, Channel, LiveNow, NewUser, Page, Role, StreamKey, User, UserQuery, UserUpdate,
};
use super::problem::ApiError;
use super::session::Admin;
use super::validate::{Checks, PageQuery, SEARCH_MAX, path_slug};
use super::{ApiState, created};

/// Accounts, oldest first; `search` keeps names containing it.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    params(UserQuery),
    responses(
        (status = 200, description = "A page of accounts", body = Page<User>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn list_users(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(query): Query<UserQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    if let Some(search) = &query.search {
        Checks::new()
            .check(
                search.chars().count() <= SEARCH_MAX,
                "search",
                "must be at most 64 characters",
            )
            .finish()?;
    }
    let page = PageQuery {
        offset: query.offset,
        limit: query.limit,
    }
    .page()?;
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    let (users, total) = state.store().list_users(search, page).await?;
    Ok(Json(Page::new(
        users.into_iter().map(User::from).collect(),
        total,
        page,
    )))
}

/// Creates an account with any role.
#[utoipa::path(
    post,
    path = "/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User, headers(("Location" = String, description = "The account's URL"))),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 409, response = super::problem::Conflict),
    )
)]
pub async fn create_user(
    State(state): State<ApiState>,
    admin: Admin,
    Json(body): Json<NewUser>,
) -> Result<Response, ApiError> {
    Checks::new()
        .username("username", &body.username)
        .password("password", &body.password)
        .finish()?;
    let user = state
        .platform()
        .create_user(&body.username, &body.password, body.role.into())
        .await?;
    state
        .audit(
            admin.user().id,
            "user.create",
            format!("user:{}", user.id),
            serde_json::json!({ "username": user.username, "role": user.role }),
        )
        .await;
    info!(user = user.username, role = %user.role, by = admin.user().username, "account created");
    let location = format!("/api/v1/admin/users/{}", user.id);
    Ok(created(location, User::from(user)))
}

/// One account.
#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn user(
    State(state): State<ApiState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> Result<Json<User>, ApiError> {
    match state.store().user_by_id(id).await? {
        Some(user) => Ok(Json(user.into())),
        None => Err(ApiError::not_found(format!("user {id} not found"))),
    }
}

/// Changes an account's role, or bans or unbans it. A ban ends the account's logins and
/// its live streams at once. Admins cannot demote or ban themselves (the last admin would
/// lock everyone out).
#[utoipa::path(
    patch,
    path = "/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The account as it now is", body = User),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, response = super::problem::Unprocessable),
    )
)]
pub async fn update_user(
    State(state): State<ApiState>,
    admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    if body.role.is_none() && body.banned.is_none() {
        return Err(ApiError::unprocessable(
            "nothing to change: give role or banned",
        ));
    }
    if id == admin.user().id
        && (body.banned == Some(true) || body.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::unprocessable(
            "admins cannot ban or demote themselves; ask another admin",
        ));
    }
    let Some(mut user) = state.store().user_by_id(id).await? else {
        return Err(ApiError::not_found(format!("user {id} not found")));
    };
    let actor = admin.user().id;
    let target = format!("user:{id}");
    if let Some(role) = body.role.map(onair_store::Role::from)
        && role != user.role
    {
        let from = user.role;
        user = state.store().set_user_role(id, role).await?;
        state
            .audit(
                actor,
                "user.role",
                target.clone(),
                serde_json::json!({ "from": from, "to": role }),
            )
            .await;
        info!(user = user.username, %from, to = %role, "role changed");
    }
    if let Some(banned) = body.banned
        && banned != user.banned
    {
        user = state.store().set_user_banned(id, banned).await?;
        let mut kicked = Vec::new();
        if banned {
            state
                .store()
                .revoke_user_auth_sessions(id, Utc::now())
                .await?;
            kicked = state.kick_owner(id).await?;
        }
        let action = if banned { "user.ban" } else { "user.unban" };
        state
            .audit(
                actor,
                action,
                target.clone(),
                serde_json::json!({ "kicked": kicked }),
            )
            .await;
        info!(user = user.username, banned, ?kicked, "ban changed");
    }
    Ok(Json(user.into()))
}

/// Every channel, oldest first.
#[utoipa::path(
    get,
    path = "/admin/channels",
    tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of channels", body = Page<Channel>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn list_channels(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Channel>>, ApiError> {
    let page = query.page()?;
    let (channels, total) = state.store().list_channels(None, page).await?;
    let items = channels
        .into_iter()
        .map(|c| {
            let live = state.is_live(&c.slug);
            Channel::new(c, live)
        })
        .collect();
    Ok(Json(Page::new(items, total, page)))
}

/// Any channel's keys, revoked ones included (never the keys themselves).
#[utoipa::path(
    get,
    path = "/admin/channels/{slug}/keys",
    tag = "admin",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of the keys", body = Page<StreamKey>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn channel_keys(
    State(state): State<ApiState>,
    _admin: Admin,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<StreamKey>>, ApiError> {
    path_slug(&slug)?;
    let page = query.page()?;
    let Some(channel) = state.store().channel_by_slug(&slug).await? else {
        return Err(ApiError::not_found(format!("channel {slug:?} not found")));
    };
    let (keys, total) = state.store().stream_keys_page(channel.id, page).await?;
    Ok(Json(Page::new(
        keys.into_iter().map(StreamKey::from).collect(),
        total,
        page,
    )))
}

/// Revokes any key; a live publish using it ends now. A key that is already revoked answers
/// 409 and changes nothing.
#[utoipa::path(
    delete,
    path = "/admin/keys/{jti}",
    tag = "admin",
    security(("bearer" = [])),
    params(("jti" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, description = "The key is already revoked", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_key(
    State(state): State<ApiState>,
    admin: Admin,
    Path(jti): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(key) = state.store().stream_key_by_jti(&jti).await? else {
        return Err(ApiError::not_found(format!("no key {jti:?}")));
    };
    state.revoke_key(&key, admin.user().id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every stream live on this server now, most viewers first: bitrate, fps, codecs,
/// resolution, viewers by protocol, uptime, publisher address and key.
#[utoipa::path(
    get,
    path = "/admin/live",
    tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the live streams", body = Page<LiveNow>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn live(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<LiveNow>>, ApiError> {
    let page = query.page()?;
    // One entry per publisher on this node: few enough to sort and page in memory.
    let mut live: Vec<LiveNow> = state.live_now().into_iter().map(LiveNow::from).collect();
    live.sort_by(|a, b| {
        b.viewers
            .total
            .cmp(&a.viewers.total)
            .then_with(|| a.channel.cmp(&b.channel))
    });
    let total = live.len() as u64;
    let items = live
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    Ok(Json(Page::new(items, total, page)))
}

/// Ends a live publish now. The publisher may reconnect with a valid key; revoke the key or
/// ban the owner to keep them off.
#[utoipa::path(
    post,
    path = "/admin/live/{slug}/kick",
    tag = "admin",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The live channel's name")),
    responses(
        (status = 204, description = "The publisher was disconnected"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, description = "Not live now", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn kick(
    State(state): State<ApiState>,
    admin: Admin,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Live names include `[dev]` channels, which are not slugs: check the looser rule.
    if !crate::channel::is_valid_name(&slug) {
        return Err(ApiError::invalid_field(
            "slug",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if !state.kick_channel(&slug) {
        return Err(ApiError::not_found(format!("{slug:?} is not live")));
    }
    state
        .audit(
            admin.user().id,
            "live.kick",
            format!("channel:{slug}"),
            serde_json::json!({}),
        )
        .await;
    info!(
        channel = slug,
        by = admin.user().username,
        "publisher kicked"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the log", body = Page<AuditEntry>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn audit(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let page = query.page()?;
    let (entries, total) = state.store().list_audit(page).await?;
    Ok(Json(Page::new(
        entries.into_iter().map(AuditEntry::from).collect(),
        total,
        page,
    )))
}
