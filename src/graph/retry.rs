//! When to try a failed Graph call again, and after how long: `Retry-After` exactly, exponential
//! backoff with jitter for transient failures of calls that are safe to repeat, and the short
//! 401/403/404 window after a creation (reference §1.3, §4). Pure: the sender does the waiting.

use std::time::Duration;

use super::error::{Cause, ErrorKind, GraphError, Source};

/// Retry limits. Waits longer than `max_inline_wait` are not slept inside a call: the error goes
/// back with its `retry_after` so the controller requeues the profile at that time and the worker
/// is free meanwhile.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub max_inline_wait: Duration,
    /// Attempts for 401/403/404 on calls flagged as racing a fresh creation.
    pub eventual_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_inline_wait: Duration::from_secs(30),
            eventual_attempts: 5,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Retry(Duration),
    Fail,
}

/// Pure retry decision for attempt number `attempt` (0-based) that failed with `err`. `jitter`
/// in [0, 1) spreads backoffs so that many profiles do not retry in lockstep.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    err: &GraphError,
    idempotent: bool,
    eventual: bool,
    jitter: f64,
) -> Decision {
    // A success whose body cannot be used (too large, not JSON) is what the service answers:
    // asking again at once reads the same, and for an answer over the cap reads it all again.
    if attempt + 1 >= policy.max_attempts || err.cause == Cause::UnusableAnswer {
        return Decision::Fail;
    }
    let backoff = || {
        let exp = policy.base_backoff.saturating_mul(2u32.saturating_pow(attempt)).min(policy.max_backoff);
        // Equal jitter: at least half the backoff, so a retry is never immediate.
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    };
    match err.kind {
        // 429 and 503 say the request was not processed (HTTP semantics; Microsoft's SDKs retry
        // both for every method), so even a POST is repeated after Retry-After.
        ErrorKind::Throttled => match err.retry_after {
            // Exactly what the service asked for: earlier is an early retry, later wastes time.
            Some(wait) if wait <= policy.max_inline_wait => Decision::Retry(wait),
            Some(_) => Decision::Fail,
            None => Decision::Retry(backoff()),
        },
        // A request the service certainly did not process is safe to repeat even if it is a POST.
        ErrorKind::Transient if idempotent || err.not_processed() => Decision::Retry(backoff()),
        ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::Unauthorized
            if eventual && err.source == Source::Graph && attempt + 1 < policy.eventual_attempts =>
        {
            Decision::Retry(backoff())
        }
        _ => Decision::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, retry_after: Option<u64>) -> GraphError {
        GraphError {
            kind,
            source: Source::Graph,
            cause: Cause::ErrorStatus,
            operation: "t",
            status: Some(if kind == ErrorKind::Throttled { 429 } else { 500 }),
            code: None,
            message: String::new(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn an_unusable_success_is_not_asked_again() {
        let p = RetryPolicy::default();
        let e = GraphError::unusable_answer("jobs.list", Source::Graph, 200, None, "too large".into());
        assert_eq!(decide(&p, 0, &e, true, true, 0.5), Decision::Fail);
        let interrupted =
            GraphError { status: Some(200), ..GraphError::transport("jobs.list", Cause::Interrupted, String::new()) };
        assert!(
            matches!(decide(&p, 0, &interrupted, true, false, 0.5), Decision::Retry(_)),
            "a broken body is read again"
        );
    }

    #[test]
    fn retry_after_is_honoured_exactly_without_jitter() {
        let p = RetryPolicy::default();
        for jitter in [0.0, 0.5, 0.99] {
            assert_eq!(
                decide(&p, 0, &err(ErrorKind::Throttled, Some(7)), false, false, jitter),
                Decision::Retry(Duration::from_secs(7))
            );
        }
    }

    #[test]
    fn a_post_is_repeated_after_429_or_503_but_not_after_other_5xx() {
        let p = RetryPolicy::default();
        let mut e = err(ErrorKind::Throttled, Some(1));
        for status in [429, 503] {
            e.status = Some(status);
            assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Retry(Duration::from_secs(1)), "{status}");
        }
        // A 503 without Retry-After is transient, but it still says "not processed".
        let mut e = err(ErrorKind::Transient, None);
        e.status = Some(503);
        assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Retry(Duration::from_millis(250)));
        for status in [500, 502, 504] {
            e.status = Some(status);
            assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Fail, "{status}");
        }
    }

    #[test]
    fn long_retry_after_goes_back_to_the_controller() {
        let p = RetryPolicy::default();
        assert_eq!(decide(&p, 0, &err(ErrorKind::Throttled, Some(120)), true, false, 0.3), Decision::Fail);
    }

    #[test]
    fn transient_errors_retry_only_idempotent_calls_with_growing_jittered_backoff() {
        let p = RetryPolicy::default();
        let e = err(ErrorKind::Transient, None);
        assert_eq!(decide(&p, 0, &e, false, false, 0.5), Decision::Fail, "a POST may have been applied");
        let Decision::Retry(first) = decide(&p, 0, &e, true, false, 0.0) else { panic!() };
        let Decision::Retry(third) = decide(&p, 2, &e, true, false, 0.0) else { panic!() };
        assert_eq!(first, Duration::from_millis(250));
        assert_eq!(third, Duration::from_millis(1000));
        let Decision::Retry(jittered) = decide(&p, 2, &e, true, false, 0.99) else { panic!() };
        assert!(jittered > third && jittered < Duration::from_millis(2000));
        assert_eq!(decide(&p, p.max_attempts - 1, &e, true, false, 0.0), Decision::Fail);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy { max_attempts: 50, ..RetryPolicy::default() };
        let Decision::Retry(w) = decide(&p, 40, &err(ErrorKind::Transient, None), true, false, 0.99) else { panic!() };
        assert!(w <= p.max_backoff);
    }

    #[test]
    fn a_post_is_repeated_only_when_it_never_reached_graph() {
        let p = RetryPolicy::default();
        let connect = GraphError::transport("t", Cause::Connect, "refused".into());
        assert!(matches!(decide(&p, 0, &connect, false, false, 0.0), Decision::Retry(_)));
        let timeout = GraphError::transport("t", Cause::Timeout, "slow".into());
        assert_eq!(
            decide(&p, 0, &timeout, false, false, 0.0),
            Decision::Fail,
            "a timed-out POST may have been applied"
        );
        let broken = GraphError::transport("t", Cause::Interrupted, "reset".into());
        assert_eq!(decide(&p, 0, &broken, false, false, 0.0), Decision::Fail);
        // The identity platform failed: no token, so the POST was never sent.
        let login = GraphError { source: Source::Login, status: Some(503), ..err(ErrorKind::Transient, None) };
        assert!(matches!(decide(&p, 0, &login, false, false, 0.0), Decision::Retry(_)));
    }

    #[test]
    fn replication_lag_is_retried_only_when_asked() {
        let p = RetryPolicy::default();
        for kind in [ErrorKind::NotFound, ErrorKind::Forbidden, ErrorKind::Unauthorized] {
            assert_eq!(decide(&p, 0, &err(kind, None), true, false, 0.0), Decision::Fail);
            assert!(matches!(decide(&p, 0, &err(kind, None), true, true, 0.0), Decision::Retry(_)));
        }
        assert_eq!(decide(&p, 0, &err(ErrorKind::NeedsUserAction, None), true, true, 0.0), Decision::Fail);
    }
}
