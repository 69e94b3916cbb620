//! The chat's place in the server: [`Host`] answers `onair_chat`'s questions (tokens, the
//! audience, live state) from the platform, hub and live registry, [`accept`] answers the
//! WebSocket handshake and [`serve_socket`] drives one chat client over the upgraded
//! connection. On plain TCP the room writes the client's frames itself ([`Direct`]); over
//! TLS the client's task writes them ([`Socket`]). Either way a frame's bytes are the room's
//! shared encoding, never copied per client.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use onair_chat::{
    BoxFuture, ChatBus, ChatHost, ChatService, ChatUser, Connection, Delivery, Ended, Inbound,
    Membership, Nudge, Offered, Outbound, Wire, ws_header,
};
use onair_hub::Hub;
use onair_store::{Role, StoreError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::Config;
use crate::lives::Lives;
use crate::net::{Tracked, advance, io_slices};
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

/// The answer to a chat socket request: `101 Switching Protocols` (RFC 6455 §4.2.2) and
/// the upgrade to wait on, or the refusal of a request that is no WebSocket handshake, with
/// the statuses axum's `WebSocketUpgrade` gives.
// The refusal is the response itself, made once per refused handshake: boxing it would
// only add an allocation at the one caller that sends it.
#[allow(clippy::result_large_err)]
pub fn accept(request: &mut axum::extract::Request) -> Result<(Response, OnUpgrade), Response> {
    fn has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
    let refuse = |status: StatusCode, why: &'static str| (status, why).into_response();
    if request.method() != Method::GET {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request method must be `GET`",
        ));
    }
    let headers = request.headers();
    if !has(headers, header::CONNECTION, "upgrade") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Connection header did not include 'upgrade'",
        ));
    }
    if !has(headers, header::UPGRADE, "websocket") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Upgrade` header did not include 'websocket'",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Key` header missing",
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        ));
    };
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok((response, on_upgrade))
}

/// Drives one chat client on its upgraded connection until it leaves (see
/// [`onair_chat::serve`]). Pongs and pings count as signs of life; binary frames are
/// ignored.
pub async fn serve_socket(
    upgraded: Upgraded,
    mut membership: Membership,
    shutdown: CancellationToken,
    client_queue: usize,
) {
    let channel = membership.channel().slug.clone();
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let ended = match upgraded.downcast::<TokioIo<Tracked>>() {
        Ok(parts) => {
            let direct = Arc::new(Direct {
                tracked: parts.io.into_inner(),
                backlog: parking_lot::Mutex::new(Backlog::default()),
                nudge: membership.nudge(),
                limit: client_queue.max(4),
            });
            let stream = Shared {
                direct: direct.clone(),
                unread: parts.read_buf,
            };
            let ws = WebSocketStream::from_raw_socket(stream, WsRole::Server, Some(config)).await;
            membership.attach(direct);
            serve(ws, membership, shutdown).await
        }
        Err(upgraded) => {
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                WsRole::Server,
                Some(config),
            )
            .await;
            serve(ws, membership, shutdown).await
        }
    };
    match ended {
        Ended::TooSlow => debug!(channel, "chat client dropped: too slow"),
        Ended::Idle => debug!(channel, "chat client dropped: idle"),
        _ => debug!(channel, ?ended, "chat client left"),
    }
}

