//! The REST API under `/api/v1`, and its OpenAPI 3.1 document at `/api/openapi.json`.
//!
//! | concern | how |
//! | --- | --- |
//! | routes and document | one list ([`routes`]): utoipa-axum's `OpenApiRouter` builds the axum router and the document from the same `#[utoipa::path]` handlers, so neither can miss a route |
//! | errors | [`ApiError`](problem::ApiError) → `application/problem+json` (RFC 9457) with a stable `type` per kind; causes of 500/503 are logged in the request span, never sent |
//! | input | [`extract::Json`], [`extract::Query`], [`extract::Path`] answer 400 naming the field; [`validate::Checks`] holds the rules |
//! | who | [`session`]: bearer access tokens checked against the store on every request; roles viewer < streamer < admin |
//! | logins | [`rate_limit::LoginLimiter`]: refused past a limit per client address (from the socket); delayed, never refused, past a limit of failures per account |
//! | audit | every admin write and every key issue, revoke and rotate is recorded ([`ApiState::audit`]) |
//!
//! Roles: anyone reaches `/channels`; any signed-in account `/auth/*`; streamers and admins
//! `/me/*` (their own channels only: another's channel answers 404, as if it did not exist);
//! admins `/admin/*`.

mod account;
mod admin;
mod chat;
mod directory;
pub mod extract;
mod me;
pub mod model;
pub use crate::problem;
pub mod rate_limit;
mod replays;
mod restreams;
pub mod session;
mod uploads;
pub mod validate;
mod videos;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use onair_chat::ChatService;
use onair_hub::Hub;
use onair_store::Store;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::model::{IssuedStreamKey, StreamKey};
use self::problem::{ApiError, FieldError, Problem};
use self::rate_limit::LoginLimiter;
use crate::config::RtmpConfig;
use crate::hls::Hls;
use crate::lives::Lives;
use crate::platform::Platform;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// Where tus uploads are created and discovered (`OPTIONS`).
pub const UPLOADS_PATH: &str = "/api/v1/uploads";

/// The tus discovery headers (`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`), for the
/// server's answer to `OPTIONS /api/v1/uploads`, which the CORS layer gives.
pub fn tus_discovery_headers(headers: &mut axum::http::HeaderMap, max_upload_bytes: u64) {
    uploads::discovery_headers(headers, max_upload_bytes);
}

/// Largest request body the API reads; every body it takes is a few hundred bytes.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// What the API handlers may touch of the server, given by the server when it builds the
/// router.
#[derive(Debug)]
pub struct ApiContext {
    /// The store and signing key.
    pub platform: Arc<Platform>,
    /// Live state of channels; kicks.
    pub hub: Arc<Hub>,
    /// The publishes live on this node, tied to their keys.
    pub lives: Arc<Lives>,
    /// Every channel's chat room.
    pub chat: Arc<ChatService>,
    /// Replay files and the retention policy.
    pub hls: Arc<Hls>,
    /// Resumable uploads.
    pub uploads: Arc<crate::vod::uploads::Uploads>,
    /// `[rtmp]`: the server URL publishers are told (`rtmp.public_url`).
    pub rtmp: RtmpConfig,
    /// `auth.login_attempts_per_minute`.
    pub login_attempts_per_minute: u32,
    /// Cancelled at shutdown: chat sockets say goodbye.
    pub shutdown: CancellationToken,
    /// Tracks chat socket tasks.
    pub tasks: TaskTracker,
    /// The pushes to restream destinations: their status, starts and stops.
    pub restreams: Arc<crate::restream::Restreams>,
}

/// What the API handlers share: their context, the login limiter and the document.
#[derive(Clone)]
pub struct ApiState {
    ctx: Arc<ApiContext>,
    limiter: Arc<LoginLimiter>,
    openapi: Bytes,
}

