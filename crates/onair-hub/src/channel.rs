//! One channel: its ring of frames, its publisher and its subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use onair_media::{Frame, MediaKind, Timestamp};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant as Clock;

use crate::entry::Entry;
use crate::stats::{ChannelSnapshot, Protocol, ViewerCounts};
use crate::{Hub, HubConfig, PublishError, PublishOptions};

/// The gap put between the last frame of a publish and the first frame of the next one on the
/// channel's timeline, so subscribers that waited see time move forward, never back (Red5 #50).
/// A jump in the publisher's clock is bridged with the same gap.
pub(crate) const REPUBLISH_GAP_MS: u32 = 40;

/// The largest step back on one track that is taken for jitter (an encoder interleaving or
/// nudging its clock) and absorbed by holding the frame at the track's last timestamp.
/// Anything larger is a jump of the publisher's clock: holding would freeze the track for as
/// long as the jump (a clock set back 10 minutes would stall flv.js and mpegts.js for 10
/// minutes), so the timeline is re-offset instead.
pub(crate) const MAX_JITTER_MS: i32 = 100;

/// The largest step forward past the channel's newest timestamp that is taken as the
/// publisher's real pace. A larger one is a jump of its clock: delivered as is, it leaves a
/// hole in an MSE player's buffer where playback stalls, so the timeline is re-offset instead.
pub(crate) const MAX_FORWARD_JUMP_MS: i32 = 10_000;

#[derive(Debug)]
pub(crate) struct Channel {
    name: String,
    config: HubConfig,
    state: Mutex<State>,
    /// Wakes subscribers: new frames, a publisher arriving or leaving.
    wake: Notify,
    /// Wakes publishers that are being kicked.
    kick: Notify,
    viewers: ViewerCounts,
    subscribers: AtomicUsize,
    /// The hub's count of wakes, over every channel (a metric).
    wakes: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    ring: VecDeque<Arc<Entry>>,
    /// Sequence number of `ring[0]`; sequence numbers never restart, so a cursor stays valid
    /// across a republish.
    first_seq: u64,
    /// Payload bytes of the frames in the ring.
    ring_bytes: usize,
    /// Bytes of the encodings the ring's entries hold, kept up to date by the entries
    /// themselves as subscribers fill their slots (see [`Entry::encoded`]).
    slot_bytes: Arc<AtomicUsize>,
    total_bytes: u64,
    /// The newest video keyframe in the ring: where a new subscriber starts.
    keyframe_seq: Option<u64>,
    metadata: Option<(u64, Arc<Entry>)>,
    video_header: Option<(u64, Arc<Entry>)>,
    audio_header: Option<(u64, Arc<Entry>)>,
    has_video: bool,

    /// The publish now in progress, by id; `None` when the channel is idle.
    live: Option<u64>,
    next_publish_id: u64,
    started: Option<Instant>,

    /// Added to every incoming timestamp (wrapping) to put it on the channel's timeline.
    offset: u32,
    rebase_pending: bool,
    /// The newest timestamp on the channel's timeline.
    last_out: Option<Timestamp>,
    audio: TrackClock,
    video: TrackClock,

    bytes_in: u64,
    video_frames: u64,
    audio_frames: u64,
    dropped_slow: u64,

    pacing: Pacing,
}

/// When the subscribers are woken for new frames ([`HubConfig::max_write_delay`]).
///
/// Every wake costs each viewer a write: a system call, and on the receiving side a wake-up,
/// which over loopback the sender's core pays too. At a few thousand viewers those writes are
/// the server's whole cost, so a busy channel announces frames in batches instead of one by
/// one; an idle one announces each frame at once. Nothing is withheld from a subscriber that
/// polls on its own: a hold delays only the wake, and every delivery takes everything ready.
#[derive(Debug, Default)]
struct Pacing {
    /// Subscribers parked on `wake` in the current epoch.
    parked: usize,
    /// Subscribers a wake released that have not polled yet: while there are any, the
    /// fan-out of that wake is still running, and whatever arrives meanwhile is picked up
    /// by those still to run anyway.
    unrun: usize,
    /// Counts wakes; a parked subscriber remembers the epoch it parked in, so it knows
    /// whether it was released (and counted in `unrun`) or is still counted in `parked`.
    epoch: u64,
    /// When the fan-out now running (or the last one) began.
    woke_at: Option<Clock>,
    /// How long the last complete fan-out took, from its wake until every subscriber it
    /// released had polled: the core's cost of one wake, queueing included.
    last_fanout: Duration,
    /// When the oldest frame not yet announced arrived; `None`: every frame is announced.
    pending_since: Option<Clock>,
    /// When the newest frame arrived, and the mean time between frames (a moving average,
    /// 1/8 weight to the newest gap).
    last_push: Option<Clock>,
    frame_gap: Duration,
    /// A flush timer is running for this channel.
    timer: bool,
}

