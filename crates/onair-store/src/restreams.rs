//! Restream destinations: other RTMP(S) servers a channel's live is pushed to (a CDN's ingest,
//! another platform), each with the target stream key the destination expects.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::{ResultExt, StoreError};
use crate::store::{Store, now};

const COLUMNS: &str = "id, channel_id, name, url, stream_key, enabled, created_at";

/// One destination of a channel's restream.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RestreamDestination {
    /// Its id, as in `/api/v1/channels/{channel}/restreams/{id}`.
    pub id: i64,
    /// The channel whose live it receives.
    pub channel_id: i64,
    /// The owner's name for it ("YouTube", "backup CDN").
    pub name: String,
    /// `rtmp://` or `rtmps://host[:port]/app`, without the key.
    pub url: String,
    /// The stream key the destination expects: a secret, never logged (`Debug` hides it).
    pub stream_key: String,
    /// Whether a live is pushed there.
    pub enabled: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for RestreamDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestreamDestination")
            .field("id", &self.id)
            .field("channel_id", &self.channel_id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("stream_key", &"[redacted]")
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A new destination for [`Store::create_restream`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewRestream {
    /// The channel; must exist.
    pub channel_id: i64,
    /// Its name.
    pub name: String,
    /// The URL without the key.
    pub url: String,
    /// The target stream key.
    pub stream_key: String,
    /// Whether it starts enabled.
    pub enabled: bool,
}

impl fmt::Debug for NewRestream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRestream")
            .field("channel_id", &self.channel_id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("stream_key", &"[redacted]")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// What [`Store::update_restream`] changes: each `Some` field; `None` keeps the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestreamUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new URL.
    pub url: Option<String>,
    /// A new target key.
    pub stream_key: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
}

impl fmt::Debug for RestreamUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestreamUpdate")
            .field("name", &self.name)
            .field("url", &self.url)
            .field(
                "stream_key",
                &self.stream_key.as_ref().map(|_| "[redacted]"),
            )
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Restream destinations.
impl Store {
    /// Adds a destination unless the channel already has `max` of them: `Ok(None)` then.
    /// The count and the insert are one statement; two creates racing for the last place on
    /// PostgreSQL may both get it, which costs one destination over the cap, never a wrong row.
    ///
    /// [`StoreError::NotFound`] when the channel does not exist.
    pub async fn create_restream(
        &self,
        new: NewRestream,
        max: u32,
    ) -> Result<Option<RestreamDestination>, StoreError> {
        let sql = format!(
            "INSERT INTO restream_destinations (channel_id, name, url, stream_key, enabled, created_at) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM restream_destinations WHERE channel_id = $1) < $7 \
             RETURNING {COLUMNS}"
        );
        let at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, RestreamDestination>(&sql)
                .bind(new.channel_id)
                .bind(&new.name)
                .bind(&new.url)
                .bind(&new.stream_key)
                .bind(new.enabled)
                .bind(at)
                .bind(i64::from(max))
                .fetch_optional(pool)
                .await
        })
        .on_missing_reference(|| format!("channel {}", new.channel_id))
    }

    /// The channel's destinations, oldest first.
    pub async fn restreams_of_channel(
        &self,
        channel_id: i64,
    ) -> Result<Vec<RestreamDestination>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM restream_destinations WHERE channel_id = $1 ORDER BY id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, RestreamDestination>(&sql)
                .bind(channel_id)
                .fetch_all(pool)
                .await
        })?)
    }

    /// The destination with this id.
    pub async fn restream_by_id(&self, id: i64) -> Result<Option<RestreamDestination>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM restream_destinations WHERE id = $1");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, RestreamDestination>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Changes a destination; `None` when there is none with this id.
    pub async fn update_restream(
        &self,
        id: i64,
        update: RestreamUpdate,
    ) -> Result<Option<RestreamDestination>, StoreError> {
        let sql = format!(
            "UPDATE restream_destinations SET name = COALESCE($2, name), url = COALESCE($3, url), \
             stream_key = COALESCE($4, stream_key), enabled = COALESCE($5, enabled) \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, RestreamDestination>(&sql)
                .bind(id)
                .bind(update.name.as_deref())
                .bind(update.url.as_deref())
                .bind(update.stream_key.as_deref())
                .bind(update.enabled)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Removes a destination; whether there was one.
    pub async fn delete_restream(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM restream_destinations WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted > 0)
    }
}
