//! Playing: a viewer subscribes to a channel (waiting for its publisher if it is not live)
//! and gets each frame as the hub entry's shared RTMP chunks, or chunks of its own when its
//! stream id or chunk size differs from the shared ones.

use bytes::Bytes;
use onair_hub::{Delivery, Encoding, Protocol, RecvError};
use onair_media::{Frame, MediaKind};
use onair_rtmp::chunk::encode_standalone;
use onair_rtmp::session::{Reject, RequestId, media_raw_message};
use tracing::{Instrument, Span, debug, info, warn};

use super::connection::{Connection, Playing, Role};
use super::{ConnError, SHARED_STREAM_ID};
use crate::channel::{is_valid_name, split_query};
use crate::metrics::{Metrics, Wire};

impl Connection {
    pub(super) fn on_play(&mut self, request: RequestId, stream: u32, app: &str, name: &str) {
        let (channel, _query) = split_query(name);
        if self.ctx.auth.is_stream_key(channel) {
            warn!(
                "play refused: the play name is a stream key ([redacted]); play the channel name instead"
            );
            self.session.reject_play(
                request,
                Reject::NotFound("play the channel name, not the stream key".into()),
            );
            return;
        }
        if app != self.ctx.rtmp.app || !is_valid_name(channel) {
            // Neither name is logged: either may be a key typed into the wrong field.
            warn!("play refused: unknown application or invalid channel name");
            self.session
                .reject_play(request, Reject::NotFound("no such stream".into()));
            return;
        }
        if !matches!(self.role, Role::Idle) {
            self.session.reject_play(
                request,
                Reject::BadName("this connection is already publishing or playing".into()),
            );
            return;
        }
        Span::current().record("channel", channel);
        let mut subscriber = match self.ctx.hub.subscribe_viewer(channel, Protocol::Rtmp) {
            Ok(s) => s,
            Err(full) => {
                self.ctx.metrics.viewers_refused.add(Wire::Rtmp, 1);
                info!(channel, max = full.max, "play refused: the channel is full");
                // NetStream.Play.Failed with the reason: players show it and may retry.
                self.session.reject_play(
                    request,
                    Reject::Failed(format!(
                        "channel {channel} is full: it has its maximum of {} viewers; retry later",
                        full.max
                    )),
                );
                return;
            }
        };
        subscriber.set_batch_bytes(crate::net::VIEWER_BATCH_BYTES);
        if !subscriber.is_live()
            && let Some(relay) = &self.ctx.relay
        {
            // Live on another node: the pull becomes this channel's publisher, and this
            // viewer, already subscribed, gets it as it would a local one.
            let (relay, channel) = (relay.clone(), channel.to_owned());
            self.ctx
                .tasks
                .spawn(async move { relay.want(&channel).await }.in_current_span());
        }
        let give_up_at = (!subscriber.is_live())
            .then(|| tokio::time::Instant::now() + self.ctx.hub_config.wait_for_publisher);
        if !self.session.accept_play(request) {
            debug!(channel, "play withdrawn before it was accepted");
            return;
        }
        info!(channel, live = give_up_at.is_none(), "rtmp viewer joined");
        self.role = Role::Playing(Playing {
            subscriber,
            stream,
            batch: Vec::new(),
            audio: true,
            video: true,
            video_needs_keyframe: false,
            give_up_at,
            unacknowledged: Default::default(),
        });
    }

    pub(super) fn on_delivery(
        &mut self,
        delivery: Result<Delivery, RecvError>,
    ) -> Result<(), ConnError> {
        let Role::Playing(p) = &mut self.role else {
            return Ok(());
        };
        match delivery {
            Ok(Delivery::Frames) => {
                p.give_up_at = None;
                p.unacknowledged.skipped(p.subscriber.skipped());
                let chunk_size = self.session.chunk_size_out();
                for entry in &p.batch {
                    let f = entry.frame();
                    let wanted = match f.kind {
                        MediaKind::Audio => p.audio,
                        MediaKind::Video if p.video_needs_keyframe => {
                            let usable = f.keyframe || f.sequence_header;
                            p.video_needs_keyframe = !f.keyframe;
                            usable
                        }
                        MediaKind::Video => p.video,
                        MediaKind::Script => true,
                    };
                    if !wanted {
                        continue;
                    }
                    let bytes =
                        if p.stream == SHARED_STREAM_ID && chunk_size == self.ctx.rtmp.chunk_size {
                            entry.encoded(Encoding::RtmpChunks, |f| encode_shared(f, chunk_size))
                        } else {
                            self.session.encode_media(
                                p.stream,
                                f.kind,
                                f.timestamp.as_millis(),
                                f.data.clone(),
                            )
                        };
                    p.unacknowledged.wrote(bytes.len(), f.timestamp.as_millis());
                    self.out.push_back(bytes);
                }
                p.batch.clear();
                Ok(())
            }
            Ok(Delivery::PublisherLeft) => {
                debug!("publisher left; viewer waits");
                p.give_up_at =
                    Some(tokio::time::Instant::now() + self.ctx.hub_config.republish_grace);
                Ok(())
            }
            Ok(Delivery::PublisherBack) => {
                p.give_up_at = None;
                self.session.notify_republished(p.stream);
                Ok(())
            }
            Err(RecvError::Closed) => {
                self.session.notify_unpublished(p.stream);
                self.closing = true;
                Ok(())
            }
            Err(e) => {
                // The last resort, after skips did not keep it near live: the player is told
                // why, and the connection closes cleanly once that is written.
                Metrics::inc(&self.ctx.metrics.viewers_dropped_slow);
                warn!(channel = p.subscriber.channel(), error = %e, "rtmp viewer too slow; dropped");
                let reason = format!(
                    "dropped: this connection is too slow for the stream ({e}); try a lower quality or a better link"
                );
                self.session.fail_play(p.stream, &reason);
                self.closing = true;
                Ok(())
            }
        }
    }
}

/// The frame as one complete RTMP message in fmt-0/fmt-3 chunks, for every viewer on the
/// shared stream id and chunk size.
fn encode_shared(frame: &Frame, chunk_size: u32) -> Bytes {
    let msg = media_raw_message(
        frame.kind,
        frame.timestamp.as_millis(),
        SHARED_STREAM_ID,
        frame.data.clone(),
    );
    encode_standalone(&msg, chunk_size)
}
