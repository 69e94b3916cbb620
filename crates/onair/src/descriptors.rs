//! Open-file descriptors: the process's limit, raised at start, and the budget that
//! connections draw from so that recordings, the database and served files always find one.
//!
//! Every socket and every open file is a descriptor, and the common default soft limit is
//! 1024. Before this budget, 1100 idle HTTP connections used them all: `accept` failed, the
//! health check stopped answering and the HLS recorder lost segments ("cannot write
//! segment"). Now the soft limit is raised to the hard limit at start, and connections (HTTP
//! and RTMP) are admitted only while the descriptors they may hold fit under the limit less
//! `http.reserved_descriptors`; an HTTP connection counts two, its socket and a file it may
//! be serving (an HLS segment). What the reserve keeps free is for everything else: the
//! recorder's segment and playlist writes, the database's connections, the listeners.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::process::{Resource, Rlimit};
use tracing::{info, warn};

/// The soft limit is raised at most this far even when the hard limit is unlimited.
const MOST: u64 = 1 << 20;

/// Descriptors an HTTP connection may hold: its socket and one file it serves.
pub const PER_HTTP_CONNECTION: usize = 2;
/// Descriptors an RTMP connection holds.
pub const PER_RTMP_CONNECTION: usize = 1;

/// `RLIMIT_NOFILE` before and after [`raise_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (`u64::MAX`: unlimited).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 2²⁰) and says what it was and
/// is. A limit that cannot be raised is kept, with a warning: the budget then follows it.
pub fn raise_limit() -> Limit {
    let current = rustix::process::getrlimit(Resource::Nofile);
    let before = current.current.unwrap_or(u64::MAX);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let target = hard.min(MOST).max(before.min(MOST));
    let soft = if target > before {
        match rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: current.maximum,
            },
        ) {
            Ok(()) => target,
            Err(e) => {
                warn!(error = %e, before, hard, "cannot raise the open-file limit");
                before
            }
        }
    } else {
        before
    };
    Limit { before, soft, hard }
}

/// Descriptors open in this process now, counted in `/proc/self/fd`; `None` where that does
/// not exist.
pub fn open_now() -> Option<usize> {
    // The directory's own descriptor is one of the entries while it is read.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count().saturating_sub(1))
}

/// What connections may hold: the limit less what was open at start less the reserve.
#[derive(Debug)]
pub struct Descriptors {
    budget: usize,
    used: AtomicUsize,
}

impl Descriptors {
    /// Raises the limit, counts what is open and sets the budget, keeping `reserve` free.
    /// Logs the figures once.
    pub fn at_start(reserve: usize) -> Arc<Descriptors> {
        let limit = raise_limit();
        // Where descriptors cannot be counted, assume a server's usual handful at start.
        let open = open_now().unwrap_or(64);
        let soft = usize::try_from(limit.soft).unwrap_or(usize::MAX);
        let budget = soft.saturating_sub(open).saturating_sub(reserve);
        let hard = (limit.hard != u64::MAX).then_some(limit.hard);
        if limit.soft > limit.before {
            info!(
                from = limit.before,
                to = limit.soft,
                hard,
                open,
                reserve,
                connections = budget / PER_HTTP_CONNECTION,
                "raised the open-file limit"
            );
        } else {
            info!(
                limit = limit.soft,
                hard,
                open,
                reserve,
                connections = budget / PER_HTTP_CONNECTION,
                "open-file limit"
            );
        }
        if budget < 64 * PER_HTTP_CONNECTION {
            warn!(
                limit = limit.soft,
                reserve,
                "the open-file limit leaves room for very few connections; raise it (ulimit -n, LimitNOFILE=)"
            );
        }
        Arc::new(Descriptors::new(budget))
    }

    /// A budget of `budget` descriptors.
    pub fn new(budget: usize) -> Descriptors {
        Descriptors {
            budget,
            used: AtomicUsize::new(0),
        }
    }

    /// Descriptors connections may hold in all.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Descriptors held by connections now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` descriptors if they fit in the budget.
    pub fn try_take(self: &Arc<Self>, n: usize) -> Option<Permit> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.budget).then_some(used + n)
            })
            .ok()
            .map(|_| Permit {
                descriptors: self.clone(),
                n,
            })
    }

    /// Takes `n` descriptors even past the budget: for a connection admitted in place of one
    /// that is being closed, whose descriptors come back a moment later. The reserve
    /// absorbs the overlap.
    pub fn take_anyway(self: &Arc<Self>, n: usize) -> Permit {
        self.used.fetch_add(n, Ordering::AcqRel);
        Permit {
            descriptors: self.clone(),
            n,
        }
    }
}

/// Descriptors held by one connection, given back when it is dropped.
#[derive(Debug)]
pub struct Permit {
    descriptors: Arc<Descriptors>,
    n: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.descriptors.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_towards_the_hard_one_and_never_lowered() {
        let limit = raise_limit();
        assert!(limit.soft >= limit.before);
        assert!(limit.soft <= limit.hard);
        let again = raise_limit();
        assert_eq!(again.before, limit.soft, "the raise holds");
        assert!(open_now().is_some_and(|n| n >= 3), "stdin, stdout, stderr");
    }

    #[test]
    fn permits_fit_the_budget_and_come_back_when_dropped() {
        let fds = Arc::new(Descriptors::new(5));
        let a = fds.try_take(2).unwrap();
        let b = fds.try_take(2).unwrap();
        assert!(fds.try_take(2).is_none(), "4 + 2 > 5");
        let c = fds.try_take(1).unwrap();
        assert_eq!(fds.used(), 5);
        let over = fds.take_anyway(2);
        assert_eq!(fds.used(), 7);
        drop((a, over));
        assert_eq!(fds.used(), 3);
        assert!(fds.try_take(2).is_some());
        drop((b, c));
        assert_eq!(fds.used(), 0);
    }
}
