//! The correctness rules of design.md §4 as tables over (step, outcome) → status and next plan,
//! and over (status, observation) → plan. Pure: no server, no clock, milliseconds.

use std::time::Duration;

use jiff::Timestamp;

use super::observe::{Jobs, Lookup, Observed, Read};
use super::plan::{self, Plan, Slot};
use super::reason::Reason;
use super::status::absorb;
use super::step::{Done, Next, RestartPurpose, Step};
use crate::api::{
    CloudSyncProfileSpec, CloudSyncProfileStatus, JobStatus, PendingInstantiate, PendingJobCreate, PendingRestart,
    RestartRequest, ServicePrincipalRef,
};
use crate::graph::error::classify_graph;
use crate::graph::model::{
    Application, Instantiated, PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE, Schedule, ServicePrincipal,
    SynchronizationJob, SynchronizationStatus, TaskExecution,
};
use crate::graph::{Cause, GraphError, Source};

const T0: &str = "2026-11-26T12:00:00Z";

fn at(offset_secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(offset_secs)
}

/// A profile with password hash sync, the fixture of the reconcile tests.
pub(crate) fn spec() -> CloudSyncProfileSpec {
    serde_json::from_value(serde_json::json!({
        "tenantId": "11111111-2222-3333-4444-555555555555",
        "credentials": {"secretRef": {"name": "c"}},
        "domain": "contoso.com",
        "passwordHashSync": true
    }))
    .unwrap()
}

/// How a call can end, as the rules care about it.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    /// 429 or 503: the service did not process it.
    Throttled,
    Unavailable,
    /// It never left.
    Refused,
    /// No answer in time: it may have been applied.
    Timeout,
    /// 500/502/504 after sending: it may have been applied.
    ServerError,
    NotFound,
    BadRequest,
}

fn graph_error(status: u16) -> GraphError {
    let retry_after = matches!(status, 429 | 503).then(|| Duration::from_secs(7));
    GraphError {
        kind: classify_graph(status, retry_after),
        source: Source::Graph,
        cause: Cause::ErrorStatus,
        operation: "test",
        status: Some(status),
        code: None,
        message: "refused".into(),
        request_id: None,
        retry_after,
    }
}

fn failure(a: Answer) -> GraphError {
    match a {
        Answer::Throttled => graph_error(429),
        Answer::Unavailable => graph_error(503),
        Answer::ServerError => graph_error(504),
        Answer::NotFound => graph_error(404),
        Answer::BadRequest => graph_error(400),
        Answer::Refused => GraphError::transport("test", Cause::Connect, "connection refused".into()),
        Answer::Timeout => GraphError::transport("test", Cause::Timeout, "timed out".into()),
        Answer::Ok => unreachable!(),
    }
}

fn job(template: &str, state: &str, code: &str) -> SynchronizationJob {
    SynchronizationJob {
        id: format!("{template}.j"),
        template_id: Some(template.into()),
        schedule: Some(Schedule { state: Some(state.into()), ..Default::default() }),
        status: Some(SynchronizationStatus { code: Some(code.into()), ..Default::default() }),
        synchronization_job_settings: vec![],
    }
}

fn ran_at(mut j: SynchronizationJob, began: Timestamp) -> SynchronizationJob {
    if let Some(s) = j.status.as_mut() {
        s.last_execution = Some(TaskExecution { time_began: Some(began), ..Default::default() });
    }
    j
}

fn sp(id: &str) -> ServicePrincipal {
    ServicePrincipal { id: id.into(), display_name: Some("contoso.com".into()), ..Default::default() }
}

/// A configuration recorded long ago (no replication lag expected), with both jobs in status.
fn settled_status() -> CloudSyncProfileStatus {
    let entry = |t: &str| JobStatus { template_id: t.into(), id: format!("{t}.j"), ..Default::default() };
    CloudSyncProfileStatus {
        service_principal: Some(ServicePrincipalRef {
            id: "sp-1".into(),
            application_id: Some("app-1".into()),
            display_name: Some("contoso.com".into()),
            recorded_at: Some("2026-11-01T00:00:00Z".into()),
            ..Default::default()
        }),
        jobs: vec![entry(PROVISIONING_TEMPLATE), entry(PASSWORD_HASH_TEMPLATE)],
        secrets_hash: Some(plan::desired_secrets(&spec()).1),
        // Written and checked: the schema rules have tests of their own.
        schema_hash: Some("sha256:settled".into()),
        schema_inputs_hash: Some(super::schema::inputs_hash(&spec())),
        ..Default::default()
    }
}

fn listed(jobs: Vec<SynchronizationJob>) -> Observed {
    Observed { jobs: Some(Jobs::Listed(jobs)), refreshed: true, ..Default::default() }
}

/// Writes the step's intent at `sent`, records `answer` for it, and returns what the next plan
/// (at `then`, with `seen` as observed then) asks for.
struct Case {
    status: CloudSyncProfileStatus,
    seen: Observed,
    next: Next,
}

