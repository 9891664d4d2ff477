//! Service time and the timestamp formats Graph and the identity platform use on the wire.
//!
//! The simulated directory runs `speed` times faster than the wall clock so a test can watch a job
//! go through many two-minute cycles in a fraction of a second. Protocol timers that a client
//! measures with its own clock (token expiry, `Retry-After`, injected latency) stay in real time.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// `DateTimeOffset.MinValue`, which the synchronization service prints for "never".
pub const SENTINEL: &str = "0001-01-01T00:00:00Z";

/// A clock whose time advances `speed` times faster than real time, starting at the real "now".
#[derive(Debug, Clone)]
pub struct Clock {
    origin_wall: Timestamp,
    origin: Instant,
    speed: f64,
}

impl Clock {
    pub fn new(speed: f64) -> Self {
        Self { origin_wall: Timestamp::now(), origin: Instant::now(), speed }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The current service time. Monotonic, because it derives from `Instant`.
    pub fn now(&self) -> Timestamp {
        let secs = self.origin.elapsed().as_secs_f64() * self.speed;
        let elapsed = SignedDuration::try_from_secs_f64(secs).unwrap_or(SignedDuration::MAX);
        self.origin_wall.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }
}

/// Synchronization timestamps carry 7 fractional digits (.NET ticks).
pub fn fmt7(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.7fZ").to_string()
}

/// Directory timestamps (`createdDateTime`, `onPremisesLastSyncDateTime`) have whole seconds.
pub fn fmt_secs(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `innerError.date` has no offset and no fraction, e.g. `2026-07-14T00:17:15`.
pub fn inner_error_date(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// IMF-fixdate for the `Date` header.
pub fn http_date(ts: Timestamp) -> String {
    ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The identity platform's `timestamp` field, e.g. `2026-11-26 12:00:00Z`.
pub fn aad_timestamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `ts + secs`, saturating instead of failing at the end of the representable range.
pub fn plus_secs(ts: Timestamp, secs: i64) -> Timestamp {
    ts.checked_add(SignedDuration::from_secs(secs)).unwrap_or(Timestamp::MAX)
}

/// `ts + secs` for fractional seconds (fault windows are configured as floats).
pub fn plus_secs_f64(ts: Timestamp, secs: f64) -> Timestamp {
    let d = SignedDuration::try_from_secs_f64(secs).unwrap_or(SignedDuration::MAX);
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let ts: Timestamp = "2026-11-26T12:00:00.123456789Z".parse().unwrap();
        assert_eq!(fmt7(ts), "2026-11-26T12:00:00.1234567Z");
        assert_eq!(fmt_secs(ts), "2026-11-26T12:00:00Z");
        assert_eq!(inner_error_date(ts), "2026-11-26T12:00:00");
        assert_eq!(http_date(ts), "Thu, 26 Nov 2026 12:00:00 GMT");
        assert_eq!(aad_timestamp(ts), "2026-11-26 12:00:00Z");
        let whole: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        assert_eq!(fmt7(whole), "2026-11-26T12:00:00.0000000Z");
    }

    #[test]
    fn speed_accelerates() {
        let clock = Clock::new(1000.0);
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = clock.now();
        assert!(b.duration_since(a).as_secs_f64() >= 19.0);
    }
}
