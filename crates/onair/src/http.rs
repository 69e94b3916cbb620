//! The HTTP side: HTTP-FLV and WebSocket-FLV playback, health and metrics.
//!
//! `GET /live/{channel}.flv` answers 404 at once when the channel is not live (a player
//! retries; holding a request open with no headers confuses more players than it helps). Once
//! playing, a viewer stays connected through a publisher's reconnect for
//! `hub.republish_grace`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use onair_flv::FlvHeader;
use onair_hub::{Delivery, Encoding, Entry, Protocol, RecvError, Subscriber};
use onair_media::MediaKind;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::{debug, info, warn};

use crate::channel::is_valid_name;
use crate::server::{AppState, Metrics};

/// How long the FLV header waits for a stream's second track to show itself when neither
/// metadata nor both sequence headers say what the publisher sends.
const TRACK_PROBE: Duration = Duration::from_millis(1000);

/// Serves HTTP until shutdown.
pub(crate) async fn serve(state: Arc<AppState>, listener: TcpListener) {
    let stall = state.config.hub.write_timeout;
    let listener = listener.tap_io(move |tcp| crate::net::configure(tcp, stall));
    let shutdown = state.shutdown.clone();
    let app = router(state);
    // The REST API's login limit keys on the peer address, never on a forwarding header.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        warn!(error = %e, "http server stopped");
    }
}

/// The HTTP routes, without a listener (tests drive it with `oneshot`).
pub fn router(state: Arc<AppState>) -> Router {
    // The trace layer wraps response bodies and reads the clock for every body chunk; on a
    // stream that is a clock read per frame per viewer, so the stream route gets a span of
    // its own instead (see `live`) and only the short requests are traced per response.
    let traced = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::hls::http::router())
        .merge(crate::api::router(state.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    Router::new()
        .route("/live/{file}", get(live))
        .merge(traced)
        .layer(cors(&state.config.http.cors_origins))
        .with_state(state)
}

/// The span of one HTTP request: method and the matched route (`/live/{file}`), never the
/// URI, which may carry a key or a token.
fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    tracing::info_span!("http", method = %request.method(), route = route.as_deref().unwrap_or("(unmatched)"))
}

fn cors(origins: &[String]) -> CorsLayer {
    // flv.js/mpegts.js in a page on another origin fetch with Range preflights (flv.js
    // docs/cors.md). The API authenticates with a bearer header, never a cookie, so a page
    // elsewhere can call it without opening a CSRF hole: no credentials are allowed.
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::RANGE, header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ])
}

fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    let body = serde_json::json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn live(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Some(channel) = file.strip_suffix(".flv") else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no such stream file {file:?}"),
        );
    };
    if !is_valid_name(channel) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "invalid channel name".into(),
        );
    }
    if state.auth.is_stream_key(channel) {
        warn!("http play refused: the name is a stream key ([redacted])");
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "play the channel name, not the stream key".into(),
        );
    }
    if !state.hub.is_live(channel) {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("channel {channel:?} is not live"),
        );
    }
    let (mut parts, _) = request.into_parts();
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => {
            let subscriber = state.hub.subscribe(channel, Protocol::WsFlv);
            let channel = channel.to_owned();
            ws.write_buffer_size(0)
                .on_upgrade(move |socket| ws_flv(state, socket, subscriber, channel))
        }
        Err(_) => http_flv(state, channel),
    }
}

fn http_flv(state: Arc<AppState>, channel: &str) -> Response {
    let subscriber = state.hub.subscribe(channel, Protocol::HttpFlv);
    let feed = FlvFeed::new(subscriber, state.clone());
    info!(channel, "http-flv viewer joined");
    let body = futures_util::stream::unfold(feed, |mut feed| async move {
        match feed.next().await {
            Ok(Some(bytes)) => Some((Ok::<_, std::io::Error>(bytes), feed)),
            Ok(None) => None,
            Err(e) => Some((Err(e), feed)),
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "video/x-flv")
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| {
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                e.to_string(),
            )
        })
}

