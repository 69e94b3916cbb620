//! [`ChatService`]: the rooms, what the host tells the chat ([`ChatHost`]), sending with
//! persist-then-broadcast, gifts, moderation and the periodic like and audience frames.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use onair_store::{
    Channel, ChatMessage, GiftOutcome, MessageKind, NewChatMessage, SendGift, Store, StoreError,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::cluster::{BusEvent, ChatBus, Held, Released, RoomStats, Sequence};
use crate::limits::{ChatConfig, Window};
use crate::protocol::{
    ErrorCode, GiftInfo, HistoryEntry, MessageFrame, Sender, ServerFrame, SystemEvent,
};

/// The settings key of a channel's slow mode, in seconds (0: off).
fn slow_mode_key(channel_id: i64) -> String {
    format!("chat.slow_mode.channel.{channel_id}")
}

/// A signed-in chat user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatUser {
    /// The account id.
    pub id: i64,
    /// The username.
    pub name: String,
    /// Admins moderate every room.
    pub admin: bool,
    /// The jti of the access token this user signed in with over the socket: once that
    /// sign-in ends (logout, refresh, a ban, expiry) sends are refused until the client
    /// authenticates again. `None` where each request is authenticated on its own (REST).
    pub session: Option<String>,
}

/// The `chat` or `danmaku` frame of a stored message.
fn message_frame(m: &ChatMessage) -> ServerFrame {
    let frame = MessageFrame::from(m);
    match m.kind {
        MessageKind::Chat => ServerFrame::Chat(frame),
        MessageKind::Danmaku => ServerFrame::Danmaku(frame),
    }
}

/// A boxed future, for [`ChatHost::authenticate`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the chat needs from the rest of the server, so the crate depends on neither the hub
/// nor the HTTP layer.
pub trait ChatHost: Send + Sync + 'static {
    /// The account of an access token: `Ok(None)` when it is invalid, expired, revoked or its
    /// account banned.
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatUser>, StoreError>>;

    /// Video viewers of `channel` now, over every protocol.
    fn video_viewers(&self, channel: &str) -> u64;

    /// When the channel's current live started, or `None` when it is not live.
    fn live_since(&self, channel: &str) -> Option<DateTime<Utc>>;

    /// Every channel with video viewers on this node and how many: told to the other nodes,
    /// whose rooms count them in, even where this node has no chat room for it.
    fn watched(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// The JSON text of one server frame, serialised once and shared by every member of the
/// room: cloning it is a reference count. The buffer also holds the frame's WebSocket header
/// (RFC 6455 §5.2: an unmasked, final text frame) just before the text, so a transport that
/// writes bytes sends [`FrameText::wire`] as it is, with no encoding or copy per client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameText {
    /// The header, then the text.
    wire: Bytes,
    header: u8,
}

impl FrameText {
    pub(crate) fn new(json: String) -> Self {
        let mut wire = Vec::with_capacity(json.len() + 10);
        ws_header(0x1, json.len(), &mut wire);
        let header = wire.len() as u8;
        wire.extend_from_slice(json.as_bytes());
        FrameText {
            wire: Bytes::from(wire),
            header,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Built only from a `String` in `FrameText::new`, so the bytes past the header are
        // UTF-8.
        std::str::from_utf8(&self.wire[usize::from(self.header)..]).unwrap_or_default()
    }

    /// The UTF-8 bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.wire.slice(usize::from(self.header)..)
    }

    /// The whole WebSocket text frame (header and text), shared.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }
}

/// Appends the header of an unmasked, final WebSocket frame of `opcode` carrying `len`
/// payload bytes (RFC 6455 §5.2): the length in 7 bits, or 126 and 16 bits, or 127 and 64.
pub fn ws_header(opcode: u8, len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

impl std::ops::Deref for FrameText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// Several text frames of a busy room, in order, shared by every member, with their
/// WebSocket frames laid end to end in one buffer: serialised once per batch, so a member
/// that writes bytes sends a whole window in one write.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    frames: Vec<FrameText>,
    wire: Bytes,
}

impl Batch {
    fn new(frames: Vec<FrameText>) -> Self {
        let mut wire = Vec::with_capacity(frames.iter().map(|f| f.wire.len()).sum());
        for frame in &frames {
            wire.extend_from_slice(&frame.wire);
        }
        Batch {
            frames,
            wire: Bytes::from(wire),
        }
    }

    /// Every frame's WebSocket encoding, in order, in one shared buffer.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }
}

impl std::ops::Deref for Batch {
    type Target = [FrameText];

    fn deref(&self) -> &[FrameText] {
        &self.frames
    }
}

/// A frame queued for a client: JSON text shared by every member of the room (serialised
/// once per broadcast), a busy room's batch of such frames, a ping, or the end of the
/// connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A text frame.
    Text(FrameText),
    /// Several text frames of a busy room, in order, shared by every member. [`serve`]
    /// hands a sink consecutive text frames instead unless it was asked for batches
    /// ([`Delivery::Batches`]).
    ///
    /// [`serve`]: crate::serve
    /// [`Delivery::Batches`]: crate::Delivery::Batches
    Batch(Arc<Batch>),
    /// A heartbeat ping.
    Ping,
    /// Close the connection with this reason.
    Close(&'static str),
    /// Nothing to write: the client's [`Wire`] holds bytes it could not write at once, and
    /// the task that owns the socket is to finish them (its sink's flush).
    Drain,
}

/// A client's socket that the room writes to itself (issue 13). A busy room's flush walks
/// its members and writes each one the window's bytes in one call, from the task that
/// flushes, instead of waking every member's task to write its own: at 5000 members the
/// wake-ups, not the writes, were most of the cost, and a member's place in the run queue
/// behind the others was most of the latency.
///
/// Everything for the client goes through [`Wire::offer`] once it is attached
/// ([`Membership::attach`]), so its frames keep one order whoever offers them.
pub trait Wire: Send + Sync {
    /// Puts `out` on the socket after everything offered before it, without waiting:
    /// written now if the socket takes it whole, else kept for the client's task to finish
    /// (after [`Nudge::nudge`]). A socket with too much kept already answers
    /// [`Offered::TooSlow`] to anything but a ping or close.
    fn offer(&self, out: &Outbound) -> Offered;
}

/// What became of an [`Outbound`] offered to a [`Wire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Written whole, now.
    Written,
    /// Kept, in order, for the client's task to write.
    Kept,
    /// Refused: the client is too far behind.
    TooSlow,
    /// The socket has failed or closed.
    Closed,
}

