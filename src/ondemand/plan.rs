//! Decisions for a ProvisionRequest, without I/O: which job to use, which subject is next, what a
//! lost answer becomes, the overall result, and when a finished request expires.

use std::time::Duration;

use jiff::Timestamp;

use super::scope::{self, Verdict};
use crate::api::conditions::Desired;
use crate::api::{CloudSyncProfile, ProvisionRequest, ProvisionResult, SubjectStatus};
use crate::graph::model::PROVISIONING_TEMPLATE;

pub const COMPLETE: &str = "Complete";
pub const OUT_OF_SCOPE: &str = "OutOfScope";

/// The code recorded for a call whose answer never arrived (a crash or a lost connection after it
/// was sent). It is not sent again: on-demand provisioning writes to the directory.
pub const OUTCOME_UNKNOWN: &str = "OutcomeUnknown";

/// Where the request runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub service_principal: String,
    pub job: String,
}

/// Why the request cannot run yet, or at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
    /// False when waiting cannot help: the request completes with Failure.
    pub may_clear: bool,
}

/// The profile's service principal and provisioning job, or why there is none to use.
pub fn target(profile_name: &str, profile: Option<&CloudSyncProfile>) -> Result<Target, Blocked> {
    let Some(p) = profile else {
        return Err(Blocked {
            reason: "ProfileNotFound",
            message: format!("CloudSyncProfile {profile_name} does not exist in this namespace; waiting for it"),
            may_clear: true,
        });
    };
    if p.metadata.deletion_timestamp.is_some() {
        return Err(Blocked {
            reason: "ProfileDeleting",
            message: format!("CloudSyncProfile {profile_name} is being deleted"),
            may_clear: false,
        });
    }
    let status = p.status.as_ref();
    let sp = status.and_then(|s| s.service_principal.as_ref()).map(|s| s.id.clone());
    let job = status.and_then(|s| s.jobs.iter().find(|j| j.template_id == PROVISIONING_TEMPLATE)).map(|j| j.id.clone());
    match (sp, job) {
        (Some(service_principal), Some(job)) => Ok(Target { service_principal, job }),
        _ => Err(Blocked {
            reason: "ProfileNotReady",
            message: format!(
                "CloudSyncProfile {profile_name} has no {PROVISIONING_TEMPLATE} job yet; waiting until the operator has created it"
            ),
            may_clear: true,
        }),
    }
}

/// One status entry per subject, in order, keeping what is recorded.
pub fn entries(req: &ProvisionRequest) -> Vec<SubjectStatus> {
    let recorded = req.status.as_ref().map(|s| s.subjects.as_slice()).unwrap_or_default();
    (0..req.spec.subjects.len())
        .map(|i| {
            recorded
                .iter()
                .find(|s| s.index as usize == i)
                .cloned()
                .unwrap_or(SubjectStatus { index: i as u32, ..Default::default() })
        })
        .collect()
}

/// Subjects sent whose outcome was never recorded.
pub fn lost(subjects: &[SubjectStatus]) -> Vec<usize> {
    subjects.iter().enumerate().filter(|(_, s)| s.sent.is_some() && s.result.is_none()).map(|(i, _)| i).collect()
}

/// The next subject to send.
pub fn next(subjects: &[SubjectStatus]) -> Option<usize> {
    subjects.iter().position(|s| s.sent.is_none() && s.result.is_none())
}

/// Records a call whose answer is gone as a failure that says what happened.
pub fn mark_unknown(s: &mut SubjectStatus) {
    s.result = Some(ProvisionResult::Failure);
    s.error_code = Some(OUTCOME_UNKNOWN.to_string());
    s.message = Some(
        "the call was sent but its answer was lost (the operator restarted or the connection broke); it is not sent \
         twice. The provisioning logs show what happened; create a new ProvisionRequest to try again"
            .to_string(),
    );
}

/// Success when every subject succeeded or some were skipped, Skipped when all were skipped,
/// Failure when any failed.
pub fn overall(subjects: &[SubjectStatus]) -> ProvisionResult {
    let results: Vec<ProvisionResult> = subjects.iter().map(|s| s.result.unwrap_or(ProvisionResult::Failure)).collect();
    if results.contains(&ProvisionResult::Failure) {
        ProvisionResult::Failure
    } else if results.iter().all(|r| *r == ProvisionResult::Skipped) {
        ProvisionResult::Skipped
    } else {
        ProvisionResult::Success
    }
}

