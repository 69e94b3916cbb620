//! `/channels/{slug}/restreams`: where a channel's lives are pushed (issue 14), for its owner
//! and admins. A destination's key is taken at creation (or a change) and never shown again
//! but for its last four characters; each answer carries what the destination's push is
//! doing now on this node.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use onair_store::{Channel, NewRestream as StoreNewRestream, RestreamDestination, RestreamUpdate};
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::extract::{Json, Path};
use super::problem::ApiError;
use super::session::Caller;
use super::validate::{Checks, is_plain_text, path_slug};
use super::{ApiState, created, no_store};
use crate::restream::{PushStatus, TargetError, target};

/// Longest destination name.
const NAME_MAX: usize = 64;
/// Longest URL, and longest key: a CDN's keys are tens of characters, with a query at most.
const URL_MAX: usize = 512;
const KEY_MAX: usize = 512;

/// A restream destination as the API shows it: the key only by its end.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Restream {
    /// Its id.
    pub id: i64,
    /// The owner's name for it.
    #[schema(example = "YouTube")]
    pub name: String,
    /// `rtmp://` or `rtmps://host[:port]/app`, without the key.
    #[schema(example = "rtmps://a.rtmps.youtube.com/live2")]
    pub url: String,
    /// The target key's last four characters after `****` (all of it hidden when it is
    /// shorter than twelve).
    #[schema(example = "****9x2q")]
    pub stream_key: String,
    /// Whether lives are pushed there.
    pub enabled: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// What its push is doing now on this node.
    pub status: PushStatus,
}

/// `POST /channels/{slug}/restreams`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRestream {
    /// A name for it, 1 to 64 characters.
    #[schema(example = "YouTube")]
    pub name: String,
    /// `rtmp://` or `rtmps://host[:port]/app`, without the key.
    #[schema(example = "rtmp://live.example.net/app")]
    pub url: String,
    /// The stream key the destination gave; shown again only by its last four characters.
    pub stream_key: String,
    /// Whether lives are pushed there (default true). Enabled while the channel is live, it
    /// starts at once.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `PATCH /channels/{slug}/restreams/{id}`: each field given is changed. A change while live
/// restarts the push with the new settings; disabling stops it.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestreamPatch {
    /// A new name.
    pub name: Option<String>,
    /// A new URL.
    pub url: Option<String>,
    /// A new key.
    pub stream_key: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
}

/// What the API shows of a key: `****` and its last four characters, only when enough stays
/// hidden (twelve or more characters), else `****` alone.
pub fn redact_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

fn view(state: &ApiState, d: RestreamDestination) -> Restream {
    let status = state.ctx.restreams.status(d.id);
    Restream {
        id: d.id,
        stream_key: redact_key(&d.stream_key),
        name: d.name,
        url: d.url,
        enabled: d.enabled,
        created_at: d.created_at,
        status,
    }
}

/// The channel `slug` if the caller may manage its restreams: its owner or an admin.
async fn managed(state: &ApiState, caller: &Caller, slug: &str) -> Result<Channel, ApiError> {
    path_slug(slug)?;
    let channel = state
        .store()
        .channel_by_slug(slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no channel {slug:?}")))?;
    let user = caller.user();
    if channel.owner_id != user.id && user.role != onair_store::Role::Admin {
        return Err(ApiError::forbidden(
            "only the channel's owner and admins manage its restreams",
        ));
    }
    Ok(channel)
}

async fn destination(
    state: &ApiState,
    channel: &Channel,
    id: i64,
) -> Result<RestreamDestination, ApiError> {
    match state.store().restream_by_id(id).await? {
        Some(d) if d.channel_id == channel.id => Ok(d),
        _ => Err(ApiError::not_found(format!(
            "no restream destination {id} on this channel"
        ))),
    }
}

/// The 400s of a name, URL and key as given (`None`: not given, in a patch).
fn check_fields(name: Option<&str>, url: Option<&str>, key: Option<&str>) -> Result<(), ApiError> {
    let mut checks = Checks::new();
    if let Some(name) = name {
        let n = name.trim().chars().count();
        checks.check(
            (1..=NAME_MAX).contains(&n),
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        );
        checks.check(is_plain_text(name), "name", "must be plain text");
    }
    if let Some(url) = url {
        checks.check(
            !url.trim().is_empty() && url.len() <= URL_MAX,
            "url",
            format!("must be 1 to {URL_MAX} bytes"),
        );
        checks.check(
            is_plain_text(url) && !url.contains(char::is_whitespace),
            "url",
            "must have no spaces or control characters",
        );
    }
    if let Some(key) = key {
        checks.check(
            !key.is_empty() && key.len() <= KEY_MAX,
            "stream_key",
            format!("must be 1 to {KEY_MAX} bytes"),
        );
        checks.check(
            is_plain_text(key) && !key.contains(char::is_whitespace) && !key.starts_with('/'),
            "stream_key",
            "must have no spaces, control characters or leading slash",
        );
    }
    checks.finish()
}

/// The 422 of a URL and key that are well-formed text but no address to push to.
fn check_target(url: &str, key: &str) -> Result<(), ApiError> {
    target(url, key).map(|_| ()).map_err(|e| match e {
        TargetError::Scheme => {
            ApiError::unprocessable_field("url", "must start with rtmp:// or rtmps://")
        }
        TargetError::Shape(why) => ApiError::unprocessable_field("url", why),
    })
}

/// The channel's restream destinations, oldest first, each with what its push is doing now
/// on this node (a channel has at most `restream.max_per_channel`, so the list is whole).
#[utoipa::path(
    get,
    path = "/channels/{slug}/restreams",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 200, description = "The destinations", body = Vec<Restream>),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Restream>>, ApiError> {
    let channel = managed(&state, &caller, &slug).await?;
    let rows = state.store().restreams_of_channel(channel.id).await?;
    Ok(Json(rows.into_iter().map(|d| view(&state, d)).collect()))
}

