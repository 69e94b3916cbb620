//! Several nodes, one chat: what a node tells the others ([`BusEvent`]) over a [`ChatBus`]
//! the server supplies (NATS in `onair`), and [`Sequence`], the per-room delivery order that
//! makes every node hand its members the same messages in the same order.
//!
//! The order is the room's `seq` (`onair_store::ChatMessage::seq`): dense per room and taken
//! under the room's row lock, so it is also the id order. Events from different nodes may
//! cross on the bus; a message whose number is not the next one is held until the gap fills,
//! for at most `ChatConfig::reorder_hold`, after which the node reads the missing numbers
//! from the store (a number `n` seen means `1..n` are committed). A gap the store cannot
//! fill within [`MAX_GAP_AGE`] (it does not answer) is skipped, so a room never stops.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::service::FrameText;

/// What one node tells the others. Frames travel as the JSON text clients get, made once by
/// the node that took the action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BusEvent {
    /// A chat line or danmaku stored by the sending node: every room broadcasts it in `seq`
    /// order.
    Message {
        /// The channel slug.
        channel: String,
        /// Its number in the room.
        seq: i64,
        /// Its stored id.
        id: i64,
        /// The `chat` or `danmaku` frame.
        frame: String,
    },
    /// A frame that needs no place in the message order: a gift, a like batch, a moderation
    /// notice.
    Room {
        /// The channel slug.
        channel: String,
        /// The frame.
        frame: String,
        /// A message this frame deletes, which joining clients must no longer get.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted: Option<i64>,
    },
    /// A channel's slow mode changed (0: off).
    SlowMode {
        /// The channel slug.
        channel: String,
        /// The channel id, the key of the setting.
        channel_id: i64,
        /// One message per this many seconds per user.
        seconds: u64,
    },
    /// A node's own audience, every `viewers_interval`; a node silent for three of them
    /// drops out of the totals.
    Stats {
        /// Who.
        node: String,
        /// Its rooms and watched channels.
        rooms: Vec<RoomStats>,
    },
}

/// One channel's audience on one node, and the last message number it delivered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomStats {
    /// The channel slug.
    pub channel: String,
    /// Video viewers on that node.
    pub video: u64,
    /// Chat connections on that node.
    pub chat: u64,
    /// The last message number that node delivered (0: none or no room): a node behind it
    /// reads the rest from the store, so a last message lost on the bus is found too.
    pub seq: i64,
}

/// How a node reaches the others. The server's implementation queues and never waits; an
/// event it cannot send is counted and lost, which the receivers repair from the store.
pub trait ChatBus: Send + Sync + 'static {
    /// Sends `event` to every other node.
    fn publish(&self, event: BusEvent);

    /// This node's id, as it appears in its [`BusEvent::Stats`].
    fn node_id(&self) -> &str;
}

/// Gaps held longer than this while the store does not answer are skipped.
pub const MAX_GAP_AGE: Duration = Duration::from_secs(5);

/// Most messages held out of order in one room; past it the oldest gap is skipped.
pub const MAX_HELD: usize = 1024;

/// Most messages read from the store per repair; a longer gap (a node away for long) is
/// delivered from its newest end and the older part skipped.
pub const MAX_CATCH_UP: u32 = 200;

/// Delivered messages a room keeps to hand a joining client what arrived while its history
/// was read.
const RECENT: usize = 256;

/// A message waiting for its turn.
pub(crate) struct Held {
    pub(crate) id: i64,
    pub(crate) text: FrameText,
    /// Told when the message went out: the local sender acks after that.
    pub(crate) done: Option<oneshot::Sender<()>>,
}

/// A room's delivery order.
pub(crate) struct Sequence {
    /// Every number up to this one was delivered (or skipped).
    pub(crate) delivered: i64,
    /// Messages past a gap.
    pub(crate) held: BTreeMap<i64, Held>,
    /// The highest number known to be stored.
    pub(crate) known: i64,
    /// A repair task is scheduled.
    pub(crate) repairing: bool,
    /// When the oldest open gap was seen.
    pub(crate) gap_since: Option<Instant>,
    /// The last delivered messages: number, id, frame.
    recent: VecDeque<(i64, i64, FrameText)>,
    /// The highest number dropped from `recent`.
    recent_floor: i64,
}

