//! The login rate limit: per client address and per account, in memory, bounded.
//!
//! Each key has a token bucket kept as one instant (GCRA, the generic cell rate algorithm):
//! `limit` attempts at once, then one every `60 s / limit`. A key whose bucket is full again
//! holds no information and is the first to go when the table is full, so memory stays at
//! `capacity` keys per table however many addresses an attacker has.
//!
//! Every attempt from an address counts against it, successful or not: a password sprayer
//! that guesses right sometimes is still held back. An attempt also counts against its account
//! from the moment it is admitted — before the password is checked, so guesses sent in
//! parallel cannot all pass before the first failure is counted — and a successful login gives
//! its account's attempt back, so the owner is not locked out by logging in. An account's wait
//! never exceeds one burst: refused attempts cost nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::extract::ClientIp;

/// Keys kept per table before the fullest buckets are forgotten.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The window the configured number of attempts refills over.
const PERIOD: Duration = Duration::from_secs(60);

/// Login attempts allowed per minute, per address and per account.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Time one attempt takes to refill; `None` when the limit is off.
    interval: Option<Duration>,
    /// How far ahead of now a key's debt may run: `limit - 1` intervals.
    burst: Duration,
    by_ip: Mutex<Buckets<ClientIp>>,
    by_account: Mutex<Buckets<String>>,
}

impl LoginLimiter {
    /// `per_minute` attempts per minute (0 turns the limit off), `capacity` keys per table.
    pub fn new(per_minute: u32, capacity: usize) -> Self {
        let interval = (per_minute > 0).then(|| PERIOD / per_minute);
        let burst = interval.map_or(Duration::ZERO, |i| i * per_minute.saturating_sub(1));
        LoginLimiter {
            interval,
            burst,
            by_ip: Mutex::new(Buckets::new(capacity)),
            by_account: Mutex::new(Buckets::new(capacity)),
        }
    }

    /// Admits one login attempt from `ip` for `account` at `now`, or says how long to wait.
    /// An admitted attempt counts against the address and the account at once.
    pub fn admit(&self, ip: ClientIp, account: &str, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let account = account.to_lowercase();
        self.by_account
            .lock()
            .take(account.clone(), now, interval, self.burst)?;
        if let Err(wait) = self.by_ip.lock().take(ip, now, interval, self.burst) {
            // Refused for the address: the account keeps its attempt.
            self.by_account.lock().give_back(&account, interval);
            return Err(wait);
        }
        Ok(())
    }

    /// Gives `account` back the attempt of a login that succeeded.
    pub fn record_success(&self, account: &str, _now: Instant) {
        if let Some(interval) = self.interval {
            self.by_account
                .lock()
                .give_back(&account.to_lowercase(), interval);
        }
    }

    /// Keys held now, per table (for tests).
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (
            self.by_ip.lock().map.len(),
            self.by_account.lock().map.len(),
        )
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
            assert_eq!(
                limiter.admit(ip(1), &format!("user{i}"), t0),
                Ok(()),
                "attempt {i}"
            );
        }
        let wait = limiter.admit(ip(1), "user10", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(
            limiter
                .admit(ip(1), "x", t0 + Duration::from_secs(5))
                .is_err()
        );
        assert_eq!(
            limiter.admit(ip(1), "x", t0 + Duration::from_secs(6)),
            Ok(())
        );
        assert!(
            limiter
                .admit(ip(1), "x", t0 + Duration::from_secs(6))
                .is_err()
        );
        assert_eq!(
            limiter.admit(ip(2), "x", t0),
            Ok(()),
            "other addresses are apart"
        );
        assert_eq!(
            limiter.admit(ip(1), "x", t0 + Duration::from_secs(66)),
            Ok(()),
            "a minute later the whole burst is back"
        );
    }

    #[test]
    fn attempts_in_flight_count_against_an_account_and_successes_give_theirs_back() {
        let limiter = LoginLimiter::new(3, 100);
        let t0 = Instant::now();
        // Three guesses from three addresses, all admitted before any password check ends.
        for n in 0..3 {
            assert_eq!(limiter.admit(ip(n), "Alice", t0), Ok(()));
        }
        let wait = limiter.admit(ip(9), "alice", t0).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(20),
            "names are one account in any case"
        );
        assert_eq!(limiter.admit(ip(9), "bob", t0), Ok(()));
        // Refused attempts do not add to the wait: it never exceeds one burst.
        for n in 10..50 {
            assert!(limiter.admit(ip(n), "alice", t0).is_err());
        }
        assert_eq!(
            limiter.admit(ip(9), "alice", t0 + Duration::from_secs(20)),
            Ok(())
        );

        // An owner who logs in successfully keeps the account's whole burst.
        // (A new address each time, so only the account's limit is in play.)
        for n in 100..110 {
            assert_eq!(limiter.admit(ip(n), "carol", t0), Ok(()), "login {n}");
            limiter.record_success("carol", t0);
        }
    }

    #[test]
    fn an_address_refusal_does_not_cost_the_account() {
        let limiter = LoginLimiter::new(2, 100);
        let t0 = Instant::now();
        limiter.admit(ip(1), "u1", t0).unwrap();
        limiter.admit(ip(1), "u2", t0).unwrap();
        assert!(
            limiter.admit(ip(1), "dave", t0).is_err(),
            "the address is spent"
        );
        assert_eq!(limiter.admit(ip(2), "dave", t0), Ok(()));
        assert_eq!(
            limiter.admit(ip(3), "dave", t0),
            Ok(()),
            "dave still had both attempts"
        );
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = LoginLimiter::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.admit(ip(1), "a", t0), Ok(()));
        }
        assert_eq!(limiter.len(), (0, 0));
    }

    #[test]
    fn memory_stays_bounded_and_limited_keys_are_kept_longest() {
        let limiter = LoginLimiter::new(2, 4);
        let t0 = Instant::now();
        // One address uses up its burst: it holds the most debt.
        limiter.admit(ip(0), "a0", t0).unwrap();
        limiter.admit(ip(0), "a1", t0).unwrap();
        assert!(limiter.admit(ip(0), "a2", t0).is_err());
        for n in 1..=200 {
            limiter.admit(ip(n), &format!("n{n}"), t0).unwrap();
            assert!(limiter.len().0 <= 4);
            assert!(limiter.len().1 <= 4);
        }
        assert!(
            limiter.admit(ip(0), "a3", t0).is_err(),
            "a flood of new addresses does not reset a limited one"
        );
        // Once buckets refill they are forgotten first: four newcomers later replace them all.
        let later = t0 + Duration::from_secs(120);
        for n in 201..=204 {
            limiter.admit(ip(n), &format!("z{n}"), later).unwrap();
        }
        assert!(limiter.by_ip.lock().map.values().all(|at| *at > later));
        assert!(limiter.by_account.lock().map.values().all(|at| *at > later));
        assert_eq!(limiter.len(), (4, 4));
    }
}
