//! Token buckets for per-connection rate limits. Time is an input, so the
//! arithmetic is tested without sleeping.

use std::time::Instant;

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
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    }
}
