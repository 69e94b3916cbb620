//! Channels: [`Channel`] and the `channels` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Backend, Store, now};
use crate::users::escape_like;

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

/// What [`Store::search_channels`] keeps; each `None` keeps every channel.
///
/// Text is compared ignoring case with SQL `lower`, which in SQLite folds only ASCII letters
/// (PostgreSQL folds the others as its collation says): "É" and "é" are one letter only there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelSearch {
    /// Channels whose slug, title, category, owner's name or one of whose tags contains this.
    /// `%`, `_` and `\` match themselves.
    pub text: Option<String>,
    /// Channels in this category.
    pub category: Option<String>,
    /// Channels with this tag.
    pub tag: Option<String>,
    /// Only these channels (the ones live now, say).
    pub ids: Option<Vec<i64>>,
}

/// A directory category and how many channels are in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategoryCount {
    /// The category as one of its channels spells it (categories differing only in case are
    /// one).
    pub name: String,
    /// Channels in it.
    pub channels: u64,
}

/// The filter of a channel search, `$1` the text pattern, `$2` the category, `$3` the tag and
/// `$4` a JSON array of ids; a NULL parameter keeps every row. `$tags` is the backend's
/// table of a channel's tags as a column `t.value`, `$ids` its rows of the ids in `$4`.
macro_rules! channel_search {
    ($tags:literal, $ids:literal) => {
        concat!(
            r"($1 IS NULL OR lower(channels.slug) LIKE lower($1) ESCAPE '\'",
            r" OR lower(channels.title) LIKE lower($1) ESCAPE '\'",
            r" OR lower(channels.category) LIKE lower($1) ESCAPE '\'",
            r" OR EXISTS (SELECT 1 FROM ",
            $tags,
            r" WHERE lower(t.value) LIKE lower($1) ESCAPE '\')",
            r" OR EXISTS (SELECT 1 FROM users WHERE users.id = channels.owner_id AND lower(users.username) LIKE lower($1) ESCAPE '\'))",
            " AND ($2 IS NULL OR lower(channels.category) = lower($2))",
            " AND ($3 IS NULL OR EXISTS (SELECT 1 FROM ",
            $tags,
            " WHERE lower(t.value) = lower($3)))",
            " AND ($4 IS NULL OR channels.id IN (",
            $ids,
            "))"
        )
    };
}

/// The search's rows and count, per backend: the SQL differs only in how JSON arrays are
/// read as tables.
macro_rules! channel_search_sql {
    ($tags:literal, $ids:literal) => {
        (
            concat!(
                "SELECT ",
                channel_columns!(),
                " FROM channels WHERE ",
                channel_search!($tags, $ids),
                " ORDER BY channels.id LIMIT $5 OFFSET $6"
            ),
            concat!(
                "SELECT COUNT(*) FROM channels WHERE ",
                channel_search!($tags, $ids)
            ),
        )
    };
}

const POSTGRES_SEARCH: (&str, &str) = channel_search_sql!(
    "jsonb_array_elements_text(channels.tags) AS t(value)",
    "SELECT value::bigint FROM jsonb_array_elements_text($4::jsonb)"
);
const SQLITE_SEARCH: (&str, &str) = channel_search_sql!(
    "json_each(channels.tags) AS t",
    "SELECT value FROM json_each($4)"
);

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

    /// One page of the channels `search` keeps, in creation order, and how many it keeps in all.
    pub async fn search_channels(
        &self,
        search: &ChannelSearch,
        page: Page,
    ) -> Result<(Vec<Channel>, u64), StoreError> {
        let (sql, count) = match self.backend() {
            Backend::Postgres => POSTGRES_SEARCH,
            Backend::Sqlite => SQLITE_SEARCH,
        };
        let pattern = search
            .text
            .as_deref()
            .map(|s| format!("%{}%", escape_like(s)));
        let ids = search.ids.as_ref().map(Json);
        let channels = with_pool!(self, |pool| {
            sqlx::query_as::<_, Channel>(sql)
                .bind(&pattern)
                .bind(&search.category)
                .bind(&search.tag)
                .bind(ids)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(count)
                .bind(&pattern)
                .bind(&search.category)
                .bind(&search.tag)
                .bind(ids)
                .fetch_one(pool)
                .await
        })?;
        Ok((channels, total(count)))
    }

    /// One page of the categories channels are in, the fullest first (then by name), and how
    /// many categories there are. Channels with no category are not counted.
    pub async fn channel_categories(
        &self,
        page: Page,
    ) -> Result<(Vec<CategoryCount>, u64), StoreError> {
        const SQL: &str = "SELECT MIN(category), COUNT(*) FROM channels WHERE category <> '' \
             GROUP BY lower(category) ORDER BY COUNT(*) DESC, lower(category) LIMIT $1 OFFSET $2";
        const COUNT: &str =
            "SELECT COUNT(DISTINCT lower(category)) FROM channels WHERE category <> ''";
        let rows: Vec<(String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(SQL)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| sqlx::query_scalar(COUNT).fetch_one(pool).await)?;
        let categories = rows
            .into_iter()
            .map(|(name, channels)| CategoryCount {
                name,
                channels: total(channels),
            })
            .collect();
        Ok((categories, total(count)))
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
