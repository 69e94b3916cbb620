//! Resumable uploads: one [`Upload`] row per video being uploaded, from its creation until
//! the sweep removes it. The bytes themselves are a file the server keeps; the row says how
//! many of them count, so an upload resumes after a restart.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::store::{Store, db_time, now};
use crate::videos::{NewVideo, Video, Visibility};

macro_rules! upload_columns {
    () => {
        "id, user_id, channel_id, \
         (SELECT slug FROM channels WHERE channels.id = uploads.channel_id) AS channel_slug, \
         title, filename, visibility, length_bytes, received_bytes, state, error, video_id, \
         created_at, updated_at, expires_at"
    };
}

/// How far an upload got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Bytes are still arriving.
    Uploading,
    /// Every byte is in; the file is being imported.
    Processing,
    /// Imported: `video_id` names the video.
    Ready,
    /// The import refused the file; `error` says why.
    Failed,
}

impl UploadState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Processing => "processing",
            UploadState::Ready => "ready",
            UploadState::Failed => "failed",
        }
    }
}

impl fmt::Display for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for UploadState {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "uploading" => Ok(UploadState::Uploading),
            "processing" => Ok(UploadState::Processing),
            "ready" => Ok(UploadState::Ready),
            "failed" => Ok(UploadState::Failed),
            _ => Err(format!("unknown upload state {value:?}")),
        }
    }
}

/// An upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Upload {
    /// Its id, as in `/api/v1/uploads/{id}`; never reused.
    pub id: i64,
    /// Who uploads it: only they (and admins) see it.
    pub user_id: i64,
    /// The channel the video goes to.
    pub channel_id: i64,
    /// That channel's slug.
    pub channel_slug: String,
    /// The video's title.
    pub title: String,
    /// The name the client gave the file, for display only.
    pub filename: String,
    /// The video's visibility.
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    /// The whole file's size (`Upload-Length`).
    #[sqlx(try_from = "i64")]
    pub length_bytes: u64,
    /// Bytes received and kept (`Upload-Offset`).
    #[sqlx(try_from = "i64")]
    pub received_bytes: u64,
    /// How far it got.
    #[sqlx(try_from = "String")]
    pub state: UploadState,
    /// Why it failed.
    pub error: Option<String>,
    /// The video it became.
    pub video_id: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When the sweep removes it (and its bytes) unless it changes before.
    pub expires_at: DateTime<Utc>,
}

