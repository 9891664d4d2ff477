//! Pure status computation: job status copied from Graph, and the conditions. Conditions only
//! change when something about the profile changed, so writing them is never a loop.

use jiff::Timestamp;

use super::observe::{Jobs, Observed};
use super::plan::{self, Plan, Slot, carry_bookkeeping};
pub use super::reason::Problem;
use super::reason::Reason;
use super::schema;
use super::step::describe_sp;
use crate::api::conditions::{Desired, types};
use crate::api::{
    CloudSyncProfileSpec, CloudSyncProfileStatus, JobError, JobExecution, JobQuarantine, JobStatus, PendingJobCreate,
};
use crate::graph::model::{ScheduleState, StatusCode, SynchronizationError, SynchronizationJob};

/// What one reconcile pass established.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// Ok, or why the operator could not get a token.
    pub credentials: Result<(), Problem>,
    /// Ok with a description, or why there is no usable service principal.
    pub service_principal: Result<String, Problem>,
    /// A refusal while managing the jobs and secrets that only the user can fix.
    pub jobs: Result<(), Problem>,
    /// The schema as the profile wants it (the message says what it holds), or why not.
    pub schema: Result<String, Problem>,
    /// Templates the spec asks for.
    pub desired: Vec<&'static str>,
    /// Templates with more than one job.
    pub duplicates: Vec<(String, Vec<String>)>,
    /// Job creations whose answer did not come, being waited for in the jobs list.
    pub pending_creates: Vec<PendingJobCreate>,
}

