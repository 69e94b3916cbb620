//! The wire format: JSON text frames, each with a `type` and the protocol version `v`.
//!
//! Client → server: [`ClientFrame`] (`auth`, `chat`, `danmaku`, `like`, `gift`). Server →
//! client: [`ServerFrame`] (`history`, `chat`, `danmaku`, `like`, `gift`, `system`,
//! `viewers`, `ack`, `error`). Every client frame may carry a `nonce`, echoed in its `ack` or
//! `error` so a client can match them.

use std::fmt;

use chrono::{DateTime, Utc};
use onair_store::{ChatMessage, MessageKind};
use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const VERSION: u32 = 1;

/// An access token as sent in an `auth` frame. Never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A frame from a client.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ClientFrame {
    /// Protocol version; must be [`VERSION`].
    pub v: u32,
    /// Echoed in the `ack` or `error` for this frame.
    #[serde(default)]
    pub nonce: Option<String>,
    /// What the client asks for.
    #[serde(flatten)]
    pub body: ClientBody,
}

/// What a client frame asks for.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientBody {
    /// Sign in with an access token from `POST /api/v1/auth/login`; needed to send anything.
    Auth {
        /// The access token.
        token: Token,
    },
    /// A chat line.
    Chat {
        /// The text.
        text: String,
    },
    /// A bullet comment over the video.
    Danmaku {
        /// The text.
        text: String,
        /// `#rrggbb`; white when left out.
        #[serde(default)]
        color: Option<String>,
        /// `scroll` (default), `top` or `bottom`.
        #[serde(default)]
        mode: Option<String>,
    },
    /// Likes (counted, then broadcast in batches).
    Like {
        /// How many, 1 to 100; 1 when left out.
        #[serde(default)]
        count: Option<u32>,
    },
    /// A gift, paid from the sender's wallet.
    Gift {
        /// Which gift of the catalogue.
        gift_id: i64,
        /// How many; 1 when left out.
        #[serde(default)]
        count: Option<u32>,
        /// The client's key for this send: a retry with the same key is never charged twice.
        idempotency_key: String,
    },
}

/// Who sent something, as clients see it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Sender {
    /// The account id.
    pub id: i64,
    /// The username.
    pub name: String,
}

/// A chat line or danmaku as broadcast and as listed in `history`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MessageFrame {
    /// The stored id.
    pub id: i64,
    /// The sender.
    pub user: Sender,
    /// The text.
    pub text: String,
    /// Danmaku colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Danmaku mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Danmaku: milliseconds from the start of the live session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
    /// When it was stored.
    pub at: DateTime<Utc>,
}

impl From<&ChatMessage> for MessageFrame {
    fn from(m: &ChatMessage) -> Self {
        MessageFrame {
            id: m.id,
            user: Sender {
                id: m.user_id,
                name: m.username.clone(),
            },
            text: m.text.clone(),
            color: m.color.clone(),
            mode: m.mode.clone(),
            offset_ms: m.offset_ms,
            at: m.created_at,
        }
    }
}

/// One entry of `history`: a message with its kind.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `chat` or `danmaku`.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// The message.
    #[serde(flatten)]
    pub message: MessageFrame,
}

/// A gift as clients see it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GiftInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Coins each.
    pub price: i64,
}

/// What a `system` frame announces.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    /// The channel went live.
    LiveStarted,
    /// The live ended.
    LiveEnded,
    /// A moderator deleted a message: clients remove it.
    MessageDeleted {
        /// Its id.
        message_id: i64,
    },
    /// A user was muted in this channel.
    UserMuted {
        /// Who.
        user_id: i64,
        /// Until when.
        until: DateTime<Utc>,
    },
    /// A user was banned from this channel.
    UserBanned {
        /// Who.
        user_id: i64,
    },
    /// A moderator lifted a user's mute in this channel.
    UserUnmuted {
        /// Who.
        user_id: i64,
    },
    /// A moderator lifted a user's ban from this channel.
    UserUnbanned {
        /// Who.
        user_id: i64,
    },
    /// Slow mode changed: one message per `seconds` per user (0: off).
    SlowMode {
        /// The interval in seconds.
        seconds: u64,
    },
}

