//! The VOD catalogue: [`Video`] rows (a finished replay now, an upload later), the
//! admin-kept [`VideoCategory`] list, [`VideoComment`]s threaded one level, and view counts.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Backend, Store, db_time, now};
use crate::users::escape_like;

// Owner, channel slug and category slug ride with every row so permission checks and
// listings need no second query; subqueries, not joins, so the same list serves `RETURNING`.
macro_rules! video_columns {
    () => {
        "id, channel_id, \
         (SELECT owner_id FROM channels WHERE channels.id = videos.channel_id) AS owner_id, \
         (SELECT slug FROM channels WHERE channels.id = videos.channel_id) AS channel_slug, \
         recording_id, path, title, description, category_id, \
         (SELECT slug FROM video_categories WHERE video_categories.id = videos.category_id) AS category, \
         tags, visibility, duration_ms, size_bytes, video_codec, audio_codec, width, height, \
         thumbnail, view_count, created_at"
    };
}
pub(crate) use video_columns;

macro_rules! comment_columns {
    () => {
        "id, video_id, user_id, \
         (SELECT username FROM users WHERE users.id = video_comments.user_id) AS username, \
         parent_id, text, created_at, edited_at, deleted_at, \
         (SELECT COUNT(*) FROM video_comments r WHERE r.parent_id = video_comments.id AND r.deleted_at IS NULL) AS reply_count"
    };
}

macro_rules! category_columns {
    () => {
        "id, slug, name, created_at"
    };
}

/// Who may see a video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and served to everyone.
    #[default]
    Public,
    /// Served to anyone with its URL, never listed.
    Unlisted,
    /// Listed and served only to its channel's owner and admins.
    Private,
}

impl Visibility {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
    }

    /// The visibility named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "public" => Some(Visibility::Public),
            "unlisted" => Some(Visibility::Unlisted),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Visibility {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("unknown visibility {value:?}"))
    }
}

/// A video in the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Video {
    /// Its id, as in `/api/v1/videos/{id}`.
    pub id: i64,
    /// The channel it belongs to.
    pub channel_id: i64,
    /// The channel's owner: who may edit and delete it besides admins.
    pub owner_id: i64,
    /// The channel's slug.
    pub channel_slug: String,
    /// The replay it is, as in `/replays/{id}/index.m3u8`; `None` for an upload.
    pub recording_id: Option<i64>,
    /// Its media directory, relative to the recordings root.
    pub path: String,
    /// The title.
    pub title: String,
    /// Free text; empty when none.
    pub description: String,
    /// Its category's id.
    pub category_id: Option<i64>,
    /// Its category's slug.
    pub category: Option<String>,
    /// Free-form tags, in the order given.
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// Who may see it.
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    /// Media duration, in milliseconds.
    #[sqlx(try_from = "i64")]
    pub duration_ms: u64,
    /// Bytes on disk.
    #[sqlx(try_from = "i64")]
    pub size_bytes: u64,
    /// The video codec (`h264`, `hevc`, …), when known.
    pub video_codec: Option<String>,
    /// The audio codec (`aac`, …), when known.
    pub audio_codec: Option<String>,
    /// Picture width in pixels, when known.
    pub width: Option<i64>,
    /// Picture height in pixels, when known.
    pub height: Option<i64>,
    /// A JPEG relative to the recordings root; `None` when there is no thumbnail.
    pub thumbnail: Option<String>,
    /// Views counted so far (once per viewer per rolling hour).
    #[sqlx(try_from = "i64")]
    pub view_count: u64,
    /// When it entered the catalogue.
    pub created_at: DateTime<Utc>,
}

impl Video {
    /// Whether `viewer` (a user id and whether they are an admin; `None` when signed out)
    /// may watch it: anyone for public and unlisted videos, the owner and admins for private
    /// ones.
    pub fn visible_to(&self, viewer: Option<(i64, bool)>) -> bool {
        match self.visibility {
            Visibility::Public | Visibility::Unlisted => true,
            Visibility::Private => {
                viewer.is_some_and(|(user, admin)| admin || user == self.owner_id)
            }
        }
    }
}

/// A new video for [`Store::create_video`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewVideo {
    /// The channel; must exist.
    pub channel_id: i64,
    /// The replay it is, if one; a recording is at most one video.
    pub recording_id: Option<i64>,
    /// Its media directory, relative to the recordings root.
    pub path: String,
    /// The title.
    pub title: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Video codec, when known.
    pub video_codec: Option<String>,
    /// Audio codec, when known.
    pub audio_codec: Option<String>,
    /// Width, when known.
    pub width: Option<u32>,
    /// Height, when known.
    pub height: Option<u32>,
}

