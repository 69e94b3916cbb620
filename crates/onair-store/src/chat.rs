//! Chat: [`ChatMessage`] rows (chat lines and danmaku), like counters, and channel mutes and
//! bans ([`ChatRestriction`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ResultExt, StoreError};
use crate::page::{Page, total};
use crate::store::{Store, db_time, now};

// The sender's name rides with every row so history needs no second query; a subquery, not a
// join, so the same list serves `RETURNING` in both databases.
macro_rules! message_columns {
    () => {
        "id, channel_id, seq, user_id, \
         (SELECT username FROM users WHERE users.id = chat_messages.user_id) AS username, \
         kind, text, color, mode, live_session_id, offset_ms, created_at, deleted_at, deleted_by"
    };
}

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A line in the chat panel.
    Chat,
    /// A bullet comment drawn over the video.
    Danmaku,
}

impl MessageKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Chat => "chat",
            MessageKind::Danmaku => "danmaku",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for MessageKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "chat" => Ok(MessageKind::Chat),
            "danmaku" => Ok(MessageKind::Danmaku),
            _ => Err(format!("unknown message kind {value:?}")),
        }
    }
}

/// A stored chat line or danmaku.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ChatMessage {
    /// Its id; ids grow in the order messages were stored.
    pub id: i64,
    /// The channel whose room it was sent in.
    pub channel_id: i64,
    /// Its number in the room: 1, 2, 3, … with no gaps, in id order (migration 0010). A
    /// node that has seen `n` knows every message up to `n` is stored.
    pub seq: i64,
    /// Who sent it.
    pub user_id: i64,
    /// The sender's name now.
    pub username: String,
    /// Chat line or danmaku.
    #[sqlx(try_from = "String")]
    pub kind: MessageKind,
    /// The text as sent.
    pub text: String,
    /// Danmaku colour, `#rrggbb`.
    pub color: Option<String>,
    /// Danmaku mode: `scroll`, `top` or `bottom`.
    pub mode: Option<String>,
    /// The live session it was sent during, if the channel was live.
    pub live_session_id: Option<i64>,
    /// Milliseconds from the start of that live session.
    pub offset_ms: Option<i64>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When a moderator deleted it.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Who deleted it.
    pub deleted_by: Option<i64>,
}

/// A message to store with [`Store::insert_chat_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChatMessage {
    /// The room's channel; must exist.
    pub channel_id: i64,
    /// The sender; must exist.
    pub user_id: i64,
    /// Chat line or danmaku.
    pub kind: MessageKind,
    /// The text, already checked by the caller.
    pub text: String,
    /// Danmaku colour.
    pub color: Option<String>,
    /// Danmaku mode: `scroll`, `top` or `bottom`.
    pub mode: Option<String>,
    /// The live session, if live.
    pub live_session_id: Option<i64>,
    /// Milliseconds from the live session's start.
    pub offset_ms: Option<i64>,
}

/// Why a user may not send in a channel now, from [`Store::chat_restriction`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatRestriction {
    /// Banned from the whole platform by an admin.
    pub banned: bool,
    /// Banned from this channel.
    pub channel_banned: bool,
    /// Muted in this channel until then.
    pub muted_until: Option<DateTime<Utc>>,
    /// The sign-in the sender authenticated with has ended: logged out, refreshed, ended by
    /// a ban, or expired. Always false when no sign-in was named.
    pub signed_out: bool,
}

impl ChatRestriction {
    /// Whether nothing stops the user from sending.
    pub fn is_clear(&self) -> bool {
        !self.banned && !self.channel_banned && self.muted_until.is_none() && !self.signed_out
    }
}

#[derive(sqlx::FromRow)]
struct RestrictionRow {
    banned: bool,
    channel_banned: bool,
    muted_until: Option<DateTime<Utc>>,
    signed_out: bool,
}

