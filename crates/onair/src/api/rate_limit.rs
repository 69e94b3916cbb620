//! The login limits: a hard limit per client address, and a delay per account, in memory,
//! bounded.
//!
//! Each key has a token bucket kept as one instant (GCRA, the generic cell rate algorithm):
//! `limit` attempts at once, then one every `60 s / limit`. A key whose bucket is full again
//! holds no information and is the first to go when the table is full, so memory stays at
//! `capacity` keys per table however many addresses or names an attacker uses.
//!
//! **Per address**, every attempt counts, successful or not (a password sprayer that guesses
//! right sometimes is still held back), and one past the limit is refused with 429. That
//! refusal is the attacker's own: it never touches anyone else's address.
//!
//! **Per account**, nothing is ever refused. An account once had a bucket of its own, and ten
//! wrong guesses from ten addresses locked its owner out from everywhere (issue #18). Now an
//! account's *failed* attempts fill a bucket, and once it is past its burst every further
//! failure is answered only after a delay that doubles with each one, up to [`MAX_DELAY`].
//! A correct password is answered at once, from any address, however many guesses came
//! before it. The delay holds back a guesser that waits for its answers, and holds each
//! parallel guess's connection meanwhile; what bounds a guesser with many addresses is the
//! per-address limit, and the password hashing threads (`auth.password_hash_threads`),
//! which no flood can make check more than they can.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::extract::ClientIp;

/// Keys kept per table before the fullest buckets are forgotten.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The window the configured number of attempts refills over.
const PERIOD: Duration = Duration::from_secs(60);

/// The delay of the first failure past an account's burst; each further one doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(250);

/// The longest a failed login is held before its answer.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Doublings of [`FIRST_DELAY`] that reach [`MAX_DELAY`] (250 ms × 2⁵ = 8 s).
const DOUBLINGS: u32 = 6;

/// Login attempts allowed per minute per address; failures per minute per account before
/// their answers are delayed.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Time one attempt takes to refill; `None` when the limit is off.
    interval: Option<Duration>,
    /// How far ahead of now a key's debt may run: `limit - 1` intervals.
    burst: Duration,
    by_ip: Mutex<Buckets<ClientIp>>,
    failures: Mutex<Buckets<String>>,
}

impl LoginLimiter {
    /// `per_minute` attempts per minute (0 turns the limits off), `capacity` keys per table.
    pub fn new(per_minute: u32, capacity: usize) -> Self {
        let interval = (per_minute > 0).then(|| PERIOD / per_minute);
        let burst = interval.map_or(Duration::ZERO, |i| i * per_minute.saturating_sub(1));
        LoginLimiter {
            interval,
            burst,
            by_ip: Mutex::new(Buckets::new(capacity)),
            failures: Mutex::new(Buckets::new(capacity)),
        }
    }

    /// Admits one login attempt from `ip` at `now`, or says how long to wait.
    pub fn admit(&self, ip: ClientIp, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        self.by_ip.lock().take(ip, now, interval, self.burst)
    }

    /// Gives `ip` back an attempt whose password was never checked (the server was busy).
    pub fn give_back(&self, ip: ClientIp) {
        if let Some(interval) = self.interval {
            self.by_ip.lock().give_back(&ip, interval);
        }
    }

    /// Counts a wrong password for `account` at `now`; returns how long to hold its answer:
    /// nothing within the account's burst, then [`FIRST_DELAY`] doubling per further failure
    /// still in the bucket, at most [`MAX_DELAY`].
    pub fn record_failure(&self, account: &str, now: Instant) -> Duration {
        let Some(interval) = self.interval else {
            return Duration::ZERO;
        };
        let within = self.burst + interval;
        let ahead = self.failures.lock().add(
            account.to_lowercase(),
            now,
            interval,
            self.failure_cap(interval),
        );
        if ahead <= within {
            return Duration::ZERO;
        }
        // How many failures, this one included, lie past the burst (rounded up: time has
        // refilled part of one).
        let past = (ahead - within).as_nanos().div_ceil(interval.as_nanos());
        let doublings = u32::try_from(past.saturating_sub(1)).unwrap_or(u32::MAX);
        FIRST_DELAY
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
    }

    /// How far an account's failures may run ahead of now: far enough to reach
    /// [`MAX_DELAY`], and no further, so that an account calms down within this of the end
    /// of an attack however long it went on.
    fn failure_cap(&self, interval: Duration) -> Duration {
        self.burst + interval * (DOUBLINGS + 1)
    }

    /// Keys held now, per table (for tests).
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.by_ip.lock().map.len(), self.failures.lock().map.len())
    }
}

/// One table of buckets: key → the instant its bucket is full again ("theoretical arrival
/// time").
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Instant>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(capacity: usize) -> Self {
        Buckets {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Takes one attempt from `key`'s bucket, or says how long to wait.
    fn take(
        &mut self,
        key: K,
        now: Instant,
        interval: Duration,
        burst: Duration,
    ) -> Result<(), Duration> {
        let full_at = self.map.get(&key).copied().unwrap_or(now);
        let start = check(full_at, now, burst)?;
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.evict(now);
        }
        self.map.insert(key, start + interval);
        Ok(())
    }

    /// Adds one attempt to `key`'s debt whatever it is, and returns how far the debt now runs
    /// ahead of `now`, never more than `cap`. Unlike [`Buckets::take`] nothing is refused.
    fn add(&mut self, key: K, now: Instant, interval: Duration, cap: Duration) -> Duration {
        let full_at = self.map.get(&key).copied().unwrap_or(now).max(now);
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.evict(now);
        }
        let next = (full_at + interval).min(now + cap);
        self.map.insert(key, next);
        next - now
    }

    /// Takes back one attempt from `key`'s debt.
    fn give_back<Q>(&mut self, key: &Q, interval: Duration)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(full_at) = self.map.get_mut(key) {
            *full_at = full_at.checked_sub(interval).unwrap_or(*full_at);
        }
    }

    /// Makes room: forgets every full bucket, and if that frees less than an eighth of the
    /// table, also the eighth with the least debt. Freeing a batch at a time keeps a flood of
    /// new addresses at O(1) amortised per key instead of a full scan for each.
    fn evict(&mut self, now: Instant) {
        self.map.retain(|_, full_at| *full_at > now);
        let batch = (self.capacity / 8).max(1);
        if self.map.len() + batch > self.capacity {
            let mut debts: Vec<Instant> = self.map.values().copied().collect();
            let k = (batch - 1).min(debts.len().saturating_sub(1));
            let (_, threshold, _) = debts.select_nth_unstable(k);
            let threshold = *threshold;
            self.map.retain(|_, full_at| *full_at > threshold);
        }
    }
}

