//! One client: [`Connection::handle_text`] answers a client frame, and [`serve`] drives a
//! connection over any `Stream` of [`Inbound`] frames and `Sink` of [`Outbound`] ones (a
//! WebSocket in the server, channels in tests), with the heartbeat.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use onair_store::{GiftOutcome, MessageKind, StoreError};
use tracing::debug;

use crate::limits::Window;
use crate::protocol::{ClientBody, ErrorCode, ServerFrame, VERSION, parse};
use crate::service::{ChatService, ChatUser, GiftError, Membership, Outbound, Refusal};

/// A frame from the client's transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A text frame: one client frame.
    Text(String),
    /// Anything else that shows the client is alive (a pong, a ping, a binary frame).
    Alive,
}

/// A client in a room.
pub struct Connection {
    membership: Membership,
    user: Option<ChatUser>,
    flood: Window,
}

impl Connection {
    /// A connection for a client that joined with `membership` (see [`ChatService::join`]).
    pub fn new(membership: Membership) -> Self {
        Connection {
            membership,
            user: None,
            flood: Window::new(Instant::now()),
        }
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&ChatUser> {
        self.user.as_ref()
    }

    fn service(&self) -> &Arc<ChatService> {
        &self.membership.service
    }

    /// Answers one client frame: the `ack` or `error` (and any broadcast) is queued for the
    /// client, in order after earlier frames. Never fails the connection.
    pub async fn handle_text(&mut self, text: &str) {
        let config = self.service().config.clone();
        if let Err(wait) = self
            .flood
            .hit(Instant::now(), config.flood_frames, config.flood_window)
        {
            let mut refusal = Refusal::new(
                ErrorCode::Flood,
                format!(
                    "at most {} frames per {:?} on one connection",
                    config.flood_frames, config.flood_window
                ),
            );
            refusal.retry_after = Some(wait);
            return self.refuse(None, refusal);
        }
        let frame = match parse(text) {
            Ok(frame) => frame,
            Err(e) => {
                return self.refuse(None, Refusal::new(ErrorCode::BadFrame, e.to_string()));
            }
        };
        let nonce = frame.nonce;
        if frame.v != VERSION {
            return self.refuse(
                nonce,
                Refusal::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "protocol version {} is not spoken here; use {VERSION}",
                        frame.v
                    ),
                ),
            );
        }
        if let ClientBody::Auth { token } = frame.body {
            return self.authenticate(nonce, &token.0).await;
        }
        let Some(user) = self.user.clone() else {
            return self.refuse(
                nonce,
                Refusal::new(
                    ErrorCode::Unauthenticated,
                    "sending needs an auth frame with an access token first",
                ),
            );
        };
        let result = match frame.body {
            ClientBody::Auth { .. } => return,
            ClientBody::Chat { text } => {
                self.message(&user, MessageKind::Chat, text, None, None)
                    .await
            }
            ClientBody::Danmaku { text, color, mode } => {
                self.message(&user, MessageKind::Danmaku, text, color, mode)
                    .await
            }
            ClientBody::Like { count } => {
                let count = count.unwrap_or(1);
                if !(1..=100).contains(&count) {
                    Err(Refusal::new(ErrorCode::Invalid, "count must be 1 to 100"))
                } else {
                    self.service()
                        .like(&self.membership.room, &user, count)
                        .await
                        .map(|()| ack(None, None))
                }
            }
            ClientBody::Gift {
                gift_id,
                count,
                idempotency_key,
            } => {
                self.gift(&user, gift_id, count.unwrap_or(1), idempotency_key)
                    .await
            }
        };
        match result {
            Ok(ServerFrame::Ack {
                id,
                balance,
                replayed,
                ..
            }) => {
                self.membership.send(&ServerFrame::Ack {
                    nonce,
                    id,
                    balance,
                    replayed,
                });
            }
            Ok(other) => self.membership.send(&other),
            Err(refusal) => {
                // The sign-in ended: the client may authenticate again on this connection.
                if refusal.code == ErrorCode::Unauthenticated {
                    self.user = None;
                }
                self.refuse(nonce, refusal)
            }
        }
    }

    fn refuse(&self, nonce: Option<String>, refusal: Refusal) {
        self.service()
            .metrics()
            .refused
            .fetch_add(1, Ordering::Relaxed);
        self.membership.send(&refusal.frame(nonce));
    }

    async fn authenticate(&mut self, nonce: Option<String>, token: &str) {
        match self.service().host.authenticate(token).await {
            // A signed-in connection may change tokens (after a refresh), not accounts.
            Ok(Some(user)) if self.user.as_ref().is_some_and(|u| u.id != user.id) => self.refuse(
                nonce,
                Refusal::new(
                    ErrorCode::AlreadyAuthenticated,
                    "this connection is signed in as another account",
                ),
            ),
            Ok(Some(user)) => {
                debug!(
                    channel = self.membership.channel().slug,
                    user = user.id,
                    "chat sign-in"
                );
                self.user = Some(user);
                self.membership.send(&ack(nonce, None));
            }
            Ok(None) => self.refuse(
                nonce,
                Refusal::new(
                    ErrorCode::InvalidToken,
                    "the access token is invalid or expired",
                ),
            ),
            Err(StoreError::Unavailable(_)) => self.refuse(
                nonce,
                Refusal::new(
                    ErrorCode::StoreUnavailable,
                    "cannot check the token right now",
                ),
            ),
            Err(_) => self.refuse(
                nonce,
                Refusal::new(ErrorCode::Internal, "cannot check the token"),
            ),
        }
    }

    async fn message(
        &self,
        user: &ChatUser,
        kind: MessageKind,
        text: String,
        color: Option<String>,
        mode: Option<String>,
    ) -> Result<ServerFrame, Refusal> {
        let max = self.service().config.max_message_chars;
        let text = text.trim().to_owned();
        if text.is_empty() {
            return Err(Refusal::new(ErrorCode::Empty, "the text is empty"));
        }
        let chars = text.chars().count();
        if chars > max {
            return Err(Refusal::new(
                ErrorCode::TooLong,
                format!("the text has {chars} characters; at most {max}"),
            ));
        }
        if text.chars().any(|c| c.is_control()) {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                "the text holds control characters",
            ));
        }
        let (color, mode) = if kind == MessageKind::Danmaku {
            let color = color.unwrap_or_else(|| "#ffffff".to_owned());
            let valid = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(Refusal::new(ErrorCode::Invalid, "color must be #rrggbb"));
            }
            let mode = mode.unwrap_or_else(|| "scroll".to_owned());
            if !matches!(mode.as_str(), "scroll" | "top" | "bottom") {
                return Err(Refusal::new(
                    ErrorCode::Invalid,
                    "mode must be scroll, top or bottom",
                ));
            }
            (Some(color.to_ascii_lowercase()), Some(mode))
        } else {
            (None, None)
        };
        let id = self
            .service()
            .send_message(&self.membership.room, user, kind, text, color, mode)
            .await?;
        Ok(ack(None, Some(id)))
    }

    async fn gift(
        &self,
        user: &ChatUser,
        gift_id: i64,
        count: u32,
        key: String,
    ) -> Result<ServerFrame, Refusal> {
        let channel = self.membership.channel().clone();
        match self
            .service()
            .send_gift(&channel, user, gift_id, count, key)
            .await
        {
            Ok((GiftOutcome::Sent { event, balance }, _)) => Ok(ServerFrame::Ack {
                nonce: None,
                id: Some(event.id),
                balance: Some(balance),
                replayed: false,
            }),
            Ok((GiftOutcome::Replayed { event }, _)) => Ok(ServerFrame::Ack {
                nonce: None,
                id: Some(event.id),
                balance: None,
                replayed: true,
            }),
            Ok((GiftOutcome::InsufficientBalance { .. }, _)) => Err(Refusal::new(
                ErrorCode::InsufficientBalance,
                "insufficient balance",
            )),
            Err(GiftError::Refused(refusal)) => Err(refusal),
        }
    }
}

