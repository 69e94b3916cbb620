//! The request and response bodies of the REST API, with their OpenAPI schemas.
//!
//! Requests refuse unknown fields (a typo is a 400 naming it, not a silent no-op). Bodies that
//! carry a password, an access token or a stream key print `[redacted]` in `Debug`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::lives::LiveStream;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, for every account.
    Admin,
    /// Owns channels and their stream keys.
    Streamer,
    /// Watches (and, later, chats).
    Viewer,
}

impl From<onair_store::Role> for Role {
    fn from(role: onair_store::Role) -> Self {
        match role {
            onair_store::Role::Admin => Role::Admin,
            onair_store::Role::Streamer => Role::Streamer,
            onair_store::Role::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for onair_store::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => onair_store::Role::Admin,
            Role::Streamer => onair_store::Role::Streamer,
            Role::Viewer => onair_store::Role::Viewer,
        }
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// The login name.
    pub username: String,
    /// What it may do.
    pub role: Role,
    /// A banned account cannot log in, call the API or publish.
    pub banned: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<onair_store::User> for User {
    fn from(user: onair_store::User) -> Self {
        User {
            id: user.id,
            username: user.username,
            role: user.role.into(),
            banned: user.banned,
            created_at: user.created_at,
        }
    }
}

/// `POST /auth/login` and `POST /auth/register`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The login name (3–32 of `A-Z a-z 0-9 _ . -`; any case logs in).
    #[schema(example = "alice")]
    pub username: String,
    /// The password (8–128 characters).
    #[schema(example = "correct horse battery staple", format = Password)]
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// An access token, from login, register or refresh.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// When the token stops working; log in again or refresh before.
    pub expires_at: DateTime<Utc>,
    /// Seconds until then (RFC 6749 §5.1).
    pub expires_in: u64,
    /// The account.
    pub user: User,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// `POST /admin/users`.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The login name (3–32 of `A-Z a-z 0-9 _ . -`), unique in any case.
    pub username: String,
    /// The password (8–128 characters).
    #[schema(format = Password)]
    pub password: String,
    /// What the account may do.
    pub role: Role,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("role", &self.role)
            .finish()
    }
}

/// `PATCH /admin/users/{id}`: the fields to change.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new role.
    pub role: Option<Role>,
    /// Ban (ends the account's logins and live streams at once) or unban.
    pub banned: Option<bool>,
}

/// A channel, as its owner and admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Channel {
    /// Its id.
    pub id: i64,
    /// The public name: `rtmp://host/live/{slug}`, `http://host/live/{slug}.flv`.
    pub slug: String,
    /// The title.
    pub title: String,
    /// The owner's account id.
    pub owner_id: i64,
    /// The directory category; empty for none.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether it is live on this server now.
    pub live: bool,
}

impl Channel {
    /// The view of `channel`, live or not.
    pub fn new(channel: onair_store::Channel, live: bool) -> Self {
        Channel {
            id: channel.id,
            slug: channel.slug,
            title: channel.title,
            owner_id: channel.owner_id,
            category: channel.category,
            tags: channel.tags,
            created_at: channel.created_at,
            live,
        }
    }
}

/// `POST /me/channels`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// The public name: 2–64 of `a-z 0-9 _ -`, starting with a letter or digit; unique.
    #[schema(example = "alice")]
    pub slug: String,
    /// The title (1–140 characters).
    #[schema(example = "Alice plays chess")]
    pub title: String,
    /// The category (at most 64 characters).
    #[serde(default)]
    #[schema(example = "games")]
    pub category: String,
    /// At most 10 tags of 1–32 characters.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PATCH /me/channels/{slug}`: the fields to change; at least one.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    /// A new title (1–140 characters).
    pub title: Option<String>,
    /// A new category (at most 64 characters; empty clears it).
    pub category: Option<String>,
    /// New tags, replacing the old ones (at most 10 of 1–32 characters).
    pub tags: Option<Vec<String>>,
}

