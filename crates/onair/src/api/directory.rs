//! `/api/v1/channels`: the public directory. No login; never an address or a key.

use std::collections::HashMap;

use axum::extract::State;

use super::ApiState;
use super::extract::{Json, Path, Query};
use super::model::{DirectoryQuery, Page, PlayUrls, PublicChannel, PublicLive};
use super::problem::ApiError;
use super::validate::{PageQuery, path_slug};
use crate::lives::LiveStream;

/// The channel directory. `live=true`: the channels live now, most viewers first. Otherwise
/// every channel, oldest first, each with its live state.
#[utoipa::path(
    get,
    path = "/channels",
    tag = "public",
    params(DirectoryQuery),
    responses(
        (status = 200, description = "A page of channels", body = Page<PublicChannel>),
        (status = 400, response = super::problem::BadRequest),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<DirectoryQuery>,
) -> Result<Json<Page<PublicChannel>>, ApiError> {
    let page = PageQuery {
        offset: query.offset,
        limit: query.limit,
    }
    .page()?;
    let mut live: HashMap<String, LiveStream> = state
        .live_now()
        .into_iter()
        .map(|l| (l.channel.clone(), l))
        .collect();
    let mut owners = Owners::default();
    if query.live == Some(true) {
        // Live streams are few (one per publisher on this node), so paging them in memory is
        // cheap; only those with a channel row are listed (`[dev]` keys have none).
        let mut streams: Vec<LiveStream> = live
            .into_values()
            .filter(|l| l.channel_id.is_some())
            .collect();
        streams.sort_by(|a, b| {
            b.viewers
                .total
                .cmp(&a.viewers.total)
                .then_with(|| a.channel.cmp(&b.channel))
        });
        let total = streams.len() as u64;
        let mut items = Vec::new();
        for stream in streams
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
        {
            let Some(channel) = state.store().channel_by_slug(&stream.channel).await? else {
                continue;
            };
            let owner = owners.name(&state, channel.owner_id).await?;
            items.push(public(&state, channel, owner, Some(stream)));
        }
        return Ok(Json(Page::new(items, total, page)));
    }
    let (channels, total) = state.store().list_channels(None, page).await?;
    let mut items = Vec::with_capacity(channels.len());
    for channel in channels {
        let owner = owners.name(&state, channel.owner_id).await?;
        let stream = live.remove(&channel.slug);
        items.push(public(&state, channel, owner, stream));
    }
    Ok(Json(Page::new(items, total, page)))
}

/// A channel's public page: title, owner, tags and, when live, the stream.
#[utoipa::path(
    get,
    path = "/channels/{slug}",
    tag = "public",
    params(("slug" = String, Path, description = "The channel's slug")),
    responses(
        (status = 200, description = "The channel", body = PublicChannel),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn channel(
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<PublicChannel>, ApiError> {
    path_slug(&slug)?;
    let Some(channel) = state.store().channel_by_slug(&slug).await? else {
        return Err(ApiError::not_found(format!("no channel {slug:?}")));
    };
    let owner = Owners::default().name(&state, channel.owner_id).await?;
    let stream = state
        .live_now()
        .into_iter()
        .find(|l| l.channel == channel.slug);
    Ok(Json(public(&state, channel, owner, stream)))
}

fn public(
    state: &ApiState,
    channel: onair_store::Channel,
    owner: String,
    live: Option<LiveStream>,
) -> PublicChannel {
    let live = live.map(|l| PublicLive {
        started_at: l.started_at,
        uptime_seconds: l.uptime_seconds,
        viewers: l.viewers.total,
        video_codec: l.media.video_codec,
        audio_codec: l.media.audio_codec,
        width: l.media.width,
        height: l.media.height,
        play: PlayUrls {
            flv: format!("/live/{}.flv", channel.slug),
            hls: state
                .ctx
                .hls
                .is_enabled()
                .then(|| format!("/live/{}/index.m3u8", channel.slug)),
        },
    });
    PublicChannel {
        slug: channel.slug,
        title: channel.title,
        category: channel.category,
        tags: channel.tags,
        owner,
        created_at: channel.created_at,
        live,
    }
}

/// Owner names looked up once per request.
#[derive(Default)]
struct Owners(HashMap<i64, String>);

impl Owners {
    async fn name(&mut self, state: &ApiState, id: i64) -> Result<String, ApiError> {
        if let Some(name) = self.0.get(&id) {
            return Ok(name.clone());
        }
        // A channel always has an owner (a foreign key); an empty name covers a race with a
        // deletion rather than failing the whole page.
        let name = state
            .store()
            .user_by_id(id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        self.0.insert(id, name.clone());
        Ok(name)
    }
}