/// When a wait that started at `since` (RFC 3339) ends, for a condition's message.
fn until(since: &str, grace: std::time::Duration) -> String {
    let end = since.parse::<Timestamp>().ok().and_then(|t| {
        let grace = jiff::SignedDuration::try_from(grace).ok()?;
        t.checked_add(grace).ok()
    });
    end.map_or_else(|| "a few minutes".to_string(), |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}

/// "Code: message", "Code" or "message", without a closing full stop (it is followed by more text).
fn describe(e: &JobError) -> String {
    let message = e.message.as_deref().map(|m| m.trim().trim_end_matches('.')).filter(|m| !m.is_empty());
    match (e.code.as_deref(), message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "no error given".to_string(),
    }
}

fn job_error(e: Option<&SynchronizationError>) -> Option<JobError> {
    let e = e?;
    (e.code.is_some() || e.message.is_some()).then(|| JobError { code: e.code.clone(), message: e.message.clone() })
}

/// `status.jobs[]` entry for a Graph job, keeping the operator's own bookkeeping.
pub fn job_status(job: &SynchronizationJob, previous: Option<&JobStatus>) -> JobStatus {
    let status = job.status.as_ref();
    let mut out = JobStatus {
        template_id: job.template().to_string(),
        id: job.id.clone(),
        schedule_state: job.schedule_state().map(|s| s.as_str().to_string()),
        schedule_interval_seconds: job.schedule.as_ref().and_then(|s| s.interval).map(|d| d.as_secs() as i64),
        code: job.code().map(|c| c.as_str().to_string()),
        last_execution: status.and_then(|s| s.last_execution.as_ref()).map(|e| JobExecution {
            state: e.state.clone(),
            time_began: e.time_began.map(|t| t.to_string()),
            time_ended: e.time_ended.map(|t| t.to_string()),
            error: job_error(e.error.as_ref()),
            count_escrowed: e.count_escrowed,
        }),
        quarantine: status.and_then(|s| s.quarantine.as_ref()).map(|q| JobQuarantine {
            reason: q.reason.clone(),
            current_began: q.current_began.map(|t| t.to_string()),
            next_attempt: q.next_attempt.map(|t| t.to_string()),
            series_count: q.series_count,
            error: job_error(q.error.as_ref()),
        }),
        steady_state_last_achieved_time: status.and_then(|s| s.steady_state_last_achieved_time).map(|t| t.to_string()),
        last_successful_run: status
            .and_then(|s| s.last_successful_execution.as_ref())
            .and_then(|e| e.time_ended)
            .map(|t| t.to_string()),
        ..Default::default()
    };
    carry_bookkeeping(previous, &mut out);
    // A healthy run again: the failures of the last bad one are history.
    if !super::failures::unhealthy(&out) {
        out.recent_failures = None;
    }
    out
}

fn code(j: &JobStatus) -> Option<StatusCode> {
    j.code.as_deref().map(StatusCode::from)
}

fn running(j: &JobStatus) -> bool {
    j.schedule_state.as_deref().map(ScheduleState::from) == Some(ScheduleState::Active)
        && !matches!(code(j), Some(StatusCode::Paused | StatusCode::Quarantine | StatusCode::NotConfigured))
}

/// A Degraded problem, and whether it also stops the jobs (Ready turns False).
struct Degraded {
    problem: Problem,
    stops: bool,
}

fn degraded(jobs: &[JobStatus], threshold: i64, domain: &str) -> Option<Degraded> {
    let mut quarantined = Vec::new();
    let mut failed = Vec::new();
    // Agent trouble, from the quarantine's error or the last run's.
    let mut agents = false;
    for j in jobs {
        let run_error = j.last_execution.as_ref().and_then(|e| e.error.as_ref()).and_then(|e| e.code.as_deref());
        if let Some(q) = j.quarantine.as_ref().filter(|_| code(j) == Some(StatusCode::Quarantine)) {
            let quarantine_error = q.error.as_ref().and_then(|e| e.code.as_deref());
            agents |= super::agents::is_agent_code(quarantine_error.or(run_error));
            let cause = q.error.as_ref().map(|e| format!(" ({})", describe(e)));
            let next = q.next_attempt.as_deref().map(|n| format!("; next attempt {n}")).unwrap_or_default();
            quarantined.push(format!(
                "{} is quarantined: {}{}{next}",
                j.template_id,
                q.reason.as_deref().unwrap_or("Unknown"),
                cause.unwrap_or_default()
            ));
        } else if let Some(e) = j.last_execution.as_ref().filter(|e| e.state.as_deref() == Some("Failed")) {
            agents |= super::agents::is_agent_code(run_error);
            let why = e.error.as_ref().map(describe).unwrap_or_else(|| "no error given".into());
            failed.push(format!("{}'s last run failed: {why}", j.template_id));
        }
    }
    let stops = !quarantined.is_empty();
    if !quarantined.is_empty() {
        let held: Vec<&str> = jobs
            .iter()
            .filter(|j| {
                code(j) == Some(StatusCode::Quarantine)
                    && j.quarantine.as_ref().and_then(|q| q.reason.as_deref()) == Some("TooManyDeletes")
            })
            .map(|j| j.template_id.as_str())
            .collect();
        if !held.is_empty() {
            let problem = Problem::new(
                Reason::DeletesHeld,
                format!(
                    "deletes are held: a run of {} wanted to delete {threshold} objects or more (spec.accidentalDeletes.threshold is {threshold}), so the service quarantined it (TooManyDeletes) and deleted nothing. Check the deletes are intended (the provisioning logs show them as stagedDelete), then approve them with a new spec.restart.requestId and resetScope: ForceDeletes; or fix the scope or the directory and restart without ForceDeletes. The operator never approves deletes by itself",
                    held.join(", ")
                ),
            );
            return Some(Degraded { problem, stops });
        }
    }
    if agents {
        let then = if stops {
            "Then set a new spec.restart.requestId with resetScope QuarantineState"
        } else {
            "The job retries by itself"
        };
        let what: Vec<String> = quarantined.into_iter().chain(failed).collect();
        let message = format!("{}. {}. {then}", what.join("; "), super::agents::advice(domain));
        return Some(Degraded { problem: Problem::new(Reason::AgentUnavailable, message), stops });
    }
    if !quarantined.is_empty() {
        let advice = "Fix the cause (for agent errors: check the provisioning agents for the domain), then set a new spec.restart.requestId with resetScope QuarantineState";
        let problem = Problem::new(Reason::Quarantined, format!("{}. {advice}", quarantined.join("; ")));
        return Some(Degraded { problem, stops });
    }
    if !failed.is_empty() {
        let problem = Problem::new(
            Reason::ExecutionFailed,
            format!(
                "{}. The job retries by itself; check the provisioning agents and the Domain setting",
                failed.join("; ")
            ),
        );
        return Some(Degraded { problem, stops });
    }
    None
}

/// All conditions for the facts and the jobs as they are now.
pub fn conditions(spec: &CloudSyncProfileSpec, facts: &Facts, jobs: &[JobStatus]) -> Vec<Desired> {
    use types::*;
    let suspended = spec.suspended();
    let desired_jobs: Vec<&JobStatus> =
        facts.desired.iter().filter_map(|t| jobs.iter().find(|j| j.template_id == *t)).collect();
    let jobs_running = jobs_running(facts, jobs, &desired_jobs, suspended);
    let degraded =
        degraded(&desired_jobs.iter().map(|j| (*j).clone()).collect::<Vec<_>>(), spec.delete_threshold(), &spec.domain)
            .or_else(|| duplicates(&facts.duplicates).map(|problem| Degraded { problem, stops: false }));
    let stopping = degraded.as_ref().filter(|d| d.stops).map(|d| &d.problem);
    let ready = ready(facts, suspended, stopping, &jobs_running);
    let degraded = degraded.map(|d| d.problem);
    let suspend = if suspended {
        Desired::new(
            SUSPENDED,
            true,
            Reason::SuspendRequested.as_str(),
            "spec.suspend is true: the jobs are paused until it is set to false",
        )
    } else {
        Desired::new(SUSPENDED, false, Reason::NotSuspended.as_str(), "")
    };
    vec![
        condition(
            CREDENTIALS_VALID,
            facts.credentials.clone().map(|()| "the operator got a Microsoft Graph token for the tenant".to_string()),
            Reason::Authenticated,
        ),
        condition(SERVICE_PRINCIPAL_READY, facts.service_principal.clone(), Reason::Ready),
        condition(JOBS_RUNNING, jobs_running, Reason::Running),
        schema_condition(&facts.schema),
        match &degraded {
            Some(p) => Desired::new(DEGRADED, true, p.reason.as_str(), p.message.clone()),
            None => Desired::new(DEGRADED, false, Reason::Healthy.as_str(), "no job is quarantined or failing"),
        },
        suspend,
        condition(READY, ready, Reason::Ready),
    ]
}

fn schema_condition(state: &Result<String, Problem>) -> Desired {
    match state {
        Ok(m) if m.is_empty() => Desired::new(
            types::SCHEMA_APPLIED,
            true,
            Reason::NotManaged.as_str(),
            "the profile sets no scope, attribute mappings or password hash sync: the job's schema is left as it is",
        ),
        other => condition(types::SCHEMA_APPLIED, other.clone(), Reason::Applied),
    }
}

/// A condition that is True with `fine` and the message, or False with the problem.
fn condition(type_: &'static str, state: Result<String, Problem>, fine: Reason) -> Desired {
    match state {
        Ok(message) => Desired::new(type_, true, fine.as_str(), message),
        Err(p) => Desired::new(type_, false, p.reason.as_str(), p.message),
    }
}

fn jobs_running(
    facts: &Facts,
    jobs: &[JobStatus],
    desired_jobs: &[&JobStatus],
    suspended: bool,
) -> Result<String, Problem> {
    let missing: Vec<&str> =
        facts.desired.iter().filter(|t| !jobs.iter().any(|j| j.template_id == **t)).copied().collect();
    if facts.service_principal.is_err() {
        return Err(Problem::new(Reason::NoServicePrincipal, "waiting for the service principal"));
    }
    if let Err(p) = &facts.jobs {
        return Err(p.clone());
    }
    if !missing.is_empty() {
        // Say which wait applies and until when: a creation whose answer was lost is looked for in
        // the jobs list, and only created again once its grace is over.
        let named: Vec<String> = missing
            .iter()
            .map(|t| match facts.pending_creates.iter().find(|p| p.template_id == *t) {
                Some(p) => format!(
                    "{t} (its creation at {} got no answer; waiting for Graph to list it until {}, then it is created again)",
                    p.since,
                    until(&p.since, plan::JOB_CREATE_GRACE)
                ),
                None => t.to_string(),
            })
            .collect();
        return Err(Problem::new(Reason::JobsMissing, format!("jobs not created yet: {}", named.join(", "))));
    }
    if suspended {
        return Err(Problem::new(Reason::Suspended, "the jobs are paused because spec.suspend is true"));
    }
    let code = |j: &JobStatus| j.code.clone().unwrap_or_else(|| "unknown".into());
    let stopped: Vec<String> = desired_jobs
        .iter()
        .filter(|j| !running(j))
        .map(|j| {
            let state = j.schedule_state.as_deref().unwrap_or("unknown");
            let started = j.last_start_time.as_deref().map(|t| {
                format!(
                    "; started at {t}, it is started again if Graph does not show it running by {}",
                    until(t, plan::START_GRACE)
                )
            });
            format!("{} is {} (schedule {state}){}", j.template_id, code(j), started.unwrap_or_default())
        })
        .collect();
    if !stopped.is_empty() {
        return Err(Problem::new(Reason::NotRunning, stopped.join("; ")));
    }
    Ok(desired_jobs.iter().map(|j| format!("{} {}", j.template_id, code(j))).collect::<Vec<_>>().join(", "))
}

fn duplicates(duplicates: &[(String, Vec<String>)]) -> Option<Problem> {
    (!duplicates.is_empty()).then(|| {
        Problem::new(
            Reason::DuplicateJobs,
            format!(
                "more than one job per template ({}); the operator uses the first and leaves the others: delete the extra ones in Microsoft Graph",
                duplicates.iter().map(|(t, ids)| format!("{t}: {}", ids.join(", "))).collect::<Vec<_>>().join("; ")
            ),
        )
    })
}

/// The first problem in this order is what the user must look at.
fn ready(
    facts: &Facts,
    suspended: bool,
    stopping: Option<&Problem>,
    jobs_running: &Result<String, Problem>,
) -> Result<String, Problem> {
    facts.credentials.clone()?;
    facts.service_principal.clone()?;
    facts.jobs.clone()?;
    // A schema that is merely not written yet does not hold back Ready; one the user must fix does.
    if let Err(p) = &facts.schema
        && p.reason.kind() == super::reason::Kind::NeedsUser
    {
        return Err(p.clone());
    }
    if suspended {
        return Err(Problem::new(Reason::Suspended, "the jobs are paused because spec.suspend is true"));
    }
    // A quarantined job does not run. A failed run or a duplicate job is reported by Degraded but
    // leaves Ready alone: the jobs run, and the service retries by itself.
    if let Some(p) = stopping {
        return Err(p.clone());
    }
    jobs_running.clone()
}

/// Ready while a transient failure is being retried. Only used when the profile is not Ready
/// already: a blip must not flip a working profile.
pub fn retrying(error: &str) -> Desired {
    let p = Problem::retrying(error);
    Desired::new(types::READY, false, p.reason.as_str(), p.message)
}

/// Takes what the pass observed into status: the tenant flag once Graph shows it on, every
/// desired job as Graph lists it (keeping the operator's own bookkeeping, and keeping a job
/// recorded moments ago that is not listed yet), creation intents of jobs now listed, and the
/// restart request once every job has carried it out.
pub fn absorb(spec: &CloudSyncProfileSpec, status: &mut CloudSyncProfileStatus, seen: &Observed, now: Timestamp) {
    if seen.organization.as_ref().is_some_and(|o| o.on_premises_sync_enabled == Some(true)) {
        status.tenant_sync_enabled = Some(true);
    }
    let Some(Jobs::Listed(listed)) = &seen.jobs else { return };
    let job_plan = plan::plan_jobs(spec, listed, status, now);
    let mut next: Vec<JobStatus> = Vec::new();
    for template in plan::desired_templates(spec) {
        let previous = status.jobs.iter().find(|j| j.template_id == template);
        match job_plan.current.get(template) {
            Some(job) => next.push(job_status(job, previous)),
            None => {
                next.extend(previous.filter(|p| plan::within_replication_grace(p.recorded_at.as_deref(), now)).cloned())
            }
        }
    }
    status.jobs = next;
    super::failures::absorb(spec, status, seen);
    status.pending_job_creates.retain(|p| !job_plan.current.contains_key(p.template_id.as_str()));
    if let Some(r) = &spec.restart {
        let done = plan::desired_templates(spec).iter().all(|t| {
            status
                .jobs
                .iter()
                .any(|j| j.template_id == *t && j.last_restart_request_id.as_deref() == Some(r.request_id.as_str()))
        });
        if done {
            status.last_restart_request_id = Some(r.request_id.clone());
        }
    }
}

/// What the schema holds of the profile, or that the profile leaves it alone.
fn schema_fact(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus) -> Result<String, Problem> {
    if !schema::managed(spec, status) {
        return Ok(String::new());
    }
    if status.schema_hash.is_none() || status.schema_inputs_hash.as_deref() != Some(schema::inputs_hash(spec).as_str())
    {
        return Err(Problem::new(Reason::SchemaPending, "the provisioning job's schema is not written yet"));
    }
    let scope = match spec.scope.as_ref() {
        Some(s) => match (&s.organizational_units, &s.groups) {
            (Some(ous), _) => format!("{} OUs", ous.len()),
            (_, Some(groups)) => format!("{} groups", groups.len()),
            _ => "the whole domain".into(),
        },
        None => "the whole domain".into(),
    };
    let phs = if spec.password_hash_sync() { ", CredentialData for password hash sync" } else { "" };
    Ok(format!(
        "scope: {scope}; {} attribute mappings{phs}; schema {}",
        spec.attribute_mappings().len(),
        status.schema_hash.as_deref().unwrap_or_default()
    ))
}

/// The facts behind the conditions, from status, the jobs listed, and how the pass ended.
pub fn facts(
    spec: &CloudSyncProfileSpec,
    status: &CloudSyncProfileStatus,
    seen: &Observed,
    end: &Plan,
    now: Timestamp,
) -> Facts {
    let duplicates = match &seen.jobs {
        Some(Jobs::Listed(listed)) => plan::plan_jobs(spec, listed, status, now).duplicates,
        _ => Vec::new(),
    };
    let mut f = Facts {
        credentials: Ok(()),
        service_principal: status.service_principal.as_ref().map(describe_sp).ok_or_else(Problem::creating),
        jobs: Ok(()),
        schema: schema_fact(spec, status),
        desired: plan::desired_templates(spec),
        duplicates,
        pending_creates: status.pending_job_creates.clone(),
    };
    if let Plan::Wait { slot, problem, .. } | Plan::Blocked { slot, problem } = end {
        match slot {
            Slot::Credentials => {
                f.credentials = Err(problem.clone());
                f.service_principal = Err(Problem::waiting_for("credentials"));
            }
            Slot::ServicePrincipal => f.service_principal = Err(problem.clone()),
            Slot::Jobs => f.jobs = Err(problem.clone()),
            Slot::Schema => f.schema = Err(problem.clone()),
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::{PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE};

    use crate::reconcile::rules::spec;

    fn facts() -> Facts {
        Facts {
            credentials: Ok(()),
            service_principal: Ok("service principal sp-1 (contoso.com)".into()),
            jobs: Ok(()),
            schema: Ok(String::new()),
            desired: vec![PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE],
            duplicates: vec![],
            pending_creates: vec![],
        }
    }

    #[test]
    fn waits_say_which_wait_and_until_when() {
        let mut f = facts();
        f.pending_creates = vec![PendingJobCreate {
            template_id: PASSWORD_HASH_TEMPLATE.into(),
            since: "2026-11-26T12:00:00.123456Z".into(),
        }];
        let c = conditions(&spec(), &f, &[js(PROVISIONING_TEMPLATE, "Active", "Active")]);
        let m = &get(&c, types::JOBS_RUNNING).message;
        assert!(m.contains("AD2AADPasswordHash (its creation at 2026-11-26T12:00:00.123456Z got no answer"), "{m}");
        assert!(m.contains("until 2026-11-26T12:00:20Z, then it is created again"), "{m}");
        let mut started = js(PROVISIONING_TEMPLATE, "Disabled", "NotRun");
        started.last_start_time = Some("2026-11-26T12:00:00Z".into());
        let c = conditions(&spec(), &facts(), &[started, js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
        let m = &get(&c, types::JOBS_RUNNING).message;
        assert!(m.ends_with("started at 2026-11-26T12:00:00Z, it is started again if Graph does not show it running by 2026-11-26T12:00:20Z"), "{m}");
    }

    fn js(template: &str, state: &str, code: &str) -> JobStatus {
        JobStatus {
            template_id: template.into(),
            id: format!("{template}.x"),
            schedule_state: Some(state.into()),
            code: Some(code.into()),
            ..Default::default()
        }
    }

    fn get<'a>(c: &'a [Desired], t: &str) -> &'a Desired {
        c.iter().find(|d| d.type_ == t).unwrap()
    }

    #[test]
    fn all_running_is_ready() {
        let jobs = [js(PROVISIONING_TEMPLATE, "Active", "Active"), js(PASSWORD_HASH_TEMPLATE, "Active", "NotRun")];
        let c = conditions(&spec(), &facts(), &jobs);
        assert_eq!(c.len(), 7);
        let ready = get(&c, types::READY);
        assert!(ready.status, "{ready:?}");
        assert_eq!(ready.message, "AD2AADProvisioning Active, AD2AADPasswordHash NotRun");
        assert!(!get(&c, types::DEGRADED).status);
        assert!(!get(&c, types::SUSPENDED).status);
    }

    #[test]
    fn credential_problems_lead_ready() {
        let mut f = facts();
        f.credentials = Err(Problem::new(Reason::SecretNotFound, "create Secret identity/c"));
        f.service_principal = Err(Problem::new(Reason::WaitingForCredentials, "needs a token"));
        let c = conditions(&spec(), &f, &[]);
        let ready = get(&c, types::READY);
        assert_eq!((ready.status, ready.reason.as_str()), (false, "SecretNotFound"));
        assert!(!get(&c, types::CREDENTIALS_VALID).status);
    }

    #[test]
    fn quarantine_degrades_with_reason_and_error_code() {
        let mut q = js(PROVISIONING_TEMPLATE, "Active", "Quarantine");
        q.quarantine = Some(JobQuarantine {
            reason: Some("EncounteredQuarantineException".into()),
            next_attempt: Some("2026-11-26T16:00:00Z".into()),
            error: Some(JobError { code: Some("AzureActiveDirectoryExpiredCredentials".into()), message: None }),
            ..Default::default()
        });
        let c = conditions(&spec(), &facts(), &[q, js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
        let d = get(&c, types::DEGRADED);
        assert!(d.status);
        assert_eq!(d.reason, "Quarantined");
        assert!(
            d.message.contains("EncounteredQuarantineException")
                && d.message.contains("AzureActiveDirectoryExpiredCredentials")
        );
        assert!(d.message.contains("restart.requestId"), "tells what to do: {}", d.message);
        assert_eq!(get(&c, types::READY).reason, "Quarantined");
        assert!(!get(&c, types::JOBS_RUNNING).status);
    }

    #[test]
    fn too_many_deletes_asks_for_force_deletes() {
        let mut q = js(PROVISIONING_TEMPLATE, "Active", "Quarantine");
        q.quarantine = Some(JobQuarantine { reason: Some("TooManyDeletes".into()), ..Default::default() });
        let c = conditions(&spec(), &facts(), &[q, js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
        let d = get(&c, types::DEGRADED);
        assert!(d.message.contains("ForceDeletes") && !d.message.contains("QuarantineState"), "{}", d.message);
    }

    #[test]
    fn a_failed_last_run_degrades() {
        let mut f = js(PROVISIONING_TEMPLATE, "Active", "Active");
        f.last_execution = Some(JobExecution {
            state: Some("Failed".into()),
            error: Some(JobError { code: Some("TimeOut".into()), message: Some("took too long".into()) }),
            ..Default::default()
        });
        let c = conditions(&spec(), &facts(), &[f, js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
        let d = get(&c, types::DEGRADED);
        assert_eq!((d.status, d.reason.as_str()), (true, "ExecutionFailed"));
        assert!(d.message.contains("TimeOut: took too long"));
        assert!(get(&c, types::READY).status, "a failed run alone leaves the profile Ready");
    }

    fn failed_with(code: &str) -> JobStatus {
        let mut f = js(PROVISIONING_TEMPLATE, "Active", "Active");
        f.last_execution = Some(JobExecution {
            state: Some("Failed".into()),
            error: Some(JobError { code: Some(code.into()), message: Some("There are no active agents.".into()) }),
            ..Default::default()
        });
        f
    }

    #[test]
    fn agent_codes_name_the_domain_and_what_to_do() {
        for code in [
            "HybridIdentityServiceNoAgentsAssigned",
            "HybridIdentityServiceNoActiveAgents",
            "HybridIdentityServiceAgentSignalingError",
        ] {
            let c = conditions(&spec(), &facts(), &[failed_with(code), js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
            let d = get(&c, types::DEGRADED);
            assert_eq!((d.status, d.reason.as_str()), (true, "AgentUnavailable"), "{code}");
            assert!(d.message.contains(code), "{}", d.message);
            assert!(
                d.message.contains("for contoso.com") && d.message.contains("three active agents"),
                "{}",
                d.message
            );
            assert!(d.message.ends_with("The job retries by itself"), "{}", d.message);
            assert!(get(&c, types::READY).status, "a failed run leaves Ready alone, agent or not");
        }
        assert_eq!(
            get(
                &conditions(&spec(), &facts(), &[failed_with("HybridIdentityServiceInvalidResource")]),
                types::DEGRADED
            )
            .reason,
            "ExecutionFailed",
            "a wrong Domain setting is no agent problem"
        );
        assert_eq!(
            get(&conditions(&spec(), &facts(), &[failed_with("TimeOut")]), types::DEGRADED).reason,
            "ExecutionFailed"
        );
    }

    /// The Argo CD health check's agent case shows what the operator writes for it.
    #[test]
    fn argocd_agent_testdata_is_what_the_operator_writes() {
        let text = include_str!(
            "../../argocd/resource_customizations/cloudsync.io/CloudSyncProfile/testdata/degraded-agents.yaml"
        );
        let profile: crate::api::CloudSyncProfile = serde_yaml::from_str(text).unwrap();
        let status = profile.status.clone().unwrap();
        let c = conditions(&profile.spec, &facts(), &status.jobs);
        for t in [types::DEGRADED, types::READY] {
            let (want, written) = (get(&c, t), crate::api::conditions::find(&status.conditions, t).unwrap());
            assert_eq!(
                (want.status, want.reason.as_str(), want.message.as_str()),
                (written.status == "True", written.reason.as_str(), written.message.as_str()),
                "{t}"
            );
        }
    }

    #[test]
    fn agent_quarantine_stops_ready() {
        let mut q = js(PROVISIONING_TEMPLATE, "Active", "Quarantine");
        q.quarantine = Some(JobQuarantine {
            reason: Some("EncounteredQuarantineException".into()),
            error: Some(JobError { code: Some("HybridIdentityServiceNoActiveAgents".into()), message: None }),
            ..Default::default()
        });
        let c = conditions(&spec(), &facts(), &[q, js(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
        let (d, r) = (get(&c, types::DEGRADED), get(&c, types::READY));
        assert_eq!((d.reason.as_str(), r.reason.as_str(), r.status), ("AgentUnavailable", "AgentUnavailable", false));
        assert!(
            d.message.contains("is quarantined: EncounteredQuarantineException (HybridIdentityServiceNoActiveAgents)"),
            "{}",
            d.message
        );
        assert!(d.message.ends_with("resetScope QuarantineState"), "{}", d.message);
        assert_eq!(d.message, r.message);
    }

    #[test]
    fn recent_failures_are_dropped_once_a_run_is_healthy() {
        use crate::api::RecentFailures;
        use crate::graph::model::{SynchronizationStatus, TaskExecution};
        let previous = JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            recent_failures: Some(RecentFailures { run: "r1".into(), ..Default::default() }),
            ..Default::default()
        };
        let mut job = SynchronizationJob {
            id: "p".into(),
            template_id: Some(PROVISIONING_TEMPLATE.into()),
            schedule: None,
            status: Some(SynchronizationStatus {
                last_execution: Some(TaskExecution {
                    state: Some("EntryLevelErrors".into()),
                    count_escrowed: Some(2),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            synchronization_job_settings: vec![],
        };
        assert!(job_status(&job, Some(&previous)).recent_failures.is_some(), "kept while the run has errors");
        job.status.as_mut().unwrap().last_execution.as_mut().unwrap().state = Some("Succeeded".into());
        job.status.as_mut().unwrap().last_execution.as_mut().unwrap().count_escrowed = Some(0);
        assert_eq!(job_status(&job, Some(&previous)).recent_failures, None);
    }

    #[test]
    fn suspended_is_its_own_state() {
        let mut s = spec();
        s.suspend = Some(true);
        let jobs = [js(PROVISIONING_TEMPLATE, "Paused", "Paused"), js(PASSWORD_HASH_TEMPLATE, "Paused", "Paused")];
        let c = conditions(&s, &facts(), &jobs);
        assert!(get(&c, types::SUSPENDED).status);
        assert_eq!(get(&c, types::READY).reason, "Suspended");
        assert_eq!(get(&c, types::JOBS_RUNNING).reason, "Suspended");
    }

    #[test]
    fn missing_and_paused_jobs_are_named() {
        let c = conditions(&spec(), &facts(), &[js(PROVISIONING_TEMPLATE, "Paused", "Paused")]);
        assert_eq!(get(&c, types::JOBS_RUNNING).message, "jobs not created yet: AD2AADPasswordHash");
        let both = [js(PROVISIONING_TEMPLATE, "Paused", "Paused"), js(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
        let c = conditions(&spec(), &facts(), &both);
        assert_eq!(get(&c, types::JOBS_RUNNING).message, "AD2AADProvisioning is Paused (schedule Paused)");
    }

    #[test]
    fn duplicates_are_reported_as_degraded() {
        let mut f = facts();
        f.duplicates = vec![(PROVISIONING_TEMPLATE.into(), vec!["a".into(), "b".into()])];
        let jobs = [js(PROVISIONING_TEMPLATE, "Active", "Active"), js(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
        let c = conditions(&spec(), &f, &jobs);
        assert_eq!(get(&c, types::DEGRADED).reason, "DuplicateJobs");
        assert!(get(&c, types::READY).status);
    }

    #[test]
    fn job_status_copies_graph_and_keeps_bookkeeping() {
        let job: SynchronizationJob = serde_json::from_value(serde_json::json!({
            "id": "AD2AADProvisioning.a.b", "templateId": "AD2AADProvisioning",
            "schedule": {"state": "Active", "interval": "PT2M"},
            "status": {"code": "Active", "steadyStateLastAchievedTime": "2026-11-26T12:00:00.1234567Z",
                "lastExecution": {"state": "Succeeded", "timeBegan": "2026-11-26T11:58:00Z", "timeEnded": "0001-01-01T00:00:00Z", "error": null}}
        }))
        .unwrap();
        let prev = JobStatus { last_restart_request_id: Some("r1".into()), ..Default::default() };
        let s = job_status(&job, Some(&prev));
        assert_eq!(s.template_id, "AD2AADProvisioning");
        assert_eq!(s.code.as_deref(), Some("Active"));
        assert_eq!(s.steady_state_last_achieved_time.as_deref(), Some("2026-11-26T12:00:00.1234567Z"));
        let e = s.last_execution.unwrap();
        assert_eq!(e.time_ended, None, "sentinel dropped");
        assert_eq!(e.error, None);
        assert_eq!(s.last_restart_request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn errors_are_described_by_code_and_message() {
        let e = |c: Option<&str>, m: Option<&str>| JobError { code: c.map(Into::into), message: m.map(Into::into) };
        assert_eq!(describe(&e(Some("C"), Some("m"))), "C: m");
        assert_eq!(describe(&e(Some("C"), Some(""))), "C");
        assert_eq!(describe(&e(None, Some("m"))), "m");
        assert_eq!(describe(&e(None, None)), "no error given");
        assert_eq!(describe(&e(Some("C"), Some("Agents are not running. "))), "C: Agents are not running");
    }
}
