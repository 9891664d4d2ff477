//! The executor: runs a wave of steps exactly as planned and takes no decisions. It saves the
//! intents of a wave with non-idempotent steps before any call goes out, runs the calls in
//! parallel, records each outcome as it arrives (status, Event), and reports the first failure
//! for the pass to handle.
//!
//! A `persist_at_once` outcome (the id of a service principal just instantiated) is held by the
//! pass, not saved by itself: when the next thing the pass does is a wave with intents whose
//! Retry-After gate is open, those intents' patch carries it, right before the calls, so only pure
//! planning lies between the answer and its patch, as before. Otherwise it goes out first, alone:
//! before a wave without intents, before any Retry-After wait (intents are written right before
//! the calls, never before such a wait), and before any read or the end of the pass (`Pass::hold`).

use std::collections::HashMap;

use tokio::task::JoinSet;
use tracing::{Instrument, error};

use super::Error;
use super::observe::Observed;
use super::pass::Pass;
use super::plan::Slot;
use super::step::{Done, Next, Notice, Outcome, Step};
use crate::graph::{Cause, GraphError, Tenant};
use crate::metrics::Metrics;

/// The step that failed first, and how.
pub type Failure = (Slot, GraphError);

/// Runs `steps`. `Ok(Some(failure))`: a step failed and the pass must stop; its outcome, like
/// every other, is already recorded.
pub async fn wave(
    pass: &mut Pass,
    graph: &Tenant,
    steps: &[Step],
    seen: &mut Observed,
) -> Result<Option<Failure>, Error> {
    pass.ensure_leader()?;
    let prior = pass.status().clone();
    let sender = match intents(pass, graph, steps).await? {
        Ok(sender) => sender,
        Err(failure) => return Ok(Some(failure)),
    };
    let target = Target {
        service_principal: pass.status().service_principal.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
        eventual: super::plan::eventual(pass.status(), pass.now()),
    };
    let mut calls = JoinSet::new();
    let mut index = HashMap::new();
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if step.status_only() {
            outcomes.push((i, Ok(Done::Nothing)));
            continue;
        }
        let (step, graph, target) = (step.clone(), sender.clone(), target.clone());
        // The task keeps the pass's span, so its Graph calls log with the profile and tenant.
        let handle = calls.spawn(async move { send(&step, &graph, &target).await }.in_current_span());
        index.insert(handle.id(), i);
    }

    let mut failure = None;
    let mut notices = Vec::new();
    for (i, outcome) in outcomes {
        record(pass, &steps[i], &outcome, &prior, seen, &mut failure, &mut notices);
        if steps[i].persist_at_once() {
            pass.hold();
        }
    }
    while let Some(joined) = calls.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(task_failed(&pass.ctx.metrics, &e, index.get(&e.id()).map(|i| &steps[*i])))),
        };
        let Some(&i) = index.get(&id) else { continue };
        record(pass, &steps[i], &outcome, &prior, seen, &mut failure, &mut notices);
        if steps[i].persist_at_once() {
            pass.hold();
        }
    }
    for notice in merge_notices(notices) {
        pass.notify(notice).await;
    }
    // The other outcomes go out with the next status write of the pass: the next wave's intents,
    // or the conditions at its end. A crash before then loses nothing that matters: a job id
    // lost is found again in the jobs list (its creation intent is still there), a secret hash or
    // a pause is made again, idempotently. A failed wave ends the pass, so it is written now.
    if failure.is_some() {
        pass.save().await?;
    }
    Ok(failure)
}

/// Writes the intents of a wave's non-idempotent steps and returns the client to send them with.
/// Intents are written right before the calls, never before a Retry-After wait: a process killed
/// while it waits must leave no mark of a call it never sent. The returned client refuses a call
/// at once (certainly not sent) if another answer closed the gate meanwhile.
///
/// A record the pass holds rides in the intents' patch only when no wait comes first; otherwise
/// it is written alone before the wait. While it is held the gate is looked at, never waited on:
/// a gate closed after that look makes the fail-fast client refuse the calls instead.
async fn intents(pass: &mut Pass, graph: &Tenant, steps: &[Step]) -> Result<Result<Tenant, Failure>, Error> {
    let first = steps.iter().find(|s| s.needs_intent());
    if flush_first(first.is_some(), graph.retry_after_pending().is_some()) {
        pass.flush().await?;
    }
    let Some(first) = first else { return Ok(Ok(graph.clone())) };
    if !pass.holds()
        && let Err(e) = graph.until_open().await
    {
        return Ok(Err((first.slot(), e)));
    }
    let now = pass.now();
    for step in steps {
        step.before(pass.status_mut(), now);
    }
    pass.save().await?;
    Ok(Ok(graph.fail_fast()))
}