impl ApiState {
    /// The store and signing key.
    pub fn platform(&self) -> &Platform {
        &self.ctx.platform
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.ctx.platform.store()
    }

    /// The login limiter.
    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// Whether `slug` is live on this node now.
    pub fn is_live(&self, slug: &str) -> bool {
        self.ctx.hub.is_live(slug)
    }

    /// Every live stream on this node with its figures, busiest first.
    pub fn live_now(&self) -> Vec<crate::lives::LiveStream> {
        self.ctx.lives.snapshot(&self.ctx.hub)
    }

    /// Ends the live publish on `slug`, whatever its key.
    pub fn kick_channel(&self, slug: &str) -> bool {
        self.ctx.hub.kick(slug)
    }

    /// Records an action in the audit log. The action has happened by then (a key issued is
    /// shown once and must reach its owner), so a failed write is logged, not answered.
    pub async fn audit(&self, actor: i64, action: &str, target: String, detail: serde_json::Value) {
        if let Err(e) = self
            .store()
            .record_audit(Some(actor), action, &target, &detail)
            .await
        {
            error!(action, target, error = %e, "cannot record an audit entry");
        }
    }

    /// Issues a key for `channel` and records `key.issue`.
    async fn issue_key(
        &self,
        channel: &onair_store::Channel,
        label: &str,
        ttl: Option<Duration>,
        actor: i64,
    ) -> Result<IssuedStreamKey, ApiError> {
        let issued = self.issue_key_quietly(channel, label, ttl).await?;
        self.audit(
            actor,
            "key.issue",
            format!("key:{}", issued.key.jti),
            serde_json::json!({ "channel": channel.slug, "label": issued.key.label, "expires_at": issued.expires_at }),
        )
        .await;
        info!(
            channel = channel.slug,
            jti = issued.key.jti,
            "stream key issued"
        );
        Ok(issued)
    }