fn ack(nonce: Option<String>, id: Option<i64>) -> ServerFrame {
    ServerFrame::Ack {
        nonce,
        id,
        balance: None,
        replayed: false,
    }
}

/// How long a closing connection waits for its last frames to be written.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most queue entries written to a client between two flushes (a room batch is never split).
const WRITE_BATCH: usize = 64;

/// What [`serve_with`] hands its sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every text frame on its own: a room batch becomes consecutive [`Outbound::Text`].
    Frames,
    /// Queue entries as they are, [`Outbound::Batch`] too: for a sink that writes a batch's
    /// shared bytes in one go.
    Batches,
}

/// Feeds one queue entry to `outbound` without flushing: with [`Delivery::Frames`] a room
/// batch as consecutive text frames.
async fn feed<O: Sink<Outbound> + Unpin>(
    outbound: &mut O,
    out: Outbound,
    delivery: Delivery,
) -> Result<(), O::Error> {
    match out {
        Outbound::Batch(frames) if delivery == Delivery::Frames => {
            for frame in frames.iter() {
                outbound.feed(Outbound::Text(frame.clone())).await?;
            }
            Ok(())
        }
        // Only wakes the task: the flush after it finishes the wire's bytes.
        Outbound::Drain => Ok(()),
        other => outbound.feed(other).await,
    }
}