/// What to do with the frames not yet announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Nothing to announce.
    Idle,
    /// Wake the subscribers now.
    Wake,
    /// Hold until this instant at the latest.
    Hold(Clock),
}

impl Pacing {
    /// The one place the rule lives: a frame is announced at once unless the core is busy,
    /// and never later than the budget after it arrived. Busy: a fan-out is still running,
    /// or the last one took half the mean time between frames or more, so that waking for
    /// every frame would spend half a core or more on this channel alone. The cost of a
    /// fan-out does not fall when frames are batched (it is a write per viewer either way),
    /// so batching does not talk itself out of being needed.
    fn pace(&self, now: Clock, budget: Duration) -> Pace {
        let Some(since) = self.pending_since else {
            return Pace::Idle;
        };
        let deadline = since + budget;
        if now >= deadline {
            return Pace::Wake;
        }
        let busy = self.unrun > 0
            || (!self.last_fanout.is_zero() && self.last_fanout * 2 >= self.frame_gap);
        if busy {
            Pace::Hold(deadline)
        } else {
            Pace::Wake
        }
    }

    /// Counts a new frame as not yet announced.
    fn arrived(&mut self, now: Clock) {
        if let Some(last) = self.last_push {
            let gap = now.saturating_duration_since(last);
            self.frame_gap = if self.frame_gap.is_zero() {
                gap
            } else {
                (self.frame_gap * 7 + gap) / 8
            };
        }
        self.last_push = Some(now);
        self.pending_since.get_or_insert(now);
    }

    /// Releases every parked subscriber; the caller notifies them after unlocking.
    fn wake(&mut self, now: Clock) {
        self.pending_since = None;
        if self.unrun == 0 {
            self.woke_at = Some(now);
        }
        self.unrun += std::mem::take(&mut self.parked);
        self.epoch += 1;
    }
}

/// Where one track stands on the channel's timeline.
#[derive(Debug, Default, Clone, Copy)]
struct TrackClock {
    last: Option<Timestamp>,
    /// The offset `last` was stamped with. Holding a frame is for the publisher's jitter;
    /// a step back that a re-offset since then caused is bridged instead.
    offset: u32,
}

