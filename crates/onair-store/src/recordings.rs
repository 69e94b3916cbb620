//! Recordings: one [`Recording`] row per recorded live, the replay viewers watch afterwards.
//! The media files live on disk under the server's recordings root, in the row's `path`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::chat::ChatMessage;
use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Store, db_time};

macro_rules! recording_columns {
    () => {
        "id, channel_id, live_session_id, title, path, state, started_at, ended_at, duration_ms, size_bytes, thumbnail"
    };
}

/// A recording anyone may see listed: not a video, or a public one.
macro_rules! listed {
    () => {
        "NOT EXISTS (SELECT 1 FROM videos WHERE videos.recording_id = recordings.id AND videos.visibility <> 'public')"
    };
}

/// How far a recording got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// The live is on and segments are being added.
    Recording,
    /// The live ended (or a crash was recovered) and the replay is complete.
    Finished,
    /// Nothing playable was recorded.
    Failed,
}

impl RecordingState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Finished => "finished",
            RecordingState::Failed => "failed",
        }
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for RecordingState {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "recording" => Ok(RecordingState::Recording),
            "finished" => Ok(RecordingState::Finished),
            "failed" => Ok(RecordingState::Failed),
            _ => Err(format!("unknown recording state {value:?}")),
        }
    }
}

/// A recorded live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Recording {
    /// Its id, as in `/replays/{id}/index.m3u8`.
    pub id: i64,
    /// The channel that was live.
    pub channel_id: i64,
    /// The live session it recorded, while that row exists.
    pub live_session_id: Option<i64>,
    /// The channel's title when the live started.
    pub title: String,
    /// Where its files are, relative to the recordings root; unique.
    pub path: String,
    /// How far it got.
    #[sqlx(try_from = "String")]
    pub state: RecordingState,
    /// When the live started.
    pub started_at: DateTime<Utc>,
    /// When it was finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// Media duration so far, in milliseconds.
    #[sqlx(try_from = "i64")]
    pub duration_ms: u64,
    /// Bytes on disk so far.
    #[sqlx(try_from = "i64")]
    pub size_bytes: u64,
    /// A still image, relative to the recordings root, if one was made.
    pub thumbnail: Option<String>,
}

/// One live session of a recording and where in the replay it starts: the first session at
/// 0, then each session of a publisher that came back within the republish grace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RecordingPart {
    /// The live session.
    pub live_session_id: i64,
    /// Milliseconds into the replay where its media begin.
    pub offset_ms: i64,
}