/// Why [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The client went away.
    ClientClosed,
    /// The client was too slow for the room.
    TooSlow,
    /// No frame (not even a pong) within the idle timeout.
    Idle,
    /// The transport failed.
    Transport,
    /// The server is shutting down.
    Shutdown,
}

/// Drives `connection` until the client leaves, is too slow, stays silent past the idle
/// timeout, or `shutdown` is cancelled: client frames from `inbound`, queued frames (one by
/// one, [`Delivery::Frames`]) and pings to `outbound`. Only this client ever waits on its
/// own socket.
pub async fn serve<I, O>(
    connection: Connection,
    inbound: I,
    outbound: O,
    shutdown: tokio_util::sync::CancellationToken,
) -> Ended
where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Outbound> + Unpin,
{
    serve_with(connection, inbound, outbound, shutdown, Delivery::Frames).await
}

/// [`serve`], handing `outbound` queue entries as `delivery` says.
pub async fn serve_with<I, O>(
    mut connection: Connection,
    inbound: I,
    outbound: O,
    shutdown: tokio_util::sync::CancellationToken,
    delivery: Delivery,
) -> Ended
where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Outbound> + Unpin,
{
    let config = connection.service().config.clone();
    let mut inbound = inbound;
    let mut outbound = outbound;
    let mut last_seen = Instant::now();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.reset();
    let kicked = connection.membership.kicked.clone();
    // Made once, not per wake-up: each makes and drops a waiter on its token, and the
    // shutdown token is one every client of the server waits on.
    let shut = shutdown.cancelled();
    let slow = kicked.cancelled();
    tokio::pin!(shut, slow);
    let ended = loop {
        tokio::select! {
            biased;
            _ = &mut shut => {
                // Messages the room has stored but not yet handed out (a busy room's window)
                // go to the queue, and out below before the goodbye.
                connection.membership.room.flush();
                break Ended::Shutdown;
            }
            _ = &mut slow => break Ended::TooSlow,
            out = connection.membership.rx.recv() => {
                // The membership holds a sender itself, so the queue never closes first.
                let Some(out) = out else { break Ended::ClientClosed };
                // Everything queued since the last wake-up goes out with one flush: a client
                // that fell behind a busy room catches up in one write, not one per frame.
                let mut result = feed(&mut outbound, out, delivery).await;
                let mut fed = 1;
                while result.is_ok() && fed < WRITE_BATCH {
                    let Ok(more) = connection.membership.rx.try_recv() else { break };
                    result = feed(&mut outbound, more, delivery).await;
                    fed += 1;
                }
                if result.is_err() {
                    break Ended::Transport;
                }
                // A client whose socket stays full is dropped by the room meanwhile; the
                // wait for its socket ends there, not at the peer's pleasure.
                tokio::select! {
                    biased;
                    flushed = outbound.flush() => if flushed.is_err() { break Ended::Transport },
                    _ = &mut slow => break Ended::TooSlow,
                }
            }
            frame = inbound.next() => match frame {
                Some(Inbound::Text(text)) => {
                    last_seen = Instant::now();
                    connection.handle_text(&text).await;
                }
                Some(Inbound::Alive) => last_seen = Instant::now(),
                None => break Ended::ClientClosed,
            },
            _ = ping.tick() => {
                if last_seen.elapsed() >= config.idle_timeout {
                    let _ = tokio::time::timeout(GOODBYE_WAIT, outbound.send(Outbound::Close("idle timeout"))).await;
                    break Ended::Idle;
                }
                if outbound.send(Outbound::Ping).await.is_err() {
                    break Ended::Transport;
                }
            }
        }
    };
    match ended {
        // The socket of a client too slow for the room is likely full: the goodbye gets a
        // moment, never a wait on a peer that may not read again.
        Ended::TooSlow => {
            let _ = tokio::time::timeout(GOODBYE_WAIT, outbound.send(Outbound::Close("too slow")))
                .await;
        }
        // Frames already queued (the last messages, the acks of the last sends) still go
        // out, best effort, and before a closing frame, after which a client reads nothing.
        Ended::ClientClosed | Ended::Shutdown => {
            let rx = &mut connection.membership.rx;
            let _ = tokio::time::timeout(GOODBYE_WAIT, async {
                while let Ok(out) = rx.try_recv() {
                    if feed(&mut outbound, out, delivery).await.is_err()
                        || outbound.flush().await.is_err()
                    {
                        return;
                    }
                }
                if ended == Ended::Shutdown {
                    let _ = outbound.send(Outbound::Close("server shutting down")).await;
                }
            })
            .await;
        }
        Ended::Idle | Ended::Transport => {}
    }
    let _ = tokio::time::timeout(GOODBYE_WAIT, outbound.close()).await;
    ended
}