impl State {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.ring.len() as u64
    }

    fn get(&self, seq: u64) -> Option<&Arc<Entry>> {
        let index = seq.checked_sub(self.first_seq)?;
        self.ring.get(usize::try_from(index).ok()?)
    }

    fn head_timestamp(&self) -> Option<Timestamp> {
        self.ring.back().map(|e| e.frame().timestamp)
    }

    /// Starts a fresh timeline segment: the old publish's frames are no use to anyone joining
    /// now, and subscribers waiting at the old head continue at the new first frame.
    fn reset_for_publish(&mut self) {
        self.first_seq = self.next_seq();
        // The time without a publisher is no gap between frames.
        self.pacing.last_push = None;
        for entry in self.ring.drain(..) {
            entry.retire();
        }
        self.ring_bytes = 0;
        self.keyframe_seq = None;
        self.metadata = None;
        self.video_header = None;
        self.audio_header = None;
        self.has_video = false;
        self.rebase_pending = true;
        self.bytes_in = 0;
        self.video_frames = 0;
        self.audio_frames = 0;
    }

    /// Puts a frame on the channel's timeline, keeping every track monotonic for subscribers
    /// (flv.js #671: players reject a track whose decode time goes back; per track, not
    /// across tracks).
    ///
    /// A coded frame keeps the publisher's pace. A step back of up to [`MAX_JITTER_MS`] on
    /// its track is held at the track's last timestamp; a larger step back, or a step forward
    /// of more than [`MAX_FORWARD_JUMP_MS`] past the channel's newest timestamp, is a
    /// discontinuity: the whole timeline is re-offset so the frame lands
    /// [`REPUBLISH_GAP_MS`] after the newest timestamp, as at a republish, and the tracks go
    /// on from there at the publisher's pace.
    ///
    /// Metadata and sequence headers are not decoded on the timeline, so they never re-offset
    /// it (some encoders resend them stamped 0): a sequence header behind its track's last
    /// timestamp is stamped with that one, and one more than [`MAX_FORWARD_JUMP_MS`] past
    /// the channel's newest timestamp with the newest; metadata always takes the newest.
    fn rebase(&mut self, frame: &Frame) -> Timestamp {
        if self.rebase_pending {
            self.rebase_pending = false;
            self.reoffset(frame.timestamp);
        }
        let candidate = frame.timestamp.wrapping_add(self.offset);
        let track = match frame.kind {
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
            MediaKind::Script => {
                let out = self.last_out.unwrap_or(candidate);
                self.last_out = Some(out);
                return out;
            }
        };
        let out = if frame.sequence_header {
            let mut out = candidate;
            if let Some(newest) = self.last_out
                && out.since(newest) > MAX_FORWARD_JUMP_MS
            {
                out = newest;
            }
            if let Some(last) = track.last
                && out.since(last) < 0
            {
                out = last;
            }
            out
        } else {
            let behind = track.last.map(|last| last.since(candidate));
            let jumped = self
                .last_out
                .is_some_and(|newest| candidate.since(newest) > MAX_FORWARD_JUMP_MS);
            let stepped_back = behind
                .is_some_and(|b| b > MAX_JITTER_MS || (b >= 0 && track.offset != self.offset));
            if jumped || stepped_back {
                self.reoffset(frame.timestamp);
                frame.timestamp.wrapping_add(self.offset)
            } else if let Some(last) = track.last
                && behind.is_some_and(|b| b > 0)
            {
                last
            } else {
                candidate
            }
        };
        let track = TrackClock {
            last: Some(out),
            offset: self.offset,
        };
        match frame.kind {
            MediaKind::Audio => self.audio = track,
            _ => self.video = track,
        }
        if self.last_out.is_none_or(|newest| out.since(newest) > 0) {
            self.last_out = Some(out);
        }
        out
    }

    /// Sets the offset so that a frame stamped `timestamp` by the publisher lands
    /// [`REPUBLISH_GAP_MS`] after the channel's newest timestamp, which is at or after every
    /// track's last one.
    fn reoffset(&mut self, timestamp: Timestamp) {
        self.offset = match self.last_out {
            Some(newest) => newest
                .wrapping_add(REPUBLISH_GAP_MS)
                .as_millis()
                .wrapping_sub(timestamp.as_millis()),
            None => 0,
        };
    }

    /// Counts a new frame as not yet announced and says what to do now.
    fn pace_new_frame(&mut self, config: &HubConfig, now: Clock) -> Pace {
        self.pacing.arrived(now);
        if config.max_write_delay.is_zero() {
            return Pace::Wake;
        }
        self.pacing.pace(now, config.max_write_delay)
    }

    /// Wakes the subscribers (the caller notifies them after unlocking).
    fn wake(&mut self, now: Clock) {
        self.pacing.wake(now);
    }

    fn trim(&mut self, config: &HubConfig) {
        let max_lag = lag_millis(config);
        let Some(head) = self.head_timestamp() else {
            return;
        };
        while let Some(front) = self.ring.front() {
            let seq = self.first_seq;
            let in_gop = config.gop_cache && self.keyframe_seq.is_some_and(|k| seq >= k);
            let in_lag_window = i64::from(head.since(front.frame().timestamp)) <= max_lag;
            let over_budget = self.held_bytes() > config.max_channel_bytes;
            if (in_gop || in_lag_window) && !over_budget {
                break;
            }
            self.ring_bytes -= front.size();
            front.retire();
            self.ring.pop_front();
            self.first_seq += 1;
            if self.keyframe_seq.is_some_and(|k| k < self.first_seq) {
                // The GOP outgrew the channel's budget; new subscribers wait for a keyframe.
                self.keyframe_seq = None;
            }
        }
    }
}

impl State {
    /// What the ring holds, as [`HubConfig::max_channel_bytes`] counts it: payloads and
    /// filled encodings.
    fn held_bytes(&self) -> usize {
        self.ring_bytes + self.slot_bytes.load(Ordering::Acquire)
    }
}

/// How far behind the head (in media time) a frame still counts as the live edge, which
/// one delivery takes whole past [`Subscriber::set_batch_bytes`]: what one paced wake
/// announces, plus what piles up while a busy core runs a fan-out (twice the last one's
/// length, at least [`LIVE_EDGE_SLACK`]), up to half of `max_lag`. A viewer that far behind
/// waits on the server, not on its link; cutting its batches would cost it a write per
/// frame just when the core can least afford it, and each write it loses puts it further
/// behind (at 8000 viewers on one core that spiral delivered half the stream).
fn live_edge_millis(config: &HubConfig, last_fanout: Duration) -> i64 {
    let edge = config.max_write_delay + (last_fanout * 2).max(LIVE_EDGE_SLACK);
    i64::try_from(edge.min(config.max_lag / 2).as_millis()).unwrap_or(i64::MAX)
}

/// See [`live_edge_millis`]: three video frames at 30 fps.
const LIVE_EDGE_SLACK: Duration = Duration::from_millis(100);

fn lag_millis(config: &HubConfig) -> i64 {
    i64::try_from(config.max_lag.as_millis()).unwrap_or(i64::MAX)
}

impl Channel {
    pub(crate) fn new(name: &str, config: HubConfig, wakes: Arc<AtomicU64>) -> Arc<Channel> {
        Arc::new(Channel {
            name: name.to_owned(),
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            kick: Notify::new(),
            viewers: ViewerCounts::default(),
            subscribers: AtomicUsize::new(0),
            wakes,
        })
    }

