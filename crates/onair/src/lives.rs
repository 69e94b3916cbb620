//! The publishes live on this node, as the platform sees them: which key and channel row each
//! came from, its live-session row, what the stream carries, and its peak audience. The hub
//! knows frames and viewers; this registry ties a live stream back to the store, so a revoked
//! key or a banned owner can end it, and the API can say who is live.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_hub::{ChannelSnapshot, Hub, Protocol};
use parking_lot::Mutex;
use serde::Serialize;
use tracing::{info, warn};

use crate::platform::Platform;

/// The id of a publish's live-session row, once the store has written it (`None` if it could
/// not). Shared, so the recorder can link its replay to the session the ingest records.
pub type SessionRow =
    futures_util::future::Shared<futures_util::future::BoxFuture<'static, Option<i64>>>;

/// What the stream carries, as far as the publisher has said (metadata, sequence headers).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaInfo {
    /// `h264`, `hevc`, `av1`, …
    pub video_codec: Option<String>,
    /// `aac`, `opus`, …
    pub audio_codec: Option<String>,
    /// Picture width in pixels.
    pub width: Option<u32>,
    /// Picture height in pixels.
    pub height: Option<u32>,
    /// The encoder's name from the metadata (`obs-output module …`).
    pub encoder: Option<String>,
}

/// A publish as the ingest registers it.
#[derive(Debug, Clone)]
pub struct LiveStart {
    /// The public channel name.
    pub channel: String,
    /// The channel's row, when the key came from the store.
    pub channel_id: Option<i64>,
    /// The key's jti, when the key came from the store.
    pub key_jti: Option<String>,
    /// The publisher's address.
    pub peer: SocketAddr,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    start: LiveStart,
    started_at: DateTime<Utc>,
    media: MediaInfo,
    peak_viewers: u64,
}

/// One live stream with its current figures, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct LiveStream {
    /// The public channel name.
    pub channel: String,
    /// The channel's id in the store (`None` for `[dev]` keys).
    pub channel_id: Option<i64>,
    /// When the publish started.
    pub started_at: DateTime<Utc>,
    /// Seconds since the publish started.
    pub uptime_seconds: f64,
    /// Media bitrate over the last few seconds, kbit/s.
    pub bitrate_kbps: f64,
    /// Video frame rate over the last few seconds.
    pub fps: f64,
    /// Codecs and picture size.
    pub media: MediaInfo,
    /// Viewers now, by protocol.
    pub viewers: ViewerCounts,
    /// The most viewers at once in this publish.
    pub peak_viewers: u64,
    /// Media bytes received in this publish.
    pub bytes_in: u64,
    /// The publisher's address (admin only).
    pub publisher_addr: String,
    /// The key's jti (admin only; `None` for `[dev]` keys).
    pub key_jti: Option<String>,
}

/// Viewers by protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ViewerCounts {
    /// RTMP players.
    pub rtmp: u64,
    /// HTTP-FLV players.
    pub http_flv: u64,
    /// WebSocket-FLV players.
    pub ws_flv: u64,
    /// All of them.
    pub total: u64,
}

impl ViewerCounts {
    fn from_snapshot(s: &ChannelSnapshot) -> Self {
        let get = |p: Protocol| {
            s.viewers
                .iter()
                .find(|(q, _)| *q == p)
                .map_or(0, |(_, n)| *n as u64)
        };
        ViewerCounts {
            rtmp: get(Protocol::Rtmp),
            http_flv: get(Protocol::HttpFlv),
            ws_flv: get(Protocol::WsFlv),
            total: s.total_viewers() as u64,
        }
    }
}

/// The registry. Cheap to lock: it changes when a publish starts or ends, once a second for
/// the peak counts, and on the rare sequence header or metadata.
#[derive(Debug, Default)]
pub struct Lives {
    inner: Mutex<Inner>,
    /// Signalled at every start and end, so the cluster registry announces a change at once
    /// instead of at its next refresh.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    by_channel: HashMap<String, Entry>,
}

/// What a publish holds while it is live; its id tells its entry from a successor's on the
/// same channel (a takeover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveId(u64);

/// A publish that ended, with what its session row needs.
#[derive(Debug, Clone)]
pub struct LiveEnd {
    /// The registration.
    pub start: LiveStart,
    /// Codecs seen.
    pub media: MediaInfo,
    /// The most viewers at once.
    pub peak_viewers: u64,
}

