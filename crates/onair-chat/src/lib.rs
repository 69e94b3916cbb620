//! Live chat for OnAir: one room per channel with chat lines, danmaku, likes and gifts.
//!
//! | concern | how |
//! | --- | --- |
//! | wire format | [`protocol`]: JSON text frames with `type` and version `v`; every client send gets an `ack` (with the stored id) or an `error` with a code |
//! | nothing lost (design decision 6) | a message is stored, then broadcast, then acked; a store that does not answer gives an `error` frame, never a silent drop |
//! | fan-out | each client has a bounded queue; a broadcast is serialised once and `try_send` to every member (a room of `batch_min_members` or more whose members × broadcasts a second pass `batch_writes_per_second` gathers a window that grows with its size, at most `broadcast_window`, into one queue entry per member, its WebSocket frames encoded once in one buffer); a client whose queue is full is dropped, so it never slows the room |
//! | order | a room's messages are numbered by the store (dense per room, in id order) and go out in that order, held briefly past a gap; with several nodes ([`cluster`]) every node delivers the same order |
//! | limits | per-connection flood guard, per-user rate, slow mode per channel, length; over a limit is an `error` frame, not a disconnect |
//! | moderation | bans and mutes are read from the store on every send (a global ban counts at once); deletions, mutes and bans are announced in `system` frames |
//! | gifts | [`ChatService::send_gift`]: `onair_store::Store::send_gift`, one transaction with an idempotency key |
//! | host | [`ChatHost`]: token checks, video viewers and live state come from the server, so this crate knows neither the hub nor HTTP |
//!
//! The driving loop, over any transport:
//!
//! ```no_run
//! # async fn example(service: std::sync::Arc<onair_chat::ChatService>,
//! #     inbound: futures_util::stream::Empty<onair_chat::Inbound>,
//! #     outbound: futures_util::sink::Drain<onair_chat::Outbound>) {
//! use onair_chat::{Connection, serve};
//! let membership = service.join("demo").await.expect("channel exists");
//! let ended = serve(Connection::new(membership), inbound, outbound, Default::default()).await;
//! # let _ = ended; }
//! ```
#![deny(missing_docs)]

pub mod cluster;
mod connection;
mod limits;
pub mod protocol;
mod service;

pub use cluster::{BusEvent, ChatBus, RoomStats};
pub use connection::{Connection, Delivery, Ended, Inbound, serve, serve_with};
pub use limits::{ChatConfig, Window};
pub use service::{
    Batch, BoxFuture, ChatHost, ChatMetrics, ChatService, ChatUser, FrameText, GiftError,
    JoinError, Membership, ModerationError, Nudge, Offered, Outbound, Refusal, Wire, ws_header,
};
