//! Recent failures (pure): when a job's last run has errors or escrows, which provisioning-log
//! read is due, and what of its answer goes into `status.jobs[].recentFailures`: error codes,
//! counts and times, never an identity. Read once per run (keyed by its timeBegan), so a profile
//! whose failing run stays the same, or a healthy one, makes no extra call.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::observe::{FailuresRead, Observed, Read};
use crate::api::{Cloud, CloudSyncProfileSpec, CloudSyncProfileStatus, FailureCount, JobStatus, RecentFailures};
use crate::graph::audit::Failures;
use crate::graph::{ErrorKind, GraphError};

pub const PERMISSION_NOTE: &str = "the operator's app lacks AuditLog.Read.All and Directory.Read.All (both are needed): grant them with admin consent to see the failure codes of a run here";
pub const CHINA_NOTE: &str = "provisioning logs are not available in the China cloud (21Vianet): see the job's errors in the Microsoft Entra admin center";
/// Distinct error codes kept per job; the rest are counted as truncated.
pub const MAX_CODES: usize = 10;

/// The last run ended with errors (failed, or objects it could not process).
pub fn unhealthy(j: &JobStatus) -> bool {
    j.last_execution.as_ref().is_some_and(|e| {
        matches!(e.state.as_deref(), Some("EntryLevelErrors" | "Failed")) || e.count_escrowed.unwrap_or(0) > 0
    })
}

/// Jobs whose failing run has not been looked up yet: (job id, the run's timeBegan).
pub fn due(status: &CloudSyncProfileStatus) -> Vec<(String, String)> {
    status
        .jobs
        .iter()
        .filter(|j| unhealthy(j))
        .filter_map(|j| {
            let run = j.last_execution.as_ref()?.time_began.clone()?;
            let done = j.recent_failures.as_ref().is_some_and(|r| r.run == run);
            (!done).then(|| (j.id.clone(), run))
        })
        .collect()
}

/// The read a converged pass makes, if one is due. At most one per pass, whatever its outcome.
pub fn read(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus, seen: &Observed) -> Option<Read> {
    if seen.recent_failures.is_some() || spec.cloud() == Cloud::China {
        return None;
    }
    let sp = status.service_principal.as_ref()?;
    let runs = due(status);
    (!runs.is_empty()).then(|| Read::RecentFailures { service_principal: sp.id.clone(), runs })
}

/// Entries after this time belong to the runs (`gt` is exclusive and `ge` undocumented, so one
/// second earlier than the earliest run began).
pub fn since(runs: &[(String, String)]) -> Option<Timestamp> {
    let earliest = runs.iter().filter_map(|(_, r)| r.parse::<Timestamp>().ok()).min()?;
    earliest.checked_sub(jiff::SignedDuration::from_secs(1)).ok()
}

/// What a refusal means for status: a note the user can act on, or `None` for a failure that
/// is only tried again at the next resync (throttling, 5xx, timeouts, not sent).
pub fn note_for(e: &GraphError) -> Option<String> {
    match e.kind {
        ErrorKind::Unauthorized | ErrorKind::Forbidden => Some(PERMISSION_NOTE.to_string()),
        ErrorKind::NeedsUserAction | ErrorKind::NotFound => Some(format!(
            "the provisioning logs could not be read ({}); the failure codes of this run are not shown",
            e.summary()
        )),
        ErrorKind::Throttled | ErrorKind::Transient => None,
    }
}

/// The failures of one job's run, by code, most frequent first.
pub fn summarise(job_id: &str, run: &str, failures: &Failures, at: Timestamp) -> RecentFailures {
    let mut by_code: BTreeMap<String, (i64, Timestamp)> = BTreeMap::new();
    for f in failures.entries.iter().filter(|f| f.job_id.as_deref().is_some_and(|j| j.eq_ignore_ascii_case(job_id))) {
        let code = f.error_code.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "Unknown".to_string());
        let time = f.time.unwrap_or(Timestamp::UNIX_EPOCH);
        let slot = by_code.entry(code).or_insert((0, time));
        slot.0 += 1;
        slot.1 = slot.1.max(time);
    }
    let mut errors: Vec<FailureCount> = by_code
        .into_iter()
        .map(|(code, (count, latest))| FailureCount { code, count, latest: latest.to_string() })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    let truncated = failures.truncated || errors.len() > MAX_CODES;
    errors.truncate(MAX_CODES);
    RecentFailures {
        run: run.to_string(),
        checked_at: Some(at.to_string()),
        errors,
        truncated: truncated.then_some(true),
        note: None,
    }
}

