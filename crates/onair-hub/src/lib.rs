//! The hub: one publisher and many subscribers per channel, in process.
//!
//! | concern | how |
//! | --- | --- |
//! | fan-out | one ring of `Arc<Entry>` per channel; subscribers keep a cursor into it, nothing is copied per subscriber |
//! | first frame at once | a new subscriber starts with metadata, sequence headers and the frames since the last keyframe (GOP cache) |
//! | slow subscribers | a subscriber further than [`HubConfig::max_lag`] behind the live edge skips to the newest keyframe; after [`HubConfig::max_skips`] skips in a row it is dropped with [`RecvError::TooSlow`] |
//! | encode once | each [`Entry`] has one slot per [`Encoding`]; the first subscriber that needs a format fills it and the rest share those bytes |
//! | republish, clock jumps | timestamps are rebased so every track stays monotonic for the subscribers that waited through the gap; a publisher clock that jumps (back more than jitter, or far forward) is bridged with a small gap instead of holding a track |
//!
//! [`Publisher::push`] never awaits and never waits on a subscriber: it appends to the ring and
//! wakes whoever is waiting. A subscriber takes *everything* that is ready at each wake-up, so a
//! busy server naturally writes bigger batches instead of holding data back for a fixed delay.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use onair_hub::{Delivery, Hub, HubConfig, Protocol, PublishOptions};
//! use onair_media::{Frame, MediaKind, Timestamp};
//!
//! let hub = Hub::new(HubConfig::default());
//! let publisher = hub.publish("demo", PublishOptions::default()).unwrap();
//! publisher.push(Frame::new(MediaKind::Video, Timestamp::ZERO, Bytes::from_static(&[0x17, 1])).with_keyframe(true));
//!
//! let mut subscriber = hub.subscribe("demo", Protocol::HttpFlv);
//! let mut batch = Vec::new();
//! assert!(matches!(subscriber.recv(&mut batch).await, Ok(Delivery::Frames)));
//! assert!(batch[0].frame().keyframe);
//! # });
//! ```
#![deny(missing_docs)]

mod channel;
mod entry;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use channel::{Delivery, Publisher, RecvError, Subscriber};
pub use entry::{Encoding, Entry};
pub use stats::{ChannelSnapshot, Protocol};

use channel::Channel;

/// Hub settings. Every bound on memory a channel may hold lives here.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Keep the frames since the last keyframe so a new subscriber starts at once.
    pub gop_cache: bool,
    /// How far (in media time) a subscriber may fall behind the live edge before it is moved
    /// forward to the newest keyframe.
    pub max_lag: Duration,
    /// How many bytes of media a subscriber may fall behind before it is moved forward.
    pub max_lag_bytes: usize,
    /// Skips within [`HubConfig::skip_window`] (of media time) after which a subscriber is
    /// given up on ([`RecvError::TooSlow`]). Skipping is what keeps a viewer on a slow link
    /// watching near live, so the default leaves room for it: a viewer at a tenth of the
    /// stream's rate skips about once a GOP (2 s with OBS's default), fifteen times in the window, and
    /// is kept; one that needs a skip at nearly every keyframe is not being helped by them.
    pub max_skips: u32,
    /// The media-time window in which skips are counted.
    pub skip_window: Duration,
    /// The latency budget of a write to the viewers: the longest a frame waits before its
    /// subscribers are woken for it. An idle channel wakes them for each frame at once. A
    /// busy one (a fan-out still running, or the last one took half the mean time between
    /// frames or more) announces frames in batches, so each viewer writes several frames in
    /// one system call; what arrives during a fan-out is announced when it ends. None of this
    /// holds a frame longer than the budget after it arrived. Zero wakes for every frame at
    /// once.
    pub max_write_delay: Duration,
    /// Hard cap on the bytes one channel keeps in its ring (GOP cache plus lag window). A GOP
    /// larger than this is not cached: new subscribers wait for the next keyframe instead.
    ///
    /// It counts what the ring's entries really hold: each frame's payload plus every
    /// per-format encoding ([`Entry::encoded`]) filled so far, which with both HTTP-FLV and
    /// RTMP viewers is about three times the payload. Encodings are counted as viewers fill
    /// them and the cap is applied at each push, so between two pushes it can be exceeded by
    /// the encodings of the newest frame. Entries a viewer still holds after they leave the
    /// ring are that viewer's memory and are not counted.
    pub max_channel_bytes: usize,
    /// Viewers one channel takes at once through [`Hub::subscribe_viewer`] (0: no cap); it
    /// can change at run time with [`Hub::set_max_viewers`].
    pub max_viewers: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            gop_cache: true,
            // Two seconds, not three: a viewer on a link a tenth of the stream's rate still
            // has its receive buffer and the keyframe it was moved to to take in after a
            // skip (about 2 s at that rate), so it peaks at `max_lag` + ~2.4 s behind. With
            // 3 s that was 5.4 s, over the 5 s a live viewer should ever be behind.
            max_lag: Duration::from_secs(2),
            max_lag_bytes: 16 << 20,
            max_skips: 20,
            skip_window: Duration::from_secs(30),
            max_channel_bytes: 64 << 20,
            max_write_delay: Duration::from_millis(20),
            max_viewers: 0,
        }
    }
}

/// Options of one publish.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    /// If the channel is already live, kick the current publisher and take over instead of
    /// being refused.
    pub takeover: bool,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The hub is shutting down.
    #[error("the server is shutting down")]
    Closed,
    /// The channel already has a live publisher.
    #[error("channel {channel:?} is already live")]
    AlreadyLive {
        /// The channel.
        channel: String,
    },
}

/// All channels of this process.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    closed: AtomicBool,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// Times any subscriber was moved forward for falling behind, and the frames it passed
    /// over: process-wide figures for metrics, one relaxed add per skip.
    pub(crate) skips: AtomicU64,
    pub(crate) frames_skipped: AtomicU64,
    /// Times the subscribers of a channel were woken for new frames, over every channel.
    wakes: Arc<AtomicU64>,
    max_viewers: AtomicUsize,
}

/// Why [`Hub::subscribe_viewer`] turned a viewer away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the channel has its maximum of {max} viewers")]
pub struct ChannelFull {
    /// The cap that was reached.
    pub max: usize,
}

