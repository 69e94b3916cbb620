//! Chat over REST and the chat socket: message history, replay danmaku, the gift catalogue,
//! wallets and gift sends, and moderation by a channel's owner or an admin. The WebSocket at
//! `/api/v1/channels/{slug}/chat` is described in `docs/chat-protocol.md`, not in OpenAPI.

use std::time::Duration;
use tracing::Instrument as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_chat::{
    ChatService, ChatUser, GiftError, JoinError, ModerationError, protocol::ErrorCode,
};
use onair_store::{Channel, ChatMessage, GiftOutcome, MessageKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::extract::{Json, Path, Query};
use super::model::Page;
use super::problem::ApiError;
use super::session::{Admin, Caller};
use super::validate::{PageQuery, path_slug};

/// A stored chat line or danmaku.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Message {
    /// Its id.
    pub id: i64,
    /// `chat` or `danmaku`.
    pub kind: String,
    /// The sender's id.
    pub user_id: i64,
    /// The sender's name.
    pub username: String,
    /// The text.
    pub text: String,
    /// Danmaku colour.
    pub color: Option<String>,
    /// Danmaku mode.
    pub mode: Option<String>,
    /// Milliseconds from the start of the live session; in a replay's danmaku, the position
    /// in the replay.
    pub offset_ms: Option<i64>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl From<ChatMessage> for Message {
    fn from(m: ChatMessage) -> Self {
        Message {
            id: m.id,
            kind: m.kind.as_str().to_owned(),
            user_id: m.user_id,
            username: m.username,
            text: m.text,
            color: m.color,
            mode: m.mode,
            offset_ms: m.offset_ms,
            created_at: m.created_at,
        }
    }
}

/// A gift of the catalogue.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Gift {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Coins each.
    pub price: i64,
}

/// A wallet.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Wallet {
    /// The owner.
    pub user_id: i64,
    /// Coins.
    pub balance: i64,
}

/// A gift to send.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendGiftBody {
    /// Which gift.
    pub gift_id: i64,
    /// How many (1 to 1000; default 1).
    pub count: Option<u32>,
    /// The client's key for this send (1 to 100 bytes): a retry is never charged twice.
    pub idempotency_key: String,
}

/// A gift that was sent.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GiftSent {
    /// The gift event's id.
    pub id: i64,
    /// Coins moved.
    pub value: i64,
    /// The sender's balance after it (absent on a replayed key).
    pub balance: Option<i64>,
    /// `true` when the key was used before and nothing was charged.
    pub replayed: bool,
}

/// Coins to add.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credit {
    /// Coins (1 to 1000000000).
    pub amount: i64,
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: String,
}

/// Mute a user.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// Who.
    pub user_id: i64,
    /// For how long, in seconds (1 to 2592000).
    pub seconds: u64,
}

/// Ban a user from a channel's chat.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// Who.
    pub user_id: i64,
}

/// Slow mode.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowMode {
    /// One message per user per this many seconds; 0 turns it off (at most 3600).
    pub seconds: u64,
}

/// `from_ms` and `to_ms`.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DanmakuRange {
    /// From this position in the replay, in ms (default 0).
    pub from_ms: Option<i64>,
    /// To this offset, inclusive (default: the end).
    pub to_ms: Option<i64>,
}

/// Most danmaku one request returns; a player asks for the next window as it plays.
const DANMAKU_LIMIT: u32 = 5000;