/// Wakes a client's task to finish what its [`Wire`] could not write at once: the task's
/// queue gets an [`Outbound::Drain`], and `serve` flushes its sink on it.
#[derive(Clone, Debug)]
pub struct Nudge(mpsc::Sender<Outbound>);

impl Nudge {
    /// Asks the client's task to flush. A queue already full holds a nudge of its own.
    pub fn nudge(&self) {
        let _ = self.0.try_send(Outbound::Drain);
    }
}

/// Why a send was refused: the `error` frame to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Muted until.
    pub until: Option<DateTime<Utc>>,
    /// When to try again.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            until: None,
            retry_after: None,
        }
    }

    /// The `error` frame.
    pub fn frame(self, nonce: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            nonce,
            code: self.code,
            message: self.message,
            until: self.until,
            retry_after_ms: self
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
        }
    }

    fn store(error: &StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Refusal::new(
                ErrorCode::StoreUnavailable,
                "the chat cannot store messages right now; nothing was sent",
            ),
            _ => Refusal::new(ErrorCode::Internal, "the message could not be stored"),
        }
    }
}

/// Why joining a room failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No channel has this name.
    #[error("no channel {0:?}")]
    NoChannel(String),
    /// The store did not answer.
    #[error("cannot look up channel")]
    Store(#[from] StoreError),
}

/// Why a moderation action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModerationError {
    /// The message is not in this channel, or was deleted already.
    #[error("no message {0} in this channel")]
    NoMessage(i64),
    /// The store refused or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a gift could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GiftError {
    /// Refused: an error frame (or an API error) says why.
    #[error("{}", .0.message)]
    Refused(Refusal),
}

/// Where a member's frames go: its queue, read by its own task, until a [`Wire`] is
/// attached; the wire from then on.
pub(crate) struct Outlet {
    tx: mpsc::Sender<Outbound>,
    wire: Mutex<Option<Arc<dyn Wire>>>,
    kicked: CancellationToken,
}

impl Outlet {
    /// Hands `out` on; a member too slow for it is kicked (and counted once). False when the
    /// member is gone or kicked: the room forgets it.
    fn offer(&self, out: Outbound, metrics: &ChatMetrics) -> bool {
        let offered = match &*self.wire.lock() {
            Some(wire) => return self.offer_to(wire.as_ref(), &out, metrics),
            None => match self.tx.try_send(out) {
                Ok(()) => Offered::Kept,
                Err(mpsc::error::TrySendError::Full(_)) => Offered::TooSlow,
                Err(mpsc::error::TrySendError::Closed(_)) => Offered::Closed,
            },
        };
        self.settle(offered, metrics)
    }

    /// [`Outlet::offer`] through `wire`, counted in the wire metrics.
    fn offer_to(&self, wire: &dyn Wire, out: &Outbound, metrics: &ChatMetrics) -> bool {
        let offered = wire.offer(out);
        if matches!(offered, Offered::Written | Offered::Kept) {
            metrics.wire_offers.fetch_add(1, Ordering::Relaxed);
        }
        if offered == Offered::Kept {
            metrics.wire_kept.fetch_add(1, Ordering::Relaxed);
        }
        self.settle(offered, metrics)
    }

