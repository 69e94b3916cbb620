//! Replays: the recorded lives of a channel (public), deleting one (its owner or an admin;
//! the files go too), and the retention policy (admins).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use onair_store::{Recording, RecordingState};
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::ApiState;
use super::extract::{Json, Path, Query};
use super::model::Page;
use super::problem::ApiError;
use super::session::{Admin, Streamer};
use super::validate::{Checks, PageQuery, path_slug};
use crate::hls::retention::{RetentionPolicy, SETTING};

/// How far a recording got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayState {
    /// The live is on; the playlist is an EVENT playlist that grows.
    Recording,
    /// Complete: a VOD playlist.
    Finished,
    /// Nothing playable was recorded.
    Failed,
}

impl From<RecordingState> for ReplayState {
    fn from(s: RecordingState) -> Self {
        match s {
            RecordingState::Recording => ReplayState::Recording,
            RecordingState::Finished => ReplayState::Finished,
            RecordingState::Failed => ReplayState::Failed,
        }
    }
}

/// A recorded live.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Replay {
    /// Its id, as in `/replays/{id}/index.m3u8`.
    pub id: i64,
    /// The channel's slug.
    pub channel: String,
    /// The channel's title when the live started.
    pub title: String,
    /// How far it got.
    pub state: ReplayState,
    /// When the live started.
    pub started_at: DateTime<Utc>,
    /// When the recording ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Media duration, in milliseconds.
    pub duration_ms: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// The HLS playlist to play it (null when nothing playable was recorded).
    pub playlist: Option<String>,
}

impl Replay {
    fn new(rec: Recording, channel: String) -> Replay {
        Replay {
            playlist: (rec.state != RecordingState::Failed)
                .then(|| format!("/replays/{}/index.m3u8", rec.id)),
            id: rec.id,
            channel,
            title: rec.title,
            state: rec.state.into(),
            started_at: rec.started_at,
            ended_at: rec.ended_at,
            duration_ms: rec.duration_ms,
            size_bytes: rec.size_bytes,
        }
    }
}

/// The retention policy for replays; unset bounds keep everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Replays that ended longer ago than this many seconds are deleted (at least 3600).
    pub max_age_seconds: Option<u64>,
    /// Per channel, the oldest replays are deleted while the channel's replays take more
    /// bytes than this (at least 1 MiB).
    pub max_bytes_per_channel: Option<u64>,
}

/// The policy after a change, and what applying it deleted.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RetentionApplied {
    /// The policy now in force.
    pub policy: Retention,
    /// Replays deleted by applying it at once.
    pub deleted: usize,
}

impl From<RetentionPolicy> for Retention {
    fn from(p: RetentionPolicy) -> Self {
        Retention {
            max_age_seconds: p.max_age_seconds,
            max_bytes_per_channel: p.max_bytes_per_channel,
        }
    }
}