/// A new upload for [`Store::create_upload`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUpload {
    /// The uploader; must exist.
    pub user_id: i64,
    /// The channel; must exist.
    pub channel_id: i64,
    /// The video's title.
    pub title: String,
    /// The client's file name.
    pub filename: String,
    /// The video's visibility.
    pub visibility: Visibility,
    /// The file's size, at least 1.
    pub length_bytes: u64,
    /// When it expires unless bytes arrive.
    pub expires_at: DateTime<Utc>,
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Uploads.
impl Store {
    /// Records a new upload with nothing received.
    ///
    /// [`StoreError::NotFound`] when the user or the channel does not exist.
    pub async fn create_upload(&self, new: NewUpload) -> Result<Upload, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO uploads (user_id, channel_id, title, filename, visibility, length_bytes, \
             created_at, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING ",
            upload_columns!()
        );
        let at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Upload>(SQL)
                .bind(new.user_id)
                .bind(new.channel_id)
                .bind(&new.title)
                .bind(&new.filename)
                .bind(new.visibility.as_str())
                .bind(clamp(new.length_bytes))
                .bind(at)
                .bind(db_time(new.expires_at))
                .fetch_one(pool)
                .await
        })
        .on_missing_reference(|| format!("user {} or channel {}", new.user_id, new.channel_id))
    }

    /// The upload with this id.
    pub async fn upload_by_id(&self, id: i64) -> Result<Option<Upload>, StoreError> {
        const SQL: &str = concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Upload>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// How many of `user_id`'s uploads are still receiving bytes.
    pub async fn count_unfinished_uploads(&self, user_id: i64) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM uploads WHERE user_id = $1 AND state = 'uploading'",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records that `received` bytes of an upload are kept, and moves its expiry to
    /// `expires_at`. Reaching the upload's length moves it to `processing` in the same write,
    /// so exactly one caller sees the upload complete. Only an upload still `uploading`
    /// changes; `None` otherwise (gone, or no longer receiving).
    pub async fn set_upload_received(
        &self,
        id: i64,
        received: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<Upload>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE uploads SET received_bytes = $2, expires_at = $3, updated_at = $4, \
             state = CASE WHEN $2 = length_bytes THEN 'processing' ELSE 'uploading' END \
             WHERE id = $1 AND state = 'uploading' AND $2 <= length_bytes RETURNING ",
            upload_columns!()
        );
        let at = now();
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Upload>(SQL)
                .bind(id)
                .bind(clamp(received))
                .bind(db_time(expires_at))
                .bind(at)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Marks an upload being processed as failed with `error`, kept until `expires_at` so
    /// its uploader can read why. `false` when it is not `processing`.
    pub async fn fail_upload(
        &self,
        id: i64,
        error: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = now();
        let changed = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE uploads SET state = 'failed', error = $2, expires_at = $3, updated_at = $4 \
                 WHERE id = $1 AND state = 'processing'",
            )
            .bind(id)
            .bind(error)
            .bind(db_time(expires_at))
            .bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Adds the imported upload's video (with its thumbnail, a path relative to the
    /// recordings root, if one was made) to the catalogue and marks the upload `ready` with
    /// it, in one transaction: either both happen or neither. The upload must be
    /// `processing`; otherwise (deleted meanwhile, or already done) nothing is written and
    /// the answer is [`StoreError::NotFound`]. [`StoreError::NotFound`] too when the
    /// channel is gone.
    pub async fn complete_upload(
        &self,
        id: i64,
        video: NewVideo,
        thumbnail: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> Result<Video, StoreError> {
        let insert = concat!(
            "INSERT INTO videos (channel_id, recording_id, path, title, visibility, duration_ms, size_bytes, \
             video_codec, audio_codec, width, height, created_at, thumbnail) \
             VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            crate::videos::video_columns!()
        );
        let at = now();
        let expires_at = db_time(expires_at);
        let done = with_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let created = sqlx::query_as::<_, Video>(insert)
                    .bind(video.channel_id)
                    .bind(&video.path)
                    .bind(&video.title)
                    .bind(video.visibility.as_str())
                    .bind(clamp(video.duration_ms))
                    .bind(clamp(video.size_bytes))
                    .bind(&video.video_codec)
                    .bind(&video.audio_codec)
                    .bind(video.width.map(i64::from))
                    .bind(video.height.map(i64::from))
                    .bind(at)
                    .bind(thumbnail)
                    .fetch_one(&mut *tx)
                    .await?;
                let marked = sqlx::query(
                    "UPDATE uploads SET state = 'ready', video_id = $2, error = NULL, \
                     expires_at = $3, updated_at = $4 WHERE id = $1 AND state = 'processing'",
                )
                .bind(id)
                .bind(created.id)
                .bind(expires_at)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if marked != 1 {
                    tx.rollback().await?;
                    return Ok::<_, sqlx::Error>(None);
                }
                tx.commit().await?;
                Ok(Some(created))
            }
            .await
        })
        .on_missing_reference(|| format!("channel {}", video.channel_id))?;
        done.ok_or_else(|| StoreError::NotFound {
            what: format!("upload {id} being processed"),
        })
    }

    /// Deletes an upload's row; `false` when there was none.
    pub async fn delete_upload(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted == 1)
    }

    /// Every upload in `state`, oldest first (at start-up: those a stop left `processing`).
    pub async fn uploads_in_state(&self, state: UploadState) -> Result<Vec<Upload>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            upload_columns!(),
            " FROM uploads WHERE state = $1 ORDER BY created_at, id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Upload>(SQL)
                .bind(state.as_str())
                .fetch_all(pool)
                .await
        })?)
    }

    /// Uploads whose expiry is before `at`, except those being processed (an import in
    /// progress is never swept from under itself). At most `limit`, oldest expiry first.
    pub async fn expired_uploads(
        &self,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Upload>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            upload_columns!(),
            " FROM uploads WHERE expires_at < $1 AND state <> 'processing' ORDER BY expires_at, id LIMIT $2"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Upload>(SQL)
                .bind(db_time(at))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?)
    }
}
