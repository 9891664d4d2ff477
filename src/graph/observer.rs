//! The seam through which HTTP exchanges are measured. Its own module so that both the token
//! cache and the Graph sender can report without importing each other; metrics implement it
//! outside `graph/`.

use std::time::Duration;

/// Receives one sample per HTTP exchange (metrics live outside this module).
pub trait Observer: Send + Sync {
    /// `status` is None when no answer came (timeout, connection error).
    fn response(&self, operation: &'static str, status: Option<u16>, elapsed: Duration);
    /// An answer that asked us to slow down (429, or 503 with Retry-After).
    fn throttled(&self, operation: &'static str);
    /// Time slept because the service sent Retry-After.
    fn retry_after_wait(&self, operation: &'static str, wait: Duration);
}

/// For clients built without metrics.
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    fn response(&self, _: &'static str, _: Option<u16>, _: Duration) {}
    fn throttled(&self, _: &'static str) {}
    fn retry_after_wait(&self, _: &'static str, _: Duration) {}
}