/// Adds a destination. Enabled while the channel is live here, its push starts at once.
#[utoipa::path(
    post,
    path = "/channels/{slug}/restreams",
    tag = "streamer",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = NewRestream,
    responses(
        (status = 201, description = "Added; the key is shown only by its end", body = Restream),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, description = "The channel has `restream.max_per_channel` destinations already", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The URL is not rtmp:// or rtmps://host[:port]/app (the field is named)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<NewRestream>,
) -> Result<Response, ApiError> {
    check_fields(Some(&body.name), Some(&body.url), Some(&body.stream_key))?;
    check_target(&body.url, &body.stream_key)?;
    let channel = managed(&state, &caller, &slug).await?;
    let max = state.ctx.restreams.config().max_per_channel;
    let Some(d) = state
        .store()
        .create_restream(
            StoreNewRestream {
                channel_id: channel.id,
                name: body.name.trim().to_owned(),
                url: body.url.trim().to_owned(),
                stream_key: body.stream_key,
                enabled: body.enabled,
            },
            max,
        )
        .await?
    else {
        return Err(ApiError::conflict(format!(
            "a channel has at most {max} restream destinations; delete one first"
        )));
    };
    state
        .audit(
            caller.user().id,
            "restream.create",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "id": d.id, "name": d.name, "url": d.url, "enabled": d.enabled }),
        )
        .await;
    info!(
        channel = channel.slug,
        destination = d.id,
        "restream destination added"
    );
    state.ctx.restreams.destination_changed(&channel.slug, &d);
    let location = format!("/api/v1/channels/{}/restreams/{}", channel.slug, d.id);
    Ok(no_store(created(location, view(&state, d))))
}

/// Changes a destination's name, URL, key or enabled flag. While the channel is live here,
/// a change restarts its push with the new settings and disabling stops it.
#[utoipa::path(
    patch,
    path = "/channels/{slug}/restreams/{id}",
    tag = "streamer",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The channel's slug"),
        ("id" = i64, Path, description = "The destination's id"),
    ),
    request_body = RestreamPatch,
    responses(
        (status = 200, description = "Changed", body = Restream),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, description = "The URL is not rtmp:// or rtmps://host[:port]/app (the field is named)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path((slug, id)): Path<(String, i64)>,
    Json(body): Json<RestreamPatch>,
) -> Result<Response, ApiError> {
    check_fields(
        body.name.as_deref(),
        body.url.as_deref(),
        body.stream_key.as_deref(),
    )?;
    let channel = managed(&state, &caller, &slug).await?;
    let old = destination(&state, &channel, id).await?;
    check_target(
        body.url.as_deref().unwrap_or(&old.url),
        body.stream_key.as_deref().unwrap_or(&old.stream_key),
    )?;
    let d = state
        .store()
        .update_restream(
            id,
            RestreamUpdate {
                name: body.name.map(|n| n.trim().to_owned()),
                url: body.url.map(|u| u.trim().to_owned()),
                stream_key: body.stream_key.clone(),
                enabled: body.enabled,
            },
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no restream destination {id} on this channel"))
        })?;
    state
        .audit(
            caller.user().id,
            "restream.update",
            format!("channel:{}", channel.slug),
            serde_json::json!({
                "id": d.id, "name": d.name, "url": d.url, "enabled": d.enabled,
                "key_changed": body.stream_key.is_some(),
            }),
        )
        .await;
    // A new name changes nothing on the wire: the push goes on.
    if (&d.url, &d.stream_key, d.enabled) != (&old.url, &old.stream_key, old.enabled) {
        state.ctx.restreams.destination_changed(&channel.slug, &d);
    }
    Ok(no_store(Json(view(&state, d))))
}

/// Removes a destination; its push, if one runs, stops.
#[utoipa::path(
    delete,
    path = "/channels/{slug}/restreams/{id}",
    tag = "streamer",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The channel's slug"),
        ("id" = i64, Path, description = "The destination's id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let channel = managed(&state, &caller, &slug).await?;
    let d = destination(&state, &channel, id).await?;
    state.ctx.restreams.stop(d.id);
    state.store().delete_restream(d.id).await?;
    state
        .audit(
            caller.user().id,
            "restream.delete",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "id": d.id, "name": d.name }),
        )
        .await;
    info!(
        channel = channel.slug,
        destination = d.id,
        "restream destination removed"
    );
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_only_their_end_and_short_ones_nothing() {
        assert_eq!(redact_key("live_12345678_abcdefgh9x2q"), "****9x2q");
        assert_eq!(redact_key("short-key"), "****");
        assert_eq!(redact_key(""), "****");
        assert_eq!(redact_key("ééééééééééééabçd"), "****abçd");
    }
}
