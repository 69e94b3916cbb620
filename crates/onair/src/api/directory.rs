//! `/api/v1/channels` and `/api/v1/categories`: the public directory. No login; never an address or a key.

use std::collections::HashMap;

use axum::extract::State;

use super::ApiState;
use super::extract::{Json, Path, Query};
use onair_store::ChannelSearch;

use super::model::{Category, DirectoryQuery, Page, PlayUrls, PublicChannel, PublicLive};
use super::problem::ApiError;
use super::validate::{Checks, PageQuery, path_slug};
use crate::lives::LiveStream;

/// The channel directory. `live=true`: the channels live now, most viewers first. Otherwise
/// every channel, oldest first, each with its live state. `q`, `category` and `tag` narrow
/// either list.
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
    let given = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_owned);
    let mut search = ChannelSearch {
        // Spaces around the words are the search box's, not the visitor's meaning.
        text: given(query.q.as_deref().map(str::trim)),
        category: given(query.category.as_deref()),
        tag: given(query.tag.as_deref()),
        ids: None,
    };
    let mut checks = Checks::new();
    if let Some(text) = &search.text {
        checks.query("q", text);
    }
    if let Some(category) = &search.category {
        checks.category("category", category);
    }
    if let Some(tag) = &search.tag {
        checks.tag("tag", tag);
    }
    let page = PageQuery {
        offset: query.offset,
        limit: query.limit,
    }
    .page_with(checks)?;
    let mut live: HashMap<String, LiveStream> = state
        .live_now()
        .into_iter()
        .map(|l| (l.channel.clone(), l))
        .collect();
    let mut owners = Owners::default();
    if query.live == Some(true) {
        // Live streams are few (one per publisher on this node): the store keeps those of
        // them the search matches, and they are ordered and paged here by their viewers.
        // Only those with a channel row are listed (`[dev]` keys have none).
        let ids: Vec<i64> = live.values().filter_map(|l| l.channel_id).collect();
        if ids.is_empty() {
            return Ok(Json(Page::new(Vec::new(), 0, page)));
        }
        let everything = onair_store::Page::new(0, u32::try_from(ids.len()).unwrap_or(u32::MAX));
        search.ids = Some(ids);
        let (channels, _) = state.store().search_channels(&search, everything).await?;
        let mut matched: Vec<(onair_store::Channel, LiveStream)> = channels
            .into_iter()
            .filter_map(|c| live.remove(&c.slug).map(|l| (c, l)))
            .collect();
        matched.sort_by(|(a, la), (b, lb)| {
            lb.viewers
                .total
                .cmp(&la.viewers.total)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        let total = matched.len() as u64;
        let mut items = Vec::new();
        for (channel, stream) in matched
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
        {
            let owner = owners.name(&state, channel.owner_id).await?;
            items.push(public(&state, channel, owner, Some(stream)));
        }
        return Ok(Json(Page::new(items, total, page)));
    }
    let (channels, total) = state.store().search_channels(&search, page).await?;
    let mut items = Vec::with_capacity(channels.len());
    for channel in channels {
        let owner = owners.name(&state, channel.owner_id).await?;
        let stream = live.remove(&channel.slug);
        items.push(public(&state, channel, owner, stream));
    }
    Ok(Json(Page::new(items, total, page)))
}

/// The categories channels are in, with how many channels each has: the fullest first, then
/// by name. Channels with no category are in none.
#[utoipa::path(
    get,
    path = "/categories",
    tag = "public",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of categories", body = Page<Category>),
        (status = 400, response = super::problem::BadRequest),
    )
)]
pub async fn categories(
    State(state): State<ApiState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Category>>, ApiError> {
    let page = query.page()?;
    let (categories, total) = state.store().channel_categories(page).await?;
    Ok(Json(Page::new(
        categories.into_iter().map(Category::from).collect(),
        total,
        page,
    )))
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