/// The editable details of a video for [`Store::update_video`]; `None` keeps the current
/// value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VideoUpdate {
    /// A new title.
    pub title: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new category: `Some(None)` clears it, `Some(Some(id))` sets it (the category must
    /// exist).
    pub category_id: Option<Option<i64>>,
    /// New tags, replacing the old ones.
    pub tags: Option<Vec<String>>,
    /// A new visibility.
    pub visibility: Option<Visibility>,
}

/// The order of a video listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoSort {
    /// Newest first.
    #[default]
    Newest,
    /// Most viewed first, then newest.
    Views,
}

/// What [`Store::search_videos`] keeps. Unlisted videos are never listed; private ones only
/// for their owner (`viewer`) or an admin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VideoSearch {
    /// Videos whose title, description or one of whose tags contains this, ignoring case.
    pub text: Option<String>,
    /// Videos in the category with this slug.
    pub category: Option<String>,
    /// Videos with this tag, ignoring case.
    pub tag: Option<String>,
    /// Only this channel's videos.
    pub channel_id: Option<i64>,
    /// The user listing, to include their own private videos.
    pub viewer: Option<i64>,
    /// Whether the one listing is an admin, who sees every private video.
    pub admin: bool,
    /// The order.
    pub sort: VideoSort,
}

/// A category of the catalogue, kept by admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct VideoCategory {
    /// Its id.
    pub id: i64,
    /// The name in URLs and filters; unique.
    pub slug: String,
    /// The name shown.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A comment on a video.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct VideoComment {
    /// Its id.
    pub id: i64,
    /// The video.
    pub video_id: i64,
    /// Who wrote it.
    pub user_id: i64,
    /// The writer's name now.
    pub username: String,
    /// The top-level comment it answers; `None` for a top-level comment.
    pub parent_id: Option<i64>,
    /// The text.
    pub text: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When its text was last changed.
    pub edited_at: Option<DateTime<Utc>>,
    /// When it was deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Replies that are not deleted (always 0 for a reply).
    #[sqlx(try_from = "i64")]
    pub reply_count: u64,
}

/// A comment to store with [`Store::create_video_comment`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVideoComment {
    /// The video; must exist.
    pub video_id: i64,
    /// The writer; must exist.
    pub user_id: i64,
    /// A top-level comment of the same video that is not deleted, to reply to.
    pub parent_id: Option<i64>,
    /// The text, already checked by the caller.
    pub text: String,
}

/// The filter of a video search: `$1` the text pattern, `$2` the category slug, `$3` the
/// tag, `$4` the channel id, `$5` the viewer's user id, `$6` whether the viewer is an admin.
/// `$tags` is the backend's table of a video's tags as a column `t.value`.
macro_rules! video_search {
    ($tags:literal) => {
        concat!(
            r"($1 IS NULL OR lower(videos.title) LIKE lower($1) ESCAPE '\'",
            r" OR lower(videos.description) LIKE lower($1) ESCAPE '\'",
            r" OR EXISTS (SELECT 1 FROM ",
            $tags,
            r" WHERE lower(t.value) LIKE lower($1) ESCAPE '\'))",
            " AND ($2 IS NULL OR videos.category_id = (SELECT id FROM video_categories WHERE video_categories.slug = $2))",
            " AND ($3 IS NULL OR EXISTS (SELECT 1 FROM ",
            $tags,
            " WHERE lower(t.value) = lower($3)))",
            " AND ($4 IS NULL OR videos.channel_id = $4)",
            " AND (videos.visibility = 'public' OR (videos.visibility = 'private' AND ($6",
            " OR EXISTS (SELECT 1 FROM channels WHERE channels.id = videos.channel_id AND channels.owner_id = $5))))"
        )
    };
}

/// Rows by newest, rows by views and the count, per backend.
macro_rules! video_search_sql {
    ($tags:literal) => {
        (
            concat!(
                "SELECT ",
                video_columns!(),
                " FROM videos WHERE ",
                video_search!($tags),
                " ORDER BY videos.created_at DESC, videos.id DESC LIMIT $7 OFFSET $8"
            ),
            concat!(
                "SELECT ",
                video_columns!(),
                " FROM videos WHERE ",
                video_search!($tags),
                " ORDER BY videos.view_count DESC, videos.created_at DESC, videos.id DESC LIMIT $7 OFFSET $8"
            ),
            concat!("SELECT COUNT(*) FROM videos WHERE ", video_search!($tags)),
        )
    };
}