/// A channel's replays, newest first (including one being recorded now).
#[utoipa::path(
    get,
    path = "/channels/{slug}/replays",
    tag = "public",
    params(("slug" = String, Path, description = "The channel's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of replays", body = Page<Replay>),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Replay>>, ApiError> {
    path_slug(&slug)?;
    let page = query.page()?;
    let Some(channel) = state.store().channel_by_slug(&slug).await? else {
        return Err(ApiError::not_found(format!("no channel {slug:?}")));
    };
    let (rows, total) = state
        .store()
        .list_listed_recordings(channel.id, page)
        .await?;
    let items = rows
        .into_iter()
        .map(|r| Replay::new(r, channel.slug.clone()))
        .collect();
    Ok(Json(Page::new(items, total, page)))
}

/// Every channel's recent replays, newest first (finished ones and those being recorded now;
/// failed recordings are left out): what the directory shows under "recent replays".
#[utoipa::path(
    get,
    path = "/replays",
    tag = "public",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of replays", body = Page<Replay>),
        (status = 400, response = super::problem::BadRequest),
    )
)]
pub async fn recent(
    State(state): State<ApiState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Replay>>, ApiError> {
    let page = query.page()?;
    let (rows, total) = state.store().recent_recordings(page).await?;
    let mut slugs = std::collections::HashMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for rec in rows {
        let slug = match slugs.get(&rec.channel_id) {
            Some(slug) => Some(String::clone(slug)),
            None => {
                let slug = state
                    .store()
                    .channel_by_id(rec.channel_id)
                    .await?
                    .map(|c| c.slug);
                if let Some(slug) = &slug {
                    slugs.insert(rec.channel_id, slug.clone());
                }
                slug
            }
        };
        // A channel deleted since the listing began takes its replays with it.
        if let Some(slug) = slug {
            items.push(Replay::new(rec, slug));
        }
    }
    Ok(Json(Page::new(items, total, page)))
}

/// One replay.
#[utoipa::path(
    get,
    path = "/replays/{id}",
    tag = "public",
    params(("id" = i64, Path, description = "The replay's id")),
    responses(
        (status = 200, description = "The replay", body = Replay),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Replay>, ApiError> {
    let (rec, channel) = replay_and_channel(&state, id).await?;
    super::videos::check_replay_access(&state, id, &headers).await?;
    Ok(Json(Replay::new(rec, channel.slug)))
}

/// Deletes a replay and its files: the channel's owner or an admin. A live still being
/// recorded cannot be deleted (409); end it first.
#[utoipa::path(
    delete,
    path = "/replays/{id}",
    tag = "streamer",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The replay's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, response = super::problem::Conflict),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    streamer: Streamer,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let (rec, channel) = replay_and_channel(&state, id).await?;
    let user = streamer.user();
    let admin = user.role == onair_store::Role::Admin;
    if channel.owner_id != user.id && !admin {
        // As for channels: another's replay answers as if it did not exist.
        return Err(ApiError::not_found(format!("you have no replay {id}")));
    }
    if rec.state == RecordingState::Recording {
        return Err(ApiError::conflict(format!(
            "replay {id} is still being recorded; it can be deleted once the live ends"
        )));
    }
    let Some(rec) = state.store().delete_recording(id).await? else {
        return Err(ApiError::not_found(format!("no replay {id}")));
    };
    state.ctx.hls.remove_files(&rec).await;
    state
        .audit(
            user.id,
            "replay.delete",
            format!("replay:{id}"),
            serde_json::json!({ "channel": channel.slug, "path": rec.path }),
        )
        .await;
    info!(replay = id, channel = channel.slug, "replay deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The retention policy in force (the config's until an admin sets one).
#[utoipa::path(
    get,
    path = "/admin/replays/retention",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy", body = Retention),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn retention(
    State(state): State<ApiState>,
    _admin: Admin,
) -> Result<Json<Retention>, ApiError> {
    Ok(Json(state.ctx.hls.retention_policy().await?.into()))
}

/// Sets the retention policy and applies it at once (then hourly).
#[utoipa::path(
    put,
    path = "/admin/replays/retention",
    tag = "admin",
    security(("bearer" = [])),
    request_body = Retention,
    responses(
        (status = 200, description = "The policy, and what applying it deleted", body = RetentionApplied),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
    )
)]
pub async fn set_retention(
    State(state): State<ApiState>,
    admin: Admin,
    Json(body): Json<Retention>,
) -> Result<Json<RetentionApplied>, ApiError> {
    Checks::new()
        .check(
            body.max_age_seconds.is_none_or(|s| s >= 3600),
            "max_age_seconds",
            "must be at least 3600 (one hour), or null to keep replays of any age",
        )
        .check(
            body.max_bytes_per_channel.is_none_or(|b| b >= 1 << 20),
            "max_bytes_per_channel",
            "must be at least 1048576 (1 MiB), or null for no limit",
        )
        .finish()?;
    let policy = RetentionPolicy {
        max_age_seconds: body.max_age_seconds,
        max_bytes_per_channel: body.max_bytes_per_channel,
    };
    let text = serde_json::to_string(&policy).map_err(ApiError::internal)?;
    state.store().set_setting(SETTING, &text).await?;
    state
        .audit(
            admin.user().id,
            "replays.retention",
            "settings:recordings.retention".into(),
            serde_json::json!(policy),
        )
        .await;
    let deleted = state.ctx.hls.apply_retention().await?;
    Ok(Json(RetentionApplied {
        policy: policy.into(),
        deleted,
    }))
}

async fn replay_and_channel(
    state: &ApiState,
    id: i64,
) -> Result<(Recording, onair_store::Channel), ApiError> {
    Checks::new()
        .check(id > 0, "id", "must be a positive integer")
        .finish()?;
    let not_found = || ApiError::not_found(format!("no replay {id}"));
    let rec = state
        .store()
        .recording_by_id(id)
        .await?
        .ok_or_else(not_found)?;
    let channel = state
        .store()
        .channel_by_id(rec.channel_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((rec, channel))
}