/// The Complete condition of a finished request: its reason is the result.
pub fn completed(req: &ProvisionRequest, subjects: &[SubjectStatus]) -> Desired {
    let result = overall(subjects);
    let n = subjects.len();
    let count = |r: ProvisionResult| subjects.iter().filter(|s| s.result == Some(r)).count();
    let mut message = format!(
        "{} of {n} provisioned, {} skipped, {} failed through {}",
        count(ProvisionResult::Success),
        count(ProvisionResult::Skipped),
        count(ProvisionResult::Failure),
        req.spec.profile
    );
    let failures: Vec<String> = subjects
        .iter()
        .filter(|s| s.result == Some(ProvisionResult::Failure))
        .map(|s| {
            let kind = req.spec.subjects.get(s.index as usize).map(|x| x.kind.object_type_name()).unwrap_or("subject");
            format!("subject {} ({kind}): {}", s.index, s.error_code.as_deref().unwrap_or("no error code given"))
        })
        .collect();
    if !failures.is_empty() {
        message.push_str("; ");
        message.push_str(&failures.join("; "));
    }
    Desired::new(COMPLETE, true, result.as_str(), message)
}

/// Out-of-scope flags per subject and the OutOfScope condition.
pub fn scope_check(req: &ProvisionRequest, profile: &CloudSyncProfile) -> (Vec<bool>, Desired) {
    let scope = profile.spec.scope.as_ref();
    let verdicts: Vec<Verdict> = req.spec.subjects.iter().map(|s| scope::verdict(s.dn.as_str(), scope)).collect();
    let outside: Vec<String> =
        verdicts.iter().enumerate().filter(|(_, v)| **v == Verdict::Outside).map(|(i, _)| i.to_string()).collect();
    let unknown = verdicts.iter().filter(|v| **v == Verdict::Unknown).count();
    let flags = verdicts.iter().map(|v| *v == Verdict::Outside).collect();
    let condition = if !outside.is_empty() {
        Desired::new(
            OUT_OF_SCOPE,
            true,
            "OutsideScope",
            format!(
                "subject {} lies outside the organizational units of {}; on-demand provisioning ignores the scope, so it \
                 is provisioned anyway, and the next regular cycle may delete it again from Entra ID",
                outside.join(", "),
                req.spec.profile
            ),
        )
    } else if unknown > 0 {
        Desired::new(
            OUT_OF_SCOPE,
            false,
            "ScopeByGroup",
            format!(
                "{} scopes by group membership, which only Active Directory knows; on-demand provisioning ignores the \
                 scope, so a subject that is not a member is provisioned anyway",
                req.spec.profile
            ),
        )
    } else {
        Desired::new(
            OUT_OF_SCOPE,
            false,
            "InsideScope",
            format!("every subject lies inside the scope of {}", req.spec.profile),
        )
    };
    (flags, condition)
}