async fn serve<S>(
    ws: WebSocketStream<S>,
    membership: Membership,
    shutdown: CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite + InputEnded + Unpin,
    Socket<S>: Sink<Outbound, Error = io::Error>,
{
    let (outbound, inbound) = Socket {
        ws,
        queue: VecDeque::new(),
        ended: false,
    }
    .split();
    onair_chat::serve_with(
        Connection::new(membership),
        inbound,
        outbound,
        shutdown,
        Delivery::Batches,
    )
    .await
}

/// Pieces a [`Direct`] backlog may hold past its limit for control frames (pings, closes,
/// pongs): room for a goodbye behind a full backlog, but a client that sends pings while
/// reading nothing cannot grow it without end.
const CONTROL_SLACK: usize = 16;

/// The bytes of a queue entry on the wire; `None` for [`Outbound::Drain`], which has none.
fn encode(out: &Outbound) -> Option<Bytes> {
    Some(match out {
        Outbound::Text(text) => text.wire().clone(),
        Outbound::Batch(batch) => batch.wire().clone(),
        Outbound::Ping => Bytes::from_static(&[0x89, 0x00]),
        Outbound::Close(reason) => {
            let code: u16 = if *reason == "too slow" { 1008 } else { 1001 };
            let mut frame = Vec::with_capacity(4 + reason.len());
            ws_header(0x8, 2 + reason.len(), &mut frame);
            frame.extend_from_slice(&code.to_be_bytes());
            frame.extend_from_slice(reason.as_bytes());
            Bytes::from(frame)
        }
        Outbound::Drain => return None,
    })
}

/// A chat client's plain TCP socket, written by whoever has its next frame: the room's
/// flush writes a window to each member in turn with one non-blocking `write` (issue 13),
/// and what the socket does not take at once waits in `backlog`, in order, for the client's
/// own task, which is nudged to finish it when the socket drains. Anything offered while
/// the backlog is not empty joins it, so bytes never pass each other; a backlog of
/// `limit` pieces means the client is too slow for the room.
struct Direct {
    tracked: Tracked,
    backlog: parking_lot::Mutex<Backlog>,
    nudge: Nudge,
    limit: usize,
}

#[derive(Default)]
struct Backlog {
    queue: VecDeque<Bytes>,
    /// A write failed: the connection is over.
    failed: bool,
    /// Our close frame is written or queued: nothing may follow it (RFC 6455 §5.5.1).
    sent_close: bool,
    /// The client's close frame came: no data frame may go out any more, only
    /// tungstenite's closing reply.
    peer_closed: bool,
}

/// What a piece of a [`Direct`] socket's output is, for its backlog's rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// A text frame or a room batch.
    Data,
    /// A ping, or tungstenite's own writes (pongs, a close reply).
    Control,
    /// Our close frame.
    Close,
}

impl Direct {
    /// Writes `bytes` now, or keeps them behind the backlog. Control pieces and the close
    /// may go [`CONTROL_SLACK`] pieces past the limit, so a goodbye still goes out behind a
    /// full backlog. After a close either way, data is refused as from a closed socket, so
    /// the room forgets the client.
    fn put(&self, bytes: Bytes, piece: Piece) -> Offered {
        let mut backlog = self.backlog.lock();
        if backlog.failed || backlog.sent_close || (backlog.peer_closed && piece == Piece::Data) {
            return Offered::Closed;
        }
        if piece == Piece::Close {
            backlog.sent_close = true;
        }
        let control = piece != Piece::Data;
        if !backlog.queue.is_empty() {
            let limit = if control {
                self.limit + CONTROL_SLACK
            } else {
                self.limit
            };
            if backlog.queue.len() >= limit {
                return Offered::TooSlow;
            }
            backlog.queue.push_back(bytes);
            return Offered::Kept;
        }
        match self.tracked.tcp().try_write(&bytes) {
            Ok(n) => {
                self.tracked.wrote(n);
                if n == bytes.len() {
                    return Offered::Written;
                }
                backlog.queue.push_back(bytes.slice(n..));
                self.nudge.nudge();
                Offered::Kept
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                backlog.queue.push_back(bytes);
                self.nudge.nudge();
                Offered::Kept
            }
            Err(_) => {
                backlog.failed = true;
                Offered::Closed
            }
        }
    }

    /// Writes the backlog, waiting for the socket as needed: the client's task, from its
    /// sink's flush.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut backlog = self.backlog.lock();
                if backlog.failed {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                if backlog.queue.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let (iov, n) = io_slices(&backlog.queue);
                match self.tracked.tcp().try_write_vectored(&iov[..n]) {
                    Ok(0) => {
                        backlog.failed = true;
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Ok(written) => {
                        self.tracked.wrote(written);
                        advance(&mut backlog.queue, written);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        backlog.failed = true;
                        return Poll::Ready(Err(e));
                    }
                }
            }
            // Only this task waits on the socket's write readiness; the room's writes only
            // try, and only while the backlog is empty, so none clears it from under us.
            ready!(self.tracked.tcp().poll_write_ready(cx))?;
        }
    }
}

impl Wire for Direct {
    fn offer(&self, out: &Outbound) -> Offered {
        let Some(bytes) = encode(out) else {
            // `Drain` has no bytes: nothing to write, so nothing to wait for either.
            return Offered::Written;
        };
        let piece = match out {
            Outbound::Text(_) | Outbound::Batch(_) => Piece::Data,
            Outbound::Close(_) => Piece::Close,
            Outbound::Ping | Outbound::Drain => Piece::Control,
        };
        self.put(bytes, piece)
    }
}

