//! Per-profile and per-job gauges, derived from a profile's status at the end of a reconcile pass
//! (pure: the status in, the values out). Labels are the profile's namespace and name and the
//! job's template only, so the series are bounded by the number of profiles.

use jiff::Timestamp;

use crate::api::conditions::{self, types};
use crate::api::{CloudSyncProfileStatus, JobStatus};

/// The values `job.status.code` can take; `cloudsync_job_status` has one series per value, 1 for
/// the current one (a code outside these sets all five to 0).
pub const CODES: [&str; 5] = ["NotConfigured", "NotRun", "Active", "Paused", "Quarantine"];

/// What one job reports.
#[derive(Clone, Debug, PartialEq)]
pub struct JobGauges {
    pub template: String,
    /// One of `CODES`, if the code is one of them.
    pub code: Option<&'static str>,
    pub quarantined: bool,
    /// Unix seconds of the end of the last successful run; 0 when it never succeeded (or the time
    /// cannot be read).
    pub last_successful_run: i64,
    /// Escrows of the last run (objects the service retries).
    pub escrowed: i64,
}

/// What one profile reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileGauges {
    /// Ready=True (Unknown and False are both not ready).
    pub ready: bool,
    pub jobs: Vec<JobGauges>,
}

pub fn job_gauges(job: &JobStatus) -> JobGauges {
    let code = job.code.as_deref().and_then(|c| CODES.iter().copied().find(|k| *k == c));
    JobGauges {
        template: job.template_id.clone(),
        code,
        quarantined: code == Some("Quarantine"),
        last_successful_run: job
            .last_successful_run
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(0, |t| t.as_second().max(0)),
        escrowed: job.last_execution.as_ref().and_then(|e| e.count_escrowed).unwrap_or(0).max(0),
    }
}

pub fn profile_gauges(status: &CloudSyncProfileStatus) -> ProfileGauges {
    ProfileGauges {
        ready: conditions::is_true(&status.conditions, types::READY),
        jobs: status.jobs.iter().map(job_gauges).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::JobExecution;

    #[test]
    fn a_job_maps_to_its_code_quarantine_last_success_and_escrows() {
        let job = JobStatus {
            template_id: "AD2AADProvisioning".into(),
            id: "AD2AADProvisioning.abc".into(),
            code: Some("Quarantine".into()),
            last_successful_run: Some("2026-11-26T12:41:21.2430111Z".into()),
            last_execution: Some(JobExecution { count_escrowed: Some(7), ..Default::default() }),
            ..Default::default()
        };
        let g = job_gauges(&job);
        assert_eq!(g.template, "AD2AADProvisioning");
        assert_eq!(g.code, Some("Quarantine"));
        assert!(g.quarantined);
        assert_eq!(g.last_successful_run, 1_795_696_881);
        assert_eq!(g.escrowed, 7);
    }

    #[test]
    fn a_new_job_never_succeeded_and_an_unknown_code_sets_no_state() {
        let job =
            JobStatus { template_id: "AD2AADPasswordHash".into(), code: Some("Busy".into()), ..Default::default() };
        let g = job_gauges(&job);
        assert_eq!((g.code, g.quarantined, g.last_successful_run, g.escrowed), (None, false, 0, 0));
        let active = JobStatus { code: Some("Active".into()), last_successful_run: Some("garbage".into()), ..job };
        let g = job_gauges(&active);
        assert_eq!((g.code, g.quarantined, g.last_successful_run), (Some("Active"), false, 0));
    }

    #[test]
    fn ready_only_when_the_ready_condition_is_true() {
        let mut status = CloudSyncProfileStatus::default();
        assert!(!profile_gauges(&status).ready, "no condition yet");
        status.conditions = conditions::merge(
            &[],
            &[conditions::Desired::new(types::READY, true, "Converged", "ok")],
            Some(1),
            Timestamp::UNIX_EPOCH,
        );
        status.jobs = vec![JobStatus { template_id: "AD2AADProvisioning".into(), ..Default::default() }];
        let g = profile_gauges(&status);
        assert!(g.ready);
        assert_eq!(g.jobs.len(), 1);
    }
}