async fn channel(state: &ApiState, slug: &str) -> Result<Channel, ApiError> {
    path_slug(slug)?;
    state
        .store()
        .channel_by_slug(slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no channel {slug:?}")))
}

fn chat_user(caller: &Caller) -> ChatUser {
    ChatUser {
        id: caller.user().id,
        name: caller.user().username.clone(),
        admin: caller.user().role == onair_store::Role::Admin,
        session: None,
    }
}

async fn moderated(state: &ApiState, caller: &Caller, slug: &str) -> Result<Channel, ApiError> {
    let channel = channel(state, slug).await?;
    if !ChatService::moderates(&chat_user(caller), &channel) {
        return Err(ApiError::forbidden(
            "only the channel's owner and admins moderate its chat",
        ));
    }
    Ok(channel)
}

fn moderation_error(e: ModerationError) -> ApiError {
    match e {
        ModerationError::NoMessage(id) => {
            ApiError::not_found(format!("no message {id} in this channel"))
        }
        ModerationError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

/// The chat socket of a channel. Anyone may read; sending needs an `auth` frame first
/// (see `docs/chat-protocol.md`). Not part of the OpenAPI document: it is not REST.
pub async fn socket(
    State(state): State<ApiState>,
    axum::extract::Path(slug): axum::extract::Path<String>,
    mut request: axum::extract::Request,
) -> Response {
    let (response, on_upgrade) = match crate::chat::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal,
    };
    if let Err(e) = path_slug(&slug) {
        return e.into_response();
    }
    let membership = match state.ctx.chat.join(&slug).await {
        Ok(m) => m,
        Err(JoinError::NoChannel(_)) => {
            return ApiError::not_found(format!("no channel {slug:?}")).into_response();
        }
        Err(JoinError::Store(e)) => return ApiError::from(e).into_response(),
        Err(other) => return ApiError::internal(other).into_response(),
    };
    let shutdown = state.ctx.shutdown.clone();
    let client_queue = state.ctx.chat.config().client_queue;
    // Under the request's span (and the connection's, with the peer), so the socket's logs
    // say whose it is after the upgrade leaves the request behind. Tracked, so shutdown
    // waits for the goodbye frame.
    let span = tracing::info_span!("chat", channel = %slug);
    state.ctx.tasks.spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    crate::chat::serve_socket(upgraded, membership, shutdown, client_queue).await
                }
                Err(e) => tracing::debug!(error = %e, "chat upgrade failed"),
            }
        }
        .instrument(span),
    );
    response
}