/// Whether a record the pass holds is written alone before a wave: unless the wave has intents and
/// its gate is open, in which case the intents' patch carries it.
fn flush_first(has_intents: bool, gate_closed: bool) -> bool {
    !has_intents || gate_closed
}

fn record(
    pass: &mut Pass,
    step: &Step,
    outcome: &Outcome,
    prior: &crate::api::CloudSyncProfileStatus,
    seen: &mut Observed,
    failure: &mut Option<Failure>,
    notices: &mut Vec<(Notice, &'static str)>,
) {
    let now = pass.now();
    let recorded = step.after(outcome, prior, pass.status_mut(), seen, now);
    if recorded.wrote {
        pass.writes += 1;
    }
    if let Some(notice) = recorded.notice {
        notices.push((notice, step.name()));
    }
    if let Next::Stop(e) = recorded.next {
        failure.get_or_insert((step.slot(), e));
    }
}

/// One Event per kind of outcome of a wave: the two jobs created (or started, or failing the same
/// way) in one wave make one Event naming both, not two. Events were half of the apiserver
/// requests a new profile cost. A merged Event's action is the step's name, so it is not counted
/// into a series with a later Event about one of the jobs alone.
fn merge_notices(notices: Vec<(Notice, &'static str)>) -> Vec<Notice> {
    let mut merged: Vec<Notice> = Vec::new();
    for (notice, step) in notices {
        match merged.iter_mut().find(|m| m.type_ == notice.type_ && m.reason == notice.reason) {
            Some(m) => {
                m.note = format!("{}; {}", m.note, notice.note);
                m.action = step.to_string();
            }
            None => merged.push(notice),
        }
    }
    merged
}

/// A call's task panicked or was cancelled: its outcome is unknown, so its intent stays (the
/// next pass looks in Graph before anything is repeated).
fn task_failed(metrics: &Metrics, e: &tokio::task::JoinError, step: Option<&Step>) -> GraphError {
    let name = step.map_or("unknown", Step::name);
    error!(step = name, error = %e, "a Graph call's task failed; its outcome is unknown");
    metrics.step_task_failed(name);
    GraphError::transport("step.task", Cause::Interrupted, format!("the {name} call's task failed: {e}"))
}

/// The service principal the wave's job steps act on, and whether Graph may still lag behind it.
#[derive(Clone)]
struct Target {
    service_principal: String,
    eventual: bool,
}

/// The one Graph call behind each step. A delete that finds its object gone has done its job.
async fn send(step: &Step, g: &Tenant, t: &Target) -> Outcome {
    let gone = |r: Result<(), GraphError>| match r {
        Ok(()) => Ok(Done::Nothing),
        Err(e) if e.is_not_found() => Ok(Done::Gone),
        Err(e) => Err(e),
    };
    let (sp, eventual) = (t.service_principal.as_str(), t.eventual);
    match step {
        Step::EnableTenantFlag { organization } => {
            g.enable_on_premises_sync(organization).await?;
            let confirmed = g.organization().await?.on_premises_sync_enabled == Some(true);
            Ok(Done::FlagSet { confirmed })
        }
        Step::Instantiate { display_name } => {
            g.instantiate_cloud_sync(display_name).await.map(|c| Done::Instantiated(Box::new(c)))
        }
        Step::CreateJob { template, .. } => g.create_job(sp, template, eventual).await.map(|j| Done::Job(Box::new(j))),
        Step::DeleteJob { id, .. } => gone(g.delete_job(sp, id).await),
        Step::PutSecrets { secrets, .. } => g.put_secrets(sp, secrets, eventual).await.map(|()| Done::Nothing),
        Step::Start { job, .. } => g.start_job(sp, job).await.map(|()| Done::Nothing),
        Step::Pause { job, .. } => g.pause_job(sp, job).await.map(|()| Done::Nothing),
        Step::Restart { job, scope, .. } => g.restart_job(sp, job, scope).await.map(|()| Done::Nothing),
        Step::PutSchema { job, schema, .. } => g.put_job_schema(sp, job, schema).await.map(|()| Done::Nothing),
        Step::ClaimOwnership { service_principal, tags, .. } => {
            g.set_service_principal_tags(service_principal, tags).await.map(|()| Done::Nothing)
        }
        Step::DeleteApplication { id } => gone(g.delete_application(id).await),
        Step::DeleteServicePrincipal { id } => gone(g.delete_service_principal(id).await),
        Step::Adopt { .. }
        | Step::ForgetServicePrincipal { .. }
        | Step::ConfirmRestart { .. }
        | Step::RecordSchema { .. }
        | Step::RecordOwner { .. } => Ok(Done::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use kube::runtime::events::EventType;

    use crate::reconcile::reason::Reason;

    #[test]
    fn one_event_per_kind_of_outcome_of_a_wave() {
        let n = |type_, reason, action: &str, note: &str| Notice {
            type_,
            reason,
            action: action.into(),
            note: note.into(),
        };
        let merged = merge_notices(vec![
            (n(EventType::Normal, Reason::JobCreated, "CreateA", "created job a (A)"), "CreateJob"),
            (n(EventType::Normal, Reason::SecretsUpdated, "PutSecrets", "wrote the secrets"), "PutSecrets"),
            (n(EventType::Normal, Reason::JobCreated, "CreateB", "created job b (B)"), "CreateJob"),
            (n(EventType::Warning, Reason::JobCreated, "CreateB", "refused"), "CreateJob"),
        ]);
        assert_eq!(
            merged,
            vec![
                n(EventType::Normal, Reason::JobCreated, "CreateJob", "created job a (A); created job b (B)"),
                n(EventType::Normal, Reason::SecretsUpdated, "PutSecrets", "wrote the secrets"),
                n(EventType::Warning, Reason::JobCreated, "CreateB", "refused"),
            ]
        );
    }

    use super::*;
    use crate::api::{CloudSyncProfile, CloudSyncProfileStatus, JobStatus, ServicePrincipalRef};
    use crate::graph::model::PROVISIONING_TEMPLATE;
    use crate::graph::{ClientConfig, Credential, GraphClient, Overrides};
    use crate::reconcile::Context;
    use crate::reconcile::clock::ManualClock;
    use cloudsync_sim::FaultSpec;

    #[test]
    fn a_held_record_rides_only_with_intents_sent_at_once() {
        assert!(!flush_first(true, false), "the intents' patch carries it, right before the calls");
        assert!(flush_first(true, true), "never held through a Retry-After wait");
        assert!(flush_first(false, false), "a wave without intents writes no patch before its calls");
        assert!(flush_first(false, true));
    }

    #[test]
    fn only_the_configurations_id_is_held_for_the_next_patch() {
        let held: Vec<&str> = [
            Step::Instantiate { display_name: "d".into() },
            Step::Adopt { service_principal: Default::default(), application_id: None, ours: true },
            Step::ForgetServicePrincipal { id: "sp".into() },
            Step::CreateJob { template: PROVISIONING_TEMPLATE, restart_done: None },
            Step::ClaimOwnership { service_principal: "sp".into(), tags: vec![], owner: "o".into(), previous: None },
        ]
        .iter()
        .filter(|s| s.persist_at_once())
        .map(Step::name)
        .collect();
        assert_eq!(held, ["Instantiate", "Adopt", "ForgetServicePrincipal"]);
    }

    /// A status patch the fake apiserver received, and whether the tenant's Retry-After gate was
    /// closed when it arrived.
    type Patched = (serde_json::Value, bool);

    /// Serves the status subresource of `ns/p` on loopback, recording each patch.
    async fn fake_apiserver(patches: Arc<Mutex<Vec<Patched>>>, tenant: Tenant) -> String {
        use axum::routing::patch;
        let route = "/apis/cloudsync.io/v1alpha1/namespaces/ns/cloudsyncprofiles/p/status";
        let app = axum::Router::new().route(
            route,
            patch(move |body: axum::body::Bytes| {
                let (patches, tenant) = (patches.clone(), tenant.clone());
                async move {
                    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    patches.lock().unwrap().push((sent["status"].clone(), tenant.retry_after_pending().is_some()));
                    let mut answer = profile_json();
                    answer["status"] = sent["status"].clone();
                    axum::Json(answer)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn profile_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"tenantId": TENANT, "credentials": {"secretRef": {"name": "c"}}, "domain": "contoso.com"}
        })
    }

    const TENANT: &str = "11111111-2222-3333-4444-555555555555";
    const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";

    /// A pass that holds a just-recorded service principal, as after an instantiate's answer.
    fn holding(ctx: &Arc<Context>) -> Pass {
        let profile: CloudSyncProfile = serde_json::from_value(profile_json()).unwrap();
        let mut pass = Pass::new(Arc::new(profile), ctx.clone());
        pass.status_mut().service_principal = Some(ServicePrincipalRef { id: "sp-1".into(), ..Default::default() });
        pass.hold();
        pass
    }

    /// The hold rule through the executor, against a fake apiserver and the simulator over HTTP.
    #[tokio::test]
    async fn a_held_record_goes_with_intents_sent_at_once_and_alone_before_a_wait_or_a_wave_without_intents() {
        let sim = cloudsync_sim::Simulator::builder().tenant(TENANT, CLIENT, "s").start().await.unwrap();
        let url = url::Url::parse(&sim.url()).unwrap();
        let config = ClientConfig {
            overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
            ..ClientConfig::default()
        };
        let client = GraphClient::new(config).unwrap();
        let credential = Credential::ClientSecret { client_id: CLIENT.into(), secret: "s".to_string().into() };
        let tenant = client.tenant(crate::api::Cloud::Global, TENANT, credential);
        let patches = Arc::new(Mutex::new(Vec::new()));
        let kube_url = fake_apiserver(patches.clone(), tenant.clone()).await;
        let kube = kube::Client::try_from(kube::Config::new(kube_url.parse().unwrap())).unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-26T12:00:00Z".parse().unwrap()));
        let ctx = Arc::new(Context::for_tests(kube, client, clock));
        let create = [Step::CreateJob { template: PROVISIONING_TEMPLATE, restart_done: None }];
        let taken = |patches: &Mutex<Vec<Patched>>| std::mem::take(&mut *patches.lock().unwrap());
        let has = |status: &serde_json::Value, field: &str| !status[field].is_null();

        // Gate open: one patch, the held id with the intents, right before the calls.
        let mut pass = holding(&ctx);
        assert!(intents(&mut pass, &tenant, &create).await.unwrap().is_ok());
        let sent = taken(&patches);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(has(&sent[0].0, "servicePrincipal") && has(&sent[0].0, "pendingJobCreates"), "{sent:?}");
        assert!(!pass.holds());

        // Gate closed by a Retry-After: the id goes out alone while the gate is still closed, the
        // intents only after the wait.
        sim.add_fault(
            FaultSpec::parse_cli("kind=status,status=429,retryAfter=2,path=/beta/organization,times=1").unwrap(),
        )
        .unwrap();
        assert!(tenant.fail_fast().organization().await.is_err());
        assert!(tenant.retry_after_pending().is_some(), "the 429 closed the gate");
        let mut pass = holding(&ctx);
        assert!(intents(&mut pass, &tenant, &create).await.unwrap().is_ok());
        let sent = taken(&patches);
        assert_eq!(sent.len(), 2, "{sent:?}");
        let ((first, closed), (second, after)) = (&sent[0], &sent[1]);
        assert!(has(first, "servicePrincipal") && !has(first, "pendingJobCreates") && *closed, "{sent:?}");
        assert!(has(second, "pendingJobCreates") && !*after, "{sent:?}");

        // A wave without intents: the id goes out alone before it; its outcome waits for the next write.
        let mut pass = holding(&ctx);
        let record = [Step::RecordOwner { owner: "o".into() }];
        assert!(wave(&mut pass, &tenant, &record, &mut Observed::default()).await.unwrap().is_none());
        let sent = taken(&patches);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(has(&sent[0].0, "servicePrincipal") && sent[0].0["servicePrincipal"]["owner"].is_null(), "{sent:?}");
        assert_eq!(pass.status().service_principal.as_ref().and_then(|s| s.owner.as_deref()), Some("o"));
        assert!(!pass.holds());
    }

    #[tokio::test]
    async fn a_failed_call_task_is_logged_counted_and_leaves_its_intent() {
        let metrics = Metrics::new();
        let step = Step::Start { template: PROVISIONING_TEMPLATE, job: "p".into(), series: None };
        let join_error = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let e = task_failed(&metrics, &join_error, Some(&step));
        assert!(metrics.render().contains(r#"cloudsync_step_task_failures_total{operation="StartJob"} 1"#));
        assert!(!e.not_processed() && e.is_transient(), "the call may have gone out: {e:?}");
        // Its intent stays, so the job is not started again while Graph may not show it running.
        let mut status = CloudSyncProfileStatus {
            jobs: vec![JobStatus { template_id: PROVISIONING_TEMPLATE.into(), id: "p".into(), ..Default::default() }],
            ..Default::default()
        };
        let prior = status.clone();
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        step.before(&mut status, now);
        let recorded = step.after(&Err(e), &prior, &mut status, &mut Observed::default(), now);
        assert!(matches!(recorded.next, Next::Stop(_)));
        assert_eq!(status.jobs[0].last_start_time.as_deref(), Some("2026-11-26T12:00:00Z"));
    }
}