/// A stream key's record. The key itself is shown once, when it is issued, and never again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamKey {
    /// The key's id: the handle to revoke or rotate it by.
    #[schema(example = "4f1c0d5e9a7b4c2d8e6f1a3b5c7d9e0f")]
    pub jti: String,
    /// The channel it publishes to.
    pub channel_id: i64,
    /// The owner's name for it.
    pub label: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it last started a publish.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key never publishes again.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<onair_store::StreamKey> for StreamKey {
    fn from(key: onair_store::StreamKey) -> Self {
        StreamKey {
            jti: key.jti,
            channel_id: key.channel_id,
            label: key.label,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// `POST /me/channels/{slug}/keys`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStreamKey {
    /// A name for the key ("OBS at home"), at most 64 characters.
    #[serde(default)]
    #[schema(example = "OBS at home")]
    pub label: String,
    /// Lifetime in seconds (60 to ten years); without it, the server's `auth.stream_key_ttl`
    /// (by default: until revoked).
    #[schema(minimum = 60, maximum = 316_224_000)]
    pub ttl_seconds: Option<u64>,
}

/// A newly issued stream key: the only time the key is shown.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedStreamKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: StreamKey,
    /// When the key stops working; `null`: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// OBS "Server": `rtmp://{host}[:port]/{app}`.
    #[schema(example = "rtmp://stream.example.com/live")]
    pub rtmp_url: String,
    /// OBS "Stream Key". Store it now: it is not shown again.
    pub stream_key: String,
}

impl fmt::Debug for IssuedStreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedStreamKey")
            .field("key", &self.key)
            .field("expires_at", &self.expires_at)
            .field("rtmp_url", &self.rtmp_url)
            .field("stream_key", &"[redacted]")
            .finish()
    }
}

/// Viewers by protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Viewers {
    /// RTMP players.
    pub rtmp: u64,
    /// HTTP-FLV players.
    pub http_flv: u64,
    /// WebSocket-FLV players.
    pub ws_flv: u64,
    /// All of them.
    pub total: u64,
}

/// A live stream with its figures now, as its owner and admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveNow {
    /// The channel's slug.
    pub channel: String,
    /// The channel's id (`null` for a `[dev]` static key).
    pub channel_id: Option<i64>,
    /// When the publish started.
    pub started_at: DateTime<Utc>,
    /// Seconds since then.
    pub uptime_seconds: f64,
    /// Media bitrate over the last seconds, kbit/s.
    pub bitrate_kbps: f64,
    /// Video frames per second over the last seconds.
    pub fps: f64,
    /// `h264`, `hevc`, `av1`, …
    pub video_codec: Option<String>,
    /// `aac`, `opus`, …
    pub audio_codec: Option<String>,
    /// Picture width.
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Viewers now.
    pub viewers: Viewers,
    /// The most viewers at once in this publish.
    pub peak_viewers: u64,
    /// Media bytes received in this publish.
    pub bytes_in: u64,
    /// The publisher's address.
    pub publisher_addr: String,
    /// The jti of the key publishing (`null` for a `[dev]` static key).
    pub key_jti: Option<String>,
}

impl From<LiveStream> for LiveNow {
    fn from(live: LiveStream) -> Self {
        LiveNow {
            channel: live.channel,
            channel_id: live.channel_id,
            started_at: live.started_at,
            uptime_seconds: live.uptime_seconds,
            bitrate_kbps: live.bitrate_kbps,
            fps: live.fps,
            video_codec: live.media.video_codec,
            audio_codec: live.media.audio_codec,
            width: live.media.width,
            height: live.media.height,
            viewers: Viewers {
                rtmp: live.viewers.rtmp,
                http_flv: live.viewers.http_flv,
                ws_flv: live.viewers.ws_flv,
                total: live.viewers.total,
            },
            peak_viewers: live.peak_viewers,
            bytes_in: live.bytes_in,
            publisher_addr: live.publisher_addr,
            key_jti: live.key_jti,
        }
    }
}

/// `GET /me/channels/{slug}/live`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveStatus {
    /// Whether the channel is live now.
    pub live: bool,
    /// The stream, when live.
    pub stream: Option<LiveNow>,
}

/// A live stream as anyone may see it: no addresses, no keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PublicLive {
    /// When the publish started.
    pub started_at: DateTime<Utc>,
    /// Seconds since then.
    pub uptime_seconds: f64,
    /// Viewers now, all protocols.
    pub viewers: u64,
    /// `h264`, `hevc`, …
    pub video_codec: Option<String>,
    /// `aac`, `opus`, …
    pub audio_codec: Option<String>,
    /// Picture width.
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Where to watch it.
    pub play: PlayUrls,
}

