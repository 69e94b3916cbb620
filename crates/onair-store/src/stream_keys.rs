//! Stream keys: [`StreamKey`] rows, one per issued key JWT, named by its `jti`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::page::Page;
use crate::store::{Store, db_time, now};

macro_rules! stream_key_columns {
    () => {
        "id, channel_id, jti, label, created_at, revoked_at, last_used_at"
    };
}

/// The record of an issued stream key. The key itself (the signed JWT) is never stored: only
/// its `jti`, so revoking works without keeping a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StreamKey {
    /// Its id.
    pub id: i64,
    /// The channel the key publishes to.
    pub channel_id: i64,
    /// The JWT id the key carries; unique.
    pub jti: String,
    /// The owner's name for it ("OBS at home"); may be empty.
    pub label: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key never publishes again.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authorised a publish.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a publish with a key may do: the key's row joined with its channel and the channel's
/// owner, read in one query so the answer is consistent.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PublishGrant {
    /// The key's jti.
    pub jti: String,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The channel the key publishes to.
    pub channel_id: i64,
    /// The channel's public name, which the stream goes live under.
    pub channel_slug: String,
    /// The channel's owner.
    pub owner_id: i64,
    /// Whether the owner is banned.
    pub owner_banned: bool,
    /// The owner's role now; a viewer (say, a streamer demoted by an admin) may not publish.
    pub owner_role: crate::Role,
}

impl PublishGrant {
    /// Whether the key may publish now: not revoked, and its owner neither banned nor a
    /// viewer.
    pub fn allows_publish(&self) -> bool {
        self.revoked_at.is_none() && !self.owner_banned && self.owner_role != crate::Role::Viewer
    }
}

impl StreamKey {
    /// Whether the key has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Stream keys.
impl Store {
    /// Records a newly issued key for `channel_id`.
    ///
    /// [`StoreError::Conflict`] when the jti is already recorded; [`StoreError::NotFound`] when
    /// the channel does not exist.
    pub async fn create_stream_key(
        &self,
        channel_id: i64,
        jti: &str,
        label: &str,
    ) -> Result<StreamKey, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO stream_keys (channel_id, jti, label, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
            stream_key_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, StreamKey>(SQL)
                .bind(channel_id)
                .bind(jti)
                .bind(label)
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("stream key jti {jti:?}"))
        .on_missing_reference(|| format!("channel {channel_id}"))
    }

    /// The key with this jti, revoked or not.
    pub async fn stream_key_by_jti(&self, jti: &str) -> Result<Option<StreamKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            stream_key_columns!(),
            " FROM stream_keys WHERE jti = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, StreamKey>(SQL)
                .bind(jti)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// The key with this jti together with its channel and owner; `None` when the jti is
    /// unknown (never issued here, or its channel was deleted).
    pub async fn publish_grant(&self, jti: &str) -> Result<Option<PublishGrant>, StoreError> {
        const SQL: &str = "SELECT k.jti, k.revoked_at, c.id AS channel_id, c.slug AS channel_slug, \
             c.owner_id, u.banned AS owner_banned, u.role AS owner_role \
             FROM stream_keys k JOIN channels c ON c.id = k.channel_id JOIN users u ON u.id = c.owner_id \
             WHERE k.jti = $1";
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, PublishGrant>(SQL)
                .bind(jti)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Every key of a channel, revoked ones included, oldest first.
    pub async fn list_stream_keys(&self, channel_id: i64) -> Result<Vec<StreamKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            stream_key_columns!(),
            " FROM stream_keys WHERE channel_id = $1 ORDER BY id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, StreamKey>(SQL)
                .bind(channel_id)
                .fetch_all(pool)
                .await
        })?)
    }

    /// One page of a channel's keys, revoked ones included, oldest first, with how many it
    /// has in all. A channel's keys only grow (every rotation leaves the old key's row), so
    /// the API pages them here rather than in memory.
    pub async fn stream_keys_page(
        &self,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<StreamKey>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            stream_key_columns!(),
            " FROM stream_keys WHERE channel_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = "SELECT COUNT(*) FROM stream_keys WHERE channel_id = $1";
        self.channel_page(SQL, COUNT, channel_id, page).await
    }

    /// Revokes the key at `at`: `true` if this call revoked it, `false` if it was unknown or
    /// already revoked (the first revocation time stays).
    pub async fn revoke_stream_key(
        &self,
        jti: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE stream_keys SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL";
        let at = db_time(at);
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(jti)
                .bind(at)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Records that the key authorised a publish at `at`; `false` if the key is unknown.
    pub async fn touch_stream_key(&self, jti: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE stream_keys SET last_used_at = $2 WHERE jti = $1";
        let at = db_time(at);
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(jti)
                .bind(at)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }
}