const POSTGRES_VIDEO_SEARCH: (&str, &str, &str) =
    video_search_sql!("jsonb_array_elements_text(videos.tags) AS t(value)");
const SQLITE_VIDEO_SEARCH: (&str, &str, &str) = video_search_sql!("json_each(videos.tags) AS t");

/// Inserts a video for each finished recording that has none; callers append their filter.
macro_rules! replay_video_insert {
    () => {
        "INSERT INTO videos (channel_id, recording_id, path, title, duration_ms, size_bytes, \
         video_codec, audio_codec, thumbnail, created_at) \
         SELECT r.channel_id, r.id, r.path, r.title, r.duration_ms, r.size_bytes, s.video_codec, \
         s.audio_codec, r.thumbnail, COALESCE(r.ended_at, r.started_at) \
         FROM recordings r LEFT JOIN live_sessions s ON s.id = r.live_session_id \
         WHERE r.state = 'finished' AND NOT EXISTS (SELECT 1 FROM videos v WHERE v.recording_id = r.id)"
    };
}

/// How long one viewer's views of a video count as one.
const VIEW_WINDOW_SECS: i64 = 3600;

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn video_not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: format!("video {id}"),
    }
}

/// Videos.
impl Store {
    /// Adds a video to the catalogue.
    ///
    /// [`StoreError::Conflict`] when the recording is a video already; [`StoreError::NotFound`]
    /// when the channel or the recording does not exist.
    pub async fn create_video(&self, new: NewVideo) -> Result<Video, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO videos (channel_id, recording_id, path, title, visibility, duration_ms, size_bytes, \
             video_codec, audio_codec, width, height, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            video_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(new.channel_id)
                .bind(new.recording_id)
                .bind(&new.path)
                .bind(&new.title)
                .bind(new.visibility.as_str())
                .bind(clamp(new.duration_ms))
                .bind(clamp(new.size_bytes))
                .bind(&new.video_codec)
                .bind(&new.audio_codec)
                .bind(new.width.map(i64::from))
                .bind(new.height.map(i64::from))
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("video of recording {:?}", new.recording_id))
        .on_missing_reference(|| {
            format!(
                "channel {} or recording {:?}",
                new.channel_id, new.recording_id
            )
        })
    }

    /// Makes every finished recording that is not a video yet into one (public, titled as
    /// the recording, codecs from its first live session): run at start, it catches replays
    /// from before the catalogue and any whose finalisation stopped between the two writes.
    /// Returns how many it added.
    pub async fn backfill_replay_videos(&self) -> Result<u64, StoreError> {
        let sql = concat!(
            replay_video_insert!(),
            " ORDER BY r.id ON CONFLICT (recording_id) DO NOTHING"
        );
        let added = with_pool!(self, |pool| {
            sqlx::query(sql)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(added)
    }

    /// The video a finished recording is, adding it to the catalogue first if it is not
    /// there yet; `None` when the recording is unknown or not finished.
    pub async fn ensure_replay_video(
        &self,
        recording_id: i64,
    ) -> Result<Option<Video>, StoreError> {
        let sql = concat!(
            replay_video_insert!(),
            " AND r.id = $1 ON CONFLICT (recording_id) DO NOTHING"
        );
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(recording_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        self.video_by_recording(recording_id).await
    }

    /// The video with this id.
    pub async fn video_by_id(&self, id: i64) -> Result<Option<Video>, StoreError> {
        const SQL: &str = concat!("SELECT ", video_columns!(), " FROM videos WHERE id = $1");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// The video a recording is, if it is one yet.
    pub async fn video_by_recording(&self, recording_id: i64) -> Result<Option<Video>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            video_columns!(),
            " FROM videos WHERE recording_id = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(recording_id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// A channel's newest public replay: what a stable "latest replay" link points at.
    /// Private replays are skipped rather than refused so the link never tells a stranger
    /// one exists, and unlisted ones too: the link is public, so following it would list
    /// an unlisted replay to anyone who knows the channel.
    pub async fn latest_public_replay(&self, channel_id: i64) -> Result<Option<Video>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            video_columns!(),
            " FROM videos WHERE channel_id = $1 AND recording_id IS NOT NULL AND visibility = 'public' \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(channel_id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Changes the details `update` sets and returns the video as it now is;
    /// [`StoreError::NotFound`] for an unknown video or category.
    pub async fn update_video(&self, id: i64, update: VideoUpdate) -> Result<Video, StoreError> {
        const SQL: &str = concat!(
            "UPDATE videos SET title = COALESCE($2, title), description = COALESCE($3, description), \
             category_id = CASE WHEN $4 THEN $5 ELSE category_id END, tags = COALESCE($6, tags), \
             visibility = COALESCE($7, visibility) WHERE id = $1 RETURNING ",
            video_columns!()
        );
        let category = update.category_id;
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(id)
                .bind(&update.title)
                .bind(&update.description)
                .bind(category.is_some())
                .bind(category.flatten())
                .bind(update.tags.as_ref().map(Json))
                .bind(update.visibility.map(Visibility::as_str))
                .fetch_optional(pool)
                .await
        })
        .on_missing_reference(|| format!("category {:?}", category.flatten()))?
        .ok_or_else(|| video_not_found(id))
    }

    /// Sets (or clears) a video's thumbnail; `false` if the video is unknown.
    pub async fn set_video_thumbnail(
        &self,
        id: i64,
        thumbnail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let changed = with_pool!(self, |pool| {
            sqlx::query("UPDATE videos SET thumbnail = $2 WHERE id = $1")
                .bind(id)
                .bind(thumbnail)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Deletes a video's row (with its comments and views) and returns it, so the caller can
    /// delete its files and recording; `None` if there was none.
    pub async fn delete_video(&self, id: i64) -> Result<Option<Video>, StoreError> {
        const SQL: &str = concat!(
            "DELETE FROM videos WHERE id = $1 RETURNING ",
            video_columns!()
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// One page of the videos `search` keeps, in its order, and how many it keeps in all.
    pub async fn search_videos(
        &self,
        search: &VideoSearch,
        page: Page,
    ) -> Result<(Vec<Video>, u64), StoreError> {
        let (newest, views, count) = match self.backend() {
            Backend::Postgres => POSTGRES_VIDEO_SEARCH,
            Backend::Sqlite => SQLITE_VIDEO_SEARCH,
        };
        let sql = match search.sort {
            VideoSort::Newest => newest,
            VideoSort::Views => views,
        };
        let pattern = search
            .text
            .as_deref()
            .map(|s| format!("%{}%", escape_like(s)));
        let videos = with_pool!(self, |pool| {
            sqlx::query_as::<_, Video>(sql)
                .bind(&pattern)
                .bind(&search.category)
                .bind(&search.tag)
                .bind(search.channel_id)
                .bind(search.viewer)
                .bind(search.admin)
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
                .bind(search.channel_id)
                .bind(search.viewer)
                .bind(search.admin)
                .fetch_one(pool)
                .await
        })?;
        Ok((videos, total(count)))
    }

    /// Counts a view of a video by `viewer` (`u:{user id}`, or `a:` and a hash of the client
    /// address) at `at`, unless the same viewer's last counted view was less than an hour
    /// before: `true` if this view counted. The window rolls, so two views a minute apart
    /// across a clock hour count once; the upsert decides in one statement, so racing
    /// requests count once too. Rows past the window are pruned on the way.
    /// [`StoreError::NotFound`] when the video does not exist.
    pub async fn record_video_view(
        &self,
        video_id: i64,
        viewer: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let seen_at = at.timestamp();
        let inserted = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO video_views (video_id, viewer, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (video_id, viewer) DO UPDATE SET seen_at = excluded.seen_at \
                 WHERE video_views.seen_at <= excluded.seen_at - $4",
            )
            .bind(video_id)
            .bind(viewer)
            .bind(seen_at)
            .bind(VIEW_WINDOW_SECS)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .on_missing_reference(|| format!("video {video_id}"))?;
        if inserted == 0 {
            return Ok(false);
        }
        with_pool!(self, |pool| {
            sqlx::query("UPDATE videos SET view_count = view_count + 1 WHERE id = $1")
                .bind(video_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM video_views WHERE seen_at <= $1")
                .bind(seen_at - VIEW_WINDOW_SECS)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(true)
    }
}

/// Categories.
impl Store {
    /// Creates a category; [`StoreError::Conflict`] when the slug is taken.
    pub async fn create_video_category(
        &self,
        slug: &str,
        name: &str,
    ) -> Result<VideoCategory, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO video_categories (slug, name, created_at) VALUES ($1, $2, $3) RETURNING ",
            category_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoCategory>(SQL)
                .bind(slug)
                .bind(name)
                .bind(created_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("category slug {slug:?}"))
    }

    /// Every category, by name.
    pub async fn video_categories(&self) -> Result<Vec<VideoCategory>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            category_columns!(),
            " FROM video_categories ORDER BY lower(name), id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoCategory>(SQL)
                .fetch_all(pool)
                .await
        })?)
    }

    /// The category with this slug.
    pub async fn video_category_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<VideoCategory>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            category_columns!(),
            " FROM video_categories WHERE slug = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoCategory>(SQL)
                .bind(slug)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Renames a category (its slug, its name, or both; `None` keeps one);
    /// [`StoreError::NotFound`] for an unknown id, [`StoreError::Conflict`] for a taken slug.
    pub async fn update_video_category(
        &self,
        id: i64,
        slug: Option<&str>,
        name: Option<&str>,
    ) -> Result<VideoCategory, StoreError> {
        const SQL: &str = concat!(
            "UPDATE video_categories SET slug = COALESCE($2, slug), name = COALESCE($3, name) \
             WHERE id = $1 RETURNING ",
            category_columns!()
        );
        with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoCategory>(SQL)
                .bind(id)
                .bind(slug)
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .on_constraint(|| format!("category slug {slug:?}"))?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("category {id}"),
        })
    }

    /// Deletes a category, leaving its videos with none; `false` if there was none.
    pub async fn delete_video_category(&self, id: i64) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM video_categories WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done == 1)
    }
}

