//! Limits that keep one visitor, address or room from taking the server from
//! everyone else: token buckets (time is an input, so the arithmetic is tested
//! without sleeping), buckets kept per key (an IP address as [`address_key`]
//! counts it, a user), and counts of what is open per key, released when the
//! guard is dropped.
//!
//! [`Limits`] holds the server-wide ones; per-connection buckets live in each
//! connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Config;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there (zero when one is).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }

    /// True when the bucket is full again: it can be forgotten.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

/// A token bucket per key (say, per IP address), made on first use; full
/// buckets are forgotten now and then so the map cannot grow without bound.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

/// Keys kept before full buckets are swept out.
const SWEEP_ABOVE: usize = 4096;

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// `count` per `period`, all of which may be used at once.
    pub fn per_period(count: u32, period: Duration) -> KeyedBuckets<K> {
        KeyedBuckets {
            per_second: f64::from(count) / period.as_secs_f64(),
            burst: f64::from(count),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when `key` may act now, else how long until it may.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.per_second, self.burst, now));
        if bucket.take(now) {
            Ok(())
        } else {
            Err(bucket.wait(now))
        }
    }
}

/// How many of something (sockets) each key holds open, up to a maximum.
#[derive(Debug)]
pub struct Occupancy<K: Hash + Eq> {
    max: u32,
    open: Arc<Mutex<HashMap<K, u32>>>,
}

/// One held place; dropping it gives the place back.
#[derive(Debug)]
pub struct Place<K: Hash + Eq> {
    key: Option<K>,
    open: Arc<Mutex<HashMap<K, u32>>>,
}

impl<K: Hash + Eq + Clone> Occupancy<K> {
    pub fn new(max: u32) -> Occupancy<K> {
        Occupancy {
            max,
            open: Arc::default(),
        }
    }

    /// A place for `key`, or `None` when it already holds the maximum.
    pub fn enter(&self, key: K) -> Option<Place<K>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Place {
            key: Some(key),
            open: self.open.clone(),
        })
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// How many places `key` holds now.
    pub fn held(&self, key: &K) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq> Drop for Place<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// The key a peer address is counted under: an IPv4 address as it is (also
/// when it arrives IPv4-mapped on an IPv6 socket), an IPv6 address by its /64
/// prefix, since one host is usually handed a whole /64 and could otherwise
/// take a fresh address for every connection.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The server-wide limits, from the configuration.
#[derive(Debug)]
pub struct Limits {
    /// Socket tokens issued per IP address.
    pub tokens_per_ip: KeyedBuckets<IpAddr>,
    /// Rooms created per IP address.
    pub rooms_per_ip: KeyedBuckets<IpAddr>,
    /// Open sockets per IP address.
    pub sockets_per_ip: Occupancy<IpAddr>,
    /// Open sockets per user id.
    pub sockets_per_user: Occupancy<String>,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            tokens_per_ip: KeyedBuckets::per_period(
                config.tokens_per_minute,
                Duration::from_secs(60),
            ),
            rooms_per_ip: KeyedBuckets::per_period(
                config.rooms_per_hour,
                Duration::from_secs(60 * 60),
            ),
            sockets_per_ip: Occupancy::new(config.sockets_per_ip),
            sockets_per_user: Occupancy::new(config.sockets_per_user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, start);
        let allowed = (0..20).filter(|_| bucket.take(start)).count();
        assert_eq!(allowed, 5, "burst");
        let later = start + Duration::from_millis(1000);
        let allowed = (0..20).filter(|_| bucket.take(later)).count();
        assert_eq!(allowed, 5, "refilled to the burst, not beyond");
        let a_bit_later = later + Duration::from_millis(300);
        let allowed = (0..20).filter(|_| bucket.take(a_bit_later)).count();
        assert_eq!(allowed, 3, "10 per second for 0.3 s");
        assert!(bucket.wait(a_bit_later) > Duration::ZERO);
    }

    #[test]
    fn keyed_buckets_keep_keys_apart_and_say_how_long_to_wait() {
        let start = Instant::now();
        let buckets = KeyedBuckets::per_period(2, Duration::from_secs(60));
        assert!(buckets.take(&"a", start).is_ok());
        assert!(buckets.take(&"a", start).is_ok());
        let wait = buckets.take(&"a", start).unwrap_err();
        assert!((29..=31).contains(&wait.as_secs()), "{wait:?}");
        assert!(buckets.take(&"b", start).is_ok(), "another key has its own");
        assert!(buckets.take(&"a", start + Duration::from_secs(31)).is_ok());
    }

    #[test]
    fn addresses_count_by_host_v4_and_by_prefix_v6() {
        let key = |text: &str| address_key(text.parse().unwrap()).to_string();
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn places_are_given_back_when_dropped() {
        let occupancy = Occupancy::new(2);
        let first = occupancy.enter("ip");
        let second = occupancy.enter("ip");
        assert!(first.is_some() && second.is_some());
        assert!(occupancy.enter("ip").is_none());
        assert!(occupancy.enter("other").is_some());
        drop(first);
        assert_eq!(occupancy.held(&"ip"), 1);
        assert!(occupancy.enter("ip").is_some());
    }
}