/// Where a live channel plays, relative to this server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlayUrls {
    /// HTTP-FLV (and WS-FLV with `ws://`), a path on this server.
    #[schema(example = "/live/alice.flv")]
    pub flv: String,
    /// The live HLS playlist, a path on this server; `null` when `hls.enabled` is off.
    #[schema(example = "/live/alice/index.m3u8")]
    pub hls: Option<String>,
}

/// A channel in the public directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PublicChannel {
    /// The public name.
    pub slug: String,
    /// The title.
    pub title: String,
    /// The category; empty for none.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The owner's login name.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The stream, when live now.
    pub live: Option<PublicLive>,
}

/// A directory category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// The category as a channel spells it; `GET /channels?category=` finds its channels in
    /// any case.
    #[schema(example = "Games")]
    pub name: String,
    /// How many channels are in it.
    pub channels: u64,
}

impl From<onair_store::CategoryCount> for Category {
    fn from(c: onair_store::CategoryCount) -> Self {
        Category {
            name: c.name,
            channels: c.channels,
        }
    }
}

/// One past (or current) publish of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveSession {
    /// Its id.
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `null` while live (or when the server stopped without ending it).
    pub ended_at: Option<DateTime<Utc>>,
    /// The publisher's address.
    pub publisher_addr: String,
    /// The video codec, if any.
    pub video_codec: Option<String>,
    /// The audio codec, if any.
    pub audio_codec: Option<String>,
    /// Bytes received.
    pub bytes_in: u64,
    /// The most viewers at once.
    pub peak_viewers: u64,
}

impl From<onair_store::LiveSession> for LiveSession {
    fn from(s: onair_store::LiveSession) -> Self {
        LiveSession {
            id: s.id,
            started_at: s.started_at,
            ended_at: s.ended_at,
            publisher_addr: s.publisher_addr,
            video_codec: s.video_codec,
            audio_codec: s.audio_codec,
            bytes_in: s.bytes_in,
            peak_viewers: s.peak_viewers,
        }
    }
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its id; ids grow in recording order.
    pub id: i64,
    /// Who acted; `null` for the server itself or the CLI.
    pub actor_id: Option<i64>,
    /// What was done: `user.create`, `user.role`, `user.ban`, `user.unban`, `channel.create`,
    /// `channel.update`, `channel.delete`, `key.issue`, `key.revoke`, `key.rotate`, `live.kick`.
    #[schema(example = "key.revoke")]
    pub action: String,
    /// What it was done to: `user:<id>`, `channel:<slug>`, `key:<jti>`.
    #[schema(example = "key:4f1c0d5e9a7b4c2d8e6f1a3b5c7d9e0f")]
    pub target: String,
    /// Details (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<onair_store::AuditEntry> for AuditEntry {
    fn from(e: onair_store::AuditEntry) -> Self {
        AuditEntry {
            id: e.id,
            actor_id: e.actor_id,
            action: e.action,
            target: e.target,
            detail: e.detail,
            created_at: e.created_at,
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items there are in all.
    pub total: u64,
    /// The offset asked for.
    pub offset: u32,
    /// The limit asked for.
    pub limit: u32,
}

impl<T> Page<T> {
    /// A page of `items` out of `total`, at `page`.
    pub fn new(items: Vec<T>, total: u64, page: onair_store::Page) -> Self {
        Page {
            items,
            total,
            offset: page.offset,
            limit: page.limit,
        }
    }
}

/// `GET /admin/users` parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only names containing this, in any case (at most 64 characters).
    pub search: Option<String>,
    /// Items to skip (0 to 1000000; default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Items to return (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// `GET /channels` parameters. The filters combine; an empty one filters nothing.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Only channels whose slug, title, category, owner's name or a tag contains this, in any
    /// case (at most 100 characters; spaces around it are ignored; `%` and `_` are plain
    /// characters).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Only channels in this category, in any case (at most 64 characters).
    #[param(max_length = 64)]
    pub category: Option<String>,
    /// Only channels with this tag, in any case (1 to 32 characters).
    #[param(max_length = 32)]
    pub tag: Option<String>,
    /// `true`: only channels live now, most viewers first. Otherwise every channel, oldest
    /// first, each with its live state.
    pub live: Option<bool>,
    /// Items to skip (0 to 1000000; default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Items to return (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}