/// A channel's chat messages, newest first (deleted ones left out).
#[utoipa::path(
    get,
    path = "/channels/{slug}/messages",
    tag = "chat",
    params(("slug" = String, Path, description = "The channel's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of messages", body = Page<Message>),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn messages(
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Message>>, ApiError> {
    let page = query.page()?;
    let channel = channel(&state, &slug).await?;
    let (rows, total) = state.store().list_chat_messages(channel.id, page).await?;
    Ok(Json(Page::new(
        rows.into_iter().map(Message::from).collect(),
        total,
        page,
    )))
}

/// The danmaku of a replay between two positions, in order, to draw them at the moment they
/// appeared live. Their `offset_ms` is the position in the replay: the live's clock, plus, for
/// a publisher that came back within the republish grace, where its part of the replay begins.
#[utoipa::path(
    get,
    path = "/recordings/{id}/danmaku",
    tag = "chat",
    params(("id" = i64, Path, description = "The recording's id"), DanmakuRange),
    responses(
        (status = 200, description = "Danmaku in offset order (at most 5000)", body = Vec<Message>),
        (status = 400, response = super::problem::BadRequest),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn danmaku(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
    Query(range): Query<DanmakuRange>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let from = range.from_ms.unwrap_or(0);
    let to = range.to_ms.unwrap_or(i64::MAX);
    if from < 0 {
        return Err(ApiError::invalid_field("from_ms", "must be at least 0"));
    }
    if to < from {
        return Err(ApiError::invalid_field(
            "to_ms",
            "must not be below from_ms",
        ));
    }
    state
        .store()
        .recording_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no recording {id}")))?;
    super::videos::check_replay_access(&state, id, &headers).await?;
    let rows = state
        .store()
        .recording_danmaku(id, from, to, DANMAKU_LIMIT)
        .await?;
    Ok(Json(
        rows.into_iter()
            .filter(|m| m.kind == MessageKind::Danmaku)
            .map(Message::from)
            .collect(),
    ))
}

/// The gifts that can be sent, cheapest first.
#[utoipa::path(
    get,
    path = "/gifts",
    tag = "chat",
    responses((status = 200, description = "The catalogue", body = Vec<Gift>))
)]
pub async fn gifts(State(state): State<ApiState>) -> Result<Json<Vec<Gift>>, ApiError> {
    let gifts = state.store().list_gifts().await?;
    Ok(Json(
        gifts
            .into_iter()
            .map(|g| Gift {
                id: g.id,
                name: g.name,
                price: g.price,
            })
            .collect(),
    ))
}

/// My wallet.
#[utoipa::path(
    get,
    path = "/me/wallet",
    tag = "chat",
    security(("bearer" = [])),
    responses((status = 200, description = "The balance", body = Wallet))
)]
pub async fn wallet(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Wallet>, ApiError> {
    let balance = state.store().wallet_balance(caller.user().id).await?;
    Ok(Json(Wallet {
        user_id: caller.user().id,
        balance,
    }))
}

/// Sends a gift in a channel, paid from my wallet; the room sees it. A retry with the same
/// `idempotency_key` answers the original send and charges nothing.
#[utoipa::path(
    post,
    path = "/channels/{slug}/gifts",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = SendGiftBody,
    responses(
        (status = 201, description = "Sent", body = GiftSent),
        (status = 200, description = "The key was used before: the original send", body = GiftSent),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, response = super::problem::Conflict),
        (status = 422, response = super::problem::Unprocessable),
    )
)]
pub async fn send_gift(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<SendGiftBody>,
) -> Result<Response, ApiError> {
    let channel = channel(&state, &slug).await?;
    let user = chat_user(&caller);
    let sent = state
        .ctx
        .chat
        .send_gift(
            &channel,
            &user,
            body.gift_id,
            body.count.unwrap_or(1),
            body.idempotency_key,
        )
        .await;
    match sent {
        Ok((GiftOutcome::Sent { event, balance }, _)) => Ok((
            StatusCode::CREATED,
            axum::Json(GiftSent {
                id: event.id,
                value: event.value,
                balance: Some(balance),
                replayed: false,
            }),
        )
            .into_response()),
        Ok((GiftOutcome::Replayed { event }, _)) => Ok(axum::Json(GiftSent {
            id: event.id,
            value: event.value,
            balance: None,
            replayed: true,
        })
        .into_response()),
        Ok((GiftOutcome::InsufficientBalance { .. }, _)) => {
            Err(ApiError::conflict("insufficient balance"))
        }
        Err(GiftError::Refused(r)) => Err(match r.code {
            ErrorCode::InsufficientBalance => ApiError::conflict(r.message),
            ErrorCode::UnknownGift => ApiError::unprocessable(r.message),
            ErrorCode::Invalid => ApiError::unprocessable(r.message),
            ErrorCode::StoreUnavailable => ApiError::unavailable(r.message),
            ErrorCode::NotFound => ApiError::not_found(r.message),
            ErrorCode::KeyInUse => ApiError::conflict(r.message),
            // The sender may not gift here (now): theirs to fix or wait out.
            ErrorCode::Muted | ErrorCode::ChannelBanned | ErrorCode::Banned => {
                ApiError::forbidden(r.message)
            }
            _ => ApiError::internal(r.message),
        }),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// Adds coins to a user's wallet (admins; recorded in the audit log).
#[utoipa::path(
    post,
    path = "/admin/users/{id}/wallet",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The user's id")),
    request_body = Credit,
    responses(
        (status = 200, description = "The new balance", body = Wallet),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn credit(
    State(state): State<ApiState>,
    admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<Credit>,
) -> Result<Json<Wallet>, ApiError> {
    if !(1..=1_000_000_000).contains(&body.amount) {
        return Err(ApiError::invalid_field("amount", "must be 1 to 1000000000"));
    }
    if body.reason.chars().count() > 200 {
        return Err(ApiError::invalid_field("reason", "at most 200 characters"));
    }
    let balance = state
        .store()
        .credit_wallet(id, body.amount, Some(admin.user().id), &body.reason)
        .await?;
    state
        .audit(
            admin.user().id,
            "wallet.credit",
            format!("user:{id}"),
            serde_json::json!({ "amount": body.amount, "reason": body.reason, "balance": balance }),
        )
        .await;
    Ok(Json(Wallet {
        user_id: id,
        balance,
    }))
}

/// Deletes a chat message (the channel's owner or an admin); open connections are told.
#[utoipa::path(
    delete,
    path = "/channels/{slug}/messages/{id}",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), ("id" = i64, Path, description = "The message's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn delete_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let channel = moderated(&state, &caller, &slug).await?;
    state
        .ctx
        .chat
        .delete_message(&channel, id, caller.user().id)
        .await
        .map_err(moderation_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mutes a user in a channel for a time (the channel's owner or an admin).
#[utoipa::path(
    post,
    path = "/channels/{slug}/mutes",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = Mute,
    responses(
        (status = 204, description = "Muted"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn mute(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<Mute>,
) -> Result<StatusCode, ApiError> {
    if !(1..=30 * 24 * 3600).contains(&body.seconds) {
        return Err(ApiError::invalid_field("seconds", "must be 1 to 2592000"));
    }
    let channel = moderated(&state, &caller, &slug).await?;
    let until = Utc::now() + Duration::from_secs(body.seconds);
    state
        .ctx
        .chat
        .mute(&channel, body.user_id, until, caller.user().id)
        .await
        .map_err(moderation_error)?;
    state
        .audit(
            caller.user().id,
            "chat.mute",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "user_id": body.user_id, "until": until }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Bans a user from a channel's chat (the channel's owner or an admin).
#[utoipa::path(
    post,
    path = "/channels/{slug}/bans",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = Ban,
    responses(
        (status = 204, description = "Banned"),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn ban(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<Ban>,
) -> Result<StatusCode, ApiError> {
    let channel = moderated(&state, &caller, &slug).await?;
    state
        .ctx
        .chat
        .ban(&channel, body.user_id, caller.user().id)
        .await
        .map_err(moderation_error)?;
    state
        .audit(
            caller.user().id,
            "chat.ban",
            format!("channel:{}", channel.slug),
            serde_json::json!({ "user_id": body.user_id }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a user's mute in a channel (the channel's owner or an admin; recorded in the audit
/// log); open connections are told.
#[utoipa::path(
    delete,
    path = "/channels/{slug}/mutes/{user_id}",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), ("user_id" = i64, Path, description = "The muted user")),
    responses(
        (status = 204, description = "The mute is lifted"),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn unmute(
    State(state): State<ApiState>,
    caller: Caller,
    Path((slug, user_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &caller, &slug, user_id, Lift::Mute).await
}

/// Which restriction [`lift`] ends.
#[derive(Clone, Copy)]
enum Lift {
    Mute,
    Ban,
}

/// Ends a user's mute or ban in a channel for its owner or an admin, tells open connections,
/// and records it; 404 when there was nothing to lift.
async fn lift(
    state: &ApiState,
    caller: &Caller,
    slug: &str,
    user_id: i64,
    what: Lift,
) -> Result<StatusCode, ApiError> {
    let channel = moderated(state, caller, slug).await?;
    let chat = &state.ctx.chat;
    let (lifted, action, missing) = match what {
        Lift::Mute => (
            chat.unmute(&channel, user_id).await,
            "chat.unmute",
            "muted in",
        ),
        Lift::Ban => (
            chat.unban(&channel, user_id).await,
            "chat.unban",
            "banned from",
        ),
    };
    if !lifted.map_err(moderation_error)? {
        return Err(ApiError::not_found(format!(
            "user {user_id} is not {missing} this channel"
        )));
    }
    state
        .audit(
            caller.user().id,
            action,
            format!("channel:{}", channel.slug),
            serde_json::json!({ "user_id": user_id }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a user's ban from a channel's chat (the channel's owner or an admin; recorded in the
/// audit log); open connections are told.
#[utoipa::path(
    delete,
    path = "/channels/{slug}/bans/{user_id}",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug"), ("user_id" = i64, Path, description = "The banned user")),
    responses(
        (status = 204, description = "The ban is lifted"),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn unban(
    State(state): State<ApiState>,
    caller: Caller,
    Path((slug, user_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &caller, &slug, user_id, Lift::Ban).await
}

/// Sets a channel's slow mode (the channel's owner or an admin); stored, so it outlives a
/// restart. 0 turns it off.
#[utoipa::path(
    put,
    path = "/channels/{slug}/slow-mode",
    tag = "chat",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The channel's slug")),
    request_body = SlowMode,
    responses(
        (status = 204, description = "Set"),
        (status = 400, response = super::problem::BadRequest),
        (status = 403, response = super::problem::Forbidden),
        (status = 404, response = super::problem::NotFound),
    )
)]
pub async fn slow_mode(
    State(state): State<ApiState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<SlowMode>,
) -> Result<StatusCode, ApiError> {
    if body.seconds > 3600 {
        return Err(ApiError::invalid_field("seconds", "at most 3600"));
    }
    let channel = moderated(&state, &caller, &slug).await?;
    let interval = (body.seconds > 0).then(|| Duration::from_secs(body.seconds));
    state.ctx.chat.set_slow_mode(&channel, interval).await?;
    Ok(StatusCode::NO_CONTENT)
}