    /// Acts on a pacing decision taken under the channel's lock: wakes the subscribers
    /// (returns true: the caller notifies them with [`Channel::notify`] once it has
    /// unlocked), or makes sure a timer looks again by the deadline.
    fn act(this: &Arc<Channel>, st: &mut State, pace: Pace, now: Clock) -> bool {
        match pace {
            Pace::Idle => false,
            Pace::Wake => {
                st.wake(now);
                true
            }
            Pace::Hold(_) if st.pacing.timer => false,
            Pace::Hold(deadline) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    st.pacing.timer = true;
                    runtime.spawn(Channel::flush_at(Arc::downgrade(this), deadline));
                    false
                }
                // No runtime to run a timer on (a synchronous caller): nothing could keep
                // the budget, so the frames go now.
                Err(_) => {
                    st.wake(now);
                    true
                }
            },
        }
    }

    fn notify(&self) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    /// The flush timer: at the deadline of the frames held, announce them if nothing else
    /// has; one runs per channel at a time, and it ends when nothing is held.
    async fn flush_at(channel: std::sync::Weak<Channel>, mut at: Clock) {
        // A timer that never ends its loop (its runtime shut down, or it panicked) must
        // not leave the channel believing one runs: the next hold arms a new one.
        struct Armed(std::sync::Weak<Channel>, bool);
        impl Drop for Armed {
            fn drop(&mut self) {
                if !self.1
                    && let Some(this) = self.0.upgrade()
                {
                    this.state.lock().pacing.timer = false;
                }
            }
        }
        let mut armed = Armed(channel, false);
        loop {
            tokio::time::sleep_until(at).await;
            let Some(this) = armed.0.upgrade() else {
                return;
            };
            let mut st = this.state.lock();
            let now = Clock::now();
            match st.pacing.pace(now, this.config.max_write_delay) {
                Pace::Hold(deadline) => at = deadline,
                pace => {
                    armed.1 = true;
                    st.pacing.timer = false;
                    let notify = Channel::act(&this, &mut st, pace, now);
                    drop(st);
                    if notify {
                        this.notify();
                    }
                    return;
                }
            }
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.state.lock().live.is_some()
    }

    /// Bytes in the ring as the budget counts them, and whether a GOP is cached.
    #[cfg(test)]
    pub(crate) fn ring_usage(&self) -> (usize, bool) {
        let st = self.state.lock();
        (st.held_bytes(), st.keyframe_seq.is_some())
    }

    /// Bytes the ring's entries really hold: payloads and every filled slot.
    #[cfg(test)]
    pub(crate) fn ring_held_bytes(&self) -> usize {
        self.state.lock().ring.iter().map(|e| e.held_bytes()).sum()
    }

    /// Viewers over every playback protocol (internal consumers excluded), waiting or playing.
    pub(crate) fn viewer_count(&self) -> usize {
        [Protocol::Rtmp, Protocol::HttpFlv, Protocol::WsFlv]
            .into_iter()
            .map(|p| self.viewers.get(p))
            .sum()
    }

    pub(crate) fn is_unused(&self) -> bool {
        self.subscribers.load(Ordering::Acquire) == 0 && self.state.lock().live.is_none()
    }

    /// Called with the hub's channel map locked, so the channel cannot be released between
    /// being found and being claimed.
    pub(crate) fn start_publish(
        this: &Arc<Channel>,
        hub: Arc<Hub>,
        options: PublishOptions,
    ) -> Result<Publisher, PublishError> {
        let id = {
            let mut st = this.state.lock();
            if st.live.is_some() && !options.takeover {
                return Err(PublishError::AlreadyLive {
                    channel: this.name.clone(),
                });
            }
            st.next_publish_id += 1;
            let id = st.next_publish_id;
            st.live = Some(id);
            st.started = Some(Instant::now());
            st.reset_for_publish();
            id
        };
        // A taken-over publisher learns it is no longer live from its `kicked` future.
        this.kick.notify_waiters();
        this.wake.notify_waiters();
        Ok(Publisher {
            channel: this.clone(),
            hub,
            id,
        })
    }

    /// Called with the hub's channel map locked (see [`Channel::start_publish`]).
    pub(crate) fn subscribe(this: &Arc<Channel>, hub: Arc<Hub>, protocol: Protocol) -> Subscriber {
        this.subscribers.fetch_add(1, Ordering::AcqRel);
        this.viewers.add(protocol);
        let st = this.state.lock();
        // Waiting for a publisher: hold a place at the head so the next publish is delivered
        // from its first frame.
        let waiting_at = st.live.is_none().then(|| st.next_seq());
        drop(st);
        Subscriber {
            channel: this.clone(),
            hub,
            protocol,
            phase: Phase::Waiting { returning: false },
            cursor: waiting_at.unwrap_or(0),
            waited: waiting_at.is_some(),
            prefix: Vec::new(),
            waiting_keyframe: false,
            recent_skips: VecDeque::new(),
            skipped_total: 0,
            batch_bytes: usize::MAX,
            unacknowledged: 0,
            parked_in: None,
        }
    }

    /// Wakes every subscriber (used when the hub closes).
    pub(crate) fn wake_all(&self) {
        self.wake.notify_waiters();
    }

    pub(crate) fn kick(&self) -> bool {
        let was_live = {
            let mut st = self.state.lock();
            let was_live = st.live.take().is_some();
            if was_live {
                st.wake(Clock::now());
            }
            was_live
        };
        if was_live {
            self.kick.notify_waiters();
            self.wake.notify_waiters();
        }
        was_live
    }

    fn end_publish(&self, id: u64) {
        let ended = {
            let mut st = self.state.lock();
            if st.live == Some(id) {
                st.live = None;
                st.started = None;
                // The frames still held go with this wake: the stream's last ones.
                st.wake(Clock::now());
                true
            } else {
                false
            }
        };
        if ended {
            self.wake.notify_waiters();
        }
    }

    fn push(this: &Arc<Channel>, id: u64, frame: Frame) -> bool {
        {
            let mut st = this.state.lock();
            if st.live != Some(id) {
                return false;
            }
            let timestamp = st.rebase(&frame);
            let seq = st.next_seq();
            let frame = Frame { timestamp, ..frame };
            st.bytes_in += frame.data.len() as u64;
            match frame.kind {
                MediaKind::Video if !frame.sequence_header => st.video_frames += 1,
                MediaKind::Audio if !frame.sequence_header => st.audio_frames += 1,
                _ => {}
            }
            let entry = Arc::new(Entry::new(frame, st.total_bytes, st.slot_bytes.clone()));
            let f = entry.frame();
            match (f.kind, f.sequence_header, f.keyframe) {
                (MediaKind::Script, _, _) => st.metadata = Some((seq, entry.clone())),
                (MediaKind::Video, true, _) => {
                    st.has_video = true;
                    st.video_header = Some((seq, entry.clone()));
                }
                (MediaKind::Audio, true, _) => st.audio_header = Some((seq, entry.clone())),
                (MediaKind::Video, false, true) => {
                    st.has_video = true;
                    st.keyframe_seq = Some(seq);
                }
                (MediaKind::Video, false, false) => st.has_video = true,
                (MediaKind::Audio, false, _) => {}
            }
            let now = Clock::now();
            let pace = st.pace_new_frame(&this.config, now);
            st.ring_bytes += entry.size();
            st.total_bytes += entry.size() as u64;
            st.ring.push_back(entry);
            st.trim(&this.config);
            let notify = Channel::act(this, &mut st, pace, now);
            drop(st);
            if notify {
                this.notify();
            }
        }
        true
    }

    pub(crate) fn snapshot(&self) -> Option<ChannelSnapshot> {
        let st = self.state.lock();
        st.live?;
        let (mut bytes, mut video) = (0u64, 0u64);
        for e in &st.ring {
            bytes += e.size() as u64;
            if e.frame().kind == MediaKind::Video && !e.frame().sequence_header {
                video += 1;
            }
        }
        let span = match (st.ring.front(), st.ring.back()) {
            (Some(a), Some(b)) => b.frame().timestamp.since(a.frame().timestamp).max(0) as u64,
            _ => 0,
        };
        let recent_bitrate = (bytes * 8 * 1000).checked_div(span).unwrap_or(0);
        let recent_fps = if span > 0 {
            video.saturating_sub(1) as f64 * 1000.0 / span as f64
        } else {
            0.0
        };
        Some(ChannelSnapshot {
            channel: self.name.clone(),
            uptime: st.started.map(|s| s.elapsed()).unwrap_or_default(),
            bytes_in: st.bytes_in,
            video_frames: st.video_frames,
            audio_frames: st.audio_frames,
            recent_bitrate,
            recent_fps,
            viewers: Protocol::ALL
                .iter()
                .map(|&p| (p, self.viewers.get(p)))
                .collect(),
            dropped_slow: st.dropped_slow,
        })
    }
}