/// A new recording for [`Store::create_recording`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecording {
    /// The channel going live; must exist.
    pub channel_id: i64,
    /// The live session, if recorded.
    pub live_session_id: Option<i64>,
    /// The title to show.
    pub title: String,
    /// Where its files go, relative to the recordings root; must be unused.
    pub path: String,
    /// When the live started.
    pub started_at: DateTime<Utc>,
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Recordings.
impl Store {
    /// Records the start of a recording, in state `recording`.
    ///
    /// [`StoreError::Conflict`] when the path is taken; [`StoreError::NotFound`] when the
    /// channel (or the live session) does not exist.
    pub async fn create_recording(&self, new: NewRecording) -> Result<Recording, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO recordings (channel_id, live_session_id, title, path, state, started_at) \
             VALUES ($1, $2, $3, $4, 'recording', $5) RETURNING ",
            recording_columns!()
        );
        let started_at = db_time(new.started_at);
        with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL)
                .bind(new.channel_id)
                .bind(new.live_session_id)
                .bind(&new.title)
                .bind(&new.path)
                .bind(started_at)
                .fetch_one(pool)
                .await
        })
        .on_constraint(|| format!("recording path {:?}", new.path))
        .on_missing_reference(|| format!("channel {}", new.channel_id))
    }

    /// The recording with this id.
    pub async fn recording_by_id(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Records progress of a recording still in state `recording`; `false` otherwise.
    pub async fn update_recording_progress(
        &self,
        id: i64,
        duration_ms: u64,
        size_bytes: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE recordings SET duration_ms = $2, size_bytes = $3 \
             WHERE id = $1 AND state = 'recording'";
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(clamp(duration_ms))
                .bind(clamp(size_bytes))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Ends a recording in `state` (finished or failed) with its totals: `true` if this call
    /// ended it, `false` if it is unknown or already ended.
    pub async fn finish_recording(
        &self,
        id: i64,
        state: RecordingState,
        ended_at: DateTime<Utc>,
        duration_ms: u64,
        size_bytes: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE recordings SET state = $2, ended_at = $3, duration_ms = $4, \
             size_bytes = $5 WHERE id = $1 AND state = 'recording'";
        let ended_at = db_time(ended_at);
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(state.as_str())
                .bind(ended_at)
                .bind(clamp(duration_ms))
                .bind(clamp(size_bytes))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Sets (or clears) a recording's thumbnail; `false` if the recording is unknown.
    pub async fn set_recording_thumbnail(
        &self,
        id: i64,
        thumbnail: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE recordings SET thumbnail = $2 WHERE id = $1";
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(thumbnail)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// One page of a channel's recordings, newest first, and how many there are in all.
    pub async fn list_recordings(
        &self,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<Recording>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE channel_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = "SELECT COUNT(*) FROM recordings WHERE channel_id = $1";
        self.channel_page(SQL, COUNT, channel_id, page).await
    }

    /// [`Store::list_recordings`] for anyone: leaves out replays whose video is unlisted or
    /// private.
    pub async fn list_listed_recordings(
        &self,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<Recording>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE channel_id = $1 AND ",
            listed!(),
            " ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = concat!(
            "SELECT COUNT(*) FROM recordings WHERE channel_id = $1 AND ",
            listed!()
        );
        self.channel_page(SQL, COUNT, channel_id, page).await
    }

    /// One page of every channel's playable recordings (finished or still recording), newest
    /// first, and how many there are in all: the directory's "recent replays". Replays whose
    /// video is unlisted or private are not listed.
    pub async fn recent_recordings(&self, page: Page) -> Result<(Vec<Recording>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state <> 'failed' AND ",
            listed!(),
            " ORDER BY started_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        const COUNT: &str = concat!(
            "SELECT COUNT(*) FROM recordings WHERE state <> 'failed' AND ",
            listed!()
        );
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(COUNT).fetch_one(pool).await
        })?;
        Ok((rows, total(count)))
    }

    /// Every recording still in state `recording`, oldest first. At start-up these are left
    /// over from a crash and are finalised from their files.
    pub async fn unfinished_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state = 'recording' ORDER BY id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL).fetch_all(pool).await
        })?)
    }

    /// Every ended recording (finished or failed), by channel and then oldest first: what a
    /// retention policy walks.
    pub async fn ended_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state <> 'recording' ORDER BY channel_id, started_at, id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL).fetch_all(pool).await
        })?)
    }

    /// Records that `live_session_id` continues recording `recording_id` from `offset_ms`
    /// into the replay (a publisher back within the republish grace). Adding a session that
    /// is already a part keeps the first offset; [`StoreError::NotFound`] when the recording
    /// or the session does not exist.
    pub async fn add_recording_part(
        &self,
        recording_id: i64,
        live_session_id: i64,
        offset_ms: u64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO recording_parts (recording_id, live_session_id, offset_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (recording_id, live_session_id) DO NOTHING";
        with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(recording_id)
                .bind(live_session_id)
                .bind(clamp(offset_ms))
                .execute(pool)
                .await
                .map(|_| ())
        })
        .on_missing_reference(|| {
            format!("recording {recording_id} or live session {live_session_id}")
        })?;
        Ok(())
    }

    /// The live sessions of a recording in replay order: its first session (when that row
    /// still exists) at offset 0, then the parts added by [`Store::add_recording_part`].
    pub async fn recording_parts(
        &self,
        recording_id: i64,
    ) -> Result<Vec<RecordingPart>, StoreError> {
        const SQL: &str = "SELECT live_session_id, CAST(0 AS BIGINT) AS offset_ms FROM recordings \
             WHERE id = $1 AND live_session_id IS NOT NULL \
             UNION ALL SELECT live_session_id, offset_ms FROM recording_parts WHERE recording_id = $1 \
             ORDER BY offset_ms, live_session_id";
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, RecordingPart>(SQL)
                .bind(recording_id)
                .fetch_all(pool)
                .await
        })?)
    }

    /// The danmaku drawn over a recording's replay between `from_ms` and `to_ms` (replay
    /// time, both included), in order, at most `limit`. Each message's `offset_ms` is
    /// rewritten from its own live session's clock to the replay's, so a session that
    /// continued the recording after a republish lands after the part before it.
    pub async fn recording_danmaku(
        &self,
        recording_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let mut all = Vec::new();
        for part in self.recording_parts(recording_id).await? {
            let shift = part.offset_ms;
            let mut rows = self
                .danmaku_between(
                    part.live_session_id,
                    from_ms.saturating_sub(shift),
                    to_ms.saturating_sub(shift),
                    limit,
                )
                .await?;
            for row in &mut rows {
                row.offset_ms = row.offset_ms.map(|o| o.saturating_add(shift));
            }
            all.append(&mut rows);
        }
        all.sort_by_key(|m| (m.offset_ms, m.id));
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Deletes a recording's row and returns it, so the caller can delete its files;
    /// `None` if there was none.
    pub async fn delete_recording(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        const SQL: &str = concat!(
            "DELETE FROM recordings WHERE id = $1 RETURNING ",
            recording_columns!()
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, Recording>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }
}
