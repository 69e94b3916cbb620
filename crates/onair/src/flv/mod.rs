//! HTTP-FLV and WebSocket-FLV playback: `GET /live/{channel}.flv`, answered as a chunked
//! `video/x-flv` body, or as one binary WebSocket message per FLV piece when the request is
//! an upgrade (flv.js / mpegts.js take both from the same URL).
//!
//! The request answers 404 at once when the channel is not live (a player retries; holding a
//! request open with no headers confuses more players than it helps). Once playing, a viewer
//! stays connected through a publisher's reconnect for `hub.republish_grace`.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`Feeds`] (what the feeds may touch), the route, the HTTP body and the WebSocket loop |
//! | `feed.rs` | `FlvFeed`: a hub subscription as FLV bytes (header flags from the real tracks, shared tags) |

mod feed;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use onair_hub::{Hub, Protocol, Subscriber};
use tracing::{Instrument, Span, debug, info, warn};

use self::feed::FlvFeed;
use crate::auth::PublishAuth;
use crate::channel::is_valid_name;
use crate::config::HubSection;
use crate::metrics::{Metrics, Wire};
use crate::net::BytesSent;
use crate::problem::ApiError;
use crate::relay::{RELAY_HEADER, Relay};

/// What the FLV feeds may touch.
#[derive(Debug)]
pub struct Feeds {
    /// Where viewers subscribe.
    pub hub: Arc<Hub>,
    /// Tells a stream key typed as a channel name, which is refused without saying so.
    pub auth: Arc<dyn PublishAuth>,
    /// `[hub]`: the write timeout and the republish grace.
    pub hub_config: HubSection,
    /// Viewers by protocol, bytes out, viewers dropped for being slow or refused.
    pub metrics: Arc<Metrics>,
    /// Pulls a channel live on another node, and tells an edge's pull from a viewer;
    /// `None` on a single node.
    pub relay: Option<Arc<Relay>>,
}

/// The `/live/{file}` route (`{file}` is `{channel}.flv`), with its state.
pub fn router(feeds: Arc<Feeds>) -> Router {
    Router::new()
        .route("/live/{file}", get(live))
        .with_state(feeds)
}

async fn live(
    State(state): State<Arc<Feeds>>,
    Path(file): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Some(channel) = file.strip_suffix(".flv") else {
        return ApiError::not_found(format!("no such stream file {file:?}")).into_response();
    };
    if !is_valid_name(channel) {
        return ApiError::invalid_field("channel", "invalid channel name").into_response();
    }
    if state.auth.is_stream_key(channel) {
        warn!("http play refused: the name is a stream key ([redacted])");
        return ApiError::not_found("play the channel name, not the stream key").into_response();
    }
    // An edge's pull, shown by the cluster's relay token: counted as a relay, not a viewer,
    // and never under the viewer cap.
    let is_relay = state.relay.as_ref().is_some_and(|r| {
        request
            .headers()
            .get(RELAY_HEADER)
            .is_some_and(|t| r.is_relay_token(t.as_bytes()))
    });
    if !state.hub.is_live(channel) {
        // A relay is never relayed further: an edge serves only what it holds or pulls, so
        // two edges can never pull from each other.
        let pulled = match &state.relay {
            Some(relay) if !is_relay => relay.await_remote(channel).await,
            _ => false,
        };
        if !pulled {
            return ApiError::not_found(format!("channel {channel:?} is not live")).into_response();
        }
    }
    let (mut parts, _) = request.into_parts();
    let sent = parts.extensions.get::<BytesSent>().cloned();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .ok();
    let protocol = if is_relay {
        Protocol::Relay
    } else if ws.is_some() {
        Protocol::WsFlv
    } else {
        Protocol::HttpFlv
    };
    let span = Span::current();
    span.record("protocol", protocol.name());
    span.record("channel", channel);
    let subscribed = if is_relay {
        Metrics::inc(&state.metrics.relays_served);
        info!(channel, "relay feed opened for an edge");
        Ok(state.hub.subscribe(channel, protocol))
    } else {
        state.hub.subscribe_viewer(channel, protocol)
    };
    let subscriber = match subscribed {
        Ok(s) => s,
        Err(full) => {
            let max = full.max;
            if let Some(wire) = Wire::of_viewer(protocol) {
                state.metrics.viewers_refused.add(wire, 1);
            }
            info!(channel, %protocol, max, "viewer refused: the channel is full");
            return ApiError::at_capacity(
                format!(
                    "channel {channel:?} is full: it has its maximum of {max} viewers; retry later"
                ),
                FULL_RETRY_AFTER,
            )
            .into_response();
        }
    };
    match ws {
        Some(ws) => {
            let channel = channel.to_owned();
            ws.write_buffer_size(0).on_upgrade(move |socket| {
                ws_flv(state, socket, subscriber, channel, sent).instrument(span)
            })
        }
        None => http_flv(state, subscriber, channel, sent),
    }
}

/// How long a WebSocket viewer we close is given to answer our close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What a viewer refused for a full channel is told to wait before retrying.
const FULL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

fn http_flv(
    state: Arc<Feeds>,
    subscriber: Subscriber,
    channel: &str,
    sent: Option<BytesSent>,
) -> Response {
    let mut feed = FlvFeed::new(subscriber, state.clone());
    if let Some(sent) = sent {
        feed.gate_on(sent);
    }
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
            warn!(error = %e, "cannot build the http-flv response");
            ApiError::internal(e).into_response()
        })
}

async fn ws_flv(
    state: Arc<Feeds>,
    socket: WebSocket,
    subscriber: Subscriber,
    channel: String,
    sent: Option<BytesSent>,
) {
    info!(channel, "ws-flv viewer joined");
    let limit = state.hub_config.write_timeout;
    let mut feed = FlvFeed::new(subscriber, state.clone());
    // No gate: each message is flushed before the next is taken.
    if let Some(sent) = sent {
        feed.watch(sent);
    }
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
                Ok(None) => {
                    // 1008 (policy) with the reason for a viewer dropped as too slow, as the
                    // chat socket does; 1000 for a stream that ended.
                    let frame = if feed.dropped_slow() {
                        CloseFrame { code: 1008, reason: "too slow".into() }
                    } else {
                        CloseFrame { code: 1000, reason: "the stream ended".into() }
                    };
                    let _ = tokio::time::timeout(limit, sink.send(Message::Close(Some(frame)))).await;
                    // The player answers with its own close; reading it first keeps the
                    // kernel from resetting a socket closed with input pending.
                    let _ = tokio::time::timeout(CLOSE_LINGER, async {
                        while let Some(Ok(m)) = stream.next().await {
                            if matches!(m, Message::Close(_)) { break }
                        }
                    }).await;
                    break
                }
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
