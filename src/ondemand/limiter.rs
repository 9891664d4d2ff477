//! The service's limit for provisionOnDemand: 5 calls per 10 seconds (reference §3), per job as
//! the service counts it; the operator keys it by service principal, which is at least as strict.
//!
//! Hand-written rather than `governor`: GCRA expresses "n per period with a burst", which either
//! lets a 6th call into a 10 s window (burst 5 plus replenishment) or spaces every call 2 s apart
//! (burst 1). A sliding log of the last five send times is exact and is a few lines.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const LIMIT: usize = 5;
/// The service's 10 s, plus a margin: the service counts arrivals, we count departures, and a
/// call that leaves later can arrive sooner than the one before it.
pub const WINDOW: Duration = Duration::from_millis(11_000);

#[derive(Default)]
pub struct OnDemandLimiter {
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl OnDemandLimiter {
    /// Takes a slot for `key` now, or says how long until one is free.
    pub fn try_take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let log = sent.entry(key.to_string()).or_default();
        while log.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            log.pop_front();
        }
        if log.len() >= LIMIT {
            let oldest = log.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        log.push_back(now);
        Ok(())
    }

    /// Waits for a slot. Waits are short (under 10 s), so a worker waits rather than requeues:
    /// a requeue would let a later request overtake.
    pub async fn take(&self, key: &str) {
        loop {
            match self.try_take(key, Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(10))).await,
            }
        }
    }

    /// A 429 from the service: its count differs from ours (another client, another replica),
    /// so no slot is free until `wait` has passed.
    pub fn hold(&self, key: &str, wait: Duration, now: Instant) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let log = sent.entry(key.to_string()).or_default();
        log.clear();
        let at = (now + wait).checked_sub(WINDOW).unwrap_or(now);
        log.extend(std::iter::repeat_n(at, LIMIT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_ten_seconds_in_any_window_per_key() {
        let l = OnDemandLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(l.try_take("sp", t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = l.try_take("sp", t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(5));
        assert!(WINDOW >= Duration::from_secs(10), "never looser than the service");
        assert!(l.try_take("other", t0).is_ok(), "another service principal has its own budget");
        assert!(l.try_take("sp", t0 + WINDOW).is_ok(), "the first call left the window");
        assert!(l.try_take("sp", t0 + WINDOW).is_err());
    }

    #[test]
    fn a_429_holds_the_key_for_its_retry_after() {
        let l = OnDemandLimiter::default();
        let t0 = Instant::now();
        l.hold("sp", Duration::from_secs(3), t0);
        assert!(l.try_take("sp", t0 + Duration::from_secs(2)).is_err());
        assert!(l.try_take("sp", t0 + Duration::from_secs(3)).is_ok(), "free once Retry-After has passed");
    }
}
