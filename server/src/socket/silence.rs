//! When a quiet client counts as gone: the time of its last frame against the
//! heartbeat timeout, as plain logic with time as an input so that it is
//! tested without waiting.

use std::time::{Duration, Instant};

/// A connection's silence allowance: any frame (a heartbeat, a pose, a chat)
/// proves the client is there; none for `limit` means it is not.
#[derive(Debug, Clone, Copy)]
pub(super) struct SilenceLimit {
    last_frame: Instant,
    limit: Duration,
}

impl SilenceLimit {
    /// A connection that was last heard from `now`.
    pub(super) fn new(now: Instant, limit: Duration) -> SilenceLimit {
        SilenceLimit {
            last_frame: now,
            limit,
        }
    }

    /// A frame arrived at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_frame = self.last_frame.max(now);
    }

    /// When the client counts as gone unless another frame arrives first.
    pub(super) fn deadline(&self) -> Instant {
        self.last_frame + self.limit
    }

    /// True once the client has been quiet for the whole limit.
    pub(super) fn expired(&self, now: Instant) -> bool {
        now >= self.deadline()
    }

    pub(super) fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_quiet_client_expires_exactly_at_the_limit() {
        let start = Instant::now();
        let silence = SilenceLimit::new(start, LIMIT);
        assert_eq!(silence.deadline(), start + LIMIT);
        assert!(!silence.expired(start));
        assert!(!silence.expired(start + LIMIT - Duration::from_millis(1)));
        assert!(silence.expired(start + LIMIT));
        assert!(silence.expired(start + LIMIT * 3));
    }

    #[test]
    fn every_frame_moves_the_deadline() {
        let start = Instant::now();
        let mut silence = SilenceLimit::new(start, LIMIT);
        // A client heard every 30 s, as phoenix.js heartbeats, never expires.
        for beat in 1..=10u32 {
            let now = start + Duration::from_secs(30) * beat;
            assert!(!silence.expired(now), "beat {beat}");
            silence.heard(now);
            assert_eq!(silence.deadline(), now + LIMIT);
        }
        let last = start + Duration::from_secs(300);
        assert!(!silence.expired(last + LIMIT - Duration::from_secs(1)));
        assert!(silence.expired(last + LIMIT));
    }

    #[test]
    fn a_timer_that_fires_early_sees_the_moved_deadline() {
        // The connection arms one timer for the first deadline and, when it
        // fires, re-arms it for the deadline frames have moved it to.
        let start = Instant::now();
        let mut silence = SilenceLimit::new(start, LIMIT);
        let armed = silence.deadline();
        silence.heard(start + Duration::from_secs(45));
        assert!(!silence.expired(armed), "a frame came after arming");
        assert_eq!(silence.deadline(), start + Duration::from_secs(105));
    }

    #[test]
    fn a_frame_stamped_out_of_order_does_not_shorten_the_allowance() {
        let start = Instant::now();
        let mut silence = SilenceLimit::new(start, LIMIT);
        silence.heard(start + Duration::from_secs(20));
        silence.heard(start + Duration::from_secs(10));
        assert_eq!(silence.deadline(), start + Duration::from_secs(80));
    }
}
