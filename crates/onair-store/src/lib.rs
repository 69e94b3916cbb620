//! Storage for OnAir on sqlx: PostgreSQL in production, an embedded SQLite file by default.
//!
//! | concern | how |
//! | --- | --- |
//! | two backends (design decision 5) | [`Store`] wraps a `PgPool` or a `SqlitePool`; every query is written once and compiled for each backend |
//! | migrations | `migrations/postgres` and `migrations/sqlite` at the repository root, embedded with `sqlx::migrate!` and run by [`Store::migrate`] |
//! | typed rows | `FromRow` structs read with `query_as`, checked at run time; the one test suite runs against both databases |
//! | time | [`DateTime<Utc>`](chrono::DateTime): `TIMESTAMPTZ` in PostgreSQL, RFC 3339 `TEXT` in SQLite, truncated to microseconds so both give back the same value |
//! | lists and documents | channel tags and audit details are JSON: `JSONB` in PostgreSQL, `TEXT` checked by `json_valid` in SQLite |
//! | constraint errors | unique violations become [`StoreError::Conflict`], missing foreign rows [`StoreError::NotFound`] |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use chrono::Utc;
//! use onair_store::{NewChannel, NewUser, Role, Store};
//!
//! let store = Store::connect("sqlite::memory:").await?;
//! store.migrate().await?;
//! let owner = store
//!     .create_user(NewUser { username: "alice".into(), password_hash: "$argon2id$…".into(), role: Role::Streamer })
//!     .await?;
//! let channel = store
//!     .create_channel(NewChannel { slug: "alice".into(), title: "Alice live".into(), owner_id: owner.id, category: String::new(), tags: vec![] })
//!     .await?;
//! store.create_stream_key(channel.id, "4f1c0d5e9a7b4c2d8e6f1a3b5c7d9e0f", "OBS").await?;
//! assert!(store.revoke_stream_key("4f1c0d5e9a7b4c2d8e6f1a3b5c7d9e0f", Utc::now()).await?);
//! assert!(store.stream_key_by_jti("4f1c0d5e9a7b4c2d8e6f1a3b5c7d9e0f").await?.unwrap().is_revoked());
//! # Ok::<(), onair_store::StoreError>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

/// Runs `$body` with `$pool` bound to the store's pool, within [`store::QUERY_DEADLINE`]. The
/// body is compiled once per backend, so one SQL text and one chain of binds serve both
/// databases.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Postgres($pool) => {
                $crate::store::within_deadline(&$store.calls, async { $body }).await
            }
            $crate::store::Pool::Sqlite($pool) => {
                $crate::store::within_deadline(&$store.calls, async { $body }).await
            }
        }
    };
}

mod audit;
mod auth_sessions;
mod channels;
mod chat;
mod error;
mod gifts;
mod live_sessions;
mod page;
mod recordings;
mod restreams;
mod settings;
mod store;
mod stream_keys;
#[cfg(feature = "test-support")]
pub mod testing;
mod timing;
mod uploads;
mod users;
mod videos;

pub use audit::AuditEntry;
pub use auth_sessions::AuthSession;
pub use channels::{CategoryCount, Channel, ChannelSearch, ChannelUpdate, NewChannel};
pub use chat::{ChatMessage, ChatRestriction, MessageKind, NewChatMessage};
pub use error::StoreError;
pub use gifts::{Gift, GiftEvent, GiftOutcome, SendGift};
pub use live_sessions::{LiveSession, NewLiveSession};
pub use page::Page;
pub use recordings::{NewRecording, Recording, RecordingPart, RecordingState};
pub use restreams::{NewRestream, RestreamDestination, RestreamUpdate};
pub use store::{Backend, DEFAULT_SQLITE_FILE, Store};
pub use stream_keys::{PublishGrant, StreamKey};
pub use timing::{CALL_BUCKETS, CallTimes};
pub use uploads::{NewUpload, Upload, UploadState};
pub use users::{NewUser, Role, UnknownRole, User};
pub use videos::{
    NewVideo, NewVideoComment, Video, VideoCategory, VideoComment, VideoSearch, VideoSort,
    VideoUpdate, Visibility,
};