/// With the bucket full again at `full_at`: the instant the next attempt's debt starts from,
/// or how long to wait when the debt already runs more than `burst` ahead of `now`.
fn check(full_at: Instant, now: Instant, burst: Duration) -> Result<Instant, Duration> {
    let start = full_at.max(now);
    let ahead = start - now;
    if ahead > burst {
        Err(ahead - burst)
    } else {
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> ClientIp {
        ClientIp::from_ip(std::net::IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn an_address_gets_its_burst_then_one_attempt_per_interval() {
        let limiter = LoginLimiter::new(10, 100);
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(limiter.admit(ip(1), t0), Ok(()), "attempt {i}");
        }
        let wait = limiter.admit(ip(1), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(limiter.admit(ip(1), t0 + Duration::from_secs(5)).is_err());
        assert_eq!(limiter.admit(ip(1), t0 + Duration::from_secs(6)), Ok(()));
        assert!(limiter.admit(ip(1), t0 + Duration::from_secs(6)).is_err());
        assert_eq!(
            limiter.admit(ip(2), t0),
            Ok(()),
            "other addresses are apart"
        );
        assert_eq!(
            limiter.admit(ip(1), t0 + Duration::from_secs(66)),
            Ok(()),
            "a minute later the whole burst is back"
        );
    }

    #[test]
    fn an_attempt_the_server_could_not_check_is_given_back() {
        let limiter = LoginLimiter::new(2, 100);
        let t0 = Instant::now();
        limiter.admit(ip(1), t0).unwrap();
        limiter.admit(ip(1), t0).unwrap();
        assert!(limiter.admit(ip(1), t0).is_err());
        limiter.give_back(ip(1));
        assert_eq!(limiter.admit(ip(1), t0), Ok(()));
    }

    #[test]
    fn failures_past_an_accounts_burst_are_delayed_doubling_up_to_the_cap() {
        let limiter = LoginLimiter::new(3, 100);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..10)
            .map(|_| limiter.record_failure("Alice", t0))
            .collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            delays,
            [
                ms(0),
                ms(0),
                ms(0),
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                MAX_DELAY,
                MAX_DELAY,
            ]
        );
        assert_eq!(
            limiter.record_failure("alice", t0),
            MAX_DELAY,
            "names are one account in any case"
        );
        assert_eq!(
            limiter.record_failure("bob", t0),
            Duration::ZERO,
            "accounts are apart"
        );
        // However long the attack, the account is calm once its capped debt has run out.
        let later = t0 + limiter.failure_cap(Duration::from_secs(20));
        assert_eq!(limiter.record_failure("alice", later), Duration::ZERO);
        let sooner = later - Duration::from_secs(50);
        assert_ne!(limiter.record_failure("carol", t0), MAX_DELAY);
        for _ in 0..20 {
            limiter.record_failure("carol", t0);
        }
        assert_eq!(limiter.record_failure("carol", sooner), FIRST_DELAY);
    }

    #[test]
    fn no_account_is_ever_refused() {
        // The account limit only delays answers; admission is per address alone, so the
        // owner's attempt from a fresh address is admitted after any number of failures.
        let limiter = LoginLimiter::new(3, 100);
        let t0 = Instant::now();
        for n in 0..50 {
            if limiter.admit(ip(n), t0).is_ok() {
                limiter.record_failure("admin", t0);
            }
        }
        assert_eq!(limiter.admit(ip(200), t0), Ok(()));
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let limiter = LoginLimiter::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.admit(ip(1), t0), Ok(()));
            assert_eq!(limiter.record_failure("a", t0), Duration::ZERO);
        }
        assert_eq!(limiter.len(), (0, 0));
    }

    #[test]
    fn memory_stays_bounded_and_limited_keys_are_kept_longest() {
        let limiter = LoginLimiter::new(2, 4);
        let t0 = Instant::now();
        // One address uses up its burst: it holds the most debt.
        limiter.admit(ip(0), t0).unwrap();
        limiter.admit(ip(0), t0).unwrap();
        assert!(limiter.admit(ip(0), t0).is_err());
        for n in 1..=200 {
            limiter.admit(ip(n), t0).unwrap();
            limiter.record_failure(&format!("n{n}"), t0);
            assert!(limiter.len().0 <= 4);
            assert!(limiter.len().1 <= 4);
        }
        assert!(
            limiter.admit(ip(0), t0).is_err(),
            "a flood of new addresses does not reset a limited one"
        );
        // Once buckets refill they are forgotten first: four newcomers later replace them all.
        let later = t0 + Duration::from_secs(120);
        for n in 201..=204 {
            limiter.admit(ip(n), later).unwrap();
        }
        assert!(limiter.by_ip.lock().map.values().all(|at| *at > later));
        assert_eq!(limiter.len().0, 4);
    }
}