impl Hub {
    /// A hub with no channels.
    pub fn new(config: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            max_viewers: AtomicUsize::new(config.max_viewers),
            config,
            closed: AtomicBool::new(false),
            channels: Mutex::new(HashMap::new()),
            skips: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            wakes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The settings this hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Starts publishing to `channel`. Dropping the [`Publisher`] ends the publish.
    pub fn publish(
        self: &Arc<Self>,
        channel: &str,
        options: PublishOptions,
    ) -> Result<Publisher, PublishError> {
        if self.is_closed() {
            return Err(PublishError::Closed);
        }
        let mut channels = self.channels.lock();
        let ch = channels
            .entry(channel.to_owned())
            .or_insert_with(|| Channel::new(channel, self.config.clone(), self.wakes.clone()));
        Channel::start_publish(ch, self.clone(), options)
    }

    /// Subscribes to `channel`, live or not: a subscriber of an idle channel waits until a
    /// publisher arrives.
    pub fn subscribe(self: &Arc<Self>, channel: &str, protocol: Protocol) -> Subscriber {
        let mut channels = self.channels.lock();
        let ch = channels
            .entry(channel.to_owned())
            .or_insert_with(|| Channel::new(channel, self.config.clone(), self.wakes.clone()));
        Channel::subscribe(ch, self.clone(), protocol)
    }

    /// Like [`Hub::subscribe`] for a viewer (not an internal consumer), refused when the
    /// channel already has [`HubConfig::max_viewers`] viewers over every protocol (as last
    /// set by [`Hub::set_max_viewers`]). The count and the subscription happen under the
    /// hub's lock, so concurrent joins cannot overshoot.
    pub fn subscribe_viewer(
        self: &Arc<Self>,
        channel: &str,
        protocol: Protocol,
    ) -> Result<Subscriber, ChannelFull> {
        let max_viewers = self.max_viewers.load(Ordering::Relaxed);
        let mut channels = self.channels.lock();
        let ch = channels
            .entry(channel.to_owned())
            .or_insert_with(|| Channel::new(channel, self.config.clone(), self.wakes.clone()));
        if max_viewers > 0 && ch.viewer_count() >= max_viewers {
            return Err(ChannelFull { max: max_viewers });
        }
        Ok(Channel::subscribe(ch, self.clone(), protocol))
    }

    /// Changes the viewer cap (0: none) for joins from now on; viewers already in stay.
    pub fn set_max_viewers(&self, max: usize) {
        self.max_viewers.store(max, Ordering::Relaxed);
    }

    /// How many times a subscriber skipped ahead for falling behind, over every channel since
    /// start, and how many frames those skips passed over.
    pub fn skip_totals(&self) -> (u64, u64) {
        (
            self.skips.load(Ordering::Relaxed),
            self.frames_skipped.load(Ordering::Relaxed),
        )
    }

    /// How many times the subscribers of a channel were woken for new frames, over every
    /// channel since start: with the viewer count, the writes per viewer the pacing
    /// ([`HubConfig::max_write_delay`]) leads to.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Shuts the hub: every subscriber's `recv` ends with [`RecvError::Closed`] and new
    /// publishes are refused, so streams end at once instead of waiting out a grace period.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let channels: Vec<_> = self.channels.lock().values().cloned().collect();
        for ch in channels {
            ch.wake_all();
        }
    }

    /// Whether [`Hub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether `channel` has a publisher now.
    pub fn is_live(&self, channel: &str) -> bool {
        self.channels
            .lock()
            .get(channel)
            .is_some_and(|c| c.is_live())
    }

    /// Ends the current publish of `channel`, if any: the publisher's [`Publisher::kicked`]
    /// completes. Returns whether there was one.
    pub fn kick(&self, channel: &str) -> bool {
        let ch = self.channels.lock().get(channel).cloned();
        ch.is_some_and(|c| c.kick())
    }

    /// Viewers of `channel` over the playback protocols, playing or waiting for a publisher
    /// (internal consumers and relays excluded); 0 for a channel nobody uses.
    pub fn viewer_count(&self, channel: &str) -> usize {
        self.channels
            .lock()
            .get(channel)
            .map_or(0, |c| c.viewer_count())
    }

    /// A snapshot of every live channel.
    pub fn live_channels(&self) -> Vec<ChannelSnapshot> {
        let channels: Vec<_> = self.channels.lock().values().cloned().collect();
        let mut out: Vec<_> = channels.iter().filter_map(|c| c.snapshot()).collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }

    /// A snapshot of one channel, if it is live.
    pub fn channel_snapshot(&self, channel: &str) -> Option<ChannelSnapshot> {
        let ch = self.channels.lock().get(channel).cloned();
        ch.and_then(|c| c.snapshot())
    }

    /// Forgets a channel that has neither a publisher nor subscribers, so names of channels
    /// nobody uses any more hold no memory.
    fn release(&self, name: &str) {
        let mut channels = self.channels.lock();
        if let Some(ch) = channels.get(name)
            && ch.is_unused()
        {
            channels.remove(name);
        }
    }

    /// How many channel entries the hub holds (live or with waiting subscribers).
    pub fn channel_count(&self) -> usize {
        self.channels.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use onair_media::{Frame, MediaKind, Timestamp};
    use proptest::prelude::*;

    fn video(ts: u32, key: bool) -> Frame {
        Frame::new(
            MediaKind::Video,
            Timestamp::from_millis(ts),
            Bytes::from(vec![if key { 0x17 } else { 0x27 }; 100]),
        )
        .with_keyframe(key)
    }
    fn audio(ts: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            Timestamp::from_millis(ts),
            Bytes::from_static(&[0xaf, 1, 0, 0]),
        )
    }
    fn video_header() -> Frame {
        Frame::new(
            MediaKind::Video,
            Timestamp::ZERO,
            Bytes::from_static(&[0x17, 0, 0, 0, 0]),
        )
        .with_sequence_header(true)
    }
    fn audio_header() -> Frame {
        Frame::new(
            MediaKind::Audio,
            Timestamp::ZERO,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        )
        .with_sequence_header(true)
    }
    fn metadata() -> Frame {
        Frame::new(
            MediaKind::Script,
            Timestamp::ZERO,
            Bytes::from_static(b"\x02\x00\x0aonMetaData"),
        )
    }

