//! `rtmp.max_connections` and `rtmp.max_connections_per_address`: RTMP connections open at
//! once, in total and per client address. RTMP has no way to say "busy" before the client
//! asks to publish or play, so a connection past a cap is counted, let that far, refused
//! with an onStatus naming the cap, and closed. A reload may change the caps; connections
//! already open stay.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::metrics::RtmpRefusal;

/// The open RTMP connections, counted against the caps.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: AtomicUsize,
    max_per_address: AtomicUsize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Place {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl ConnectionLimits {
    /// The caps of `rtmp`.
    pub fn of(rtmp: &crate::config::RtmpConfig) -> Arc<Self> {
        Self::new(rtmp.max_connections, rtmp.max_connections_per_address)
    }

    /// Caps of `max_total` and `max_per_address` (0: no cap).
    pub(super) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total: AtomicUsize::new(max_total),
            max_per_address: AtomicUsize::new(max_per_address),
            open: Mutex::default(),
        })
    }

    /// Takes `rtmp`'s caps for connections accepted from now on.
    pub fn set(&self, rtmp: &crate::config::RtmpConfig) {
        self.max_total
            .store(rtmp.max_connections, Ordering::Relaxed);
        self.max_per_address
            .store(rtmp.max_connections_per_address, Ordering::Relaxed);
    }

    /// What a client refused for `why` is told.
    pub(super) fn describe(&self, why: RtmpRefusal) -> String {
        match why {
            RtmpRefusal::Total => format!(
                "the server is full: it has its maximum of {} RTMP connections; retry later",
                self.max_total.load(Ordering::Relaxed)
            ),
            RtmpRefusal::PerAddress => format!(
                "too many RTMP connections from your address (its maximum is {}); retry later",
                self.max_per_address.load(Ordering::Relaxed)
            ),
            RtmpRefusal::Descriptors => "the server is out of connections; retry later".into(),
        }
    }

    /// Takes a place for a connection from `ip`, or says which cap is reached.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Place, RtmpRefusal> {
        let address = address_key(ip);
        let (max_total, max_per_address) = (
            self.max_total.load(Ordering::Relaxed),
            self.max_per_address.load(Ordering::Relaxed),
        );
        let mut open = self.open.lock();
        if max_total > 0 && open.total >= max_total {
            return Err(RtmpRefusal::Total);
        }
        let from_here = open.per_address.get(&address).copied().unwrap_or(0);
        if max_per_address > 0 && from_here >= max_per_address {
            return Err(RtmpRefusal::PerAddress);
        }
        open.total += 1;
        *open.per_address.entry(address).or_default() += 1;
        Ok(Place {
            limits: self.clone(),
            address,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.per_address.remove(&self.address);
            }
        }
    }
}

/// What counts as one address: an IPv4 address (also when mapped into IPv6), or an IPv6
/// client's /64, which one host commonly has whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_total_and_free_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(RtmpRefusal::PerAddress));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(RtmpRefusal::Total));
        assert!(
            limits
                .describe(RtmpRefusal::Total)
                .contains("maximum of 3 RTMP connections"),
            "the refusal names the cap"
        );
        drop(a1);
        let _a3 = limits
            .admit(a)
            .expect("a closed connection frees its place");
        limits.set(&crate::config::RtmpConfig {
            max_connections: 0,
            max_connections_per_address: 0,
            ..Default::default()
        });
        assert!(limits.admit(a).is_ok(), "a reload lifts the caps");
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_zero_means_no_cap() {
        let limits = ConnectionLimits::new(0, 1);
        let _one = limits.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("2001:db8::2".parse().unwrap()).err(),
            Some(RtmpRefusal::PerAddress)
        );
        let open = ConnectionLimits::new(0, 0);
        let many: Vec<_> = (0..100)
            .map(|_| open.admit("127.0.0.1".parse().unwrap()))
            .collect();
        assert!(many.iter().all(Result::is_ok));
    }
}