impl Lives {
    /// Registers a publish that the hub accepted. A previous entry of the channel (a publisher
    /// taken over) is replaced.
    pub fn start(&self, start: LiveStart) -> LiveId {
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.by_channel.insert(
            start.channel.clone(),
            Entry {
                id,
                start,
                started_at: Utc::now(),
                media: MediaInfo::default(),
                peak_viewers: 0,
            },
        );
        drop(inner);
        self.changed.notify_one();
        LiveId(id)
    }

    /// Completes after the next start or end (or at once if one happened since the last
    /// call): for the one task that mirrors this registry elsewhere.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The channels live here, with when each publish started.
    pub fn channels(&self) -> Vec<(String, DateTime<Utc>)> {
        let inner = self.inner.lock();
        inner
            .by_channel
            .iter()
            .map(|(c, e)| (c.clone(), e.started_at))
            .collect()
    }

    /// Updates what the stream carries.
    pub fn update_media(&self, channel: &str, id: LiveId, update: impl FnOnce(&mut MediaInfo)) {
        if let Some(e) = self.inner.lock().by_channel.get_mut(channel)
            && e.id == id.0
        {
            update(&mut e.media);
        }
    }

    /// Notes the audience now, for the peak.
    pub fn note_viewers(&self, channel: &str, viewers: u64) {
        if let Some(e) = self.inner.lock().by_channel.get_mut(channel) {
            e.peak_viewers = e.peak_viewers.max(viewers);
        }
    }

    /// Removes a publish that ended; `None` when a successor already replaced it.
    pub fn end(&self, channel: &str, id: LiveId) -> Option<LiveEnd> {
        let mut inner = self.inner.lock();
        match inner.by_channel.get(channel) {
            Some(e) if e.id == id.0 => {
                let e = inner.by_channel.remove(channel)?;
                drop(inner);
                self.changed.notify_one();
                Some(LiveEnd {
                    start: e.start,
                    media: e.media,
                    peak_viewers: e.peak_viewers,
                })
            }
            _ => None,
        }
    }

    /// The channels live with a key from the store: (channel, jti).
    pub fn keyed(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .by_channel
            .values()
            .filter_map(|e| Some((e.start.channel.clone(), e.start.key_jti.clone()?)))
            .collect()
    }

    /// The channel that the key with `jti` is live on.
    pub fn channel_of_key(&self, jti: &str) -> Option<String> {
        self.inner
            .lock()
            .by_channel
            .values()
            .find(|e| e.start.key_jti.as_deref() == Some(jti))
            .map(|e| e.start.channel.clone())
    }

    /// When the live on `channel` started, or `None` when it is not live: one lookup, for
    /// callers on a hot path (every danmaku sent) that need nothing else.
    pub fn started_at(&self, channel: &str) -> Option<DateTime<Utc>> {
        self.inner
            .lock()
            .by_channel
            .get(channel)
            .map(|e| e.started_at)
    }

    /// Every live stream with the hub's figures.
    pub fn snapshot(&self, hub: &Hub) -> Vec<LiveStream> {
        let mut out: Vec<LiveStream> = {
            let inner = self.inner.lock();
            inner
                .by_channel
                .values()
                .map(|e| LiveStream {
                    channel: e.start.channel.clone(),
                    channel_id: e.start.channel_id,
                    started_at: e.started_at,
                    uptime_seconds: 0.0,
                    bitrate_kbps: 0.0,
                    fps: 0.0,
                    media: e.media.clone(),
                    viewers: ViewerCounts::default(),
                    peak_viewers: e.peak_viewers,
                    bytes_in: 0,
                    publisher_addr: e.start.peer.to_string(),
                    key_jti: e.start.key_jti.clone(),
                })
                .collect()
        };
        for live in &mut out {
            if let Some(s) = hub.channel_snapshot(&live.channel) {
                live.uptime_seconds = s.uptime.as_secs_f64();
                live.bitrate_kbps = s.recent_bitrate as f64 / 1000.0;
                live.fps = s.recent_fps;
                live.viewers = ViewerCounts::from_snapshot(&s);
                live.bytes_in = s.bytes_in;
                live.peak_viewers = live.peak_viewers.max(live.viewers.total);
            }
        }
        out.sort_by(|a, b| {
            b.viewers
                .total
                .cmp(&a.viewers.total)
                .then_with(|| a.channel.cmp(&b.channel))
        });
        out
    }
}