/// Comments.
impl Store {
    /// Stores a comment. [`StoreError::NotFound`] when the video or the writer does not
    /// exist, or when `parent_id` is not a live top-level comment of the same video: threads
    /// are one level deep.
    pub async fn create_video_comment(
        &self,
        new: NewVideoComment,
    ) -> Result<VideoComment, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO video_comments (video_id, user_id, parent_id, text, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM video_comments p \
             WHERE p.id = $3 AND p.video_id = $1 AND p.parent_id IS NULL AND p.deleted_at IS NULL) \
             RETURNING ",
            comment_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoComment>(SQL)
                .bind(new.video_id)
                .bind(new.user_id)
                .bind(new.parent_id)
                .bind(&new.text)
                .bind(created_at)
                .fetch_optional(pool)
                .await
        })
        .on_missing_reference(|| format!("video {} or user {}", new.video_id, new.user_id))?
        .ok_or_else(|| StoreError::NotFound {
            what: format!(
                "top-level comment {:?} of video {}",
                new.parent_id, new.video_id
            ),
        })
    }

    /// The comment with this id, deleted or not.
    pub async fn video_comment_by_id(&self, id: i64) -> Result<Option<VideoComment>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            comment_columns!(),
            " FROM video_comments WHERE id = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoComment>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// One page of a video's top-level comments (`parent` `None`) or of one comment's
    /// replies, oldest first, leaving deleted ones out, and how many there are in all.
    pub async fn list_video_comments(
        &self,
        video_id: i64,
        parent: Option<i64>,
        page: Page,
    ) -> Result<(Vec<VideoComment>, u64), StoreError> {
        const WHERE: &str = "video_id = $1 AND deleted_at IS NULL \
             AND (($2 IS NULL AND parent_id IS NULL) OR parent_id = $2)";
        const SQL: &str = concat!(
            "SELECT ",
            comment_columns!(),
            " FROM video_comments WHERE video_id = $1 AND deleted_at IS NULL \
             AND (($2 IS NULL AND parent_id IS NULL) OR parent_id = $2) \
             ORDER BY id LIMIT $3 OFFSET $4"
        );
        let comments = with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoComment>(SQL)
                .bind(video_id)
                .bind(parent)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count_sql = format!("SELECT COUNT(*) FROM video_comments WHERE {WHERE}");
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(&count_sql)
                .bind(video_id)
                .bind(parent)
                .fetch_one(pool)
                .await
        })?;
        Ok((comments, total(count)))
    }

    /// Replaces a comment's text and returns it; `None` when there is no such comment or it
    /// is deleted.
    pub async fn edit_video_comment(
        &self,
        id: i64,
        text: &str,
    ) -> Result<Option<VideoComment>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE video_comments SET text = $2, edited_at = $3 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
            comment_columns!()
        );
        let at = now();
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoComment>(SQL)
                .bind(id)
                .bind(text)
                .bind(at)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Marks a comment deleted by `by` and returns it; `None` when there is no such comment
    /// or it was deleted already. Its replies are no longer listed with it.
    pub async fn delete_video_comment(
        &self,
        id: i64,
        by: i64,
    ) -> Result<Option<VideoComment>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE video_comments SET deleted_at = $2, deleted_by = $3 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
            comment_columns!()
        );
        let at = db_time(Utc::now());
        with_pool!(self, |pool| {
            sqlx::query_as::<_, VideoComment>(SQL)
                .bind(id)
                .bind(at)
                .bind(by)
                .fetch_optional(pool)
                .await
        })
        .on_missing_reference(|| format!("user {by}"))
    }
}
