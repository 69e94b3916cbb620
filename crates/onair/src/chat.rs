//! The chat's place in the server: [`Host`] answers `onair_chat`'s questions (tokens, the
//! audience, live state) from the platform, hub and live registry, and [`serve_socket`]
//! drives one chat client over an axum WebSocket.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use onair_chat::{
    BoxFuture, ChatBus, ChatHost, ChatService, ChatUser, Connection, Ended, Inbound, Membership,
    Outbound,
};
use onair_hub::Hub;
use onair_store::{Role, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::Config;
use crate::lives::Lives;
use crate::platform::{Platform, PlatformError};

/// Largest client frame read from a chat socket; a chat frame is a few hundred bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Bytes asked of the socket per read. tungstenite's default (128 KiB) is zero-filled on
/// every read attempt under hyper's upgraded stream, and the chat loop attempts one on each
/// wake-up: at 1000 clients and 200 messages/s that memset was a third of the server's CPU.
/// Client frames are small; a larger frame still arrives over several reads.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What the chat asks of the server.
#[derive(Debug)]
pub struct Host {
    platform: Arc<Platform>,
    hub: Arc<Hub>,
    lives: Arc<Lives>,
}

/// The chat service of a server; with `bus`, one node of several (`[cluster]`).
pub fn service(
    config: &Config,
    platform: Arc<Platform>,
    hub: Arc<Hub>,
    lives: Arc<Lives>,
    bus: Option<Arc<dyn ChatBus>>,
) -> Arc<ChatService> {
    let store = platform.store().clone();
    let host = Arc::new(Host {
        platform,
        hub,
        lives,
    });
    let mut chat = config.chat.chat_config();
    chat.reorder_hold = config.cluster.reorder_hold;
    ChatService::with_bus(store, host, chat, bus)
}

impl ChatHost for Host {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatUser>, StoreError>> {
        Box::pin(async move {
            match self.platform.authenticate(token).await {
                Ok(session) => Ok(session.map(|s| ChatUser {
                    id: s.user.id,
                    name: s.user.username,
                    admin: s.user.role == Role::Admin,
                    session: Some(s.claims.jti.as_str().to_owned()),
                })),
                Err(PlatformError::Store(e)) => Err(e),
                Err(_) => Ok(None),
            }
        })
    }

    fn video_viewers(&self, channel: &str) -> u64 {
        self.hub
            .channel_snapshot(channel)
            .map_or(0, |s| s.total_viewers() as u64)
    }

    fn live_since(&self, channel: &str) -> Option<DateTime<Utc>> {
        self.lives.started_at(channel)
    }

    fn watched(&self) -> Vec<(String, u64)> {
        self.hub
            .live_channels()
            .into_iter()
            .map(|s| {
                let viewers = s.total_viewers() as u64;
                (s.channel, viewers)
            })
            .filter(|(_, viewers)| *viewers > 0)
            .collect()
    }
}

/// Drives one chat client on `socket` until it leaves (see [`onair_chat::serve`]). Pongs and
/// pings count as signs of life; binary frames are ignored.
pub async fn serve_socket(socket: WebSocket, membership: Membership, shutdown: CancellationToken) {
    let channel = membership.channel().slug.clone();
    let (sink, stream) = socket.split();
    let inbound = stream
        .take_while(|m| {
            futures_util::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(Message::Text(text)) => Some(Inbound::Text(text.as_str().to_owned())),
                Ok(_) => Some(Inbound::Alive),
                Err(_) => None,
            })
        });
    // `serve` writes a room batch frame by frame, so `Outbound::Batch` never reaches here;
    // if it did, the connection would end rather than lose frames silently.
    let outbound = sink.with(|out: Outbound| {
        futures_util::future::ready(Ok::<_, axum::Error>(match out {
            Outbound::Batch(_) => {
                return futures_util::future::ready(Err(axum::Error::new(
                    "a chat batch reached the socket unsplit",
                )));
            }
            // `FrameText` is UTF-8 by construction; the check reads the bytes once, the
            // shared buffer is not copied.
            Outbound::Text(text) => Message::Text(
                axum::extract::ws::Utf8Bytes::try_from(text.into_bytes()).unwrap_or_default(),
            ),
            Outbound::Ping => Message::Ping(Default::default()),
            Outbound::Close(reason) => Message::Close(Some(axum::extract::ws::CloseFrame {
                code: if reason == "too slow" { 1008 } else { 1001 },
                reason: reason.into(),
            })),
        }))
    });
    let ended = onair_chat::serve(
        Connection::new(membership),
        Box::pin(inbound),
        Box::pin(outbound),
        shutdown,
    )
    .await;
    match ended {
        Ended::TooSlow => debug!(channel, "chat client dropped: too slow"),
        Ended::Idle => debug!(channel, "chat client dropped: idle"),
        _ => debug!(channel, ?ended, "chat client left"),
    }
}