fn run(step: &Step, answer: Answer, mut status: CloudSyncProfileStatus, mut seen: Observed, done: Done) -> Case {
    let prior = status.clone();
    if step.needs_intent() {
        step.before(&mut status, at(0));
    }
    let outcome = match answer {
        Answer::Ok => Ok(done),
        a => Err(failure(a)),
    };
    let recorded = step.after(&outcome, &prior, &mut status, &mut seen, at(1));
    Case { status, seen, next: recorded.next }
}

fn plan_at(status: &CloudSyncProfileStatus, seen: &Observed, secs: i64) -> Plan {
    let mut status = status.clone();
    absorb(&spec(), &mut status, seen, at(secs));
    plan::plan(&spec(), &status, seen, at(secs))
}

fn step_names(p: &Plan) -> Vec<&'static str> {
    match p {
        Plan::Wave(steps) => steps.iter().map(Step::name).collect(),
        _ => vec![],
    }
}

fn stops(c: &Case) -> bool {
    matches!(c.next, Next::Stop(_))
}

#[test]
fn never_a_second_configuration() {
    let step = Step::Instantiate { display_name: "contoso.com".into() };
    let created = Done::Instantiated(Box::new(Instantiated {
        application: Application { id: "app-1".into(), ..Default::default() },
        service_principal: sp("sp-1"),
    }));
    // (answer, intent left behind, the pass goes on)
    let table = [
        (Answer::Ok, false, true),
        (Answer::NotFound, true, true), // 404-but-created: look before anything else
        (Answer::Timeout, true, false),
        (Answer::ServerError, true, false),
        (Answer::Throttled, false, false),
        (Answer::Unavailable, false, false),
        (Answer::Refused, false, false),
        (Answer::BadRequest, false, false),
    ];
    for (answer, intent_kept, goes_on) in table {
        let c = run(&step, answer, CloudSyncProfileStatus::default(), Observed::default(), created.clone());
        assert_eq!(c.status.pending_instantiate.is_some(), intent_kept, "{answer:?}: intent");
        assert_eq!(!stops(&c), goes_on, "{answer:?}: next");
        if !intent_kept && !matches!(answer, Answer::Ok) {
            continue;
        }
        // Whatever the lookup shows next, a second instantiate is never planned while the first
        // may still appear (or once its objects are recorded).
        let mut seen = Observed { refreshed: true, ..c.seen.clone() };
        seen.lookup = Some(Lookup { name: "contoso.com".into(), found: vec![], application_id: None });
        let next = plan_at(&c.status, &seen, 60);
        assert!(!step_names(&next).contains(&"Instantiate"), "{answer:?}: {next:?}");
        if intent_kept {
            assert!(
                matches!(&next, Plan::Wait { problem, .. } if problem.reason == Reason::InstantiatePending),
                "{next:?}"
            );
            seen.lookup = Some(Lookup { name: "contoso.com".into(), found: vec![sp("sp-9")], application_id: None });
            let found = plan_at(&c.status, &seen, 60);
            assert!(matches!(&found, Plan::Wave(s) if matches!(&s[0], Step::Adopt { ours: true, .. })), "{found:?}");
        }
    }
}

#[test]
fn an_instantiate_intent_expires_only_after_its_grace() {
    let status = CloudSyncProfileStatus {
        pending_instantiate: Some(PendingInstantiate { display_name: "contoso.com".into(), since: T0.into() }),
        ..Default::default()
    };
    let seen = Observed {
        refreshed: true,
        lookup: Some(Lookup { name: "contoso.com".into(), found: vec![], application_id: None }),
        ..Default::default()
    };
    assert!(matches!(plan_at(&status, &seen, 9 * 60), Plan::Wait { .. }));
    assert_eq!(step_names(&plan_at(&status, &seen, 10 * 60)), ["Instantiate"]);
    let two = Lookup { found: vec![sp("a"), sp("b")], ..seen.lookup.clone().unwrap() };
    let p = plan_at(&status, &Observed { lookup: Some(two), ..seen }, 60);
    assert!(
        matches!(&p, Plan::Blocked { problem, .. } if problem.reason == Reason::AmbiguousServicePrincipal),
        "{p:?}"
    );
}

