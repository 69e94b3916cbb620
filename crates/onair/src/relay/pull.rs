//! One edge pull: the origin's own HTTP-FLV feed of the channel, read with the relay token,
//! demuxed with `onair_flv::FlvDemuxer` and pushed into this node's hub as the channel's
//! publisher. HTTP-FLV rather than RTMP play: it is one GET with a header for the token, the
//! origin already encodes each tag once for its HTTP-FLV viewers (the relay shares those
//! bytes), and reading it needs no protocol that is not in the tree already.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::BytesMut;
use http_body::Body as _;
use hyper_util::rt::TokioIo;
use onair_flv::{FlvDemuxer, FlvLimits};
use onair_hub::{PublishError, PublishOptions};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Holder, PullState, RELAY_HEADER, Relay};
use crate::metrics::Metrics;

/// First wait before retrying a feed that failed while the registry says live.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection to the origin must be up within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a feed ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The origin closed the feed or went silent.
    Source,
    /// The registry no longer names that node.
    Offline,
    /// No viewer for `edge_linger`.
    Idle,
    /// Something on this node publishes the channel itself now.
    LocalPublisher,
    /// Shutdown, or the channel was kicked here.
    Stopped,
}

/// Why a feed could not start.
#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("origin {origin} unreachable: {source}")]
    Connect {
        origin: String,
        source: std::io::Error,
    },
    #[error("origin {0} did not answer within the connect timeout")]
    ConnectTimeout(String),
    #[error("origin {0:?} is not an http:// address")]
    Address(String),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("origin answered {0} for the feed")]
    Status(hyper::StatusCode),
    #[error("the feed is not FLV: {0}")]
    Flv(#[from] onair_flv::FlvError),
}

pub(super) async fn run(
    relay: Arc<Relay>,
    channel: String,
    id: u64,
    state: watch::Sender<PullState>,
    first: Holder,
) {
    let mut holder = Some(first);
    let mut backoff = MIN_BACKOFF;
    let mut idle = Idle::new(relay.config.edge_linger);
    let poll = relay.config.lease / 3;
    loop {
        let wait = match holder.take() {
            Some(h) if h.node != relay.node_id() => {
                match feed(&relay, &channel, &h, &state, &mut idle).await {
                    Ok(Ended::Idle) => {
                        info!(channel, "edge pull stopped: no viewers");
                        break;
                    }
                    Ok(Ended::LocalPublisher) => {
                        info!(channel, "edge pull stopped: published on this node");
                        break;
                    }
                    Ok(Ended::Stopped) => break,
                    Ok(why) => {
                        info!(channel, origin = h.node, ?why, "edge feed ended");
                        backoff = MIN_BACKOFF;
                        Duration::ZERO
                    }
                    Err(e) => {
                        Metrics::inc(&relay.metrics.relay_pull_failures);
                        warn!(channel, origin = h.node, error = %e, retry_in = ?backoff, "edge pull failed");
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    }
                }
            }
            _ => poll,
        };
        state.send_replace(PullState::Offline);
        if idle.expired(relay.hub.viewer_count(&channel)) {
            info!(channel, "edge pull stopped: no viewers");
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = relay.shutdown.cancelled() => break,
        }
        holder = match relay.registry().map(|r| r.holder(&channel)) {
            Some(lookup) => lookup.await.unwrap_or_else(|e| {
                warn!(channel, error = %e, "cannot read the live registry");
                None
            }),
            None => None,
        };
    }
    relay.forget_pull(&channel, id);
    state.send_replace(PullState::Offline);
}

/// The linger: when the channel last had a viewer.
struct Idle {
    linger: Duration,
    since: Option<Instant>,
}

impl Idle {
    fn new(linger: Duration) -> Idle {
        Idle {
            linger,
            since: None,
        }
    }

    /// Notes the viewer count now; whether it has been zero for the whole linger.
    fn expired(&mut self, viewers: usize) -> bool {
        if viewers > 0 {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.linger
    }
}

/// Reads one feed from `origin` into the hub until it ends.
async fn feed(
    relay: &Arc<Relay>,
    channel: &str,
    origin: &Holder,
    state: &watch::Sender<PullState>,
    idle: &mut Idle,
) -> Result<Ended, FeedError> {
    let authority = origin
        .http
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| FeedError::Address(origin.http.clone()))?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| FeedError::ConnectTimeout(origin.node.clone()))?
        .map_err(|source| FeedError::Connect {
            origin: origin.node.clone(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let mut conn = std::pin::pin!(conn);
    let mut request = hyper::Request::get(format!("/live/{channel}.flv"))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "onair-edge");
    if let Some(token) = &relay.config.relay_token {
        request = request.header(RELAY_HEADER, token.expose().as_str());
    }
    // Invariant: the method, a path of a valid channel name and the headers above are valid.
    let request = request.body(Body::empty()).expect("a valid feed request");
    let response = tokio::select! {
        r = sender.send_request(request) => r?,
        r = &mut conn => {
            r?;
            return Ok(Ended::Source);
        }
    };
    if response.status() != hyper::StatusCode::OK {
        return Err(FeedError::Status(response.status()));
    }
    let publisher = match relay.hub.publish(channel, PublishOptions::default()) {
        Ok(p) => p,
        Err(PublishError::AlreadyLive { .. }) => return Ok(Ended::LocalPublisher),
        Err(_) => return Ok(Ended::Stopped),
    };
    Metrics::inc(&relay.metrics.relay_pulls);
    info!(channel, origin = origin.node, "edge feed connected");
    state.send_replace(PullState::Live);
    let mut body = response.into_body();
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // A feed silent for a whole lease has lost its origin even without a FIN.
    let silence = relay.config.lease;
    let mut last_data = Instant::now();
    let mut check = tokio::time::interval(relay.config.lease / 3);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn_done = false;
    loop {
        tokio::select! {
            frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)) => {
                match frame {
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else { continue };
                        last_data = Instant::now();
                        relay.metrics.bytes_in.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        buf.extend_from_slice(&data);
                        while let Some(tag) = demuxer.decode(&mut buf)? {
                            publisher.push(tag.into_frame());
                        }
                    }
                    Some(Err(e)) => {
                        debug!(channel, error = %e, "edge feed broke");
                        return Ok(Ended::Source);
                    }
                    None => return Ok(Ended::Source),
                }
            }
            r = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = r {
                    debug!(channel, error = %e, "edge feed connection ended");
                }
            }
            _ = tokio::time::sleep_until(last_data + silence) => {
                warn!(channel, origin = origin.node, ?silence, "edge feed went silent");
                return Ok(Ended::Source);
            }
            _ = check.tick() => {
                if idle.expired(relay.hub.viewer_count(channel)) {
                    return Ok(Ended::Idle);
                }
                if let Some(registry) = relay.registry() {
                    match registry.holder(channel).await {
                        Ok(Some(h)) if h.node == origin.node => {}
                        Ok(_) => return Ok(Ended::Offline),
                        // A registry blip must not cut media: the feed's own end tells a
                        // dead origin.
                        Err(e) => debug!(channel, error = %e, "cannot read the live registry"),
                    }
                }
            }
            _ = publisher.kicked() => return Ok(Ended::Stopped),
            _ = relay.shutdown.cancelled() => return Ok(Ended::Stopped),
        }
    }
}