async fn ws_flv(state: Arc<AppState>, socket: WebSocket, subscriber: Subscriber, channel: String) {
    info!(channel, "ws-flv viewer joined");
    let limit = state.config.hub.write_timeout;
    let mut feed = FlvFeed::new(subscriber, state.clone());
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            next = feed.next() => match next {
                Ok(Some(bytes)) => {
                    // One WebSocket message per FLV piece: flv.js/mpegts.js concatenate them.
                    match tokio::time::timeout(limit, sink.send(Message::Binary(bytes))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => { debug!(error = %e, "ws-flv viewer went away"); break }
                        Err(_) => {
                            Metrics::inc(&state.metrics.viewers_dropped_slow);
                            warn!(channel, "ws-flv viewer accepted no data for {limit:?}; dropped");
                            break
                        }
                    }
                }
                Ok(None) => { let _ = sink.send(Message::Close(None)).await; break }
                Err(e) => { warn!(channel, error = %e, "ws-flv viewer dropped"); break }
            },
            incoming = stream.next() => match incoming {
                // Players send nothing but pings and the close; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Turns a hub subscription into FLV bytes: the header (with track flags that match what
/// the publisher really sends), then one shared tag per frame.
struct FlvFeed {
    subscriber: Subscriber,
    state: Arc<AppState>,
    batch: Vec<Arc<Entry>>,
    pending: VecDeque<Bytes>,
    header_sent: bool,
    /// Frames held back while the header's track flags are still being worked out.
    held: Vec<Arc<Entry>>,
    /// When the header goes out with whatever tracks have shown themselves by then.
    probe_until: Option<tokio::time::Instant>,
    /// When the stream ends if the publisher has not come back.
    grace_until: Option<tokio::time::Instant>,
    ended: bool,
}

impl Drop for FlvFeed {
    fn drop(&mut self) {
        info!(channel = self.subscriber.channel(), protocol = %self.subscriber.protocol(), "viewer left");
    }
}

impl FlvFeed {
    fn new(subscriber: Subscriber, state: Arc<AppState>) -> Self {
        FlvFeed {
            subscriber,
            state,
            batch: Vec::new(),
            pending: VecDeque::new(),
            header_sent: false,
            held: Vec::new(),
            probe_until: None,
            grace_until: None,
            ended: false,
        }
    }

    /// The next piece of the byte stream; `None` at the end.
    ///
    /// Cancel-safe (the WebSocket loop races it against the client's frames): all state lives
    /// in `self`, and each call awaits at most one hub delivery, handled without awaiting.
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Ok(Some(b));
            }
            if self.ended {
                return Ok(None);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let deadline = match (self.probe_until, self.grace_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let delivery = match deadline {
            Some(at) => tokio::time::timeout_at(at, self.subscriber.recv(&mut self.batch))
                .await
                .ok(),
            None => Some(self.subscriber.recv(&mut self.batch).await),
        };
        let channel = self.subscriber.channel();
        match delivery {
            None => {
                let now = tokio::time::Instant::now();
                if self.grace_until.is_some_and(|t| t <= now) {
                    info!(channel, "publisher did not return; ending the stream");
                    self.ended = true;
                } else if self.probe_until.is_some_and(|t| t <= now) {
                    self.send_header();
                }
            }
            Some(Ok(Delivery::Frames)) => {
                self.grace_until = None;
                let batch = std::mem::take(&mut self.batch);
                if self.header_sent {
                    self.queue(&batch);
                } else {
                    self.held.extend_from_slice(&batch);
                    if Tracks::seen_in(&self.held).certain {
                        self.send_header();
                    } else if self.probe_until.is_none() {
                        self.probe_until = Some(tokio::time::Instant::now() + TRACK_PROBE);
                    }
                }
                self.batch = batch;
            }
            Some(Ok(Delivery::PublisherLeft)) => {
                let grace = self.state.config.hub.republish_grace;
                debug!(channel, "publisher left; viewer waits {grace:?}");
                self.grace_until = Some(tokio::time::Instant::now() + grace);
            }
            Some(Ok(Delivery::PublisherBack)) => {
                debug!(channel, "publisher is back");
                self.grace_until = None;
            }
            Some(Err(e)) => return self.lost(e),
        }
        Ok(())
    }

    /// Writes the FLV header with the tracks seen so far, then the frames held for it.
    fn send_header(&mut self) {
        let tracks = Tracks::seen_in(&self.held);
        self.pending.push_back(
            FlvHeader {
                has_audio: tracks.audio,
                has_video: tracks.video,
            }
            .encode(),
        );
        self.header_sent = true;
        self.probe_until = None;
        let held = std::mem::take(&mut self.held);
        self.queue(&held);
    }

    fn queue(&mut self, entries: &[Arc<Entry>]) {
        for e in entries {
            self.pending
                .push_back(e.encoded(Encoding::FlvTag, onair_flv::encode_frame));
        }
    }

    /// The subscription ended: at shutdown the stream ends cleanly; a viewer that fell too
    /// far behind is cut off with an error.
    fn lost(&mut self, e: RecvError) -> std::io::Result<()> {
        if e == RecvError::Closed {
            self.ended = true;
            return Ok(());
        }
        Metrics::inc(&self.state.metrics.viewers_dropped_slow);
        warn!(channel = self.subscriber.channel(), error = %e, "viewer too slow; dropped");
        Err(std::io::Error::other(e))
    }
}

/// Which tracks a stream has, and whether we know for sure.
#[derive(Debug, Default, PartialEq)]
struct Tracks {
    audio: bool,
    video: bool,
    certain: bool,
}

impl Tracks {
    /// Reads the tracks off metadata (`hasAudio`/`audiocodecid`, …) and the sequence headers
    /// and frames in `entries`. Metadata or both headers settle it; otherwise it is a guess.
    fn seen_in(entries: &[Arc<Entry>]) -> Tracks {
        let mut t = Tracks::default();
        let (mut audio_header, mut video_header, mut from_metadata) = (false, false, false);
        for e in entries {
            let f = e.frame();
            match f.kind {
                MediaKind::Audio => {
                    t.audio = true;
                    audio_header |= f.sequence_header;
                }
                MediaKind::Video => {
                    t.video = true;
                    video_header |= f.sequence_header;
                }
                MediaKind::Script => {
                    if let Ok(meta) = onair_flv::parse_metadata(&f.data) {
                        from_metadata = true;
                        let flag = |key: &str| {
                            meta.properties
                                .iter()
                                .find(|(k, _)| k == key)
                                .and_then(|(_, v)| v.as_bool())
                        };
                        t.audio |= flag("hasAudio").unwrap_or(
                            meta.audio_codec.is_some() || meta.audiosamplerate.is_some(),
                        );
                        t.video |= flag("hasVideo")
                            .unwrap_or(meta.video_codec.is_some() || meta.width.is_some());
                    }
                }
            }
        }
        t.certain = from_metadata || (audio_header && video_header);
        t
    }
}

/// Ready when the store answers within a second: without it no publish can be authorised and
/// the API cannot serve, so a load balancer should send traffic elsewhere. Streams already
/// live keep playing either way.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(1), state.platform.store().ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(e)) => {
            warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            warn!("not ready: the database did not answer within 1 s");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let m = &state.metrics;
    let chat = state.chat.metrics();
    let mut out = String::new();
    let counters = [
        (
            "onair_rtmp_connections_total",
            "RTMP connections accepted",
            m.rtmp_connections.load(Ordering::Relaxed),
        ),
        (
            "onair_rtmp_connections_open",
            "RTMP connections open now",
            m.rtmp_open.load(Ordering::Relaxed),
        ),
        (
            "onair_publishes_refused_total",
            "publishes refused",
            m.publishes_refused.load(Ordering::Relaxed),
        ),
        (
            "onair_peer_errors_total",
            "connections closed for a peer's misbehaviour",
            m.peer_errors.load(Ordering::Relaxed),
        ),
        (
            "onair_viewers_dropped_slow_total",
            "viewers dropped for falling behind (HTTP-FLV viewers whose connection stalls are cut by the kernel's TCP user timeout and not counted)",
            m.viewers_dropped_slow.load(Ordering::Relaxed),
        ),
        (
            "onair_bytes_in_total",
            "media bytes received from publishers",
            m.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_messages_total",
            "chat lines and danmaku stored and broadcast",
            chat.messages.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_refused_total",
            "chat client frames answered with an error frame",
            chat.refused.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_dropped_slow_total",
            "chat clients dropped for falling chat.client_queue frames behind",
            chat.dropped_slow.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_clients",
            "chat connections open now, over every room",
            state.chat.members_total(),
        ),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let live = state.hub.live_channels();
    let _ = writeln!(
        out,
        "# HELP onair_channels_live channels with a publisher\n# TYPE onair_channels_live gauge"
    );
    let _ = writeln!(out, "onair_channels_live {}", live.len());
    let _ = writeln!(
        out,
        "# HELP onair_channel_viewers viewers by channel and protocol\n# TYPE onair_channel_viewers gauge"
    );
    for c in &live {
        for (p, n) in &c.viewers {
            let _ = writeln!(
                out,
                "onair_channel_viewers{{channel=\"{}\",protocol=\"{p}\"}} {n}",
                c.channel
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP onair_channel_bitrate_bps recent media bitrate\n# TYPE onair_channel_bitrate_bps gauge"
    );
    for c in &live {
        let _ = writeln!(
            out,
            "onair_channel_bitrate_bps{{channel=\"{}\"}} {}",
            c.channel, c.recent_bitrate
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