/// What [`Sequence::advance`] released, to broadcast in this order.
pub(crate) type Released = Vec<(FrameText, Option<oneshot::Sender<()>>)>;

impl Sequence {
    /// A room whose store says `seq` messages were numbered before it opened here.
    pub(crate) fn new(seq: i64) -> Self {
        Sequence {
            delivered: seq,
            held: BTreeMap::new(),
            known: seq,
            repairing: false,
            gap_since: None,
            recent: VecDeque::new(),
            recent_floor: seq,
        }
    }

    /// Takes message `seq`; returns what is now in order to go out.
    pub(crate) fn offer(&mut self, seq: i64, held: Held, now: Instant) -> Released {
        if seq <= self.delivered {
            // Already out (fetched before the bus brought it, or a duplicate).
            if let Some(done) = held.done {
                let _ = done.send(());
            }
            return Vec::new();
        }
        self.known = self.known.max(seq);
        match self.held.entry(seq) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if held.done.is_some() {
                    e.get_mut().done = held.done;
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(held);
            }
        }
        let mut out = self.advance(self.delivered, now);
        if self.held.len() > MAX_HELD {
            out.extend(self.skip_gap(now).1);
        }
        out
    }

    /// Notes that the store holds numbers up to `seq` (a peer delivered them).
    pub(crate) fn learn(&mut self, seq: i64, now: Instant) {
        if seq > self.known {
            self.known = seq;
            if self.gap_since.is_none() {
                self.gap_since = Some(now);
            }
        }
    }

    /// Whether a number is missing, so the store must be asked (after the hold).
    pub(crate) fn has_gap(&self) -> bool {
        self.known > self.delivered
    }

    /// Delivers held messages in order; numbers up to `resolved` that are not held are known
    /// not to be deliverable (deleted) and are passed over.
    pub(crate) fn advance(&mut self, resolved: i64, now: Instant) -> Released {
        let mut out = Vec::new();
        loop {
            let next = self.delivered + 1;
            if let Some(held) = self.held.remove(&next) {
                self.remember(next, held.id, held.text.clone());
                out.push((held.text, held.done));
            } else if next > resolved {
                break;
            }
            self.delivered = next;
        }
        if self.has_gap() {
            self.gap_since.get_or_insert(now);
        } else {
            self.gap_since = None;
        }
        out
    }

    /// Gives up on the oldest gap: delivers from the first held message on. Returns how
    /// many numbers were skipped.
    pub(crate) fn skip_gap(&mut self, now: Instant) -> (u64, Released) {
        let to = self
            .held
            .keys()
            .next()
            .map_or(self.known, |first| first - 1);
        let skipped = u64::try_from(to - self.delivered).unwrap_or(0);
        self.gap_since = None;
        (skipped, self.advance(to, now))
    }

    /// Whether the oldest gap is older than [`MAX_GAP_AGE`].
    pub(crate) fn gap_too_old(&self, now: Instant) -> bool {
        self.gap_since
            .is_some_and(|since| now.saturating_duration_since(since) >= MAX_GAP_AGE)
    }

    fn remember(&mut self, seq: i64, id: i64, text: FrameText) {
        if self.recent.len() == RECENT
            && let Some((dropped, _, _)) = self.recent.pop_front()
        {
            self.recent_floor = dropped;
        }
        self.recent.push_back((seq, id, text));
    }

    /// A deleted message is no longer handed to joining clients.
    pub(crate) fn forget(&mut self, id: i64) {
        self.recent.retain(|(_, m, _)| *m != id);
    }

    /// The messages delivered after number `after`, if the recent ones still cover them.
    pub(crate) fn since(&self, after: i64) -> Option<Vec<FrameText>> {
        (self.recent_floor <= after).then(|| {
            self.recent
                .iter()
                .filter(|(seq, _, _)| *seq > after)
                .map(|(_, _, text)| text.clone())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> FrameText {
        FrameText::new(s.to_owned())
    }

    fn held(id: i64) -> Held {
        Held {
            id,
            text: text(&format!("m{id}")),
            done: None,
        }
    }

    fn names(out: &Released) -> Vec<String> {
        out.iter().map(|(t, _)| t.as_str().to_owned()).collect()
    }

    #[test]
    fn messages_out_of_order_go_out_in_number_order_once_the_gap_fills() {
        let now = Instant::now();
        let mut s = Sequence::new(10);
        assert_eq!(names(&s.offer(12, held(12), now)), Vec::<String>::new());
        assert!(s.has_gap());
        assert_eq!(names(&s.offer(13, held(13), now)), Vec::<String>::new());
        assert_eq!(names(&s.offer(11, held(11), now)), ["m11", "m12", "m13"]);
        assert!(!s.has_gap());
        assert_eq!(s.gap_since, None);
        // A duplicate (the bus after a repair) goes out no second time.
        assert!(s.offer(12, held(12), now).is_empty());
        assert_eq!(s.delivered, 13);
    }

    #[test]
    fn the_local_sender_is_told_when_its_message_went_out_even_if_fetched_first() {
        let now = Instant::now();
        let mut s = Sequence::new(0);
        let (tx, mut rx) = oneshot::channel();
        s.offer(2, held(2), now);
        // The local send of 2 arrives after a fetch put it in the hold: its notice is kept.
        s.offer(
            2,
            Held {
                done: Some(tx),
                ..held(2)
            },
            now,
        );
        assert!(rx.try_recv().is_err());
        let out = s.offer(1, held(1), now);
        assert_eq!(names(&out), ["m1", "m2"]);
        for (_, done) in out {
            if let Some(done) = done {
                done.send(()).unwrap();
            }
        }
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_repair_passes_over_numbers_the_store_holds_no_deliverable_message_for() {
        let now = Instant::now();
        let mut s = Sequence::new(0);
        s.offer(4, held(4), now);
        // The store gave 2 (3 was deleted, 1 too): everything up to 4 is resolved.
        s.held.insert(2, held(2));
        assert_eq!(names(&s.advance(4, now)), ["m2", "m4"]);
        assert_eq!(s.delivered, 4);
        assert!(!s.has_gap());
    }

    #[test]
    fn a_gap_that_never_fills_is_skipped_and_a_learnt_tail_is_a_gap() {
        let now = Instant::now();
        let mut s = Sequence::new(5);
        s.offer(8, held(8), now);
        assert!(!s.gap_too_old(now + Duration::from_secs(1)));
        assert!(s.gap_too_old(now + MAX_GAP_AGE));
        let (skipped, out) = s.skip_gap(now);
        assert_eq!((skipped, names(&out)), (2, vec!["m8".to_owned()]));
        s.learn(10, now);
        assert!(s.has_gap(), "a peer delivered 10: 9 and 10 are to be read");
        let (skipped, out) = s.skip_gap(now);
        assert_eq!((skipped, out.len(), s.delivered), (2, 0, 10));
    }

    #[test]
    fn the_hold_is_bounded() {
        let now = Instant::now();
        let mut s = Sequence::new(0);
        let mut out = Vec::new();
        for seq in 2..=(MAX_HELD as i64 + 2) {
            out.extend(s.offer(seq, held(seq), now));
        }
        assert!(s.held.len() <= MAX_HELD);
        assert_eq!(
            out.len(),
            MAX_HELD + 1,
            "past the bound the gap at 1 is skipped"
        );
        assert_eq!(s.delivered, MAX_HELD as i64 + 2);
    }

    #[test]
    fn a_joiner_gets_what_was_delivered_after_its_history_unless_it_fell_out() {
        let now = Instant::now();
        let mut s = Sequence::new(0);
        for seq in 1..=3 {
            s.offer(seq, held(seq), now);
        }
        s.forget(3);
        let since: Vec<_> = s.since(1).unwrap().iter().map(|t| t.to_string()).collect();
        assert_eq!(since, ["m2"]);
        for seq in 4..=(RECENT as i64 + 10) {
            s.offer(seq, held(seq), now);
        }
        assert!(
            s.since(1).is_none(),
            "no longer covered: read the history again"
        );
        assert_eq!(s.since(RECENT as i64 + 9).unwrap().len(), 1);
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = BusEvent::Room {
            channel: "demo".into(),
            frame: r#"{"v":1}"#.into(),
            deleted: Some(3),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<BusEvent>(&json).unwrap(), e);
        let e = BusEvent::Stats {
            node: "n1".into(),
            rooms: vec![RoomStats {
                channel: "demo".into(),
                video: 1,
                chat: 2,
                seq: 3,
            }],
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""kind":"stats""#));
        assert_eq!(serde_json::from_str::<BusEvent>(&json).unwrap(), e);
    }
}