/// How often live publishes are checked against the store (revoked keys, banned owners,
/// deleted channels) and their audience sampled for the peak.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Ends the live publish that uses the stream key `jti`, if there is one on this node.
/// Other nodes (and this one, if the call is missed) end it on their next store check.
pub fn kick_key(lives: &Lives, hub: &Hub, jti: &str) -> bool {
    match lives.channel_of_key(jti) {
        Some(channel) => kick_if_key(lives, hub, &channel, jti),
        None => false,
    }
}

/// Ends the live publish on `channel` if it still uses the key `jti`. Returns whether one was
/// ended.
pub fn kick_if_key(lives: &Lives, hub: &Hub, channel: &str, jti: &str) -> bool {
    // Checked under the registry's view at this moment: a publish that replaced the keyed
    // one (another key, a takeover) is left alone.
    if lives.channel_of_key(jti).as_deref() == Some(channel) {
        return hub.kick(channel);
    }
    false
}

/// Watches live publishes until `shutdown`: every [`CHECK_INTERVAL`], each publish with a
/// stored key is checked, and one whose key was revoked (here, by another node or by the
/// CLI), whose owner was banned or whose channel was deleted is ended. A store outage ends
/// nothing: the streams keep going and the check resumes when the store answers.
pub async fn watch(
    lives: Arc<Lives>,
    hub: Arc<Hub>,
    platform: Arc<Platform>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_down = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for s in hub.live_channels() {
            lives.note_viewers(&s.channel, s.total_viewers() as u64);
        }
        for (channel, jti) in lives.keyed() {
            let check =
                tokio::time::timeout(CHECK_INTERVAL * 4, platform.store().publish_grant(&jti));
            let Ok(answer) = check.await else {
                if !store_down {
                    warn!("the database did not answer a live key check in time; streams continue");
                    store_down = true;
                }
                break;
            };
            let why = match answer {
                Ok(Some(g)) if g.allows_publish() && g.channel_slug == channel => None,
                Ok(Some(g)) if g.revoked_at.is_some() => Some("stream key revoked"),
                Ok(Some(g)) if g.owner_banned => Some("channel owner banned"),
                Ok(Some(g)) if !g.allows_publish() => Some("channel owner may not stream"),
                Ok(Some(_)) => Some("channel renamed"),
                Ok(None) => Some("channel or key deleted"),
                Err(e) => {
                    if !store_down {
                        warn!(error = %e, "cannot check live stream keys; streams continue");
                        store_down = true;
                    }
                    break;
                }
            };
            store_down = false;
            if let Some(why) = why
                && kick_if_key(&lives, &hub, &channel, &jti)
            {
                info!(channel, why, "live publish ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(channel: &str, jti: Option<&str>) -> LiveStart {
        LiveStart {
            channel: channel.into(),
            channel_id: Some(1),
            key_jti: jti.map(str::to_owned),
            peer: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    #[test]
    fn a_takeover_replaces_the_entry_and_the_old_end_leaves_it() {
        let lives = Lives::default();
        let a = lives.start(start("c", Some("ka")));
        let b = lives.start(start("c", Some("kb")));
        assert_eq!(lives.channel_of_key("kb").as_deref(), Some("c"));
        assert_eq!(lives.channel_of_key("ka"), None);
        assert!(
            lives.end("c", a).is_none(),
            "the old publish does not remove its successor"
        );
        lives.note_viewers("c", 7);
        lives.note_viewers("c", 3);
        lives.update_media("c", b, |m| m.video_codec = Some("h264".into()));
        lives.update_media("c", a, |m| m.video_codec = Some("stale".into()));
        let end = lives.end("c", b).expect("its own entry");
        assert_eq!(end.peak_viewers, 7);
        assert_eq!(end.media.video_codec.as_deref(), Some("h264"));
        assert!(lives.keyed().is_empty());
    }

    #[test]
    fn started_at_follows_the_channel_live_now() {
        let lives = Lives::default();
        assert_eq!(lives.started_at("c"), None);
        let a = lives.start(start("c", None));
        let first = lives.started_at("c").expect("live");
        let b = lives.start(start("c", None));
        let second = lives.started_at("c").expect("still live");
        assert!(second >= first, "a takeover starts a new live");
        assert_eq!(lives.started_at("other"), None);
        lives.end("c", a);
        assert_eq!(lives.started_at("c"), Some(second), "the old end leaves it");
        lives.end("c", b);
        assert_eq!(lives.started_at("c"), None);
    }

    #[test]
    fn only_stored_keys_are_watched() {
        let lives = Lives::default();
        lives.start(start("dev", None));
        lives.start(start("real", Some("j1")));
        assert_eq!(lives.keyed(), vec![("real".to_owned(), "j1".to_owned())]);
    }
}
