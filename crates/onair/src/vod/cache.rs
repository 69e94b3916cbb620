//! The blocks of every open video, shared by all its viewers: one read and one allocation per
//! block however many viewers play it, least recently used evicted past `vod.cache_bytes`.
//!
//! A viewer asking for a block that is not cached starts its read on the blocking pool and
//! waits on a `watch` channel; viewers asking meanwhile wait on the same channel, so viewers
//! near the same position share one read. Waiting is cancel-safe: the read belongs to the
//! cache, not to the first viewer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::index::VodFrame;
use crate::metrics::Metrics;

/// A block's frames once read, or why the read failed.
pub type Loaded = Result<Arc<Vec<VodFrame>>, Arc<str>>;

/// Which block: the open video's generation (a video opened again after its linger gets a
/// new one, so a replaced file never serves stale blocks) and the block number.
pub type BlockKey = (u64, u32);

struct Slot {
    rx: watch::Receiver<Option<Loaded>>,
    cost: usize,
    last_use: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<BlockKey, Slot>,
    used: usize,
    tick: u64,
}

/// See the [module docs](self).
pub struct BlockCache {
    cap: usize,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl BlockCache {
    pub fn new(cap: usize, metrics: Arc<Metrics>, tasks: TaskTracker) -> Self {
        BlockCache {
            cap,
            inner: Mutex::default(),
            metrics,
            tasks,
        }
    }

    /// The block `key`, read by `load` on the blocking pool if no one has it yet. `cost` is
    /// what it will hold in memory.
    pub fn get<F>(
        self: &Arc<Self>,
        key: BlockKey,
        cost: usize,
        load: F,
    ) -> watch::Receiver<Option<Loaded>>
    where
        F: FnOnce() -> Loaded + Send + 'static,
    {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(slot) = inner.slots.get_mut(&key) {
            slot.last_use = tick;
            Metrics::inc(&self.metrics.vod_cache_hits);
            return slot.rx.clone();
        }
        Metrics::inc(&self.metrics.vod_cache_misses);
        let (tx, rx) = watch::channel(None);
        inner.slots.insert(
            key,
            Slot {
                rx: rx.clone(),
                cost,
                last_use: tick,
            },
        );
        inner.used += cost;
        self.evict(&mut inner, key);
        self.metrics
            .vod_cache_bytes
            .store(inner.used as u64, Ordering::Relaxed);
        drop(inner);
        let cache = self.clone();
        self.tasks.spawn_blocking(move || {
            let loaded = load();
            if loaded.is_err() {
                // A failed read is not kept: the next viewer tries again.
                cache.remove_if(|k| *k == key);
            }
            let _ = tx.send(Some(loaded));
        });
        rx
    }

    /// Drops every block of generation `generation` (its video is closed).
    pub fn remove_generation(&self, generation: u64) {
        self.remove_if(|k| k.0 == generation);
    }

    fn remove_if(&self, pred: impl Fn(&BlockKey) -> bool) {
        let mut inner = self.lock();
        let doomed: Vec<BlockKey> = inner.slots.keys().filter(|k| pred(k)).copied().collect();
        for key in doomed {
            if let Some(slot) = inner.slots.remove(&key) {
                inner.used -= slot.cost;
            }
        }
        self.metrics
            .vod_cache_bytes
            .store(inner.used as u64, Ordering::Relaxed);
    }

    /// Least recently used first, never the block just asked for. Viewers holding an evicted
    /// block keep it until they are done with it; the cap bounds what the cache holds.
    fn evict(&self, inner: &mut Inner, keep: BlockKey) {
        while inner.used > self.cap {
            let Some(oldest) = inner
                .slots
                .iter()
                .filter(|(k, _)| **k != keep)
                .min_by_key(|(_, s)| s.last_use)
                .map(|(k, _)| *k)
            else {
                return;
            };
            if let Some(slot) = inner.slots.remove(&oldest) {
                inner.used -= slot.cost;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    async fn value(mut rx: watch::Receiver<Option<Loaded>>) -> Loaded {
        rx.wait_for(Option::is_some).await.unwrap().clone().unwrap()
    }

    #[tokio::test]
    async fn viewers_asking_for_one_block_share_one_read_and_one_allocation() {
        let metrics = Arc::new(Metrics::default());
        let cache = Arc::new(BlockCache::new(1000, metrics.clone(), TaskTracker::new()));
        let loads = Arc::new(AtomicUsize::new(0));
        let get = |key| {
            let loads = loads.clone();
            cache.get(key, 100, move || {
                loads.fetch_add(1, Ordering::SeqCst);
                // Slow enough that the second viewer asks while the first read runs.
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(Arc::new(Vec::new()))
            })
        };
        let (a, b) = (get((1, 0)), get((1, 0)));
        let (a, b) = (value(a).await.unwrap(), value(b).await.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.vod_cache_hits.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.vod_cache_misses.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.vod_cache_bytes.load(Ordering::Relaxed), 100);
    }

    #[tokio::test]
    async fn the_least_recently_used_block_goes_past_the_cap_and_failures_are_not_kept() {
        let metrics = Arc::new(Metrics::default());
        let cache = Arc::new(BlockCache::new(250, metrics.clone(), TaskTracker::new()));
        let loads = Arc::new(AtomicUsize::new(0));
        let get = |key: BlockKey, fail: bool| {
            let loads = loads.clone();
            cache.get(key, 100, move || {
                loads.fetch_add(1, Ordering::SeqCst);
                if fail {
                    Err(Arc::from("disk on fire"))
                } else {
                    Ok(Arc::new(Vec::new()))
                }
            })
        };
        value(get((1, 0), false)).await.unwrap();
        value(get((1, 1), false)).await.unwrap();
        value(get((1, 0), false)).await.unwrap(); // (1, 1) is now the oldest
        value(get((1, 2), false)).await.unwrap(); // 300 > 250: (1, 1) goes
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        assert_eq!(metrics.vod_cache_bytes.load(Ordering::Relaxed), 200);
        value(get((1, 0), false)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3, "(1, 0) stayed");
        value(get((1, 1), false)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 4, "(1, 1) was read again");

        assert!(value(get((2, 0), true)).await.is_err());
        assert!(
            value(get((2, 0), false)).await.is_ok(),
            "a failed read is retried"
        );
        cache.remove_generation(1);
        assert_eq!(metrics.vod_cache_bytes.load(Ordering::Relaxed), 100);
    }
}