/// Chat messages, likes and moderation.
impl Store {
    /// Stores a message with the room's next `seq`; [`StoreError::NotFound`] when the channel
    /// or user does not exist.
    ///
    /// The room's counter row is taken first and stays locked until the commit, so concurrent
    /// senders (on any node) are numbered one after the other, and the id, drawn after the
    /// lock, grows with the number.
    pub async fn insert_chat_message(
        &self,
        new: NewChatMessage,
    ) -> Result<ChatMessage, StoreError> {
        const NEXT: &str = "INSERT INTO chat_rooms (channel_id, seq) VALUES ($1, 1) \
             ON CONFLICT (channel_id) DO UPDATE SET seq = chat_rooms.seq + 1 RETURNING seq";
        const SQL: &str = concat!(
            "INSERT INTO chat_messages (channel_id, user_id, kind, text, color, mode, live_session_id, offset_ms, created_at, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
            message_columns!()
        );
        let created_at = now();
        with_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let seq: i64 = sqlx::query_scalar(NEXT)
                    .bind(new.channel_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let stored = sqlx::query_as::<_, ChatMessage>(SQL)
                    .bind(new.channel_id)
                    .bind(new.user_id)
                    .bind(new.kind.as_str())
                    .bind(&new.text)
                    .bind(&new.color)
                    .bind(&new.mode)
                    .bind(new.live_session_id)
                    .bind(new.offset_ms)
                    .bind(created_at)
                    .bind(seq)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(stored)
            }
            .await
        })
        .on_missing_reference(|| format!("channel {} or user {}", new.channel_id, new.user_id))
    }

    /// The last `seq` handed out in a channel's room (0 before its first message).
    pub async fn chat_room_seq(&self, channel_id: i64) -> Result<i64, StoreError> {
        let seq: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT seq FROM chat_rooms WHERE channel_id = $1")
                .bind(channel_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(seq.unwrap_or(0))
    }

    /// A channel's messages numbered `after + 1 ..= through`, deleted ones too (so a reader
    /// can tell a deleted number from one not stored yet), in `seq` order, at most `limit`.
    pub async fn chat_messages_by_seq(
        &self,
        channel_id: i64,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            message_columns!(),
            " FROM chat_messages WHERE channel_id = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(channel_id)
                .bind(after)
                .bind(through)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?)
    }

    /// The last `limit` messages of a channel numbered at most `through` that are not
    /// deleted, oldest first: the history of a room that has delivered up to `through`.
    pub async fn recent_chat_messages_through(
        &self,
        channel_id: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            message_columns!(),
            " FROM chat_messages WHERE channel_id = $1 AND seq <= $2 AND deleted_at IS NULL \
             ORDER BY seq DESC LIMIT $3"
        );
        let mut messages = with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(channel_id)
                .bind(through)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        messages.reverse();
        Ok(messages)
    }

    /// The message with this id, deleted or not.
    pub async fn chat_message_by_id(&self, id: i64) -> Result<Option<ChatMessage>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            message_columns!(),
            " FROM chat_messages WHERE id = $1"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// The last `limit` messages of a channel that are not deleted, oldest first: what a
    /// viewer joining the room sees.
    pub async fn recent_chat_messages(
        &self,
        channel_id: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let (mut messages, _) = self
            .list_chat_messages(channel_id, Page::first(limit))
            .await?;
        messages.reverse();
        Ok(messages)
    }

    /// One page of a channel's messages that are not deleted, newest first, and how many
    /// there are in all.
    pub async fn list_chat_messages(
        &self,
        channel_id: i64,
        page: Page,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            message_columns!(),
            " FROM chat_messages WHERE channel_id = $1 AND deleted_at IS NULL \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let messages = with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(channel_id)
                .bind(page.sql_limit())
                .bind(page.sql_offset())
                .fetch_all(pool)
                .await
        })?;
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM chat_messages WHERE channel_id = $1 AND deleted_at IS NULL",
            )
            .bind(channel_id)
            .fetch_one(pool)
            .await
        })?;
        Ok((messages, total(count)))
    }

    /// The danmaku of a live session with offsets in `from_ms..=to_ms`, in offset order, at
    /// most `limit`; deleted ones are left out.
    pub async fn danmaku_between(
        &self,
        live_session_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            message_columns!(),
            " FROM chat_messages WHERE live_session_id = $1 AND kind = 'danmaku' \
             AND deleted_at IS NULL AND offset_ms >= $2 AND offset_ms <= $3 \
             ORDER BY offset_ms, id LIMIT $4"
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(live_session_id)
                .bind(from_ms)
                .bind(to_ms)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?)
    }

    /// Marks a message deleted by `by` and returns it; `None` when there is no such message
    /// or it was deleted already (the first deletion stays).
    pub async fn delete_chat_message(
        &self,
        id: i64,
        by: i64,
    ) -> Result<Option<ChatMessage>, StoreError> {
        const SQL: &str = concat!(
            "UPDATE chat_messages SET deleted_at = $2, deleted_by = $3 \
             WHERE id = $1 AND deleted_at IS NULL RETURNING ",
            message_columns!()
        );
        let at = now();
        with_pool!(self, |pool| {
            sqlx::query_as::<_, ChatMessage>(SQL)
                .bind(id)
                .bind(at)
                .bind(by)
                .fetch_optional(pool)
                .await
        })
        .on_missing_reference(|| format!("user {by}"))
    }

    /// Adds `count` likes to a channel's counter for a live session (`None`: while not live)
    /// and returns the new total. One row per channel and session, whatever the clicks.
    pub async fn add_likes(
        &self,
        channel_id: i64,
        live_session_id: Option<i64>,
        count: u64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO chat_likes (channel_id, live_session_id, count) VALUES ($1, $2, $3) \
             ON CONFLICT (channel_id, live_session_id) DO UPDATE SET count = chat_likes.count + excluded.count \
             RETURNING count";
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let total_likes: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(SQL)
                .bind(channel_id)
                .bind(live_session_id.unwrap_or(0))
                .bind(count)
                .fetch_one(pool)
                .await
        })
        .on_missing_reference(|| format!("channel {channel_id}"))?;
        Ok(total(total_likes))
    }

    /// A channel's likes during a live session (`None`: while not live).
    pub async fn likes(
        &self,
        channel_id: i64,
        live_session_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        let count: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT count FROM chat_likes WHERE channel_id = $1 AND live_session_id = $2",
            )
            .bind(channel_id)
            .bind(live_session_id.unwrap_or(0))
            .fetch_optional(pool)
            .await
        })?;
        Ok(total(count.unwrap_or(0)))
    }

    /// The live session of a channel that has not ended, newest first: the one chat
    /// messages are tied to.
    pub async fn open_live_session_of(&self, channel_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM live_sessions WHERE channel_id = $1 AND ended_at IS NULL \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(channel_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Mutes a user in a channel until `until` (replacing an earlier mute).
    pub async fn mute_in_channel(
        &self,
        channel_id: i64,
        user_id: i64,
        until: DateTime<Utc>,
        by: Option<i64>,
    ) -> Result<(), StoreError> {
        let until = db_time(until);
        let at = now();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO chat_mutes (channel_id, user_id, until, muted_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id, user_id) \
                 DO UPDATE SET until = excluded.until, muted_by = excluded.muted_by, created_at = excluded.created_at",
            )
            .bind(channel_id)
            .bind(user_id)
            .bind(until)
            .bind(by)
            .bind(at)
            .execute(pool)
            .await
            .map(drop)
        })
        .on_missing_reference(|| format!("channel {channel_id} or user {user_id}"))
    }

    /// Lifts a mute; `true` if there was one.
    pub async fn unmute_in_channel(
        &self,
        channel_id: i64,
        user_id: i64,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM chat_mutes WHERE channel_id = $1 AND user_id = $2")
                .bind(channel_id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Bans a user from a channel's chat; `true` if this call banned them.
    pub async fn ban_in_channel(
        &self,
        channel_id: i64,
        user_id: i64,
        by: Option<i64>,
    ) -> Result<bool, StoreError> {
        let at = now();
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO chat_bans (channel_id, user_id, banned_by, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (channel_id, user_id) DO NOTHING",
            )
            .bind(channel_id)
            .bind(user_id)
            .bind(by)
            .bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .on_missing_reference(|| format!("channel {channel_id} or user {user_id}"))?;
        Ok(done > 0)
    }

    /// Lifts a channel ban; `true` if there was one.
    pub async fn unban_in_channel(
        &self,
        channel_id: i64,
        user_id: i64,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM chat_bans WHERE channel_id = $1 AND user_id = $2")
                .bind(channel_id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// What stops `user_id` from sending in `channel_id` at `at`: a platform ban, a channel
    /// ban, a mute that has not run out, and, when `session` names the jti of the access
    /// token the sender signed in with, that sign-in having ended. One query, read on every
    /// send so a ban or a logout takes effect at once; [`StoreError::NotFound`] when the user
    /// does not exist.
    pub async fn chat_restriction(
        &self,
        channel_id: i64,
        user_id: i64,
        session: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ChatRestriction, StoreError> {
        const SQL: &str = "SELECT u.banned AS banned, \
             EXISTS (SELECT 1 FROM chat_bans b WHERE b.channel_id = $1 AND b.user_id = u.id) AS channel_banned, \
             (SELECT m.until FROM chat_mutes m WHERE m.channel_id = $1 AND m.user_id = u.id AND m.until > $3) AS muted_until, \
             CASE WHEN $4 IS NULL THEN FALSE ELSE NOT EXISTS (SELECT 1 FROM auth_sessions s \
               WHERE s.jti = $4 AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $3) END AS signed_out \
             FROM users u WHERE u.id = $2";
        let at = db_time(at);
        let row = with_pool!(self, |pool| {
            sqlx::query_as::<_, RestrictionRow>(SQL)
                .bind(channel_id)
                .bind(user_id)
                .bind(at)
                .bind(session)
                .fetch_optional(pool)
                .await
        })?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("user {user_id}"),
        })?;
        Ok(ChatRestriction {
            banned: row.banned,
            channel_banned: row.channel_banned,
            muted_until: row.muted_until,
            signed_out: row.signed_out,
        })
    }
}