/// Why a client frame was refused. Stable names; clients switch on them.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not a known `type`, or a field missing.
    BadFrame,
    /// `v` is not a version this server speaks.
    UnsupportedVersion,
    /// Sending needs an `auth` frame first.
    Unauthenticated,
    /// The token is invalid, expired or revoked.
    InvalidToken,
    /// This connection is signed in as another account.
    AlreadyAuthenticated,
    /// The text is empty.
    Empty,
    /// The text is longer than the limit.
    TooLong,
    /// A field's value is not allowed (colour, mode, count).
    Invalid,
    /// Too many messages from this user; see `retry_after_ms`.
    RateLimited,
    /// Slow mode: wait `retry_after_ms`.
    SlowMode,
    /// Too many frames on this connection; see `retry_after_ms`.
    Flood,
    /// Muted in this channel until `until`.
    Muted,
    /// Banned from this channel.
    ChannelBanned,
    /// The account is banned.
    Banned,
    /// The wallet holds less than the gift costs.
    InsufficientBalance,
    /// No such gift.
    UnknownGift,
    /// Something the send refers to is gone (the channel was deleted, the account removed).
    NotFound,
    /// The idempotency key belongs to a send of this account still in progress; retry.
    KeyInUse,
    /// The store does not answer: nothing was sent. Try again later.
    StoreUnavailable,
    /// Our fault.
    Internal,
}

/// A frame to a client.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Sent once on join: the room's last messages, oldest first.
    History {
        /// The channel.
        channel: String,
        /// The messages.
        messages: Vec<HistoryEntry>,
    },
    /// A chat line.
    Chat(MessageFrame),
    /// A danmaku.
    Danmaku(MessageFrame),
    /// Likes since the last `like` frame.
    Like {
        /// Likes in this batch.
        count: u64,
        /// Likes in this live session so far.
        total: u64,
    },
    /// A gift was sent.
    Gift {
        /// The gift event's id.
        id: i64,
        /// Who sent it.
        user: Sender,
        /// Which gift.
        gift: GiftInfo,
        /// How many.
        count: i64,
        /// Coins in all.
        value: i64,
    },
    /// Something happened in the room.
    System(SystemEvent),
    /// The audience now.
    Viewers {
        /// Video viewers on every protocol.
        video: u64,
        /// Connections to this chat room.
        chat: u64,
        /// Both.
        total: u64,
    },
    /// A client frame was done: stored (with its id) or accepted.
    Ack {
        /// The frame's nonce.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
        /// The stored message or gift event id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
        /// After a gift: the sender's balance (absent on a replayed key).
        #[serde(skip_serializing_if = "Option::is_none")]
        balance: Option<i64>,
        /// After a gift: `true` when the key was used before and nothing was charged.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    /// A client frame was refused; the connection stays open.
    Error {
        /// The frame's nonce.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
        /// Why.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
        /// Muted: until when.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<DateTime<Utc>>,
        /// Rate limits: when to try again.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u32,
    #[serde(flatten)]
    frame: &'a ServerFrame,
}

impl ServerFrame {
    /// The frame as JSON text, `{"v":1,"type":…,…}`.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and every value
        // has a JSON form.
        serde_json::to_string(&Envelope {
            v: VERSION,
            frame: self,
        })
        .unwrap_or_default()
    }

    /// An `error` frame with only a code and message.
    pub fn error(nonce: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            nonce,
            code,
            message: message.into(),
            until: None,
            retry_after_ms: None,
        }
    }
}

/// Parses a client frame.
pub fn parse(text: &str) -> Result<ClientFrame, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_with_their_version_and_nonce() {
        let f = parse(r#"{"type":"chat","v":1,"text":"hi","nonce":"n1"}"#).unwrap();
        assert_eq!(f.v, 1);
        assert_eq!(f.nonce.as_deref(), Some("n1"));
        assert_eq!(f.body, ClientBody::Chat { text: "hi".into() });
        let f = parse(r#"{"type":"gift","v":1,"gift_id":2,"idempotency_key":"k"}"#).unwrap();
        assert!(matches!(
            f.body,
            ClientBody::Gift {
                gift_id: 2,
                count: None,
                ..
            }
        ));
        assert!(parse(r#"{"type":"chat","text":"no version"}"#).is_err());
        assert!(parse(r#"{"type":"shout","v":1}"#).is_err());
    }

    #[test]
    fn tokens_never_print() {
        let f = parse(r#"{"type":"auth","v":1,"token":"eyJsecret"}"#).unwrap();
        assert!(!format!("{f:?}").contains("eyJsecret"));
    }

    #[test]
    fn server_frames_carry_type_and_version() {
        let json = ServerFrame::Like {
            count: 3,
            total: 10,
        }
        .to_json();
        assert_eq!(json, r#"{"v":1,"type":"like","count":3,"total":10}"#);
        let json = ServerFrame::System(SystemEvent::MessageDeleted { message_id: 7 }).to_json();
        assert_eq!(
            json,
            r#"{"v":1,"type":"system","event":"message_deleted","message_id":7}"#
        );
        let json = ServerFrame::error(Some("n".into()), ErrorCode::SlowMode, "wait").to_json();
        assert_eq!(
            json,
            r#"{"v":1,"type":"error","nonce":"n","code":"slow_mode","message":"wait"}"#
        );
    }
}
