//! [`PasswordHashing`]: every password hash and check of the process, on a few dedicated
//! threads with a bounded queue and a deadline.
//!
//! One Argon2id hash at the default cost fills 19 MiB and keeps a core busy for tens of
//! milliseconds. Run on the blocking pool, a flood of logins started one hash per request at
//! once: hundreds of threads, each leaving 19 MiB in its allocator arena, and the cores taken
//! from everything else (the flood in issue #18 reached 6.2 GB and stalled signed-in
//! requests for seconds). Here at most `threads` hashes run at a time, each thread reuses its
//! own working memory ([`onair_auth::Hasher`]), so memory is `threads` × the cost, and a
//! request that cannot get a thread within `wait` is answered 503 with `Retry-After` instead
//! of queueing without end. A request that gave up is skipped by the thread that would have
//! run it, so a queue of abandoned logins costs nothing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use onair_auth::{HashCost, Hasher, PasswordError};
use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::oneshot;

/// Requests that may wait for a thread. Past this many the queue is longer than any `wait`
/// could drain, so a newcomer is refused at once.
const QUEUE: usize = 1024;

/// Why a hash or a check did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashingError {
    /// Every thread stayed busy for the whole wait, or the queue is full.
    #[error("password hashing is busy; retry in {} s", retry_after.as_secs())]
    Busy {
        /// When a retry has a fair chance.
        retry_after: Duration,
    },
    /// Argon2 refused the input or the stored hash.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The hashing thread failed (a panic in the hash): a fault of ours.
    #[error("the password hashing thread failed")]
    Failed,
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct HashingStats {
    /// Requests waiting for a thread now.
    pub queued: AtomicU64,
    /// Hashes and checks done.
    pub done: AtomicU64,
    /// Requests refused as busy (queue full or the wait ran out).
    pub busy: AtomicU64,
}

type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// The process's password hashing: a fixed set of threads and one queue.
#[derive(Debug)]
pub struct PasswordHashing {
    queue: SyncSender<Job>,
    cost: HashCost,
    wait: Duration,
    threads: usize,
    stats: Arc<HashingStats>,
}

impl PasswordHashing {
    /// `threads` hashing threads (0: one per core) hashing new passwords at `cost`; a request
    /// waits at most `wait` for one. The threads end when this is dropped.
    pub fn new(threads: usize, cost: HashCost, wait: Duration) -> PasswordHashing {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let stats = Arc::new(HashingStats::default());
        for n in 0..threads {
            let jobs = jobs.clone();
            let stats = stats.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("onair-hash-{n}"))
                .spawn(move || work(&jobs, &stats));
            if let Err(e) = spawned {
                // The others still serve; with none, every request answers busy.
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        PasswordHashing {
            queue,
            cost,
            wait,
            threads,
            stats,
        }
    }

    /// The cost new hashes are made at.
    pub fn cost(&self) -> HashCost {
        self.cost
    }

    /// How many hashes run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queue, done and busy counters.
    pub fn stats(&self) -> &HashingStats {
        &self.stats
    }

    /// A PHC string of `password` at the configured cost, with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        let cost = self.cost;
        self.run(move |hasher| {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            hasher
                .hash(&password, salt, cost)
                .map(onair_auth::PasswordHash::into_string)
        })
        .await
    }

    /// Whether `password` matches the stored PHC string `phc`.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, HashingError> {
        self.run(move |hasher| hasher.verify(&password, &phc)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Hasher) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let (reply, answer) = oneshot::channel();
        let stats = self.stats.clone();
        let job: Job = Box::new(move |hasher| {
            // The caller's wait ran out: it has been answered already.
            if reply.is_closed() {
                return;
            }
            let result = work(hasher);
            stats.done.fetch_add(1, Ordering::Relaxed);
            let _ = reply.send(result);
        });
        match self.queue.try_send(job) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => return Err(self.busy()),
            Err(TrySendError::Disconnected(_)) => return Err(HashingError::Failed),
        }
        match tokio::time::timeout(self.wait, answer).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(HashingError::Failed),
            Err(_) => Err(self.busy()),
        }
    }

    fn busy(&self) -> HashingError {
        self.stats.busy.fetch_add(1, Ordering::Relaxed);
        HashingError::Busy {
            retry_after: self.wait.max(Duration::from_secs(1)),
        }
    }
}

/// One hashing thread: takes jobs until the queue's sender is dropped.
fn work(jobs: &Mutex<Receiver<Job>>, stats: &HashingStats) {
    let mut hasher = Hasher::new();
    loop {
        // Holding the lock while waiting is what hands each job to exactly one thread.
        let job = jobs.lock().recv();
        let Ok(job) = job else {
            return;
        };
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        // A panic inside Argon2 would be a bug; it fails that one request (its reply is
        // dropped) and the thread goes on serving.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut hasher))).is_err() {
            hasher = Hasher::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 64,
        passes: 1,
    };

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let pool = PasswordHashing::new(2, CHEAP, Duration::from_secs(10));
        let phc = pool.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(
            pool.verify("correct horse".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify("wrong horse".into(), phc).await.unwrap());
        assert!(matches!(
            pool.verify("x".into(), "not a hash".into()).await,
            Err(HashingError::Password(_))
        ));
        assert_eq!(pool.stats().done.load(Ordering::Relaxed), 4);
        assert_eq!(pool.stats().queued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_request_that_cannot_get_a_thread_in_time_is_busy_and_then_skipped() {
        let pool = PasswordHashing::new(1, CHEAP, Duration::from_millis(50));
        // Hold the only thread until the test lets go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = oneshot::channel();
        pool.stats.queued.fetch_add(1, Ordering::Relaxed);
        pool.queue
            .try_send(Box::new(move |_| {
                let _ = started.send(());
                let _ = held.recv();
            }))
            .unwrap();
        is_started.await.unwrap();
        let waited = pool.verify("pw".into(), "unused".into()).await;
        match waited {
            Err(HashingError::Busy { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(1))
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert_eq!(pool.stats().busy.load(Ordering::Relaxed), 1);
        release.send(()).unwrap();
        // The abandoned check is skipped, and the thread serves the next request.
        let phc = pool.hash("pw".into()).await.unwrap();
        assert!(pool.verify("pw".into(), phc).await.unwrap());
    }
}