    /// Kicks a member too slow for `offered`; false when the room is to forget it.
    fn settle(&self, offered: Offered, metrics: &ChatMetrics) -> bool {
        match offered {
            Offered::Written | Offered::Kept => true,
            Offered::TooSlow => {
                if !self.kicked.is_cancelled() {
                    self.kicked.cancel();
                    metrics.dropped_slow.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Offered::Closed => false,
        }
    }
}

/// Most broadcasts a busy room holds before flushing early, whatever the window.
pub(crate) const MAX_PENDING_FRAMES: usize = 64;

/// A room's broadcasts not yet handed to its members, and the replies (acks, errors) that
/// must reach their client after them.
#[derive(Default)]
struct Pending {
    frames: Vec<FrameText>,
    replies: Vec<(Arc<Outlet>, FrameText)>,
    /// A flush task is waiting out the window.
    scheduled: bool,
    rate: Rate,
}

/// Broadcasts per second, counted in one-second windows: the larger of the last whole
/// window and the one running, so a burst counts from its first second.
#[derive(Default)]
struct Rate {
    start: Option<Instant>,
    count: u64,
    last: u64,
}

impl Rate {
    fn hit(&mut self, now: Instant) -> u64 {
        match self.start {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
            Some(start) => {
                // A quiet second in between leaves nothing of the last burst.
                let whole = now.saturating_duration_since(start) < Duration::from_secs(2);
                self.last = if whole { self.count } else { 0 };
                self.start = Some(now);
                self.count = 0;
            }
            None => self.start = Some(now),
        }
        self.count += 1;
        self.count.max(self.last)
    }
}

/// How long a room of `members` that broadcasts `rate` frames a second gathers them, so that
/// it makes about `writes_per_second` member writes a second: none (send at once) while
/// sending every frame at once stays within that, else `members / writes_per_second`, at
/// most `max`. Zero `writes_per_second` always gathers for `max`.
fn batch_window(members: usize, rate: u64, writes_per_second: u64, max: Duration) -> Duration {
    if writes_per_second == 0 {
        return max;
    }
    if (members as u64).saturating_mul(rate) <= writes_per_second {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(members as f64 / writes_per_second as f64).min(max)
}

/// One channel's room.
pub(crate) struct Room {
    pub(crate) channel: Channel,
    members: Mutex<HashMap<u64, Arc<Outlet>>>,
    /// Held from storing a message until it is in `sequence`, and by a join while it reads
    /// history, so this node's sends never pass each other or a joiner.
    send_lock: tokio::sync::Mutex<()>,
    /// The delivery order by the room's message numbers, the same on every node. Taken
    /// before `pending`, `rooms` and `members`, never after them.
    sequence: Mutex<Sequence>,
    last_message: Mutex<HashMap<i64, Instant>>,
    pending_likes: AtomicU64,
    live: Mutex<LiveState>,
    metrics: Arc<ChatMetrics>,
    /// Broadcasts gathered for one window of a busy room. Taken before `members`.
    pending: Mutex<Pending>,
    broadcast_window: Duration,
    batch_min_members: usize,
    batch_writes_per_second: u64,
    me: Weak<Room>,
}

#[derive(Default)]
struct LiveState {
    since: Option<DateTime<Utc>>,
    session_id: Option<i64>,
}

impl Room {
    /// Queues `frame` for every member. Never waits: a member whose queue is full is dropped.
    ///
    /// A room of `batch_min_members` or more, once its members times its broadcasts a
    /// second exceed `batch_writes_per_second`, gathers its broadcasts for a window that
    /// grows with its size (see [`batch_window`]; at most [`MAX_PENDING_FRAMES`]) and hands
    /// each member all of them in one queue entry, so a busy room costs one wake-up and one
    /// write per member per window, not per frame. Other rooms queue every frame at once.
    fn broadcast(&self, frame: &ServerFrame) -> FrameText {
        let text = FrameText::new(frame.to_json());
        self.broadcast_text(text.clone());
        text
    }

    /// Hands messages now in order to the members, and tells their local senders.
    fn release(&self, released: Released) {
        for (text, done) in released {
            self.broadcast_text(text);
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }

    fn broadcast_text(&self, text: FrameText) {
        let mut pending = self.pending.lock();
        let rate = pending.rate.hit(Instant::now());
        pending.frames.push(text);
        if pending.frames.len() >= MAX_PENDING_FRAMES {
            return self.flush_locked(&mut pending);
        }
        let members = self.members.lock().len();
        let window = if members < self.batch_min_members {
            Duration::ZERO
        } else {
            batch_window(
                members,
                rate,
                self.batch_writes_per_second,
                self.broadcast_window,
            )
        };
        if window.is_zero() {
            return self.flush_locked(&mut pending);
        }
        if pending.scheduled {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                pending.scheduled = true;
                let room = self.me.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(window).await;
                    if let Some(room) = room.upgrade() {
                        room.flush();
                    }
                });
            }
            Err(_) => self.flush_locked(&mut pending),
        }
    }

    /// Hands every member the pending broadcasts, then the replies waiting behind them.
    pub(crate) fn flush(&self) {
        self.flush_locked(&mut self.pending.lock());
    }

    fn flush_locked(&self, pending: &mut Pending) {
        pending.scheduled = false;
        let mut frames = std::mem::take(&mut pending.frames);
        let out = match frames.len() {
            0 => None,
            1 => frames.pop().map(Outbound::Text),
            _ => Some(Outbound::Batch(Arc::new(Batch::new(frames)))),
        };
        if let Some(out) = out {
            self.queue_to_members(&out);
        }
        for (outlet, text) in pending.replies.drain(..) {
            outlet.offer(Outbound::Text(text), &self.metrics);
        }
    }

    /// Hands `out` to every member. Called with `pending` held, so flushes keep their order;
    /// the members are walked from a copy of the list, because with wires attached the walk
    /// is a write per member, and joins and leaves need not wait for it.
    fn queue_to_members(&self, out: &Outbound) {
        let members: Vec<(u64, Arc<Outlet>)> = self
            .members
            .lock()
            .iter()
            .map(|(id, m)| (*id, m.clone()))
            .collect();
        let mut gone = Vec::new();
        for (id, outlet) in &members {
            if !outlet.offer(out.clone(), &self.metrics) {
                if outlet.kicked.is_cancelled() {
                    debug!(
                        channel = self.channel.slug,
                        conn = id,
                        "chat client too slow; dropped"
                    );
                }
                gone.push(*id);
            }
        }
        if !gone.is_empty() {
            let mut members = self.members.lock();
            for id in gone {
                members.remove(&id);
            }
        }
    }

    fn member_count(&self) -> u64 {
        self.members.lock().len() as u64
    }
}

/// The chat of every channel on this node.
pub struct ChatService {
    pub(crate) store: Store,
    pub(crate) host: Arc<dyn ChatHost>,
    pub(crate) config: ChatConfig,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    user_windows: Mutex<HashMap<i64, Window>>,
    slow_modes: Mutex<HashMap<i64, Option<Duration>>>,
    next_conn: AtomicU64,
    metrics: Arc<ChatMetrics>,
    /// The other nodes; `None` on a single node, where no cluster code runs.
    bus: Option<Arc<dyn ChatBus>>,
    /// What the other nodes last said of their audience, by node id.
    peers: Mutex<HashMap<String, Peer>>,
    me: Weak<ChatService>,
}

/// One other node's last [`BusEvent::Stats`].
struct Peer {
    at: Instant,
    rooms: HashMap<String, (u64, u64)>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("rooms", &self.rooms.lock().len())
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ChatMetrics {
    /// Messages stored and broadcast.
    pub messages: AtomicU64,
    /// Sends refused with an error frame.
    pub refused: AtomicU64,
    /// Clients dropped for falling `client_queue` frames behind.
    pub dropped_slow: AtomicU64,
    /// Frames and batches handed to a client's [`Wire`]: written by whoever offered them,
    /// without waking the client's task, unless counted in `wire_kept` too.
    pub wire_offers: AtomicU64,
    /// Of `wire_offers`, those the socket did not take whole at once, left for the client's
    /// task.
    pub wire_kept: AtomicU64,
    /// Messages read from the store to fill a gap in a room's order (cluster).
    pub gap_fetched: AtomicU64,
    /// Message numbers given up on: the store did not answer within the gap's age limit, or
    /// a gap was longer than a catch-up reads (cluster).
    pub gap_skipped: AtomicU64,
}

/// A client's membership of a room, from [`ChatService::join`]; leaving is dropping it.
pub struct Membership {
    pub(crate) service: Arc<ChatService>,
    pub(crate) room: Arc<Room>,
    pub(crate) id: u64,
    pub(crate) outlet: Arc<Outlet>,
    /// Frames for this client, in order.
    pub rx: mpsc::Receiver<Outbound>,
    /// Cancelled when the room dropped this client for being too slow.
    pub kicked: CancellationToken,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.room.members.lock().remove(&self.id);
        let mut rooms = self.service.rooms.lock();
        if self.room.members.lock().is_empty()
            && self.room.pending_likes.load(Ordering::Relaxed) == 0
            && rooms
                .get(&self.room.channel.slug)
                .is_some_and(|r| Arc::ptr_eq(r, &self.room))
        {
            rooms.remove(&self.room.channel.slug);
        }
    }
}

impl Membership {
    /// Queues a reply (an ack or error) for this client only, after every room frame
    /// broadcast before it: when the room holds a pending batch, the reply waits behind it,
    /// so a sender still sees its message before the ack. A full queue drops the client.
    pub(crate) fn send(&self, frame: &ServerFrame) {
        let text = FrameText::new(frame.to_json());
        let mut pending = self.room.pending.lock();
        if pending.frames.is_empty() && pending.replies.is_empty() {
            drop(pending);
            self.send_now(text);
        } else {
            pending.replies.push((self.outlet.clone(), text));
        }
    }