/// The one publisher of a channel. Dropping it ends the publish; subscribers stay and wait
/// for the next one.
#[derive(Debug)]
pub struct Publisher {
    channel: Arc<Channel>,
    hub: Arc<Hub>,
    id: u64,
}

impl Publisher {
    /// Appends a frame and wakes the subscribers. Never waits on anyone. Returns `false` once
    /// this publish has been kicked or taken over, and the frame is dropped.
    pub fn push(&self, frame: Frame) -> bool {
        Channel::push(&self.channel, self.id, frame)
    }

    /// Completes when this publish has been kicked ([`Hub::kick`]) or taken over.
    pub async fn kicked(&self) {
        loop {
            let notified = self.channel.kick.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.channel.state.lock().live != Some(self.id) {
                return;
            }
            notified.await;
        }
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel.name
    }

    /// The channel as it is now.
    pub fn snapshot(&self) -> Option<ChannelSnapshot> {
        self.channel.snapshot()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.channel.end_publish(self.id);
        self.hub.release(&self.channel.name);
    }
}

/// What [`Subscriber::recv`] delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Frames were put in the caller's buffer, in order.
    Frames,
    /// The publisher went away; the subscriber keeps waiting for the next one.
    PublisherLeft,
    /// A publisher is back after [`Delivery::PublisherLeft`]; frames follow.
    PublisherBack,
}

