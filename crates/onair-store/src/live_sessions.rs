//! Live sessions: one [`LiveSession`] row per publish, from start to end.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::page::Page;
use crate::store::{Store, db_time};

macro_rules! live_session_columns {
    () => {
        "id, channel_id, started_at, ended_at, publisher_addr, video_codec, audio_codec, bytes_in, peak_viewers"
    };
}

/// One publish of a channel, from start to end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LiveSession {
    /// Its id.
    pub id: i64,
    /// The channel that was live.
    pub channel_id: i64,
    /// When the publish started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while live, or when the server stopped without ending it.
    pub ended_at: Option<DateTime<Utc>>,
    /// The publisher's address, `ip:port`.
    pub publisher_addr: String,
    /// The video codec (`h264`, `hevc`, …), if there was video.
    pub video_codec: Option<String>,
    /// The audio codec (`aac`, …), if there was audio.
    pub audio_codec: Option<String>,
    /// Bytes received from the publisher; 0 until the session ends.
    #[sqlx(try_from = "i64")]
    pub bytes_in: u64,
    /// The most viewers at once; 0 until the session ends.
    #[sqlx(try_from = "i64")]
    pub peak_viewers: u64,
}

/// The start of a publish for [`Store::start_live_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLiveSession {
    /// The channel going live; must exist.
    pub channel_id: i64,
    /// When the publish started.
    pub started_at: DateTime<Utc>,
    /// The publisher's address, `ip:port`.
    pub publisher_addr: String,
    /// The video codec, if any.
    pub video_codec: Option<String>,
    /// The audio codec, if any.
    pub audio_codec: Option<String>,
}

/// Live sessions.
impl Store {
    /// Records the start of a publish and returns the session's id;
    /// [`StoreError::NotFound`] when the channel does not exist.
    pub async fn start_live_session(&self, session: NewLiveSession) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO live_sessions (channel_id, started_at, publisher_addr, video_codec, audio_codec) VALUES ($1, $2, $3, $4, $5) RETURNING id";
        let started_at = db_time(session.started_at);
        with_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(SQL)
                .bind(session.channel_id)
                .bind(started_at)
                .bind(&session.publisher_addr)
                .bind(&session.video_codec)
                .bind(&session.audio_codec)
                .fetch_one(pool)
                .await
        })
        .on_missing_reference(|| format!("channel {}", session.channel_id))
    }

    /// Records the end of a publish with its totals: `true` if this call ended it, `false` if
    /// the session is unknown or already ended (the first end stays). Totals beyond
    /// `i64::MAX` are stored as `i64::MAX`.
    pub async fn end_live_session(
        &self,
        id: i64,
        ended_at: DateTime<Utc>,
        bytes_in: u64,
        peak_viewers: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE live_sessions SET ended_at = $2, bytes_in = $3, peak_viewers = $4 WHERE id = $1 AND ended_at IS NULL";
        let ended_at = db_time(ended_at);
        let bytes_in = i64::try_from(bytes_in).unwrap_or(i64::MAX);
        let peak_viewers = i64::try_from(peak_viewers).unwrap_or(i64::MAX);
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(ended_at)
                .bind(bytes_in)
                .bind(peak_viewers)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Records the codecs of a session, which are known only once media flows; `None` leaves
    /// a codec as it is. `false` if the session is unknown.
    pub async fn set_live_session_codecs(
        &self,
        id: i64,
        video_codec: Option<&str>,
        audio_codec: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE live_sessions SET video_codec = COALESCE($2, video_codec), \
             audio_codec = COALESCE($3, audio_codec) WHERE id = $1";
        let changed = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id)
                .bind(video_codec)
                .bind(audio_codec)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// One page of a channel's sessions, newest first, and how many there are in all.
    pub async fn list_live_sessions(
        &self,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<LiveSession>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            live_session_columns!(),
            " FROM live_sessions WHERE channel_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        const COUNT: &str = "SELECT COUNT(*) FROM live_sessions WHERE channel_id = $1";
        self.channel_page(SQL, COUNT, channel_id, page).await
    }

    /// Every session not yet ended, oldest first. At start-up these are left over from a
    /// crash: nothing is live before the server accepts a publish.
    pub async fn open_live_sessions(&self) -> Result<Vec<LiveSession>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            live_session_columns!(),
            " FROM live_sessions WHERE ended_at IS NULL ORDER BY id"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, LiveSession>(SQL).fetch_all(pool).await
        })?)
    }
}