/// How long a finished request has left before it is deleted (`Some(ZERO)`: now); `None` when it
/// is kept.
pub fn expires_in(req: &ProvisionRequest, now: Timestamp) -> Option<Duration> {
    let ttl = req.spec.ttl_seconds_after_finished?;
    let done: Timestamp = req.completed_at()?.parse().ok()?;
    let at = done.checked_add(jiff::SignedDuration::from_secs(ttl.max(0))).ok()?;
    let left = at.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        CloudSyncProfileStatus, DistinguishedName, JobStatus, ProvisionRequestSpec, ProvisionRequestStatus, Scope,
        ServicePrincipalRef, Subject, SubjectType,
    };

    fn request(n: usize) -> ProvisionRequest {
        let subjects = (0..n)
            .map(|i| Subject {
                dn: DistinguishedName(format!("CN=u{i},OU=Sales,DC=c,DC=com")),
                kind: SubjectType::User,
            })
            .collect();
        ProvisionRequest::new(
            "r",
            ProvisionRequestSpec { profile: "p".into(), subjects, ttl_seconds_after_finished: None },
        )
    }

    fn profile(ready: bool) -> CloudSyncProfile {
        let spec = serde_json::json!({"tenantId": "t", "credentials": {"secretRef": {"name": "s"}}, "domain": "c.com"});
        let mut p = CloudSyncProfile::new("p", serde_json::from_value(spec).expect("a minimal spec"));
        if ready {
            p.status = Some(CloudSyncProfileStatus {
                service_principal: Some(ServicePrincipalRef { id: "sp".into(), ..Default::default() }),
                jobs: vec![JobStatus {
                    template_id: PROVISIONING_TEMPLATE.into(),
                    id: "job".into(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        p
    }

    #[test]
    fn a_target_needs_the_profile_its_service_principal_and_its_provisioning_job() {
        assert_eq!(target("p", None).unwrap_err().reason, "ProfileNotFound");
        assert_eq!(target("p", Some(&profile(false))).unwrap_err().reason, "ProfileNotReady");
        assert_eq!(
            target("p", Some(&profile(true))).unwrap(),
            Target { service_principal: "sp".into(), job: "job".into() }
        );
        let mut deleting = profile(true);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        let b = target("p", Some(&deleting)).unwrap_err();
        assert!(!b.may_clear, "a deleted profile never comes back as the same one");
    }

    #[test]
    fn a_sent_subject_is_never_sent_again_and_a_lost_answer_is_a_failure() {
        let mut req = request(3);
        req.status = Some(ProvisionRequestStatus {
            subjects: vec![
                SubjectStatus {
                    index: 0,
                    sent: Some("t".into()),
                    result: Some(ProvisionResult::Success),
                    ..Default::default()
                },
                SubjectStatus { index: 1, sent: Some("t".into()), ..Default::default() },
            ],
            ..Default::default()
        });
        let mut s = entries(&req);
        assert_eq!(s.len(), 3);
        assert_eq!(lost(&s), vec![1]);
        assert_eq!(next(&s), Some(2), "the lost one is not the next");
        mark_unknown(&mut s[1]);
        assert_eq!(s[1].error_code.as_deref(), Some(OUTCOME_UNKNOWN));
        assert!(lost(&s).is_empty());
        s[2].sent = Some("t".into());
        s[2].result = Some(ProvisionResult::Skipped);
        assert_eq!(next(&s), None);
        let c = completed(&req, &s);
        assert_eq!((c.status, c.reason.as_str()), (true, "Failure"));
        assert!(c.message.contains("subject 1 (user): OutcomeUnknown"), "{}", c.message);
    }

    #[test]
    fn the_overall_result_follows_graphs_three_values() {
        let with = |rs: &[ProvisionResult]| -> Vec<SubjectStatus> {
            rs.iter().map(|r| SubjectStatus { result: Some(*r), ..Default::default() }).collect()
        };
        use ProvisionResult::*;
        assert_eq!(overall(&with(&[Success, Success])), Success);
        assert_eq!(overall(&with(&[Success, Skipped])), Success);
        assert_eq!(overall(&with(&[Skipped, Skipped])), Skipped);
        assert_eq!(overall(&with(&[Success, Failure])), Failure);
    }

    #[test]
    fn subjects_outside_the_ous_are_flagged_and_named_by_position_only() {
        let mut req = request(2);
        req.spec.subjects[1].dn = DistinguishedName("CN=u1,OU=Marketing,DC=c,DC=com".into());
        let mut p = profile(true);
        p.spec.scope = Some(Scope {
            organizational_units: Some(vec![DistinguishedName("OU=Sales,DC=c,DC=com".into())]),
            groups: None,
        });
        let (flags, c) = scope_check(&req, &p);
        assert_eq!(flags, vec![false, true]);
        assert_eq!((c.status, c.reason.as_str()), (true, "OutsideScope"));
        assert!(c.message.starts_with("subject 1 lies outside") && !c.message.contains("Marketing"), "{}", c.message);
        p.spec.scope = None;
        assert!(!scope_check(&req, &p).1.status);
    }

    #[test]
    fn a_finished_request_with_a_ttl_expires_after_it() {
        let mut req = request(1);
        let done: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        req.status = Some(ProvisionRequestStatus { completion_time: Some(done.to_string()), ..Default::default() });
        assert_eq!(expires_in(&req, done), None, "no ttl: kept");
        req.spec.ttl_seconds_after_finished = Some(60);
        assert_eq!(expires_in(&req, done), Some(Duration::from_secs(60)));
        assert_eq!(expires_in(&req, done + jiff::SignedDuration::from_secs(61)), Some(Duration::ZERO));
    }
}