/// Why a subscriber gets nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind too often; the caller should disconnect it.
    #[error("subscriber fell behind the live edge {skips} times within hub.skip_window")]
    TooSlow {
        /// Skips counted.
        skips: u32,
    },
    /// The hub was closed (the server is shutting down).
    #[error("the server is shutting down")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No publisher (yet, or any more).
    Waiting { returning: bool },
    /// Following the publish with this id.
    Live(u64),
}

/// One reader of a channel. It holds only a cursor; frames are shared with every other
/// subscriber.
#[derive(Debug)]
pub struct Subscriber {
    channel: Arc<Channel>,
    hub: Arc<Hub>,
    protocol: Protocol,
    phase: Phase,
    cursor: u64,
    /// The cursor was placed before the current publish began (it waited for it).
    waited: bool,
    /// Cached metadata and sequence headers to deliver before the ring frames at a join.
    prefix: Vec<Arc<Entry>>,
    waiting_keyframe: bool,
    /// When (head time) the skips inside the last `skip_window` happened, oldest first; at
    /// most `max_skips + 1` long.
    recent_skips: VecDeque<Timestamp>,
    skipped_total: u64,
    /// Most payload bytes one delivery takes from the ring (at least one frame goes).
    batch_bytes: usize,
    /// Milliseconds of media the consumer has taken that its peer has not acknowledged yet
    /// ([`Subscriber::set_unacknowledged`]); the lag check counts them.
    unacknowledged: i64,
    /// The pacing epoch this subscriber parked in, waiting for a wake ([`Pacing`]).
    parked_in: Option<u64>,
}

impl Subscriber {
    /// Waits for frames and puts *all* that are ready into `out` (cleared first), or reports
    /// a change of publisher.
    pub async fn recv(&mut self, out: &mut Vec<Arc<Entry>>) -> Result<Delivery, RecvError> {
        out.clear();
        let channel = self.channel.clone();
        // A caller that drops this future while it waits (a `select!` taking another
        // branch) may not poll again for a long time: its place in the pacing count is
        // settled now, or a wake would count it as a fan-out still running.
        let this = Parked(self);
        loop {
            let notified = channel.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(delivery) = this.0.poll(out, true)? {
                return Ok(delivery);
            }
            notified.await;
        }
    }

    /// Like [`Subscriber::recv`] but never waits: `Ok(None)` when nothing is ready.
    pub fn try_recv(&mut self, out: &mut Vec<Arc<Entry>>) -> Result<Option<Delivery>, RecvError> {
        out.clear();
        self.poll(out, false)
    }

    /// Takes what is ready; `park`: when nothing is, the caller waits on the channel's wake
    /// (its `Notified` already enabled), which the pacing counts.
    fn poll(
        &mut self,
        out: &mut Vec<Arc<Entry>>,
        park: bool,
    ) -> Result<Option<Delivery>, RecvError> {
        let channel = self.channel.clone();
        let mut st = channel.state.lock();
        let notify = self.unpark(&mut st);
        let delivery = if self.hub.is_closed() {
            Err(RecvError::Closed)
        } else {
            self.poll_locked(&mut st, &channel.config, out)
        };
        if matches!(delivery, Ok(None)) && park {
            self.parked_in = Some(st.pacing.epoch);
            st.pacing.parked += 1;
        }
        drop(st);
        if notify {
            channel.notify();
        }
        delivery
    }

    /// Settles this subscriber's place in the pacing count once it runs again (or goes):
    /// still parked, or released by a wake. The last one a wake released ends that fan-out
    /// and, if the pacing says so, announces what arrived meanwhile (returns true: the caller
    /// notifies after unlocking).
    fn unpark(&mut self, st: &mut State) -> bool {
        let Some(epoch) = self.parked_in.take() else {
            return false;
        };
        let p = &mut st.pacing;
        if epoch == p.epoch {
            p.parked = p.parked.saturating_sub(1);
            return false;
        }
        p.unrun = p.unrun.saturating_sub(1);
        if p.unrun > 0 {
            return false;
        }
        let now = Clock::now();
        if let Some(woke_at) = p.woke_at {
            p.last_fanout = now.saturating_duration_since(woke_at);
        }
        let pace = p.pace(now, self.channel.config.max_write_delay);
        Channel::act(&self.channel, st, pace, now)
    }