    /// Queues a frame for this client now, ahead of any pending room batch.
    fn send_now(&self, text: FrameText) {
        self.outlet.offer(Outbound::Text(text), &self.room.metrics);
    }

    /// Hands this client's frames to `wire` from now on, after those queued so far: the room
    /// then writes them itself, and the client's task only finishes what the socket did not
    /// take at once (see [`Wire`]).
    pub fn attach(&mut self, wire: Arc<dyn Wire>) {
        let mut slot = self.outlet.wire.lock();
        // Taken out first: a frame the socket does not take whole nudges this queue, and
        // that nudge must stay in it for the task, not be read back here.
        let queued: Vec<Outbound> = std::iter::from_fn(|| self.rx.try_recv().ok()).collect();
        for out in queued {
            self.outlet
                .offer_to(wire.as_ref(), &out, &self.room.metrics);
        }
        *slot = Some(wire);
    }

    /// What a [`Wire`] uses to wake this client's task.
    pub fn nudge(&self) -> Nudge {
        Nudge(self.outlet.tx.clone())
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.room.channel
    }
}

impl ChatService {
    /// A service over `store`; run [`ChatService::run`] beside it for likes and audience.
    pub fn new(store: Store, host: Arc<dyn ChatHost>, config: ChatConfig) -> Arc<Self> {
        Self::with_bus(store, host, config, None)
    }

