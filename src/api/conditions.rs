//! metav1.Condition bookkeeping with Kubernetes semantics: `lastTransitionTime` moves only when the
//! status flips, so rewriting the same conditions is a no-op and cannot trigger a status write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types the operator sets.
pub mod types {
    pub const READY: &str = "Ready";
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    pub const SERVICE_PRINCIPAL_READY: &str = "ServicePrincipalReady";
    pub const JOBS_RUNNING: &str = "JobsRunning";
    pub const DEGRADED: &str = "Degraded";
    pub const SUSPENDED: &str = "Suspended";
    pub const SCHEMA_APPLIED: &str = "SchemaApplied";
}

/// The parts of a condition the operator decides; times and generation are filled in on merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status, reason: reason.into(), message: message.into() }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Merges `desired` into `current`: a condition whose status is unchanged keeps its
/// `lastTransitionTime`; the others get `now`. Conditions of other types are kept, in order.
pub fn merge(current: &[Condition], desired: &[Desired], generation: Option<i64>, now: Timestamp) -> Vec<Condition> {
    let mut out: Vec<Condition> = current.to_vec();
    for d in desired {
        let status = status_str(d.status).to_string();
        match out.iter_mut().find(|c| c.type_ == d.type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Time(now);
                }
                c.status = status;
                c.reason.clone_from(&d.reason);
                c.message.clone_from(&d.message);
                c.observed_generation = generation;
            }
            None => out.push(Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time: Time(now),
            }),
        }
    }
    out
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition exists with status "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid timestamp")
    }

    #[test]
    fn new_condition_gets_now_and_generation() {
        let out = merge(&[], &[Desired::new(types::READY, false, "Reconciling", "working")], Some(3), t(100));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, "False");
        assert_eq!(out[0].observed_generation, Some(3));
        assert_eq!(out[0].last_transition_time, Time(t(100)));
    }

    #[test]
    fn unchanged_status_keeps_transition_time_but_updates_message() {
        let first = merge(&[], &[Desired::new(types::READY, false, "A", "one")], Some(1), t(100));
        let second = merge(&first, &[Desired::new(types::READY, false, "B", "two")], Some(2), t(200));
        assert_eq!(second[0].last_transition_time, Time(t(100)));
        assert_eq!(second[0].reason, "B");
        assert_eq!(second[0].message, "two");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let first = merge(&[], &[Desired::new(types::READY, false, "A", "")], Some(1), t(100));
        let second = merge(&first, &[Desired::new(types::READY, true, "Ready", "")], Some(1), t(200));
        assert_eq!(second[0].status, "True");
        assert_eq!(second[0].last_transition_time, Time(t(200)));
    }

    #[test]
    fn identical_merge_is_a_fixed_point() {
        let d = [Desired::new(types::READY, true, "Ready", "ok"), Desired::new(types::DEGRADED, false, "Healthy", "")];
        let first = merge(&[], &d, Some(1), t(100));
        let second = merge(&first, &d, Some(1), t(999));
        assert_eq!(first, second);
    }

    #[test]
    fn other_types_are_kept_in_place() {
        let first = merge(&[], &[Desired::new("Custom", true, "X", "")], None, t(1));
        let second = merge(&first, &[Desired::new(types::READY, true, "Ready", "")], None, t(2));
        assert_eq!(second.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Custom", "Ready"]);
        assert!(is_true(&second, types::READY));
        assert!(!is_true(&second, types::DEGRADED));
    }
}