#[test]
fn never_a_second_job_of_a_template() {
    let step = Step::CreateJob { template: PROVISIONING_TEMPLATE, restart_done: None };
    let created = Done::Job(Box::new(job(PROVISIONING_TEMPLATE, "Disabled", "NotRun")));
    let mut status = settled_status();
    status.jobs.retain(|j| j.template_id != PROVISIONING_TEMPLATE);
    let only_phs = vec![job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    // (answer, a second create may be planned right after)
    let table = [
        (Answer::Ok, false),
        (Answer::Timeout, false),
        (Answer::ServerError, false),
        (Answer::NotFound, false),
        (Answer::Throttled, true),
        (Answer::Unavailable, true),
        (Answer::Refused, true),
        (Answer::BadRequest, true),
    ];
    for (answer, again) in table {
        let c = run(&step, answer, status.clone(), listed(only_phs.clone()), created.clone());
        if matches!(answer, Answer::Ok) {
            assert!(c.status.pending_job_creates.is_empty());
            let recorded = c.status.jobs.iter().find(|j| j.template_id == PROVISIONING_TEMPLATE).unwrap();
            assert_eq!(recorded.recorded_at.as_deref(), Some(at(1).to_string().as_str()));
        }
        // The job list does not show the job yet (replication): wait, never create it twice.
        let next = plan_at(&c.status, &listed(only_phs.clone()), 10);
        assert_eq!(step_names(&next).contains(&"CreateJob"), again, "{answer:?}: {next:?}");
    }
}

#[test]
fn an_unanswered_job_creation_is_waited_for_then_made_again() {
    let mut status = settled_status();
    status.jobs.retain(|j| j.template_id != PROVISIONING_TEMPLATE);
    status.pending_job_creates.push(PendingJobCreate { template_id: PROVISIONING_TEMPLATE.into(), since: T0.into() });
    let seen = listed(vec![job(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
    assert_eq!(plan_at(&status, &seen, 10), Plan::Converged { jobs_pending: true });
    assert_eq!(step_names(&plan_at(&status, &seen, 20)), ["CreateJob"]);
    // Listed meanwhile: the intent is cleared and nothing is created.
    let both =
        listed(vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
    let mut absorbed = status.clone();
    absorb(&spec(), &mut absorbed, &both, at(60));
    assert!(absorbed.pending_job_creates.is_empty());
}

#[test]
fn starts_are_at_most_once() {
    let stopped =
        vec![job(PROVISIONING_TEMPLATE, "Disabled", "NotRun"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    let step = Step::Start { template: PROVISIONING_TEMPLATE, job: format!("{PROVISIONING_TEMPLATE}.j"), series: None };
    assert_eq!(step_names(&plan_at(&settled_status(), &listed(stopped.clone()), 0)), ["StartJob"]);
    // (answer, started again while Graph still shows it stopped)
    let table = [
        (Answer::Ok, false),
        (Answer::Timeout, false),
        (Answer::ServerError, false),
        (Answer::Throttled, true),
        (Answer::Unavailable, true),
        (Answer::Refused, true),
    ];
    for (answer, again) in table {
        let c = run(&step, answer, settled_status(), listed(stopped.clone()), Done::Nothing);
        let next = plan_at(&c.status, &listed(stopped.clone()), 10);
        assert_eq!(step_names(&next) == ["StartJob"], again, "{answer:?}: {next:?}");
        // Long after, a job that still reads as stopped is started again.
        assert_eq!(step_names(&plan_at(&c.status, &listed(stopped.clone()), 10 * 60)), ["StartJob"], "{answer:?}");
    }
    let running = vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "NotRun")];
    assert_eq!(plan_at(&settled_status(), &listed(running), 0), Plan::Converged { jobs_pending: false });
}

#[test]
fn a_quarantine_is_started_once_per_series_and_held_deletes_never() {
    let quarantined = |reason: &str, series: i64| {
        let mut j = job(PROVISIONING_TEMPLATE, "Active", "Quarantine");
        j.status.as_mut().unwrap().quarantine = Some(crate::graph::model::Quarantine {
            reason: Some(reason.into()),
            series_began: Some(at(series)),
            ..Default::default()
        });
        vec![j, job(PASSWORD_HASH_TEMPLATE, "Active", "Active")]
    };
    let jobs = quarantined("EncounteredQuarantineException", -3600);
    let Plan::Wave(steps) = plan_at(&settled_status(), &listed(jobs.clone()), 0) else { panic!() };
    let c = run(&steps[0], Answer::Ok, settled_status(), listed(jobs.clone()), Done::Nothing);
    assert_eq!(plan_at(&c.status, &listed(jobs), 3600), Plan::Converged { jobs_pending: false }, "same series");
    let next = quarantined("EncounteredQuarantineException", 7200);
    assert_eq!(step_names(&plan_at(&c.status, &listed(next), 7300)), ["StartJob"], "a new series");
    let held = quarantined("TooManyDeletes", 0);
    assert_eq!(plan_at(&settled_status(), &listed(held), 60), Plan::Converged { jobs_pending: false });
}

fn with_restart(id: &str) -> CloudSyncProfileSpec {
    let mut s = spec();
    s.restart = Some(RestartRequest { request_id: id.into(), reset_scope: Some("Full".into()) });
    s
}

#[test]
fn a_requested_restart_is_never_lost() {
    let spec = with_restart("r1");
    let running = vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    let step = Step::Restart {
        template: PROVISIONING_TEMPLATE,
        job: format!("{PROVISIONING_TEMPLATE}.j"),
        scope: "Full".into(),
        request_id: "r1".into(),
        purpose: RestartPurpose::Request,
    };
    let restarts = |status: &CloudSyncProfileStatus, jobs: Vec<SynchronizationJob>| -> Vec<&'static str> {
        let mut status = status.clone();
        let seen = listed(jobs);
        absorb(&spec, &mut status, &seen, at(120));
        let Plan::Wave(steps) = plan::plan(&spec, &status, &seen, at(120)) else { return vec![] };
        steps.iter().filter(|s| matches!(s, Step::Restart { template, .. } | Step::ConfirmRestart { template, .. } if *template == PROVISIONING_TEMPLATE)).map(Step::name).collect()
    };
    // (answer, done at once, what the next pass does when the job has not run since / has)
    let table = [
        (Answer::Ok, true, None, None),
        (Answer::Timeout, false, Some("RestartJob"), Some("ConfirmRestart")),
        (Answer::ServerError, false, Some("RestartJob"), Some("ConfirmRestart")),
        (Answer::Throttled, false, Some("RestartJob"), Some("RestartJob")),
        (Answer::Refused, false, Some("RestartJob"), Some("RestartJob")),
    ];
    for (answer, done, not_ran, ran) in table {
        let c = run(&step, answer, settled_status(), listed(running.clone()), Done::Nothing);
        let entry = c.status.jobs.iter().find(|j| j.template_id == PROVISIONING_TEMPLATE).unwrap();
        assert_eq!(entry.last_restart_request_id.as_deref() == Some("r1"), done, "{answer:?}");
        assert_eq!(
            entry.pending_restart.is_some(),
            !done && !super::step::never_applied(&failure(answer)),
            "{answer:?}"
        );
        assert_eq!(restarts(&c.status, running.clone()).first().copied(), not_ran, "{answer:?}: job has not run");
        let after = vec![ran_at(running[0].clone(), at(90)), running[1].clone()];
        assert_eq!(restarts(&c.status, after).first().copied(), ran, "{answer:?}: job ran since");
        // A run moments after the request proves nothing (the clocks may differ): sent again.
        let soon = vec![ran_at(running[0].clone(), at(30)), running[1].clone()];
        assert_eq!(restarts(&c.status, soon).first().copied(), not_ran, "{answer:?}: job ran just after");
    }
    // A kill between the intent and the call: only the intent is in status, and the restart is
    // sent again (a run before the intent proves nothing).
    let mut killed = settled_status();
    killed.jobs[0].pending_restart = Some(PendingRestart { request_id: "r1".into(), since: at(0).to_string() });
    let before = vec![ran_at(running[0].clone(), at(-30)), running[1].clone()];
    assert_eq!(restarts(&killed, before), ["RestartJob"]);
}

#[test]
fn a_fresh_job_takes_the_pending_restart_as_done() {
    let spec = with_restart("r1");
    let job_plan =
        plan::plan(&spec, &CloudSyncProfileStatus { jobs: vec![], ..settled_status() }, &listed(vec![]), at(0));
    let Plan::Wave(steps) = job_plan else { panic!("{job_plan:?}") };
    assert!(steps.contains(&Step::CreateJob { template: PROVISIONING_TEMPLATE, restart_done: Some("r1".into()) }));
}

#[test]
fn replication_lag_is_waiting_and_a_deletion_is_confirmed() {
    let mut fresh = settled_status();
    fresh.service_principal.as_mut().unwrap().recorded_at = Some(T0.into());
    let lag = Observed { jobs: Some(Jobs::Failed(graph_error(404))), ..Default::default() };
    assert!(matches!(plan_at(&fresh, &lag, 60), Plan::Retry(_)), "404 moments after creation");
    let forbidden = Observed { jobs: Some(Jobs::Failed(graph_error(403))), ..Default::default() };
    assert!(matches!(plan_at(&fresh, &forbidden, 60), Plan::Retry(_)), "403 moments after creation");
    assert!(
        matches!(plan_at(&settled_status(), &forbidden, 60), Plan::Blocked { slot: Slot::ServicePrincipal, .. }),
        "403 on an old configuration needs a person"
    );
    // Outside the grace the list is read with a confirming read, and only a confirmed deletion
    // forgets the configuration.
    assert_eq!(
        plan_at(&settled_status(), &Observed::default(), 0),
        Plan::Read(Read::Jobs { service_principal: "sp-1".into(), eventual: false, confirm: true })
    );
    let gone = Observed { jobs: Some(Jobs::Gone), ..Default::default() };
    assert_eq!(step_names(&plan_at(&settled_status(), &gone, 0)), ["ForgetServicePrincipal"]);
    let unlisted = Observed { jobs: Some(Jobs::Unlisted), ..Default::default() };
    assert!(matches!(plan_at(&settled_status(), &unlisted, 0), Plan::Blocked { slot: Slot::Jobs, .. }));
}

#[test]
fn throttling_is_waiting_exactly_as_long_as_asked() {
    for answer in [Answer::Throttled, Answer::Unavailable] {
        let e = super::Error::Graph(failure(answer));
        assert_eq!(super::backoff(&e, 3, 0.5), Duration::from_secs(7), "{answer:?}: Retry-After wins");
    }
    let e = super::Error::Graph(failure(Answer::ServerError));
    assert_eq!(super::backoff(&e, 1, 0.5), Duration::from_secs(5));
    assert_eq!(super::backoff(&e, 3, 0.5), Duration::from_secs(20));
    assert_eq!(super::backoff(&e, 30, 0.5), Duration::from_secs(300), "capped");
    assert_eq!(super::backoff(&e, 1, 0.0), Duration::from_secs_f64(3.75), "jitter −25 %");
}

#[test]
fn an_adopted_configuration_is_never_deleted_or_pruned() {
    let mut adopted = settled_status();
    adopted.service_principal.as_mut().unwrap().adopted = Some(true);
    let mut no_phs = spec();
    no_phs.password_hash_sync = Some(false);
    let both =
        listed(vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")]);
    let mut s = adopted.clone();
    absorb(&no_phs, &mut s, &both, at(0));
    let p = plan::plan(&no_phs, &s, &both, at(0));
    assert!(!step_names(&p).contains(&"DeleteJob"), "{p:?}");
    assert_eq!(plan::keep_in_graph(&spec(), &adopted), Some(plan::Keep::Adopted("sp-1".into())));
    // Created by the operator: pruned when password hash sync is turned off, deleted with the profile.
    let mut ours = settled_status();
    absorb(&no_phs, &mut ours, &both, at(0));
    assert_eq!(step_names(&plan::plan(&no_phs, &ours, &both, at(0))), ["DeleteJob", "PutSecrets"]);
    assert_eq!(plan::keep_in_graph(&spec(), &settled_status()), None);
    let deleting = plan::cleanup(&settled_status(), &both, at(0));
    assert_eq!(step_names(&deleting), ["DeleteJob", "DeleteJob"]);
}

#[test]
fn cleanup_removes_jobs_then_application_then_service_principal() {
    let mut status = settled_status();
    let mut seen = listed(vec![job(PROVISIONING_TEMPLATE, "Active", "Active")]);
    let mut order = Vec::new();
    for _ in 0..6 {
        match plan::cleanup(&status, &seen, at(0)) {
            Plan::Wave(steps) => {
                for step in steps {
                    order.push(step.name());
                    let prior = status.clone();
                    step.after(&Ok(Done::Gone), &prior, &mut status, &mut seen, at(0));
                }
            }
            Plan::Converged { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(order, ["DeleteJob", "DeleteApplication", "DeleteServicePrincipal"]);
    assert!(status.service_principal.is_none());
}

#[test]
fn intents_come_before_calls_and_a_stale_cache_is_refreshed_first() {
    // A plan with a non-idempotent step is preceded by a fresh read of status.
    let seen = Observed { jobs: Some(Jobs::Listed(vec![])), ..Default::default() };
    assert_eq!(plan_at(&settled_status(), &seen, 0), Plan::Read(Read::Status));
    let mut st = settled_status();
    let step = Step::Start { template: PROVISIONING_TEMPLATE, job: "p".into(), series: Some("s1".into()) };
    step.before(&mut st, at(0));
    assert_eq!(st.jobs[0].last_start_time.as_deref(), Some(at(0).to_string().as_str()));
    assert_eq!(st.jobs[0].quarantine_series_started.as_deref(), Some("s1"));
}

/// A template default the schema rules work on: one editable rule, users and groups.
fn default_schema() -> serde_json::Value {
    serde_json::json!({"synchronizationRules": [{"id": "r1", "editable": true,
        "containerFilter": {"includedContainers": []}, "groupFilter": {"includedGroups": []},
        "objectMappings": [
            {"name": "users", "sourceObjectName": "user", "attributeMappings": []},
            {"name": "inetOrgPersons", "sourceObjectName": "inetOrgPerson", "attributeMappings": []}]}]})
}

fn scoped(ous: &[&str]) -> CloudSyncProfileSpec {
    let mut s = spec();
    s.scope = Some(crate::api::Scope {
        organizational_units: Some(ous.iter().map(|o| crate::api::DistinguishedName((*o).into())).collect()),
        groups: None,
    });
    s
}

/// What Graph holds after the schema for `spec` was written.
fn written(spec: &CloudSyncProfileSpec) -> serde_json::Value {
    super::schema::desired(&default_schema(), &serde_json::json!({}), spec, &Default::default(), true).unwrap()
}

fn with_schema(jobs: Vec<SynchronizationJob>, held: serde_json::Value, due: bool) -> Observed {
    Observed {
        schema: Some(super::observe::HeldSchema::new(held)),
        template_schema: Some(std::sync::Arc::new(default_schema())),
        schema_check_due: due,
        ..listed(jobs)
    }
}

#[test]
fn a_steady_schema_is_read_only_for_the_drift_check_and_written_only_when_it_differs() {
    let spec = scoped(&["OU=A,DC=x,DC=y"]);
    let mut status = settled_status();
    status.schema_hash = Some(super::schema::hash(&written(&spec)));
    status.schema_inputs_hash = Some(super::schema::inputs_hash(&spec));
    let running =
        || vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    // Not due: no schema read at all.
    assert_eq!(plan::plan(&spec, &status, &listed(running()), at(0)), Plan::Converged { jobs_pending: false });
    // Due: one read; equal to what was written: nothing else.
    let due = Observed { schema_check_due: true, ..listed(running()) };
    assert!(matches!(plan::plan(&spec, &status, &due, at(0)), Plan::Read(Read::Schema { .. })));
    let same = with_schema(running(), written(&spec), true);
    assert_eq!(plan::plan(&spec, &status, &same, at(0)), Plan::Converged { jobs_pending: false });
    // Changed in the portal: put back, as drift, with what differed.
    let edited = written(&scoped(&["OU=B,DC=x,DC=y"]));
    match plan::plan(&spec, &status, &with_schema(running(), edited, true), at(0)) {
        Plan::Wave(steps) => match &steps[..] {
            [Step::PutSchema { drift: Some(d), .. }] => assert!(d[0].starts_with("scope OUs"), "{d:?}"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_scope_change_restarts_a_job_that_ran_once_and_a_new_job_never() {
    let before = scoped(&["OU=A,DC=x,DC=y"]);
    let after = scoped(&["OU=A,DC=x,DC=y", "OU=B,DC=x,DC=y"]);
    let mut status = settled_status();
    status.schema_hash = Some(super::schema::hash(&written(&before)));
    status.schema_inputs_hash = Some(super::schema::inputs_hash(&before));
    let ran = vec![
        ran_at(job(PROVISIONING_TEMPLATE, "Active", "Active"), at(-600)),
        job(PASSWORD_HASH_TEMPLATE, "Active", "Active"),
    ];
    let fresh = vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    let put = |jobs: Vec<SynchronizationJob>| match plan::plan(
        &after,
        &status,
        &with_schema(jobs, written(&before), false),
        at(0),
    ) {
        Plan::Wave(steps) => match steps.into_iter().next() {
            Some(Step::PutSchema { drift, scope_restart, .. }) => (drift, scope_restart),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let (drift, owed) = put(fresh);
    assert!(drift.is_none(), "the profile changed: no drift");
    assert!(owed.is_none(), "a job that never ran imports everything on its first run");
    let (_, owed) = put(ran.clone());
    let owed = owed.expect("a restart is owed");
    assert_eq!(owed.reset_scope, "Watermark");
    // Recorded after the write: the next plan restarts the provisioning job once, for the scope.
    status.scope_restart = Some(owed.clone());
    status.schema_hash = Some(super::schema::hash(&written(&after)));
    status.schema_inputs_hash = Some(super::schema::inputs_hash(&after));
    let steps = match plan::plan(&after, &status, &listed(ran.clone()), at(0)) {
        Plan::Wave(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = steps[0].clone();
    assert!(
        matches!(&step, Step::Restart { purpose: RestartPurpose::Scope, scope, .. } if scope == "Watermark"),
        "{step:?}"
    );
    let prior = status.clone();
    step.before(&mut status, at(0));
    let r = step.after(&Ok(Done::Nothing), &prior, &mut status, &mut listed(ran.clone()), at(0));
    assert_eq!(r.notice.map(|n| n.reason), Some(Reason::ScopeRestarted));
    assert!(status.scope_restart.is_none(), "done once");
    let names: Vec<&str> = match plan::plan(&after, &status, &listed(ran), at(1)) {
        Plan::Wave(s) => s.iter().map(Step::name).collect(),
        _ => vec![],
    };
    assert!(!names.contains(&"RestartJob"), "{names:?}");
}

#[test]
fn the_template_default_is_read_only_when_the_schema_is_built_from_it() {
    let jobs = || vec![job(PROVISIONING_TEMPLATE, "Active", "NotRun"), job(PASSWORD_HASH_TEMPLATE, "Active", "NotRun")];
    let mut status = settled_status();
    (status.schema_hash, status.schema_inputs_hash) = (None, None);
    let held_only = |held: serde_json::Value| Observed {
        schema: Some(super::observe::HeldSchema::new(held)),
        schema_check_due: true,
        ..listed(jobs())
    };
    // Password hash sync alone on a job with an editable rule: CredentialData goes into the job's
    // own schema, so the default (one read and one parse per new profile) is not needed.
    match plan::plan(&spec(), &status, &held_only(default_schema()), at(0)) {
        Plan::Wave(steps) => assert!(matches!(&steps[..], [Step::PutSchema { from_template: false, .. }]), "{steps:?}"),
        other => panic!("{other:?}"),
    }
    // Scope (or mappings) builds the rule from the default; so does a job with no editable rule.
    let wants_default = |spec: &CloudSyncProfileSpec, held: serde_json::Value| {
        matches!(plan::plan(spec, &status, &held_only(held), at(0)), Plan::Read(Read::TemplateSchema { .. }))
    };
    assert!(wants_default(&scoped(&["OU=A,DC=x,DC=y"]), default_schema()));
    assert!(wants_default(&spec(), serde_json::json!({"synchronizationRules": [{"id": "r0", "editable": false}]})));
}

#[test]
fn an_invalid_expression_is_blocked_before_any_write() {
    let mut spec = spec();
    spec.attribute_mappings = Some(vec![crate::api::AttributeMapping {
        object: crate::api::ObjectType::User,
        target: "department".into(),
        attribute: None,
        constant: None,
        expression: Some("Join(".into()),
        flow: None,
    }]);
    let status = settled_status();
    let running = vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    let mut seen = with_schema(running, default_schema(), false);
    assert!(
        matches!(plan::plan(&spec, &status, &seen, at(0)), Plan::Read(Read::Parse { ref expressions, .. }) if expressions == &["Join(".to_string()])
    );
    seen.parsed.insert("Join(".into(), super::schema::Parsed::Invalid("Unexpected end".into()));
    match plan::plan(&spec, &status, &seen, at(0)) {
        Plan::Blocked { slot: Slot::Schema, problem } => assert_eq!(problem.reason, Reason::InvalidExpression),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_restart_a_scope_change_owes_survives_a_lost_answer_and_a_crash() {
    let before = scoped(&["OU=A,DC=x,DC=y"]);
    let after = scoped(&["OU=B,DC=x,DC=y"]);
    let mut status = settled_status();
    status.schema_hash = Some(super::schema::hash(&written(&before)));
    status.schema_inputs_hash = Some(super::schema::inputs_hash(&before));
    let ran = || {
        vec![
            ran_at(job(PROVISIONING_TEMPLATE, "Active", "Active"), at(-600)),
            job(PASSWORD_HASH_TEMPLATE, "Active", "Active"),
        ]
    };
    let Plan::Wave(steps) = plan::plan(&after, &status, &with_schema(ran(), written(&before), false), at(0)) else {
        panic!("a wave")
    };
    let put = steps[0].clone();
    assert!(put.needs_intent(), "the owed restart is written before the PUT");
    for (answer, kept) in
        [(Answer::Timeout, true), (Answer::ServerError, true), (Answer::BadRequest, false), (Answer::Throttled, false)]
    {
        let mut s = status.clone();
        put.before(&mut s, at(0));
        assert!(s.scope_restart.is_some());
        put.after(&Err(failure(answer)), &status, &mut s, &mut listed(ran()), at(0));
        assert_eq!(s.scope_restart.is_some(), kept, "{answer:?}");
    }
    // A crash after the PUT landed: status has the intent, Graph the new scope. The next pass
    // records the schema and restarts; it does not lose the restart.
    let mut crashed = status.clone();
    put.before(&mut crashed, at(0));
    let seen = with_schema(ran(), written(&after), false);
    assert!(matches!(plan::plan(&after, &crashed, &seen, at(5)), Plan::Wave(ref s) if s[0].name() == "RecordSchema"));
    let record = Step::RecordSchema {
        hash: super::schema::hash(&written(&after)),
        inputs: super::schema::inputs_hash(&after),
        from_template: true,
    };
    record.after(&Ok(Done::Nothing), &crashed.clone(), &mut crashed, &mut seen.clone(), at(5));
    let Plan::Wave(next) = plan::plan(&after, &crashed, &listed(ran()), at(6)) else { panic!("a wave") };
    assert!(matches!(&next[0], Step::Restart { purpose: RestartPurpose::Scope, .. }), "{next:?}");
}

const ME: &str = "cloudsync-operator:c1/ns/p";

fn owned_by(owner: &str) -> ServicePrincipal {
    ServicePrincipal {
        tags: vec!["WindowsAzureActiveDirectoryIntegratedApp".into(), format!("cloudsync.io/owner={owner}")],
        ..sp("sp-1")
    }
}

fn as_me(mut seen: Observed) -> Observed {
    seen.owner = Some(super::ownership::Owner { me: ME.into(), take_over: None, checked: true });
    seen
}

#[test]
fn a_configuration_this_pass_instantiated_is_claimed_in_the_wave_that_creates_its_jobs() {
    let step = Step::Instantiate { display_name: "contoso.com".into() };
    let created = Done::Instantiated(Box::new(Instantiated {
        application: Application { id: "app-1".into(), ..Default::default() },
        service_principal: ServicePrincipal {
            tags: vec!["WindowsAzureActiveDirectoryIntegratedApp".into()],
            ..sp("sp-1")
        },
    }));
    // What a pass knows right before it instantiates: status re-read, nothing listed.
    let before = as_me(Observed { refreshed: true, ..Default::default() });
    let c = run(&step, Answer::Ok, CloudSyncProfileStatus::default(), before, created);
    // The answer says there are no jobs and carries the tags: no read, and one wave of first
    // writes whose intents' patch also carries the new id.
    let next = plan_at(&c.status, &c.seen, 2);
    let Plan::Wave(steps) = &next else { panic!("no read, no wait: {next:?}") };
    assert_eq!(step_names(&next), ["ClaimOwnership", "CreateJob", "CreateJob", "PutSecrets"]);
    assert!(steps.iter().any(Step::needs_intent));
    let Step::ClaimOwnership { tags, previous, .. } = &steps[0] else { unreachable!() };
    assert_eq!(tags, &["WindowsAzureActiveDirectoryIntegratedApp".to_string(), format!("cloudsync.io/owner={ME}")]);
    assert_eq!(previous, &None);
    let c = run(&steps[0], Answer::Ok, c.status, c.seen, Done::Nothing);
    assert_eq!(c.status.service_principal.as_ref().and_then(|s| s.owner.as_deref()), Some(ME));
    // Claimed: the rest of the configuration never claims again.
    let names = step_names(&plan_at(&c.status, &c.seen, 3));
    assert!(names.contains(&"CreateJob") && !names.contains(&"ClaimOwnership"), "{names:?}");

    // A failed claim leaves no owner recorded: the next pass reads and claims again.
    let claim =
        Step::ClaimOwnership { service_principal: "sp-1".into(), tags: vec![], owner: ME.into(), previous: None };
    let mut recorded = settled_status();
    recorded.service_principal.as_mut().unwrap().adopted = Some(true);
    for answer in [Answer::Timeout, Answer::Throttled, Answer::BadRequest] {
        let c = run(&claim, answer, recorded.clone(), as_me(listed(vec![])), Done::Nothing);
        assert!(stops(&c) && c.status.service_principal.as_ref().unwrap().owner.is_none(), "{answer:?}");
    }
}

#[test]
fn an_adopted_or_found_configuration_is_read_and_claimed_before_anything_else() {
    // Adopted (someone else's), or found after an instantiate whose answer was lost: another
    // install may have tagged it meanwhile, so its tags are read and the claim comes alone.
    for ours in [false, true] {
        let adopt = Step::Adopt { service_principal: sp("sp-1"), application_id: Some("app-1".into()), ours };
        let c = run(&adopt, Answer::Ok, CloudSyncProfileStatus::default(), as_me(listed(vec![])), Done::Nothing);
        assert_eq!(c.seen.instantiated, None);
        let fresh = Observed { service_principal: None, ..c.seen.clone() };
        assert!(matches!(plan_at(&c.status, &fresh, 2), Plan::Read(Read::ServicePrincipal { .. })), "ours: {ours}");
        let held = Observed { service_principal: Some(sp("sp-1")), ..c.seen };
        assert_eq!(step_names(&plan_at(&c.status, &held, 2)), ["ClaimOwnership"], "ours: {ours}");
    }
    // A service principal recorded by an earlier pass, with no owner yet: the same.
    let mut recorded = settled_status();
    recorded.secrets_hash = None;
    let seen = Observed { service_principal: Some(sp("sp-1")), ..as_me(listed(vec![])) };
    assert_eq!(step_names(&plan_at(&recorded, &seen, 0)), ["ClaimOwnership"]);
    // Even when Graph answered for that same id in this pass's instantiate but another owner
    // tagged it since (the claim would take it over): blocked, never merged.
    let other = "cloudsync-operator:c2/other/q";
    let seen = Observed { service_principal: Some(owned_by(other)), instantiated: Some("sp-1".into()), ..seen };
    assert!(matches!(plan_at(&recorded, &seen, 0), Plan::Blocked { .. }));
}

#[test]
fn a_configuration_owned_elsewhere_gets_no_write() {
    let jobs = vec![job(PROVISIONING_TEMPLATE, "Disabled", "NotRun")];
    let mut adopted = settled_status();
    adopted.secrets_hash = None;
    adopted.service_principal.as_mut().unwrap().adopted = Some(true);
    // Without the tags read yet: read them, do nothing else.
    let seen = as_me(listed(jobs.clone()));
    assert_eq!(plan_at(&adopted, &seen, 0), Plan::Read(Read::ServicePrincipal { id: "sp-1".into(), eventual: false }));
    let other = "cloudsync-operator:c2/other/q";
    let seen = Observed { service_principal: Some(owned_by(other)), ..seen };
    match plan_at(&adopted, &seen, 0) {
        Plan::Blocked { slot: Slot::ServicePrincipal, problem } => {
            assert_eq!(problem.reason, Reason::OwnedElsewhere);
            assert!(problem.message.contains(other), "{}", problem.message);
        }
        p => panic!("expected OwnedElsewhere, got {p:?}"),
    }
    // Our own tag (found after a crash between the claim and its status write) is only recorded.
    let mine = Observed { service_principal: Some(owned_by(ME)), ..seen };
    assert_eq!(step_names(&plan_at(&adopted, &mine, 0)), ["RecordOwner"]);
}

#[test]
fn a_recorded_owner_costs_nothing_in_the_steady_state() {
    let jobs = vec![job(PROVISIONING_TEMPLATE, "Active", "Active"), job(PASSWORD_HASH_TEMPLATE, "Active", "Active")];
    let mut st = settled_status();
    st.service_principal.as_mut().unwrap().owner = Some(ME.into());
    let p = plan_at(&st, &as_me(listed(jobs)), 0);
    assert!(matches!(p, Plan::Converged { .. }), "no read of the service principal: {p:?}");
}
