//! [`ChatConfig`] (every bound and interval of the chat) and [`Window`], the fixed-window
//! counter behind the per-user rate limit and the per-connection flood guard.

use std::time::{Duration, Instant};

/// The chat's bounds and intervals. The server fills it from its `[chat]` config section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatConfig {
    /// Messages sent to a client when it joins.
    pub history: u32,
    /// Longest chat line or danmaku, in characters.
    pub max_message_chars: usize,
    /// Messages (chat and danmaku) one user may send per `user_window`, over all connections.
    pub user_messages: u32,
    /// The window of `user_messages`.
    pub user_window: Duration,
    /// Frames of any type one connection may send per `flood_window`.
    pub flood_frames: u32,
    /// The window of `flood_frames`.
    pub flood_window: Duration,
    /// Slow mode for channels that did not set their own: at most one message per user per
    /// this interval (`None`: off). Owners and admins are exempt.
    pub slow_mode: Option<Duration>,
    /// Frames queued for one client; a client that falls this far behind is dropped.
    pub client_queue: usize,
    /// The longest a busy room gathers broadcasts before handing each member all of them in
    /// one queue entry (one wake-up, one write). Rooms below `batch_min_members` send at once.
    pub broadcast_window: Duration,
    /// Rooms with fewer members than this send every broadcast at once, unbatched.
    pub batch_min_members: usize,
    /// Member writes a second a busy room aims at: a room whose members times broadcasts a
    /// second stay within it sends every frame at once; a busier one gathers for
    /// members ÷ this (at most `broadcast_window`), so its writes stay near this figure
    /// however large it grows. 0: always gather for `broadcast_window`.
    pub batch_writes_per_second: u64,
    /// How often likes are added up, stored and broadcast.
    pub like_interval: Duration,
    /// How often the audience is broadcast (and, with several nodes, told to the others).
    pub viewers_interval: Duration,
    /// How long a message numbered past a gap waits for the missing ones before they are
    /// read from the store. Gaps come from other nodes' messages still on their way.
    pub reorder_hold: Duration,
    /// How often the server pings an idle client.
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            history: 50,
            max_message_chars: 200,
            user_messages: 10,
            user_window: Duration::from_secs(10),
            flood_frames: 20,
            flood_window: Duration::from_secs(1),
            slow_mode: None,
            client_queue: 256,
            broadcast_window: Duration::from_millis(50),
            batch_min_members: 200,
            batch_writes_per_second: 50_000,
            like_interval: Duration::from_millis(500),
            viewers_interval: Duration::from_secs(5),
            reorder_hold: Duration::from_millis(100),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
        }
    }
}

/// At most `limit` events per `window`, counted in fixed windows. Time is an argument.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// A window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Window {
            start: now,
            count: 0,
        }
    }

    /// Whether the window has rolled over at `now`: it then holds nothing a fresh one would
    /// not, and can be forgotten.
    pub fn is_over(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.start) >= window
    }

    /// Counts one event at `now`: `Ok` if it fits, else how long until the next window.
    pub fn hit(&mut self, now: Instant, limit: u32, window: Duration) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= window {
            self.start = now;
            self.count = 0;
        }
        if self.count >= limit {
            return Err(window.saturating_sub(elapsed));
        }
        self.count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_over_exactly_when_a_hit_would_start_a_new_one() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut w = Window::new(t0);
        assert!(w.hit(t0, 1, second).is_ok());
        assert!(!w.is_over(t0 + Duration::from_millis(999), second));
        assert!(w.hit(t0 + Duration::from_millis(999), 1, second).is_err());
        assert!(w.is_over(t0 + second, second));
        assert!(
            w.hit(t0 + second, 1, second).is_ok(),
            "a fresh window after it is over"
        );
    }

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_rolls_over() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        let second = Duration::from_secs(1);
        assert!(w.hit(t0, 2, second).is_ok());
        assert!(w.hit(t0, 2, second).is_ok());
        assert_eq!(
            w.hit(t0 + Duration::from_millis(300), 2, second),
            Err(Duration::from_millis(700))
        );
        assert!(w.hit(t0 + second, 2, second).is_ok());
    }
}