    async fn issue_key_quietly(
        &self,
        channel: &onair_store::Channel,
        label: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedStreamKey, ApiError> {
        let issued = self
            .platform()
            .issue_stream_key(channel.id, label, ttl)
            .await?;
        Ok(IssuedStreamKey {
            key: StreamKey::from(issued.row),
            expires_at: issued.expires_at,
            rtmp_url: self.ctx.rtmp.publish_url(),
            stream_key: issued.token.expose().to_owned(),
        })
    }

    /// Revokes `key`, ends a live publish with it, and records `key.revoke`. A key that is
    /// already revoked is a 409 that changes and records nothing; the store's answer decides,
    /// not the row read before, so of two revokes at once exactly one succeeds.
    async fn revoke_key(&self, key: &onair_store::StreamKey, actor: i64) -> Result<(), ApiError> {
        let Some(kicked) = self.revoke_key_quietly(key).await? else {
            return Err(ApiError::conflict(format!(
                "key {} is already revoked",
                key.jti
            )));
        };
        self.audit(
            actor,
            "key.revoke",
            format!("key:{}", key.jti),
            serde_json::json!({ "channel_id": key.channel_id, "kicked": kicked }),
        )
        .await;
        Ok(())
    }

    /// `Some(kicked)` if this call revoked the key.
    async fn revoke_key_quietly(
        &self,
        key: &onair_store::StreamKey,
    ) -> Result<Option<bool>, ApiError> {
        if !self.platform().revoke_stream_key(&key.jti).await? {
            return Ok(None);
        }
        let kicked = crate::lives::kick_key(&self.ctx.lives, &self.ctx.hub, &key.jti);
        info!(jti = key.jti, kicked, "stream key revoked");
        Ok(Some(kicked))
    }

    /// Ends every live publish on a channel owned by `user_id`; returns their names.
    async fn kick_owner(&self, user_id: i64) -> Result<Vec<String>, ApiError> {
        let mut kicked = Vec::new();
        for live in self.live_now() {
            let Some(channel_id) = live.channel_id else {
                continue;
            };
            let owned = self
                .store()
                .channel_by_id(channel_id)
                .await?
                .is_some_and(|c| c.owner_id == user_id);
            if owned && self.kick_channel(&live.channel) {
                kicked.push(live.channel);
            }
        }
        Ok(kicked)
    }
}

/// 201 with a `Location` header and a JSON body.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Marks a response that carries a secret (a token, a stream key) as not cacheable
/// (RFC 6749 §5.1).
pub fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl<T: Serialize> IntoResponse for extract::Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The document's fixed parts; the paths come from [`routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OnAir REST API",
        description = "Accounts, channels, stream keys and live streams of an OnAir server. \
            Errors are `application/problem+json` (RFC 9457) with a stable `type` URI per kind. \
            Authenticate with `Authorization: Bearer <access_token>` from `POST /api/v1/auth/login`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&Conventions),
    components(
        schemas(Problem, FieldError),
        responses(
            problem::BadRequest,
            problem::Unauthorized,
            problem::Forbidden,
            problem::NotFound,
            problem::Conflict,
            problem::Unprocessable,
            problem::TooManyRequests,
            problem::InternalError,
            problem::ServiceUnavailable,
            problem::RequestTimeout,
            problem::PayloadTooLarge,
            problem::UnsupportedMediaType,
        ),
    ),
    tags(
        (name = "auth", description = "Register, log in, refresh, log out"),
        (name = "streamer", description = "A streamer's own channels, keys and live status"),
        (name = "admin", description = "Users, channels, keys, live streams and the audit log"),
        (name = "public", description = "The channel directory; no login"),
        (name = "chat", description = "Chat history, replay danmaku, gifts, wallets and moderation; the chat itself is a WebSocket at /api/v1/channels/{slug}/chat"),
        (name = "videos", description = "The VOD catalogue: videos, comments, views, thumbnails and categories; private videos only for their owner and admins"),
        (name = "uploads", description = "Uploading a video with the tus 1.0.0 resumable upload protocol (creation, expiration, termination); the upload's state as JSON"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// What every operation shares, added once here instead of on every handler: the bearer
/// scheme, 401 on each secured operation, and 500 and 503 on every operation that reaches
/// the store (all but the document itself).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/v1/auth/login (expires; see expires_at)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the shared responses to every operation of `doc` (after the routes are in): 401 on
/// each secured operation; 400 on each with a path or query parameter (a value of the wrong
/// type, an id too large for 64 bits); 408, 413 and 415 on each with a body (the extractor
/// answers them before the handler runs); 500 and 503 everywhere.
fn add_shared_responses(doc: &mut OpenApiDoc) {
    let reference = |name: &str| RefOr::Ref(utoipa::openapi::Ref::from_response_name(name));
    for (path, item) in doc.paths.paths.iter_mut() {
        // The document is served from memory: nothing there can fail or wait on the database.
        if path == OPENAPI_PATH {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            // A key's `{jti}` is any text, so only a numeric id, a slug or a query can be
            // malformed; an unknown jti is a 404.
            let path_checked = path.replace("{jti}", "").contains('{');
            // A header parameter (tus's `Upload-Length`) can be malformed like a query one.
            let query = operation.parameters.as_ref().is_some_and(|p| {
                p.iter().any(|p| {
                    matches!(p, RefOr::T(p) if matches!(
                        p.parameter_in,
                        utoipa::openapi::path::ParameterIn::Query | utoipa::openapi::path::ParameterIn::Header
                    ))
                })
            });
            let parameters = path_checked || query;
            let body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            let mut add = |code: &str, name: &str| {
                responses
                    .entry(code.into())
                    .or_insert_with(|| reference(name));
            };
            if secured {
                add("401", "Unauthorized");
            }
            if parameters || body {
                add("400", "BadRequest");
            }
            if body {
                add("408", "RequestTimeout");
                add("413", "PayloadTooLarge");
                add("415", "UnsupportedMediaType");
            }
            add("500", "InternalError");
            add("503", "ServiceUnavailable");
        }
    }
}

/// Every route of the API: the one list that builds both the router and the document.
pub fn routes() -> OpenApiRouter<ApiState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(account::register))
        .routes(routes!(account::login))
        .routes(routes!(account::refresh))
        .routes(routes!(account::logout))
        .routes(routes!(account::me))
        .routes(routes!(me::list_channels, me::create_channel))
        .routes(routes!(me::channel, me::update_channel, me::delete_channel))
        .routes(routes!(me::list_keys, me::issue_key))
        .routes(routes!(me::revoke_key))
        .routes(routes!(me::rotate_key))
        .routes(routes!(me::live))
        .routes(routes!(me::sessions))
        .routes(routes!(restreams::list, restreams::create))
        .routes(routes!(restreams::update, restreams::delete))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::user, admin::update_user))
        .routes(routes!(admin::list_channels))
        .routes(routes!(admin::channel_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::live))
        .routes(routes!(admin::kick))
        .routes(routes!(admin::audit))
        .routes(routes!(directory::list))
        .routes(routes!(directory::channel))
        .routes(routes!(directory::categories))
        .routes(routes!(replays::list))
        .routes(routes!(replays::recent))
        .routes(routes!(replays::get, replays::delete))
        .routes(routes!(replays::retention, replays::set_retention))
        .routes(routes!(videos::list))
        .routes(routes!(videos::get, videos::update, videos::delete))
        .routes(routes!(videos::thumbnail))
        .routes(routes!(videos::view))
        .routes(routes!(videos::comments, videos::create_comment))
        .routes(routes!(videos::edit_comment, videos::delete_comment))
        .routes(routes!(videos::categories))
        .routes(routes!(videos::create_category))
        .routes(routes!(videos::update_category, videos::delete_category))
        .routes(routes!(videos::latest_replay))
        .routes(routes!(uploads::create, uploads::options))
        .routes(routes!(
            uploads::status,
            uploads::head,
            uploads::append,
            uploads::delete
        ))
        .routes(routes!(chat::messages))
        .routes(routes!(chat::delete_message))
        .routes(routes!(chat::danmaku))
        .routes(routes!(chat::gifts))
        .routes(routes!(chat::wallet))
        .routes(routes!(chat::send_gift))
        .routes(routes!(chat::credit))
        .routes(routes!(chat::mute))
        .routes(routes!(chat::unmute))
        .routes(routes!(chat::ban))
        .routes(routes!(chat::unban))
        .routes(routes!(chat::slow_mode));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(openapi_json))
}

/// The OpenAPI document of the API.
pub fn openapi() -> OpenApiDoc {
    let mut doc = routes().into_openapi();
    add_shared_responses(&mut doc);
    doc
}

/// The API's routes with their state, ready to merge into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>(ctx: ApiContext) -> Router<S> {
    let (router, mut doc) = routes().split_for_parts();
    add_shared_responses(&mut doc);
    // Serialising a document built from static parts cannot fail; an empty body would show
    // at once in the test that fetches it.
    let openapi = Bytes::from(doc.to_pretty_json().unwrap_or_default());
    let limiter = LoginLimiter::new(ctx.login_attempts_per_minute, rate_limit::DEFAULT_CAPACITY);
    let state = ApiState {
        ctx: Arc::new(ctx),
        limiter: Arc::new(limiter),
        openapi,
    };
    router
        .route(
            "/api/v1/channels/{slug}/chat",
            axum::routing::get(chat::socket),
        )
        // Unknown paths under /api answer problem+json too; wildcard routes lose to every
        // real one.
        .route("/api/{*rest}", any(problem::no_such_route))
        .method_not_allowed_fallback(problem::no_such_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(problem::log_causes))
        .with_state(state)
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_json(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
        .into_response()
}