    /// A service that is one node of several: what it stores it also tells `bus`, and what
    /// the bus brings goes to [`ChatService::receive`].
    pub fn with_bus(
        store: Store,
        host: Arc<dyn ChatHost>,
        config: ChatConfig,
        bus: Option<Arc<dyn ChatBus>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| ChatService {
            store,
            host,
            config,
            rooms: Mutex::default(),
            user_windows: Mutex::default(),
            slow_modes: Mutex::default(),
            next_conn: AtomicU64::new(1),
            metrics: Arc::default(),
            bus,
            peers: Mutex::default(),
            me: me.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &ChatMetrics {
        &self.metrics
    }

    /// Joins the room of `slug` and queues its `history` frame. A store that does not
    /// answer while reading history gives an `error` frame instead, not a refusal.
    pub async fn join(self: &Arc<Self>, slug: &str) -> Result<Membership, JoinError> {
        loop {
            let room = self.room(slug).await?;
            // Local sends hold this lock from storing a message to putting it in the room's
            // order: with it held, only messages other nodes stored can go out meanwhile.
            let _order = room.send_lock.lock().await;
            let (tx, rx) = mpsc::channel(self.config.client_queue.max(4));
            let kicked = CancellationToken::new();
            let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
            let outlet = Arc::new(Outlet {
                tx,
                wire: Mutex::new(None),
                kicked: kicked.clone(),
            });
            let membership = Membership {
                service: self.clone(),
                room: room.clone(),
                id,
                outlet: outlet.clone(),
                rx,
                kicked,
            };
            // History is everything the room delivered up to `through`; what it delivers
            // while the history is read is handed over after it from the room's recent
            // messages, so every message is in the history or queued, never both or neither.
            let mut attempts = 0;
            let (through, history) = loop {
                let through = room.sequence.lock().delivered;
                let history = self
                    .store
                    .recent_chat_messages_through(room.channel.id, through, self.config.history)
                    .await;
                attempts += 1;
                let covered = room.sequence.lock().since(through).is_some();
                if covered || attempts >= 3 {
                    break (through, history);
                }
            };
            let sequence = room.sequence.lock();
            match history {
                Ok(messages) => membership.send_now(FrameText::new(
                    ServerFrame::History {
                        channel: room.channel.slug.clone(),
                        messages: messages
                            .iter()
                            .map(|m| HistoryEntry {
                                kind: m.kind,
                                message: MessageFrame::from(m),
                            })
                            .collect(),
                    }
                    .to_json(),
                )),
                Err(e) => {
                    membership.send_now(FrameText::new(Refusal::store(&e).frame(None).to_json()))
                }
            }
            for text in sequence.since(through).unwrap_or_default() {
                membership.send_now(text);
            }
            // Messages delivered before now may still wait in the room's batch: they go to
            // the members before this one joins, or it would get them twice.
            room.flush();
            {
                // The room's last member may have left while we waited, retiring the room;
                // joining it then would put us in a room nobody else can reach. Checked and
                // joined under the rooms lock, which a leaving member takes to retire it.
                let rooms = self.rooms.lock();
                if !rooms.get(slug).is_some_and(|r| Arc::ptr_eq(r, &room)) {
                    continue;
                }
                room.members.lock().insert(id, outlet);
            }
            drop(sequence);
            return Ok(membership);
        }
    }

    async fn room(&self, slug: &str) -> Result<Arc<Room>, JoinError> {
        if let Some(room) = self.rooms.lock().get(slug) {
            return Ok(room.clone());
        }
        let channel = self
            .store
            .channel_by_slug(slug)
            .await?
            .ok_or_else(|| JoinError::NoChannel(slug.to_owned()))?;
        // A slow mode set before the last restart (or on another node before this room was
        // made here); one set on this node since is newer and stays.
        if let Some(seconds) = self
            .store
            .setting(&slow_mode_key(channel.id))
            .await?
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.slow_modes
                .lock()
                .entry(channel.id)
                .or_insert((seconds > 0).then(|| Duration::from_secs(seconds)));
        }
        // The room starts where the store's numbering is: earlier messages are history.
        let seq = self.store.chat_room_seq(channel.id).await?;
        let room = Arc::new_cyclic(|me| Room {
            channel,
            members: Mutex::default(),
            send_lock: tokio::sync::Mutex::new(()),
            sequence: Mutex::new(Sequence::new(seq)),
            last_message: Mutex::default(),
            pending_likes: AtomicU64::new(0),
            live: Mutex::default(),
            metrics: self.metrics.clone(),
            pending: Mutex::default(),
            broadcast_window: self.config.broadcast_window,
            batch_min_members: self.config.batch_min_members,
            batch_writes_per_second: self.config.batch_writes_per_second,
            me: me.clone(),
        });
        // Another join may have made the room meanwhile; the first one stays.
        Ok(self
            .rooms
            .lock()
            .entry(slug.to_owned())
            .or_insert(room)
            .clone())
    }

    fn existing_room(&self, slug: &str) -> Option<Arc<Room>> {
        self.rooms.lock().get(slug).cloned()
    }

    fn slow_mode(&self, channel_id: i64) -> Option<Duration> {
        self.slow_modes
            .lock()
            .get(&channel_id)
            .copied()
            .unwrap_or(self.config.slow_mode)
    }

    /// Sets a channel's slow mode (`None`: off), stores it so it outlives a restart, and
    /// tells the room. A channel never set follows `chat.slow_mode`.
    pub async fn set_slow_mode(
        &self,
        channel: &Channel,
        interval: Option<Duration>,
    ) -> Result<(), StoreError> {
        let seconds = interval.map_or(0, |d| d.as_secs());
        self.store
            .set_setting(&slow_mode_key(channel.id), &seconds.to_string())
            .await?;
        self.apply_slow_mode(&channel.slug, channel.id, seconds);
        if let Some(bus) = &self.bus {
            bus.publish(BusEvent::SlowMode {
                channel: channel.slug.clone(),
                channel_id: channel.id,
                seconds,
            });
        }
        Ok(())
    }

    /// Puts a slow mode in force here and tells the room.
    fn apply_slow_mode(&self, slug: &str, channel_id: i64, seconds: u64) {
        self.slow_modes.lock().insert(
            channel_id,
            (seconds > 0).then(|| Duration::from_secs(seconds)),
        );
        if let Some(room) = self.existing_room(slug) {
            room.broadcast(&ServerFrame::System(SystemEvent::SlowMode { seconds }));
        }
    }

    /// Tells `slug`'s room, here and on every other node. `deleted` names a message the
    /// frame removes.
    fn announce(&self, slug: &str, frame: &ServerFrame, deleted: Option<i64>) {
        let text = FrameText::new(frame.to_json());
        if let Some(room) = self.existing_room(slug) {
            if let Some(id) = deleted {
                room.sequence.lock().forget(id);
            }
            room.broadcast_text(text.clone());
        }
        if let Some(bus) = &self.bus {
            bus.publish(BusEvent::Room {
                channel: slug.to_owned(),
                frame: text.as_str().to_owned(),
                deleted,
            });
        }
    }

    /// Whether `user` moderates `channel`: its owner or an admin.
    pub fn moderates(user: &ChatUser, channel: &Channel) -> bool {
        user.admin || user.id == channel.owner_id
    }

    /// Checks what stops `user` from sending in `room` now: bans and mutes (read from the
    /// store on every send, so a ban takes effect at once), then the user's rate.
    async fn check_sender(&self, room: &Room, user: &ChatUser) -> Result<(), Refusal> {
        self.check_restriction(room.channel.id, user, false).await
    }

    /// Bans and mutes of `user` in `channel_id`, and whether the sign-in `user` sent with has
    /// ended, read from the store now. A muted user may still like (`allow_muted`); nothing
    /// else a banned or signed-out one does reaches the room.
    async fn check_restriction(
        &self,
        channel_id: i64,
        user: &ChatUser,
        allow_muted: bool,
    ) -> Result<(), Refusal> {
        let restriction = self
            .store
            .chat_restriction(channel_id, user.id, user.session.as_deref(), Utc::now())
            .await
            .map_err(|e| Refusal::store(&e))?;
        if restriction.banned {
            return Err(Refusal::new(ErrorCode::Banned, "your account is banned"));
        }
        if restriction.channel_banned {
            return Err(Refusal::new(
                ErrorCode::ChannelBanned,
                "you are banned from this channel's chat",
            ));
        }
        // After the bans: a ban also ends every sign-in, and the ban is what to tell.
        if restriction.signed_out {
            return Err(Refusal::new(
                ErrorCode::Unauthenticated,
                "your sign-in has ended (logged out or expired); send an auth frame with a new access token",
            ));
        }
        if let Some(until) = restriction.muted_until.filter(|_| !allow_muted) {
            let mut refusal = Refusal::new(
                ErrorCode::Muted,
                format!("you are muted in this channel until {}", until.to_rfc3339()),
            );
            refusal.until = Some(until);
            return Err(refusal);
        }
        Ok(())
    }

    /// Counts one message by `user_id` against the per-user rate (`user_messages` per
    /// `user_window`, over every connection), or how long to wait when it is spent. Video
    /// comments go through this too, so chat and comments share one budget.
    pub fn hit_user_rate(&self, user_id: i64, now: Instant) -> Result<(), Duration> {
        self.user_windows
            .lock()
            .entry(user_id)
            .or_insert_with(|| Window::new(now))
            .hit(now, self.config.user_messages, self.config.user_window)
    }

    fn check_rate(&self, room: &Room, user: &ChatUser, now: Instant) -> Result<(), Refusal> {
        if let Err(wait) = self.hit_user_rate(user.id, now) {
            let mut refusal = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} messages per {:?}",
                    self.config.user_messages, self.config.user_window
                ),
            );
            refusal.retry_after = Some(wait);
            return Err(refusal);
        }
        if Self::moderates(user, &room.channel) {
            return Ok(());
        }
        if let Some(interval) = self.slow_mode(room.channel.id)
            && let Some(last) = room.last_message.lock().get(&user.id)
        {
            let since = now.saturating_duration_since(*last);
            if since < interval {
                let mut refusal = Refusal::new(
                    ErrorCode::SlowMode,
                    format!("slow mode: one message per {} s", interval.as_secs()),
                );
                refusal.retry_after = Some(interval - since);
                return Err(refusal);
            }
        }
        Ok(())
    }

    /// The live session and the offset from its start now, refreshing the room's cache when
    /// the host reports a different live.
    async fn live_offset(&self, room: &Room) -> (Option<i64>, Option<i64>) {
        let since = self.host.live_since(&room.channel.slug);
        let Some(since) = since else {
            return (None, None);
        };
        let offset = (Utc::now() - since).num_milliseconds().max(0);
        let cached = {
            let live = room.live.lock();
            (live.since == Some(since) && live.session_id.is_some()).then_some(live.session_id)
        };
        let session_id = match cached {
            Some(id) => id,
            None => {
                // The ingest writes the row from a task of its own: it may not be there yet,
                // and then the message is kept without a session (asked again next time).
                let id = self
                    .store
                    .open_live_session_of(room.channel.id)
                    .await
                    .ok()
                    .flatten();
                let mut live = room.live.lock();
                live.since = Some(since);
                live.session_id = id;
                id
            }
        };
        (session_id, Some(offset))
    }

    /// Stores a chat line or danmaku, then broadcasts it; returns its stored id.
    pub(crate) async fn send_message(
        &self,
        room: &Room,
        user: &ChatUser,
        kind: MessageKind,
        text: String,
        color: Option<String>,
        mode: Option<String>,
    ) -> Result<i64, Refusal> {
        let now = Instant::now();
        self.check_rate(room, user, now)?;
        self.check_sender(room, user).await?;
        let (live_session_id, offset) = self.live_offset(room).await;
        let danmaku = kind == MessageKind::Danmaku;
        let new = NewChatMessage {
            channel_id: room.channel.id,
            user_id: user.id,
            kind,
            text,
            color,
            mode,
            live_session_id,
            offset_ms: if danmaku {
                Some(offset.unwrap_or(0))
            } else {
                offset
            },
        };
        let order = room.send_lock.lock().await;
        let stored: ChatMessage = self.store.insert_chat_message(new).await.map_err(|e| {
            warn!(channel = room.channel.slug, error = %e, "cannot store a chat message");
            Refusal::store(&e)
        })?;
        let text = FrameText::new(message_frame(&stored).to_json());
        if let Some(bus) = &self.bus {
            bus.publish(BusEvent::Message {
                channel: room.channel.slug.clone(),
                seq: stored.seq,
                id: stored.id,
                frame: text.as_str().to_owned(),
            });
        }
        let (done, sent) = tokio::sync::oneshot::channel();
        self.offer(
            room,
            stored.seq,
            Held {
                id: stored.id,
                text,
                done: Some(done),
            },
        );
        drop(order);
        room.last_message.lock().insert(user.id, now);
        self.metrics.messages.fetch_add(1, Ordering::Relaxed);
        // Acked once it went out here: a message numbered after another node's that has not
        // arrived yet waits for it (at most the reorder hold, then the store is read).
        let _ = sent.await;
        Ok(stored.id)
    }

    /// Puts message `seq` in the room's order, delivers what that releases and, when a
    /// number is missing, schedules reading it from the store.
    fn offer(&self, room: &Room, seq: i64, held: Held) {
        let gap = {
            let mut sequence = room.sequence.lock();
            let released = sequence.offer(seq, held, Instant::now());
            room.release(released);
            sequence.has_gap()
        };
        if gap && let Some(room) = room.me.upgrade() {
            self.schedule_repair(room);
        }
    }

    /// Starts one repair task for `room` unless one runs.
    fn schedule_repair(&self, room: Arc<Room>) {
        {
            let mut sequence = room.sequence.lock();
            if sequence.repairing {
                return;
            }
            sequence.repairing = true;
        }
        let (Some(service), Ok(runtime)) =
            (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            room.sequence.lock().repairing = false;
            return;
        };
        runtime.spawn(async move { service.repair(room).await });
    }

    /// Fills a room's gaps from the store after the reorder hold, until none is left.
    async fn repair(&self, room: Arc<Room>) {
        loop {
            tokio::time::sleep(self.config.reorder_hold).await;
            let (after, through) = {
                let mut sequence = room.sequence.lock();
                if !sequence.has_gap() {
                    sequence.repairing = false;
                    return;
                }
                (sequence.delivered, sequence.known)
            };
            let read = self
                .store
                .chat_messages_by_seq(
                    room.channel.id,
                    after,
                    through,
                    crate::cluster::MAX_CATCH_UP,
                )
                .await;
            let now = Instant::now();
            let mut sequence = room.sequence.lock();
            match read {
                Ok(rows) => {
                    let resolved = if rows.len() < crate::cluster::MAX_CATCH_UP as usize {
                        through
                    } else {
                        rows.last().map_or(through, |m| m.seq)
                    };
                    if rows.len() >= crate::cluster::MAX_CATCH_UP as usize
                        && let Some(first) = rows.first()
                    {
                        // Too far behind to replay it all: the newest part, not the oldest.
                        let skipped =
                            u64::try_from(first.seq - 1 - sequence.delivered).unwrap_or(0);
                        if skipped > 0 {
                            let released = sequence.advance(first.seq - 1, now);
                            room.release(released);
                            self.metrics
                                .gap_skipped
                                .fetch_add(skipped, Ordering::Relaxed);
                        }
                    }
                    for m in rows.iter().filter(|m| m.deleted_at.is_none()) {
                        if m.seq > sequence.delivered && !sequence.held.contains_key(&m.seq) {
                            self.metrics.gap_fetched.fetch_add(1, Ordering::Relaxed);
                            sequence.held.insert(
                                m.seq,
                                Held {
                                    id: m.id,
                                    text: FrameText::new(message_frame(m).to_json()),
                                    done: None,
                                },
                            );
                        }
                    }
                    let released = sequence.advance(resolved, now);
                    room.release(released);
                }
                Err(e) => {
                    debug!(channel = room.channel.slug, error = %e, "cannot read a chat gap; retrying");
                    if sequence.gap_too_old(now) {
                        let (skipped, released) = sequence.skip_gap(now);
                        room.release(released);
                        self.metrics
                            .gap_skipped
                            .fetch_add(skipped, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Counts likes; they are stored and broadcast with the next like batch. A banned user's
    /// likes are refused like their messages.
    pub(crate) async fn like(
        &self,
        room: &Room,
        user: &ChatUser,
        count: u32,
    ) -> Result<(), Refusal> {
        self.check_restriction(room.channel.id, user, true).await?;
        room.pending_likes
            .fetch_add(u64::from(count), Ordering::Relaxed);
        Ok(())
    }

    /// Sends a gift in `channel` (from a chat connection or the REST API): one store
    /// transaction, then a `gift` frame to the room. A replayed key broadcasts nothing.
    pub async fn send_gift(
        &self,
        channel: &Channel,
        user: &ChatUser,
        gift_id: i64,
        count: u32,
        idempotency_key: String,
    ) -> Result<(GiftOutcome, Option<GiftInfo>), GiftError> {
        let refuse = |r: Refusal| GiftError::Refused(r);
        if !(1..=1000).contains(&count) {
            return Err(refuse(Refusal::new(
                ErrorCode::Invalid,
                "count must be 1 to 1000",
            )));
        }
        if idempotency_key.is_empty() || idempotency_key.len() > 100 {
            return Err(refuse(Refusal::new(
                ErrorCode::Invalid,
                "idempotency_key must be 1 to 100 bytes",
            )));
        }
        // A gift puts the sender's name in front of the room: banned and muted users may not.
        self.check_restriction(channel.id, user, false)
            .await
            .map_err(refuse)?;
        let room = self.existing_room(&channel.slug);
        let live_session_id = match &room {
            Some(room) => self.live_offset(room).await.0,
            None => None,
        };
        let outcome = self
            .store
            .send_gift(SendGift {
                sender_id: user.id,
                channel_id: channel.id,
                gift_id,
                count,
                idempotency_key,
                live_session_id,
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound { what } if what == format!("gift {gift_id}") => refuse(
                    Refusal::new(ErrorCode::UnknownGift, format!("no gift {gift_id}")),
                ),
                // The channel or the sender went away after the request was checked.
                StoreError::NotFound { what } => refuse(Refusal::new(
                    ErrorCode::NotFound,
                    format!("{what} not found"),
                )),
                // Concurrent sends with one key that kept colliding: the client's retry
                // decides, and a retry after the first one finished is answered as replayed.
                StoreError::Conflict { .. } => refuse(Refusal::new(
                    ErrorCode::KeyInUse,
                    "a send with this idempotency key is in progress; retry",
                )),
                other => refuse(Refusal::store(&other)),
            })?;
        let gift = match &outcome {
            GiftOutcome::InsufficientBalance { balance, needed } => {
                return Err(refuse(Refusal::new(
                    ErrorCode::InsufficientBalance,
                    format!("the gift costs {needed} coins; your wallet holds {balance}"),
                )));
            }
            GiftOutcome::Replayed { .. } => None,
            GiftOutcome::Sent { event, .. } => {
                let gift = self.store.gift_by_id(event.gift_id).await.ok().flatten();
                let info = gift.map(|g| GiftInfo {
                    id: g.id,
                    name: g.name,
                    price: g.price,
                });
                if let Some(info) = &info {
                    self.announce(
                        &channel.slug,
                        &ServerFrame::Gift {
                            id: event.id,
                            user: Sender {
                                id: user.id,
                                name: user.name.clone(),
                            },
                            gift: info.clone(),
                            count: event.count,
                            value: event.value,
                        },
                        None,
                    );
                }
                info
            }
        };
        Ok((outcome, gift))
    }

    /// Deletes a message of `channel` and tells the room.
    pub async fn delete_message(
        &self,
        channel: &Channel,
        message_id: i64,
        by: i64,
    ) -> Result<ChatMessage, ModerationError> {
        match self.store.chat_message_by_id(message_id).await? {
            Some(m) if m.channel_id == channel.id && m.deleted_at.is_none() => {}
            _ => return Err(ModerationError::NoMessage(message_id)),
        }
        let deleted = self
            .store
            .delete_chat_message(message_id, by)
            .await?
            .ok_or(ModerationError::NoMessage(message_id))?;
        self.announce(
            &channel.slug,
            &ServerFrame::System(SystemEvent::MessageDeleted { message_id }),
            Some(message_id),
        );
        Ok(deleted)
    }

    /// Mutes a user in `channel` until `until` and tells the room.
    pub async fn mute(
        &self,
        channel: &Channel,
        user_id: i64,
        until: DateTime<Utc>,
        by: i64,
    ) -> Result<(), ModerationError> {
        self.store
            .mute_in_channel(channel.id, user_id, until, Some(by))
            .await?;
        self.announce(
            &channel.slug,
            &ServerFrame::System(SystemEvent::UserMuted { user_id, until }),
            None,
        );
        Ok(())
    }

    /// Bans a user from `channel`'s chat and tells the room.
    pub async fn ban(
        &self,
        channel: &Channel,
        user_id: i64,
        by: i64,
    ) -> Result<(), ModerationError> {
        self.store
            .ban_in_channel(channel.id, user_id, Some(by))
            .await?;
        self.announce(
            &channel.slug,
            &ServerFrame::System(SystemEvent::UserBanned { user_id }),
            None,
        );
        Ok(())
    }

    /// Lifts a user's mute in `channel` and tells the room; `false` when there was none.
    pub async fn unmute(&self, channel: &Channel, user_id: i64) -> Result<bool, ModerationError> {
        let lifted = self.store.unmute_in_channel(channel.id, user_id).await?;
        if lifted {
            self.announce(
                &channel.slug,
                &ServerFrame::System(SystemEvent::UserUnmuted { user_id }),
                None,
            );
        }
        Ok(lifted)
    }

    /// Lifts a user's ban from `channel`'s chat and tells the room; `false` when there was
    /// none.
    pub async fn unban(&self, channel: &Channel, user_id: i64) -> Result<bool, ModerationError> {
        let lifted = self.store.unban_in_channel(channel.id, user_id).await?;
        if lifted {
            self.announce(
                &channel.slug,
                &ServerFrame::System(SystemEvent::UserUnbanned { user_id }),
                None,
            );
        }
        Ok(lifted)
    }

    /// Chat members of every room now.
    pub fn members_total(&self) -> u64 {
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        rooms.iter().map(|r| r.member_count()).sum()
    }

    /// Chat members of `slug` now.
    pub fn members(&self, slug: &str) -> u64 {
        self.existing_room(slug).map_or(0, |r| r.member_count())
    }

    /// Stores and broadcasts pending likes; on a store failure they are kept for the next
    /// batch.
    async fn flush_likes(&self) {
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        for room in rooms {
            let count = room.pending_likes.swap(0, Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let session = self.live_offset(&room).await.0;
            match self.store.add_likes(room.channel.id, session, count).await {
                Ok(total) => self.announce(
                    &room.channel.slug,
                    &ServerFrame::Like { count, total },
                    None,
                ),
                Err(e) => {
                    debug!(channel = room.channel.slug, error = %e, "cannot store likes; kept");
                    room.pending_likes.fetch_add(count, Ordering::Relaxed);
                }
            }
        }
    }

    /// Broadcasts the audience, and `live_started`/`live_ended` when that changed.
    /// Forgets rate windows that are over and last-message times no slow mode can still
    /// refer to, so the maps hold the recent senders only, not everyone who ever wrote.
    fn prune(&self, now: Instant) {
        let window = self.config.user_window;
        self.user_windows
            .lock()
            .retain(|_, w| !w.is_over(now, window));
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        for room in rooms {
            // Kept at least ten minutes, so raising a room's slow mode still finds who spoke.
            let keep = self
                .slow_mode(room.channel.id)
                .unwrap_or_default()
                .max(Duration::from_secs(600));
            room.last_message
                .lock()
                .retain(|_, at| now.saturating_duration_since(*at) < keep);
        }
    }

    fn announce_viewers(&self) {
        let totals = self.peer_totals();
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        for room in rooms {
            let since = self.host.live_since(&room.channel.slug);
            let changed = {
                let mut live = room.live.lock();
                let changed = live.since.is_some() != since.is_some();
                if live.since != since {
                    live.since = since;
                    live.session_id = None;
                }
                changed
            };
            if changed {
                room.broadcast(&ServerFrame::System(if since.is_some() {
                    SystemEvent::LiveStarted
                } else {
                    SystemEvent::LiveEnded
                }));
            }
            let (mut video, mut chat) = (
                self.host.video_viewers(&room.channel.slug),
                room.member_count(),
            );
            if let Some((v, c)) = totals.get(&room.channel.slug) {
                video += v;
                chat += c;
            }
            room.broadcast(&ServerFrame::Viewers {
                video,
                chat,
                total: video + chat,
            });
        }
    }

    /// The other nodes' audience by channel, from the stats of those heard from within
    /// three `viewers_interval`s; older ones are forgotten.
    fn peer_totals(&self) -> HashMap<String, (u64, u64)> {
        let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
        if self.bus.is_none() {
            return totals;
        }
        let fresh = self.config.viewers_interval * 3;
        let mut peers = self.peers.lock();
        peers.retain(|_, p| p.at.elapsed() < fresh);
        for peer in peers.values() {
            for (channel, (video, chat)) in &peer.rooms {
                let total = totals.entry(channel.clone()).or_default();
                total.0 += video;
                total.1 += chat;
            }
        }
        totals
    }

    /// Chat members of `slug` on every node heard from lately, this one included.
    pub fn members_everywhere(&self, slug: &str) -> u64 {
        self.members(slug) + self.peer_totals().get(slug).map_or(0, |t| t.1)
    }

    /// Tells the other nodes this node's audience and how far each room got.
    fn publish_stats(&self) {
        let Some(bus) = &self.bus else { return };
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        let mut stats: HashMap<String, RoomStats> = rooms
            .iter()
            .map(|room| {
                let slug = room.channel.slug.clone();
                let stats = RoomStats {
                    channel: slug.clone(),
                    video: self.host.video_viewers(&slug),
                    chat: room.member_count(),
                    seq: room.sequence.lock().delivered,
                };
                (slug, stats)
            })
            .collect();
        for (channel, video) in self.host.watched() {
            stats.entry(channel.clone()).or_insert(RoomStats {
                channel,
                video,
                chat: 0,
                seq: 0,
            });
        }
        bus.publish(BusEvent::Stats {
            node: bus.node_id().to_owned(),
            rooms: stats.into_values().collect(),
        });
    }

    /// Applies what another node said. Events for rooms nobody joined here are dropped:
    /// a room opened later starts from the store.
    pub fn receive(&self, event: BusEvent) {
        match event {
            BusEvent::Message {
                channel,
                seq,
                id,
                frame,
            } => {
                if let Some(room) = self.existing_room(&channel) {
                    let text = FrameText::new(frame);
                    self.offer(
                        &room,
                        seq,
                        Held {
                            id,
                            text,
                            done: None,
                        },
                    );
                }
            }
            BusEvent::Room {
                channel,
                frame,
                deleted,
            } => {
                if let Some(room) = self.existing_room(&channel) {
                    if let Some(id) = deleted {
                        room.sequence.lock().forget(id);
                    }
                    room.broadcast_text(FrameText::new(frame));
                }
            }
            BusEvent::SlowMode {
                channel,
                channel_id,
                seconds,
            } => self.apply_slow_mode(&channel, channel_id, seconds),
            BusEvent::Stats { node, rooms } => {
                if self.bus.as_ref().is_some_and(|b| b.node_id() == node) {
                    return;
                }
                for stats in &rooms {
                    if let Some(room) = self.existing_room(&stats.channel) {
                        let gap = {
                            let mut sequence = room.sequence.lock();
                            sequence.learn(stats.seq, Instant::now());
                            sequence.has_gap()
                        };
                        if gap {
                            self.schedule_repair(room);
                        }
                    }
                }
                let rooms = rooms
                    .into_iter()
                    .map(|r| (r.channel, (r.video, r.chat)))
                    .collect();
                self.peers.lock().insert(
                    node,
                    Peer {
                        at: Instant::now(),
                        rooms,
                    },
                );
            }
        }
    }

    /// After (re)joining the other nodes: reads again from the store what may have changed
    /// while this node heard nothing, the slow modes and each room's last message number
    /// (bans and mutes are read on every send anyway).
    pub async fn resync(&self) {
        let rooms: Vec<_> = self.rooms.lock().values().cloned().collect();
        self.slow_modes
            .lock()
            .retain(|id, _| rooms.iter().any(|r| r.channel.id == *id));
        for room in rooms {
            let id = room.channel.id;
            match self.store.setting(&slow_mode_key(id)).await {
                Ok(Some(value)) => {
                    if let Ok(seconds) = value.parse::<u64>() {
                        let now = (seconds > 0).then(|| Duration::from_secs(seconds));
                        let before = self.slow_modes.lock().insert(id, now);
                        if before != Some(now) {
                            room.broadcast(&ServerFrame::System(SystemEvent::SlowMode { seconds }));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(channel = room.channel.slug, error = %e, "cannot re-read slow mode")
                }
            }
            match self.store.chat_room_seq(id).await {
                Ok(seq) => {
                    let gap = {
                        let mut sequence = room.sequence.lock();
                        sequence.learn(seq, Instant::now());
                        sequence.has_gap()
                    };
                    if gap {
                        self.schedule_repair(room);
                    }
                }
                Err(e) => {
                    debug!(channel = room.channel.slug, error = %e, "cannot re-read the room's number")
                }
            }
        }
    }

    /// The like batches and audience frames, until `shutdown`; then the last likes are
    /// stored.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut likes = tokio::time::interval(self.config.like_interval);
        let mut viewers = tokio::time::interval(self.config.viewers_interval);
        likes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        viewers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = likes.tick() => self.flush_likes().await,
                _ = viewers.tick() => {
                    self.announce_viewers();
                    self.publish_stats();
                    self.prune(Instant::now());
                }
            }
        }
        self.flush_likes().await;
    }
}
