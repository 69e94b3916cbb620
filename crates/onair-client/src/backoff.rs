//! When to try again after a lost or refused connection: exponential back-off with jitter.
//!
//! No clock and no randomness source inside: the caller says how long the last connection
//! lasted and passes the jitter draw, so the schedule is a plain function a test can walk.

use std::time::Duration;

/// The shape of a [`Backoff`] schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The delay before the first retry.
    pub initial: Duration,
    /// Each further retry waits this many times longer…
    pub factor: u32,
    /// …up to this.
    pub max: Duration,
    /// A connection that stayed up this long was a success: the next loss starts the
    /// schedule (and the attempt count) over.
    pub stable_after: Duration,
    /// Give up after this many retries in a row; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for BackoffPolicy {
    /// 0.5 s doubling to 30 s, reset after a minute up, unlimited attempts.
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            factor: 2,
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            max_attempts: None,
        }
    }
}

/// One retry the schedule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Which retry in a row this is, from 1.
    pub attempt: u32,
    /// How long to wait before it.
    pub delay: Duration,
}

/// A back-off schedule in progress.
///
/// ```
/// use std::time::Duration;
/// use onair_client::backoff::{Backoff, BackoffPolicy};
///
/// let mut backoff = Backoff::new(BackoffPolicy::default());
/// // A refused connect (it was never up); a jitter draw of 0 waits the full delay.
/// let retry = backoff.next(None, 0.0).unwrap();
/// assert_eq!((retry.attempt, retry.delay), (1, Duration::from_millis(500)));
/// assert_eq!(backoff.next(None, 0.0).unwrap().delay, Duration::from_secs(1));
/// // A connection that stayed up past `stable_after` starts over.
/// assert_eq!(backoff.next(Some(Duration::from_secs(61)), 0.0).unwrap().attempt, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Retries in a row so far.
    attempts: u32,
    /// The delay of the next retry, before jitter.
    next_delay: Duration,
}

impl Backoff {
    /// A fresh schedule: the next retry waits [`BackoffPolicy::initial`].
    pub fn new(policy: BackoffPolicy) -> Backoff {
        Backoff {
            next_delay: policy.initial.min(policy.max),
            policy,
            attempts: 0,
        }
    }

    /// The retry after a failure, or `None` when [`BackoffPolicy::max_attempts`] are used up.
    ///
    /// `up_for` is how long the connection that just ended had been established (publishing
    /// or playing), `None` when it never got there (refused, timed out). `jitter` in `[0, 1)`
    /// (drawn by the caller) takes up to a quarter off the delay, so clients that lost the
    /// same server do not all come back in the same instant; the delay never exceeds the
    /// schedule, so [`BackoffPolicy::max`] stays a true cap.
    pub fn next(&mut self, up_for: Option<Duration>, jitter: f64) -> Option<Retry> {
        if up_for.is_some_and(|d| d >= self.policy.stable_after) {
            self.reset();
        }
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            return None;
        }
        self.attempts += 1;
        let base = self.next_delay;
        self.next_delay = base
            .saturating_mul(self.policy.factor.max(1))
            .min(self.policy.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(Retry {
            attempt: self.attempts,
            delay: base.saturating_sub(base.mul_f64(0.25 * jitter)),
        })
    }

    /// Starts the schedule over, as after a stable connection.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.next_delay = self.policy.initial.min(self.policy.max);
    }

    /// Retries in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn delays(backoff: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n)
            .map(|_| backoff.next(None, 0.0).expect("unlimited").delay)
            .collect()
    }

    #[test]
    fn delays_double_from_half_a_second_to_the_cap() {
        let mut b = Backoff::new(BackoffPolicy::default());
        assert_eq!(
            delays(&mut b, 9),
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16_000),
                ms(30_000),
                ms(30_000),
                ms(30_000)
            ]
        );
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn jitter_takes_at_most_a_quarter_off_and_never_adds() {
        let mut b = Backoff::new(BackoffPolicy::default());
        assert_eq!(
            b.next(None, 0.5).unwrap().delay,
            ms(437) + Duration::from_micros(500)
        );
        assert_eq!(b.next(None, 0.999_999).unwrap().delay.as_millis(), 750);
        // Out-of-range draws are clamped, NaN means none.
        assert_eq!(b.next(None, 7.0).unwrap().delay, ms(1500));
        assert_eq!(b.next(None, -1.0).unwrap().delay, ms(4000));
        assert_eq!(b.next(None, f64::NAN).unwrap().delay, ms(8000));
        assert_eq!(b.next(None, 0.0).unwrap().delay, ms(16_000));
        for _ in 0..20 {
            let d = b.next(None, 0.3).unwrap().delay;
            assert!(d <= ms(30_000) && d >= ms(22_500), "{d:?}");
        }
    }

    #[test]
    fn a_stable_connection_starts_the_schedule_over_and_a_short_one_does_not() {
        let mut b = Backoff::new(BackoffPolicy::default());
        delays(&mut b, 4);
        // Up for 59 s: still flapping, the schedule goes on.
        assert_eq!(
            b.next(Some(Duration::from_secs(59)), 0.0),
            Some(Retry {
                attempt: 5,
                delay: ms(8000)
            })
        );
        assert_eq!(
            b.next(Some(Duration::from_secs(60)), 0.0),
            Some(Retry {
                attempt: 1,
                delay: ms(500)
            })
        );
    }

    #[test]
    fn max_attempts_counts_retries_in_a_row() {
        let mut b = Backoff::new(BackoffPolicy {
            max_attempts: Some(2),
            ..BackoffPolicy::default()
        });
        assert_eq!(b.next(None, 0.0).map(|r| r.attempt), Some(1));
        assert_eq!(b.next(None, 0.0).map(|r| r.attempt), Some(2));
        assert_eq!(b.next(None, 0.0), None);
        assert_eq!(b.next(Some(Duration::from_secs(1)), 0.0), None);
        // …but a connection that held for a minute earns a fresh budget.
        assert_eq!(
            b.next(Some(Duration::from_secs(120)), 0.0)
                .map(|r| r.attempt),
            Some(1)
        );

        let mut never = Backoff::new(BackoffPolicy {
            max_attempts: Some(0),
            ..BackoffPolicy::default()
        });
        assert_eq!(never.next(None, 0.0), None);
    }

    #[test]
    fn odd_policies_stay_sane() {
        // An initial delay above the cap is capped; a factor of 0 acts as 1.
        let mut b = Backoff::new(BackoffPolicy {
            initial: Duration::from_secs(90),
            factor: 0,
            ..BackoffPolicy::default()
        });
        assert_eq!(delays(&mut b, 3), [ms(30_000); 3]);
        let mut huge = Backoff::new(BackoffPolicy {
            initial: Duration::from_secs(1),
            factor: u32::MAX,
            max: Duration::MAX,
            ..BackoffPolicy::default()
        });
        assert_eq!(
            delays(&mut huge, 4)[3],
            Duration::MAX,
            "saturates, never panics"
        );
    }
}