    fn poll_locked(
        &mut self,
        st: &mut State,
        config: &HubConfig,
        out: &mut Vec<Arc<Entry>>,
    ) -> Result<Option<Delivery>, RecvError> {
        match self.phase {
            Phase::Waiting { returning } => {
                let Some(id) = st.live else { return Ok(None) };
                self.phase = Phase::Live(id);
                self.join(st);
                if returning {
                    return Ok(Some(Delivery::PublisherBack));
                }
            }
            // The publisher left, but what it pushed before leaving is still in the ring
            // (a new publish would have cleared it): deliver that first, so a viewer gets
            // a stream's last frames; `PublisherLeft` follows on the next call.
            Phase::Live(_)
                if st.live.is_none()
                    && self.cursor >= st.first_seq
                    && self.cursor < st.next_seq() => {}
            Phase::Live(id) if st.live != Some(id) => {
                self.phase = Phase::Waiting { returning: true };
                self.prefix.clear();
                // Whatever comes next belongs to a new publish, which starts a new ring
                // segment at the current head.
                self.cursor = st.next_seq();
                self.waited = true;
                return Ok(Some(Delivery::PublisherLeft));
            }
            Phase::Live(_) => {}
        }

        if let Some(head) = st.head_timestamp() {
            let fell_off = self.cursor < st.first_seq;
            // At or past the newest keyframe a reader cannot do better, however long the GOP.
            let can_catch_up = self.cursor < st.keyframe_seq.unwrap_or(st.next_seq());
            let lagging = can_catch_up
                && st.get(self.cursor).is_some_and(|e| {
                    i64::from(head.since(e.frame().timestamp)).saturating_add(self.unacknowledged)
                        > lag_millis(config)
                        || st.total_bytes - e.offset() > config.max_lag_bytes as u64
                });
            if fell_off || lagging {
                self.skip(st, head)?;
            }
        }
        // After `skip`, which may have queued the headers of the stretch it skipped.
        out.append(&mut self.prefix);
        let next = st.next_seq();
        let head = st.head_timestamp();
        let live_edge = live_edge_millis(config, st.pacing.last_fanout);
        let mut taken = 0usize;
        while self.cursor < next {
            // The loop bound keeps `cursor` inside the ring, which `skip` ensured starts at
            // or before it.
            let Some(entry) = st.get(self.cursor).cloned() else {
                break;
            };
            // The cap is for a backlog; the live edge goes in one write however big it is,
            // or a paced wake would cost a write per frame all the same.
            if taken >= self.batch_bytes
                && head.is_some_and(|h| i64::from(h.since(entry.frame().timestamp)) > live_edge)
            {
                break;
            }
            self.cursor += 1;
            if self.wanted(st, &entry) {
                taken += entry.size();
                out.push(entry);
            }
        }
        Ok((!out.is_empty()).then_some(Delivery::Frames))
    }

    /// Decides whether an entry is delivered; while waiting for a keyframe, only headers,
    /// metadata and (for audio-only channels) audio go through.
    fn wanted(&mut self, st: &State, entry: &Entry) -> bool {
        let f = entry.frame();
        if !self.waiting_keyframe || f.sequence_header || f.kind == MediaKind::Script {
            return true;
        }
        match f.kind {
            MediaKind::Video if f.keyframe => {
                self.waiting_keyframe = false;
                true
            }
            MediaKind::Audio => !st.has_video,
            _ => false,
        }
    }

    fn join(&mut self, st: &State) {
        let start = match st.keyframe_seq {
            Some(k) if self.channel.config.gop_cache => k,
            _ => st.next_seq(),
        };
        // A subscriber that waited for this publish is already at its start and gets all of it;
        // either way video starts on a keyframe (`wanted` lets the keyframe through first).
        if !(self.waited && self.cursor == st.first_seq) {
            self.cursor = start;
        }
        self.waiting_keyframe = true;
        self.waited = false;
        self.prefix.clear();
        for (seq, entry) in [&st.metadata, &st.video_header, &st.audio_header]
            .into_iter()
            .flatten()
        {
            if *seq < self.cursor {
                self.prefix.push(entry.clone());
            }
        }
    }

    fn skip(&mut self, st: &mut State, head: Timestamp) -> Result<(), RecvError> {
        let window = i64::try_from(self.channel.config.skip_window.as_millis()).unwrap_or(i64::MAX);
        // A sliding window, not a run: a viewer on a slow link skips steadily (every few
        // seconds, forever) and is being helped; only one that needs more than `max_skips`
        // inside one window is not. Counting skips "in a row, each within the window of the
        // last" dropped every steady skipper after `max_skips` of them.
        while self
            .recent_skips
            .front()
            .is_some_and(|t| i64::from(head.since(*t)) > window)
        {
            self.recent_skips.pop_front();
        }
        self.recent_skips.push_back(head);
        self.skipped_total += 1;
        let skips = u32::try_from(self.recent_skips.len()).unwrap_or(u32::MAX);
        if skips > self.channel.config.max_skips {
            st.dropped_slow += 1;
            return Err(RecvError::TooSlow { skips });
        }
        let from = self.cursor;
        match st.keyframe_seq {
            Some(k) if k > self.cursor || self.cursor < st.first_seq => self.advance_to(st, k),
            _ => {
                self.advance_to(st, st.next_seq());
                self.waiting_keyframe = true;
            }
        }
        self.hub.skips.fetch_add(1, Ordering::Relaxed);
        self.hub
            .frames_skipped
            .fetch_add(self.cursor.saturating_sub(from), Ordering::Relaxed);
        Ok(())
    }