/// What tungstenite reads from and writes to on plain TCP: reads come from the socket
/// (first what hyper had read past the handshake); its writes (a pong, the reply to a
/// close) join the [`Direct`] backlog in order, so they never land inside a room's frame.
struct Shared {
    direct: Arc<Direct>,
    unread: Bytes,
}

impl AsyncRead for Shared {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let tracked = &self.direct.tracked;
        loop {
            ready!(tracked.tcp().poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match tracked.tcp().try_read(unfilled) {
                Ok(n) => {
                    if n > 0 {
                        tracked.read_some();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.direct.put(Bytes::copy_from_slice(buf), Piece::Control) {
            Offered::Written | Offered::Kept => Poll::Ready(Ok(buf.len())),
            Offered::TooSlow => Poll::Ready(Err(io::Error::other(
                "the client reads nothing of what it asks for",
            ))),
            Offered::Closed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.direct.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.direct.poll_drain(cx))?;
        let tcp = socket2::SockRef::from(self.direct.tracked.tcp());
        Poll::Ready(match tcp.shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        })
    }
}

/// A chat WebSocket. tungstenite reads the client's frames (unmasking, fragments, UTF-8,
/// the answers to pings and to a close); every frame the server sends is written here as
/// bytes: a broadcast's and a room batch's WebSocket encoding was made once for the whole
/// room ([`onair_chat::FrameText::wire`], [`onair_chat::Batch::wire`]), so a flush is one
/// `writev` of shared buffers, with no per-client encoding or copy.
///
/// The two writers never interleave inside a frame: tungstenite writes only while reading,
/// and `serve` never reads while a flush of ours is unfinished; ours starts by finishing
/// whatever tungstenite left buffered.
struct Socket<S> {
    ws: WebSocketStream<S>,
    queue: VecDeque<Bytes>,
    ended: bool,
}

/// What a chat socket's transport learns when the client's input ends (its close frame, an
/// error, or EOF).
trait InputEnded {
    fn input_ended(&self) {}
}

impl InputEnded for TokioIo<Upgraded> {}

impl InputEnded for Shared {
    /// The room's writes stop here: nothing but tungstenite's reply may follow a close.
    fn input_ended(&self) {
        self.direct.backlog.lock().peer_closed = true;
    }
}

impl<S: AsyncRead + AsyncWrite + InputEnded + Unpin> Stream for Socket<S> {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let inbound = match ready!(self.ws.poll_next_unpin(cx)) {
            Some(Ok(Message::Text(text))) => Some(Inbound::Text(text.as_str().to_owned())),
            Some(Ok(Message::Close(_)) | Err(_)) | None => None,
            Some(Ok(_)) => Some(Inbound::Alive),
        };
        self.ended = inbound.is_none();
        if self.ended {
            self.ws.get_ref().input_ended();
        }
        Poll::Ready(inbound)
    }
}

/// On plain TCP everything goes through the [`Direct`] backlog, as the room's writes do.
impl Sink<Outbound> for Socket<Shared> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, out: Outbound) -> io::Result<()> {
        match self.ws.get_ref().direct.offer(&out) {
            Offered::Written | Offered::Kept => Ok(()),
            // Only pings and closes come this way, refused only past the control slack: a
            // client that reads nothing, in a room too quiet to have kicked it.
            Offered::TooSlow => Err(io::Error::other("the client reads nothing")),
            Offered::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // tungstenite's own replies join the backlog here (see `Shared`); its errors are
        // not ours, as below.
        let _ = ready!(self.ws.poll_flush_unpin(cx));
        self.ws.get_ref().direct.poll_drain(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(self.ws.get_mut()).poll_shutdown(cx)
    }
}

impl Sink<Outbound> for Socket<TokioIo<Upgraded>> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // `serve` flushes after at most a few dozen queue entries: the queue stays short.
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, out: Outbound) -> io::Result<()> {
        if let Some(bytes) = encode(&out) {
            self.queue.push_back(bytes);
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A pong or close reply tungstenite could not finish goes first, whole. Its errors
        // (the client closed) are not ours: what we write next reports the socket's state.
        let _ = ready!(this.ws.poll_flush_unpin(cx));
        while !this.queue.is_empty() {
            let written = {
                let (iov, n) = io_slices(&this.queue);
                ready!(Pin::new(this.ws.get_mut()).poll_write_vectored(cx, &iov[..n]))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            advance(&mut this.queue, written);
        }
        Pin::new(this.ws.get_mut()).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(self.ws.get_mut()).poll_shutdown(cx)
    }
}
