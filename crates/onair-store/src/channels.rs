//! Channels: [`Channel`] and the `channels` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Store, now};

macro_rules! channel_columns {
    () => {
        "id, slug, title, owner_id, category, tags, created_at"
    };
}

/// A channel: the public name a stream goes live under, and its listing details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Channel {
    /// Its id.
    pub id: i64,
    /// The public name in URLs (`/live/{slug}.flv`); unique.
    pub slug: String,
    /// The title shown in the directory.
    pub title: String,
    /// The owning user.
    pub owner_id: i64,
    /// The directory category; empty when none.
    pub category: String,
    /// Free-form tags, in the order given.
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// When the channel was created.
    pub created_at: DateTime<Utc>,
}

/// A new channel for [`Store::create_channel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChannel {
    /// The public name; must be unused.
    pub slug: String,
    /// The title.
    pub title: String,
    /// The owning user, who must exist.
    pub owner_id: i64,
    /// The category; empty for none.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// The editable details of a channel for [`Store::update_channel`]; `None` keeps the current
/// value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// A new title.
    pub title: Option<String>,
    /// A new category; `Some(String::new())` clears it.
    pub category: Option<String>,
    /// New tags, replacing the old ones.
    pub tags: Option<Vec<String>>,
}

/// Channels.
impl Store {
    /// Creates a channel.
    ///
    /// [`StoreError::Conflict`] when the slug is taken; [`StoreError::NotFound`] when the owner
    /// does not exist.
    pub async fn create_channel(&self, channel: NewChannel) -> Result<Channel, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO channels (slug, title, owner_id, category, tags, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            channel_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(SQL)
                .bind(&channel.slug)
                .bind(&channel.title)
                .bind(channel.owner_id)
                .bind(&channel.category)
                .bind(Json(&channel.tags))
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("channel slug {:?}", channel.slug))
        .on_missing_reference(|| format!("user {}", channel.owner_id))
    }

    /// The channel with this id.
    pub async fn channel_by_id(&self, id: i64) -> Result<Option<Channel>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE id = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// The channel with this slug (exact match).
    pub async fn channel_by_slug(&self, slug: &str) -> Result<Option<Channel>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE slug = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(SQL)
                .bind(slug)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Changes the details `update` sets and returns the channel as it now is;
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn update_channel(
        &self,
        id: i64,
        update: ChannelUpdate,
    ) -> Result<Channel, StoreError> {
        const SQL: &str = concat!(
            "UPDATE channels SET title = COALESCE($2, title), category = COALESCE($3, category), tags = COALESCE($4, tags) WHERE id = $1 RETURNING ",
            channel_columns!()
        );
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(SQL)
                .bind(id)
                .bind(&update.title)
                .bind(&update.category)
                .bind(update.tags.as_ref().map(Json))
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| channel_not_found(id))
    }

    /// One page of channels in creation order, only `owner`'s when given, and how many match
    /// in all.
    pub async fn list_channels(
        &self,
        owner: Option<i64>,
        page: Page,
    ) -> Result<(Vec<Channel>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE ($1 IS NULL OR owner_id = $1) ORDER BY id LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = "SELECT COUNT(*) FROM channels WHERE ($1 IS NULL OR owner_id = $1)";
        let channels = with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(SQL)
                .bind(owner)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(COUNT).bind(owner).fetch_one(pool).await
        })?;
        Ok((channels, total(count)))
    }

    /// Deletes a channel with its stream keys and live sessions; `false` if there was none.
    pub async fn delete_channel(&self, id: i64) -> Result<bool, StoreError> {
        let result = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM channels WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(result == 1)
    }
}

pub(crate) fn channel_not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: format!("channel {id}"),
    }
}