    /// Moves the cursor forward to `to`. Metadata and sequence headers that arrived in the
    /// stretch passed over are queued to go first: an encoder that changes resolution sends
    /// a new sequence header, and the frames after it do not decode with the old one.
    fn advance_to(&mut self, st: &State, to: u64) {
        let skipped = self.cursor..to;
        for (seq, entry) in [&st.metadata, &st.video_header, &st.audio_header]
            .into_iter()
            .flatten()
        {
            if skipped.contains(seq) {
                self.prefix.push(entry.clone());
            }
        }
        self.cursor = to;
    }

    /// Moves this subscriber forward to the newest keyframe, if that is ahead of what it has
    /// read; otherwise (it is already at or past the newest keyframe, or the channel has no
    /// keyframe) it stays where it is. It never moves back, so nothing already delivered is
    /// delivered again and each track's timestamps keep moving forward on the same
    /// connection: this is what a seek on a live stream can mean. Metadata and sequence
    /// headers from the stretch passed over are delivered first. It does not count as falling
    /// behind ([`HubConfig::max_skips`](crate::HubConfig::max_skips)).
    pub fn jump_to_live_edge(&mut self) {
        let channel = self.channel.clone();
        let st = channel.state.lock();
        // Before joining a publish the cursor has no place in it; joining puts it at the
        // newest keyframe anyway.
        if !matches!(self.phase, Phase::Live(id) if st.live == Some(id)) {
            return;
        }
        if let Some(k) = st.keyframe_seq
            && k > self.cursor
        {
            self.advance_to(&st, k);
        }
    }

    /// Caps what one delivery takes from the ring, in payload bytes (at least one frame is
    /// always taken). A viewer whose connection is slower than the stream then advances its
    /// cursor only as fast as its socket drains, so what it has not received yet stays in the
    /// ring, where the lag check sees it and skips; taken all at once, a backlog (a GOP at a
    /// join, the frames after a stall) would sit in the writer's queue out of the check's
    /// sight. Viewers at the live edge take a frame or two per wake-up and never reach it.
    pub fn set_batch_bytes(&mut self, bytes: usize) {
        self.batch_bytes = bytes.max(1);
    }

    /// Tells the lag check how much media this subscriber's consumer has taken that its peer
    /// has not yet acknowledged: what sits in the socket's send queue, unsent or in flight.
    /// The check then measures the viewer's lag from what it has really received, so a
    /// viewer on a slow link is moved forward that much sooner; counted only from the ring
    /// it would end `hub.max_lag` plus that much behind live (issue 16).
    pub fn set_unacknowledged(&mut self, media: Duration) {
        self.unacknowledged = i64::try_from(media.as_millis()).unwrap_or(i64::MAX);
    }

    /// How many times this subscriber was moved forward for falling behind, ever. A consumer
    /// that must know where its stream has a hole (the HLS recorder marks a discontinuity
    /// there) compares it before and after each delivery.
    pub fn skipped(&self) -> u64 {
        self.skipped_total
    }

    /// How this subscriber watches.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel.name
    }

    /// Whether the channel has a publisher now.
    pub fn is_live(&self) -> bool {
        self.channel.is_live()
    }
}

/// A subscriber inside [`Subscriber::recv`]; see there.
struct Parked<'a>(&'a mut Subscriber);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.settle();
    }
}

impl Subscriber {
    /// Settles a park that no poll will follow (see [`Subscriber::unpark`]).
    fn settle(&mut self) {
        if self.parked_in.is_some() {
            let channel = self.channel.clone();
            let notify = self.unpark(&mut channel.state.lock());
            if notify {
                channel.notify();
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.settle();
        self.channel.viewers.remove(self.protocol);
        self.channel.subscribers.fetch_sub(1, Ordering::AcqRel);
        self.hub.release(&self.channel.name);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// The pacing rule on its own, for a channel whose last fan-out took `last_fanout`,
    /// with `unrun` subscribers of a running one still to run, frames `frame_gap` apart,
    /// and the oldest frame not yet announced `held` old: whether it wakes now.
    pub(crate) fn wakes_now(
        last_fanout: Duration,
        unrun: usize,
        frame_gap: Duration,
        held: Duration,
        budget: Duration,
    ) -> bool {
        let now = Clock::now();
        let pacing = Pacing {
            unrun,
            last_fanout,
            frame_gap,
            pending_since: Some(now - held),
            ..Pacing::default()
        };
        pacing.pace(now, budget) == Pace::Wake
    }
}