    fn now<T>(fut: impl std::future::Future<Output = T>) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), fut)
                .await
                .expect("hub test timed out")
        })
    }

    fn frames(sub: &mut Subscriber) -> Vec<Frame> {
        let mut out = Vec::new();
        match sub.try_recv(&mut out) {
            Ok(Some(Delivery::Frames)) => out.iter().map(|e| e.frame().clone()).collect(),
            Ok(None) => Vec::new(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    #[test]
    fn new_subscriber_starts_at_the_last_keyframe_after_metadata_and_headers() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        for f in [
            metadata(),
            video_header(),
            audio_header(),
            video(0, true),
            audio(10),
            video(40, false),
        ] {
            p.push(f);
        }
        p.push(video(80, true));
        p.push(audio(90));
        p.push(video(120, false));
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let got = frames(&mut sub);
        let kinds: Vec<_> = got
            .iter()
            .map(|f| (f.kind, f.timestamp.as_millis(), f.keyframe))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MediaKind::Script, 0, false),
                (MediaKind::Video, 0, false),
                (MediaKind::Audio, 0, false),
                (MediaKind::Video, 80, true),
                (MediaKind::Audio, 90, false),
                (MediaKind::Video, 120, false),
            ]
        );
        assert!(got[1].sequence_header && got[2].sequence_header);
        assert!(frames(&mut sub).is_empty(), "nothing new yet");
        p.push(audio(130));
        assert_eq!(frames(&mut sub).len(), 1);
    }

    #[test]
    fn subscribers_share_one_allocation_per_frame() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut a = hub.subscribe("c", Protocol::Rtmp);
        let mut b = hub.subscribe("c", Protocol::HttpFlv);
        p.push(video(0, true));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.try_recv(&mut x).unwrap();
        b.try_recv(&mut y).unwrap();
        assert!(Arc::ptr_eq(&x[0], &y[0]));
    }

    #[test]
    fn a_viewer_waiting_before_the_publisher_gets_the_stream_from_its_first_frame() {
        now(async {
            let hub = Hub::new(HubConfig::default());
            let mut sub = hub.subscribe("c", Protocol::HttpFlv);
            let waiter = tokio::spawn(async move {
                let mut out = Vec::new();
                let d = sub.recv(&mut out).await.unwrap();
                (d, out.iter().map(|e| e.frame().clone()).collect::<Vec<_>>())
            });
            tokio::task::yield_now().await;
            let p = hub.publish("c", PublishOptions::default()).unwrap();
            p.push(video_header());
            p.push(video(0, true));
            let (d, got) = waiter.await.unwrap();
            assert_eq!(d, Delivery::Frames);
            assert!(got[0].sequence_header);
        });
    }

    #[test]
    fn a_second_publisher_is_refused_unless_it_takes_over() {
        now(async {
            let hub = Hub::new(HubConfig::default());
            let first = hub.publish("c", PublishOptions::default()).unwrap();
            assert_eq!(
                hub.publish("c", PublishOptions::default()).unwrap_err(),
                PublishError::AlreadyLive {
                    channel: "c".into()
                }
            );
            let second = hub.publish("c", PublishOptions { takeover: true }).unwrap();
            first.kicked().await;
            assert!(
                !first.push(video(0, true)),
                "a taken-over publisher's frames are dropped"
            );
            assert!(second.push(video(0, true)));
            drop(first);
            assert!(
                hub.is_live("c"),
                "the old publisher leaving does not end the new publish"
            );
        });
    }

    #[test]
    fn closing_the_hub_ends_every_subscription_and_refuses_publishes() {
        now(async {
            let hub = Hub::new(HubConfig::default());
            let p = hub.publish("c", PublishOptions::default()).unwrap();
            let mut live = hub.subscribe("c", Protocol::Rtmp);
            let mut waiting = hub.subscribe("idle", Protocol::HttpFlv);
            let waiter = tokio::spawn(async move {
                let mut out = Vec::new();
                waiting.recv(&mut out).await
            });
            tokio::task::yield_now().await;
            hub.close();
            assert_eq!(waiter.await.unwrap(), Err(RecvError::Closed));
            let mut out = Vec::new();
            assert_eq!(live.recv(&mut out).await, Err(RecvError::Closed));
            assert_eq!(
                hub.publish("other", PublishOptions::default()).unwrap_err(),
                PublishError::Closed
            );
            drop(p);
        });
    }

    #[test]
    fn kick_ends_the_publish_and_wakes_the_publisher() {
        now(async {
            let hub = Hub::new(HubConfig::default());
            let p = hub.publish("c", PublishOptions::default()).unwrap();
            assert!(hub.kick("c"));
            p.kicked().await;
            assert!(!hub.is_live("c"));
            assert!(!hub.kick("c"));
        });
    }

    #[test]
    fn republish_keeps_each_track_monotonic_for_waiting_viewers() {
        let hub = Hub::new(HubConfig::default());
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(video_header());
        p.push(video(5000, true));
        p.push(audio(5010));
        let first = frames(&mut sub);
        assert_eq!(first.last().unwrap().timestamp.as_millis(), 5010);
        drop(p);
        let mut out = Vec::new();
        assert_eq!(
            sub.try_recv(&mut out).unwrap(),
            Some(Delivery::PublisherLeft)
        );
        assert_eq!(sub.try_recv(&mut out).unwrap(), None);

        let p = hub.publish("c", PublishOptions::default()).unwrap();
        assert_eq!(
            sub.try_recv(&mut out).unwrap(),
            Some(Delivery::PublisherBack)
        );
        p.push(video_header());
        p.push(video(0, true));
        p.push(audio(0));
        let second = frames(&mut sub);
        assert_eq!(
            second.len(),
            3,
            "the new publish is delivered from its first frame: {second:?}"
        );
        assert!(
            second.iter().all(|f| f.timestamp.as_millis() >= 5010),
            "{second:?}"
        );
        assert_eq!(second[1].timestamp.as_millis(), 5010 + 40);
    }

    #[test]
    fn viewers_past_the_cap_are_refused_and_a_leaver_makes_room() {
        let hub = Hub::new(HubConfig {
            max_viewers: 2,
            ..HubConfig::default()
        });
        let _recorder = hub.subscribe("c", Protocol::Internal);
        let first = hub.subscribe_viewer("c", Protocol::Rtmp).unwrap();
        let _second = hub.subscribe_viewer("c", Protocol::HttpFlv).unwrap();
        assert_eq!(
            hub.subscribe_viewer("c", Protocol::WsFlv).err(),
            Some(ChannelFull { max: 2 }),
            "the cap counts every protocol but internal consumers"
        );
        drop(first);
        let _third = hub.subscribe_viewer("c", Protocol::WsFlv).unwrap();
        assert!(
            hub.subscribe_viewer("other", Protocol::WsFlv).is_ok(),
            "per channel"
        );
        hub.set_max_viewers(0);
        let uncapped: Vec<_> = (0..5)
            .map(|_| hub.subscribe_viewer("c", Protocol::Rtmp))
            .collect();
        assert!(uncapped.iter().all(Result::is_ok), "0 means no cap");
    }

    #[test]
    fn restream_pushes_are_no_viewers() {
        let hub = Hub::new(HubConfig {
            max_viewers: 1,
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let pushes: Vec<_> = (0..3)
            .map(|_| hub.subscribe("c", Protocol::Restream))
            .collect();
        let _viewer = hub.subscribe_viewer("c", Protocol::Rtmp).unwrap();
        assert_eq!(hub.viewer_count("c"), 1, "pushes do not take viewer places");
        let snapshot = p.snapshot().unwrap();
        assert_eq!(snapshot.total_viewers(), 1);
        assert!(snapshot.viewers.contains(&(Protocol::Restream, 3)));
        drop(pushes);
    }

    #[test]
    fn a_new_publish_does_not_serve_the_old_gop() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(video_header());
        p.push(video(0, true));
        drop(p);
        let _p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        assert!(frames(&mut sub).is_empty());
    }

    #[test]
    fn a_slow_subscriber_skips_to_the_newest_keyframe_then_is_dropped() {
        let config = HubConfig {
            max_lag: Duration::from_millis(500),
            max_skips: 1,
            ..HubConfig::default()
        };
        let hub = Hub::new(config);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut slow = hub.subscribe("c", Protocol::HttpFlv);
        let mut ts = 0;
        let mut push_secs = |p: &Publisher, secs: u32| {
            for _ in 0..secs * 25 {
                p.push(video(ts, ts % 1000 == 0));
                ts += 40;
            }
        };
        push_secs(&p, 2);
        let got = frames(&mut slow);
        assert_eq!(
            got[0].timestamp.as_millis(),
            1000,
            "a new reader starts at the newest keyframe"
        );
        push_secs(&p, 2);
        assert_eq!(slow.skipped(), 0);
        let got = frames(&mut slow);
        assert_eq!(slow.skipped(), 1, "the skip is counted");
        assert!(got[0].keyframe, "skipped forward to a keyframe");
        assert_eq!(got[0].timestamp.as_millis(), 3000, "the newest keyframe");
        assert_eq!(
            hub.skip_totals(),
            (1, 25),
            "one skip, over the second of frames before the keyframe at 3 s"
        );
        push_secs(&p, 2);
        let mut out = Vec::new();
        assert_eq!(
            slow.try_recv(&mut out),
            Err(RecvError::TooSlow { skips: 2 })
        );
        assert_eq!(p.snapshot().unwrap().dropped_slow, 1);
    }

    #[test]
    fn a_capped_subscriber_takes_a_backlog_in_pieces_and_the_lag_check_sees_the_rest() {
        let hub = Hub::new(HubConfig {
            max_lag: Duration::from_millis(500),
            max_skips: 100,
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        // Frames are 100 bytes: at most three per delivery.
        sub.set_batch_bytes(250);
        p.push(video(0, true));
        for i in 1..10u32 {
            p.push(video(i * 40, false));
        }
        let got = frames(&mut sub);
        assert_eq!(stamps(&got).len(), 3, "the cap splits the backlog");
        assert_eq!(got[0].timestamp.as_millis(), 0);
        assert_eq!(frames(&mut sub)[0].timestamp.as_millis(), 120, "in order");
        // The reader stalls while a second passes: what it has not taken is still in the
        // ring, so it is skipped to the newest keyframe rather than served a second late.
        for i in 10..40u32 {
            p.push(video(i * 40, i == 30));
        }
        let got = frames(&mut sub);
        assert_eq!(sub.skipped(), 1);
        assert!(got[0].keyframe);
        assert_eq!(got[0].timestamp.as_millis(), 1200);
        assert_eq!(stamps(&got).len(), 3);
    }

    #[test]
    fn a_steady_skipper_is_kept_and_one_that_skips_faster_than_the_window_allows_is_not() {
        // A keyframe every `every` ms; the reader takes one frame 480 ms after each (a little
        // after the next one, when it is behind), then falls behind again.
        fn skips_until_dropped(every: u32) -> Option<u64> {
            let hub = Hub::new(HubConfig {
                max_lag: Duration::from_millis(300),
                max_skips: 3,
                skip_window: Duration::from_secs(2),
                ..HubConfig::default()
            });
            let p = hub.publish("c", PublishOptions::default()).unwrap();
            let mut sub = hub.subscribe("c", Protocol::Rtmp);
            sub.set_batch_bytes(1);
            let mut out = Vec::new();
            for i in 0..1500u32 {
                let ts = i * 40;
                p.push(video(ts, ts % every == 0));
                if ts % every == 480 % every
                    && let Err(RecvError::TooSlow { .. }) = sub.try_recv(&mut out)
                {
                    return Some(sub.skipped());
                }
            }
            assert!(sub.skipped() > 20, "it did skip: {}", sub.skipped());
            None
        }
        // One skip a second: 3 in any 2 s window, never more, for a minute.
        assert_eq!(skips_until_dropped(1000), None);
        // One every 400 ms: 5 or 6 in 2 s, over the bound.
        assert!(skips_until_dropped(400).is_some());
    }

    #[test]
    fn media_the_peer_has_not_acknowledged_counts_toward_the_lag() {
        let hub = Hub::new(HubConfig {
            max_lag: Duration::from_millis(1000),
            max_skips: 100,
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        sub.set_batch_bytes(1);
        p.push(video(0, true));
        assert_eq!(frames(&mut sub)[0].timestamp.as_millis(), 0);
        for i in 1..20u32 {
            p.push(video(i * 40, i == 10));
        }
        // The frame at 40 ms is 720 ms behind the head (760 ms): within the bound.
        let got = frames(&mut sub);
        assert_eq!((sub.skipped(), got[0].timestamp.as_millis()), (0, 40));
        // The one at 80 ms is 680 ms behind in the ring, but with 400 ms still in the
        // socket the viewer is 1080 ms behind what it has received.
        sub.set_unacknowledged(Duration::from_millis(400));
        let got = frames(&mut sub);
        assert_eq!(
            sub.skipped(),
            1,
            "ring lag plus unacknowledged media is over the bound"
        );
        assert!(got[0].keyframe);
        assert_eq!(got[0].timestamp.as_millis(), 400, "the newest keyframe");
    }

    #[test]
    fn a_subscriber_that_keeps_up_is_never_skipped() {
        let hub = Hub::new(HubConfig {
            max_lag: Duration::from_millis(500),
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        let mut count = 0;
        for i in 0..1000u32 {
            p.push(video(i * 40, i % 50 == 0));
            count += frames(&mut sub).len();
        }
        assert_eq!(count, 1000);
    }

    #[test]
    fn the_ring_is_bounded_even_when_a_gop_never_ends() {
        let config = HubConfig {
            max_channel_bytes: 10_000,
            ..HubConfig::default()
        };
        let hub = Hub::new(config);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(video(0, true));
        for i in 1..10_000u32 {
            p.push(video(i * 40, false));
        }
        let ch = hub.channels.lock().get("c").cloned().unwrap();
        let (bytes, cached_gop) = ch.ring_usage();
        assert!(bytes <= 10_000 + 100, "ring holds {bytes} bytes");
        assert!(!cached_gop, "a GOP that outgrew the budget is not served");
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        assert!(
            frames(&mut sub).is_empty(),
            "a new viewer waits for the next keyframe"
        );
        p.push(video(500_000, false));
        assert!(frames(&mut sub).is_empty());
        p.push(video(500_040, true));
        assert!(frames(&mut sub)[0].keyframe);
    }

    #[test]
    fn without_gop_cache_a_viewer_waits_for_the_next_keyframe_but_gets_headers() {
        let hub = Hub::new(HubConfig {
            gop_cache: false,
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(video_header());
        p.push(audio_header());
        p.push(video(0, true));
        p.push(audio(10));
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let got = frames(&mut sub);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|f| f.sequence_header));
        p.push(audio(20));
        p.push(video(40, false));
        assert!(
            frames(&mut sub).is_empty(),
            "audio and inter frames before the keyframe are held back"
        );
        p.push(video(80, true));
        assert!(frames(&mut sub)[0].keyframe);
    }

    #[test]
    fn frames_wait_only_on_a_busy_core_and_never_past_the_budget() {
        use channel::tests_support::wakes_now;
        let ms = Duration::from_millis;
        let budget = ms(20);
        // Frames ~14 ms apart (30 fps video and 43 audio frames a second).
        let gap = ms(14);
        assert!(wakes_now(ms(1), 0, gap, ms(0), budget), "idle: at once");
        assert!(
            wakes_now(ms(6), 0, gap, ms(0), budget),
            "fan-out under half the gap"
        );
        assert!(!wakes_now(ms(7), 0, gap, ms(0), budget), "busy: held");
        assert!(
            !wakes_now(ms(1), 3, gap, ms(5), budget),
            "a fan-out is running: held"
        );
        assert!(!wakes_now(ms(40), 0, gap, ms(19), budget));
        assert!(
            wakes_now(ms(40), 0, gap, ms(20), budget),
            "the budget is spent"
        );
        assert!(
            wakes_now(ms(40), 9, gap, ms(25), budget),
            "even during a fan-out"
        );
        assert!(
            wakes_now(ms(7), 0, ms(50), ms(0), budget),
            "the same fan-out on a channel with fewer frames is not busy"
        );
    }

    #[test]
    fn audio_only_channels_play_at_once() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(audio_header());
        p.push(audio(0));
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        assert_eq!(frames(&mut sub).len(), 1, "the header");
        p.push(audio(23));
        assert_eq!(frames(&mut sub).len(), 1);
    }

    #[test]
    fn channels_nobody_uses_are_released() {
        let hub = Hub::new(HubConfig::default());
        let sub = hub.subscribe("a", Protocol::Rtmp);
        let p = hub.publish("b", PublishOptions::default()).unwrap();
        assert_eq!(hub.channel_count(), 2);
        drop(sub);
        drop(p);
        assert_eq!(hub.channel_count(), 0);
    }

    #[test]
    fn snapshot_counts_viewers_by_protocol_and_rates() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let _a = hub.subscribe("c", Protocol::Rtmp);
        let _b = hub.subscribe("c", Protocol::HttpFlv);
        let _c = hub.subscribe("c", Protocol::HttpFlv);
        for i in 0..=25u32 {
            p.push(video(i * 40, i == 0));
        }
        let s = hub.channel_snapshot("c").unwrap();
        assert_eq!(s.total_viewers(), 3);
        assert!(s.viewers.contains(&(Protocol::HttpFlv, 2)));
        assert_eq!(s.video_frames, 26);
        assert!((s.recent_fps - 25.0).abs() < 0.5, "fps {}", s.recent_fps);
        assert_eq!(s.recent_bitrate, 26 * 100 * 8);
        assert_eq!(hub.live_channels().len(), 1);
    }

    fn stamps(got: &[Frame]) -> Vec<(MediaKind, u32)> {
        got.iter()
            .map(|f| (f.kind, f.timestamp.as_millis()))
            .collect()
    }

    #[test]
    fn a_publisher_clock_that_jumps_is_bridged_instead_of_freezing_a_track() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        p.push(video(600_000, true));
        p.push(audio(600_010));
        p.push(video(600_040, false));
        // 20 ms of jitter is held at the track's last timestamp.
        p.push(audio(599_990));
        // The clock is set back 10 minutes: holding would freeze both tracks for 10 minutes.
        p.push(video(80, false));
        p.push(audio(90));
        p.push(video(120, false));
        p.push(audio(130));
        // Then forward 20 minutes: delivered as is, it would leave a hole in the buffer.
        p.push(video(1_200_160, false));
        p.push(audio(1_200_170));
        p.push(video(1_200_200, false));
        use MediaKind::{Audio, Video};
        assert_eq!(
            stamps(&frames(&mut sub)),
            [
                (Video, 600_000),
                (Audio, 600_010),
                (Video, 600_040),
                (Audio, 600_010),
                (Video, 600_040 + 40),
                (Audio, 600_090),
                (Video, 600_120),
                (Audio, 600_130),
                (Video, 600_130 + 40),
                (Audio, 600_180),
                (Video, 600_210),
            ]
        );
    }

    #[test]
    fn a_subscriber_that_skips_gets_the_sequence_header_sent_in_the_stretch_it_skipped() {
        let hub = Hub::new(HubConfig {
            max_lag: Duration::from_millis(500),
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        p.push(video_header());
        p.push(audio_header());
        p.push(video(0, true));
        assert_eq!(frames(&mut sub).len(), 3);
        for i in 1..25 {
            p.push(video(i * 40, false));
        }
        // The encoder changes resolution: a new SPS/PPS, then a keyframe that needs it.
        let resized = Frame::new(
            MediaKind::Video,
            Timestamp::from_millis(1000),
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 2]),
        )
        .with_sequence_header(true);
        p.push(resized.clone());
        for i in 25..50 {
            p.push(video(i * 40, i == 25));
        }
        let got = frames(&mut sub);
        assert_eq!(
            got[0], resized,
            "the new header goes before the keyframe skipped to"
        );
        assert!(got[1].keyframe && got[1].timestamp.as_millis() == 1000);
        assert!(
            got[1..].iter().all(|f| !f.sequence_header),
            "the unchanged audio header is not sent again"
        );
    }

    #[test]
    fn the_channel_budget_counts_the_encodings_viewers_fill() {
        let hub = Hub::new(HubConfig {
            max_channel_bytes: 10_000,
            ..HubConfig::default()
        });
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::HttpFlv);
        let ch = hub.channels.lock().get("c").cloned().unwrap();
        // An FLV tag wraps the payload in 15 bytes, an RTMP message in at least 12.
        let wrap = |f: &Frame, extra: usize| {
            let mut b = vec![0; extra];
            b.extend_from_slice(&f.data);
            Bytes::from(b)
        };
        let mut out = Vec::new();
        for i in 0..1_000u32 {
            p.push(video(i * 40, i % 250 == 0));
            let held = ch.ring_held_bytes();
            assert!(held <= 10_000, "after push {i} the ring holds {held} bytes");
            assert_eq!(ch.ring_usage().0, held, "the budget counts all it holds");
            sub.try_recv(&mut out).unwrap();
            for e in &out {
                e.encoded(Encoding::FlvTag, |f| wrap(f, 15));
                e.encoded(Encoding::RtmpChunks, |f| wrap(f, 12));
            }
        }
        drop(p);
        let _next = hub.publish("c", PublishOptions::default()).unwrap();
        assert_eq!(ch.ring_usage().0, 0, "a new publish releases the old ring");
    }

    #[test]
    fn jump_to_live_edge_moves_forward_to_the_newest_keyframe_and_never_back() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        p.push(video_header());
        p.push(video(0, true));
        sub.jump_to_live_edge();
        assert_eq!(
            frames(&mut sub).len(),
            2,
            "before joining, a jump changes nothing"
        );
        p.push(video(40, false));
        assert_eq!(frames(&mut sub).len(), 1);
        sub.jump_to_live_edge();
        assert!(
            frames(&mut sub).is_empty(),
            "already past the newest keyframe: nothing is sent again"
        );

        p.push(video(80, false));
        let resized = Frame::new(
            MediaKind::Video,
            Timestamp::from_millis(100),
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 2]),
        )
        .with_sequence_header(true);
        p.push(resized.clone());
        p.push(video(120, true));
        p.push(video(160, false));
        sub.jump_to_live_edge();
        let got = frames(&mut sub);
        assert_eq!(got[0], resized, "the header of the stretch passed over");
        assert_eq!(
            stamps(&got[1..]),
            [(MediaKind::Video, 120), (MediaKind::Video, 160)]
        );
        assert!(got[1].keyframe);

        sub.jump_to_live_edge();
        assert!(frames(&mut sub).is_empty(), "never back to the keyframe");
        p.push(video(200, false));
        assert_eq!(stamps(&frames(&mut sub)), [(MediaKind::Video, 200)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { kind: u8, step: i32, key: bool },
        Read(usize),
        Republish,
        Join,
    }

    fn op() -> impl Strategy<Value = Op> {
        let step = prop_oneof![
            8 => 0i32..200,
            // Jitter, and steps back just past it.
            2 => -2 * channel::MAX_JITTER_MS..0,
            // The publisher's clock jumping, either way.
            1 => -1_200_000i32..1_200_000,
        ];
        prop_oneof![
            6 => (0u8..3, step, any::<bool>()).prop_map(|(kind, step, key)| Op::Push { kind, step, key }),
            3 => (0usize..4).prop_map(Op::Read),
            1 => Just(Op::Republish),
            1 => Just(Op::Join),
        ]
    }

    /// A frame whose payload is `index`, so a reader can tell which push it is.
    fn tagged(kind: u8, ts: u32, key: bool, index: usize) -> Frame {
        let data = Bytes::from(index.to_le_bytes().to_vec());
        match kind {
            0 => Frame::new(MediaKind::Audio, Timestamp::from_millis(ts), data),
            1 => Frame::new(MediaKind::Video, Timestamp::from_millis(ts), data).with_keyframe(key),
            _ => video_header(),
        }
    }

    /// One pushed frame, as the publisher stamped it.
    struct Pushed {
        track: usize,
        timestamp: Timestamp,
        /// The previous push on the same track (a video header counts as video).
        previous_on_track: Option<usize>,
        /// Publishes started before this push.
        publish: usize,
    }

    /// What a reader that gets every frame knows about one track.
    #[derive(Default)]
    struct Follow {
        /// Index, input and output timestamp of the last coded frame delivered.
        last: Option<(usize, Timestamp, Timestamp)>,
        /// Input timestamp of the last frame whose output moved the track forward.
        moved_at: Option<Timestamp>,
    }

    /// Checks one coded frame a follower (a reader that reads after every push and so gets
    /// every frame from its first keyframe on) received: the track keeps the publisher's
    /// pace, holds only for jitter, and bridges a clock jump with a small gap.
    fn follow(
        tracks: &mut [Follow; 2],
        pushed: &[Pushed],
        index: usize,
        out: Timestamp,
    ) -> Result<(), TestCaseError> {
        let this = &pushed[index];
        let track = &mut tracks[this.track];
        let input = this.timestamp;
        let Some((prev, prev_in, prev_out)) =
            track.last.filter(|l| this.previous_on_track == Some(l.0))
        else {
            // Not the next frame of its track after the last one seen (a header, or frames
            // held back until a keyframe, came between): start over.
            *track = Follow {
                last: Some((index, input, out)),
                moved_at: None,
            };
            return Ok(());
        };
        let moved = out.since(prev_out);
        let step = input.since(prev_in);
        prop_assert!(moved >= 0, "track went back: {prev_out:?} then {out:?}");
        if moved == 0 {
            // Held: only while the input is at most the jitter allowance behind where the
            // track stopped. A clock set back and held would freeze the track.
            if let Some(at) = track.moved_at {
                let behind = input.since(at);
                prop_assert!(
                    (-channel::MAX_JITTER_MS..=0).contains(&behind),
                    "push {index}: track held at {out:?} while its input moved {behind} ms from {at:?}"
                );
            }
        }
        let next_push = prev + 1 == index && pushed[prev].publish == this.publish;
        if next_push && track.moved_at == Some(prev_in) {
            if (0..=channel::MAX_FORWARD_JUMP_MS).contains(&step) {
                prop_assert_eq!(moved, step, "push {}: the publisher's pace is kept", index);
            } else if !(-channel::MAX_JITTER_MS..=channel::MAX_FORWARD_JUMP_MS).contains(&step) {
                prop_assert!(
                    moved >= channel::REPUBLISH_GAP_MS as i32,
                    "push {index}: a clock jump of {step} ms moved the track {moved} ms"
                );
            }
        }
        if moved > 0 {
            track.moved_at = Some(input);
        }
        track.last = Some((index, input, out));
        Ok(())
    }

    proptest! {
        /// Whatever the publisher does (jitter, clock jumps either way, republishes), each
        /// subscriber sees every track's timestamps move forward, and its first video frame
        /// (after headers) is a keyframe; a subscriber that keeps up sees each track keep the
        /// publisher's pace, never frozen.
        #[test]
        fn every_subscriber_sees_monotonic_tracks_starting_on_a_keyframe(ops in proptest::collection::vec(op(), 1..300)) {
            let hub = Hub::new(HubConfig { max_lag: Duration::from_millis(800), max_skips: 1000, ..HubConfig::default() });
            let mut publisher = Some(hub.publish("c", PublishOptions::default()).unwrap());
            let mut follower = hub.subscribe("c", Protocol::Rtmp);
            let mut tracks: [Follow; 2] = Default::default();
            let mut pushed: Vec<Pushed> = Vec::new();
            let mut last_on_track = [None, None];
            let mut publishes = 0;
            let mut subs: Vec<(Subscriber, Option<Timestamp>, Option<Timestamp>, bool)> = Vec::new();
            let mut ts = 0u32;
            for op in ops {
                match op {
                    Op::Push { kind, step, key } => {
                        ts = ts.wrapping_add_signed(step);
                        let track = usize::from(kind != 0);
                        let index = pushed.len();
                        let f = tagged(kind, ts, key, index);
                        pushed.push(Pushed { track, timestamp: f.timestamp, previous_on_track: last_on_track[track], publish: publishes });
                        last_on_track[track] = Some(index);
                        if let Some(p) = &publisher { p.push(f); }
                    }
                    Op::Republish => {
                        drop(publisher.take());
                        ts = u32::from(ts as u16) / 7;
                        publishes += 1;
                        publisher = Some(hub.publish("c", PublishOptions::default()).unwrap());
                    }
                    Op::Join => subs.push((hub.subscribe("c", Protocol::Rtmp), None, None, false)),
                    Op::Read(i) => {
                        if let Some((sub, last_a, last_v, seen_key)) = subs.get_mut(i) {
                            let mut out = Vec::new();
                            if let Ok(Some(Delivery::Frames)) = sub.try_recv(&mut out) {
                                for e in &out {
                                    let f = e.frame();
                                    let last = match f.kind { MediaKind::Audio => &mut *last_a, MediaKind::Video => &mut *last_v, MediaKind::Script => continue };
                                    if let Some(l) = *last { prop_assert!(f.timestamp.since(l) >= 0, "{:?} after {:?}", f.timestamp, l); }
                                    *last = Some(f.timestamp);
                                    if f.kind == MediaKind::Video && !f.sequence_header {
                                        prop_assert!(*seen_key || f.keyframe, "first video frame is not a keyframe");
                                        *seen_key = true;
                                    }
                                }
                            }
                        }
                    }
                }
                let mut out = Vec::new();
                while let Some(delivery) = follower.try_recv(&mut out).unwrap() {
                    if delivery != Delivery::Frames {
                        continue;
                    }
                    for e in &out {
                        let f = e.frame();
                        if f.kind != MediaKind::Script && !f.sequence_header {
                            let index = usize::from_le_bytes(f.data[..].try_into().unwrap());
                            follow(&mut tracks, &pushed, index, f.timestamp)?;
                        }
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn frames_pushed_just_before_the_publisher_leaves_are_delivered() {
        let hub = Hub::new(HubConfig::default());
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let publisher = hub.publish("c", PublishOptions::default()).unwrap();
        publisher.push(video(0, true));
        let mut out = Vec::new();
        assert_eq!(sub.recv(&mut out).await.unwrap(), Delivery::Frames);
        publisher.push(video(40, false));
        drop(publisher);
        assert_eq!(
            sub.recv(&mut out).await.unwrap(),
            Delivery::Frames,
            "the last frame is delivered"
        );
        assert_eq!(out.len(), 1);
        assert_eq!(sub.recv(&mut out).await.unwrap(), Delivery::PublisherLeft);
    }

    /// Polls a pinned future once, from inside a test's task.
    async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx)))
            .await
    }

    fn paced(budget_ms: u64) -> Arc<Hub> {
        Hub::new(HubConfig {
            max_write_delay: Duration::from_millis(budget_ms),
            ..HubConfig::default()
        })
    }

    /// A channel with a budget of `budget_ms` whose one subscriber took the first frame (a
    /// keyframe) `fan_out_ms` after the wake for it, as a busy core would have it run.
    async fn after_one_fan_out(
        budget_ms: u64,
        fan_out_ms: u64,
    ) -> (Arc<Hub>, Publisher, Subscriber) {
        let hub = paced(budget_ms);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let mut out = Vec::new();
        let mut recv = Box::pin(sub.recv(&mut out));
        assert!(poll_once(&mut recv).await.is_pending());
        p.push(video(0, true));
        assert_eq!(hub.wakes(), 1);
        tokio::time::advance(Duration::from_millis(fan_out_ms)).await;
        assert!(poll_once(&mut recv).await.is_ready());
        drop(recv);
        (hub, p, sub)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_channel_wakes_its_subscribers_for_each_frame_at_once() {
        let hub = paced(20);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        p.push(video(0, true));
        let mut sub = hub.subscribe("c", Protocol::Rtmp);
        let mut out = Vec::new();
        sub.recv(&mut out).await.unwrap();
        let start = tokio::time::Instant::now();
        for ts in [33, 66, 100] {
            let mut recv = Box::pin(sub.recv(&mut out));
            assert!(poll_once(&mut recv).await.is_pending());
            p.push(video(ts, false));
            assert!(
                poll_once(&mut recv).await.is_ready(),
                "the wake for {ts} came at once"
            );
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "nothing waited for a timer"
        );
        assert_eq!(hub.wakes(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_channel_announces_frames_in_batches_within_the_budget() {
        // The fan-out took 15 ms, and the next frame comes 15 ms after the first: busy.
        let (hub, p, mut sub) = after_one_fan_out(20, 15).await;
        let mut out = Vec::new();
        let mut recv = Box::pin(sub.recv(&mut out));
        assert!(poll_once(&mut recv).await.is_pending());
        let held_from = tokio::time::Instant::now();
        p.push(audio(23));
        tokio::time::advance(Duration::from_millis(10)).await;
        p.push(video(33, false));
        assert_eq!(hub.wakes(), 1, "held while the budget allows");
        tokio::time::advance(Duration::from_millis(9)).await;
        assert_eq!(hub.wakes(), 1);
        // The flush timer announces both at the budget after the first arrived.
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(hub.wakes(), 2);
        assert_eq!(held_from.elapsed(), Duration::from_millis(20));
        assert!(poll_once(&mut recv).await.is_ready());
        drop(recv);
        let kinds: Vec<MediaKind> = out.iter().map(|e| e.frame().kind).collect();
        assert_eq!(
            kinds,
            [MediaKind::Audio, MediaKind::Video],
            "one delivery, one write"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn frames_that_arrive_during_a_fan_out_are_announced_when_it_ends() {
        let hub = paced(20);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let (mut a, mut b) = (
            hub.subscribe("c", Protocol::Rtmp),
            hub.subscribe("c", Protocol::HttpFlv),
        );
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        // Frames 40 ms apart, each fan-out done at once: not busy.
        for ts in [0, 40, 80, 120] {
            let mut recv_a = Box::pin(a.recv(&mut out_a));
            let mut recv_b = Box::pin(b.recv(&mut out_b));
            assert!(poll_once(&mut recv_a).await.is_pending());
            assert!(poll_once(&mut recv_b).await.is_pending());
            p.push(video(ts, ts == 0));
            assert!(poll_once(&mut recv_a).await.is_ready());
            assert!(poll_once(&mut recv_b).await.is_ready());
            tokio::time::advance(Duration::from_millis(40)).await;
        }
        assert_eq!(hub.wakes(), 4);
        let mut recv_a = Box::pin(a.recv(&mut out_a));
        let mut recv_b = Box::pin(b.recv(&mut out_b));
        assert!(poll_once(&mut recv_a).await.is_pending());
        assert!(poll_once(&mut recv_b).await.is_pending());
        p.push(video(160, false));
        assert!(poll_once(&mut recv_a).await.is_ready());
        drop(recv_a);
        let mut recv_a = Box::pin(a.recv(&mut out_a));
        assert!(poll_once(&mut recv_a).await.is_pending());
        // b has not run yet: the fan-out is still going, so this frame waits for its end.
        tokio::time::advance(Duration::from_millis(5)).await;
        p.push(video(165, false));
        assert_eq!(hub.wakes(), 5);
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(poll_once(&mut recv_b).await.is_ready());
        assert_eq!(
            hub.wakes(),
            6,
            "b's run ended the fan-out and announced the frame"
        );
        assert!(poll_once(&mut recv_a).await.is_ready());
        drop((recv_a, recv_b));
        assert_eq!(out_a.len(), 1);
        assert_eq!(
            out_b.len(),
            2,
            "b, still to run, took the new frame with the first"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_goes_while_released_does_not_leave_the_channel_busy() {
        let hub = paced(20);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut a = hub.subscribe("c", Protocol::Rtmp);
        let mut b = hub.subscribe("c", Protocol::Rtmp);
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        {
            let mut recv_a = Box::pin(a.recv(&mut out_a));
            let mut recv_b = Box::pin(b.recv(&mut out_b));
            assert!(poll_once(&mut recv_a).await.is_pending());
            assert!(poll_once(&mut recv_b).await.is_pending());
        }
        p.push(video(0, true));
        // a goes without running again; b runs: the fan-out is over.
        drop(a);
        assert!(
            poll_once(&mut Box::pin(b.recv(&mut out_b)))
                .await
                .is_ready()
        );
        let mut recv_b = Box::pin(b.recv(&mut out_b));
        assert!(poll_once(&mut recv_b).await.is_pending());
        p.push(video(33, false));
        assert!(poll_once(&mut recv_b).await.is_ready(), "announced at once");
        assert_eq!(hub.wakes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_given_up_is_not_counted_as_a_fan_out_still_running() {
        let hub = paced(20);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut a = hub.subscribe("c", Protocol::Rtmp);
        let mut b = hub.subscribe("c", Protocol::Rtmp);
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        // a's caller takes another branch of its `select!` and drops the wait.
        let mut recv_a = Box::pin(a.recv(&mut out_a));
        assert!(poll_once(&mut recv_a).await.is_pending());
        drop(recv_a);
        let mut recv_b = Box::pin(b.recv(&mut out_b));
        assert!(poll_once(&mut recv_b).await.is_pending());
        p.push(video(0, true));
        assert!(poll_once(&mut recv_b).await.is_ready());
        drop(recv_b);
        // b was the only one released, so the fan-out is over and a new frame goes at once.
        let mut recv_b = Box::pin(b.recv(&mut out_b));
        assert!(poll_once(&mut recv_b).await.is_pending());
        tokio::time::advance(Duration::from_millis(40)).await;
        p.push(video(40, false));
        assert_eq!(hub.wakes(), 2, "not held for a");
        assert!(poll_once(&mut recv_b).await.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_wakes_for_every_frame_even_during_a_fan_out() {
        let hub = paced(0);
        let p = hub.publish("c", PublishOptions::default()).unwrap();
        let mut a = hub.subscribe("c", Protocol::Rtmp);
        let mut out = Vec::new();
        let mut recv = Box::pin(a.recv(&mut out));
        assert!(poll_once(&mut recv).await.is_pending());
        for ts in [0, 23, 33, 46] {
            p.push(if ts == 0 { video(0, true) } else { audio(ts) });
        }
        assert_eq!(hub.wakes(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_s_last_frames_are_not_held_when_the_publisher_leaves() {
        let (hub, p, mut sub) = after_one_fan_out(50, 40).await;
        let mut out = Vec::new();
        let mut recv = Box::pin(sub.recv(&mut out));
        assert!(poll_once(&mut recv).await.is_pending());
        p.push(video(33, false));
        assert_eq!(hub.wakes(), 1, "busy: held");
        drop(p);
        assert!(
            poll_once(&mut recv).await.is_ready(),
            "the end of the publish wakes"
        );
        drop(recv);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].frame().timestamp, Timestamp::from_millis(33));
    }
}
