//! A token bucket, the shape in which Route 53 documents its API limits:
//! `rate` tokens a second flow into a bucket that holds at most `burst`;
//! each request takes one token or, when none is left, is throttled.
//!
//! Time is passed in as seconds since any fixed origin, so the same bucket
//! serves the fault proxy (wall-clock time) and the fleet simulation
//! (virtual time).

/// One bucket: one API action's budget for one account.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date, in seconds.
    updated: f64,
}

impl TokenBucket {
    /// A full bucket at time zero.
    pub fn new(rate: f64, burst: u32) -> Self {
        assert!(rate > 0.0 && burst > 0, "a bucket needs a rate and a size");
        TokenBucket {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            updated: 0.0,
        }
    }

    /// Takes a token at time `now` (seconds); false when the request is to
    /// be throttled. Times earlier than the last one count as the last one.
    pub fn take(&mut self, now: f64) -> bool {
        let now = now.max(self.updated);
        self.tokens = (self.tokens + (now - self.updated) * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The least time, from a full bucket, in which `requests` can all be
    /// admitted: the burst at once, the rest at the rate.
    pub fn minimum_time(&self, requests: u32) -> f64 {
        (f64::from(requests) - self.burst).max(0.0) / self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_admits_its_burst_at_once_then_nothing() {
        let mut bucket = TokenBucket::new(10.0, 50);
        assert!((0..50).all(|_| bucket.take(0.0)));
        assert!(!bucket.take(0.0));
    }

    #[test]
    fn tokens_flow_back_at_the_rate_up_to_the_burst() {
        let mut bucket = TokenBucket::new(10.0, 50);
        (0..50).for_each(|_| assert!(bucket.take(0.0)));
        assert!(!bucket.take(0.05));
        assert!(bucket.take(0.1));
        assert!(!bucket.take(0.1));
        // A long pause refills to the burst, no further.
        let admitted = (0..100).filter(|_| bucket.take(1000.0)).count();
        assert_eq!(admitted, 50);
    }

    #[test]
    fn a_steady_stream_above_the_rate_is_cut_to_the_rate() {
        let mut bucket = TokenBucket::new(5.0, 5);
        // 100 requests a second for 20 seconds.
        let admitted = (0..2000).filter(|n| bucket.take(*n as f64 / 100.0)).count();
        assert!((100..=105).contains(&admitted), "{admitted}");
    }

    #[test]
    fn the_minimum_time_is_what_the_rate_needs_after_the_burst() {
        assert_eq!(TokenBucket::new(10.0, 50).minimum_time(1000), 95.0);
        assert_eq!(TokenBucket::new(5.0, 5).minimum_time(1000), 199.0);
        assert_eq!(TokenBucket::new(10.0, 50).minimum_time(20), 0.0);
    }
}
