//! Write conflicts on a profile. Status is written with server-side apply (forced) and the
//! finalizer with JSON patches, so a 409 is rare: a write that carries a resourceVersion, or a
//! finalizer patch whose `test` saw a list another client just changed (the apiserver answers
//! 422 for that). Either way the reconcile read a view that is already old, and the right answer
//! is to look again at once, not the failure backoff nor a warning the user would chase.

use std::time::Duration;

use kube::runtime::finalizer;

use crate::reconcile::Error;

/// Retry after a conflict: long enough for the watch to deliver the newer object.
pub fn retry_delay(jitter: f64) -> Duration {
    Duration::from_millis(200).mul_f64(1.0 + jitter.clamp(0.0, 1.0) * 4.0)
}

fn is_conflict_status(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
}

/// A finalizer patch whose `test` operation failed: the finalizers changed under it. The
/// apiserver answers 422 "the server rejected our request due to an error in our request" without
/// causes; an invalid finalizer would name its field in the causes.
fn is_stale_finalizer_test(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.details.as_ref().is_none_or(|d| d.causes.is_empty()))
}

/// Whether the reconcile failed only because what it wrote had changed since it read it.
pub fn is_conflict(error: &Error) -> bool {
    match error {
        Error::Kube(e) => is_conflict_status(e),
        Error::Finalizer(f) => match f.as_ref() {
            finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => is_conflict(inner),
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                is_conflict_status(e) || is_stale_finalizer_test(e)
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure(message, reason).with_code(code)))
    }

    fn conflict() -> kube::Error {
        status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on cloudsyncprofiles.cloudsync.io \"p\": the object has been modified",
        )
    }

    #[test]
    fn a_conflict_anywhere_in_the_reconcile_is_one() {
        assert!(is_conflict(&Error::Kube(conflict())));
        assert!(is_conflict(&Error::Finalizer(Box::new(finalizer::Error::AddFinalizer(conflict())))));
        assert!(is_conflict(&Error::Finalizer(Box::new(finalizer::Error::RemoveFinalizer(conflict())))));
        assert!(is_conflict(&Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(Error::Kube(conflict()))))));
        // As kube-apiserver 1.35 answers a failed `test` (tests/integration/outage.rs).
        let stale_test = status(422, "Invalid", "the server rejected our request due to an error in our request");
        assert!(is_conflict(&Error::Finalizer(Box::new(finalizer::Error::RemoveFinalizer(stale_test)))));
        let invalid: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 422, "reason": "Invalid", "message": "metadata.finalizers[0]: Invalid value",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value", "field": "metadata.finalizers[0]"}]},
        }))
        .expect("a Status");
        let invalid = kube::Error::Api(Box::new(invalid));
        assert!(!is_conflict(&Error::Finalizer(Box::new(finalizer::Error::AddFinalizer(invalid)))), "names a field");
    }

    #[test]
    fn other_failures_are_not() {
        assert!(!is_conflict(&Error::Kube(status(409, "AlreadyExists", "exists"))));
        assert!(!is_conflict(&Error::Kube(status(422, "Invalid", "spec.domain: Invalid value"))));
        assert!(!is_conflict(&Error::Kube(status(500, "InternalError", "etcd"))));
        assert!(!is_conflict(&Error::Waiting("x".into())));
        assert!(!is_conflict(&Error::Finalizer(Box::new(finalizer::Error::UnnamedObject))));
    }

    #[test]
    fn the_retry_is_quick_and_spread() {
        assert_eq!(retry_delay(0.0), Duration::from_millis(200));
        assert_eq!(retry_delay(1.0), Duration::from_secs(1));
        assert!(retry_delay(0.5) < Duration::from_secs(1));
    }
}