/// Takes what was learned into status: the read's answer per job it was for, and the China note
/// (no call is made there).
pub fn absorb(spec: &CloudSyncProfileSpec, status: &mut CloudSyncProfileStatus, seen: &Observed) {
    if spec.cloud() == Cloud::China {
        for (job, run) in due(status) {
            set(status, &job, RecentFailures { run, note: Some(CHINA_NOTE.to_string()), ..Default::default() });
        }
        return;
    }
    let Some(FailuresRead { runs, outcome, at }) = &seen.recent_failures else { return };
    for (job, run) in runs {
        let still = status.jobs.iter().any(|j| {
            j.id == *job && j.last_execution.as_ref().and_then(|e| e.time_began.as_deref()) == Some(run.as_str())
        });
        if !still {
            continue;
        }
        let value = match outcome {
            Ok(failures) => summarise(job, run, failures, *at),
            Err(e) => match note_for(e) {
                Some(note) => RecentFailures { run: run.clone(), note: Some(note), ..Default::default() },
                None => continue,
            },
        };
        set(status, job, value);
    }
}

fn set(status: &mut CloudSyncProfileStatus, job: &str, value: RecentFailures) {
    if let Some(j) = status.jobs.iter_mut().find(|j| j.id == job) {
        j.recent_failures = Some(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::JobExecution;
    use crate::graph::audit::ProvisioningFailure;
    use crate::graph::{Cause, Source};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(id: &str, state: &str, began: &str, escrowed: i64) -> JobStatus {
        JobStatus {
            template_id: "AD2AADProvisioning".into(),
            id: id.into(),
            last_execution: Some(JobExecution {
                state: Some(state.into()),
                time_began: Some(began.into()),
                count_escrowed: Some(escrowed),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn failure(job: &str, code: Option<&str>, at: &str) -> ProvisioningFailure {
        ProvisioningFailure { job_id: Some(job.into()), error_code: code.map(Into::into), time: Some(ts(at)) }
    }

    #[test]
    fn only_unhealthy_runs_not_looked_up_are_due() {
        let mut status = CloudSyncProfileStatus {
            jobs: vec![
                job("a", "Succeeded", "2026-11-26T12:00:00Z", 0),
                job("b", "EntryLevelErrors", "2026-11-26T12:00:00Z", 3),
                job("c", "Succeeded", "2026-11-26T12:02:00Z", 2),
                job("d", "Failed", "2026-11-26T12:04:00Z", 0),
            ],
            ..Default::default()
        };
        let ids: Vec<String> = due(&status).into_iter().map(|(j, _)| j).collect();
        assert_eq!(ids, ["b", "c", "d"]);
        status.jobs[1].recent_failures =
            Some(RecentFailures { run: "2026-11-26T12:00:00Z".into(), ..Default::default() });
        status.jobs[2].recent_failures = Some(RecentFailures { run: "an older run".into(), ..Default::default() });
        let ids: Vec<String> = due(&status).into_iter().map(|(j, _)| j).collect();
        assert_eq!(ids, ["c", "d"], "the same run is read once; a new run again");
        assert_eq!(since(&due(&status)), Some(ts("2026-11-26T12:01:59Z")));
    }

    #[test]
    fn no_read_in_china_or_twice_in_a_pass() {
        let mut spec = crate::reconcile::rules::spec();
        let mut status = CloudSyncProfileStatus {
            service_principal: Some(crate::api::ServicePrincipalRef { id: "sp".into(), ..Default::default() }),
            jobs: vec![job("b", "EntryLevelErrors", "2026-11-26T12:00:00Z", 3)],
            ..Default::default()
        };
        let mut seen = Observed::default();
        assert!(matches!(read(&spec, &status, &seen), Some(Read::RecentFailures { .. })));
        seen.recent_failures =
            Some(FailuresRead { runs: vec![], outcome: Ok(Failures::default()), at: ts("2026-11-26T12:05:00Z") });
        assert_eq!(read(&spec, &status, &seen), None);
        spec.cloud = Some(Cloud::China);
        assert_eq!(read(&spec, &status, &Observed::default()), None);
        absorb(&spec, &mut status, &Observed::default());
        let r = status.jobs[0].recent_failures.as_ref().unwrap();
        assert_eq!((r.note.as_deref(), r.checked_at.as_ref()), (Some(CHINA_NOTE), None));
    }

    #[test]
    fn counts_by_code_for_this_job_only() {
        let failures = Failures {
            entries: vec![
                failure("J", Some("AttributeValueMustBeUnique"), "2026-11-26T12:00:05Z"),
                failure("j", Some("AttributeValueMustBeUnique"), "2026-11-26T12:00:09Z"),
                failure("J", None, "2026-11-26T12:00:02Z"),
                failure("other", Some("X"), "2026-11-26T12:00:03Z"),
            ],
            truncated: false,
        };
        let r = summarise("J", "2026-11-26T12:00:00Z", &failures, ts("2026-11-26T12:01:00Z"));
        assert_eq!(
            r.errors,
            [
                FailureCount {
                    code: "AttributeValueMustBeUnique".into(),
                    count: 2,
                    latest: "2026-11-26T12:00:09Z".into()
                },
                FailureCount { code: "Unknown".into(), count: 1, latest: "2026-11-26T12:00:02Z".into() },
            ]
        );
        assert_eq!((r.truncated, r.note), (None, None));
        assert_eq!(r.checked_at.as_deref(), Some("2026-11-26T12:01:00Z"));
    }

    fn error(kind: ErrorKind, status: u16) -> GraphError {
        GraphError {
            kind,
            source: Source::Graph,
            cause: Cause::ErrorStatus,
            operation: "auditLogs.provisioning",
            status: Some(status),
            code: Some("Authorization_RequestDenied".into()),
            message: "Insufficient privileges to complete the operation.".into(),
            request_id: Some("req-1".into()),
            retry_after: None,
        }
    }

    #[test]
    fn refusals_are_notes_throttling_is_tried_later() {
        assert_eq!(note_for(&error(ErrorKind::Forbidden, 403)).as_deref(), Some(PERMISSION_NOTE));
        assert_eq!(note_for(&error(ErrorKind::Unauthorized, 401)).as_deref(), Some(PERMISSION_NOTE));
        assert_eq!(note_for(&error(ErrorKind::Throttled, 429)), None);
        assert_eq!(note_for(&error(ErrorKind::Transient, 503)), None);
        let n = note_for(&error(ErrorKind::NeedsUserAction, 400)).unwrap();
        assert!(!n.contains("req-1"), "a note must not change with every call: {n}");
        let mut status = CloudSyncProfileStatus {
            jobs: vec![job("b", "EntryLevelErrors", "2026-11-26T12:00:00Z", 3)],
            ..Default::default()
        };
        let runs = vec![("b".to_string(), "2026-11-26T12:00:00Z".to_string())];
        let spec = crate::reconcile::rules::spec();
        let throttled = Observed {
            recent_failures: Some(FailuresRead {
                runs: runs.clone(),
                outcome: Err(error(ErrorKind::Throttled, 429)),
                at: ts("2026-11-26T12:05:00Z"),
            }),
            ..Default::default()
        };
        absorb(&spec, &mut status, &throttled);
        assert_eq!(status.jobs[0].recent_failures, None, "not recorded: tried again at the next resync");
        let denied = Observed {
            recent_failures: Some(FailuresRead {
                runs,
                outcome: Err(error(ErrorKind::Forbidden, 403)),
                at: ts("2026-11-26T12:05:00Z"),
            }),
            ..Default::default()
        };
        absorb(&spec, &mut status, &denied);
        assert_eq!(status.jobs[0].recent_failures.as_ref().unwrap().note.as_deref(), Some(PERMISSION_NOTE));
        assert!(due(&status).is_empty(), "not asked again for this run");
    }
}
